//! The emulator's crypto against the reference vectors (tests/vectors = reference data/),
//! exercised over HTTP: proof_code / pre_hash / content_hash (§7, §13.2) and x-signature
//! verification (§3, §13.1).

mod common;

use common::*;
use emualiyun::{Options, SignatureMode, TokenKind};
use serde_json::{json, Value};

fn file_bytes(f: &Value) -> Vec<u8> {
    let size = f["size"].as_u64().unwrap() as usize;
    match f["generator"].as_str().unwrap() {
        "pattern31x7" => (0..size).map(|i| ((i * 31 + 7) % 256) as u8).collect(),
        "literal" => hex::decode(f["hex"].as_str().unwrap()).unwrap(),
        g => panic!("unknown generator {g}"),
    }
}

#[tokio::test]
async fn proof_code_pre_hash_and_content_hash_vectors() {
    let emu = emu_with(Options { signature: SignatureMode::Off, ..Options::default() }).await;
    let user = emu.add_user("v");
    let v = vectors("aliyundrive_proof_code_vectors.json");
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 50);
    for (i, c) in cases.iter().enumerate() {
        let data = file_bytes(&c["file"]);
        let size = data.len() as u64;
        let token = c["access_token"].as_str().unwrap();
        emu.seed_access_token(&user.user_id, TokenKind::Mobile, token, None);
        let sha = emu.add_known_content(data.clone());
        assert_eq!(sha, c["content_hash_sha1_upper"].as_str().unwrap(), "case {i}");
        let base = json!({"drive_id": user.resource_drive_id, "parent_file_id": "root", "name": format!("f{i}.bin"),
            "type": "file", "check_name_mode": "auto_rename", "size": size});
        // pre_hash of the vector matches known content → 409 PreHashMatched.
        let mut b = base.clone();
        b["pre_hash"] = c["pre_hash_sha1_first1024_lower"].clone();
        let r = post(&emu, API, "/adrive/v2/file/createWithFolders", Some(token), None, b).await;
        assert_eq!((r.status, r.body["code"].as_str()), (409, Some("PreHashMatched")), "case {i}: {}", r.body);
        // A wrong proof is refused (the emulator computes its own).
        let mut b = base.clone();
        b["content_hash"] = json!(sha.to_lowercase());
        b["content_hash_name"] = json!("sha1");
        b["proof_version"] = json!("v1");
        b["proof_code"] = json!(if size == 0 { "AA==" } else { "AAAAAAAAAAA=" });
        if c["proof_code"] != b["proof_code"] {
            let r = post(&emu, API, "/adrive/v2/file/createWithFolders", Some(token), None, b.clone()).await;
            assert_eq!((r.status, r.body["code"].as_str()), (400, Some("InvalidRapidProof")), "case {i}");
        }
        // The vector's proof is accepted: rapid upload.
        b["proof_code"] = c["proof_code"].clone();
        let r = post(&emu, API, "/adrive/v2/file/createWithFolders", Some(token), None, b).await;
        assert_eq!(r.status, 201, "case {i}: {}", r.body);
        assert_eq!(r.body["rapid_upload"], true, "case {i}");
        let e = emu.entry(r.body["file_id"].as_str().unwrap()).unwrap();
        assert_eq!((e.size, e.content_hash.as_str()), (size, sha.as_str()));
    }
}

