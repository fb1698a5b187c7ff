//! `driver = "local"`: a folder on this machine.
//!
//! Entry ids are paths relative to the root, built only from names this driver listed
//! or validated: `..`, `.`, empty and NUL components are refused. Every file system
//! call goes through [`tree::Tree`], which resolves those paths relative to an open
//! handle on the root, so symbolic links are invisible unless `follow_symlinks`, even
//! when a folder is swapped for one while requests run.

mod tree;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{bail, Context};
use async_trait::async_trait;
use dashmap::DashMap;
use serde::Deserialize;

use super::DriverCtx;
use crate::vfs::hashcache::{self, HashCache, Stamp};
pub use crate::vfs::spool::TMP_PREFIX;
use crate::vfs::*;
use tree::{Kind, Meta, Modes, Tree};

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
    /// Permissions of stored files, in octal (`"0644"`). Default: 0666 minus the umask.
    #[serde(default)]
    pub file_mode: Option<String>,
    /// Permissions of created folders, in octal (`"2775"`). Default: 0777 minus the umask.
    #[serde(default)]
    pub dir_mode: Option<String>,
}

pub struct LocalDrive {
    root: PathBuf,
    tree: Arc<Tree>,
    modes: Modes,
    /// Hashes of files stored through pandav, by id, valid while size and mtime are
    /// unchanged: lets `rclone check` compare checksums without reading the files.
    hashes: DashMap<String, (u64, SystemTime, Hashes)>,
    /// SHA-1s computed for copies to other mounts, kept in the state dir (read once).
    hash_cache: Arc<HashCache>,
}

/// Bytes per read while hashing a file.
const HASH_CHUNK: usize = 1 << 20;

/// The SHA-1 (lowercase hex) of a freshly opened file, read in bounded memory.
fn hash_file(f: &std::fs::File) -> std::io::Result<String> {
    use sha1::Digest;
    use std::io::Read;
    let mut h = sha1::Sha1::new();
    let mut buf = vec![0u8; HASH_CHUNK];
    let mut r = f;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// An octal permission string from the options, at most `max`.
fn parse_mode(key: &str, s: &str, max: u32) -> anyhow::Result<u32> {
    let digits = s.trim();
    let m = u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| *m <= max && !digits.is_empty())
        .with_context(|| format!("{key} = {s:?} is not an octal mode up to {max:o} (e.g. \"0644\")"))?;
    Ok(m)
}

/// The process umask, read without changing it (Linux: /proc/self/status).
fn current_umask() -> u32 {
    let from_proc = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines().find_map(|l| l.strip_prefix("Umask:")).and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
    });
    from_proc.unwrap_or(0o022)
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
        let file = match &opts.file_mode {
            Some(s) => parse_mode("file_mode", s, 0o777)?,
            None => 0o666 & !current_umask(),
        };
        let dir = opts.dir_mode.as_deref().map(|s| parse_mode("dir_mode", s, 0o7777)).transpose()?;
        let tree = Tree::open(&root, opts.follow_symlinks)
            .with_context(|| format!("cannot open local root {}", root.display()))?;
        // Temp files older than this process are left from a killed one.
        let _ = spool::process_start();
        let hash_cache = Arc::new(HashCache::new(ctx.state.path().with_extension("hashes"), hashcache::DEFAULT_MAX));
        Ok(LocalDrive { root, tree: Arc::new(tree), modes: Modes { file, dir }, hashes: DashMap::new(), hash_cache })
    }

    /// Run `f` with the tree on the blocking pool.
    async fn on_tree<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Tree) -> std::io::Result<T> + Send + 'static,
    ) -> DriveResult<T> {
        let tree = Arc::clone(&self.tree);
        tokio::task::spawn_blocking(move || f(&tree)).await.map_err(std::io::Error::other)?.map_err(drive_err)
    }

    /// Attach remembered hashes when the file is unchanged since we stored it.
    fn with_hashes(&self, mut e: Entry) -> Entry {
        self.fill_hashes(&mut e);
        e
    }

    fn fill_hashes(&self, e: &mut Entry) {
        if !e.is_dir {
            if let Some(h) = self.hashes.get(e.id()) {
                if h.0 == e.size && h.1 == e.modified {
                    e.set_hashes(h.2.clone());
                }
            }
        }
    }

    fn remember(&self, e: &Entry) {
        if self.hashes.len() >= MAX_REMEMBERED_HASHES {
            self.hashes.clear();
        }
        self.hashes.insert(e.id().to_string(), (e.size, e.modified, e.hashes().clone()));
    }

    /// The id of `name` in `parent`. Names are checked here too, not only by the mount:
    /// a name with `/`, an empty one or `..` must never reach the file system, and our
    /// own temp-file prefix is refused since listings hide it.
    fn child_id(parent: &Entry, name: &str) -> DriveResult<String> {
        mount::check_name(name)?;
        if name.starts_with(TMP_PREFIX) {
            return Err(DriveError::InvalidInput(format!("names starting with {TMP_PREFIX} are reserved")));
        }
        Ok(mount::join_rel(parent.id(), name))
    }

    /// An id handed back by the mount, checked again before it reaches the file system.
    fn checked(id: &str) -> DriveResult<String> {
        if !id.is_empty() {
            for part in id.split('/') {
                mount::check_name(part)?;
            }
        }
        Ok(id.to_string())
    }
}

