//! Spooling a body to disk in bounded memory while hashing it, so drivers get an
//! [`Upload`] with size and hashes known (rapid upload by hash needs them first).
//!
//! A spool holds no thread while its body is not arriving: chunks are gathered into
//! batches, and each batch is written and hashed by short tasks on the blocking pool
//! (the file write, SHA-1 and MD5 in parallel). How many spools exist at once is capped
//! ([`set_max_uploads`]); beyond it an upload is refused with 503 and Retry-After. A
//! spool dropped before `finish` (client gone, error) removes its file.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use md5::Digest as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::{DriveError, DriveResult};
use super::types::Upload;

/// Prefix of spool files (hidden from local listings, cleaned at start when stale).
pub const TMP_PREFIX: &str = ".pandav-tmp-";

/// Bytes gathered before a batch is written and hashed.
const BATCH: usize = 1 << 20;

/// Uploads received at once when the config does not say.
pub const DEFAULT_MAX_UPLOADS: usize = 64;

/// What a client refused for too many uploads is told to wait.
const RETRY_AFTER: Duration = Duration::from_secs(10);

static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
/// Set while uploads are being refused, so the log says it once per burst.
static REFUSING: AtomicBool = AtomicBool::new(false);

/// Cap the number of spools that exist at once (call before the first upload; later
/// calls are ignored).
pub fn set_max_uploads(n: usize) {
    let _ = SLOTS.set(Arc::new(Semaphore::new(n.max(1))));
}

fn slots() -> &'static Arc<Semaphore> {
    SLOTS.get_or_init(|| Arc::new(Semaphore::new(DEFAULT_MAX_UPLOADS)))
}

/// Temp files last written before this were left by an earlier run: a second before
/// the first call, which `pandav serve` makes (through the local drivers and
/// `server::prepare`) before any upload can begin. The second covers file times, which
/// the kernel takes from a clock that may lag the precise one by a tick.
pub fn process_start() -> SystemTime {
    static START: OnceLock<SystemTime> = OnceLock::new();
    *START.get_or_init(|| SystemTime::now() - Duration::from_secs(1))
}

/// Remove spool files in `dir` older than the process start (a killed upload's).
pub fn remove_stale(dir: &Path) -> usize {
    let before = process_start();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for de in rd.flatten() {
        let name = de.file_name();
        if !name.to_string_lossy().starts_with(TMP_PREFIX) {
            continue;
        }
        // DirEntry::metadata does not follow links.
        let Ok(m) = de.metadata() else { continue };
        if m.is_file() && m.modified().is_ok_and(|t| t < before) && std::fs::remove_file(de.path()).is_ok() {
            n += 1;
        }
    }
    if n > 0 {
        tracing::info!(dir = %dir.display(), "removed {n} spool file(s) left by an earlier run");
    }
    n
}

/// Where a batch's three jobs stand between batches.
struct State {
    file: std::fs::File,
    sha1: sha1::Sha1,
    md5: md5::Md5,
}

pub struct Spool {
    path: tempfile::TempPath,
    /// `None` only while a batch is being written, or after one failed.
    state: Option<State>,
    pending: Vec<Bytes>,
    pending_len: usize,
    size: u64,
    _slot: OwnedSemaphorePermit,
}

/// A finished spool: the upload for the drive, and the temp path that deletes the file
/// when dropped (unless the drive moved it into place).
pub struct Spooled {
    pub upload: Upload,
    pub guard: tempfile::TempPath,
}

