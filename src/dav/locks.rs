//! WebDAV locks (RFC 4918 §6–7), in place of dav-server's `MemLs`.
//!
//! `MemLs` panicked on UNLOCK of `/` while holding its mutex (every later write of
//! every user failed until restart), let any client lock anything for ever, and let
//! anyone remove anyone's lock. Here:
//!
//! - a lock needs write access to everything it covers: the user is not read-only, the
//!   path lies inside a writable mount this user sees; virtual folders and `/` (which
//!   would cover mounts the user may not even see) are never lockable;
//! - every lock expires: the client's `Timeout` is honoured up to `lock_max_timeout`
//!   (`Second-1` lives one second), `Infinite` means the maximum;
//! - locks are bounded per user and in total, and so is the owner element a client
//!   stores with one;
//! - only the user who took a lock may refresh it, remove it, or use its token;
//! - locks are saved in the state dir (`locks.json`, written atomically off the async
//!   workers) before a LOCK is answered, so a client editing a file across a restart
//!   of pandav keeps its lock and can still save with its token;
//! - the table's mutex is never held across an await or anything that can panic on
//!   client input, and a poisoned one is recovered (its data is a plain list);
//! - with `[server] state = "redis://…"` the table lives in Redis instead, shared by
//!   every replica (a LOCK taken through one is honoured by all): one hash holding the
//!   same document as `locks.json` and a version; every change is a compare-and-set on
//!   the version, retried on a conflict; reads fetch the document only when the
//!   version moved. While Redis is unreachable, changes and write checks are refused
//!   with 503 (never done without the table) and lock discovery answers none.
//!
//! dav-server's lock-system calls carry no user, so each request gets a [`UserLocks`]
//! view bound to its user; a refusal that dav-server can only express as 423 or 409 is
//! recorded there and turned into the right status by the server.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dav_server::davpath::DavPath;
use dav_server::ls::{DavLock, DavLockSystem, LsFuture};
use futures_util::FutureExt;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use xmltree::Element;

use super::{path_str, User};
use crate::vfs::{MountTable, Resolved};

/// Limits, from `[server]` in the config.
#[derive(Debug, Clone, Copy)]
pub struct LockLimits {
    /// Longest lock lifetime granted (also what `Timeout: Infinite` gets).
    pub max_timeout: Duration,
    pub per_user: usize,
    pub total: usize,
    /// Largest `<D:owner>` element kept with a lock, in bytes.
    pub owner_bytes: usize,
}

impl Default for LockLimits {
    fn default() -> Self {
        LockLimits { max_timeout: Duration::from_secs(3600), per_user: 256, total: 4096, owner_bytes: 4096 }
    }
}

/// Lock on a poisoned mutex anyway: a panic elsewhere must not take every later
/// request down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Clone)]
struct Lock {
    token: String,
    /// Decoded path without the URL prefix, no trailing `/`.
    path: String,
    /// Taken on a collection (its lockroot gets a trailing `/`).
    collection: bool,
    principal: String,
    owner: Option<Element>,
    shared: bool,
    deep: bool,
    timeout: Duration,
    expires: SystemTime,
}

/// `p` lies strictly below `root`.
fn is_under(p: &str, root: &str) -> bool {
    if root == "/" {
        return p != "/";
    }
    p.strip_prefix(root).is_some_and(|rest| rest.starts_with('/'))
}

impl Lock {
    /// The lock applies to `p` (taken on it, or on a folder above it with Depth infinity).
    fn covers(&self, p: &str) -> bool {
        self.path == p || (self.deep && is_under(p, &self.path))
    }

    /// The lock matters for an operation on `p` (and, when `deep`, everything below).
    fn relevant(&self, p: &str, deep: bool) -> bool {
        self.covers(p) || (deep && is_under(&self.path, p))
    }

    fn to_dav(&self, prefix: &str) -> DavLock {
        DavLock {
            token: self.token.clone(),
            path: Box::new(dav_path(prefix, &self.path, self.collection)),
            principal: Some(self.principal.clone()),
            owner: self.owner.clone().map(Box::new),
            timeout_at: Some(self.expires),
            timeout: Some(self.timeout),
            shared: self.shared,
            deep: self.deep,
        }
    }
}

