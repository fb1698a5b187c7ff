//! 115 web API: wire types, the envelope quirks (reference §0.4), error codes (§9) and
//! the calls the driver makes. Every response is read as loose JSON and decoded field by
//! field, because the same field arrives as a number or a numeric string depending on
//! the endpoint and the day.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::cookie::{Cookie, SavedLogin};
use super::crypto::m115;
use crate::drivers::http::{self, Http, Response, Verdict};
use crate::vfs::credentials::Credentials;
use crate::vfs::*;

/// Hosts the driver calls (every one can be overridden in `endpoints`).
pub mod hosts {
    pub const WEBAPI: &str = "webapi.115.com";
    pub const PROAPI: &str = "proapi.115.com";
    pub const APS: &str = "aps.115.com";
    pub const MY: &str = "my.115.com";
    pub const PASSPORTAPI: &str = "passportapi.115.com";
    pub const QRCODEAPI: &str = "qrcodeapi.115.com";
    pub const UPLB: &str = "uplb.115.com";
    pub const LIXIAN: &str = "lixian.115.com";
    pub const APPVERSION: &str = "appversion.115.com";
    /// Aliyun OSS region endpoint; buckets live at `<bucket>.<OSS>`.
    pub const OSS: &str = "oss-cn-shenzhen.aliyuncs.com";
    /// Every host, for documentation and validation messages.
    pub const ALL: &[&str] = &[
        WEBAPI,
        PROAPI,
        APS,
        MY,
        PASSPORTAPI,
        QRCODEAPI,
        UPLB,
        LIXIAN,
        APPVERSION,
        OSS,
        "fhnfile.oss-cn-shenzhen.aliyuncs.com",
    ];
}

/// Fallback client version (OpenList's) when `appversion.115.com` cannot be asked.
pub const DEFAULT_APP_VER: &str = "35.6.0.3";

/// `Mozilla/5.0 115Browser/{ver}`: the API User-Agent of OpenList/alist.
pub fn browser_ua(ver: &str) -> String {
    format!("Mozilla/5.0 115Browser/{ver}")
}

/// p115client's UA for upload-init and offline-add.
pub fn disk_ua(ver: &str) -> String {
    format!("Mozilla/5.0 115disk/{ver} 115Browser/{ver} 115wangpan_android/{ver}")
}

// ---------------------------------------------------------------------------------
// Loose JSON

/// A member that is present and not null.
pub fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

/// A string, or a number written as a string (ids: never through f64).
pub fn jstr(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Some(u.to_string())
            } else if let Some(i) = n.as_i64() {
                Some(i.to_string())
            } else {
                n.as_f64().map(|f| if f.fract() == 0.0 { format!("{f:.0}") } else { f.to_string() })
            }
        }
        _ => None,
    }
}

/// A number, or a numeric string (`"12"`, `" 12 "`, `"12.0"`).
pub fn jnum(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => {
            n.as_i64().or_else(|| n.as_u64().map(|u| u as i64)).or_else(|| n.as_f64().map(|f| f as i64))
        }
        Value::String(s) => {
            let t = s.trim();
            t.parse::<i64>().ok().or_else(|| t.parse::<f64>().ok().filter(|f| f.is_finite()).map(|f| f as i64))
        }
        Value::Bool(b) => Some(*b as i64),
        _ => None,
    }
}

pub fn fstr(v: &Value, key: &str) -> Option<String> {
    get(v, key).and_then(jstr)
}

pub fn fnum(v: &Value, key: &str) -> Option<i64> {
    get(v, key).and_then(jnum)
}

/// An id member as a string (`0` and `"0"` alike), `None` when absent or empty.
pub fn fid(v: &Value, key: &str) -> Option<String> {
    fstr(v, key).filter(|s| !s.is_empty())
}

/// A failed 115 envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: i64,
    pub msg: String,
}

const CODE_FIELDS: &[&str] = &["errno", "errNo", "errcode", "errCode", "code", "msg_code"];
const MSG_FIELDS: &[&str] = &["error", "msg", "message", "error_msg", "errtype"];

/// The error code of a body: the first of the known fields holding a non-zero number.
pub fn error_code(v: &Value) -> Option<i64> {
    CODE_FIELDS.iter().filter_map(|k| fnum(v, k)).find(|c| *c != 0)
}

/// The error message of a body: the first non-empty message field.
pub fn error_msg(v: &Value) -> String {
    MSG_FIELDS
        .iter()
        .filter_map(|k| get(v, k).and_then(Value::as_str))
        .find(|s| !s.trim().is_empty())
        .unwrap_or("")
        .to_string()
}

