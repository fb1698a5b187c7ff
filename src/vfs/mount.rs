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
/// is linear, not quadratic. The index (4 bytes an entry, no copied names) is built on
/// the first lookup: a listing only rendered (PROPFIND of a local folder) never needs it.
struct Cached {
    at: Instant,
    list: Listing,
    by_name: std::sync::OnceLock<Vec<u32>>,
}

impl Cached {
    fn new(list: Listing) -> Cached {
        Cached { at: Instant::now(), list, by_name: std::sync::OnceLock::new() }
    }

    fn name(&self, i: u32) -> &str {
        self.list.get(i as usize).map_or("", |e| e.name())
    }

    /// The entry named exactly `name`. Providers that allow two items of one name (115)
    /// resolve to the first (the sort is stable).
    fn exact(&self, name: &str) -> Option<&Entry> {
        let idx = self.by_name.get_or_init(|| {
            let mut v: Vec<u32> = (0..self.list.len() as u32).collect();
            v.sort_by(|&a, &b| self.name(a).cmp(self.name(b)));
            v
        });
        let at = idx.partition_point(|&i| self.name(i) < name);
        idx.get(at).filter(|&&i| self.name(i) == name).and_then(|&i| self.list.get(i as usize))
    }

    fn find(&self, name: &str) -> DriveResult<Entry> {
        name_forms(name).find_map(|n| self.exact(&n).cloned()).ok_or(DriveError::NotFound)
    }
}

/// The forms a client's name may be stored in: as given, then NFC, then NFD (macOS
/// Finder sends NFD, cloud drives store NFC, a local folder keeps whatever was written).
/// ASCII names have one form.
pub fn name_forms(name: &str) -> impl Iterator<Item = std::borrow::Cow<'_, str>> {
    use unicode_normalization::UnicodeNormalization;
    // The other forms are computed only when the name as given is not found.
    let others = std::iter::once_with(move || {
        let mut v: Vec<std::borrow::Cow<'_, str>> = vec![];
        if !name.is_ascii() {
            for other in [name.nfc().collect::<String>(), name.nfd().collect::<String>()] {
                if other != name && !v.iter().any(|f| *f == other) {
                    v.push(other.into());
                }
            }
        }
        v
    });
    std::iter::once(name.into()).chain(others.flatten())
}

#[derive(Default)]
struct DirSlot {
    cached: tokio::sync::Mutex<Option<Arc<Cached>>>,
}

/// A download link cached until shortly before it expires.
/// On tokio's clock (the same as std's outside tests), so the expiry can be tested with
/// paused time instead of sleeps.
type LinkSlot = Arc<tokio::sync::Mutex<Option<(Link, tokio::time::Instant)>>>;

/// Links without an expiry are kept this long.
const LINK_TTL_DEFAULT: Duration = Duration::from_secs(300);
/// Links are dropped this long before the provider says they expire.
const LINK_MARGIN: Duration = Duration::from_secs(60);
/// Above this many cached links, expired ones are swept on insert.
const LINK_CACHE_SWEEP: usize = 4096;

/// Download links keyed by (entry id, User-Agent): 115 binds links to the UA that asked.
/// With shared state, backed by the fleet's links ([`super::shared_links`]).
#[derive(Default)]
pub struct LinkCache {
    slots: DashMap<(String, String), LinkSlot>,
    shared: Option<super::shared_links::SharedLinks>,
}

impl LinkCache {
    pub async fn get(&self, drive: &dyn Drive, entry: &Entry, req: &LinkRequest) -> DriveResult<Link> {
        let key = (entry.id().to_string(), req.user_agent.clone());
        let slot = Arc::clone(&self.slots.entry(key).or_default());
        let mut guard = slot.lock().await;
        if let Some((link, until)) = guard.as_ref() {
            if tokio::time::Instant::now() < *until {
                crate::metrics::cache("link", true);
                return Ok(link.clone());
            }
        }
        if let Some((link, ttl)) = match &self.shared {
            Some(sh) => sh.get(entry, req).await,
            None => None,
        } {
            crate::metrics::cache("link", true);
            *guard = Some((link.clone(), tokio::time::Instant::now() + ttl));
            return Ok(link);
        }
        crate::metrics::cache("link", false);
        let link = drive.link(entry, req).await?;
        let ttl = match link.expires_at {
            Some(t) => t.duration_since(SystemTime::now()).unwrap_or_default().saturating_sub(LINK_MARGIN),
            None => LINK_TTL_DEFAULT,
        };
        let (link, ttl) = match &self.shared {
            Some(sh) => sh.offer(entry, req, link, ttl).await,
            None => (link, ttl),
        };
        *guard = Some((link.clone(), tokio::time::Instant::now() + ttl));
        drop(guard);
        if self.slots.len() > LINK_CACHE_SWEEP {
            let now = tokio::time::Instant::now();
            self.slots.retain(|_, s| s.try_lock().map_or(true, |g| g.as_ref().is_some_and(|(_, u)| *u > now)));
        }
        Ok(link)
    }

