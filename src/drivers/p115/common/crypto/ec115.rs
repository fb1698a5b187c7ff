//! ec115 (reference §5.4): the `k_ec` query token and the AES-128-CBC bodies of
//! `uplb.115.com/4.0/initupload.php`.
//!
//! Two ways to get an [`EcSession`] (reference §0.5):
//! - Option A, [`EcSession::fixed`]: p115cipher's published client key with its precomputed
//!   AES key/IV (no ECDH at run time).
//! - Option B, [`ecdh_random`] / [`ecdh_with_scalar`]: real ECDH on P-224 against a
//!   configurable [`ServerPublicKey`] (115's by default). A fake server holding a test scalar
//!   derives the same session with [`server_session`].

use aes::cipher::{generic_array::GenericArray, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use p224::elliptic_curve::sec1::ToEncodedPoint;
use rand::RngCore;

use super::m115::hex_array;
use super::CryptoError;

type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;
type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;

/// 115's P-224 public key, X || Y.
pub const SERVER_PUBKEY_115_XY: [u8; 56] = hex_array(
    "57a29257cd2320e5d6d143322fa4bb8a3cf9d3cc623ef5edac62b7678a89c91a\
     83ba800d6129f522d034c895dd2465243addc250953beeba",
);

/// Salt prepended to the CRC32 of `k_ec` and of the response tail.
pub const CRC_SALT: &[u8] = b"^j>WD3Kr?J2gLFjD4W2y@";

/// p115cipher's fixed client public key (30-byte `k_ec` encoding).
pub const FIXED_CLIENT_PUB30: [u8; 30] = hex_array("1d030e80a178dceececda377de128d8ed9ddcf55ae61ed46ea121a1cfc81");
/// AES key belonging to [`FIXED_CLIENT_PUB30`].
pub const FIXED_AES_KEY: [u8; 16] = hex_array("fb1a19d652f5aaf7bc651d0f69bf422f");
/// AES IV belonging to [`FIXED_CLIENT_PUB30`].
pub const FIXED_AES_IV: [u8; 16] = hex_array("69bf422f49960550a0ad44ec3446cb4c");

/// Value of `k_ec` bytes 16..20 in every known client (p115cipher, 115driver, newer elevengo).
pub const K_EC_DEFAULT_USER_FIELD: u32 = 115;
/// Value of `k_ec` bytes 40..44 in every known client except old elevengo (a counter there).
pub const K_EC_DEFAULT_COUNTER: u32 = 1;

/// Most bytes one response LZ4 frame decompresses to (the reference says 8192; we allow more).
const MAX_FRAME_OUTPUT: usize = 64 * 1024;
/// Slice size of the fake-server response encoder.
#[cfg(test)]
const RESPONSE_FRAME_INPUT: usize = 8192;
const TAIL_LEN: usize = 12;
const BLOCK: usize = 16;

/// A client public key (30-byte encoding) with the AES key and IV derived for it.
#[derive(Clone, PartialEq, Eq)]
pub struct EcSession {
    pub client_pub30: [u8; 30],
    pub aes_key: [u8; 16],
    pub aes_iv: [u8; 16],
}

impl std::fmt::Debug for EcSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcSession").field("client_pub30", &hex::encode(self.client_pub30)).finish_non_exhaustive()
    }
}

impl EcSession {
    /// Option A: p115cipher's fixed key triple.
    pub fn fixed() -> Self {
        Self { client_pub30: FIXED_CLIENT_PUB30, aes_key: FIXED_AES_KEY, aes_iv: FIXED_AES_IV }
    }

    /// From a client public key and the 28-byte shared secret (x coordinate):
    /// `key = secret[0..16]`, `iv = secret[12..28]`.
    pub fn from_shared_secret(client_pub30: [u8; 30], secret: &[u8; 28]) -> Self {
        let mut aes_key = [0u8; 16];
        let mut aes_iv = [0u8; 16];
        aes_key.copy_from_slice(&secret[..16]);
        aes_iv.copy_from_slice(&secret[12..]);
        Self { client_pub30, aes_key, aes_iv }
    }

