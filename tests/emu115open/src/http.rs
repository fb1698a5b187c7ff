//! Listener, request plumbing, fault injection and routing by host prefix.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::state::{AccessError, Inner, RateBucket, RequestRecord};
use crate::util::{parse_form_body, parse_urlencoded, pass_err, pct_decode, pro_err, Req, Resp};
use crate::{auth, files, offline, upload, Fault, BROKER_HOST, PASSPORT_HOST, PROAPI_HOST, QRCODE_HOST};

pub(crate) type BoxError = std::io::Error;

/// Response body: either complete, or streamed through a channel (slow / cut bodies).
pub struct EmuBody {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Chan(mpsc::Receiver<Result<Bytes, BoxError>>, u64),
}

impl hyper::body::Body for EmuBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Kind::Full(b) => Poll::Ready(b.take().filter(|b| !b.is_empty()).map(|b| Ok(Frame::data(b)))),
            Kind::Chan(rx, _) => rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(&self.kind, Kind::Full(None)) || matches!(&self.kind, Kind::Full(Some(b)) if b.is_empty())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Chan(_, n) => SizeHint::with_exact(*n),
        }
    }
}

pub(crate) async fn serve(listener: TcpListener, inner: Arc<Inner>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(_) => continue,
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

#[derive(Debug)]
struct InjectedReset;
impl std::fmt::Display for InjectedReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected connection reset")
    }
}
impl std::error::Error for InjectedReset {}

fn is_passport_host(h: &str) -> bool {
    h == PASSPORT_HOST || h == QRCODE_HOST
}

async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Result<Response<EmuBody>, BoxError> {
    let method = req.method().as_str().to_string();
    let full_path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let trimmed = full_path.trim_start_matches('/');
    let (host, rest) = match trimmed.find('/') {
        Some(i) => (trimmed[..i].to_string(), trimmed[i..].to_string()),
        None => (trimmed.to_string(), "/".to_string()),
    };
    let decoded_path = pct_decode(&rest);
    let header = |n: &str| req.headers().get(n).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let mut record = RequestRecord {
        method: method.clone(),
        host: host.clone(),
        path: decoded_path.clone(),
        query: raw_query.clone(),
        user_agent: header("user-agent"),
        authorization: header("authorization"),
        status: 0,
    };

    let (fault, counter_key) = {
        let mut st = inner.lock();
        let is_blob_host = host == st.opts.cdn_host || host.ends_with(&format!(".{}", st.opts.oss_endpoint_host));
        let key = if is_blob_host { host.clone() } else { format!("{host}{decoded_path}") };
        *st.counters.entry(key.clone()).or_insert(0) += 1;
        (st.take_fault(&full_path), key)
    };
    let _ = counter_key;

    let mut body_fault = None;
    let mut expire_link = false;
    let early: Option<Resp> = match fault {
        None => None,
        Some(Fault::Reset) => {
            inner.lock().log.push(record);
            return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, InjectedReset));
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            None
        }
        Some(Fault::Status(s)) => Some(Resp::text(s, "injected error")),
        Some(Fault::Envelope { code, message }) => Some(envelope_err(&host, code, &message)),
        Some(Fault::RateLimit) => Some(envelope_err(&host, 770004, "访问频率过高")),
        Some(Fault::QuotaLimit) => Some(envelope_err(&host, 406, "已达到当前访问上限，请稍后再试")),
        Some(Fault::EmptyFailure) => Some(envelope_err(&host, 0, "")),
        Some(Fault::ExpireLink) => {
            expire_link = true;
            None
        }
        Some(f @ (Fault::SlowBody { .. } | Fault::DropAfter(_))) => {
            body_fault = Some(f);
            None
        }
    };

    let resp = match early {
        Some(r) => r,
        None => {
            let headers = req.headers().clone();
            let body = req.into_body().collect().await.map_err(std::io::Error::other)?.to_bytes();
            let is_oss = {
                let st = inner.lock();
                host.ends_with(&format!(".{}", st.opts.oss_endpoint_host)) || host == st.opts.oss_endpoint_host
            };
            let form = if method == "GET" || is_oss {
                Vec::new()
            } else {
                let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
                parse_form_body(ct.as_deref(), &body)
            };
            let r = Req {
                method: method.clone(),
                host: host.clone(),
                path: decoded_path,
                query: parse_urlencoded(raw_query.as_bytes()),
                raw_query,
                form,
                headers,
                body,
            };
            dispatch(&inner, &r, expire_link).await
        }
    };
    record.status = resp.status;
    inner.lock().log.push(record);
    Ok(to_hyper(resp, &method, body_fault))
}

