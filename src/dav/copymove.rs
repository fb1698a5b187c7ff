//! COPY and MOVE, answered by pandav rather than dav-server.
//!
//! dav-server parsed `Destination` its own way (so our root guard and it disagreed
//! about what was being replaced) and deleted an existing destination before checking
//! that the copy or move could happen at all: a MOVE refused for a read-only source
//! answered 403 after the destination was gone. Here every precondition is checked
//! before anything changes, in this order:
//!
//! 1. headers: `Destination` (parsed once, [`parse_destination`]), `Depth` (0 or
//!    infinity for COPY, infinity for MOVE), `Overwrite`, `If` (strict) — 400/502;
//! 2. source and destination for this user: neither may be a mount root or a virtual
//!    folder (403), the source must exist (404), the destination's parent must be a
//!    folder (409), a folder may not go into itself (403);
//! 3. permissions: no read-only user, no read-only mount as destination or as MOVE
//!    source (403);
//! 4. `Overwrite: F` with an existing destination (412), the `If` conditions (412);
//! 5. locks: the destination tree, and for MOVE the source tree, must not be locked
//!    by anyone else, unless the `If` header submits the lock's token (423);
//!
//! and only then acts. An existing destination is replaced, never deleted first: the
//! mount builds the new entry aside and swaps it in (`Mount::rename_replace`,
//! `copy_replace`, `transfer::copy_across_replace`), so a failure leaves the old one.
//! Answers per RFC 4918 §9.8–9.9: 201 created, 204 replaced, 207 for a folder copy to
//! another mount where some members failed (the rest is copied).

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};

use super::destination::{parse_destination, DestError, ThisServer};
use super::ifheader::{parse_if, IfHeader, Item};
use super::locks::LockTable;
use super::{DavFs, Esc, RequestCtx};
use crate::vfs::mount::split_parent;
use crate::vfs::{transfer, DriveError, Entry, Mount, Resolved};

/// The answer to a COPY or MOVE.
pub type Reply = Response<Bytes>;

pub fn text(code: StatusCode, msg: &str) -> Reply {
    let mut r = Response::new(Bytes::from(format!("{msg}\n")));
    *r.status_mut() = code;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// `path` lies strictly below `root` (decoded paths).
fn is_under(path: &str, root: &str) -> bool {
    if root == "/" {
        return path != "/";
    }
    path.strip_prefix(root).is_some_and(|r| r.starts_with('/'))
}

/// The one value of header `name`: `Ok(None)` when absent, `Err` when repeated.
fn single<'h>(h: &'h HeaderMap, name: &str) -> Result<Option<&'h HeaderValue>, ()> {
    let mut it = h.get_all(name).iter();
    let first = it.next();
    if it.next().is_some() {
        return Err(());
    }
    Ok(first)
}

/// The names this request reached us by (for `Destination` and `If` resource tags).
pub fn this_server<B>(req: &Request<B>) -> ThisServer<'_> {
    let mut hosts = vec![];
    if let Some(h) = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()) {
        hosts.push(h);
    }
    if let Some(a) = req.uri().authority() {
        hosts.push(a.as_str());
    }
    for v in req.headers().get_all("x-forwarded-host") {
        if let Some(h) = v.to_str().ok().and_then(|s| s.split(',').next()) {
            hosts.push(h.trim());
        }
    }
    ThisServer { hosts }
}

/// A resolved, non-root place in a mount.
struct Place {
    mount: Arc<Mount>,
    rel: String,
}

pub struct CopyMove<'a> {
    pub fs: &'a DavFs,
    pub locks: &'a LockTable,
    /// URL prefix pandav serves under.
    pub prefix: &'a str,
}

/// Why a COPY or MOVE stops before doing anything.
struct Stop(StatusCode, String);

impl Stop {
    fn new(code: StatusCode, why: impl Into<String>) -> Stop {
        Stop(code, why.into())
    }
}

