//! Request dispatch by host, error envelopes (ref §1.3), JSON field access, authentication of
//! both families, the device-signature check (§3.6), rate limits (§10) and file objects (§4.2).

use emukit::{Reply, Request};
use serde_json::{json, Map, Value};

use crate::state::{Api, Node, State, TokenKind, DOMAIN_ID};
use crate::{crypto, data, AliFault, Inner, Options, SignatureMode};

/// Everything a handler needs about one call.
pub(crate) struct Call<'a> {
    pub inner: &'a Inner,
    pub req: &'a Request,
    pub body: Value,
    pub now: i64,
    pub opts: Options,
    pub custom: Option<AliFault>,
}

impl Call<'_> {
    pub fn header(&self, name: &str) -> Option<String> {
        self.req.header(name).filter(|v| !v.is_empty())
    }
}

pub(crate) fn handle(inner: &Inner, req: Request, custom: Option<AliFault>) -> Reply {
    let host = req.host.clone();
    let now = inner.now();
    let opts = inner.opts();
    let mut call = Call { inner, req: &req, body: Value::Null, now, opts, custom };
    let reply = route(&host, &mut call);
    let mut st = inner.st();
    if st.tokens_dirty {
        st.clock_offset_ms = inner.clock.offset_ms();
        let _ = st.save();
    }
    reply
}

fn route(host: &str, call: &mut Call) -> Reply {
    if crate::API_HOSTS.contains(&host) || host == crate::USER_HOST {
        return with_json(call, crate::consumer::route);
    }
    if crate::AUTH_HOSTS.contains(&host) {
        if call.req.path == "/v2/oauth/authorize" && call.req.method == "GET" {
            // aligo's pre-step (ref §2.6): a SESSIONID cookie, nothing else.
            return Reply::html(200, "<html><body>login</body></html>")
                .header("set-cookie", format!("SESSIONID={}; Path=/; HttpOnly", emukit::util::rand_hex(32)));
        }
        return with_json(call, |c| match c.req.path.as_str() {
            "/v2/account/token" => crate::auth::consumer_token(c),
            _ => not_found(c),
        });
    }
    if crate::OPEN_HOSTS.contains(&host) {
        return crate::open::route(call);
    }
    if crate::PASSPORT_HOSTS.contains(&host) {
        return crate::auth::passport(call);
    }
    if host == crate::DATA_HOST || host == crate::INTERNAL_DATA_HOST {
        return data::route(call);
    }
    crate::auth::broker(call)
}

/// Parse the JSON body (POST only) and run `f`.
fn with_json(call: &mut Call, f: impl FnOnce(&mut Call) -> Reply) -> Reply {
    if call.req.method != "POST" {
        return err(405, "MethodNotAllowed", "the method is not allowed");
    }
    match parse_body(call.req) {
        Ok(v) => call.body = v,
        Err(r) => return r,
    }
    f(call)
}

/// A JSON object body; an empty body is `{}`. A body that is not JSON, or JSON sent without a
/// JSON content type, is refused.
pub(crate) fn parse_body(req: &Request) -> Result<Value, Reply> {
    let v = req.json().map_err(|_| err(400, "BadRequest", "request body is not valid JSON"))?;
    let v = if v.is_null() { json!({}) } else { v };
    if !v.is_object() {
        return Err(err(400, "BadRequest", "request body must be a JSON object"));
    }
    if !req.body.is_empty() {
        let ct = req.header("content-type").unwrap_or_default().to_ascii_lowercase();
        if !ct.starts_with("application/json") {
            return Err(err(400, "BadRequest", "Content-Type must be application/json"));
        }
    }
    Ok(v)
}

// ---------------------------------------------------------------------- envelopes

/// `{"code","message","requestId"}` (ref §1.3).
pub(crate) fn err(status: u16, code: &str, message: &str) -> Reply {
    Reply::json_status(status, &json!({"code": code, "message": message, "requestId": crate::state::new_request_id()}))
}

/// Spring-style 404 of the open host for unknown routes (ref §1.3).
pub(crate) fn spring_404(call: &Call) -> Reply {
    Reply::json_status(
        404,
        &json!({"timestamp": emukit::util::rfc3339_millis(call.now), "status": 404, "error": "Not Found",
            "path": call.req.path}),
    )
}

