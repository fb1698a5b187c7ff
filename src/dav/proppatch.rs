//! PROPPATCH requests that change a file's time, answered by pandav (RFC 4918 §9.2).
//!
//! dav-server refuses `{DAV:}lastmodified` (rclone's owncloud vendor sets mtimes with it)
//! and answers `200` to the Windows mini-redirector's `Win32LastModifiedTime`,
//! `Win32CreationTime`, `Win32LastAccessTime` and `Win32FileAttributes` without keeping
//! any of them, so Explorer showed the copy time as "Date modified". A PROPPATCH that
//! names any of these is answered here, whole and atomically:
//!
//! - `lastmodified` and `Win32LastModifiedTime` set the file's modification time where
//!   the drive can (`Caps::set_mtime`, `Mount::set_mtime`), else they get `403`;
//! - the other Win32 properties are kept as dead properties (a later PROPFIND shows what
//!   was set, so their `200` is true);
//! - `oc:checksums` (rclone sends it with the time) is `200` only when it names the
//!   hashes the drive already knows for the file, else `409`;
//! - other properties follow dav-server's rules (protected `DAV:` ones `403`, dead ones
//!   stored);
//! - if any instruction fails, none is applied and the others get `424`.
//!
//! PROPPATCHes without these properties stay with dav-server.

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use dav_server::fs::DavProp;
use http::{header, HeaderValue, Request, Response, StatusCode};
use xmltree::Element;

use super::copymove::{text, this_server, CopyMove, Reply};
use super::ifheader::parse_if;
use super::locks::LockTable;
use super::propfind::{NS_APACHE, NS_DAV, NS_MS, NS_OC};
use super::quirks::MAX_TIME_SECS;
use super::{xmlout as x, DavFs, Esc, RequestCtx, Target};
use crate::vfs::DriveError;

/// One `set` or `remove` of one property, in document order.
#[derive(Debug, Clone)]
pub struct Instruction {
    pub set: bool,
    pub ns: String,
    pub name: String,
    pub what: What,
}

/// What an instruction asks of pandav.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// Set the modification time (Unix seconds).
    Mtime(u64),
    /// Keep as a dead property (the element as XML for a set).
    Dead(Option<Vec<u8>>),
    /// `oc:checksums` with this `oc:checksum` text.
    Checksums(String),
    /// Refused before anything is done, with this status.
    Refuse(StatusCode),
}

/// Why a body is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotOurs {
    /// No time or Win32 property in it: dav-server's business.
    Pass,
    /// A `lastmodified` no clock can hold: 400 (as before this module).
    BadTime,
}

fn is_time(ns: &str, name: &str) -> bool {
    (ns == NS_DAV && name == "lastmodified") || ns == NS_MS
}

/// The instructions of a PROPPATCH body that names a time or Win32 property. The body
/// has passed the XML gate.
pub fn plan(body: &[u8]) -> Result<Vec<Instruction>, NotOurs> {
    let root = super::xmlgate::parse(body).map_err(|_| NotOurs::Pass)?;
    if root.name != "propertyupdate" || root.namespace.as_deref() != Some(NS_DAV) {
        return Err(NotOurs::Pass);
    }
    let mut out = vec![];
    for op in root.children.iter().filter_map(|c| c.as_element()) {
        let set = match (op.namespace.as_deref(), op.name.as_str()) {
            (Some(NS_DAV), "set") => true,
            (Some(NS_DAV), "remove") => false,
            _ => continue,
        };
        let props = op.children.iter().filter_map(|c| c.as_element());
        for prop in props.filter(|p| p.namespace.as_deref() == Some(NS_DAV) && p.name == "prop") {
            for p in prop.children.iter().filter_map(|c| c.as_element()) {
                out.push(instruction(set, p)?);
            }
        }
    }
    if !out.iter().any(|i| is_time(&i.ns, &i.name)) {
        return Err(NotOurs::Pass);
    }
    Ok(out)
}

