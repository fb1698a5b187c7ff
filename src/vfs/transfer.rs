//! Moving bytes for the mount: opening a read stream for any drive, and copies or moves
//! between two mounts.
//!
//! A file copied to a drive with rapid upload (`Drive::rapid()`) goes by hash first:
//! the source's SHA-1 (from its listing, or computed once and cached for a local file)
//! and the byte ranges the target asks for as proof, read from the source by range
//! ([`MountFile`]). When the target does not know the content, the same call streams
//! the body from the source in bounded memory. Targets without rapid upload get the
//! bytes through a spool on disk (`Drive::put`). Every copy is built aside
//! (`Mount::build_aside`) and takes its name only when complete and verified (size,
//! and SHA-1 where both sides know it); a move removes its source only after that.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;

use super::drive::ByteSource;
use super::error::{DriveError, DriveResult};
use super::mount::{join_rel, split_parent, LinkSource, Mount};
use super::spool::Spool;
use super::tasks::{Leftovers, Progress};
use super::types::*;

/// The bytes of `entry` from `range.start`, read on pandav's own behalf.
pub async fn open(m: &Mount, entry: &Entry, range: ReadRange) -> DriveResult<ByteStream> {
    open_as(m, entry, range, &own_request()).await
}

fn own_request() -> LinkRequest {
    LinkRequest { user_agent: DEFAULT_UA.into(), ip: None }
}

/// The bytes of `entry` in `range`: read locally, or fetched from its link as the client
/// in `req`. A fetched stream survives upstream trouble: when the connection breaks or
/// the link expires mid-body it asks again from the byte it reached, so the caller gets
/// the exact bytes or an error — never a silently short body.
pub async fn open_as(m: &Mount, entry: &Entry, range: ReadRange, req: &LinkRequest) -> DriveResult<ByteStream> {
    if m.caps().local_read {
        return m.read(entry, range).await;
    }
    Reader::of(m).open(entry, range, req).await
}

/// What reading a mount's files needs, owned (for sources that outlive a borrow).
#[derive(Clone)]
pub struct Reader {
    src: LinkSource,
    local: bool,
}

impl Reader {
    pub fn of(m: &Mount) -> Reader {
        Reader { src: m.link_source(), local: m.caps().local_read }
    }

    /// As [`open_as`].
    pub async fn open(&self, entry: &Entry, range: ReadRange, req: &LinkRequest) -> DriveResult<ByteStream> {
        if self.local {
            return self.src.drive.read(entry, range).await;
        }
        let end = range.end.unwrap_or(entry.size).min(entry.size);
        let mut st = Resume {
            src: self.src.clone(),
            entry: entry.clone(),
            req: req.clone(),
            pos: range.start,
            end,
            inner: None,
            retries: RESUME_RETRIES,
            done: false,
        };
        if st.pos < st.end {
            st.inner = Some(st.connect().await?);
        }
        Ok(Box::pin(futures_util::stream::unfold(st, Resume::next)))
    }
}

/// The User-Agent pandav uses when it fetches on its own behalf.
pub const DEFAULT_UA: &str = concat!("pandav/", env!("CARGO_PKG_VERSION"));

/// How often one stream reconnects without making progress before it gives up.
const RESUME_RETRIES: u32 = 3;

/// One shared HTTP client for upstream fetches (connection pooling across requests).
pub fn http_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(15))
            .read_timeout(std::time::Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .expect("http client")
    })
}

/// Why an upstream fetch failed: an expired or refused link is worth asking again for.
enum FetchError {
    LinkRefused(u16),
    Other(DriveError),
}

/// GET a link (with its required headers, and the client's User-Agent unless the link
/// names one) for bytes `start..end`.
async fn fetch(link: &Link, ua: &str, start: u64, end: u64, size: u64) -> Result<ByteStream, FetchError> {
    let mut req = http_client().get(&link.url);
    let mut has_ua = false;
    for (k, v) in &link.headers {
        has_ua |= k.eq_ignore_ascii_case("user-agent");
        req = req.header(k.as_str(), v.as_str());
    }
    if !has_ua && !ua.is_empty() {
        req = req.header("User-Agent", ua);
    }
    let whole = start == 0 && end >= size;
    if !whole {
        req = req.header("Range", format!("bytes={start}-{}", end - 1));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| FetchError::Other(DriveError::upstream(format!("fetch failed: {}", e.without_url()))))?;
    let status = resp.status().as_u16();
    match status {
        200 if whole => {}
        206 => {
            let cr = resp.headers().get("content-range").and_then(|v| v.to_str().ok()).unwrap_or("");
            let got = cr.strip_prefix("bytes ").and_then(|r| r.split('-').next()).and_then(|s| s.parse::<u64>().ok());
            if got != Some(start) {
                return Err(FetchError::Other(DriveError::upstream(format!(
                    "upstream sent range {cr:?}, wanted from {start}"
                ))));
            }
        }
        200 => return Err(FetchError::Other(DriveError::upstream("upstream ignored the Range header"))),
        401 | 403 | 404 | 410 => return Err(FetchError::LinkRefused(status)),
        429 | 503 => return Err(FetchError::Other(DriveError::RateLimited { retry_after: None })),
        _ => return Err(FetchError::Other(DriveError::upstream(format!("upstream answered {status}")))),
    }
    Ok(Box::pin(resp.bytes_stream().map(|r| r.map_err(|e| std::io::Error::other(e.without_url())))))
}

