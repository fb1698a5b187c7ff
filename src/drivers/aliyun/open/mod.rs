//! `driver = "aliyundrive_open"`: Aliyun Drive (阿里云盘 / alipan) through its Open
//! platform (reference `shared/reference/aliyundrive.md`, family C: §2.3–2.6, §4, §5.2,
//! §6, §7.5, §9, §10).
//!
//! Options (`[mounts.options]`):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `client_id`, `client_secret` | — | your app on the open platform; without a secret the app is a PKCE app (`pandav login` works, refreshes send no secret) |
//! | `refresh_token` | — | a refresh token (optional once `pandav login aliyundrive-open` saved one); rotated tokens live in the state file, this value is never written back |
//! | `use_online_api` | `false` | refresh through an online token API that holds the secret (§2.4) instead of your own app |
//! | `online_api` | `"openlist"` | its shape: `openlist` (GET renewapi, `alicloud_qr`), `openlist_tv` (`alicloud_tv`), `alist` (POST, the official body), `messense` (POST proxy; also runs `pandav login`), `tickstep` |
//! | `api_url` | per shape | the online API's URL (tickstep: the prefix before `/<ticket>/refresh`) |
//! | `ticket_id`, `user_id` | — | tickstep only: the broker's ticket and your user id |
//! | `drive` | `resource`, else `default` | which drive: `resource` (资源库), `backup` (备份盘) or `default` (§4.1) |
//! | `root_folder_id` | `"root"` | folder shown as the mount's root |
//! | `order_by` / `order_direction` | `name` / `ASC` | listing order: `name`, `name_enhanced`, `created_at`, `updated_at`, `size`; `ASC` or `DESC` |
//! | `rate_limit` | `14.9` | requests per second; listings are paced at most 3.9/s and download links 0.9/s (§10.1); `0` = unpaced |
//! | `delete` | `"trash"` | `trash` (recycle bin) or `permanent` |
//! | `expire_sec` | `900` | lifetime asked for download links (up to 14400 for apps allowed it; the answer's `expiration` is what counts) |
//! | `rapid_upload` | `true` | try upload by SHA-1 + proof first (§7) |
//! | `endpoints` | — | real host → base URL (tests, relays) |
//!
//! Tokens rotate on every refresh and the old refresh token dies at once (§2.3), so every
//! refresh goes through the mount's [`Credentials`] (single flight, cross-process lock,
//! adopts a newer saved pair, persisted before use by one writer; in `pandav serve` in the
//! `pandav __refresh` helper). A dead grant makes every call fail fast with `AuthLost` and
//! a `pandav login aliyundrive-open` hint, without calling the API; the mount resumes by
//! itself when the state file gets a new pair.

pub mod client;
pub mod login;
pub mod upload;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use self::client::{Api, Class};
use self::login::{Refresher, TokenSource, Tokens};
use crate::drivers::aliyun::common::auth;
use crate::drivers::aliyun::common::item::{self, FileItem};
use crate::drivers::aliyun::common::json;
use crate::drivers::http::{Endpoints, Http, Secret};
use crate::drivers::DriverCtx;
use crate::vfs::credentials::{self, Credentials, MountSource};
use crate::vfs::*;

/// `driver = "…"` in the config.
pub const NAME: &str = "aliyundrive_open";

fn default_root() -> String {
    "root".into()
}
fn default_rate() -> f64 {
    client::OTHER_RATE
}
fn default_expire() -> u64 {
    900
}
fn yes() -> bool {
    true
}

/// `[mounts.options]` of an `aliyundrive_open` mount (the table in the module comment).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<Secret>,
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    #[serde(default)]
    pub use_online_api: bool,
    #[serde(default)]
    pub online_api: Option<String>,
    #[serde(default)]
    pub api_url: Option<String>,
    #[serde(default)]
    pub ticket_id: Option<Secret>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub drive: Option<String>,
    #[serde(default = "default_root")]
    pub root_folder_id: String,
    #[serde(default)]
    pub order_by: Option<String>,
    #[serde(default)]
    pub order_direction: Option<String>,
    #[serde(default = "default_rate")]
    pub rate_limit: f64,
    #[serde(default)]
    pub delete: Option<String>,
    #[serde(default = "default_expire")]
    pub expire_sec: u64,
    #[serde(default = "yes")]
    pub rapid_upload: bool,
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("refresh_token", &self.refresh_token)
            .field("use_online_api", &self.use_online_api)
            .field("online_api", &self.online_api)
            .field("drive", &self.drive)
            .field("root_folder_id", &self.root_folder_id)
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// The shapes of online token APIs (§2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnlineApi {
    OpenList,
    OpenListTv,
    AList,
    Messense,
    Tickstep,
}

impl OnlineApi {
    fn parse(s: &str) -> Option<OnlineApi> {
        Some(match s {
            "openlist" => OnlineApi::OpenList,
            "openlist_tv" => OnlineApi::OpenListTv,
            "alist" => OnlineApi::AList,
            "messense" => OnlineApi::Messense,
            "tickstep" => OnlineApi::Tickstep,
            _ => return None,
        })
    }