/// The `DavPath` (with prefix) of a decoded path.
fn dav_path(prefix: &str, path: &str, collection: bool) -> DavPath {
    let mut url = format!("{prefix}{}", crate::server::download::encode_path(path));
    if collection && !url.ends_with('/') {
        url.push('/');
    }
    let made = DavPath::new(&url).and_then(|mut p| p.set_prefix(prefix).map(|_| p));
    // Only paths that came from a DavPath get here; `/` is the fallback that cannot fail.
    made.unwrap_or_else(|_| DavPath::new("/").unwrap_or_else(|_| unreachable!("\"/\" is a valid DavPath")))
}

/// Size of an element as XML text, roughly (names, attributes, text), without
/// serialising it. Depth is bounded by the XML gate the body passed.
fn element_size(e: &Element) -> usize {
    let own = 2 * (e.name.len() + e.prefix.as_ref().map_or(0, |p| p.len() + 1)) + 5;
    let attrs: usize = e.attributes.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
    let kids: usize = e
        .children
        .iter()
        .map(|c| match c {
            xmltree::XMLNode::Element(k) => element_size(k),
            xmltree::XMLNode::Text(t) | xmltree::XMLNode::CData(t) | xmltree::XMLNode::Comment(t) => t.len(),
            xmltree::XMLNode::ProcessingInstruction(a, b) => a.len() + b.as_ref().map_or(0, |s| s.len()),
        })
        .sum();
    own + attrs + kids
}

/// A refusal dav-server cannot express itself (it answers a refused LOCK with 423 and
/// a refused UNLOCK with 409): the server swaps in this status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub why: String,
}

#[derive(Debug, Default)]
struct State {
    locks: Vec<Lock>,
    /// Bumped on every change; saves carry it so an older snapshot never overwrites a
    /// newer one.
    generation: u64,
}

/// The server's locks, shared by all requests.
#[derive(Debug)]
pub struct LockTable {
    limits: LockLimits,
    state: Mutex<State>,
    file: Option<PathBuf>,
    /// Generation of the last snapshot written to `file`.
    written: Arc<Mutex<u64>>,
    /// The table in Redis, when the state is shared (then `state` and `file` are unused).
    shared: Option<SharedLocks>,
}

/// The lock table in Redis: where, and the last version read (with its locks).
struct SharedLocks {
    s: Arc<crate::state::shared::Shared>,
    key: String,
    seen: Mutex<(u64, Vec<Lock>)>,
}

impl std::fmt::Debug for SharedLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLocks").field("key", &self.key).finish_non_exhaustive()
    }
}

/// The shared lock table could not be read or changed (Redis unreachable).
#[derive(Debug)]
pub struct StoreDown(pub String);

const STORE_IF_SAME: &str = r"
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return -1 end
redis.call('HSET', KEYS[1], 'json', ARGV[2], 'v', v + 1)
return v + 1";

fn store_if_same() -> &'static redis::Script {
    static S: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    S.get_or_init(|| redis::Script::new(STORE_IF_SAME))
}

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    locks: Vec<SavedLock>,
}