/// io errors as the mount knows them.
fn drive_err(e: std::io::Error) -> DriveError {
    match e.kind() {
        std::io::ErrorKind::AlreadyExists => DriveError::Exists,
        std::io::ErrorKind::IsADirectory => DriveError::IsADirectory,
        std::io::ErrorKind::NotADirectory => DriveError::NotADirectory,
        _ => DriveError::Io(e),
    }
}

fn entry_from(id: String, name: &str, m: &Meta) -> Entry {
    let is_dir = m.kind == Kind::Dir;
    Entry::new(id, name, is_dir, if is_dir { 0 } else { m.size }, m.modified).with_created(m.created)
}

/// Bytes per read of a file being served. Each of many parallel streams holds about two
/// (one being written to the socket, one read ahead), so this bounds their memory.
const READ_CHUNK: u64 = 128 * 1024;

/// `start..end` of `f` as a stream of chunks, each read straight into its own buffer,
/// allocated here on the runtime's thread. (A `tokio::fs::File` under a `ReaderStream`
/// keeps a second buffer per open file, copies between the two, and allocates it on
/// whichever blocking thread runs, spreading buffers over many malloc arenas: 64 parallel
/// range reads grew the RSS twice as much.)
///
/// Bytes already in the page cache are read right here, without blocking (`preadv2` with
/// `RWF_NOWAIT`); only what must come from the disk goes to the blocking pool. A hand-off
/// to the blocking pool per chunk (two thread wake-ups) was a fifth of a warm GET's CPU.
///
/// A file that ends before `end` (it shrank while being read) ends the stream with an
/// error, so the client sees a broken transfer, never a short body that looks whole.
fn chunk_stream(
    f: Arc<std::fs::File>,
    start: u64,
    end: u64,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send {
    advise_sequential(&f, start, end);
    futures_util::stream::try_unfold(start, move |pos| {
        let f = Arc::clone(&f);
        async move {
            if pos >= end {
                return Ok(None);
            }
            let chunk = read_chunk(f, pos, end).await?;
            let next = pos + chunk.len() as u64;
            Ok(Some((chunk, next)))
        }
    })
}

/// Read-ahead for the span `start..end` of `f` about to be sent (advice only: its
/// failure changes nothing; an empty span asks for nothing).
pub(crate) fn advise_sequential(f: &std::fs::File, start: u64, end: u64) {
    if let Some(len) = std::num::NonZeroU64::new(end.saturating_sub(start)) {
        let _ = rustix::fs::fadvise(f, start, Some(len), rustix::fs::Advice::Sequential);
    }
}

/// The next chunk (at most [`READ_CHUNK`] bytes, none past `end`) of `f` from `pos`:
/// from the page cache without blocking when it is there, else read on the blocking
/// pool. A file that ends before `end` is an error.
pub(crate) async fn read_chunk(f: Arc<std::fs::File>, pos: u64, end: u64) -> std::io::Result<bytes::Bytes> {
    let want = (end.saturating_sub(pos)).min(READ_CHUNK) as usize;
    let mut buf = Vec::with_capacity(want);
    read_cached(&f, &mut buf, pos);
    if buf.is_empty() && want > 0 {
        buf = tokio::task::spawn_blocking(move || {
            let mut buf = buf;
            std::io::Seek::seek(&mut &*f, std::io::SeekFrom::Start(pos))?;
            // read_to_end fills the spare capacity without zeroing it first.
            std::io::Read::read_to_end(&mut std::io::Read::take(&*f, want as u64), &mut buf)?;
            Ok::<_, std::io::Error>(buf)
        })
        .await
        .map_err(std::io::Error::other)??;
    }
    if buf.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the file got shorter while it was being sent",
        ));
    }
    Ok(bytes::Bytes::from(buf))
}

