//! The m115 cipher (reference §3.2): used by `proapi.115.com/app/chrome/downurl`,
//! `app/share/downurl` and `lixianssp`.
//!
//! Client side: [`encode`] (request `data=`) and [`decode`] / [`decode_with`] (response `data`).
//! Server side, for a fake server that holds a private exponent: [`server_decode_request`] and
//! [`server_encode_response`].

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::{Encoding, U1024};
use rand::RngCore;

use super::CryptoError;

/// Parses a hex string at compile time (used for constants only).
pub(super) const fn hex_array<const N: usize>(s: &str) -> [u8; N] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("bad hex digit in constant"),
        }
    }
    let b = s.as_bytes();
    assert!(b.len() == 2 * N, "hex constant has the wrong length");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = (nibble(b[2 * i]) << 4) | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// `xor_key_seed_kts`: the 144-byte table behind [`derive_key`].
pub const KTS: [u8; 144] = hex_array(
    "f0e569aebfdcbf8a1a45e8be7da673b8de8fe7c445da86c49b648b146ab4f1aa3801359e26692c86006b4fa5363462a6\
     2a966818f24afdbd6b978f4d8f8913b76c8e93ed0e0d483ed72f88d8fefe7e8650954fd1eb832634db667b9c7e9d7a81\
     32eab633de3aa95934663baaba816048b9d5819cf86c8477ff5478265fbee81e369f34805c452c9b76d51b8fccc3b8f5",
);

/// `client_xor_key_12`: the fixed xor key of the request direction.
pub const CLIENT_KEY12: [u8; 12] = hex_array("7806ad4c33865d184c013f46");

/// 115's RSA-1024 modulus (public exponent 65537).
pub const RSA_N_115_HEX: &str = "8686980c0f5a24c4b9d43020cd2c22703ff3f450756529058b1cf88f09b86021\
36477198a6e2683149659bd122c33592fdb5ad47944ad1ea4d36c6b172aad6338c3bb6ac6227502d010993ac967d1aef\
00f0c8e038de2e4d3bc2ec368af2e9f10a6f1eda4f7262f136420c07c331b871bf139f74f3010e3c4fe57df3afb71683";

/// The public exponent 115 uses.
pub const RSA_E: u32 = 65537;

/// Length of the per-request client key `K` and of the server key `S`.
pub const KEY_LEN: usize = 16;

/// PKCS#1 v1.5 overhead per RSA block (`00 02 PS(>=8) 00`).
const PKCS1_OVERHEAD: usize = 11;

/// How the `PS` bytes of PKCS#1 v1.5 type-2 padding are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pkcs1Fill {
    /// Random non-zero bytes (115driver, elevengo). Use this for real requests.
    Random,
    /// Every byte `0x02` (p115cipher); deterministic, matches the published vectors.
    Deterministic,
}

/// `x^exp mod n` for a modulus of at most 1024 bits. Shared by [`RsaPublic`] and [`RsaPrivate`].
#[derive(Clone)]
struct ModExp {
    n: U1024,
    exp: U1024,
    exp_bits: usize,
    params: DynResidueParams<{ U1024::LIMBS }>,
    /// Modulus length in bytes (`k`).
    k: usize,
}

impl ModExp {
    fn new(n_be: &[u8], exp_be: &[u8]) -> Result<Self, CryptoError> {
        let n_be = strip_leading_zeros(n_be);
        let exp_be = strip_leading_zeros(exp_be);
        if n_be.len() > 128 || exp_be.len() > 128 {
            return Err(CryptoError::BadKey("RSA modulus/exponent over 1024 bits".into()));
        }
        let k = n_be.len();
        if k <= PKCS1_OVERHEAD + KEY_LEN {
            return Err(CryptoError::BadKey(format!("RSA modulus too small ({k} bytes)")));
        }
        if n_be[k - 1] & 1 == 0 {
            return Err(CryptoError::BadKey("RSA modulus must be odd".into()));
        }
        if exp_be.is_empty() {
            return Err(CryptoError::BadKey("RSA exponent is zero".into()));
        }
        let n = U1024::from_be_bytes(left_pad_128(n_be));
        let exp = U1024::from_be_bytes(left_pad_128(exp_be));
        // `new` panics on an even modulus, which was rejected above.
        let params = DynResidueParams::new(&n);
        Ok(Self { n, exp_bits: exp.bits(), exp, params, k })
    }

