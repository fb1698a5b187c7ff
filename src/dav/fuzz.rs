//! Fuzz targets for everything that parses client input on the WebDAV side: each takes
//! arbitrary bytes, runs one parser and panics when an invariant breaks. The same
//! functions run under `cargo fuzz` (`fuzz/`, nightly) and as bounded property tests in
//! the normal suite (`tests/fuzz_props.rs`), so CI exercises them on stable.
//!
//! Not part of pandav's API.

use std::panic::AssertUnwindSafe;

use super::destination::{parse_destination, ThisServer};
use super::{ifheader, quirks, xmlgate};

/// `If:` — what our strict parser accepts is well-formed (tokens are absolute URIs,
/// entity tags quoted) and does not crash dav-server's own parser.
pub fn if_header(data: &[u8]) {
    let Ok(h) = ifheader::parse_if(data) else { return };
    assert!(!h.lists.is_empty());
    for l in &h.lists {
        assert!(!l.conditions.is_empty());
        for c in &l.conditions {
            match &c.item {
                ifheader::Item::Token(t) => assert!(t.contains(':') && !t.contains(['<', '>', '"', ' '])),
                ifheader::Item::ETag { tag, .. } => {
                    assert!(tag.len() >= 2 && tag.starts_with('"') && tag.ends_with('"'));
                    assert!(!tag.get(1..tag.len() - 1).unwrap_or("\"").contains('"'));
                }
            }
        }
    }
    dav_server_survives("if", data);
}

/// `If-Match` / `If-None-Match` / `If-Range`: accepted values do not crash dav-server.
pub fn etag_list(data: &[u8]) {
    if ifheader::valid_etag_list(data) {
        dav_server_survives("if-match", data);
        dav_server_survives("if-none-match", data);
    }
    if ifheader::valid_if_range(data) {
        dav_server_survives("if-range", data);
    }
}

/// `Destination:` — a result is a clean absolute path: no dot, empty or NUL segment,
/// never above the root, inside the prefix.
pub fn destination(data: &[u8]) {
    let me = ThisServer { hosts: vec!["h:1", "Example.org"] };
    for prefix in ["", "/dav"] {
        if let Ok(p) = parse_destination(data, &me, prefix) {
            assert_clean_path(&p);
        }
    }
}

/// A request path, read the way dav-server reads it.
pub fn request_path(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    for prefix in ["", "/dav"] {
        if let Some(p) = super::request_path(raw, prefix) {
            assert_clean_path(&p);
        }
    }
}

fn assert_clean_path(p: &str) {
    assert!(p.starts_with('/'), "{p:?}");
    assert!(!p.contains('\0'), "{p:?}");
    if p != "/" {
        assert!(!p.ends_with('/'), "{p:?}");
        for seg in p.get(1..).unwrap_or_default().split('/') {
            assert!(!matches!(seg, "" | "." | ".."), "{p:?}");
        }
    }
}

/// PROPFIND / PROPPATCH / LOCK bodies: what the gate lets through is a tree no deeper
/// than `MAX_DEPTH` that xmltree parses without trouble.
pub fn xml_body(data: &[u8]) {
    if xmlgate::check(data).is_err() {
        return;
    }
    let tree = match xmlgate::parse(data) {
        Ok(t) => t,
        Err(e) => panic!("the gate passed a body xmltree refuses: {e}"),
    };
    fn depth(e: &xmltree::Element) -> usize {
        1 + e.children.iter().filter_map(|c| c.as_element()).map(depth).max().unwrap_or(0)
    }
    assert!(depth(&tree) <= xmlgate::MAX_DEPTH);
    let _ = super::proppatch::plan(data);
    let _ = super::propfind::parse(data);
}

/// A PROPFIND body that passed the gate: the parser never panics, names each property
/// once and never more than `MAX_PROPS`.
pub fn propfind_body(data: &[u8]) {
    if xmlgate::check(data).is_err() {
        return;
    }
    if let Ok(super::propfind::Ask::Prop(list) | super::propfind::Ask::AllProp(list)) = super::propfind::parse(data) {
        assert!(list.len() <= super::propfind::MAX_PROPS);
        for (i, p) in list.iter().enumerate() {
            assert!(!list[..i].iter().any(|q| q.ns == p.ns && q.name == p.name), "{p:?} twice");
        }
    }
}