    pub fn forget(&self, entry: &Entry, req: &LinkRequest) {
        self.slots.remove(&(entry.id().to_string(), req.user_agent.clone()));
    }

    /// Drop a refused link here and, when shared, for the fleet.
    pub async fn forget_shared(&self, entry: &Entry, req: &LinkRequest) {
        self.forget(entry, req);
        if let Some(sh) = &self.shared {
            sh.forget(entry, req).await;
        }
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
        return name.to_string();
    }
    // Exactly as long as it needs: an entry keeps it as its id (no shrinking copy).
    let mut s = String::with_capacity(parent.len() + 1 + name.len());
    s.push_str(parent);
    s.push('/');
    s.push_str(name);
    s
}

/// Names the mount gives its own entries while it replaces a target (the new entry
/// before the swap, the old one after it). Clients never see or reach them: the dav
/// layer hides them from listings and refuses paths through them.
pub const SWAP_PREFIX: &str = ".pandav-swap-";

/// Names that belong to pandav rather than to clients: swap names, and the upload
/// spools of drives that spool next to the target (`.pandav-tmp-…`).
pub fn is_reserved_name(name: &str) -> bool {
    name.starts_with(SWAP_PREFIX) || name.starts_with(".pandav-tmp-")
}

fn swap_name() -> String {
    format!("{SWAP_PREFIX}{:016x}", rand::random::<u64>())
}

