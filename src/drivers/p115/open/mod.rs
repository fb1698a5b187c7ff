//! `driver = "115_open"`: the 115 Open Platform (OAuth tokens), per
//! `shared/reference/115-open.md`.
//!
//! Tokens rotate on every refresh and the old refresh token dies at once (ref §2.4), so
//! every refresh goes through the mount's [`Credentials`] (single flight, cross-process
//! lock, adopts a newer saved pair, persisted before use by one writer). A dead grant
//! (revoked, evicted by a newer login, expired) makes every call fail fast with
//! `AuthLost` and a `pandav login 115-open …` hint, without calling 115 again; the
//! driver resumes by itself when the state file gets a new token.

pub mod client;
pub mod login;
pub mod offline;
pub mod upload;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use dashmap::DashMap;
use serde::Deserialize;
use serde_json::Value;

use self::client::{value_string, value_u64, Api, ApiConfig, Endpoints, Req};
use self::login::Tokens;
use crate::drivers::DriverCtx;
use crate::vfs::credentials::{self, Credentials, MountSource};
use crate::vfs::*;

fn default_root() -> String {
    "0".into()
}
fn default_page_size() -> u32 {
    200
}
fn default_rate() -> f64 {
    3.0
}
fn default_api_url() -> String {
    client::BROKER_URL.into()
}

/// `[mounts.options]` of a `115_open` mount.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Refresh token from an authorization. Optional once `pandav login 115-open` saved
    /// tokens in the mount's state. Rotated tokens live in the state file; this value is
    /// never written back.
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    /// Folder id shown as the mount's root (`0` = the whole drive).
    #[serde(default = "default_root")]
    pub root_folder_id: String,
    /// Listing page size, 1..=1150 (ref §4.1).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Sort field: `file_name`, `file_size`, `user_utime`, `file_type`.
    #[serde(default)]
    pub order: Option<String>,
    #[serde(default)]
    pub asc: bool,
    /// Requests per second to proapi (token bucket, burst 1); 0 = unlimited.
    #[serde(default = "default_rate")]
    pub rate_limit: f64,
    /// `recycle` (default) or `permanent` (also empties the item from the recycle bin).
    #[serde(default)]
    pub delete: Option<String>,
    /// Refresh through the OpenList online token API (`api_url`) instead of passportapi.
    #[serde(default)]
    pub use_online_api: bool,
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// AppID for `pandav login 115-open` (the device-code flow).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Real host → base URL, e.g. `"proapi.115.com" = "http://127.0.0.1:8115/proapi"`.
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
    /// OSS multipart part size in bytes (default by file size, 20 MiB up to 128 GiB);
    /// files up to one part go in a single PUT.
    #[serde(default)]
    pub part_size: Option<u64>,
    /// User-Agent for API calls (downurl always uses the client's).
    #[serde(default)]
    pub user_agent: Option<String>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("refresh_token", &self.refresh_token.as_deref().map(login::redact))
            .field("root_folder_id", &self.root_folder_id)
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

const ORDERS: &[&str] = &["file_name", "file_size", "user_utime", "file_type"];
const PRE_HASH_LEN: u64 = 128 * 1024;

pub struct Open115 {
    pub(crate) api: Api,
    opts: Options,
    mount: String,
    permanent_delete: bool,
    /// Parent folder of entries seen in listings (for move and delete).
    parents: DashMap<String, String>,
    /// Cached STS credentials for OSS.
    pub(crate) sts: tokio::sync::Mutex<Option<upload::Sts>>,
    /// Multipart uploads that can be resumed, by (sha1, size, target).
    pub(crate) resumable: DashMap<String, upload::Resumable>,
}

