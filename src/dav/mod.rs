//! The WebDAV face of the mount table: dav-server's `GuardedFileSystem` over `vfs`.
//!
//! Every call carries a [`RequestCtx`] (user, User-Agent, client IP, `X-OC-Mtime`), so a
//! user only ever sees and reaches the mounts they are granted.

pub mod copymove;
pub mod destination;
mod file;
#[doc(hidden)]
pub mod fuzz;
pub mod ifheader;
pub mod locks;
pub mod propfind;
pub mod proppatch;
mod props;
pub mod quirks;
pub mod xmlgate;
pub mod xmlout;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dav_server::davpath::DavPath;
use dav_server::fs::*;
use futures_util::{stream, FutureExt};

use crate::vfs::{self, DriveError, Entry, Mount, MountTable, Resolved};
pub use file::{ReadFile, WriteFile};
use locks::lock;
pub use props::PropStore;

/// A client-supplied string for a log line, with control characters escaped (`\n`,
/// `\u{1b}`…), so that a name or path cannot forge or garble log lines.
pub struct Esc<'a>(pub &'a str);

impl std::fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        for c in self.0.chars() {
            if c.is_control() {
                for e in c.escape_default() {
                    f.write_char(e)?;
                }
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// Who is asking: handed down from the server with every request.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    /// Mount paths this user may see; `None` = all.
    pub mounts: Option<HashSet<String>>,
    pub read_only: bool,
    /// Sees every user's copy tasks.
    pub admin: bool,
}

impl User {
    pub fn anonymous() -> User {
        User { name: "-".into(), mounts: None, read_only: false, admin: false }
    }

    pub fn sees(&self, m: &Mount) -> bool {
        self.mounts.as_ref().is_none_or(|set| set.contains(m.path()))
    }
}

#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub user: Arc<User>,
    pub user_agent: String,
    pub ip: Option<IpAddr>,
    /// From `X-OC-Mtime` (rclone, ownCloud clients): the mtime to give an uploaded file.
    pub oc_mtime: Option<SystemTime>,
    /// The last provider error of this request, so the server can answer 503/502 with
    /// Retry-After where dav-server only knows "500".
    pub error: Arc<Mutex<Option<DriveError>>>,
    /// Set when an upload stored the `X-OC-Mtime` the client asked for.
    pub mtime_accepted: Arc<std::sync::atomic::AtomicBool>,
    /// Why the lock system refused this request's LOCK or UNLOCK (dav-server can only
    /// say 423 or 409).
    pub lock_refusal: Arc<Mutex<Option<locks::Refusal>>>,
}

impl RequestCtx {
    pub fn new(user: Arc<User>, user_agent: String, ip: Option<IpAddr>, oc_mtime: Option<SystemTime>) -> RequestCtx {
        RequestCtx {
            user,
            user_agent,
            ip,
            oc_mtime,
            error: Default::default(),
            mtime_accepted: Default::default(),
            lock_refusal: Default::default(),
        }
    }

    /// Map a drive error to dav-server's status vocabulary, keeping the detail.
    pub(crate) fn fs_err(&self, e: DriveError) -> FsError {
        let fe = to_fs_error(&e);
        if e.is_server_side() {
            tracing::warn!(user = %self.user.name, "{e}");
        } else {
            tracing::debug!(user = %self.user.name, "{e}");
        }
        if fe == FsError::GeneralFailure {
            // The answer's 500 becomes e.status() (400, 409, 502, 503…) in App::finish.
            *lock(&self.error) = Some(e);
        }
        fe
    }
}