    /// The `k_ec` query value for this session, with random masks and the usual fields.
    pub fn k_ec(&self, timestamp: u32) -> String {
        let mut r = [0u8; 2];
        rand::rngs::OsRng.fill_bytes(&mut r);
        encode_k_ec(&KEcToken::new(self.client_pub30, timestamp), r[0], r[1])
    }

    /// Encrypts a urlencoded request form (PKCS#7, as 115driver does).
    pub fn encrypt_request(&self, form: &[u8]) -> Vec<u8> {
        encrypt_body(&self.aes_key, &self.aes_iv, form, BodyPadding::Pkcs7)
    }

    /// Decrypts an initupload response body to its JSON bytes.
    pub fn decrypt_response(&self, body: &[u8]) -> Result<Vec<u8>, CryptoError> {
        decrypt_response(&self.aes_key, &self.aes_iv, body)
    }
}

/// The P-224 public key of the server side of the ECDH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerPublicKey(p224::PublicKey);

impl ServerPublicKey {
    /// 115's key, [`SERVER_PUBKEY_115_XY`].
    pub fn default_115() -> Self {
        match Self::from_bytes(&SERVER_PUBKEY_115_XY) {
            Ok(k) => k,
            Err(e) => unreachable!("embedded 115 P-224 key is invalid: {e}"),
        }
    }

    /// Accepts X||Y (56 bytes), SEC1 uncompressed (57) or compressed (29) encodings.
    pub fn from_bytes(b: &[u8]) -> Result<Self, CryptoError> {
        let pk = if b.len() == 56 {
            let mut sec1 = [0u8; 57];
            sec1[0] = 0x04;
            sec1[1..].copy_from_slice(b);
            p224::PublicKey::from_sec1_bytes(&sec1)
        } else {
            p224::PublicKey::from_sec1_bytes(b)
        };
        pk.map(Self).map_err(|_| CryptoError::BadKey("not a P-224 point".into()))
    }

    /// [`from_bytes`](Self::from_bytes) on a hex string.
    pub fn from_hex(s: &str) -> Result<Self, CryptoError> {
        let b = hex::decode(s.trim()).map_err(|e| CryptoError::Hex(e.to_string()))?;
        Self::from_bytes(&b)
    }

    /// The public key of a (test) private scalar, for a fake server's configuration.
    pub fn from_private_scalar(scalar: &[u8]) -> Result<Self, CryptoError> {
        Ok(Self(secret_key(scalar)?.public_key()))
    }

    /// X || Y.
    pub fn to_xy(&self) -> [u8; 56] {
        let ep = self.0.to_encoded_point(false);
        let mut out = [0u8; 56];
        out.copy_from_slice(&ep.as_bytes()[1..]);
        out
    }
}

fn secret_key(scalar: &[u8]) -> Result<p224::SecretKey, CryptoError> {
    if scalar.is_empty() || scalar.len() > 28 {
        return Err(CryptoError::BadKey(format!("P-224 scalar of {} bytes", scalar.len())));
    }
    let mut fb = [0u8; 28];
    fb[28 - scalar.len()..].copy_from_slice(scalar);
    p224::SecretKey::from_slice(&fb).map_err(|_| CryptoError::BadKey("P-224 scalar out of range".into()))
}

/// The 30-byte `k_ec` encoding of a public key: `0x1d || 0x02+(y&1) || X`.
fn pub30(pk: &p224::PublicKey) -> [u8; 30] {
    let ep = pk.to_encoded_point(true);
    let mut out = [0u8; 30];
    out[0] = 29;
    out[1..].copy_from_slice(ep.as_bytes());
    out
}

fn x_secret(shared: &p224::ecdh::SharedSecret) -> [u8; 28] {
    let mut s = [0u8; 28];
    s.copy_from_slice(shared.raw_secret_bytes().as_slice());
    s
}

/// Option B: ECDH with a given client scalar (big-endian, at most 28 bytes).
pub fn ecdh_with_scalar(client_scalar: &[u8], server: &ServerPublicKey) -> Result<EcSession, CryptoError> {
    Ok(ecdh_with_secret(&secret_key(client_scalar)?, server))
}

