//! m115, SERVER side (§3.2 "Server side, for the fake"), implemented from the reference text.
//!
//! * requests: RSA-decrypt each 128-byte block with the TEST private exponent, strip the
//!   PKCS#1 v1.5 type-2 padding, split `K = payload[0..16]`, then
//!   `plain = xorT(reverse(xorT(body, CLIENT_KEY12)), derive(K,4))`;
//! * responses: `payload = S || xorT(reverse(xorT(plain, derive(K,4))), derive(S,12))`,
//!   117-byte chunks, type-1 padding `00 01 FF.. 00 chunk`, `m^d mod N`, base64.

use base64::Engine as _;
use num_bigint::BigUint;

const KTS_HEX: &str = "f0e569aebfdcbf8a1a45e8be7da673b8de8fe7c445da86c49b648b146ab4f1aa3801359e26692c86006b4fa5363462a62a966818f24afdbd6b978f4d8f8913b76c8e93ed0e0d483ed72f88d8fefe7e8650954fd1eb832634db667b9c7e9d7a8132eab633de3aa95934663baaba816048b9d5819cf86c8477ff5478265fbee81e369f34805c452c9b76d51b8fccc3b8f5";
pub const CLIENT_KEY12: [u8; 12] = [0x78, 0x06, 0xad, 0x4c, 0x33, 0x86, 0x5d, 0x18, 0x4c, 0x01, 0x3f, 0x46];

/// TEST-ONLY RSA-1024 key of `data/m115-test-rsa-key.json` (NOT 115's key).
pub const TEST_N_HEX: &str = "ef7db82ce2afbf1beae3b084aa50e9ea21b9b4a639c1c96fb23a7d9511616dc6c387662f81621322eafb2b80b8a4680ecf3081cd5e288a1d6c5cc93b60b4ad5eb8d5c6acab1efdb496085bb058652ec9225058c70709235b95486d1d7eec4806ae3e491ad94c1404c18960b7b3f09e2cc567bcf6060f42a09f28d346cb20b7ef";
pub const TEST_D_HEX: &str = "e1e5aae8a3b5f444a80db6bd9c4d1026e942da94045cb6dda5b6a82808a9e6bb1a49c7e83d593e05acb1d7f9e5b025fafa119e0e11a7998761642fe7d332f967510b2e0e150c9cf14a5de7432437abacefa09aa01eeb308d1338133ce5afb6d5b9c28bfa30fd9046a24eb4ec16b9c9ed367b3094c230d79fc7d2d6746327afd9";
pub const TEST_E: u32 = 65537;

pub fn kts() -> Vec<u8> {
    hex::decode(KTS_HEX).unwrap()
}

/// `out[i] = ((seed[i] + KTS[size*i]) mod 256) XOR KTS[size*(size-1-i)]`
pub fn derive(seed: &[u8], size: usize) -> Vec<u8> {
    let k = kts();
    (0..size).map(|i| seed[i].wrapping_add(k[size * i]) ^ k[size * (size - 1 - i)]).collect()
}

/// Aligned XOR: leading `len % 4` bytes use `key[0..m]`, then the key restarts at 0.
pub fn xor_t(data: &mut [u8], key: &[u8]) {
    let m = data.len() % 4;
    for i in 0..m {
        data[i] ^= key[i];
    }
    for i in m..data.len() {
        data[i] ^= key[(i - m) % key.len()];
    }
}

#[derive(Clone)]
pub struct RsaKey {
    pub n: BigUint,
    pub e: BigUint,
    pub d: BigUint,
}

impl RsaKey {
    pub fn test_key() -> RsaKey {
        RsaKey {
            n: BigUint::parse_bytes(TEST_N_HEX.as_bytes(), 16).unwrap(),
            e: BigUint::from(TEST_E),
            d: BigUint::parse_bytes(TEST_D_HEX.as_bytes(), 16).unwrap(),
        }
    }
    fn to_block(v: &BigUint) -> [u8; 128] {
        let b = v.to_bytes_be();
        let mut out = [0u8; 128];
        out[128 - b.len()..].copy_from_slice(&b);
        out
    }
}

/// Decode a client request `data` (base64). Returns (plaintext, client key K).
pub fn server_decode(key: &RsaKey, data_b64: &str) -> Result<(Vec<u8>, [u8; 16]), String> {
    let raw = base64::engine::general_purpose::STANDARD.decode(data_b64.trim()).map_err(|e| format!("base64: {e}"))?;
    if raw.is_empty() || raw.len() % 128 != 0 {
        return Err(format!("ciphertext length {} is not a multiple of 128", raw.len()));
    }
    let mut payload = Vec::new();
    for blk in raw.chunks(128) {
        let c = BigUint::from_bytes_be(blk);
        if c >= key.n {
            return Err("block >= modulus".into());
        }
        let m = RsaKey::to_block(&c.modpow(&key.d, &key.n));
        // PKCS#1 v1.5 type 2: 00 02 PS(non-zero, >= 8) 00 chunk
        if m[0] != 0 || m[1] != 2 {
            return Err(format!("bad padding header {:02x}{:02x}", m[0], m[1]));
        }
        let sep = m[2..].iter().position(|&b| b == 0).ok_or("no padding separator")? + 2;
        if sep - 2 < 8 {
            return Err("padding string shorter than 8".into());
        }
        payload.extend_from_slice(&m[sep + 1..]);
    }
    if payload.len() < 16 {
        return Err("payload shorter than the 16-byte key".into());
    }
    let mut k = [0u8; 16];
    k.copy_from_slice(&payload[..16]);
    let mut body = payload[16..].to_vec();
    xor_t(&mut body, &CLIENT_KEY12);
    body.reverse();
    xor_t(&mut body, &derive(&k, 4));
    Ok((body, k))
}

/// Pre-RSA server payload `S || t` (exposed for tests).
pub fn server_payload(plain: &[u8], k: &[u8; 16], s: &[u8; 16]) -> Vec<u8> {
    let mut t = plain.to_vec();
    xor_t(&mut t, &derive(k, 4));
    t.reverse();
    xor_t(&mut t, &derive(s, 12));
    let mut p = s.to_vec();
    p.extend_from_slice(&t);
    p
}

/// Encode a response for the client that used key `k`, with server key `s`.
pub fn server_encode_with(key: &RsaKey, plain: &[u8], k: &[u8; 16], s: &[u8; 16]) -> String {
    let payload = server_payload(plain, k, s);
    let mut out = Vec::new();
    for chunk in payload.chunks(117) {
        let mut m = [0xFFu8; 128];
        m[0] = 0;
        m[1] = 1;
        let sep = 128 - chunk.len() - 1;
        m[sep] = 0;
        m[sep + 1..].copy_from_slice(chunk);
        let c = BigUint::from_bytes_be(&m).modpow(&key.d, &key.n);
        out.extend_from_slice(&RsaKey::to_block(&c));
    }
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// Encode with a fresh random server key S.
pub fn server_encode(key: &RsaKey, plain: &[u8], k: &[u8; 16]) -> String {
    use rand::RngCore;
    let mut s = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut s);
    server_encode_with(key, plain, k, &s)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn derive_zero() {
        assert_eq!(hex::encode(derive(&[0u8; 16], 4)), "8da5a58d");
        assert_eq!(hex::encode(derive(&[0u8; 16], 12)), "ac822114c15858c1142182ac");
    }
}