struct Resume {
    src: LinkSource,
    entry: Entry,
    req: LinkRequest,
    pos: u64,
    end: u64,
    inner: Option<ByteStream>,
    retries: u32,
    done: bool,
}

impl Resume {
    /// Open the upstream from `pos`, asking for a fresh link once if the cached one is
    /// refused (expired).
    async fn connect(&mut self) -> DriveResult<ByteStream> {
        let size = self.entry.size;
        for attempt in 0..2 {
            let link = self.src.link(&self.entry, &self.req).await?;
            match fetch(&link, &self.req.user_agent, self.pos, self.end, size).await {
                Ok(s) => return Ok(s),
                Err(FetchError::LinkRefused(code)) if attempt == 0 => {
                    tracing::info!(mount = %self.src.path, file = %self.entry.name(), "link refused ({code}), asking for a new one");
                    self.src.cache.forget_shared(&self.entry, &self.req).await;
                }
                Err(FetchError::LinkRefused(code)) => {
                    return Err(DriveError::upstream(format!("provider refused a fresh link ({code})")))
                }
                Err(FetchError::Other(e)) => return Err(e),
            }
        }
        unreachable!("loop returns")
    }

    async fn next(mut self) -> Option<(std::io::Result<bytes::Bytes>, Resume)> {
        loop {
            if self.done || self.pos >= self.end {
                return None;
            }
            if self.inner.is_none() {
                match self.connect().await {
                    Ok(s) => self.inner = Some(s),
                    Err(e) => {
                        self.done = true;
                        return Some((Err(std::io::Error::other(e.to_string())), self));
                    }
                }
            }
            let item = self.inner.as_mut().expect("connected").next().await;
            match item {
                Some(Ok(mut b)) => {
                    if b.is_empty() {
                        continue;
                    }
                    let left = self.end - self.pos;
                    if b.len() as u64 > left {
                        b.truncate(left as usize);
                    }
                    self.pos += b.len() as u64;
                    self.retries = RESUME_RETRIES;
                    return Some((Ok(b), self));
                }
                other => {
                    self.inner = None;
                    let why = match other {
                        Some(Err(e)) => e.to_string(),
                        _ => "upstream closed early".into(),
                    };
                    if self.retries == 0 {
                        self.done = true;
                        let msg = format!("upstream broke at byte {} of {}: {why}", self.pos, self.end);
                        tracing::warn!(mount = %self.src.path, file = %self.entry.name(), "{msg}");
                        return Some((Err(std::io::Error::other(msg)), self));
                    }
                    self.retries -= 1;
                    tracing::info!(mount = %self.src.path, file = %self.entry.name(), pos = self.pos, "upstream broke ({why}), resuming");
                    tokio::time::sleep(std::time::Duration::from_millis(100 * (RESUME_RETRIES - self.retries) as u64))
                        .await;
                }
            }
        }
    }
}

/// Exactly `len` bytes of `s`: more are cut off, fewer end the stream with an error.
fn exact(s: ByteStream, len: u64, count: Option<Arc<AtomicU64>>, progress: Option<Arc<Progress>>) -> ByteStream {
    struct St {
        s: ByteStream,
        left: u64,
        count: Option<Arc<AtomicU64>>,
        progress: Option<Arc<Progress>>,
        done: bool,
    }
    let st = St { s, left: len, count, progress, done: false };
    Box::pin(futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if st.done || st.left == 0 {
                return None;
            }
            match st.s.next().await {
                Some(Ok(mut b)) => {
                    if b.is_empty() {
                        continue;
                    }
                    if b.len() as u64 > st.left {
                        b.truncate(st.left as usize);
                    }
                    st.left -= b.len() as u64;
                    if let Some(c) = &st.count {
                        c.fetch_add(b.len() as u64, Ordering::Relaxed);
                    }
                    if let Some(p) = &st.progress {
                        p.moved(b.len() as u64);
                    }
                    return Some((Ok(b), st));
                }
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
                None => {
                    st.done = true;
                    let e = std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("the source ended {} bytes early", st.left),
                    );
                    return Some((Err(e), st));
                }
            }
        }
    }))
}