/// dav-server's nearest word for a drive error, derived from `DriveError::status`. Its
/// vocabulary has no 400, 409, 502 or 503: those become `GeneralFailure`, and
/// `RequestCtx::fs_err` keeps the error so that the answer gets its real status.
pub fn to_fs_error(e: &DriveError) -> FsError {
    use http::StatusCode as S;
    match e.status() {
        S::NOT_FOUND => FsError::NotFound,
        S::METHOD_NOT_ALLOWED => FsError::Exists,
        S::FORBIDDEN => FsError::Forbidden,
        S::NOT_IMPLEMENTED => FsError::NotImplemented,
        S::INSUFFICIENT_STORAGE => FsError::InsufficientStorage,
        S::URI_TOO_LONG => FsError::PathTooLong,
        S::LOOP_DETECTED => FsError::LoopDetected,
        S::PAYLOAD_TOO_LARGE => FsError::TooLarge,
        _ => FsError::GeneralFailure,
    }
}

/// Metadata of an entry or a virtual folder.
#[derive(Debug, Clone)]
pub struct Meta {
    pub len: u64,
    pub modified: SystemTime,
    pub created: Option<SystemTime>,
    pub is_dir: bool,
    pub etag: String,
}

impl Meta {
    pub fn of(e: &Entry) -> Meta {
        Meta {
            len: e.size,
            modified: e.modified,
            created: e.created,
            is_dir: e.is_dir,
            etag: e.etag().trim_matches('"').to_string(),
        }
    }

    fn virtual_dir() -> Meta {
        Meta { len: 0, modified: *START, created: None, is_dir: true, etag: "pandav-root".into() }
    }
}

static START: std::sync::LazyLock<SystemTime> = std::sync::LazyLock::new(SystemTime::now);

/// A time dav-server can print as an HTTP date: httpdate panics on times before 1970
/// or after 9999, which a local file (or a client-set mtime) can have.
pub(crate) fn printable(t: SystemTime) -> SystemTime {
    let max = UNIX_EPOCH + Duration::from_secs(quirks::MAX_TIME_SECS);
    t.clamp(UNIX_EPOCH, max)
}

impl DavMetaData for Meta {
    fn len(&self) -> u64 {
        self.len
    }
    fn modified(&self) -> FsResult<SystemTime> {
        Ok(printable(self.modified))
    }
    fn is_dir(&self) -> bool {
        self.is_dir
    }
    fn etag(&self) -> Option<String> {
        Some(self.etag.clone())
    }
    fn created(&self) -> FsResult<SystemTime> {
        self.created.map(printable).ok_or(FsError::NotImplemented)
    }
}

struct DirEnt {
    name: String,
    meta: Meta,
}

impl DavDirEntry for DirEnt {
    fn name(&self) -> Vec<u8> {
        self.name.as_bytes().to_vec()
    }
    fn metadata(&self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let m: Box<dyn DavMetaData> = Box::new(self.meta.clone());
        async move { Ok(m) }.boxed()
    }
    fn is_dir(&self) -> FsFuture<'_, bool> {
        let d = self.meta.is_dir;
        async move { Ok(d) }.boxed()
    }
}

/// Child `i` of a mount folder's listing, made as dav-server walks the folder (for a
/// folder's HTML index and DELETE; PROPFIND is `propfind`'s), so a big folder is held
/// once rather than with a copy of every name and its metadata as well.
struct ListedEnt {
    list: Arc<Vec<Entry>>,
    i: usize,
}

impl DavDirEntry for ListedEnt {
    fn name(&self) -> Vec<u8> {
        self.list.get(self.i).map(|e| e.name().as_bytes().to_vec()).unwrap_or_default()
    }
    fn metadata(&self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let m = self.list.get(self.i).map(|e| Box::new(Meta::of(e)) as Box<dyn DavMetaData>);
        async move { m.ok_or(FsError::NotFound) }.boxed()
    }
    fn is_dir(&self) -> FsFuture<'_, bool> {
        let d = self.list.get(self.i).is_some_and(|e| e.is_dir);
        async move { Ok(d) }.boxed()
    }
}

