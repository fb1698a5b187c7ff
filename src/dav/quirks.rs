//! What real WebDAV clients need beyond dav-server's reading of the RFCs: a missing
//! PROPFIND `Depth`, and ownCloud-style mtime PROPPATCH. (A listing never looks empty
//! when the provider failed: `propfind` lists before answering and reports the error.)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use super::copymove::{text, Reply};
use super::locks::LockTable;
use super::{DavFs, Esc, RequestCtx};
use crate::vfs::DriveError;

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

/// What a PROPPATCH body asks about `{DAV:}lastmodified`.
#[derive(Debug, PartialEq, Eq)]
pub enum LastModified {
    /// Not (only) a lastmodified set: dav-server's business.
    NotOurs,
    /// Set it to this Unix time.
    Set(u64),
    /// A lastmodified set with a value no clock can hold.
    Invalid,
}

/// The Unix time of a PROPPATCH that sets only `{DAV:}lastmodified` (seconds, or an
/// HTTP date). The body must have passed the XML gate (it is parsed into a tree).
pub fn parse_lastmodified_patch(body: &[u8]) -> LastModified {
    let Ok(root) = super::xmlgate::parse(body) else {
        return LastModified::NotOurs;
    };
    if root.name != "propertyupdate" || root.namespace.as_deref() != Some("DAV:") {
        return LastModified::NotOurs;
    }
    let mut found = LastModified::NotOurs;
    for op in root.children.iter().filter_map(|c| c.as_element()) {
        if op.name != "set" || op.namespace.as_deref() != Some("DAV:") {
            return LastModified::NotOurs;
        }
        for prop in op.children.iter().filter_map(|c| c.as_element()) {
            for p in prop.children.iter().filter_map(|c| c.as_element()) {
                if p.name != "lastmodified" || p.namespace.as_deref() != Some("DAV:") {
                    return LastModified::NotOurs;
                }
                let Some(text) = p.get_text() else {
                    return LastModified::NotOurs;
                };
                let text = text.trim();
                let secs = match text.parse::<u64>() {
                    Ok(n) => Some(n),
                    Err(_) => match httpdate::parse_http_date(text) {
                        Ok(t) => t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs()),
                        Err(_) if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() => None,
                        Err(_) => return LastModified::NotOurs,
                    },
                };
                found = match secs {
                    Some(n) if n <= MAX_TIME_SECS => LastModified::Set(n),
                    _ => return LastModified::Invalid,
                };
            }
        }
    }
    found
}

/// ownCloud clients (rclone's owncloud vendor: `rclone touch`, sync of a changed
/// mtime) set the time with PROPPATCH of `{DAV:}lastmodified`, which dav-server
/// refuses as a protected live property. Answer it here through `Mount::set_mtime`
/// when that is all the request sets; anything else goes to dav-server (`None`).
pub async fn set_lastmodified(
    fs: &DavFs,
    locks: &LockTable,
    prefix: &str,
    path: &str,
    body: &[u8],
    tokens: &[String],
    ctx: &RequestCtx,
) -> Option<Reply> {
    let secs = match parse_lastmodified_patch(body) {
        LastModified::NotOurs => return None,
        LastModified::Invalid => {
            tracing::info!(user = %Esc(&ctx.user.name), path = %Esc(path), "refused lastmodified out of range");
            return Some(text(StatusCode::BAD_REQUEST, "lastmodified out of range"));
        }
        LastModified::Set(s) => s,
    };
    let (m, rel) = fs.locate(path, &ctx.user)?;
    if ctx.user.read_only || m.read_only() {
        return Some(text(StatusCode::FORBIDDEN, "read-only"));
    }
    if locks.check(path, &ctx.user.name, false, tokens).await.is_err() {
        return Some(text(StatusCode::LOCKED, "locked"));
    }
    let t = UNIX_EPOCH + Duration::from_secs(secs);
    let code = match m.set_mtime(&rel, t).await {
        Ok(()) => StatusCode::OK,
        Err(DriveError::NotFound) => return Some(text(StatusCode::NOT_FOUND, "not found")),
        Err(e) => {
            tracing::info!(path = %Esc(path), "setting mtime failed: {e}");
            StatusCode::FORBIDDEN
        }
    };
    let href = format!("{prefix}{}", crate::server::download::encode_path(path));
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>{href}</D:href>\
         <D:propstat><D:prop><D:lastmodified/></D:prop><D:status>HTTP/1.1 {} {}</D:status></D:propstat>\
         </D:response></D:multistatus>\n",
        code.as_u16(),
        code.canonical_reason().unwrap_or("")
    );
    let mut r = Response::new(Bytes::from(xml));
    *r.status_mut() = StatusCode::MULTI_STATUS;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml; charset=utf-8"));
    Some(r)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lastmodified_patches() {
        let rclone = br#"<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><lastmodified xmlns="DAV:">981173106</lastmodified></D:prop></D:set></D:propertyupdate>"#;
        assert_eq!(parse_lastmodified_patch(rclone), LastModified::Set(981_173_106));
        let date = br#"<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:lastmodified>Sat, 03 Feb 2001 04:05:06 GMT</d:lastmodified></d:prop></d:set></d:propertyupdate>"#;
        assert_eq!(parse_lastmodified_patch(date), LastModified::Set(981_173_106));
        let other = br#"<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><x:color xmlns:x="urn:x">red</x:color></d:prop></d:set></d:propertyupdate>"#;
        assert_eq!(parse_lastmodified_patch(other), LastModified::NotOurs);
        let mixed = br#"<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:lastmodified>5</d:lastmodified><x:c xmlns:x="urn:x">1</x:c></d:prop></d:set></d:propertyupdate>"#;
        assert_eq!(parse_lastmodified_patch(mixed), LastModified::NotOurs);
        let remove = br#"<d:propertyupdate xmlns:d="DAV:"><d:remove><d:prop><d:lastmodified/></d:prop></d:remove></d:propertyupdate>"#;
        assert_eq!(parse_lastmodified_patch(remove), LastModified::NotOurs);
        assert_eq!(parse_lastmodified_patch(b"<not xml"), LastModified::NotOurs);
    }

    #[test]
    fn lastmodified_out_of_range_is_invalid() {
        let patch = |v: &str| {
            format!(
                r#"<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:lastmodified>{v}</d:lastmodified></d:prop></d:set></d:propertyupdate>"#
            )
        };
        assert_eq!(parse_lastmodified_patch(patch("18446744073709551615").as_bytes()), LastModified::Invalid);
        assert_eq!(parse_lastmodified_patch(patch("99999999999999999999999").as_bytes()), LastModified::Invalid);
        assert_eq!(parse_lastmodified_patch(patch(&(MAX_TIME_SECS + 1).to_string()).as_bytes()), LastModified::Invalid);
        assert_eq!(
            parse_lastmodified_patch(patch(&MAX_TIME_SECS.to_string()).as_bytes()),
            LastModified::Set(MAX_TIME_SECS)
        );
    }
}
