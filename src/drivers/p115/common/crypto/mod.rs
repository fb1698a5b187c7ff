//! Client-side cryptography of the 115 Cloud web driver.
//!
//! - [`m115`]: the RSA + xor cipher of `proapi.115.com/app/chrome/downurl` and friends.
//! - [`ec115`]: the P-224 / AES-128-CBC envelope of `uplb.115.com/4.0/initupload.php`.
//! - [`sign`]: the initupload `sig` / `token` and the content hashes that feed them.
//!
//! All functions are pure; malformed input yields [`CryptoError`], never a panic.

pub mod ec115;
pub mod m115;
pub mod sign;

/// Loading the third-party vector files, for the modules' tests.
#[cfg(test)]
mod vectors {
    use serde_json::Value;

    pub fn load(file: &str) -> Value {
        let path = format!("{}/tests/vectors/{}", env!("CARGO_MANIFEST_DIR"), file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A non-empty array (an empty one would let a broken loader pass).
    pub fn list<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
        let l = v[key].as_array().unwrap_or_else(|| panic!("{key} is not an array"));
        assert!(!l.is_empty(), "{key} is empty");
        l
    }

    /// A string or number field as text.
    pub fn text(v: &Value, key: &str) -> String {
        match &v[key] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => panic!("{key}: unexpected {other:?}"),
        }
    }

    pub fn bytes(v: &Value, key: &str) -> Vec<u8> {
        hex::decode(text(v, key)).unwrap_or_else(|e| panic!("{key}: {e}"))
    }
}

/// Malformed input to one of the 115 crypto routines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("invalid base64: {0}")]
    Base64(String),
    #[error("invalid hex: {0}")]
    Hex(String),
    #[error("{what}: need at least {need} bytes, got {got}")]
    Short { what: &'static str, need: usize, got: usize },
    #[error("bad length: {0}")]
    BadLength(String),
    #[error("bad padding: {0}")]
    BadPadding(&'static str),
    #[error("invalid key: {0}")]
    BadKey(String),
    #[error("checksum mismatch: {0}")]
    Checksum(&'static str),
    #[error("lz4 decompression failed: {0}")]
    Decompress(String),
    #[error("invalid pick code: {0}")]
    PickCode(String),
    #[error("invalid argument: {0}")]
    Invalid(String),
}