/// The file system dav-server sees.
#[derive(Clone)]
pub struct DavFs {
    table: Arc<MountTable>,
    props: Arc<PropStore>,
    /// File system quota of local mounts, by mount path, and when it was read.
    fs_quota: Arc<dashmap::DashMap<String, (std::time::Instant, Option<vfs::Quota>)>>,
}

/// How long a local file system's free space is reused.
const FS_QUOTA_TTL: Duration = Duration::from_secs(30);

/// Used and total bytes of the file system holding `dir` (what `df` shows).
#[cfg(unix)]
fn fs_quota(dir: &std::path::Path) -> Option<vfs::Quota> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a NUL-terminated path and `st` a zeroed statvfs that libc fills.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let unit = if st.f_frsize > 0 { st.f_frsize as u64 } else { st.f_bsize as u64 };
    let blocks = |n: u64| n.saturating_mul(unit);
    let used = blocks(st.f_blocks as u64).saturating_sub(blocks(st.f_bfree as u64));
    Some(vfs::Quota { used, total: Some(used.saturating_add(blocks(st.f_bavail as u64))) })
}

#[cfg(not(unix))]
fn fs_quota(_dir: &std::path::Path) -> Option<vfs::Quota> {
    None
}

/// Whether a path goes through a name that is pandav's, not the client's (the swap
/// and spool names of `vfs::mount::is_reserved_name`): such paths do not exist for
/// clients.
fn reserved(path: &str) -> bool {
    path.split('/').any(vfs::mount::is_reserved_name)
}

/// Where a request path lands, for this user.
pub(crate) enum Target {
    Virtual(String),
    Mount(Arc<Mount>, String),
}

/// The request path as UTF-8 without a trailing slash (`/` stays `/`).
pub fn path_str(p: &DavPath) -> FsResult<String> {
    let s = std::str::from_utf8(p.as_bytes()).map_err(|_| FsError::NotFound)?;
    if s.contains('\0') {
        return Err(FsError::NotFound);
    }
    let t = s.trim_end_matches('/');
    Ok(if t.is_empty() { "/".into() } else { t.to_string() })
}

/// The decoded request path without the URL prefix, read the way dav-server reads it
/// (`DavPath`: percent-decoded, dot segments resolved, `..` above the root refused),
/// in `path_str` form; `None` when dav-server would refuse it too, or when it does not
/// lie inside `prefix`.
pub fn request_path(raw: &str, prefix: &str) -> Option<String> {
    let mut p = DavPath::new(raw).ok()?;
    if !prefix.is_empty() {
        p.set_prefix(prefix).ok()?;
    }
    path_str(&p).ok().filter(|s| s.starts_with('/'))
}

impl DavFs {
    pub fn new(table: Arc<MountTable>) -> DavFs {
        DavFs::with_props(table, PropStore::default())
    }

    pub fn with_props(table: Arc<MountTable>, props: PropStore) -> DavFs {
        DavFs { table, props: Arc::new(props), fs_quota: Default::default() }
    }

    /// The same dead properties over another mount table (a reload).
    pub fn with_table(&self, table: Arc<MountTable>) -> DavFs {
        DavFs { table, props: Arc::clone(&self.props), fs_quota: Default::default() }
    }

    pub fn table(&self) -> &Arc<MountTable> {
        &self.table
    }

    fn target(&self, path: &DavPath, ctx: &RequestCtx) -> FsResult<Target> {
        self.target_of(&path_str(path)?, &ctx.user).ok_or(FsError::NotFound)
    }

    /// Where decoded path `p` lands for `user`; `None` when nothing is there for them.
    pub(crate) fn target_of(&self, p: &str, user: &User) -> Option<Target> {
        if reserved(p) {
            return None;
        }
        match self.table.resolve(p, &|m| user.sees(m))? {
            Resolved::Virtual(v) => Some(Target::Virtual(v)),
            Resolved::Mount(m, rel) => Some(Target::Mount(m, rel)),
        }
    }

    pub(crate) fn props(&self) -> &PropStore {
        &self.props
    }