pub(crate) fn not_found(call: &Call) -> Reply {
    err(404, "NotFound", &format!("Not Found: {}", call.req.path))
}

/// `drive_id` → `DriveId` (the suffix of `InvalidParameter.*` codes, e.g. `RefreshToken`).
pub(crate) fn camel(field: &str) -> String {
    field
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

pub(crate) fn invalid(field: &str) -> Reply {
    err(400, &format!("InvalidParameter.{}", camel(field)), &format!("The input parameter {field} is not valid."))
}

pub(crate) fn missing(field: &str) -> Reply {
    err(
        400,
        &format!("InvalidParameterMissing.{}", camel(field)),
        &format!("The input parameter {field} is not valid. {field} is required"),
    )
}

// ---------------------------------------------------------------------- fields

pub(crate) fn opt_str(body: &Value, field: &str) -> Result<Option<String>, Reply> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(field)),
    }
}

/// A required, non-empty string.
pub(crate) fn req_str(body: &Value, field: &str) -> Result<String, Reply> {
    match opt_str(body, field)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(missing(field)),
    }
}

/// A non-negative JSON integer (strings are refused).
pub(crate) fn opt_u64(body: &Value, field: &str) -> Result<Option<u64>, Reply> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| invalid(field)),
    }
}

pub(crate) fn opt_bool(body: &Value, field: &str) -> Result<Option<bool>, Reply> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid(field)),
    }
}

// ---------------------------------------------------------------------- authentication

#[derive(Clone, Debug)]
pub(crate) struct Auth {
    pub token: String,
    pub user_id: String,
    pub kind: TokenKind,
    pub app: Option<String>,
}

/// Consumer `Authorization`: `Bearer <t>`, `Bearer\t<t>` or the bare token (ref §1.2, §12.1).
pub(crate) fn consumer_token(req: &Request) -> Option<String> {
    let h = req.header("authorization")?;
    let h = h.trim();
    let t = if h.len() > 7
        && h[..6].eq_ignore_ascii_case("bearer")
        && (h.as_bytes()[6] == b' ' || h.as_bytes()[6] == b'\t')
    {
        h[7..].trim()
    } else {
        h
    };
    (!t.is_empty()).then(|| t.to_string())
}

/// Authenticate a consumer call (web/mobile tokens only): 401 `AccessTokenInvalid` otherwise.
pub(crate) fn consumer_auth(call: &Call) -> Result<Auth, Reply> {
    let invalid = || err(401, "AccessTokenInvalid", "not login");
    let token = consumer_token(call.req).ok_or_else(invalid)?;
    let mut st = call.inner.st();
    if matches!(call.custom, Some(AliFault::ExpireAccessToken)) {
        if let Some(a) = st.access.get_mut(&token) {
            a.expires_ms = a.expires_ms.min(call.now);
        }
    }
    let a = st.access.get(&token).ok_or_else(invalid)?;
    if a.revoked || a.expires_ms <= call.now || a.kind == TokenKind::Open {
        return Err(invalid());
    }
    Ok(Auth { token, user_id: a.user_id.clone(), kind: a.kind, app: None })
}

/// Open-platform `Authorization: Bearer <t>` (ref §1.2, §2.3).
pub(crate) fn open_auth(call: &Call) -> Result<Auth, Reply> {
    let invalid = || err(401, "AccessTokenInvalid", "AccessToken is invalid. ErrValidateTokenFailed");
    let h = call.header("authorization").ok_or_else(invalid)?;
    let token = h.strip_prefix("Bearer ").map(str::trim).filter(|t| !t.is_empty()).ok_or_else(invalid)?.to_string();
    let mut st = call.inner.st();
    if matches!(call.custom, Some(AliFault::ExpireAccessToken)) {
        if let Some(a) = st.access.get_mut(&token) {
            a.expires_ms = a.expires_ms.min(call.now);
        }
    }
    let a = st.access.get(&token).ok_or_else(invalid)?;
    if a.revoked || a.kind != TokenKind::Open {
        return Err(invalid());
    }
    if a.expires_ms <= call.now {
        return Err(err(401, "AccessTokenExpired", "AccessToken is expired. ErrValidateTokenFailed"));
    }
    Ok(Auth { token, user_id: a.user_id.clone(), kind: a.kind, app: a.app.clone() })
}