/// PROPPATCH of `{DAV:}lastmodified`: a value we act on fits a clock and an HTTP date.
pub fn lastmodified(data: &[u8]) {
    let mut body = b"<d:propertyupdate xmlns:d=\"DAV:\"><d:set><d:prop><d:lastmodified>".to_vec();
    body.extend(data.iter().filter(|b| !matches!(b, b'<' | b'&')));
    body.extend_from_slice(b"</d:lastmodified></d:prop></d:set></d:propertyupdate>");
    if let Ok(plan) = super::proppatch::plan(&body) {
        let [super::proppatch::Instruction { what: super::proppatch::What::Mtime(n), .. }] = plan.as_slice() else {
            return;
        };
        let n = *n;
        assert!(n <= quirks::MAX_TIME_SECS);
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(n);
        let _ = httpdate::fmt_http_date(t);
    }
}

/// `Range:` of GET — a part is a non-empty slice of the file.
pub fn range(data: &[u8]) {
    let (size, text) = match data.split_first_chunk::<8>() {
        Some((n, rest)) => (u64::from_le_bytes(*n) % (1 << 40), rest),
        None => (1000, data),
    };
    let Ok(v) = std::str::from_utf8(text) else { return };
    if let crate::server::download::RangeAsk::Part(s, e) = crate::server::download::parse_range(v, size) {
        assert!(s < e && e <= size, "{v:?} of {size}: {s}..{e}");
    }
}

/// Send `PUT /x` with header `name: value` through a real dav-server handler (over a
/// file system that has nothing) and require that it answers instead of panicking.
fn dav_server_survives(name: &'static str, value: &[u8]) {
    let Ok(v) = http::HeaderValue::from_bytes(value) else { return };
    let req = http::Request::builder()
        .method("PUT")
        .uri("/x")
        .header(name, v)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap_or_default();
    HANDLER.with(|(rt, handler)| {
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| rt.block_on(handler.handle(req))));
        assert!(r.is_ok(), "dav-server panicked on {name}: {:?}", String::from_utf8_lossy(value));
    });
}

thread_local! {
    static HANDLER: (tokio::runtime::Runtime, dav_server::DavHandler) = (
        tokio::runtime::Builder::new_current_thread().build().unwrap_or_else(|e| panic!("runtime: {e}")),
        dav_server::DavHandler::builder()
            .filesystem(Box::new(Nothing))
            .locksystem(dav_server::fakels::FakeLs::new())
            .build_handler(),
    );
}

/// A file system without files.
#[derive(Clone)]
struct Nothing;

impl dav_server::fs::DavFileSystem for Nothing {
    fn open<'a>(
        &'a self,
        _path: &'a dav_server::davpath::DavPath,
        _options: dav_server::fs::OpenOptions,
    ) -> dav_server::fs::FsFuture<'a, Box<dyn dav_server::fs::DavFile>> {
        Box::pin(async { Err(dav_server::fs::FsError::Forbidden) })
    }

    fn read_dir<'a>(
        &'a self,
        _path: &'a dav_server::davpath::DavPath,
        _meta: dav_server::fs::ReadDirMeta,
    ) -> dav_server::fs::FsFuture<'a, dav_server::fs::FsStream<Box<dyn dav_server::fs::DavDirEntry>>> {
        Box::pin(async { Err(dav_server::fs::FsError::NotFound) })
    }

    fn metadata<'a>(
        &'a self,
        _path: &'a dav_server::davpath::DavPath,
    ) -> dav_server::fs::FsFuture<'a, Box<dyn dav_server::fs::DavMetaData>> {
        Box::pin(async { Err(dav_server::fs::FsError::NotFound) })
    }
}

#[cfg(test)]
mod tests {
    /// The oracle itself must catch what crashed dav-server (else a green property
    /// test would prove nothing).
    #[test]
    fn the_oracle_sees_dav_server_panic() {
        for (name, v) in [("if", &b"(<urn:x> [x"[..]), ("if-match", b"\"")] {
            let r = std::panic::catch_unwind(|| super::dav_server_survives(name, v));
            assert!(r.is_err(), "{name}: {:?} did not crash dav-server", String::from_utf8_lossy(v));
        }
    }
}
