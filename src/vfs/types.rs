//! Entries, links, uploads and capabilities: what a driver hands to a mount.

use std::path::PathBuf;
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::Stream;

/// One file or folder as a provider describes it.
///
/// Kept small, because a listing holds one per child while it is answered (a local
/// folder of 100,000 files: ~10 MiB at 80 bytes each plus one heap string, against
/// ~23 MiB at 168 bytes plus two): the id and the name share one heap string (and one
/// copy of the name where the id ends with it, as a local path does), and what few
/// entries have (hashes, a provider's opaque field) sits behind one pointer.
#[derive(Clone)]
pub struct Entry {
    /// The id followed by the name, or only the id when it ends with the name.
    text: Box<str>,
    /// Bytes of the name at the end of `text`.
    name_len: usize,
    /// `text` is the id and the name is its tail.
    shared: bool,
    pub is_dir: bool,
    pub size: u64,
    pub modified: SystemTime,
    pub created: Option<SystemTime>,
    /// Hashes and the provider's field, for the entries that have any.
    more: Option<Box<More>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct More {
    hashes: Hashes,
    extra: Option<String>,
}

/// What `Entry::hashes` answers for an entry without any.
static NO_HASHES: Hashes = Hashes { sha1: None, md5: None };

impl Entry {
    /// A file or folder with no hashes, no provider field and no creation time.
    pub fn new(id: impl Into<String>, name: impl AsRef<str>, is_dir: bool, size: u64, modified: SystemTime) -> Entry {
        let (text, name_len, shared) = Self::pack(id.into(), name.as_ref());
        Entry { text, name_len, shared, is_dir, size, modified, created: None, more: None }
    }

    pub fn dir(id: impl Into<String>, name: impl AsRef<str>, modified: SystemTime) -> Entry {
        Entry::new(id, name, true, 0, modified)
    }

    pub fn file(id: impl Into<String>, name: impl AsRef<str>, size: u64, modified: SystemTime) -> Entry {
        Entry::new(id, name, false, size, modified)
    }

    /// The id and the name as one string: the id alone when it ends with the name.
    fn pack(mut id: String, name: &str) -> (Box<str>, usize, bool) {
        let shared = id.ends_with(name);
        if !shared {
            id.push_str(name);
        }
        (id.into_boxed_str(), name.len(), shared)
    }

    /// Provider id (for the local driver: the path relative to the root).
    pub fn id(&self) -> &str {
        if self.shared {
            &self.text
        } else {
            &self.text[..self.text.len() - self.name_len]
        }
    }

    pub fn name(&self) -> &str {
        &self.text[self.text.len() - self.name_len..]
    }

    pub fn set_id(&mut self, id: impl Into<String>) {
        let name = self.name().to_string();
        (self.text, self.name_len, self.shared) = Self::pack(id.into(), &name);
    }

    pub fn set_name(&mut self, name: impl AsRef<str>) {
        let id = self.id().to_string();
        (self.text, self.name_len, self.shared) = Self::pack(id, name.as_ref());
    }

    pub fn hashes(&self) -> &Hashes {
        self.more.as_ref().map_or(&NO_HASHES, |m| &m.hashes)
    }

    pub fn hashes_mut(&mut self) -> &mut Hashes {
        &mut self.more.get_or_insert_with(Default::default).hashes
    }

    pub fn set_hashes(&mut self, hashes: Hashes) {
        if hashes != NO_HASHES || self.more.is_some() {
            *self.hashes_mut() = hashes;
        }
    }

    pub fn with_hashes(mut self, hashes: Hashes) -> Entry {
        self.set_hashes(hashes);
        self
    }

    /// Opaque provider field (e.g. a 115 pick code).
    pub fn extra(&self) -> Option<&str> {
        self.more.as_ref().and_then(|m| m.extra.as_deref())
    }

    pub fn set_extra(&mut self, extra: Option<String>) {
        if extra.is_some() || self.more.is_some() {
            self.more.get_or_insert_with(Default::default).extra = extra;
        }
    }

    pub fn with_extra(mut self, extra: Option<String>) -> Entry {
        self.set_extra(extra);
        self
    }

    pub fn with_created(mut self, created: Option<SystemTime>) -> Entry {
        self.created = created;
        self
    }

