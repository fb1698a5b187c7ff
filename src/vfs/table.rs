//! The mount table: which mount serves a path, and the virtual folders above mounts.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::mount::Mount;

pub struct MountTable {
    /// Sorted by path.
    mounts: Vec<Arc<Mount>>,
}

/// Where a request path lands.
pub enum Resolved {
    /// A folder above one or more mounts (`/`, or `/a` for a mount at `/a/b`).
    Virtual(String),
    /// Inside a mount, with the mount-relative path (`""` = the mount's root).
    Mount(Arc<Mount>, String),
}

impl MountTable {
    pub fn new(mut mounts: Vec<Arc<Mount>>) -> MountTable {
        mounts.sort_by(|a, b| a.path().cmp(b.path()));
        MountTable { mounts }
    }

    pub fn mounts(&self) -> &[Arc<Mount>] {
        &self.mounts
    }

    pub fn get(&self, path: &str) -> Option<&Arc<Mount>> {
        self.mounts.iter().find(|m| m.path() == path)
    }

    /// Resolve a normalised absolute path (`/a/b`, `/` for the root) among the mounts
    /// `visible` allows. `None`: nothing there for this user.
    pub fn resolve(&self, path: &str, visible: &dyn Fn(&Mount) -> bool) -> Option<Resolved> {
        let path = path.trim_end_matches('/');
        for m in self.mounts.iter().filter(|m| visible(m)) {
            let mp = m.path();
            if mp == "/" {
                return Some(Resolved::Mount(Arc::clone(m), path.trim_start_matches('/').to_string()));
            }
            if path == mp {
                return Some(Resolved::Mount(Arc::clone(m), String::new()));
            }
            if let Some(rest) = path.strip_prefix(mp).and_then(|r| r.strip_prefix('/')) {
                return Some(Resolved::Mount(Arc::clone(m), rest.to_string()));
            }
        }
        let as_dir = if path.is_empty() { "/".to_string() } else { format!("{path}/") };
        if self.mounts.iter().any(|m| visible(m) && (as_dir == "/" || m.path().starts_with(&as_dir))) {
            return Some(Resolved::Virtual(if path.is_empty() { "/".into() } else { path.into() }));
        }
        None
    }

    /// Names shown in virtual folder `dir` (`/` or `/a`).
    pub fn virtual_children(&self, dir: &str, visible: &dyn Fn(&Mount) -> bool) -> Vec<String> {
        let prefix = if dir == "/" { "/".to_string() } else { format!("{}/", dir.trim_end_matches('/')) };
        let mut names = BTreeSet::new();
        for m in self.mounts.iter().filter(|m| visible(m)) {
            if let Some(rest) = m.path().strip_prefix(&prefix) {
                if let Some(first) = rest.split('/').next().filter(|s| !s.is_empty()) {
                    names.insert(first.to_string());
                }
            }
        }
        names.into_iter().collect()
    }
}
