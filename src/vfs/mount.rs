//! A mount: one drive at one path, with its directory cache, path resolution, download
//! policy slot, health and background refresh task.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use dashmap::DashMap;

use super::drive::Drive;
use super::error::{DriveError, DriveResult};
use super::types::*;

/// How GET/HEAD of a file is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// 302 to the provider's URL.
    Redirect,
    /// pandav streams the bytes.
    Proxy,
    /// 302 to `<base><path>?sign=…` on an external relay.
    ProxyUrl(String),
}

impl Policy {
    pub fn name(&self) -> &'static str {
        match self {
            Policy::Redirect => "redirect",
            Policy::Proxy => "proxy",
            Policy::ProxyUrl(_) => "proxy_url",
        }
    }
}

#[derive(Debug, Clone)]
pub struct MountOptions {
    /// Normalised mount path: `/`-separated, leading `/`, no trailing `/`.
    pub path: String,
    pub policy: Policy,
    /// Base URL of an external relay (for `proxy_url`, as policy or by client rule).
    pub proxy_url: Option<String>,
    pub read_only: bool,
    pub cache_ttl: Duration,
    pub spool_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub ok: bool,
    pub message: String,
}

type Listing = Arc<Vec<Entry>>;

/// A folder listing with an index by name, so resolving every child of a large folder
/// is linear, not quadratic.
struct Cached {
    at: Instant,
    list: Listing,
    by_name: std::collections::HashMap<String, usize>,
}

impl Cached {
    fn new(list: Listing) -> Cached {
        let mut by_name = std::collections::HashMap::with_capacity(list.len());
        for (i, e) in list.iter().enumerate() {
            // Providers that allow two items of one name (115) resolve to the first.
            by_name.entry(e.name.clone()).or_insert(i);
        }
        Cached { at: Instant::now(), list, by_name }
    }

    fn find(&self, name: &str) -> DriveResult<Entry> {
        self.by_name.get(name).map(|&i| self.list[i].clone()).ok_or(DriveError::NotFound)
    }
}

#[derive(Default)]
struct DirSlot {
    cached: tokio::sync::Mutex<Option<Arc<Cached>>>,
}

/// A download link cached until shortly before it expires.
type LinkSlot = Arc<tokio::sync::Mutex<Option<(Link, Instant)>>>;

/// Links without an expiry are kept this long.
const LINK_TTL_DEFAULT: Duration = Duration::from_secs(300);
/// Links are dropped this long before the provider says they expire.
const LINK_MARGIN: Duration = Duration::from_secs(60);
/// Above this many cached links, expired ones are swept on insert.
const LINK_CACHE_SWEEP: usize = 4096;

/// Download links keyed by (entry id, User-Agent): 115 binds links to the UA that asked.
#[derive(Default)]
pub struct LinkCache {
    slots: DashMap<(String, String), LinkSlot>,
}

impl LinkCache {
    pub async fn get(&self, drive: &dyn Drive, entry: &Entry, req: &LinkRequest) -> DriveResult<Link> {
        let key = (entry.id.clone(), req.user_agent.clone());
        let slot = Arc::clone(&self.slots.entry(key).or_default());
        let mut guard = slot.lock().await;
        if let Some((link, until)) = guard.as_ref() {
            if Instant::now() < *until {
                return Ok(link.clone());
            }
        }
        let link = drive.link(entry, req).await?;
        let ttl = match link.expires_at {
            Some(t) => t.duration_since(SystemTime::now()).unwrap_or_default().saturating_sub(LINK_MARGIN),
            None => LINK_TTL_DEFAULT,
        };
        *guard = Some((link.clone(), Instant::now() + ttl));
        drop(guard);
        if self.slots.len() > LINK_CACHE_SWEEP {
            let now = Instant::now();
            self.slots.retain(|_, s| s.try_lock().map_or(true, |g| g.as_ref().is_some_and(|(_, u)| *u > now)));
        }
        Ok(link)
    }

    pub fn forget(&self, entry: &Entry, req: &LinkRequest) {
        self.slots.remove(&(entry.id.clone(), req.user_agent.clone()));
    }
}

/// A mount's drive and link cache, owned, for streams that outlive a borrow of the mount.
#[derive(Clone)]
pub struct LinkSource {
    pub drive: Arc<dyn Drive>,
    pub cache: Arc<LinkCache>,
    pub path: String,
}

impl LinkSource {
    pub async fn link(&self, entry: &Entry, req: &LinkRequest) -> DriveResult<Link> {
        self.cache.get(&*self.drive, entry, req).await
    }
}