/// `state` as a bool: JSON bool, or int (1 OK, 0 error), or a string of either.
pub fn state_of(v: &Value) -> Option<bool> {
    match get(v, "state")? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        Value::String(s) => match s.trim() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// `None` when the envelope says success.
pub fn envelope_error(v: &Value) -> Option<ApiError> {
    match state_of(v) {
        Some(true) => None,
        Some(false) => Some(ApiError { code: error_code(v).unwrap_or(0), msg: error_msg(v) }),
        // No state (flat bodies such as category/get): an error code alone decides.
        None => error_code(v).map(|code| ApiError { code, msg: error_msg(v) }),
    }
}

/// Codes that mean the cookie is dead (§1.4) or the account must act first.
pub fn is_auth_code(code: i64) -> bool {
    matches!(code, 99 | 990001 | 40101032 | 40101035 | 40101037 | 911)
}

/// Codes worth retrying after a pause: "too frequent", "previous operation still running".
pub fn is_busy_code(code: i64) -> bool {
    matches!(code, 590075 | 990009 | 990019)
}

/// "更新的数据为空" (nothing to update): a rename to the current name, which p115client
/// counts as success. 115 says it in words only, so the words are read here, on the
/// envelope, and nowhere else.
pub fn is_unchanged(e: &ApiError) -> bool {
    e.msg.contains("更新的数据为空")
}

/// Map a failed envelope to the driver error a WebDAV client should see.
pub fn map_api_error(e: &ApiError, what: &str) -> DriveError {
    let msg = if e.msg.is_empty() { String::new() } else { format!(": {}", e.msg) };
    match e.code {
        20004 | 21003 => DriveError::Exists,
        20001 | 20002 | 20003 | 20020 | 20021 => {
            DriveError::InvalidInput(format!("115 refused the name (errno {}){msg}", e.code))
        }
        20009 | 20013 | 20018 | 31001 | 31003 | 50003 | 50015 | 70005 | 70008 | 90008 | 231011 | 430004 | 800001
        | 980006 | 10014 => DriveError::NotFound,
        91002 | 800006 => DriveError::Forbidden(format!("cannot put a folder inside itself (errno {}){msg}", e.code)),
        91005 => DriveError::NoSpace,
        2 | 91004 | 990023 => DriveError::Forbidden(format!("115 limit reached (errno {}){msg}", e.code)),
        50028 => DriveError::Forbidden(format!("file too large for the download API{msg}")),
        50038 => DriveError::Forbidden(format!("download blocked by 115{msg}")),
        590075 | 990005 | 990009 | 990019 => DriveError::RateLimited { retry_after: Some(Duration::from_secs(10)) },
        c if is_auth_code(c) => DriveError::AuthLost(format!("115 {what}: errno {c}{msg}")),
        0 => DriveError::provider(ProviderCode::Num(0), format!("115 {what} failed{msg}")),
        c => DriveError::provider(ProviderCode::Num(c), format!("115 {what}: errno {c}{msg}")),
    }
}

/// Parse a body as JSON; an HTML page (throttle, WAF, login page) or garbage is an error.
pub fn parse_json(r: &Response, what: &str) -> DriveResult<Value> {
    match serde_json::from_slice::<Value>(&r.body) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) | Err(_) => {
            let text = r.text();
            if r.is_html() || text.trim_start().starts_with('<') {
                if text.contains("阻断") || r.status == 405 || r.status == 429 {
                    return Err(DriveError::RateLimited { retry_after: Some(Duration::from_secs(300)) });
                }
                return Err(DriveError::upstream(format!(
                    "115 {what}: HTTP {} with an HTML page instead of JSON",
                    r.status
                )));
            }
            let head: String = http::redact(&text).chars().take(120).collect();
            Err(DriveError::upstream(format!("115 {what}: HTTP {}: unexpected body {head:?}", r.status)))
        }
    }
}

/// The usual classification plus 115's "too frequent / still running" errnos.
pub fn classify(r: &Response, idempotent: bool) -> Verdict {
    match http::default_verdict(r, idempotent) {
        Verdict::Done => {}
        other => return other,
    }
    if r.body.len() < 4096 {
        if let Ok(v) = serde_json::from_slice::<Value>(&r.body) {
            if let Some(e) = envelope_error(&v) {
                if e.code == 590075 {
                    return Verdict::Throttled { why: format!("errno 590075 {}", e.msg), after: None };
                }
                if is_busy_code(e.code) {
                    return Verdict::Retry(format!("errno {} {}", e.code, e.msg));
                }
            }
        }
    }
    Verdict::Done
}

