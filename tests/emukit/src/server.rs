//! Listeners (one per emulated host), the request pipeline, the log and the fault table.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::fault::{self, Action, Entry, Fault, FaultId};
use crate::http::{Body, Reply, Request};
use crate::log::LoggedRequest;
use crate::util::pct_decode;

type Handler<X> = dyn Fn(Request, Option<X>) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync;

/// How hosts map to listeners.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// One port per host; the endpoint of a host is `http://IP:PORT` (the default).
    #[default]
    PortPerHost,
    /// One port for every host, each under a path prefix named after it:
    /// `http://IP:PORT/<host>/<path>` (the layout the 115 emulators publish). Any first path
    /// segment is taken as the host; the handler answers unknown ones.
    PathPrefix,
}

/// Where to bind.
#[derive(Clone, Debug, Default)]
pub struct BindOptions {
    /// Preferred port per host (e.g. the ports of a previous run, so a driver configured with
    /// the old endpoints keeps working after an emulator restart). Other hosts get a free port.
    /// With [`Layout::PathPrefix`] the single port is the one of key `"*"`.
    pub ports: BTreeMap<String, u16>,
    /// Address to bind; default 127.0.0.1.
    pub ip: Option<IpAddr>,
    pub layout: Layout,
}

/// Listeners bound for every host but not serving yet: read the endpoints, build the
/// emulator's state with them, then [`Bound::serve`].
pub struct Bound {
    /// `(host, listener)`; the host is `"*"` for the single listener of [`Layout::PathPrefix`].
    listeners: Vec<(String, TcpListener)>,
    ip: IpAddr,
    layout: Layout,
    hosts: Vec<String>,
}

async fn listen(ip: IpAddr, port: u16, what: &str) -> std::io::Result<TcpListener> {
    let sock = if ip.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    sock.set_reuseaddr(true)?;
    sock.bind(SocketAddr::new(ip, port))
        .map_err(|e| std::io::Error::new(e.kind(), format!("bind {what} on {ip}:{port}: {e}")))?;
    sock.listen(1024)
}

fn base_of(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("http://{a}:{port}"),
        IpAddr::V6(a) => format!("http://[{a}]:{port}"),
    }
}

impl Bound {
    /// Bind one port per host. A preferred port that is taken is an error (the caller asked
    /// for it because something is configured with it).
    pub async fn bind(hosts: &[&str], opts: &BindOptions) -> std::io::Result<Bound> {
        let ip = opts.ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let mut names: Vec<String> = Vec::new();
        for h in hosts {
            let h = h.to_ascii_lowercase();
            if !names.contains(&h) {
                names.push(h);
            }
        }
        let mut listeners = Vec::new();
        match opts.layout {
            Layout::PortPerHost => {
                for h in &names {
                    let port = opts.ports.get(h).copied().unwrap_or(0);
                    listeners.push((h.clone(), listen(ip, port, h).await?));
                }
            }
            Layout::PathPrefix => {
                let port = opts.ports.get("*").copied().unwrap_or(0);
                listeners.push(("*".to_string(), listen(ip, port, "all hosts").await?));
            }
        }
        Ok(Bound { listeners, ip, layout: opts.layout, hosts: names })
    }

    pub fn ports(&self) -> BTreeMap<String, u16> {
        self.listeners.iter().map(|(h, l)| (h.clone(), l.local_addr().map(|a| a.port()).unwrap_or(0))).collect()
    }

    /// `host → base URL` (no trailing slash) for every host.
    pub fn endpoints(&self) -> BTreeMap<String, String> {
        let ports = self.ports();
        match self.layout {
            Layout::PortPerHost => ports.into_iter().map(|(h, p)| (h, base_of(self.ip, p))).collect(),
            Layout::PathPrefix => {
                let base = base_of(self.ip, ports["*"]);
                self.hosts.iter().map(|h| (h.clone(), format!("{base}/{h}"))).collect()
            }
        }
    }

    /// The single base URL of [`Layout::PathPrefix`] (`http://IP:PORT`).
    pub fn base_url(&self) -> Option<String> {
        (self.layout == Layout::PathPrefix).then(|| base_of(self.ip, self.ports()["*"]))
    }

