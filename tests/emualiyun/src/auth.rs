//! Tokens and logins: consumer refresh (ref §2.1), device sessions (§3.3), passport QR (§2.6),
//! open OAuth and its QR/PKCE flow (§2.3, §2.5, §2.6), and the token brokers (§2.4).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use emukit::util::{rand_from, rand_hex, rfc3339, ALNUM};
use emukit::Reply;
use serde_json::{json, Value};

use crate::common::{consumer_auth, err, missing, opt_str, opt_u64, parse_body, req_str, session_key, Call};
use crate::state::{AuthCode, DeviceSession, OpenQr, PassportQr, RtState, Ticket, TokenKind};
use crate::{crypto, Inner, SignatureMode, BROKER_CLIENT_ID};

// ---------------------------------------------------------------------- consumer refresh (§2.1)

pub(crate) fn consumer_token(call: &mut Call) -> Reply {
    let body = &call.body;
    let rt = match opt_str(body, "refresh_token") {
        Ok(Some(t)) if !t.is_empty() => t,
        Ok(_) => return missing("refresh_token"),
        Err(r) => return r,
    };
    match opt_str(body, "grant_type") {
        Ok(Some(g)) if g == "refresh_token" => {}
        Ok(None) => return missing("grant_type"),
        _ => return err(400, "InvalidParameter.GrantType", "The input parameter grant_type is not valid."),
    }
    let o = &call.opts;
    let now = call.now;
    let mut st = call.inner.st();
    let bad = || err(400, "InvalidParameter.RefreshToken", "The input parameter refresh_token is not valid.");
    let Some(r) = st.refresh.get(&rt).cloned() else { return bad() };
    if r.kind == TokenKind::Open {
        return bad();
    }
    if r.state != RtState::Live {
        *st.counters.refresh_reused.entry(r.user_id.clone()).or_default() += 1;
        return bad();
    }
    if r.expires_ms <= now {
        return err(400, "RefreshTokenExpired", "refresh token is expired");
    }
    let Some(user) = st.users.get(&r.user_id).cloned() else { return bad() };
    if o.consumer_rt_single_use {
        st.refresh.get_mut(&rt).expect("token").state = RtState::Used;
    }
    let ttl = o.access_token_ttl.as_millis() as i64;
    let at = st.issue_access(&user.user_id, r.kind, None, ttl, now);
    let new_rt = st.issue_refresh(&user.user_id, r.kind, None, o.consumer_rt_ttl.as_millis() as i64, now, false);
    *st.counters.refresh_ok.entry(user.user_id.clone()).or_default() += 1;
    Reply::json(&json!({
        "access_token": at,
        "refresh_token": new_rt,
        "expires_in": o.access_token_ttl.as_secs(),
        "token_type": "Bearer",
        "user_id": user.user_id,
        "user_name": user.name,
        "nick_name": user.nick_name,
        "avatar": "",
        "default_drive_id": user.default_drive_id,
        "default_sbox_drive_id": user.sbox_drive_id,
        "role": "user",
        "status": "enabled",
        "expire_time": rfc3339((now + ttl) / 1000),
        "state": "",
        "pin_setup": true,
        "is_first_login": false,
        "need_rp_verify": false,
        "device_id": rand_hex(32),
        "domain_id": crate::state::DOMAIN_ID,
        "exist_link": [],
        "need_link": false,
        "user_data": {},
    }))
}

// ---------------------------------------------------------------------- device sessions (§3.3)

fn session_ok() -> Reply {
    Reply::json(&json!({"result": true, "success": true, "code": null, "message": null}))
}