// ---------------------------------------------------------------------------------
// Entries

/// `YYYY-MM-DD HH:MM[:SS]` in Asia/Shanghai (UTC+8, no DST) → Unix seconds.
pub fn parse_cst(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = s.split_once(' ')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|x| x.parse::<i64>().ok());
    let (hh, mm) = (t.next()??, t.next()??);
    let ss = t.next().flatten().unwrap_or(0);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    Some(days_from_civil(y, m, day) * 86400 + hh * 3600 + mm * 60 + ss - 8 * 3600)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

pub fn unix(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH
    }
}

/// A time member: Unix seconds (number or string), or the `YYYY-MM-DD HH:MM` form.
pub fn ftime(v: &Value, key: &str) -> Option<SystemTime> {
    let x = get(v, key)?;
    if let Some(n) = jnum(x).filter(|n| *n > 0) {
        // Milliseconds sneak in on some endpoints.
        return Some(unix(if n > 100_000_000_000 { n / 1000 } else { n }));
    }
    x.as_str().and_then(parse_cst).map(unix)
}

/// Folder or file, in p115client's order of tests (§2.1).
pub fn item_is_dir(v: &Value) -> bool {
    if let Some(fc) = fnum(v, "fc") {
        return fc == 0;
    }
    if let Some(sha) = get(v, "sha") {
        return jstr(sha).map(|s| s.is_empty()).unwrap_or(true);
    }
    fid(v, "fid").is_none()
}

/// An entry from a listing item of `/files`, `get_info` or `share/snap`.
pub fn entry_from_item(v: &Value) -> Option<Entry> {
    let is_dir = item_is_dir(v);
    let id = if is_dir { fid(v, "cid")? } else { fid(v, "fid")? };
    let name = fstr(v, "n").or_else(|| fstr(v, "file_name"))?;
    let size = if is_dir { 0 } else { fnum(v, "s").or_else(|| fnum(v, "file_size")).unwrap_or(0).max(0) as u64 };
    let modified = ftime(v, "te").or_else(|| ftime(v, "t")).or_else(|| ftime(v, "tp")).unwrap_or(UNIX_EPOCH);
    let created = ftime(v, "tp");
    let sha1 = if is_dir {
        None
    } else {
        fstr(v, "sha").or_else(|| fstr(v, "sha1")).filter(|s| s.len() == 40).map(|s| s.to_ascii_lowercase())
    };
    let pc = fstr(v, "pc").or_else(|| fstr(v, "pick_code")).filter(|s| !s.is_empty());
    let e = Entry::new(id, name, is_dir, size, modified).with_created(created);
    Some(e.with_hashes(Hashes { sha1, md5: None }).with_extra(pc))
}

/// The parent id of a listing item (files: `cid`; folders: `pid`).
pub fn item_parent(v: &Value) -> Option<String> {
    if item_is_dir(v) {
        fstr(v, "pid")
    } else {
        fstr(v, "cid")
    }
}

// ---------------------------------------------------------------------------------
// Download links

/// The `f` query parameter of a signed URL: empty = no requirement, 1 = same UA,
/// 3 = same UA and the downurl cookie (§3.5).
fn url_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let q = url.split_once('?')?.1;
    let q = q.split('#').next().unwrap_or(q);
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

/// Cookies set by a downurl answer; 115driver hands all of them on with the link.
pub fn download_cookies(r: &Response) -> Vec<(String, String)> {
    r.set_cookies()
}

/// A [`Link`] for `url`: the User-Agent it is bound to (omitted when empty, §3.5), and the
/// downurl cookie when the URL says it needs one (`f` = 3), or when it does not say
/// (`f` absent) but a cookie was set. Expiry from `t`, capped well under an hour.
pub fn make_link(url: String, ua: &str, cookies: &[(String, String)]) -> Link {
    let mut headers = vec![];
    if !ua.is_empty() {
        headers.push(("User-Agent".to_string(), ua.to_string()));
    }
    let f = url_param(&url, "f");
    let needs_cookie = match f.map(|f| f.trim()) {
        Some("") => false,
        Some(x) => x.parse::<u32>().map(|n| n & 2 != 0).unwrap_or(true),
        None => true,
    };
    if needs_cookie && !cookies.is_empty() {
        let c: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        headers.push(("Cookie".to_string(), c.join("; ")));
    }
    let now = SystemTime::now();
    let cap = now + LINK_MAX_AGE;
    let t = url_param(&url, "t").and_then(|t| t.parse::<i64>().ok()).map(unix);
    let expires_at = Some(match t {
        Some(t) if t > now => t.min(cap),
        _ => cap,
    });
    Link { url, headers, expires_at }
}