    /// Start serving every host with `handler`. `X` is the emulator's own fault type
    /// ([`Action::Custom`]); the handler receives the custom fault that fired, if any.
    pub fn serve<X, F, Fut>(self, handler: F) -> Server<X>
    where
        X: Clone + Send + Sync + 'static,
        F: Fn(Request, Option<X>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Reply> + Send + 'static,
    {
        let endpoints = self.endpoints();
        let ports = self.ports();
        let base = self.base_url();
        let handler: Arc<Handler<X>> = Arc::new(move |r, x| Box::pin(handler(r, x)));
        let shared = Arc::new(Shared {
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
            next_fault: AtomicU64::new(1),
        });
        let (tx, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for (host, listener) in self.listeners {
            tasks.push(tokio::spawn(accept_loop(listener, host, shared.clone(), handler.clone(), rx.clone())));
        }
        Server { shared, shutdown: tx, tasks: Mutex::new(tasks), endpoints, ports, base }
    }
}

struct Shared<X> {
    log: Mutex<Vec<LoggedRequest>>,
    faults: Mutex<Vec<Entry<X>>>,
    seq: AtomicU64,
    next_fault: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running set of emulated hosts. Dropping it closes every listener and connection.
pub struct Server<X> {
    shared: Arc<Shared<X>>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    endpoints: BTreeMap<String, String>,
    ports: BTreeMap<String, u16>,
    /// Single base URL of [`Layout::PathPrefix`].
    base: Option<String>,
}

impl<X> Drop for Server<X> {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for t in lock(&self.tasks).iter() {
            t.abort();
        }
    }
}

impl<X: Clone + Send + Sync + 'static> Server<X> {
    /// Base URL standing in for `https://<host>`. With [`Layout::PortPerHost`] it panics for a
    /// host that is not served; with [`Layout::PathPrefix`] any host has one (`BASE/<host>`).
    pub fn endpoint(&self, host: &str) -> String {
        if let Some(base) = &self.base {
            return format!("{base}/{host}");
        }
        self.endpoints.get(&host.to_ascii_lowercase()).cloned().unwrap_or_else(|| panic!("host {host} is not emulated"))
    }

    /// The single base URL (`http://IP:PORT`) of [`Layout::PathPrefix`]; `None` otherwise.
    pub fn base_url(&self) -> Option<String> {
        self.base.clone()
    }

    /// `host → base URL` for every served host.
    pub fn endpoints(&self) -> BTreeMap<String, String> {
        self.endpoints.clone()
    }

    pub fn ports(&self) -> BTreeMap<String, u16> {
        self.ports.clone()
    }

    pub fn hosts(&self) -> Vec<String> {
        self.endpoints.keys().cloned().collect()
    }

    /// Close every listener and open connection now (like a crashed server), and wait until
    /// the ports are released.
    pub async fn stop(&self) {
        let _ = self.shutdown.send(true);
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.tasks));
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    // ------------------------------------------------------------------ log

    /// Every request so far, in arrival order.
    pub fn log(&self) -> Vec<LoggedRequest> {
        lock(&self.shared.log).clone()
    }

    /// Requests matching a predicate.
    pub fn log_filter(&self, f: impl Fn(&LoggedRequest) -> bool) -> Vec<LoggedRequest> {
        lock(&self.shared.log).iter().filter(|r| f(r)).cloned().collect()
    }

    pub fn clear_log(&self) {
        lock(&self.shared.log).clear();
    }

    /// Requests whose `host/path` equals `key` (a trailing `/` is ignored on both sides).
    pub fn calls(&self, key: &str) -> usize {
        let k = key.trim_start_matches('/').trim_end_matches('/');
        lock(&self.shared.log).iter().filter(|r| r.key().trim_end_matches('/') == k).count()
    }

    /// Requests whose `host/path` matches a fault-style pattern (glob with `*`, else prefix).
    pub fn calls_matching(&self, pattern: &str) -> usize {
        let p = fault::normalise(pattern);
        lock(&self.shared.log)
            .iter()
            .filter(|r| if p.contains('*') { crate::util::glob_match(&p, &r.key()) } else { r.key().starts_with(&p) })
            .count()
    }

