//! Token lifecycle and grant model of ref §2.3–§2.5 and §13.2.

mod common;

use std::time::Duration;

use common::*;
use emu115open::{GarbageRefreshStyle, GrantState, Options, DEFAULT_APP_ID};
use serde_json::Value;

#[tokio::test]
async fn refresh_rotates_and_old_token_is_dead() {
    let t = setup().await;
    let r1 = t.refresh(&t.tok.refresh_token).await;
    assert_eq!(r1["state"], 1, "{r1}");
    assert_eq!(r1["data"]["expires_in"], 7200);
    let new_rt = r1["data"]["refresh_token"].as_str().unwrap().to_string();
    let new_at = r1["data"]["access_token"].as_str().unwrap().to_string();
    assert_ne!(new_rt, t.tok.refresh_token);
    assert!(!t.emu.is_refresh_token_live(&t.tok.refresh_token));
    assert!(t.emu.is_refresh_token_live(&new_rt));

    // reuse of the rotated-away token → 40140116 "no auth" (passport shape, numeric state)
    let again = t.refresh(&t.tok.refresh_token).await;
    assert_eq!(again["state"], 0);
    assert_eq!(code(&again), 40140116);
    assert_eq!(again["message"], "no auth");
    assert_eq!(again["errno"], 40140116);
    assert_eq!(again["data"], serde_json::json!({}));

    // the new token still works; the old access token died with the rotation
    let old = t.get("/open/user/info", &[]).await;
    assert_eq!(old["state"], false);
    assert_eq!(code(&old), 40140125);
    assert_eq!(old["errno"], 40140125);
    let ok = t.get_with(&new_at, "/open/user/info", &[]).await;
    assert_eq!(ok["state"], true);

    assert_eq!(t.emu.refresh_count(t.tok.grant), 1);
    assert_eq!(t.emu.refresh_attempts(t.tok.grant), 2);
    let gi = t.emu.grant_info(t.tok.grant).unwrap();
    assert_eq!(gi.dead_refresh_tokens, vec![t.tok.refresh_token.clone()]);
    assert_eq!(gi.refresh_token, new_rt);
}

#[tokio::test]
async fn refresh_keeps_grant_lifetime() {
    let t = setup_with(Options { grant_ttl: Duration::from_secs(100), ..Options::default() }).await;
    let before = t.emu.grant_info(t.tok.grant).unwrap().expires_unix;
    t.emu.advance(Duration::from_secs(60));
    let r = t.refresh(&t.tok.refresh_token).await;
    assert_eq!(r["state"], 1);
    assert_eq!(t.emu.grant_info(t.tok.grant).unwrap().expires_unix, before, "not extended by refreshing");
    t.emu.advance(Duration::from_secs(41));
    let rt = r["data"]["refresh_token"].as_str().unwrap();
    let e = t.refresh(rt).await;
    assert_eq!(code(&e), 40140119, "{e}");
    // and its access token is invalid too
    let at = r["data"]["access_token"].as_str().unwrap();
    assert_eq!(code(&t.get_with(at, "/open/user/info", &[]).await), 40140125);
}

#[tokio::test]
async fn access_token_expires() {
    let t = setup_with(Options { access_token_ttl: Duration::from_secs(30), ..Options::default() }).await;
    assert_eq!(t.tok.expires_in, 30);
    assert_eq!(t.get("/open/user/info", &[]).await["state"], true);
    t.emu.advance(Duration::from_secs(29));
    assert_eq!(t.get("/open/user/info", &[]).await["state"], true);
    t.emu.advance(Duration::from_secs(1));
    let v = t.get("/open/user/info", &[]).await;
    assert_eq!(v["state"], false);
    assert_eq!(code(&v), 40140125);
    // the refresh token is still fine
    let r = t.refresh(&t.tok.refresh_token).await;
    assert_eq!(r["state"], 1);
    assert_eq!(r["data"]["expires_in"], 30);
}

#[tokio::test]
async fn bearer_missing_or_garbage_is_40140123() {
    let t = setup().await;
    let v: Value = t.http.get(t.url(PRO, "/open/user/info")).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["state"], false);
    assert_eq!(code(&v), 40140123);
    let v = t.get_with("garbage", "/open/user/info", &[]).await;
    assert_eq!(code(&v), 40140123);
    assert_eq!(v["message"], "access_token 格式错误");
    assert!(t.emu.is_access_token_live(&t.tok.access_token));
}