pub(crate) fn create_session(call: &mut Call) -> Reply {
    let auth = match consumer_auth(call) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let device = call.header("x-device-id").unwrap_or_default();
    let sig = call.header("x-signature").unwrap_or_default();
    let bad = |m: &str| err(400, "DeviceSessionSignatureInvalid", m);
    if device.is_empty() {
        return bad("The signature is invalid");
    }
    let pub_key = match req_str(&call.body, "pubKey") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let lenient = call.opts.signature != SignatureMode::Strict;
    let Some(key) = crypto::parse_pubkey(&pub_key, lenient) else {
        return err(400, "InvalidParameter.PubKey", "The input parameter pubKey is not valid.");
    };
    let nonce = match opt_u64(&call.body, "nonce") {
        Ok(n) => n.unwrap_or(0),
        Err(r) => return r,
    };
    if call.opts.signature == SignatureMode::Strict {
        // The signature is made with the key being registered (ref §3.6 step 1).
        let ok = call.opts.app_ids.iter().any(|app| {
            let msg = format!("{app}:{device}:{}:{nonce}", auth.user_id);
            crypto::verify_signature(&key, &msg, &sig, false).is_ok()
        });
        if !ok {
            return bad("The signature is invalid");
        }
    }
    let mut st = call.inner.st();
    let k = session_key(&auth.user_id, &device);
    let others =
        st.sessions.values().filter(|s| s.user_id == auth.user_id && s.device_id != device && !s.kicked).count();
    if !st.sessions.contains_key(&k) && others >= call.opts.max_devices {
        return Reply::json(&json!({"result": false, "success": false, "code": "DeviceLimitExceeded",
            "message": "too many logged-in devices"}));
    }
    st.sessions.insert(
        k,
        DeviceSession {
            user_id: auth.user_id.clone(),
            device_id: device,
            pubkey_hex: crypto::pubkey_hex(&key),
            created_ms: call.now,
            renewed_ms: call.now,
            kicked: false,
        },
    );
    st.tokens_dirty = true;
    session_ok()
}

pub(crate) fn renew_session(call: &mut Call) -> Reply {
    let auth = match consumer_auth(call) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Err(r) = crate::common::check_device(call, &auth) {
        return r;
    }
    let device = call.header("x-device-id").unwrap_or_default();
    let mut st = call.inner.st();
    if let Some(s) = st.sessions.get_mut(&session_key(&auth.user_id, &device)) {
        s.renewed_ms = call.now;
    }
    session_ok()
}

pub(crate) fn device_logout(call: &mut Call) -> Reply {
    let auth = match consumer_auth(call) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let device = call.header("x-device-id").unwrap_or_default();
    call.inner.st().sessions.remove(&session_key(&auth.user_id, &device));
    session_ok()
}

pub(crate) fn device_list(call: &mut Call) -> Reply {
    let auth = match consumer_auth(call) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let st = call.inner.st();
    let devices: Vec<Value> = st
        .sessions
        .values()
        .filter(|s| s.user_id == auth.user_id && !s.kicked)
        .map(|s| {
            json!({"deviceId": s.device_id, "deviceName": "", "modelName": "",
            "createdAt": s.created_ms, "updatedAt": s.renewed_ms})
        })
        .collect();
    Reply::json(&json!({"result": {"devices": devices}, "success": true, "code": null, "message": null}))
}

// ---------------------------------------------------------------------- passport QR (§2.6)

pub(crate) fn passport(call: &mut Call) -> Reply {
    let req = call.req;
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/newlogin/qrcode/generate.do") => {
            // `appName=aliyun_drive` is the one parameter every client sends (ref §2.6).
            if req.query_param("appName").as_deref() != Some("aliyun_drive") {
                return Reply::json(
                    &json!({"content": {"data": {}, "status": -1, "success": false}, "hasError": true}),
                );
            }
            let t = call.now;
            let ck = rand_hex(32);
            let lg = rand_from(ALNUM, 32);
            call.inner.st().passport_qr.insert(
                ck.clone(),
                PassportQr {
                    ck: ck.clone(),
                    t,
                    lg_token: lg.clone(),
                    status: "NEW".into(),
                    user_id: None,
                    created_ms: call.now,
                    tokens: None,
                    confirmed_polls: 0,
                },
            );
            let code = format!("{}/qrcodeCheck.htm?lgToken={lg}&_from=havana", call.inner.endpoint(&req.host));
            Reply::json(&json!({"content": {"data": {"t": t, "codeContent": code, "ck": ck, "resultCode": 100},
                "status": 0, "success": true}, "hasError": false}))
        }
        ("POST", "/newlogin/qrcode/query.do") => passport_query(call),
        _ => Reply::html(404, "<html><body>404</body></html>"),
    }
}