#[derive(Serialize, Deserialize)]
struct SavedLock {
    token: String,
    path: String,
    collection: bool,
    principal: String,
    owner: Option<String>,
    shared: bool,
    deep: bool,
    timeout_secs: u64,
    expires_unix: u64,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn owner_text(e: &Element) -> Option<String> {
    let mut out = vec![];
    let cfg = xmltree::EmitterConfig::new().write_document_declaration(false);
    e.write_with_config(&mut out, cfg).ok()?;
    String::from_utf8(out).ok()
}

/// A random `urn:uuid:` token (UUID version 4).
fn new_token() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("urn:uuid:{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// A change to save: (generation, JSON).
type Snapshot = Option<(u64, Vec<u8>)>;

impl LockTable {
    /// An empty table, saved to `file` (when given) from now on, after taking over the
    /// unexpired locks saved there before.
    pub fn open(limits: LockLimits, file: Option<PathBuf>) -> LockTable {
        let mut locks = vec![];
        if let Some(f) = &file {
            match std::fs::read(f) {
                Ok(data) => locks = Self::restore(&data, &limits, f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(file = %f.display(), "cannot read saved locks: {e}"),
            }
        }
        if !locks.is_empty() {
            tracing::info!(count = locks.len(), "restored WebDAV locks");
        }
        LockTable {
            limits,
            state: Mutex::new(State { locks, generation: 0 }),
            file,
            written: Default::default(),
            shared: None,
        }
    }

    /// The table of every replica, in Redis.
    pub fn shared(limits: LockLimits, s: Arc<crate::state::shared::Shared>) -> LockTable {
        let key = s.key("locks", "table");
        LockTable {
            limits,
            state: Mutex::new(State::default()),
            file: None,
            written: Default::default(),
            shared: Some(SharedLocks { s, key, seen: Mutex::new((0, vec![])) }),
        }
    }

    fn restore(data: &[u8], limits: &LockLimits, f: &std::path::Path) -> Vec<Lock> {
        let saved: Saved = match serde_json::from_slice(data) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(file = %f.display(), "ignoring unreadable saved locks: {e}");
                return vec![];
            }
        };
        let now = SystemTime::now();
        saved
            .locks
            .into_iter()
            .filter_map(|s| {
                let expires =
                    UNIX_EPOCH + Duration::from_secs(s.expires_unix.min(unix(now) + limits.max_timeout.as_secs()));
                if expires <= now || !s.path.starts_with('/') || s.token.is_empty() {
                    return None;
                }
                let owner = s.owner.and_then(|o| super::xmlgate::parse(o.as_bytes()).ok());
                Some(Lock {
                    token: s.token,
                    path: s.path,
                    collection: s.collection,
                    principal: s.principal,
                    owner,
                    shared: s.shared,
                    deep: s.deep,
                    timeout: Duration::from_secs(s.timeout_secs).min(limits.max_timeout),
                    expires,
                })
            })
            .take(limits.total)
            .collect()
    }

    pub fn limits(&self) -> LockLimits {
        self.limits
    }

    /// Run `f` on the live locks (expired ones dropped first); a snapshot to save when
    /// anything changed.
    fn with<T>(&self, f: impl FnOnce(&mut Vec<Lock>) -> (T, bool)) -> (T, Snapshot) {
        let mut st = lock(&self.state);
        let now = SystemTime::now();
        let before = st.locks.len();
        st.locks.retain(|l| l.expires > now);
        let expired = st.locks.len() != before;
        let (out, changed) = f(&mut st.locks);
        if !(changed || expired) || self.file.is_none() {
            return (out, None);
        }
        st.generation += 1;
        (out, Some((st.generation, Self::document(&st.locks))))
    }

    /// The saved form of `locks` (`locks.json`, or the Redis document).
    fn document(locks: &[Lock]) -> Vec<u8> {
        let saved = Saved {
            version: 1,
            locks: locks
                .iter()
                .map(|l| SavedLock {
                    token: l.token.clone(),
                    path: l.path.clone(),
                    collection: l.collection,
                    principal: l.principal.clone(),
                    owner: l.owner.as_ref().and_then(owner_text),
                    shared: l.shared,
                    deep: l.deep,
                    timeout_secs: l.timeout.as_secs(),
                    expires_unix: unix(l.expires),
                })
                .collect(),
        };
        serde_json::to_vec_pretty(&saved).unwrap_or_default()
    }

    /// Run `f` on the live locks and keep what it changed: in memory (saved to the file
    /// off the async workers), or in Redis by compare-and-set (`f` runs again on a
    /// conflict, so it must not consume what it captures).
    async fn transact<T>(&self, mut f: impl FnMut(&mut Vec<Lock>) -> (T, bool)) -> Result<T, StoreDown> {
        let Some(sh) = &self.shared else {
            let (out, snap) = self.with(f);
            self.save(snap).await;
            return Ok(out);
        };
        let down = |e: redis::RedisError| StoreDown(format!("{:#}", sh.s.err(e)));
        for _ in 0..64 {
            // The version first (a plain HGET: cheap for Redis, where a PROPFIND asks
            // once per entry); the table only when it moved.
            let seen = lock(&sh.seen).0;
            let v: Option<u64> = sh.s.query(redis::cmd("HGET").arg(&sh.key).arg("v")).await.map_err(down)?;
            let fetched: Option<(Option<u64>, Option<String>)> = match v.unwrap_or(0) == seen {
                true => None,
                false => Some(sh.s.query(redis::cmd("HMGET").arg(&sh.key).arg("v").arg("json")).await.map_err(down)?),
            };
            let version = match &fetched {
                Some((v, _)) => v.unwrap_or(0),
                None => seen,
            };
            let mut locks = match fetched.map(|(_, json)| json.unwrap_or_default()) {
                Some(json) => {
                    let l = if json.is_empty() {
                        vec![]
                    } else {
                        Self::restore(json.as_bytes(), &self.limits, std::path::Path::new(&sh.key))
                    };
                    *lock(&sh.seen) = (version, l.clone());
                    l
                }
                None => lock(&sh.seen).1.clone(),
            };
            let now = SystemTime::now();
            let before = locks.len();
            locks.retain(|l| l.expires > now);
            let expired = locks.len() != before;
            let (out, changed) = f(&mut locks);
            if !(changed || expired) {
                return Ok(out);
            }
            let doc = Self::document(&locks);
            let stored: i64 =
                sh.s.script(store_if_same(), &[&sh.key], &[&version.to_string(), &doc]).await.map_err(down)?;
            if stored > 0 {
                *lock(&sh.seen) = (stored as u64, locks);
                return Ok(out);
            }
            // Another replica changed the table meanwhile: again, on its version.
            tokio::task::yield_now().await;
        }
        Err(StoreDown("the shared lock table kept changing under this change".into()))
    }

    /// Write a snapshot (off the async workers), unless a newer one was written already.
    async fn save(&self, snap: Snapshot) {
        let (Some((generation, json)), Some(file)) = (snap, self.file.clone()) else { return };
        let written = Arc::clone(&self.written);
        let r = tokio::task::spawn_blocking(move || {
            let mut w = lock(&written);
            if *w >= generation {
                return Ok(());
            }
            crate::state::write_atomic(&file, &json)?;
            *w = generation;
            Ok::<_, std::io::Error>(())
        })
        .await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("cannot save WebDAV locks: {e}"),
            Err(e) => tracing::warn!("cannot save WebDAV locks: {e}"),
        }
    }

