//! `driver = "local"`: a folder on this machine.
//!
//! Entry ids are paths relative to the root, built only from names this driver listed
//! or validated, so nothing outside the root is reachable: `..`, `.`, empty and NUL
//! components are refused, and symbolic links are invisible unless `follow_symlinks`.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use async_trait::async_trait;
use dashmap::DashMap;
use serde::Deserialize;

use super::DriverCtx;
use crate::vfs::*;

const TMP_PREFIX: &str = ".pandav-tmp-";
/// Bound on remembered upload hashes (about 200 bytes each).
const MAX_REMEMBERED_HASHES: usize = 100_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalOptions {
    /// The folder to serve.
    pub root: PathBuf,
    /// Follow symbolic links (also ones pointing outside the root). Off by default:
    /// links are then neither listed nor reachable.
    #[serde(default)]
    pub follow_symlinks: bool,
    /// Create the root folder if it is missing.
    #[serde(default)]
    pub create: bool,
}

pub struct LocalDrive {
    root: PathBuf,
    follow_symlinks: bool,
    /// Hashes of files stored through pandav, by id, valid while size and mtime are
    /// unchanged: lets `rclone check` compare checksums without reading the files.
    hashes: DashMap<String, (u64, SystemTime, Hashes)>,
}

impl LocalDrive {
    pub fn new(opts: LocalOptions, ctx: &DriverCtx) -> anyhow::Result<LocalDrive> {
        let root = if opts.root.is_absolute() { opts.root.clone() } else { ctx.base_dir.join(&opts.root) };
        if opts.create {
            std::fs::create_dir_all(&root).with_context(|| format!("cannot create root {}", root.display()))?;
        }
        let root = root.canonicalize().with_context(|| format!("local root {} is not usable", root.display()))?;
        if !root.is_dir() {
            bail!("local root {} is not a folder", root.display());
        }
        Ok(LocalDrive { root, follow_symlinks: opts.follow_symlinks, hashes: DashMap::new() })
    }

    /// The absolute path of an id, refusing anything that could leave the root.
    fn abs(&self, id: &str) -> DriveResult<PathBuf> {
        let mut p = self.root.clone();
        if id.is_empty() {
            return Ok(p);
        }
        for part in id.split('/') {
            mount::check_name(part)?;
            p.push(part);
        }
        Ok(p)
    }

