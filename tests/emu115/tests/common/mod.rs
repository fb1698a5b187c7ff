//! Client-side procedures written from the reference (NOT from emu115's server code), used
//! to check the emulator: m115 client encode/decode (§3.2), ec115 client k_ec / AES / response
//! decode (§5.4), OSS V1 signing (§5.5), plus a JSON shape comparator.
#![allow(dead_code)]

use base64::Engine as _;
use num_bigint::BigUint;
use serde_json::Value;
use sha1::{Digest, Sha1};

pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub fn vectors(name: &str) -> Value {
    let p = format!("{}/../vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))).unwrap()
}

pub fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

// ------------------------------------------------------------------ m115 client side

fn kts() -> Vec<u8> {
    h(vectors("m115-constants.json")["xor_key_seed_kts"].as_str().unwrap())
}

pub fn derive(seed: &[u8], size: usize) -> Vec<u8> {
    let k = kts();
    (0..size).map(|i| seed[i].wrapping_add(k[size * i]) ^ k[size * (size - 1 - i)]).collect()
}

pub fn xor_t(d: &mut [u8], key: &[u8]) {
    let m = d.len() % 4;
    for i in 0..m {
        d[i] ^= key[i];
    }
    for i in m..d.len() {
        d[i] ^= key[(i - m) % key.len()];
    }
}

pub fn test_n() -> BigUint {
    BigUint::parse_bytes(vectors("m115-test-rsa-key.json")["n"].as_str().unwrap().as_bytes(), 16).unwrap()
}

pub fn client_key12() -> Vec<u8> {
    h(vectors("m115-constants.json")["client_xor_key_12"].as_str().unwrap())
}

/// Client encode with random non-zero PKCS#1 type-2 padding (115driver style).
pub fn m115_encode(plain: &[u8], k: &[u8; 16]) -> String {
    use rand::Rng;
    let n = test_n();
    let e = BigUint::from(65537u32);
    let mut t = plain.to_vec();
    xor_t(&mut t, &derive(k, 4));
    t.reverse();
    xor_t(&mut t, &client_key12());
    let mut payload = k.to_vec();
    payload.extend_from_slice(&t);
    let mut out = Vec::new();
    let mut rng = rand::thread_rng();
    for c in payload.chunks(117) {
        let mut m = vec![0u8, 2];
        for _ in 0..(128 - 3 - c.len()) {
            m.push(rng.gen_range(1..=255));
        }
        m.push(0);
        m.extend_from_slice(c);
        let v = BigUint::from_bytes_be(&m).modpow(&e, &n).to_bytes_be();
        let mut blk = vec![0u8; 128 - v.len()];
        blk.extend_from_slice(&v);
        out.extend_from_slice(&blk);
    }
    B64.encode(out)
}

/// Client decode of a server response (§3.2 "Server → client").
pub fn m115_decode(data: &str, k: &[u8; 16]) -> Vec<u8> {
    let n = test_n();
    let e = BigUint::from(65537u32);
    let raw = B64.decode(data).unwrap();
    assert_eq!(raw.len() % 128, 0);
    let mut payload = Vec::new();
    for b in raw.chunks(128) {
        let m = BigUint::from_bytes_be(b).modpow(&e, &n).to_bytes_be();
        assert!(m[0] == 1 || m[0] == 2, "block type {}", m[0]);
        let z = m[1..].iter().position(|&x| x == 0).unwrap() + 1;
        payload.extend_from_slice(&m[z + 1..]);
    }
    let s = &payload[..16];
    let mut t = payload[16..].to_vec();
    xor_t(&mut t, &derive(s, 12));
    t.reverse();
    xor_t(&mut t, &derive(k, 4));
    t
}

// ------------------------------------------------------------------ ec115 client side

pub const CRC_SALT: &[u8] = b"^j>WD3Kr?J2gLFjD4W2y@";

pub fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for i in 0..256u32 {
        let mut c = i;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB88320 ^ (c >> 1) } else { c >> 1 };
        }
        table[i as usize] = c;
    }
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc = table[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

pub fn k_ec(pub30: &[u8], ts: u32, r1: u8, r2: u8) -> String {
    let mut buf = vec![0u8; 48];
    buf[0..15].copy_from_slice(&pub30[0..15]);
    buf[15] = 0;
    buf[16] = 0x73;
    buf[20..24].copy_from_slice(&ts.to_le_bytes());
    buf[24..39].copy_from_slice(&pub30[15..30]);
    buf[39] = 0;
    buf[40] = 1;
    for b in &mut buf[0..24] {
        *b ^= r1;
    }
    for b in &mut buf[24..44] {
        *b ^= r2;
    }
    let mut s = CRC_SALT.to_vec();
    s.extend_from_slice(&buf[..44]);
    let c = crc32(&s);
    buf[44..48].copy_from_slice(&c.to_le_bytes());
    B64.encode(buf)
}

#[derive(Clone, Copy)]
pub enum Pad {
    Pkcs7,
    Zero,
    P115cipher,
}

pub fn aes_encrypt(key: &[u8], iv: &[u8], data: &[u8], pad: Pad) -> Vec<u8> {
    use aes::cipher::{block_padding::NoPadding, BlockEncryptMut, KeyIvInit};
    let mut v = data.to_vec();
    match pad {
        Pad::Pkcs7 => {
            let n = 16 - v.len() % 16;
            v.extend(std::iter::repeat_n(n as u8, n));
        }
        Pad::Zero => {
            while v.len() % 16 != 0 {
                v.push(0);
            }
        }
        Pad::P115cipher => {
            if v.len() % 16 != 0 {
                let n = 16 - v.len() % 16;
                v.extend(std::iter::repeat_n(n as u8, n));
            }
        }
    }
    let l = v.len();
    cbc::Encryptor::<aes::Aes128>::new(key.into(), iv.into()).encrypt_padded_mut::<NoPadding>(&mut v, l).unwrap();
    v
}

pub fn lz4_block_decode(src: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < src.len() {
        let token = src[i];
        i += 1;
        let mut lit = (token >> 4) as usize;
        if lit == 15 {
            loop {
                let b = src[i];
                i += 1;
                lit += b as usize;
                if b != 255 {
                    break;
                }
            }
        }
        out.extend_from_slice(&src[i..i + lit]);
        i += lit;
        if i >= src.len() {
            break;
        }
        let off = u16::from_le_bytes([src[i], src[i + 1]]) as usize;
        i += 2;
        let mut ml = (token & 15) as usize;
        if ml == 15 {
            loop {
                let b = src[i];
                i += 1;
                ml += b as usize;
                if b != 255 {
                    break;
                }
            }
        }
        ml += 4;
        let start = out.len() - off;
        for j in 0..ml {
            let b = out[start + j];
            out.push(b);
        }
    }
    out
}

/// elevengo-style decode: verify the 12-byte tail, read the length, decrypt, decode frames.
pub fn ec_decode_response(key: &[u8], iv: &[u8], body: &[u8]) -> Vec<u8> {
    use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, KeyIvInit};
    assert!(body.len() >= 12 + 16, "response too short: {}", body.len());
    let (ct, tail) = body.split_at(body.len() - 12);
    let mut s = CRC_SALT.to_vec();
    s.extend_from_slice(&tail[..8]);
    assert_eq!(crc32(&s), u32::from_le_bytes(tail[8..12].try_into().unwrap()), "tail crc");
    let mut lb = [0u8; 4];
    for i in 0..4 {
        lb[i] = tail[i] ^ tail[7];
    }
    let total = u32::from_le_bytes(lb) as usize;
    let mut buf = ct.to_vec();
    cbc::Decryptor::<aes::Aes128>::new(key.into(), iv.into()).decrypt_padded_mut::<NoPadding>(&mut buf).unwrap();
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < total {
        let l = u16::from_le_bytes([buf[i], buf[i + 1]]) as usize;
        i += 2;
        let blk = lz4_block_decode(&buf[i..i + l]);
        assert!(blk.len() <= 8192);
        out.extend_from_slice(&blk);
        i += l;
    }
    assert_eq!(out.len(), total);
    out
}

