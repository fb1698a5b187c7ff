//! Dead properties (PROPPATCH) kept in memory per path, and the ownCloud `checksums`
//! live property for entries whose hashes the drive knows.

use std::collections::BTreeMap;

use dashmap::DashMap;
use dav_server::fs::DavProp;

use crate::vfs::Entry;

const NS_OC: &str = "http://owncloud.org/ns";

type Key = (String, String);

/// Dead properties by absolute path. Not persisted: they live as long as the process
/// (clients we serve use them for Win32 attributes and the like, which we answer anyway).
#[derive(Default)]
pub struct PropStore {
    map: DashMap<String, BTreeMap<Key, DavProp>>,
}

/// Largest value stored for one property, and most properties on one path: a client
/// cannot grow the daemon's memory without bound.
const MAX_PROP_BYTES: usize = 64 * 1024;
const MAX_PROPS_PER_PATH: usize = 256;

fn key(p: &DavProp) -> Key {
    (p.namespace.clone().unwrap_or_default(), p.name.clone())
}

fn bare(p: &DavProp) -> DavProp {
    DavProp { name: p.name.clone(), prefix: p.prefix.clone(), namespace: p.namespace.clone(), xml: None }
}

impl PropStore {
    pub fn patch(&self, path: &str, patch: Vec<(bool, DavProp)>) -> Vec<(http::StatusCode, DavProp)> {
        let mut entry = self.map.entry(path.to_string()).or_default();
        let mut out = Vec::with_capacity(patch.len());
        for (set, p) in patch {
            let status = if set {
                if p.xml.as_ref().map_or(0, |x| x.len()) > MAX_PROP_BYTES
                    || (entry.len() >= MAX_PROPS_PER_PATH && !entry.contains_key(&key(&p)))
                {
                    http::StatusCode::INSUFFICIENT_STORAGE
                } else {
                    entry.insert(key(&p), p.clone());
                    http::StatusCode::OK
                }
            } else {
                entry.remove(&key(&p));
                http::StatusCode::OK
            };
            out.push((status, bare(&p)));
        }
        out
    }

    pub fn all(&self, path: &str, do_content: bool) -> Vec<DavProp> {
        self.map
            .get(path)
            .map(|m| m.values().map(|p| if do_content { p.clone() } else { bare(p) }).collect())
            .unwrap_or_default()
    }

    pub fn get(&self, path: &str, prop: &DavProp) -> Option<Vec<u8>> {
        self.map.get(path)?.get(&key(prop))?.xml.clone()
    }

    fn under(path: &str, k: &str) -> bool {
        k == path || k.starts_with(&format!("{}/", path.trim_end_matches('/')))
    }

    pub fn remove_tree(&self, path: &str) {
        self.map.retain(|k, _| !Self::under(path, k));
    }

    pub fn rename_tree(&self, from: &str, to: &str) {
        self.remove_tree(to);
        let moved: Vec<(String, BTreeMap<Key, DavProp>)> = self
            .map
            .iter()
            .filter(|e| Self::under(from, e.key()))
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        for (k, v) in moved {
            self.map.remove(&k);
            self.map.insert(format!("{to}{}", &k[from.len()..]), v);
        }
    }

    pub fn copy_one(&self, from: &str, to: &str) {
        match self.map.get(from).map(|v| v.clone()) {
            Some(v) => {
                self.map.insert(to.to_string(), v);
            }
            None => {
                self.map.remove(to);
            }
        }
    }
}

pub fn is_checksums(p: &DavProp) -> bool {
    p.namespace.as_deref() == Some(NS_OC) && p.name == "checksums"
}

/// `<oc:checksums><oc:checksum>SHA1:… MD5:…</oc:checksum></oc:checksums>` as rclone reads it.
pub fn checksums_prop(e: &Entry, do_content: bool) -> Option<DavProp> {
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
    if parts.is_empty() {
        return None;
    }
    let xml =
        format!("<oc:checksums xmlns:oc=\"{NS_OC}\"><oc:checksum>{}</oc:checksum></oc:checksums>", parts.join(" "));
    Some(DavProp {
        name: "checksums".into(),
        prefix: Some("oc".into()),
        namespace: Some(NS_OC.into()),
        xml: do_content.then(|| xml.into_bytes()),
    })
}
