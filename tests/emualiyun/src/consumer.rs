//! Consumer API (family A) on `api.aliyundrive.com` / `api.alipan.com` (and `/v2/user/get` on
//! `user.aliyundrive.com`): ref §3–§7, §9.

use emukit::Reply;
use serde_json::{json, Value};

use crate::common::{
    check_device, consumer_auth, err, file_json, invalid, missing, opt_bool, opt_str, opt_u64, req_str, signed_path,
    too_many, tree_err, Auth, Call, UrlCtx,
};
use crate::files::{self, owns, NameOutcome};
use crate::state::{Api, TaskOp, TokenKind, TreeError, DOMAIN_ID};
use crate::{auth, share, upload, AliFault};

pub(crate) fn route(call: &mut Call) -> Reply {
    let path = call.req.path.clone();
    match path.as_str() {
        "/v2/account/token" => return auth::consumer_token(call),
        "/adrive/v3/share_link/get_share_by_anonymous" | "/adrive/v2/share_link/get_share_by_anonymous" => {
            return share::anonymous(call)
        }
        "/v2/share_link/get_share_token" => return share::token(call),
        "/v2/file/get_share_link_download_url" => return share::download_url(call),
        "/adrive/v2/file/list_by_share" | "/adrive/v2/file/get_by_share" => return share::route(call),
        "/adrive/v3/file/list" | "/v2/file/list" | "/v2/file/get" if call.header("x-share-token").is_some() => {
            return share::route(call)
        }
        "/users/v1/users/device/create_session" => return auth::create_session(call),
        "/users/v1/users/device/renew_session" => return auth::renew_session(call),
        "/users/v1/users/device_logout" => return auth::device_logout(call),
        "/users/v2/users/device_list" => return auth::device_list(call),
        _ => {}
    }
    if matches!(call.custom, Some(AliFault::TooManyRequests { .. })) {
        let Some(AliFault::TooManyRequests { retry_after_ms }) = call.custom else { unreachable!() };
        return too_many(retry_after_ms);
    }
    let auth = match consumer_auth(call) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Some((rate, burst)) = call.opts.consumer_rate {
        if let Err(wait) = call.inner.limiter.check(&format!("consumer|{}", auth.user_id), rate, burst, call.now) {
            return too_many(Some(wait));
        }
    }
    if signed_path(&path) || matches!(call.custom, Some(AliFault::SignatureInvalid | AliFault::DeviceOffline)) {
        if let Err(r) = check_device(call, &auth) {
            return r;
        }
    }
    files::settle_tasks(&mut call.inner.st(), call.now, call.opts.async_task_settle.as_millis() as i64);
    let body = call.body.clone();
    match path.as_str() {
        "/v2/user/get" => user_get(call, &auth),
        "/adrive/v1/user/driveCapacityDetails" => capacity(call, &auth),
        "/v2/drive/get" => drive_get(call, &auth, &body),
        "/v2/databox/get_personal_info" => personal_info(call, &auth),
        "/adrive/v3/file/list" | "/v2/file/list" => list(call, &auth, &body),
        "/v2/file/get" => get(call, &auth, &body),
        "/v2/file/get_by_path" => get_by_path(call, &auth, &body),
        "/adrive/v1/file/get_path" => get_path(call, &auth, &body),
        "/v2/file/get_download_url" => download_url(call, &auth, &body),
        "/adrive/v2/file/createWithFolders"
        | "/v2/file/create"
        | "/adrive/v2/file/create"
        | "/v2/file/create_with_proof" => create(call, &auth, &body),
        "/v2/file/get_upload_url" => upload::get_upload_url(call, &auth, &body, Api::Consumer),
        "/v2/file/complete" => upload::complete(call, &auth, &body, Api::Consumer),
        "/v3/file/update" | "/v2/file/update" | "/adrive/v3/file/update" => update(call, &auth, &body),
        "/v2/file/move" => move_(call, &auth, &body),
        "/v2/file/copy" => copy(call, &auth, &body),
        "/v2/recyclebin/trash" => remove(call, &auth, &body, false),
        "/v2/file/delete" => remove(call, &auth, &body, true),
        "/v2/recyclebin/restore" => restore(call, &auth, &body),
        "/v2/recyclebin/list" => recyclebin_list(call, &auth, &body),
        "/v2/recyclebin/clear" => recyclebin_clear(call, &auth, &body),
        "/v2/async_task/get" => task_get(call, &body),
        "/v3/batch" | "/adrive/v2/batch" | "/adrive/v4/batch" | "/v2/batch" => batch(call, &auth, &body),
        _ => crate::common::not_found(call),
    }
}

