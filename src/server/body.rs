//! Response bodies: one boxed type for everything we send, and a wrapper that writes
//! the request log line when the body is finished (so bytes and duration are real).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

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
        let ms = self.started.elapsed().as_secs_f64() * 1000.0;
        // hyper stops polling once a body says it is at its end (empty bodies, or a
        // Content-Length reached), so either signal means everything was sent.
        let complete = !self.failed
            && (self.ended || self.inner.is_end_stream() || self.expected.is_some_and(|n| n == self.bytes));
        tracing::info!(
            target: "pandav::access",
            method = %self.method,
            path = %self.path,
            status = self.status,
            bytes = self.bytes,
            ms = format_args!("{ms:.1}"),
            user = %self.user,
            complete,
            "request"
        );
    }
}
