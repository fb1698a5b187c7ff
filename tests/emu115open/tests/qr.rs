//! Device code + PKCE (ref §2.1) and authorization code (ref §2.2).

mod common;

use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use common::*;
use emu115open::{Options, DEFAULT_APP_ID, DEFAULT_APP_SECRET, DEFAULT_REDIRECT_DOMAIN};
use serde_json::Value;

fn digest(method: &str, v: &str) -> Vec<u8> {
    use sha2::Digest;
    match method {
        "sha256" => sha2::Sha256::digest(v.as_bytes()).to_vec(),
        "sha1" => sha1::Sha1::digest(v.as_bytes()).to_vec(),
        _ => md5::Md5::digest(v.as_bytes()).to_vec(),
    }
}

async fn device_code(t: &T, challenge: &str, method: &str) -> Value {
    t.passport(
        "/open/authDeviceCode",
        &[("client_id", DEFAULT_APP_ID), ("code_challenge", challenge), ("code_challenge_method", method)],
    )
    .await
}

async fn poll(t: &T, dc: &Value) -> Value {
    let d = &dc["data"];
    t.http
        .get(t.url(QR, "/get/status/"))
        .query(&[
            ("uid", d["uid"].as_str().unwrap()),
            ("time", &d["time"].to_string()),
            ("sign", d["sign"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn pkce_all_methods_and_alphabets() {
    let t = setup_with(Options { grant_limit: 100, ..Options::default() }).await;
    let verifier = "abc-DEF_123.~".repeat(5); // 65 chars
    for method in ["sha256", "sha1", "md5"] {
        for eng in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            let ch = eng.encode(digest(method, &verifier));
            let dc = device_code(&t, &ch, method).await;
            assert_eq!(dc["state"], 1, "{dc}");
            let uid = dc["data"]["uid"].as_str().unwrap();
            assert_eq!(dc["data"]["qrcode"], format!("https://115.com/scan/dg-{uid}"));
            assert!(t.emu.qr_scan(uid, t.user));
            assert!(t.emu.qr_confirm(uid));
            let tok = t.passport("/open/deviceCodeToToken", &[("uid", uid), ("code_verifier", &verifier)]).await;
            assert_eq!(tok["state"], 1, "{method} {tok}");
            let at = tok["data"]["access_token"].as_str().unwrap();
            assert_eq!(t.get_with(at, "/open/user/info", &[]).await["data"]["user_id"], t.user);
        }
    }
}

#[tokio::test]
async fn pkce_errors() {
    let t = setup().await;
    // device-code errors
    let v = t.passport("/open/authDeviceCode", &[("code_challenge", "x"), ("code_challenge_method", "md5")]).await;
    assert_eq!(code(&v), 40140100);
    let v = t
        .passport(
            "/open/authDeviceCode",
            &[("client_id", "999999"), ("code_challenge", "x"), ("code_challenge_method", "md5")],
        )
        .await;
    assert_eq!(code(&v), 40140107);
    let v =
        t.passport("/open/authDeviceCode", &[("client_id", DEFAULT_APP_ID), ("code_challenge_method", "md5")]).await;
    assert_eq!(code(&v), 40140101);
    let v = device_code(&t, "x", "plain").await;
    assert_eq!(code(&v), 40140102);
    assert_eq!(v["state"], 0);

    let verifier = "0".repeat(64);
    let ch = STANDARD.encode(digest("md5", &verifier));
    let dc = device_code(&t, &ch, "md5").await;
    let uid = dc["data"]["uid"].as_str().unwrap();
    // not confirmed yet
    let v = t.passport("/open/deviceCodeToToken", &[("uid", uid), ("code_verifier", &verifier)]).await;
    assert_eq!(v["state"], 0);
    t.emu.qr_scan(uid, t.user);
    t.emu.qr_confirm(uid);
    // length 43..=128
    for bad in ["0".repeat(42), "0".repeat(129)] {
        let v = t.passport("/open/deviceCodeToToken", &[("uid", uid), ("code_verifier", &bad)]).await;
        assert_eq!(code(&v), 40140112);
    }
    // mismatch
    let v = t.passport("/open/deviceCodeToToken", &[("uid", uid), ("code_verifier", &"1".repeat(64))]).await;
    assert_eq!(code(&v), 40140113);
    // 43 and 128 are fine lengths; the right one works once
    let v = t.passport("/open/deviceCodeToToken", &[("uid", uid), ("code_verifier", &verifier)]).await;
    assert_eq!(v["state"], 1);
    let v = t.passport("/open/deviceCodeToToken", &[("uid", uid), ("code_verifier", &verifier)]).await;
    assert_eq!(v["state"], 0, "single use");
}

#[tokio::test]
async fn long_poll_reports_changes() {
    let t = setup_with(Options { qr_poll_timeout: Duration::from_millis(300), ..Options::default() }).await;
    let ch = STANDARD.encode(digest("sha256", &"z".repeat(43)));
    let dc = device_code(&t, &ch, "sha256").await;
    let uid = dc["data"]["uid"].as_str().unwrap().to_string();

    // nothing happens: returns after the timeout, state 1, data without status
    let start = Instant::now();
    let v = poll(&t, &dc).await;
    assert!(start.elapsed() >= Duration::from_millis(250));
    assert_eq!(v["state"], 1);
    assert!(v["data"].get("status").is_none(), "{v}");

    // a scan during the poll wakes it up
    let emu_scan = {
        let uid = uid.clone();
        let user = t.user;
        let hook = format!("{}/qr/{uid}/scan?user={user}", t.emu.endpoint("__test"));
        let http = t.http.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(http.post(hook).send().await.unwrap().status(), 200);
        })
    };
    let v = poll(&t, &dc).await;
    emu_scan.await.unwrap();
    assert_eq!(v["data"]["status"], 1, "{v}");
    assert_eq!(v["data"]["msg"], "扫码成功");

    t.emu.qr_confirm(&uid);
    let v = poll(&t, &dc).await;
    assert_eq!(v["data"]["status"], 2);
    assert_eq!(v["state"], 1);

    // bad sign
    let mut bad = dc.clone();
    bad["data"]["sign"] = "00".into();
    assert_eq!(code(&poll(&t, &bad).await), 40140104);
}

#[tokio::test]
async fn qr_expiry_and_cancel() {
    let t = setup_with(Options {
        qr_ttl: Duration::from_secs(60),
        qr_poll_timeout: Duration::from_millis(100),
        ..Options::default()
    })
    .await;
    let ch = STANDARD.encode(digest("sha1", &"q".repeat(50)));
    let dc = device_code(&t, &ch, "sha1").await;
    t.emu.advance(Duration::from_secs(61));
    let v = poll(&t, &dc).await;
    assert_eq!(v["state"], 0, "QR invalid: stop polling");
    assert_eq!(v["data"]["status"], -1);
    let uid = dc["data"]["uid"].as_str().unwrap();
    assert!(!t.emu.qr_scan(uid, t.user));

    let dc = device_code(&t, &ch, "sha1").await;
    let uid = dc["data"]["uid"].as_str().unwrap();
    t.emu.qr_cancel(uid);
    let v = poll(&t, &dc).await;
    assert_eq!((v["state"].as_i64(), v["data"]["status"].as_i64()), (Some(0), Some(-2)));
    assert_eq!(t.emu.latest_qr().unwrap().uid, uid);
}

#[tokio::test]
async fn authorization_code_flow() {
    let t = setup().await;
    let redirect = format!("https://{DEFAULT_REDIRECT_DOMAIN}/cb");
    let q = [
        ("client_id", DEFAULT_APP_ID),
        ("redirect_uri", redirect.as_str()),
        ("response_type", "code"),
        ("state", "xyz"),
    ];
    // not logged in → login page
    let r = t.http.get(t.url(PASS, "/open/authorize")).query(&q).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert!(r.headers()["location"].to_str().unwrap().starts_with("https://passport.115.com/"));
    t.emu.set_browser_user(Some(t.user));
    let r = t.http.get(t.url(PASS, "/open/authorize")).query(&q).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with(&format!("{redirect}?code=")), "{loc}");
    assert!(loc.ends_with("&state=xyz"));
    let code_v = loc.split("code=").nth(1).unwrap().split('&').next().unwrap().to_string();

    let bad_rt: Value = t
        .http
        .get(t.url(PASS, "/open/authorize"))
        .query(&[
            ("client_id", DEFAULT_APP_ID),
            ("redirect_uri", "https://evil.example.net/cb"),
            ("response_type", "code"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(code(&bad_rt), 40140131);

    let mut form = vec![
        ("client_id", DEFAULT_APP_ID),
        ("client_secret", "wrong"),
        ("code", code_v.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("grant_type", "authorization_code"),
    ];
    assert_eq!(code(&t.passport("/open/authCodeToToken", &form).await), 40140133);
    form[1].1 = DEFAULT_APP_SECRET;
    let v = t.passport("/open/authCodeToToken", &form).await;
    assert_eq!(v["state"], 1, "{v}");
    assert_eq!(code(&t.passport("/open/authCodeToToken", &form).await), 40140134, "code is single use");
}