/// How a replace disposes of the new entry when it cannot take the target's name.
enum Undo<'a> {
    /// It is a copy or an upload: remove it.
    Remove,
    /// It is the moved source: move it back.
    MoveBack { parent: &'a Entry, name: &'a str },
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

    /// Share download links with the other replicas (`[server] state = "redis://…"`).
    pub fn with_shared_links(mut self, links: super::shared_links::SharedLinks) -> Mount {
        self.links = Arc::new(LinkCache { slots: DashMap::new(), shared: Some(links) });
        self
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
        self.health.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set_health(&self, ok: bool, message: String) {
        let mut h = self.health.write().unwrap_or_else(std::sync::PoisonError::into_inner);
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
            Ok(_) if !self.health.read().unwrap_or_else(std::sync::PoisonError::into_inner).ok => {
                self.set_health(true, "recovered".into())
            }
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
                        crate::metrics::cache("listing", true);
                        return c.find(name);
                    }
                }
            }
        }
        if self.caps.fast_lookup {
            // A drive may find a lookup dearer than a (cached) listing for some folders:
            // it says so with `Unsupported`, and the listing answers (and counts the cache
            // hit or miss itself).
            let mut supported = true;
            for n in name_forms(name) {
                match self.drive.lookup(parent, &n).await {
                    Err(DriveError::Unsupported(_)) => {
                        supported = false;
                        break;
                    }
                    r => {
                        if let Some(e) = self.track(r)? {
                            crate::metrics::cache("listing", false);
                            return Ok(e);
                        }
                    }
                }
            }
            if supported {
                crate::metrics::cache("listing", false);
                return Err(DriveError::NotFound);
            }
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
                crate::metrics::cache("listing", true);
                return Ok(Arc::clone(c));
            }
        }
        crate::metrics::cache("listing", false);
        let c = Arc::new(Cached::new(Arc::new(self.track(self.drive.list(dir).await)?)));
        // A listing nobody may reuse (cache_ttl 0, local folders) is not kept: a folder of
        // 100,000 files would hold ~20 MiB until the next request for it.
        *guard = (!self.opts.cache_ttl.is_zero()).then(|| Arc::clone(&c));
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
        self.move_within(from, to, false).await
    }

    /// Move or rename within this mount, replacing whatever is at `to` (WebDAV MOVE
    /// with `Overwrite: T`). The old target stays intact until the new one is in place.
    pub async fn rename_replace(&self, from: &str, to: &str) -> DriveResult<Entry> {
        self.move_within(from, to, true).await
    }

    async fn move_within(&self, from: &str, to: &str, replace: bool) -> DriveResult<Entry> {
        self.writable()?;
        if from.is_empty() || to.is_empty() {
            return Err(DriveError::Forbidden("cannot move a mount's root".into()));
        }
        if to.starts_with(&format!("{from}/")) {
            return Err(DriveError::Forbidden("cannot move a folder into itself".into()));
        }
        if replace && to == from {
            return Err(DriveError::Forbidden("cannot move an entry onto itself".into()));
        }
        let entry = self.resolve(from).await?;
        let (to_prel, to_name, new_parent) = self.target_parent(to).await?;
        let old = self.target_in_the_way(to_prel, &new_parent, to_name, replace).await?;
        // Replacing keeps the name the drive stores (it may differ in Unicode form).
        let to_name = old.as_ref().map_or(to_name, |o| o.name());
        let r = match &old {
            Some(old) if !self.replaces_in_place(&entry, old) => {
                let (from_prel, from_name) = split_parent(from);
                let from_parent = self.resolve(from_prel).await?;
                // The source goes next to the target under a hidden name first; until the
                // swap it can go back where it came from.
                match self.track(self.drive.move_to(&entry, &new_parent, &swap_name()).await) {
                    Ok(new) => {
                        let undo = Undo::MoveBack { parent: &from_parent, name: from_name };
                        self.swap_in(&new_parent, to_name, old, new, undo).await
                    }
                    Err(e) => Err(e),
                }
            }
            _ => self.track(self.drive.move_to(&entry, &new_parent, to_name).await),
        };
        self.invalidate(split_parent(from).0);
        self.invalidate(to_prel);
        if entry.is_dir {
            self.invalidate_tree(from);
        }
        self.invalidate_tree(to);
        r
    }

    /// Copy one file (or folder, recursively) within this mount. The destination must
    /// not exist.
    pub async fn copy(&self, from: &str, to: &str) -> DriveResult<Entry> {
        self.copy_within(from, to, false).await
    }

    /// Copy within this mount, replacing whatever is at `to` (WebDAV COPY with
    /// `Overwrite: T`): the copy is made aside and swapped in only once complete.
    pub async fn copy_replace(&self, from: &str, to: &str) -> DriveResult<Entry> {
        self.copy_within(from, to, true).await
    }

    async fn copy_within(&self, from: &str, to: &str, replace: bool) -> DriveResult<Entry> {
        self.writable()?;
        let entry = self.resolve(from).await?;
        if entry.is_dir && (from.is_empty() || to == from || to.starts_with(&format!("{from}/"))) {
            return Err(DriveError::Forbidden("cannot copy a folder into itself".into()));
        }
        if replace && to == from {
            return Err(DriveError::Forbidden("cannot copy an entry onto itself".into()));
        }
        let (to_prel, to_name, new_parent) = self.target_parent(to).await?;
        let old = self.target_in_the_way(to_prel, &new_parent, to_name, replace).await?;
        let to_name = old.as_ref().map_or(to_name, |o| o.name());
        let r = match &old {
            Some(old) if !self.replaces_in_place(&entry, old) => {
                let tmp = swap_name();
                match self.track(self.drive.copy_to(&entry, &new_parent, &tmp).await) {
                    Ok(new) => self.swap_in(&new_parent, to_name, old, new, Undo::Remove).await,
                    Err(e) => {
                        self.remove_partial(to_prel, &tmp).await;
                        Err(e)
                    }
                }
            }
            _ => self.track(self.drive.copy_to(&entry, &new_parent, to_name).await),
        };
        self.invalidate(to_prel);
        self.invalidate_tree(to);
        r
    }

    /// Put the entry `make` builds at `to`. `make` gets the mount-relative path to build
    /// at: a hidden name in `to`'s folder, so that a failed or partial build is removed
    /// and never seen. Once it is complete it takes the name `to`; an entry already
    /// there is replaced when `replace` (moved aside, removed only after the swap) and
    /// is an `Exists` error otherwise.
    pub async fn build_aside<F, Fut>(&self, to: &str, replace: bool, make: F) -> DriveResult<Entry>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = DriveResult<Entry>>,
    {
        self.writable()?;
        let (prel, name, parent) = self.target_parent(to).await?;
        let tmp = swap_name();
        let tmp_rel = join_rel(prel, &tmp);
        let r = match make(tmp_rel.clone()).await {
            Ok(new) => match self.existing(prel, &parent, name).await {
                Ok(Some(old)) if replace => self.swap_in(&parent, old.name(), &old, new, Undo::Remove).await,
                Ok(Some(_)) => {
                    self.undo(new, Undo::Remove).await;
                    Err(DriveError::Exists)
                }
                Ok(None) => match self.track(self.drive.move_to(&new, &parent, name).await) {
                    Ok(e) => Ok(e),
                    Err(e) => {
                        self.undo(new, Undo::Remove).await;
                        Err(e)
                    }
                },
                Err(e) => {
                    self.undo(new, Undo::Remove).await;
                    Err(e)
                }
            },
            Err(e) => {
                self.remove_partial(prel, &tmp).await;
                Err(e)
            }
        };
        self.invalidate(prel);
        self.invalidate_tree(to);
        self.invalidate_tree(&tmp_rel);
        r
    }

    /// The entry at the target of a move or copy that `replace`s it, `None` when there
    /// is none. Without `replace`, an existing target is an `Exists` error when the
    /// drive would replace it (`Caps::replace_file`); other drives refuse it themselves.
    async fn target_in_the_way(
        &self,
        prel: &str,
        parent: &Entry,
        name: &str,
        replace: bool,
    ) -> DriveResult<Option<Entry>> {
        if replace {
            return self.existing(prel, parent, name).await;
        }
        if self.caps.replace_file && self.existing(prel, parent, name).await?.is_some() {
            return Err(DriveError::Exists);
        }
        Ok(None)
    }

    /// Whether the drive itself replaces `old` with `new` atomically (file over file).
    fn replaces_in_place(&self, new: &Entry, old: &Entry) -> bool {
        self.caps.replace_file && !new.is_dir && !old.is_dir
    }

    /// The entry called `name` in folder `parent` (at `prel`), if there is one.
    async fn existing(&self, prel: &str, parent: &Entry, name: &str) -> DriveResult<Option<Entry>> {
        match self.child(prel, parent, name).await {
            Ok(e) => Ok(Some(e)),
            Err(DriveError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Put `new` (made under a swap name in `parent`) in the place of `old`, called
    /// `name` in `parent`: the old entry moves aside to a second hidden name, the new one
    /// takes the name, and only then is the old one removed. If the new one cannot take
    /// the name, the old one goes back and `undo` disposes of the new one.
    async fn swap_in(&self, parent: &Entry, name: &str, old: &Entry, new: Entry, undo: Undo<'_>) -> DriveResult<Entry> {
        let bak_name = swap_name();
        let bak = match self.track(self.drive.move_to(old, parent, &bak_name).await) {
            Ok(b) => b,
            Err(e) => {
                self.undo(new, undo).await;
                return Err(e);
            }
        };
        match self.track(self.drive.move_to(&new, parent, name).await) {
            Ok(placed) => {
                if let Err(e) = self.track(self.drive.remove(&bak).await) {
                    tracing::warn!(mount = %self.opts.path, "replaced {name:?}, but the old one stays as {bak_name:?}: {e}");
                }
                Ok(placed)
            }
            Err(e) => {
                if let Err(e2) = self.track(self.drive.move_to(&bak, parent, name).await) {
                    tracing::error!(mount = %self.opts.path, "could not put {name:?} back; it is kept as {bak_name:?}: {e2}");
                }
                self.undo(new, undo).await;
                Err(e)
            }
        }
    }

    async fn undo(&self, new: Entry, undo: Undo<'_>) {
        let r = match undo {
            Undo::Remove => self.drive.remove(&new).await,
            Undo::MoveBack { parent, name } => self.drive.move_to(&new, parent, name).await.map(|_| ()),
        };
        if let Err(e) = self.track(r) {
            tracing::error!(mount = %self.opts.path, "could not undo a failed replace; {:?} is left: {e}", new.name());
        }
    }

    /// Remove what a failed copy may have left under the hidden name `tmp` in `prel`.
    async fn remove_partial(&self, prel: &str, tmp: &str) {
        self.invalidate(prel);
        let rel = join_rel(prel, tmp);
        if let Ok(partial) = self.resolve(&rel).await {
            if let Err(e) = self.track(self.drive.remove(&partial).await) {
                tracing::warn!(mount = %self.opts.path, "could not remove the partial copy {rel:?}: {e}");
            }
        }
        self.invalidate(prel);
        self.invalidate_tree(&rel);
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

    /// Store `upload` at `rel`. An existing file is replaced: by the drive itself when
    /// it can do that atomically (`Caps::replace_file`), otherwise the upload is stored
    /// under a hidden name first and swapped in once it is complete.
    pub async fn put(&self, rel: &str, upload: Upload) -> DriveResult<Entry> {
        self.writable()?;
        let (prel, name, parent) = self.target_parent(rel).await?;
        let old = self.existing(prel, &parent, name).await?;
        // Replacing keeps the name the drive stores (it may differ in Unicode form).
        let name = old.as_ref().map_or(name, |o| o.name());
        let r = match &old {
            Some(old) if old.is_dir => Err(DriveError::IsADirectory),
            Some(old) if !self.caps.replace_file => {
                let tmp = swap_name();
                match self.track(self.drive.put(&parent, &tmp, upload).await) {
                    Ok(new) => self.swap_in(&parent, name, old, new, Undo::Remove).await,
                    Err(e) => {
                        self.remove_partial(prel, &tmp).await;
                        Err(e)
                    }
                }
            }
            _ => self.track(self.drive.put(&parent, name, upload).await),
        };
        self.invalidate(prel);
        r
    }

    /// Store `src` as the new file `rel` by its hash (`Drive::rapid()`, see
    /// `RapidPut::put_hashed`); `rel` must be free.
    pub async fn put_hashed(&self, rel: &str, src: &Hashed, mode: RapidMode) -> DriveResult<Option<Entry>> {
        self.writable()?;
        let rapid = self.drive.rapid().ok_or(DriveError::Unsupported("rapid upload"))?;
        let (prel, name, parent) = self.target_parent(rel).await?;
        if self.existing(prel, &parent, name).await?.is_some() {
            return Err(DriveError::Exists);
        }
        let r = self.track(rapid.put_hashed(&parent, name, src, mode).await);
        self.invalidate(prel);
        r
    }

    /// The content hashes of `entry` (`Drive::hashes`).
    pub async fn hashes(&self, entry: &Entry, compute: bool) -> DriveResult<Hashes> {
        self.track(self.drive.hashes(entry, compute).await)
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

    /// See `Drive::open_span`.
    pub async fn open_span(&self, entry: &Entry, range: ReadRange) -> DriveResult<Option<FileSpan>> {
        self.track(self.drive.open_span(entry, range).await)
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

#[cfg(test)]
mod tests {
    //! Replacing a target: the old entry survives every failure before the swap, and no
    //! hidden name is left behind. An in-memory drive that fails on demand.

    use std::collections::HashMap;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;

    #[derive(Clone)]
    struct Node {
        entry: Entry,
        parent: String,
        data: Vec<u8>,
    }

    #[derive(Default)]
    struct Mem {
        nodes: Mutex<HashMap<String, Node>>,
        next: Mutex<u64>,
        /// (operation, name prefix) pairs that fail, once each.
        fail: Mutex<Vec<(&'static str, String)>>,
        replace_file: bool,
        /// Names given to move_to/copy_to/put, in order.
        names: Mutex<Vec<String>>,
        /// Links handed out, and how long each claims to live.
        links: Mutex<u64>,
        link_life: Mutex<Option<Duration>>,
    }

    impl Mem {
        fn new(replace_file: bool) -> Mem {
            let m = Mem { replace_file, ..Default::default() };
            m.nodes.lock().unwrap().insert(
                "0".into(),
                Node { entry: Entry::dir("0", "", SystemTime::UNIX_EPOCH), parent: String::new(), data: vec![] },
            );
            m
        }

        fn check(&self, op: &'static str, name: &str) -> DriveResult<()> {
            self.names.lock().unwrap().push(name.to_string());
            let mut fail = self.fail.lock().unwrap();
            if let Some(i) = fail.iter().position(|(o, p)| *o == op && name.starts_with(p.as_str())) {
                fail.remove(i);
                return Err(DriveError::upstream(format!("{op} {name} fails (test)")));
            }
            Ok(())
        }

        fn id(&self) -> String {
            let mut n = self.next.lock().unwrap();
            *n += 1;
            n.to_string()
        }

        fn add(&self, parent: &str, name: &str, dir: bool, data: &[u8]) -> Entry {
            let id = self.id();
            let mut entry = Entry::dir(id.clone(), name, SystemTime::UNIX_EPOCH);
            entry.is_dir = dir;
            entry.size = data.len() as u64;
            self.nodes
                .lock()
                .unwrap()
                .insert(id, Node { entry: entry.clone(), parent: parent.into(), data: data.to_vec() });
            entry
        }

        fn child(&self, parent: &str, name: &str) -> Option<Node> {
            self.nodes.lock().unwrap().values().find(|n| n.parent == parent && n.entry.name() == name).cloned()
        }

        fn drop_tree(&self, id: &str) {
            let kids: Vec<String> = self
                .nodes
                .lock()
                .unwrap()
                .values()
                .filter(|n| n.parent == id)
                .map(|n| n.entry.id().to_string())
                .collect();
            for k in kids {
                self.drop_tree(&k);
            }
            self.nodes.lock().unwrap().remove(id);
        }

        /// Make room for `name` in `parent`: a file is replaced when the drive says it
        /// can; anything else there is `Exists`.
        fn claim(&self, parent: &str, name: &str, new_is_dir: bool, moving: Option<&str>) -> DriveResult<()> {
            match self.child(parent, name) {
                Some(n) if Some(n.entry.id()) == moving => Ok(()),
                Some(n) if self.replace_file && !n.entry.is_dir && !new_is_dir => {
                    self.drop_tree(n.entry.id());
                    Ok(())
                }
                Some(_) => Err(DriveError::Exists),
                None => Ok(()),
            }
        }

        fn copy_tree(&self, src: &Node, parent: &str, name: &str) -> Entry {
            let e = self.add(parent, name, src.entry.is_dir, &src.data);
            let kids: Vec<Node> =
                self.nodes.lock().unwrap().values().filter(|n| n.parent == src.entry.id()).cloned().collect();
            for k in kids {
                self.copy_tree(&k, e.id(), k.entry.name());
            }
            e
        }

        /// Every path (`a/b`) with its contents (`None` for folders), hidden ones too.
        fn tree(&self) -> std::collections::BTreeMap<String, Option<Vec<u8>>> {
            fn go(m: &Mem, id: &str, prefix: &str, out: &mut std::collections::BTreeMap<String, Option<Vec<u8>>>) {
                let kids: Vec<Node> = m.nodes.lock().unwrap().values().filter(|n| n.parent == id).cloned().collect();
                for k in kids {
                    let p = join_rel(prefix, k.entry.name());
                    out.insert(p.clone(), (!k.entry.is_dir).then(|| k.data.clone()));
                    go(m, k.entry.id(), &p, out);
                }
            }
            let mut out = Default::default();
            go(self, "0", "", &mut out);
            out
        }
    }

    #[async_trait]
    impl Drive for Mem {
        fn kind(&self) -> &'static str {
            "mem"
        }
        fn caps(&self) -> Caps {
            Caps { replace_file: self.replace_file, ..Caps::default() }
        }
        async fn root(&self) -> DriveResult<Entry> {
            Ok(self.nodes.lock().unwrap()["0"].entry.clone())
        }
        async fn list(&self, dir: &Entry) -> DriveResult<Vec<Entry>> {
            Ok(self.nodes.lock().unwrap().values().filter(|n| n.parent == dir.id()).map(|n| n.entry.clone()).collect())
        }
        async fn mkdir(&self, parent: &Entry, name: &str) -> DriveResult<Entry> {
            self.check("mkdir", name)?;
            self.claim(parent.id(), name, true, None)?;
            Ok(self.add(parent.id(), name, true, b""))
        }
        async fn move_to(&self, entry: &Entry, new_parent: &Entry, new_name: &str) -> DriveResult<Entry> {
            self.check("move", new_name)?;
            self.claim(new_parent.id(), new_name, entry.is_dir, Some(entry.id()))?;
            let mut nodes = self.nodes.lock().unwrap();
            let n = nodes.get_mut(entry.id()).ok_or(DriveError::NotFound)?;
            n.parent = new_parent.id().to_string();
            n.entry.set_name(new_name);
            Ok(n.entry.clone())
        }
        async fn copy_to(&self, entry: &Entry, new_parent: &Entry, new_name: &str) -> DriveResult<Entry> {
            self.check("copy", new_name)?;
            self.claim(new_parent.id(), new_name, entry.is_dir, None)?;
            let src = self.nodes.lock().unwrap().get(entry.id()).cloned().ok_or(DriveError::NotFound)?;
            Ok(self.copy_tree(&src, new_parent.id(), new_name))
        }
        async fn remove(&self, entry: &Entry) -> DriveResult<()> {
            self.check("remove", entry.name())?;
            self.drop_tree(entry.id());
            Ok(())
        }
        async fn put(&self, parent: &Entry, name: &str, upload: Upload) -> DriveResult<Entry> {
            self.check("put", name)?;
            self.claim(parent.id(), name, false, None)?;
            let data = std::fs::read(&upload.path)?;
            Ok(self.add(parent.id(), name, false, &data))
        }
        async fn link(&self, file: &Entry, _req: &LinkRequest) -> DriveResult<Link> {
            let mut n = self.links.lock().unwrap();
            *n += 1;
            let life = *self.link_life.lock().unwrap();
            Ok(Link {
                url: format!("http://mem/{}?n={n}", file.id()),
                headers: vec![],
                expires_at: life.map(|l| SystemTime::now() + l),
            })
        }
    }

    fn mount(drive: Arc<Mem>) -> Mount {
        let opts = MountOptions {
            path: "/m".into(),
            policy: Policy::Proxy,
            proxy_url: None,
            read_only: false,
            cache_ttl: Duration::ZERO,
            spool_dir: std::env::temp_dir(),
        };
        Mount::new(opts, drive)
    }

    /// `/d/target.txt` ("old"), `/d/src.txt` ("new"), `/d/olddir/o.txt`, `/d/newdir/n.txt`.
    fn fixture(replace_file: bool) -> (Arc<Mem>, Mount) {
        let m = Arc::new(Mem::new(replace_file));
        let d = m.add("0", "d", true, b"");
        m.add(d.id(), "target.txt", false, b"old");
        m.add(d.id(), "src.txt", false, b"new");
        let od = m.add(d.id(), "olddir", true, b"");
        m.add(od.id(), "o.txt", false, b"o");
        let nd = m.add(d.id(), "newdir", true, b"");
        m.add(nd.id(), "n.txt", false, b"n");
        let mnt = mount(Arc::clone(&m));
        (m, mnt)
    }

    fn fail(m: &Mem, op: &'static str, prefix: &str) {
        m.fail.lock().unwrap().push((op, prefix.to_string()));
    }

    fn no_hidden(m: &Mem) {
        let hidden: Vec<String> = m.tree().into_keys().filter(|p| p.contains(SWAP_PREFIX)).collect();
        assert!(hidden.is_empty(), "hidden names left: {hidden:?}");
    }

    fn upload(data: &[u8]) -> (tempfile::TempPath, Upload) {
        let p = tempfile::NamedTempFile::new().unwrap().into_temp_path();
        std::fs::write(&p, data).unwrap();
        let u = Upload {
            path: p.to_path_buf(),
            size: data.len() as u64,
            sha1: String::new(),
            md5: String::new(),
            mtime: None,
        };
        (p, u)
    }

    #[tokio::test]
    async fn replacing_succeeds_without_leftovers() {
        let (m, mnt) = fixture(false);
        mnt.copy_replace("d/src.txt", "d/target.txt").await.unwrap();
        assert_eq!(m.tree()["d/target.txt"], Some(b"new".to_vec()));
        mnt.rename_replace("d/newdir", "d/olddir").await.unwrap();
        let t = m.tree();
        assert!(t.contains_key("d/olddir/n.txt") && !t.contains_key("d/olddir/o.txt") && !t.contains_key("d/newdir"));
        let (_tmp, u) = upload(b"uploaded");
        mnt.put("d/target.txt", u).await.unwrap();
        assert_eq!(m.tree()["d/target.txt"], Some(b"uploaded".to_vec()));
        no_hidden(&m);
    }

    #[tokio::test]
    async fn a_failed_replace_keeps_the_old_target() {
        // Each step of a replace fails in turn; the tree is as before every time.
        for (op, name) in [
            ("copy", SWAP_PREFIX),  // building the new entry aside
            ("move", SWAP_PREFIX),  // moving the old one aside (or the source in)
            ("move", "target.txt"), // the new one taking the name
        ] {
            let (m, mnt) = fixture(false);
            let before = m.tree();
            fail(&m, op, name);
            assert!(mnt.copy_replace("d/src.txt", "d/target.txt").await.is_err(), "{op} {name}");
            assert_eq!(m.tree(), before, "copy_replace with {op} {name:?} failing");
            no_hidden(&m);
        }
        for (op, name) in [("move", SWAP_PREFIX), ("move", "olddir")] {
            let (m, mnt) = fixture(false);
            let before = m.tree();
            fail(&m, op, name);
            assert!(mnt.rename_replace("d/newdir", "d/olddir").await.is_err());
            assert_eq!(m.tree(), before, "rename_replace with {op} {name:?} failing");
        }
        for (op, name) in [("put", SWAP_PREFIX), ("move", "target.txt")] {
            let (m, mnt) = fixture(false);
            let before = m.tree();
            fail(&m, op, name);
            let (_tmp, u) = upload(b"uploaded");
            assert!(mnt.put("d/target.txt", u).await.is_err());
            assert_eq!(m.tree(), before, "put with {op} {name:?} failing");
            no_hidden(&m);
        }
        // A build that fails part-way leaves nothing.
        let (m, mnt) = fixture(false);
        let before = m.tree();
        let r = mnt
            .build_aside("d/olddir", true, |at| {
                let mnt = &mnt;
                async move {
                    mnt.mkdir(&at).await?;
                    mnt.mkdir(&format!("{at}/half")).await?;
                    Err(DriveError::upstream("source broke"))
                }
            })
            .await;
        assert!(r.is_err());
        assert_eq!(m.tree(), before);
    }

    #[tokio::test]
    async fn names_are_found_in_either_unicode_form_and_replaced_in_place() {
        let nfc = "caf\u{e9}.txt";
        let nfd = "cafe\u{301}.txt";
        for replace_file in [false, true] {
            let (m, mnt) = fixture(replace_file);
            let d = mnt.resolve("d").await.unwrap();
            m.add(d.id(), nfc, false, b"stored");
            assert_eq!(mnt.resolve(&format!("d/{nfd}")).await.unwrap().name(), nfc);
            let (_tmp, u) = upload(b"new");
            let put = mnt.put(&format!("d/{nfd}"), u).await.unwrap();
            assert_eq!(put.name(), nfc, "replace_file {replace_file}");
            let t = m.tree();
            assert_eq!(t.get(&format!("d/{nfc}")), Some(&Some(b"new".to_vec())));
            assert!(!t.contains_key(&format!("d/{nfd}")), "a second file appeared: {t:?}");
            no_hidden(&m);
        }
        // The other way round, and an exact name wins over a normalised one.
        let (m, mnt) = fixture(false);
        let d = mnt.resolve("d").await.unwrap();
        m.add(d.id(), nfd, false, b"nfd");
        assert_eq!(mnt.resolve(&format!("d/{nfc}")).await.unwrap().name(), nfd);
        m.add(d.id(), nfc, false, b"nfc");
        mnt.invalidate("d");
        assert_eq!(mnt.resolve(&format!("d/{nfc}")).await.unwrap().name(), nfc);
        assert_eq!(mnt.resolve(&format!("d/{nfd}")).await.unwrap().name(), nfd);
        assert!(matches!(mnt.resolve("d/cafe.txt").await, Err(DriveError::NotFound)));
    }

    #[tokio::test]
    async fn drives_that_replace_files_are_asked_directly() {
        let (m, mnt) = fixture(true);
        mnt.copy_replace("d/src.txt", "d/target.txt").await.unwrap();
        let (_tmp, u) = upload(b"uploaded");
        mnt.put("d/target.txt", u).await.unwrap();
        assert_eq!(m.tree()["d/target.txt"], Some(b"uploaded".to_vec()));
        let names = m.names.lock().unwrap().clone();
        assert!(names.iter().all(|n| !n.starts_with(SWAP_PREFIX)), "{names:?}");
        // Folders are still swapped.
        mnt.rename_replace("d/newdir", "d/olddir").await.unwrap();
        assert!(m.names.lock().unwrap().iter().any(|n| n.starts_with(SWAP_PREFIX)));
        no_hidden(&m);
    }

    /// A link is reused until `LINK_MARGIN` before its expiry, then asked for again; one
    /// that expires within the margin is never reused. Paused time: no sleeps.
    #[tokio::test(start_paused = true)]
    async fn links_are_reused_until_shortly_before_they_expire() {
        let m = Arc::new(Mem::new(false));
        let cache = LinkCache::default();
        let file = m.add("0", "f.bin", false, b"x");
        let req = LinkRequest { user_agent: "ua".into(), ip: None };
        let calls = || *m.links.lock().unwrap();

        *m.link_life.lock().unwrap() = Some(LINK_MARGIN + Duration::from_millis(1500));
        let first = cache.get(&*m, &file, &req).await.unwrap();
        tokio::time::advance(Duration::from_millis(1400)).await;
        let again = cache.get(&*m, &file, &req).await.unwrap();
        assert_eq!((calls(), &again.url), (1, &first.url), "reused while more than the margin is left");
        tokio::time::advance(Duration::from_millis(200)).await;
        let fresh = cache.get(&*m, &file, &req).await.unwrap();
        assert_eq!(calls(), 2, "asked for again once within the margin of its expiry");
        assert_ne!(fresh.url, first.url);
        cache.get(&*m, &file, &req).await.unwrap();
        assert_eq!(calls(), 2, "the fresh link is reused");

        // Another User-Agent gets its own link (115 binds links to the UA).
        let other = LinkRequest { user_agent: "other".into(), ip: None };
        cache.get(&*m, &file, &other).await.unwrap();
        assert_eq!(calls(), 3);

        // Expiring within the margin: never reused.
        *m.link_life.lock().unwrap() = Some(LINK_MARGIN - Duration::from_secs(1));
        cache.forget(&file, &req);
        for n in 4..7 {
            cache.get(&*m, &file, &req).await.unwrap();
            assert_eq!(calls(), n);
        }

        // No expiry: kept for the default time, then asked for again.
        *m.link_life.lock().unwrap() = None;
        cache.forget(&file, &req);
        cache.get(&*m, &file, &req).await.unwrap();
        tokio::time::advance(LINK_TTL_DEFAULT - Duration::from_secs(1)).await;
        cache.get(&*m, &file, &req).await.unwrap();
        assert_eq!(calls(), 7);
        tokio::time::advance(Duration::from_secs(2)).await;
        cache.get(&*m, &file, &req).await.unwrap();
        assert_eq!(calls(), 8);
    }
}
