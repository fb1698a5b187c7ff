//! Helpers for the fidelity tests: raw HTTP the way the reference says clients call the service,
//! and an independent x-signature signer (ref §3.1) built on k256.
#![allow(dead_code)]

use emualiyun::{EmuAliyun, Options, TokenKind, UserInfo, WEB_APP_ID};
use k256::ecdsa::{RecoveryId, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const API: &str = "api.alipan.com";
pub const AUTH: &str = "auth.alipan.com";
pub const OPEN: &str = "openapi.alipan.com";
pub const DATA: &str = "cn-beijing-data.aliyundrive.net";

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A device with its own secp256k1 key.
pub struct Dev {
    pub key: SigningKey,
    pub device_id: String,
}

impl Dev {
    pub fn new() -> Dev {
        let seed: [u8; 32] = rand::random();
        let key = SigningKey::from_slice(&Sha256::digest(seed)).unwrap();
        Dev { key, device_id: hex::encode(rand::random::<[u8; 16]>()) }
    }

    /// `pubKey` as AList sends it: hex X‖Y without the `04` prefix (ref §3.2).
    pub fn pub_xy(&self) -> String {
        let p = self.key.verifying_key().to_encoded_point(false);
        hex::encode(&p.as_bytes()[1..])
    }

    /// `hex(r‖s‖v)` over SHA-256 of `app:device:user:nonce`, low-S (ref §3.1).
    pub fn sign(&self, app: &str, user_id: &str, nonce: u64) -> String {
        let msg = format!("{app}:{}:{user_id}:{nonce}", self.device_id);
        let digest = Sha256::digest(msg.as_bytes());
        let (sig, rid) = self.key.sign_prehash_recoverable(&digest).unwrap();
        let (sig, rid) = match sig.normalize_s() {
            Some(n) => (n, RecoveryId::from_byte(rid.to_byte() ^ 1).unwrap()),
            None => (sig, rid),
        };
        format!("{}{:02x}", hex::encode(sig.to_bytes()), rid.to_byte())
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

/// POST JSON to `host` `path` with optional bearer token and device headers.
pub async fn post(
    emu: &EmuAliyun,
    host: &str,
    path: &str,
    token: Option<&str>,
    sig: Option<(&str, &str)>,
    body: Value,
) -> Resp {
    let mut r = http().post(format!("{}{path}", emu.endpoint(host))).json(&body);
    if let Some(t) = token {
        r = r.header("Authorization", format!("Bearer {t}"));
    }
    if let Some((dev, s)) = sig {
        r = r.header("x-device-id", dev).header("x-signature", s);
    }
    into(r.send().await.unwrap()).await
}

pub async fn into(r: reqwest::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let raw = r.bytes().await.unwrap().to_vec();
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    Resp { status, headers, body, raw }
}

/// A logged-in consumer client: refreshed tokens and a device session.
pub struct Session {
    pub user: UserInfo,
    pub at: String,
    pub rt: String,
    pub dev: Dev,
    pub sig: String,
}

impl Session {
    pub async fn call(&self, emu: &EmuAliyun, path: &str, body: Value) -> Resp {
        post(emu, API, path, Some(&self.at), Some((&self.dev.device_id, &self.sig)), body).await
    }

    pub fn drive(&self) -> &str {
        &self.user.resource_drive_id
    }
}

/// The §2.1 refresh + §3.3 create_session dance for a new user.
pub async fn login(emu: &EmuAliyun, kind: TokenKind) -> Session {
    let user = emu.add_user("alice");
    login_user(emu, user, kind).await
}

pub async fn login_user(emu: &EmuAliyun, user: UserInfo, kind: TokenKind) -> Session {
    let rt0 = emu.issue_refresh_token(&user.user_id, kind);
    let r =
        post(emu, AUTH, "/v2/account/token", None, None, json!({"grant_type": "refresh_token", "refresh_token": rt0}))
            .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let at = r.body["access_token"].as_str().unwrap().to_string();
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    let dev = Dev::new();
    let sig = dev.sign(WEB_APP_ID, &user.user_id, 0);
    let r = post(
        emu,
        API,
        "/users/v1/users/device/create_session",
        Some(&at),
        Some((&dev.device_id, &sig)),
        json!({"deviceName": "samsung", "modelName": "SM-G9810", "pubKey": dev.pub_xy(), "nonce": 0, "refreshToken": rt}),
    )
    .await;
    assert_eq!(r.body, json!({"result": true, "success": true, "code": null, "message": null}));
    Session { user, at, rt, dev, sig }
}

pub async fn emu() -> EmuAliyun {
    EmuAliyun::start_temp(Options::default()).await
}

pub async fn emu_with(o: Options) -> EmuAliyun {
    EmuAliyun::start_temp(o).await
}

/// GET a download URL with an optional Referer and Range.
pub async fn fetch(url: &str, referer: Option<&str>, range: Option<&str>) -> Resp {
    let mut r = http().get(url);
    if let Some(v) = referer {
        r = r.header("Referer", v);
    }
    if let Some(v) = range {
        r = r.header("Range", v);
    }
    into(r.send().await.unwrap()).await
}

/// Read a vector file of tests/vectors (copies of the reference's data/).
pub fn vectors(name: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors").join(name);
    let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&s).unwrap()
}
