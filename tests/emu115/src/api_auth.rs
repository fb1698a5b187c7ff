//! §1.2 QR login, §1.3 cookie checks (my.115.com, check/sso), appversion.

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

use crate::server::{auth, Reply, Req};
use crate::state::{ssoent_of, Qr, State};
use crate::Inner;

/// 1x1 PNG (the QR image is not rendered; clients only need *a* PNG).
const PNG_1X1: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00,
    0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

pub async fn route(inner: &Arc<Inner>, req: &Req) -> Reply {
    let path = req.path.trim_end_matches('/');
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match req.host.as_str() {
        "qrcodeapi.115.com" | "hnqrcodeapi.115.com" => match segs.as_slice() {
            ["api", "1.0", app, "1.0", "token"] => token(inner, app),
            ["api", "1.0", _app, "1.0", "qrcode"] => Reply::raw(200, "image/png", PNG_1X1),
            ["get", "status"] => status(inner, req).await,
            ["app", "1.0", app, "1.0", "login", "qrcode"] => login_result(inner, req, app),
            ["api", "2.0", "prompt.php"] => scan_side(inner, req, 1),
            ["api", "2.0", "slogin.php"] => scan_side(inner, req, 2),
            ["api", "2.0", "cancel.php"] => scan_side(inner, req, -2),
            _ => Reply::not_found(),
        },
        "passportapi.115.com" | "hnpassportapi.115.com" => match segs.as_slice() {
            ["app", "1.0", "web", "1.0", "check", "sso"] => check_sso(inner, req),
            ["app", "1.0", app, "1.0", "login", "qrcode"] => login_result(inner, req, app),
            _ => Reply::not_found(),
        },
        "my.115.com" => my(inner, req),
        "appversion.115.com" => {
            let v = inner.st().opts.min_app_version.clone().unwrap_or_else(|| "35.6.0.3".into());
            let e = json!({"version_code": v, "version_url": "", "created_time": 1700000000});
            Reply::json(
                &json!({"state": true, "error": "", "errno": 0, "data": {"win": e, "mac": e, "linux": e, "android": e, "ios": e}}),
            )
        }
        _ => Reply::not_found(),
    }
}

fn qr_err(code: i64, msg: &str) -> Reply {
    Reply::json(&json!({"state": 0, "code": code, "message": msg, "errno": code, "error": msg, "data": {}}))
}

fn token(inner: &Arc<Inner>, app: &str) -> Reply {
    let mut st = inner.st();
    let uid = crate::util::rand_hex(20);
    let time = st.now();
    let sign = crate::util::rand_hex(20);
    st.qr.insert(
        uid.clone(),
        Qr {
            app: app.to_string(),
            time,
            sign: sign.clone(),
            status: 0,
            user: None,
            consumed: false,
            force_expired: false,
        },
    );
    Reply::json(&json!({"state": 1, "code": 0, "message": "", "errno": 0, "error": "",
        "data": {"uid": uid, "time": time, "sign": sign, "qrcode": format!("https://115.com/scan/dg-{uid}")}}))
}

fn expired(st: &State, q: &Qr) -> bool {
    q.force_expired || st.now() - q.time > st.opts.qr_ttl.as_secs() as i64
}

/// Current status or an error reply.
fn current(st: &State, req: &Req) -> Result<i32, Reply> {
    let uid = req.q.get_or("uid", "");
    let Some(q) = st.qr.get(uid) else {
        return Err(qr_err(40100000, "参数错误！"));
    };
    // STRICT: time and sign must echo the token response.
    if req.q.get("sign") != Some(q.sign.as_str()) || req.q.int("time") != Some(q.time) {
        return Err(qr_err(40100000, "参数错误！"));
    }
    if expired(st, q) && q.status != 2 {
        return Ok(-1);
    }
    Ok(q.status)
}