pub struct Mount {
    pub opts: MountOptions,
    pub drive: Arc<dyn Drive>,
    caps: Caps,
    root: tokio::sync::OnceCell<Entry>,
    dirs: DashMap<String, Arc<DirSlot>>,
    links: Arc<LinkCache>,
    health: RwLock<Health>,
    /// The drive's last quota answer and when it came.
    quota: tokio::sync::Mutex<Option<(Instant, Option<Quota>)>>,
}

/// How long a quota answer is reused (PROPFIND asks on every listing).
const QUOTA_TTL: Duration = Duration::from_secs(30);

/// Names clients probe for that almost never exist (macOS, Windows, desktops). A miss on
/// these is answered from whatever listing is cached, without asking the provider.
pub fn is_probe_name(name: &str) -> bool {
    name.starts_with("._")
        || matches!(
            name,
            ".DS_Store"
                | ".localized"
                | ".hidden"
                | ".Spotlight-V100"
                | ".metadata_never_index"
                | ".ql_disablethumbnails"
                | ".Trashes"
                | ".TemporaryItems"
                | "Backups.backupdb"
                | "mach_kernel"
                | "desktop.ini"
                | "Desktop.ini"
                | "Thumbs.db"
                | "folder.jpg"
                | "Folder.jpg"
                | "autorun.inf"
        )
}

/// Split a mount-relative path `a/b/c` into (`a/b`, `c`).
pub fn split_parent(rel: &str) -> (&str, &str) {
    match rel.rfind('/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => ("", rel),
    }
}

pub fn join_rel(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// Reject names no provider should be asked to create.
pub fn check_name(name: &str) -> DriveResult<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(DriveError::InvalidInput(format!("bad name {name:?}")));
    }
    if name.len() > 255 {
        return Err(DriveError::InvalidInput("name longer than 255 bytes".into()));
    }
    Ok(())
}

impl Mount {
    pub fn new(opts: MountOptions, drive: Arc<dyn Drive>) -> Mount {
        let caps = drive.caps();
        Mount {
            opts,
            drive,
            caps,
            root: tokio::sync::OnceCell::new(),
            dirs: DashMap::new(),
            links: Arc::new(LinkCache::default()),
            health: RwLock::new(Health { ok: true, message: "starting".into() }),
            quota: tokio::sync::Mutex::new(None),
        }
    }

    pub fn path(&self) -> &str {
        &self.opts.path
    }

    pub fn caps(&self) -> Caps {
        self.caps
    }

    pub fn read_only(&self) -> bool {
        self.opts.read_only || self.caps.read_only
    }

    pub fn health(&self) -> Health {
        self.health.read().unwrap().clone()
    }

    fn set_health(&self, ok: bool, message: String) {
        let mut h = self.health.write().unwrap();
        if h.ok != ok || h.message != message {
            if ok {
                tracing::info!(mount = %self.opts.path, "mount healthy: {message}");
            } else {
                tracing::error!(mount = %self.opts.path, "mount unhealthy: {message}");
            }
            *h = Health { ok, message };
        }
    }

    /// Note the outcome of a drive call: a lost login makes the mount unhealthy.
    fn track<T>(&self, r: DriveResult<T>) -> DriveResult<T> {
        match &r {
            Err(DriveError::AuthLost(msg)) => self.set_health(false, msg.clone()),
            Ok(_) if !self.health.read().unwrap().ok => self.set_health(true, "recovered".into()),
            _ => {}
        }
        r
    }

    /// Initialise the drive and find the root. Called once at start.
    pub async fn init(&self) -> DriveResult<()> {
        let r = async {
            self.drive.init().await?;
            self.root().await.map(|_| ())
        }
        .await;
        let r = self.track(r);
        match &r {
            Ok(()) => self.set_health(true, "ready".into()),
            Err(DriveError::AuthLost(_)) => {}
            Err(e) => self.set_health(false, format!("could not start: {e}")),
        }
        r
    }