/// Does §3.6 (strict list) protect this consumer path?
pub(crate) fn signed_path(path: &str) -> bool {
    path.starts_with("/adrive/")
        || path.starts_with("/v2/file/")
        || path.starts_with("/v2/recyclebin/")
        || path.starts_with("/v3/")
        || path == "/v2/batch"
}

pub(crate) fn session_key(user: &str, device: &str) -> String {
    format!("{user}|{device}")
}

/// The device-session check of ref §3.6 for an authenticated consumer call.
pub(crate) fn check_device(call: &Call, auth: &Auth) -> Result<(), Reply> {
    if call.opts.signature == SignatureMode::Off {
        return Ok(());
    }
    let bad = |m: &str| err(400, "DeviceSessionSignatureInvalid", m);
    let device = call.header("x-device-id").unwrap_or_default();
    let key = session_key(&auth.user_id, &device);
    let mut st = call.inner.st();
    match call.custom {
        Some(AliFault::SignatureInvalid) => {
            st.sessions.remove(&key);
            return Err(bad("The signature is invalid"));
        }
        Some(AliFault::DeviceOffline) => {
            if let Some(s) = st.sessions.get_mut(&key) {
                s.kicked = true;
            }
            return Err(err(401, "UserDeviceOffline", "user device is offline"));
        }
        _ => {}
    }
    let sig = call.header("x-signature").unwrap_or_default();
    if device.is_empty() || sig.is_empty() {
        return Err(bad("The signature is invalid"));
    }
    let Some(s) = st.sessions.get(&key) else { return Err(bad("not found device info")) };
    if s.kicked {
        return Err(err(401, "UserDeviceOffline", "user device is offline"));
    }
    if call.opts.signature == SignatureMode::Lenient {
        return Ok(());
    }
    let Some(pk) = crypto::parse_pubkey(&s.pubkey_hex, false) else { return Err(bad("The signature is invalid")) };
    let ok = call.opts.app_ids.iter().any(|app| {
        let msg = format!("{app}:{device}:{}:0", auth.user_id);
        crypto::verify_signature(&pk, &msg, &sig, false).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(bad("The signature is invalid"))
    }
}

/// 429 `TooManyRequests` (ref §10), `x-retry-after` in ms when given.
pub(crate) fn too_many(retry_after_ms: Option<u64>) -> Reply {
    let r = err(429, "TooManyRequests", "Too Many Requests");
    match retry_after_ms {
        Some(ms) => r.header("x-retry-after", ms.to_string()),
        None => r,
    }
}

/// `ParamFlowException` (ref §8.5).
pub(crate) fn param_flow(call: &Call) -> Reply {
    Reply::json_status(
        call.opts.param_flow_status,
        &json!({"code": "ParamFlowException", "message": call.req.peer.ip().to_string(),
            "requestId": crate::state::new_request_id(), "resultCode": "ParamFlowException"}),
    )
}

/// Map a tree error to the consumer/open error answer.
pub(crate) fn tree_err(e: crate::state::TreeError, api: Api) -> Reply {
    use crate::state::TreeError::*;
    match e {
        NotFound | ParentNotFound => match api {
            Api::Consumer => err(404, "NotFound.File", "The resource file cannot be found. file not exist"),
            Api::Open => err(404, "NotFound.FileId", "The resource file_id cannot be found."),
        },
        NotAFolder => err(400, "InvalidResource.FileTypeFile", "The resource file type is not folder."),
        Exists(_) => err(409, "AlreadyExist.File", "The resource file has already exists. file with same name exists"),
        Trashed => err(400, "ForbiddenFileInTheRecycleBin", "The file is in the recycle bin."),
        BadName => invalid("name"),
        IntoItself => err(400, "InvalidParameter.ToParentFileId", "cannot move a folder into itself"),
    }
}

// ---------------------------------------------------------------------- file objects

pub(crate) fn extension(name: &str) -> String {
    match name.rfind('.') {
        Some(i) if i > 0 && i + 1 < name.len() => name[i + 1..].to_ascii_lowercase(),
        _ => String::new(),
    }
}

/// `category` and MIME type by extension (ref §1.4).
pub(crate) fn category_mime(name: &str) -> (&'static str, &'static str) {
    match extension(name).as_str() {
        "mp4" => ("video", "video/mp4"),
        "mkv" => ("video", "video/x-matroska"),
        "avi" | "mov" | "wmv" | "flv" | "ts" | "webm" | "rmvb" | "m2ts" => ("video", "video/octet-stream"),
        "mp3" => ("audio", "audio/mpeg"),
        "flac" | "wav" | "aac" | "ogg" | "m4a" | "ape" => ("audio", "audio/octet-stream"),
        "jpg" | "jpeg" => ("image", "image/jpeg"),
        "png" => ("image", "image/png"),
        "gif" | "bmp" | "webp" | "heic" => ("image", "image/octet-stream"),
        "txt" | "md" => ("doc", "text/plain"),
        "pdf" => ("doc", "application/pdf"),
        "doc" | "docx" | "xls" | "xlsx" | "ppt" | "pptx" | "csv" => ("doc", "application/octet-stream"),
        "zip" => ("zip", "application/zip"),
        "rar" | "7z" | "tar" | "gz" => ("zip", "application/octet-stream"),
        "apk" | "exe" | "dmg" | "ipa" => ("app", "application/octet-stream"),
        _ => ("others", "application/octet-stream"),
    }
}

/// How file objects carry URLs.
pub(crate) struct UrlCtx<'a> {
    pub user_id: &'a str,
    pub referer_bound: bool,
    pub expire_sec: u64,
}

