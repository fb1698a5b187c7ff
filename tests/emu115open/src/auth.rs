//! Passport API (ref §2): device code + PKCE, QR status long poll, token exchange,
//! authorization-code flow, refresh; and the OpenList online token broker (ref §2.8).

use std::sync::Arc;

use md5::Md5;
use serde_json::{json, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::state::{Inner, RefreshError};
use crate::util::{b64_lenient, pass_err, pass_ok, rand_alnum, rand_hex, Req, Resp};
use crate::{GarbageRefreshStyle, QRCODE_HOST};

pub(crate) async fn passport(inner: &Arc<Inner>, r: &Req) -> Resp {
    let m = r.method.as_str();
    match r.path.as_str() {
        // The docs put the long poll on qrcodeapi only; p115client sends the /open/* calls
        // to either host (ref §1.1), so those are served on both.
        "/get/status/" | "/get/status" if r.host == QRCODE_HOST && m == "GET" => qr_status(inner, r).await,
        "/open/authDeviceCode" if m == "POST" => device_code(inner, r),
        "/open/deviceCodeToToken" if m == "POST" => device_token(inner, r),
        "/open/refreshToken" if m == "POST" => {
            let token = r.f("refresh_token");
            do_refresh(inner, token.as_deref())
        }
        "/open/authorize" if m == "GET" => authorize(inner, r),
        "/open/authCodeToToken" if m == "POST" => auth_code_token(inner, r),
        "/get/status/"
        | "/get/status"
        | "/open/authDeviceCode"
        | "/open/deviceCodeToToken"
        | "/open/refreshToken"
        | "/open/authorize"
        | "/open/authCodeToToken" => Resp::text(405, "method not allowed"),
        _ => Resp::text(404, "not found"),
    }
}

/// Check `client_id`: missing or non-numeric → 40140100, unknown → 40140107.
fn check_app(inner: &Inner, client_id: Option<&str>) -> Result<String, Resp> {
    let Some(id) = client_id.filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit())) else {
        return Err(pass_err(40140100, "client_id 错误"));
    };
    if !inner.lock().apps.contains_key(id) {
        return Err(pass_err(40140107, "应用不存在"));
    }
    Ok(id.to_string())
}

fn qr_sign(uid: &str, time: u64) -> String {
    hex::encode(Sha1::digest(format!("emu115open|{uid}|{time}").as_bytes()))
}

fn device_code(inner: &Arc<Inner>, r: &Req) -> Resp {
    let app = match check_app(inner, r.f("client_id").as_deref()) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let Some(challenge) = r.f("code_challenge") else {
        return pass_err(40140101, "code_challenge 必填");
    };
    // Method names as documented, lowercase (stricter: no case folding).
    let method = r.f("code_challenge_method").unwrap_or_default();
    if !matches!(method.as_str(), "sha256" | "sha1" | "md5") {
        return pass_err(40140102, "code_challenge_method 必须是 sha256、sha1、md5 之一");
    }
    let now_ms = inner.now_ms();
    let uid = rand_hex(32);
    let time = now_ms / 1000;
    let sign = qr_sign(&uid, time);
    {
        let mut st = inner.lock();
        st.qr.insert(
            uid.clone(),
            crate::state::QrState {
                uid: uid.clone(),
                app,
                time,
                sign: sign.clone(),
                challenge: challenge.into_bytes(),
                method,
                created_ms: now_ms,
                status: 0,
                version: 0,
                reported: 0,
                user: None,
            },
        );
        st.qr_order.push(uid.clone());
    }
    pass_ok(json!({
        "uid": uid,
        "time": time,
        "qrcode": format!("https://115.com/scan/dg-{uid}"),
        "sign": sign,
    }))
}

/// Long poll (ref §2.1 step 2).  Returns at once if the status changed since the last
/// answer for this uid, else waits for a change up to `qr_poll_timeout`.
async fn qr_status(inner: &Arc<Inner>, r: &Req) -> Resp {
    let Some(uid) = r.q("uid") else {
        return pass_err(40100000, "参数缺失");
    };
    let Some(sign) = r.q("sign") else {
        return pass_err(40140103, "sign 必填");
    };
    let time: Option<u64> = r.q("time").and_then(|t| t.parse().ok());
    let timeout = inner.lock().opts.qr_poll_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = inner.qr_notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let now_ms = inner.now_ms();
            let mut st = inner.lock();
            let ttl = st.opts.qr_ttl.as_millis() as u64;
            let Some(q) = st.qr.get_mut(&uid) else {
                return qr_invalid(-1, "二维码无效");
            };
            if q.sign != sign || time != Some(q.time) {
                return pass_err(40140104, "sign 校验失败");
            }
            if matches!(q.status, 0 | 1) && now_ms >= q.created_ms + ttl {
                q.status = -1;
                q.version += 1;
            }
            match q.status {
                -1 => return qr_invalid(-1, "二维码已过期"),
                -2 => return qr_invalid(-2, "已取消"),
                3 => return qr_invalid(-1, "二维码已使用"),
                _ => {}
            }
            // "Changed" = differs from what this uid's poll last reported.
            if q.version != q.reported {
                q.reported = q.version;
                return qr_answer(q.status);
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            // Timed out without change: state 1 ("keep polling").
            let status = inner.lock().qr.get(&uid).map(|q| q.status).unwrap_or(0);
            return qr_answer(status);
        }
    }
}

