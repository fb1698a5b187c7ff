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
//! `copy_replace`, `transfer::copy_across`), so a failure leaves the old one.
//! Answers per RFC 4918 §9.8–9.9: 201 created, 204 replaced, 207 for a folder copy to
//! another mount where some members failed (the rest is copied).
//!
//! A copy or move between two mounts runs as a task (`vfs::tasks`): it goes on when the
//! client gives up, and the request waits for it at most `[server] copy_wait`. Done by
//! then, it answers as above. Otherwise it answers `202 Accepted` with
//! `Location: <prefix>/-/tasks/<id>` (a file manager takes the 2xx as done and sees the
//! target when it lands) — except to rclone, which checks the target right after a 2xx
//! and would count a missing one as a failed copy: rclone gets `503` with Retry-After,
//! retries the same request, and a repeated request joins the running task instead of
//! copying again, until the task is done. With shared state in Redis a request repeated
//! through another replica joins too (the copy's claim in Redis, `vfs::tasks::fleet`):
//! that replica waits for the task's end in Redis and answers the same way.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};

use super::destination::{parse_destination, DestError, ThisServer};
use super::ifheader::{parse_if, IfHeader, Item};
use super::locks::LockTable;
use super::{DavFs, Esc, RequestCtx};
use crate::vfs::mount::split_parent;
use crate::vfs::tasks::{Begun, Failure, Outcome, Task, TaskInfo, Tasks, TooMany};
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

/// What copies and moves between mounts need from the server, owned by their tasks.
#[derive(Clone)]
pub struct Tasking {
    pub tasks: Arc<Tasks>,
    pub locks: Arc<LockTable>,
    /// How long a request waits for its copy between mounts.
    pub copy_wait: std::time::Duration,
}

/// What a copy or move between mounts needs, owned by its task.
struct Across {
    from: Arc<Mount>,
    from_rel: String,
    to: Arc<Mount>,
    to_rel: String,
    src_path: String,
    dst_path: String,
    is_move: bool,
    replace: bool,
}

/// Clients that check the target right after a 2xx to COPY/MOVE (by User-Agent
/// prefix): they get 503 + Retry-After while a copy runs, and repeat the request.
const CHECKS_AT_ONCE: &[&str] = &["rclone/"];

/// What rclone and others are told to wait before repeating a request whose copy runs.
const RETRY_SECS: u64 = 2;

/// Why a COPY or MOVE stops before doing anything.
struct Stop(StatusCode, String);

impl Stop {
    fn new(code: StatusCode, why: impl Into<String>) -> Stop {
        Stop(code, why.into())
    }
}

