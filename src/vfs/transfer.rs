//! Moving bytes for the mount: opening a read stream for any drive, and copies or moves
//! between two mounts (spooled, so the target drive can try upload-by-hash first).

use std::sync::Arc;

use futures_util::StreamExt;

use super::error::{DriveError, DriveResult};
use super::mount::{join_rel, Mount};
use super::spool::Spool;
use super::types::*;

/// The bytes of `entry` from `range.start`: read locally, or fetched from its link.
pub async fn open(m: &Mount, entry: &Entry, range: ReadRange) -> DriveResult<ByteStream> {
    if m.caps().local_read {
        return m.read(entry, range).await;
    }
    let link = m
        .link(
            entry,
            &LinkRequest {
                user_agent: DEFAULT_UA.into(),
                ip: None,
            },
        )
        .await?;
    fetch(&link, range).await
}

/// The User-Agent pandav uses when it fetches on its own behalf.
pub const DEFAULT_UA: &str = concat!("pandav/", env!("CARGO_PKG_VERSION"));

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

/// GET a link (with its required headers) from `range.start`.
pub async fn fetch(link: &Link, range: ReadRange) -> DriveResult<ByteStream> {
    let mut req = http_client().get(&link.url);
    for (k, v) in &link.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    if range.start > 0 || range.end.is_some() {
        let end = range.end.map(|e| (e - 1).to_string()).unwrap_or_default();
        req = req.header("Range", format!("bytes={}-{end}", range.start));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| DriveError::Upstream(format!("fetch failed: {}", e.without_url())))?;
    let status = resp.status();
    if !(status.is_success()) {
        return Err(DriveError::Upstream(format!("upstream answered {status}")));
    }
    if range.start > 0 && status != reqwest::StatusCode::PARTIAL_CONTENT {
        return Err(DriveError::Upstream(
            "upstream ignored the Range header".into(),
        ));
    }
    Ok(Box::pin(resp.bytes_stream().map(|r| {
        r.map_err(|e| std::io::Error::other(e.without_url()))
    })))
}

/// Copy one file from mount `a` to mount `b`.
pub async fn copy_across(a: &Mount, from: &str, b: &Mount, to: &str) -> DriveResult<Entry> {
    let src = a.resolve(from).await?;
    if src.is_dir {
        b.mkdir(to).await?;
        let (_, list) = a.list(from).await?;
        for child in list.iter() {
            Box::pin(copy_across(
                a,
                &join_rel(from, &child.name),
                b,
                &join_rel(to, &child.name),
            ))
            .await?;
        }
        return b.resolve(to).await;
    }
    let dir = b.spool_dir_for(super::mount::split_parent(to).0).await;
    let mut spool = Spool::create(&dir).await?;
    let mut stream = open(
        a,
        &src,
        ReadRange {
            start: 0,
            end: None,
        },
    )
    .await?;
    while let Some(chunk) = stream.next().await {
        spool.write(&chunk?).await?;
    }
    if spool.size() != src.size {
        return Err(DriveError::Upstream(format!(
            "source gave {} bytes, expected {}",
            spool.size(),
            src.size
        )));
    }
    let spooled = spool.finish(Some(src.modified)).await?;
    let e = b.put(to, spooled.upload).await?;
    drop(spooled.guard);
    Ok(e)
}

/// Move across mounts: copy everything, then remove the source.
pub async fn move_across(
    a: &Arc<Mount>,
    from: &str,
    b: &Arc<Mount>,
    to: &str,
) -> DriveResult<Entry> {
    let e = copy_across(a, from, b, to).await?;
    a.remove(from).await?;
    Ok(e)
}
