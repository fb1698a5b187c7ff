//! Entries, links, uploads and capabilities: what a driver hands to a mount.

use std::path::PathBuf;
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::Stream;

/// One file or folder as a provider describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Provider id (for the local driver: the path relative to the root).
    pub id: String,
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
    pub modified: SystemTime,
    pub created: Option<SystemTime>,
    pub hashes: Hashes,
    /// Opaque provider field (e.g. a 115 pick code).
    pub extra: Option<String>,
}

impl Entry {
    pub fn dir(id: impl Into<String>, name: impl Into<String>, modified: SystemTime) -> Entry {
        Entry {
            id: id.into(),
            name: name.into(),
            is_dir: true,
            size: 0,
            modified,
            created: None,
            hashes: Hashes::default(),
            extra: None,
        }
    }

    /// A strong validator for GET/If-Range: hash when known, else size+mtime.
    pub fn etag(&self) -> String {
        if let Some(h) = self.hashes.sha1.as_deref().or(self.hashes.md5.as_deref()) {
            return format!("\"{}\"", h.to_ascii_lowercase());
        }
        let t = self.modified.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
        format!("\"{:x}-{:x}\"", self.size, t)
    }
}

/// Content hashes in lowercase hex, when the provider knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hashes {
    pub sha1: Option<String>,
    pub md5: Option<String>,
}

/// Who is asking for a download link (115 binds links to the User-Agent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LinkRequest {
    pub user_agent: String,
    pub ip: Option<String>,
}

/// A provider URL for a file, with the headers the provider wants on the fetch.
#[derive(Debug, Clone)]
pub struct Link {
    pub url: String,
    /// Headers the fetcher must send (UA, Referer, Cookie…). A link with headers the
    /// client will not send by itself cannot be redirected to.
    pub headers: Vec<(String, String)>,
    pub expires_at: Option<SystemTime>,
}

/// A byte range of a file: `start..end` (end exclusive, None = to the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRange {
    pub start: u64,
    pub end: Option<u64>,
}

/// A span `start..end` of an open local file (see `Drive::open_span`).
pub struct FileSpan {
    pub file: std::sync::Arc<std::fs::File>,
    pub start: u64,
    pub end: u64,
}

pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A spooled upload: the whole body is on disk with its size and hashes known, so
/// drivers can try upload-by-hash first and never hold the body in memory.
#[derive(Debug)]
pub struct Upload {
    pub path: PathBuf,
    pub size: u64,
    /// lowercase hex
    pub sha1: String,
    /// lowercase hex
    pub md5: String,
    /// The client's wish for the modification time (X-OC-Mtime).
    pub mtime: Option<SystemTime>,
}

/// A file whose size and SHA-1 are known before its bytes are read, with the bytes
/// readable by range: what a copy between mounts hands to [`RapidPut`](super::RapidPut).
pub struct Hashed {
    pub size: u64,
    /// lowercase hex
    pub sha1: String,
    /// lowercase hex, when the source knows it
    pub md5: Option<String>,
    /// The modification time to give the new file, where the drive can.
    pub mtime: Option<SystemTime>,
    /// The bytes: the source mount's file (Range reads) or a file on disk.
    pub body: std::sync::Arc<dyn super::ByteSource>,
}

impl std::fmt::Debug for Hashed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hashed").field("size", &self.size).field("sha1", &self.sha1).finish_non_exhaustive()
    }
}

/// What [`RapidPut::put_hashed`](super::RapidPut::put_hashed) may do when the provider
/// does not know the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RapidMode {
    /// Send no body: answer `None`.
    HashOnly,
    /// Upload the body from the source's bytes (in bounded memory) and answer the entry.
    OrUpload,
}