/// Option B: ECDH with a fresh random client key.
pub fn ecdh_random(server: &ServerPublicKey) -> EcSession {
    ecdh_with_secret(&p224::SecretKey::random(&mut rand::rngs::OsRng), server)
}

fn ecdh_with_secret(sk: &p224::SecretKey, server: &ServerPublicKey) -> EcSession {
    let shared = p224::ecdh::diffie_hellman(sk.to_nonzero_scalar(), server.0.as_affine());
    EcSession::from_shared_secret(pub30(&sk.public_key()), &x_secret(&shared))
}

#[cfg(test)] // fake-server half (the emulator has its own)
/// Fake server, option B: the session a client with public key `client_pub30` derived
/// against the server key whose private scalar is `server_scalar`.
pub fn server_session(server_scalar: &[u8], client_pub30: &[u8]) -> Result<EcSession, CryptoError> {
    let sk = secret_key(server_scalar)?;
    let pub30: [u8; 30] = client_pub30
        .try_into()
        .map_err(|_| CryptoError::BadLength(format!("client key is {} bytes, not 30", client_pub30.len())))?;
    if pub30[0] != 29 {
        return Err(CryptoError::BadKey("client key does not start with 0x1d".into()));
    }
    let client = p224::PublicKey::from_sec1_bytes(&pub30[1..])
        .map_err(|_| CryptoError::BadKey("client key is not a P-224 point".into()))?;
    let shared = p224::ecdh::diffie_hellman(sk.to_nonzero_scalar(), client.as_affine());
    Ok(EcSession::from_shared_secret(pub30, &x_secret(&shared)))
}

/// The fields of a `k_ec` token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KEcToken {
    pub client_pub30: [u8; 30],
    /// Bytes 16..20, LE. 115 in p115cipher/115driver; old elevengo put the user id here.
    pub user_field: u32,
    /// Bytes 20..24, LE: Unix seconds (p115cipher, elevengo) or milliseconds truncated to
    /// 32 bits (115driver).
    pub timestamp: u32,
    /// Bytes 40..44, LE. 1 in every current client; old elevengo used a counter.
    pub counter: u32,
}

impl KEcToken {
    /// The usual field values: `user_field = 115`, `counter = 1`.
    pub fn new(client_pub30: [u8; 30], timestamp: u32) -> Self {
        Self { client_pub30, user_field: K_EC_DEFAULT_USER_FIELD, timestamp, counter: K_EC_DEFAULT_COUNTER }
    }
}

fn k_ec_crc(first44: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(CRC_SALT);
    h.update(first44);
    h.finalize()
}

/// The raw 48 `k_ec` bytes, masked with `r1` (bytes 0..24) and `r2` (bytes 24..44).
pub fn encode_k_ec_bytes(tok: &KEcToken, r1: u8, r2: u8) -> [u8; 48] {
    let mut buf = [0u8; 48];
    buf[0..15].copy_from_slice(&tok.client_pub30[0..15]);
    buf[16..20].copy_from_slice(&tok.user_field.to_le_bytes());
    buf[20..24].copy_from_slice(&tok.timestamp.to_le_bytes());
    buf[24..39].copy_from_slice(&tok.client_pub30[15..30]);
    buf[40..44].copy_from_slice(&tok.counter.to_le_bytes());
    for (i, b) in buf[..44].iter_mut().enumerate() {
        *b ^= if i < 24 { r1 } else { r2 };
    }
    let crc = k_ec_crc(&buf[..44]);
    buf[44..48].copy_from_slice(&crc.to_le_bytes());
    buf
}

/// The `k_ec` query value (standard base64; URL-encode it when building the query).
pub fn encode_k_ec(tok: &KEcToken, r1: u8, r2: u8) -> String {
    B64.encode(encode_k_ec_bytes(tok, r1, r2))
}

