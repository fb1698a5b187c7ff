//! Another client of the same Aliyun account, written here from the reference (§1.2,
//! §3) and independent of the driver: its own device key (k256, random nonce-free RFC
//! 6979 signing as the reference describes), its own session, its own token. Used to
//! change things behind a mount's back.
#![allow(dead_code)]

use emualiyun::{EmuAliyun, TokenKind};
use k256::ecdsa::SigningKey;
use serde_json::{json, Value};
use sha2::Digest;

pub struct OtherDevice {
    api: String,
    access_token: String,
    device_id: String,
    signature: String,
    pub drive_id: String,
}

impl OtherDevice {
    /// Log in as `user_id` with a fresh consumer pair and register a device.
    pub async fn new(emu: &EmuAliyun, user_id: &str, drive_id: &str) -> anyhow::Result<OtherDevice> {
        let pair = emu.issue_consumer_tokens(user_id, TokenKind::Mobile);
        let key = SigningKey::random(&mut rand::thread_rng());
        let device_id = hex::encode(rand::random::<[u8; 16]>());
        let message = format!("5dde4e1bdf9e4966b387ba58f4b3fdc3:{device_id}:{user_id}:0");
        let (sig, rec) = key.sign_prehash_recoverable(&sha2::Sha256::digest(message.as_bytes()))?;
        let mut bytes = sig.to_bytes().to_vec();
        bytes.push(rec.to_byte());
        let pubkey = hex::encode(key.verifying_key().to_encoded_point(false).as_bytes());
        let o = OtherDevice {
            api: emu.endpoint("api.alipan.com"),
            access_token: pair.access_token,
            device_id,
            signature: hex::encode(bytes),
            drive_id: drive_id.to_string(),
        };
        let v = o
            .post(
                "/users/v1/users/device/create_session",
                json!({"deviceName": "test", "modelName": "outside", "pubKey": pubkey}),
            )
            .await?;
        anyhow::ensure!(v["result"] == json!(true), "outside create_session: {v}");
        Ok(o)
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.api))
            .bearer_auth(&self.access_token)
            .header("x-device-id", &self.device_id)
            .header("x-signature", &self.signature)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        anyhow::ensure!(status.is_success(), "outside {path}: {status} {text}");
        Ok(if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text)? })
    }

    /// Delete a file or folder for good.
    pub async fn delete(&self, file_id: &str) -> anyhow::Result<()> {
        self.post("/v2/file/delete", json!({"drive_id": self.drive_id, "file_id": file_id})).await?;
        Ok(())
    }
}
