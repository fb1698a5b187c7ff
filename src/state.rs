//! Persistent per-mount state (rotated tokens, cookies) and server secrets.
//!
//! Every write is atomic and durable: temp file in the same folder, fsync, rename over
//! the old file, fsync the folder. A crash at any point leaves either the old or the
//! new file, never a torn one.
//!
//! With `[server] state = "redis://…"` the state replicas share (credentials, the
//! signing key, links, WebDAV locks and dead properties, copy tasks) lives in Redis instead
//! ([`shared`]); the state dir keeps what is this machine's own (upload spools).

pub mod shared;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

/// Write `data` to `path` atomically and durably, readable by the owner only.
///
/// The temp file has a unique name (`.{name}.tmp.XXXXXX`, created exclusively), so two
/// saves of one file at once never write into each other's temp: the last rename wins
/// and the file is always one whole save.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    // tempfile creates it with O_EXCL and mode 0600, and removes it if we fail.
    let mut tmp = tempfile::Builder::new().prefix(&format!(".{name}.tmp.")).tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// The state folder: one JSON file per mount plus server-wide secrets; and the Redis
/// that holds the shared state instead, when there is one.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
    shared: Option<Arc<shared::Shared>>,
}

/// Where a mount's state lives in Redis: the URL (handed to the refresh helper; it may
/// hold a password, so `Debug` hides it) and the key.
#[derive(Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct SharedKey {
    pub url: String,
    pub key: String,
}

impl std::fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl SharedKey {
    /// `key <key> in Redis at <url without password>`.
    pub fn describe(&self) -> String {
        format!("key {} in Redis at {}", self.key, shared::redact_url(&self.url))
    }
}

impl StateDir {
    pub fn open(root: &Path) -> Result<StateDir> {
        fs::create_dir_all(root).with_context(|| format!("cannot create state dir {}", root.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(root, fs::Permissions::from_mode(0o700));
        }
        Ok(StateDir { root: root.to_path_buf(), shared: None })
    }

    /// Keep the shared state in Redis at `url` (no connection yet).
    pub fn with_shared(mut self, url: &str) -> Result<StateDir> {
        self.shared = Some(shared::Shared::get_or_open(url)?);
        Ok(self)
    }

    /// The Redis of the shared state, if there is one.
    pub fn shared(&self) -> Option<&Arc<shared::Shared>> {
        self.shared.as_ref()
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The state handle of the mount at `mount_path` (e.g. `/115/movies`).
    pub fn mount(&self, mount_path: &str) -> StateHandle {
        StateHandle {
            path: self.root.join(format!("mount-{}.json", encode_name(mount_path))),
            shared: self
                .shared
                .as_ref()
                .map(|s| SharedKey { url: s.url().to_string(), key: s.key("cred", mount_path) }),
        }
    }

    /// [`secret`](Self::secret), from Redis when the state is shared (so every replica
    /// signs and checks links with the same key).
    pub async fn shared_secret(&self, name: &str) -> Result<Vec<u8>> {
        match &self.shared {
            Some(s) => s.secret(name).await,
            None => self.secret(name),
        }
    }

    /// Scratch space for spooled uploads.
    pub fn spool_dir(&self) -> PathBuf {
        self.root.join("spool")
    }

    /// A random secret created once and kept in the state dir (e.g. for signed links).
    pub fn secret(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.root.join(format!("{}.key", encode_name(name)));
        match fs::read(&path) {
            Ok(v) if v.len() >= 32 => return Ok(v),
            Ok(_) => {
                tracing::warn!(file = %path.display(), "secret file too short, making a new one")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
        let mut key = vec![0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut key[..]);
        write_atomic(&path, &key).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(key)
    }
}

/// File-name-safe and reversible: `/115/a b` → `_115_a%20b` style escaping.
fn encode_name(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' => out.push(b as char),
            b'/' => out.push('_'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// One mount's persistent state: a JSON object the driver owns.
#[derive(Debug, Clone)]
pub struct StateHandle {
    path: PathBuf,
    shared: Option<SharedKey>,
}

impl StateHandle {
    pub fn at(path: PathBuf) -> StateHandle {
        StateHandle { path, shared: None }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the mount's credentials live in Redis, when the state is shared.
    pub fn shared(&self) -> Option<&SharedKey> {
        self.shared.as_ref()
    }

    /// The saved state, `None` if there is none yet. A corrupt file is an error: it is
    /// never silently replaced, since it may hold the only live refresh token.
    pub fn load(&self) -> Result<Option<serde_json::Value>> {
        match fs::read(&self.path) {
            Ok(bytes) => {
                let v = serde_json::from_slice(&bytes)
                    .with_context(|| format!("state file {} is not valid JSON", self.path.display()))?;
                Ok(Some(v))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.path.display())),
        }
    }

    /// Save atomically; returns only after the data is durable.
    pub async fn save(&self, value: &serde_json::Value) -> std::io::Result<()> {
        let path = self.path.clone();
        let data = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
        tokio::task::spawn_blocking(move || write_atomic(&path, &data)).await.map_err(std::io::Error::other)?
    }

    pub fn save_blocking(&self, value: &serde_json::Value) -> std::io::Result<()> {
        let data = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
        write_atomic(&self.path, &data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "temp files left behind: {names:?}");
    }

    /// Two threads saving one file over and over: every save succeeds, the file is
    /// always one whole save, and no temp file is left. (With one temp name per process
    /// the saves truncated and renamed each other's temp.)
    #[test]
    fn concurrent_saves_of_one_file_do_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        let payload = |t: u8| vec![b'a' + t; 64 * 1024];
        std::thread::scope(|s| {
            for t in 0..2u8 {
                let p = &p;
                s.spawn(move || {
                    for i in 0..200 {
                        write_atomic(p, &payload(t)).unwrap_or_else(|e| panic!("save {i} of thread {t}: {e}"));
                        let now = fs::read(p).unwrap();
                        assert!(now == payload(0) || now == payload(1), "torn file: {} bytes", now.len());
                    }
                });
            }
        });
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "temp files left behind: {names:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn corrupt_state_is_an_error_not_empty() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::open(dir.path()).unwrap();
        let h = sd.mount("/115");
        assert!(h.load().unwrap().is_none());
        fs::write(h.path(), b"{not json").unwrap();
        assert!(h.load().is_err());
    }

    #[test]
    fn secret_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::open(dir.path()).unwrap();
        let a = sd.secret("sign").unwrap();
        let b = sd.secret("sign").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn mount_names_do_not_collide() {
        let sd = StateDir { root: PathBuf::from("/x"), shared: None };
        assert_ne!(sd.mount("/a_b").path(), sd.mount("/a/b").path());
    }
}