    fn default_url(self) -> &'static str {
        match self {
            OnlineApi::OpenList | OnlineApi::OpenListTv => login::OPENLIST_URL,
            OnlineApi::AList => login::ALIST_URL,
            OnlineApi::Messense => login::MESSENSE_URL,
            OnlineApi::Tickstep => login::TICKSTEP_URL,
        }
    }
}

/// The online API a mount refreshes through (`None`: its own app).
pub fn online_kind(o: &Options) -> Option<OnlineApi> {
    if !o.use_online_api {
        return None;
    }
    OnlineApi::parse(o.online_api.as_deref().unwrap_or("openlist"))
}

impl Options {
    /// The online API's URL (its shape's default when not set).
    pub fn api_url(&self) -> String {
        match (&self.api_url, online_kind(self)) {
            (Some(u), _) if !u.trim().is_empty() => u.trim().to_string(),
            (_, Some(k)) => k.default_url().to_string(),
            _ => login::OPENLIST_URL.to_string(),
        }
    }
}

/// The configured secret the saved state descends from: the refresh token, or the
/// tickstep ticket.
pub fn config_secret(o: &Options) -> String {
    if online_kind(o) == Some(OnlineApi::Tickstep) {
        return o.ticket_id.as_ref().map(|s| s.expose().trim().to_string()).unwrap_or_default();
    }
    o.refresh_token.as_ref().map(|s| s.expose().trim().to_string()).unwrap_or_default()
}

const ORDER_BY: &[&str] = &["name", "name_enhanced", "created_at", "updated_at", "size"];

fn check(o: &Options) -> anyhow::Result<()> {
    use anyhow::bail;
    if o.use_online_api {
        let kind = o.online_api.as_deref().unwrap_or("openlist");
        let Some(k) = OnlineApi::parse(kind) else {
            bail!("online_api {kind:?} is not one of openlist, openlist_tv, alist, messense, tickstep");
        };
        let url = o.api_url();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            bail!("api_url {url:?} must be an http(s) URL");
        }
        let missing =
            o.ticket_id.as_ref().is_none_or(|t| t.is_empty()) || o.user_id.as_deref().is_none_or(str::is_empty);
        if k == OnlineApi::Tickstep && missing {
            bail!("online_api = \"tickstep\" needs ticket_id and user_id");
        }
    } else if o.client_id.as_deref().is_none_or(|c| c.trim().is_empty()) {
        bail!("set client_id (and client_secret) of your open-platform app, or use_online_api = true");
    }
    if let Some(d) = &o.drive {
        if !matches!(d.as_str(), "resource" | "backup" | "default") {
            bail!("drive {d:?} is not one of resource, backup, default");
        }
    }
    let root = &o.root_folder_id;
    if root.is_empty() || root.len() > 128 || !root.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        bail!("root_folder_id {root:?} is not a file id (\"root\" or 40 hex characters)");
    }
    if let Some(ob) = &o.order_by {
        if !ORDER_BY.contains(&ob.as_str()) {
            bail!("order_by {ob:?} is not one of {}", ORDER_BY.join(", "));
        }
    }
    if let Some(d) = &o.order_direction {
        if !d.eq_ignore_ascii_case("asc") && !d.eq_ignore_ascii_case("desc") {
            bail!("order_direction {d:?} must be ASC or DESC");
        }
    }
    if !o.rate_limit.is_finite() || o.rate_limit < 0.0 {
        bail!("rate_limit must be a number of requests per second, 0 for no limit");
    }
    if let Some(d) = &o.delete {
        if !matches!(d.as_str(), "trash" | "permanent") {
            bail!("delete must be \"trash\" or \"permanent\" (got {d:?})");
        }
    }
    if !(60..=14400).contains(&o.expire_sec) {
        bail!("expire_sec must be between 60 and 14400 (got {})", o.expire_sec);
    }
    Ok(())
}

/// The token source of a mount with these options.
fn token_source(o: &Options) -> Arc<dyn TokenSource> {
    match online_kind(o) {
        None => Arc::new(login::Official {
            client_id: o.client_id.clone().unwrap_or_default().trim().to_string(),
            client_secret: o.client_secret.as_ref().map(|s| s.expose().to_string()).filter(|s| !s.is_empty()),
        }),
        Some(OnlineApi::OpenList) => Arc::new(login::RenewApi { url: o.api_url(), driver_txt: "alicloud_qr" }),
        Some(OnlineApi::OpenListTv) => Arc::new(login::RenewApi { url: o.api_url(), driver_txt: "alicloud_tv" }),
        Some(OnlineApi::AList) => Arc::new(login::ProxyPost { url: o.api_url(), official_body: true, label: "AList" }),
        Some(OnlineApi::Messense) => {
            Arc::new(login::ProxyPost { url: o.api_url(), official_body: false, label: "messense" })
        }
        Some(OnlineApi::Tickstep) => Arc::new(login::Tickstep {
            prefix: o.api_url(),
            user_id: o.user_id.clone().unwrap_or_default().trim().to_string(),
        }),
    }
}

