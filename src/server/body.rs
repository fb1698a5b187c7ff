//! Bodies: one boxed type for everything we send, a wrapper that writes the request
//! log line when the response body is finished (so bytes and duration are real), and
//! the request body as handlers see it, which ends with an error when the client stops
//! sending.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::dav::Esc;

pub type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

pub fn boxed<B>(b: B) -> BoxBody
where
    B: Body<Data = Bytes, Error = std::io::Error> + Send + 'static,
{
    b.boxed_unsync()
}

pub fn full(b: Bytes) -> BoxBody {
    http_body_util::Full::new(b).map_err(|never| match never {}).boxed_unsync()
}

pub struct LoggedBody {
    inner: BoxBody,
    method: Method,
    path: String,
    user: String,
    status: u16,
    bytes: u64,
    started: Instant,
    failed: bool,
    ended: bool,
    /// Content-Length of a body that has one: reaching it means done, since hyper
    /// stops polling there.
    expected: Option<u64>,
}

impl LoggedBody {
    pub fn wrap(
        resp: Response<BoxBody>,
        method: Method,
        path: String,
        user: String,
        started: Instant,
    ) -> Response<LoggedBody> {
        let status = resp.status().as_u16();
        let expected = if method == Method::HEAD {
            None
        } else {
            resp.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok())
        };
        resp.map(|inner| LoggedBody {
            inner,
            method,
            path,
            user,
            status,
            bytes: 0,
            started,
            failed: false,
            ended: false,
            expected,
        })
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    self.bytes += d.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_))) => self.failed = true,
            Poll::Ready(None) => self.ended = true,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        let took = self.started.elapsed();
        crate::metrics::request_done(&self.method, self.status, took);
        let ms = took.as_secs_f64() * 1000.0;
        // hyper stops polling once a body says it is at its end (empty bodies, or a
        // Content-Length reached), so either signal means everything was sent.
        let complete = !self.failed
            && (self.ended || self.inner.is_end_stream() || self.expected.is_some_and(|n| n == self.bytes));
        tracing::info!(
            target: "pandav::access",
            method = %self.method,
            path = %Esc(&self.path),
            status = self.status,
            bytes = self.bytes,
            ms = format_args!("{ms:.1}"),
            user = %Esc(&self.user),
            complete,
            "request"
        );
    }
}

/// A request body that fails once the client has sent nothing for `timeout` while a
/// handler waits for it: a PUT or PROPFIND whose body stops coming would otherwise hold
/// its connection, task and upload spool for ever. Only time spent waiting on the
/// client counts (not time the handler spends writing what it got).
pub struct IdleBody {
    inner: Incoming,
    timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    waiting: bool,
    timed_out: Arc<AtomicBool>,
}

impl IdleBody {
    /// `timed_out` is set when the timeout struck, so the server can answer 408.
    pub fn new(inner: Incoming, timeout: Duration, timed_out: Arc<AtomicBool>) -> IdleBody {
        IdleBody { inner, timeout, sleep: Box::pin(tokio::time::sleep(timeout)), waiting: false, timed_out }
    }
}

impl Body for IdleBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if !this.waiting {
            this.waiting = true;
            let deadline = tokio::time::Instant::now() + this.timeout;
            this.sleep.as_mut().reset(deadline);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.waiting = false;
            return Poll::Ready(frame.map(|r| r.map_err(std::io::Error::other)));
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            this.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the request body stalled for {:?}", this.timeout),
            ))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request body handed to dav-server: still streaming (PUT), or read already
/// (XML bodies, which are checked before any parser sees them).
pub enum ReqBody {
    Stream(IdleBody),
    Read(Option<Bytes>),
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            ReqBody::Stream(b) => Pin::new(b).poll_frame(cx),
            ReqBody::Read(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Stream(b) => b.is_end_stream(),
            ReqBody::Read(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Stream(b) => b.size_hint(),
            ReqBody::Read(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

/// Why a request body could not be read whole.
pub enum ReadError {
    TooLarge,
    /// The client stopped sending, or went away.
    Broken(std::io::Error),
}

/// Read a whole request body of at most `max` bytes.
pub async fn read_limited(body: &mut IdleBody, max: usize) -> Result<Bytes, ReadError> {
    if body.size_hint().lower() > max as u64 {
        return Err(ReadError::TooLarge);
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ReadError::Broken)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > max {
                return Err(ReadError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}
