//! Small helpers: CRC32, hashes, time formatting, form/query parsing, pick codes,
//! natural sort, size formatting.

use sha1::{Digest, Sha1};
use std::cmp::Ordering;

/// CRC32/IEEE (reflected, poly 0xEDB88320), as used by the ec115 k_ec token and response tail.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc: u32 = 0xFFFF_FFFF;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            let mask = (!(crc & 1)).wrapping_add(1);
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

pub fn sha1_upper(data: &[u8]) -> String {
    hex::encode_upper(Sha1::digest(data))
}

pub fn sha1_lower(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

pub fn md5_lower(data: &[u8]) -> String {
    use md5::Md5;
    hex::encode(Md5::digest(data))
}

pub fn rand_hex(nbytes: usize) -> String {
    emukit::util::rand_hex(2 * nbytes)
}

/// Random `[a-z0-9]` string.
pub fn rand_alnum(n: usize) -> String {
    emukit::util::rand_from(emukit::util::LOWER_ALNUM, n)
}

/// `"YYYY-MM-DD HH:MM"` in Asia/Shanghai (UTC+8, no DST): the `t` field of file items (§2.1).
pub fn shanghai_minute(ts: i64) -> String {
    let (y, m, d, hh, mm, _) = emukit::util::split_unix(ts + 8 * 3600);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}")
}

/// `2023-11-14T23:13:20Z`
pub fn rfc3339_utc(ts: i64) -> String {
    emukit::util::rfc3339(ts)
}

/// RFC 1123 date (for Last-Modified headers).
pub use emukit::util::http_date;

/// Parsed urlencoded parameters (query or form), order preserved, duplicates kept.
#[derive(Clone, Debug, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn parse(raw: &[u8]) -> Params {
        Params(form_urlencoded::parse(raw).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }
    pub fn get_or<'a>(&'a self, k: &str, d: &'a str) -> &'a str {
        self.get(k).unwrap_or(d)
    }
    pub fn has(&self, k: &str) -> bool {
        self.0.iter().any(|(a, _)| a == k)
    }
    pub fn int(&self, k: &str) -> Option<i64> {
        self.get(k).and_then(|v| v.trim().parse::<i64>().ok())
    }
    pub fn u64(&self, k: &str) -> Option<u64> {
        self.get(k).and_then(|v| v.trim().parse::<u64>().ok())
    }
    /// Array parameter in any of the accepted spellings (§0.3): `name[0]=a&name[1]=b`,
    /// `name[]=a`, repeated `name=a&name=b`, or a single comma-joined `name=a,b`.
    pub fn array(&self, name: &str) -> Vec<String> {
        let mut indexed: Vec<(u64, usize, String)> = Vec::new();
        let mut out = Vec::new();
        for (i, (k, v)) in self.0.iter().enumerate() {
            if k == name {
                out.extend(v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()));
            } else if let Some(rest) = k.strip_prefix(name) {
                if let Some(inner) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                    let idx = inner.parse::<u64>().unwrap_or(u64::MAX);
                    if !v.is_empty() {
                        indexed.push((idx, i, v.clone()));
                    }
                }
            }
        }
        indexed.sort_by_key(|(idx, i, _)| (*idx, *i));
        let mut all: Vec<String> = indexed.into_iter().map(|(_, _, v)| v).collect();
        all.extend(out);
        all
    }
    /// Map parameter `name[key]=value` → (key, value), in order.
    pub fn map(&self, name: &str) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter_map(|(k, v)| {
                let rest = k.strip_prefix(name)?;
                let inner = rest.strip_prefix('[')?.strip_suffix(']')?;
                Some((inner.to_string(), v.clone()))
            })
            .collect()
    }
}

/// Pick-code minting (§2.7, data/pickcode-vectors.json).
pub mod pickcode {
    pub const ALPHABET: &str = "0123456789abcdefghijklmnopqrstuvwxyz";

