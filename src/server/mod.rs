//! The HTTP server: listeners, optional TLS, Basic auth, routing, health, request log.
//!
//! Routing only: the WebDAV protocol rules (COPY/MOVE, locks, conditional headers, XML
//! bodies, client quirks) live in `crate::dav`. Every request that reaches dav-server
//! has passed the gates here first: its `If`/`If-Match`/`If-None-Match`/`If-Range`
//! headers parse strictly, its XML body is bounded in size and depth, and its body
//! times out when the client stops sending.

pub mod admin;
pub mod auth;
mod body;
pub mod download;
mod listen;
pub mod policy;
pub mod scrape;
pub mod sign;
pub mod tls;
pub mod zerocopy;

pub use listen::{prepare, serve, serve_graceful, serve_with, Limits};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dav_server::{DavConfig, DavHandler};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::config::Config;
use crate::dav::copymove::{CopyMove, Tasking};
use crate::dav::locks::{LockLimits, LockTable, UserLocks};
use crate::dav::propfind::{self, Propfind};
use crate::dav::proppatch::Proppatch;
use crate::dav::{ifheader, quirks, xmlgate, DavFs, Esc, RequestCtx};
use crate::vfs::MountTable;
pub use body::{full, BoxBody, LoggedBody};
use body::{IdleBody, ReadError, ReqBody};

pub struct App {
    /// dav-server's configuration, less the lock system (bound to each request's user).
    dav: DavConfig<RequestCtx>,
    fs: DavFs,
    locks: Arc<LockTable>,
    downloads: download::Downloads,
    auth: auth::Auth,
    /// Users are configured: a request without credentials is anonymous (and sees
    /// only whether the server is healthy).
    has_users: bool,
    prefix: String,
    realm: String,
    table: Arc<MountTable>,
    body_timeout: Duration,
    metrics: scrape::Access,
    /// Copies and moves between mounts (`/-/tasks`).
    tasking: Tasking,
}

impl App {
    /// `sign_key`: the secret for signed download links (kept in the state dir).
    pub fn new(cfg: &Config, table: Arc<MountTable>, sign_key: Vec<u8>) -> App {
        let s = &cfg.raw.server;
        // With [server] state = "redis://…" the locks and dead properties are every
        // replica's (the URL was checked with the config, so opening it should not fail;
        // if it does, this replica would keep its own locks and properties: say so loudly).
        let shared = s.state.as_ref().and_then(|u| match crate::state::shared::Shared::get_or_open(&u.0) {
            Ok(sh) => Some(sh),
            Err(e) => {
                tracing::error!(
                    "shared state unusable ({e:#}): WebDAV locks and dead properties stay in this process, \
                     NOT shared with the other replicas"
                );
                None
            }
        });
        let fs = match &shared {
            Some(sh) => DavFs::with_props(Arc::clone(&table), crate::dav::PropStore::shared(Arc::clone(sh))),
            None => DavFs::new(Arc::clone(&table)),
        };
        let limits = LockLimits {
            max_timeout: s.lock_max_timeout,
            per_user: s.locks_per_user,
            total: s.locks_total,
            ..LockLimits::default()
        };
        // Copy tasks: the fleet's in Redis (the spool files, this machine's own, stay
        // listed in the state dir).
        let in_progress = Some(cfg.state_dir().join("copies-in-progress.json"));
        let keep = crate::vfs::tasks::KEEP_FINISHED;
        let tasks = match &shared {
            Some(sh) => crate::vfs::tasks::Tasks::shared(s.copy_tasks, keep, in_progress, Arc::clone(sh)),
            None => crate::vfs::tasks::Tasks::new(s.copy_tasks, keep, in_progress),
        };
        let locks = Arc::new(match shared {
            Some(sh) => LockTable::shared(limits, sh),
            None => LockTable::open(limits, Some(cfg.state_dir().join("locks.json"))),
        });
        App::assemble(cfg, table, fs, locks, Arc::new(tasks), sign::Signer::new(sign_key))
    }

    /// The App for a reloaded `cfg` serving `table`: new users, client rules, prefix
    /// and limits, and the same WebDAV locks, dead properties, copy tasks and signing key.
    pub fn successor(&self, cfg: &Config, table: Arc<MountTable>) -> App {
        let fs = self.fs.with_table(Arc::clone(&table));
        let tasks = Arc::clone(&self.tasking.tasks);
        App::assemble(cfg, table, fs, Arc::clone(&self.locks), tasks, self.downloads.signer.clone())
    }

