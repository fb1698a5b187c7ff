//! `driver = "115"`: 115 Cloud through its web (cookie) API, per
//! `shared/reference/115-web.md`.
//!
//! - `mod.rs`: options and the `Drive` impl.
//! - `login.rs`: the QR-code login and `pandav login 115`.
//! - `upload.rs`: initupload (ec115), rapid upload, second-round check, OSS upload.
//! - `offline.rs`: offline download tasks.
//! - `../common/`: the web-API client (wire types, envelopes, error codes), the cookie,
//!   crypto and OSS, shared with `115_share`.
//!
//! Options (`[mounts.options]`):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `cookie` | — | `UID=…; CID=…; SEID=…; KID=…` (a trailing `;` is fine). May be left out after `pandav login 115`; a saved login that descends from the configured cookie wins over it. Never logged. |
//! | `root_folder_id` | `"0"` | folder id shown as the mount's root |
//! | `page_size` | 1000 | listing page size, 1..=1150 |
//! | `order` / `asc` | `user_ptime` / `true` | listing order: `file_name`, `file_size`, `file_type`, `user_ptime`, `user_utime`, `user_otime` |
//! | `rate_limit` | 2.0 | API requests per second (0 = unpaced) |
//! | `delete` | `recycle` | `recycle` (to the recycle bin) or `permanent` (bin emptied of the item too) |
//! | `recycle_password` | — | the recycle bin's password, for `delete = "permanent"` when one is set |
//! | `app_version` | asked from appversion.115.com, else 35.6.0.3 | the 115 client version in User-Agents and upload tokens |
//! | `multipart_threshold` | 10485760 | uploads at or above this many bytes go to OSS in parts |
//! | `retries` / `retry_base_ms` / `throttle_cooldown_secs` | 4 / 1000 / 60 | retry and throttle tuning |
//! | `endpoints` | — | table `host = "base URL"` replacing `https://host` for any host the driver calls: `webapi.115.com`, `proapi.115.com`, `aps.115.com`, `my.115.com`, `passportapi.115.com`, `qrcodeapi.115.com`, `uplb.115.com`, `lixian.115.com`, `appversion.115.com`, and OSS: `<bucket>.oss-cn-shenzhen.aliyuncs.com` (virtual-hosted) or `oss-cn-shenzhen.aliyuncs.com` (path-style `/<bucket>/<object>`) |
//! | `m115_test_modulus` | — | TEST ONLY: hex RSA modulus replacing 115's m115 key (for an emulator holding the matching private key) |
//! | `ec115_server_public_key` | — | TEST ONLY: hex P-224 public key (X‖Y or SEC1) replacing 115's upload ECDH key |

pub mod login;
pub mod offline;
pub mod upload;

use super::common::{auth_login, build_http, build_rsa, de_id, default_rate, root_id, yes};
pub use super::common::{client, crypto};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::bail;
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use self::client::{fstr, get, hosts, Api, ApiConfig, Page};
use crate::drivers::http::{self, Http, RetryPolicy, Secret};
use crate::drivers::DriverCtx;
use crate::vfs::*;