fn check_range(start: u64, end: u64, size: u64) -> DriveResult<()> {
    if start > end || end > size {
        return Err(DriveError::InvalidInput(format!("range {start}..{end} of a {size}-byte file")));
    }
    Ok(())
}

/// A file of a mount as a [`ByteSource`]: local reads, or Range requests on its link
/// (with the link cache and resume of [`open`]). Bytes read through `stream` count as
/// body bytes (and as the task's progress); `range` reads (proofs) do not.
pub struct MountFile {
    reader: Reader,
    entry: Entry,
    streamed: Arc<AtomicU64>,
    progress: Option<Arc<Progress>>,
}

impl MountFile {
    pub fn new(m: &Mount, entry: &Entry, progress: Option<Arc<Progress>>) -> MountFile {
        MountFile { reader: Reader::of(m), entry: entry.clone(), streamed: Arc::default(), progress }
    }

    /// Bytes read so far through `stream` (the body, as opposed to proofs).
    pub fn streamed(&self) -> u64 {
        self.streamed.load(Ordering::Relaxed)
    }

    async fn open(&self, start: u64, end: u64) -> DriveResult<ByteStream> {
        check_range(start, end, self.entry.size)?;
        self.reader.open(&self.entry, ReadRange { start, end: Some(end) }, &own_request()).await
    }
}

#[async_trait]
impl ByteSource for MountFile {
    fn size(&self) -> u64 {
        self.entry.size
    }

    async fn stream(&self, start: u64, end: u64) -> DriveResult<ByteStream> {
        let s = self.open(start, end).await?;
        Ok(exact(s, end - start, Some(Arc::clone(&self.streamed)), self.progress.clone()))
    }

    async fn range(&self, start: u64, end: u64) -> DriveResult<Bytes> {
        if end.saturating_sub(start) > super::drive::RANGE_MAX {
            return Err(DriveError::InvalidInput(format!("range {start}..{end} is too large to hold")));
        }
        let mut s = exact(self.open(start, end).await?, end - start, None, None);
        let mut buf = bytes::BytesMut::with_capacity((end - start) as usize);
        while let Some(c) = s.next().await {
            buf.extend_from_slice(&c?);
        }
        Ok(buf.freeze())
    }
}

/// A file on disk as a [`ByteSource`] (a spooled upload).
pub struct FileSource {
    path: PathBuf,
    size: u64,
}

impl FileSource {
    pub fn new(path: impl Into<PathBuf>, size: u64) -> FileSource {
        FileSource { path: path.into(), size }
    }
}

/// Bytes per read of a file source.
const FILE_CHUNK: usize = 256 * 1024;

#[async_trait]
impl ByteSource for FileSource {
    fn size(&self) -> u64 {
        self.size
    }

    async fn stream(&self, start: u64, end: u64) -> DriveResult<ByteStream> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        check_range(start, end, self.size)?;
        let mut f = tokio::fs::File::open(&self.path).await?;
        if start > 0 {
            f.seek(std::io::SeekFrom::Start(start)).await?;
        }
        let s = tokio_util::io::ReaderStream::with_capacity(f.take(end - start), FILE_CHUNK);
        Ok(exact(Box::pin(s), end - start, None, None))
    }
}

/// A spooled upload as a [`Hashed`] source, for drives whose `put` and rapid upload
/// share one path.
pub fn hashed_upload(up: &Upload) -> Hashed {
    Hashed {
        size: up.size,
        sha1: up.sha1.to_ascii_lowercase(),
        md5: Some(up.md5.to_ascii_lowercase()).filter(|m| !m.is_empty()),
        mtime: up.mtime,
        body: Arc::new(FileSource::new(up.path.clone(), up.size)),
    }
}

/// Members of a folder copy that could not be copied: (path below the copied folder,
/// why). The copy's own target path is `""`.
pub type Failures = Vec<(String, DriveError)>;

/// Where a copy between mounts reports to: its task's progress, and the list of
/// half-built targets (both optional: a copy run without a task reports nowhere).
#[derive(Default, Clone)]
pub struct Job {
    pub progress: Option<Arc<Progress>>,
    pub leftovers: Option<Leftovers>,
}

impl Job {
    fn progress(&self) -> Option<&Progress> {
        self.progress.as_deref()
    }
}