fn qr_answer(status: i32) -> Resp {
    match status {
        // "data is only filled after the 115 app has scanned" [docs]: while waiting the
        // stricter reading is an empty data object without `status`.
        0 => pass_ok(json!({})),
        1 => pass_ok(json!({"msg": "扫码成功", "status": 1, "version": ""})),
        _ => pass_ok(json!({"msg": "授权成功", "status": 2, "version": ""})),
    }
}

/// Envelope `state 0` = "QR invalid, stop" [docs]; `data.status` -1/-2 as p115client.
fn qr_invalid(status: i32, msg: &str) -> Resp {
    Resp::json(json!({
        "state": 0, "code": 0, "message": msg,
        "data": {"msg": msg, "status": status, "version": ""},
        "error": msg, "errno": 0
    }))
}

fn pkce_ok(method: &str, verifier: &str, challenge: &[u8]) -> bool {
    let Some(want) = b64_lenient(&String::from_utf8_lossy(challenge)) else {
        return false;
    };
    let got: Vec<u8> = match method {
        "sha256" => Sha256::digest(verifier.as_bytes()).to_vec(),
        "sha1" => Sha1::digest(verifier.as_bytes()).to_vec(),
        "md5" => Md5::digest(verifier.as_bytes()).to_vec(),
        _ => return false,
    };
    got == want
}

fn device_token(inner: &Arc<Inner>, r: &Req) -> Resp {
    let Some(uid) = r.f("uid") else {
        return pass_err(40100000, "参数缺失");
    };
    let verifier = r.f("code_verifier").unwrap_or_default();
    let n = verifier.chars().count();
    if !(43..=128).contains(&n) {
        return pass_err(40140112, "code_verifier 长度须为 43-128 位");
    }
    let now_ms = inner.now_ms();
    let result = {
        let mut st = inner.lock();
        let ttl = st.opts.qr_ttl.as_millis() as u64;
        let Some(q) = st.qr.get(&uid) else {
            // Unknown device code: not documented; inferred "authorization code check failed".
            return pass_err(40140134, "授权码校验失败");
        };
        if q.status != 2 || now_ms >= q.created_ms + ttl {
            // Not (yet) confirmed, already exchanged (single use) or expired [inferred].
            return pass_err(40140134, "授权码校验失败");
        }
        if !pkce_ok(&q.method, &verifier, &q.challenge) {
            return pass_err(40140113, "code_verifier 校验失败");
        }
        let (user, app) = (q.user.unwrap(), q.app.clone());
        let res = st.new_grant(user, &app, now_ms);
        if res.is_ok() {
            let q = st.qr.get_mut(&uid).unwrap();
            q.status = 3;
            q.version += 1;
        }
        res
    };
    inner.qr_notify.notify_waiters();
    match result {
        Ok(t) => pass_ok(
            json!({"access_token": t.access_token, "refresh_token": t.refresh_token, "expires_in": t.expires_in}),
        ),
        Err(code) => pass_err(code, "超出授权应用个数上限"),
    }
}

/// `POST /open/refreshToken` (ref §2.3, §2.4).
pub(crate) fn do_refresh(inner: &Inner, token: Option<&str>) -> Resp {
    let Some(token) = token else {
        return pass_err(40100000, "参数缺失");
    };
    let now_ms = inner.now_ms();
    let mut st = inner.lock();
    match st.refresh(token, now_ms) {
        Ok(t) => {
            let expires_in = st.opts.expires_in_on_refresh.unwrap_or(t.expires_in);
            pass_ok(json!({"access_token": t.access_token, "refresh_token": t.refresh_token, "expires_in": expires_in}))
        }
        Err(RefreshError::Garbage) => match st.opts.garbage_refresh {
            // alist#8157 verbatim: `error: refresh token error, errno: 0`.
            GarbageRefreshStyle::ErrorString => Resp::json(json!({
                "state": 0, "code": 0, "message": "", "data": {}, "error": "refresh token error", "errno": 0
            })),
            GarbageRefreshStyle::Code(c) => pass_err(c, "refresh_token 校验失败"),
        },
        // OL-docs verbatim message.
        Err(RefreshError::NoAuth) => pass_err(40140116, "no auth"),
        Err(RefreshError::Expired) => pass_err(40140119, "refresh_token 已过期"),
        Err(RefreshError::TooFrequent) => pass_err(40140117, "access_token 刷新太频繁"),
    }
}

