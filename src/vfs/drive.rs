//! The `Drive` trait: one provider, seen through entries.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::error::{DriveError, DriveResult};
use super::types::*;

/// One provider account (or folder) behind a mount.
///
/// Paths are the mount's business: a drive works on entries it handed out before.
#[async_trait]
pub trait Drive: Send + Sync + 'static {
    /// Driver name as used in config (`local`, `115`, …).
    fn kind(&self) -> &'static str;
    fn caps(&self) -> Caps;

    /// Called once before serving: log in, restore state, find the root.
    async fn init(&self) -> DriveResult<()> {
        Ok(())
    }

    /// The root folder of the mount.
    async fn root(&self) -> DriveResult<Entry>;

    /// Every child of `dir` (all pages).
    async fn list(&self, dir: &Entry) -> DriveResult<Vec<Entry>>;

    /// One child by name, for drives with `caps().fast_lookup` (answer without listing).
    /// `Unsupported` for a folder where a lookup is no cheaper than listing it: the mount
    /// then lists the folder (and caches the listing).
    async fn lookup(&self, _parent: &Entry, _name: &str) -> DriveResult<Option<Entry>> {
        Err(DriveError::Unsupported("lookup"))
    }

    /// A provider URL for `file`, fetched on behalf of the client in `req`.
    async fn link(&self, _file: &Entry, _req: &LinkRequest) -> DriveResult<Link> {
        Err(DriveError::Unsupported("links"))
    }

    /// Bytes of `file` served by the drive itself (local folders).
    async fn read(&self, _file: &Entry, _range: ReadRange) -> DriveResult<ByteStream> {
        Err(DriveError::Unsupported("local reads"))
    }

    /// `range` of `file` as an open local file, for a server that sends it without
    /// reading it (`sendfile`); `None` where the bytes are not in a local file.
    async fn open_span(&self, _file: &Entry, _range: ReadRange) -> DriveResult<Option<FileSpan>> {
        Ok(None)
    }

    async fn mkdir(&self, _parent: &Entry, _name: &str) -> DriveResult<Entry> {
        Err(DriveError::ReadOnly)
    }

    /// Move and/or rename `entry` into `new_parent` as `new_name`. The target name is free
    /// (the mount removed an existing one first when the client asked to overwrite).
    async fn move_to(&self, _entry: &Entry, _new_parent: &Entry, _new_name: &str) -> DriveResult<Entry> {
        Err(DriveError::ReadOnly)
    }

    /// Copy `entry` (recursively for folders) into `new_parent` as `new_name`.
    async fn copy_to(&self, _entry: &Entry, _new_parent: &Entry, _new_name: &str) -> DriveResult<Entry> {
        Err(DriveError::ReadOnly)
    }

    /// Remove a file or a folder with everything in it.
    async fn remove(&self, _entry: &Entry) -> DriveResult<()> {
        Err(DriveError::ReadOnly)
    }

    /// Store `upload` as `parent/name`, replacing an existing file atomically where the
    /// provider allows (the old file stays intact when the upload fails).
    async fn put(&self, _parent: &Entry, _name: &str, _upload: Upload) -> DriveResult<Entry> {
        Err(DriveError::ReadOnly)
    }

    /// Set a file's modification time, for drives with `caps().set_mtime`.
    async fn set_mtime(&self, _entry: &Entry, _mtime: SystemTime) -> DriveResult<()> {
        Err(DriveError::Unsupported("set mtime"))
    }

    /// A folder on the same file system as `parent`, where an upload can be spooled so
    /// that storing it is a rename (local folders). `None`: the mount's spool dir.
    fn spool_dir(&self, _parent: &Entry) -> Option<std::path::PathBuf> {
        None
    }

    /// Offline (cloud) download, for drives with `caps().offline_download`.
    fn offline(&self) -> Option<&dyn Offline> {
        None
    }

    /// Storing a file by its hash (rapid upload), for drives with `caps().rapid_put`.
    fn rapid(&self) -> Option<&dyn RapidPut> {
        None
    }

    /// The content hashes of `file` as the drive knows them. Cloud drives answer from
    /// the listing (`file.hashes`, the default). A drive that can compute them (local)
    /// does so when `compute` and remembers the answer, so a file is read once; without
    /// `compute` it answers only what it knows without reading the file.
    async fn hashes(&self, file: &Entry, _compute: bool) -> DriveResult<Hashes> {
        Ok(file.hashes().clone())
    }

    async fn quota(&self) -> DriveResult<Option<Quota>> {
        Ok(None)
    }

    /// For drives with `caps().refresh`: renew the credentials when they are due (or, for a
    /// latched login, look whether a new one was saved) and say when to come back. Rotated
    /// credentials are saved by the kit (`vfs::credentials`) before they are used.
    async fn refresh(&self) -> DriveResult<Duration> {
        Ok(Duration::from_secs(3600))
    }
}

