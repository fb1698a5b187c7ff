//! Moving bytes for the mount: opening a read stream for any drive, and copies or moves
//! between two mounts (spooled, so the target drive can try upload-by-hash first).

use futures_util::StreamExt;

use super::error::{DriveError, DriveResult};
use super::mount::{join_rel, LinkSource, Mount};
use super::spool::Spool;
use super::types::*;

/// The bytes of `entry` from `range.start`, read on pandav's own behalf.
pub async fn open(m: &Mount, entry: &Entry, range: ReadRange) -> DriveResult<ByteStream> {
    open_as(m, entry, range, &LinkRequest { user_agent: DEFAULT_UA.into(), ip: None }).await
}

/// The bytes of `entry` in `range`: read locally, or fetched from its link as the client
/// in `req`. A fetched stream survives upstream trouble: when the connection breaks or
/// the link expires mid-body it asks again from the byte it reached, so the caller gets
/// the exact bytes or an error — never a silently short body.
pub async fn open_as(m: &Mount, entry: &Entry, range: ReadRange, req: &LinkRequest) -> DriveResult<ByteStream> {
    if m.caps().local_read {
        return m.read(entry, range).await;
    }
    let end = range.end.unwrap_or(entry.size).min(entry.size);
    let mut st = Resume {
        src: m.link_source(),
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
                    tracing::info!(mount = %self.src.path, file = %self.entry.name, "link refused ({code}), asking for a new one");
                    self.src.cache.forget(&self.entry, &self.req);
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
                        tracing::warn!(mount = %self.src.path, file = %self.entry.name, "{msg}");
                        return Some((Err(std::io::Error::other(msg)), self));
                    }
                    self.retries -= 1;
                    tracing::info!(mount = %self.src.path, file = %self.entry.name, pos = self.pos, "upstream broke ({why}), resuming");
                    tokio::time::sleep(std::time::Duration::from_millis(100 * (RESUME_RETRIES - self.retries) as u64))
                        .await;
                }
            }
        }
    }
}

/// Members of a folder copy that could not be copied, by target path (mount-relative
/// on the target mount), with why.
pub type Failures = Vec<(String, DriveError)>;

/// Copy a file or a folder tree from mount `a` to a new `to` on mount `b`. Folders are
/// copied best effort: a member that fails is listed in the returned failures and the
/// others are still copied (WebDAV answers such a COPY with a 207 naming them).
pub async fn copy_across(a: &Mount, from: &str, b: &Mount, to: &str) -> DriveResult<(Entry, Failures)> {
    let mut failures = vec![];
    let e = copy_tree(a, from, b, to, Some(&mut failures)).await?;
    Ok((e, failures))
}

/// Copy from mount `a` to mount `b`, replacing whatever is at `to`: the copy is built
/// aside and swapped in only when every member arrived; otherwise it is removed and the
/// old target is untouched.
pub async fn copy_across_replace(a: &Mount, from: &str, b: &Mount, to: &str) -> DriveResult<Entry> {
    b.build_aside(to, true, |at| async move { copy_tree(a, from, b, &at, None).await }).await
}

/// Copy `from` to `to`; with `failures`, folder members that fail are noted there and
/// skipped, without it the first failure ends the copy.
async fn copy_tree(
    a: &Mount,
    from: &str,
    b: &Mount,
    to: &str,
    mut failures: Option<&mut Failures>,
) -> DriveResult<Entry> {
    let src = a.resolve(from).await?;
    if !src.is_dir {
        return copy_file(a, &src, b, to).await;
    }
    let made = b.mkdir(to).await?;
    let (_, list) = a.list(from).await?;
    for child in list.iter() {
        let (f, t) = (join_rel(from, &child.name), join_rel(to, &child.name));
        match Box::pin(copy_tree(a, &f, b, &t, failures.as_deref_mut())).await {
            Ok(_) => {}
            Err(e) => match failures.as_deref_mut() {
                Some(list) => list.push((t, e)),
                None => return Err(e),
            },
        }
    }
    Ok(made)
}

async fn copy_file(a: &Mount, src: &Entry, b: &Mount, to: &str) -> DriveResult<Entry> {
    let dir = b.spool_dir_for(super::mount::split_parent(to).0).await;
    let mut spool = Spool::create(&dir).await?;
    let mut stream = open(a, src, ReadRange { start: 0, end: None }).await?;
    while let Some(chunk) = stream.next().await {
        spool.write_bytes(chunk?).await?;
    }
    if spool.size() != src.size {
        return Err(DriveError::upstream(format!("source gave {} bytes, expected {}", spool.size(), src.size)));
    }
    let spooled = spool.finish(Some(src.modified)).await?;
    let e = b.put(to, spooled.upload).await?;
    drop(spooled.guard);
    Ok(e)
}

/// Move across mounts: copy everything (replacing `to` when `replace`), then remove
/// the source. All or nothing: the copy is built aside and takes its name only once
/// complete, and the source is removed only after that.
pub async fn move_across(a: &Mount, from: &str, b: &Mount, to: &str, replace: bool) -> DriveResult<Entry> {
    if a.read_only() {
        return Err(DriveError::ReadOnly);
    }
    let e = b.build_aside(to, replace, |at| async move { copy_tree(a, from, b, &at, None).await }).await?;
    a.remove(from).await?;
    Ok(e)
}