/// Reads into `buf`'s spare capacity what the page cache holds of `f` from `pos`, without
/// blocking: all, part, or nothing (nothing also at the end of the file, where the file
/// system cannot read without blocking, or on any error: the blocking read that follows
/// meets it and reports it).
#[cfg(target_os = "linux")]
fn read_cached(f: &std::fs::File, buf: &mut Vec<u8>, pos: u64) {
    use std::os::fd::AsRawFd;
    let Ok(off) = libc::off_t::try_from(pos) else { return };
    let spare = buf.spare_capacity_mut();
    let iov = libc::iovec { iov_base: spare.as_mut_ptr().cast(), iov_len: spare.len() };
    // SAFETY: the one iovec covers `buf`'s spare capacity, which nothing else uses during
    // the call; the kernel writes at most `iov_len` bytes there and returns how many.
    let n = unsafe { libc::preadv2(f.as_raw_fd(), &iov, 1, off, libc::RWF_NOWAIT) };
    if n > 0 {
        // SAFETY: the kernel initialised the first `n` (≤ spare length) bytes after `len`.
        unsafe { buf.set_len(buf.len() + n as usize) };
    }
}

#[cfg(not(target_os = "linux"))]
fn read_cached(_: &std::fs::File, _: &mut Vec<u8>, _: u64) {}

#[async_trait]
impl Drive for LocalDrive {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn caps(&self) -> Caps {
        Caps {
            local_read: true,
            fast_lookup: true,
            set_mtime: true,
            server_side_copy: true,
            replace_file: true,
            ..Caps::default()
        }
    }

    /// Remove temp files a killed upload left in the root folder (listings remove the
    /// ones found in other folders).
    async fn init(&self) -> DriveResult<()> {
        let before = spool::process_start();
        let n = self.on_tree(move |t| t.remove_stale_temps(before)).await?;
        if n > 0 {
            tracing::info!(root = %self.root.display(), "removed {n} temp file(s) left by an earlier run");
        }
        Ok(())
    }

    async fn root(&self) -> DriveResult<Entry> {
        let m = self.on_tree(|t| t.root_meta()).await?;
        Ok(entry_from(String::new(), "", &m))
    }

    async fn list(&self, dir: &Entry) -> DriveResult<Vec<Entry>> {
        // One blocking task for the whole folder: a `tokio::fs` call per entry costs two
        // thread hand-offs each, which for 10,000 files was most of a PROPFIND's time.
        let rel = Self::checked(dir.id())?;
        let before = spool::process_start();
        let dir_id = dir.id().to_string();
        let mut list = self
            .on_tree(move |t| t.list(&rel, before, |name, m| entry_from(mount::join_rel(&dir_id, name), name, &m)))
            .await?;
        if !self.hashes.is_empty() {
            list.iter_mut().for_each(|e| self.fill_hashes(e));
        }
        Ok(list)
    }

    async fn lookup(&self, parent: &Entry, name: &str) -> DriveResult<Option<Entry>> {
        let Ok(id) = Self::child_id(parent, name) else {
            return Ok(None);
        };
        let rel = Self::checked(&id)?;
        let m = self.on_tree(move |t| t.lookup(&rel)).await?;
        Ok(m.filter(|m| matches!(m.kind, Kind::File | Kind::Dir)).map(|m| self.with_hashes(entry_from(id, name, &m))))
    }

    async fn read(&self, file: &Entry, range: ReadRange) -> DriveResult<ByteStream> {
        let span = self.open_span(file, range).await?.ok_or(DriveError::Unsupported("local reads"))?;
        Ok(Box::pin(chunk_stream(span.file, span.start, span.end)))
    }

