//! HTTP plumbing: one hyper HTTP/1.1 listener, `/<host>/<path>` routing, counters,
//! fault injection, throttling (§8), and the common envelopes (§0.4, §1.4).

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::sync::mpsc;

use crate::util::{glob_match, Params};
use crate::{FaultKind, Inner, RecordedRequest};

// ------------------------------------------------------------------ body type

pub enum EmuBody {
    Full(Option<Bytes>),
    Chan { rx: mpsc::Receiver<Result<Bytes, std::io::Error>>, len: u64 },
}

impl Body for EmuBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            EmuBody::Full(b) => Poll::Ready(b.take().filter(|b| !b.is_empty()).map(|b| Ok(Frame::data(b)))),
            EmuBody::Chan { rx, .. } => match rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, EmuBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            EmuBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            EmuBody::Full(None) => SizeHint::with_exact(0),
            EmuBody::Chan { len, .. } => SizeHint::with_exact(*len),
        }
    }
}

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
    pub fn key(&self) -> String {
        format!("{}{}", self.host, self.path.trim_end_matches('/'))
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

// ------------------------------------------------------------------ serve loop

pub async fn serve(listener: tokio::net::TcpListener, inner: Arc<Inner>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let inner = inner.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let inner = inner.clone();
                async move { handle(inner, req).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn is_api_host(h: &str) -> bool {
    h.ends_with("115.com")
}

async fn handle(
    inner: Arc<Inner>,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<Response<EmuBody>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Err(std::io::Error::other(e)),
    };
    let full_path = parts.uri.path().to_string();
    let trimmed = full_path.trim_start_matches('/');
    let (host, rest) = match trimmed.find('/') {
        Some(i) => (&trimmed[..i], &trimmed[i..]),
        None => (trimmed, "/"),
    };
    let host = host.to_ascii_lowercase();
    let query_raw = parts.uri.query().unwrap_or("").to_string();
    let ctype = parts.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let is_oss = host.ends_with("aliyuncs.com");
    let encrypted_body = is_oss || (host == "uplb.115.com" && parts.uri.path().contains("initupload"));
    let form = if !encrypted_body
        && (ctype.contains("x-www-form-urlencoded") || (ctype.is_empty() && parts.method == Method::POST))
    {
        Params::parse(&body)
    } else {
        Params::default()
    };
    let req = Req {
        method: parts.method.clone(),
        host: host.clone(),
        path: rest.to_string(),
        q: Params::parse(query_raw.as_bytes()),
        query_raw,
        headers: parts.headers,
        body,
        form,
    };
    let is_head = req.method == Method::HEAD;

    if !crate::HOSTS.contains(&host.as_str()) {
        return Ok(build(Reply::not_found(), &[], is_head));
    }

    // counters, log, faults, throttle
    let key = req.key();
    let mut pre: Option<FaultKind> = None;
    let mut body_faults: Vec<FaultKind> = Vec::new();
    {
        let mut st = inner.st();
        st.bump(&key);
        if let Some(ac) = req.q.get("ac") {
            st.bump(&format!("{key}?ac={ac}"));
        }
        st.log.push(RecordedRequest {
            method: req.method.to_string(),
            key: key.clone(),
            query: req.query_raw.clone(),
            user_agent: req.header("user-agent").map(|s| s.to_string()),
            referer: req.header("referer").map(|s| s.to_string()),
            cookie: req.header("cookie").map(|s| s.to_string()),
            body_len: req.body.len(),
        });
        for f in st.faults.iter_mut() {
            let m = if f.pattern.contains('*') { glob_match(&f.pattern, &key) } else { key.starts_with(&f.pattern) };
            if !m || f.remaining == Some(0) {
                continue;
            }
            match &f.fault.kind {
                FaultKind::SlowBody { .. } | FaultKind::DropAfter { .. } => {
                    body_faults.push(f.fault.kind.clone());
                    if let Some(r) = f.remaining.as_mut() {
                        *r -= 1;
                    }
                }
                k => {
                    if pre.is_none() {
                        pre = Some(k.clone());
                        if let Some(r) = f.remaining.as_mut() {
                            *r -= 1;
                        }
                    }
                }
            }
        }
        st.faults.retain(|f| f.remaining != Some(0));
        if pre.is_none() && is_api_host(&host) {
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
                    pre = Some(FaultKind::Throttle);
                }
            }
        }
    }

    let reply = match pre {
        Some(FaultKind::Status(code)) => Reply::text(code, &format!("emulated HTTP {code}")),
        Some(FaultKind::Throttle) => Reply::html(405, THROTTLE_HTML),
        Some(FaultKind::WafBlock) => Reply::html(403, WAF_HTML),
        Some(FaultKind::Reset) => {
            return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "emulated connection reset"));
        }
        _ => route(&inner, &req).await,
    };
    Ok(build(reply, &body_faults, is_head))
}

fn build(reply: Reply, body_faults: &[FaultKind], is_head: bool) -> Response<EmuBody> {
    let mut b =
        Response::builder().status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    let len = reply.body.len() as u64;
    let mut has_len = false;
    for (k, v) in &reply.headers {
        if k.eq_ignore_ascii_case("content-length") {
            has_len = true;
        }
        b = b.header(k.as_str(), v.as_str());
    }
    if is_head {
        if !has_len {
            b = b.header("content-length", len.to_string());
        }
        return b.body(EmuBody::Full(None)).unwrap();
    }
    if body_faults.is_empty() || reply.body.is_empty() {
        return b.body(EmuBody::Full(Some(reply.body))).unwrap();
    }
    let mut chunk = usize::MAX;
    let mut delay = std::time::Duration::ZERO;
    let mut drop_after: Option<u64> = None;
    for f in body_faults {
        match f {
            FaultKind::SlowBody { chunk: c, delay: d } => {
                chunk = chunk.min(*c);
                delay = delay.max(*d);
            }
            FaultKind::DropAfter { bytes } => drop_after = Some(drop_after.map_or(*bytes, |x: u64| x.min(*bytes))),
            _ => {}
        }
    }
    if chunk == usize::MAX {
        chunk = 64 * 1024;
    }
    let (tx, rx) = mpsc::channel(4);
    let data = reply.body;
    tokio::spawn(async move {
        let mut sent = 0u64;
        let mut off = 0usize;
        while off < data.len() {
            let mut end = (off + chunk).min(data.len());
            if let Some(lim) = drop_after {
                if sent >= lim {
                    // let hyper flush what was sent before the connection is torn down
                    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
                    let _ =
                        tx.send(Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "emulated drop"))).await;
                    return;
                }
                end = end.min(off + (lim - sent) as usize);
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if tx.send(Ok(data.slice(off..end))).await.is_err() {
                return;
            }
            sent += (end - off) as u64;
            off = end;
        }
    });
    b.body(EmuBody::Chan { rx, len }).unwrap()
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