/// Parses a `k_ec` value (fake server side): checks length and CRC, unmasks the fields.
pub fn decode_k_ec(k_ec: &str) -> Result<KEcToken, CryptoError> {
    let raw = B64.decode(k_ec.trim().as_bytes()).map_err(|e| CryptoError::Base64(e.to_string()))?;
    let buf: [u8; 48] = raw
        .as_slice()
        .try_into()
        .map_err(|_| CryptoError::BadLength(format!("k_ec is {} bytes, not 48", raw.len())))?;
    let crc = u32::from_le_bytes([buf[44], buf[45], buf[46], buf[47]]);
    if crc != k_ec_crc(&buf[..44]) {
        return Err(CryptoError::Checksum("k_ec CRC32"));
    }
    let (r1, r2) = (buf[15], buf[39]);
    let mut plain = buf;
    for (i, b) in plain[..44].iter_mut().enumerate() {
        *b ^= if i < 24 { r1 } else { r2 };
    }
    let mut client_pub30 = [0u8; 30];
    client_pub30[..15].copy_from_slice(&plain[0..15]);
    client_pub30[15..].copy_from_slice(&plain[24..39]);
    let le = |i: usize| u32::from_le_bytes([plain[i], plain[i + 1], plain[i + 2], plain[i + 3]]);
    Ok(KEcToken { client_pub30, user_field: le(16), timestamp: le(20), counter: le(40) })
}

/// Request-body padding conventions (all accepted by the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyPadding {
    /// PKCS#7, always (a full block when aligned): 115driver.
    Pkcs7,
    /// Zero bytes up to a multiple of 16, none when aligned: elevengo.
    Zero,
    /// PKCS#7-style bytes only when unaligned: p115cipher.
    P115Cipher,
}

fn cbc_encrypt(key: &[u8; 16], iv: &[u8; 16], buf: &mut [u8]) {
    let mut enc = Aes128CbcEnc::new(key.into(), iv.into());
    for block in buf.chunks_exact_mut(BLOCK) {
        enc.encrypt_block_mut(GenericArray::from_mut_slice(block));
    }
}

fn cbc_decrypt(key: &[u8; 16], iv: &[u8; 16], buf: &mut [u8]) {
    let mut dec = Aes128CbcDec::new(key.into(), iv.into());
    for block in buf.chunks_exact_mut(BLOCK) {
        dec.decrypt_block_mut(GenericArray::from_mut_slice(block));
    }
}

/// AES-128-CBC of a request body with the chosen padding.
pub fn encrypt_body(key: &[u8; 16], iv: &[u8; 16], plain: &[u8], padding: BodyPadding) -> Vec<u8> {
    let rem = plain.len() % BLOCK;
    let mut buf = plain.to_vec();
    match padding {
        BodyPadding::Pkcs7 => {
            let n = BLOCK - rem;
            buf.resize(plain.len() + n, n as u8);
        }
        BodyPadding::Zero if rem != 0 => buf.resize(plain.len() + BLOCK - rem, 0),
        BodyPadding::P115Cipher if rem != 0 => {
            let n = BLOCK - rem;
            buf.resize(plain.len() + n, n as u8);
        }
        _ => {}
    }
    cbc_encrypt(key, iv, &mut buf);
    buf
}

#[cfg(test)] // fake-server half (the emulator has its own)
/// Fake server: decrypts a request body and strips any client's padding (a PKCS#7 run,
/// trailing `0x00`s, trailing `&`s), leaving the urlencoded form.
pub fn decrypt_request(key: &[u8; 16], iv: &[u8; 16], body: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if body.len() % BLOCK != 0 {
        return Err(CryptoError::BadLength(format!("request body is {} bytes, not a multiple of 16", body.len())));
    }
    let mut buf = body.to_vec();
    cbc_decrypt(key, iv, &mut buf);
    if let Some(n) = pkcs7_run(&buf) {
        buf.truncate(buf.len() - n);
    }
    while matches!(buf.last(), Some(0) | Some(b'&')) {
        buf.pop();
    }
    Ok(buf)
}

/// Length of a trailing PKCS#7 run (`n` bytes of value `n`, 1..=16), if any.
fn pkcs7_run(b: &[u8]) -> Option<usize> {
    let n = *b.last()? as usize;
    let ok = (1..=BLOCK).contains(&n) && n <= b.len() && b[b.len() - n..].iter().all(|&x| x as usize == n);
    ok.then_some(n)
}