/// Most items one `/files` page may ask for (§2.1).
pub const MAX_PAGE_SIZE: u32 = 1150;
const ORDERS: &[&str] = &["file_name", "file_size", "file_type", "user_ptime", "user_utime", "user_otime"];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeleteMode {
    #[default]
    Recycle,
    Permanent,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P115Options {
    #[serde(default)]
    pub cookie: Secret,
    #[serde(default = "root_id", deserialize_with = "de_id")]
    pub root_folder_id: String,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    #[serde(default = "default_order")]
    pub order: String,
    #[serde(default = "yes")]
    pub asc: bool,
    #[serde(default = "default_rate")]
    pub rate_limit: f64,
    #[serde(default)]
    pub delete: DeleteMode,
    #[serde(default)]
    pub recycle_password: Option<Secret>,
    #[serde(default)]
    pub app_version: Option<String>,
    #[serde(default = "default_threshold")]
    pub multipart_threshold: u64,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub retry_base_ms: Option<u64>,
    #[serde(default)]
    pub throttle_cooldown_secs: Option<u64>,
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
    /// TEST ONLY.
    #[serde(default)]
    pub m115_test_modulus: Option<String>,
    /// TEST ONLY.
    #[serde(default)]
    pub ec115_server_public_key: Option<String>,
}

fn default_page_size() -> u32 {
    1000
}
fn default_order() -> String {
    "user_ptime".into()
}
fn default_threshold() -> u64 {
    10 * 1024 * 1024
}

pub struct P115Drive {
    pub api: Arc<Api>,
    /// OSS calls: same endpoints and retries, not paced by the API rate limit.
    oss: Http,
    root_id: String,
    page_size: u32,
    order: String,
    asc: bool,
    delete: DeleteMode,
    recycle_password: Option<Secret>,
    multipart_threshold: u64,
    ec_server: crypto::ec115::ServerPublicKey,
    upload_info: tokio::sync::Mutex<Option<upload::UploadInfo>>,
    /// One mutation at a time (p115client: don't run them concurrently).
    mutate: tokio::sync::Mutex<()>,
    /// Listings the driver consults itself (name checks before writes): kept briefly and
    /// patched by its own writes, so a burst of uploads into a big folder lists it once.
    own_lists: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Vec<Entry>)>>,
}

/// How long the driver trusts a listing for its own name checks.
const OWN_LIST_TTL: Duration = Duration::from_secs(10);

impl P115Drive {
    pub fn new(opts: P115Options, ctx: &DriverCtx) -> anyhow::Result<P115Drive> {
        if opts.page_size == 0 || opts.page_size > MAX_PAGE_SIZE {
            bail!("page_size must be 1..={MAX_PAGE_SIZE} (115's maximum)");
        }
        if !ORDERS.contains(&opts.order.as_str()) {
            bail!("order {:?} is not one of {}", opts.order, ORDERS.join(", "));
        }
        if opts.root_folder_id.is_empty() || !opts.root_folder_id.bytes().all(|b| b.is_ascii_digit()) {
            bail!("root_folder_id must be a numeric folder id (\"0\" is the root)");
        }
        if !opts.cookie.is_empty() {
            login::Cookie::parse(opts.cookie.expose()).map_err(|e| anyhow::anyhow!("cookie: {e}"))?;
        }
        let http = build_http(
            opts.endpoints.clone(),
            opts.rate_limit,
            opts.retries,
            opts.retry_base_ms,
            opts.throttle_cooldown_secs,
        )?;
        // OSS: same client and retries, not paced by the API rate limit, no cool-down.
        let oss = http.sibling(0.0, RetryPolicy { cooldown: Duration::ZERO, ..http.retry });
        let rsa = build_rsa(opts.m115_test_modulus.as_deref())?;
        let ec_server = match &opts.ec115_server_public_key {
            Some(k) => crypto::ec115::ServerPublicKey::from_hex(k)
                .map_err(|e| anyhow::anyhow!("ec115_server_public_key: {e}"))?,
            None => crypto::ec115::ServerPublicKey::default_115(),
        };
        let api = Api::new(ApiConfig {
            http,
            rsa,
            login: auth_login(&ctx.state, opts.cookie.expose())?,
            mount_path: ctx.mount_path.clone(),
            app_version: opts.app_version.clone(),
        });
        Ok(P115Drive {
            api: Arc::new(api),
            oss,
            root_id: opts.root_folder_id,
            page_size: opts.page_size,
            order: opts.order,
            asc: opts.asc,
            delete: opts.delete,
            recycle_password: opts.recycle_password,
            multipart_threshold: opts.multipart_threshold.max(100 * 1024),
            ec_server,
            upload_info: tokio::sync::Mutex::new(None),
            mutate: tokio::sync::Mutex::new(()),
            own_lists: Default::default(),
        })
    }

