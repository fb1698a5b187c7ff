//! A test upstream: an HTTP server standing in for a cloud provider's download host.
//!
//! It serves named blobs (`/f/<name>`) with Range (206 + Content-Range, 416) and HEAD,
//! can require headers per blob (a User-Agent, a Referer, a Cookie) and answer 403
//! otherwise, issues expiring signed URLs (optionally bound to one User-Agent, as 115
//! binds its links), logs every request it sees (method, headers, range, status) and
//! every connection it accepts, and injects faults: a connection dropped mid-body (once
//! or every time), a slow body, 5xx and 429 answers. Everything can be changed at run
//! time while clients are connected.
//!
//! Every response carries `Set-Cookie`, so a test can check a proxy drops it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};

type Body = BoxBody<Bytes, std::io::Error>;

/// `times` for a fault that never wears off.
pub const ALWAYS: u32 = u32::MAX;

/// Bytes per body chunk when a blob is not slowed down.
const CHUNK: usize = 64 * 1024;

/// The `Set-Cookie` every response carries.
pub const SET_COOKIE: &str = "upstream_session=must-not-reach-clients; Path=/";

/// Something a blob does wrong. Each fault applies to the next `times` requests it
/// concerns (`ALWAYS` for every one), then wears off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Close the connection when the body reaches byte `offset` of the blob (after every
    /// byte before it was sent), on responses whose range covers `offset`. A request that
    /// starts exactly at `offset` gets its headers and then a closed connection.
    DropAt { offset: u64, times: u32 },
    /// Close the connection after `bytes` bytes of body.
    DropAfter { bytes: u64, times: u32 },
    /// Like `DropAt`, and at that moment every URL issued so far expires (the clock
    /// jumps a day): a link expiring in the middle of a download.
    ExpireAt { offset: u64, times: u32 },
    /// Answer `code` (500, 502, 503, 429…) instead of the blob. 429 and 503 carry
    /// `Retry-After: 1`.
    Status { code: u16, times: u32 },
}

#[derive(Debug, Clone)]
struct Blob {
    data: Bytes,
    etag: String,
    /// (lowercase header name, exact value) the request must carry.
    require: Vec<(String, String)>,
    faults: Vec<Fault>,
    /// (chunk size, delay before each chunk)
    slow: Option<(usize, Duration)>,
    /// After the first chunk, wait for a permit of this gate before sending the rest.
    held: Option<Arc<tokio::sync::Semaphore>>,
    /// Answer 200 with the whole blob even to a Range request (a broken server).
    ignore_range: bool,
    /// Refuse URLs without a valid signature.
    signed_only: bool,
}

/// One request the upstream saw.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Number of the connection it came on (1 for the first accepted).
    pub conn: usize,
    pub method: String,
    /// The blob name from `/f/<name>`, when the path had that shape.
    pub blob: Option<String>,
    pub query: String,
    /// Header names in lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    pub status: u16,
    /// The blob bytes this response was to carry (`start..end`), for 200/206 GETs.
    pub span: Option<(u64, u64)>,
}

impl Hit {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    pub fn range(&self) -> Option<&str> {
        self.header("range")
    }

    /// `N` of a `Range: bytes=N-…` header.
    pub fn range_start(&self) -> Option<u64> {
        self.range()?.strip_prefix("bytes=")?.split('-').next()?.trim().parse().ok()
    }
}

struct Inner {
    base: String,
    secret: String,
    blobs: Mutex<HashMap<String, Blob>>,
    hits: Mutex<Vec<Hit>>,
    connections: AtomicUsize,
    /// Seconds added to the real clock when checking URL expiry.
    clock_offset: AtomicI64,
    /// What an expired URL gets: 410 or 403.
    expired_status: AtomicU16,
}

