//! ec115, SERVER side (§5.4): k_ec token decoding, P-224 ECDH (test server scalar) or the
//! published fixed p115cipher triple, AES-128-CBC request bodies, and the response encoder
//! (literal-only LZ4 frames, zero padding, 12-byte tail).

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine as _;
use p224::elliptic_curve::sec1::ToEncodedPoint;

use crate::util::crc32;

pub const CRC_SALT: &[u8] = b"^j>WD3Kr?J2gLFjD4W2y@";
pub const TOKEN_MD5_SALT: &str = "Qclm8MGWUv59TnrR0XPg";
/// 115's real server public key X||Y (56 bytes). Its private scalar is not known.
pub const REAL_SERVER_PUB_XY_HEX: &str =
    "57a29257cd2320e5d6d143322fa4bb8a3cf9d3cc623ef5edac62b7678a89c91a83ba800d6129f522d034c895dd2465243addc250953beeba";
pub const FIXED_CLIENT_PUB30_HEX: &str = "1d030e80a178dceececda377de128d8ed9ddcf55ae61ed46ea121a1cfc81";
pub const FIXED_AES_KEY_HEX: &str = "fb1a19d652f5aaf7bc651d0f69bf422f";
pub const FIXED_AES_IV_HEX: &str = "69bf422f49960550a0ad44ec3446cb4c";

type Enc = cbc::Encryptor<aes::Aes128>;
type Dec = cbc::Decryptor<aes::Aes128>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KEc {
    pub pub30: [u8; 30],
    pub timestamp: u32,
    pub r1: u8,
    pub r2: u8,
}

/// Decode and verify the 48-byte `k_ec` token (standard base64).
pub fn decode_k_ec(b64: &str) -> Result<KEc, String> {
    let mut buf =
        base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|e| format!("k_ec base64: {e}"))?;
    if buf.len() != 48 {
        return Err(format!("k_ec length {} != 48", buf.len()));
    }
    let crc = u32::from_le_bytes(buf[44..48].try_into().unwrap());
    let mut salted = CRC_SALT.to_vec();
    salted.extend_from_slice(&buf[..44]);
    if crc32(&salted) != crc {
        return Err("k_ec crc mismatch".into());
    }
    let (r1, r2) = (buf[15], buf[39]);
    for b in &mut buf[0..24] {
        *b ^= r1;
    }
    for b in &mut buf[24..44] {
        *b ^= r2;
    }
    if buf[15] != 0
        || buf[16] != 0x73
        || buf[17..20] != [0, 0, 0]
        || buf[39] != 0
        || buf[40] != 1
        || buf[41..44] != [0, 0, 0]
    {
        return Err("k_ec fixed bytes mismatch".into());
    }
    let mut pub30 = [0u8; 30];
    pub30[..15].copy_from_slice(&buf[0..15]);
    pub30[15..].copy_from_slice(&buf[24..39]);
    Ok(KEc { pub30, timestamp: u32::from_le_bytes(buf[20..24].try_into().unwrap()), r1, r2 })
}

/// Encoder (used by tests and by anyone who wants to build a k_ec token).
pub fn encode_k_ec(pub30: &[u8; 30], ts: u32, r1: u8, r2: u8) -> String {
    let mut buf = [0u8; 48];
    buf[..15].copy_from_slice(&pub30[..15]);
    buf[16] = 0x73;
    buf[20..24].copy_from_slice(&ts.to_le_bytes());
    buf[24..39].copy_from_slice(&pub30[15..]);
    buf[40] = 1;
    for b in &mut buf[0..24] {
        *b ^= r1;
    }
    for b in &mut buf[24..44] {
        *b ^= r2;
    }
    let mut salted = CRC_SALT.to_vec();
    salted.extend_from_slice(&buf[..44]);
    let crc = crc32(&salted);
    buf[44..48].copy_from_slice(&crc.to_le_bytes());
    base64::engine::general_purpose::STANDARD.encode(buf)
}

/// The emulator's P-224 server key (Option B of §0.5).
#[derive(Clone)]
pub struct ServerKey {
    secret: p224::SecretKey,
}

impl ServerKey {
    pub fn generate() -> ServerKey {
        ServerKey { secret: p224::SecretKey::random(&mut rand::rngs::OsRng) }
    }
    pub fn from_scalar_hex(h: &str) -> Result<ServerKey, String> {
        let b = hex::decode(h).map_err(|e| e.to_string())?;
        Ok(ServerKey { secret: p224::SecretKey::from_slice(&b).map_err(|e| e.to_string())? })
    }
    pub fn scalar_hex(&self) -> String {
        hex::encode(self.secret.to_bytes())
    }
    /// X||Y, 56 bytes, lowercase hex (same layout as `server_pubkey_xy_56`).
    pub fn public_xy_hex(&self) -> String {
        let p = self.secret.public_key().to_encoded_point(false);
        hex::encode(&p.as_bytes()[1..])
    }
    /// Shared AES key/iv for a client pub30 (`0x1d, 0x02|0x03, X(28)`).
    pub fn derive(&self, pub30: &[u8; 30]) -> Result<([u8; 16], [u8; 16]), String> {
        let secret = shared_secret_x(&self.secret, pub30)?;
        Ok(key_iv_from_secret(&secret))
    }
}

