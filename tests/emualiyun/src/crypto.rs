//! Hashes and signatures the server side checks: `proof_code` v1 (ref §7.2), `pre_hash` /
//! `content_hash` (§7.1), CRC-64 (§4.2), `x-signature` secp256k1 verification (§3.1–3.2, §3.6),
//! PKCE S256 (§2.6).

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use k256::ecdsa::{Signature, VerifyingKey};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::content::Content;

/// Uppercase SHA-1 hex.
pub fn sha1_upper(data: &[u8]) -> String {
    hex::encode_upper(Sha1::digest(data))
}

/// `v = u64(first 16 hex of md5hex(token))`, `offset = v mod size` (0 for an empty file).
pub fn proof_offset(access_token: &str, size: u64) -> u64 {
    if size == 0 {
        return 0;
    }
    let md5 = hex::encode(Md5::digest(access_token.as_bytes()));
    let v = u64::from_str_radix(&md5[..16], 16).expect("hex");
    v % size
}

/// `proof_code` v1 of `content` for `access_token` (ref §7.2).
pub fn proof_code(access_token: &str, content: &Content) -> String {
    let size = content.size();
    let offset = proof_offset(access_token, size);
    let end = (offset + 8).min(size);
    let mut buf = vec![0u8; (end - offset) as usize];
    content.read_at(offset, &mut buf);
    STANDARD.encode(buf)
}

/// CRC-64/XZ (ECMA-182 polynomial, reflected, init and xorout all ones) — the OSS `crc64`.
pub struct Crc64 {
    table: [u64; 256],
    state: u64,
}

impl Default for Crc64 {
    fn default() -> Self {
        Crc64::new()
    }
}

impl Crc64 {
    pub fn new() -> Crc64 {
        const POLY: u64 = 0xC96C_5795_D787_0F42;
        let mut table = [0u64; 256];
        for (i, t) in table.iter_mut().enumerate() {
            let mut c = i as u64;
            for _ in 0..8 {
                c = if c & 1 == 1 { (c >> 1) ^ POLY } else { c >> 1 };
            }
            *t = c;
        }
        Crc64 { table, state: !0 }
    }

    pub fn update(&mut self, data: &[u8]) {
        let mut c = self.state;
        for &b in data {
            c = self.table[((c ^ b as u64) & 0xff) as usize] ^ (c >> 8);
        }
        self.state = c;
    }

    pub fn finish(&self) -> u64 {
        !self.state
    }
}

/// Parse a `create_session.pubKey` (ref §3.2): 128 hex X‖Y, 130 hex `04`‖X‖Y, 66 hex compressed,
/// and, when `lenient`, tickstep's malformed 68 hex `04`‖compressed.
pub fn parse_pubkey(hex_key: &str, lenient: bool) -> Option<VerifyingKey> {
    let h = hex_key.trim().to_ascii_lowercase();
    let bytes = hex::decode(&h).ok()?;
    let sec1: Vec<u8> = match bytes.len() {
        64 => [&[0x04u8][..], &bytes].concat(),
        65 if bytes[0] == 0x04 => bytes,
        33 if bytes[0] == 0x02 || bytes[0] == 0x03 => bytes,
        34 if lenient && bytes[0] == 0x04 && (bytes[1] == 0x02 || bytes[1] == 0x03) => bytes[1..].to_vec(),
        _ => return None,
    };
    VerifyingKey::from_sec1_bytes(&sec1).ok()
}

/// Uncompressed SEC1 hex of a key (what the emulator stores).
pub fn pubkey_hex(k: &VerifyingKey) -> String {
    hex::encode(k.to_encoded_point(false).as_bytes())
}

/// Why an `x-signature` was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SigError {
    Malformed,
    HighS,
    Mismatch,
}

/// Verify a 130-hex `r‖s‖v` signature of `message` (SHA-256 prehash, ref §3.1).
/// `v` must be 0 or 1 but is otherwise ignored; high-S is refused unless `allow_high_s`.
pub fn verify_signature(key: &VerifyingKey, message: &str, sig_hex: &str, allow_high_s: bool) -> Result<(), SigError> {
    let raw = hex::decode(sig_hex.trim()).map_err(|_| SigError::Malformed)?;
    if raw.len() != 65 || raw[64] > 1 {
        return Err(SigError::Malformed);
    }
    let sig = Signature::from_slice(&raw[..64]).map_err(|_| SigError::Malformed)?;
    let (sig, was_high) = match sig.normalize_s() {
        Some(low) => (low, true),
        None => (sig, false),
    };
    if was_high && !allow_high_s {
        return Err(SigError::HighS);
    }
    let digest = Sha256::digest(message.as_bytes());
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    key.verify_prehash(&digest, &sig).map_err(|_| SigError::Mismatch)
}

/// PKCE S256 (ref §2.6): base64url(SHA-256(verifier)); the official SDK keeps the `=` padding,
/// so a challenge matches with or without it.
pub fn pkce_matches(verifier: &str, challenge: &str, method: &str) -> bool {
    if method.eq_ignore_ascii_case("plain") {
        return verifier == challenge;
    }
    let d = Sha256::digest(verifier.as_bytes());
    let c = challenge.trim();
    c == URL_SAFE.encode(d) || c == URL_SAFE_NO_PAD.encode(d)
}

/// HMAC-SHA1 (OSS-style URL signatures of the data host), base64.
pub fn hmac_sha1_b64(key: &[u8], msg: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut m = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("hmac key");
    m.update(msg.as_bytes());
    STANDARD.encode(m.finalize().into_bytes())
}

/// Base64url without padding (JWT segments).
pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_xz_check_value() {
        let mut c = Crc64::new();
        c.update(b"123456789");
        assert_eq!(c.finish(), 0x995D_C9BB_DF19_39FA);
    }
}