    /// The quota of the space `m` stores in (RFC 4331), `None` when unknown: what the
    /// drive says (`Mount::quota`, cached there), or for a drive on a local folder that
    /// does not say, the file system's own figures (statvfs), cached here as briefly.
    pub(crate) async fn quota_of(&self, m: &Mount) -> Option<vfs::Quota> {
        match m.quota().await {
            Ok(Some(q)) => return Some(q),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(mount = %m.path(), "quota unknown: {e}");
                return None;
            }
        }
        if !m.caps().local_read {
            return None;
        }
        if let Some(hit) = self.fs_quota.get(m.path()) {
            if hit.0.elapsed() < FS_QUOTA_TTL {
                return hit.1;
            }
        }
        let root = m.resolve("").await.ok()?;
        let dir = m.drive.spool_dir(&root)?;
        let q = tokio::task::spawn_blocking(move || fs_quota(&dir)).await.ok().flatten();
        self.fs_quota.insert(m.path().to_string(), (std::time::Instant::now(), q));
        q
    }

    /// The mount and mount-relative path serving `path` (decoded) for `user`.
    pub fn locate(&self, path: &str, user: &User) -> Option<(Arc<Mount>, String)> {
        if reserved(path) {
            return None;
        }
        match self.table.resolve(path, &|m| user.sees(m)) {
            Some(Resolved::Mount(m, rel)) => Some((m, rel)),
            _ => None,
        }
    }

    /// A mount target the user may write to.
    fn writable(&self, path: &DavPath, ctx: &RequestCtx) -> FsResult<(Arc<Mount>, String)> {
        match self.target(path, ctx)? {
            Target::Virtual(_) => Err(FsError::Forbidden),
            Target::Mount(m, rel) => {
                if ctx.user.read_only || m.read_only() {
                    return Err(FsError::Forbidden);
                }
                Ok((m, rel))
            }
        }
    }

    async fn entry(&self, m: &Mount, rel: &str, ctx: &RequestCtx) -> FsResult<Entry> {
        m.resolve(rel).await.map_err(|e| ctx.fs_err(e))
    }
}

