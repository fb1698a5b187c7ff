//! Signed download links: `<path>?sign=<base64url(HMAC-SHA256(key, "<path>:<expiry>"))>:<expiry>`
//! (the shape OpenList relays understand). The key is made once into the state dir.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum SignError {
    Malformed,
    Expired,
    Invalid,
}

impl std::fmt::Display for SignError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignError::Malformed => "malformed signature",
            SignError::Expired => "signature expired",
            SignError::Invalid => "signature does not match",
        })
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Signer {
    pub fn new(key: Vec<u8>) -> Signer {
        Signer { key }
    }

    fn mac(&self, path: &str, expires: u64) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(&self.key).expect("hmac takes any key length");
        m.update(path.as_bytes());
        m.update(b":");
        m.update(expires.to_string().as_bytes());
        m
    }

    /// Sign `path` (decoded, as served, without the URL prefix) valid for `ttl_secs`.
    pub fn sign(&self, path: &str, ttl_secs: u64) -> String {
        self.sign_until(path, now() + ttl_secs)
    }

    pub fn sign_until(&self, path: &str, expires: u64) -> String {
        let tag = self.mac(path, expires).finalize().into_bytes();
        format!("{}:{expires}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag))
    }

    /// Check a signature for `path`; comparison is constant-time.
    pub fn verify(&self, path: &str, sign: &str) -> Result<(), SignError> {
        let (tag, exp) = sign.rsplit_once(':').ok_or(SignError::Malformed)?;
        let expires: u64 = exp.parse().map_err(|_| SignError::Malformed)?;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(tag.trim_end_matches('='))
            .map_err(|_| SignError::Malformed)?;
        self.mac(path, expires).verify_slice(&raw).map_err(|_| SignError::Invalid)?;
        if expires <= now() {
            return Err(SignError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let s = Signer::new(vec![7; 32]);
        let sig = s.sign("/local/a b.mkv", 60);
        assert_eq!(s.verify("/local/a b.mkv", &sig), Ok(()));
        assert_eq!(s.verify("/local/other.mkv", &sig), Err(SignError::Invalid));
        let mut bad = sig.clone().into_bytes();
        bad[3] = if bad[3] == b'A' { b'B' } else { b'A' };
        assert_eq!(s.verify("/local/a b.mkv", std::str::from_utf8(&bad).unwrap()), Err(SignError::Invalid));
        // Changing the expiry breaks the MAC.
        let (tag, exp) = sig.rsplit_once(':').unwrap();
        let later = format!("{tag}:{}", exp.parse::<u64>().unwrap() + 1000);
        assert_eq!(s.verify("/local/a b.mkv", &later), Err(SignError::Invalid));
        let old = s.sign_until("/local/a b.mkv", now() - 1);
        assert_eq!(s.verify("/local/a b.mkv", &old), Err(SignError::Expired));
        assert_eq!(s.verify("/x", "nonsense"), Err(SignError::Malformed));
        assert_eq!(Signer::new(vec![8; 32]).verify("/local/a b.mkv", &sig), Err(SignError::Invalid));
    }
}