    /// All items of folder `cid` (raw), paging until `count` is reached. A folder that
    /// does not exist is answered by 115 with the root's listing: the echoed `cid` tells.
    pub async fn list_raw(&self, cid: &str) -> DriveResult<(Vec<Value>, Value)> {
        let mut out: Vec<Value> = Vec::new();
        let mut offset = 0u64;
        let limit = self.page_size;
        let (mut order, mut asc) = (self.order.clone(), self.asc);
        let mut first: Option<Value> = None;
        let mut order_retry = true;
        loop {
            let v = match self.api.files_page(cid, offset, limit, &order, asc).await? {
                Page::Items(v) => v,
                Page::OrderRejected { order: o, asc: a } if order_retry => {
                    tracing::info!(folder = cid, "115 refused order {order}; listing by {o}");
                    (order, asc) = (o, a);
                    order_retry = false;
                    continue;
                }
                Page::OrderRejected { .. } => return Err(DriveError::upstream("115 list: order not supported")),
            };
            let echoed = fstr(&v, "cid").or_else(|| {
                get(&v, "path").and_then(|p| p.as_array()).and_then(|p| p.last()).and_then(|l| fstr(l, "cid"))
            });
            if let Some(e) = echoed {
                if e != cid {
                    return Err(DriveError::NotFound);
                }
            }
            let count = client::fnum(&v, "count").unwrap_or(0).max(0) as u64;
            let data = match get(&v, "data") {
                Some(Value::Array(a)) => a.clone(),
                _ => vec![],
            };
            let got = data.len();
            out.extend(data);
            let resp_offset = client::fnum(&v, "offset").map(|o| o.max(0) as u64).unwrap_or(offset);
            if first.is_none() {
                first = Some(v);
            }
            offset = resp_offset + limit as u64;
            if offset >= count || got == 0 {
                break;
            }
        }
        Ok((out, first.unwrap_or(Value::Null)))
    }

    fn entries(items: &[Value]) -> Vec<Entry> {
        let mut seen = std::collections::HashSet::new();
        items
            .iter()
            .filter_map(client::entry_from_item)
            // A page boundary shifted by a concurrent change can repeat an item.
            .filter(|e| seen.insert((e.is_dir, e.id().to_string())))
            .collect()
    }

    /// The entry of an id, as 115 describes it now.
    pub async fn info(&self, id: &str) -> DriveResult<Entry> {
        let v = self.api.get_info("file_id", id).await?;
        client::entry_from_item(&v).ok_or_else(|| DriveError::upstream("115 get_info: unreadable item"))
    }

    async fn rename_id(&self, id: &str, name: &str) -> DriveResult<()> {
        let key = format!("files_new_name[{id}]");
        let body = client::Body::Form(http::form(&[("fid", id), ("file_name", name), (&key, name)]));
        let (v, _) = self
            .api
            .call_raw("rename", reqwest::Method::POST, hosts::WEBAPI, "/files/batch_rename", body, None, false)
            .await?;
        match client::envelope_error(&v) {
            None => Ok(()),
            // Nothing changed: p115client counts it as success.
            Some(e) if client::is_unchanged(&e) => Ok(()),
            Some(e) => Err(self.api.api_error(&e, "rename")),
        }
    }

    async fn move_id(&self, id: &str, pid: &str) -> DriveResult<()> {
        self.api.post_form("move", hosts::WEBAPI, "/files/move", &[("pid", pid), ("fid[0]", id)]).await.map(|_| ())
    }

    /// Children named `name` in `dir` (from a listing at most [`OWN_LIST_TTL`] old).
    async fn named(&self, dir: &str, name: &str) -> DriveResult<Vec<Entry>> {
        let cached = {
            let m = self.own_lists.lock().unwrap();
            m.get(dir).filter(|(at, _)| at.elapsed() < OWN_LIST_TTL).map(|(_, l)| l.clone())
        };
        let list = match cached {
            Some(l) => l,
            None => {
                let l = Self::entries(&self.list_raw(dir).await?.0);
                self.own_store(dir, l.clone());
                l
            }
        };
        Ok(list.into_iter().filter(|e| e.name() == name).collect())
    }