    async fn meta(&self, p: &Path) -> std::io::Result<Option<std::fs::Metadata>> {
        let m = match tokio::fs::symlink_metadata(p).await {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if m.file_type().is_symlink() {
            if !self.follow_symlinks {
                return Ok(None);
            }
            return match tokio::fs::metadata(p).await {
                Ok(m) => Ok(Some(m)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None), // dangling
                Err(e) => Err(e),
            };
        }
        Ok(Some(m))
    }

    /// Attach remembered hashes when the file is unchanged since we stored it.
    fn with_hashes(&self, mut e: Entry) -> Entry {
        if !e.is_dir {
            if let Some(h) = self.hashes.get(&e.id) {
                if h.0 == e.size && h.1 == e.modified {
                    e.hashes = h.2.clone();
                }
            }
        }
        e
    }

    /// The id of `name` in `parent`. Names are checked here too, not only by the mount:
    /// a name with `/`, an empty one or `..` must never reach the file system, and our
    /// own temp-file prefix is refused since listings hide it.
    fn child_id(parent: &Entry, name: &str) -> DriveResult<String> {
        mount::check_name(name)?;
        if name.starts_with(TMP_PREFIX) {
            return Err(DriveError::InvalidInput(format!("names starting with {TMP_PREFIX} are reserved")));
        }
        Ok(mount::join_rel(&parent.id, name))
    }

    /// Store `src` (a file in the target folder or elsewhere) as `dst` atomically.
    async fn install(&self, src: &Path, dst: &Path) -> DriveResult<()> {
        match tokio::fs::rename(src, dst).await {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(18) => {
                // EXDEV: copy next to the target first, then rename.
                let dir = dst.parent().ok_or(DriveError::NotFound)?.to_path_buf();
                let tmp = tempfile::Builder::new().prefix(TMP_PREFIX).tempfile_in(&dir)?.into_temp_path();
                tokio::fs::copy(src, &tmp).await?;
                tokio::fs::rename(&tmp, dst).await?;
                let _ = tmp.keep();
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn entry_from(id: String, name: String, m: &std::fs::Metadata) -> Entry {
    Entry {
        id,
        name,
        is_dir: m.is_dir(),
        size: if m.is_dir() { 0 } else { m.len() },
        modified: m.modified().unwrap_or(UNIX_EPOCH),
        created: m.created().ok(),
        hashes: Hashes::default(),
        extra: None,
    }
}

/// Bytes per read of a file being served.
const READ_CHUNK: u64 = 128 * 1024;

/// `range` of `f` as a stream of chunks, each read straight into its own buffer by one
/// blocking task. The buffer is allocated here, on the runtime's thread. (A
/// `tokio::fs::File` under a `ReaderStream` keeps a second buffer per open file, copies
/// between the two, and allocates it on whichever blocking thread runs, spreading
/// buffers over many malloc arenas: 64 parallel range reads grew the RSS twice as much.)
fn chunk_stream(
    f: std::sync::Arc<std::fs::File>,
    range: ReadRange,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send {
    let end = range.end.unwrap_or(u64::MAX);
    futures_util::stream::try_unfold(range.start, move |pos| {
        let f = std::sync::Arc::clone(&f);
        async move {
            if pos >= end {
                return Ok(None);
            }
            let want = (end - pos).min(READ_CHUNK);
            let buf = Vec::with_capacity(want as usize);
            // Reads follow each other, so the file's own position is where the last one
            // stopped; read_to_end fills the spare capacity without zeroing it first.
            let buf = tokio::task::spawn_blocking(move || {
                let mut buf = buf;
                std::io::Read::read_to_end(&mut std::io::Read::take(&*f, want), &mut buf)?;
                Ok::<_, std::io::Error>(buf)
            })
            .await
            .map_err(std::io::Error::other)??;
            if buf.is_empty() {
                return Ok(None); // end of file
            }
            let next = pos + buf.len() as u64;
            Ok(Some((bytes::Bytes::from(buf), next)))
        }
    })
}

/// Every listable child of folder `p` (id prefix `dir_id`), on a blocking thread.
fn list_blocking(p: &Path, dir_id: &str, follow_symlinks: bool) -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for de in std::fs::read_dir(p)? {
        let de = de?;
        let Ok(name) = de.file_name().into_string() else {
            tracing::debug!(dir = %p.display(), "skipping a name that is not UTF-8");
            continue;
        };
        if name.starts_with(TMP_PREFIX) {
            continue;
        }
        let path = de.path();
        let m = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                if !follow_symlinks {
                    continue;
                }
                match std::fs::metadata(&path) {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // dangling
                    Err(e) => {
                        tracing::debug!(file = %path.display(), "skipping: {e}");
                        continue;
                    }
                }
            }
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::debug!(file = %path.display(), "skipping: {e}");
                continue;
            }
        };
        if m.is_dir() || m.is_file() {
            out.push(entry_from(mount::join_rel(dir_id, &name), name, &m));
        }
    }
    Ok(out)
}

fn set_file_mtime(p: &Path, t: SystemTime) -> std::io::Result<()> {
    std::fs::File::options().write(true).open(p)?.set_modified(t)
}

#[async_trait]
impl Drive for LocalDrive {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn caps(&self) -> Caps {
        Caps { local_read: true, fast_lookup: true, set_mtime: true, server_side_copy: true, ..Caps::default() }
    }

    async fn root(&self) -> DriveResult<Entry> {
        let m = tokio::fs::metadata(&self.root).await?;
        Ok(entry_from(String::new(), String::new(), &m))
    }

    async fn list(&self, dir: &Entry) -> DriveResult<Vec<Entry>> {
        // One blocking task for the whole folder: a `tokio::fs` call per entry costs two
        // thread hand-offs each, which for 10,000 files was most of a PROPFIND's time.
        let p = self.abs(&dir.id)?;
        let (follow, dir_id) = (self.follow_symlinks, dir.id.clone());
        let list = tokio::task::spawn_blocking(move || list_blocking(&p, &dir_id, follow))
            .await
            .map_err(std::io::Error::other)??;
        Ok(list.into_iter().map(|e| self.with_hashes(e)).collect())
    }

    async fn lookup(&self, parent: &Entry, name: &str) -> DriveResult<Option<Entry>> {
        let Ok(id) = Self::child_id(parent, name) else {
            return Ok(None);
        };
        let p = self.abs(&id)?;
        Ok(self
            .meta(&p)
            .await?
            .filter(|m| m.is_dir() || m.is_file())
            .map(|m| self.with_hashes(entry_from(id, name.to_string(), &m))))
    }

    async fn read(&self, file: &Entry, range: ReadRange) -> DriveResult<ByteStream> {
        let p = self.abs(&file.id)?;
        let start = range.start;
        let f = tokio::task::spawn_blocking(move || {
            let mut f = std::fs::File::open(p)?;
            if start > 0 {
                std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(start))?;
            }
            Ok::<_, std::io::Error>(f)
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(Box::pin(chunk_stream(std::sync::Arc::new(f), range)))
    }

    async fn mkdir(&self, parent: &Entry, name: &str) -> DriveResult<Entry> {
        let id = Self::child_id(parent, name)?;
        let p = self.abs(&id)?;
        tokio::fs::create_dir(&p).await?;
        let m = tokio::fs::metadata(&p).await?;
        Ok(entry_from(id, name.to_string(), &m))
    }

    async fn move_to(&self, entry: &Entry, new_parent: &Entry, new_name: &str) -> DriveResult<Entry> {
        let from = self.abs(&entry.id)?;
        let id = Self::child_id(new_parent, new_name)?;
        let to = self.abs(&id)?;
        if tokio::fs::symlink_metadata(&to).await.is_ok() {
            return Err(DriveError::Exists);
        }
        tokio::fs::rename(&from, &to).await?;
        if let Some((_, h)) = self.hashes.remove(&entry.id) {
            self.hashes.insert(id.clone(), h);
        }
        let m = tokio::fs::metadata(&to).await?;
        Ok(self.with_hashes(entry_from(id, new_name.to_string(), &m)))
    }

    async fn copy_to(&self, entry: &Entry, new_parent: &Entry, new_name: &str) -> DriveResult<Entry> {
        let from = self.abs(&entry.id)?;
        let id = Self::child_id(new_parent, new_name)?;
        let to = self.abs(&id)?;
        if entry.is_dir {
            let follow = self.follow_symlinks;
            let (f, t) = (from.clone(), to.clone());
            tokio::task::spawn_blocking(move || copy_tree(&f, &t, follow)).await.map_err(std::io::Error::other)??;
        } else {
            let dir = to.parent().ok_or(DriveError::NotFound)?.to_path_buf();
            let tmp = tempfile::Builder::new().prefix(TMP_PREFIX).tempfile_in(&dir)?.into_temp_path();
            tokio::fs::copy(&from, &tmp).await?;
            set_file_mtime(&tmp, entry.modified)?;
            tokio::fs::rename(&tmp, &to).await?;
            let _ = tmp.keep();
        }
        let m = tokio::fs::metadata(&to).await?;
        Ok(entry_from(id, new_name.to_string(), &m))
    }

    async fn remove(&self, entry: &Entry) -> DriveResult<()> {
        let p = self.abs(&entry.id)?;
        if entry.id.is_empty() {
            return Err(DriveError::Forbidden("root".into()));
        }
        let m = tokio::fs::symlink_metadata(&p).await?;
        if m.is_dir() {
            tokio::fs::remove_dir_all(&p).await?;
        } else {
            tokio::fs::remove_file(&p).await?;
        }
        Ok(())
    }

    fn spool_dir(&self, parent: &Entry) -> Option<PathBuf> {
        self.abs(&parent.id).ok()
    }

    async fn put(&self, parent: &Entry, name: &str, upload: Upload) -> DriveResult<Entry> {
        let id = Self::child_id(parent, name)?;
        let to = self.abs(&id)?;
        if let Some(m) = tokio::fs::symlink_metadata(&to).await.ok() {
            if m.is_dir() {
                return Err(DriveError::IsADirectory);
            }
        }
        if let Some(t) = upload.mtime {
            set_file_mtime(&upload.path, t)?;
        }
        self.install(&upload.path, &to).await?;
        let m = tokio::fs::metadata(&to).await?;
        let mut e = entry_from(id, name.to_string(), &m);
        e.hashes = Hashes { sha1: Some(upload.sha1), md5: Some(upload.md5) };
        if self.hashes.len() >= MAX_REMEMBERED_HASHES {
            self.hashes.clear();
        }
        self.hashes.insert(e.id.clone(), (e.size, e.modified, e.hashes.clone()));
        Ok(e)
    }

    async fn set_mtime(&self, entry: &Entry, mtime: SystemTime) -> DriveResult<()> {
        let p = self.abs(&entry.id)?;
        if entry.is_dir {
            return Ok(());
        }
        set_file_mtime(&p, mtime)?;
        Ok(())
    }
}

fn copy_tree(from: &Path, to: &Path, follow: bool) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    for de in std::fs::read_dir(from)? {
        let de = de?;
        let name = de.file_name();
        if name.to_string_lossy().starts_with(TMP_PREFIX) {
            continue;
        }
        let ft = de.file_type()?;
        let (src, dst) = (de.path(), to.join(&name));
        let ft_real = if ft.is_symlink() {
            if !follow {
                continue;
            }
            match std::fs::metadata(&src) {
                Ok(m) => m.file_type(),
                Err(_) => continue,
            }
        } else {
            ft
        };
        if ft_real.is_dir() {
            copy_tree(&src, &dst, follow)?;
        } else if ft_real.is_file() {
            std::fs::copy(&src, &dst)?;
            if let Ok(m) = std::fs::metadata(&src).and_then(|m| m.modified()) {
                let _ = set_file_mtime(&dst, m);
            }
        }
    }
    Ok(())
}