/// Every vector pubKey form of ref §3.2 registers; the vector signatures then authorize calls.
#[tokio::test]
async fn signature_vectors_register_and_verify() {
    let emu = emu().await;
    let v = vectors("aliyundrive_signature_vectors.json");
    for (i, c) in v["cases"].as_array().unwrap().iter().enumerate() {
        let uid = c["user_id"].as_str().unwrap();
        let dev = c["device_id"].as_str().unwrap();
        let nonce = c["nonce"].as_u64().unwrap();
        let user = emu.add_user_with_id(uid, "v");
        let at = emu.issue_consumer_tokens(&user.user_id, TokenKind::Mobile).access_token;
        let forms = [
            c["public_key_xy_hex"].as_str().unwrap(),
            c["public_key_uncompressed_hex"].as_str().unwrap(),
            c["public_key_compressed_hex"].as_str().unwrap(),
        ];
        for (f, pk) in forms.iter().enumerate() {
            for sig in [c["x_signature_rs_v"].as_str().unwrap(), c["x_signature_rs_01"].as_str().unwrap()] {
                let r = post(
                    &emu,
                    API,
                    "/users/v1/users/device/create_session",
                    Some(&at),
                    Some((dev, sig)),
                    json!({"deviceName": "t", "modelName": "t", "pubKey": pk, "nonce": nonce}),
                )
                .await;
                assert_eq!(r.body["result"], true, "case {i} form {f}: {}", r.body);
            }
        }
        // A signed endpoint accepts the nonce-0 signature of the case (strict mode, nonce 0).
        let list = json!({"drive_id": user.resource_drive_id, "parent_file_id": "root"});
        let r = post(
            &emu,
            API,
            "/adrive/v3/file/list",
            Some(&at),
            Some((dev, c["x_signature_rs_v"].as_str().unwrap())),
            list.clone(),
        )
        .await;
        if nonce == 0 {
            assert_eq!(r.status, 200, "case {i}: {}", r.body);
        } else {
            assert_eq!((r.status, r.body["code"].as_str()), (400, Some("DeviceSessionSignatureInvalid")), "case {i}");
        }
        // tampering one byte of s breaks it
        let mut bad = c["x_signature_rs_v"].as_str().unwrap().to_string();
        let flip = if &bad[100..101] == "0" { "1" } else { "0" };
        bad.replace_range(100..101, flip);
        let r = post(&emu, API, "/adrive/v3/file/list", Some(&at), Some((dev, &bad)), list).await;
        assert_eq!(r.body["code"], "DeviceSessionSignatureInvalid", "case {i}");
    }
}

#[tokio::test]
async fn random_k_samples_verify_and_negative_cases_fail() {
    let emu = emu().await;
    let v = vectors("aliyundrive_signature_vectors.json");
    let samples = v["random_k_samples"].as_array().unwrap();
    assert!(!samples.is_empty());
    for (i, s) in samples.iter().enumerate() {
        let msg = s["message"].as_str().unwrap();
        let parts: Vec<&str> = msg.split(':').collect();
        let (dev, uid, nonce) = (parts[1], parts[2], parts[3]);
        let user = emu.add_user_with_id(uid, "r");
        let at = emu.issue_consumer_tokens(&user.user_id, TokenKind::Web).access_token;
        let r = post(&emu, API, "/users/v1/users/device/create_session", Some(&at),
            Some((dev, s["x_signature"].as_str().unwrap())),
            json!({"deviceName": "t", "modelName": "t", "pubKey": s["public_key_uncompressed_hex"], "nonce": nonce.parse::<u64>().unwrap()})).await;
        assert_eq!(r.body["result"], true, "sample {i} ({}): {}", s["label"], r.body);
    }
    // Negative cases: register the key leniently, then verify strictly.
    for (i, n) in v["negative_cases"].as_array().unwrap().iter().enumerate() {
        let emu = emu_with(Options { signature: SignatureMode::Lenient, ..Options::default() }).await;
        let msg = n["message"].as_str().unwrap();
        let parts: Vec<&str> = msg.split(':').collect();
        let (dev, uid) = (parts[1], parts[2]);
        let user = emu.add_user_with_id(uid, "n");
        let at = emu.issue_consumer_tokens(&user.user_id, TokenKind::Mobile).access_token;
        let sig = n["x_signature"].as_str().unwrap();
        let r = post(
            &emu,
            API,
            "/users/v1/users/device/create_session",
            Some(&at),
            Some((dev, sig)),
            json!({"deviceName": "t", "modelName": "t", "pubKey": n["public_key_uncompressed_hex"]}),
        )
        .await;
        assert_eq!(r.body["result"], true);
        let list = json!({"drive_id": user.resource_drive_id, "parent_file_id": "root"});
        let r = post(&emu, API, "/adrive/v3/file/list", Some(&at), Some((dev, sig)), list.clone()).await;
        assert_eq!(r.status, 200, "lenient mode does not verify");
        emu.configure(|o| o.signature = SignatureMode::Strict);
        let r = post(&emu, API, "/adrive/v3/file/list", Some(&at), Some((dev, sig)), list).await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (400, Some("DeviceSessionSignatureInvalid")),
            "negative {i} ({})",
            n["label"]
        );
    }
}