    #[cfg(test)]
    fn from_hex(n_hex: &str, exp_hex: &str) -> Result<Self, CryptoError> {
        let n = decode_hex_int(n_hex)?;
        let e = decode_hex_int(exp_hex)?;
        Self::new(&n, &e)
    }

    /// Applies the exponent to one `k`-byte block; the result is `k` bytes, big-endian.
    fn apply(&self, block: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if block.len() != self.k {
            return Err(CryptoError::BadLength(format!("RSA block is {} bytes, expected {}", block.len(), self.k)));
        }
        let x = U1024::from_be_bytes(left_pad_128(block));
        if x >= self.n {
            return Err(CryptoError::BadPadding("RSA block is not below the modulus"));
        }
        let r = DynResidue::new(&x, self.params).pow_bounded_exp(&self.exp, self.exp_bits).retrieve();
        let full = r.to_be_bytes();
        Ok(full[128 - self.k..].to_vec())
    }
}

/// An RSA public key (modulus + exponent) as used by m115.
#[derive(Clone)]
pub struct RsaPublic(ModExp);

impl std::fmt::Debug for RsaPublic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaPublic").field("bits", &(self.0.k * 8)).finish()
    }
}

impl RsaPublic {
    /// 115's real key: [`RSA_N_115_HEX`], e = 65537.
    pub fn default_115() -> Self {
        // The constant is well-formed (covered by tests), so this cannot fail.
        match Self::from_hex_modulus(RSA_N_115_HEX) {
            Ok(k) => k,
            Err(e) => unreachable!("embedded 115 RSA modulus is invalid: {e}"),
        }
    }

    /// A key from a hex modulus with e = 65537 (e.g. the TEST key of a fake server).
    pub fn from_hex_modulus(n_hex: &str) -> Result<Self, CryptoError> {
        Self::from_hex(n_hex, RSA_E)
    }

    /// A key from a hex modulus and an explicit public exponent.
    pub fn from_hex(n_hex: &str, e: u32) -> Result<Self, CryptoError> {
        let n = decode_hex_int(n_hex)?;
        Ok(Self(ModExp::new(&n, &e.to_be_bytes())?))
    }

    /// Modulus length in bytes (128 for RSA-1024).
    pub fn modulus_len(&self) -> usize {
        self.0.k
    }
}

#[cfg(test)] // the fake-server half, for the round trips below; the emulators have their own
/// An RSA private key (modulus + private exponent `d`), for a fake server only.
#[derive(Clone)]
pub struct RsaPrivate(ModExp);

#[cfg(test)] // the fake-server half, for the round trips below; the emulators have their own
impl std::fmt::Debug for RsaPrivate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaPrivate").field("bits", &(self.0.k * 8)).finish_non_exhaustive()
    }
}

#[cfg(test)] // the fake-server half, for the round trips below; the emulators have their own
impl RsaPrivate {
    /// From hex `n` and hex `d` (the format of `m115-test-rsa-key.json`).
    pub fn from_hex(n_hex: &str, d_hex: &str) -> Result<Self, CryptoError> {
        Ok(Self(ModExp::from_hex(n_hex, d_hex)?))
    }
}

/// A fresh random 16-byte request key `K`.
pub fn random_key16() -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    rand::rngs::OsRng.fill_bytes(&mut k);
    k
}

/// Key derivation: `out[i] = ((seed[i] + KTS[size*i]) mod 256) ^ KTS[size*(size-1-i)]`.
///
/// `size` must be 4 or 12 and `seed` at least `size` bytes long.
pub fn derive_key(seed: &[u8], size: usize) -> Result<Vec<u8>, CryptoError> {
    if size != 4 && size != 12 {
        return Err(CryptoError::Invalid(format!("derive_key size must be 4 or 12, got {size}")));
    }
    if seed.len() < size {
        return Err(CryptoError::Short { what: "derive_key seed", need: size, got: seed.len() });
    }
    Ok((0..size).map(|i| seed[i].wrapping_add(KTS[size * i]) ^ KTS[size * (size - 1 - i)]).collect())
}

/// [`derive_key`] with size 4, for a 16-byte key.
pub fn derive_key4(seed: &[u8; KEY_LEN]) -> [u8; 4] {
    let mut out = [0u8; 4];
    for (i, o) in out.iter_mut().enumerate() {
        *o = seed[i].wrapping_add(KTS[4 * i]) ^ KTS[4 * (3 - i)];
    }
    out
}

