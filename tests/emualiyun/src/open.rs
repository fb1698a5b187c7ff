//! Open platform (family C) on `openapi.alipan.com` / `openapi.aliyundrive.com`: OAuth and QR
//! (ref §2.3, §2.5, §2.6), user and drive info (§4.1), files (§4–§7), rate limits (§10).
//! Every success answers 200 (the official SDK treats anything else as an error, §1.3).

use emukit::Reply;
use serde_json::{json, Value};

use crate::common::{
    err, file_json, invalid, open_auth, opt_bool, opt_str, opt_u64, parse_body, req_str, spring_404, too_many,
    tree_err, Auth, Call, UrlCtx,
};
use crate::files::{self, owns};
use crate::state::{Api, TaskOp, TreeError};
use crate::{auth, upload, AliFault};

pub(crate) fn route(call: &mut Call) -> Reply {
    let path = call.req.path.clone();
    let method = call.req.method.as_str().to_string();
    // OAuth helpers (no access token).
    match (method.as_str(), path.as_str()) {
        ("POST", "/oauth/access_token") => {
            return match parse_body(call.req) {
                Ok(b) => auth::open_token(call, &b),
                Err(r) => r,
            }
        }
        ("POST", "/oauth/authorize/qrcode") => {
            return match parse_body(call.req) {
                Ok(b) => {
                    call.body = b;
                    auth::open_qr_create(call)
                }
                Err(r) => r,
            }
        }
        ("GET", "/oauth/authorize") => return authorize(call),
        ("GET", p) if p.starts_with("/oauth/qrcode/") && p.ends_with("/status") => {
            let sid = p.trim_start_matches("/oauth/qrcode/").trim_end_matches("/status").to_string();
            return auth::open_qr_status(call, &sid);
        }
        ("GET", p) if p.starts_with("/oauth/qrcode/") => {
            return Reply::new(200, "image/png", b"\x89PNG\r\n\x1a\nEMULATED-QR".to_vec());
        }
        _ => {}
    }
    let auth = match open_auth(call) {
        Ok(a) => a,
        Err(r) => return r,
    };
    match (method.as_str(), path.as_str()) {
        ("GET", "/oauth/users/info") => return users_info(call, &auth),
        ("GET", "/oauth/users/scopes") => {
            return Reply::json(&json!({"id": auth.user_id, "scopes": [{"scope": "user:base"},
                {"scope": "file:all:read"}, {"scope": "file:all:write"}]}))
        }
        _ => {}
    }
    if !path.starts_with("/adrive/v1.0/") && !path.starts_with("/business/v1.0/") {
        return spring_404(call);
    }
    if method != "POST" {
        return Reply::json_status(
            405,
            &json!({"timestamp": emukit::util::rfc3339_millis(call.now), "status": 405,
                "error": "Method Not Allowed", "path": path}),
        );
    }
    match parse_body(call.req) {
        Ok(b) => call.body = b,
        Err(r) => return r,
    }
    if let Some(AliFault::TooManyRequests { retry_after_ms }) = call.custom {
        return too_many(retry_after_ms);
    }
    // Token buckets per (user, app) in three classes (ref §10.1).
    if let Some(r) = call.opts.open_rates {
        let (class, rate) = match path.as_str() {
            "/adrive/v1.0/openFile/list" => ("list", r.list),
            "/adrive/v1.0/openFile/getDownloadUrl" => ("download", r.download_url),
            _ => ("other", r.other),
        };
        let key = format!("open|{}|{}|{class}", auth.user_id, auth.app.as_deref().unwrap_or(""));
        if let Err(wait) = call.inner.limiter.check(&key, rate, r.burst.max(1.0), call.now) {
            return too_many(Some(wait));
        }
    }
    files::settle_tasks(&mut call.inner.st(), call.now, call.opts.async_task_settle.as_millis() as i64);
    let b = call.body.clone();
    let r = match path.as_str() {
        "/adrive/v1.0/user/getDriveInfo" => drive_info(call, &auth),
        "/adrive/v1.0/user/getSpaceInfo" => space_info(call, &auth),
        "/business/v1.0/user/getVipInfo" => Ok(Reply::json(
            &json!({"identity": "member", "level": "", "expire": 0, "thirdPartyVip": false, "thirdPartyVipExpire": 0}),
        )),
        "/adrive/v1.0/openFile/list" => list(call, &auth, &b),
        "/adrive/v1.0/openFile/get" => get(call, &auth, &b),
        "/adrive/v1.0/openFile/get_by_path" => get_by_path(call, &auth, &b),
        "/adrive/v1.0/openFile/batch/get" => batch_get(call, &auth, &b),
        "/adrive/v1.0/openFile/getDownloadUrl" => download_url(call, &auth, &b),
        "/adrive/v1.0/openFile/create" => create(call, &auth, &b),
        "/adrive/v1.0/openFile/getUploadUrl" => Ok(upload::get_upload_url(call, &auth, &b, Api::Open)),
        "/adrive/v1.0/openFile/listUploadedParts" => Ok(upload::list_uploaded_parts(call, &auth, &b)),
        "/adrive/v1.0/openFile/complete" => Ok(upload::complete(call, &auth, &b, Api::Open)),
        "/adrive/v1.0/openFile/update" => update(call, &auth, &b),
        "/adrive/v1.0/openFile/move" => move_(call, &auth, &b),
        "/adrive/v1.0/openFile/copy" => copy(call, &auth, &b),
        "/adrive/v1.0/openFile/recyclebin/trash" => remove(call, &auth, &b, false),
        "/adrive/v1.0/openFile/delete" => remove(call, &auth, &b, true),
        "/adrive/v1.0/openFile/async_task/get" => task_get(call, &b),
        _ => Ok(spring_404(call)),
    };
    r.unwrap_or_else(|e| e)
}