fn passport_query(call: &mut Call) -> Reply {
    let req = call.req;
    let form = req.form();
    let query = req.query_pairs();
    let get = |k: &str| {
        form.iter().find(|(a, _)| a == k).or_else(|| query.iter().find(|(a, _)| a == k)).map(|(_, v)| v.clone())
    };
    let (t, ck) = (get("t").unwrap_or_default(), get("ck").unwrap_or_default());
    let answer = |status: &str, data_extra: Value| {
        let (num, ok) = match status {
            "NEW" => (0, true),
            "SCANED" => (1, true),
            "CONFIRMED" => (2, true),
            "CANCELED" => (-2, false),
            _ => (-1, false),
        };
        let mut data = json!({"qrCodeStatus": status, "resultCode": 100, "t": t, "ck": ck});
        if let (Some(d), Some(x)) = (data.as_object_mut(), data_extra.as_object()) {
            d.extend(x.clone());
        }
        Reply::json(&json!({"content": {"data": data, "status": num, "success": ok}, "hasError": false}))
    };
    let opts = call.opts.clone();
    let mut st = call.inner.st();
    let Some(q) = st.passport_qr.get_mut(&ck) else { return answer("EXPIRED", json!({})) };
    if q.t.to_string() != t {
        return answer("EXPIRED", json!({}));
    }
    if q.status != "CONFIRMED" && call.now - q.created_ms > opts.qr_ttl.as_millis() as i64 {
        q.status = "EXPIRED".into();
    }
    if q.status != "CONFIRMED" {
        let s = q.status.clone();
        return answer(&s, json!({}));
    }
    q.confirmed_polls += 1;
    if q.confirmed_polls > 1 && !opts.qr_repeat_confirmed {
        return answer("EXPIRED", json!({}));
    }
    let (at, rt) = q.tokens.clone().expect("confirmed pair");
    let user_id = q.user_id.clone().expect("confirmed user");
    let Some(u) = st.users.get(&user_id).cloned() else { return answer("EXPIRED", json!({})) };
    let ttl = opts.access_token_ttl.as_secs();
    let nick: Vec<u8> = if opts.qr_gbk_nickname {
        // "测试" in GBK: the decoded document is GBK, not UTF-8 (ref §2.6 bizExt).
        vec![0xB2, 0xE2, 0xCA, 0xD4]
    } else {
        u.nick_name.as_bytes().to_vec()
    };
    let head = serde_json::to_string(&json!({
        "accessToken": at, "refreshToken": rt, "expiresIn": ttl, "tokenType": "Bearer",
        "expireTime": rfc3339(call.now / 1000 + ttl as i64), "userId": u.user_id, "userName": u.name,
        "avatar": "", "defaultDriveId": u.default_drive_id, "status": "enabled", "role": "user",
        "loginType": "normal", "isFirstLogin": false, "needLink": false, "needRpVerify": false,
        "dataPinSetup": true, "dataPinSaved": false, "existLink": [], "state": "",
        "requestId": crate::state::new_request_id(), "userData": {},
    }))
    .expect("json");
    // Splice the GBK bytes in as the value of "nickName".
    let mut doc = b"{\"pds_login_result\":".to_vec();
    doc.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    doc.extend_from_slice(b",\"nickName\":\"");
    doc.extend_from_slice(&nick);
    doc.extend_from_slice(b"\"}}");
    answer(
        "CONFIRMED",
        json!({"bizExt": STANDARD.encode(doc), "loginResult": "success", "loginSucResultAction": "loginResult",
            "st": rand_hex(32), "loginType": "taobao", "loginScene": "", "appEntrance": "web"}),
    )
}