    // ------------------------------------------------------------------ faults

    /// Inject a fault for requests whose `host/path` (no query) matches `pattern`: a glob if it
    /// contains `*`, otherwise a prefix. A leading `/` is ignored.
    pub fn inject(&self, pattern: &str, fault: Fault<X>) -> FaultId {
        let id = self.shared.next_fault.fetch_add(1, Ordering::SeqCst);
        lock(&self.shared.faults).push(Entry { id, pattern: fault::normalise(pattern), fault, fired: 0 });
        FaultId(id)
    }

    pub fn remove_fault(&self, id: FaultId) {
        lock(&self.shared.faults).retain(|e| e.id != id.0);
    }

    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Faults still armed.
    pub fn armed_faults(&self) -> usize {
        lock(&self.shared.faults).len()
    }
}

async fn wait_shutdown(mut rx: watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn accept_loop<X: Clone + Send + Sync + 'static>(
    listener: TcpListener,
    host: String,
    shared: Arc<Shared<X>>,
    handler: Arc<Handler<X>>,
    rx: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = wait_shutdown(rx.clone()) => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        tokio::spawn(connection(stream, peer, host.clone(), shared.clone(), handler.clone(), rx.clone()));
    }
}

async fn connection<X: Clone + Send + Sync + 'static>(
    stream: TcpStream,
    peer: SocketAddr,
    host: String,
    shared: Arc<Shared<X>>,
    handler: Arc<Handler<X>>,
    rx: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let svc = service_fn(move |req| handle(req, peer, host.clone(), shared.clone(), handler.clone()));
    let conn = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), svc);
    tokio::select! {
        _ = conn => {}
        _ = wait_shutdown(rx) => {}
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

fn update_log<X>(shared: &Shared<X>, seq: u64, f: impl FnOnce(&mut LoggedRequest)) {
    let mut log = lock(&shared.log);
    if let Some(e) = log.iter_mut().rev().find(|e| e.seq == seq) {
        f(e);
    }
}

async fn handle<X: Clone + Send + Sync + 'static>(
    req: hyper::Request<hyper::body::Incoming>,
    peer: SocketAddr,
    host: String,
    shared: Arc<Shared<X>>,
    handler: Arc<Handler<X>>,
) -> Result<Response<EmuBody>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let mut raw_path = parts.uri.path().to_string();
    let mut host = host;
    if host == "*" {
        // Layout::PathPrefix: `/<host>/<path>`.
        let trimmed = raw_path.trim_start_matches('/');
        let (h, rest) = match trimmed.find('/') {
            Some(i) => (trimmed[..i].to_string(), trimmed[i..].to_string()),
            None => (trimmed.to_string(), "/".to_string()),
        };
        host = pct_decode(&h).to_ascii_lowercase();
        raw_path = rest;
    }
    let path = pct_decode(&raw_path);
    let query = parts.uri.query().unwrap_or("").to_string();
    let key = format!("{host}{path}");
    let seq = shared.seq.fetch_add(1, Ordering::SeqCst);
    let chosen = fault::choose(&mut lock(&shared.faults), &parts.method, &key);
    let label = chosen.primary.as_ref().map(|a| a.label()).or_else(|| chosen.body.first().map(|a| a.label()));
    lock(&shared.log).push(LoggedRequest {
        seq,
        method: parts.method.to_string(),
        host: host.clone(),
        path: path.clone(),
        query: query.clone(),
        headers: parts.headers.clone(),
        body_len: 0,
        status: 0,
        response_len: 0,
        fault: label,
    });

    let mut custom = None;
    let mut canned = None;
    match chosen.primary {
        Some(Action::Reset) => {
            return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, InjectedReset));
        }
        Some(Action::Delay(d)) => tokio::time::sleep(d).await,
        Some(Action::Reply(r)) => canned = Some(r),
        Some(Action::Custom(x)) => custom = Some(x),
        _ => {}
    }
    let body = body.collect().await.map_err(std::io::Error::other)?.to_bytes();
    let body_len = body.len() as u64;
    update_log(&shared, seq, |e| e.body_len = body_len);
    let is_head = parts.method == http::Method::HEAD;
    let reply = match canned {
        Some(r) => r,
        None => {
            let request =
                Request { method: parts.method, host, path, raw_path, query, headers: parts.headers, body, peer, seq };
            handler(request, custom).await
        }
    };
    let announced = reply.head_len.unwrap_or(reply.body.len());
    update_log(&shared, seq, |e| {
        e.status = reply.status;
        e.response_len = announced;
    });
    Ok(build(reply, &chosen.body, is_head))
}