/// 115 links are short-lived (§3.5): keep one for at most this long.
pub const LINK_MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// Pick the file's record out of a decoded downurl answer (keyed by file id): the one
/// whose `pick_code` matches, else the only/first one. Returns its URL.
pub fn downurl_pick(plain: &Value, pc: &str) -> DriveResult<String> {
    let obj = plain.as_object().ok_or_else(|| DriveError::upstream("115 downurl: answer is not an object"))?;
    let rec = obj
        .values()
        .find(|r| fstr(r, "pick_code").is_some_and(|p| p.eq_ignore_ascii_case(pc)))
        .or_else(|| obj.values().next())
        .ok_or(DriveError::NotFound)?;
    if fnum(rec, "file_size").is_some_and(|s| s < 0) {
        return Err(DriveError::upstream("115 downurl: can not get download URL"));
    }
    match get(rec, "url") {
        Some(u @ Value::Object(_)) => fstr(u, "url").filter(|s| !s.is_empty()).ok_or(DriveError::NotFound),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(DriveError::IsADirectory),
    }
}

// ---------------------------------------------------------------------------------
// The client

/// The cookie in force.
pub struct Creds {
    pub cookie: Cookie,
    /// `Cookie:` header value.
    pub header: String,
}

/// Configuration of an [`Api`].
pub struct ApiConfig {
    pub http: Http,
    pub rsa: m115::RsaPublic,
    /// The saved login (from `pandav login 115`) or the configured cookie, with the
    /// dead-login latch.
    pub login: Credentials<SavedLogin>,
    pub mount_path: String,
    pub app_version: Option<String>,
}

/// A 115 web API client with one account's cookie.
pub struct Api {
    pub http: Http,
    pub rsa: m115::RsaPublic,
    pub login: Credentials<SavedLogin>,
    mount_path: String,
    /// The parsed cookie of login generation `.0`.
    creds: RwLock<Option<(u64, Arc<Creds>)>>,
    pinned_ver: Option<String>,
    app_ver: RwLock<Option<String>>,
}

/// One `/files` answer.
pub enum Page {
    Items(Value),
    /// errNo 20130827, with the order the server will accept.
    OrderRejected {
        order: String,
        asc: bool,
    },
}

/// Form of a call.
pub enum Body {
    None,
    Form(String),
}

impl Api {
    pub fn new(cfg: ApiConfig) -> Api {
        Api {
            http: cfg.http,
            rsa: cfg.rsa,
            login: cfg.login,
            mount_path: cfg.mount_path,
            creds: RwLock::new(None),
            pinned_ver: cfg.app_version,
            app_ver: RwLock::new(None),
        }
    }

    pub fn login_hint(&self) -> String {
        format!("run `pandav login 115 --config <your config> --mount {}`", self.mount_path)
    }

    fn expired_msg(&self) -> String {
        format!("115 cookie expired: {}", self.login_hint())
    }

    /// The cookie of the login in force (saved by `pandav login` when it descends from
    /// the configured cookie, else the configured one); `None` when there is none.
    fn load_creds(&self) -> DriveResult<Option<Arc<Creds>>> {
        let (saved, gen) = self.login.get();
        if let Some((g, c)) = self.creds.read().unwrap().as_ref() {
            if *g == gen {
                return Ok(Some(Arc::clone(c)));
            }
        }
        if saved.cookie.trim().is_empty() {
            return Ok(None);
        }
        let cookie = Cookie::parse(&saved.cookie).map_err(|e| DriveError::AuthLost(format!("115 cookie: {e}")))?;
        let c = Arc::new(Creds { header: cookie.header(), cookie });
        *self.creds.write().unwrap() = Some((gen, Arc::clone(&c)));
        Ok(Some(c))
    }

    /// The cookie to use, or the remembered reason why there is none. A lost login is
    /// tried again only when the state file holds another one (a new `pandav login`).
    pub fn creds(&self) -> DriveResult<Arc<Creds>> {
        if let Some(m) = self.login.latched() {
            return Err(DriveError::AuthLost(m));
        }
        match self.load_creds() {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(self.give_up(format!("no 115 cookie: set options.cookie or {}", self.login_hint()))),
            Err(DriveError::AuthLost(m)) => Err(self.give_up(format!("{m}; {}", self.login_hint()))),
            Err(e) => Err(e),
        }
    }