/// Checks a 12-byte response tail and returns the plaintext length it announces:
/// `tail[8..12] = LE32(CRC32(salt || tail[0..8]))`, length `= LE32(tail[0..4] ^ tail[7])`.
pub fn parse_response_tail(tail: &[u8]) -> Result<u32, CryptoError> {
    let tail: &[u8; TAIL_LEN] =
        tail.try_into().map_err(|_| CryptoError::BadLength(format!("tail is {} bytes, not 12", tail.len())))?;
    let mut h = crc32fast::Hasher::new();
    h.update(CRC_SALT);
    h.update(&tail[..8]);
    if h.finalize() != u32::from_le_bytes([tail[8], tail[9], tail[10], tail[11]]) {
        return Err(CryptoError::Checksum("ec115 response tail CRC32"));
    }
    let r = tail[7];
    Ok(u32::from_le_bytes([tail[0] ^ r, tail[1] ^ r, tail[2] ^ r, tail[3] ^ r]))
}

/// Decrypts an initupload response: `AES-CBC(frames || padding) || 12-byte tail`, where each
/// frame is `u16 LE length || LZ4 block`.
///
/// Accepts every layout the known clients accept: trailing bytes past a multiple of 16 are
/// ignored unless they are a 12-byte tail whose CRC checks, in which case its length bounds
/// the output; frames are read until the data, a zero length, or padding (zeros or a PKCS#7
/// run) is reached.
pub fn decrypt_response(key: &[u8; 16], iv: &[u8; 16], body: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let rem = body.len() % BLOCK;
    let ct_len = body.len() - rem;
    if ct_len == 0 {
        return Err(CryptoError::Short { what: "ec115 response", need: BLOCK, got: body.len() });
    }
    let total = if rem == TAIL_LEN { parse_response_tail(&body[ct_len..]).ok().map(|n| n as usize) } else { None };
    let mut buf = body[..ct_len].to_vec();
    cbc_decrypt(key, iv, &mut buf);

    let mut out = Vec::new();
    let mut frame_out = vec![0u8; MAX_FRAME_OUTPUT];
    let mut pos = 0;
    loop {
        if total.is_some_and(|t| out.len() >= t) {
            break;
        }
        let rest = &buf[pos..];
        if rest.len() < 2 || rest.iter().all(|&b| b == 0) || pkcs7_run(rest) == Some(rest.len()) {
            break;
        }
        let n = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        if n == 0 {
            break;
        }
        let frame = rest
            .get(2..2 + n)
            .ok_or_else(|| CryptoError::BadLength(format!("LZ4 frame of {n} bytes with {} left", rest.len() - 2)))?;
        let m = lz4_flex::block::decompress_into(frame, &mut frame_out)
            .map_err(|e| CryptoError::Decompress(e.to_string()))?;
        out.extend_from_slice(&frame_out[..m]);
        pos += 2 + n;
    }
    if let Some(t) = total {
        if out.len() < t {
            return Err(CryptoError::Short { what: "ec115 response plaintext", need: t, got: out.len() });
        }
        out.truncate(t);
    }
    Ok(out)
}

#[cfg(test)]
/// One literal-only LZ4 block (a single sequence without a match; valid per the block spec).
fn lz4_literal_block(lit: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(lit.len() + 2 + lit.len() / 255);
    let l = lit.len();
    b.push((l.min(15) as u8) << 4);
    if l >= 15 {
        let mut rest = l - 15;
        while rest >= 255 {
            b.push(255);
            rest -= 255;
        }
        b.push(rest as u8);
    }
    b.extend_from_slice(lit);
    b
}