    fn own_store(&self, dir: &str, list: Vec<Entry>) {
        let mut m = self.own_lists.lock().unwrap();
        if m.len() > 256 {
            m.retain(|_, (at, _)| at.elapsed() < OWN_LIST_TTL);
        }
        m.insert(dir.to_string(), (std::time::Instant::now(), list));
    }

    fn own_add(&self, dir: &str, e: &Entry) {
        if let Some((_, l)) = self.own_lists.lock().unwrap().get_mut(dir) {
            l.retain(|x| x.id() != e.id());
            l.push(e.clone());
        }
    }

    fn own_forget(&self, ids: &[String]) {
        let mut m = self.own_lists.lock().unwrap();
        for (_, l) in m.values_mut() {
            l.retain(|x| !ids.iter().any(|i| i == x.id()));
        }
        for id in ids {
            m.remove(id);
        }
    }

    /// Make sure `id` is called `name`: rename it unless `current` already is `name`,
    /// then check what 115 made of it (it may rename on a collision) and insist once.
    pub async fn settle_name(&self, id: &str, current: &str, name: &str) -> DriveResult<Entry> {
        if current != name {
            self.rename_id(id, name).await?;
        }
        let e = self.info(id).await?;
        if e.name() == name {
            return Ok(e);
        }
        self.rename_id(id, name).await?;
        let e = self.info(id).await?;
        if e.name() != name {
            return Err(DriveError::upstream(format!("115 kept the name {:?} instead of {name:?}", e.name())));
        }
        Ok(e)
    }

    async fn delete_ids(&self, ids: &[String]) -> DriveResult<()> {
        let keys: Vec<String> = (0..ids.len()).map(|i| format!("fid[{i}]")).collect();
        let mut pairs: Vec<(&str, &str)> =
            keys.iter().map(String::as_str).zip(ids.iter().map(String::as_str)).collect();
        pairs.push(("ignore_warn", "1"));
        let r = self.api.post_form("delete", hosts::WEBAPI, "/rb/delete", &pairs).await.map(|_| ());
        self.own_forget(ids);
        r
    }

    /// Empty the recycle bin of what `delete_ids` just put there (`delete = "permanent"`).
    async fn purge(&self, entry: &Entry, parent_hint: Option<&str>) -> DriveResult<()> {
        let mut rids = vec![];
        let mut offset = 0;
        'pages: for _ in 0..20 {
            let pq = format!("/rb?aid=7&cid=0&format=json&offset={offset}&limit=1150");
            let (v, _) = self
                .api
                .call("recycle bin", reqwest::Method::GET, hosts::WEBAPI, &pq, client::Body::None, None, true)
                .await?;
            let items = match get(&v, "data") {
                Some(Value::Array(a)) => a.clone(),
                _ => vec![],
            };
            for it in &items {
                let rid = fstr(it, "id").unwrap_or_default();
                if rid == entry.id() {
                    rids.insert(0, rid);
                    break 'pages;
                }
                // The bin id may differ from the item's id: match the name and the
                // folder it came from.
                if fstr(it, "file_name").as_deref() == Some(entry.name())
                    && parent_hint.is_none_or(|p| fstr(it, "cid").as_deref() == Some(p))
                {
                    rids.push(rid);
                }
            }
            if items.len() < 1150 {
                break;
            }
            offset += items.len();
        }
        let Some(rid) = rids.into_iter().next() else {
            tracing::warn!(file = %entry.name(), "deleted, but not found in the recycle bin to purge");
            return Ok(());
        };
        let mut pairs = vec![("rid[0]", rid.as_str())];
        if let Some(p) = &self.recycle_password {
            pairs.push(("password", p.expose()));
        }
        self.api.post_form("empty recycle bin", hosts::WEBAPI, "/rb/clean", &pairs).await.map(|_| ())
    }
}

#[async_trait]
impl Offline for P115Drive {
    async fn add_tasks(&self, urls: &[String], dir: Option<&Entry>) -> DriveResult<Vec<OfflineAdded>> {
        P115Drive::offline_add(self, urls, dir.map(|d| d.id())).await
    }

