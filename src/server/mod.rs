//! The HTTP server: listeners, optional TLS, Basic auth, routing, request log.

pub mod admin;
pub mod auth;
mod body;
pub mod download;
mod listen;
pub mod policy;
pub mod sign;
pub mod tls;

pub use listen::{prepare, serve, serve_with, Limits};

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dav_server::{memls::MemLs, DavHandler};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::config::Config;
use crate::dav::{DavFs, RequestCtx};
use crate::vfs::MountTable;
pub use body::{full, BoxBody, LoggedBody};

pub struct App {
    dav: DavHandler<RequestCtx>,
    fs: DavFs,
    downloads: download::Downloads,
    auth: auth::Auth,
    prefix: String,
    realm: String,
    table: Arc<MountTable>,
}

impl App {
    /// `sign_key`: the secret for signed download links (kept in the state dir).
    pub fn new(cfg: &Config, table: Arc<MountTable>, sign_key: Vec<u8>) -> App {
        let s = &cfg.raw.server;
        let fs = DavFs::new(Arc::clone(&table));
        let mut builder = DavHandler::builder()
            .filesystem(Box::new(fs.clone()))
            .locksystem(MemLs::new())
            .read_buf_size(256 * 1024)
            .autoindex(true);
        if !s.prefix.is_empty() {
            builder = builder.strip_prefix(s.prefix.clone());
        }
        let downloads = download::Downloads::new(
            policy::Rules::new(&cfg.raw.clients),
            sign::Signer::new(sign_key),
            s.sign_ttl,
            s.prefix.clone(),
        );
        App {
            dav: builder.build_handler(),
            fs,
            downloads,
            auth: auth::Auth::new(&cfg.raw.users, s.allow_anonymous),
            prefix: s.prefix.clone(),
            realm: s.realm.clone(),
            table,
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

    async fn route(&self, mut req: Request<Incoming>, peer: SocketAddr, user_name: &mut String) -> Response<BoxBody> {
        let path = req.uri().path();
        let Some(rest) = path.strip_prefix(self.prefix.as_str()) else {
            return status(StatusCode::NOT_FOUND, "not found\n");
        };
        if rest == "/-/health" {
            return self.health();
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
                tracing::info!(%path, "refused signed link: {e}");
                return status(StatusCode::FORBIDDEN, &format!("{e}\n"));
            }
            let ctx = RequestCtx::new(Arc::new(crate::dav::User::anonymous()), ua, Some(peer.ip()), None);
            return match self.file_download(&req, &path, &ctx, true).await {
                Some(r) => r,
                None => status(StatusCode::NOT_FOUND, "not found\n"),
            };
        }

        let user = match self.auth.check(req.headers().get(header::AUTHORIZATION), peer.ip()).await {
            auth::AuthResult::Ok(u) => u,
            auth::AuthResult::Challenge => return self.challenge(),
            auth::AuthResult::Throttled(wait) => return auth::throttled(wait),
        };
        *user_name = user.name.clone();
        let oc_mtime = req.headers().get("x-oc-mtime").and_then(parse_oc_mtime);
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

        if let Some(r) = self.guard_roots(&req, &ctx) {
            return r;
        }

        if req.method().as_str() == "PROPFIND" {
            match req.headers().get("depth").map(|v| v.as_bytes().to_ascii_lowercase()) {
                // RFC 4918 reads a missing Depth as infinity, which we do not offer
                // (a whole cloud drive in one answer); dav-server 0.11 would answer with
                // the children only and leave the target out. We answer Depth 1: the
                // target and its children, which is what clients omitting Depth want.
                None => {
                    req.headers_mut().insert("depth", HeaderValue::from_static("1"));
                }
                Some(v) if v == b"infinity" => {
                    return xml_error(StatusCode::FORBIDDEN, "<D:propfind-finite-depth/>");
                }
                _ => {}
            }
            if let Some(r) = self.precheck_listing(&req, &ctx).await {
                return r;
            }
        }

        let mut resp = if req.method().as_str() == "PROPPATCH" {
            // Read the (small) body to see whether it is a client setting the mtime.
            let (parts, body) = req.into_parts();
            let bytes = match http_body_util::Limited::new(body, PROPPATCH_MAX).collect().await {
                Ok(c) => c.to_bytes(),
                Err(_) => return status(StatusCode::PAYLOAD_TOO_LARGE, "PROPPATCH body too large\n"),
            };
            let req = Request::from_parts(parts, http_body_util::Full::new(bytes.clone()));
            if let Some(r) = self.set_lastmodified(&req, &bytes, &ctx).await {
                return r;
            }
            self.dav.handle_guarded(req, ctx.user.name.clone(), ctx.clone()).await
        } else {
            self.dav.handle_guarded(req, ctx.user.name.clone(), ctx.clone()).await
        };

        if resp.status() == StatusCode::INTERNAL_SERVER_ERROR {
            if let Some(e) = ctx.error.lock().unwrap().take() {
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

    /// dav-server turns a failing `read_dir` into a 207 with no children, and a client
    /// syncing from that folder would delete its own copies. For a Depth 1 PROPFIND of a
    /// cloud folder, list it first (the listing is cached, so dav-server's own call costs
    /// nothing) and answer the provider's trouble instead. Local folders list on every
    /// PROPFIND and fail only for reasons dav-server reports itself.
    async fn precheck_listing<B>(&self, req: &Request<B>, ctx: &RequestCtx) -> Option<Response<BoxBody>> {
        if req.headers().get("depth").map(|v| v.as_bytes()) != Some(b"1") {
            return None;
        }
        let path = self.dav_path(req)?;
        let (m, rel) = self.fs.locate(&path, &ctx.user)?;
        if m.caps().local_read {
            return None;
        }
        match m.list(&rel).await {
            Ok(_) | Err(crate::vfs::DriveError::NotFound) | Err(crate::vfs::DriveError::NotADirectory) => None,
            Err(e) => {
                tracing::warn!(user = %ctx.user.name, %path, "listing failed: {e}");
                Some(download::error_response(&e))
            }
        }
    }

    /// ownCloud clients (rclone's owncloud vendor: `rclone touch`, sync of a changed
    /// mtime) set the time with PROPPATCH of `{DAV:}lastmodified`, which dav-server
    /// refuses as a protected live property. Answer it here through `Mount::set_mtime`
    /// when that is all the request sets; anything else goes to dav-server.
    async fn set_lastmodified<B>(&self, req: &Request<B>, body: &[u8], ctx: &RequestCtx) -> Option<Response<BoxBody>> {
        let secs = parse_lastmodified_patch(body)?;
        let path = self.dav_path(req)?;
        let (m, rel) = self.fs.locate(&path, &ctx.user)?;
        if ctx.user.read_only {
            return Some(status(StatusCode::FORBIDDEN, "read-only user\n"));
        }
        let t = UNIX_EPOCH + Duration::from_secs(secs);
        let code = match m.set_mtime(&rel, t).await {
            Ok(()) => StatusCode::OK,
            Err(crate::vfs::DriveError::NotFound) => return Some(status(StatusCode::NOT_FOUND, "not found\n")),
            Err(e) => {
                tracing::info!(%path, "setting mtime failed: {e}");
                StatusCode::FORBIDDEN
            }
        };
        let href = format!("{}{}", self.prefix, download::encode_path(&path));
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>{href}</D:href>\
             <D:propstat><D:prop><D:lastmodified/></D:prop><D:status>HTTP/1.1 {} {}</D:status></D:propstat>\
             </D:response></D:multistatus>\n",
            code.as_u16(),
            code.canonical_reason().unwrap_or("")
        );
        let mut r = Response::new(full(Bytes::from(xml)));
        *r.status_mut() = StatusCode::MULTI_STATUS;
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml; charset=utf-8"));
        Some(r)
    }

    /// Mount roots and the virtual folders above them are not the user's to delete,
    /// move or overwrite. dav-server deletes a folder's contents one by one before the
    /// folder itself, so refusing only the last step would still empty the mount.
    fn guard_roots<B>(&self, req: &Request<B>, ctx: &RequestCtx) -> Option<Response<BoxBody>> {
        let method = req.method().as_str();
        let protected = |path: &str| match self.fs.table().resolve(path, &|m| ctx.user.sees(m)) {
            Some(crate::vfs::Resolved::Virtual(_)) => true,
            Some(crate::vfs::Resolved::Mount(_, rel)) => rel.is_empty(),
            None => false,
        };
        let refuse = |what: &str| {
            tracing::info!(user = %ctx.user.name, "refused {method} of {what}");
            Some(status(StatusCode::FORBIDDEN, &format!("{what} cannot be deleted, moved or replaced\n")))
        };
        if matches!(method, "DELETE" | "MOVE") && self.dav_path(req).is_some_and(|p| protected(&p)) {
            return refuse("a mount root or virtual folder");
        }
        if matches!(method, "COPY" | "MOVE") {
            let dest = req.headers().get("destination").and_then(|v| v.to_str().ok())?;
            let uri: http::Uri = dest.parse().ok()?;
            if self.uri_path(&uri).is_some_and(|p| protected(&p)) {
                return refuse("a mount root or virtual folder (as destination)");
            }
        }
        None
    }

    /// The decoded request path without the URL prefix, as dav-server sees it.
    fn dav_path<B>(&self, req: &Request<B>) -> Option<String> {
        self.uri_path(req.uri())
    }

    fn uri_path(&self, uri: &http::Uri) -> Option<String> {
        // `DavPath::new` percent-decodes and normalises (as dav-server does for its own
        // requests); `DavPath::from_uri` keeps the raw, still-encoded path.
        let mut p = dav_server::davpath::DavPath::new(uri.path()).ok()?;
        if !self.prefix.is_empty() {
            p.set_prefix(&self.prefix).ok()?;
        }
        crate::dav::path_str(&p).ok()
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
        let ask = download::Ask { method: req.method(), headers: req.headers(), path, signed };
        Some(self.downloads.serve(&ask, &m, &entry, ctx).await)
    }

    fn challenge(&self) -> Response<BoxBody> {
        let mut r = status(StatusCode::UNAUTHORIZED, "authentication required\n");
        let v = format!("Basic realm=\"{}\", charset=\"UTF-8\"", self.realm.replace('"', ""));
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static("Basic")));
        r
    }

    fn health(&self) -> Response<BoxBody> {
        let mounts: Vec<serde_json::Value> = self
            .table
            .mounts()
            .iter()
            .map(|m| {
                let h = m.health();
                serde_json::json!({"path": m.path(), "driver": m.drive.kind(), "ok": h.ok, "message": h.message})
            })
            .collect();
        let ok = self.table.mounts().iter().all(|m| m.health().ok);
        let body = serde_json::json!({"ok": ok, "mounts": mounts}).to_string();
        let mut r = status(if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, &body);
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    }
}

/// Largest PROPPATCH body read (dav-server's own limit for non-PUT bodies).
const PROPPATCH_MAX: usize = 64 * 1024;

/// The Unix time of a PROPPATCH that sets only `{DAV:}lastmodified` (seconds, or an
/// HTTP date), `None` for anything else.
fn parse_lastmodified_patch(body: &[u8]) -> Option<u64> {
    let root = xmltree::Element::parse(body).ok()?;
    if root.name != "propertyupdate" || root.namespace.as_deref() != Some("DAV:") {
        return None;
    }
    let mut found = None;
    for op in root.children.iter().filter_map(|c| c.as_element()) {
        if op.name != "set" || op.namespace.as_deref() != Some("DAV:") {
            return None;
        }
        for prop in op.children.iter().filter_map(|c| c.as_element()) {
            for p in prop.children.iter().filter_map(|c| c.as_element()) {
                if p.name != "lastmodified" || p.namespace.as_deref() != Some("DAV:") {
                    return None;
                }
                let text = p.get_text()?;
                let text = text.trim();
                found = Some(match text.parse::<u64>() {
                    Ok(n) => n,
                    Err(_) => httpdate::parse_http_date(text).ok()?.duration_since(UNIX_EPOCH).ok()?.as_secs(),
                });
            }
        }
    }
    found
}

/// One query parameter, percent-decoded.
fn query_param(q: &str, name: &str) -> Option<String> {
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
    })
}

