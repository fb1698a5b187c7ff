//! Request and reply types handed to and returned by an emulator's handler.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method};
use serde_json::Value;

use crate::util;

/// A fully read request, as the emulated host saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    /// The real host name this port stands for (e.g. `api.alipan.com`).
    pub host: String,
    /// Percent-decoded path (`/adrive/v3/file/list`).
    pub path: String,
    /// The path exactly as sent (still percent-encoded).
    pub raw_path: String,
    /// Raw query string without `?` (`""` when absent).
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub peer: SocketAddr,
    /// Sequence number of this request in the server's log.
    pub seq: u64,
}

impl Request {
    /// A header as text (lossy for non-UTF-8 bytes); `None` when absent.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// Every value of a repeated header.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect()
    }

    /// Query parameters in order, decoded.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        util::parse_urlencoded(self.query.as_bytes())
    }

    /// First value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs().into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The body as `application/x-www-form-urlencoded` pairs.
    pub fn form(&self) -> Vec<(String, String)> {
        util::parse_urlencoded(&self.body)
    }

    /// The body as JSON. An empty body is `Ok(Value::Null)`.
    pub fn json(&self) -> Result<Value, serde_json::Error> {
        if self.body.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body)
    }

    /// `host/path`, the key of the request log and of fault patterns.
    pub fn key(&self) -> String {
        format!("{}{}", self.host, self.path)
    }
}

/// Random-access bytes that are produced on demand (e.g. a 1 GiB generated file that is never
/// held in memory).
pub trait ByteSource: Send + Sync {
    /// Fill `buf` with the bytes starting at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]);
}

/// A response body.
#[derive(Clone, Default)]
pub enum Body {
    #[default]
    Empty,
    Full(Bytes),
    /// `len` bytes of `src` starting at `start`, streamed in chunks.
    Source {
        src: Arc<dyn ByteSource>,
        start: u64,
        len: u64,
    },
}

impl Body {
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Full(b) => b.len() as u64,
            Body::Source { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first `n` bytes as one buffer (for small bodies and tests).
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Body::Empty => Bytes::new(),
            Body::Full(b) => b.clone(),
            Body::Source { src, start, len } => {
                let mut v = vec![0u8; *len as usize];
                src.read_at(*start, &mut v);
                Bytes::from(v)
            }
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Empty => f.write_str("Body::Empty"),
            Body::Full(b) => write!(f, "Body::Full({} bytes)", b.len()),
            Body::Source { start, len, .. } => write!(f, "Body::Source({start}+{len})"),
        }
    }
}

/// A response before it is written to the socket.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// For HEAD (or a body that is deliberately not sent): the `content-length` to announce.
    pub head_len: Option<u64>,
}

impl Reply {
    pub fn new(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: Body::Full(body.into()),
            head_len: None,
        }
    }

    /// JSON body with status 200.
    pub fn json(v: &Value) -> Reply {
        Reply::json_status(200, v)
    }

    pub fn json_status(status: u16, v: &Value) -> Reply {
        Reply::new(status, "application/json;charset=UTF-8", serde_json::to_vec(v).expect("json"))
    }

    pub fn text(status: u16, s: &str) -> Reply {
        Reply::new(status, "text/plain; charset=utf-8", s.to_string())
    }

    pub fn xml(status: u16, s: &str) -> Reply {
        Reply::new(status, "application/xml", s.to_string())
    }

    pub fn html(status: u16, s: &str) -> Reply {
        Reply::new(status, "text/html; charset=utf-8", s.to_string())
    }

    /// No body and no content type (204, 202 without body, 302, …).
    pub fn empty(status: u16) -> Reply {
        Reply { status, headers: vec![], body: Body::Empty, head_len: None }
    }

    /// A streamed body.
    pub fn source(status: u16, content_type: &str, src: Arc<dyn ByteSource>, start: u64, len: u64) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: Body::Source { src, start, len },
            head_len: None,
        }
    }

    /// Add a header.
    pub fn header(mut self, k: &str, v: impl Into<String>) -> Reply {
        self.headers.push((k.to_string(), v.into()));
        self
    }

    /// Replace (or add) a header.
    pub fn set_header(mut self, k: &str, v: impl Into<String>) -> Reply {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
        self.headers.push((k.to_string(), v.into()));
        self
    }

    pub fn get_header(&self, k: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str())
    }

    /// Announce `len` bytes as content-length (HEAD answers).
    pub fn with_head_len(mut self, len: u64) -> Reply {
        self.head_len = Some(len);
        self
    }
}