    pub fn table(prefix: &str) -> Option<&'static str> {
        Some(match prefix {
            "a" => "fuln1ytpj3smg8d5a094qh7cxkbi62zvewro",
            "b" => "sk721n9a0emlfpcrzbqdw3gjh6ty5xui48vo",
            "c" => "ywcz3hite6f1j0guoakvdb2ns7p8qr9ml5x4",
            "d" => "rq2vl5o7wsken9u8tp4jg3zbyc6xmhifd01a",
            "e" => "ljm9eqbcfhw7ktv3x1dgp5ua8y6s4znr2io0",
            "fa" => "fumk0ytpj3sng8d5a194qh7cxlbi62zvewro",
            "fb" => "sk732o9a1enmfpcrzbqdw4gjh6ty5xui08vl",
            "fc" => "ywcz6hite9f4j3gup2kvdb5osal0qr1nm8x7",
            "fd" => "on6vl0r2wpkeq9u3ts8jg7zbyc1xmhifd45a",
            "fe" => "ljm0es2cfhwakqv6x4dgp8r1by9u7znt5io3",
            _ => return None,
        })
    }

    pub fn base36(mut n: u64) -> String {
        if n == 0 {
            return "0".into();
        }
        let a = ALPHABET.as_bytes();
        let mut v = Vec::new();
        while n > 0 {
            v.push(a[(n % 36) as usize]);
            n /= 36;
        }
        v.reverse();
        String::from_utf8(v).unwrap()
    }

    fn subst(t: &str, plain: &str) -> String {
        let a = ALPHABET.as_bytes();
        plain.chars().map(|c| a[t.find(c).expect("base36 char")] as char).collect()
    }

    /// `prefix + E(base36(id)) + E(stable_point)`; encryption maps `T[i]` to `ALPHABET[i]`.
    pub fn encode(id: u64, stable_point: &str, prefix: &str) -> String {
        let t = table(prefix).expect("known prefix");
        format!("{prefix}{}{}", subst(t, &base36(id)), subst(t, stable_point))
    }

    /// Inverse of [`encode`]: (prefix, id, stable point).
    pub fn decode(pc: &str) -> Option<(String, u64, String)> {
        let prefix = if pc.starts_with('f') { pc.get(..2)? } else { pc.get(..1)? };
        let t = table(prefix)?.as_bytes();
        let body = &pc[prefix.len()..];
        if body.len() < 5 {
            return None;
        }
        let plain: String = body.chars().map(|c| ALPHABET.find(c).map(|i| t[i] as char)).collect::<Option<String>>()?;
        let (idp, sp) = plain.split_at(plain.len() - 4);
        let id = u64::from_str_radix(idp, 36).ok()?;
        Some((prefix.to_string(), id, sp.to_string()))
    }
}

/// Natural ("human") ordering: digit runs compare numerically, the rest case-insensitively.
pub fn natcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let si = i;
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let na = std::str::from_utf8(&a[si..i]).unwrap().trim_start_matches('0');
            let nb = std::str::from_utf8(&b[sj..j]).unwrap().trim_start_matches('0');
            let o = na.len().cmp(&nb.len()).then(na.cmp(nb));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            let o = a[i].to_ascii_lowercase().cmp(&b[j].to_ascii_lowercase());
            if o != Ordering::Equal {
                return o;
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

pub fn size_format(n: u64) -> String {
    const U: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < U.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        let s = format!("{v:.2}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        format!("{s}{}", U[u])
    }
}

/// Lower-case extension without the dot ("" when none).
pub fn ext_of(name: &str) -> String {
    match name.rfind('.') {
        Some(i) if i > 0 && i + 1 < name.len() => name[i + 1..].to_ascii_lowercase(),
        _ => String::new(),
    }
}

/// 115 `type` filter classes (§2.1): 1 doc, 2 image, 3 audio, 4 video, 5 archive, 6 app, 7 book.
pub fn type_class(ext: &str) -> u8 {
    match ext {
        "txt" | "doc" | "docx" | "xls" | "xlsx" | "ppt" | "pptx" | "pdf" | "md" | "csv" | "rtf" => 1,
        "jpg" | "jpeg" | "png" | "gif" | "bmp" | "webp" | "heic" | "tif" | "tiff" | "svg" => 2,
        "mp3" | "flac" | "wav" | "aac" | "ogg" | "m4a" | "ape" | "wma" => 3,
        "mp4" | "mkv" | "avi" | "mov" | "wmv" | "flv" | "ts" | "m2ts" | "rmvb" | "webm" | "iso" => 4,
        "zip" | "rar" | "7z" | "tar" | "gz" | "bz2" | "xz" => 5,
        "apk" | "exe" | "dmg" | "ipa" | "msi" => 6,
        "epub" | "mobi" | "azw3" => 7,
        _ => 0,
    }
}

pub fn is_video(ext: &str) -> bool {
    type_class(ext) == 4 && ext != "iso"
}

/// Glob with `*` only (matches any run of characters, `/` included).
pub use emukit::util::glob_match;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_known() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn times() {
        assert_eq!(shanghai_minute(1_700_000_000), "2023-11-15 06:13");
        assert_eq!(rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn arrays() {
        let p = Params::parse(b"fid[1]=b&fid[0]=a&x=1&fid[]=c");
        assert_eq!(p.array("fid"), vec!["a", "b", "c"]);
        let p = Params::parse(b"fid=1,2");
        assert_eq!(p.array("fid"), vec!["1", "2"]);
        let p = Params::parse(b"files_new_name%5B12%5D=x.txt");
        assert_eq!(p.map("files_new_name"), vec![("12".to_string(), "x.txt".to_string())]);
    }

    #[test]
    fn nat() {
        assert_eq!(natcmp("a2", "a10"), Ordering::Less);
        assert_eq!(natcmp("B", "a"), Ordering::Greater);
    }

    #[test]
    fn globbing() {
        assert!(glob_match("webapi.115.com/*", "webapi.115.com/files"));
        assert!(glob_match("*/downurl", "proapi.115.com/app/chrome/downurl"));
        assert!(!glob_match("*/downurl", "proapi.115.com/app/chrome/downurl2"));
    }
}