fn authorize(call: &Call) -> Reply {
    let q = |k: &str| call.req.query_param(k).unwrap_or_default();
    let client_id = q("client_id");
    let redirect = q("redirect_uri");
    let app = call.inner.st().apps.get(&client_id).cloned();
    let Some(app) = app else { return err(400, "InvalidClientId", "client_id is invalid") };
    if q("response_type") != "code" {
        return err(400, "InvalidParameter.ResponseType", "response_type must be code");
    }
    if !app.redirect_uris.contains(&redirect) {
        return err(400, "InvalidParameter.RedirectUri", "redirect_uri is not registered");
    }
    let user = call.inner.st().users.keys().next().cloned();
    let Some(user) = user else { return err(403, "PermissionDenied", "no user is logged in") };
    let challenge = call
        .req
        .query_param("code_challenge")
        .map(|c| (c, call.req.query_param("code_challenge_method").unwrap_or("S256".into())));
    let code = auth::mint_code(call.inner, &user, &client_id, challenge);
    if redirect == "oob" {
        return Reply::json(&json!({"redirectUri": format!("oob?code={code}"), "code": code}));
    }
    let sep = if redirect.contains('?') { '&' } else { '?' };
    Reply::empty(302)
        .header("location", format!("{redirect}{sep}code={code}&state={}", emukit::util::pct_encode_query(&q("state"))))
}

fn users_info(call: &Call, auth: &Auth) -> Reply {
    let st = call.inner.st();
    let Some(u) = st.users.get(&auth.user_id) else { return err(401, "AccessTokenInvalid", "AccessToken is invalid.") };
    Reply::json(&json!({"id": u.user_id, "name": u.nick_name, "avatar": "", "phone": null}))
}

fn drive_info(call: &Call, auth: &Auth) -> Result<Reply, Reply> {
    let st = call.inner.st();
    let u = st.users.get(&auth.user_id).ok_or_else(|| err(401, "AccessTokenInvalid", "AccessToken is invalid."))?;
    let app = auth.app.as_deref().and_then(|a| st.apps.get(a));
    let mut v =
        json!({"user_id": u.user_id, "name": u.nick_name, "avatar": "", "default_drive_id": u.default_drive_id});
    if app.is_some_and(|a| a.grant_resource) {
        v["resource_drive_id"] = json!(u.resource_drive_id);
    }
    if app.is_some_and(|a| a.grant_backup) {
        v["backup_drive_id"] = json!(u.backup_drive_id);
    }
    Ok(Reply::json(&v))
}