    /// The App of `cfg` around its file system, lock table, copy tasks and link signer.
    fn assemble(
        cfg: &Config,
        table: Arc<MountTable>,
        fs: DavFs,
        locks: Arc<LockTable>,
        tasks: Arc<crate::vfs::tasks::Tasks>,
        signer: sign::Signer,
    ) -> App {
        let s = &cfg.raw.server;
        let dav = dav_config(&fs, &s.prefix);
        let tasking = Tasking { tasks, locks: Arc::clone(&locks), copy_wait: s.copy_wait };
        let downloads =
            download::Downloads::new(policy::Rules::new(&cfg.raw.clients), signer, s.sign_ttl, s.prefix.clone());
        App {
            dav,
            fs,
            locks,
            downloads,
            auth: auth::Auth::new(&cfg.raw.users, s.allow_anonymous),
            has_users: !cfg.raw.users.is_empty(),
            prefix: s.prefix.clone(),
            realm: s.realm.clone(),
            table,
            body_timeout: s.body_timeout,
            metrics: scrape::Access::new(s),
            tasking,
        }
    }

    /// Start what runs beside the requests: the progress log of copy tasks (and, with
    /// Redis, their heartbeat), and the removal of half-built copy targets an earlier
    /// run left, once each mount is up.
    pub fn start_background(&self) {
        self.tasking.tasks.spawn_reporter(Duration::from_secs(10));
        self.clean_when_up(self.table.mounts().to_vec());
    }

    /// Remove what earlier runs (and, with Redis, replicas that stopped) left half-built
    /// on each of `mounts`, once it is up: at start, and for the mounts a reload adds or
    /// restarts.
    pub fn clean_when_up(&self, mounts: Vec<Arc<crate::vfs::Mount>>) {
        for m in mounts {
            let tasks = Arc::clone(&self.tasking.tasks);
            tokio::spawn(async move {
                let since = Instant::now();
                while !(m.health().ok && m.health().message != "starting") {
                    if since.elapsed() > Duration::from_secs(3600) || m.read_only() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                tasks.leftovers().adopt().await;
                tasks.leftovers().clean(&m).await;
            });
        }
    }

    /// With Redis: take over the half-built targets of replicas whose heartbeat expired
    /// and remove them through this replica's mounts that are up (run periodically).
    pub async fn sweep_leftovers(&self) {
        if self.tasking.tasks.leftovers().adopt().await == 0 && !self.tasking.tasks.leftovers().has_adopted().await {
            return;
        }
        for m in self.table.mounts() {
            if m.health().ok && m.health().message != "starting" && !m.read_only() {
                self.tasking.tasks.leftovers().clean(m).await;
            }
        }
    }

    pub async fn handle(self: Arc<Self>, req: Request<Incoming>, peer: SocketAddr) -> Response<LoggedBody> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let mut user_name = "-".to_string();
        let resp = self.route(req, peer, &mut user_name).await;
        LoggedBody::wrap(resp, method, path, user_name, started)
    }