    async fn tasks(&self) -> DriveResult<OfflineTasks> {
        P115Drive::offline_list(self).await
    }

    async fn remove_tasks(&self, hashes: &[String], delete_files: bool) -> DriveResult<()> {
        P115Drive::offline_remove(self, hashes, delete_files).await
    }
}

/// Copies from other mounts: initupload with the source's SHA-1, the second check's
/// range read from the source, the body from the source only if 115 wants it.
#[async_trait]
impl RapidPut for P115Drive {
    async fn put_hashed(
        &self,
        parent: &Entry,
        name: &str,
        src: &Hashed,
        mode: RapidMode,
    ) -> DriveResult<Option<Entry>> {
        upload::store(self, parent, name, src, mode).await
    }
}

#[async_trait]
impl Drive for P115Drive {
    fn kind(&self) -> &'static str {
        "115"
    }

    fn offline(&self) -> Option<&dyn Offline> {
        Some(self)
    }

    fn rapid(&self) -> Option<&dyn RapidPut> {
        Some(self)
    }

    fn caps(&self) -> Caps {
        Caps {
            links: true,
            rapid_upload_sha1: true,
            rapid_put: true,
            server_side_copy: true,
            offline_download: true,
            // The background task re-checks a lost login (a new `pandav login`).
            refresh: true,
            ..Caps::default()
        }
    }

    async fn init(&self) -> DriveResult<()> {
        self.api.creds()?;
        if !self.api.cookie_alive().await? {
            return Err(self.api.give_up(format!("115 cookie expired: {}", self.api.login_hint())));
        }
        Ok(())
    }

    async fn root(&self) -> DriveResult<Entry> {
        if self.root_id == "0" {
            return Ok(Entry::dir("0", "", UNIX_EPOCH));
        }
        let (_, page) = self.list_raw_first(&self.root_id).await?;
        let name = get(&page, "path")
            .and_then(|p| p.as_array())
            .and_then(|p| p.last())
            .and_then(|l| fstr(l, "name"))
            .unwrap_or_default();
        Ok(Entry::dir(self.root_id.clone(), name, UNIX_EPOCH))
    }

    async fn list(&self, dir: &Entry) -> DriveResult<Vec<Entry>> {
        let (items, _) = self.list_raw(dir.id()).await?;
        let l = Self::entries(&items);
        self.own_store(dir.id(), l.clone());
        Ok(l)
    }

    async fn link(&self, file: &Entry, req: &LinkRequest) -> DriveResult<Link> {
        if file.is_dir {
            return Err(DriveError::IsADirectory);
        }
        let pc = match file.extra() {
            Some(pc) if !pc.is_empty() => pc.to_string(),
            _ => self.info(file.id()).await?.extra().map(str::to_string).ok_or(DriveError::NotFound)?,
        };
        let plain = serde_json::json!({ "pickcode": pc }).to_string();
        // The URL is bound to the UA that asked: ask with the client's (§3.5), none if none.
        let (dec, _, resp) = self
            .api
            .m115_post("downurl", hosts::PROAPI, "/app/chrome/downurl", plain.as_bytes(), Some(&req.user_agent), true)
            .await?;
        let v: Value =
            serde_json::from_slice(&dec).map_err(|e| DriveError::upstream(format!("115 downurl: bad JSON ({e})")))?;
        let url = client::downurl_pick(&v, &pc)?;
        Ok(client::make_link(url, &req.user_agent, &client::download_cookies(&resp)))
    }

    async fn mkdir(&self, parent: &Entry, name: &str) -> DriveResult<Entry> {
        check_115_name(name)?;
        let _g = self.mutate.lock().await;
        // 115 allows a folder beside a file of the same name; a file system does not.
        if !self.named(parent.id(), name).await?.is_empty() {
            return Err(DriveError::Exists);
        }
        let v =
            self.api.post_form("mkdir", hosts::WEBAPI, "/files/add", &[("pid", parent.id()), ("cname", name)]).await?;
        let id = client::fid(&v, "cid")
            .or_else(|| client::fid(&v, "file_id"))
            .ok_or_else(|| DriveError::upstream("115 mkdir: no folder id"))?;
        let mut e = Entry::dir(
            id,
            fstr(&v, "file_name").or_else(|| fstr(&v, "cname")).unwrap_or_else(|| name.to_string()),
            std::time::SystemTime::now(),
        );
        e.created = Some(e.modified);
        self.own_add(parent.id(), &e);
        Ok(e)
    }

    async fn move_to(&self, entry: &Entry, new_parent: &Entry, new_name: &str) -> DriveResult<Entry> {
        mount::check_name(new_name)?;
        if entry.is_dir {
            check_115_name(new_name)?;
        }
        let _g = self.mutate.lock().await;
        // 115 keeps duplicate names side by side; refuse instead of making one.
        if self.named(new_parent.id(), new_name).await?.iter().any(|e| e.id() != entry.id()) {
            return Err(DriveError::Exists);
        }
        let cur_parent = self.parent_of(entry).await?;
        if cur_parent.as_deref() != Some(new_parent.id()) {
            self.move_id(entry.id(), new_parent.id()).await?;
        } else if entry.name() == new_name {
            return Ok(entry.clone());
        }
        self.own_forget(std::slice::from_ref(&entry.id().to_string()));
        let e = self.settle_name(entry.id(), entry.name(), new_name).await?;
        self.own_add(new_parent.id(), &e);
        Ok(e)
    }

    async fn copy_to(&self, entry: &Entry, new_parent: &Entry, new_name: &str) -> DriveResult<Entry> {
        mount::check_name(new_name)?;
        if entry.is_dir {
            check_115_name(new_name)?;
        }
        let _g = self.mutate.lock().await;
        let present = Self::entries(&self.list_raw(new_parent.id()).await?.0);
        if present.iter().any(|e| e.name() == new_name) {
            return Err(DriveError::Exists);
        }
        let before: std::collections::HashSet<String> = present.into_iter().map(|e| e.id().to_string()).collect();
        self.api
            .post_form("copy", hosts::WEBAPI, "/files/copy", &[("pid", new_parent.id()), ("fid[0]", entry.id())])
            .await?;
        // The answer carries no id: find the new item in the target folder.
        let after = Self::entries(&self.list_raw(new_parent.id()).await?.0);
        let fresh: Vec<&Entry> =
            after.iter().filter(|e| !before.contains(e.id()) && e.is_dir == entry.is_dir).collect();
        let new = fresh
            .iter()
            .find(|e| e.name() == entry.name())
            .or_else(|| fresh.iter().find(|e| entry.hashes().sha1.is_some() && e.hashes().sha1 == entry.hashes().sha1))
            .or_else(|| if fresh.len() == 1 { fresh.first() } else { None })
            .ok_or_else(|| DriveError::upstream("115 copy: the copy did not show up in the target folder"))?;
        let (id, cur) = (new.id().to_string(), new.name().to_string());
        let e = self.settle_name(&id, &cur, new_name).await?;
        self.own_store(
            new_parent.id(),
            after.into_iter().filter(|x| x.id() != id).chain(std::iter::once(e.clone())).collect(),
        );
        Ok(e)
    }

    async fn remove(&self, entry: &Entry) -> DriveResult<()> {
        if entry.id() == "0" || entry.id() == self.root_id {
            return Err(DriveError::Forbidden("cannot remove the mount's root".into()));
        }
        let _g = self.mutate.lock().await;
        let parent =
            if self.delete == DeleteMode::Permanent { self.parent_of(entry).await.ok().flatten() } else { None };
        self.delete_ids(std::slice::from_ref(&entry.id().to_string())).await?;
        if self.delete == DeleteMode::Permanent {
            self.purge(entry, parent.as_deref()).await?;
        }
        Ok(())
    }

    async fn put(&self, parent: &Entry, name: &str, upload: Upload) -> DriveResult<Entry> {
        upload::put(self, parent, name, &upload).await
    }

    async fn quota(&self) -> DriveResult<Option<Quota>> {
        let (v, _) = self
            .api
            .call("space", reqwest::Method::GET, hosts::WEBAPI, "/files/index_info", client::Body::None, None, true)
            .await?;
        let sp = get(&v, "data").and_then(|d| get(d, "space_info"));
        let size = |k: &str| sp.and_then(|s| get(s, k)).and_then(|x| client::fnum(x, "size")).map(|n| n.max(0) as u64);
        Ok(Some(Quota { used: size("all_use").unwrap_or(0), total: size("all_total") }))
    }

    /// While the login is lost, see whether a new one was saved (`pandav login`) and
    /// whether it works; otherwise come back later. Never calls 115 with a known-dead cookie.
    async fn refresh(&self) -> DriveResult<Duration> {
        if !self.api.is_lost() {
            return Ok(Duration::from_secs(600));
        }
        self.api.creds()?;
        if self.api.cookie_alive().await? {
            Ok(Duration::from_secs(600))
        } else {
            Err(self.api.give_up(format!("115 cookie expired: {}", self.api.login_hint())))
        }
    }
}