fn space_info(call: &Call, auth: &Auth) -> Result<Reply, Reply> {
    let st = call.inner.st();
    let u = st.users.get(&auth.user_id).ok_or_else(|| err(401, "AccessTokenInvalid", "AccessToken is invalid."))?;
    Ok(Reply::json(&json!({"personal_space_info": {"used_size": st.used_size(None, u), "total_size": u.total_size}})))
}

/// Drives an app may touch: default always; resource and backup only when granted (ref §4.1).
fn drive_ok(call: &Call, auth: &Auth, drive: &str) -> Result<(), Reply> {
    let st = call.inner.st();
    if !owns(&st, &auth.user_id, drive) {
        return Err(files::no_drive(Api::Open));
    }
    let u = &st.users[&auth.user_id];
    let app = auth.app.as_deref().and_then(|a| st.apps.get(a));
    let granted = drive == u.default_drive_id
        || (drive == u.resource_drive_id && app.is_some_and(|a| a.grant_resource))
        || (drive == u.backup_drive_id && app.is_some_and(|a| a.grant_backup));
    if granted {
        Ok(())
    } else {
        Err(err(403, "UserNotAllowedAccessDrive", "user not allowed access drive"))
    }
}

fn target(call: &Call, auth: &Auth, b: &Value) -> Result<(String, String), Reply> {
    let drive = req_str(b, "drive_id")?;
    let id = req_str(b, "file_id")?;
    drive_ok(call, auth, &drive)?;
    let st = call.inner.st();
    match st.nodes.get(&id) {
        Some(n) if n.drive_id == drive => Ok((drive, id)),
        _ => Err(tree_err(TreeError::NotFound, Api::Open)),
    }
}

fn urls<'a>(auth: &'a Auth) -> UrlCtx<'a> {
    UrlCtx { user_id: &auth.user_id, referer_bound: false, expire_sec: 900 }
}

fn list(call: &Call, auth: &Auth, b: &Value) -> Result<Reply, Reply> {
    let drive = req_str(b, "drive_id")?;
    let parent = req_str(b, "parent_file_id")?;
    let limit = opt_u64(b, "limit")?.unwrap_or(call.opts.open_list_default);
    if limit == 0 {
        return Err(invalid("limit"));
    }
    let limit = limit.min(call.opts.open_list_max);
    let (order, desc) = files::parse_order(b, Api::Open)?;
    let marker = opt_str(b, "marker")?.unwrap_or_default();
    let (kind, categories) = files::parse_filters(b, Api::Open)?;
    drive_ok(call, auth, &drive)?;
    let st = call.inner.st();
    st.check_folder(&drive, &parent).map_err(|e| tree_err(e, Api::Open))?;
    let spec = files::ListSpec { order, desc, limit: limit as usize, marker, kind, categories };
    let (items, next) = files::page(st.children(&drive, &parent), &spec)?;
    let u = urls(auth);
    let items: Vec<Value> =
        items.into_iter().map(|n| file_json(call.inner, &st, n, Api::Open, Some(&u), call.now)).collect();
    Ok(Reply::json(&json!({"items": items, "next_marker": next})))
}

fn get(call: &Call, auth: &Auth, b: &Value) -> Result<Reply, Reply> {
    let (_, id) = target(call, auth, b)?;
    let st = call.inner.st();
    if !st.alive(&id) {
        return Err(tree_err(TreeError::NotFound, Api::Open));
    }
    Ok(Reply::json(&file_json(call.inner, &st, &st.nodes[&id], Api::Open, Some(&urls(auth)), call.now)))
}