    async fn open_span(&self, file: &Entry, range: ReadRange) -> DriveResult<Option<FileSpan>> {
        let rel = Self::checked(file.id())?;
        let (start, size) = (range.start, file.size);
        let f = self
            .on_tree(move |t| {
                let f = t.open_file(&rel)?;
                // The answer's length was taken from `file`: a different file now at
                // this path (replaced since) must not be sent under it.
                if f.metadata()?.len() != size {
                    return Err(std::io::Error::other("the file changed while it was being opened"));
                }
                Ok(f)
            })
            .await?;
        let end = range.end.unwrap_or(size).min(size);
        Ok(Some(FileSpan { file: Arc::new(f), start, end }))
    }

    async fn mkdir(&self, parent: &Entry, name: &str) -> DriveResult<Entry> {
        let id = Self::child_id(parent, name)?;
        let (prel, n, mode) = (Self::checked(parent.id())?, name.to_string(), self.modes.dir);
        let m = self.on_tree(move |t| t.mkdir(&prel, &n, mode)).await?;
        Ok(entry_from(id, name, &m))
    }

    async fn move_to(&self, entry: &Entry, new_parent: &Entry, new_name: &str) -> DriveResult<Entry> {
        let from = Self::checked(entry.id())?;
        let id = Self::child_id(new_parent, new_name)?;
        let (prel, n) = (Self::checked(new_parent.id())?, new_name.to_string());
        let m = self.on_tree(move |t| t.rename(&from, &prel, &n)).await?;
        if let Some((_, h)) = self.hashes.remove(entry.id()) {
            self.hashes.insert(id.clone(), h);
        }
        // A link moved as itself is described by what it points to.
        let e = if m.kind == Kind::Link {
            self.lookup(new_parent, new_name).await?.ok_or(DriveError::NotFound)?
        } else {
            entry_from(id, new_name, &m)
        };
        Ok(self.with_hashes(e))
    }

    async fn copy_to(&self, entry: &Entry, new_parent: &Entry, new_name: &str) -> DriveResult<Entry> {
        let from = Self::checked(entry.id())?;
        let id = Self::child_id(new_parent, new_name)?;
        let (prel, n, modes) = (Self::checked(new_parent.id())?, new_name.to_string(), self.modes);
        let m = if entry.is_dir {
            self.on_tree(move |t| t.copy_tree(&from, &prel, &n, modes)).await?
        } else {
            self.on_tree(move |t| t.copy_file(&from, &prel, &n, modes.file)).await?
        };
        let mut e = entry_from(id, new_name, &m);
        if !entry.is_dir && e.size == entry.size && e.modified == entry.modified {
            if let Some(h) = self.hashes.get(entry.id()).map(|h| h.2.clone()) {
                e.set_hashes(h);
                self.remember(&e);
            }
        }
        Ok(e)
    }

    async fn remove(&self, entry: &Entry) -> DriveResult<()> {
        if entry.id().is_empty() {
            return Err(DriveError::Forbidden("root".into()));
        }
        let rel = Self::checked(entry.id())?;
        self.on_tree(move |t| t.remove(&rel)).await?;
        self.hashes.remove(entry.id());
        Ok(())
    }

    /// Uploads are spooled in the root folder (hidden temp names), so that storing one
    /// is a rename on the same file system, and the spool never lands in a folder that
    /// is being swapped for a link.
    fn spool_dir(&self, _parent: &Entry) -> Option<PathBuf> {
        Some(self.root.clone())
    }

    async fn put(&self, parent: &Entry, name: &str, upload: Upload) -> DriveResult<Entry> {
        let id = Self::child_id(parent, name)?;
        let (prel, n, mode, mtime, src) =
            (Self::checked(parent.id())?, name.to_string(), self.modes.file, upload.mtime, upload.path.clone());
        let m = self.on_tree(move |t| t.install(&src, &prel, &n, mode, mtime)).await?;
        let mut e = entry_from(id, name, &m);
        e.set_hashes(Hashes { sha1: Some(upload.sha1), md5: Some(upload.md5) });
        self.remember(&e);
        Ok(e)
    }

