//! initupload 4.0 signatures (reference §5.3) and the content hashes that feed them.
//!
//! ```text
//! sig   = UPPER_hex(SHA1(userkey + lower_hex(SHA1(userid + fileid + target + "0")) + "000000"))
//! token = lower_hex(MD5(SALT + fileid + filesize + sign_key + sign_val + userid + t
//!                       + lower_hex(MD5(userid)) + appversion))
//! ```

use std::ops::RangeInclusive;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use md5::{Digest as _, Md5};
use sha1::Sha1;

use super::CryptoError;

/// The MD5 salt of the initupload `token`.
pub const TOKEN_SALT: &str = "Qclm8MGWUv59TnrR0XPg";

/// Bytes hashed for the legacy `preid` (first 128 KiB).
pub const PREID_LEN: usize = 128 * 1024;

/// The initupload `sig`: uppercase hex. `fileid` is the uppercase SHA-1 of the file.
pub fn upload_sig(userid: u64, userkey: &str, fileid: &str, target: &str) -> String {
    let inner = hex::encode(Sha1::digest(format!("{userid}{fileid}{target}0")));
    hex::encode_upper(Sha1::digest(format!("{userkey}{inner}000000")))
}

/// The initupload `token`: lowercase hex. `t` is the exact string sent as the form's `t`
/// (seconds or milliseconds); `sign_key`/`sign_val` are empty on the first round.
pub fn upload_token(
    fileid: &str,
    filesize: u64,
    sign_key: &str,
    sign_val: &str,
    userid: u64,
    t: &str,
    appversion: &str,
) -> String {
    let user_md5 = hex::encode(Md5::digest(userid.to_string()));
    hex::encode(Md5::digest(format!(
        "{TOKEN_SALT}{fileid}{filesize}{sign_key}{sign_val}{userid}{t}{user_md5}{appversion}"
    )))
}

/// Uppercase hex SHA-1 (`fileid`, `sign_val`).
pub fn sha1_upper(data: &[u8]) -> String {
    hex::encode_upper(Sha1::digest(data))
}

/// Legacy `preid`: uppercase SHA-1 of the first 128 KiB.
pub fn preid(data: &[u8]) -> String {
    sha1_upper(&data[..data.len().min(PREID_LEN)])
}

/// Base64 of the MD5 digest (OSS `Content-MD5`).
pub fn md5_base64(data: &[u8]) -> String {
    B64.encode(Md5::digest(data))
}

/// Parses a `sign_check` value `"START-END"` (inclusive byte offsets).
pub fn parse_sign_check(s: &str) -> Result<RangeInclusive<u64>, CryptoError> {
    let bad = || CryptoError::Invalid(format!("bad sign_check {s:?}"));
    let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
    let start: u64 = a.trim().parse().map_err(|_| bad())?;
    let end: u64 = b.trim().parse().map_err(|_| bad())?;
    if start > end {
        return Err(bad());
    }
    Ok(start..=end)
}

/// `sign_val` for a second-round check: uppercase SHA-1 of `data[START..=END]`,
/// where `data` is the whole file.
pub fn sign_val(data: &[u8], sign_check: &str) -> Result<String, CryptoError> {
    let r = parse_sign_check(sign_check)?;
    let (start, end) = (*r.start(), *r.end());
    if end >= data.len() as u64 {
        return Err(CryptoError::Invalid(format!("sign_check {sign_check:?} is outside a {}-byte file", data.len())));
    }
    Ok(sha1_upper(&data[start as usize..=end as usize]))
}

#[cfg(test)]
mod tests {
    use super::super::vectors::{load, text};
    use super::*;

    fn det_bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(31).wrapping_add(11) & 0xff) as u8).collect()
    }

    #[test]
    fn sig_token_vectors() {
        let v = load("upload-sign-vectors.json");
        let vs = v["sig_token_vectors"].as_array().expect("sig_token_vectors");
        assert!(!vs.is_empty());
        for t in vs {
            let userid: u64 = text(t, "userid").parse().unwrap();
            let fileid = text(t, "fileid");
            let sig = upload_sig(userid, &text(t, "userkey"), &fileid, &text(t, "target"));
            assert_eq!(sig, text(t, "sig"), "{t}");
            let token = upload_token(
                &fileid,
                text(t, "filesize").parse().unwrap(),
                &text(t, "sign_key"),
                &text(t, "sign_val"),
                userid,
                &text(t, "t"),
                &text(t, "appversion"),
            );
            assert_eq!(token, text(t, "token"), "{t}");
        }
        assert_eq!(vs.len(), 4);
    }

    #[test]
    fn hash_vectors() {
        let v = load("upload-sign-vectors.json");
        let vs = v["hash_vectors"].as_array().expect("hash_vectors");
        assert!(!vs.is_empty());
        let mut ranges = 0;
        for t in vs {
            let data = det_bytes(text(t, "size").parse().unwrap());
            assert_eq!(sha1_upper(&data), text(t, "fileid_sha1_upper"), "{}", data.len());
            assert_eq!(preid(&data), text(t, "preid_sha1_first_128KiB_upper"), "{}", data.len());
            assert_eq!(md5_base64(&data), text(t, "md5_base64"), "{}", data.len());
            for r in t["sign_check_ranges"].as_array().into_iter().flatten() {
                let check = text(r, "sign_check");
                assert_eq!(sign_val(&data, &check).unwrap(), text(r, "sign_val_sha1_upper"), "{check}");
                ranges += 1;
            }
        }
        assert_eq!(vs.len(), 7);
        assert_eq!(ranges, 6);
    }

    #[test]
    fn garbage_is_rejected() {
        let data = det_bytes(100);
        for bad in ["", "-", "1", "a-b", "5-4", "0-100", "-1-3", "1-2-3"] {
            assert!(sign_val(&data, bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_sign_check(" 2-7 ").unwrap(), 2..=7);
        assert!(sign_val(&data, "99-99").is_ok());
    }
}
