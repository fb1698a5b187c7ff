//! Tokens (ref §2): consumer rotation and errors, Authorization forms, persistence across an
//! emulator restart, open OAuth (secret, code, PKCE), and the token brokers (§2.4).

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use emualiyun::{AppSpec, EmuAliyun, Options, TokenKind};
use serde_json::json;
use sha2::{Digest, Sha256};

async fn refresh(emu: &EmuAliyun, rt: &str) -> Resp {
    post(emu, AUTH, "/v2/account/token", None, None, json!({"grant_type": "refresh_token", "refresh_token": rt})).await
}

#[tokio::test]
async fn consumer_refresh_rotates_single_use_tokens() {
    let emu = emu().await;
    let u = emu.add_user("a");
    let rt0 = emu.issue_refresh_token(&u.user_id, TokenKind::Mobile);
    let r = refresh(&emu, &rt0).await;
    assert_eq!(r.status, 200);
    for k in ["access_token", "refresh_token", "user_id", "default_drive_id", "token_type", "expire_time", "device_id"]
    {
        assert!(r.body.get(k).is_some(), "missing {k}: {}", r.body);
    }
    assert_eq!(r.body["expires_in"], 7200);
    assert_eq!(r.body["user_id"], u.user_id.as_str());
    assert!(r.body["access_token"].as_str().unwrap().starts_with("eyJ"));
    let rt1 = r.body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt0);
    assert_eq!(rt1.split('.').count(), 1, "consumer refresh tokens are opaque, not JWTs");
    // the old token is dead (single use), the new one works once
    let r = refresh(&emu, &rt0).await;
    assert_eq!((r.status, r.body["code"].as_str()), (400, Some("InvalidParameter.RefreshToken")));
    assert_eq!(emu.refresh_reuse_count(&u.user_id), 1);
    assert!(emu.is_refresh_token_live(&rt1) && !emu.is_refresh_token_live(&rt0));
    // the api host answers the same path (aligo)
    let r =
        post(&emu, API, "/v2/account/token", None, None, json!({"grant_type": "refresh_token", "refresh_token": rt1}))
            .await;
    assert_eq!(r.status, 200);
    assert_eq!(emu.refresh_count(&u.user_id), 2);
    // errors
    let r = post(&emu, AUTH, "/v2/account/token", None, None, json!({"grant_type": "refresh_token"})).await;
    assert_eq!(r.body["code"], "InvalidParameterMissing.RefreshToken");
    let live = emu.live_refresh_tokens(&u.user_id);
    assert_eq!(live.len(), 1);
    emu.advance(Duration::from_secs(91 * 86_400));
    let r = refresh(&emu, &live[0]).await;
    assert_eq!((r.status, r.body["code"].as_str()), (400, Some("RefreshTokenExpired")));
}