impl CopyMove<'_> {
    /// Answer COPY or MOVE of `src_path` (the decoded request path).
    pub async fn handle<B>(&self, req: &Request<B>, src_path: &str, ctx: &RequestCtx, tk: &Tasking) -> Reply {
        let is_move = req.method().as_str() == "MOVE";
        let method = if is_move { "MOVE" } else { "COPY" };
        match self.run(req, src_path, ctx, is_move, tk).await {
            Ok(r) => r,
            Err(Stop(code, why)) => {
                tracing::info!(user = %Esc(&ctx.user.name), path = %Esc(src_path), "{method} refused ({code}): {why}");
                text(code, &why)
            }
        }
    }

    async fn run<B>(
        &self,
        req: &Request<B>,
        src_path: &str,
        ctx: &RequestCtx,
        is_move: bool,
        tk: &Tasking,
    ) -> Result<Reply, Stop> {
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
        if !same && (is_move || !src_entry.is_dir || deep) {
            let job = Across {
                from: Arc::clone(s),
                from_rel: src.rel.clone(),
                to: Arc::clone(d),
                to_rel: dst.rel.clone(),
                src_path: src_path.to_string(),
                dst_path: dst_path.clone(),
                is_move,
                replace,
            };
            return self.across(req, job, ctx, tk).await;
        }
        let outcome = if is_move {
            if replace {
                s.rename_replace(&src.rel, &dst.rel).await
            } else {
                s.rename(&src.rel, &dst.rel).await
            }
        } else if src_entry.is_dir && !deep {
            // Depth 0: the folder without its members.
            if replace {
                d.build_aside(&dst.rel, true, |at| async move { d.mkdir(&at).await }).await
            } else {
                d.mkdir(&dst.rel).await
            }
        } else if replace {
            s.copy_replace(&src.rel, &dst.rel).await
        } else {
            s.copy(&src.rel, &dst.rel).await
        };
        match outcome {
            Ok(_) => {}
            Err(DriveError::Exists) => {
                return Err(Stop::new(StatusCode::PRECONDITION_FAILED, "the destination appeared meanwhile"))
            }
            Err(e) => return Err(self.drive_stop(e, ctx)),
        };

        after(self.fs, self.locks, src_path, &dst_path, is_move, deep, replace).await;
        tracing::info!(
            user = %Esc(&ctx.user.name),
            from = %Esc(src_path),
            to = %Esc(&dst_path),
            replaced = replace,
            "{}",
            if is_move { "moved" } else { "copied" }
        );
        let code = if replace { StatusCode::NO_CONTENT } else { StatusCode::CREATED };
        let mut r = Response::new(Bytes::new());
        *r.status_mut() = code;
        Ok(r)
    }

    /// A copy or move between mounts: started as a task (or joined, when this user's
    /// identical request is already running, here or, with Redis, on another replica),
    /// waited for at most `copy_wait`.
    async fn across<B>(&self, req: &Request<B>, job: Across, ctx: &RequestCtx, tk: &Tasking) -> Result<Reply, Stop> {
        let kind = if job.is_move { "move" } else { "copy" };
        let user = ctx.user.name.as_str();
        let begun = tk.tasks.begin(user, kind, &job.src_path, &job.dst_path).await.map_err(|TooMany(n)| {
            Stop::new(StatusCode::SERVICE_UNAVAILABLE, format!("{n} copies between mounts run already"))
        })?;
        let task = match begun {
            Begun::Here(t) => {
                tracing::info!(user = %Esc(user), task = %t.id, "{kind} repeated: waiting for the running task");
                t
            }
            Begun::Started(t) => {
                tracing::info!(
                    user = %Esc(user),
                    task = %t.id,
                    from = %Esc(&job.src_path),
                    to = %Esc(&job.dst_path),
                    "{kind} between mounts started"
                );
                self.spawn(Arc::clone(&t), job, tk);
                t
            }
            Begun::Elsewhere(id, info) => {
                tracing::info!(
                    user = %Esc(user),
                    task = %id,
                    replica = %Esc(info.as_ref().and_then(|i| i.replica.as_deref()).unwrap_or("?")),
                    "{kind} repeated: waiting for the task running on another replica"
                );
                return match tokio::time::timeout(tk.copy_wait, tk.tasks.wait_elsewhere(&id)).await {
                    Ok(outcome) => Ok(self.reply(&outcome)),
                    Err(_) => {
                        let info = tk.tasks.get(&id, user, ctx.user.admin).await.or(info.map(|b| *b));
                        Ok(self.pending(req, &id, info.as_ref()))
                    }
                };
            }
        };
        match tokio::time::timeout(tk.copy_wait, task.wait()).await {
            Ok(outcome) => Ok(self.reply(&outcome)),
            Err(_) => Ok(self.pending(req, &task.id, Some(&task.info()))),
        }
    }

    /// Run the copy on its own, to its end whatever happens to the request.
    fn spawn(&self, task: Arc<Task>, job: Across, tk: &Tasking) {
        let (fs, locks) = (self.fs.clone(), Arc::clone(&tk.locks));
        let tj = transfer::Job {
            progress: Some(Arc::clone(task.progress_arc())),
            leftovers: Some(tk.tasks.leftovers().clone()),
        };
        let t2 = Arc::clone(&task);
        let work = tokio::spawn(async move {
            let (a, b) = (&job.from, &job.to);
            let r = if job.is_move {
                transfer::move_across(a, &job.from_rel, b, &job.to_rel, job.replace, &tj).await.map(|_| vec![])
            } else {
                transfer::copy_across(a, &job.from_rel, b, &job.to_rel, job.replace, true, &tj).await.map(|(_, f)| f)
            };
            let outcome = match r {
                Ok(failures) => {
                    after(&fs, &locks, &job.src_path, &job.dst_path, job.is_move, true, job.replace).await;
                    let failures: Vec<Failure> = failures
                        .into_iter()
                        .map(|(sub, e)| Failure {
                            path: format!("{}/{sub}", job.dst_path.trim_end_matches('/')),
                            status: e.status().as_u16(),
                            error: e.to_string(),
                        })
                        .collect();
                    Outcome::Done { replaced: job.replace, failures }
                }
                Err(DriveError::Exists) => Outcome::Failed {
                    status: StatusCode::PRECONDITION_FAILED.as_u16(),
                    error: "the destination appeared meanwhile".into(),
                    retry_after: None,
                },
                Err(e) => Outcome::Failed {
                    status: match &e {
                        DriveError::NotFound => 404,
                        e => e.status().as_u16(),
                    },
                    error: e.to_string(),
                    retry_after: e.retry_after().map(|d| d.as_secs()),
                },
            };
            let i = t2.info();
            match &outcome {
                Outcome::Done { failures, .. } => tracing::info!(
                    task = %i.id,
                    user = %Esc(&i.owner),
                    from = %Esc(&i.from),
                    to = %Esc(&i.to),
                    replaced = job.replace,
                    bytes = i.bytes_total,
                    by_hash = i.bytes_by_hash,
                    failed = failures.len(),
                    "{}",
                    if job.is_move { "moved between mounts" } else { "copied between mounts" }
                ),
                Outcome::Failed { error, .. } => tracing::warn!(
                    task = %i.id,
                    user = %Esc(&i.owner),
                    from = %Esc(&i.from),
                    to = %Esc(&i.to),
                    "{} between mounts failed: {error}",
                    i.kind
                ),
            }
            t2.finish(outcome);
        });
        tokio::spawn(async move {
            if let Err(e) = work.await {
                tracing::error!(task = %task.id, "copy task ended abnormally: {e}");
                task.finish(Outcome::Failed {
                    status: 500,
                    error: "the copy stopped unexpectedly".into(),
                    retry_after: None,
                });
            }
        });
    }

    /// The answer to a finished copy or move between mounts.
    fn reply(&self, outcome: &Outcome) -> Reply {
        match outcome {
            Outcome::Done { failures, .. } if !failures.is_empty() => self.multistatus(failures),
            Outcome::Done { replaced, .. } => {
                let mut r = Response::new(Bytes::new());
                *r.status_mut() = if *replaced { StatusCode::NO_CONTENT } else { StatusCode::CREATED };
                r
            }
            Outcome::Failed { status, error, retry_after } => {
                let code = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
                let mut r = text(code, error);
                if let Some(ra) = retry_after {
                    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*ra));
                }
                r
            }
        }
    }

    /// The answer while the copy still runs: 202 with the task's address and snapshot
    /// (503 with Retry-After to clients that check the target at once, see the module
    /// comment).
    fn pending<B>(&self, req: &Request<B>, id: &str, info: Option<&TaskInfo>) -> Reply {
        let ua = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
        let location = format!("{}/-/tasks/{id}", self.prefix);
        let mut r = if CHECKS_AT_ONCE.iter().any(|p| ua.starts_with(p)) {
            let mut r = text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("still copying (task {id}); repeat the request to wait for it, or see {location}"),
            );
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_SECS));
            r
        } else {
            let body = match info {
                Some(i) => serde_json::to_vec(i).unwrap_or_default(),
                None => serde_json::to_vec(&serde_json::json!({ "id": id, "state": "running" })).unwrap_or_default(),
            };
            let mut r = Response::new(Bytes::from(body));
            *r.status_mut() = StatusCode::ACCEPTED;
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        };
        if let Ok(v) = HeaderValue::from_str(&location) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r
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
        self.fs.props.remove_tree(path).await;
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
                    Item::Token(t) => self.locks.token_covers(t, &path).await,
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
    fn multistatus(&self, failures: &[Failure]) -> Reply {
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">\n");
        for f in failures {
            let path = &f.path;
            let code = StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_GATEWAY);
            xml.push_str(&format!(
                "<D:response><D:href>{}{}</D:href><D:status>HTTP/1.1 {} {}</D:status></D:response>\n",
                self.prefix,
                crate::server::download::encode_path(path),
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

/// Dead properties and locks follow what a copy or move did.
async fn after(fs: &DavFs, locks: &LockTable, src: &str, dst: &str, is_move: bool, deep: bool, replace: bool) {
    if is_move {
        fs.props.rename_tree(src, dst).await;
        locks.forget_tree(src).await;
    } else {
        fs.props.copy_tree(src, dst, deep).await;
    }
    if replace {
        locks.forget_tree(dst).await;
    }
}
