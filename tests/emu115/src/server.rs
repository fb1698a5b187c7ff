//! HTTP plumbing on emukit (path-prefix layout: `/<host>/<path>` of one port): request
//! conversion, throttling (§8), and the common envelopes (§0.4, §1.4). Counters, the request
//! log and the generic faults live in emukit.

use bytes::Bytes;
use http::{HeaderMap, Method};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

use crate::util::Params;
use crate::Inner;

// ------------------------------------------------------------------ request / reply

pub struct Req {
    pub method: Method,
    pub host: String,
    pub path: String,
    pub query_raw: String,
    pub q: Params,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub form: Params,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// User-Agent; an absent and an empty header are the same thing (§3.5).
    pub fn ua(&self) -> Option<String> {
        self.header("user-agent").map(|s| s.to_string()).filter(|s| !s.is_empty())
    }
    pub fn cookies(&self) -> Vec<String> {
        self.headers.get_all("cookie").iter().filter_map(|v| v.to_str().ok()).map(|s| s.to_string()).collect()
    }
    /// Form first, then query.
    pub fn param(&self, k: &str) -> Option<&str> {
        self.form.get(k).or_else(|| self.q.get(k))
    }
    /// `"request"` echo: path and query as the server saw them (§0.4).
    pub fn echo(&self) -> String {
        if self.query_raw.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query_raw)
        }
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Reply {
    pub fn json(v: &Value) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/json; charset=utf-8".into())],
            body: Bytes::from(serde_json::to_vec(v).unwrap()),
        }
    }
    pub fn raw(status: u16, ctype: &str, body: impl Into<Bytes>) -> Reply {
        Reply { status, headers: vec![("content-type".into(), ctype.into())], body: body.into() }
    }
    pub fn html(status: u16, body: &str) -> Reply {
        Reply::raw(status, "text/html; charset=utf-8", body.to_string())
    }
    pub fn text(status: u16, body: &str) -> Reply {
        Reply::raw(status, "text/plain; charset=utf-8", body.to_string())
    }
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
    pub fn not_found() -> Reply {
        Reply::html(404, "<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1></center><hr><center>nginx</center></body></html>")
    }
}

/// §8: Aliyun-WAF-looking 405 page (`<!doctypehtml>…<title>405</title>…`, `data-spm` meta).
pub const THROTTLE_HTML: &str = "<!doctypehtml><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><meta name=\"data-spm\" content=\"a3c0e\"><title>405</title></head><body><div class=\"main\"><p>很抱歉，由于您访问的URL有可能对网站造成安全威胁，您的访问被阻断。</p><p>Sorry, your request has been blocked as it may cause potential threats to the server's security.</p></div></body></html>";

/// §7.2 share WAF block page.
pub const WAF_HTML: &str = "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>访问被阻断</title></head><body><p>很抱歉，由于您访问的URL有可能对网站造成安全威胁，您的访问被阻断。</p></body></html>";

// ------------------------------------------------------------------ envelopes

/// `{"state":false, <field>: code, "error": msg}`
pub fn err(field: &str, code: i64, msg: &str) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("state".into(), json!(false));
    m.insert(field.into(), json!(code));
    m.insert("error".into(), json!(msg));
    Value::Object(m)
}

/// §1.4 `/files` flavour: `errNo` 990001 with the request echo.
pub fn not_logged_files(req: &Req) -> Reply {
    Reply::json(&json!({"state": false, "error": "登录超时，请重新登录。", "errNo": 990001, "request": req.echo()}))
}

/// §1.4 webapi/proapi flavour: errno 99 (proapi also carries `"data":[]`, §0.4 verbatim).
pub fn not_logged_99(req: &Req, with_data: bool) -> Reply {
    if with_data {
        Reply::json(&json!({"state": false, "error": "请重新登录", "errno": 99, "request": req.echo(), "data": []}))
    } else {
        Reply::json(&json!({"state": false, "errno": 99, "error": "请重新登录"}))
    }
}