fn instruction(set: bool, p: &Element) -> Result<Instruction, NotOurs> {
    let ns = p.namespace.clone().unwrap_or_default();
    let name = p.name.clone();
    let value =
        || p.get_text().map(|t| t.trim().to_string()).filter(|_| !p.children.iter().any(|c| c.as_element().is_some()));
    let what = match (set, ns.as_str(), name.as_str()) {
        (false, NS_DAV, "displayname" | "getcontentlanguage") => What::Dead(None),
        (false, NS_DAV | NS_MS | NS_APACHE, _) => What::Refuse(StatusCode::FORBIDDEN),
        (false, NS_OC, "checksums") => What::Refuse(StatusCode::FORBIDDEN),
        (false, _, _) => What::Dead(None),
        (true, NS_DAV, "lastmodified") => match value().map(|v| lastmodified(&v)) {
            Some(Ok(s)) => What::Mtime(s),
            Some(Err(NotOurs::BadTime)) => return Err(NotOurs::BadTime),
            _ => What::Refuse(StatusCode::CONFLICT),
        },
        (true, NS_MS, "Win32LastModifiedTime") => match value().and_then(|v| httpdate::parse_http_date(&v).ok()) {
            Some(t) => match t.duration_since(UNIX_EPOCH) {
                Ok(d) if d.as_secs() <= MAX_TIME_SECS => What::Mtime(d.as_secs()),
                _ => What::Refuse(StatusCode::CONFLICT),
            },
            None => What::Refuse(StatusCode::CONFLICT),
        },
        (true, NS_MS, "Win32CreationTime" | "Win32LastAccessTime" | "Win32FileAttributes")
        | (true, NS_DAV, "displayname" | "getcontentlanguage") => match value() {
            Some(_) => What::Dead(Some(element_xml(p))),
            None => What::Refuse(StatusCode::CONFLICT),
        },
        (true, NS_DAV | NS_MS | NS_APACHE, _) => What::Refuse(StatusCode::FORBIDDEN),
        (true, NS_OC, "checksums") => {
            let sums = p.get_child("checksum").and_then(|c| c.get_text()).map(|t| t.trim().to_string());
            What::Checksums(sums.unwrap_or_default())
        }
        (true, _, _) => What::Dead(Some(element_xml(p))),
    };
    Ok(Instruction { set, ns, name, what })
}

/// A `lastmodified` value: Unix seconds, or an HTTP date.
fn lastmodified(v: &str) -> Result<u64, NotOurs> {
    let secs = match v.parse::<u64>() {
        Ok(n) => Some(n),
        Err(_) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => None,
        Err(_) => match httpdate::parse_http_date(v) {
            Ok(t) => t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs()),
            Err(_) => return Err(NotOurs::Pass),
        },
    };
    match secs {
        Some(n) if n <= MAX_TIME_SECS => Ok(n),
        _ => Err(NotOurs::BadTime),
    }
}

/// The element as standalone XML (its namespaces declared), as dav-server stored dead
/// properties.
fn element_xml(e: &Element) -> Vec<u8> {
    let mut out = vec![];
    let cfg = xmltree::EmitterConfig::new().write_document_declaration(false);
    if e.write_with_config(&mut out, cfg).is_err() {
        out.clear();
    }
    out
}

/// Whether every `ALGO:hex` of an `oc:checksum` text is a hash the drive knows for `e`.
fn checksums_match(text: &str, e: &crate::vfs::Entry) -> bool {
    let known = |algo: &str| match algo {
        "sha1" => e.hashes().sha1.as_deref(),
        "md5" => e.hashes().md5.as_deref(),
        _ => None,
    };
    let mut any = false;
    for part in text.split_whitespace() {
        let Some((algo, hex)) = part.split_once(':') else { return false };
        match known(&algo.to_ascii_lowercase()) {
            Some(k) if k.eq_ignore_ascii_case(hex) => any = true,
            _ => return false,
        }
    }
    any
}

pub struct Proppatch<'a> {
    pub fs: &'a DavFs,
    pub locks: &'a LockTable,
    /// URL prefix pandav serves under.
    pub prefix: &'a str,
}