fn envelope_err(host: &str, code: i64, msg: &str) -> Resp {
    if is_passport_host(host) {
        pass_err(code, msg)
    } else {
        pro_err(code, msg)
    }
}

fn to_hyper(resp: Resp, method: &str, body_fault: Option<Fault>) -> Response<EmuBody> {
    let mut b = Response::builder().status(resp.status);
    for (k, v) in &resp.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let len = resp.head_len.unwrap_or(resp.body.len() as u64);
    let no_body_status = resp.status == 204 || resp.status == 304;
    if !no_body_status {
        b = b.header("content-length", len.to_string());
    }
    if method == "HEAD" || no_body_status {
        return b.body(EmuBody { kind: Kind::Full(None) }).unwrap();
    }
    let body = match body_fault {
        Some(Fault::SlowBody { chunk, every }) => {
            let (tx, rx) = mpsc::channel(4);
            let data = resp.body.clone();
            tokio::spawn(async move {
                let chunk = chunk.max(1);
                let mut pos = 0;
                while pos < data.len() {
                    let end = (pos + chunk).min(data.len());
                    if tx.send(Ok(data.slice(pos..end))).await.is_err() {
                        return;
                    }
                    pos = end;
                    if pos < data.len() {
                        tokio::time::sleep(every).await;
                    }
                }
            });
            EmuBody { kind: Kind::Chan(rx, len) }
        }
        Some(Fault::DropAfter(n)) => {
            let (tx, rx) = mpsc::channel(4);
            let data = resp.body.clone();
            tokio::spawn(async move {
                let n = n.min(data.len());
                if n > 0 && tx.send(Ok(data.slice(0..n))).await.is_err() {
                    return;
                }
                // give the first bytes a chance to reach the socket before the abort
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                let _ = tx.send(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, InjectedReset))).await;
            });
            EmuBody { kind: Kind::Chan(rx, len) }
        }
        _ => EmuBody { kind: Kind::Full(Some(resp.body)) },
    };
    b.body(body).unwrap()
}

async fn dispatch(inner: &Arc<Inner>, r: &Req, expire_link: bool) -> Resp {
    let (cdn, oss_ep) = {
        let st = inner.lock();
        (st.opts.cdn_host.clone(), st.opts.oss_endpoint_host.clone())
    };
    let h = r.host.as_str();
    if h == PASSPORT_HOST || h == QRCODE_HOST {
        return auth::passport(inner, r).await;
    }
    if h == PROAPI_HOST {
        return proapi(inner, r);
    }
    if h == BROKER_HOST {
        return auth::broker(inner, r);
    }
    if h == "__test" {
        return test_hooks(inner, r);
    }
    if h == cdn {
        return files::cdn(inner, r, expire_link);
    }
    if h == oss_ep {
        // Path-style addressing is refused by 115's OSS (ref §7.4, restic-115).
        return upload::oss_error(403, "SecondLevelDomainForbidden", "Please use virtual hosted style to access.", "");
    }
    if let Some(bucket) = h.strip_suffix(&format!(".{oss_ep}")) {
        return upload::oss(inner, r, bucket);
    }
    Resp::text(404, "unknown host")
}

/// `/__test/qr/{uid}/{scan|confirm|cancel|expire}[?user=<id>]` (ref §2.1 suggests such hooks).
fn test_hooks(inner: &Arc<Inner>, r: &Req) -> Resp {
    let parts: Vec<&str> = r.path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["qr", uid, action] => {
            let ok = match *action {
                "scan" => {
                    let user = r
                        .any("user")
                        .and_then(|u| u.parse().ok())
                        .or_else(|| inner.lock().users.keys().next().copied());
                    match user {
                        Some(u) => inner.qr_set(uid, |q| {
                            if q.status == 0 {
                                q.status = 1;
                                q.user = Some(u);
                                true
                            } else {
                                false
                            }
                        }),
                        None => false,
                    }
                }
                "confirm" => inner.qr_set(uid, |q| {
                    if q.status == 1 {
                        q.status = 2;
                        true
                    } else {
                        false
                    }
                }),
                "cancel" => inner.qr_set(uid, |q| {
                    q.status = -2;
                    true
                }),
                "expire" => inner.qr_set(uid, |q| {
                    q.status = -1;
                    true
                }),
                _ => return Resp::text(404, "unknown hook"),
            };
            if ok {
                Resp::text(200, "ok")
            } else {
                Resp::text(409, "not applicable")
            }
        }
        _ => Resp::text(404, "unknown hook"),
    }
}