/// Copy a file or a folder tree from mount `a` to `to` on mount `b`.
///
/// The copy is built under a hidden name beside `to` and takes the name only when
/// complete; `to` is replaced when `replace` (the old entry stays intact until the
/// swap), and otherwise must not exist (`Exists`). With `best_effort` a folder member
/// that fails is listed in the returned failures and the rest is still copied (WebDAV
/// answers such a COPY with a 207 naming them); without it the first failure ends the
/// copy and nothing is left at the target.
pub async fn copy_across(
    a: &Mount,
    from: &str,
    b: &Mount,
    to: &str,
    replace: bool,
    best_effort: bool,
    job: &Job,
) -> DriveResult<(Entry, Failures)> {
    let src = a.resolve(from).await?;
    plan(a, from, &src, job).await?;
    let mut failures = vec![];
    let list = if best_effort && !replace { Some(&mut failures) } else { None };
    let e =
        aside(b, to, replace, job, |at| async move { copy_tree(a, from, &src, b, &at, "", list, job).await }).await?;
    Ok((e, failures))
}

/// Move across mounts: copy everything (replacing `to` when `replace`), all or nothing,
/// then remove the source — only after the copy took its name, complete and verified.
pub async fn move_across(a: &Mount, from: &str, b: &Mount, to: &str, replace: bool, job: &Job) -> DriveResult<Entry> {
    if a.read_only() {
        return Err(DriveError::ReadOnly);
    }
    let src = a.resolve(from).await?;
    plan(a, from, &src, job).await?;
    let e =
        aside(b, to, replace, job, |at| async move { copy_tree(a, from, &src, b, &at, "", None, job).await }).await?;
    if let Err(err) = a.remove(from).await {
        tracing::warn!(from = %a.path(), path = %from, "moved to {}{to}, but the source could not be removed: {err}", b.path());
        return Err(err);
    }
    Ok(e)
}

/// `Mount::build_aside`, with the hidden name listed in the job's leftovers while it is
/// being built (so a kill of the server leaves it to be cleaned at the next start).
async fn aside<F, Fut>(b: &Mount, to: &str, replace: bool, job: &Job, make: F) -> DriveResult<Entry>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = DriveResult<Entry>>,
{
    let noted = std::sync::Mutex::new(None::<String>);
    let noted_ref = &noted;
    let r = b
        .build_aside(to, replace, |at| async move {
            if let Some(l) = &job.leftovers {
                l.add(b.path(), &at).await;
                *noted_ref.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(at.clone());
            }
            make(at).await
        })
        .await;
    let at = noted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    if let (Some(l), Some(at)) = (&job.leftovers, at) {
        l.remove(b.path(), &at).await;
    }
    r
}

/// Tell the job how much there is to copy (a folder: every file below it).
async fn plan(a: &Mount, from: &str, src: &Entry, job: &Job) -> DriveResult<()> {
    let Some(p) = job.progress() else { return Ok(()) };
    if !src.is_dir {
        p.plan(src.size, 1);
        return Ok(());
    }
    let mut dirs = vec![from.to_string()];
    while let Some(d) = dirs.pop() {
        let (_, list) = a.list(&d).await?;
        for c in list.iter() {
            if c.is_dir {
                dirs.push(join_rel(&d, c.name()));
            } else {
                p.plan(c.size, 1);
            }
        }
    }
    Ok(())
}

/// Copy `src` (at `from` on `a`) to `to` on `b`; `sub` is its path below the copied
/// folder, for the failure list. With `failures`, members that fail are noted there and
/// skipped; without it the first failure ends the copy.
#[allow(clippy::too_many_arguments)]
async fn copy_tree(
    a: &Mount,
    from: &str,
    src: &Entry,
    b: &Mount,
    to: &str,
    sub: &str,
    mut failures: Option<&mut Failures>,
    job: &Job,
) -> DriveResult<Entry> {
    if !src.is_dir {
        return copy_file(a, src, b, to, job).await;
    }
    let made = b.mkdir(to).await?;
    let (_, list) = a.list(from).await?;
    for child in list.iter() {
        let (f, t, s) = (join_rel(from, child.name()), join_rel(to, child.name()), join_rel(sub, child.name()));
        match Box::pin(copy_tree(a, &f, child, b, &t, &s, failures.as_deref_mut(), job)).await {
            Ok(_) => {}
            Err(e) => match failures.as_deref_mut() {
                Some(list) => {
                    tracing::info!(from = %a.path(), path = %f, "not copied: {e}");
                    if let Some(p) = job.progress() {
                        p.file_dropped();
                    }
                    list.push((s, e))
                }
                None => return Err(e),
            },
        }
    }
    Ok(made)
}