    /// The cookie if there is a usable one, without giving up when there is none (for
    /// calls where a login is optional, like share browsing).
    pub fn try_creds(&self) -> Option<Arc<Creds>> {
        if self.login.latched().is_some() {
            return None;
        }
        self.load_creds().ok().flatten()
    }

    /// Remember that the login is lost (no more calls until the state file changes).
    pub fn give_up(&self, msg: String) -> DriveError {
        self.login.lose(msg)
    }

    pub fn is_lost(&self) -> bool {
        self.login.is_latched()
    }

    /// The client version for User-Agents and upload tokens: pinned, else asked once
    /// from `appversion.115.com`, else [`DEFAULT_APP_VER`].
    pub async fn app_ver(&self) -> String {
        if let Some(v) = &self.pinned_ver {
            return v.clone();
        }
        if let Some(v) = self.app_ver.read().unwrap().clone() {
            return v;
        }
        let url = self.http.endpoints.url(hosts::APPVERSION, "/1/web/1.0/api/chrome");
        let got = async {
            // Best effort, one try, paced like every call.
            let call = http::Call { attempts: Some(1), ..http::Call::new("app version", true) };
            let r = self
                .http
                .call(call, &http::NoSession, |c, _| c.get(&url).timeout(Duration::from_secs(10)), |_| Verdict::Done)
                .await
                .ok()?;
            let v: Value = serde_json::from_slice(&r.body).ok()?;
            let ver = get(&v, "data").and_then(|d| get(d, "win")).and_then(|w| fstr(w, "version_code"))?;
            (!ver.trim().is_empty()).then(|| ver.trim().to_string())
        }
        .await;
        let ver = got.unwrap_or_else(|| {
            tracing::debug!("appversion.115.com not reachable; using client version {DEFAULT_APP_VER}");
            DEFAULT_APP_VER.to_string()
        });
        *self.app_ver.write().unwrap() = Some(ver.clone());
        ver
    }

    #[allow(clippy::too_many_arguments)]
    /// One authenticated call that answers JSON; the envelope is checked, auth errors
    /// make the login lost. `ua` defaults to the 115 browser UA.
    pub async fn call(
        &self,
        what: &str,
        method: reqwest::Method,
        host: &str,
        path_query: &str,
        body: Body,
        ua: Option<&str>,
        idempotent: bool,
    ) -> DriveResult<(Value, Response)> {
        let (v, r) = self.call_raw(what, method, host, path_query, body, ua, idempotent).await?;
        if let Some(e) = envelope_error(&v) {
            return Err(self.api_error(&e, what));
        }
        Ok((v, r))
    }

    #[allow(clippy::too_many_arguments)]
    /// Like [`call`](Self::call) but the envelope is the caller's to check.
    pub async fn call_raw(
        &self,
        what: &str,
        method: reqwest::Method,
        host: &str,
        path_query: &str,
        body: Body,
        ua: Option<&str>,
        idempotent: bool,
    ) -> DriveResult<(Value, Response)> {
        self.call_raw_h(what, method, host, path_query, body, ua, idempotent, &[]).await
    }

    #[allow(clippy::too_many_arguments)]
    /// [`call_raw`](Self::call_raw) with extra request headers.
    pub async fn call_raw_h(
        &self,
        what: &str,
        method: reqwest::Method,
        host: &str,
        path_query: &str,
        body: Body,
        ua: Option<&str>,
        idempotent: bool,
        extra: &[(&str, &str)],
    ) -> DriveResult<(Value, Response)> {
        let creds = self.creds()?;
        let url = self.http.endpoints.url(host, path_query);
        let ua = match ua {
            Some(u) => u.to_string(),
            None => browser_ua(&self.app_ver().await),
        };
        let form = match &body {
            Body::Form(f) => Some(f.clone()),
            Body::None => None,
        };
        let r = self
            .http
            .send(
                what,
                idempotent,
                |c| {
                    let mut rb = c.request(method.clone(), &url).header("Cookie", &creds.header);
                    if !ua.is_empty() {
                        rb = rb.header("User-Agent", &ua);
                    }
                    for (k, v) in extra {
                        rb = rb.header(*k, *v);
                    }
                    if let Some(f) = &form {
                        rb = rb.header("Content-Type", "application/x-www-form-urlencoded").body(f.clone());
                    }
                    rb
                },
                |r| classify(r, idempotent),
            )
            .await?;
        tracing::debug!(call = what, status = r.status, url = %http::redact(&url), "115 answered");
        let v = parse_json(&r, what)?;
        Ok((v, r))
    }