/// Handler context for proapi calls.
pub(crate) struct Ctx<'a> {
    pub now_ms: u64,
    pub user: u64,
    pub base: &'a str,
}

impl Ctx<'_> {
    pub fn now(&self) -> u64 {
        self.now_ms / 1000
    }
}

fn proapi(inner: &Arc<Inner>, r: &Req) -> Resp {
    let now_ms = inner.now_ms();
    let mut st = inner.lock();
    // Bearer check (ref §1.2, §13.2).
    let auth = r.header("authorization").unwrap_or_default();
    let token = auth.strip_prefix("Bearer ").map(str::trim).unwrap_or("");
    let (user, grant) = match st.check_access(token, now_ms) {
        Ok(x) => x,
        Err(AccessError::Malformed) => return pro_err(40140123, "access_token 格式错误"),
        Err(AccessError::Invalid) => return pro_err(40140125, "access_token 无效（已过期或者已解除授权）"),
    };
    // Rate limits (ref §10 fake-server knobs).
    if let Some((rate, burst)) = st.opts.qps_limit {
        let now = Instant::now();
        let b = st.buckets.entry(grant).or_insert(RateBucket { tokens: burst, last: now });
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * rate).min(burst);
        b.last = now;
        if b.tokens < 1.0 {
            return pro_err(770004, "访问频率过高");
        }
        b.tokens -= 1.0;
    }
    if let Some(budget) = st.opts.daily_budget {
        let day = now_ms / 86_400_000;
        let c = st.daily.entry((user, day)).or_insert(0);
        *c += 1;
        if *c > budget {
            return pro_err(406, "已达到当前访问上限，请稍后再试");
        }
    }
    let ctx = Ctx { now_ms, user, base: &inner.base };
    let m = r.method.as_str();
    let st = &mut *st;
    macro_rules! only {
        ($($meth:literal)|+, $e:expr) => {
            if [$($meth),+].contains(&m) { $e } else { Resp::text(405, "method not allowed") }
        };
    }
    match r.path.as_str() {
        "/open/user/info" => only!("GET", files::user_info(st, &ctx)),
        "/open/ufile/files" => only!("GET", files::list(st, &ctx, r)),
        "/open/folder/get_info" => only!("GET" | "POST", files::get_info(st, &ctx, r)),
        "/open/ufile/search" => only!("GET", files::search(st, &ctx, r)),
        "/open/ufile/downurl" => only!("POST", files::downurl(st, &ctx, r)),
        "/open/folder/add" => only!("POST", files::mkdir(st, &ctx, r)),
        "/open/ufile/update" => only!("POST", files::update(st, &ctx, r)),
        "/open/ufile/move" => only!("POST", files::mv(st, &ctx, r)),
        "/open/ufile/copy" => only!("POST", files::copy(st, &ctx, r)),
        "/open/ufile/delete" => only!("POST", files::delete(st, &ctx, r)),
        "/open/rb/list" => only!("GET", files::rb_list(st, &ctx, r)),
        "/open/rb/revert" => only!("POST", files::rb_revert(st, &ctx, r)),
        "/open/rb/del" => only!("POST", files::rb_del(st, &ctx, r)),
        "/open/upload/init" => only!("POST", upload::init(st, &ctx, r)),
        "/open/upload/resume" => only!("POST", upload::resume(st, &ctx, r)),
        "/open/upload/get_token" => only!("GET", upload::get_token(st, &ctx)),
        "/open/offline/add_task_urls" => only!("POST", offline::add(st, &ctx, r)),
        "/open/offline/get_task_list" => only!("GET" | "POST", offline::list(st, &ctx, r)),
        "/open/offline/del_task" => only!("POST", offline::del(st, &ctx, r)),
        "/open/offline/clear_task" => only!("POST", offline::clear(st, &ctx, r)),
        "/open/offline/get_quota_info" => only!("GET", offline::quota(st, &ctx)),
        _ => Resp::text(404, "not found"),
    }
}