pub(crate) fn passport_set(inner: &Inner, ck: &str, status: &str, user: Option<&str>) -> bool {
    let o = inner.opts();
    let now = inner.now();
    let mut st = inner.st();
    let Some(q) = st.passport_qr.get(ck).cloned() else { return false };
    let allowed = match status {
        "SCANED" => q.status == "NEW",
        "CONFIRMED" => q.status == "SCANED" || q.status == "NEW",
        "CANCELED" => q.status == "NEW" || q.status == "SCANED",
        _ => true,
    };
    if !allowed {
        return false;
    }
    let mut tokens = None;
    if status == "CONFIRMED" {
        let Some(uid) = user.filter(|u| st.users.contains_key(*u)) else { return false };
        let at = st.issue_access(uid, TokenKind::Mobile, None, o.access_token_ttl.as_millis() as i64, now);
        let rt = st.issue_refresh(uid, TokenKind::Mobile, None, o.consumer_rt_ttl.as_millis() as i64, now, false);
        tokens = Some((at, rt));
    }
    let q = st.passport_qr.get_mut(ck).expect("qr");
    q.status = status.to_string();
    if tokens.is_some() {
        q.tokens = tokens;
        q.user_id = user.map(Into::into);
    }
    let _ = st.save();
    true
}

// ---------------------------------------------------------------------- open OAuth (§2.3, §2.5)

pub(crate) fn mint_code(inner: &Inner, user_id: &str, client_id: &str, challenge: Option<(String, String)>) -> String {
    let code = rand_hex(32);
    let now = inner.now();
    inner.st().codes.insert(
        code.clone(),
        AuthCode {
            client_id: client_id.into(),
            user_id: user_id.into(),
            expires_ms: now + 600_000,
            used: false,
            challenge,
        },
    );
    code
}

pub(crate) fn mint_ticket(inner: &Inner, user_id: &str) -> String {
    let o = inner.opts();
    let now = inner.now();
    let mut st = inner.st();
    let rt = st.issue_refresh(
        user_id,
        TokenKind::Open,
        Some(BROKER_CLIENT_ID),
        o.open_rt_ttl.as_millis() as i64,
        now,
        false,
    );
    let ticket = rand_hex(24);
    st.tickets.insert(ticket.clone(), Ticket { user_id: user_id.into(), refresh_token: rt });
    let _ = st.save();
    ticket
}

/// `POST /oauth/access_token` (ref §2.3). Also the body of the AList and messense brokers.
pub(crate) fn open_token(call: &Call, body: &Value) -> Reply {
    let o = &call.opts;
    let now = call.now;
    let client_id = match req_str(body, "client_id") {
        Ok(c) => c,
        Err(_) => return err(400, "InvalidClientId", "client_id is invalid"),
    };
    let secret = opt_str(body, "client_secret").ok().flatten().unwrap_or_default();
    let verifier = opt_str(body, "code_verifier").ok().flatten().unwrap_or_default();
    let grant = opt_str(body, "grant_type").ok().flatten().unwrap_or_default();
    let mut st = call.inner.st();
    let Some(app) = st.apps.get(&client_id).cloned() else {
        return err(400, "InvalidClientId", "client_id is invalid");
    };
    let secret_ok = !secret.is_empty() && secret == app.secret;
    if !secret.is_empty() && !secret_ok {
        return err(400, "InvalidClientSecret", "client_secret is invalid");
    }
    let ttl = o.access_token_ttl.as_millis() as i64;
    let rt_ttl = o.open_rt_ttl.as_millis() as i64;
    let (user_id, pkce) = match grant.as_str() {
        "authorization_code" => {
            let code = opt_str(body, "code").ok().flatten().unwrap_or_default();
            let Some(c) = st.codes.get(&code).cloned() else { return err(400, "InvalidCode", "code is invalid") };
            if c.used || c.expires_ms <= now || c.client_id != client_id {
                return err(400, "InvalidCode", "code is invalid");
            }
            let pkce = match (&c.challenge, secret_ok) {
                (_, true) => false,
                (Some((ch, method)), false) if !verifier.is_empty() && crypto::pkce_matches(&verifier, ch, method) => {
                    true
                }
                (Some(_), false) if !verifier.is_empty() => {
                    return err(400, "InvalidCode", "code_verifier does not match")
                }
                _ => return err(400, "InvalidClientSecret", "client_secret is invalid"),
            };
            st.codes.get_mut(&code).expect("code").used = true;
            (c.user_id, pkce)
        }
        "refresh_token" => {
            let rt = opt_str(body, "refresh_token").ok().flatten().unwrap_or_default();
            let invalid = || err(o.open_refresh_invalid_status, "RefreshTokenInvalid", "refresh token is invalid");
            let Some(r) = st.refresh.get(&rt).cloned() else { return invalid() };
            if r.kind != TokenKind::Open || r.app.as_deref() != Some(client_id.as_str()) {
                return invalid();
            }
            if !secret_ok && !r.pkce {
                return err(400, "InvalidClientSecret", "client_secret is invalid");
            }
            if r.state != RtState::Live {
                *st.counters.refresh_reused.entry(r.user_id.clone()).or_default() += 1;
                return invalid();
            }
            if r.expires_ms <= now {
                return err(401, "RefreshTokenExpired", "refresh token is expired");
            }
            st.refresh.get_mut(&rt).expect("rt").state = RtState::Used;
            *st.counters.refresh_ok.entry(r.user_id.clone()).or_default() += 1;
            (r.user_id, r.pkce)
        }
        _ => return err(400, "InvalidGrantType", "grant_type is invalid"),
    };
    let at = st.issue_access(&user_id, TokenKind::Open, Some(&client_id), ttl, now);
    let rt = st.issue_refresh(&user_id, TokenKind::Open, Some(&client_id), rt_ttl, now, pkce);
    Reply::json(&json!({"token_type": "Bearer", "access_token": at, "refresh_token": rt, "expires_in": ttl / 1000}))
}