/// What to tell a user whose grant is gone.
fn login_hint(o: &Options, mount: &str) -> String {
    let login = format!("run `pandav login aliyundrive-open --config <your config> --mount {mount}`");
    match online_kind(o) {
        None | Some(OnlineApi::Messense) => format!("{login} to authorize again"),
        Some(OnlineApi::Tickstep) => format!("get a new ticket from tickstep and set ticket_id of mount {mount}"),
        Some(_) => format!(
            "get a new refresh token from your online API's page and set refresh_token of mount {mount} \
             (or set client_id and {login})"
        ),
    }
}

/// The kit's refresher for these options, on `client`.
fn refresher(client: &reqwest::Client, o: &Options, ep: &Endpoints, mount: &str) -> Refresher {
    let http = Http::with_client(client.clone(), "Aliyun Drive Open", ep.clone(), 0.0, login::token_retry());
    Refresher { http: Arc::new(http), source: token_source(o), hint: login_hint(o, mount) }
}

/// The drive an account serves and who it belongs to (getDriveInfo, §4.1).
#[derive(Debug, Clone)]
pub struct DriveInfo {
    pub drive_id: String,
    pub user_id: String,
}

pub struct AliyunOpen {
    pub(crate) api: Api,
    /// Part uploads: unpaced (they are not API calls), retried on 5xx.
    pub(crate) parts: Http,
    pub(crate) opts: Options,
    mount: String,
    permanent_delete: bool,
    order_by: String,
    order_direction: String,
    drive: tokio::sync::OnceCell<DriveInfo>,
    /// Path of the root folder below the drive's root (`""` for `root`), for get_by_path;
    /// `None` when it could not be found.
    root_path: tokio::sync::OnceCell<Option<String>>,
    /// Entries in each folder's last listing (by folder id): where get_by_path saves calls.
    sizes: dashmap::DashMap<String, usize>,
}

/// How long an async task (folder trash/delete/copy, §6.5) is waited for.
const TASK_WAIT: Duration = Duration::from_secs(600);

impl AliyunOpen {
    pub fn new(opts: Options, ctx: &DriverCtx) -> anyhow::Result<AliyunOpen> {
        check(&opts)?;
        let ep = Endpoints::new(opts.endpoints.clone())?;
        let secret = config_secret(&opts);
        let from_config = Tokens { refresh_token: secret.clone(), ..Tokens::default() };
        // One client for the mount: API calls, token refreshes, part uploads.
        let client = crate::drivers::http::client();
        let creds = Credentials::restore(&ctx.state, &secret, from_config)?
            .with_refresher(Arc::new(refresher(&client, &opts, &ep, &ctx.mount_path)), ctx.source.clone());
        let http = Http::with_client(client, "Aliyun Drive Open", ep, 0.0, client::retry_policy());
        let parts = http.sibling(0.0, client::part_retry());
        let api = Api::new(http, creds, opts.rate_limit);
        Ok(AliyunOpen {
            api,
            parts,
            permanent_delete: opts.delete.as_deref() == Some("permanent"),
            order_by: opts.order_by.clone().unwrap_or_else(|| "name".into()),
            order_direction: opts.order_direction.clone().unwrap_or_else(|| "ASC".into()).to_ascii_uppercase(),
            mount: ctx.mount_path.clone(),
            opts,
            drive: tokio::sync::OnceCell::new(),
            root_path: tokio::sync::OnceCell::new(),
            sizes: dashmap::DashMap::new(),
        })
    }

