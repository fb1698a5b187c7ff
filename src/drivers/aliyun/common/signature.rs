//! The consumer API's device signature (ref §3): a secp256k1 key per device, the
//! `x-signature` header over `app_id:device_id:user_id:nonce`, and the public key a
//! `create_session` registers.
//!
//! Signing uses `k256` with RFC 6979 deterministic nonces and low-S normalisation; the
//! 65th byte is the recovery id (ref §3.1). The service verifies the signature against
//! the registered key, so any valid signature works; deterministic nonces make ours
//! reproducible (`data/aliyundrive_signature_vectors.json`, byte for byte).
//!
//! Like AList/OpenList (ref §3.1), the device is derived from the user id: `device_id` =
//! lower-case hex SHA-256 of the user id, and the private key is those 32 bytes. It is
//! stable across restarts and processes, so a session created once keeps serving every
//! pandav process of that account, and nothing has to be stored.

use k256::ecdsa::SigningKey;
use sha2::Digest;

/// The web app id the message is built with (ref §3.1; AList and most clients).
pub const APP_ID: &str = "5dde4e1bdf9e4966b387ba58f4b3fdc3";

/// One device: its id, key and the user it signs for.
#[derive(Clone)]
pub struct Device {
    pub user_id: String,
    pub device_id: String,
    key: SigningKey,
    /// `x-signature` for nonce 0, computed once.
    signature: String,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device").field("user_id", &self.user_id).field("device_id", &self.device_id).finish()
    }
}

impl Device {
    /// The AList derivation: `device_id = hex(SHA-256(user_id))`, key = those bytes.
    pub fn for_user(user_id: &str) -> Device {
        let digest = sha2::Sha256::digest(user_id.as_bytes());
        let device_id = hex::encode(digest);
        // A SHA-256 output is a valid scalar except with negligible probability (zero or
        // ≥ n); fall back to hashing again rather than panicking.
        let key = SigningKey::from_slice(&digest)
            .unwrap_or_else(|_| SigningKey::from_slice(&sha2::Sha256::digest(digest)).expect("a valid scalar"));
        Device::with_key(user_id, &device_id, key)
    }

    /// A device with a given id and private key (tests, vectors).
    pub fn with_key(user_id: &str, device_id: &str, key: SigningKey) -> Device {
        let mut d = Device { user_id: user_id.into(), device_id: device_id.into(), key, signature: String::new() };
        d.signature = d.sign(APP_ID, 0);
        d
    }

    /// `x-signature` for nonce 0 (what current clients send, ref §3.4).
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// `hex(r ‖ s ‖ v)` over SHA-256 of `app_id:device_id:user_id:nonce`, low-S, `v` the
    /// recovery id (ref §3.1).
    pub fn sign(&self, app_id: &str, nonce: u64) -> String {
        let message = format!("{app_id}:{}:{}:{nonce}", self.device_id, self.user_id);
        sign_message(&self.key, &message)
    }

    /// The public key as AList sends it in `create_session.pubKey`: hex of X ‖ Y, 128
    /// hex digits, no `04` prefix (ref §3.2).
    pub fn public_key_hex(&self) -> String {
        let point = self.key.verifying_key().to_encoded_point(false);
        hex::encode(&point.as_bytes()[1..])
    }
}

/// Sign `message` the §3.1 way: the SHA-256 digest is the prehash (no second hash), RFC
/// 6979 nonce, `s` normalised to low-S with the recovery id adjusted.
pub fn sign_message(key: &SigningKey, message: &str) -> String {
    let digest = sha2::Sha256::digest(message.as_bytes());
    let (sig, recid) = key.sign_prehash_recoverable(&digest).expect("signing a 32-byte digest");
    let (sig, recid) = match sig.normalize_s() {
        // High S: n - s flips the parity of the nonce point's y coordinate.
        Some(low) => (low, k256::ecdsa::RecoveryId::new(!recid.is_y_odd(), recid.is_x_reduced())),
        None => (sig, recid),
    };
    let mut out = sig.to_bytes().to_vec();
    out.push(recid.to_byte());
    hex::encode(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
    use serde_json::Value;

    fn vectors() -> Value {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/aliyundrive_signature_vectors.json");
        serde_json::from_slice(&std::fs::read(p).expect("signature vectors")).unwrap()
    }

    fn key(hexkey: &str) -> SigningKey {
        SigningKey::from_slice(&hex::decode(hexkey).unwrap()).unwrap()
    }

    #[test]
    fn every_vector_byte_for_byte() {
        let v = vectors();
        let cases = v["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 6);
        for c in cases {
            let label = c["label"].as_str().unwrap();
            let s = |k: &str| c[k].as_str().unwrap().to_string();
            let d = Device::with_key(&s("user_id"), &s("device_id"), key(&s("private_key_hex")));
            let nonce = c["nonce"].as_u64().unwrap();
            let message = format!("{}:{}:{}:{nonce}", s("app_id"), s("device_id"), s("user_id"));
            assert_eq!(message, s("message"), "{label}");
            assert_eq!(hex::encode(sha2::Sha256::digest(message.as_bytes())), s("sha256_message_hex"), "{label}");
            assert_eq!(d.sign(&s("app_id"), nonce), s("x_signature_rs_v"), "{label}");
            assert_eq!(d.public_key_hex(), s("public_key_xy_hex"), "{label}");
            if let Some(derivation) = c.get("derivation").and_then(|x| x.as_str()) {
                assert!(derivation.contains("sha256"), "{label}");
                let derived = Device::for_user(&s("user_id"));
                assert_eq!(derived.device_id, s("device_id"), "{label}: device id derivation");
                assert_eq!(derived.public_key_hex(), s("public_key_xy_hex"), "{label}: key derivation");
                if s("app_id") == APP_ID && nonce == 0 {
                    assert_eq!(derived.signature(), s("x_signature_rs_v"), "{label}: cached nonce-0 signature");
                }
            }
        }
    }

    /// Our signatures verify and recover to our key; the negative cases do not verify
    /// (checked with k256's verifier, independent of the signer above).
    #[test]
    fn signatures_verify_and_negative_cases_do_not() {
        let v = vectors();
        let d = Device::for_user("0d35e837530445e09a1bf00d7e38fb90");
        for nonce in [0u64, 1, 7] {
            let sig = hex::decode(d.sign(APP_ID, nonce)).unwrap();
            assert_eq!(sig.len(), 65);
            let msg = format!("{APP_ID}:{}:{}:{nonce}", d.device_id, d.user_id);
            let digest = sha2::Sha256::digest(msg.as_bytes());
            let s = Signature::from_slice(&sig[..64]).unwrap();
            assert!(s.normalize_s().is_none(), "low-S");
            let vk = *d.key.verifying_key();
            vk.verify_prehash(&digest, &s).unwrap();
            let rec = VerifyingKey::recover_from_prehash(&digest, &s, RecoveryId::from_byte(sig[64]).unwrap()).unwrap();
            assert_eq!(rec, vk, "the 65th byte is the recovery id");
        }
        for c in v["negative_cases"].as_array().unwrap() {
            let pk = hex::decode(c["public_key_uncompressed_hex"].as_str().unwrap()).unwrap();
            let vk = VerifyingKey::from_sec1_bytes(&pk).unwrap();
            let sig = hex::decode(c["x_signature"].as_str().unwrap()).unwrap();
            let digest = sha2::Sha256::digest(c["message"].as_str().unwrap().as_bytes());
            let ok = Signature::from_slice(&sig[..64]).is_ok_and(|s| vk.verify_prehash(&digest, &s).is_ok());
            assert!(!ok, "{}", c["label"]);
        }
    }
}
