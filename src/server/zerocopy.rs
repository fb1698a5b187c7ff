//! Local files sent with `sendfile(2)`: the kernel moves the bytes from the page cache
//! to the socket, and pandav never copies them (issue 12, "GET of a local file").
//!
//! hyper owns the connection and writes whatever a response body yields, so the body
//! cannot hand it a file. Instead, on a plain-TCP HTTP/1 connection:
//! - the connection's IO is a [`SpliceStream`], sharing a queue of [`Region`]s (file,
//!   offset, length) with the requests served on it ([`Splice`], a request extension);
//! - the body of a local GET ([`body`]) pushes a region for each chunk and yields, in
//!   its place, a *placeholder*: a slice of [`PLACEHOLDER`], a static buffer nothing
//!   else points into;
//! - when hyper writes a slice that lies in the placeholder, the stream sends that many
//!   bytes of the queue's first region with `sendfile` instead; other slices (status
//!   line, headers, other responses) are written as they are.
//!
//! This leans on how hyper's HTTP/1 writes a body: with a vectored IO (ours says it is)
//! it queues each body chunk as given and writes it from its own memory (`writev` of
//! the chunks as they are), never copying a chunk of this size into a buffer of its own;
//! and one HTTP/1 connection writes one response body at a time, in the order the body
//! yielded its chunks. Each step is checked where it can be: a placeholder slice
//! whose length is not the first region's remainder, or with no region queued, fails
//! the connection (the client sees a broken transfer, never wrong bytes). The
//! end-to-end tests (`tests/zerocopy.rs`) compare every byte served this way.
//!
//! Not used for HTTP/2 (streams interleave their frames, so the order would not hold),
//! TLS (the bytes must pass through the cipher), or where the config says
//! `sendfile = false`. A chunk whose pages are not in the page cache is read the usual
//! way (blocking pool), so `sendfile` never waits for the disk on a runtime thread.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Bytes per region: what one `sendfile` call may send at most.
const REGION: usize = 1 << 20;

/// What a placeholder slice points into. Zeroes in `.bss`: no memory is used unless
/// something reads it, and what is sent in its place never comes from it.
static PLACEHOLDER: [u8; REGION] = [0; REGION];

fn is_placeholder(s: &[u8]) -> bool {
    let base = PLACEHOLDER.as_ptr() as usize;
    let p = s.as_ptr() as usize;
    !s.is_empty() && p >= base && p + s.len() <= base + REGION
}

/// A span of an open file to be sent in place of a placeholder of the same length.
struct Region {
    file: Arc<std::fs::File>,
    offset: u64,
    left: usize,
}