/// `POST /oauth/authorize/qrcode` (ref §2.5, §2.6).
pub(crate) fn open_qr_create(call: &Call) -> Reply {
    let b = &call.body;
    let client_id = opt_str(b, "client_id").ok().flatten().unwrap_or_default();
    let st_apps = call.inner.st().apps.get(&client_id).cloned();
    let Some(app) = st_apps else { return err(400, "InvalidClientId", "client_id is invalid") };
    let secret = opt_str(b, "client_secret").ok().flatten().unwrap_or_default();
    let challenge = opt_str(b, "code_challenge").ok().flatten();
    let method = opt_str(b, "code_challenge_method").ok().flatten().unwrap_or_else(|| "S256".into());
    if secret.is_empty() && challenge.is_none() {
        return err(400, "InvalidClientSecret", "client_secret is invalid");
    }
    if !secret.is_empty() && secret != app.secret {
        return err(400, "InvalidClientSecret", "client_secret is invalid");
    }
    if !b.get("scopes").is_some_and(|s| s.as_array().is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string))) {
        return err(400, "InvalidParameter.Scopes", "The input parameter scopes is not valid.");
    }
    let sid = rand_from(ALNUM, 24);
    call.inner.st().open_qr.insert(
        sid.clone(),
        OpenQr {
            sid: sid.clone(),
            client_id,
            status: "WaitLogin".into(),
            user_id: None,
            auth_code: None,
            created_ms: call.now,
            challenge: if secret.is_empty() { challenge.map(|c| (c, method)) } else { None },
        },
    );
    let url = format!("{}/oauth/qrcode/{sid}", call.inner.endpoint(&call.req.host));
    Reply::json(&json!({"qrCodeUrl": url, "sid": sid}))
}

/// `GET /oauth/qrcode/{sid}/status`.
pub(crate) fn open_qr_status(call: &Call, sid: &str) -> Reply {
    let ttl = call.opts.open_qr_ttl.as_millis() as i64;
    let mut st = call.inner.st();
    let Some(q) = st.open_qr.get_mut(sid) else { return Reply::json(&json!({"status": "QRCodeExpired"})) };
    if q.status != "LoginSuccess" && call.now - q.created_ms > ttl {
        q.status = "QRCodeExpired".into();
    }
    match &q.auth_code {
        Some(c) if q.status == "LoginSuccess" => Reply::json(&json!({"status": q.status, "authCode": c})),
        _ => Reply::json(&json!({"status": q.status})),
    }
}