#[cfg(test)] // fake-server half (the emulator has its own)
/// Fake server: encrypts a response the way the reference's vectors were built: literal-only
/// LZ4 frames of at most 8192 bytes, zero padding, CBC, then the 12-byte tail masked with `mask`.
/// (The tail's length field is 32 bits; bodies over 4 GiB are not supported.)
pub fn encrypt_response(key: &[u8; 16], iv: &[u8; 16], plain: &[u8], mask: u8) -> Vec<u8> {
    let mut buf = Vec::with_capacity(plain.len() + plain.len() / 4096 * 40 + 48);
    let mut chunks: Vec<&[u8]> = plain.chunks(RESPONSE_FRAME_INPUT).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    for chunk in chunks {
        let block = lz4_literal_block(chunk);
        buf.extend_from_slice(&(block.len() as u16).to_le_bytes());
        buf.extend_from_slice(&block);
    }
    let rem = buf.len() % BLOCK;
    if rem != 0 {
        buf.resize(buf.len() + BLOCK - rem, 0);
    }
    cbc_encrypt(key, iv, &mut buf);
    let mut tail = [mask; TAIL_LEN];
    for (t, l) in tail.iter_mut().zip((plain.len() as u32).to_le_bytes()) {
        *t = l ^ mask;
    }
    let mut h = crc32fast::Hasher::new();
    h.update(CRC_SALT);
    h.update(&tail[..8]);
    tail[8..].copy_from_slice(&h.finalize().to_le_bytes());
    buf.extend_from_slice(&tail);
    buf
}

#[cfg(test)]
mod tests {
    use super::super::vectors::{bytes, list, load, text};
    use super::*;
    use serde_json::Value;
    use sha1::{Digest as _, Sha1};

    fn arr<const N: usize>(v: &Value, key: &str) -> [u8; N] {
        bytes(v, key).try_into().unwrap_or_else(|_| panic!("{key} is not {N} bytes"))
    }

    fn num<T: std::str::FromStr>(v: &Value, key: &str) -> T {
        text(v, key).parse().unwrap_or_else(|_| panic!("{key} is not a number"))
    }

    #[test]
    fn constants_match_file() {
        let c = load("ec115-constants.json");
        assert_eq!(SERVER_PUBKEY_115_XY.to_vec(), bytes(&c, "server_pubkey_xy_56"));
        let k = ServerPublicKey::default_115();
        assert_eq!(k.to_xy(), SERVER_PUBKEY_115_XY);
        assert_eq!(ServerPublicKey::from_hex(&text(&c, "server_pubkey_uncompressed_57")).unwrap(), k);
        assert_eq!(CRC_SALT, text(&c, "crc_salt_ascii").as_bytes());
        assert_eq!(CRC_SALT.to_vec(), bytes(&c, "crc_salt_hex"));
        assert_eq!(super::super::sign::TOKEN_SALT, text(&c, "token_md5_salt_ascii"));
        assert_eq!(FIXED_CLIENT_PUB30, arr(&c, "p115cipher_fixed_client_pubkey_30"));
        assert_eq!(FIXED_AES_KEY, arr(&c, "p115cipher_fixed_aes_key"));
        assert_eq!(FIXED_AES_IV, arr(&c, "p115cipher_fixed_aes_iv"));
    }

    #[test]
    fn ecdh_vectors() {
        let v = load("ec115-vectors.json");
        let server = ServerPublicKey::default_115();
        let vs = list(&v, "ecdh_vectors");
        for t in vs {
            let s = ecdh_with_scalar(&bytes(t, "client_private_scalar_hex"), &server).unwrap();
            assert_eq!(s.client_pub30, arr(t, "client_pubkey_30"));
            assert_eq!(s.aes_key, arr(t, "aes_key"));
            assert_eq!(s.aes_iv, arr(t, "aes_iv"));
            let secret: [u8; 28] = arr(t, "shared_secret_x_28");
            assert_eq!(EcSession::from_shared_secret(s.client_pub30, &secret), s);
        }
        assert_eq!(vs.len(), 2);
    }

    #[test]
    fn k_ec_token_vectors() {
        let v = load("ec115-vectors.json");
        let vs = list(&v, "k_ec_token_vectors");
        for t in vs {
            let tok = KEcToken::new(arr(t, "client_pubkey_30"), num(t, "timestamp_u32"));
            let (r1, r2) = (num(t, "r1"), num(t, "r2"));
            assert_eq!(encode_k_ec_bytes(&tok, r1, r2).to_vec(), bytes(t, "token_hex"));
            let b64 = text(t, "token_base64");
            assert_eq!(encode_k_ec(&tok, r1, r2), b64);
            assert_eq!(decode_k_ec(&b64).unwrap(), tok);
        }
        assert_eq!(vs.len(), 4);
    }