impl Open115 {
    pub fn new(opts: Options, ctx: &DriverCtx) -> anyhow::Result<Open115> {
        let ep = Endpoints::new(opts.endpoints.clone())?;
        if !(1..=1150).contains(&opts.page_size) {
            anyhow::bail!("page_size must be between 1 and 1150 (got {})", opts.page_size);
        }
        if let Some(o) = &opts.order {
            if !ORDERS.contains(&o.as_str()) {
                anyhow::bail!("order {o:?} is not one of {}", ORDERS.join(", "));
            }
        }
        let permanent_delete = match opts.delete.as_deref() {
            None | Some("recycle") => false,
            Some("permanent") => true,
            Some(o) => anyhow::bail!("delete must be \"recycle\" or \"permanent\" (got {o:?})"),
        };
        if opts.root_folder_id.is_empty() || !opts.root_folder_id.bytes().all(|b| b.is_ascii_digit()) {
            anyhow::bail!("root_folder_id must be a numeric folder id (got {:?})", opts.root_folder_id);
        }
        if !opts.rate_limit.is_finite() || opts.rate_limit < 0.0 {
            anyhow::bail!("rate_limit must be a number of requests per second, 0 for no limit");
        }
        if opts.use_online_api && !(opts.api_url.starts_with("https://") || opts.api_url.starts_with("http://")) {
            anyhow::bail!("api_url must be an http(s) URL");
        }
        if let Some(p) = opts.part_size {
            if p < 100 * 1024 {
                anyhow::bail!("part_size must be at least 102400 bytes (an OSS limit)");
            }
        }
        let secret = opts.refresh_token.clone().unwrap_or_default();
        let from_config = Tokens {
            access_token: opts.access_token.clone().unwrap_or_default(),
            refresh_token: secret.clone(),
            expires_at: 0,
            issued_at: 0,
        };
        // One client for the mount: API calls, token refreshes, OSS uploads.
        let client = crate::drivers::http::client();
        let creds = Credentials::restore(&ctx.state, &secret, from_config)?
            .with_refresher(Arc::new(refresher(&client, &opts, &ep, &ctx.mount_path)), ctx.source.clone());
        let api = Api::new(ApiConfig {
            ep,
            rate_limit: opts.rate_limit,
            creds,
            mount: ctx.mount_path.clone(),
            backoff: Default::default(),
            client,
        });
        Ok(Open115 {
            api,
            permanent_delete,
            mount: ctx.mount_path.clone(),
            opts,
            parents: DashMap::new(),
            sts: tokio::sync::Mutex::new(None),
            resumable: DashMap::new(),
        })
    }