/// `X-OC-Mtime`: Unix seconds, possibly with a fraction.
fn parse_oc_mtime(v: &HeaderValue) -> Option<SystemTime> {
    let s = v.to_str().ok()?.trim();
    let secs: f64 = s.parse().ok()?;
    if !(0.0..1e11).contains(&secs) {
        return None;
    }
    Some(UNIX_EPOCH + Duration::from_secs_f64(secs))
}

pub fn status(code: StatusCode, text: &str) -> Response<BoxBody> {
    let mut r = Response::new(full(Bytes::copy_from_slice(text.as_bytes())));
    *r.status_mut() = code;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn xml_error(code: StatusCode, inner: &str) -> Response<BoxBody> {
    let body = format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:error xmlns:D=\"DAV:\">{inner}</D:error>\n");
    let mut r = Response::new(full(Bytes::from(body)));
    *r.status_mut() = code;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml; charset=utf-8"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lastmodified_patches() {
        let rclone = br#"<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><lastmodified xmlns="DAV:">981173106</lastmodified></D:prop></D:set></D:propertyupdate>"#;
        assert_eq!(parse_lastmodified_patch(rclone), Some(981_173_106));
        let date = br#"<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:lastmodified>Sat, 03 Feb 2001 04:05:06 GMT</d:lastmodified></d:prop></d:set></d:propertyupdate>"#;
        assert_eq!(parse_lastmodified_patch(date), Some(981_173_106));
        let other = br#"<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><x:color xmlns:x="urn:x">red</x:color></d:prop></d:set></d:propertyupdate>"#;
        assert_eq!(parse_lastmodified_patch(other), None);
        let mixed = br#"<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:lastmodified>5</d:lastmodified><x:c xmlns:x="urn:x">1</x:c></d:prop></d:set></d:propertyupdate>"#;
        assert_eq!(parse_lastmodified_patch(mixed), None);
        let remove = br#"<d:propertyupdate xmlns:d="DAV:"><d:remove><d:prop><d:lastmodified/></d:prop></d:remove></d:propertyupdate>"#;
        assert_eq!(parse_lastmodified_patch(remove), None);
        assert_eq!(parse_lastmodified_patch(b"<not xml"), None);
    }
}