fn user_json(call: &Call, auth: &Auth) -> Option<Value> {
    let st = call.inner.st();
    let u = st.users.get(&auth.user_id)?;
    Some(json!({
        "domain_id": DOMAIN_ID, "user_id": u.user_id, "avatar": "", "created_at": 1_600_000_000_000i64,
        "updated_at": call.now, "email": "", "nick_name": u.nick_name, "phone": "", "role": "user",
        "status": "enabled", "user_name": u.name, "description": "", "default_drive_id": u.default_drive_id,
        "resource_drive_id": u.resource_drive_id, "backup_drive_id": u.backup_drive_id, "sbox_drive_id": u.sbox_drive_id,
        "display_name": u.nick_name, "default_location": "", "last_login_time": call.now, "vip_identity": "member",
        "user_data": {},
    }))
}

fn user_get(call: &Call, auth: &Auth) -> Reply {
    match user_json(call, auth) {
        Some(v) => Reply::json(&v),
        None => err(401, "AccessTokenInvalid", "not login"),
    }
}

fn capacity(call: &Call, auth: &Auth) -> Reply {
    let st = call.inner.st();
    let Some(u) = st.users.get(&auth.user_id) else { return err(401, "AccessTokenInvalid", "not login") };
    let d = |id: &str| st.used_size(Some(id), u);
    Reply::json(&json!({
        "drive_used_size": st.used_size(None, u), "drive_total_size": u.total_size,
        "default_drive_used_size": d(&u.default_drive_id), "album_drive_used_size": 0,
        "backup_drive_used_size": d(&u.backup_drive_id), "resource_drive_used_size": d(&u.resource_drive_id),
        "sbox_drive_used_size": d(&u.sbox_drive_id), "note_drive_used_size": 0, "share_album_drive_used_size": 0,
    }))
}

/// The body's `drive_id`, if the caller owns it.
fn owned_drive(call: &Call, auth: &Auth, b: &Value) -> Result<String, Reply> {
    let drive = req_str(b, "drive_id")?;
    if owns(&call.inner.st(), &auth.user_id, &drive) {
        Ok(drive)
    } else {
        Err(files::no_drive(Api::Consumer))
    }
}

fn drive_get(call: &Call, auth: &Auth, b: &Value) -> Reply {
    let drive = match owned_drive(call, auth, b) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let st = call.inner.st();
    let u = st.users.get(&auth.user_id).expect("user");
    let ty = if drive == u.default_drive_id { "normal" } else { "resource" };
    Reply::json(&json!({"domain_id": DOMAIN_ID, "drive_id": drive, "drive_name": ty, "description": "",
        "creator": u.user_id, "owner": u.user_id, "owner_type": "user", "drive_type": ty, "status": "enabled",
        "used_size": st.used_size(Some(&drive), u), "total_size": u.total_size}))
}

fn personal_info(call: &Call, auth: &Auth) -> Reply {
    let st = call.inner.st();
    let u = st.users.get(&auth.user_id).expect("user");
    Reply::json(&json!({"personal_rights_info": {"spu_id": "non-vip", "name": "member", "is_expires": false},
        "personal_space_info": {"used_size": st.used_size(None, u), "total_size": u.total_size}}))
}

/// Drive and, for file calls, an owned `file_id` (`"root"` allowed when `root_ok`).
fn target(call: &Call, auth: &Auth, b: &Value) -> Result<(String, String), Reply> {
    let drive = req_str(b, "drive_id")?;
    let id = req_str(b, "file_id")?;
    let st = call.inner.st();
    if !owns(&st, &auth.user_id, &drive) {
        return Err(files::no_drive(Api::Consumer));
    }
    match st.nodes.get(&id) {
        Some(n) if n.drive_id == drive => Ok((drive, id)),
        _ => Err(tree_err(TreeError::NotFound, Api::Consumer)),
    }
}