    #[test]
    fn request_body_vectors() {
        let v = load("ec115-vectors.json");
        let ecdh = list(&v, "ecdh_vectors");
        let vs = list(&v, "request_body_vectors");
        for t in vs {
            let (key, iv): ([u8; 16], [u8; 16]) = (arr(t, "aes_key"), arr(t, "aes_iv"));
            let source = text(t, "key_source");
            let expected_key: [u8; 16] = match source.strip_prefix("ecdh_vector_") {
                Some(i) => arr(&ecdh[i.parse::<usize>().unwrap()], "aes_key"),
                None => {
                    assert_eq!(source, "p115cipher_fixed");
                    FIXED_AES_KEY
                }
            };
            assert_eq!(key, expected_key, "{source}");
            let plain = text(t, "plaintext_ascii");
            for (field, padding) in [
                ("ciphertext_hex_pkcs7", BodyPadding::Pkcs7),
                ("ciphertext_hex_zero", BodyPadding::Zero),
                ("ciphertext_hex_p115cipher", BodyPadding::P115Cipher),
            ] {
                let ct = bytes(t, field);
                assert_eq!(encrypt_body(&key, &iv, plain.as_bytes(), padding), ct, "{field} {plain:?}");
                assert_eq!(decrypt_request(&key, &iv, &ct).unwrap(), plain.as_bytes(), "{field}");
            }
        }
        assert_eq!(vs.len(), 8);
        // p115client's trailing '&' is stripped too.
        let s = EcSession::fixed();
        let ct = encrypt_body(&s.aes_key, &s.aes_iv, b"a=1&b=2&", BodyPadding::Zero);
        assert_eq!(decrypt_request(&s.aes_key, &s.aes_iv, &ct).unwrap(), b"a=1&b=2");
    }

    #[test]
    fn response_body_vectors() {
        let v = load("ec115-vectors.json");
        let vs = list(&v, "response_body_vectors");
        for t in vs {
            let (key, iv): ([u8; 16], [u8; 16]) = (arr(t, "aes_key"), arr(t, "aes_iv"));
            let body = bytes(t, "response_hex");
            let plain = decrypt_response(&key, &iv, &body).unwrap();
            assert_eq!(plain.len(), num::<usize>(t, "plaintext_len"));
            assert_eq!(hex::encode(Sha1::digest(&plain)), text(t, "plaintext_sha1"));
            if let Some(ascii) = t["plaintext_ascii"].as_str() {
                assert_eq!(plain, ascii.as_bytes());
            }
            let tail_len = parse_response_tail(&body[body.len() - TAIL_LEN..]).unwrap();
            assert_eq!(tail_len as usize, plain.len());
            assert_eq!(encrypt_response(&key, &iv, &plain, num(t, "tail_xor_byte")), body);
            // 115driver/p115cipher view: no tail at all.
            let no_tail = &body[..body.len() - TAIL_LEN];
            assert_eq!(decrypt_response(&key, &iv, no_tail).unwrap(), plain);
        }
        assert_eq!(vs.len(), 3);
    }

    #[test]
    fn response_with_lz4_matches_and_pkcs7() {
        // "abcabcabcabcabcabcabcabc" as an LZ4 block with a back-reference:
        // token 0x3F: 3 literals "abc", match length 15+ext; offset 3.
        let mut block = vec![0x3f, b'a', b'b', b'c', 0x03, 0x00, 0x02];
        block.extend_from_slice(&[0x10, b'!']); // last sequence: 1 literal
        let expected: Vec<u8> = b"abc".repeat(8).into_iter().chain(*b"!").collect();
        let s = EcSession::fixed();
        let mut buf = (block.len() as u16).to_le_bytes().to_vec();
        buf.extend_from_slice(&block);
        let pad = BLOCK - buf.len() % BLOCK;
        buf.resize(buf.len() + pad, pad as u8);
        cbc_encrypt(&s.aes_key, &s.aes_iv, &mut buf);
        assert_eq!(s.decrypt_response(&buf).unwrap(), expected);
    }

