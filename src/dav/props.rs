//! Dead properties (PROPPATCH) kept in memory per path, and the ownCloud `checksums`
//! live property for entries whose hashes the drive knows.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use dav_server::fs::DavProp;

use crate::vfs::Entry;

type Key = (String, String);
type Props = BTreeMap<Key, DavProp>;

/// Dead properties by absolute path. Not persisted: they live as long as the process
/// (clients we serve use them for Win32 attributes and the like, which we answer anyway).
///
/// Bounded per property, per path and in total, so no client can grow the daemon's
/// memory without limit (768 PROPPATCHes once added 136 MB when only the per-path
/// count was capped).
///
/// With `[server] state = "redis://…"` they live in Redis, shared by every replica: a
/// hash of path → that path's properties (JSON), and a counter of what all of them cost
/// (the same bound). Each path changes by compare-and-set of its value, retried on a
/// conflict; the tree operations (DELETE, MOVE, COPY) go path by path. While Redis is
/// unreachable a PROPPATCH is answered 503 per property and none are shown.
pub struct PropStore {
    inner: RwLock<Inner>,
    max_total: usize,
    shared: Option<SharedProps>,
}

/// The dead properties in Redis.
struct SharedProps {
    s: Arc<crate::state::shared::Shared>,
    hash: String,
    bytes: String,
    /// Bumped by every change: while it stays, what this process read is current.
    version: String,
    /// (the version read last, the paths' stored texts read under it).
    seen: std::sync::Mutex<(u64, HashMap<String, String>)>,
}

/// How many paths' texts a process keeps between two changes.
const SEEN_MAX: usize = 100_000;

/// One property as Redis keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedProp {
    ns: Option<String>,
    name: String,
    prefix: Option<String>,
    /// base64 of the XML
    xml: Option<String>,
}

const SET_IF_SAME: &str = r"
local cur = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if cur ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
redis.call('INCRBY', KEYS[2], ARGV[4])
redis.call('INCR', KEYS[3])
return 1";

fn set_if_same() -> &'static redis::Script {
    static S: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    S.get_or_init(|| redis::Script::new(SET_IF_SAME))
}

fn encode(props: &Props) -> String {
    use base64::Engine;
    let v: Vec<SavedProp> = props
        .values()
        .map(|p| SavedProp {
            ns: p.namespace.clone(),
            name: p.name.clone(),
            prefix: p.prefix.clone(),
            xml: p.xml.as_ref().map(|x| base64::engine::general_purpose::STANDARD.encode(x)),
        })
        .collect();
    serde_json::to_string(&v).unwrap_or_default()
}

fn decode(s: &str) -> Props {
    use base64::Engine;
    let v: Vec<SavedProp> = serde_json::from_str(s).unwrap_or_default();
    v.into_iter()
        .map(|p| {
            let prop = DavProp {
                name: p.name,
                prefix: p.prefix,
                namespace: p.ns,
                xml: p.xml.and_then(|x| base64::engine::general_purpose::STANDARD.decode(x).ok()),
            };
            (key(&prop), prop)
        })
        .collect()
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Props>,
    /// What everything in `map` costs, as counted by [`cost`].
    bytes: usize,
}

/// Largest value stored for one property, and most properties on one path.
const MAX_PROP_BYTES: usize = 64 * 1024;
const MAX_PROPS_PER_PATH: usize = 256;
/// Default bound on all dead properties together.
pub const DEFAULT_MAX_TOTAL: usize = 16 * 1024 * 1024;
/// Bookkeeping counted per property on top of its text (map nodes, strings).
const OVERHEAD: usize = 128;

fn key(p: &DavProp) -> Key {
    (p.namespace.clone().unwrap_or_default(), p.name.clone())
}

fn bare(p: &DavProp) -> DavProp {
    DavProp { name: p.name.clone(), prefix: p.prefix.clone(), namespace: p.namespace.clone(), xml: None }
}