    /// A strong validator for GET/If-Range: hash when known, else size+mtime.
    pub fn etag(&self) -> String {
        let h = self.hashes();
        if let Some(h) = h.sha1.as_deref().or(h.md5.as_deref()) {
            return format!("\"{}\"", h.to_ascii_lowercase());
        }
        let t = self.modified.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
        format!("\"{:x}-{:x}\"", self.size, t)
    }
}

/// Equal when every field a caller sees is (an empty `More` equals none).
impl PartialEq for Entry {
    fn eq(&self, o: &Entry) -> bool {
        (self.text == o.text && self.name_len == o.name_len && self.shared == o.shared)
            && (self.is_dir, self.size, self.modified, self.created) == (o.is_dir, o.size, o.modified, o.created)
            && self.hashes() == o.hashes()
            && self.extra() == o.extra()
    }
}

impl Eq for Entry {}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("is_dir", &self.is_dir)
            .field("size", &self.size)
            .field("modified", &self.modified)
            .field("created", &self.created)
            .field("hashes", self.hashes())
            .field("extra", &self.extra())
            .finish()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// A listing holds one `Entry` per child while it is answered: 100,000 of them must
    /// stay ~10 MiB (issue 12). A new field belongs in `More` unless most entries have it.
    #[test]
    fn an_entry_stays_small() {
        assert!(std::mem::size_of::<Entry>() <= 80, "Entry is {} bytes", std::mem::size_of::<Entry>());
    }

    #[test]
    fn id_and_name_share_one_string_when_the_id_ends_with_the_name() {
        let t = UNIX_EPOCH + Duration::from_secs(7);
        let local = Entry::file("a/b/c.txt", "c.txt", 3, t);
        assert_eq!((local.id(), local.name()), ("a/b/c.txt", "c.txt"));
        assert_eq!(local.text.len(), "a/b/c.txt".len());
        let cloud = Entry::file("12345", "c.txt", 3, t);
        assert_eq!((cloud.id(), cloud.name()), ("12345", "c.txt"));
        // Multi-byte names, a name that is the whole id, an empty name (a root).
        let nfd = Entry::dir("x/Cafe\u{301}", "Cafe\u{301}", t);
        assert_eq!((nfd.id(), nfd.name()), ("x/Cafe\u{301}", "Cafe\u{301}"));
        let whole = Entry::dir("é", "é", t);
        assert_eq!((whole.id(), whole.name()), ("é", "é"));
        let root = Entry::dir("", "", t);
        assert_eq!((root.id(), root.name()), ("", ""));
        let odd = Entry::dir("abc", "", t);
        assert_eq!((odd.id(), odd.name()), ("abc", ""));
    }

    #[test]
    fn renaming_and_moving_keep_the_other_half() {
        let t = UNIX_EPOCH;
        let mut e = Entry::file("a/b.txt", "b.txt", 1, t);
        e.set_name("other");
        assert_eq!((e.id(), e.name()), ("a/b.txt", "other"));
        e.set_id("d/other");
        assert_eq!((e.id(), e.name()), ("d/other", "other"));
        assert_eq!(e, Entry::file("d/other", "other", 1, t));
        e.set_id("9");
        assert_eq!((e.id(), e.name()), ("9", "other"));
    }

    #[test]
    fn hashes_and_extra_only_where_set() {
        let t = UNIX_EPOCH;
        let plain = Entry::file("1", "f", 1, t);
        assert!(plain.more.is_none() && plain.hashes().sha1.is_none() && plain.extra().is_none());
        let mut e = plain.clone().with_hashes(Hashes::default()).with_extra(None);
        assert!(e.more.is_none(), "nothing to keep, nothing allocated");
        e.hashes_mut().sha1 = Some("ab".into());
        e.set_extra(Some("pc".into()));
        assert_eq!((e.hashes().sha1.as_deref(), e.extra()), (Some("ab"), Some("pc")));
        assert_eq!(e.etag(), "\"ab\"");
        assert_ne!(e, plain);
        e.set_hashes(Hashes::default());
        e.set_extra(None);
        assert!(e.more.is_some());
        assert_eq!(e, plain, "an emptied box compares as none");
    }
}