/// `GET /open/authorize` (ref §2.2): 302 to `redirect_uri?code=…&state=…` when a browser
/// user is set ([`crate::Emu115Open::set_browser_user`]), else 302 to a login page.
fn authorize(inner: &Arc<Inner>, r: &Req) -> Resp {
    let app = match check_app(inner, r.q("client_id").as_deref()) {
        Ok(a) => a,
        Err(e) => return e,
    };
    if r.q("response_type").as_deref() != Some("code") {
        return pass_err(40140127, "response_type 错误");
    }
    let redirect = r.q("redirect_uri").unwrap_or_default();
    let Some((scheme, rest)) = redirect.split_once("://") else {
        return pass_err(40140128, "redirect_uri 缺少协议");
    };
    if scheme.is_empty() {
        return pass_err(40140128, "redirect_uri 缺少协议");
    }
    let domain = rest.split(['/', '?', '#']).next().unwrap_or("").split(':').next().unwrap_or("").to_string();
    if domain.is_empty() {
        return pass_err(40140129, "redirect_uri 缺少域名");
    }
    let now_ms = inner.now_ms();
    let mut st = inner.lock();
    match st.apps.get(&app).and_then(|a| a.redirect_domain.clone()) {
        None => return pass_err(40140130, "未配置回调域名"),
        Some(d) if d != domain => return pass_err(40140131, "redirect_uri 域名不允许"),
        _ => {}
    }
    let Some(user) = st.browser_user else {
        return Resp::empty(302)
            .header("location", format!("https://passport.115.com/?ct=login&goto={}", crate::util::pct(&r.raw_query)));
    };
    let code = rand_alnum(32);
    st.auth_codes
        .insert(code.clone(), crate::state::AuthCode { user, app, redirect_uri: redirect.clone(), created_ms: now_ms });
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let mut loc = format!("{redirect}{sep}code={code}");
    if let Some(s) = r.q("state") {
        loc.push_str(&format!("&state={}", crate::util::pct(&s)));
    }
    Resp::empty(302).header("location", loc)
}

fn auth_code_token(inner: &Arc<Inner>, r: &Req) -> Resp {
    if r.f("grant_type").as_deref() != Some("authorization_code") {
        return pass_err(40140132, "grant_type 错误");
    }
    let app = match check_app(inner, r.f("client_id").as_deref()) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let now_ms = inner.now_ms();
    let mut st = inner.lock();
    let secret = st.apps[&app].secret.clone();
    if r.f("client_secret").as_deref() != Some(secret.as_str()) {
        return pass_err(40140133, "client_secret 校验失败");
    }
    let code = r.f("code").unwrap_or_default();
    // Codes are single use and short-lived (10 min) [inferred].
    let Some(ac) = st.auth_codes.remove(&code).filter(|c| now_ms < c.created_ms + 600_000) else {
        return pass_err(40140134, "授权码校验失败");
    };
    if ac.app != app {
        return pass_err(40140135, "client_id 校验失败");
    }
    if r.f("redirect_uri").as_deref() != Some(ac.redirect_uri.as_str()) {
        return pass_err(40140136, "redirect_uri 校验失败");
    }
    match st.new_grant(ac.user, &app, now_ms) {
        Ok(t) => pass_ok(
            json!({"access_token": t.access_token, "refresh_token": t.refresh_token, "expires_in": t.expires_in}),
        ),
        Err(c) => pass_err(c, "超出授权应用个数上限"),
    }
}

/// OpenList online API (ref §2.8): `GET /115cloud/renewapi?refresh_ui=…`.
pub(crate) fn broker(inner: &Arc<Inner>, r: &Req) -> Resp {
    if r.path != "/115cloud/renewapi" {
        return Resp::text(404, "not found");
    }
    let Some(token) = r.q("refresh_ui") else {
        return Resp::json_status(500, json!({"text": "缺少刷新令牌"}));
    };
    // The broker POSTs refresh_token=<refresh_ui> to passportapi; 115 sees that request.
    *inner.lock().counters.entry(format!("{}/open/refreshToken", crate::PASSPORT_HOST)).or_insert(0) += 1;
    let resp = do_refresh(inner, Some(&token));
    let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    let data = &body["data"];
    let truthy = data["refresh_token"].as_str().is_some_and(|s| !s.is_empty());
    if truthy {
        Resp::json(json!({"refresh_token": data["refresh_token"], "access_token": data["access_token"]}))
    } else {
        // `{"text": <115 body's "error">}`; JSON.stringify drops an undefined `text` → `{}`.
        match body.get("error") {
            Some(e) if !e.is_null() => Resp::json_status(500, json!({"text": e})),
            _ => Resp::json_status(500, json!({})),
        }
    }
}