/// What keeping `p` on `path` costs.
fn cost(path: &str, p: &DavProp) -> usize {
    OVERHEAD
        + path.len()
        + p.name.len()
        + p.prefix.as_ref().map_or(0, String::len)
        + p.namespace.as_ref().map_or(0, String::len)
        + p.xml.as_ref().map_or(0, Vec::len)
}

fn cost_all(path: &str, props: &Props) -> usize {
    props.values().map(|p| cost(path, p)).sum()
}

impl Default for PropStore {
    fn default() -> Self {
        PropStore::new(DEFAULT_MAX_TOTAL)
    }
}

impl PropStore {
    pub fn new(max_total: usize) -> PropStore {
        PropStore { inner: RwLock::default(), max_total, shared: None }
    }

    /// The properties of every replica, in Redis.
    pub fn shared(s: Arc<crate::state::shared::Shared>) -> PropStore {
        let (hash, bytes) = (s.key("props", "paths"), s.key("props", "bytes"));
        PropStore {
            inner: RwLock::default(),
            max_total: DEFAULT_MAX_TOTAL,
            shared: Some(SharedProps { version: s.key("props", "version"), s, hash, bytes, seen: Default::default() }),
        }
    }

    /// A path's properties in Redis: (the stored text, `""` when none; the properties).
    ///
    /// The version is read first (one cheap GET: a PROPFIND asks once per entry); the
    /// path's text comes from what this process read under the same version, else from
    /// Redis. A change bumps the version in the same step, so a text kept under version
    /// `n` is never older than the state at `n`.
    async fn load(sh: &SharedProps, path: &str) -> Result<(String, Props), String> {
        let err = |e| format!("{:#}", sh.s.err(e));
        let version: u64 =
            sh.s.query::<Option<u64>>(redis::cmd("GET").arg(&sh.version)).await.map_err(err)?.unwrap_or(0);
        let known = {
            let mut seen = sh.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if seen.0 != version || seen.1.len() >= SEEN_MAX {
                *seen = (version, HashMap::new());
            }
            seen.1.get(path).cloned()
        };
        let v = match known {
            Some(v) => v,
            None => {
                let v: Option<String> = sh.s.query(redis::cmd("HGET").arg(&sh.hash).arg(path)).await.map_err(err)?;
                let v = v.unwrap_or_default();
                let mut seen = sh.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if seen.0 == version {
                    seen.1.insert(path.to_string(), v.clone());
                }
                v
            }
        };
        let props = if v.is_empty() { Props::new() } else { decode(&v) };
        Ok((v, props))
    }

    /// Replace a path's stored text `old` with `props` (deleted when empty); false when
    /// it changed meanwhile.
    async fn store(sh: &SharedProps, path: &str, old: &str, old_props: &Props, props: &Props) -> Result<bool, String> {
        let new = if props.is_empty() { String::new() } else { encode(props) };
        let delta = cost_all(path, props) as i64 - cost_all(path, old_props) as i64;
        let r: i64 =
            sh.s.script(set_if_same(), &[&sh.hash, &sh.bytes, &sh.version], &[&path, &old, &new, &delta])
                .await
                .map_err(|e| format!("{:#}", sh.s.err(e)))?;
        Ok(r == 1)
    }

    async fn total(sh: &SharedProps) -> Result<usize, String> {
        let v: Option<i64> =
            sh.s.query(redis::cmd("GET").arg(&sh.bytes)).await.map_err(|e| format!("{:#}", sh.s.err(e)))?;
        Ok(v.unwrap_or(0).max(0) as usize)
    }

