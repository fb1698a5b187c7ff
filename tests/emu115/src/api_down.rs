//! §3.1 `proapi/app/chrome/downurl` (m115) and §3.5 the signed CDN URLs.

use serde_json::{json, Map, Value};
use std::sync::Arc;

use crate::server::{not_logged_99, Reply, Req};
use crate::state::{Link, Node, State};
use crate::Inner;

/// m115 request envelope check shared by downurl/share-downurl/offline-add.
/// Returns (plaintext JSON, client key K).
pub fn m115_request(st: &State, req: &Req) -> Result<(Value, [u8; 16]), Reply> {
    // STRICT: `t` (unix seconds) is required on the m115 endpoints (§0.3).
    let t_ok = req.q.get("t").map(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())).unwrap_or(false);
    if !t_ok {
        return Err(Reply::json(
            &json!({"state": false, "msg": "参数错误", "errno": 1001, "error": "参数错误", "data": []}),
        ));
    }
    let Some(data) = req.form.get("data") else {
        return Err(Reply::json(
            &json!({"state": false, "msg": "参数错误", "errno": 1001, "error": "参数错误", "data": []}),
        ));
    };
    let (plain, k) = crate::m115::server_decode(&st.rsa, data).map_err(|_| {
        Reply::json(&json!({"state": false, "msg": "参数错误", "errno": 1001, "error": "参数错误", "data": []}))
    })?;
    let v: Value = serde_json::from_slice(&plain).map_err(|_| {
        Reply::json(&json!({"state": false, "msg": "参数错误", "errno": 1001, "error": "参数错误", "data": []}))
    })?;
    Ok((v, k))
}

