//! Dead properties (PROPPATCH) kept in memory per path, and the ownCloud `checksums`
//! live property for entries whose hashes the drive knows.

use std::collections::{BTreeMap, HashMap};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

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
pub struct PropStore {
    inner: RwLock<Inner>,
    max_total: usize,
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
        PropStore { inner: RwLock::default(), max_total }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Bytes held (as counted against the limit).
    pub fn bytes(&self) -> usize {
        self.read().bytes
    }

    pub fn patch(&self, path: &str, patch: Vec<(bool, DavProp)>) -> Vec<(http::StatusCode, DavProp)> {
        let mut inner = self.write();
        let Inner { map, bytes } = &mut *inner;
        let entry = map.entry(path.to_string()).or_default();
        let mut out = Vec::with_capacity(patch.len());
        for (set, p) in patch {
            let k = key(&p);
            let old = entry.get(&k).map_or(0, |o| cost(path, o));
            let status = if set {
                let new = cost(path, &p);
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
            out.push((status, bare(&p)));
        }
        if entry.is_empty() {
            map.remove(path);
        }
        out
    }

    pub fn all(&self, path: &str, do_content: bool) -> Vec<DavProp> {
        self.read()
            .map
            .get(path)
            .map(|m| m.values().map(|p| if do_content { p.clone() } else { bare(p) }).collect())
            .unwrap_or_default()
    }

    pub fn get(&self, path: &str, prop: &DavProp) -> Option<Vec<u8>> {
        self.read().map.get(path)?.get(&key(prop))?.xml.clone()
    }

    pub fn is_empty(&self) -> bool {
        self.read().map.is_empty()
    }

    /// The dead properties of `path` and, when `children`, of the paths directly below
    /// it, copied once for a PROPFIND (keyed by path). Empty when none are stored.
    pub fn snapshot(&self, path: &str, children: bool) -> HashMap<String, Vec<DavProp>> {
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

    pub fn remove_tree(&self, path: &str) {
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
    pub fn rename_tree(&self, from: &str, to: &str) {
        self.remove_tree(to);
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
    pub fn copy_tree(&self, from: &str, to: &str, deep: bool) {
        self.remove_tree(to);
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
    if let Some(s) = &e.hashes.sha1 {
        parts.push(format!("SHA1:{}", s.to_ascii_lowercase()));
    }
    if let Some(m) = &e.hashes.md5 {
        parts.push(format!("MD5:{}", m.to_ascii_lowercase()));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}
