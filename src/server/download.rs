//! GET and HEAD of files: the download policy (302 to the provider, streaming proxy, or
//! 302 to a signed relay URL) and the proxy's HTTP semantics (Range, If-Range, ETag,
//! 304/412/416), shared by every drive.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use dashmap::DashSet;
use futures_util::TryStreamExt;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use super::body::{full, BoxBody};
use super::policy::Rules;
use super::sign::Signer;
use crate::dav::RequestCtx;
use crate::vfs::{transfer, DriveError, Entry, Link, LinkRequest, Mount, Policy, ReadRange};

/// Characters escaped in one path segment of a URL we hand out.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']')
    .add(b'+')
    .add(b'&')
    .add(b'=')
    .add(b';');

pub fn encode_path(path: &str) -> String {
    path.split('/').map(|s| utf8_percent_encode(s, SEGMENT).to_string()).collect::<Vec<_>>().join("/")
}

pub struct Downloads {
    pub rules: Rules,
    pub signer: Signer,
    pub sign_ttl: Duration,
    /// URL prefix pandav serves under (kept in relay URLs).
    pub prefix: String,
    /// Mounts we already explained "not redirecting: link needs headers" for.
    warned: DashSet<String>,
}

/// What the client asked for, taken from the request head.
pub struct Ask<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    /// Decoded path, without the URL prefix.
    pub path: &'a str,
    /// Authorised by `?sign=` rather than by a user: always proxied.
    pub signed: bool,
    /// The connection can send local files by `sendfile`.
    pub splice: Option<&'a super::zerocopy::Splice>,
}

impl Downloads {
    pub fn new(rules: Rules, signer: Signer, sign_ttl: Duration, prefix: String) -> Downloads {
        Downloads { rules, signer, sign_ttl, prefix, warned: DashSet::new() }
    }

    pub async fn serve(&self, ask: &Ask<'_>, m: &Arc<Mount>, entry: &Entry, ctx: &RequestCtx) -> Response<BoxBody> {
        let ua = if ctx.user_agent.is_empty() { transfer::DEFAULT_UA } else { ctx.user_agent.as_str() };
        let lr = LinkRequest { user_agent: ua.to_string(), ip: ctx.ip.map(|i| i.to_string()) };
        let policy = if ask.signed { Policy::Proxy } else { self.rules.effective(m, ua) };
        match policy {
            Policy::Redirect => match m.link(entry, &lr).await {
                Ok(link) if redirectable(&link, ua) => {
                    crate::metrics::download("redirect");
                    return redirect(&link.url);
                }
                Ok(link) => {
                    if self.warned.insert(m.path().to_string()) {
                        let names: Vec<&str> = link.headers.iter().map(|(k, _)| k.as_str()).collect();
                        tracing::info!(
                            mount = %m.path(),
                            "proxying instead of redirecting: the provider's links need headers clients do not send ({})",
                            names.join(", ")
                        );
                    }
                }
                Err(e) => return error_response(&e),
            },
            Policy::ProxyUrl(base) => {
                let sig = self.signer.sign(ask.path, self.sign_ttl.as_secs());
                let url = format!(
                    "{}{}{}?sign={}",
                    base.trim_end_matches('/'),
                    self.prefix,
                    encode_path(ask.path),
                    utf8_percent_encode(&sig, SEGMENT)
                );
                crate::metrics::download("proxy_url");
                return redirect(&url);
            }
            Policy::Proxy => {}
        }
        let label = if ask.signed { "signed" } else { "proxy" };
        crate::metrics::download(label);
        proxy(ask, m, entry, &lr, label).await
    }
}

/// A link can be handed to the client only if the client will send everything it
/// needs: no headers at all, or just the client's own User-Agent.
fn redirectable(link: &Link, ua: &str) -> bool {
    link.headers.iter().all(|(k, v)| k.eq_ignore_ascii_case("user-agent") && v == ua)
}

fn redirect(url: &str) -> Response<BoxBody> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::FOUND;
    match HeaderValue::from_str(url) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => return error_response(&DriveError::upstream("provider link is not a valid URL")),
    }
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