/// The regions of a connection, in the order its response bodies yielded them.
#[derive(Default)]
struct Queue(Mutex<VecDeque<Region>>);

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Region>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A request's way to its connection's [`SpliceStream`] (a request extension, present
/// only on HTTP/1 requests of plain-TCP connections).
#[derive(Clone)]
pub struct Splice(Arc<Queue>);

/// A plain TCP connection that sends placeholder slices from files.
pub struct SpliceStream {
    tcp: TcpStream,
    queue: Arc<Queue>,
}

impl SpliceStream {
    pub fn new(tcp: TcpStream) -> (SpliceStream, Splice) {
        let queue = Arc::new(Queue::default());
        (SpliceStream { tcp, queue: Arc::clone(&queue) }, Splice(queue))
    }

    /// Sends up to `want` bytes of the first region (which must have exactly `want`
    /// bytes left: the placeholder being written is its remainder).
    #[cfg(target_os = "linux")]
    fn poll_send_region(&self, cx: &mut Context<'_>, want: usize) -> Poll<std::io::Result<usize>> {
        let (file, offset) = {
            let q = self.queue.lock();
            match q.front() {
                Some(r) if r.left == want => (Arc::clone(&r.file), r.offset),
                Some(r) => return Poll::Ready(Err(out_of_step(format!("{want} bytes written, {} queued", r.left)))),
                None => return Poll::Ready(Err(out_of_step(format!("{want} bytes written, none queued")))),
            }
        };
        loop {
            std::task::ready!(self.tcp.poll_write_ready(cx))?;
            let sent = self.tcp.try_io(tokio::io::Interest::WRITABLE, || {
                let mut off = offset;
                rustix::fs::sendfile(&self.tcp, &*file, Some(&mut off), want).map_err(std::io::Error::from)
            });
            match sent {
                Ok(0) => {
                    // The file ended before the region did: it shrank while being sent.
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file got shorter while it was being sent",
                    )));
                }
                Ok(n) => {
                    let mut q = self.queue.lock();
                    if let Some(r) = q.front_mut() {
                        r.offset += n as u64;
                        r.left -= n;
                        if r.left == 0 {
                            q.pop_front();
                        }
                    }
                    crate::metrics::zero_copy(n);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn poll_send_region(&self, _: &mut Context<'_>, _: usize) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Err(out_of_step("no sendfile on this system".into())))
    }
}

fn out_of_step(what: String) -> std::io::Error {
    tracing::error!(
        "zero-copy send out of step ({what}): connection closed; set server.sendfile = false and report it"
    );
    std::io::Error::other("zero-copy send out of step")
}

impl AsyncRead for SpliceStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for SpliceStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if is_placeholder(buf) {
            return self.poll_send_region(cx, buf.len());
        }
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let bufs = match bufs.iter().position(|b| !b.is_empty()) {
            Some(i) => &bufs[i..],
            None => return Poll::Ready(Ok(0)),
        };
        if is_placeholder(&bufs[0]) {
            return self.poll_send_region(cx, bufs[0].len());
        }
        // Plain bytes up to the first placeholder, written as they are.
        let plain = bufs.iter().position(|b| is_placeholder(b)).unwrap_or(bufs.len());
        Pin::new(&mut self.tcp).poll_write_vectored(cx, &bufs[..plain])
    }

    fn is_write_vectored(&self) -> bool {
        // hyper queues body chunks (rather than copying them into its buffer) only
        // for a vectored IO: the placeholders depend on it.
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// `start..end` of `file` as placeholders sent by `splice`'s connection, chunk by chunk;
/// a chunk not in the page cache is read into memory (off the runtime) and yielded as
/// bytes instead.
pub fn body(
    splice: Splice,
    file: Arc<std::fs::File>,
    start: u64,
    end: u64,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
    crate::drivers::local::advise_sequential(&file, start, end);
    futures_util::stream::try_unfold(start, move |pos| {
        let (splice, file) = (splice.clone(), Arc::clone(&file));
        async move {
            if pos >= end {
                return Ok(None);
            }
            let len = (end - pos).min(REGION as u64) as usize;
            if cached(&file, pos, len) {
                splice.0.lock().push_back(Region { file, offset: pos, left: len });
                return Ok(Some((Bytes::from_static(&PLACEHOLDER[..len]), pos + len as u64)));
            }
            let chunk = crate::drivers::local::read_chunk(file, pos, end).await?;
            let next = pos + chunk.len() as u64;
            Ok(Some((chunk, next)))
        }
    })
}

/// Whether the first and last byte of `pos..pos+len` are in the page cache (read-ahead
/// fills it in order, so the pages between are too, but for a rare eviction that makes
/// one `sendfile` wait for the disk).
#[cfg(target_os = "linux")]
fn cached(f: &std::fs::File, pos: u64, len: usize) -> bool {
    use std::os::fd::AsRawFd;
    let probe = |at: u64| {
        let Ok(off) = libc::off_t::try_from(at) else { return false };
        let mut b = [0u8; 1];
        let iov = libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: 1 };
        // SAFETY: one iovec over a live 1-byte buffer; the kernel writes at most 1 byte.
        unsafe { libc::preadv2(f.as_raw_fd(), &iov, 1, off, libc::RWF_NOWAIT) == 1 }
    };
    probe(pos) && probe(pos + len as u64 - 1)
}

#[cfg(not(target_os = "linux"))]
fn cached(_: &std::fs::File, _: u64, _: usize) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_slices_of_the_placeholder_count_as_placeholders() {
        assert!(is_placeholder(&PLACEHOLDER[..]));
        assert!(is_placeholder(&PLACEHOLDER[10..20]));
        assert!(!is_placeholder(&PLACEHOLDER[5..5]), "an empty slice sends nothing");
        let copy = PLACEHOLDER[..64].to_vec();
        assert!(!is_placeholder(&copy), "a copy of the zeroes is plain bytes");
        assert!(!is_placeholder(b"HTTP/1.1 200 OK\r\n"));
    }
}