impl Proppatch<'_> {
    /// Answer a PROPPATCH of `path` (decoded) that names a time or Win32 property;
    /// `None` for any other, which dav-server answers.
    pub async fn answer<B>(&self, req: &Request<B>, path: &str, body: &[u8], ctx: &RequestCtx) -> Option<Reply> {
        let plan = match plan(body) {
            Ok(p) => p,
            Err(NotOurs::Pass) => return None,
            Err(NotOurs::BadTime) => {
                tracing::info!(user = %Esc(&ctx.user.name), path = %Esc(path), "refused lastmodified out of range");
                return Some(text(StatusCode::BAD_REQUEST, "lastmodified out of range"));
            }
        };
        Some(self.run(req, path, plan, ctx).await)
    }

    async fn run<B>(&self, req: &Request<B>, path: &str, plan: Vec<Instruction>, ctx: &RequestCtx) -> Reply {
        let refuse = |code: StatusCode, why: &str| {
            tracing::info!(user = %Esc(&ctx.user.name), path = %Esc(path), "PROPPATCH refused ({code}): {why}");
            text(code, why)
        };
        let (m, rel) = match self.fs.target_of(path, &ctx.user) {
            Some(Target::Mount(m, rel)) => (m, rel),
            Some(Target::Virtual(_)) => return refuse(StatusCode::FORBIDDEN, "a virtual folder has no properties"),
            None => return refuse(StatusCode::NOT_FOUND, "not found"),
        };
        if ctx.user.read_only || m.read_only() {
            return refuse(StatusCode::FORBIDDEN, "read-only");
        }
        let entry = match m.resolve(&rel).await {
            Ok(e) => e,
            Err(DriveError::NotFound | DriveError::NotADirectory) => return refuse(StatusCode::NOT_FOUND, "not found"),
            Err(e) => return refuse(e.status(), &e.to_string()),
        };
        let cond = req.headers().get("if").and_then(|v| parse_if(v.as_bytes()).ok());
        if let Some(cond) = &cond {
            let cm = CopyMove { fs: self.fs, locks: self.locks, prefix: self.prefix };
            if !cm.if_holds(cond, path, &entry, ctx, &this_server(req)).await {
                return refuse(StatusCode::PRECONDITION_FAILED, "the If header does not hold");
            }
        }
        let tokens = cond.map(|c| c.tokens()).unwrap_or_default();
        if self.locks.check(path, &ctx.user.name, false, &tokens).await.is_err() {
            return refuse(StatusCode::LOCKED, "locked");
        }

        // Every instruction's fate before anything changes.
        let can_mtime = m.caps().set_mtime;
        let mut status: Vec<StatusCode> = plan
            .iter()
            .map(|i| match &i.what {
                What::Refuse(code) => *code,
                What::Mtime(_) if !can_mtime => StatusCode::FORBIDDEN,
                What::Checksums(sums) if !checksums_match(sums, &entry) => StatusCode::CONFLICT,
                _ => StatusCode::OK,
            })
            .collect();
        let failed = status.iter().any(|s| *s != StatusCode::OK);
        if !failed {
            // Dead properties first (the store applies all or none), then the time: a
            // refused property must not leave a changed mtime behind (RFC 4918 §9.2).
            let dead: Vec<(usize, (bool, DavProp))> = plan
                .iter()
                .enumerate()
                .filter_map(|(n, i)| match &i.what {
                    What::Dead(xml) => Some((n, (i.set, dav_prop(i, xml.clone())))),
                    _ => None,
                })
                .collect();
            let (at, patch): (Vec<usize>, Vec<(bool, DavProp)>) = dead.into_iter().unzip();
            let mut undo = Vec::with_capacity(patch.len());
            for (_, p) in &patch {
                let old = self.fs.props().get(path, p).await;
                undo.push((old.is_some(), DavProp { xml: old, ..p.clone() }));
            }
            if !patch.is_empty() {
                for (n, (code, _)) in at.iter().zip(self.fs.props().patch(path, patch).await) {
                    status[*n] = code;
                }
            }
            let stored = status.iter().all(|s| *s == StatusCode::OK);
            let mtime = plan.iter().rev().find_map(|i| match i.what {
                What::Mtime(s) => Some(s),
                _ => None,
            });
            if let (true, Some(secs)) = (stored, mtime) {
                if let Err(e) = m.set_mtime(&rel, UNIX_EPOCH + Duration::from_secs(secs)).await {
                    tracing::info!(path = %Esc(path), "setting mtime failed: {e}");
                    if !undo.is_empty() {
                        self.fs.props().patch(path, undo).await;
                    }
                    for (s, i) in status.iter_mut().zip(&plan) {
                        *s = if matches!(i.what, What::Mtime(_)) {
                            StatusCode::FORBIDDEN
                        } else {
                            StatusCode::FAILED_DEPENDENCY
                        };
                    }
                }
            }
        }
        if status.iter().any(|s| *s != StatusCode::OK) {
            for s in status.iter_mut().filter(|s| **s == StatusCode::OK) {
                *s = StatusCode::FAILED_DEPENDENCY;
            }
        }
        self.multistatus(path, entry.is_dir, &plan, &status)
    }

    fn multistatus(&self, path: &str, is_dir: bool, plan: &[Instruction], status: &[StatusCode]) -> Reply {
        let mut codes: Vec<StatusCode> = status.to_vec();
        codes.sort();
        codes.dedup();
        let mut out =
            b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>"
                .to_vec();
        x::href_path(&mut out, self.prefix);
        x::href_path(&mut out, path);
        if is_dir && !out.ends_with(b"/") {
            out.push(b'/');
        }
        out.extend_from_slice(b"</D:href>");
        for code in codes {
            out.extend_from_slice(b"<D:propstat><D:prop>");
            for (i, _) in plan.iter().zip(status).filter(|(_, s)| **s == code) {
                out.extend_from_slice(b"<x:");
                out.extend_from_slice(i.name.as_bytes());
                out.extend_from_slice(b" xmlns:x=\"");
                x::attr(&mut out, &i.ns);
                out.extend_from_slice(b"\"/>");
            }
            out.extend_from_slice(b"</D:prop><D:status>HTTP/1.1 ");
            out.extend_from_slice(code.to_string().as_bytes());
            out.extend_from_slice(b"</D:status></D:propstat>");
        }
        out.extend_from_slice(b"</D:response></D:multistatus>\n");
        let mut r = Response::new(Bytes::from(out));
        *r.status_mut() = StatusCode::MULTI_STATUS;
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml; charset=utf-8"));
        r
    }
}

