//! Listeners: accepting connections and serving HTTP/1 and HTTP/2 on them.
//!
//! Every connection is bounded in number and in time, whatever its client does:
//! - at most `max_connections` at once; beyond it new connections are closed at once
//!   (the newest shed, logged once per burst);
//! - `header_timeout` from accept to the first request: TLS handshake, the wait while
//!   HTTP/1 or HTTP/2 is being detected, and the first request's headers;
//! - `idle_timeout` with no request in progress closes it (HTTP/1 keep-alive: through
//!   hyper's header timer; HTTP/2: here, with a GOAWAY); HTTP/2 pings find dead peers.
//!
//! Shutdown is graceful: the listeners close (new connections are refused), every
//! connection is told to finish (HTTP/1: after its running response; HTTP/2: GOAWAY),
//! and running requests and streams get up to the grace period to end.
//!
//! Each request is handled by the [`App`] in force when it arrives: a reload swaps in
//! a new one, and connections that are open already pick it up with their next request.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::App;
use crate::config::Config;

/// HTTP/2 pings on a connection (to find peers that are gone) every …
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
/// … and a peer that does not answer one within this is dropped.
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
const H2_MAX_STREAMS: u32 = 128;
/// Time a connection told to close gets to finish what it is sending.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Default connection cap when the open-file limit allows more.
const DEFAULT_MAX_CONNECTIONS: u64 = 4096;

/// How many connections, for how long.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// Local files by `sendfile` on plain HTTP/1 connections (`server.sendfile`).
    pub sendfile: bool,
}

impl Limits {
    /// From `[server]`, with the connection cap derived from `open_files` (the soft
    /// RLIMIT_NOFILE) when not configured: half of it (the other half for the files
    /// being served and uploaded), at most 4096.
    pub fn new(cfg: &crate::config::ServerConfig, open_files: u64) -> Limits {
        let derived = (open_files.saturating_sub(64) / 2).clamp(16, DEFAULT_MAX_CONNECTIONS) as usize;
        Limits {
            max_connections: cfg.max_connections.unwrap_or(derived),
            header_timeout: cfg.header_timeout,
            idle_timeout: cfg.idle_timeout,
            sendfile: cfg.sendfile,
        }
    }
}

/// What `serve` needs from the process before it starts: the open-file limit raised to
/// the hard limit, the upload cap set, spool files of a killed run removed.
pub fn prepare(cfg: &Config, spool_dir: &std::path::Path) -> Limits {
    let open_files = raise_open_file_limit();
    crate::vfs::spool::set_max_uploads(cfg.raw.server.max_uploads);
    crate::vfs::spool::remove_stale(spool_dir);
    let limits = Limits::new(&cfg.raw.server, open_files);
    if limits.max_connections as u64 * 2 > open_files {
        tracing::warn!(
            "server.max_connections = {} with only {open_files} open files allowed: \
             raise LimitNOFILE / ulimit -n, or connections will fail to open files",
            limits.max_connections
        );
    }
    tracing::debug!(?limits, open_files, "connection limits");
    limits
}

/// Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in force.
pub fn raise_open_file_limit() -> u64 {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let r = getrlimit(Resource::Nofile);
        // "Unlimited" hard limits are capped where the kernel would refuse more anyway.
        let hard = r.maximum.unwrap_or(1 << 20);
        let soft = r.current.unwrap_or(hard);
        if soft >= hard {
            return soft;
        }
        match setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: r.maximum }) {
            Ok(()) => hard,
            Err(e) => {
                tracing::warn!("cannot raise the open-file limit from {soft} to {hard}: {e}");
                soft
            }
        }
    }
    #[cfg(not(unix))]
    1024
}

/// Serve on the given listeners until `shutdown` resolves, with the default limits
/// (for embedding; `pandav serve` uses [`serve_with`] and the config's).
pub async fn serve(
    app: Arc<App>,
    listeners: Vec<TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let limits = Limits::new(&crate::config::ServerConfig::default(), raise_open_file_limit());
    serve_with(app, listeners, tls, limits, shutdown).await
}

/// Serve on the given listeners until `shutdown` resolves; then stop at once.
pub async fn serve_with(
    app: Arc<App>,
    listeners: Vec<TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let apps = Arc::new(ArcSwap::new(app));
    serve_graceful(apps, listeners, tls, limits, shutdown, Duration::ZERO).await;
}

