//! What real WebDAV clients need beyond dav-server's reading of the RFCs: a missing
//! PROPFIND `Depth`, `X-OC-Mtime`. (ownCloud- and Windows-style time PROPPATCHes are
//! `proppatch`'s; a listing never looks empty when the provider failed: `propfind`
//! lists before answering and reports the error.)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use super::copymove::Reply;

/// Latest time we accept from a client: 9999-12-31T23:59:59Z. HTTP dates have four
/// digit years (httpdate panics formatting a later one), and `UNIX_EPOCH + u64::MAX`
/// seconds overflows `SystemTime`.
pub const MAX_TIME_SECS: u64 = 253_402_300_799;

/// What to do about a PROPFIND's `Depth` header.
pub enum PropfindDepth {
    /// Pass the request on (possibly with `Depth: 1` added).
    Go,
    /// `Depth: infinity`, which we do not offer.
    Refuse(Reply),
}

/// RFC 4918 reads a missing Depth as infinity, which we do not offer (a whole cloud
/// drive in one answer); dav-server 0.11 would answer with the children only and leave
/// the target out. A missing Depth becomes Depth 1: the target and its children, which
/// is what clients omitting Depth want. `Depth: infinity` is refused with
/// `propfind-finite-depth`.
pub fn propfind_depth(headers: &mut HeaderMap) -> PropfindDepth {
    match headers.get("depth").map(|v| v.as_bytes().to_ascii_lowercase()) {
        None => {
            headers.insert("depth", HeaderValue::from_static("1"));
            PropfindDepth::Go
        }
        Some(v) if v == b"infinity" => {
            PropfindDepth::Refuse(xml_error(StatusCode::FORBIDDEN, "<D:propfind-finite-depth/>"))
        }
        Some(_) => PropfindDepth::Go,
    }
}

/// `X-OC-Mtime`: Unix seconds, possibly with a fraction.
pub fn parse_oc_mtime(v: &HeaderValue) -> Option<SystemTime> {
    let s = v.to_str().ok()?.trim();
    let secs: f64 = s.parse().ok()?;
    if !(0.0..1e11).contains(&secs) {
        return None;
    }
    Some(UNIX_EPOCH + Duration::from_secs_f64(secs))
}

pub fn xml_error(code: StatusCode, inner: &str) -> Reply {
    let body = format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:error xmlns:D=\"DAV:\">{inner}</D:error>\n");
    let mut r = Response::new(Bytes::from(body));
    *r.status_mut() = code;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml; charset=utf-8"));
    r
}