/// A file object: consumer shape (ref §4.2 table) or open shape (ref §4.2 "Open file object").
pub(crate) fn file_json(inner: &Inner, st: &State, n: &Node, api: Api, urls: Option<&UrlCtx>, now: i64) -> Value {
    let mut m = Map::new();
    m.insert("drive_id".into(), json!(n.drive_id));
    m.insert("domain_id".into(), json!(DOMAIN_ID));
    m.insert("file_id".into(), json!(n.file_id));
    m.insert("parent_file_id".into(), json!(n.parent));
    m.insert("name".into(), json!(n.name));
    m.insert("type".into(), json!(if n.is_dir { "folder" } else { "file" }));
    m.insert("created_at".into(), json!(emukit::util::rfc3339_millis(n.created_ms)));
    m.insert("updated_at".into(), json!(emukit::util::rfc3339_millis(n.updated_ms)));
    m.insert("hidden".into(), json!(n.hidden));
    m.insert("starred".into(), json!(n.starred));
    m.insert("status".into(), json!("available"));
    m.insert("punish_flag".into(), json!(0));
    if api == Api::Consumer {
        m.insert("trashed".into(), json!(n.trashed));
        m.insert("encrypt_mode".into(), json!("none"));
        m.insert("revision_id".into(), json!(n.revision_id));
        m.insert("user_meta".into(), json!(""));
        m.insert("labels".into(), json!([]));
        m.insert("sync_flag".into(), json!(false));
    }
    if !n.is_dir {
        let (cat, mime) = category_mime(&n.name);
        m.insert("size".into(), json!(n.size));
        m.insert("file_extension".into(), json!(extension(&n.name)));
        m.insert("mime_type".into(), json!(mime));
        m.insert("content_type".into(), json!(mime));
        m.insert("category".into(), json!(cat));
        m.insert("content_hash".into(), json!(n.sha1));
        m.insert("content_hash_name".into(), json!("sha1"));
        if api == Api::Consumer {
            m.insert("mime_extension".into(), json!(extension(&n.name)));
            m.insert("crc64_hash".into(), json!(n.crc64.to_string()));
        }
        if let Some(u) = urls {
            let direct = data::download_url(inner, st, n, u, now, false, crate::DATA_HOST).0;
            let preview = data::download_url(inner, st, n, u, now, true, crate::DATA_HOST).0;
            let media = cat == "image" || cat == "video";
            if media {
                m.insert("thumbnail".into(), json!(preview.clone()));
            }
            match api {
                Api::Consumer => {
                    // `url` is the resized preview for images, the file itself otherwise (ref §4.2).
                    m.insert("url".into(), json!(if cat == "image" { preview } else { direct.clone() }));
                    m.insert("download_url".into(), json!(direct));
                }
                Api::Open => {
                    // `url`: a preview for images, a download URL only for files < 5 MB (ref §4.2).
                    if cat == "image" {
                        m.insert("url".into(), json!(preview));
                    } else if n.size < 5 * 1000 * 1000 {
                        m.insert("url".into(), json!(direct));
                    }
                }
            }
        }
    }
    Value::Object(m)
}
