//! Client-side cryptography of the 115 Cloud web driver.
//!
//! - [`m115`]: the RSA + xor cipher of `proapi.115.com/app/chrome/downurl` and friends.
//! - [`ec115`]: the P-224 / AES-128-CBC envelope of `uplb.115.com/4.0/initupload.php`.
//! - [`sign`]: the initupload `sig` / `token` and the content hashes that feed them.
//! - [`pickcode`]: pick code <-> file id.
//!
//! All functions are pure; malformed input yields [`CryptoError`], never a panic.

pub mod ec115;
pub mod m115;
pub mod pickcode;
pub mod sign;

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