/// [`derive_key`] with size 12, for a 16-byte key.
pub fn derive_key12(seed: &[u8; KEY_LEN]) -> [u8; 12] {
    let mut out = [0u8; 12];
    for (i, o) in out.iter_mut().enumerate() {
        *o = seed[i].wrapping_add(KTS[12 * i]) ^ KTS[12 * (11 - i)];
    }
    out
}

/// Aligned xor `xorT`, in place: the first `len % 4` bytes use `key[0..]`, then the key stream
/// restarts at index 0 for the 4-aligned remainder. An empty key leaves `data` unchanged.
pub fn xor_aligned(data: &mut [u8], key: &[u8]) {
    if key.is_empty() {
        return;
    }
    let m = data.len() % 4;
    let (head, rest) = data.split_at_mut(m);
    for (d, k) in head.iter_mut().zip(key.iter().cycle()) {
        *d ^= k;
    }
    for (d, k) in rest.iter_mut().zip(key.iter().cycle()) {
        *d ^= k;
    }
}

/// The pre-RSA request payload: `K || xorT(reverse(xorT(plain, derive4(K))), CLIENT_KEY12)`.
pub fn encode_payload(plain: &[u8], key16: [u8; KEY_LEN]) -> Vec<u8> {
    let mut t = plain.to_vec();
    xor_aligned(&mut t, &derive_key4(&key16));
    t.reverse();
    xor_aligned(&mut t, &CLIENT_KEY12);
    let mut payload = Vec::with_capacity(KEY_LEN + t.len());
    payload.extend_from_slice(&key16);
    payload.extend_from_slice(&t);
    payload
}

/// Encodes a request (`data=` form value, standard base64) with random PKCS#1 padding.
pub fn encode(plain: &[u8], key16: [u8; KEY_LEN], rsa: &RsaPublic) -> String {
    encode_with_padding(plain, key16, rsa, Pkcs1Fill::Random)
}

/// [`encode`] with a chosen padding fill; [`Pkcs1Fill::Deterministic`] reproduces p115cipher.
pub fn encode_with_padding(plain: &[u8], key16: [u8; KEY_LEN], rsa: &RsaPublic, fill: Pkcs1Fill) -> String {
    let payload = encode_payload(plain, key16);
    let k = rsa.0.k;
    let mut out = Vec::with_capacity(payload.len().div_ceil(k - PKCS1_OVERHEAD) * k);
    for chunk in payload.chunks(k - PKCS1_OVERHEAD) {
        let block = pad_type2(chunk, k, fill);
        match rsa.0.apply(&block) {
            Ok(c) => out.extend_from_slice(&c),
            // A padded block starts with 0x00 and has exactly k bytes, so it is below n.
            Err(e) => unreachable!("padded RSA block rejected: {e}"),
        }
    }
    B64.encode(out)
}

/// Decodes a response `data` field with 115's real key.
pub fn decode(data_b64: &str, key16: [u8; KEY_LEN]) -> Result<Vec<u8>, CryptoError> {
    decode_with(data_b64, key16, &RsaPublic::default_115())
}

/// Decodes a response `data` field with the given key (e.g. a fake server's TEST key).
pub fn decode_with(data_b64: &str, key16: [u8; KEY_LEN], rsa: &RsaPublic) -> Result<Vec<u8>, CryptoError> {
    let payload = rsa_unpad_all(data_b64, &rsa.0)?;
    decode_payload(&payload, key16)
}

/// Decodes a response payload after RSA: `S || body`.
pub fn decode_payload(payload: &[u8], key16: [u8; KEY_LEN]) -> Result<Vec<u8>, CryptoError> {
    let (s, body) = split_key(payload, "m115 response payload")?;
    let mut t = body.to_vec();
    xor_aligned(&mut t, &derive_key12(&s));
    t.reverse();
    xor_aligned(&mut t, &derive_key4(&key16));
    Ok(t)
}