pub fn error_response(e: &DriveError) -> Response<BoxBody> {
    let status = e.status();
    if e.is_server_side() {
        tracing::warn!("request failed: {e}");
    }
    let mut r = super::status(status, &format!("{e}\n"));
    if let Some(ra) = e.retry_after() {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(ra.as_secs()));
    }
    r
}

/// Outcome of reading the Range header against a size.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAsk {
    Whole,
    /// `start..end`, end exclusive.
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range; several ranges or a syntax we don't know → the whole file
/// (RFC 9110 lets a server ignore Range).
pub fn parse_range(v: &str, size: u64) -> RangeAsk {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else { return RangeAsk::Whole };
        if n == 0 || size == 0 {
            return RangeAsk::Unsatisfiable;
        }
        return RangeAsk::Part(size.saturating_sub(n), size);
    }
    let Ok(start) = a.parse::<u64>() else { return RangeAsk::Whole };
    let end = if b.is_empty() {
        size
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e.saturating_add(1).min(size),
            _ => return RangeAsk::Whole,
        }
    };
    if start >= size {
        return RangeAsk::Unsatisfiable;
    }
    RangeAsk::Part(start, end)
}

fn etag_matches(list: &str, etag: &str, weak: bool) -> bool {
    list.split(',').map(str::trim).any(|t| {
        if t == "*" {
            return true;
        }
        let (t_weak, t) = match t.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        (weak || !t_weak) && t == etag
    })
}

fn header_str<'a>(h: &'a HeaderMap, name: header::HeaderName) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

async fn proxy(
    ask: &Ask<'_>,
    m: &Arc<Mount>,
    entry: &Entry,
    lr: &LinkRequest,
    label: &'static str,
) -> Response<BoxBody> {
    let h = ask.headers;
    let size = entry.size;
    let etag = entry.etag();
    // An HTTP date has four digit years (httpdate panics past 9999).
    let mtime = secs(entry.modified).min(crate::dav::quirks::MAX_TIME_SECS);
    let last_modified = httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime));

    let mut resp = Response::new(full(Bytes::new()));
    {
        let rh = resp.headers_mut();
        rh.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Ok(v) = HeaderValue::from_str(&etag) {
            rh.insert(header::ETAG, v);
        }
        if let Ok(v) = HeaderValue::from_str(&last_modified) {
            rh.insert(header::LAST_MODIFIED, v);
        }
        let mime = mime_guess::from_path(entry.name()).first_or_octet_stream();
        if let Ok(v) = HeaderValue::from_str(mime.essence_str()) {
            rh.insert(header::CONTENT_TYPE, v);
        }
    }

    // Preconditions (RFC 9110 §13.2.2 order).
    if let Some(im) = header_str(h, header::IF_MATCH) {
        if !etag_matches(im, &etag, false) {
            return status_only(resp, StatusCode::PRECONDITION_FAILED);
        }
    } else if let Some(t) = header_str(h, header::IF_UNMODIFIED_SINCE).and_then(|v| httpdate::parse_http_date(v).ok()) {
        if mtime > secs(t) {
            return status_only(resp, StatusCode::PRECONDITION_FAILED);
        }
    }
    if let Some(inm) = header_str(h, header::IF_NONE_MATCH) {
        if etag_matches(inm, &etag, true) {
            return status_only(resp, StatusCode::NOT_MODIFIED);
        }
    } else if let Some(t) = header_str(h, header::IF_MODIFIED_SINCE).and_then(|v| httpdate::parse_http_date(v).ok()) {
        if mtime <= secs(t) {
            return status_only(resp, StatusCode::NOT_MODIFIED);
        }
    }

    let mut range = match header_str(h, header::RANGE) {
        Some(r) => parse_range(r, size),
        None => RangeAsk::Whole,
    };
    if range != RangeAsk::Whole {
        if let Some(ir) = header_str(h, header::IF_RANGE) {
            let fresh = if ir.starts_with('"') || ir.starts_with("W/") {
                !ir.starts_with("W/") && ir == etag
            } else {
                httpdate::parse_http_date(ir).is_ok_and(|t| secs(t) == mtime)
            };
            if !fresh {
                range = RangeAsk::Whole;
            }
        }
    }
    let (start, end) = match range {
        RangeAsk::Whole => (0, size),
        RangeAsk::Part(s, e) => {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            let cr = format!("bytes {s}-{}/{size}", e - 1);
            resp.headers_mut().insert(header::CONTENT_RANGE, HeaderValue::from_str(&cr).expect("ascii"));
            (s, e)
        }
        RangeAsk::Unsatisfiable => {
            let mut r = status_only(resp, StatusCode::RANGE_NOT_SATISFIABLE);
            r.headers_mut()
                .insert(header::CONTENT_RANGE, HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"));
            return r;
        }
    };
    resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if ask.method == Method::HEAD || start == end {
        return resp;
    }
    let range = ReadRange { start, end: Some(end) };
    let opened =
        match ask.splice {
            Some(sp) if m.caps().local_read => match m.open_span(entry, range).await {
                Ok(Some(span)) => Ok(Box::pin(super::zerocopy::body(sp.clone(), span.file, span.start, span.end))
                    as crate::vfs::ByteStream),
                Ok(None) => transfer::open_as(m, entry, range, lr).await,
                Err(e) => Err(e),
            },
            _ => transfer::open_as(m, entry, range, lr).await,
        };
    match opened {
        Ok(stream) => {
            let counted = crate::metrics::StreamGuard::new(label);
            let stream = stream.inspect_ok(move |b| counted.sent(b.len()));
            let body = http_body_util::StreamBody::new(stream.map_ok(http_body::Frame::data));
            *resp.body_mut() = body.boxed_unsync();
            resp
        }
        Err(e) => error_response(&e),
    }
}