    /// Shorten back-off waits (tests).
    pub fn set_backoff(&mut self, b: client::Backoff) {
        self.api.set_backoff(b);
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The tokens in force (for tests and `login`; never log them).
    pub fn tokens(&self) -> Arc<Tokens> {
        self.api.creds.get().0
    }

    /// Successful refreshes made by this driver.
    pub fn refresh_count(&self) -> u64 {
        self.api.creds.refresh_count()
    }

    pub(crate) fn ua(&self) -> Option<&str> {
        self.opts.user_agent.as_deref()
    }

    pub(crate) async fn call(&self, mut req: Req<'_>) -> DriveResult<client::ProEnvelope> {
        if req.user_agent.is_none() {
            req.user_agent = self.ua();
        }
        self.api.call(&req).await
    }

    fn no_token_message(&self) -> String {
        format!(
            "115 Open: no refresh token: set mounts.options.refresh_token or run `pandav login 115-open --config <your config> --mount {}`",
            self.mount
        )
    }

    /// Details of one item by id (`/open/folder/get_info`); `None` when it does not exist.
    pub async fn get_info(&self, id: &str) -> DriveResult<Option<Value>> {
        match self.call(Req::get("/open/folder/get_info", vec![("file_id", id.to_string())])).await {
            Ok(env) if env.data.is_object() => Ok(Some(env.data)),
            Ok(_) => Ok(None), // `data: []` = not found (ref §4.2)
            Err(DriveError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn entry_from_item(&self, it: &Value) -> Option<Entry> {
        let id = value_string(it.get("fid")?);
        if id.is_empty() {
            return None;
        }
        let name = value_string(it.get("fn").unwrap_or(&Value::Null));
        let is_dir = value_string(it.get("fc").unwrap_or(&Value::Null)) == "0";
        let t = |k: &str| it.get(k).map(value_u64).unwrap_or(0);
        let mtime = [t("upt"), t("uet"), t("uppt")].into_iter().find(|&x| x > 0).unwrap_or(0);
        let sha1 = value_string(it.get("sha1").unwrap_or(&Value::Null)).to_ascii_lowercase();
        let pc = value_string(it.get("pc").unwrap_or(&Value::Null));
        let created = t("uppt");
        let size = if is_dir { 0 } else { it.get("fs").map(value_u64).unwrap_or(0) };
        let e = Entry::new(id, name, is_dir, size, UNIX_EPOCH + Duration::from_secs(mtime))
            .with_created((created > 0).then(|| UNIX_EPOCH + Duration::from_secs(created)));
        Some(
            e.with_hashes(Hashes { sha1: (!is_dir && sha1.len() == 40).then_some(sha1), md5: None })
                .with_extra((!pc.is_empty()).then_some(pc)),
        )
    }

    /// Every child of folder `cid`, all pages (ref §4.1).
    pub async fn list_id(&self, cid: &str) -> DriveResult<Vec<Entry>> {
        let mut out: Vec<Entry> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut offset: u64 = 0;
        loop {
            let mut params = vec![
                ("cid", cid.to_string()),
                ("limit", self.opts.page_size.to_string()),
                ("offset", offset.to_string()),
                ("show_dir", "1".to_string()),
                ("asc", if self.opts.asc { "1" } else { "0" }.to_string()),
                ("cur", "1".to_string()),
            ];
            match &self.opts.order {
                Some(o) => {
                    params.push(("o", o.clone()));
                    // 0 = remembered order; 2 applies `o`/`asc` (p115client, ref §4.1).
                    params.push(("custom_order", "2".into()));
                }
                None => params.push(("custom_order", "0".into())),
            }
            let env = self.call(Req::get("/open/ufile/files", params)).await?;
            // A folder that does not exist answers with another folder's listing (the
            // root): compare the echoed `cid` (ref §4.1, §14.7).
            if let Some(got) = env.raw.get("cid") {
                let got = value_string(got);
                if !got.is_empty() && got != cid {
                    return Err(DriveError::NotFound);
                }
            }
            let count = env.raw.get("count").map(value_u64).unwrap_or(0);
            let items = env.data.as_array().cloned().unwrap_or_default();
            let n = items.len() as u64;
            for it in &items {
                if let Some(e) = self.entry_from_item(it) {
                    if seen.insert(e.id().to_string()) {
                        self.parents.insert(e.id().to_string(), cid.to_string());
                        out.push(e);
                    }
                }
            }
            offset += n;
            if n == 0 || offset >= count || out.len() as u64 >= count {
                break;
            }
        }
        Ok(out)
    }

    /// The parent id of `id`: from listings, else from `get_info`'s `paths`.
    async fn parent_of(&self, id: &str) -> DriveResult<Option<String>> {
        if let Some(p) = self.parents.get(id) {
            return Ok(Some(p.clone()));
        }
        let Some(info) = self.get_info(id).await? else {
            return Err(DriveError::NotFound);
        };
        Ok(info
            .get("paths")
            .and_then(|p| p.as_array())
            .and_then(|a| a.last())
            .and_then(|l| l.get("file_id"))
            .map(value_string))
    }

    async fn rename_id(&self, id: &str, name: &str) -> DriveResult<()> {
        self.call(Req::post(
            "/open/ufile/update",
            vec![("file_id", id.to_string()), ("file_name", name.to_string())],
            true,
        ))
        .await?;
        Ok(())
    }

    async fn move_ids(&self, ids: &str, to: &str) -> DriveResult<()> {
        self.call(Req::post("/open/ufile/move", vec![("file_ids", ids.to_string()), ("to_cid", to.to_string())], true))
            .await?;
        Ok(())
    }

    pub(crate) async fn delete_id(&self, id: &str, parent: Option<&str>) -> DriveResult<()> {
        let mut params = vec![("file_ids", id.to_string())];
        if let Some(p) = parent {
            params.push(("parent_id", p.to_string()));
        }
        match self.call(Req::post("/open/ufile/delete", params, true)).await {
            Ok(_) | Err(DriveError::NotFound) => {}
            // Already gone (ref §11: 231011 "file does not exist").
            Err(e) if e.code() == Some(&ProviderCode::Num(231011)) => {}
            Err(e) => return Err(e),
        }
        self.parents.remove(id);
        Ok(())
    }

    /// Remove an item from the recycle bin for good (`rb/list` then `rb/del`).
    async fn purge(&self, entry: &Entry) -> DriveResult<()> {
        let mut offset = 0u64;
        for _ in 0..50 {
            let env = self
                .call(Req::get("/open/rb/list", vec![("limit", "200".into()), ("offset", offset.to_string())]))
                .await?;
            let Some(obj) = env.data.as_object() else { return Ok(()) };
            let count = obj.get("count").map(value_u64).unwrap_or(0);
            let mut n = 0u64;
            for (k, it) in obj {
                if !it.is_object() {
                    continue;
                }
                n += 1;
                let pc = it.get("pick_code").map(value_string).unwrap_or_default();
                let id = it.get("id").map(value_string).unwrap_or_else(|| k.clone());
                let matches = (entry.extra().is_some_and(|p| p == pc) && !pc.is_empty()) || id == entry.id();
                if matches {
                    self.call(Req::post("/open/rb/del", vec![("tid", id)], true)).await?;
                    return Ok(());
                }
            }
            offset += n;
            if n == 0 || offset >= count {
                break;
            }
        }
        tracing::debug!(mount = %self.mount, "item not found in the recycle bin; nothing to purge");
        Ok(())
    }

    fn now() -> SystemTime {
        SystemTime::now()
    }
}

#[async_trait]
impl Offline for Open115 {
    async fn add_tasks(&self, urls: &[String], dir: Option<&Entry>) -> DriveResult<Vec<OfflineAdded>> {
        Open115::offline_add(self, urls, dir.map(|d| d.id())).await
    }

    async fn tasks(&self) -> DriveResult<OfflineTasks> {
        Ok(OfflineTasks { tasks: Open115::offline_list(self).await?, ..OfflineTasks::default() })
    }

    async fn remove_tasks(&self, hashes: &[String], delete_files: bool) -> DriveResult<()> {
        for h in hashes {
            Open115::offline_remove(self, h, delete_files).await?;
        }
        Ok(())
    }
}

/// Copies from other mounts: upload/init with the source's SHA-1 and preid, the second
/// check's range read from the source, the body from the source only if 115 wants it.
#[async_trait]
impl RapidPut for Open115 {
    async fn put_hashed(
        &self,
        parent: &Entry,
        name: &str,
        src: &Hashed,
        mode: RapidMode,
    ) -> DriveResult<Option<Entry>> {
        mount::check_name(name)?;
        let e = self.upload(parent, name, src, mode).await?;
        if let Some(e) = &e {
            self.parents.insert(e.id().to_string(), parent.id().to_string());
        }
        Ok(e)
    }
}

#[async_trait]
impl Drive for Open115 {
    fn kind(&self) -> &'static str {
        "115_open"
    }

    fn rapid(&self) -> Option<&dyn RapidPut> {
        Some(self)
    }

    fn offline(&self) -> Option<&dyn Offline> {
        Some(self)
    }

    fn caps(&self) -> Caps {
        Caps {
            links: true,
            rapid_upload_sha1: true,
            rapid_put: true,
            server_side_copy: true,
            offline_download: true,
            refresh: true,
            ..Caps::default()
        }
    }

    async fn init(&self) -> DriveResult<()> {
        let (tok, gen) = self.api.creds.get();
        if tok.refresh_token.is_empty() {
            return Err(DriveError::AuthLost(self.no_token_message()));
        }
        if tok.access_token.is_empty() || tok.expires_at == 0 {
            // A token from the config has an unknown age: start with a fresh pair, which
            // also moves the rotation into the state file right away.
            match self.api.refresh(gen).await {
                Ok(_) => {}
                Err(DriveError::RateLimited { .. }) if !tok.access_token.is_empty() => {}
                Err(e) => return Err(e),
            }
        }
        // Validates the pair (refreshing once if needed), as OpenList's Init does. The
        // mount calls init once, so a passing upstream hiccup gets a few more tries.
        let mut tries = 0;
        loop {
            match self.call(Req::get("/open/user/info", vec![])).await {
                Ok(_) => break,
                Err(DriveError::Upstream(m)) if tries < 3 => {
                    tries += 1;
                    tracing::info!(mount = %self.mount, "115 Open start-up check failed ({m}), retrying");
                    tokio::time::sleep(Duration::from_secs(tries)).await;
                }
                Err(e) => return Err(e),
            }
        }
        if self.opts.root_folder_id != "0" {
            match self.get_info(&self.opts.root_folder_id).await? {
                Some(info) if value_string(info.get("file_category").unwrap_or(&Value::Null)) != "1" => {}
                Some(_) => return Err(DriveError::NotADirectory),
                None => return Err(DriveError::NotFound),
            }
        }
        Ok(())
    }

    async fn root(&self) -> DriveResult<Entry> {
        Ok(Entry::dir(self.opts.root_folder_id.clone(), "", UNIX_EPOCH))
    }

    async fn list(&self, dir: &Entry) -> DriveResult<Vec<Entry>> {
        self.list_id(dir.id()).await
    }

    async fn link(&self, file: &Entry, req: &LinkRequest) -> DriveResult<Link> {
        if file.is_dir {
            return Err(DriveError::IsADirectory);
        }
        let pc = match file.extra() {
            Some(pc) => pc.to_string(),
            None => match self.get_info(file.id()).await? {
                Some(info) => value_string(info.get("pick_code").unwrap_or(&Value::Null)),
                None => return Err(DriveError::NotFound),
            },
        };
        let r = Req {
            method: client::Method::Post,
            path: "/open/ufile/downurl",
            params: vec![("pick_code", pc)],
            user_agent: Some(req.user_agent.as_str()),
            idempotent: true,
        };
        let env = self.api.call(&r).await?;
        let item = match env.data.get(file.id()) {
            Some(v) => v.clone(),
            None => match env.data.as_object().and_then(|o| o.values().next()) {
                // One pick code asked, one answer: take it even if keyed differently.
                Some(v) if env.data.as_object().map(|o| o.len()) == Some(1) => v.clone(),
                _ => return Err(DriveError::NotFound),
            },
        };
        let url = item.get("url").and_then(|u| u.get("url")).map(value_string).unwrap_or_default();
        if url.is_empty() {
            return Err(DriveError::IsADirectory);
        }
        let expires_at =
            query_value(&url, "t").and_then(|t| t.parse::<u64>().ok()).map(|t| UNIX_EPOCH + Duration::from_secs(t));
        let mut headers = vec![];
        if !req.user_agent.is_empty() {
            headers.push(("User-Agent".to_string(), req.user_agent.clone()));
        }
        Ok(Link { url: self.api.ep.rewrite(&url), headers, expires_at })
    }

    async fn mkdir(&self, parent: &Entry, name: &str) -> DriveResult<Entry> {
        mount::check_name(name)?;
        let env = self
            .call(Req::post(
                "/open/folder/add",
                vec![("pid", parent.id().to_string()), ("file_name", name.to_string())],
                false,
            ))
            .await?;
        let id = env.data.get("file_id").map(value_string).unwrap_or_default();
        if id.is_empty() {
            return Err(DriveError::upstream("115 Open folder/add answered without a file_id"));
        }
        self.parents.insert(id.clone(), parent.id().to_string());
        let mut e = Entry::dir(id, name, Self::now());
        e.created = Some(e.modified);
        Ok(e)
    }

    async fn move_to(&self, entry: &Entry, new_parent: &Entry, new_name: &str) -> DriveResult<Entry> {
        mount::check_name(new_name)?;
        // 115 keeps same-name items side by side (ref §7.6): refuse instead of making a twin.
        if self.list_id(new_parent.id()).await?.iter().any(|e| e.name() == new_name && e.id() != entry.id()) {
            return Err(DriveError::Exists);
        }
        let parent = self.parent_of(entry.id()).await?;
        if parent.as_deref() != Some(new_parent.id()) {
            self.move_ids(entry.id(), new_parent.id()).await?;
            self.parents.insert(entry.id().to_string(), new_parent.id().to_string());
        }
        if new_name != entry.name() {
            self.rename_id(entry.id(), new_name).await?;
        }
        let mut e = entry.clone();
        e.set_name(new_name);
        Ok(e)
    }

    async fn copy_to(&self, entry: &Entry, new_parent: &Entry, new_name: &str) -> DriveResult<Entry> {
        mount::check_name(new_name)?;
        let before: std::collections::HashSet<String> =
            self.list_id(new_parent.id()).await?.into_iter().map(|e| e.id().to_string()).collect();
        self.call(Req::post(
            "/open/ufile/copy",
            vec![("pid", new_parent.id().to_string()), ("file_id", entry.id().to_string()), ("nodupli", "0".into())],
            false,
        ))
        .await?;
        let after = self.list_id(new_parent.id()).await?;
        let fresh: Vec<&Entry> = after.iter().filter(|e| !before.contains(e.id())).collect();
        let copy = fresh
            .iter()
            .find(|e| e.name() == entry.name() && e.is_dir == entry.is_dir)
            .or_else(|| fresh.iter().find(|e| e.is_dir == entry.is_dir && (e.is_dir || e.size == entry.size)))
            .map(|e| (*e).clone())
            .ok_or_else(|| DriveError::upstream("115 Open copy: the copy did not show up in the target folder"))?;
        let mut copy = copy;
        if copy.name() != new_name {
            self.rename_id(copy.id(), new_name).await?;
            copy.set_name(new_name);
        }
        Ok(copy)
    }

    async fn remove(&self, entry: &Entry) -> DriveResult<()> {
        if entry.id() == "0" {
            return Err(DriveError::Forbidden("cannot remove the drive's root".into()));
        }
        let parent = self.parents.get(entry.id()).map(|p| p.clone());
        self.delete_id(entry.id(), parent.as_deref()).await?;
        if self.permanent_delete {
            self.purge(entry).await?;
        }
        Ok(())
    }

    async fn put(&self, parent: &Entry, name: &str, up: Upload) -> DriveResult<Entry> {
        mount::check_name(name)?;
        // 115 keeps same-name files side by side (ref §7.6): upload first, then remove
        // the old one, so a failed upload leaves it intact.
        let old: Vec<Entry> = self.list_id(parent.id()).await?.into_iter().filter(|e| e.name() == name).collect();
        if old.iter().any(|e| e.is_dir) {
            return Err(DriveError::IsADirectory);
        }
        let src = transfer::hashed_upload(&up);
        let e = self
            .upload(parent, name, &src, RapidMode::OrUpload)
            .await?
            .ok_or_else(|| DriveError::upstream("115 Open upload: no file was made"))?;
        for o in old.iter().filter(|o| o.id() != e.id()) {
            if let Err(err) = self.delete_id(o.id(), Some(parent.id())).await {
                tracing::warn!(mount = %self.mount, file = %name, "uploaded, but the old copy could not be removed: {err}");
            }
        }
        self.parents.insert(e.id().to_string(), parent.id().to_string());
        Ok(e)
    }

    async fn quota(&self) -> DriveResult<Option<Quota>> {
        let env = self.call(Req::get("/open/user/info", vec![])).await?;
        let sp = env.data.get("rt_space_info");
        let size = |k: &str| sp.and_then(|s| s.get(k)).and_then(|s| s.get("size")).map(value_u64);
        Ok(Some(Quota { used: size("all_use").unwrap_or(0), total: size("all_total") }))
    }

    async fn refresh(&self) -> DriveResult<Duration> {
        if let Some(m) = self.api.dead_check().await {
            return Err(DriveError::AuthLost(m));
        }
        let (tok, gen) = self.api.creds.get();
        if tok.refresh_token.is_empty() {
            return Err(DriveError::AuthLost(self.no_token_message()));
        }
        let tok = if tok.due() { self.api.refresh(gen).await? } else { tok };
        let wait = tok.remaining().saturating_sub(tok.margin()).max(1);
        Ok(Duration::from_secs(wait))
    }
}

/// One query parameter of a URL (not decoded; used for numeric values).
fn query_value(url: &str, key: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| v.to_string())
    })
}