impl P115Drive {
    /// The first page of folder `cid` (for its path and name).
    async fn list_raw_first(&self, cid: &str) -> DriveResult<(Vec<Value>, Value)> {
        let v = match self.api.files_page(cid, 0, 1, &self.order, self.asc).await? {
            Page::Items(v) => v,
            Page::OrderRejected { order, asc } => match self.api.files_page(cid, 0, 1, &order, asc).await? {
                Page::Items(v) => v,
                Page::OrderRejected { .. } => return Err(DriveError::upstream("115 list: order not supported")),
            },
        };
        if fstr(&v, "cid").is_some_and(|c| c != cid) {
            return Err(DriveError::NotFound);
        }
        Ok((vec![], v))
    }

    /// The parent folder id of an entry, as 115 says now.
    async fn parent_of(&self, entry: &Entry) -> DriveResult<Option<String>> {
        let v = self.api.get_info("file_id", entry.id()).await?;
        Ok(client::item_parent(&v))
    }
}

/// Folder names may not contain `"`, `<` or `>` (errno 20003).
fn check_115_name(name: &str) -> DriveResult<()> {
    mount::check_name(name)?;
    if name.contains(['"', '<', '>']) {
        return Err(DriveError::InvalidInput(format!("115 does not allow '\"', '<' or '>' in folder names: {name:?}")));
    }
    Ok(())
}