    async fn route(&self, req: Request<Incoming>, peer: SocketAddr, user_name: &mut String) -> Response<BoxBody> {
        let path = req.uri().path();
        let Some(rest) = path.strip_prefix(self.prefix.as_str()) else {
            return status(StatusCode::NOT_FOUND, "not found\n");
        };
        if !rest.is_empty() && !rest.starts_with('/') {
            return status(StatusCode::NOT_FOUND, "not found\n");
        }
        if rest == "/-/health" {
            return self.health(req.headers(), peer.ip()).await;
        }
        if rest == "/-/metrics" {
            let (h, ip) = (req.headers(), peer.ip());
            return scrape::serve(&self.metrics, &self.auth, self.has_users, &self.table, h, ip, || self.challenge())
                .await;
        }
        let is_get = req.method() == Method::GET || req.method() == Method::HEAD;
        let sign = if is_get { query_param(req.uri().query().unwrap_or(""), "sign") } else { None };
        let ua = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();

        if let Some(sig) = sign {
            // A signed link: no WebDAV credentials, the signature authorises this path.
            *user_name = "(signed)".into();
            let Some(path) = self.dav_path(&req) else {
                return status(StatusCode::BAD_REQUEST, "bad path\n");
            };
            if let Err(e) = self.downloads.signer.verify(&path, &sig) {
                tracing::info!(path = %Esc(&path), "refused signed link: {e}");
                return status(StatusCode::FORBIDDEN, &format!("{e}\n"));
            }
            let ctx = RequestCtx::new(Arc::new(crate::dav::User::anonymous()), ua, Some(peer.ip()), None);
            return match self.file_download(&req, &path, &ctx, true).await {
                Some(r) => r,
                None => status(StatusCode::NOT_FOUND, "not found\n"),
            };
        }

        if let Some(name) = basic_user_name(req.headers()).filter(|n| n.chars().any(char::is_control)) {
            // Never a configured name; refused before anything logs it raw.
            tracing::info!(user = %Esc(&name), "login failed: control characters in the user name");
            return self.challenge();
        }
        let user = match self.auth.check(req.headers().get(header::AUTHORIZATION), peer.ip()).await {
            auth::AuthResult::Ok(u) => u,
            auth::AuthResult::Challenge => return self.challenge(),
            auth::AuthResult::Throttled(wait) => return auth::throttled(wait),
        };
        *user_name = user.name.clone();
        let oc_mtime = req.headers().get("x-oc-mtime").and_then(quirks::parse_oc_mtime);
        let ctx = RequestCtx::new(user, ua, Some(peer.ip()), oc_mtime);

        if is_get {
            if let Some(path) = self.dav_path(&req) {
                if let Some(r) = self.file_download(&req, &path, &ctx, false).await {
                    return r;
                }
            }
        }

        if let Some(mount) = rest.strip_prefix(admin::OFFLINE_PREFIX) {
            let mount = mount.to_string();
            return admin::offline(&self.table, &ctx.user, &mount, req).await;
        }
        if let Some(id) = admin::tasks_route(rest) {
            let id = id.map(str::to_string);
            return admin::tasks(&self.tasking.tasks, &ctx.user, id.as_deref(), req.method()).await;
        }

        if let Some(r) = conditional_headers_gate(req.headers()) {
            tracing::info!(user = %Esc(&ctx.user.name), path = %Esc(req.uri().path()), "refused: malformed conditional header");
            return r;
        }

        let timed_out = Arc::new(AtomicBool::new(false));
        let (parts, body) = req.into_parts();
        let mut body = IdleBody::new(body, self.body_timeout, Arc::clone(&timed_out));
        let method = parts.method.as_str().to_string();
        let dav_path = self.uri_path(&parts.uri);

        let resp = match method.as_str() {
            "COPY" | "MOVE" => {
                let Some(src) = dav_path else {
                    return status(StatusCode::BAD_REQUEST, "bad path\n");
                };
                let req = Request::from_parts(parts, ());
                let cm = CopyMove { fs: &self.fs, locks: &self.locks, prefix: &self.prefix };
                return cm.handle(&req, &src, &ctx, &self.tasking).await.map(full);
            }
            "DELETE" => {
                let Some(path) = dav_path else {
                    return status(StatusCode::BAD_REQUEST, "bad path\n");
                };
                let req = Request::from_parts(parts, ());
                let cm = CopyMove { fs: &self.fs, locks: &self.locks, prefix: &self.prefix };
                return cm.delete(&req, &path, &ctx).await.map(full);
            }
            "PROPFIND" | "PROPPATCH" | "LOCK" => {
                let bytes = match body::read_limited(&mut body, xmlgate::MAX_BODY).await {
                    Ok(b) => b,
                    Err(ReadError::TooLarge) => {
                        return status(StatusCode::PAYLOAD_TOO_LARGE, &format!("{method} body too large\n"))
                    }
                    Err(ReadError::Broken(e)) => return self.body_failed(&ctx, &parts.uri, &timed_out, &e),
                };
                if !bytes.is_empty() {
                    if let Err(e) = xmlgate::check(&bytes) {
                        tracing::info!(user = %Esc(&ctx.user.name), path = %Esc(parts.uri.path()), "refused {method} body: {e}");
                        return status(StatusCode::BAD_REQUEST, &format!("{e}\n"));
                    }
                }
                let mut req = Request::from_parts(parts, ReqBody::Read(Some(bytes.clone())));
                if method == "PROPFIND" {
                    if let quirks::PropfindDepth::Refuse(r) = quirks::propfind_depth(req.headers_mut()) {
                        return r.map(full);
                    }
                    let Some(path) = &dav_path else {
                        return status(StatusCode::BAD_REQUEST, "bad path\n");
                    };
                    let pf = Propfind { fs: &self.fs, locks: &self.locks, prefix: &self.prefix };
                    return match pf.answer(req.headers(), path, req.uri().path(), &bytes, &ctx).await {
                        propfind::Answer::MultiStatus(r) => r.map(body::boxed),
                        propfind::Answer::Refused(code, why) => status(code, &format!("{why}\n")),
                        propfind::Answer::Drive(e) => download::error_response(&e),
                    };
                }
                if method == "PROPPATCH" {
                    if let Some(path) = &dav_path {
                        let pp = Proppatch { fs: &self.fs, locks: &self.locks, prefix: &self.prefix };
                        if let Some(r) = pp.answer(&req, path, &bytes, &ctx).await {
                            return r.map(full);
                        }
                    }
                }
                self.dav_handle(req, &ctx).await
            }
            _ => self.dav_handle(Request::from_parts(parts, ReqBody::Stream(body)), &ctx).await,
        };
        self.finish(resp, &ctx, &timed_out)
    }