fn pct(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Mint a CDN link bound to `ua` (§3.5). Returns the URL.
pub fn mint_link(
    st: &mut State,
    base: &str,
    user_id: u64,
    n: &Node,
    ua: Option<String>,
    cookie: &(String, String),
) -> String {
    let token = crate::util::rand_hex(16);
    let expires = st.now() + st.opts.link_ttl.as_secs() as i64;
    let require_cookie = st.opts.link_require_cookie;
    st.links.insert(
        token.clone(),
        Link {
            user_id,
            file_id: n.id,
            sha1: n.sha1.clone(),
            size: n.size,
            name: n.name.clone(),
            ua,
            expires,
            cookie: cookie.clone(),
            require_cookie,
        },
    );
    format!(
        "{base}/{}/{token}/{}/{}?t={expires}&u={user_id}&s={}&d=vip-1&c=0&f={}&k={token}&us={}&uc=10&v=1",
        crate::CDN_HOST,
        n.sha1.to_lowercase(),
        pct(&n.name),
        n.size,
        if require_cookie { 3 } else { 1 },
        n.size
    )
}

pub fn new_link_cookie() -> (String, String) {
    (crate::util::rand_hex(16), crate::util::rand_hex(16))
}

pub fn set_cookie_header(c: &(String, String)) -> String {
    format!("{}={}; path=/; HttpOnly", c.0, c.1)
}

pub fn chrome_downurl(inner: &Arc<Inner>, req: &Req) -> Reply {
    let mut st = inner.st();
    let Some(uid) = st.session_for(&req.cookies()).map(|s| s.user_id) else {
        drop(st);
        return not_logged_99(req, true);
    };
    let (v, k) = match m115_request(&st, req) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let pcs: Vec<String> = v
        .get("pickcode")
        .or_else(|| v.get("pick_code"))
        .and_then(|p| p.as_str())
        .unwrap_or("")
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let e = |code: i64, msg: &str| {
        Reply::json(&json!({"state": false, "msg": msg, "errno": code, "error": msg, "data": []}))
    };
    if pcs.is_empty() {
        return e(50001, "提取码不能为空");
    }
    let ua = req.ua();
    let cookie = new_link_cookie();
    let mut out = Map::new();
    for pc in &pcs {
        let Some(n) = st.nodes.values().find(|n| n.owner == uid && &n.pc == pc).cloned() else {
            return e(50003, "很抱歉，该文件提取码不存在。");
        };
        if !st.alive(n.id) {
            return e(50015, "文件不存在或已删除。");
        }
        if n.is_dir {
            out.insert(
                n.id.to_string(),
                json!({"file_name": n.name, "file_size": "0", "pick_code": n.pc, "sha1": "", "url": false}),
            );
            continue;
        }
        if let Some(max) = st.opts.downurl_max_size {
            if n.size > max {
                return e(50028, "文件大小超出限制，请使用115电脑端下载");
            }
        }
        let url = mint_link(&mut st, &inner.base, uid, &n, ua.clone(), &cookie);
        out.insert(
            n.id.to_string(),
            json!({"file_name": n.name, "file_size": n.size.to_string(), "pick_code": n.pc, "sha1": n.sha1,
                   "url": {"client": 1, "oss_id": format!("fhnfile/{}", n.sha1.to_lowercase()), "url": url}}),
        );
    }
    let plain = serde_json::to_vec(&Value::Object(out)).unwrap();
    let data = crate::m115::server_encode(&st.rsa, &plain, &k);
    Reply::json(&json!({"state": true, "msg": "", "errno": 0, "error": "", "data": data}))
        .header("set-cookie", &set_cookie_header(&cookie))
}

fn forbidden(msg: &str) -> Reply {
    Reply::html(403, &format!("<html><head><title>403 Forbidden</title></head><body><center><h1>403 Forbidden</h1></center><hr><center>{msg}</center></body></html>"))
}

/// Signed CDN URL: UA-bound, expiring, optional cookie (f=3), Range.
pub fn cdn(inner: &Arc<Inner>, req: &Req) -> Reply {
    if req.method != http::Method::GET && req.method != http::Method::HEAD {
        return Reply::text(405, "method not allowed");
    }
    let st = inner.st();
    let token = req.path.trim_start_matches('/').split('/').next().unwrap_or("");
    let Some(link) = st.links.get(token).cloned() else {
        return forbidden("invalid link");
    };
    if req.q.get("k") != Some(token) || req.q.get("t") != Some(link.expires.to_string().as_str()) {
        return forbidden("signature mismatch");
    }
    // STRICT: the status for expired links and UA mismatch is reported as 403 (§10.2).
    if st.now() > link.expires {
        return forbidden("link expired");
    }
    // §3.5: bound to the UA of the downurl request; no UA there means no UA here.
    if req.ua() != link.ua {
        return forbidden("user-agent mismatch");
    }
    if link.require_cookie {
        let want = format!("{}={}", link.cookie.0, link.cookie.1);
        let has = req.cookies().iter().any(|h| h.split(';').any(|c| c.trim() == want));
        if !has {
            return forbidden("cookie required");
        }
    }
    let Some(data) = st.content.get(&link.sha1).cloned() else {
        return Reply::text(404, "object not found");
    };
    drop(st);
    let len = data.len() as u64;
    let common = |r: Reply| {
        r.header("accept-ranges", "bytes")
            .header("etag", &format!("\"{}\"", link.sha1))
            .header("content-disposition", &format!("attachment; filename*=UTF-8''{}", pct(&link.name)))
    };
    match parse_range(req.header("range"), len) {
        RangeReq::Full => common(Reply::raw(200, "application/octet-stream", data)),
        RangeReq::Unsatisfiable => common(Reply::raw(416, "text/html", "416 Requested Range Not Satisfiable"))
            .header("content-range", &format!("bytes */{len}")),
        RangeReq::Part(a, b) => {
            common(Reply::raw(206, "application/octet-stream", data.slice(a as usize..=b as usize)))
                .header("content-range", &format!("bytes {a}-{b}/{len}"))
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum RangeReq {
    Full,
    Part(u64, u64),
    Unsatisfiable,
}

/// Single-range `bytes=a-b`, `bytes=a-`, `bytes=-n` (only the first range of a list is served).
pub fn parse_range(h: Option<&str>, len: u64) -> RangeReq {
    let Some(h) = h else { return RangeReq::Full };
    let Some(spec) = h.trim().strip_prefix("bytes=") else { return RangeReq::Full };
    let first = spec.split(',').next().unwrap_or("").trim();
    let Some((a, b)) = first.split_once('-') else { return RangeReq::Full };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else { return RangeReq::Full };
        if n == 0 || len == 0 {
            return RangeReq::Unsatisfiable;
        }
        return RangeReq::Part(len.saturating_sub(n), len - 1);
    }
    let Ok(start) = a.parse::<u64>() else { return RangeReq::Full };
    let end = if b.is_empty() {
        len.saturating_sub(1)
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e.min(len.saturating_sub(1)),
            _ => return RangeReq::Full,
        }
    };
    if start >= len {
        return RangeReq::Unsatisfiable;
    }
    RangeReq::Part(start, end)
}
