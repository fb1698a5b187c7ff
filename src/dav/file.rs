//! Open files: a reader that keeps one stream open per read sequence, and a writer that
//! spools to disk while hashing and hands the finished upload to the mount.

use std::io::SeekFrom;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use dav_server::fs::*;
use futures_util::{FutureExt, StreamExt};

use super::{Meta, RequestCtx};
use crate::vfs::spool::{Spool, Spooled};
use crate::vfs::{mount, ByteStream, DriveError, DriveResult, Entry, Mount, ReadRange};

pub struct ReadFile {
    mount: Arc<Mount>,
    entry: Entry,
    ctx: RequestCtx,
    pos: u64,
    /// dav-server wants `Sync` files; the stream is only touched through `&mut self`.
    stream: sync_wrapper::SyncWrapper<Option<ByteStream>>,
    pending: Bytes,
}

impl std::fmt::Debug for ReadFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadFile").field("entry", &self.entry.name()).field("pos", &self.pos).finish()
    }
}

impl ReadFile {
    pub fn new(mount: Arc<Mount>, entry: Entry, ctx: RequestCtx) -> ReadFile {
        ReadFile { mount, entry, ctx, pos: 0, stream: Default::default(), pending: Bytes::new() }
    }

    async fn next_bytes(&mut self, count: usize) -> DriveResult<Bytes> {
        if self.pending.is_empty() {
            if self.pos >= self.entry.size {
                return Ok(Bytes::new());
            }
            let stream = match self.stream.get_mut() {
                Some(s) => s,
                empty => {
                    let range = ReadRange { start: self.pos, end: None };
                    empty.insert(crate::vfs::transfer::open(&self.mount, &self.entry, range).await?)
                }
            };
            match stream.next().await {
                Some(Ok(b)) => self.pending = b,
                Some(Err(e)) => {
                    *self.stream.get_mut() = None;
                    return Err(DriveError::Io(e));
                }
                None => {
                    *self.stream.get_mut() = None;
                    return Ok(Bytes::new());
                }
            }
        }
        let n = count.min(self.pending.len());
        let out = self.pending.split_to(n);
        self.pos += n as u64;
        Ok(out)
    }
}

impl DavFile for ReadFile {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let m: Box<dyn DavMetaData> = Box::new(Meta::of(&self.entry));
        async move { Ok(m) }.boxed()
    }

    fn write_buf(&mut self, _buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        async move { Err(FsError::Forbidden) }.boxed()
    }

    fn write_bytes(&mut self, _buf: Bytes) -> FsFuture<'_, ()> {
        async move { Err(FsError::Forbidden) }.boxed()
    }

    fn read_bytes(&mut self, count: usize) -> FsFuture<'_, Bytes> {
        async move {
            match self.next_bytes(count).await {
                Ok(b) => Ok(b),
                Err(e) => Err(self.ctx.fs_err(e)),
            }
        }
        .boxed()
    }

    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        async move {
            let size = self.entry.size as i128;
            let target = match pos {
                SeekFrom::Start(n) => n as i128,
                SeekFrom::End(d) => size + d as i128,
                SeekFrom::Current(d) => self.pos as i128 + d as i128,
            };
            if target < 0 {
                return Err(FsError::GeneralFailure);
            }
            let target = target as u64;
            if target != self.pos {
                *self.stream.get_mut() = None;
                self.pending = Bytes::new();
                self.pos = target;
            }
            Ok(target)
        }
        .boxed()
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        async move { Ok(()) }.boxed()
    }
}

/// Spools a PUT body to a temp file (bounded memory), hashing as it goes; on `flush`
/// the mount stores it. Dropped without `flush` (client gone, error): the temp file is
/// removed and the old file is untouched.
pub struct WriteFile {
    mount: Arc<Mount>,
    rel: String,
    ctx: RequestCtx,
    spool: Option<Spool>,
    size: u64,
    expected: Option<u64>,
    stored: Option<Entry>,
}

impl std::fmt::Debug for WriteFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteFile").field("rel", &self.rel).field("size", &self.size).finish()
    }
}

impl WriteFile {
    pub async fn create(
        mount: Arc<Mount>,
        rel: String,
        ctx: RequestCtx,
        expected: Option<u64>,
    ) -> DriveResult<WriteFile> {
        let dir = mount.spool_dir_for(mount::split_parent(&rel).0).await;
        let spool = Spool::create(&dir).await?;
        Ok(WriteFile { mount, rel, ctx, spool: Some(spool), size: 0, expected, stored: None })
    }

    async fn write(&mut self, data: Bytes) -> DriveResult<()> {
        let s = self.spool.as_mut().ok_or(DriveError::InvalidInput("write after close".into()))?;
        s.write_bytes(data).await?;
        self.size = s.size();
        Ok(())
    }

    async fn finish(&mut self) -> DriveResult<()> {
        let Some(spool) = self.spool.take() else {
            return Ok(());
        };
        if let Some(exp) = self.expected {
            if exp != self.size {
                return Err(DriveError::InvalidInput(format!("body has {} bytes, expected {exp}", self.size)));
            }
        }
        let Spooled { upload, guard } = spool.finish(self.ctx.oc_mtime).await?;
        let had_mtime = upload.mtime.is_some();
        let entry = self.mount.put(&self.rel, upload).await?;
        drop(guard);
        if had_mtime && self.mount.caps().set_mtime {
            self.ctx.mtime_accepted.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.stored = Some(entry);
        Ok(())
    }
}
impl DavFile for WriteFile {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        async move {
            let m = match &self.stored {
                Some(e) => Meta::of(e),
                None => Meta {
                    len: self.size,
                    modified: std::time::SystemTime::now(),
                    created: None,
                    is_dir: false,
                    etag: format!("spool-{}", self.size),
                },
            };
            Ok(Box::new(m) as Box<dyn DavMetaData>)
        }
        .boxed()
    }

    fn write_buf(&mut self, mut buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        async move {
            while buf.has_remaining() {
                let chunk = buf.chunk().to_vec();
                buf.advance(chunk.len());
                if let Err(e) = self.write(Bytes::from(chunk)).await {
                    return Err(self.ctx.fs_err(e));
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn write_bytes(&mut self, buf: Bytes) -> FsFuture<'_, ()> {
        async move {
            match self.write(buf).await {
                Ok(()) => Ok(()),
                Err(e) => Err(self.ctx.fs_err(e)),
            }
        }
        .boxed()
    }

    fn read_bytes(&mut self, _count: usize) -> FsFuture<'_, Bytes> {
        async move { Err(FsError::Forbidden) }.boxed()
    }

    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        // Only a no-op seek is possible on a spool (partial PUT is not supported).
        let ok = matches!(pos, SeekFrom::Start(n) if n == self.size) || matches!(pos, SeekFrom::Current(0));
        let size = self.size;
        async move {
            if ok {
                Ok(size)
            } else {
                Err(FsError::NotImplemented)
            }
        }
        .boxed()
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        async move {
            match self.finish().await {
                Ok(()) => Ok(()),
                Err(e) => Err(self.ctx.fs_err(e)),
            }
        }
        .boxed()
    }
}
