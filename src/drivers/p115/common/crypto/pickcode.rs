//! Pick codes (reference §2.7), as modelled by p115pickcode:
//! `prefix + E(base36(id)) + E(stable_point)`.
//!
//! `prefix` is `a`..`e` for files and `fa`..`fe` for folders; each selects a substitution
//! table `T`. Encrypting maps plain char `T[i]` to `ALPHABET[i]`. The stable point is a
//! per-user 4-char base36 string (it starts with `0` in real pick codes). The empty pick
//! code is the root, id 0.

use super::CryptoError;

/// The cipher alphabet, `0-9a-z`.
pub const ALPHABET: &str = "0123456789abcdefghijklmnopqrstuvwxyz";

/// Length of the stable point suffix.
pub const STABLE_POINT_LEN: usize = 4;

/// `(prefix, substitution table)`, as in `cipher_tables_by_prefix`.
pub const TABLES: [(&str, &str); 10] = [
    ("a", "fuln1ytpj3smg8d5a094qh7cxkbi62zvewro"),
    ("b", "sk721n9a0emlfpcrzbqdw3gjh6ty5xui48vo"),
    ("c", "ywcz3hite6f1j0guoakvdb2ns7p8qr9ml5x4"),
    ("d", "rq2vl5o7wsken9u8tp4jg3zbyc6xmhifd01a"),
    ("e", "ljm9eqbcfhw7ktv3x1dgp5ua8y6s4znr2io0"),
    ("fa", "fumk0ytpj3sng8d5a194qh7cxlbi62zvewro"),
    ("fb", "sk732o9a1enmfpcrzbqdw4gjh6ty5xui08vl"),
    ("fc", "ywcz6hite9f4j3gup2kvdb5osal0qr1nm8x7"),
    ("fd", "on6vl0r2wpkeq9u3ts8jg7zbyc1xmhifd45a"),
    ("fe", "ljm0es2cfhwakqv6x4dgp8r1by9u7znt5io3"),
];

/// A pick code taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickCode {
    pub id: u64,
    /// `a`..`e` (file) or `fa`..`fe` (folder); empty for the root.
    pub prefix: String,
    /// The user's 4-char stable point; empty for the root.
    pub stable_point: String,
}

impl PickCode {
    /// True for a folder prefix (`fa`..`fe`).
    pub fn is_folder(&self) -> bool {
        self.prefix.starts_with('f')
    }
}

fn table(prefix: &str) -> Result<&'static [u8], CryptoError> {
    TABLES
        .iter()
        .find(|(p, _)| *p == prefix)
        .map(|(_, t)| t.as_bytes())
        .ok_or_else(|| CryptoError::PickCode(format!("unknown prefix {prefix:?}")))
}

fn alphabet_index(c: u8) -> Option<usize> {
    ALPHABET.bytes().position(|a| a == c)
}

/// Plain char -> cipher char.
fn encrypt_str(t: &[u8], plain: &str) -> Result<String, CryptoError> {
    plain
        .bytes()
        .map(|c| {
            t.iter()
                .position(|&x| x == c)
                .map(|i| ALPHABET.as_bytes()[i] as char)
                .ok_or_else(|| CryptoError::PickCode(format!("char {:?} not base36", c as char)))
        })
        .collect()
}

/// Cipher char -> plain char.
fn decrypt_str(t: &[u8], cipher: &str) -> Result<String, CryptoError> {
    cipher
        .bytes()
        .map(|c| {
            alphabet_index(c)
                .map(|i| t[i] as char)
                .ok_or_else(|| CryptoError::PickCode(format!("char {:?} not base36", c as char)))
        })
        .collect()
}