/// Registry constructor.
pub fn build(options: toml::Table, ctx: &DriverCtx) -> anyhow::Result<P115Drive> {
    P115Drive::new(crate::drivers::parse_options(options)?, ctx)
}

#[allow(unused)]
fn _assert_send_sync() {
    fn f<T: Send + Sync>() {}
    f::<P115Drive>();
    let _ = http::redact;
}

/// The registry entry.
pub const ENTRY: crate::drivers::DriverEntry = crate::drivers::DriverEntry {
    name: "115",
    about: "115 Cloud through its web API (cookie, or `pandav login 115`)",
    default_policy: crate::vfs::PolicyKind::Redirect,
    policies: crate::drivers::ALL_POLICIES,
    options: &[
        "cookie",
        "root_folder_id",
        "page_size",
        "order",
        "asc",
        "rate_limit",
        "delete",
        "recycle_password",
        "app_version",
        "multipart_threshold",
        "retries",
        "retry_base_ms",
        "throttle_cooldown_secs",
        "endpoints",
        "m115_test_modulus",
        "ec115_server_public_key",
    ],
    build: |o, ctx| Ok(Arc::new(build(o, ctx)?)),
    login: Some(crate::drivers::LoginEntry {
        command: "115",
        about: "115 Cloud (cookie): QR code login; the cookie goes into the mount's state",
        run: login::run,
    }),
    refresher: None,
};