/// A running upstream on 127.0.0.1. Stops accepting when dropped.
pub struct Upstream {
    inner: Arc<Inner>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn hex_sha256(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

const PATH_SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

impl Upstream {
    /// Listen on 127.0.0.1 (a free port) and serve until dropped.
    pub async fn start() -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
        let addr = listener.local_addr().expect("local addr");
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let inner = Arc::new(Inner {
            base: format!("http://{addr}"),
            secret: hex_sha256(&[&nanos.to_le_bytes(), addr.to_string().as_bytes()]),
            blobs: Mutex::new(HashMap::new()),
            hits: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            clock_offset: AtomicI64::new(0),
            expired_status: AtomicU16::new(410),
        });
        let task = tokio::spawn(accept_loop(Arc::clone(&inner), listener));
        Upstream { inner, addr, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base(&self) -> &str {
        &self.inner.base
    }

    /// Add or replace blob `name` (no requirements, no faults).
    pub fn put(&self, name: &str, data: impl Into<Bytes>) {
        let data: Bytes = data.into();
        let etag = format!("\"{}\"", &hex_sha256(&[&data])[..20]);
        let blob = Blob {
            data,
            etag,
            require: vec![],
            faults: vec![],
            slow: None,
            held: None,
            ignore_range: false,
            signed_only: false,
        };
        self.inner.blobs.lock().unwrap().insert(name.to_string(), blob);
    }

    fn with_blob<T>(&self, name: &str, f: impl FnOnce(&mut Blob) -> T) -> T {
        let mut blobs = self.inner.blobs.lock().unwrap();
        let b = blobs.get_mut(name).unwrap_or_else(|| panic!("upstream has no blob {name:?}"));
        f(b)
    }

    pub fn data(&self, name: &str) -> Bytes {
        self.with_blob(name, |b| b.data.clone())
    }

    /// Requests for `name` must carry `header: value` exactly, or get 403.
    pub fn require(&self, name: &str, header: &str, value: &str) {
        self.with_blob(name, |b| b.require.push((header.to_ascii_lowercase(), value.to_string())));
    }

    /// Refuse `name` (403) through URLs without a valid signature.
    pub fn signed_only(&self, name: &str) {
        self.with_blob(name, |b| b.signed_only = true);
    }

    pub fn add_fault(&self, name: &str, fault: Fault) {
        self.with_blob(name, |b| b.faults.push(fault));
    }

    pub fn clear_faults(&self, name: &str) {
        self.with_blob(name, |b| {
            b.faults.clear();
            b.slow = None;
            b.held = None;
            b.ignore_range = false;
        });
    }

    /// Send the body of `name` in `chunk`-byte pieces, waiting `delay` before each.
    pub fn slow(&self, name: &str, chunk: usize, delay: Duration) {
        self.with_blob(name, |b| b.slow = Some((chunk.max(1), delay)));
    }

    /// Send the body of `name` in `chunk`-byte pieces and stop after the first until the
    /// returned gate gets a permit (`add_permits(1)`): a reader that sees the first bytes
    /// before it opens the gate proves that the bytes were streamed, not buffered.
    pub fn hold_after_first_chunk(&self, name: &str, chunk: usize) -> Arc<tokio::sync::Semaphore> {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        self.with_blob(name, |b| {
            b.slow = Some((chunk.max(1), Duration::ZERO));
            b.held = Some(Arc::clone(&gate));
        });
        gate
    }

    /// Answer Range requests for `name` with 200 and the whole blob.
    pub fn ignore_range(&self, name: &str, on: bool) {
        self.with_blob(name, |b| b.ignore_range = on);
    }

    /// The ETag the upstream sends for `name`.
    pub fn etag(&self, name: &str) -> String {
        self.with_blob(name, |b| b.etag.clone())
    }

    /// A plain, never-expiring URL of `name`.
    pub fn url(&self, name: &str) -> String {
        format!("{}/f/{}", self.inner.base, percent_encoding::utf8_percent_encode(name, PATH_SEGMENT))
    }

    /// The upstream's clock (real time plus what `advance_clock` added), Unix seconds.
    pub fn now(&self) -> i64 {
        self.inner.now()
    }

    /// A signed URL of `name` valid for `ttl` by the upstream's clock; with `bind_ua`,
    /// valid only for requests with exactly that User-Agent.
    pub fn issue(&self, name: &str, ttl: Duration, bind_ua: Option<&str>) -> String {
        let exp = self.inner.now() + ttl.as_secs() as i64;
        let ua = bind_ua.map(|u| hex::encode(u.as_bytes())).unwrap_or_default();
        let sig = self.inner.sign(name, exp, &ua);
        let mut url = format!("{}?exp={exp}", self.url(name));
        if !ua.is_empty() {
            url.push_str(&format!("&ua={ua}"));
        }
        url.push_str(&format!("&sig={sig}"));
        url
    }

    /// Move the upstream's clock forward: URLs issued before may now be expired.
    pub fn advance_clock(&self, by: Duration) {
        self.inner.clock_offset.fetch_add(by.as_secs() as i64, Ordering::SeqCst);
    }

    /// Answer expired URLs with 410 (default) or 403.
    pub fn set_expired_status(&self, code: u16) {
        assert!(code == 410 || code == 403, "expired URLs get 410 or 403");
        self.inner.expired_status.store(code, Ordering::SeqCst);
    }

    /// Every request seen so far, in order of arrival.
    pub fn hits(&self) -> Vec<Hit> {
        self.inner.hits.lock().unwrap().clone()
    }

    /// Requests for blob `name`.
    pub fn hits_for(&self, name: &str) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.blob.as_deref() == Some(name)).collect()
    }

    /// GET requests for `name` that were answered with a body (200 or 206).
    pub fn body_requests(&self, name: &str) -> Vec<Hit> {
        self.hits_for(name).into_iter().filter(|h| h.method == "GET" && (h.status == 200 || h.status == 206)).collect()
    }

    /// How many requests for `name` carried `Range: <range>` exactly.
    pub fn range_count(&self, name: &str, range: &str) -> usize {
        self.hits_for(name).iter().filter(|h| h.range() == Some(range)).count()
    }

    pub fn clear_hits(&self) {
        self.inner.hits.lock().unwrap().clear();
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.inner.connections.load(Ordering::SeqCst)
    }
}

impl Inner {
    fn now(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
            + self.clock_offset.load(Ordering::SeqCst)
    }

