//! Share links (ref §8), passport QR (§2.6), open QR (§2.5–2.6), rate limits and injected faults
//! (§10).

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use emualiyun::{AliFault, AppSpec, Fault, Options, ShareState, TokenKind};
use serde_json::{json, Value};

#[tokio::test]
async fn share_info_token_list_and_download() {
    let emu = emu().await;
    let owner = emu.add_user("owner");
    let d = emu.mkdir(&owner.resource_drive_id, "root", "Shared");
    let f = emu.put_file(&owner.resource_drive_id, &d, "m.mkv", vec![5u8; 5000]);
    emu.put_file(&owner.resource_drive_id, "root", "private.txt", b"no".to_vec());
    let sid = emu.create_share(&owner.user_id, &owner.resource_drive_id, &[&d], "ab12");
    let anon = |path: &str, body: Value| {
        let (emu, path) = (&emu, path.to_string());
        async move { post(emu, API, &path, None, None, body).await }
    };
    let r =
        anon(&format!("/adrive/v3/share_link/get_share_by_anonymous?share_id={sid}"), json!({"share_id": sid})).await;
    assert_eq!(r.body["has_pwd"], true);
    assert_eq!(r.body["file_infos"][0]["file_name"], "Shared");
    let r = anon("/v2/share_link/get_share_token", json!({"share_id": sid, "share_pwd": "zzzz"})).await;
    assert_eq!((r.status, r.body["code"].as_str()), (400, Some("InvalidResource.SharePwd")));
    let r = anon("/v2/share_link/get_share_token", json!({"share_id": sid, "share_pwd": "ab12"})).await;
    assert_eq!(r.body["expires_in"], 7200);
    let token = r.body["share_token"].as_str().unwrap().to_string();
    let list = |parent: &str| {
        let (emu, token, sid, parent) = (&emu, token.clone(), sid.clone(), parent.to_string());
        async move {
            into(
                http()
                    .post(format!("{}/adrive/v3/file/list", emu.endpoint(API)))
                    .header("x-share-token", token)
                    .header("X-Canary", "client=web,app=share,version=v2.3.1")
                    .json(&json!({"share_id": sid, "parent_file_id": parent, "limit": 200}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let top = list("root").await;
    assert_eq!(top.status, 200, "{}", top.body);
    assert_eq!(top.body["items"][0]["parent_file_id"], "root");
    assert_eq!(top.body["items"][0]["share_id"], sid.as_str());
    let inner = list(&d).await;
    assert_eq!(inner.body["items"][0]["file_id"], f.as_str());
    let sharer_drive = inner.body["items"][0]["drive_id"].as_str().unwrap().to_string();
    // nothing outside the share
    assert_eq!(list(&emu.lookup(&owner.resource_drive_id, "/private.txt").unwrap()).await.status, 404);
    // download: the viewer's own token + device session + share token, expire_sec ≤ 600
    let viewer = login(&emu, TokenKind::Mobile).await;
    let dl = |expire: u64| {
        let (emu, token, sid, drive, f, viewer) =
            (&emu, token.clone(), sid.clone(), sharer_drive.clone(), f.clone(), &viewer);
        async move {
            into(
                http()
                    .post(format!("{}/v2/file/get_share_link_download_url", emu.endpoint(API)))
                    .header("Authorization", format!("Bearer {}", viewer.at))
                    .header("x-share-token", token)
                    .header("x-device-id", &viewer.dev.device_id)
                    .header("x-signature", &viewer.sig)
                    .json(&json!({"drive_id": drive, "file_id": f, "share_id": sid, "expire_sec": expire}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let r = dl(601).await;
    assert_eq!(r.body["message"], "expire_sec should be less or equal than 600");
    let r = dl(600).await;
    let url = r.body["download_url"].as_str().unwrap();
    assert_eq!(fetch(url, None, None).await.status, 403, "share links are Referer-bound");
    assert_eq!(fetch(url, Some("https://www.alipan.com/"), None).await.raw, vec![5u8; 5000]);
    // the share token expires after 7200 s
    emu.advance(Duration::from_secs(7201));
    assert_eq!(list("root").await.body["code"], "ShareLinkTokenInvalid");
    // cancelled / expired / forbidden
    emu.set_share_state(&sid, ShareState::Cancelled);
    let r = anon("/v2/share_link/get_share_token", json!({"share_id": sid, "share_pwd": "ab12"})).await;
    assert_eq!(r.body["message"], "share_link is cancelled by the creator");
    emu.set_share_state(&sid, ShareState::Ok);
    emu.set_share_expiration(&sid, Some(emu.now_ms() - 1));
    assert_eq!(
        anon("/adrive/v2/share_link/get_share_by_anonymous", json!({"share_id": sid})).await.body["code"],
        "ShareLink.Expired"
    );
    let r = anon("/adrive/v2/share_link/get_share_by_anonymous", json!({"share_id": "nope"})).await;
    assert_eq!(r.body["code"], "NotFound.ShareLink");
}

#[tokio::test]
async fn share_rate_limit_param_flow() {
    let emu = emu_with(Options { share_requires_canary: true, ..Options::default() }).await;
    let owner = emu.add_user("owner");
    let sid = emu.create_share(&owner.user_id, &owner.resource_drive_id, &[], "");
    let r = post(&emu, API, "/adrive/v3/share_link/get_share_by_anonymous", None, None, json!({"share_id": sid})).await;
    assert_eq!(r.body["code"], "ParamFlowException");
    assert_eq!(r.body["resultCode"], "ParamFlowException");
    let r = into(
        http()
            .post(format!("{}/adrive/v3/share_link/get_share_by_anonymous", emu.endpoint(API)))
            .header("X-Canary", "client=web,app=share,version=v2.3.1")
            .json(&json!({"share_id": sid}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
}

/// `GET {passport}/newlogin/qrcode/generate.do?{query}` as JSON.
async fn qr_generate(emu: &emualiyun::EmuAliyun, host: &str, query: &str) -> Value {
    let url = format!("{}/newlogin/qrcode/generate.do{query}", emu.endpoint(host));
    http().get(url).send().await.unwrap().json().await.unwrap()
}

async fn qr_poll(emu: &emualiyun::EmuAliyun, t: &Value, ck: &Value) -> Value {
    let r = http()
        .post(format!(
            "{}/newlogin/qrcode/query.do?appName=aliyun_drive&fromSite=52&_bx-v=2.0.31",
            emu.endpoint("passport.aliyundrive.com")
        ))
        .form(&[("t", t.to_string()), ("ck", ck.as_str().unwrap().to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn passport_qr_login_hands_out_a_mobile_refresh_token() {
    let emu = emu().await;
    let u = emu.add_user("qr");
    let g: Value = http()
        .get(format!(
            "{}/newlogin/qrcode/generate.do?appName=aliyun_drive&fromSite=52&appEntrance=web",
            emu.endpoint("passport.aliyundrive.com")
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let data = &g["content"]["data"];
    assert!(data["codeContent"].as_str().unwrap().contains("qrcodeCheck.htm?lgToken="));
    let (t, ck) = (data["t"].clone(), data["ck"].clone());
    assert!(t.is_i64());
    let p = qr_poll(&emu, &t, &ck).await;
    assert_eq!(
        (p["content"]["data"]["qrCodeStatus"].as_str(), p["content"]["status"].as_i64()),
        (Some("NEW"), Some(0))
    );
    assert!(emu.passport_qr_scan(ck.as_str().unwrap()));
    assert_eq!(qr_poll(&emu, &t, &ck).await["content"]["data"]["qrCodeStatus"], "SCANED");
    assert!(emu.passport_qr_confirm(ck.as_str().unwrap(), &u.user_id));
    let p = qr_poll(&emu, &t, &ck).await;
    let d = &p["content"]["data"];
    assert_eq!((d["qrCodeStatus"].as_str(), d["loginResult"].as_str()), (Some("CONFIRMED"), Some("success")));
    let raw = base64::engine::general_purpose::STANDARD.decode(d["bizExt"].as_str().unwrap()).unwrap();
    assert!(String::from_utf8(raw.clone()).is_err(), "bizExt is GBK, not UTF-8");
    let lossy = String::from_utf8_lossy(&raw);
    let doc: Value = serde_json::from_str(&lossy).unwrap();
    let rt = doc["pds_login_result"]["refreshToken"].as_str().unwrap();
    assert_eq!(doc["pds_login_result"]["userId"], u.user_id.as_str());
    // mobile-kind: links are not Referer-bound
    let r =
        post(&emu, AUTH, "/v2/account/token", None, None, json!({"grant_type": "refresh_token", "refresh_token": rt}))
            .await;
    assert_eq!(r.status, 200);
    // not repeated; a wrong pair and an old code are EXPIRED
    assert_eq!(qr_poll(&emu, &t, &ck).await["content"]["data"]["qrCodeStatus"], "EXPIRED");
    assert_eq!(qr_poll(&emu, &json!(1), &ck).await["content"]["success"], false);
    let g: Value = qr_generate(&emu, "passport.alipan.com", "?appName=aliyun_drive").await;
    let (t2, ck2) = (g["content"]["data"]["t"].clone(), g["content"]["data"]["ck"].clone());
    let bad: Value = qr_generate(&emu, "passport.alipan.com", "").await;
    assert_eq!(bad["hasError"], true, "appName=aliyun_drive is required");
    assert!(emu.passport_qr_cancel(ck2.as_str().unwrap()));
    assert_eq!(qr_poll(&emu, &t2, &ck2).await["content"]["data"]["qrCodeStatus"], "CANCELED");
    let g: Value = qr_generate(&emu, "passport.alipan.com", "?appName=aliyun_drive").await;
    emu.advance(Duration::from_secs(181));
    let p = qr_poll(&emu, &g["content"]["data"]["t"], &g["content"]["data"]["ck"]).await;
    assert_eq!(
        (p["content"]["data"]["qrCodeStatus"].as_str(), p["content"]["status"].as_i64()),
        (Some("EXPIRED"), Some(-1))
    );
}

#[tokio::test]
async fn open_qr_pkce_flow() {
    let emu = emu().await;
    emu.register_app(AppSpec::new("app1", "sec"));
    let u = emu.add_user("q");
    let verifier = "123";
    use sha2::Digest;
    let challenge = base64::engine::general_purpose::URL_SAFE.encode(sha2::Sha256::digest(verifier));
    let r = post(&emu, OPEN, "/oauth/authorize/qrcode", None, None, json!({"client_id": "app1",
        "scopes": ["user:base", "file:all:read", "file:all:write"], "code_challenge": challenge, "code_challenge_method": "S256"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sid = r.body["sid"].as_str().unwrap().to_string();
    assert!(r.body["qrCodeUrl"].is_string());
    let status = || {
        let (emu, sid) = (&emu, sid.clone());
        async move {
            into(http().get(format!("{}/oauth/qrcode/{sid}/status", emu.endpoint(OPEN))).send().await.unwrap())
                .await
                .body
        }
    };
    assert_eq!(status().await, json!({"status": "WaitLogin"}));
    emu.open_qr_scan(&sid);
    assert_eq!(status().await["status"], "ScanSuccess");
    emu.open_qr_confirm(&sid, &u.user_id);
    let s = status().await;
    assert_eq!(s["status"], "LoginSuccess");
    let r = post(
        &emu,
        OPEN,
        "/oauth/access_token",
        None,
        None,
        json!({"client_id": "app1",
        "grant_type": "authorization_code", "code": s["authCode"], "code_verifier": verifier}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // an expired QR
    let r = post(
        &emu,
        OPEN,
        "/oauth/authorize/qrcode",
        None,
        None,
        json!({"client_id": "app1", "client_secret": "sec", "scopes": ["user:base"]}),
    )
    .await;
    let sid2 = r.body["sid"].as_str().unwrap();
    emu.advance(Duration::from_secs(181));
    let s = into(http().get(format!("{}/oauth/qrcode/{sid2}/status", emu.endpoint(OPEN))).send().await.unwrap()).await;
    assert_eq!(s.body["status"], "QRCodeExpired");
}

#[tokio::test]
async fn open_rate_limits_answer_429_with_x_retry_after() {
    // A slow download bucket so the test does not depend on how fast two requests follow.
    let rates = emualiyun::OpenRates { list: 4.0, download_url: 0.01, other: 1000.0, burst: 1.0 };
    let emu = emu_with(Options { open_rates: Some(rates), ..Options::default() }).await;
    emu.register_app(AppSpec::new("app1", "s"));
    let u = emu.add_user("r");
    let t = emu.open_authorize(&u.user_id, "app1");
    let f = emu.put_file(&u.resource_drive_id, "root", "a", b"a".to_vec());
    let dl = json!({"drive_id": u.resource_drive_id, "file_id": f});
    let first = post(&emu, OPEN, "/adrive/v1.0/openFile/getDownloadUrl", Some(&t.access_token), None, dl.clone()).await;
    assert_eq!(first.status, 200);
    let second =
        post(&emu, OPEN, "/adrive/v1.0/openFile/getDownloadUrl", Some(&t.access_token), None, dl.clone()).await;
    assert_eq!((second.status, second.body["code"].as_str()), (429, Some("TooManyRequests")));
    let wait: u64 = second.headers["x-retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait > 1000 && wait <= 100_000, "{wait}");
    // other classes have their own buckets
    let r = post(&emu, OPEN, "/adrive/v1.0/openFile/get", Some(&t.access_token), None, dl.clone()).await;
    assert_eq!(r.status, 200);
    emu.advance(Duration::from_millis(wait));
    assert_eq!(
        post(&emu, OPEN, "/adrive/v1.0/openFile/getDownloadUrl", Some(&t.access_token), None, dl).await.status,
        200
    );
}

#[tokio::test]
async fn injected_faults() {
    let emu = emu().await;
    let s = login(&emu, TokenKind::Mobile).await;
    let list = json!({"drive_id": s.drive(), "parent_file_id": "root"});
    emu.inject(
        &format!("{API}/adrive/v3/file/list"),
        Fault::custom(AliFault::TooManyRequests { retry_after_ms: Some(1500) }).times(1),
    );
    let r = s.call(&emu, "/adrive/v3/file/list", list.clone()).await;
    assert_eq!((r.status, r.headers["x-retry-after"].to_str().unwrap()), (429, "1500"));
    emu.inject("*/adrive/v3/file/list", Fault::custom(AliFault::ExpireAccessToken).times(1));
    let r = s.call(&emu, "/adrive/v3/file/list", list.clone()).await;
    assert_eq!(r.body["code"], "AccessTokenInvalid");
    assert!(!emu.is_access_token_live(&s.at), "the token really expired");
    let s = login_user(&emu, emu.add_user("b"), TokenKind::Mobile).await;
    let list = json!({"drive_id": s.drive(), "parent_file_id": "root"});
    emu.inject("*/adrive/v3/file/list", Fault::custom(AliFault::SignatureInvalid).times(1));
    assert_eq!(s.call(&emu, "/adrive/v3/file/list", list.clone()).await.body["code"], "DeviceSessionSignatureInvalid");
    assert_eq!(
        s.call(&emu, "/adrive/v3/file/list", list.clone()).await.body["message"],
        "not found device info",
        "session dropped"
    );
    emu.inject("*/adrive/v3/file/list", Fault::status(502).times(1));
    assert_eq!(s.call(&emu, "/adrive/v3/file/list", list.clone()).await.status, 502);
    emu.inject("*/adrive/v3/file/list", Fault::reset().times(1));
    let r = http().post(format!("{}/adrive/v3/file/list", emu.endpoint(API))).json(&list).send().await;
    assert!(r.is_err());
    // every request is logged with its status and fault
    let log = emu.log();
    assert!(log.iter().any(|l| l.status == 502 && l.fault == Some("reply")));
    assert!(log.iter().any(|l| l.status == 0 && l.fault == Some("reset")));
    assert!(emu.calls_matching("*/adrive/v3/file/list") >= 5);
}