#[tokio::test]
async fn min_refresh_interval_gives_40140117_and_keeps_token() {
    let t = setup_with(Options { min_refresh_interval: Duration::from_secs(60), ..Options::default() }).await;
    // counted from the grant's issuance (stricter reading)
    let e = t.refresh(&t.tok.refresh_token).await;
    assert_eq!(code(&e), 40140117, "{e}");
    assert_eq!(e["state"], 0);
    assert!(t.emu.is_refresh_token_live(&t.tok.refresh_token), "back-off case: token not consumed");
    t.emu.advance(Duration::from_secs(60));
    let r = t.refresh(&t.tok.refresh_token).await;
    assert_eq!(r["state"], 1, "{r}");
    let rt2 = r["data"]["refresh_token"].as_str().unwrap().to_string();
    t.emu.advance(Duration::from_secs(59));
    assert_eq!(code(&t.refresh(&rt2).await), 40140117);
    t.emu.advance(Duration::from_secs(1));
    assert_eq!(t.refresh(&rt2).await["state"], 1);
    let gi = t.emu.grant_info(t.tok.grant).unwrap();
    assert_eq!((gi.refresh_count, gi.refresh_too_frequent, gi.refresh_attempts), (2, 2, 4));
}

#[tokio::test]
async fn grant_limit_evicts_oldest() {
    let t = setup().await; // default limit 2 (OL-docs)
    let g1 = t.tok.clone();
    let g2 = t.emu.authorize(t.user, DEFAULT_APP_ID);
    assert_eq!(t.emu.live_refresh_tokens(t.user, DEFAULT_APP_ID).len(), 2);
    let g3 = t.emu.authorize(t.user, DEFAULT_APP_ID);
    assert_eq!(t.emu.grant_info(g1.grant).unwrap().state, GrantState::Evicted);
    assert_eq!(t.emu.grant_info(g2.grant).unwrap().state, GrantState::Live);
    let live = t.emu.live_refresh_tokens(t.user, DEFAULT_APP_ID);
    assert_eq!(live, vec![g2.refresh_token.clone(), g3.refresh_token.clone()]);
    // evicted: refresh → 40140116 no auth, access → 40140125
    let e = t.refresh(&g1.refresh_token).await;
    assert_eq!((code(&e), e["message"].as_str().unwrap()), (40140116, "no auth"));
    assert_eq!(code(&t.get_with(&g1.access_token, "/open/user/info", &[]).await), 40140125);
    assert_eq!(t.get_with(&g2.access_token, "/open/user/info", &[]).await["state"], true);
    // a refresh is not a new acquisition: it does not evict anything
    let r = t.refresh(&g2.refresh_token).await;
    assert_eq!(r["state"], 1);
    assert_eq!(t.emu.grant_info(g3.grant).unwrap().state, GrantState::Live);
    // grants of another app or another user are independent
    t.emu.register_app("100200300", "s", None);
    let other = t.emu.authorize(t.user, "100200300");
    assert_eq!(t.emu.grant_info(g2.grant).unwrap().state, GrantState::Live);
    assert_eq!(t.emu.grant_info(other.grant).unwrap().state, GrantState::Live);
}

#[tokio::test]
async fn grant_limit_three() {
    let t = setup_with(Options { grant_limit: 3, ..Options::default() }).await;
    let g2 = t.emu.authorize(t.user, DEFAULT_APP_ID);
    let _g3 = t.emu.authorize(t.user, DEFAULT_APP_ID);
    assert_eq!(t.emu.grant_info(t.tok.grant).unwrap().state, GrantState::Live);
    let _g4 = t.emu.authorize(t.user, DEFAULT_APP_ID);
    assert_eq!(t.emu.grant_info(t.tok.grant).unwrap().state, GrantState::Evicted);
    assert_eq!(t.emu.grant_info(g2.grant).unwrap().state, GrantState::Live);
}

#[tokio::test]
async fn revocation() {
    let t = setup().await;
    t.emu.revoke(t.tok.grant);
    let e = t.refresh(&t.tok.refresh_token).await;
    assert_eq!(code(&e), 40140116);
    assert_eq!(code(&t.get("/open/user/info", &[]).await), 40140125);
    assert!(t.emu.live_refresh_tokens(t.user, DEFAULT_APP_ID).is_empty());
}