#[cfg(test)] // the fake-server half, for the round trips below; the emulators have their own
/// Fake server: decrypts a request `data` value, returning the client key `K` and the plaintext.
pub fn server_decode_request(data_b64: &str, key: &RsaPrivate) -> Result<([u8; KEY_LEN], Vec<u8>), CryptoError> {
    let payload = rsa_unpad_all(data_b64, &key.0)?;
    let (k, body) = split_key(&payload, "m115 request payload")?;
    let mut t = body.to_vec();
    xor_aligned(&mut t, &CLIENT_KEY12);
    t.reverse();
    xor_aligned(&mut t, &derive_key4(&k));
    Ok((k, t))
}

#[cfg(test)] // the fake-server half, for the round trips below; the emulators have their own
/// Fake server: the pre-RSA response payload `S || xorT(reverse(xorT(plain, derive4(K))), derive12(S))`.
pub fn server_response_payload(plain: &[u8], client_key16: [u8; KEY_LEN], server_key16: [u8; KEY_LEN]) -> Vec<u8> {
    let mut t = plain.to_vec();
    xor_aligned(&mut t, &derive_key4(&client_key16));
    t.reverse();
    xor_aligned(&mut t, &derive_key12(&server_key16));
    let mut payload = Vec::with_capacity(KEY_LEN + t.len());
    payload.extend_from_slice(&server_key16);
    payload.extend_from_slice(&t);
    payload
}

#[cfg(test)] // the fake-server half, for the round trips below; the emulators have their own
/// Fake server: encrypts a response with type-1 (`00 01 FF.. 00`) padding and the private key.
pub fn server_encode_response(
    plain: &[u8],
    client_key16: [u8; KEY_LEN],
    server_key16: [u8; KEY_LEN],
    key: &RsaPrivate,
) -> String {
    let payload = server_response_payload(plain, client_key16, server_key16);
    let k = key.0.k;
    let mut out = Vec::new();
    for chunk in payload.chunks(k - PKCS1_OVERHEAD) {
        let mut block = vec![0xffu8; k];
        block[0] = 0;
        block[1] = 1;
        block[k - chunk.len() - 1] = 0;
        block[k - chunk.len()..].copy_from_slice(chunk);
        match key.0.apply(&block) {
            Ok(c) => out.extend_from_slice(&c),
            Err(e) => unreachable!("padded RSA block rejected: {e}"),
        }
    }
    B64.encode(out)
}

fn pad_type2(chunk: &[u8], k: usize, fill: Pkcs1Fill) -> Vec<u8> {
    let ps_len = k - 3 - chunk.len();
    let mut block = Vec::with_capacity(k);
    block.extend_from_slice(&[0x00, 0x02]);
    match fill {
        Pkcs1Fill::Deterministic => block.resize(2 + ps_len, 0x02),
        Pkcs1Fill::Random => {
            let mut ps = vec![0u8; ps_len];
            rand::rngs::OsRng.fill_bytes(&mut ps);
            for b in ps.iter_mut() {
                while *b == 0 {
                    let mut one = [0u8; 1];
                    rand::rngs::OsRng.fill_bytes(&mut one);
                    *b = one[0];
                }
            }
            block.extend_from_slice(&ps);
        }
    }
    block.push(0x00);
    block.extend_from_slice(chunk);
    block
}

/// Base64-decodes, applies the exponent to every block and strips PKCS#1 type-1/2 padding.
fn rsa_unpad_all(data_b64: &str, key: &ModExp) -> Result<Vec<u8>, CryptoError> {
    let raw = B64.decode(data_b64.trim().as_bytes()).map_err(|e| CryptoError::Base64(e.to_string()))?;
    if raw.is_empty() || raw.len() % key.k != 0 {
        return Err(CryptoError::BadLength(format!(
            "m115 ciphertext is {} bytes, not a positive multiple of {}",
            raw.len(),
            key.k
        )));
    }
    let mut payload = Vec::with_capacity(raw.len());
    for block in raw.chunks(key.k) {
        let m = key.apply(block)?;
        // m = 00 || type(01|02) || PS || 00 || data
        if m[0] != 0 || !(m[1] == 1 || m[1] == 2) {
            return Err(CryptoError::BadPadding("RSA block is not PKCS#1 type 1 or 2"));
        }
        let sep =
            m[2..].iter().position(|&b| b == 0).ok_or(CryptoError::BadPadding("RSA block has no 0x00 separator"))?;
        payload.extend_from_slice(&m[2 + sep + 1..]);
    }
    Ok(payload)
}