fn get_by_path(call: &Call, auth: &Auth, b: &Value) -> Result<Reply, Reply> {
    drive_ok(call, auth, &req_str(b, "drive_id")?)?;
    let id = crate::consumer::by_path(call, &auth.user_id, b, Api::Open)?;
    let st = call.inner.st();
    Ok(Reply::json(&file_json(call.inner, &st, &st.nodes[&id], Api::Open, Some(&urls(auth)), call.now)))
}

fn batch_get(call: &Call, auth: &Auth, b: &Value) -> Result<Reply, Reply> {
    let list = b.get("file_list").and_then(Value::as_array).ok_or_else(|| crate::common::missing("file_list"))?;
    if list.len() > 100 {
        return Err(invalid("file_list"));
    }
    let mut items = Vec::new();
    for f in list {
        if let Ok((_, id)) = target(call, auth, f) {
            let st = call.inner.st();
            if st.alive(&id) {
                items.push(file_json(call.inner, &st, &st.nodes[&id], Api::Open, Some(&urls(auth)), call.now));
            }
        }
    }
    Ok(Reply::json(&json!({"items": items})))
}

fn download_url(call: &Call, auth: &Auth, b: &Value) -> Result<Reply, Reply> {
    let (_, id) = target(call, auth, b)?;
    let want = opt_u64(b, "expire_sec")?.unwrap_or(call.opts.download_expire_default);
    if want == 0 {
        return Err(invalid("expire_sec"));
    }
    let st = call.inner.st();
    // An app gets at most its allowance (14400 only after approval, ref §5.2); the answer's
    // `expiration` says what was granted.
    let cap = auth.app.as_deref().and_then(|a| st.apps.get(a)).map(|a| a.max_expire_sec).unwrap_or(900);
    let expire = want.min(cap).min(call.opts.download_expire_max);
    let n = &st.nodes[&id];
    if !st.alive(&id) {
        return Err(tree_err(TreeError::Trashed, Api::Open));
    }
    if n.is_dir {
        return Err(err(400, "InvalidResource.FileTypeFolder", "The resource file type is folder."));
    }
    let u = UrlCtx { user_id: &auth.user_id, referer_bound: false, expire_sec: expire };
    let (url, exp) = crate::data::download_url(call.inner, &st, n, &u, call.now, false, crate::DATA_HOST);
    Ok(Reply::json(&json!({"url": url, "expiration": emukit::util::rfc3339_millis(exp), "method": "GET",
        "size": n.size, "content_hash": n.sha1, "content_hash_name": "sha1", "file_id": n.file_id,
        "description": "", "streamsUrl": null})))
}

fn create(call: &Call, auth: &Auth, b: &Value) -> Result<Reply, Reply> {
    drive_ok(call, auth, &req_str(b, "drive_id")?)?;
    match opt_str(b, "type")?.as_deref() {
        Some("folder") => {
            let (mut v, exist) = crate::consumer::mkdir_common(call, &auth.user_id, b, Api::Open)?;
            let o = v.as_object_mut().expect("object");
            o.remove("domain_id");
            o.remove("encrypt_mode");
            o.insert("status".into(), json!("available"));
            o.insert("available".into(), json!(true));
            o.insert("exist".into(), json!(exist));
            Ok(Reply::json(&v))
        }
        Some("file") => Ok(upload::create(call, auth, b, Api::Open)),
        None => Err(crate::common::missing("type")),
        Some(_) => Err(invalid("type")),
    }
}

fn update(call: &Call, auth: &Auth, b: &Value) -> Result<Reply, Reply> {
    let (_, id) = target(call, auth, b)?;
    let name = opt_str(b, "name")?;
    let mode = files::rename_mode(b)?;
    let starred = opt_bool(b, "starred")?;
    let mut st = call.inner.st();
    if let Some(name) = name {
        files::rename(&mut st, &id, &name, &mode, Api::Open, call.now)?;
    }
    if let Some(s) = starred {
        st.nodes.get_mut(&id).expect("node").starred = s;
    }
    let n = st.nodes[&id].clone();
    Ok(Reply::json(&file_json(call.inner, &st, &n, Api::Open, None, call.now)))
}