/// Build the driver from its options (the registry's constructor).
pub fn build(options: toml::Table, ctx: &DriverCtx) -> anyhow::Result<Arc<dyn Drive>> {
    let opts: Options = crate::drivers::parse_options(options)?;
    Ok(Arc::new(Open115::new(opts, ctx)?))
}

/// How a mount with these options rotates its tokens.
fn refresher(client: &reqwest::Client, opts: &Options, ep: &Endpoints, mount: &str) -> login::Refresher {
    let via =
        if opts.use_online_api { login::RefreshVia::Broker(opts.api_url.clone()) } else { login::RefreshVia::Passport };
    login::Refresher { http: client.clone(), ep: ep.clone(), via, mount: mount.to_string() }
}

/// The registry's refresher constructor (for the `pandav __refresh` helper process).
pub fn build_refresher(source: &MountSource) -> anyhow::Result<Box<dyn credentials::ErasedRefresh>> {
    let table: toml::Table = toml::from_str(&source.options)?;
    let opts: Options = crate::drivers::parse_options(table)?;
    let ep = Endpoints::new(opts.endpoints.clone())?;
    let client = crate::drivers::http::client();
    Ok(credentials::erase::<Tokens>(Arc::new(refresher(&client, &opts, &ep, &source.mount))))
}

/// The registry entry.
pub const ENTRY: crate::drivers::DriverEntry = crate::drivers::DriverEntry {
    name: "115_open",
    about: "115 through the 115 Open platform (OAuth tokens that rotate)",
    default_policy: PolicyKind::Redirect,
    policies: crate::drivers::ALL_POLICIES,
    options: &[
        "refresh_token",
        "access_token",
        "root_folder_id",
        "page_size",
        "order",
        "asc",
        "rate_limit",
        "delete",
        "use_online_api",
        "api_url",
        "client_id",
        "endpoints",
        "part_size",
        "user_agent",
    ],
    build,
    login: Some(crate::drivers::LoginEntry {
        command: "115-open",
        about: "115 Open: PKCE device-code flow (scan the QR code with the 115 app)",
        run: login::login_entry,
    }),
    refresher: Some(build_refresher),
};