pub fn shared_secret_x(sk: &p224::SecretKey, pub30: &[u8; 30]) -> Result<[u8; 28], String> {
    if pub30[0] != 0x1d || (pub30[1] != 2 && pub30[1] != 3) {
        return Err("pub30 header".into());
    }
    let pk = p224::PublicKey::from_sec1_bytes(&pub30[1..]).map_err(|_| "client point not on P-224".to_string())?;
    let ss = p224::ecdh::diffie_hellman(sk.to_nonzero_scalar(), pk.as_affine());
    let mut out = [0u8; 28];
    out.copy_from_slice(ss.raw_secret_bytes());
    Ok(out)
}

pub fn key_iv_from_secret(secret: &[u8; 28]) -> ([u8; 16], [u8; 16]) {
    let mut k = [0u8; 16];
    let mut iv = [0u8; 16];
    k.copy_from_slice(&secret[0..16]);
    iv.copy_from_slice(&secret[12..28]);
    (k, iv)
}

pub fn fixed_key_iv() -> ([u8; 16], [u8; 16]) {
    let mut k = [0u8; 16];
    let mut iv = [0u8; 16];
    k.copy_from_slice(&hex::decode(FIXED_AES_KEY_HEX).unwrap());
    iv.copy_from_slice(&hex::decode(FIXED_AES_IV_HEX).unwrap());
    (k, iv)
}

pub fn fixed_pub30() -> [u8; 30] {
    hex::decode(FIXED_CLIENT_PUB30_HEX).unwrap().try_into().unwrap()
}

pub fn cbc_encrypt(key: &[u8; 16], iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
    assert!(data.len() % 16 == 0);
    let mut buf = data.to_vec();
    let n = buf.len();
    Enc::new(key.into(), iv.into()).encrypt_padded_mut::<NoPadding>(&mut buf, n).unwrap();
    buf
}

pub fn cbc_decrypt(key: &[u8; 16], iv: &[u8; 16], data: &[u8]) -> Result<Vec<u8>, String> {
    if data.len() % 16 != 0 {
        return Err(format!("ciphertext length {} not a multiple of 16", data.len()));
    }
    let mut buf = data.to_vec();
    Dec::new(key.into(), iv.into()).decrypt_padded_mut::<NoPadding>(&mut buf).map_err(|e| e.to_string())?;
    Ok(buf)
}

/// Accept all three client padding conventions (§5.4 "Fake server"): a valid PKCS#7 run,
/// trailing zero bytes, and a trailing `&`.
pub fn strip_request_padding(mut v: Vec<u8>) -> Vec<u8> {
    if let Some(&last) = v.last() {
        let n = last as usize;
        if (1..=16).contains(&n) && n <= v.len() && v[v.len() - n..].iter().all(|&b| b as usize == n) {
            v.truncate(v.len() - n);
        }
    }
    while v.last() == Some(&0) {
        v.pop();
    }
    while v.last() == Some(&b'&') {
        v.pop();
    }
    v
}

/// Decrypt a request body and strip padding.
pub fn decrypt_request(key: &[u8; 16], iv: &[u8; 16], body: &[u8]) -> Result<Vec<u8>, String> {
    Ok(strip_request_padding(cbc_decrypt(key, iv, body)?))
}

/// LZ4 *block* with a single literal-only sequence.
pub fn lz4_literal_block(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    let n = data.len();
    if n < 15 {
        out.push((n as u8) << 4);
    } else {
        out.push(0xF0);
        let mut rem = n - 15;
        while rem >= 255 {
            out.push(255);
            rem -= 255;
        }
        out.push(rem as u8);
    }
    out.extend_from_slice(data);
    out
}

/// Response body: `AES-CBC(frames || zero_pad) || tail(12)`, tail byte `r`.
pub fn encode_response(key: &[u8; 16], iv: &[u8; 16], plain: &[u8], r: u8) -> Vec<u8> {
    let mut frames = Vec::new();
    for chunk in plain.chunks(8192) {
        let blk = lz4_literal_block(chunk);
        frames.extend_from_slice(&(blk.len() as u16).to_le_bytes());
        frames.extend_from_slice(&blk);
    }
    while frames.len() % 16 != 0 {
        frames.push(0);
    }
    let mut out = cbc_encrypt(key, iv, &frames);
    let mut tail = [0u8; 12];
    let l = (plain.len() as u32).to_le_bytes();
    for i in 0..4 {
        tail[i] = l[i] ^ r;
        tail[4 + i] = r;
    }
    let mut salted = CRC_SALT.to_vec();
    salted.extend_from_slice(&tail[..8]);
    tail[8..12].copy_from_slice(&crc32(&salted).to_le_bytes());
    out.extend_from_slice(&tail);
    out
}

/// §5.3 `sig = UPPER(SHA1(userkey + lower(SHA1(userid + fileid + target + "0")) + "000000"))`
pub fn upload_sig(userid: &str, userkey: &str, fileid: &str, target: &str) -> String {
    let inner = crate::util::sha1_lower(format!("{userid}{fileid}{target}0").as_bytes());
    crate::util::sha1_upper(format!("{userkey}{inner}000000").as_bytes())
}

/// §5.3 token.
#[allow(clippy::too_many_arguments)]
pub fn upload_token(
    fileid: &str,
    filesize: &str,
    sign_key: &str,
    sign_val: &str,
    userid: &str,
    t: &str,
    appversion: &str,
) -> String {
    let uid_md5 = crate::util::md5_lower(userid.as_bytes());
    crate::util::md5_lower(
        format!("{TOKEN_MD5_SALT}{fileid}{filesize}{sign_key}{sign_val}{userid}{t}{uid_md5}{appversion}").as_bytes(),
    )
}