    /// Map an envelope error; a dead cookie is remembered.
    pub fn api_error(&self, e: &ApiError, what: &str) -> DriveError {
        if is_auth_code(e.code) {
            let msg = if e.code == 911 {
                format!(
                    "115 asks to verify the account (errno 911): open 115.com in a browser, then {}",
                    self.login_hint()
                )
            } else {
                format!(
                    "{} (errno {}{})",
                    self.expired_msg(),
                    e.code,
                    if e.msg.is_empty() { String::new() } else { format!(" {}", e.msg) }
                )
            };
            return self.give_up(msg);
        }
        map_api_error(e, what)
    }

    /// An m115-encrypted POST (`data=` form): returns the decoded `data` plaintext and the
    /// raw answer (for its cookies).
    pub async fn m115_post(
        &self,
        what: &str,
        host: &str,
        path: &str,
        plain: &[u8],
        ua: Option<&str>,
        idempotent: bool,
    ) -> DriveResult<(Vec<u8>, Value, Response)> {
        let (v, r, key) = self.m115_post_raw(what, host, path, plain, ua, idempotent, &[]).await?;
        if let Some(e) = envelope_error(&v) {
            return Err(self.api_error(&e, what));
        }
        let dec = self.m115_data(what, &v, key)?;
        Ok((dec, v, r))
    }

    /// The POST of [`m115_post`](Self::m115_post) without the envelope check; returns the
    /// request key for [`m115_data`](Self::m115_data).
    #[allow(clippy::too_many_arguments)]
    pub async fn m115_post_raw(
        &self,
        what: &str,
        host: &str,
        path: &str,
        plain: &[u8],
        ua: Option<&str>,
        idempotent: bool,
        extra: &[(&str, &str)],
    ) -> DriveResult<(Value, Response, [u8; 16])> {
        let key = m115::random_key16();
        let data = m115::encode(plain, key, &self.rsa);
        let t = now_secs();
        let sep = if path.contains('?') { '&' } else { '?' };
        let pq = format!("{path}{sep}t={t}");
        let (v, r) = self
            .call_raw_h(
                what,
                reqwest::Method::POST,
                host,
                &pq,
                Body::Form(http::form(&[("data", &data)])),
                ua,
                idempotent,
                extra,
            )
            .await?;
        Ok((v, r, key))
    }