pub fn fixed_triple() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let c = vectors("ec115-constants.json");
    (
        h(c["p115cipher_fixed_client_pubkey_30"].as_str().unwrap()),
        h(c["p115cipher_fixed_aes_key"].as_str().unwrap()),
        h(c["p115cipher_fixed_aes_iv"].as_str().unwrap()),
    )
}

pub fn sha1_upper(b: &[u8]) -> String {
    hex::encode_upper(Sha1::digest(b))
}

pub fn sha1_lower(b: &[u8]) -> String {
    hex::encode(Sha1::digest(b))
}

pub fn md5_lower(b: &[u8]) -> String {
    use md5::Md5;
    hex::encode(Md5::digest(b))
}

pub fn sig(userid: &str, userkey: &str, fileid: &str, target: &str) -> String {
    let inner = sha1_lower(format!("{userid}{fileid}{target}0").as_bytes());
    sha1_upper(format!("{userkey}{inner}000000").as_bytes())
}

pub fn token(fileid: &str, size: &str, sk: &str, sv: &str, userid: &str, t: &str, appver: &str) -> String {
    let u = md5_lower(userid.as_bytes());
    md5_lower(format!("Qclm8MGWUv59TnrR0XPg{fileid}{size}{sk}{sv}{userid}{t}{u}{appver}").as_bytes())
}