    /// The background refresh loop for drives whose credentials expire.
    pub fn spawn_refresh(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        if !self.caps.refresh {
            return None;
        }
        let m = Arc::clone(self);
        Some(tokio::spawn(async move {
            loop {
                let wait = match m.track(m.drive.refresh().await) {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!(mount = %m.opts.path, "token refresh failed: {e}");
                        match e {
                            DriveError::AuthLost(_) => Duration::from_secs(600),
                            DriveError::RateLimited { retry_after } => retry_after.unwrap_or(Duration::from_secs(60)),
                            _ => Duration::from_secs(30),
                        }
                    }
                };
                tokio::time::sleep(wait.max(Duration::from_millis(200))).await;
            }
        }))
    }

    pub async fn root(&self) -> DriveResult<Entry> {
        self.root.get_or_try_init(|| async { self.drive.root().await }).await.cloned()
    }

    /// The entry at a mount-relative path (`""` is the root).
    pub async fn resolve(&self, rel: &str) -> DriveResult<Entry> {
        let mut cur = self.root().await?;
        let mut cur_rel = String::new();
        if rel.is_empty() {
            return Ok(cur);
        }
        for name in rel.split('/') {
            if !cur.is_dir {
                return Err(DriveError::NotFound);
            }
            cur = self.child(&cur_rel, &cur, name).await?;
            cur_rel = join_rel(&cur_rel, name);
        }
        Ok(cur)
    }

    async fn child(&self, parent_rel: &str, parent: &Entry, name: &str) -> DriveResult<Entry> {
        if let Some(slot) = self.dirs.get(parent_rel).map(|s| Arc::clone(&s)) {
            if let Ok(guard) = slot.cached.try_lock() {
                if let Some(c) = guard.as_ref() {
                    if c.at.elapsed() < self.opts.cache_ttl || is_probe_name(name) {
                        return c.find(name);
                    }
                }
            }
        }
        if self.caps.fast_lookup {
            return self.track(self.drive.lookup(parent, name).await)?.ok_or(DriveError::NotFound);
        }
        self.listing(parent_rel, parent).await?.find(name)
    }

    /// The children of a folder, from the cache while fresh. One listing at a time per
    /// folder: concurrent callers wait for the first one's answer.
    async fn listing(&self, rel: &str, dir: &Entry) -> DriveResult<Arc<Cached>> {
        let slot = Arc::clone(&self.dirs.entry(rel.to_string()).or_default());
        let mut guard = slot.cached.lock().await;
        if let Some(c) = guard.as_ref() {
            if c.at.elapsed() < self.opts.cache_ttl {
                return Ok(Arc::clone(c));
            }
        }
        let c = Arc::new(Cached::new(Arc::new(self.track(self.drive.list(dir).await)?)));
        *guard = Some(Arc::clone(&c));
        Ok(c)
    }

    pub async fn list(&self, rel: &str) -> DriveResult<(Entry, Listing)> {
        let dir = self.resolve(rel).await?;
        if !dir.is_dir {
            return Err(DriveError::NotADirectory);
        }
        let list = Arc::clone(&self.listing(rel, &dir).await?.list);
        Ok((dir, list))
    }

    /// Forget the cached listing of folder `rel`.
    pub fn invalidate(&self, rel: &str) {
        self.dirs.remove(rel);
    }

    /// Forget `rel` and everything below it.
    fn invalidate_tree(&self, rel: &str) {
        let prefix = format!("{rel}/");
        self.dirs.retain(|k, _| !(k == rel || k.starts_with(&prefix) || rel.is_empty()));
    }

    fn writable(&self) -> DriveResult<()> {
        if self.read_only() {
            Err(DriveError::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// For a path about to be created: its parent's path, its checked name, and the
    /// parent folder's entry.
    async fn target_parent<'p>(&self, rel: &'p str) -> DriveResult<(&'p str, &'p str, Entry)> {
        let (prel, name) = split_parent(rel);
        check_name(name)?;
        let parent = self.resolve(prel).await?;
        if !parent.is_dir {
            return Err(DriveError::NotADirectory);
        }
        Ok((prel, name, parent))
    }

    pub async fn mkdir(&self, rel: &str) -> DriveResult<Entry> {
        self.writable()?;
        let (prel, name, parent) = self.target_parent(rel).await?;
        match self.child(prel, &parent, name).await {
            Ok(_) => return Err(DriveError::Exists),
            Err(DriveError::NotFound) => {}
            Err(e) => return Err(e),
        }
        let r = self.track(self.drive.mkdir(&parent, name).await);
        self.invalidate(prel);
        r
    }

    pub async fn remove(&self, rel: &str) -> DriveResult<()> {
        self.writable()?;
        if rel.is_empty() {
            return Err(DriveError::Forbidden("cannot remove a mount's root".into()));
        }
        let entry = self.resolve(rel).await?;
        let r = self.track(self.drive.remove(&entry).await);
        self.invalidate(split_parent(rel).0);
        if entry.is_dir {
            self.invalidate_tree(rel);
        }
        r
    }

    /// Move or rename within this mount. The destination must not exist.
    pub async fn rename(&self, from: &str, to: &str) -> DriveResult<Entry> {
        self.writable()?;
        if from.is_empty() || to.is_empty() {
            return Err(DriveError::Forbidden("cannot move a mount's root".into()));
        }
        if to.starts_with(&format!("{from}/")) {
            return Err(DriveError::Forbidden("cannot move a folder into itself".into()));
        }
        let entry = self.resolve(from).await?;
        let (to_prel, to_name, new_parent) = self.target_parent(to).await?;
        let r = self.track(self.drive.move_to(&entry, &new_parent, to_name).await);
        self.invalidate(split_parent(from).0);
        self.invalidate(to_prel);
        if entry.is_dir {
            self.invalidate_tree(from);
            self.invalidate_tree(to);
        }
        r
    }

    /// Copy one file (or folder, recursively) within this mount.
    pub async fn copy(&self, from: &str, to: &str) -> DriveResult<Entry> {
        self.writable()?;
        let entry = self.resolve(from).await?;
        if entry.is_dir && (from.is_empty() || to == from || to.starts_with(&format!("{from}/"))) {
            return Err(DriveError::Forbidden("cannot copy a folder into itself".into()));
        }
        let (to_prel, to_name, new_parent) = self.target_parent(to).await?;
        let r = self.track(self.drive.copy_to(&entry, &new_parent, to_name).await);
        self.invalidate(to_prel);
        if entry.is_dir {
            self.invalidate_tree(to);
        }
        r
    }

    /// Where to spool an upload into `parent_rel` (drives may prefer a folder on the
    /// same file system as the target, so that storing is a rename).
    pub async fn spool_dir_for(&self, parent_rel: &str) -> PathBuf {
        if let Some(parent) = self.resolve(parent_rel).await.ok().filter(|e| e.is_dir) {
            if let Some(p) = self.drive.spool_dir(&parent) {
                return p;
            }
        }
        self.opts.spool_dir.clone()
    }

    pub async fn put(&self, rel: &str, upload: Upload) -> DriveResult<Entry> {
        self.writable()?;
        let (prel, name, parent) = self.target_parent(rel).await?;
        let r = self.track(self.drive.put(&parent, name, upload).await);
        self.invalidate(prel);
        r
    }

    pub async fn set_mtime(&self, rel: &str, mtime: SystemTime) -> DriveResult<()> {
        self.writable()?;
        let entry = self.resolve(rel).await?;
        let r = self.track(self.drive.set_mtime(&entry, mtime).await);
        self.invalidate(split_parent(rel).0);
        r
    }

    pub async fn read(&self, entry: &Entry, range: ReadRange) -> DriveResult<ByteStream> {
        self.track(self.drive.read(entry, range).await)
    }

    /// The drive's quota (`None` when it does not say), reused for a short while.
    pub async fn quota(&self) -> DriveResult<Option<Quota>> {
        let mut g = self.quota.lock().await;
        if let Some((at, q)) = g.as_ref() {
            if at.elapsed() < QUOTA_TTL {
                return Ok(*q);
            }
        }
        let q = self.track(self.drive.quota().await)?;
        *g = Some((Instant::now(), q));
        Ok(q)
    }

    /// Offline download into the folder at `dir_rel` (the provider's default: `None`).
    pub async fn offline_add(&self, urls: &[String], dir_rel: Option<&str>) -> DriveResult<Vec<OfflineAdded>> {
        self.writable()?;
        let dir = match dir_rel {
            Some(rel) => {
                let d = self.resolve(rel.trim_matches('/')).await?;
                if !d.is_dir {
                    return Err(DriveError::NotADirectory);
                }
                Some(d)
            }
            None => None,
        };
        let r = self.track(self.offline()?.add_tasks(urls, dir.as_ref()).await);
        if let Some(rel) = dir_rel {
            self.invalidate(rel.trim_matches('/'));
        }
        r
    }

    fn offline(&self) -> DriveResult<&dyn super::drive::Offline> {
        self.drive.offline().ok_or(DriveError::Unsupported("offline download"))
    }

    pub async fn offline_list(&self) -> DriveResult<OfflineTasks> {
        self.track(self.offline()?.tasks().await)
    }

    pub async fn offline_remove(&self, hashes: &[String], delete_files: bool) -> DriveResult<()> {
        self.writable()?;
        let r = self.track(self.offline()?.remove_tasks(hashes, delete_files).await);
        if delete_files {
            self.invalidate_tree("");
        }
        r
    }

    /// A download link for `entry` as `req`'s client, from the cache while it is valid.
    /// Concurrent requests for the same uncached link make one provider call.
    pub async fn link(&self, entry: &Entry, req: &LinkRequest) -> DriveResult<Link> {
        let r = self.links.get(&*self.drive, entry, req).await;
        self.track(r)
    }

    /// Drop a cached link the provider no longer honours (expired early, revoked).
    pub fn forget_link(&self, entry: &Entry, req: &LinkRequest) {
        self.links.forget(entry, req);
    }

    /// What a long-lived read stream needs to ask for links again, without the mount.
    pub fn link_source(&self) -> LinkSource {
        LinkSource { drive: Arc::clone(&self.drive), cache: Arc::clone(&self.links), path: self.opts.path.clone() }
    }
}