/// Serve on the given listeners with the App in `apps` (swapped by a reload) until
/// `shutdown` resolves; then close the listeners, tell every connection to finish, and
/// wait up to `grace` for running requests and streams to end. Returns how many
/// connections were still open when it gave up.
pub async fn serve_graceful(
    apps: Arc<ArcSwap<App>>,
    listeners: Vec<TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) -> usize {
    let gate = Arc::new(Gate::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for l in listeners {
        let apps = Arc::clone(&apps);
        let tls = tls.clone();
        tasks.spawn(accept_loop(apps, l, tls, limits, Arc::clone(&gate), stop_rx.clone()));
    }
    shutdown.await;
    // Listeners first: from here on a new connection is refused, not left waiting.
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let _ = stop_tx.send(true);
    let open = gate.open();
    if open == 0 {
        tracing::info!("shutting down: no connections open");
        return 0;
    }
    tracing::info!("shutting down: no new connections; waiting up to {grace:?} for {open} open connection(s)");
    match tokio::time::timeout(grace, gate.all_closed()).await {
        Ok(()) => {
            tracing::info!("every connection finished");
            0
        }
        Err(_) => {
            let left = gate.open();
            tracing::warn!("shutdown_grace ({grace:?}) is over: closing {left} connection(s) still open");
            left
        }
    }
}

/// The connection cap, and the once-per-burst log lines of shedding and accept errors.
struct Gate {
    slots: Arc<Semaphore>,
    max: usize,
    shedding: AtomicBool,
    shed: AtomicU64,
    failing: AtomicBool,
}

impl Gate {
    fn new(max: usize) -> Gate {
        Gate {
            slots: Arc::new(Semaphore::new(max)),
            max,
            shedding: AtomicBool::new(false),
            shed: AtomicU64::new(0),
            failing: AtomicBool::new(false),
        }
    }

    /// A slot for a new connection, or `None` (then close it).
    fn admit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(p) => {
                if self.shedding.swap(false, Ordering::Relaxed) {
                    let n = self.shed.swap(0, Ordering::Relaxed);
                    tracing::info!("accepting connections again; {n} were closed at the limit");
                }
                Some(p)
            }
            Err(_) => {
                self.shed.fetch_add(1, Ordering::Relaxed);
                if !self.shedding.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "{} connections open (server.max_connections): closing new ones until some end",
                        self.max
                    );
                }
                None
            }
        }
    }

    /// Connections open now.
    fn open(&self) -> usize {
        self.max - self.slots.available_permits()
    }

    /// Resolves when every connection has ended.
    async fn all_closed(&self) {
        let n = u32::try_from(self.max).unwrap_or(u32::MAX);
        let _all = self.slots.acquire_many(n).await;
    }

    fn accept_failed(&self, e: &std::io::Error) {
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!("accept failed: {e} (not logged again until an accept succeeds)");
        }
    }

    fn accept_ok(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!("accepting again");
        }
    }
}

async fn accept_loop(
    apps: Arc<ArcSwap<App>>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    gate: Arc<Gate>,
    stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: the connection stays queued; try again shortly.
                gate.accept_failed(&e);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        gate.accept_ok();
        let Some(slot) = gate.admit() else {
            drop(stream);
            continue;
        };
        let accepted = Instant::now();
        let _ = stream.set_nodelay(true);
        let apps = Arc::clone(&apps);
        let tls = tls.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let first_deadline = tokio::time::Instant::from_std(accepted + limits.header_timeout);
            let r = match tls {
                Some(acc) => match tokio::time::timeout_at(first_deadline, acc.accept(stream)).await {
                    Ok(Ok(s)) => serve_connection(s, None, apps, peer, limits, first_deadline, stop).await,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "no TLS handshake within header_timeout: closed");
                        return;
                    }
                },
                None if limits.sendfile => {
                    let (stream, splice) = super::zerocopy::SpliceStream::new(stream);
                    serve_connection(stream, Some(splice), apps, peer, limits, first_deadline, stop).await
                }
                None => serve_connection(stream, None, apps, peer, limits, first_deadline, stop).await,
            };
            if let Err(e) = r {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
}