impl GuardedFileSystem<RequestCtx> for DavFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
        ctx: &'a RequestCtx,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        async move {
            if options.write || options.append || options.truncate || options.create || options.create_new {
                let (m, rel) = self.writable(path, ctx)?;
                if rel.is_empty() || options.append {
                    return Err(FsError::Forbidden);
                }
                let existing = match m.resolve(&rel).await {
                    Ok(e) => Some(e),
                    Err(DriveError::NotFound) => None,
                    Err(e) => return Err(ctx.fs_err(e)),
                };
                match &existing {
                    Some(e) if e.is_dir => return Err(FsError::Forbidden),
                    Some(_) if options.create_new => return Err(FsError::Exists),
                    None if !options.create && !options.create_new => return Err(FsError::NotFound),
                    _ => {}
                }
                let f = WriteFile::create(m, rel, ctx.clone(), options.size).await.map_err(|e| ctx.fs_err(e))?;
                return Ok(Box::new(f) as Box<dyn DavFile>);
            }
            match self.target(path, ctx)? {
                Target::Virtual(_) => Err(FsError::Forbidden),
                Target::Mount(m, rel) => {
                    let e = self.entry(&m, &rel, ctx).await?;
                    if e.is_dir {
                        return Err(FsError::Forbidden);
                    }
                    Ok(Box::new(ReadFile::new(m, e, ctx.clone())) as Box<dyn DavFile>)
                }
            }
        }
        .boxed()
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
        ctx: &'a RequestCtx,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        async move {
            match self.target(path, ctx)? {
                Target::Virtual(dir) => {
                    let user = &ctx.user;
                    let mut out: Vec<Box<dyn DavDirEntry>> = vec![];
                    for name in self.table.virtual_children(&dir, &|m| user.sees(m)) {
                        let child = if dir == "/" { format!("/{name}") } else { format!("{dir}/{name}") };
                        let meta = match self.table.get(&child) {
                            Some(m) => match m.resolve("").await {
                                Ok(e) => Meta::of(&e),
                                Err(e) => {
                                    tracing::warn!(mount = %child, "mount root unavailable: {e}");
                                    Meta::virtual_dir()
                                }
                            },
                            None => Meta::virtual_dir(),
                        };
                        out.push(Box::new(DirEnt { name, meta: Meta { is_dir: true, ..meta } }));
                    }
                    let s: FsStream<Box<dyn DavDirEntry>> = Box::pin(stream::iter(out.into_iter().map(Ok)));
                    Ok(s)
                }
                Target::Mount(m, rel) => {
                    let (_, mut list) = m.list(&rel).await.map_err(|e| ctx.fs_err(e))?;
                    if list.iter().any(|e| vfs::mount::is_reserved_name(e.name())) {
                        list = Arc::new(
                            list.iter().filter(|e| !vfs::mount::is_reserved_name(e.name())).cloned().collect(),
                        );
                    }
                    let s: FsStream<Box<dyn DavDirEntry>> =
                        Box::pin(stream::iter((0..list.len()).map(move |i| {
                            Ok(Box::new(ListedEnt { list: Arc::clone(&list), i }) as Box<dyn DavDirEntry>)
                        })));
                    Ok(s)
                }
            }
        }
        .boxed()
    }

    fn metadata<'a>(&'a self, path: &'a DavPath, ctx: &'a RequestCtx) -> FsFuture<'a, Box<dyn DavMetaData>> {
        async move {
            match self.target(path, ctx)? {
                Target::Virtual(_) => Ok(Box::new(Meta::virtual_dir()) as Box<dyn DavMetaData>),
                Target::Mount(m, rel) => {
                    let e = self.entry(&m, &rel, ctx).await?;
                    Ok(Box::new(Meta::of(&e)) as Box<dyn DavMetaData>)
                }
            }
        }
        .boxed()
    }

    fn symlink_metadata<'a>(&'a self, path: &'a DavPath, ctx: &'a RequestCtx) -> FsFuture<'a, Box<dyn DavMetaData>> {
        self.metadata(path, ctx)
    }

    fn create_dir<'a>(&'a self, path: &'a DavPath, ctx: &'a RequestCtx) -> FsFuture<'a, ()> {
        async move {
            let (m, rel) = self.writable(path, ctx)?;
            if rel.is_empty() {
                return Err(FsError::Exists);
            }
            m.mkdir(&rel).await.map_err(|e| ctx.fs_err(e))?;
            Ok(())
        }
        .boxed()
    }

    fn remove_dir<'a>(&'a self, path: &'a DavPath, ctx: &'a RequestCtx) -> FsFuture<'a, ()> {
        self.remove_file(path, ctx)
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath, ctx: &'a RequestCtx) -> FsFuture<'a, ()> {
        async move {
            let (m, rel) = self.writable(path, ctx)?;
            if rel.is_empty() {
                return Err(FsError::Forbidden);
            }
            m.remove(&rel).await.map_err(|e| ctx.fs_err(e))?;
            self.props.remove_tree(&path_str(path)?).await;
            Ok(())
        }
        .boxed()
    }

    // COPY and MOVE are answered by `copymove`, never by dav-server, which deleted an
    // existing destination before knowing whether the copy or move could happen.
    fn rename<'a>(&'a self, _from: &'a DavPath, _to: &'a DavPath, _ctx: &'a RequestCtx) -> FsFuture<'a, ()> {
        async move { Err(FsError::NotImplemented) }.boxed()
    }

    fn copy<'a>(&'a self, _from: &'a DavPath, _to: &'a DavPath, _ctx: &'a RequestCtx) -> FsFuture<'a, ()> {
        async move { Err(FsError::NotImplemented) }.boxed()
    }

    fn have_props<'a>(
        &'a self,
        path: &'a DavPath,
        ctx: &'a RequestCtx,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        let ok = matches!(self.target(path, ctx), Ok(Target::Mount(..)));
        async move { ok }.boxed()
    }

    fn patch_props<'a>(
        &'a self,
        path: &'a DavPath,
        patch: Vec<(bool, DavProp)>,
        ctx: &'a RequestCtx,
    ) -> FsFuture<'a, Vec<(http::StatusCode, DavProp)>> {
        async move {
            let (m, rel) = self.writable(path, ctx)?;
            self.entry(&m, &rel, ctx).await?;
            Ok(self.props.patch(&path_str(path)?, patch).await)
        }
        .boxed()
    }

    // PROPFIND is answered by `propfind`, never by dav-server; these serve nothing else.
    fn get_props<'a>(
        &'a self,
        path: &'a DavPath,
        do_content: bool,
        _ctx: &'a RequestCtx,
    ) -> FsFuture<'a, Vec<DavProp>> {
        async move { Ok(self.props.all(&path_str(path)?, do_content).await) }.boxed()
    }

    fn get_prop<'a>(&'a self, path: &'a DavPath, prop: DavProp, _ctx: &'a RequestCtx) -> FsFuture<'a, Vec<u8>> {
        async move { self.props.get(&path_str(path)?, &prop).await.ok_or(FsError::NotFound) }.boxed()
    }

    fn get_quota<'a>(&'a self, _ctx: &'a RequestCtx) -> FsFuture<'a, (u64, Option<u64>)> {
        async move { Err(FsError::NotImplemented) }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// dav-server's words mean these statuses (its documented mapping, restated here as
    /// the oracle): an error never means one thing on a dav-server route and another on
    /// pandav's own routes.
    fn documented(fe: &FsError) -> http::StatusCode {
        use http::StatusCode as S;
        match fe {
            FsError::NotImplemented => S::NOT_IMPLEMENTED,
            FsError::GeneralFailure => S::INTERNAL_SERVER_ERROR,
            FsError::Exists => S::METHOD_NOT_ALLOWED,
            FsError::NotFound => S::NOT_FOUND,
            FsError::Forbidden => S::FORBIDDEN,
            FsError::InsufficientStorage => S::INSUFFICIENT_STORAGE,
            FsError::LoopDetected => S::LOOP_DETECTED,
            FsError::PathTooLong => S::URI_TOO_LONG,
            FsError::TooLarge => S::PAYLOAD_TOO_LARGE,
            FsError::IsRemote => S::BAD_GATEWAY,
        }
    }

    #[test]
    fn dav_words_agree_with_the_one_status_mapping() {
        let io = |n: i32| DriveError::Io(std::io::Error::from_raw_os_error(n));
        let errors = vec![
            DriveError::NotFound,
            DriveError::NotADirectory,
            DriveError::IsADirectory,
            DriveError::NotEmpty,
            DriveError::Exists,
            DriveError::ReadOnly,
            DriveError::Forbidden("x".into()),
            DriveError::InvalidInput("x".into()),
            DriveError::Unsupported("x"),
            DriveError::NoSpace,
            DriveError::RateLimited { retry_after: None },
            DriveError::upstream("x"),
            DriveError::AuthLost("x".into()),
            io(2),
            io(13),
            io(17),
            io(20),
            io(21),
            io(28),
            io(36),
            io(39),
            io(40),
            io(5),
        ];
        for e in errors {
            let fe = to_fs_error(&e);
            if fe == FsError::GeneralFailure {
                // Kept by RequestCtx::fs_err; App::finish answers e.status().
                continue;
            }
            assert_eq!(documented(&fe), e.status(), "{e:?} → {fe:?}");
        }
        assert_eq!(io(28).status(), http::StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(io(36).status(), http::StatusCode::URI_TOO_LONG);
        assert_eq!(io(5).status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    }
}