fn same_drive(b: &Value, drive: &str) -> Result<(), Reply> {
    match opt_str(b, "to_drive_id")? {
        Some(d) if !d.is_empty() && d != drive => {
            Err(err(400, "InvalidParameter.ToDriveId", "cross-drive operations are not supported"))
        }
        _ => Ok(()),
    }
}

fn move_(call: &Call, auth: &Auth, b: &Value) -> Result<Reply, Reply> {
    let (drive, id) = target(call, auth, b)?;
    same_drive(b, &drive)?;
    let to = req_str(b, "to_parent_file_id")?;
    let new_name = opt_str(b, "new_name")?.filter(|n| !n.is_empty());
    let mode = files::rename_mode(b)?;
    let mut st = call.inner.st();
    if mode == "refuse" {
        let n = st.nodes[&id].clone();
        let name = new_name.clone().unwrap_or(n.name.clone());
        if let Some(e) = st.child_named(&drive, &to, &name).filter(|e| e.file_id != id) {
            // The open API answers a refused move with `exist: true` (ref §6.4).
            let existing = e.file_id.clone();
            return Ok(Reply::json(
                &json!({"drive_id": drive, "file_id": existing, "exist": true, "async_task_id": ""}),
            ));
        }
    }
    files::move_node(&mut st, &id, &to, new_name.as_deref(), &mode, Api::Open, call.now)?;
    Ok(Reply::json(&json!({"drive_id": drive, "file_id": id, "exist": false, "async_task_id": ""})))
}

fn copy(call: &Call, auth: &Auth, b: &Value) -> Result<Reply, Reply> {
    let (drive, id) = target(call, auth, b)?;
    same_drive(b, &drive)?;
    let to = req_str(b, "to_parent_file_id")?;
    let auto = opt_bool(b, "auto_rename")?.unwrap_or(false);
    let mut st = call.inner.st();
    let (name, new_id) = files::prepare_copy(&st, &id, &to, None, auto, Api::Open)?;
    if st.nodes[&id].is_dir {
        let op =
            TaskOp::Copy { src: id, new_id: new_id.clone(), to_drive: drive.clone(), to_parent: to, new_name: name };
        let task = files::new_task(&mut st, op, call.opts.async_task_running_polls, call.now);
        return Ok(Reply::json(&json!({"drive_id": drive, "file_id": new_id, "async_task_id": task})));
    }
    st.copy_subtree(&id, &drive, &to, &name, new_id.clone(), call.now);
    Ok(Reply::json(&json!({"drive_id": drive, "file_id": new_id, "async_task_id": ""})))
}

fn remove(call: &Call, auth: &Auth, b: &Value, permanent: bool) -> Result<Reply, Reply> {
    let (drive, id) = target(call, auth, b)?;
    let mut st = call.inner.st();
    let n = st.nodes[&id].clone();
    if !permanent && (n.trashed || !st.alive(&id)) {
        return Err(tree_err(TreeError::Trashed, Api::Open));
    }
    let op = if permanent { TaskOp::Delete(id.clone()) } else { TaskOp::Trash(id.clone()) };
    let task = if n.is_dir {
        files::new_task(&mut st, op, call.opts.async_task_running_polls, call.now)
    } else {
        files::apply_op(&mut st, &op, call.now);
        String::new()
    };
    Ok(Reply::json(&json!({"drive_id": drive, "file_id": id, "async_task_id": task})))
}

fn task_get(call: &Call, b: &Value) -> Result<Reply, Reply> {
    let id = req_str(b, "async_task_id")?;
    match files::poll_task(&mut call.inner.st(), &id, call.now) {
        Some(s) => Ok(Reply::json(&json!({"state": s, "async_task_id": id}))),
        None => Err(err(404, "NotFound.AsyncTask", "The resource async_task cannot be found.")),
    }
}