    /// Shorten the retry waits (tests).
    pub fn set_retry(&mut self, r: crate::drivers::http::RetryPolicy) {
        self.api.set_retry(r);
        self.parts.retry = crate::drivers::http::RetryPolicy { pause_wait: std::time::Duration::ZERO, ..r };
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The tokens in force (for tests; never log them).
    pub fn tokens(&self) -> Arc<Tokens> {
        self.api.creds.get().0
    }

    /// Successful refreshes made by this driver.
    pub fn refresh_count(&self) -> u64 {
        self.api.creds.refresh_count()
    }

    fn no_token_message(&self) -> String {
        format!(
            "Aliyun Drive Open: no refresh token; set refresh_token of mount {m} or {}",
            login_hint(&self.opts, &self.mount).replace(&format!(" of mount {m}", m = self.mount), ""),
            m = self.mount
        )
    }

    /// The drive id and user (getDriveInfo once; §4.1: `resource_drive_id` /
    /// `backup_drive_id` only when the app was granted them).
    pub async fn drive_info(&self) -> DriveResult<&DriveInfo> {
        self.drive
            .get_or_try_init(|| async {
                let v = self.api.post(Class::Other, "/adrive/v1.0/user/getDriveInfo", &json!({}), true).await?;
                let s = |k: &str| text(v.get(k));
                let wanted = self.opts.drive.as_deref();
                let id = match wanted {
                    Some("backup") => s("backup_drive_id"),
                    Some("default") => s("default_drive_id"),
                    Some(_) => s("resource_drive_id"),
                    // Not chosen: the resource library (OpenList's default), else the
                    // default drive (messense's fallback).
                    None => match s("resource_drive_id") {
                        r if r.is_empty() => s("default_drive_id"),
                        r => r,
                    },
                };
                if id.is_empty() {
                    let which = wanted.unwrap_or("default");
                    return Err(DriveError::Forbidden(format!(
                        "Aliyun Drive Open: the app has no access to the {which} drive (getDriveInfo has no {which}_drive_id); \
                         authorize it for that drive or choose another `drive`"
                    )));
                }
                let info = DriveInfo { drive_id: id, user_id: s("user_id") };
                tracing::info!(mount = %self.mount, drive_id = %info.drive_id, "Aliyun Drive Open drive found");
                Ok(info)
            })
            .await
    }

    pub async fn drive_id(&self) -> DriveResult<String> {
        Ok(self.drive_info().await?.drive_id.clone())
    }

    /// The root folder's path below the drive root: walks up `parent_file_id` from
    /// `root_folder_id` (openFile/get per level).
    async fn root_path(&self) -> DriveResult<Option<String>> {
        self.root_path
            .get_or_try_init(|| async {
                if self.opts.root_folder_id == "root" {
                    return Ok(Some(String::new()));
                }
                let mut names = Vec::new();
                let mut id = self.opts.root_folder_id.clone();
                for _ in 0..64 {
                    let v = self.get_file(&id).await?;
                    if names.is_empty() && text(v.get("type")) != "folder" {
                        return Err(DriveError::NotADirectory);
                    }
                    names.push(text(v.get("name")));
                    id = text(v.get("parent_file_id"));
                    if id == "root" {
                        names.reverse();
                        return Ok(Some(format!("/{}", names.join("/"))));
                    }
                    if id.is_empty() {
                        break;
                    }
                }
                tracing::info!(mount = %self.mount, "the root folder's path is unknown; lookups list folders");
                Ok(None)
            })
            .await
            .cloned()
    }

    /// `openFile/get` (§4.3).
    pub async fn get_file(&self, file_id: &str) -> DriveResult<Value> {
        let drive_id = self.drive_id().await?;
        self.api
            .post(Class::Other, "/adrive/v1.0/openFile/get", &json!({"drive_id": drive_id, "file_id": file_id}), true)
            .await
    }

    /// Every child of folder `dir` (marker paging at the documented limit of 100, §4.2).
    pub async fn list_dir(&self, dir: &Entry) -> DriveResult<Vec<Entry>> {
        let drive_id = self.drive_id().await?;
        let items = item::all_pages("openFile/list", |marker| {
            let body = json!({
                "drive_id": drive_id,
                "parent_file_id": dir.id(),
                "limit": PAGE,
                "marker": marker,
                "order_by": self.order_by,
                "order_direction": self.order_direction,
            });
            async move { self.api.post(Class::List, "/adrive/v1.0/openFile/list", &body, true).await }
        })
        .await?;
        let mut seen = std::collections::HashSet::new();
        let out: Vec<Entry> = items
            .iter()
            .filter(|it| it.visible() && !it.name().is_empty() && seen.insert(it.file_id.clone()))
            .map(|it| entry_of_item(it, dir.extra()))
            .collect();
        self.sizes.insert(dir.id().to_string(), out.len());
        Ok(out)
    }

    /// A child by name through `get_by_path` (§4.4), where that saves calls: in a folder
    /// whose last listing took more than one page (an upload into a big folder checks its
    /// name with one call instead of relisting it). Elsewhere, for paths get_by_path cannot
    /// take (whitespace in a name: messense falls back to listing, §4.4), for an answer that
    /// is not that child of that parent (a path that moved since), and on any error but a
    /// 404, `Unsupported`: the mount lists the folder and caches that listing.
    async fn lookup_child(&self, parent: &Entry, name: &str) -> DriveResult<Option<Entry>> {
        let unsupported = Err(DriveError::Unsupported("a lookup here (listing instead)"));
        let big = self.sizes.get(parent.id()).is_some_and(|n| *n > PAGE as usize);
        let Some(ppath) = parent.extra() else { return unsupported };
        let path = format!("{ppath}/{name}");
        if !big || path.chars().any(char::is_whitespace) {
            return unsupported;
        }
        let drive_id = self.drive_id().await?;
        let body = json!({"drive_id": drive_id, "file_path": path});
        match self.api.post(Class::Other, "/adrive/v1.0/openFile/get_by_path", &body, true).await {
            Ok(v) => match entry_of(&v, Some(ppath)) {
                Some(e) if e.name() == name && text(v.get("parent_file_id")) == parent.id() => Ok(Some(e)),
                _ => unsupported,
            },
            Err(DriveError::NotFound) => Ok(None),
            Err(e @ (DriveError::AuthLost(_) | DriveError::RateLimited { .. })) => Err(e),
            Err(e) => {
                tracing::debug!(mount = %self.mount, "get_by_path failed ({e}); listing instead");
                unsupported
            }
        }
    }

    /// Wait for an async task (§6.5) until it succeeded; an empty id is a finished task.
    pub async fn wait_task(&self, task: &str) -> DriveResult<()> {
        if task.is_empty() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + TASK_WAIT;
        let mut pause = Duration::from_millis(200);
        loop {
            let v = self
                .api
                .post(Class::Other, "/adrive/v1.0/openFile/async_task/get", &json!({"async_task_id": task}), true)
                .await?;
            let state = text(v.get("state").or_else(|| v.get("status")));
            match state.as_str() {
                "Succeed" | "Success" => return Ok(()),
                "Failed" | "Fail" => {
                    return Err(DriveError::upstream(format!("Aliyun Drive Open: async task {task} failed")))
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DriveError::upstream(format!(
                    "Aliyun Drive Open: async task {task} still {state:?} after {}s",
                    TASK_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// `openFile/update` with a new name (§6.3), refusing a clash.
    async fn rename_id(&self, file_id: &str, name: &str) -> DriveResult<Value> {
        let drive_id = self.drive_id().await?;
        let body = json!({"drive_id": drive_id, "file_id": file_id, "name": name, "check_name_mode": "refuse"});
        self.api.post(Class::Other, "/adrive/v1.0/openFile/update", &body, false).await
    }

    /// `openFile/move` (§6.4) into `to` as `new_name`, refusing a clash.
    async fn move_id(&self, file_id: &str, to: &str, new_name: Option<&str>) -> DriveResult<()> {
        let drive_id = self.drive_id().await?;
        let mut body = json!({
            "drive_id": drive_id,
            "file_id": file_id,
            "to_parent_file_id": to,
            "check_name_mode": "refuse",
        });
        if let Some(n) = new_name {
            body["new_name"] = Value::String(n.to_string());
        }
        let v = self.api.post(Class::Other, "/adrive/v1.0/openFile/move", &body, false).await?;
        if v.get("exist").and_then(Value::as_bool) == Some(true) {
            return Err(DriveError::Exists);
        }
        self.wait_task(&text(v.get("async_task_id"))).await
    }

    /// Trash or delete one entry (§6.5); already gone counts as done.
    pub(crate) async fn remove_id(&self, file_id: &str) -> DriveResult<()> {
        let drive_id = self.drive_id().await?;
        let path = if self.permanent_delete {
            "/adrive/v1.0/openFile/delete"
        } else {
            "/adrive/v1.0/openFile/recyclebin/trash"
        };
        match self.api.post(Class::Other, path, &json!({"drive_id": drive_id, "file_id": file_id}), true).await {
            Ok(v) => self.wait_task(&text(v.get("async_task_id"))).await,
            Err(DriveError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A folder made with `check_name_mode: refuse` (§6.2); `exist: true` = a clash.
    async fn create_folder(&self, parent: &Entry, name: &str) -> DriveResult<Entry> {
        let drive_id = self.drive_id().await?;
        let body = json!({
            "drive_id": drive_id,
            "parent_file_id": parent.id(),
            "name": name,
            "type": "folder",
            "check_name_mode": "refuse",
        });
        let v = self.api.post(Class::Other, "/adrive/v1.0/openFile/create", &body, false).await?;
        if v.get("exist").and_then(Value::as_bool) == Some(true) {
            return Err(DriveError::Exists);
        }
        let id = text(v.get("file_id"));
        if id.is_empty() {
            return Err(DriveError::upstream("Aliyun Drive Open openFile/create answered without a file_id"));
        }
        let mut e = Entry::dir(id, name, SystemTime::now());
        e.created = Some(e.modified);
        e.set_extra(child_path(parent.extra(), name));
        Ok(e)
    }

    /// Copy `entry` into `to` under its own name (§6.4: the open copy takes no new name);
    /// the copy's id.
    async fn copy_id(&self, entry: &Entry, to: &str) -> DriveResult<String> {
        let drive_id = self.drive_id().await?;
        let body = json!({"drive_id": drive_id, "file_id": entry.id(), "to_parent_file_id": to, "auto_rename": false});
        let v = self.api.post(Class::Other, "/adrive/v1.0/openFile/copy", &body, false).await?;
        if v.get("exist").and_then(Value::as_bool) == Some(true) {
            return Err(DriveError::Exists);
        }
        self.wait_task(&text(v.get("async_task_id"))).await?;
        let id = text(v.get("file_id"));
        if id.is_empty() {
            return Err(DriveError::upstream("Aliyun Drive Open openFile/copy answered without a file_id"));
        }
        Ok(id)
    }

    /// The entry of `id` once it is in `parent` (after a copy or move).
    async fn entry_in(&self, parent: &Entry, id: &str) -> DriveResult<Entry> {
        let v = self.get_file(id).await?;
        entry_of(&v, parent.extra())
            .ok_or_else(|| DriveError::upstream("Aliyun Drive Open openFile/get answered without a file"))
    }
}

/// Listing page size: the documented maximum (§4.2).
pub const PAGE: u32 = 100;

/// A JSON value as text (strings as they are, numbers printed; absent: empty).
pub(crate) fn text(v: Option<&Value>) -> String {
    v.map(json::string_of).unwrap_or_default()
}

/// The path of `name` in a folder at `parent` (both below the drive's root).
fn child_path(parent: Option<&str>, name: &str) -> Option<String> {
    parent.map(|p| format!("{p}/{name}"))
}

/// An open file object (§4.2) as an entry whose `extra` is its path when the parent's
/// is known; `None` for what a listing should not show (trashed, still uploading).
pub(crate) fn entry_of(it: &Value, parent_path: Option<&str>) -> Option<Entry> {
    let item: FileItem = serde_json::from_value(it.clone()).ok()?;
    if !item.visible() || item.name().is_empty() {
        return None;
    }
    Some(entry_of_item(&item, parent_path))
}

pub(crate) fn entry_of_item(item: &FileItem, parent_path: Option<&str>) -> Entry {
    let mut e = item.to_entry();
    e.set_extra(child_path(parent_path, e.name()));
    e
}

#[async_trait]
impl Drive for AliyunOpen {
    fn kind(&self) -> &'static str {
        NAME
    }

    fn rapid(&self) -> Option<&dyn RapidPut> {
        Some(self)
    }

    fn caps(&self) -> Caps {
        super::common::writable_caps(self.opts.rapid_upload)
    }

    async fn init(&self) -> DriveResult<()> {
        auth::start_with_retries(&self.mount, || self.start()).await
    }

    async fn root(&self) -> DriveResult<Entry> {
        let mut e = Entry::dir(self.opts.root_folder_id.clone(), "", UNIX_EPOCH);
        e.set_extra(self.root_path().await?);
        Ok(e)
    }

    async fn list(&self, dir: &Entry) -> DriveResult<Vec<Entry>> {
        self.list_dir(dir).await
    }

    async fn lookup(&self, parent: &Entry, name: &str) -> DriveResult<Option<Entry>> {
        self.lookup_child(parent, name).await
    }

    async fn link(&self, file: &Entry, _req: &LinkRequest) -> DriveResult<Link> {
        if file.is_dir {
            return Err(DriveError::IsADirectory);
        }
        let drive_id = self.drive_id().await?;
        let body = json!({"drive_id": drive_id, "file_id": file.id(), "expire_sec": self.opts.expire_sec});
        let v = self.api.post(Class::Link, "/adrive/v1.0/openFile/getDownloadUrl", &body, true).await?;
        let url = text(v.get("url"));
        if url.is_empty() {
            // A live photo has its streams under `streamsUrl` and no `url` (§5.2).
            return Err(DriveError::Unsupported("files without a single download URL (live photos)"));
        }
        // The answer's `expiration` is what counts (the app may get less than asked),
        // else the URL's own `x-oss-expires`, else what was asked.
        let expires_at = json::time(&text(v.get("expiration")))
            .or_else(|| crate::drivers::aliyun::common::url_expiry(&url))
            .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(self.opts.expire_sec));
        // Open-API links need no Referer (§5.2).
        Ok(Link { url: self.api.ep.rewrite(&url), headers: vec![], expires_at: Some(expires_at) })
    }

    async fn mkdir(&self, parent: &Entry, name: &str) -> DriveResult<Entry> {
        mount::check_name(name)?;
        self.create_folder(parent, name).await
    }

    async fn move_to(&self, entry: &Entry, new_parent: &Entry, new_name: &str) -> DriveResult<Entry> {
        mount::check_name(new_name)?;
        if entry.id() == self.opts.root_folder_id || entry.id() == "root" {
            return Err(DriveError::Forbidden("cannot move the mount's root".into()));
        }
        let parent = match self.get_file(entry.id()).await {
            Ok(v) => text(v.get("parent_file_id")),
            Err(e) => return Err(e),
        };
        if parent == new_parent.id() {
            if new_name != entry.name() {
                self.rename_id(entry.id(), new_name).await?;
            }
        } else {
            let rename = (new_name != entry.name()).then_some(new_name);
            self.move_id(entry.id(), new_parent.id(), rename).await?;
        }
        let mut e = entry.clone();
        e.set_name(new_name);
        e.set_extra(child_path(new_parent.extra(), new_name));
        Ok(e)
    }

    async fn copy_to(&self, entry: &Entry, new_parent: &Entry, new_name: &str) -> DriveResult<Entry> {
        mount::check_name(new_name)?;
        if entry.id() == new_parent.id() {
            return Err(DriveError::Forbidden("cannot copy a folder into itself".into()));
        }
        // The copy keeps the source's name: straight into the target when that name is
        // free there, else through a staging folder where it can be renamed first.
        let direct = match self.copy_id(entry, new_parent.id()).await {
            Ok(id) => Some(id),
            Err(DriveError::Exists) => None,
            Err(e) => return Err(e),
        };
        let id = match direct {
            Some(id) => {
                if new_name != entry.name() {
                    if let Err(e) = self.rename_id(&id, new_name).await {
                        let _ = self.remove_id(&id).await;
                        return Err(e);
                    }
                }
                id
            }
            None => self.copy_via_staging(entry, new_parent, new_name).await?,
        };
        self.entry_in(new_parent, &id).await
    }

    async fn remove(&self, entry: &Entry) -> DriveResult<()> {
        if entry.id() == "root" || entry.id() == self.opts.root_folder_id {
            return Err(DriveError::Forbidden("cannot remove the drive's root".into()));
        }
        self.remove_id(entry.id()).await
    }

    async fn put(&self, parent: &Entry, name: &str, up: Upload) -> DriveResult<Entry> {
        mount::check_name(name)?;
        self.upload(parent, name, &up).await
    }

    async fn quota(&self) -> DriveResult<Option<Quota>> {
        let v = self.api.post(Class::Other, "/adrive/v1.0/user/getSpaceInfo", &json!({}), true).await?;
        let sp = v.get("personal_space_info");
        let n = |k: &str| sp.and_then(|s| s.get(k)).and_then(Value::as_u64);
        Ok(Some(Quota { used: n("used_size").unwrap_or(0), total: n("total_size") }))
    }

    async fn refresh(&self) -> DriveResult<Duration> {
        if let Some(m) = self.api.creds.latched() {
            return Err(DriveError::AuthLost(m));
        }
        let (tok, gen) = self.api.creds.get();
        if tok.refresh_token.is_empty() {
            return Err(DriveError::AuthLost(self.no_token_message()));
        }
        let tok = if tok.due() { self.api.creds.refresh(gen).await?.grant } else { tok };
        let wait = tok.remaining().saturating_sub(tok.margin()).max(1);
        Ok(Duration::from_secs(wait))
    }
}

impl AliyunOpen {
    /// Start-up: a grant is there, the drive is found (the first call refreshes a pair
    /// from the config, which has no access token, and saves the rotation in the state
    /// file at once) and the root folder's path is known.
    async fn start(&self) -> DriveResult<()> {
        let (tok, _) = self.api.creds.get();
        if tok.refresh_token.is_empty() && tok.access_token.is_empty() {
            return Err(DriveError::AuthLost(self.no_token_message()));
        }
        self.drive_info().await?;
        self.root_path().await?;
        Ok(())
    }

    /// Copy under another name when the source's name is taken in the target: into a
    /// hidden folder made for it, renamed there, moved to the target; the folder goes.
    async fn copy_via_staging(&self, entry: &Entry, new_parent: &Entry, new_name: &str) -> DriveResult<String> {
        let stage_name = format!(".pandav-copy-{:016x}", rand::random::<u64>());
        let stage = self.create_folder(new_parent, &stage_name).await?;
        let r = async {
            let id = self.copy_id(entry, stage.id()).await?;
            if new_name != entry.name() {
                self.rename_id(&id, new_name).await?;
            }
            self.move_id(&id, new_parent.id(), None).await?;
            Ok::<_, DriveError>(id)
        }
        .await;
        // The staging folder goes in any case (with a failed copy in it); permanently,
        // so that it does not fill the recycle bin.
        let drive_id = self.drive_id().await?;
        let body = json!({"drive_id": drive_id, "file_id": stage.id()});
        if let Err(e) = async {
            let v = self.api.post(Class::Other, "/adrive/v1.0/openFile/delete", &body, true).await?;
            self.wait_task(&text(v.get("async_task_id"))).await
        }
        .await
        {
            tracing::warn!(mount = %self.mount, "could not remove the staging folder {stage_name:?}: {e}");
        }
        r
    }
}

/// Build the driver from its options (the registry's constructor).
pub fn build(options: toml::Table, ctx: &DriverCtx) -> anyhow::Result<Arc<dyn Drive>> {
    let opts: Options = crate::drivers::parse_options(options)?;
    Ok(Arc::new(AliyunOpen::new(opts, ctx)?))
}

/// The registry's refresher constructor (for the `pandav __refresh` helper process).
pub fn build_refresher(source: &MountSource) -> anyhow::Result<Box<dyn credentials::ErasedRefresh>> {
    let table: toml::Table = toml::from_str(&source.options)?;
    let opts: Options = crate::drivers::parse_options(table)?;
    check(&opts)?;
    let ep = Endpoints::new(opts.endpoints.clone())?;
    let client = crate::drivers::http::client();
    Ok(credentials::erase::<Tokens>(Arc::new(refresher(&client, &opts, &ep, &source.mount))))
}

/// The registry entry.
pub const ENTRY: crate::drivers::DriverEntry = crate::drivers::DriverEntry {
    name: NAME,
    about: "Aliyun Drive (alipan) through its Open platform (OAuth tokens that rotate)",
    default_policy: PolicyKind::Redirect,
    policies: crate::drivers::ALL_POLICIES,
    options: &[
        "client_id",
        "client_secret",
        "refresh_token",
        "use_online_api",
        "online_api",
        "api_url",
        "ticket_id",
        "user_id",
        "drive",
        "root_folder_id",
        "order_by",
        "order_direction",
        "rate_limit",
        "delete",
        "expire_sec",
        "rapid_upload",
        "endpoints",
    ],
    build,
    login: Some(crate::drivers::LoginEntry {
        command: "aliyundrive-open",
        about: "Aliyun Drive Open: QR code for the Aliyun Drive app (PKCE without a client secret)",
        run: login::login_entry,
    }),
    refresher: Some(build_refresher),
};

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(text: &str) -> anyhow::Result<Options> {
        let o: Options = crate::drivers::parse_options(toml::from_str(text)?)?;
        check(&o)?;
        Ok(o)
    }

    #[test]
    fn options_are_checked_with_the_key_named() {
        assert!(opts("client_id = \"abc\"").is_ok());
        assert!(opts("use_online_api = true").is_ok());
        let e = opts("").unwrap_err().to_string();
        assert!(e.contains("client_id"), "{e}");
        let e = opts("client_id = \"a\"\ndrive = \"sbox\"").unwrap_err().to_string();
        assert!(e.contains("drive"), "{e}");
        let e = opts("use_online_api = true\nonline_api = \"nope\"").unwrap_err().to_string();
        assert!(e.contains("online_api"), "{e}");
        let e = opts("use_online_api = true\nonline_api = \"tickstep\"").unwrap_err().to_string();
        assert!(e.contains("ticket_id"), "{e}");
        let e = opts("client_id = \"a\"\nexpire_sec = 20000").unwrap_err().to_string();
        assert!(e.contains("expire_sec"), "{e}");
        let e = opts("client_id = \"a\"\nroot_folder_id = \"../x\"").unwrap_err().to_string();
        assert!(e.contains("root_folder_id"), "{e}");
        let e = opts("client_id = \"a\"\nclient_secrt = \"x\"").unwrap_err().to_string();
        assert!(e.contains("client_secrt"), "{e}");
        assert!(opts("client_id = \"a\"\norder_direction = \"desc\"\norder_by = \"name_enhanced\"").is_ok());
    }

    #[test]
    fn online_api_urls_default_per_shape() {
        let o = opts("use_online_api = true").unwrap();
        assert_eq!(o.api_url(), login::OPENLIST_URL);
        let o = opts("use_online_api = true\nonline_api = \"messense\"").unwrap();
        assert_eq!(o.api_url(), login::MESSENSE_URL);
        let o = opts("use_online_api = true\nonline_api = \"alist\"\napi_url = \"https://x.example/t\"").unwrap();
        assert_eq!(o.api_url(), "https://x.example/t");
        let o = opts("use_online_api = true\nonline_api = \"tickstep\"\nticket_id = \"T\"\nuser_id = \"u\"").unwrap();
        assert_eq!(config_secret(&o), "T");
    }

    #[test]
    fn debug_hides_secrets() {
        let o = opts("client_id = \"a\"\nclient_secret = \"SECRET1\"\nrefresh_token = \"SECRET2\"").unwrap();
        let s = format!("{o:?}");
        assert!(!s.contains("SECRET"), "{s}");
    }

    #[test]
    fn file_items_become_entries_with_paths() {
        let it = json!({
            "drive_id": "1", "file_id": "606f010752c5091c6d674d4fae4664c1f6eef8ad", "parent_file_id": "root",
            "name": "a.txt", "type": "file", "size": 11, "content_hash": "2AAE6C35C94FCFB415DBE95F408B9CE91EE846ED",
            "content_hash_name": "sha1", "created_at": "2023-02-17T07:45:43.511Z", "updated_at": "2023-02-17T07:45:44.000Z"
        });
        let e = entry_of(&it, Some("")).unwrap();
        assert_eq!(e.name(), "a.txt");
        assert_eq!(e.size, 11);
        assert_eq!(e.extra(), Some("/a.txt"));
        assert_eq!(e.hashes().sha1.as_deref(), Some("2aae6c35c94fcfb415dbe95f408b9ce91ee846ed"));
        assert_eq!(e.modified, UNIX_EPOCH + Duration::from_secs(1676619944));
        assert_eq!(e.created, Some(UNIX_EPOCH + Duration::from_millis(1676619943511)));
        let d = entry_of(&json!({"file_id": "x", "name": "d", "type": "folder"}), None).unwrap();
        assert!(d.is_dir && d.extra().is_none() && d.size == 0);
    }
}