#[tokio::test]
async fn access_tokens_expire_and_every_authorization_form_is_accepted() {
    let emu = emu().await;
    let s = login(&emu, TokenKind::Mobile).await;
    for auth in [format!("Bearer {}", s.at), format!("Bearer\t{}", s.at), s.at.clone()] {
        let r = http()
            .post(format!("{}/v2/user/get", emu.endpoint(API)))
            .header("Authorization", auth)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // /v2/user/get needs no signature; the user host answers it too
    let r = post(&emu, "user.aliyundrive.com", "/v2/user/get", Some(&s.at), None, json!({})).await;
    assert_eq!(r.body["resource_drive_id"], s.user.resource_drive_id.as_str());
    assert_eq!(r.body["backup_drive_id"], s.user.backup_drive_id.as_str());
    assert_ne!(s.user.default_drive_id, s.user.backup_drive_id, "strict: three distinct drives");
    emu.advance(Duration::from_secs(7201));
    let r = post(&emu, API, "/v2/user/get", Some(&s.at), None, json!({})).await;
    assert_eq!((r.status, r.body["code"].as_str()), (401, Some("AccessTokenInvalid")));
    assert!(r.body["requestId"].is_string());
    // and the rotated refresh token brings a fresh one
    let r = refresh(&emu, &s.rt).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn rotated_tokens_files_and_ports_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("emualiyun-restart-{}", hex::encode(rand::random::<[u8; 8]>())));
    let (rt1, rt0, endpoint, dir_id, user) = {
        let emu = EmuAliyun::start(&dir, Options::default()).await.unwrap();
        let u = emu.add_user("a");
        let rt0 = emu.issue_refresh_token(&u.user_id, TokenKind::Mobile);
        let r = refresh(&emu, &rt0).await;
        let rt1 = r.body["refresh_token"].as_str().unwrap().to_string();
        let d = emu.mkdir(&u.resource_drive_id, "root", "kept");
        emu.put_file(&u.resource_drive_id, &d, "x.txt", b"hello".to_vec());
        let ep = emu.endpoint(AUTH);
        emu.stop().await;
        assert!(http().post(format!("{ep}/v2/account/token")).send().await.is_err(), "stopped");
        (rt1, rt0, ep, d, u)
    };
    let emu = EmuAliyun::start(&dir, Options::default()).await.unwrap();
    assert_eq!(emu.endpoint(AUTH), endpoint, "same ports after a restart");
    assert_eq!(refresh(&emu, &rt0).await.body["code"], "InvalidParameter.RefreshToken");
    assert_eq!(refresh(&emu, &rt1).await.status, 200);
    let kids = emu.children(&user.resource_drive_id, &dir_id);
    assert_eq!(kids.len(), 1);
    assert_eq!(emu.file_bytes(&kids[0].file_id).unwrap(), b"hello");
    drop(emu);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn app() -> AppSpec {
    AppSpec::new("0123456789abcdef0123456789abcdef", "s3cret")
}

async fn open_token(emu: &EmuAliyun, body: serde_json::Value) -> Resp {
    post(emu, OPEN, "/oauth/access_token", None, None, body).await
}

#[tokio::test]
async fn open_refresh_is_single_use_and_keeps_the_old_access_token() {
    let emu = emu().await;
    emu.register_app(app());
    let u = emu.add_user("o");
    let t = emu.open_authorize(&u.user_id, &app().client_id);
    let body = |rt: &str| json!({"client_id": app().client_id, "client_secret": "s3cret", "grant_type": "refresh_token", "refresh_token": rt});
    let r = open_token(&emu, body(&t.refresh_token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 7200);
    let rt1 = r.body["refresh_token"].as_str().unwrap();
    // JWT with the same `sub` (OpenList checks it)
    let sub = |jwt: &str| {
        let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap();
        serde_json::from_slice::<serde_json::Value>(&p).unwrap()["sub"].clone()
    };
    assert_eq!(sub(rt1), sub(&t.refresh_token));
    assert_eq!(sub(rt1), u.user_id.as_str());
    let r2 = open_token(&emu, body(&t.refresh_token)).await;
    assert_eq!((r2.status, r2.body["code"].as_str()), (401, Some("RefreshTokenInvalid")));
    // the previous access token still works until it expires
    let info = post(&emu, OPEN, "/adrive/v1.0/user/getDriveInfo", Some(&t.access_token), None, json!({})).await;
    assert_eq!(info.status, 200);
    assert_eq!(info.body["default_drive_id"], u.default_drive_id.as_str());
    emu.advance(Duration::from_secs(7201));
    let info = post(&emu, OPEN, "/adrive/v1.0/user/getDriveInfo", Some(&t.access_token), None, json!({})).await;
    assert_eq!((info.status, info.body["code"].as_str()), (401, Some("AccessTokenExpired")));
    // wrong secret, unknown client, bad grant
    let mut b = body(rt1);
    b["client_secret"] = json!("nope");
    assert_eq!(open_token(&emu, b).await.body["code"], "InvalidClientSecret");
    let mut b = body(rt1);
    b["client_id"] = json!("unknown");
    assert_eq!(open_token(&emu, b).await.body["code"], "InvalidClientId");
    let mut b = body(rt1);
    b["grant_type"] = json!("password");
    assert_eq!(open_token(&emu, b).await.body["code"], "InvalidGrantType");
    // consumer tokens are not open tokens and vice versa
    let r = post(&emu, API, "/v2/user/get", Some(&t.access_token), None, json!({})).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn authorization_code_with_secret_and_with_pkce() {
    let emu = emu().await;
    emu.register_app(app());
    let u = emu.add_user("o");
    let code = emu.open_auth_code(&u.user_id, &app().client_id, None);
    let b = json!({"client_id": app().client_id, "client_secret": "s3cret", "grant_type": "authorization_code", "code": code});
    assert_eq!(open_token(&emu, b.clone()).await.status, 200);
    assert_eq!(open_token(&emu, b).await.body["code"], "InvalidCode", "codes are single-use");
    // PKCE: SDK-style short verifier, padded challenge (ref §2.6)
    let verifier = "97";
    let challenge = base64::engine::general_purpose::URL_SAFE.encode(Sha256::digest(verifier));
    assert!(challenge.ends_with('='));
    let code = emu.open_auth_code(&u.user_id, &app().client_id, Some((&challenge, "S256")));
    let bad =
        json!({"client_id": app().client_id, "grant_type": "authorization_code", "code": code, "code_verifier": "98"});
    assert_eq!(open_token(&emu, bad).await.body["code"], "InvalidCode");
    let code = emu.open_auth_code(&u.user_id, &app().client_id, Some((&challenge, "S256")));
    let ok = json!({"client_id": app().client_id, "grant_type": "authorization_code", "code": code, "code_verifier": verifier});
    let r = open_token(&emu, ok).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // a PKCE grant refreshes without a secret
    let rt = r.body["refresh_token"].as_str().unwrap();
    let r = open_token(&emu, json!({"client_id": app().client_id, "grant_type": "refresh_token", "refresh_token": rt}))
        .await;
    assert_eq!(r.status, 200);
    // codes expire after 10 minutes
    let code = emu.open_auth_code(&u.user_id, &app().client_id, None);
    emu.advance(Duration::from_secs(601));
    let b = json!({"client_id": app().client_id, "client_secret": "s3cret", "grant_type": "authorization_code", "code": code});
    assert_eq!(open_token(&emu, b).await.body["code"], "InvalidCode");
}

#[tokio::test]
async fn online_api_brokers_rotate_tokens() {
    let emu = emu().await;
    let u = emu.add_user("b");
    let t = emu.open_authorize(&u.user_id, emualiyun::BROKER_CLIENT_ID);
    // OpenList shape
    let url = format!(
        "{}/alicloud/renewapi?refresh_ui={}&server_use=true&driver_txt=alicloud_qr",
        emu.endpoint("api.oplist.org"),
        t.refresh_token
    );
    let r = into(http().get(&url).send().await.unwrap()).await;
    assert_eq!(r.body["text"], "");
    let rt1 = r.body["refresh_token"].as_str().unwrap().to_string();
    assert!(!rt1.is_empty() && !r.body["access_token"].as_str().unwrap().is_empty());
    let r = into(http().get(&url).send().await.unwrap()).await;
    assert_eq!((r.body["refresh_token"].as_str(), r.body["access_token"].as_str()), (Some(""), Some("")));
    assert!(!r.body["text"].as_str().unwrap().is_empty());
    // AList shape: the official body with empty client credentials
    let r = post(
        &emu,
        "api.nn.ci",
        "/alist/ali_open/token",
        None,
        None,
        json!({"client_id": "", "client_secret": "", "grant_type": "refresh_token", "refresh_token": rt1}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rt2 = r.body["refresh_token"].as_str().unwrap().to_string();
    // messense shape
    let r = post(
        &emu,
        "aliyundrive-oauth.messense.me",
        "/oauth/access_token",
        None,
        None,
        json!({"grant_type": "refresh_token", "refresh_token": rt2}),
    )
    .await;
    assert_eq!(r.status, 200);
    let r2 = post(
        &emu,
        "aliyundrive-oauth.messense.me",
        "/oauth/access_token",
        None,
        None,
        json!({"grant_type": "refresh_token", "refresh_token": rt2}),
    )
    .await;
    assert_eq!(r2.body["code"], "RefreshTokenInvalid", "relayed verbatim");
    // the broker's access token works on the open API
    let at = r.body["access_token"].as_str().unwrap();
    assert_eq!(post(&emu, OPEN, "/adrive/v1.0/user/getDriveInfo", Some(at), None, json!({})).await.status, 200);
    // tickstep shape
    let ticket = emu.tickstep_ticket(&u.user_id);
    let url = format!(
        "{}/auth/tickstep/aliyunpan/token/openapi/{ticket}/refresh?userId={}",
        emu.endpoint("api.tickstep.com"),
        u.user_id
    );
    let r = into(http().get(&url).header("old-token", at).send().await.unwrap()).await;
    assert_eq!(r.body["code"], 0);
    assert!(r.body["data"]["accessToken"].as_str().unwrap().starts_with("eyJ"));
    assert!(r.body["data"]["expired"].as_i64().unwrap() > emu.now_ms() / 1000);
}