fn url_expire(b: &Value, field: &str, default: u64, max: u64) -> Result<u64, Reply> {
    match opt_u64(b, field)? {
        None => Ok(default),
        Some(0) => Err(invalid(field)),
        Some(s) if s > max => Err(err(
            400,
            &format!("InvalidParameter.{}", crate::common::camel(field)),
            &format!("{field} should be less or equal than {max}"),
        )),
        Some(s) => Ok(s),
    }
}

fn list(call: &Call, auth: &Auth, b: &Value) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let drive = req_str(b, "drive_id")?;
        let parent = req_str(b, "parent_file_id")?;
        let limit = files::consumer_limit(b, &call.opts)?;
        let (order, desc) = files::parse_order(b, Api::Consumer)?;
        let marker = opt_str(b, "marker")?.unwrap_or_default();
        let (kind, categories) = files::parse_filters(b, Api::Consumer)?;
        let expire = url_expire(b, "url_expire_sec", 14_400, 14_400)?;
        let with_urls = opt_str(b, "fields")?.as_deref() == Some("*");
        let st = call.inner.st();
        if !owns(&st, &auth.user_id, &drive) {
            return Err(files::no_drive(Api::Consumer));
        }
        st.check_folder(&drive, &parent).map_err(|e| tree_err(e, Api::Consumer))?;
        let spec = files::ListSpec { order, desc, limit: limit as usize, marker, kind, categories };
        let (items, next) = files::page(st.children(&drive, &parent), &spec)?;
        let urls = UrlCtx { user_id: &auth.user_id, referer_bound: auth.kind == TokenKind::Web, expire_sec: expire };
        let items: Vec<Value> = items
            .into_iter()
            .map(|n| file_json(call.inner, &st, n, Api::Consumer, with_urls.then_some(&urls), call.now))
            .collect();
        Ok(Reply::json(&json!({"items": items, "next_marker": next, "punished_file_count": 0})))
    };
    run().unwrap_or_else(|r| r)
}

fn get(call: &Call, auth: &Auth, b: &Value) -> Reply {
    let (_, id) = match target(call, auth, b) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let expire = match url_expire(b, "url_expire_sec", 14_400, 14_400) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let st = call.inner.st();
    let n = &st.nodes[&id];
    if !n.trashed && !st.alive(&id) {
        return tree_err(TreeError::NotFound, Api::Consumer);
    }
    let urls = UrlCtx { user_id: &auth.user_id, referer_bound: auth.kind == TokenKind::Web, expire_sec: expire };
    Reply::json(&file_json(call.inner, &st, n, Api::Consumer, Some(&urls), call.now))
}

pub(crate) fn by_path(call: &Call, user: &str, b: &Value, api: Api) -> Result<String, Reply> {
    let drive = req_str(b, "drive_id")?;
    let path = req_str(b, "file_path")?;
    let st = call.inner.st();
    if !owns(&st, user, &drive) {
        return Err(files::no_drive(api));
    }
    if !path.starts_with('/') || path == "/" {
        return Err(invalid("file_path"));
    }
    if call.opts.get_by_path_fails_on_whitespace && path.split('/').any(|c| c.chars().any(char::is_whitespace)) {
        return Err(tree_err(TreeError::NotFound, api));
    }
    st.lookup(&drive, &path).ok_or_else(|| tree_err(TreeError::NotFound, api))
}

fn get_by_path(call: &Call, auth: &Auth, b: &Value) -> Reply {
    match by_path(call, &auth.user_id, b, Api::Consumer) {
        Ok(id) => {
            let st = call.inner.st();
            let urls =
                UrlCtx { user_id: &auth.user_id, referer_bound: auth.kind == TokenKind::Web, expire_sec: 14_400 };
            Reply::json(&file_json(call.inner, &st, &st.nodes[&id], Api::Consumer, Some(&urls), call.now))
        }
        Err(r) => r,
    }
}