// ---------------------------------------------------------------------- response bodies

/// Response body: complete, or streamed through a channel (sources, slow or cut bodies).
pub(crate) enum EmuBody {
    Full(Option<Bytes>),
    Chan(mpsc::Receiver<Result<Bytes, std::io::Error>>, u64),
}

impl http_body::Body for EmuBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            EmuBody::Full(b) => Poll::Ready(b.take().filter(|b| !b.is_empty()).map(|b| Ok(Frame::data(b)))),
            EmuBody::Chan(rx, _) => rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, EmuBody::Full(None)) || matches!(self, EmuBody::Full(Some(b)) if b.is_empty())
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            EmuBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            EmuBody::Full(None) => SizeHint::with_exact(0),
            EmuBody::Chan(_, n) => SizeHint::with_exact(*n),
        }
    }
}

const STREAM_CHUNK: usize = 256 * 1024;

fn build<X>(reply: Reply, body_faults: &[Action<X>], is_head: bool) -> Response<EmuBody> {
    let mut b =
        Response::builder().status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    let no_body_status = reply.status == 204 || reply.status == 304 || reply.status < 200;
    let mut has_len = false;
    for (k, v) in &reply.headers {
        if k.eq_ignore_ascii_case("content-length") {
            has_len = true;
        }
        b = b.header(k.as_str(), v.as_str());
    }
    let len = reply.body.len();
    if !no_body_status && !has_len {
        b = b.header("content-length", reply.head_len.unwrap_or(len).to_string());
    }
    if is_head || no_body_status {
        return b.body(EmuBody::Full(None)).expect("response");
    }
    let mut chunk = usize::MAX;
    let mut delay = Duration::ZERO;
    let mut drop_after: Option<u64> = None;
    for f in body_faults {
        match f {
            Action::SlowBody { chunk: c, delay: d } => {
                chunk = chunk.min(*c);
                delay = delay.max(*d);
            }
            Action::DropAfter(n) => drop_after = Some(drop_after.map_or(*n, |x| x.min(*n))),
            _ => {}
        }
    }
    if let (Body::Full(bytes), true) = (&reply.body, body_faults.is_empty()) {
        return b.body(EmuBody::Full(Some(bytes.clone()))).expect("response");
    }
    if matches!(reply.body, Body::Empty) {
        return b.body(EmuBody::Full(None)).expect("response");
    }
    if chunk == usize::MAX {
        chunk = STREAM_CHUNK;
    }
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(produce(reply.body, tx, chunk, delay, drop_after));
    b.body(EmuBody::Chan(rx, len)).expect("response")
}

async fn produce(
    body: Body,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    chunk: usize,
    delay: Duration,
    drop_after: Option<u64>,
) {
    let len = body.len();
    let mut sent = 0u64;
    while sent < len {
        let mut n = (chunk as u64).min(len - sent);
        if let Some(lim) = drop_after {
            if sent >= lim {
                // let hyper flush what was sent before the connection is torn down
                tokio::time::sleep(Duration::from_millis(30)).await;
                let _ = tx.send(Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, InjectedReset))).await;
                return;
            }
            n = n.min(lim - sent);
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let piece = match &body {
            Body::Empty => Bytes::new(),
            Body::Full(b) => b.slice(sent as usize..(sent + n) as usize),
            Body::Source { src, start, .. } => {
                let mut v = vec![0u8; n as usize];
                src.read_at(start + sent, &mut v);
                Bytes::from(v)
            }
        };
        if tx.send(Ok(piece)).await.is_err() {
            return;
        }
        sent += n;
    }
}