fn dav_prop(i: &Instruction, xml: Option<Vec<u8>>) -> DavProp {
    DavProp {
        name: i.name.clone(),
        prefix: None,
        namespace: (!i.ns.is_empty()).then(|| i.ns.clone()),
        xml: if i.set { xml } else { None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whats(body: &str) -> Result<Vec<What>, NotOurs> {
        plan(body.as_bytes()).map(|v| v.into_iter().map(|i| i.what).collect())
    }

    #[test]
    fn plans_what_clients_send() {
        // rclone's owncloud vendor.
        let rclone = r#"<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><lastmodified xmlns="DAV:">981173106</lastmodified></D:prop></D:set></D:propertyupdate>"#;
        assert_eq!(whats(rclone), Ok(vec![What::Mtime(981_173_106)]));
        let date = r#"<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:lastmodified>Sat, 03 Feb 2001 04:05:06 GMT</d:lastmodified></d:prop></d:set></d:propertyupdate>"#;
        assert_eq!(whats(date), Ok(vec![What::Mtime(981_173_106)]));
        // Windows.
        let win = r#"<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:"><D:set><D:prop><Z:Win32CreationTime>Sat, 03 Feb 2001 04:05:06 GMT</Z:Win32CreationTime><Z:Win32LastModifiedTime>Sat, 03 Feb 2001 04:05:06 GMT</Z:Win32LastModifiedTime><Z:Win32FileAttributes>00000020</Z:Win32FileAttributes></D:prop></D:set></D:propertyupdate>"#;
        let w = whats(win).unwrap();
        assert!(matches!(&w[0], What::Dead(Some(xml)) if String::from_utf8_lossy(xml).contains("Win32CreationTime")));
        assert_eq!(w[1], What::Mtime(981_173_106));
        let bad = win
            .replace("Sat, 03 Feb 2001 04:05:06 GMT</Z:Win32LastModifiedTime>", "yesterday</Z:Win32LastModifiedTime>");
        assert_eq!(whats(&bad).unwrap()[1], What::Refuse(StatusCode::CONFLICT));
        // Not ours: no time or Win32 property.
        let other = r#"<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><x:color xmlns:x="urn:x">red</x:color></d:prop></d:set></d:propertyupdate>"#;
        assert_eq!(whats(other).unwrap_err(), NotOurs::Pass);
        assert_eq!(whats("<not xml").unwrap_err(), NotOurs::Pass);
        // Mixed: ours, the other property a dead one.
        let mixed = r#"<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:lastmodified>5</d:lastmodified><x:c xmlns:x="urn:x">1</x:c></d:prop></d:set></d:propertyupdate>"#;
        let m = whats(mixed).unwrap();
        assert_eq!(m[0], What::Mtime(5));
        assert!(matches!(&m[1], What::Dead(Some(_))));
        let remove = r#"<d:propertyupdate xmlns:d="DAV:"><d:remove><d:prop><d:lastmodified/></d:prop></d:remove></d:propertyupdate>"#;
        assert_eq!(whats(remove), Ok(vec![What::Refuse(StatusCode::FORBIDDEN)]));
    }

    #[test]
    fn lastmodified_out_of_range_is_invalid() {
        let patch = |v: &str| {
            format!(
                r#"<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:lastmodified>{v}</d:lastmodified></d:prop></d:set></d:propertyupdate>"#
            )
        };
        for v in ["18446744073709551615", "99999999999999999999999", &(MAX_TIME_SECS + 1).to_string()] {
            assert_eq!(whats(&patch(v)).unwrap_err(), NotOurs::BadTime, "{v}");
        }
        assert_eq!(whats(&patch(&MAX_TIME_SECS.to_string())), Ok(vec![What::Mtime(MAX_TIME_SECS)]));
    }

    #[test]
    fn checksums_must_be_the_known_ones() {
        let mut e = crate::vfs::Entry::dir("1", "f", UNIX_EPOCH);
        e.is_dir = false;
        e.hashes_mut().sha1 = Some("aa11".into());
        assert!(checksums_match("SHA1:AA11", &e));
        assert!(!checksums_match("SHA1:bb22", &e));
        assert!(!checksums_match("SHA1:aa11 MD5:cc", &e));
        assert!(!checksums_match("", &e));
    }
}
