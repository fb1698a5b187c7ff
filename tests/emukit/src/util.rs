//! Helpers every emulator needs: time formatting, random ids, globbing, percent-encoding,
//! urlencoded parsing.

use rand::Rng;

/// Days since 1970-01-01 → (year, month, day). (Howard Hinnant's civil_from_days.)
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Unix seconds → (year, month, day, hour, minute, second), UTC.
pub fn split_unix(ts: i64) -> (i64, u32, u32, i64, i64, i64) {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (y, m, d, secs / 3600, (secs % 3600) / 60, secs % 60)
}

/// `2023-11-14T22:13:20Z`
pub fn rfc3339(ts: i64) -> String {
    let (y, m, d, hh, mm, ss) = split_unix(ts);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// Unix milliseconds → `2023-11-14T22:13:20.511Z`.
pub fn rfc3339_millis(ms: i64) -> String {
    let (y, m, d, hh, mm, ss) = split_unix(ms.div_euclid(1000));
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{:03}Z", ms.rem_euclid(1000))
}

/// Parse `YYYY-MM-DDTHH:MM:SS[.fff]Z` (UTC only) → unix milliseconds.
pub fn parse_rfc3339_millis(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut dp = date.split('-');
    let y: i64 = dp.next()?.parse().ok()?;
    let mo: i64 = dp.next()?.parse().ok()?;
    let d: i64 = dp.next()?.parse().ok()?;
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, b),
        None => (time, "0"),
    };
    let mut tp = hms.split(':');
    let hh: i64 = tp.next()?.parse().ok()?;
    let mi: i64 = tp.next()?.parse().ok()?;
    let ss: i64 = tp.next()?.parse().ok()?;
    let ms: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || hh > 23 || mi > 59 || ss > 60 {
        return None;
    }
    // days_from_civil
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mi * 60 + ss) * 1000) + ms)
}

/// RFC 1123 date (`Last-Modified`, `Date`).
pub fn http_date(ts: i64) -> String {
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (y, m, d, hh, mm, ss) = split_unix(ts);
    let wd = WD[ts.div_euclid(86_400).rem_euclid(7) as usize];
    format!("{wd}, {d:02} {} {y:04} {hh:02}:{mm:02}:{ss:02} GMT", MON[(m - 1) as usize])
}

pub const LOWER_HEX: &[u8] = b"0123456789abcdef";
pub const UPPER_HEX: &[u8] = b"0123456789ABCDEF";
pub const LOWER_ALNUM: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
pub const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// `n` random characters from `alphabet`.
pub fn rand_from(alphabet: &[u8], n: usize) -> String {
    let mut r = rand::thread_rng();
    (0..n).map(|_| alphabet[r.gen_range(0..alphabet.len())] as char).collect()
}

/// `n` random lowercase hex characters.
pub fn rand_hex(n: usize) -> String {
    rand_from(LOWER_HEX, n)
}

/// Glob with `*` only (matches any run of characters, `/` included).
pub fn glob_match(pat: &str, s: &str) -> bool {
    let p = pat.as_bytes();
    let t = s.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    let (mut star, mut mark) = (usize::MAX, 0usize);
    while ti < t.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = pi;
            mark = ti;
            pi += 1;
        } else if star != usize::MAX {
            pi = star + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// Percent-encode everything but ASCII alphanumerics.
pub fn pct_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Percent-encode for a URL query value: keeps RFC 3986 unreserved characters.
pub fn pct_encode_query(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// Percent-decode (invalid UTF-8 becomes U+FFFD).
pub fn pct_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// `application/x-www-form-urlencoded` pairs, in order, duplicates kept.
pub fn parse_urlencoded(b: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(b).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_millis(1_676_619_943_511), "2023-02-17T07:45:43.511Z");
        assert_eq!(parse_rfc3339_millis("2023-02-17T07:45:43.511Z"), Some(1_676_619_943_511));
        assert_eq!(parse_rfc3339_millis("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(parse_rfc3339_millis("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(parse_rfc3339_millis("2024-02-30"), None);
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn globbing() {
        assert!(glob_match("webapi.115.com/*", "webapi.115.com/files"));
        assert!(glob_match("*/downurl", "proapi.115.com/app/chrome/downurl"));
        assert!(!glob_match("*/downurl", "proapi.115.com/app/chrome/downurl2"));
    }

    #[test]
    fn random() {
        let h = rand_hex(32);
        assert_eq!(h.len(), 32);
        assert!(h.bytes().all(|c| LOWER_HEX.contains(&c)));
    }
}