/// Copy one file: by hash where the target has rapid upload and the source's SHA-1 is
/// known (or, for a local source, computed once), else through a spool. The new file
/// is checked against the source (size, and SHA-1 where both are known) and removed
/// if it differs.
async fn copy_file(a: &Mount, src: &Entry, b: &Mount, to: &str, job: &Job) -> DriveResult<Entry> {
    let rapid = b.caps().rapid_put && b.drive.rapid().is_some();
    let mut hashes = src.hashes().clone();
    if rapid && hashes.sha1.is_none() {
        hashes = a.hashes(src, true).await?;
    }
    let mut by_hash = false;
    let mut made = None;
    if let (true, Some(sha1)) = (rapid, hashes.sha1.clone()) {
        let body = Arc::new(MountFile::new(a, src, job.progress.clone()));
        let h = Hashed {
            size: src.size,
            sha1,
            md5: hashes.md5.clone(),
            mtime: Some(src.modified),
            body: Arc::clone(&body) as Arc<dyn ByteSource>,
        };
        match b.put_hashed(to, &h, RapidMode::OrUpload).await {
            Ok(Some(e)) => {
                by_hash = body.streamed() == 0;
                made = Some(e);
            }
            Ok(None) | Err(DriveError::Unsupported(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let made = match made {
        Some(e) => e,
        None => spool_copy(a, src, &hashes, b, to, job).await?,
    };
    if let Err(e) = verify(src, &hashes, &made) {
        tracing::warn!(to = %b.path(), path = %to, "copied file differs from its source, removing it: {e}");
        if let Err(e2) = b.remove(to).await {
            tracing::error!(to = %b.path(), path = %to, "could not remove the differing copy: {e2}");
        }
        return Err(e);
    }
    if let Some(p) = job.progress() {
        p.file_done(src.size, by_hash);
    }
    tracing::debug!(from = %a.path(), to = %b.path(), path = %to, bytes = src.size, by_hash, "copied a file");
    Ok(made)
}

/// The bytes through a spool on disk, then `Mount::put` (which tries rapid upload
/// first on drives that have it).
async fn spool_copy(a: &Mount, src: &Entry, hashes: &Hashes, b: &Mount, to: &str, job: &Job) -> DriveResult<Entry> {
    let dir = b.spool_dir_for(split_parent(to).0).await;
    let spool = Spool::create(&dir).await?;
    // Listed while it exists: a server killed mid-copy leaves it for the next start.
    let path = spool.path().to_path_buf();
    if let Some(l) = &job.leftovers {
        l.add_spool(&path).await;
    }
    let r = fill_and_put(a, src, hashes, b, to, job, spool).await;
    if let Some(l) = &job.leftovers {
        l.remove_spool(&path).await;
    }
    r
}

async fn fill_and_put(
    a: &Mount,
    src: &Entry,
    hashes: &Hashes,
    b: &Mount,
    to: &str,
    job: &Job,
    mut spool: Spool,
) -> DriveResult<Entry> {
    let mut stream =
        exact(open(a, src, ReadRange { start: 0, end: None }).await?, src.size, None, job.progress.clone());
    while let Some(chunk) = stream.next().await {
        spool.write_bytes(chunk?).await?;
    }
    let spooled = spool.finish(Some(src.modified)).await?;
    if let Some(want) = &hashes.sha1 {
        if !want.eq_ignore_ascii_case(&spooled.upload.sha1) {
            return Err(DriveError::upstream(format!(
                "the source's bytes have SHA-1 {}, its listing says {want}",
                spooled.upload.sha1
            )));
        }
    }
    let e = b.put(to, spooled.upload).await?;
    drop(spooled.guard);
    Ok(e)
}

/// The new file is the source's content: same size, same SHA-1 where both are known.
fn verify(src: &Entry, hashes: &Hashes, made: &Entry) -> DriveResult<()> {
    if made.is_dir {
        return Err(DriveError::upstream("the target made a folder instead of a file"));
    }
    if made.size != src.size {
        return Err(DriveError::upstream(format!("the copy has {} bytes, the source {}", made.size, src.size)));
    }
    let theirs = made.hashes().sha1.as_deref();
    let ours = hashes.sha1.as_deref().or(src.hashes().sha1.as_deref());
    if let (Some(x), Some(y)) = (ours, theirs) {
        if !x.eq_ignore_ascii_case(y) {
            return Err(DriveError::upstream(format!("the copy's SHA-1 is {y}, the source's {x}")));
        }
    }
    Ok(())
}
