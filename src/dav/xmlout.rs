//! Writing XML answers straight into a byte buffer: escaping, hrefs, numbers and the two
//! date formats WebDAV uses, without building a tree or a `String` per value.

use std::time::{SystemTime, UNIX_EPOCH};

/// Text content: `&`, `<`, `>` escaped.
pub fn text(out: &mut Vec<u8>, s: &str) {
    escape(out, s, false);
}

/// An attribute value in double quotes: `&`, `<`, `>`, `"` escaped.
pub fn attr(out: &mut Vec<u8>, s: &str) {
    escape(out, s, true);
}

fn escape(out: &mut Vec<u8>, s: &str, quote: bool) {
    let b = s.as_bytes();
    let mut from = 0;
    for (i, &c) in b.iter().enumerate() {
        let rep: &[u8] = match c {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'"' if quote => b"&quot;",
            b'\r' => b"&#13;",
            _ => continue,
        };
        out.extend_from_slice(&b[from..i]);
        out.extend_from_slice(rep);
        from = i + 1;
    }
    out.extend_from_slice(&b[from..]);
}

/// Bytes kept as they are in an href: what dav-server left unencoded (RFC 3986
/// unreserved characters), plus `/` between segments. Everything else becomes `%XX`
/// with upper-case hex digits (GNOME's gvfs compares hrefs and dislikes lower case).
fn unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~')
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// A decoded path (`/a/b c`) percent-encoded for an href; `/` stays.
pub fn href_path(out: &mut Vec<u8>, path: &str) {
    for &c in path.as_bytes() {
        if unreserved(c) || c == b'/' {
            out.push(c);
        } else {
            out.extend_from_slice(&[b'%', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
        }
    }
}

/// One path segment (a name) percent-encoded; a `/` inside a name (some providers
/// allow one) is encoded too, so it cannot split the href.
pub fn href_segment(out: &mut Vec<u8>, name: &str) {
    for &c in name.as_bytes() {
        if unreserved(c) {
            out.push(c);
        } else {
            out.extend_from_slice(&[b'%', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
        }
    }
}

pub fn u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// `n` in decimal, at least `width` digits (leading zeros).
pub fn u64_padded(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut tmp = Vec::with_capacity(20);
    u64(&mut tmp, n);
    for _ in tmp.len()..width {
        out.push(b'0');
    }
    out.extend_from_slice(&tmp);
}

fn two(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&[b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
}

fn hms(out: &mut Vec<u8>, h: u32, m: u32, s: u32) {
    two(out, h);
    out.push(b':');
    two(out, m);
    out.push(b':');
    two(out, s);
}

/// Broken-down UTC time of `secs` since the epoch (secs ≥ 0): (year, month 1-12, day
/// 1-31, hour, minute, second, weekday 0 = Sunday). Days to civil date as in Howard
/// Hinnant's `civil_from_days`.
fn civil(secs: u64) -> (u64, u32, u32, u32, u32, u32, u32) {
    let days = secs / 86_400;
    let rem = (secs % 86_400) as u32;
    let weekday = ((days + 4) % 7) as u32; // 1970-01-01 was a Thursday
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d, rem / 3600, rem / 60 % 60, rem % 60, weekday)
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), as `getlastmodified` wants.
pub fn http_date(out: &mut Vec<u8>, t: SystemTime) {
    const DAYS: [&[u8]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
    const MONTHS: [&[u8]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    let (y, m, d, hh, mm, ss, wd) = civil(secs(t));
    out.extend_from_slice(DAYS[wd as usize]);
    out.extend_from_slice(b", ");
    two(out, d);
    out.push(b' ');
    out.extend_from_slice(MONTHS[(m - 1) as usize]);
    out.push(b' ');
    u64_padded(out, y, 4);
    out.push(b' ');
    hms(out, hh, mm, ss);
    out.extend_from_slice(b" GMT");
}

/// RFC 3339 in UTC without fractions (`1996-12-19T16:39:57Z`), as `creationdate` wants.
pub fn rfc3339(out: &mut Vec<u8>, t: SystemTime) {
    let (y, m, d, hh, mm, ss, _) = civil(secs(t));
    u64_padded(out, y, 4);
    out.push(b'-');
    two(out, m);
    out.push(b'-');
    two(out, d);
    out.push(b'T');
    hms(out, hh, mm, ss);
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = vec![];
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn dates_match_httpdate() {
        // httpdate (a dependency) is the reference for IMF-fixdate.
        for secs in [0u64, 59, 86_399, 86_400, 951_782_400, 981_173_106, 1_709_251_199, 4_102_444_800, 253_402_300_799]
        {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(s(|o| http_date(o, t)), httpdate::fmt_http_date(t), "{secs}");
        }
        let t = UNIX_EPOCH + Duration::from_secs(981_173_106);
        assert_eq!(s(|o| rfc3339(o, t)), "2001-02-03T04:05:06Z");
        assert_eq!(s(|o| rfc3339(o, UNIX_EPOCH + Duration::from_secs(951_782_400))), "2000-02-29T00:00:00Z");
        assert_eq!(s(|o| rfc3339(o, UNIX_EPOCH)), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn escaping_and_hrefs() {
        assert_eq!(s(|o| text(o, "a<b>&\"c\"")), "a&lt;b&gt;&amp;\"c\"");
        assert_eq!(s(|o| attr(o, "a\"&")), "a&quot;&amp;");
        assert_eq!(s(|o| href_path(o, "/a b/ü/x%y&z")), "/a%20b/%C3%BC/x%25y%26z");
        assert_eq!(s(|o| href_segment(o, "a/b~c")), "a%2Fb~c");
        assert_eq!(s(|o| u64(o, 0)), "0");
        assert_eq!(s(|o| u64(o, u64::MAX)), u64::MAX.to_string());
        assert_eq!(s(|o| u64_padded(o, 42, 14)), "00000000000042");
    }
}