// ------------------------------------------------------------------ OSS V1 signing

pub fn oss_sign(
    secret: &str,
    verb: &str,
    md5: &str,
    ctype: &str,
    date: &str,
    xoss: &[(&str, &str)],
    resource: &str,
) -> String {
    use hmac::{Hmac, Mac};
    let mut hs: Vec<(String, String)> =
        xoss.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string())).collect();
    hs.sort();
    let mut s = format!("{verb}\n{md5}\n{ctype}\n{date}\n");
    for (k, v) in hs {
        s.push_str(&format!("{k}:{v}\n"));
    }
    s.push_str(resource);
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(s.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

// ------------------------------------------------------------------ JSON shape

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every key of `example` exists in `actual` with the same JSON type (recursively; arrays are
/// compared element 0 to element 0 when both are non-empty). Keys listed in `either` may be a
/// number or a numeric string (documented as such in the reference).
pub fn assert_shape(example: &Value, actual: &Value, path: &str, either: &[&str]) {
    match (example, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let p = format!("{path}.{k}");
                let Some(av) = a.get(k) else { panic!("missing key {p} in {actual}") };
                if either.contains(&k.as_str()) {
                    assert!(matches!(av, Value::Number(_) | Value::String(_)), "{p}: {av}");
                    continue;
                }
                assert_shape(ev, av, &p, either);
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if let (Some(e0), Some(a0)) = (e.first(), a.first()) {
                assert_shape(e0, a0, &format!("{path}[0]"), either);
            }
        }
        _ => assert_eq!(kind(example), kind(actual), "type of {path}: example {example} vs emitted {actual}"),
    }
}

// ------------------------------------------------------------------ HTTP helpers

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub async fn get_json(c: &reqwest::Client, url: &str, cookie: &str) -> Value {
    let r = c.get(url).header("cookie", cookie).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {url}");
    r.json().await.unwrap()
}

pub async fn post_form(c: &reqwest::Client, url: &str, cookie: &str, form: &[(&str, &str)]) -> Value {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form.iter()).finish();
    let r = c
        .post(url)
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "POST {url}");
    r.json().await.unwrap()
}

pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