fn status_only(mut resp: Response<BoxBody>, status: StatusCode) -> Response<BoxBody> {
    *resp.status_mut() = status;
    if status == StatusCode::NOT_MODIFIED
        || status == StatusCode::PRECONDITION_FAILED
        || status == StatusCode::RANGE_NOT_SATISFIABLE
    {
        resp.headers_mut().remove(header::CONTENT_TYPE);
    }
    resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeAsk::Part(0, 10));
        assert_eq!(parse_range("bytes=90-", 100), RangeAsk::Part(90, 100));
        assert_eq!(parse_range("bytes=-5", 100), RangeAsk::Part(95, 100));
        assert_eq!(parse_range("bytes=-500", 100), RangeAsk::Part(0, 100));
        assert_eq!(parse_range("bytes=50-1000", 100), RangeAsk::Part(50, 100));
        assert_eq!(parse_range("bytes=100-", 100), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-0", 0), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=9-3", 100), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeAsk::Whole);
        assert_eq!(parse_range("items=0-1", 100), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=x-", 100), RangeAsk::Whole);
    }

    #[test]
    fn etags() {
        assert!(etag_matches("\"a\", \"b\"", "\"b\"", false));
        assert!(etag_matches("W/\"b\"", "\"b\"", true));
        assert!(!etag_matches("W/\"b\"", "\"b\"", false));
        assert!(etag_matches("*", "\"b\"", false));
        assert!(!etag_matches("\"c\"", "\"b\"", true));
    }

    #[test]
    fn paths_are_escaped_per_segment() {
        assert_eq!(encode_path("/a b/c#?.mkv"), "/a%20b/c%23%3F.mkv");
        assert_eq!(encode_path("/电影/x"), "/%E7%94%B5%E5%BD%B1/x");
    }

    #[test]
    fn redirect_only_without_foreign_headers() {
        let l = |h: Vec<(&str, &str)>| Link {
            url: "http://x".into(),
            headers: h.into_iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
            expires_at: None,
        };
        assert!(redirectable(&l(vec![]), "vlc"));
        assert!(redirectable(&l(vec![("User-Agent", "vlc")]), "vlc"));
        assert!(!redirectable(&l(vec![("User-Agent", "pandav")]), "vlc"));
        assert!(!redirectable(&l(vec![("Referer", "https://www.aliyundrive.com/")]), "vlc"));
        assert!(!redirectable(&l(vec![("Cookie", "x=y")]), "vlc"));
    }
}
