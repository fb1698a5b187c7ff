//! A small authenticated admin API.
//!
//! Offline (cloud) download tasks of a mount:
//! - `GET    <prefix>/-/offline/<mount>`: `{"tasks": [...], "quota_total", "quota_left"}`
//! - `POST   <prefix>/-/offline/<mount>` with `{"urls": [...], "dir": "path/in/mount"}`
//! - `DELETE <prefix>/-/offline/<mount>` with `{"hashes": [...], "delete_files": false}`
//!
//! The same Basic auth as WebDAV; the user must see the mount, and may change tasks only
//! when not read-only. Errors are `{"error": "..."}` with the drive error's status.
//!
//! Copies and moves between mounts (`vfs::tasks`), read-only:
//! - `GET <prefix>/-/tasks`: `{"tasks": [TaskInfo…]}`, oldest first;
//! - `GET <prefix>/-/tasks/<id>`: one `TaskInfo` (404 when unknown or not yours).
//!
//! A user sees the tasks they started; a user with `admin = true` sees every task.

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::body::{full, BoxBody};
use crate::dav::User;
use crate::vfs::tasks::Tasks;
use crate::vfs::{DriveError, MountTable};

pub const OFFLINE_PREFIX: &str = "/-/offline/";
pub const TASKS_PATH: &str = "/-/tasks";
const BODY_MAX: usize = 256 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddReq {
    urls: Vec<String>,
    #[serde(default)]
    dir: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveReq {
    hashes: Vec<String>,
    #[serde(default)]
    delete_files: bool,
}

fn json_response(status: StatusCode, v: serde_json::Value) -> Response<BoxBody> {
    let mut r = Response::new(full(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, msg: impl std::fmt::Display) -> Response<BoxBody> {
    json_response(status, json!({"error": msg.to_string()}))
}

fn drive_error(e: &DriveError) -> Response<BoxBody> {
    let mut r = error(e.status(), e);
    if let Some(ra) = e.retry_after() {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(ra.as_secs()));
    }
    r
}

async fn read_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, Response<BoxBody>> {
    let bytes = match http_body_util::Limited::new(req.into_body(), BODY_MAX).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return Err(error(StatusCode::PAYLOAD_TOO_LARGE, "body too large")),
    };
    serde_json::from_slice(&bytes).map_err(|e| error(StatusCode::BAD_REQUEST, format!("bad JSON: {e}")))
}

/// Serve `/-/offline/<mount>` (`mount_path` is what follows the prefix, still encoded).
pub async fn offline(table: &MountTable, user: &User, mount_path: &str, req: Request<Incoming>) -> Response<BoxBody> {
    let decoded = percent_encoding::percent_decode_str(mount_path).decode_utf8_lossy();
    let Ok(path) = crate::config::normalize_mount_path(&format!("/{}", decoded.trim_matches('/'))) else {
        return error(StatusCode::BAD_REQUEST, "bad mount path");
    };
    let Some(m) = table.get(&path).filter(|m| user.sees(m)) else {
        return error(StatusCode::NOT_FOUND, format!("no mount {path}"));
    };
    if !m.caps().offline_download {
        return error(
            StatusCode::NOT_IMPLEMENTED,
            format!("mount {path} ({}) has no offline download", m.drive.kind()),
        );
    }
    let method = req.method().clone();
    if method != Method::GET && user.read_only {
        return error(StatusCode::FORBIDDEN, "read-only user");
    }
    match method {
        Method::GET => match m.offline_list().await {
            Ok(l) => json_response(
                StatusCode::OK,
                json!({
                    "tasks": l.tasks.iter().map(|t| json!({
                        "info_hash": t.info_hash, "name": t.name, "url": t.url, "size": t.size,
                        "percent": t.percent, "status": t.status_text(),
                    })).collect::<Vec<_>>(),
                    "quota_total": l.quota_total,
                    "quota_left": l.quota_left,
                }),
            ),
            Err(e) => drive_error(&e),
        },
        Method::POST => {
            let body: AddReq = match read_json(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            if body.urls.is_empty() || body.urls.iter().any(|u| u.trim().is_empty()) {
                return error(StatusCode::BAD_REQUEST, "urls must be a non-empty list of links");
            }
            tracing::info!(user = %user.name, mount = %path, count = body.urls.len(), "offline add");
            match m.offline_add(&body.urls, body.dir.as_deref()).await {
                Ok(res) => json_response(
                    StatusCode::OK,
                    json!({"results": res.iter().map(|a| json!({
                        "url": a.url, "ok": a.ok || a.exists, "exists": a.exists,
                        "info_hash": a.info_hash, "name": a.name, "message": a.message,
                    })).collect::<Vec<_>>()}),
                ),
                Err(e) => drive_error(&e),
            }
        }
        Method::DELETE => {
            let body: RemoveReq = match read_json(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            if body.hashes.is_empty() {
                return error(StatusCode::BAD_REQUEST, "hashes must not be empty");
            }
            tracing::info!(user = %user.name, mount = %path, count = body.hashes.len(), "offline remove");
            match m.offline_remove(&body.hashes, body.delete_files).await {
                Ok(()) => json_response(StatusCode::OK, json!({"removed": body.hashes.len()})),
                Err(e) => drive_error(&e),
            }
        }
        _ => {
            let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "use GET, POST or DELETE");
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
            r
        }
    }
}

/// For a path below the prefix: `Some(None)` for the task list, `Some(Some(id))` for
/// one task, `None` for anything else.
pub fn tasks_route(rest: &str) -> Option<Option<&str>> {
    let tail = rest.strip_prefix(TASKS_PATH)?;
    match tail {
        "" | "/" => Some(None),
        t => t.strip_prefix('/').filter(|id| !id.is_empty() && !id.contains('/')).map(Some),
    }
}

/// Serve `/-/tasks` and `/-/tasks/<id>`.
pub async fn tasks(tasks: &Tasks, user: &User, id: Option<&str>, method: &Method) -> Response<BoxBody> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
        r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match id {
        None => json_response(StatusCode::OK, json!({ "tasks": tasks.list(&user.name, user.admin).await })),
        Some(id) => match tasks.get(id, &user.name, user.admin).await {
            Some(t) => json_response(StatusCode::OK, json!(t)),
            None => error(StatusCode::NOT_FOUND, format!("no task {id}")),
        },
    }
}