pub fn auth(inner: &Inner, req: &Req) -> Option<u64> {
    inner.st().session_for(&req.cookies()).map(|s| s.user_id)
}

// ------------------------------------------------------------------ request handling

fn is_api_host(h: &str) -> bool {
    h.ends_with("115.com")
}

/// Handle one request (emukit has logged it and applied the injected faults).
pub(crate) async fn handle(inner: Arc<Inner>, req: emukit::Request) -> emukit::Reply {
    let host = req.host.clone();
    if !crate::HOSTS.contains(&host.as_str()) {
        return to_reply(Reply::not_found());
    }
    let ctype = req.header("content-type").unwrap_or_default().to_ascii_lowercase();
    let is_oss = host.ends_with("aliyuncs.com");
    let encrypted_body = is_oss || (host == "uplb.115.com" && req.path.contains("initupload"));
    let form = if !encrypted_body
        && (ctype.contains("x-www-form-urlencoded") || (ctype.is_empty() && req.method == Method::POST))
    {
        Params::parse(&req.body)
    } else {
        Params::default()
    };
    let req = Req {
        method: req.method,
        host: host.clone(),
        path: req.path,
        q: Params::parse(req.query.as_bytes()),
        query_raw: req.query,
        headers: req.headers,
        body: req.body,
        form,
    };
    // §8 throttle: per-cookie token bucket on the API hosts.
    if is_api_host(&host) {
        let mut st = inner.st();
        if let Some(th) = st.opts.throttle {
            let who = st.session_for(&req.cookies()).map(|s| s.uid.clone()).unwrap_or_else(|| "anon".into());
            let now = Instant::now();
            let e = st.buckets.entry(who).or_insert((th.burst as f64, now));
            let elapsed = now.duration_since(e.1).as_secs_f64();
            e.0 = (e.0 + elapsed * th.rate_per_sec).min(th.burst as f64);
            e.1 = now;
            if e.0 >= 1.0 {
                e.0 -= 1.0;
            } else {
                return to_reply(Reply::html(405, THROTTLE_HTML));
            }
        }
    }
    to_reply(route(&inner, &req).await)
}

pub(crate) fn to_reply(r: Reply) -> emukit::Reply {
    emukit::Reply { status: r.status, headers: r.headers, body: emukit::Body::Full(r.body), head_len: None }
}

// ------------------------------------------------------------------ routing

async fn route(inner: &Arc<Inner>, req: &Req) -> Reply {
    match req.host.as_str() {
        "webapi.115.com" | "web.api.115.com" => {
            if req.path.starts_with("/share/") {
                crate::api_share::webapi(inner, req).await
            } else if req.path == "/files/uploadinfo" {
                crate::api_upload::uploadinfo(inner, req)
            } else {
                crate::api_files::webapi(inner, req).await
            }
        }
        "aps.115.com" => crate::api_files::aps(inner, req),
        "proapi.115.com" => match req.path.as_str() {
            "/app/chrome/downurl" => crate::api_down::chrome_downurl(inner, req),
            "/app/share/downurl" => crate::api_share::app_downurl(inner, req),
            "/app/uploadinfo" => crate::api_upload::uploadinfo(inner, req),
            _ => Reply::not_found(),
        },
        "my.115.com"
        | "passportapi.115.com"
        | "hnpassportapi.115.com"
        | "qrcodeapi.115.com"
        | "hnqrcodeapi.115.com"
        | "appversion.115.com" => crate::api_auth::route(inner, req).await,
        "uplb.115.com" => crate::api_upload::uplb(inner, req),
        "lixian.115.com" | "clouddownload.115.com" => crate::api_offline::route(inner, req),
        crate::OSS_HOST | crate::OSS_ENDPOINT_HOST => crate::api_upload::oss(inner, req),
        crate::CDN_HOST => crate::api_down::cdn(inner, req),
        _ => Reply::not_found(),
    }
}