    /// The lock check dav-server's handlers use (same rules as `MemLs`): every lock on
    /// `path` (and below it when `deep`) must be held — token submitted, and taken by
    /// this principal unless `ignore_principal` — except that shared locks only conflict
    /// when none is held.
    fn check_locks<'l>(
        locks: &'l [Lock],
        path: &str,
        principal: Option<&str>,
        ignore_principal: bool,
        deep: bool,
        tokens: &[String],
    ) -> Result<(), &'l Lock> {
        let mut held = false;
        let mut first_shared: Option<&Lock> = None;
        for l in locks.iter().filter(|l| l.relevant(path, deep)) {
            if tokens.contains(&l.token) && (ignore_principal || principal == Some(l.principal.as_str())) {
                held = true;
            } else if !l.shared {
                return Err(l);
            } else {
                first_shared.get_or_insert(l);
            }
        }
        match first_shared {
            Some(l) if !held => Err(l),
            _ => Ok(()),
        }
    }

    /// Whether an operation by `user` on `path` (and below, when `deep`) may go ahead,
    /// given the submitted `tokens`. For our own handlers (COPY, MOVE, mtime PROPPATCH).
    pub async fn check(&self, path: &str, user: &str, deep: bool, tokens: &[String]) -> Result<(), ()> {
        let r = self
            .transact(|locks| (Self::check_locks(locks, path, Some(user), false, deep, tokens).map_err(|_| ()), false))
            .await;
        match r {
            Ok(r) => r,
            Err(StoreDown(e)) => {
                tracing::warn!("write refused: the lock table cannot be checked: {e}");
                Err(())
            }
        }
    }

    /// Whether `token` is a live lock covering `path` (an `If:` state-token condition).
    pub async fn token_covers(&self, token: &str, path: &str) -> bool {
        let now = SystemTime::now();
        self.transact(|locks| (locks.iter().any(|l| l.token == token && l.expires > now && l.covers(path)), false))
            .await
            .unwrap_or(false)
    }

    /// Remove the locks on `path` and below (after it was moved away or replaced).
    pub async fn forget_tree(&self, path: &str) {
        let r = self
            .transact(|locks| {
                let before = locks.len();
                locks.retain(|l| !(l.path == path || is_under(&l.path, path)));
                ((), locks.len() != before)
            })
            .await;
        if let Err(StoreDown(e)) = r {
            tracing::warn!(path = %super::Esc(path), "locks below a removed path could not be dropped: {e}");
        }
    }

    /// The live locks that apply to `path` or, when `children`, to a member of it: what
    /// a PROPFIND's `lockdiscovery` shows, taken once per request. With the table in
    /// Redis, read there (locks taken through another replica show); while Redis is
    /// unreachable none are shown.
    pub async fn snapshot(&self, path: &str, children: bool) -> Vec<LockView> {
        let view = |locks: &[Lock]| {
            let now = SystemTime::now();
            locks
                .iter()
                .filter(|l| l.expires > now)
                .filter(|l| {
                    l.covers(path)
                        || (children
                            && is_under(&l.path, path)
                            && !l.path[path.len()..].trim_start_matches('/').contains('/'))
                })
                .map(|l| LockView {
                    token: l.token.clone(),
                    path: l.path.clone(),
                    collection: l.collection,
                    owner: l.owner.as_ref().and_then(owner_text),
                    shared: l.shared,
                    deep: l.deep,
                    timeout: l.timeout,
                })
                .collect()
        };
        if self.shared.is_none() {
            return view(&lock(&self.state).locks);
        }
        match self.transact(|locks| (view(locks), false)).await {
            Ok(v) => v,
            Err(StoreDown(e)) => {
                tracing::warn!(path = %super::Esc(path), "lock table unreachable, no locks shown: {e}");
                vec![]
            }
        }
    }

    /// How many live locks there are (for tests and the health page).
    pub async fn len(&self) -> usize {
        self.transact(|locks| (locks.len(), false)).await.unwrap_or(0)
    }

    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }
}