pub(crate) fn open_qr_set(inner: &Inner, sid: &str, status: &str, user: Option<&str>) -> bool {
    let q = inner.st().open_qr.get(sid).cloned();
    let Some(q) = q else { return false };
    let allowed = match status {
        "ScanSuccess" => q.status == "WaitLogin",
        "LoginSuccess" => q.status == "WaitLogin" || q.status == "ScanSuccess",
        _ => true,
    };
    if !allowed {
        return false;
    }
    let code = match (status, user) {
        ("LoginSuccess", Some(u)) => {
            if !inner.st().users.contains_key(u) {
                return false;
            }
            Some(mint_code(inner, u, &q.client_id, q.challenge.clone()))
        }
        ("LoginSuccess", None) => return false,
        _ => None,
    };
    let mut st = inner.st();
    let e = st.open_qr.get_mut(sid).expect("qr");
    e.status = status.into();
    if code.is_some() {
        e.auth_code = code;
        e.user_id = user.map(Into::into);
    }
    true
}

// ---------------------------------------------------------------------- brokers (§2.4)

pub(crate) fn broker(call: &mut Call) -> Reply {
    let req = call.req;
    if let Some((rate, burst)) = call.opts.broker_rate {
        let key = format!("broker|{}|{}", req.host, req.peer.ip());
        if call.inner.limiter.check(&key, rate, burst, call.now).is_err() {
            return Reply::text(429, "Too Many Requests");
        }
    }
    match (req.host.as_str(), req.method.as_str(), req.path.as_str()) {
        (crate::OPENLIST_BROKER_HOST, "GET", "/alicloud/renewapi") => {
            let rt = req.query_param("refresh_ui").unwrap_or_default();
            let fail = |text: &str| Reply::json(&json!({"refresh_token": "", "access_token": "", "text": text}));
            if req.query_param("server_use").as_deref() != Some("true") {
                return fail("server_use must be true");
            }
            let r = open_token(
                call,
                &json!({"client_id": BROKER_CLIENT_ID, "client_secret": crate::BROKER_SECRET,
                "grant_type": "refresh_token", "refresh_token": rt}),
            );
            let v: Value = serde_json::from_slice(&r.body.to_bytes()).unwrap_or_default();
            if r.status == 200 {
                Reply::json(
                    &json!({"refresh_token": v["refresh_token"], "access_token": v["access_token"], "text": ""}),
                )
            } else {
                fail(v["message"].as_str().unwrap_or("refresh failed"))
            }
        }
        (crate::ALIST_BROKER_HOST, "POST", "/alist/ali_open/token")
        | (crate::MESSENSE_BROKER_HOST, "POST", "/oauth/access_token") => {
            let mut body = match parse_body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            // The proxy adds its own credentials and relays status and body verbatim.
            body["client_id"] = json!(BROKER_CLIENT_ID);
            body["client_secret"] = json!(crate::BROKER_SECRET);
            open_token(call, &body)
        }
        (crate::TICKSTEP_BROKER_HOST, "GET", p) => {
            let fail = |m: &str| Reply::json(&json!({"code": 1, "msg": m, "data": null}));
            let Some(ticket) =
                p.strip_prefix("/auth/tickstep/aliyunpan/token/openapi/").and_then(|r| r.strip_suffix("/refresh"))
            else {
                return Reply::text(404, "not found");
            };
            let uid = req.query_param("userId").unwrap_or_default();
            let t = call.inner.st().tickets.get(ticket).cloned();
            let Some(t) = t.filter(|t| t.user_id == uid) else { return fail("ticket invalid") };
            let r = open_token(
                call,
                &json!({"client_id": BROKER_CLIENT_ID, "client_secret": crate::BROKER_SECRET,
                "grant_type": "refresh_token", "refresh_token": t.refresh_token}),
            );
            let v: Value = serde_json::from_slice(&r.body.to_bytes()).unwrap_or_default();
            if r.status != 200 {
                return fail(v["message"].as_str().unwrap_or("refresh failed"));
            }
            let mut st = call.inner.st();
            if let Some(x) = st.tickets.get_mut(ticket) {
                x.refresh_token = v["refresh_token"].as_str().unwrap_or_default().into();
            }
            let expired = call.now / 1000 + v["expires_in"].as_i64().unwrap_or(7200);
            Reply::json(&json!({"code": 0, "msg": "", "data": {"accessToken": v["access_token"], "expired": expired}}))
        }
        _ => Reply::text(404, "not found"),
    }
}