async fn status(inner: &Arc<Inner>, req: &Req) -> Reply {
    let hold = inner.st().opts.qr_long_poll;
    let initial = match current(&inner.st(), req) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut s = initial;
    if !hold.is_zero() && (s == 0 || s == 1) {
        let deadline = tokio::time::Instant::now() + hold;
        loop {
            let notified = inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            s = match current(&inner.st(), req) {
                Ok(s) => s,
                Err(r) => return r,
            };
            if s != initial || tokio::time::Instant::now() >= deadline {
                break;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }
    if s == -1 {
        // §1.2.3: an expired token carries 40199002 in the envelope as well as status -1.
        return Reply::json(
            &json!({"state": 0, "code": 40199002, "message": "二维码已过期", "errno": 40199002, "error": "二维码已过期",
                                   "data": {"msg": "二维码已过期", "status": -1, "version": ""}}),
        );
    }
    let msg = match s {
        1 => "扫码成功",
        2 => "登录成功",
        -2 => "已取消",
        _ => "",
    };
    Reply::json(&json!({"state": 1, "code": 0, "message": "", "data": {"msg": msg, "status": s, "version": ""}}))
}

fn login_result(inner: &Arc<Inner>, req: &Req, app: &str) -> Reply {
    let app = if app == "desktop" { "web" } else { app };
    let mut st = inner.st();
    if ssoent_of(app).is_none() {
        // bare windows/mac/linux are "disabled" (§1.2.5)
        return qr_err(40100000, "参数错误！");
    }
    let account = req.param("account").unwrap_or("").to_string();
    let Some(q) = st.qr.get(&account) else {
        return qr_err(40100000, "参数缺失");
    };
    if q.consumed || (expired(&st, q) && q.status != 2) {
        return qr_err(40199002, "二维码已过期");
    }
    if q.status != 2 {
        return qr_err(40100000, "参数错误！");
    }
    let user_id = q.user.unwrap_or(0);
    let Some(sess) = st.login(user_id, app) else {
        return qr_err(40100000, "参数错误！");
    };
    st.qr.get_mut(&account).unwrap().consumed = true;
    let name = st.users.get(&user_id).map(|u| u.name.clone()).unwrap_or_default();
    let body = json!({"state": 1, "code": 0, "message": "", "errno": 0, "error": "", "data": {
        "alert": "", "bind_mobile": 1, "country": "CN", "email": "", "from": "",
        "face": {"face_l": "https://face.115.com/l.jpg", "face_m": "https://face.115.com/m.jpg", "face_s": "https://face.115.com/s.jpg"},
        "is_chang_passwd": 0, "is_first_login": 0, "is_trusted": null, "is_vip": 1, "mark": 0, "mobile": "138****0000",
        "user_id": user_id, "user_name": name,
        "cookie": {"UID": sess.uid, "CID": sess.cid, "SEID": sess.seid, "KID": sess.kid}
    }});
    let mut r = Reply::json(&body);
    for (k, v) in [("UID", &sess.uid), ("CID", &sess.cid), ("SEID", &sess.seid), ("KID", &sess.kid)] {
        r = r.header("set-cookie", &format!("{k}={v}; path=/; domain=.115.com; HttpOnly"));
    }
    r
}

fn scan_side(inner: &Arc<Inner>, req: &Req, to: i32) -> Reply {
    let Some(user) = auth(inner, req) else {
        return qr_err(40101032, "请重新登录");
    };
    let uid = req.q.get("uid").or_else(|| req.q.get("key")).unwrap_or("").to_string();
    let ok = {
        let mut st = inner.st();
        let exp = st.qr.get(&uid).map(|q| expired(&st, q));
        match (st.qr.get_mut(&uid), exp) {
            (Some(q), Some(false)) => match (q.status, to) {
                (0, 1) => {
                    q.status = 1;
                    q.user = Some(user);
                    true
                }
                (1, 2) if q.user == Some(user) => {
                    q.status = 2;
                    true
                }
                (0 | 1, -2) => {
                    q.status = -2;
                    true
                }
                _ => false,
            },
            _ => false,
        }
    };
    inner.notify.notify_waiters();
    if ok {
        Reply::json(&json!({"state": 1, "code": 0, "message": "", "data": {}}))
    } else {
        qr_err(40100000, "参数错误！")
    }
}

fn check_sso(inner: &Arc<Inner>, req: &Req) -> Reply {
    let st = inner.st();
    match st.session_for(&req.cookies()) {
        // §1.3: success is state == 0 on this endpoint.
        Some(s) => Reply::json(
            &json!({"state": 0, "code": 0, "data": {"expire": st.now() + 86400 * 30, "link": "", "user_id": s.user_id},
                                        "check_ssd": true, "errno": 0, "error": "", "message": ""}),
        ),
        // STRICT [inferred]: logged out → non-zero state with 40101032 (§1.4).
        None => Reply::json(&json!({"state": 1, "code": 40101032, "data": {}, "check_ssd": false, "errno": 40101032,
                                     "error": "请重新登录", "message": "请重新登录"})),
    }
}

fn my(inner: &Arc<Inner>, req: &Req) -> Reply {
    let st = inner.st();
    let sess = st.session_for(&req.cookies()).cloned();
    let ct = req.q.get_or("ct", "");
    let ac = req.q.get_or("ac", "");
    let Some(sess) = sess else {
        return Reply::json(&json!({"state": false, "errno": 99, "error": "请重新登录"}));
    };
    let name = st.users.get(&sess.user_id).map(|u| u.name.clone()).unwrap_or_default();
    let v: Value = match (ct, ac) {
        ("guide", "status") => {
            json!({"state": true, "error": "", "errno": 0, "data": {"user_id": sess.user_id, "ssoent": sess.ssoent}})
        }
        ("ajax", "nav") => json!({"state": true, "error": "", "errno": 0, "data": {
            "user_id": sess.user_id, "user_name": name, "face": "https://face.115.com/m.jpg", "vip": 1,
            "expire": st.now() + 86400 * 365, "forever": 0, "global": 0, "is_privilege": true,
            "privilege": {"start": 1600000000, "expire": st.now() + 86400 * 365, "state": 1, "mark": "1"},
            "device": 0, "rank": 0, "liang": 0, "mark": 1, "mark1": 0
        }}),
        _ => return Reply::not_found(),
    };
    let _ = Duration::ZERO;
    Reply::json(&v)
}