/// A lock as `lockdiscovery` shows it.
#[derive(Debug, Clone)]
pub struct LockView {
    pub token: String,
    /// Decoded path without the URL prefix, no trailing `/`.
    pub path: String,
    pub collection: bool,
    /// The `<D:owner>` element the client gave, as XML.
    pub owner: Option<String>,
    pub shared: bool,
    pub deep: bool,
    pub timeout: Duration,
}

impl LockView {
    /// The lock applies to `p` (decoded path, no trailing `/`).
    pub fn covers(&self, p: &str) -> bool {
        self.path == p || (self.deep && is_under(p, &self.path))
    }
}

/// The lock table as one request's user sees it: what dav-server is given.
#[derive(Clone)]
pub struct UserLocks {
    table: Arc<LockTable>,
    mounts: Arc<MountTable>,
    user: Arc<User>,
    prefix: String,
    refusal: Arc<Mutex<Option<Refusal>>>,
    /// With the table in Redis: the locks as this request's first discovery read them,
    /// for the others of the same request (a PROPFIND discovers once per entry); any
    /// change through this view drops it.
    seen: Arc<Mutex<Option<Arc<Vec<Lock>>>>>,
}

impl std::fmt::Debug for UserLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserLocks").field("user", &self.user.name).finish_non_exhaustive()
    }
}

impl UserLocks {
    pub fn new(
        table: Arc<LockTable>,
        mounts: Arc<MountTable>,
        user: Arc<User>,
        prefix: String,
        refusal: Arc<Mutex<Option<Refusal>>>,
    ) -> UserLocks {
        UserLocks { table, mounts, user, prefix, refusal, seen: Default::default() }
    }

    /// The live locks for discovery: read once per request when the table is shared.
    async fn discovery_view(&self) -> Result<Arc<Vec<Lock>>, StoreDown> {
        if let Some(v) = lock(&self.seen).as_ref() {
            return Ok(Arc::clone(v));
        }
        let v = Arc::new(self.table.transact(|locks| (locks.clone(), false)).await?);
        if self.table.shared.is_some() {
            *lock(&self.seen) = Some(Arc::clone(&v));
        }
        Ok(v)
    }