    /// Every path with properties in Redis.
    async fn paths(sh: &SharedProps) -> Result<Vec<String>, String> {
        sh.s.query(redis::cmd("HKEYS").arg(&sh.hash)).await.map_err(|e| format!("{:#}", sh.s.err(e)))
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Bytes held (as counted against the limit; this process's store).
    pub fn bytes(&self) -> usize {
        self.read().bytes
    }

    /// Apply `patch` to one path's properties, given all of them costing `bytes`.
    fn apply(
        &self,
        path: &str,
        entry: &mut Props,
        bytes: &mut usize,
        patch: &[(bool, DavProp)],
    ) -> Vec<(http::StatusCode, DavProp)> {
        let mut out = Vec::with_capacity(patch.len());
        for (set, p) in patch {
            let k = key(p);
            let old = entry.get(&k).map_or(0, |o| cost(path, o));
            let status = if *set {
                let new = cost(path, p);
                if p.xml.as_ref().map_or(0, |x| x.len()) > MAX_PROP_BYTES
                    || (entry.len() >= MAX_PROPS_PER_PATH && old == 0)
                    || bytes.saturating_sub(old) + new > self.max_total
                {
                    http::StatusCode::INSUFFICIENT_STORAGE
                } else {
                    *bytes = bytes.saturating_sub(old) + new;
                    entry.insert(k, p.clone());
                    http::StatusCode::OK
                }
            } else {
                if entry.remove(&k).is_some() {
                    *bytes = bytes.saturating_sub(old);
                }
                http::StatusCode::OK
            };
            out.push((status, bare(p)));
        }
        // RFC 4918 §9.2: all instructions or none. The callers work on copies and keep
        // them only when every status is 200, so the ones that would have worked fail
        // as dependencies.
        if out.iter().any(|(s, _)| *s != http::StatusCode::OK) {
            for (s, _) in out.iter_mut().filter(|(s, _)| *s == http::StatusCode::OK) {
                *s = http::StatusCode::FAILED_DEPENDENCY;
            }
        }
        out
    }

    pub async fn patch(&self, path: &str, patch: Vec<(bool, DavProp)>) -> Vec<(http::StatusCode, DavProp)> {
        let Some(sh) = &self.shared else {
            let mut inner = self.write();
            let Inner { map, bytes } = &mut *inner;
            let mut entry = map.get(path).cloned().unwrap_or_default();
            let mut total = *bytes;
            let out = self.apply(path, &mut entry, &mut total, &patch);
            if out.iter().all(|(s, _)| *s == http::StatusCode::OK) {
                *bytes = total;
                if entry.is_empty() {
                    map.remove(path);
                } else {
                    map.insert(path.to_string(), entry);
                }
            }
            return out;
        };
        let down = |e: String| {
            tracing::warn!("dead properties unreachable: {e}");
            patch.iter().map(|(_, p)| (http::StatusCode::SERVICE_UNAVAILABLE, bare(p))).collect()
        };
        for _ in 0..64 {
            let (old, old_props) = match Self::load(sh, path).await {
                Ok(x) => x,
                Err(e) => return down(e),
            };
            let mut total = match Self::total(sh).await {
                Ok(t) => t,
                Err(e) => return down(e),
            };
            let mut props = old_props.clone();
            let out = self.apply(path, &mut props, &mut total, &patch);
            if out.iter().any(|(s, _)| *s != http::StatusCode::OK) {
                return out;
            }
            match Self::store(sh, path, &old, &old_props, &props).await {
                Ok(true) => return out,
                Ok(false) => tokio::task::yield_now().await,
                Err(e) => return down(e),
            }
        }
        down("the path's properties kept changing under this PROPPATCH".into())
    }

    pub async fn all(&self, path: &str, do_content: bool) -> Vec<DavProp> {
        let view = |m: &Props| m.values().map(|p| if do_content { p.clone() } else { bare(p) }).collect();
        match &self.shared {
            None => self.read().map.get(path).map(view).unwrap_or_default(),
            Some(sh) => match Self::load(sh, path).await {
                Ok((_, props)) => view(&props),
                Err(e) => {
                    tracing::debug!("dead properties unreachable: {e}");
                    vec![]
                }
            },
        }
    }

    pub async fn get(&self, path: &str, prop: &DavProp) -> Option<Vec<u8>> {
        match &self.shared {
            None => self.read().map.get(path)?.get(&key(prop))?.xml.clone(),
            Some(sh) => Self::load(sh, path).await.ok()?.1.get(&key(prop))?.xml.clone(),
        }
    }

    /// Move (or copy) the properties of each path below `from` in Redis to `to`,
    /// path by path.
    async fn shared_tree(
        &self,
        sh: &SharedProps,
        from: &str,
        to: Option<&str>,
        keep: bool,
        deep: bool,
    ) -> Result<(), String> {
        for k in Self::paths(sh).await? {
            if !(k == from || (deep && Self::under(from, &k))) {
                continue;
            }
            for _ in 0..64 {
                let (old, props) = Self::load(sh, &k).await?;
                if props.is_empty() {
                    break;
                }
                if let Some(to) = to {
                    let nk = format!("{to}{}", k.get(from.len()..).unwrap_or_default());
                    let (nold, nprops) = Self::load(sh, &nk).await?;
                    if keep && Self::total(sh).await? + cost_all(&nk, &props) > self.max_total {
                        tracing::info!(path = %super::Esc(&nk), "dead properties not copied: the store is full");
                        break;
                    }
                    if !Self::store(sh, &nk, &nold, &nprops, &props).await? {
                        continue;
                    }
                }
                if keep || Self::store(sh, &k, &old, &props, &Props::new()).await? {
                    break;
                }
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.read().map.is_empty()
    }

    /// The dead properties of `path` and, when `children` names its members (a Depth 1
    /// PROPFIND of a folder), of the paths directly below it, copied once for a PROPFIND
    /// (keyed by path). Empty when none are stored.
    ///
    /// With the state in Redis, read there (properties set through another replica
    /// show): the version, then the paths this process has not read under it yet, in a
    /// few `HMGET`s — a round trip or two per request rather than one per entry. While
    /// Redis is unreachable none are shown.
    pub async fn snapshot<'n>(
        &self,
        path: &str,
        children: Option<impl IntoIterator<Item = &'n str>>,
    ) -> HashMap<String, Vec<DavProp>> {
        let Some(sh) = &self.shared else {
            return self.local_snapshot(path, children.is_some());
        };
        let base = if path == "/" { "" } else { path };
        let mut paths = vec![path.to_string()];
        if let Some(names) = children {
            paths.extend(names.into_iter().map(|n| format!("{base}/{n}")));
        }
        match Self::load_many(sh, paths).await {
            Ok(found) => found.into_iter().map(|(k, v)| (k, v.into_values().collect())).collect(),
            Err(e) => {
                tracing::warn!(path = %super::Esc(path), "dead properties unreachable, none shown: {e}");
                HashMap::new()
            }
        }
    }

    /// The properties of `paths` in Redis (those that have any), from what this process
    /// read under the current version, else by `HMGET`.
    async fn load_many(sh: &SharedProps, paths: Vec<String>) -> Result<HashMap<String, Props>, String> {
        /// Fields asked for per `HMGET`.
        const BATCH: usize = 1000;
        let err = |e| format!("{:#}", sh.s.err(e));
        let version: u64 =
            sh.s.query::<Option<u64>>(redis::cmd("GET").arg(&sh.version)).await.map_err(err)?.unwrap_or(0);
        let mut texts: Vec<(String, String)> = vec![];
        let missing: Vec<String> = {
            let mut seen = sh.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if seen.0 != version {
                *seen = (version, HashMap::new());
            }
            paths
                .into_iter()
                .filter_map(|p| match seen.1.get(&p) {
                    Some(v) => {
                        texts.push((p, v.clone()));
                        None
                    }
                    None => Some(p),
                })
                .collect()
        };
        for batch in missing.chunks(BATCH) {
            let got: Vec<Option<String>> =
                sh.s.query(redis::cmd("HMGET").arg(&sh.hash).arg(batch)).await.map_err(err)?;
            let mut seen = sh.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if seen.0 == version && seen.1.len() + batch.len() > SEEN_MAX {
                seen.1.clear();
            }
            for (p, v) in batch.iter().zip(got) {
                let v = v.unwrap_or_default();
                if seen.0 == version {
                    seen.1.insert(p.clone(), v.clone());
                }
                texts.push((p.clone(), v));
            }
        }
        Ok(texts.into_iter().filter(|(_, v)| !v.is_empty()).map(|(p, v)| (p, decode(&v))).collect())
    }

    /// [`Self::snapshot`] of this process's own store.
    fn local_snapshot(&self, path: &str, children: bool) -> HashMap<String, Vec<DavProp>> {
        let inner = self.read();
        if inner.map.is_empty() {
            return HashMap::new();
        }
        let member = |k: &str| {
            children
                && k.rsplit_once('/').is_some_and(|(parent, _)| parent == path || (parent.is_empty() && path == "/"))
                && k != "/"
        };
        inner
            .map
            .iter()
            .filter(|(k, _)| k.as_str() == path || member(k))
            .map(|(k, v)| (k.clone(), v.values().cloned().collect()))
            .collect()
    }

    fn under(path: &str, k: &str) -> bool {
        k == path || path == "/" || k.strip_prefix(path).is_some_and(|rest| rest.starts_with('/'))
    }

    pub async fn remove_tree(&self, path: &str) {
        if let Some(sh) = &self.shared {
            if let Err(e) = self.shared_tree(sh, path, None, false, true).await {
                tracing::warn!(path = %super::Esc(path), "dead properties not removed: {e}");
            }
            return;
        }
        let mut inner = self.write();
        let Inner { map, bytes } = &mut *inner;
        map.retain(|k, v| {
            let keep = !Self::under(path, k);
            if !keep {
                *bytes = bytes.saturating_sub(cost_all(k, v));
            }
            keep
        });
    }

    /// Move the properties of `from` and below to `to` (replacing those of `to`).
    pub async fn rename_tree(&self, from: &str, to: &str) {
        self.remove_tree(to).await;
        if let Some(sh) = &self.shared {
            if let Err(e) = self.shared_tree(sh, from, Some(to), false, true).await {
                tracing::warn!(path = %super::Esc(from), "dead properties not moved: {e}");
            }
            return;
        }
        let mut inner = self.write();
        let Inner { map, bytes } = &mut *inner;
        let moved: Vec<String> = map.keys().filter(|k| Self::under(from, k)).cloned().collect();
        for k in moved {
            if let Some(v) = map.remove(&k) {
                let nk = format!("{to}{}", k.get(from.len()..).unwrap_or_default());
                *bytes = bytes.saturating_sub(cost_all(&k, &v)) + cost_all(&nk, &v);
                map.insert(nk, v);
            }
        }
    }

    /// Copy the properties of `from` (and below it when `deep`) to `to`, replacing those
    /// of `to`, as far as the total allows; properties beyond it are not copied.
    pub async fn copy_tree(&self, from: &str, to: &str, deep: bool) {
        self.remove_tree(to).await;
        if let Some(sh) = &self.shared {
            if let Err(e) = self.shared_tree(sh, from, Some(to), true, deep).await {
                tracing::warn!(path = %super::Esc(from), "dead properties not copied: {e}");
            }
            return;
        }
        let mut inner = self.write();
        let Inner { map, bytes } = &mut *inner;
        let copies: Vec<(String, Props)> = map
            .iter()
            .filter(|(k, _)| *k == from || (deep && Self::under(from, k)))
            .map(|(k, v)| (format!("{to}{}", k.get(from.len()..).unwrap_or_default()), v.clone()))
            .collect();
        for (nk, v) in copies {
            let c = cost_all(&nk, &v);
            if *bytes + c > self.max_total {
                tracing::info!(path = %super::Esc(&nk), "dead properties not copied: the store is full");
                continue;
            }
            *bytes += c;
            map.insert(nk, v);
        }
    }
}

/// The text of `oc:checksum` (`SHA1:… MD5:…`, as rclone reads it) for a file whose
/// hashes the drive knows.
pub fn checksums_text(e: &Entry) -> Option<String> {
    if e.is_dir {
        return None;
    }
    let mut parts = vec![];
    if let Some(s) = &e.hashes().sha1 {
        parts.push(format!("SHA1:{}", s.to_ascii_lowercase()));
    }
    if let Some(m) = &e.hashes().md5 {
        parts.push(format!("MD5:{}", m.to_ascii_lowercase()));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}
