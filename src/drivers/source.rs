//! Where an upload's bytes come from: a spooled file or another mount's file, both read
//! through `vfs::ByteSource`, so rapid upload, its proofs and the part bodies work the
//! same for an upload (`Drive::put`) and a copy between mounts (`RapidPut`). Used by the
//! 115 and Aliyun drivers.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use sha1::{Digest, Sha1};

use crate::vfs::{ByteSource, ByteStream, DriveError, DriveResult};

/// Uppercase SHA-1 of `len` bytes of `src` from `start` (a proof: 115's preid or its
/// second-check range, Aliyun's pre-hash), read in bounded memory.
pub async fn sha1_upper(src: &dyn ByteSource, start: u64, len: u64) -> DriveResult<String> {
    let end = start.checked_add(len).filter(|e| *e <= src.size()).ok_or_else(|| {
        DriveError::upstream(format!("the provider asked for bytes {start}+{len} of a {}-byte file", src.size()))
    })?;
    let mut h = Sha1::new();
    if len <= crate::vfs::drive::RANGE_MAX {
        h.update(src.range(start, end).await?);
    } else {
        let mut s = src.stream(start, end).await?;
        while let Some(c) = s.next().await {
            h.update(c?);
        }
    }
    Ok(hex::encode_upper(h.finalize()))
}

/// Upload bodies cut from one source in order. Each body continues the stream the one
/// before it read, so a remote source is fetched once for the whole upload (not once a
/// part); a body asked for again (a retried part) reopens the source at its start.
#[derive(Clone)]
pub struct Feed {
    src: Arc<dyn ByteSource>,
    cur: Arc<tokio::sync::Mutex<Cursor>>,
}

struct Cursor {
    /// Position of the next byte `stream` (after `carry`) yields.
    pos: u64,
    stream: Option<ByteStream>,
    /// Bytes read past the end of the last body.
    carry: Option<Bytes>,
}

impl Feed {
    pub fn new(src: Arc<dyn ByteSource>) -> Feed {
        Feed { src, cur: Arc::new(tokio::sync::Mutex::new(Cursor { pos: 0, stream: None, carry: None })) }
    }

    /// A body of the `len` bytes from `start` that finds its place in the source only
    /// when it is first read: made without waiting, so a client that builds a request
    /// per attempt (and may build one it never sends) can ask for one each time.
    pub fn lazy_body(&self, start: u64, len: u64) -> reqwest::Body {
        let feed = self.clone();
        let s = futures_util::stream::once(async move {
            match feed.stream(start, len).await {
                Ok(s) => Ok(s),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            }
        })
        .try_flatten();
        reqwest::Body::wrap_stream(s)
    }

    /// A body of the `len` bytes from `start`, read as it is sent.
    pub async fn body(&self, start: u64, len: u64) -> DriveResult<reqwest::Body> {
        Ok(reqwest::Body::wrap_stream(self.stream(start, len).await?))
    }

    /// The `len` bytes from `start`, read as they are polled.
    async fn stream(
        &self,
        start: u64,
        len: u64,
    ) -> DriveResult<impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static> {
        let size = self.src.size();
        if start.checked_add(len).is_none_or(|e| e > size) {
            return Err(DriveError::InvalidInput(format!("bytes {start}+{len} of a {size}-byte file")));
        }
        {
            let mut c = self.cur.lock().await;
            if c.stream.is_none() || c.pos != start {
                c.stream = Some(self.src.stream(start, size).await?);
                c.pos = start;
                c.carry = None;
            }
        }
        let s = futures_util::stream::unfold((Arc::clone(&self.cur), len), |(cur, left)| async move {
            if left == 0 {
                return None;
            }
            let mut c = cur.lock().await;
            let next = match c.carry.take() {
                Some(b) => Some(Ok(b)),
                None => match c.stream.as_mut() {
                    Some(s) => s.next().await,
                    None => Some(Err(std::io::Error::other("the source was reopened meanwhile"))),
                },
            };
            match next {
                Some(Ok(mut b)) => {
                    if b.len() as u64 > left {
                        c.carry = Some(b.split_off(left as usize));
                    }
                    c.pos += b.len() as u64;
                    let left = left - b.len() as u64;
                    drop(c);
                    Some((Ok(b), (cur, left)))
                }
                Some(Err(e)) => {
                    c.stream = None;
                    drop(c);
                    Some((Err(e), (cur, 0)))
                }
                None => {
                    c.stream = None;
                    drop(c);
                    Some((Err(std::io::Error::other("the source ended early")), (cur, 0)))
                }
            }
        });
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn collect(b: reqwest::Body) -> Result<Vec<u8>, String> {
        let mut out = vec![];
        let mut b = b;
        while let Some(f) = b.frame().await {
            match f {
                Ok(f) => out.extend_from_slice(f.data_ref().map(|d| &d[..]).unwrap_or(&[])),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(out)
    }

    #[tokio::test]
    async fn parts_continue_one_stream_and_a_retry_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let src: Arc<dyn ByteSource> = Arc::new(crate::vfs::transfer::FileSource::new(&p, data.len() as u64));
        let feed = Feed::new(Arc::clone(&src));
        let part = 300_000u64;
        let mut got = vec![];
        let mut start = 0u64;
        while start < data.len() as u64 {
            let len = part.min(data.len() as u64 - start);
            got.extend(collect(feed.body(start, len).await.unwrap()).await.unwrap());
            start += len;
        }
        assert_eq!(got, data);
        // A part sent again (the first try failed half way): the same bytes.
        let half = feed.body(300_000, 300_000).await.unwrap();
        drop(half);
        assert_eq!(collect(feed.body(300_000, 300_000).await.unwrap()).await.unwrap(), &data[300_000..600_000]);
        assert_eq!(collect(feed.body(600_000, 10).await.unwrap()).await.unwrap(), &data[600_000..600_010]);
        assert!(feed.body(1_000_000, 4).await.is_err(), "past the end");
        // A lazy body reads nothing until it is polled, and then the same bytes.
        let lazy = feed.lazy_body(100, 50);
        let unused = feed.lazy_body(0, 10);
        drop(unused);
        assert_eq!(collect(lazy).await.unwrap(), &data[100..150]);
        assert!(collect(feed.lazy_body(1_000_000, 4)).await.is_err(), "past the end, when read");
        assert_eq!(sha1_upper(&*src, 10, 100).await.unwrap(), hex::encode_upper(Sha1::digest(&data[10..110])));
    }
}