fn get_path(call: &Call, auth: &Auth, b: &Value) -> Reply {
    let (_, id) = match target(call, auth, b) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let st = call.inner.st();
    let mut items = Vec::new();
    let mut cur = id;
    while cur != "root" {
        let Some(n) = st.nodes.get(&cur) else { break };
        items.push(file_json(call.inner, &st, n, Api::Consumer, None, call.now));
        cur = n.parent.clone();
    }
    Reply::json(&json!({"items": items}))
}

fn download_url(call: &Call, auth: &Auth, b: &Value) -> Reply {
    let (_, id) = match target(call, auth, b) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let expire = match url_expire(b, "expire_sec", call.opts.download_expire_default, call.opts.download_expire_max) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let st = call.inner.st();
    let n = &st.nodes[&id];
    if n.trashed || !st.alive(&id) {
        return tree_err(TreeError::Trashed, Api::Consumer);
    }
    if n.is_dir {
        return err(400, "InvalidResource.FileTypeFolder", "The resource file type is folder.");
    }
    let web = auth.kind == TokenKind::Web;
    let u = UrlCtx { user_id: &auth.user_id, referer_bound: web, expire_sec: expire };
    let (url, exp) = crate::data::download_url(call.inner, &st, n, &u, call.now, false, crate::DATA_HOST);
    let (internal, _) = crate::data::download_url(call.inner, &st, n, &u, call.now, false, crate::INTERNAL_DATA_HOST);
    Reply::json(&json!({
        "method": "GET", "url": url, "internal_url": internal, "cdn_url": "",
        "expiration": emukit::util::rfc3339_millis(exp), "size": n.size,
        "ratelimit": {"part_speed": -1, "part_size": -1},
        "crc64_hash": n.crc64.to_string(), "content_hash": n.sha1, "content_hash_name": "sha1",
        "domain_id": DOMAIN_ID, "drive_id": n.drive_id, "file_id": n.file_id, "revision_id": n.revision_id,
        "punish_flag": 0,
    }))
}

fn create(call: &Call, auth: &Auth, b: &Value) -> Reply {
    match opt_str(b, "type") {
        Ok(Some(t)) if t == "folder" => mkdir(call, auth, b),
        Ok(Some(t)) if t == "file" => upload::create(call, auth, b, Api::Consumer),
        Ok(None) => missing("type"),
        Ok(Some(_)) | Err(_) => invalid("type"),
    }
}

/// Folder creation (ref §6.2), shared with the open family (`api`).
pub(crate) fn mkdir_common(call: &Call, user: &str, b: &Value, api: Api) -> Result<(Value, bool), Reply> {
    let drive = req_str(b, "drive_id")?;
    let parent = req_str(b, "parent_file_id")?;
    let name = req_str(b, "name")?;
    let mode = opt_str(b, "check_name_mode")?
        .unwrap_or_else(|| if api == Api::Open { "ignore" } else { "auto_rename" }.into());
    if !files::valid_mode(&mode, api) {
        return Err(invalid("check_name_mode"));
    }
    let mut st = call.inner.st();
    if !owns(&st, user, &drive) {
        return Err(files::no_drive(api));
    }
    st.check_folder(&drive, &parent).map_err(|e| tree_err(e, api))?;
    let (id, name, exist) = match files::resolve_name(&st, &drive, &parent, &name, &mode, true, api)? {
        NameOutcome::Use(n) => (st.insert_node(&drive, &parent, &n, true, None, None, call.now), n, false),
        NameOutcome::Existing(id) | NameOutcome::Replace(_, id) => {
            let n = st.nodes[&id].name.clone();
            (id, n, true)
        }
    };
    let v = json!({"parent_file_id": parent, "type": "folder", "file_id": id, "domain_id": DOMAIN_ID,
        "drive_id": drive, "file_name": name, "encrypt_mode": "none"});
    Ok((v, exist))
}

fn mkdir(call: &Call, auth: &Auth, b: &Value) -> Reply {
    match mkdir_common(call, &auth.user_id, b, Api::Consumer) {
        Ok((mut v, exist)) => {
            if exist {
                v["exist"] = json!(true);
            }
            Reply::json_status(201, &v)
        }
        Err(r) => r,
    }
}