    #[test]
    fn option_b_round_trip_with_test_server_key() {
        let server_scalar = Sha1::digest(b"emu115 test ec115 key").to_vec();
        let server = ServerPublicKey::from_private_scalar(&server_scalar).unwrap();
        assert_eq!(ServerPublicKey::from_bytes(&server.to_xy()).unwrap(), server);
        for _ in 0..4 {
            let client = ecdh_random(&server);
            let token = client.k_ec(1_700_000_000);
            let parsed = decode_k_ec(&token).unwrap();
            assert_eq!(parsed, KEcToken::new(client.client_pub30, 1_700_000_000));
            let srv = server_session(&server_scalar, &parsed.client_pub30).unwrap();
            assert_eq!(srv, client);
            let form = b"appid=0&filename=a.txt";
            let ct = client.encrypt_request(form);
            assert_eq!(decrypt_request(&srv.aes_key, &srv.aes_iv, &ct).unwrap(), form);
            let resp = encrypt_response(&srv.aes_key, &srv.aes_iv, b"{\"status\":2}", 7);
            assert_eq!(client.decrypt_response(&resp).unwrap(), b"{\"status\":2}");
        }
        let empty = encrypt_response(&FIXED_AES_KEY, &FIXED_AES_IV, b"", 0);
        assert_eq!(EcSession::fixed().decrypt_response(&empty).unwrap(), b"");
    }

    #[test]
    fn garbage_is_rejected() {
        let s = EcSession::fixed();
        assert!(s.decrypt_response(&[]).is_err());
        assert!(s.decrypt_response(&[1, 2, 3]).is_err());
        assert!(s.decrypt_response(&[0x41; 16]).is_err());
        assert!(s.decrypt_response(&[0x41; 16 * 5 + 12]).is_err());
        // Valid body, tail claims more bytes than the frames hold.
        let mut body = encrypt_response(&s.aes_key, &s.aes_iv, b"{}", 0);
        let n = body.len();
        body[n - 12..].copy_from_slice(&{
            let mut t = [0u8; 12];
            t[0] = 99;
            let mut h = crc32fast::Hasher::new();
            h.update(CRC_SALT);
            h.update(&t[..8]);
            t[8..].copy_from_slice(&h.finalize().to_le_bytes());
            t
        });
        assert!(matches!(s.decrypt_response(&body), Err(CryptoError::Short { .. })));
        assert!(parse_response_tail(&[0; 12]).is_err());
        assert!(parse_response_tail(&[0; 5]).is_err());
        assert!(decrypt_request(&s.aes_key, &s.aes_iv, &[0; 15]).is_err());
        assert!(matches!(decode_k_ec("@@@"), Err(CryptoError::Base64(_))));
        assert!(matches!(decode_k_ec("AAAA"), Err(CryptoError::BadLength(_))));
        let mut tok = encode_k_ec_bytes(&KEcToken::new(FIXED_CLIENT_PUB30, 1), 3, 4);
        tok[5] ^= 1;
        assert!(matches!(decode_k_ec(&B64.encode(tok)), Err(CryptoError::Checksum(_))));
        assert!(ServerPublicKey::from_bytes(&[0; 56]).is_err());
        assert!(ServerPublicKey::from_hex("zz").is_err());
        assert!(ServerPublicKey::from_private_scalar(&[]).is_err());
        assert!(ServerPublicKey::from_private_scalar(&[0; 28]).is_err());
        assert!(ServerPublicKey::from_private_scalar(&[0xff; 28]).is_err());
        assert!(ecdh_with_scalar(&[0; 29], &ServerPublicKey::default_115()).is_err());
        assert!(server_session(&[1], &[0; 30]).is_err());
        assert!(server_session(&[1], &FIXED_CLIENT_PUB30[..29]).is_err());
        let mut bad_pub = FIXED_CLIENT_PUB30;
        bad_pub[0] = 0x1c;
        assert!(server_session(&[1], &bad_pub).is_err());
    }
}