/// Requests in progress on one connection, and since when it has had none.
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// Milliseconds after `started` when `in_flight` last went to 0.
    idle_since_ms: AtomicU64,
}

impl Activity {
    fn begin(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// How long the connection has had no request in progress (`None`: one is).
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = self.started + Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
        Some(since.elapsed())
    }
}

/// One request in progress: from the service call until its response body is done or
/// dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since_ms.store(a.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in progress until it is done.
struct Tracked<B> {
    inner: B,
    _req: InFlight,
}

impl<B: http_body::Body + Unpin> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves one connection. `splice`: the stream sends local files by `sendfile` (a plain
/// TCP connection), offered to its HTTP/1 requests.
async fn serve_connection<S>(
    stream: S,
    splice: Option<super::zerocopy::Splice>,
    apps: Arc<ArcSwap<App>>,
    peer: std::net::SocketAddr,
    limits: Limits,
    first_deadline: tokio::time::Instant,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity {
        started: Instant::now(),
        in_flight: AtomicUsize::new(0),
        requests: AtomicU64::new(0),
        idle_since_ms: AtomicU64::new(0),
    });
    let act = Arc::clone(&activity);
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        // HTTP/2 streams interleave their frames: only HTTP/1 sends a body at a time,
        // in order, as the placeholders need.
        if let Some(sp) = &splice {
            if req.version() < hyper::Version::HTTP_2 {
                req.extensions_mut().insert(sp.clone());
            }
        }
        // The App in force now: a reload reaches open connections at their next request.
        let app = apps.load_full();
        // Counted here, not in the future: a future dropped unpolled still ends it.
        let req_guard = act.begin();
        async move {
            let resp = app.handle(req, peer).await;
            Ok::<_, Infallible>(resp.map(|inner| Tracked { inner, _req: req_guard }))
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(256 * 1024)
        .timer(TokioTimer::new())
        // Also the keep-alive limit: hyper starts this timer when it waits for a request.
        .header_read_timeout(limits.idle_timeout.min(Duration::from_secs(3600)));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(H2_PING_TIMEOUT)
        .max_concurrent_streams(H2_MAX_STREAMS);
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let mut deadline = first_deadline;
    let mut stopping = false;
    loop {
        if stopping || *stop.borrow() {
            // Shutting down: finish the running response(s), then close. The grace
            // period is the caller's.
            conn.as_mut().graceful_shutdown();
            return conn.as_mut().await;
        }
        tokio::select! {
            r = conn.as_mut() => return r,
            _ = tokio::time::sleep_until(deadline) => {}
            // A dropped sender (the server future went away) means stop too.
            r = stop.changed() => {
                stopping = r.is_err();
                continue;
            }
        }
        if activity.requests.load(Ordering::Relaxed) == 0 {
            // Silent, or too slow to say what it wants (also while HTTP/1 or HTTP/2 is
            // being detected, which no hyper timer covers).
            tracing::debug!(%peer, "no request within header_timeout: closed");
            return Ok(());
        }
        match activity.idle_for() {
            Some(idle) if idle >= limits.idle_timeout => {
                tracing::debug!(%peer, "idle for {}s: closing", idle.as_secs());
                conn.as_mut().graceful_shutdown();
                return match tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await {
                    Ok(r) => r,
                    Err(_) => Ok(()),
                };
            }
            Some(idle) => deadline = tokio::time::Instant::now() + (limits.idle_timeout - idle),
            None => deadline = tokio::time::Instant::now() + limits.idle_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_cap_follows_the_open_file_limit_unless_set() {
        let cfg = crate::config::ServerConfig::default();
        assert_eq!(Limits::new(&cfg, 1024).max_connections, 480);
        assert_eq!(Limits::new(&cfg, 1 << 20).max_connections, 4096);
        assert_eq!(Limits::new(&cfg, 10).max_connections, 16);
        let set = crate::config::ServerConfig { max_connections: Some(7), ..cfg };
        assert_eq!(Limits::new(&set, 1 << 20).max_connections, 7);
    }

    #[test]
    fn raising_the_open_file_limit_reaches_the_hard_limit() {
        let soft = raise_open_file_limit();
        let r = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(r.current, Some(soft));
        assert!(r.maximum.is_none_or(|hard| soft == hard));
    }
}