    /// Hand a request to dav-server, with a lock system bound to the request's user.
    async fn dav_handle(&self, req: Request<ReqBody>, ctx: &RequestCtx) -> Response<dav_server::body::Body> {
        let ls = UserLocks::new(
            Arc::clone(&self.locks),
            Arc::clone(&self.table),
            Arc::clone(&ctx.user),
            self.prefix.clone(),
            Arc::clone(&ctx.lock_refusal),
        );
        let handler = self.dav.clone().locksystem(Box::new(ls)).build_handler();
        handler.handle_guarded(req, ctx.user.name.clone(), ctx.clone()).await
    }

    /// dav-server's answer, with what it could not know: the provider's error (503/502
    /// and Retry-After rather than 500), why the lock system refused, a stalled body.
    fn finish(
        &self,
        mut resp: Response<dav_server::body::Body>,
        ctx: &RequestCtx,
        timed_out: &AtomicBool,
    ) -> Response<BoxBody> {
        if timed_out.load(Ordering::Relaxed) {
            let mut r = status(StatusCode::REQUEST_TIMEOUT, "the request body stopped coming\n");
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
        if let Some(refusal) = crate::dav::locks::lock(&ctx.lock_refusal).take() {
            return status(refusal.status, &format!("{}\n", refusal.why));
        }
        if resp.status() == StatusCode::INTERNAL_SERVER_ERROR {
            if let Some(e) = crate::dav::locks::lock(&ctx.error).take() {
                *resp.status_mut() = e.status();
                if let Some(ra) = e.retry_after() {
                    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(ra.as_secs()));
                }
            }
        }
        if ctx.mtime_accepted.load(Ordering::Relaxed) && resp.status().is_success() {
            resp.headers_mut().insert("x-oc-mtime", HeaderValue::from_static("accepted"));
        }
        resp.map(body::boxed)
    }