/// The bytes of one file by range: another mount's file (read through
/// `vfs::transfer::open`, with Range requests for cloud drives) or a file on disk.
#[async_trait]
pub trait ByteSource: Send + Sync {
    /// The file's size in bytes.
    fn size(&self) -> u64;

    /// Bytes `start..end` (end exclusive, `end <= size`) as a stream, in bounded memory
    /// whatever the length. The stream ends with an error, never early, if the source
    /// gives fewer bytes.
    async fn stream(&self, start: u64, end: u64) -> DriveResult<ByteStream>;

    /// Bytes `start..end` in memory: for proofs (a few KiB), at most [`RANGE_MAX`].
    async fn range(&self, start: u64, end: u64) -> DriveResult<bytes::Bytes> {
        if end < start || end - start > RANGE_MAX || end > self.size() {
            return Err(DriveError::InvalidInput(format!("range {start}..{end} of a {}-byte source", self.size())));
        }
        let mut s = self.stream(start, end).await?;
        let mut buf = bytes::BytesMut::with_capacity((end - start) as usize);
        while let Some(chunk) = futures_util::StreamExt::next(&mut s).await {
            buf.extend_from_slice(&chunk?);
        }
        if buf.len() as u64 != end - start {
            return Err(DriveError::upstream(format!("source gave {} bytes of range {start}..{end}", buf.len())));
        }
        Ok(buf.freeze())
    }
}

/// The largest range [`ByteSource::range`] reads into memory.
pub const RANGE_MAX: u64 = 16 << 20;

/// Storing a file by its content hash (115 秒传, Aliyun rapid upload), for copies
/// between mounts. See docs/architecture.md ("Rapid put") for the contract.
#[async_trait]
pub trait RapidPut: Send + Sync {
    /// Store `src` as the new file `parent/name` (`name` is free: the mount checked, and
    /// copies build under hidden names). The provider is asked with `src.size` and
    /// `src.sha1`; the proofs it wants (115: SHA-1 of the first 128 KiB and of a range it
    /// names; Aliyun: SHA-1 of the first 1 KiB, 8 bytes at a token-derived offset) are
    /// read from `src.body` by range, and nothing else of it is read while the provider
    /// decides.
    ///
    /// - known content: `Ok(Some(entry))`, no body byte sent;
    /// - unknown content and `RapidMode::HashOnly`: `Ok(None)`, nothing created;
    /// - unknown content and `RapidMode::OrUpload`: the body is uploaded from
    ///   `src.body.stream(…)` in bounded memory and the entry answered; a drive that cannot
    ///   do that answers `Err(DriveError::Unsupported(_))` (the caller then spools and `put`s).
    ///
    /// A failure leaves nothing behind in the provider (no partial file).
    async fn put_hashed(&self, parent: &Entry, name: &str, src: &Hashed, mode: RapidMode)
        -> DriveResult<Option<Entry>>;
}

/// Offline (cloud) download: the provider fetches URLs (magnet, http, ed2k…) itself.
#[async_trait]
pub trait Offline: Send + Sync {
    /// Add URLs as tasks saving into `dir` (the provider's default folder when `None`).
    async fn add_tasks(&self, urls: &[String], dir: Option<&Entry>) -> DriveResult<Vec<OfflineAdded>>;

    async fn tasks(&self) -> DriveResult<OfflineTasks>;

    /// Remove tasks by info hash, and the files they downloaded when `delete_files`.
    async fn remove_tasks(&self, hashes: &[String], delete_files: bool) -> DriveResult<()>;
}