fn update(call: &Call, auth: &Auth, b: &Value) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let (_, id) = target(call, auth, b)?;
        let name = opt_str(b, "name")?;
        let mode = files::rename_mode(b)?;
        let starred = opt_bool(b, "starred")?;
        let hidden = opt_bool(b, "hidden")?;
        let description = opt_str(b, "description")?;
        let mut st = call.inner.st();
        if let Some(name) = name {
            files::rename(&mut st, &id, &name, &mode, Api::Consumer, call.now)?;
        } else if st.nodes[&id].trashed {
            return Err(tree_err(TreeError::Trashed, Api::Consumer));
        }
        let n = st.nodes.get_mut(&id).expect("node");
        if let Some(s) = starred {
            n.starred = s;
        }
        if let Some(h) = hidden {
            n.hidden = h;
        }
        if let Some(d) = description {
            n.description = d;
        }
        let n = st.nodes[&id].clone();
        Ok(Reply::json(&file_json(call.inner, &st, &n, Api::Consumer, None, call.now)))
    };
    run().unwrap_or_else(|r| r)
}

fn to_drive_ok(b: &Value, drive: &str) -> Result<(), Reply> {
    match opt_str(b, "to_drive_id")? {
        Some(d) if !d.is_empty() && d != drive => {
            Err(err(400, "InvalidParameter.ToDriveId", "cross-drive operations use crossDriveMove/crossDriveCopy"))
        }
        _ => Ok(()),
    }
}

fn move_(call: &Call, auth: &Auth, b: &Value) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let (drive, id) = target(call, auth, b)?;
        to_drive_ok(b, &drive)?;
        let to = req_str(b, "to_parent_file_id")?;
        let new_name = opt_str(b, "new_name")?.filter(|n| !n.is_empty());
        let mode = match opt_str(b, "check_name_mode")? {
            Some(m) => m,
            None if opt_bool(b, "overwrite")? == Some(true) => "overwrite".into(),
            None if opt_bool(b, "auto_rename")? == Some(true) => "auto_rename".into(),
            None => "refuse".into(),
        };
        let mut st = call.inner.st();
        files::move_node(&mut st, &id, &to, new_name.as_deref(), &mode, Api::Consumer, call.now)?;
        Ok(Reply::json(&json!({"domain_id": DOMAIN_ID, "drive_id": drive, "file_id": id})))
    };
    run().unwrap_or_else(|r| r)
}

fn copy(call: &Call, auth: &Auth, b: &Value) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let (drive, id) = target(call, auth, b)?;
        to_drive_ok(b, &drive)?;
        let to = req_str(b, "to_parent_file_id")?;
        let new_name = opt_str(b, "new_name")?.filter(|n| !n.is_empty());
        let auto = opt_bool(b, "auto_rename")?.unwrap_or(false);
        let mut st = call.inner.st();
        let (name, new_id) = files::prepare_copy(&st, &id, &to, new_name.as_deref(), auto, Api::Consumer)?;
        if st.nodes[&id].is_dir {
            let op = TaskOp::Copy {
                src: id,
                new_id: new_id.clone(),
                to_drive: drive.clone(),
                to_parent: to,
                new_name: name,
            };
            let task = files::new_task(&mut st, op, call.opts.async_task_running_polls, call.now);
            return Ok(Reply::json_status(
                202,
                &json!({"domain_id": DOMAIN_ID, "drive_id": drive, "file_id": new_id, "async_task_id": task}),
            ));
        }
        st.copy_subtree(&id, &drive, &to, &name, new_id.clone(), call.now);
        Ok(Reply::json_status(201, &json!({"domain_id": DOMAIN_ID, "drive_id": drive, "file_id": new_id})))
    };
    run().unwrap_or_else(|r| r)
}