    /// Decode the m115 `data` of an answer.
    pub fn m115_data(&self, what: &str, v: &Value, key: [u8; 16]) -> DriveResult<Vec<u8>> {
        let enc = match get(v, "data") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            // `state:true` with empty data: not found, a folder, or unsupported (p115client: 50015).
            _ => return Err(DriveError::NotFound),
        };
        m115::decode_with(&enc, key, &self.rsa).map_err(|e| {
            DriveError::upstream(format!("115 {what}: cannot decode the answer ({e}); is m115_test_modulus right?"))
        })
    }

    // ---- calls -------------------------------------------------------------------

    /// One page of `/files` (§2.1).
    pub async fn files_page(&self, cid: &str, offset: u64, limit: u32, order: &str, asc: bool) -> DriveResult<Page> {
        let pq = format!(
            "/files?aid=1&cid={}&o={}&asc={}&offset={offset}&limit={limit}&show_dir=1&snap=0&natsort=0&record_open_time=1&format=json&fc_mix=0",
            http::qs(cid),
            http::qs(order),
            asc as u8
        );
        let (v, _) = self.call_raw("list", reqwest::Method::GET, hosts::WEBAPI, &pq, Body::None, None, true).await?;
        if let Some(e) = envelope_error(&v) {
            if e.code == 20130827 {
                // Order not supported for this folder: the answer names one that is (§2.1).
                let order = fstr(&v, "order").filter(|o| !o.is_empty()).unwrap_or_else(|| "user_ptime".into());
                let asc = fnum(&v, "is_asc").map(|a| a != 0).unwrap_or(true);
                return Ok(Page::OrderRejected { order, asc });
            }
            return Err(self.api_error(&e, "list"));
        }
        Ok(Page::Items(v))
    }

    /// `get_info` by file id or pick code: the item, as a listing item.
    pub async fn get_info(&self, key: &str, value: &str) -> DriveResult<Value> {
        let pq = format!("/files/get_info?{key}={}", http::qs(value));
        let (v, _) = self.call("get_info", reqwest::Method::GET, hosts::WEBAPI, &pq, Body::None, None, true).await?;
        match get(&v, "data") {
            Some(Value::Array(a)) => a.first().cloned().ok_or(DriveError::NotFound),
            Some(o @ Value::Object(_)) => Ok(o.clone()),
            _ => Err(DriveError::NotFound),
        }
    }

    pub async fn post_form(&self, what: &str, host: &str, path: &str, pairs: &[(&str, &str)]) -> DriveResult<Value> {
        let (v, _) =
            self.call(what, reqwest::Method::POST, host, path, Body::Form(http::form(pairs)), None, false).await?;
        Ok(v)
    }

    /// `GET my.115.com/?ct=guide&ac=status`: is the cookie alive? (Does not disturb other
    /// sessions, unlike check/sso.) Any non-JSON answer means no.
    pub async fn cookie_alive(&self) -> DriveResult<bool> {
        let creds = self.creds()?;
        let url = self.http.endpoints.url(hosts::MY, &format!("/?ct=guide&ac=status&_={}", now_millis()));
        let ua = browser_ua(&self.app_ver().await);
        // Network trouble is an error (the cookie may be fine); any answer that is not
        // JSON with `state: true` (a login page, a redirect) means logged out.
        let r = self
            .http
            .send(
                "cookie check",
                true,
                |c| c.get(&url).header("Cookie", &creds.header).header("User-Agent", &ua),
                |r| http::default_verdict(r, true),
            )
            .await?;
        if r.status >= 500 {
            return Err(DriveError::upstream(format!("115 cookie check: HTTP {}", r.status)));
        }
        Ok(serde_json::from_slice::<Value>(&r.body).ok().is_some_and(|v| state_of(&v) == Some(true)))
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub fn now_millis() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_variants() {
        // Verbatim bodies from §0.4.
        let a: Value = serde_json::from_str(
            r#"{"state":false,"error":"登录超时，请重新登录。","errNo":990001,"request":"\/files?aid=1"}"#,
        )
        .unwrap();
        assert_eq!(envelope_error(&a), Some(ApiError { code: 990001, msg: "登录超时，请重新登录。".into() }));
        let b: Value = serde_json::from_str(r#"{"state":false,"error":"请重新登录","errno":99,"request":"\/android\/2.0\/ufile\/download?t=1741113364","data":[]}"#).unwrap();
        assert_eq!(envelope_error(&b).unwrap().code, 99);
        assert_eq!(envelope_error(&json!({"state":1,"code":0})), None);
        assert_eq!(envelope_error(&json!({"state":0,"code":"40199002","message":"x"})).unwrap().code, 40199002);
        assert_eq!(envelope_error(&json!({"state":true,"errno":0,"data":[]})), None);
        assert_eq!(envelope_error(&json!({"count":"12","file_name":"Movies"})), None);
        assert_eq!(
            envelope_error(&json!({"state":false,"error":"当前版本过低，请升级到最新版本下载。"})).unwrap().code,
            0
        );
        assert_eq!(envelope_error(&json!({"state":false,"errCode":"20004","msg":"x"})).unwrap().code, 20004);
        assert_eq!(envelope_error(&json!({"state":false,"msg_code":50003,"error_msg":"m"})).unwrap().msg, "m");
    }

    #[test]
    fn numbers_as_strings() {
        assert_eq!(jnum(&json!("1073741824")), Some(1073741824));
        assert_eq!(jnum(&json!(1073741824)), Some(1073741824));
        assert_eq!(jstr(&json!(2593093001609740123u64)).unwrap(), "2593093001609740123");
        assert_eq!(fid(&json!({"cid":0}), "cid").unwrap(), "0");
    }

    #[test]
    fn shanghai_time() {
        // 2023-11-15 06:13 +08:00 = 2023-11-14 22:13 UTC = 1700000000 - 20s
        assert_eq!(parse_cst("2023-11-15 06:13"), Some(1699999980));
        assert_eq!(parse_cst("1970-01-01 08:00"), Some(0));
        assert_eq!(parse_cst("nope"), None);
    }

    #[test]
    fn items_from_reference_example() {
        let body: Value = serde_json::from_str(
            r##"{"data":[
  {"cid":"2593093001609740001","pid":"2593093001609739968","aid":"1","n":"Season 1",
   "t":"1700000000","te":"1700000000","tp":"1699990000","pc":"fbndxbf3njpb2sw7he","m":0,"fl":[],"ns":"Season 1"},
  {"fid":"2593093001609740123","cid":"2593093001609739968","uid":123456789,"aid":"1",
   "n":"movie.mkv","s":1073741824,"sha":"0123456789ABCDEF0123456789ABCDEF01234567",
   "pc":"a87dby98esbg8hgqn","ico":"mkv","class":"AVI","iv":1,"vdi":4,"play_long":5400,
   "t":"2023-11-15 06:13","te":"1700000000","tp":"1699990000","to":"1700000500",
   "m":0,"fl":[{"id":"3","name":"movie","color":"#2670FC","sort":"0","create_time":1690000000,"update_time":1690000000}],
   "u":"https://thumb.115.com/...","d":0,"c":0,"sh":0,"e":"","p":0,"sta":1,"hdf":0}]}"##,
        )
        .unwrap();
        let items = body["data"].as_array().unwrap();
        let d = entry_from_item(&items[0]).unwrap();
        assert!(d.is_dir);
        assert_eq!(d.id(), "2593093001609740001");
        assert_eq!(item_parent(&items[0]).unwrap(), "2593093001609739968");
        assert_eq!(d.modified, unix(1700000000));
        let f = entry_from_item(&items[1]).unwrap();
        assert!(!f.is_dir);
        assert_eq!(f.id(), "2593093001609740123");
        assert_eq!(f.size, 1073741824);
        assert_eq!(f.hashes().sha1.as_deref(), Some("0123456789abcdef0123456789abcdef01234567"));
        assert_eq!(f.extra(), Some("a87dby98esbg8hgqn"));
        assert_eq!(f.created, Some(unix(1699990000)));
        assert_eq!(item_parent(&items[1]).unwrap(), "2593093001609739968");
        // Share items: fc decides.
        let s = entry_from_item(&json!({"fid":"1","cid":"0","n":"v.mp4","s":"5","sha":"ABCD","fc":1,"t":"1699990000"}))
            .unwrap();
        assert!(!s.is_dir && s.size == 5 && s.modified == unix(1699990000));
        let s = entry_from_item(&json!({"cid":"7","pid":"0","n":"Folder A","t":"1699990000","fc":"0"})).unwrap();
        assert!(s.is_dir && s.id() == "7");
        // sha present but empty: folder.
        assert!(item_is_dir(&json!({"cid":"5","sha":"","n":"x"})));
    }

    #[test]
    fn links_carry_ua_and_cookie_only_when_needed() {
        let c = vec![("0123456789abcdef0123456789abcdef".to_string(), "fedcba9876543210fedcba9876543210".to_string())];
        let far = now_secs() + 7200;
        let l = make_link(format!("https://cdn.115cdn.net/x?t={far}&u=1&c=0&f=1"), "VLC/3", &c);
        assert_eq!(l.headers, vec![("User-Agent".into(), "VLC/3".into())]);
        let l = make_link(format!("https://cdn.115cdn.net/x?t={far}&f=3"), "VLC/3", &c);
        assert_eq!(l.headers.len(), 2);
        let l = make_link(format!("https://cdn.115cdn.net/x?t={}&f=", now_secs() + 100), "", &c);
        assert!(l.headers.is_empty());
        let exp = l.expires_at.unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert!(exp <= now_secs() + 101);
    }

    #[test]
    fn downurl_record_choice() {
        let p = json!({"1":{"file_name":"a","file_size":"3","pick_code":"abc","url":{"url":"https://x/a"}},
                       "2":{"file_name":"b","file_size":3,"pick_code":"def","url":{"url":"https://x/b"}}});
        assert_eq!(downurl_pick(&p, "def").unwrap(), "https://x/b");
        let d = json!({"1":{"file_name":"d","file_size":0,"pick_code":"fa","url":false}});
        assert!(matches!(downurl_pick(&d, "fa"), Err(DriveError::IsADirectory)));
        let n = json!({"1":{"file_size":-1,"pick_code":"x","url":{"url":"u"}}});
        assert!(downurl_pick(&n, "x").is_err());
    }

    #[test]
    fn error_mapping() {
        let m = |c| map_api_error(&ApiError { code: c, msg: String::new() }, "t");
        assert!(matches!(m(20004), DriveError::Exists));
        assert!(matches!(m(20018), DriveError::NotFound));
        assert!(matches!(m(91005), DriveError::NoSpace));
        assert!(matches!(m(990001), DriveError::AuthLost(_)));
        assert!(matches!(m(990019), DriveError::RateLimited { .. }));
        assert!(matches!(m(800006), DriveError::Forbidden(_)));
    }
}