impl Spool {
    /// A new spool file in `dir` (hidden name, removed on drop), or 503 when
    /// [`set_max_uploads`] spools exist already.
    pub async fn create(dir: &Path) -> DriveResult<Spool> {
        let slot = match Arc::clone(slots()).try_acquire_owned() {
            Ok(s) => s,
            Err(_) => {
                if !REFUSING.swap(true, Ordering::Relaxed) {
                    tracing::warn!("too many uploads at once: refusing new ones with 503 until some finish");
                }
                return Err(DriveError::RateLimited { retry_after: Some(RETRY_AFTER) });
            }
        };
        if REFUSING.swap(false, Ordering::Relaxed) {
            tracing::info!("accepting uploads again");
        }
        let dir = dir.to_path_buf();
        let tmp = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            tempfile::Builder::new().prefix(TMP_PREFIX).tempfile_in(&dir)
        })
        .await
        .map_err(std::io::Error::other)??;
        let (file, path) = tmp.into_parts();
        Ok(Spool {
            path,
            state: Some(State { file, sha1: sha1::Sha1::new(), md5: md5::Md5::new() }),
            pending: Vec::new(),
            pending_len: 0,
            size: 0,
            _slot: slot,
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Where the spool's file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn write(&mut self, data: &[u8]) -> DriveResult<()> {
        self.write_bytes(Bytes::copy_from_slice(data)).await
    }

    /// Append a chunk (kept without a copy until its batch is written and hashed).
    pub async fn write_bytes(&mut self, data: Bytes) -> DriveResult<()> {
        self.size += data.len() as u64;
        self.pending_len += data.len();
        self.pending.push(data);
        if self.pending_len >= BATCH {
            self.flush_batch().await?;
        }
        Ok(())
    }

    /// Write and hash what is pending: three blocking tasks at once, none left behind.
    /// If this future is dropped midway the tasks finish on their own and drop the file.
    async fn flush_batch(&mut self) -> DriveResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let chunks: Arc<Vec<Bytes>> = Arc::new(std::mem::take(&mut self.pending));
        self.pending_len = 0;
        let State { mut file, mut sha1, mut md5 } =
            self.state.take().ok_or_else(|| std::io::Error::other("an earlier write to the spool failed"))?;
        let (c1, c2, c3) = (Arc::clone(&chunks), Arc::clone(&chunks), chunks);
        let write = tokio::task::spawn_blocking(move || {
            for c in c1.iter() {
                file.write_all(c)?;
            }
            Ok::<_, std::io::Error>(file)
        });
        let h1 = tokio::task::spawn_blocking(move || {
            c2.iter().for_each(|c| sha1.update(c));
            sha1
        });
        let h2 = tokio::task::spawn_blocking(move || {
            c3.iter().for_each(|c| md5.update(c));
            md5
        });
        let (file, sha1, md5) = tokio::join!(write, h1, h2);
        let file = file.map_err(std::io::Error::other)??;
        let sha1 = sha1.map_err(std::io::Error::other)?;
        let md5 = md5.map_err(std::io::Error::other)?;
        self.state = Some(State { file, sha1, md5 });
        Ok(())
    }

    /// Flush and fsync, then describe the upload.
    pub async fn finish(mut self, mtime: Option<SystemTime>) -> DriveResult<Spooled> {
        self.flush_batch().await?;
        let state = self.state.take().ok_or_else(|| std::io::Error::other("an earlier write to the spool failed"))?;
        let (sha1, md5) = tokio::task::spawn_blocking(move || {
            state.file.sync_data()?;
            Ok::<_, std::io::Error>((hex::encode(state.sha1.finalize()), hex::encode(state.md5.finalize())))
        })
        .await
        .map_err(std::io::Error::other)??;
        let upload = Upload { path: self.path.to_path_buf(), size: self.size, sha1, md5, mtime };
        Ok(Spooled { upload, guard: self.path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_match_one_pass_hashing() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..3_000_017u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let mut sp = Spool::create(dir.path()).await.unwrap();
        for chunk in data.chunks(65_521) {
            sp.write(chunk).await.unwrap();
        }
        let done = sp.finish(None).await.unwrap();
        assert_eq!(done.upload.size, data.len() as u64);
        assert_eq!(done.upload.sha1, hex::encode(sha1::Sha1::digest(&data)));
        assert_eq!(done.upload.md5, hex::encode(md5::Md5::digest(&data)));
        assert_eq!(std::fs::read(&done.upload.path).unwrap(), data);
        let empty = Spool::create(dir.path()).await.unwrap().finish(None).await.unwrap();
        assert_eq!(empty.upload.sha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(empty.upload.md5, "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[tokio::test]
    async fn a_dropped_spool_removes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut sp = Spool::create(dir.path()).await.unwrap();
        sp.write(&vec![7u8; BATCH + 10]).await.unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        drop(sp);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn stale_spools_go_fresh_ones_and_other_names_stay() {
        let dir = tempfile::tempdir().unwrap();
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for name in [".pandav-tmp-old", "keep.txt"] {
            let f = std::fs::File::create(dir.path().join(name)).unwrap();
            f.set_modified(old).unwrap();
        }
        std::fs::write(dir.path().join(".pandav-tmp-new"), "").unwrap();
        assert_eq!(remove_stale(dir.path()), 1);
        let mut left: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, [".pandav-tmp-new", "keep.txt"]);
    }
}