/// Trash (`permanent` false) or delete: 204 for a file, 202 + task for a folder (ref §6.5).
fn remove(call: &Call, auth: &Auth, b: &Value, permanent: bool) -> Reply {
    let (drive, id) = match target(call, auth, b) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut st = call.inner.st();
    let n = st.nodes[&id].clone();
    if !permanent && (n.trashed || !st.alive(&id)) {
        return tree_err(TreeError::Trashed, Api::Consumer);
    }
    let op = if permanent { TaskOp::Delete(id.clone()) } else { TaskOp::Trash(id.clone()) };
    if n.is_dir {
        let task = files::new_task(&mut st, op, call.opts.async_task_running_polls, call.now);
        return Reply::json_status(
            202,
            &json!({"domain_id": DOMAIN_ID, "drive_id": drive, "file_id": id, "async_task_id": task}),
        );
    }
    files::apply_op(&mut st, &op, call.now);
    Reply::empty(204)
}

fn restore(call: &Call, auth: &Auth, b: &Value) -> Reply {
    let (_, id) = match target(call, auth, b) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut st = call.inner.st();
    let n = st.nodes.get_mut(&id).expect("node");
    n.trashed = false;
    Reply::empty(204)
}

fn recyclebin_list(call: &Call, auth: &Auth, b: &Value) -> Reply {
    let drive = match owned_drive(call, auth, b) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let st = call.inner.st();
    let items: Vec<Value> = st
        .nodes
        .values()
        .filter(|n| n.drive_id == drive && n.trashed)
        .map(|n| {
            let mut v = file_json(call.inner, &st, n, Api::Consumer, None, call.now);
            v["trashed_at"] = json!(emukit::util::rfc3339_millis(n.trashed_ms));
            v
        })
        .collect();
    Reply::json(&json!({"items": items, "next_marker": ""}))
}

fn recyclebin_clear(call: &Call, auth: &Auth, b: &Value) -> Reply {
    let drive = match owned_drive(call, auth, b) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let mut st = call.inner.st();
    let task = files::new_task(&mut st, TaskOp::Clear(drive.clone()), call.opts.async_task_running_polls, call.now);
    Reply::json_status(202, &json!({"domain_id": DOMAIN_ID, "drive_id": drive, "async_task_id": task}))
}

fn task_get(call: &Call, b: &Value) -> Reply {
    let id = match req_str(b, "async_task_id") {
        Ok(i) => i,
        Err(r) => return r,
    };
    match files::poll_task(&mut call.inner.st(), &id, call.now) {
        Some(s) => Reply::json(&json!({"async_task_id": id, "state": s, "status": s, "total_process": 1,
            "consumed_process": if s == "Succeed" { 1 } else { 0 }})),
        None => err(404, "NotFound.AsyncTask", "The resource async_task cannot be found."),
    }
}

/// `/v3/batch` (ref §6.6): ≤ 100 sub-requests, per-item status, outer 200.
fn batch(call: &Call, auth: &Auth, b: &Value) -> Reply {
    let Some(reqs) = b.get("requests").and_then(Value::as_array) else { return missing("requests") };
    if reqs.is_empty() || reqs.len() > 100 {
        return err(
            400,
            "InvalidParameter.Requests",
            "The input parameter requests is not valid. requests count should be 1 to 100",
        );
    }
    let mut out = Vec::new();
    for r in reqs {
        let id = r.get("id").cloned().unwrap_or(json!(""));
        let url = r.get("url").and_then(Value::as_str).unwrap_or("");
        let body = r.get("body").cloned().unwrap_or(json!({}));
        if !body.is_object() {
            out.push(
                json!({"id": id, "status": 400, "body": {"code": "BadRequest", "message": "body must be an object"}}),
            );
            continue;
        }
        let reply = match url {
            "/file/move" => move_(call, auth, &body),
            "/file/copy" => copy(call, auth, &body),
            "/file/get" => get(call, auth, &body),
            "/file/get_download_url" => download_url(call, auth, &body),
            "/file/update" => update(call, auth, &body),
            "/file/delete" => remove(call, auth, &body, true),
            "/recyclebin/trash" => remove(call, auth, &body, false),
            "/recyclebin/restore" => restore(call, auth, &body),
            _ => err(404, "NotFound", &format!("Not Found: {url}")),
        };
        let mut item = json!({"id": id, "status": reply.status});
        let bytes = reply.body.to_bytes();
        if !bytes.is_empty() {
            item["body"] = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        }
        out.push(item);
    }
    Reply::json(&json!({"responses": out}))
}