    fn refuse(&self, status: StatusCode, why: impl Into<String>) {
        let why = why.into();
        tracing::info!(user = %super::Esc(&self.user.name), "lock refused: {why}");
        *lock(&self.refusal) = Some(Refusal { status, why });
    }

    /// May this user write everything a lock on `path` covers?
    fn may_lock(&self, path: &str) -> Result<(), Refusal> {
        let user = &self.user;
        let refusal = |status, why: &str| Err(Refusal { status, why: why.to_string() });
        if path.split('/').any(crate::vfs::mount::is_reserved_name) {
            return refusal(StatusCode::NOT_FOUND, "no such resource");
        }
        match self.mounts.resolve(path, &|m| user.sees(m)) {
            None => refusal(StatusCode::NOT_FOUND, "no such resource"),
            Some(Resolved::Virtual(_)) => {
                refusal(StatusCode::FORBIDDEN, "virtual folders (and the mounts below them) cannot be locked")
            }
            Some(Resolved::Mount(m, _)) if user.read_only || m.read_only() => {
                refusal(StatusCode::FORBIDDEN, "a lock needs write access")
            }
            Some(Resolved::Mount(..)) => Ok(()),
        }
    }

    /// Apply `f` to the lock `token` that covers `path` (given its index), if this user
    /// owns it; a refusal is recorded for the server to answer.
    async fn on_own_lock<T>(&self, path: &str, token: &str, f: impl Fn(&mut Vec<Lock>, usize) -> T) -> Result<T, ()> {
        *lock(&self.seen) = None;
        let r = self.table.transact(|locks| match self.own_lock(locks, path, token) {
            Ok(i) => (Ok(f(locks, i)), true),
            Err(refusal) => (Err(refusal), false),
        });
        let r = match r.await {
            Ok(r) => r,
            Err(StoreDown(e)) => Err(Some(Refusal { status: StatusCode::SERVICE_UNAVAILABLE, why: down_why(&e) })),
        };
        r.map_err(|refusal| {
            if let Some(r) = refusal {
                self.refuse(r.status, r.why);
            }
        })
    }

    /// The shared lock table is unreachable: refuse with 503 (recorded for the server).
    fn refuse_down(&self, e: &str) {
        self.refuse(StatusCode::SERVICE_UNAVAILABLE, down_why(e));
    }

    fn clamp(&self, timeout: Option<Duration>) -> Duration {
        let max = self.table.limits.max_timeout;
        timeout.unwrap_or(max).clamp(Duration::from_secs(1), max.max(Duration::from_secs(1)))
    }

    /// The live lock `token` that `path` lies in, if this user may manage it.
    fn own_lock(&self, locks: &[Lock], path: &str, token: &str) -> Result<usize, Option<Refusal>> {
        let i = locks.iter().position(|l| l.token == token && l.covers(path)).ok_or(None)?;
        if locks.get(i).is_some_and(|l| l.principal != self.user.name) {
            return Err(Some(Refusal {
                status: StatusCode::FORBIDDEN,
                why: "the lock belongs to another user".into(),
            }));
        }
        Ok(i)
    }
}