    /// The SHA-1 of a file: remembered from an upload, else from the hash cache (kept
    /// by inode, size, mtime and ctime), else — with `compute` — read and hashed once and
    /// remembered. A file that is not what `file` describes any more (another size or
    /// time), or that changes while it is read, is an error rather than a wrong hash.
    async fn hashes(&self, file: &Entry, compute: bool) -> DriveResult<Hashes> {
        if file.is_dir || file.hashes().sha1.is_some() {
            return Ok(file.hashes().clone());
        }
        let rel = Self::checked(file.id())?;
        let (size, modified, cache) = (file.size, file.modified, Arc::clone(&self.hash_cache));
        let name = file.name().to_string();
        let sha1 = self
            .on_tree(move |t| {
                let f = t.open_file(&rel)?;
                let m = f.metadata()?;
                if m.len() != size || m.modified().ok() != Some(modified) {
                    return Err(std::io::Error::other("the file changed since it was listed"));
                }
                let (key, stamp) = Stamp::of(&m);
                if let Some(h) = cache.get(key, stamp).and_then(|h| h.sha1) {
                    tracing::debug!(file = %name, "SHA-1 from the hash cache");
                    return Ok(Some(h));
                }
                if !compute {
                    return Ok(None);
                }
                let started = SystemTime::now();
                let sha1 = hash_file(&f)?;
                let (_, after) = Stamp::of(&f.metadata()?);
                if after != stamp {
                    return Err(std::io::Error::other("the file changed while it was being hashed"));
                }
                if stamp.racy(started) {
                    tracing::debug!(file = %name, "hashed, not remembered: modified just now");
                } else {
                    cache.put(key, stamp, &sha1, None);
                }
                tracing::info!(file = %name, bytes = size, "hashed a local file for a copy");
                Ok(Some(sha1))
            })
            .await?;
        Ok(Hashes { sha1, md5: None })
    }

    async fn set_mtime(&self, entry: &Entry, mtime: SystemTime) -> DriveResult<()> {
        if entry.is_dir {
            return Ok(());
        }
        let rel = Self::checked(entry.id())?;
        self.on_tree(move |t| t.set_mtime(&rel, mtime)).await
    }
}

#[cfg(test)]
mod tests {
    use futures_util::TryStreamExt;

    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4099) as u8).collect()
    }

    async fn collect(f: std::fs::File, start: u64, end: u64) -> std::io::Result<Vec<u8>> {
        let chunks: Vec<bytes::Bytes> = chunk_stream(Arc::new(f), start, end).try_collect().await?;
        assert!(chunks.iter().all(|c| !c.is_empty() && c.len() as u64 <= READ_CHUNK));
        Ok(chunks.concat())
    }

    /// Spans over several chunks, from odd offsets, come back byte-exact, whether the
    /// pages are cached (read without blocking) or were just dropped from the page cache
    /// (read on the blocking pool).
    #[tokio::test]
    async fn chunks_are_the_files_bytes_cached_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data = pattern(3 * READ_CHUNK as usize + 12_345);
        std::fs::write(&path, &data).unwrap();
        let len = data.len() as u64;
        for (start, end) in
            [(0, len), (1, len), (READ_CHUNK - 1, 2 * READ_CHUNK + 3), (len - 10, len), (77, 78), (len, len)]
        {
            let got = collect(std::fs::File::open(&path).unwrap(), start, end).await.unwrap();
            assert_eq!(got, &data[start as usize..end as usize], "cached {start}..{end}");
            let f = std::fs::File::open(&path).unwrap();
            f.sync_all().unwrap();
            rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
            let got = collect(f, start, end).await.unwrap();
            assert_eq!(got, &data[start as usize..end as usize], "uncached {start}..{end}");
        }
    }

    /// A span that starts past its end (a range beyond the file) is empty, not a panic.
    #[tokio::test]
    async fn a_span_past_its_end_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let got = collect(std::fs::File::open(&path).unwrap(), 20, 10).await.unwrap();
        assert!(got.is_empty());
    }

    /// A file cut short while it is sent ends the stream with an error, never with a
    /// shorter body.
    #[tokio::test]
    async fn a_file_that_shrinks_ends_the_stream_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data = pattern(2 * READ_CHUNK as usize);
        std::fs::write(&path, &data).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(READ_CHUNK + 5).unwrap();
        let err = collect(f, 0, data.len() as u64).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