    /// A body that could not be read: 408 when the client stalled, 400 otherwise.
    fn body_failed(
        &self,
        ctx: &RequestCtx,
        uri: &http::Uri,
        timed_out: &AtomicBool,
        e: &std::io::Error,
    ) -> Response<BoxBody> {
        tracing::info!(user = %Esc(&ctx.user.name), path = %Esc(uri.path()), "request body failed: {e}");
        if timed_out.load(Ordering::Relaxed) {
            let mut r = status(StatusCode::REQUEST_TIMEOUT, "the request body stopped coming\n");
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
        status(StatusCode::BAD_REQUEST, "the request body broke off\n")
    }

    /// The decoded request path without the URL prefix, as dav-server sees it.
    fn dav_path<B>(&self, req: &Request<B>) -> Option<String> {
        self.uri_path(req.uri())
    }

    fn uri_path(&self, uri: &http::Uri) -> Option<String> {
        crate::dav::request_path(uri.path(), &self.prefix)
    }

    /// GET/HEAD of a file goes through the download policy; `None` for anything else
    /// (folders, virtual folders), which dav-server answers.
    async fn file_download<B>(
        &self,
        req: &Request<B>,
        path: &str,
        ctx: &RequestCtx,
        signed: bool,
    ) -> Option<Response<BoxBody>> {
        let (m, rel) = self.fs.locate(path, &ctx.user)?;
        let entry = match m.resolve(&rel).await {
            Ok(e) if !e.is_dir => e,
            Ok(_) => return None,
            // Answered here: dav-server would look again, and a file that appears in
            // between is sent by it with its headers first and its bytes opened after,
            // so a failure then is a 200 with a short body.
            Err(crate::vfs::DriveError::NotFound) => return Some(status(StatusCode::NOT_FOUND, "not found\n")),
            Err(e) => return Some(download::error_response(&e)),
        };
        let splice = req.extensions().get::<zerocopy::Splice>();
        let ask = download::Ask { method: req.method(), headers: req.headers(), path, signed, splice };
        Some(self.downloads.serve(&ask, &m, &entry, ctx).await)
    }

    fn challenge(&self) -> Response<BoxBody> {
        let mut r = status(StatusCode::UNAUTHORIZED, "authentication required\n");
        let v = format!("Basic realm=\"{}\", charset=\"UTF-8\"", self.realm.replace('"', ""));
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static("Basic")));
        r
    }

    /// `{"ok": …}` for anyone (monitors need no credentials); the mounts, with their
    /// health, only for a user with credentials, and only those the user sees. Without
    /// configured users everyone sees every mount anyway.
    async fn health(&self, headers: &HeaderMap, client: std::net::IpAddr) -> Response<BoxBody> {
        let ok = self.table.mounts().iter().all(|m| m.health().ok);
        let user = match headers.get(header::AUTHORIZATION) {
            None if self.has_users => None,
            h => match self.auth.check(h, client).await {
                auth::AuthResult::Ok(u) if !(self.has_users && u.name == "-") => Some(u),
                _ => None,
            },
        };
        let body = match user {
            None => serde_json::json!({ "ok": ok }),
            Some(u) => {
                let mounts: Vec<serde_json::Value> = self
                    .table
                    .mounts()
                    .iter()
                    .filter(|m| u.sees(m))
                    .map(|m| {
                        let h = m.health();
                        serde_json::json!({"path": m.path(), "driver": m.drive.kind(), "ok": h.ok, "message": h.message})
                    })
                    .collect();
                serde_json::json!({ "ok": ok, "mounts": mounts })
            }
        };
        let mut r = status(if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, &body.to_string());
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    }
}

/// dav-server's configuration over `fs` below `prefix` (the lock system is bound per
/// request).
fn dav_config(fs: &DavFs, prefix: &str) -> DavConfig<RequestCtx> {
    let dav = DavHandler::builder().filesystem(Box::new(fs.clone())).read_buf_size(256 * 1024).autoindex(true);
    if prefix.is_empty() {
        dav
    } else {
        dav.strip_prefix(prefix.to_string())
    }
}

/// 400 for a request whose `If`, `If-Match`, `If-None-Match` or `If-Range` header is
/// malformed: dav-server's parsers panic on some of them (`(<urn:x> [x`, `"`).
fn conditional_headers_gate(h: &HeaderMap) -> Option<Response<BoxBody>> {
    let ifs: Vec<&HeaderValue> = h.get_all("if").iter().collect();
    if ifs.len() > 1 {
        return Some(status(StatusCode::BAD_REQUEST, "more than one If header\n"));
    }
    if let Some(v) = ifs.first() {
        if let Err(e) = ifheader::parse_if(v.as_bytes()) {
            return Some(status(StatusCode::BAD_REQUEST, &format!("malformed If header: {e}\n")));
        }
    }
    for name in [header::IF_MATCH, header::IF_NONE_MATCH] {
        if h.get_all(&name).iter().any(|v| !ifheader::valid_etag_list(v.as_bytes())) {
            return Some(status(StatusCode::BAD_REQUEST, &format!("malformed {name} header\n")));
        }
    }
    if h.get_all(header::IF_RANGE).iter().any(|v| !ifheader::valid_if_range(v.as_bytes())) {
        return Some(status(StatusCode::BAD_REQUEST, "malformed If-Range header\n"));
    }
    None
}

/// The user name of a Basic `Authorization` header, if it has one.
fn basic_user_name(h: &HeaderMap) -> Option<String> {
    use base64::Engine;
    let v = h.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8_lossy(&raw);
    Some(text.split(':').next().unwrap_or_default().to_string())
}

/// One query parameter, percent-decoded.
fn query_param(q: &str, name: &str) -> Option<String> {
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
    })
}

pub fn status(code: StatusCode, text: &str) -> Response<BoxBody> {
    let mut r = Response::new(full(Bytes::copy_from_slice(text.as_bytes())));
    *r.status_mut() = code;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}