/// What a drive can do, declared rather than guessed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caps {
    pub read_only: bool,
    /// Serves bytes itself (local) rather than through links.
    pub local_read: bool,
    /// Produces provider URLs (can be redirected to).
    pub links: bool,
    /// Upload by SHA-1 without sending the body (the conformance suite checks that a
    /// known file is stored without its bytes).
    pub rapid_upload_sha1: bool,
    /// `copy_to` copies at the provider (the conformance suite runs the copy scenarios).
    pub server_side_copy: bool,
    /// `Drive::offline()` answers (the admin API and `pandav offline` check this first).
    pub offline_download: bool,
    /// Keeps the mtime a client asks for on upload.
    pub set_mtime: bool,
    /// `lookup` of one name is cheaper than listing the parent.
    pub fast_lookup: bool,
    /// Credentials expire and the mount must run `refresh()`.
    pub refresh: bool,
    /// move_to/copy_to/put may be given a target name that is an existing file; the drive
    /// replaces it atomically (the old file stays intact if it fails).
    pub replace_file: bool,
    /// `Drive::rapid()` answers: the drive stores a file from its size and SHA-1 plus
    /// byte ranges of the source (rapid upload), used by copies between mounts.
    pub rapid_put: bool,
}

/// Quota in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quota {
    pub used: u64,
    pub total: Option<u64>,
}

/// The outcome of adding one URL as an offline (cloud) download task.
#[derive(Debug, Clone, PartialEq)]
pub struct OfflineAdded {
    pub url: String,
    pub ok: bool,
    /// The provider already had this task (counted as success).
    pub exists: bool,
    pub info_hash: String,
    pub name: String,
    /// Why it failed, in words (empty on success).
    pub message: String,
}

/// Where an offline (cloud) download task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Queued,
    Downloading,
    Done,
    Failed,
    /// A status the provider added since.
    Unknown(i64),
}

impl TaskStatus {
    /// From the number 115 (web and Open) uses: -1 failed, 0 queued, 1 downloading, 2 done.
    pub fn from_115(n: i64) -> TaskStatus {
        match n {
            0 => TaskStatus::Queued,
            1 => TaskStatus::Downloading,
            2 => TaskStatus::Done,
            -1 => TaskStatus::Failed,
            n => TaskStatus::Unknown(n),
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Downloading => "downloading",
            TaskStatus::Done => "done",
            TaskStatus::Failed => "failed",
            TaskStatus::Unknown(_) => "unknown",
        }
    }
}

/// One offline (cloud) download task.
#[derive(Debug, Clone, PartialEq)]
pub struct OfflineTask {
    pub info_hash: String,
    pub name: String,
    pub url: String,
    pub size: u64,
    pub percent: f64,
    pub status: TaskStatus,
}

impl OfflineTask {
    pub fn status_text(&self) -> &'static str {
        self.status.text()
    }
}

/// Offline tasks and, when the provider says, the quota.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OfflineTasks {
    pub tasks: Vec<OfflineTask>,
    pub quota_total: Option<i64>,
    pub quota_left: Option<i64>,
}

/// The download policy of a mount or a client rule, as configured (`redirect`, `proxy`,
/// `proxy_url`). [`Policy`](super::Policy) is the same with the relay's URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    Redirect,
    Proxy,
    ProxyUrl,
}

impl PolicyKind {
    pub const ALL: &'static [PolicyKind] = &[PolicyKind::Redirect, PolicyKind::Proxy, PolicyKind::ProxyUrl];

    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Redirect => "redirect",
            PolicyKind::Proxy => "proxy",
            PolicyKind::ProxyUrl => "proxy_url",
        }
    }

    /// With the relay's base URL for `proxy_url`.
    pub fn with_url(self, proxy_url: Option<&str>) -> super::Policy {
        match self {
            PolicyKind::Redirect => super::Policy::Redirect,
            PolicyKind::Proxy => super::Policy::Proxy,
            PolicyKind::ProxyUrl => super::Policy::ProxyUrl(proxy_url.unwrap_or_default().to_string()),
        }
    }
}

impl std::fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl super::Policy {
    pub fn kind(&self) -> PolicyKind {
        match self {
            super::Policy::Redirect => PolicyKind::Redirect,
            super::Policy::Proxy => PolicyKind::Proxy,
            super::Policy::ProxyUrl(_) => PolicyKind::ProxyUrl,
        }
    }
}