fn split_key<'a>(payload: &'a [u8], what: &'static str) -> Result<([u8; KEY_LEN], &'a [u8]), CryptoError> {
    if payload.len() < KEY_LEN {
        return Err(CryptoError::Short { what, need: KEY_LEN, got: payload.len() });
    }
    let (k, body) = payload.split_at(KEY_LEN);
    let mut key = [0u8; KEY_LEN];
    key.copy_from_slice(k);
    Ok((key, body))
}

fn decode_hex_int(s: &str) -> Result<Vec<u8>, CryptoError> {
    let s = s.trim();
    let s = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    if s.is_empty() {
        return Err(CryptoError::Hex("empty".into()));
    }
    let padded;
    let s = if s.len() % 2 == 1 {
        padded = format!("0{s}");
        padded.as_str()
    } else {
        s
    };
    hex::decode(s).map_err(|e| CryptoError::Hex(e.to_string()))
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

/// `b` must be at most 128 bytes (checked by callers).
fn left_pad_128(b: &[u8]) -> [u8; 128] {
    let mut out = [0u8; 128];
    out[128 - b.len()..].copy_from_slice(b);
    out
}

#[cfg(test)]
mod tests {
    use super::super::vectors::{bytes, list, load, text};
    use super::*;
    use serde_json::Value;

    fn key16(v: &Value, key: &str) -> [u8; 16] {
        bytes(v, key).try_into().unwrap_or_else(|_| panic!("{key} is not 16 bytes"))
    }

    fn test_keys() -> (RsaPublic, RsaPrivate) {
        let k = load("m115-test-rsa-key.json");
        let n = text(&k, "n");
        let e: u32 = text(&k, "e").parse().unwrap();
        (RsaPublic::from_hex(&n, e).unwrap(), RsaPrivate::from_hex(&n, &text(&k, "d")).unwrap())
    }

    #[test]
    fn constants_match_file() {
        let c = load("m115-constants.json");
        assert_eq!(KTS.to_vec(), bytes(&c, "xor_key_seed_kts"));
        assert_eq!(KTS.len().to_string(), text(&c, "xor_key_seed_len"));
        assert_eq!(CLIENT_KEY12.to_vec(), bytes(&c, "client_xor_key_12"));
        assert_eq!(RSA_N_115_HEX, text(&c, "rsa_n_hex"));
        assert_eq!(RSA_E.to_string(), text(&c, "rsa_e"));
        let rsa = RsaPublic::default_115();
        assert_eq!(rsa.modulus_len().to_string(), text(&c, "rsa_modulus_bytes"));
        assert_eq!((rsa.modulus_len() - PKCS1_OVERHEAD).to_string(), text(&c, "rsa_plain_chunk_max"));
        assert_eq!(derive_key4(&[0; 16]).to_vec(), bytes(&c, "derived_key4_of_all_zero_16"));
        assert_eq!(derive_key12(&[0; 16]).to_vec(), bytes(&c, "derived_key12_of_all_zero_16"));
    }

    #[test]
    fn derive_key_vectors() {
        let v = load("m115-vectors.json");
        let vs = list(&v, "derive_key_vectors");
        for t in vs {
            let k = key16(t, "key16");
            assert_eq!(derive_key4(&k).to_vec(), bytes(t, "key4"));
            assert_eq!(derive_key12(&k).to_vec(), bytes(t, "key12"));
            assert_eq!(derive_key(&k, 4).unwrap(), bytes(t, "key4"));
            assert_eq!(derive_key(&k, 12).unwrap(), bytes(t, "key12"));
        }
        assert_eq!(vs.len(), 4);
    }

    #[test]
    fn encode_real_key_vectors() {
        let v = load("m115-vectors.json");
        let rsa = RsaPublic::default_115();
        let vs = list(&v, "encode_real_key_deterministic_pad");
        for t in vs {
            let name = text(t, "name");
            let plain = bytes(t, "plaintext_hex");
            assert_eq!(plain.len().to_string(), text(t, "plaintext_len"), "{name}");
            let k = key16(t, "client_key16");
            assert_eq!(encode_payload(&plain, k), bytes(t, "pre_rsa_payload_hex"), "{name}");
            let enc = encode_with_padding(&plain, k, &rsa, Pkcs1Fill::Deterministic);
            assert_eq!(enc, text(t, "encoded_base64"), "{name}");
            let blocks = B64.decode(&enc).unwrap().len() / 128;
            assert_eq!(blocks.to_string(), text(t, "rsa_blocks"), "{name}");
            // Random padding: same length, different bytes.
            let rnd = encode(&plain, k, &rsa);
            assert_eq!(rnd.len(), enc.len(), "{name}");
        }
        assert_eq!(vs.len(), 18);
    }

    #[test]
    fn encode_test_key_vectors_and_server_decode() {
        let v = load("m115-vectors.json");
        let (public, private) = test_keys();
        let vs = list(&v, "encode_test_key_deterministic_pad_server_can_decrypt");
        for t in vs {
            let name = text(t, "name");
            let plain = bytes(t, "plaintext_hex");
            let k = key16(t, "client_key16");
            assert_eq!(encode_payload(&plain, k), bytes(t, "pre_rsa_payload_hex"), "{name}");
            let enc = encode_with_padding(&plain, k, &public, Pkcs1Fill::Deterministic);
            assert_eq!(enc, text(t, "encoded_base64"), "{name}");
            assert_eq!(server_decode_request(&enc, &private).unwrap(), (k, plain.clone()), "{name}");
            // Random padding also round-trips through the server.
            let rnd = encode(&plain, k, &public);
            assert_eq!(server_decode_request(&rnd, &private).unwrap(), (k, plain), "{name}");
        }
        assert_eq!(vs.len(), 9);
    }

    #[test]
    fn decode_test_key_vectors() {
        let v = load("m115-vectors.json");
        let (public, private) = test_keys();
        let vs = list(&v, "decode_test_key_server_to_client");
        for t in vs {
            let name = text(t, "name");
            let plain = bytes(t, "plaintext_hex");
            let k = key16(t, "client_key16");
            let s = key16(t, "server_key16");
            let data = text(t, "encoded_base64");
            assert_eq!(decode_with(&data, k, &public).unwrap(), plain, "{name}");
            assert_eq!(server_response_payload(&plain, k, s), bytes(t, "server_payload_hex"), "{name}");
            assert_eq!(server_encode_response(&plain, k, s, &private), data, "{name}");
        }
        assert_eq!(vs.len(), 9);
    }

    #[test]
    fn xor_aligned_is_an_involution() {
        let key = derive_key12(&random_key16());
        for len in 0..40 {
            let orig: Vec<u8> = (0..len as u8).collect();
            let mut d = orig.clone();
            xor_aligned(&mut d, &key);
            xor_aligned(&mut d, &key);
            assert_eq!(d, orig);
        }
    }

    #[test]
    fn garbage_is_rejected() {
        let k = [0u8; 16];
        let (public, private) = test_keys();
        assert!(matches!(decode("not base64!!", k), Err(CryptoError::Base64(_))));
        assert!(matches!(decode("", k), Err(CryptoError::BadLength(_))));
        assert!(matches!(decode("AAAA", k), Err(CryptoError::BadLength(_))));
        // 128 bytes of 0xff: above the modulus.
        let ff = B64.encode([0xffu8; 128]);
        assert!(decode_with(&ff, k, &public).is_err());
        // Small values decrypt to blocks without valid padding.
        let mut small = [0u8; 128];
        small[127] = 2;
        assert!(matches!(decode(&B64.encode(small), k), Err(CryptoError::BadPadding(_))));
        assert!(server_decode_request(&B64.encode(small), &private).is_err());
        // A valid RSA block carrying fewer than 16 payload bytes.
        let mut block = vec![0xffu8; 128];
        block[0] = 0;
        block[1] = 1;
        block[124] = 0;
        let c = private.0.apply(&block).unwrap();
        assert!(matches!(decode_with(&B64.encode(&c), k, &public), Err(CryptoError::Short { .. })));
        assert!(decode_payload(&[1, 2, 3], k).is_err());
        // Bad keys.
        assert!(RsaPublic::from_hex_modulus("zz").is_err());
        assert!(RsaPublic::from_hex_modulus("").is_err());
        assert!(RsaPublic::from_hex_modulus("1234").is_err());
        assert!(RsaPublic::from_hex_modulus(&"ab".repeat(129)).is_err());
        assert!(RsaPublic::from_hex_modulus(&format!("{}0", &RSA_N_115_HEX[..255])).is_err());
        assert!(derive_key(&[0; 3], 4).is_err());
        assert!(derive_key(&[0; 16], 5).is_err());
    }
}