impl DavLockSystem for UserLocks {
    fn lock(
        &'_ self,
        path: &DavPath,
        _principal: Option<&str>,
        owner: Option<&Element>,
        timeout: Option<Duration>,
        shared: bool,
        deep: bool,
    ) -> LsFuture<'_, Result<DavLock, DavLock>> {
        let p = path_str(path).unwrap_or_default();
        let collection = path.is_collection();
        let owner = owner.cloned();
        let path = path.clone();
        *lock(&self.seen) = None;
        async move {
            if let Err(r) = self.may_lock(&p) {
                self.refuse(r.status, r.why);
                return Err(DavLock { path: Box::new(path.clone()), ..empty_lock() });
            }
            if let Some(o) = &owner {
                if element_size(o) > self.table.limits.owner_bytes {
                    self.refuse(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("lock owner larger than {} bytes", self.table.limits.owner_bytes),
                    );
                    return Err(DavLock { path: Box::new(path.clone()), ..empty_lock() });
                }
            }
            let limits = self.table.limits;
            let timeout = self.clamp(timeout);
            let name = self.user.name.clone();
            let r = self.table.transact(|locks| {
                let conflict = locks
                    .iter()
                    .find(|l| l.relevant(&p, deep) && (!l.shared || !shared))
                    .map(|l| l.to_dav(&self.prefix));
                if let Some(c) = conflict {
                    return (Err(Ok(c)), false);
                }
                if locks.len() >= limits.total {
                    return (Err(Err(format!("the server holds {} locks, its limit", limits.total))), false);
                }
                if locks.iter().filter(|l| l.principal == name).count() >= limits.per_user {
                    return (Err(Err(format!("{} locks per user at most", limits.per_user))), false);
                }
                let l = Lock {
                    token: new_token(),
                    path: p.clone(),
                    collection,
                    principal: name.clone(),
                    owner: owner.clone(),
                    shared,
                    deep,
                    timeout,
                    expires: SystemTime::now() + timeout,
                };
                let dav = l.to_dav(&self.prefix);
                locks.push(l);
                (Ok(dav), true)
            });
            let r = match r.await {
                Ok(r) => r,
                Err(StoreDown(e)) => {
                    self.refuse_down(&e);
                    return Err(DavLock { path: Box::new(path.clone()), ..empty_lock() });
                }
            };
            match r {
                Ok(l) => Ok(l),
                Err(Ok(conflict)) => Err(conflict),
                Err(Err(why)) => {
                    self.refuse(StatusCode::INSUFFICIENT_STORAGE, why);
                    Err(DavLock { path: Box::new(path.clone()), ..empty_lock() })
                }
            }
        }
        .boxed()
    }

    fn unlock(&'_ self, path: &DavPath, token: &str) -> LsFuture<'_, Result<(), ()>> {
        let (p, token) = (path_str(path).unwrap_or_default(), token.to_string());
        async move {
            self.on_own_lock(&p, &token, |locks, i| {
                locks.remove(i);
            })
            .await
        }
        .boxed()
    }

    fn refresh(&'_ self, path: &DavPath, token: &str, timeout: Option<Duration>) -> LsFuture<'_, Result<DavLock, ()>> {
        let (p, token) = (path_str(path).unwrap_or_default(), token.to_string());
        let timeout = self.clamp(timeout);
        async move {
            let refreshed = self.on_own_lock(&p, &token, |locks, i| {
                locks.get_mut(i).map(|l| {
                    l.timeout = timeout;
                    l.expires = SystemTime::now() + timeout;
                    l.to_dav(&self.prefix)
                })
            });
            refreshed.await?.ok_or(())
        }
        .boxed()
    }

    fn check(
        &'_ self,
        path: &DavPath,
        principal: Option<&str>,
        ignore_principal: bool,
        deep: bool,
        submitted_tokens: &[String],
    ) -> LsFuture<'_, Result<(), DavLock>> {
        let p = path_str(path).unwrap_or_default();
        let principal = principal.map(str::to_string);
        let tokens = submitted_tokens.to_vec();
        async move {
            let r = self.table.transact(|locks| {
                let r = LockTable::check_locks(locks, &p, principal.as_deref(), ignore_principal, deep, &tokens);
                (r.map_err(|l| l.to_dav(&self.prefix)), false)
            });
            match r.await {
                Ok(r) => r,
                Err(StoreDown(e)) => {
                    // A write is never let through unchecked.
                    self.refuse_down(&e);
                    Err(empty_lock())
                }
            }
        }
        .boxed()
    }

    fn discover(&'_ self, path: &DavPath) -> LsFuture<'_, Vec<DavLock>> {
        let p = path_str(path).unwrap_or_default();
        async move {
            let now = SystemTime::now();
            // Discovery is informative: without the table, no locks are shown.
            self.discovery_view()
                .await
                .map(|locks| {
                    locks.iter().filter(|l| l.expires > now && l.covers(&p)).map(|l| l.to_dav(&self.prefix)).collect()
                })
                .unwrap_or_default()
        }
        .boxed()
    }

    fn delete(&'_ self, path: &DavPath) -> LsFuture<'_, Result<(), ()>> {
        let p = path_str(path).unwrap_or_default();
        *lock(&self.seen) = None;
        async move {
            self.table.forget_tree(&p).await;
            Ok(())
        }
        .boxed()
    }
}

fn down_why(e: &str) -> String {
    tracing::warn!("WebDAV lock table unreachable: {e}");
    "the shared lock table is unreachable; try again".into()
}

/// A placeholder for the "conflicting lock" dav-server wants with a refusal it turns
/// into 423 (the server answers the recorded refusal instead).
fn empty_lock() -> DavLock {
    DavLock {
        token: String::new(),
        path: Box::new(dav_path("", "/", true)),
        principal: None,
        owner: None,
        timeout_at: None,
        timeout: None,
        shared: false,
        deep: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(path: &str, deep: bool, shared: bool, principal: &str, token: &str) -> Lock {
        Lock {
            token: token.into(),
            path: path.into(),
            collection: false,
            principal: principal.into(),
            owner: None,
            shared,
            deep,
            timeout: Duration::from_secs(60),
            expires: SystemTime::now() + Duration::from_secs(60),
        }
    }

    #[test]
    fn coverage() {
        let deep = l("/a/d", true, false, "u", "t");
        assert!(deep.covers("/a/d") && deep.covers("/a/d/x/y") && !deep.covers("/a/dx") && !deep.covers("/a"));
        let flat = l("/a/d", false, false, "u", "t");
        assert!(flat.covers("/a/d") && !flat.covers("/a/d/x"));
        assert!(flat.relevant("/a", true) && !flat.relevant("/a", false));
        assert!(is_under("/x", "/") && !is_under("/", "/"));
    }

    #[test]
    fn check_follows_memls_rules() {
        let locks = vec![l("/a/f", false, false, "u", "t1")];
        let tok = |t: &str| vec![t.to_string()];
        assert!(LockTable::check_locks(&locks, "/a/f", Some("u"), false, false, &[]).is_err());
        assert!(LockTable::check_locks(&locks, "/a/f", Some("u"), false, false, &tok("t1")).is_ok());
        // Another user's token does not open the lock, unless the principal is ignored
        // (evaluating an If: condition).
        assert!(LockTable::check_locks(&locks, "/a/f", Some("v"), false, false, &tok("t1")).is_err());
        assert!(LockTable::check_locks(&locks, "/a/f", Some("v"), true, false, &tok("t1")).is_ok());
        // A deep operation on the folder above meets the lock.
        assert!(LockTable::check_locks(&locks, "/a", Some("u"), false, true, &[]).is_err());
        assert!(LockTable::check_locks(&locks, "/a", Some("u"), false, false, &[]).is_ok());
        let shared = vec![l("/s", false, true, "u", "s1"), l("/s", false, true, "v", "s2")];
        assert!(LockTable::check_locks(&shared, "/s", Some("v"), false, false, &tok("s2")).is_ok());
        assert!(LockTable::check_locks(&shared, "/s", Some("w"), false, false, &[]).is_err());
    }

    #[test]
    fn tokens_are_uuid_urns() {
        let t = new_token();
        assert_eq!(t.len(), "urn:uuid:".len() + 36);
        assert!(t.starts_with("urn:uuid:") && t.as_bytes()[9 + 14] == b'4');
        assert_ne!(t, new_token());
    }

    #[tokio::test]
    async fn saved_locks_survive_a_restart_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("locks.json");
        let t = LockTable::open(LockLimits::default(), Some(file.clone()));
        let (_, snap) = t.with(|locks| {
            locks.push(l("/a/keep", false, false, "u", "k"));
            let mut gone = l("/a/gone", false, false, "u", "g");
            gone.expires = SystemTime::now() + Duration::from_secs(1);
            locks.push(gone);
            ((), true)
        });
        t.save(snap).await;
        std::thread::sleep(Duration::from_millis(1100));
        let t2 = LockTable::open(LockLimits::default(), Some(file.clone()));
        assert_eq!(t2.len().await, 1);
        assert!(t2.token_covers("k", "/a/keep").await);
        // Garbage in the file is not fatal.
        std::fs::write(&file, b"{ not json").unwrap();
        assert!(LockTable::open(LockLimits::default(), Some(file)).is_empty().await);
    }
}