impl CopyMove<'_> {
    /// Answer COPY or MOVE of `src_path` (the decoded request path).
    pub async fn handle<B>(&self, req: &Request<B>, src_path: &str, ctx: &RequestCtx) -> Reply {
        let is_move = req.method().as_str() == "MOVE";
        let method = if is_move { "MOVE" } else { "COPY" };
        match self.run(req, src_path, ctx, is_move).await {
            Ok(r) => r,
            Err(Stop(code, why)) => {
                tracing::info!(user = %Esc(&ctx.user.name), path = %Esc(src_path), "{method} refused ({code}): {why}");
                text(code, &why)
            }
        }
    }

    async fn run<B>(&self, req: &Request<B>, src_path: &str, ctx: &RequestCtx, is_move: bool) -> Result<Reply, Stop> {
        let bad = |why: &str| Stop::new(StatusCode::BAD_REQUEST, why);
        let h = req.headers();

        // 1. Headers.
        let deep = match single(h, "depth").map_err(|_| bad("more than one Depth header"))? {
            None => true,
            Some(v) if v.as_bytes().eq_ignore_ascii_case(b"infinity") => true,
            Some(v) if v.as_bytes() == b"0" && !is_move => false,
            Some(_) => return Err(bad("Depth must be 0 or infinity for COPY, infinity for MOVE")),
        };
        let overwrite = match single(h, "overwrite").map_err(|_| bad("more than one Overwrite header"))? {
            None => true,
            Some(v) if v.as_bytes().eq_ignore_ascii_case(b"t") => true,
            Some(v) if v.as_bytes().eq_ignore_ascii_case(b"f") => false,
            Some(_) => return Err(bad("Overwrite must be T or F")),
        };
        let me = this_server(req);
        let dest = single(h, "destination")
            .map_err(|_| bad("more than one Destination header"))?
            .ok_or_else(|| bad("no Destination header"))?;
        let dst_path = parse_destination(dest.as_bytes(), &me, self.prefix).map_err(|e| match e {
            DestError::Bad(_) => Stop::new(StatusCode::BAD_REQUEST, e.to_string()),
            DestError::Elsewhere => Stop::new(StatusCode::BAD_GATEWAY, e.to_string()),
        })?;
        let cond = match single(h, "if").map_err(|_| bad("more than one If header"))? {
            None => None,
            Some(v) => Some(
                parse_if(v.as_bytes())
                    .map_err(|e| Stop::new(StatusCode::BAD_REQUEST, format!("bad If header: {e}")))?,
            ),
        };

        // 2. Source and destination, as this user sees them.
        let src = self.place(src_path, ctx, "source")?;
        let dst = self.place(&dst_path, ctx, "destination")?;
        if dst_path == src_path {
            return Err(Stop::new(StatusCode::FORBIDDEN, "source and destination are the same"));
        }

        // 3. Permissions.
        if ctx.user.read_only {
            return Err(Stop::new(StatusCode::FORBIDDEN, "read-only user"));
        }
        if dst.mount.read_only() {
            return Err(Stop::new(StatusCode::FORBIDDEN, "the destination is on a read-only mount"));
        }
        if is_move && src.mount.read_only() {
            return Err(Stop::new(StatusCode::FORBIDDEN, "the source is on a read-only mount"));
        }

        let src_entry = src.mount.resolve(&src.rel).await.map_err(|e| self.drive_stop(e, ctx))?;
        if src_entry.is_dir && (is_move || deep) && is_under(&dst_path, src_path) {
            return Err(Stop::new(StatusCode::FORBIDDEN, "a folder cannot go into itself"));
        }
        match dst.mount.resolve(split_parent(&dst.rel).0).await {
            Ok(p) if p.is_dir => {}
            Ok(_) | Err(DriveError::NotFound) | Err(DriveError::NotADirectory) => {
                return Err(Stop::new(StatusCode::CONFLICT, "the destination's folder does not exist"))
            }
            Err(e) => return Err(self.drive_stop(e, ctx)),
        }
        let existing = match dst.mount.resolve(&dst.rel).await {
            Ok(e) => Some(e),
            Err(DriveError::NotFound) | Err(DriveError::NotADirectory) => None,
            Err(e) => return Err(self.drive_stop(e, ctx)),
        };

        // 4. Overwrite and If.
        if existing.is_some() && !overwrite {
            return Err(Stop::new(StatusCode::PRECONDITION_FAILED, "the destination exists and Overwrite is F"));
        }
        let tokens = match &cond {
            Some(c) => {
                if !self.if_holds(c, src_path, &src_entry, ctx, &me).await {
                    return Err(Stop::new(StatusCode::PRECONDITION_FAILED, "the If header's conditions are not met"));
                }
                c.tokens()
            }
            None => vec![],
        };

        // 5. Locks.
        let user = ctx.user.name.as_str();
        if is_move && self.locks.check(src_path, user, true, &tokens).await.is_err() {
            return Err(Stop::new(StatusCode::LOCKED, "the source is locked"));
        }
        if self.locks.check(&dst_path, user, true, &tokens).await.is_err() {
            return Err(Stop::new(StatusCode::LOCKED, "the destination is locked"));
        }

        // Act.
        let replace = existing.is_some();
        let same = Arc::ptr_eq(&src.mount, &dst.mount);
        let (s, d) = (&src.mount, &dst.mount);
        let outcome = if is_move {
            let r = if same {
                if replace {
                    s.rename_replace(&src.rel, &dst.rel).await
                } else {
                    s.rename(&src.rel, &dst.rel).await
                }
            } else {
                transfer::move_across(s, &src.rel, d, &dst.rel, replace).await
            };
            r.map(|_| vec![])
        } else if src_entry.is_dir && !deep {
            // Depth 0: the folder without its members.
            let r = if replace {
                d.build_aside(&dst.rel, true, |at| async move { d.mkdir(&at).await }).await
            } else {
                d.mkdir(&dst.rel).await
            };
            r.map(|_| vec![])
        } else if same {
            let r = if replace { s.copy_replace(&src.rel, &dst.rel).await } else { s.copy(&src.rel, &dst.rel).await };
            r.map(|_| vec![])
        } else if replace {
            transfer::copy_across_replace(s, &src.rel, d, &dst.rel).await.map(|_| vec![])
        } else {
            transfer::copy_across(s, &src.rel, d, &dst.rel).await.map(|(_, failures)| failures)
        };
        let failures = match outcome {
            Ok(f) => f,
            Err(DriveError::Exists) => {
                return Err(Stop::new(StatusCode::PRECONDITION_FAILED, "the destination appeared meanwhile"))
            }
            Err(e) => return Err(self.drive_stop(e, ctx)),
        };

        // Dead properties and locks follow what happened.
        if is_move {
            self.fs.props.rename_tree(src_path, &dst_path);
            self.locks.forget_tree(src_path).await;
        } else {
            self.fs.props.copy_tree(src_path, &dst_path, deep);
        }
        if replace {
            self.locks.forget_tree(&dst_path).await;
        }
        tracing::info!(
            user = %Esc(&ctx.user.name),
            from = %Esc(src_path),
            to = %Esc(&dst_path),
            replaced = replace,
            "{}",
            if is_move { "moved" } else { "copied" }
        );
        if !failures.is_empty() {
            return Ok(self.multistatus(&dst.mount, &failures));
        }
        let code = if replace { StatusCode::NO_CONTENT } else { StatusCode::CREATED };
        let mut r = Response::new(Bytes::new());
        *r.status_mut() = code;
        Ok(r)
    }

    /// Answer DELETE of `path` (the decoded request path) as one removal by the drive.
    ///
    /// dav-server deleted a folder's members one by one before the folder: with
    /// `follow_symlinks = true` a link to a folder looked like a folder to it, and it
    /// emptied the link's target outside the root. Here the drive gets one
    /// `Mount::remove`, which removes a link as a link; every precondition is checked
    /// first: not a mount root or virtual folder (403), `Depth` infinity or absent (400),
    /// no read-only user or mount (403), the resource exists (404), the `If` conditions
    /// (412), no lock of someone else's anywhere in the tree (423).
    pub async fn delete<B>(&self, req: &Request<B>, path: &str, ctx: &RequestCtx) -> Reply {
        match self.run_delete(req, path, ctx).await {
            Ok(r) => r,
            Err(Stop(code, why)) => {
                tracing::info!(user = %Esc(&ctx.user.name), path = %Esc(path), "DELETE refused ({code}): {why}");
                text(code, &why)
            }
        }
    }

    async fn run_delete<B>(&self, req: &Request<B>, path: &str, ctx: &RequestCtx) -> Result<Reply, Stop> {
        let bad = |why: &str| Stop::new(StatusCode::BAD_REQUEST, why);
        let h = req.headers();
        match single(h, "depth").map_err(|_| bad("more than one Depth header"))? {
            None => {}
            Some(v) if v.as_bytes().eq_ignore_ascii_case(b"infinity") => {}
            Some(_) => return Err(bad("Depth must be infinity for DELETE")),
        }
        let cond = match single(h, "if").map_err(|_| bad("more than one If header"))? {
            None => None,
            Some(v) => Some(
                parse_if(v.as_bytes())
                    .map_err(|e| Stop::new(StatusCode::BAD_REQUEST, format!("bad If header: {e}")))?,
            ),
        };
        let place = match self.fs.table().resolve(path, &|m| ctx.user.sees(m)) {
            _ if path.split('/').any(crate::vfs::mount::is_reserved_name) => {
                return Err(Stop::new(StatusCode::NOT_FOUND, "no such resource"))
            }
            Some(Resolved::Mount(mount, rel)) if !rel.is_empty() => Place { mount, rel },
            Some(_) => {
                return Err(Stop::new(StatusCode::FORBIDDEN, "a mount root or virtual folder cannot be deleted"))
            }
            None => return Err(Stop::new(StatusCode::NOT_FOUND, "no such resource")),
        };
        if ctx.user.read_only {
            return Err(Stop::new(StatusCode::FORBIDDEN, "read-only user"));
        }
        if place.mount.read_only() {
            return Err(Stop::new(StatusCode::FORBIDDEN, "read-only mount"));
        }
        let entry = place.mount.resolve(&place.rel).await.map_err(|e| self.drive_stop(e, ctx))?;
        let tokens = match &cond {
            Some(c) => {
                if !self.if_holds(c, path, &entry, ctx, &this_server(req)).await {
                    return Err(Stop::new(StatusCode::PRECONDITION_FAILED, "the If header's conditions are not met"));
                }
                c.tokens()
            }
            None => vec![],
        };
        if self.locks.check(path, &ctx.user.name, true, &tokens).await.is_err() {
            return Err(Stop::new(StatusCode::LOCKED, "the resource or something in it is locked"));
        }
        place.mount.remove(&place.rel).await.map_err(|e| match e {
            // Gone meanwhile: what the client wanted.
            DriveError::NotFound => Stop::new(StatusCode::NOT_FOUND, "no such resource"),
            e => self.drive_stop(e, ctx),
        })?;
        self.fs.props.remove_tree(path);
        self.locks.forget_tree(path).await;
        tracing::info!(user = %Esc(&ctx.user.name), path = %Esc(path), "deleted");
        let mut r = Response::new(Bytes::new());
        *r.status_mut() = StatusCode::NO_CONTENT;
        Ok(r)
    }

    /// `path` for this user: a place inside a mount, never a mount root or a virtual
    /// folder.
    fn place(&self, path: &str, ctx: &RequestCtx, what: &str) -> Result<Place, Stop> {
        if path.split('/').any(crate::vfs::mount::is_reserved_name) {
            return Err(Stop::new(StatusCode::NOT_FOUND, format!("no such {what}")));
        }
        match self.fs.table().resolve(path, &|m| ctx.user.sees(m)) {
            Some(Resolved::Mount(mount, rel)) if !rel.is_empty() => Ok(Place { mount, rel }),
            Some(Resolved::Mount(..)) | Some(Resolved::Virtual(_)) => Err(Stop::new(
                StatusCode::FORBIDDEN,
                format!("the {what} is a mount root or a virtual folder, which cannot be copied, moved or replaced"),
            )),
            None if what == "source" => Err(Stop::new(StatusCode::NOT_FOUND, "no such source")),
            None => Err(Stop::new(StatusCode::FORBIDDEN, "nothing can be created there")),
        }
    }

    fn drive_stop(&self, e: DriveError, ctx: &RequestCtx) -> Stop {
        let code = match &e {
            DriveError::NotFound => StatusCode::NOT_FOUND,
            DriveError::Exists => StatusCode::PRECONDITION_FAILED,
            e => e.status(),
        };
        let why = e.to_string();
        // Keep the provider's error for Retry-After, as for dav-server's requests.
        let _ = ctx.fs_err(e);
        Stop(code, why)
    }

    /// Evaluate an `If` header (RFC 4918 §10.4): some list whose conditions all hold.
    /// Untagged lists are about the source; a state token holds when it names a live
    /// lock covering the resource, an entity tag when it equals the resource's (strong).
    pub(crate) async fn if_holds(
        &self,
        cond: &IfHeader,
        src_path: &str,
        src: &Entry,
        ctx: &RequestCtx,
        me: &ThisServer<'_>,
    ) -> bool {
        for list in &cond.lists {
            let path = match &list.resource {
                None => Some(src_path.to_string()),
                Some(tag) => parse_destination(tag.as_bytes(), me, self.prefix).ok(),
            };
            let Some(path) = path else { continue };
            let mut etag: Option<Option<String>> = None;
            let mut all = true;
            for c in &list.conditions {
                let holds = match &c.item {
                    Item::Token(t) => self.locks.token_covers(t, &path),
                    Item::ETag { weak, tag } => {
                        if etag.is_none() {
                            etag =
                                Some(if path == src_path { Some(src.etag()) } else { self.etag_of(&path, ctx).await });
                        }
                        !*weak && etag.as_ref().and_then(|e| e.as_deref()) == Some(tag.as_str())
                    }
                };
                if holds == c.not {
                    all = false;
                    break;
                }
            }
            if all {
                return true;
            }
        }
        false
    }

    async fn etag_of(&self, path: &str, ctx: &RequestCtx) -> Option<String> {
        match self.fs.table().resolve(path, &|m| ctx.user.sees(m))? {
            Resolved::Virtual(_) => Some("\"pandav-root\"".into()),
            Resolved::Mount(m, rel) => m.resolve(&rel).await.ok().map(|e| e.etag()),
        }
    }

    /// 207 naming the members of a folder copy that failed.
    fn multistatus(&self, mount: &Mount, failures: &transfer::Failures) -> Reply {
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">\n");
        for (rel, e) in failures {
            let path = format!("{}/{rel}", mount.path().trim_end_matches('/'));
            let code = e.status();
            xml.push_str(&format!(
                "<D:response><D:href>{}{}</D:href><D:status>HTTP/1.1 {} {}</D:status></D:response>\n",
                self.prefix,
                crate::server::download::encode_path(&path),
                code.as_u16(),
                code.canonical_reason().unwrap_or("")
            ));
        }
        xml.push_str("</D:multistatus>\n");
        let mut r = Response::new(Bytes::from(xml));
        *r.status_mut() = StatusCode::MULTI_STATUS;
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml; charset=utf-8"));
        r
    }
}