    fn sign(&self, name: &str, exp: i64, ua_hex: &str) -> String {
        hex_sha256(&[self.secret.as_bytes(), name.as_bytes(), exp.to_string().as_bytes(), ua_hex.as_bytes()])[..32]
            .to_string()
    }

    fn answer(self: &Arc<Self>, req: &Request<Incoming>, hit: &mut Hit) -> Response<Body> {
        let Some(name) = req.uri().path().strip_prefix("/f/") else {
            return text(404, "no such path");
        };
        let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy().into_owned();
        hit.blob = Some(name.clone());
        let head = req.method() == hyper::Method::HEAD;
        if !head && req.method() != hyper::Method::GET {
            return text(405, "GET or HEAD");
        }
        let mut expire = false;
        let (data, etag, slow, held, ignore_range, mut cut) = {
            let mut blobs = self.blobs.lock().unwrap();
            let Some(b) = blobs.get_mut(&name) else {
                return text(404, "no such blob");
            };

            // Signed URLs: right signature, not expired, right User-Agent.
            let q: HashMap<String, String> = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            match q.get("sig") {
                Some(sig) => {
                    let exp: i64 = q.get("exp").and_then(|e| e.parse().ok()).unwrap_or(0);
                    let ua = q.get("ua").cloned().unwrap_or_default();
                    if *sig != self.sign(&name, exp, &ua) {
                        return text(403, "bad signature");
                    }
                    if exp < self.now() {
                        return text(self.expired_status.load(Ordering::SeqCst), "link expired");
                    }
                    if !ua.is_empty() {
                        let got =
                            req.headers().get("user-agent").map(|v| hex::encode(v.as_bytes())).unwrap_or_default();
                        if got != ua {
                            return text(403, "link is bound to another User-Agent");
                        }
                    }
                }
                None if b.signed_only => return text(403, "unsigned URL"),
                None => {}
            }
            for (k, v) in &b.require {
                if req.headers().get(k.as_str()).and_then(|h| h.to_str().ok()) != Some(v.as_str()) {
                    return text(403, &format!("missing or wrong {k}"));
                }
            }
            for f in b.faults.iter_mut() {
                if let Fault::Status { code, times } = f {
                    if *times > 0 {
                        if *times != ALWAYS {
                            *times -= 1;
                        }
                        let mut r = text(*code, "fault injected");
                        if *code == 429 || *code == 503 {
                            r.headers_mut().insert("retry-after", "1".parse().unwrap());
                        }
                        return r;
                    }
                }
            }
            (b.data.clone(), b.etag.clone(), b.slow, b.held.clone(), b.ignore_range, None::<u64>)
        };

        let size = data.len() as u64;
        let range = if ignore_range {
            None
        } else {
            req.headers().get("range").and_then(|v| v.to_str().ok()).map(|v| parse_range(v, size))
        };
        let (status, start, end) = match range {
            None | Some(Ranged::Ignore) => (200, 0, size),
            Some(Ranged::Part(s, e)) => (206, s, e),
            Some(Ranged::Unsatisfiable) => {
                let mut r = text(416, "range not satisfiable");
                r.headers_mut().insert("content-range", format!("bytes */{size}").parse().unwrap());
                return r;
            }
        };

        let mut resp = Response::builder()
            .status(status)
            .header("content-length", end - start)
            .header("accept-ranges", "bytes")
            .header("etag", etag)
            .header("content-type", "application/octet-stream")
            .header("set-cookie", SET_COOKIE);
        if status == 206 {
            resp = resp.header("content-range", format!("bytes {start}-{}/{size}", end - 1));
        }
        if head {
            return resp.body(Empty::new().map_err(|n| match n {}).boxed()).unwrap();
        }
        hit.span = Some((start, end));

        if end > start {
            let mut blobs = self.blobs.lock().unwrap();
            if let Some(b) = blobs.get_mut(&name) {
                for f in b.faults.iter_mut() {
                    let (at, times, exp) = match f {
                        Fault::DropAt { offset, times } if start <= *offset && *offset < end => (*offset, times, false),
                        Fault::ExpireAt { offset, times } if start <= *offset && *offset < end => {
                            (*offset, times, true)
                        }
                        Fault::DropAfter { bytes, times } if start + *bytes < end => (start + *bytes, times, false),
                        _ => continue,
                    };
                    if *times == 0 {
                        continue;
                    }
                    if *times != ALWAYS {
                        *times -= 1;
                    }
                    cut = Some(at);
                    expire = exp;
                    break;
                }
            }
        }

        let (chunk, delay) = match slow {
            Some((c, d)) => (c, Some(d)),
            None => (CHUNK, None),
        };
        let st = BodyState {
            data,
            pos: start,
            stop: cut.unwrap_or(end),
            fail: cut.is_some(),
            chunk,
            delay,
            held,
            first: start,
            expire: expire.then(|| Arc::clone(self)),
        };
        let stream = futures_util::stream::unfold(st, |mut s| async move {
            if s.pos < s.stop {
                if let Some(d) = s.delay {
                    tokio::time::sleep(d).await;
                }
                if s.pos > s.first {
                    if let Some(gate) = s.held.take() {
                        let _ = gate.acquire().await.map(|p| p.forget());
                    }
                }
                let n = (s.stop - s.pos).min(s.chunk as u64);
                let b = s.data.slice(s.pos as usize..(s.pos + n) as usize);
                s.pos += n;
                return Some((Ok(Frame::data(b)), s));
            }
            if s.fail {
                if let Some(inner) = s.expire.take() {
                    inner.clock_offset.fetch_add(86_400, Ordering::SeqCst);
                }
                // Let hyper flush what was sent, then break the connection.
                tokio::time::sleep(Duration::from_millis(30)).await;
                s.fail = false;
                return Some((Err(std::io::Error::other("fault: connection dropped mid-body")), s));
            }
            None
        });
        resp.body(BodyExt::boxed(StreamBody::new(stream))).unwrap()
    }
}

struct BodyState {
    data: Bytes,
    pos: u64,
    stop: u64,
    fail: bool,
    chunk: usize,
    delay: Option<Duration>,
    held: Option<Arc<tokio::sync::Semaphore>>,
    /// Where this body started (the gate is waited on after the first chunk).
    first: u64,
    /// Expire every URL issued so far when the body breaks.
    expire: Option<Arc<Inner>>,
}

enum Ranged {
    Ignore,
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range (several, or a syntax we don't know: the whole blob).
fn parse_range(v: &str, size: u64) -> Ranged {
    let Some(spec) = v.trim().strip_prefix("bytes=") else { return Ranged::Ignore };
    if spec.contains(',') {
        return Ranged::Ignore;
    }
    let Some((a, b)) = spec.split_once('-') else { return Ranged::Ignore };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        return match b.parse::<u64>() {
            Ok(0) => Ranged::Unsatisfiable,
            Ok(n) if size > 0 => Ranged::Part(size.saturating_sub(n), size),
            Ok(_) => Ranged::Unsatisfiable,
            Err(_) => Ranged::Ignore,
        };
    }
    let Ok(start) = a.parse::<u64>() else { return Ranged::Ignore };
    let end = if b.is_empty() {
        size
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => (e + 1).min(size),
            _ => return Ranged::Ignore,
        }
    };
    if start >= size {
        return Ranged::Unsatisfiable;
    }
    Ranged::Part(start, end)
}

fn text(code: u16, msg: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "text/plain")
        .header("set-cookie", SET_COOKIE)
        .body(Full::new(Bytes::from(format!("{msg}\n"))).map_err(|n| match n {}).boxed())
        .unwrap()
}

async fn accept_loop(inner: Arc<Inner>, listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let conn = inner.connections.fetch_add(1, Ordering::SeqCst) + 1;
        let inner = Arc::clone(&inner);
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let inner = Arc::clone(&inner);
                async move {
                    let mut hit = Hit {
                        conn,
                        method: req.method().to_string(),
                        blob: None,
                        query: req.uri().query().unwrap_or("").to_string(),
                        headers: req
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                            .collect(),
                        status: 0,
                        span: None,
                    };
                    let resp = inner.answer(&req, &mut hit);
                    hit.status = resp.status().as_u16();
                    inner.hits.lock().unwrap().push(hit);
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

/// Deterministic pseudo-random bytes (xorshift64) for test content, different per
/// `seed`: big files without an RNG crate, reproducible across runs and test binaries.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
