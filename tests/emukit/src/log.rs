//! The request log.

use http::HeaderMap;

/// One request as served (or refused) by an emulated host.
#[derive(Clone, Debug)]
pub struct LoggedRequest {
    /// Arrival order, from 0.
    pub seq: u64,
    pub method: String,
    pub host: String,
    /// Percent-decoded path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    pub headers: HeaderMap,
    /// Request body bytes read (0 when the connection was reset before the body was read).
    pub body_len: u64,
    /// Response status; 0 while in flight or when the connection was reset.
    pub status: u16,
    /// Response body length announced.
    pub response_len: u64,
    /// Label of the injected fault that fired, if any (`reply`, `reset`, `custom`, …).
    pub fault: Option<&'static str>,
}

impl LoggedRequest {
    /// `host/path`.
    pub fn key(&self) -> String {
        format!("{}{}", self.host, self.path)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// First value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        crate::util::parse_urlencoded(self.query.as_bytes()).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}