#[tokio::test]
async fn garbage_refresh_token_shapes() {
    let t = setup().await;
    // alist#8157 verbatim: code 0 but "error":"refresh token error", errno 0
    let v = t.refresh("not-a-token").await;
    assert_eq!(v["state"], 0);
    assert_eq!(v["code"], 0);
    assert_eq!(v["error"], "refresh token error");
    assert_eq!(v["errno"], 0);
    t.emu.configure(|o| o.garbage_refresh = GarbageRefreshStyle::Code(40140120));
    let v = t.refresh("not-a-token").await;
    assert_eq!(code(&v), 40140120);
    // missing parameter
    let v = t.passport("/open/refreshToken", &[]).await;
    assert_eq!(v["state"], 0);
    assert_ne!(code(&v), 0);
}

#[tokio::test]
async fn refresh_accepts_multipart_form() {
    let t = setup().await;
    // multipart/form-data as restic-115 sends it (ref §1.2), built by hand
    let body = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"refresh_token\"\r\n\r\n{}\r\n--XyZ--\r\n",
        t.tok.refresh_token
    );
    let v: Value = t
        .http
        .post(t.url(PASS, "/open/refreshToken"))
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["state"], 1, "{v}");
    // and on the qrcodeapi host too (p115client)
    let rt = v["data"]["refresh_token"].as_str().unwrap();
    let v: Value = t
        .http
        .post(t.url(QR, "/open/refreshToken"))
        .form(&[("refresh_token", rt)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["state"], 1, "{v}");
    assert_eq!(t.emu.refresh_count(t.tok.grant), 2);
    assert_eq!(t.emu.request_count("passportapi.115.com/open/refreshToken"), 1);
    assert_eq!(t.emu.request_count("/qrcodeapi.115.com/open/refreshToken"), 1);
}

#[tokio::test]
async fn expires_in_on_refresh_knob() {
    let t = setup_with(Options { expires_in_on_refresh: Some(2_592_000), ..Options::default() }).await;
    let r = t.refresh(&t.tok.refresh_token).await;
    assert_eq!(r["data"]["expires_in"], 2_592_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refresh_with_same_token_only_one_wins() {
    let t = setup().await;
    let url = t.url(PASS, "/open/refreshToken");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (http, url, rt) = (t.http.clone(), url.clone(), t.tok.refresh_token.clone());
            tokio::spawn(async move {
                http.post(url).form(&[("refresh_token", rt)]).send().await.unwrap().json::<Value>().await.unwrap()
            })
        })
        .collect();
    let mut res = Vec::new();
    for h in handles {
        res.push(h.await.unwrap());
    }
    let ok = res.iter().filter(|v| v["state"] == 1).count();
    let dead = res.iter().filter(|v| code(v) == 40140116).count();
    assert_eq!((ok, dead), (1, 3));
}

#[tokio::test]
async fn broker_renewapi() {
    let t = setup().await;
    let url = t.url("api.oplist.org", "/115cloud/renewapi");
    let r = t.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 500);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, serde_json::json!({"text": "缺少刷新令牌"}));

    let r = t
        .http
        .get(&url)
        .query(&[("refresh_ui", t.tok.refresh_token.as_str()), ("server_use", "true"), ("driver_txt", "115cloud_go")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let obj = v.as_object().unwrap();
    assert_eq!(obj.len(), 2, "only the two tokens: {v}");
    assert!(t.emu.is_refresh_token_live(v["refresh_token"].as_str().unwrap()));
    assert_eq!(t.emu.refresh_count(t.tok.grant), 1);

    // the old token is dead now: 500 {"text": <115's error field>}
    let r = t.http.get(&url).query(&[("refresh_ui", t.tok.refresh_token.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 500);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, serde_json::json!({"text": "no auth"}));
}

#[tokio::test]
async fn apps_per_user_limit() {
    let t = setup_with(Options { max_apps_per_user: Some(1), ..Options::default() }).await;
    t.emu.register_app("100200300", "s", None);
    // same app again is fine
    t.emu.authorize(t.user, DEFAULT_APP_ID);
    let verifier = "v".repeat(50);
    let v = device_flow_tokens(&t, "100200300", &verifier).await;
    assert_eq!(code(&v), 40140122, "{v}");
}

async fn device_flow_tokens(t: &T, app: &str, verifier: &str) -> Value {
    use base64::Engine;
    use md5::Digest;
    let ch = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(verifier.as_bytes()));
    let dc = t
        .passport(
            "/open/authDeviceCode",
            &[("client_id", app), ("code_challenge", &ch), ("code_challenge_method", "md5")],
        )
        .await;
    let uid = dc["data"]["uid"].as_str().unwrap();
    assert!(t.emu.qr_scan(uid, t.user));
    assert!(t.emu.qr_confirm(uid));
    t.passport("/open/deviceCodeToToken", &[("uid", uid), ("code_verifier", verifier)]).await
}