fn to_base36(mut n: u64) -> String {
    if n == 0 {
        return "0".into();
    }
    let a = ALPHABET.as_bytes();
    let mut out = Vec::new();
    while n > 0 {
        out.push(a[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn from_base36(s: &str) -> Result<u64, CryptoError> {
    if s.is_empty() {
        return Err(CryptoError::PickCode("empty id part".into()));
    }
    s.bytes().try_fold(0u64, |acc, c| {
        let d = alphabet_index(c).ok_or_else(|| CryptoError::PickCode(format!("char {:?} not base36", c as char)))?;
        acc.checked_mul(36)
            .and_then(|v| v.checked_add(d as u64))
            .ok_or_else(|| CryptoError::PickCode("id overflows u64".into()))
    })
}

fn check_stable_point(sp: &str) -> Result<(), CryptoError> {
    if sp.len() != STABLE_POINT_LEN || !sp.bytes().all(|c| alphabet_index(c).is_some()) {
        return Err(CryptoError::PickCode(format!(
            "stable point must be {STABLE_POINT_LEN} chars of 0-9a-z, got {sp:?}"
        )));
    }
    Ok(())
}

/// Builds the pick code of `id`. `prefix` is `a`..`e` or `fa`..`fe`; `stable_point` is the
/// user's 4-char base36 string (see [`stable_point`]). Id 0 (the root) gives `""`.
pub fn id_to_pickcode(id: u64, stable_point: &str, prefix: &str) -> Result<String, CryptoError> {
    let t = table(prefix)?;
    check_stable_point(stable_point)?;
    if id == 0 {
        return Ok(String::new());
    }
    Ok(format!("{prefix}{}{}", encrypt_str(t, &to_base36(id))?, encrypt_str(t, stable_point)?))
}

/// Takes a pick code apart (case-insensitive). `""` is the root: id 0.
pub fn parse(pickcode: &str) -> Result<PickCode, CryptoError> {
    let pc = pickcode.trim().to_ascii_lowercase();
    if pc.is_empty() {
        return Ok(PickCode { id: 0, prefix: String::new(), stable_point: String::new() });
    }
    if !pc.is_ascii() {
        return Err(CryptoError::PickCode(format!("not ASCII: {pickcode:?}")));
    }
    let prefix_len = if pc.starts_with('f') { 2 } else { 1 };
    if pc.len() < prefix_len + 1 + STABLE_POINT_LEN {
        return Err(CryptoError::PickCode(format!("too short: {pickcode:?}")));
    }
    let (prefix, rest) = pc.split_at(prefix_len);
    let t = table(prefix)?;
    let (mid, sp) = rest.split_at(rest.len() - STABLE_POINT_LEN);
    Ok(PickCode {
        id: from_base36(&decrypt_str(t, mid)?)?,
        prefix: prefix.to_string(),
        stable_point: decrypt_str(t, sp)?,
    })
}

/// The id of a pick code. `""` is the root: id 0.
pub fn pickcode_to_id(pickcode: &str) -> Result<u64, CryptoError> {
    parse(pickcode).map(|p| p.id)
}

/// The user's stable point, recovered from any one of their pick codes.
pub fn stable_point(pickcode: &str) -> Result<String, CryptoError> {
    let p = parse(pickcode)?;
    if p.stable_point.is_empty() {
        return Err(CryptoError::PickCode("the root pick code has no stable point".into()));
    }
    Ok(p.stable_point)
}

#[cfg(test)]
mod tests {
    use super::super::vectors::{load, text};
    use super::*;

    #[test]
    fn tables_match_file() {
        let v = load("pickcode-vectors.json");
        assert_eq!(ALPHABET, text(&v, "alphabet"));
        let tables = v["cipher_tables_by_prefix"].as_object().expect("tables");
        assert_eq!(tables.len(), TABLES.len());
        for (prefix, t) in TABLES {
            assert_eq!(tables[prefix].as_str(), Some(t), "{prefix}");
            // Every table is a permutation of the alphabet.
            let mut sorted: Vec<u8> = t.bytes().collect();
            sorted.sort_unstable();
            assert_eq!(sorted, ALPHABET.as_bytes(), "{prefix}");
        }
    }

    #[test]
    fn pickcode_vectors() {
        let v = load("pickcode-vectors.json");
        let vs = v["vectors"].as_array().expect("vectors");
        assert!(!vs.is_empty());
        for t in vs {
            let id: u64 = text(t, "id").parse().unwrap();
            let sp = text(t, "stable_point");
            let prefix = text(t, "prefix");
            let pc = text(t, "pickcode");
            assert_eq!(id_to_pickcode(id, &sp, &prefix).unwrap(), pc, "{pc}");
            let parsed = parse(&pc).unwrap();
            assert_eq!(parsed, PickCode { id, prefix: prefix.clone(), stable_point: sp.clone() });
            assert_eq!(parsed.is_folder(), prefix.starts_with('f'));
            assert_eq!(pickcode_to_id(&pc.to_uppercase()).unwrap(), id);
            assert_eq!(stable_point(&pc).unwrap(), sp);
        }
        assert_eq!(vs.len(), 6);
    }

    #[test]
    fn root_and_extremes() {
        assert_eq!(pickcode_to_id("").unwrap(), 0);
        assert_eq!(id_to_pickcode(0, "0abc", "a").unwrap(), "");
        for prefix in ["a", "e", "fa", "fe"] {
            let pc = id_to_pickcode(u64::MAX, "0zzz", prefix).unwrap();
            assert_eq!(pickcode_to_id(&pc).unwrap(), u64::MAX);
        }
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in ["g123456", "a12", "fz12345", "a!bcdef", "a中文abcd", "azzzzzzzzzzzzzzzzzz0000", "f"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(stable_point("").is_err());
        assert!(id_to_pickcode(1, "000", "a").is_err());
        assert!(id_to_pickcode(1, "00A0", "a").is_err());
        assert!(id_to_pickcode(1, "0000", "x").is_err());
    }
}
