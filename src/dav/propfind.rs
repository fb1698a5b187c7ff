//! PROPFIND, answered by pandav rather than dav-server (RFC 4918 §9.1).
//!
//! dav-server 0.11 dropped every property a resource lacked instead of reporting it in a
//! `404` propstat (so a `quota-*` request got a bare `<D:response><D:href>`), appended
//! every dead property and `oc:checksums` to every answer whether asked or not, printed
//! `getetag` without the quotes the `ETag` header has (GNOME sends the property back as
//! `If-Match` and got 412), and built an XML tree for every property of every entry.
//!
//! Here the request body (already bounded and depth-checked by `xmlgate`) is read as a
//! stream of events into a list of property names, and the multistatus is rendered
//! straight from the mount's cached listing into a streaming body, 64 KiB at a time:
//! no tree, no boxed object per entry, and a `prop` request costs only the properties
//! it names. Every requested property appears exactly once per resource, in a `200`
//! propstat (first, which rclone relies on) or a `404` one.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use dav_server::fs::DavProp;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body::{Body, Frame};
use xml::reader::{ParserConfig, XmlEvent};

use super::locks::{LockTable, LockView};
use super::{printable, xmlout as x, DavFs, Esc, RequestCtx, Target};
use crate::vfs::{self, DriveError, Entry, Mount, Quota};

pub const NS_DAV: &str = "DAV:";
pub const NS_APACHE: &str = "http://apache.org/dav/props/";
pub const NS_MS: &str = "urn:schemas-microsoft-com:";
pub const NS_OC: &str = "http://owncloud.org/ns";
pub const NS_NC: &str = "http://nextcloud.org/ns";

/// Most distinct properties one PROPFIND may name (real clients name fewer than 20);
/// bounds how much one request can make a listing of 100,000 entries grow.
pub const MAX_PROPS: usize = 256;

/// Bytes rendered per body frame.
const CHUNK: usize = 64 * 1024;

/// The properties pandav computes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Live {
    CreationDate,
    /// `displayname` and `getcontentlanguage`: dead properties only.
    DeadOnly,
    ContentLength,
    ContentType,
    ETag,
    LastModified,
    ResourceType,
    LockDiscovery,
    SupportedLock,
    QuotaAvailable,
    QuotaUsed,
    /// Apache's `executable`: never known.
    Executable,
    Win32CreationTime,
    Win32LastAccessTime,
    Win32LastModifiedTime,
    Win32FileAttributes,
    Checksums,
    /// Anything else: a dead property or nothing.
    No,
}

fn classify(ns: &str, name: &str) -> Live {
    match (ns, name) {
        (NS_DAV, "creationdate") => Live::CreationDate,
        (NS_DAV, "displayname" | "getcontentlanguage") => Live::DeadOnly,
        (NS_DAV, "getcontentlength") => Live::ContentLength,
        (NS_DAV, "getcontenttype") => Live::ContentType,
        (NS_DAV, "getetag") => Live::ETag,
        (NS_DAV, "getlastmodified") => Live::LastModified,
        (NS_DAV, "resourcetype") => Live::ResourceType,
        (NS_DAV, "lockdiscovery") => Live::LockDiscovery,
        (NS_DAV, "supportedlock") => Live::SupportedLock,
        (NS_DAV, "quota-available-bytes") => Live::QuotaAvailable,
        (NS_DAV, "quota-used-bytes") => Live::QuotaUsed,
        (NS_APACHE, "executable") => Live::Executable,
        (NS_MS, "Win32CreationTime") => Live::Win32CreationTime,
        (NS_MS, "Win32LastAccessTime") => Live::Win32LastAccessTime,
        (NS_MS, "Win32LastModifiedTime") => Live::Win32LastModifiedTime,
        (NS_MS, "Win32FileAttributes") => Live::Win32FileAttributes,
        (NS_OC, "checksums") => Live::Checksums,
        _ => Live::No,
    }
}

/// A property name as a request gives it, with the prefix the answer writes it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropName {
    pub ns: String,
    pub name: String,
    prefix: String,
    live: Live,
}

impl PropName {
    fn new(ns: &str, name: &str) -> PropName {
        PropName {
            ns: ns.into(),
            name: name.into(),
            prefix: fixed_prefix(ns).unwrap_or("").into(),
            live: classify(ns, name),
        }
    }

    fn is(&self, p: &DavProp) -> bool {
        p.name == self.name && p.namespace.as_deref().unwrap_or("") == self.ns
    }

    fn open(&self, out: &mut Vec<u8>) {
        out.push(b'<');
        self.qname(out);
        out.push(b'>');
    }

    fn close(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"</");
        self.qname(out);
        out.push(b'>');
    }

    fn empty(&self, out: &mut Vec<u8>) {
        out.push(b'<');
        self.qname(out);
        out.extend_from_slice(b"/>");
    }

    fn qname(&self, out: &mut Vec<u8>) {
        if !self.prefix.is_empty() {
            out.extend_from_slice(self.prefix.as_bytes());
            out.push(b':');
        }
        out.extend_from_slice(self.name.as_bytes());
    }
}

fn fixed_prefix(ns: &str) -> Option<&'static str> {
    Some(match ns {
        NS_DAV => "D",
        NS_APACHE => "A",
        NS_MS => "Z",
        NS_OC => "oc",
        NS_NC => "nc",
        _ => return None,
    })
}

/// What a PROPFIND asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// `allprop` (or an empty body), with the properties of an `include` element.
    AllProp(Vec<PropName>),
    PropName,
    Prop(Vec<PropName>),
}

/// Read a PROPFIND body (an empty one is `allprop`). The body has passed the XML gate.
pub fn parse(body: &[u8]) -> Result<Ask, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Ask::AllProp(vec![]));
    }
    let reader = ParserConfig::new().ignore_comments(true).create_reader(body);
    let mut depth = 0usize;
    let mut mode: Option<&'static str> = None;
    // The element at depth 2 we are inside of: "prop", "include" or something ignored.
    let mut section = "";
    let mut names: Vec<PropName> = vec![];
    let mut include: Vec<PropName> = vec![];
    for ev in reader {
        match ev.map_err(|e| format!("malformed XML: {}", e.msg()))? {
            XmlEvent::StartElement { name, .. } => {
                depth += 1;
                let ns = name.namespace.as_deref().unwrap_or("");
                let local = name.local_name.as_str();
                match depth {
                    1 if ns == NS_DAV && local == "propfind" => {}
                    1 => return Err("the body is not a DAV:propfind".into()),
                    2 => {
                        section = "";
                        if ns != NS_DAV {
                            continue;
                        }
                        let m = match local {
                            "allprop" => "allprop",
                            "propname" => "propname",
                            "prop" => "prop",
                            // RFC 4918 says `include`; dav-server read `includes`.
                            "include" | "includes" => {
                                section = "include";
                                continue;
                            }
                            _ => continue,
                        };
                        if mode.is_some_and(|old| old != m) {
                            return Err("more than one of allprop, propname and prop".into());
                        }
                        mode = Some(m);
                        section = m;
                    }
                    3 if section == "prop" || section == "include" => {
                        let list = if section == "prop" { &mut names } else { &mut include };
                        if !list.iter().any(|p| p.ns == ns && p.name == local) {
                            list.push(PropName::new(ns, local));
                        }
                        if names.len() + include.len() > MAX_PROPS {
                            return Err(format!("more than {MAX_PROPS} properties asked for"));
                        }
                    }
                    _ => {}
                }
            }
            XmlEvent::EndElement { .. } => depth = depth.saturating_sub(1),
            XmlEvent::EndDocument => break,
            _ => {}
        }
    }
    let mut ask = match mode {
        Some("allprop") => Ask::AllProp(include),
        Some("propname") => Ask::PropName,
        Some(_) => Ask::Prop(names),
        None => return Err("the propfind names none of allprop, propname and prop".into()),
    };
    assign_prefixes(&mut ask);
    Ok(ask)
}

/// Names in namespaces without a fixed prefix get `ns0`, `ns1`… (declared on the root).
fn assign_prefixes(ask: &mut Ask) {
    let list = match ask {
        Ask::AllProp(l) | Ask::Prop(l) => l,
        Ask::PropName => return,
    };
    let mut seen: Vec<String> = vec![];
    for p in list.iter_mut() {
        if p.ns.is_empty() || fixed_prefix(&p.ns).is_some() {
            continue;
        }
        let i = seen.iter().position(|n| *n == p.ns).unwrap_or_else(|| {
            seen.push(p.ns.clone());
            seen.len() - 1
        });
        p.prefix = format!("ns{i}");
    }
}

/// The live properties `allprop` returns (RFC 4918 §9.1: those the RFC defines); the
/// Windows mini-redirector, which sends an empty body and reads Win32 times from the
/// answer, gets those too (as dav-server gave them).
static ALLPROP: LazyLock<Vec<PropName>> = LazyLock::new(|| {
    [
        "creationdate",
        "getcontentlength",
        "getcontenttype",
        "getetag",
        "getlastmodified",
        "lockdiscovery",
        "resourcetype",
        "supportedlock",
    ]
    .iter()
    .map(|n| PropName::new(NS_DAV, n))
    .collect()
});

static MS_ALLPROP: LazyLock<Vec<PropName>> = LazyLock::new(|| {
    ["Win32CreationTime", "Win32FileAttributes", "Win32LastAccessTime", "Win32LastModifiedTime"]
        .iter()
        .map(|n| PropName::new(NS_MS, n))
        .collect()
});

/// The live properties `propname` may list (those a resource has).
static PROPNAMES: LazyLock<Vec<PropName>> = LazyLock::new(|| {
    let mut v = ALLPROP.clone();
    v.extend(["quota-available-bytes", "quota-used-bytes"].iter().map(|n| PropName::new(NS_DAV, n)));
    v.extend(MS_ALLPROP.iter().cloned());
    v.push(PropName::new(NS_OC, "checksums"));
    v
});

/// How a PROPFIND ends up.
pub enum Answer {
    /// 207 with a streaming body.
    MultiStatus(Response<MultiStatus>),
    /// A plain error (bad Depth or body, not found).
    Refused(StatusCode, String),
    /// The provider failed (503 with Retry-After, 502…).
    Drive(DriveError),
}

pub struct Propfind<'a> {
    pub fs: &'a DavFs,
    pub locks: &'a LockTable,
    /// URL prefix pandav serves under.
    pub prefix: &'a str,
}

/// One resource to render.
struct Res {
    entry: Entry,
    /// A virtual folder (above mounts): its ETag is `pandav-root`.
    virt: bool,
    quota: Option<Quota>,
}

enum Children {
    None,
    /// A mount folder's (cached) listing, rendered in place.
    Listing {
        list: Arc<Vec<Entry>>,
        quota: Option<Quota>,
    },
    /// The members of a virtual folder: mount roots and further virtual folders.
    Virtual(Vec<Res>),
}

impl Propfind<'_> {
    /// Answer PROPFIND of `path` (decoded, as `request_path` gives it); `raw` is the
    /// request's URI path (for `Content-Location` when a folder was asked for without
    /// its trailing slash).
    pub async fn answer(&self, headers: &HeaderMap, path: &str, raw: &str, body: &[u8], ctx: &RequestCtx) -> Answer {
        let refuse = |code: StatusCode, why: String| {
            tracing::info!(user = %Esc(&ctx.user.name), path = %Esc(path), "PROPFIND refused ({code}): {why}");
            Answer::Refused(code, why)
        };
        let deep = match headers.get("depth").map(|v| v.as_bytes()) {
            Some(b"0") => false,
            Some(b"1") | None => true,
            Some(_) => return refuse(StatusCode::BAD_REQUEST, "Depth must be 0 or 1".into()),
        };
        let ask = match parse(body) {
            Ok(a) => a,
            Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
        };
        let wants_quota = match &ask {
            Ask::Prop(l) | Ask::AllProp(l) => {
                l.iter().any(|p| matches!(p.live, Live::QuotaAvailable | Live::QuotaUsed))
            }
            Ask::PropName => true,
        };
        let Some(target) = self.fs.target_of(path, &ctx.user) else {
            return refuse(StatusCode::NOT_FOUND, "not found".into());
        };
        let (target, children) = match target {
            Target::Virtual(dir) => {
                let name = dir.rsplit('/').next().unwrap_or("");
                let t = Res { entry: virtual_entry(name), virt: true, quota: None };
                let kids = if deep {
                    Children::Virtual(self.virtual_children(&dir, ctx, wants_quota).await)
                } else {
                    Children::None
                };
                (t, kids)
            }
            Target::Mount(m, rel) => {
                let entry = match m.resolve(&rel).await {
                    Ok(e) => e,
                    Err(DriveError::NotFound | DriveError::NotADirectory) => {
                        return refuse(StatusCode::NOT_FOUND, "not found".into())
                    }
                    Err(e) => return self.drive_failed(e, path, ctx),
                };
                let quota = if wants_quota { self.fs.quota_of(&m).await } else { None };
                let kids = if deep && entry.is_dir {
                    match m.list(&rel).await {
                        Ok((_, list)) => Children::Listing { list, quota },
                        Err(DriveError::NotFound | DriveError::NotADirectory) => {
                            return refuse(StatusCode::NOT_FOUND, "not found".into())
                        }
                        Err(e) => return self.drive_failed(e, path, ctx),
                    }
                } else {
                    Children::None
                };
                let mut entry = entry;
                if rel.is_empty() {
                    // A mount's root is a folder whatever the drive calls it.
                    entry.is_dir = true;
                }
                (Res { entry, virt: false, quota }, kids)
            }
        };
        let has_children = !matches!(children, Children::None);
        // Read before the body streams (in Redis when the state is shared, once per request).
        // The members' names are only walked when the properties are in Redis.
        let names: Option<Box<dyn Iterator<Item = &str> + Send>> = match &children {
            Children::None => None,
            Children::Listing { list, .. } => Some(Box::new(list.iter().map(|e| e.name()))),
            Children::Virtual(v) => Some(Box::new(v.iter().map(|r| r.entry.name()))),
        };
        let dead = self.fs.props().snapshot(path, names).await;
        let locks = self.locks.snapshot(path, has_children).await;
        let mut href = Vec::with_capacity(self.prefix.len() + path.len() + 8);
        x::href_path(&mut href, self.prefix);
        x::href_path(&mut href, path);
        let mut dir_href = href.clone();
        if !dir_href.ends_with(b"/") {
            dir_href.push(b'/');
        }
        if target.entry.is_dir {
            href = dir_href.clone();
        }
        let ua = headers.get(header::USER_AGENT).map(|v| v.as_bytes()).unwrap_or_default();
        let contains = |needle: &[u8]| ua.windows(needle.len()).any(|w| w == needle);
        let ms_allprop = contains(b"Microsoft");
        let r = Render {
            root_decls: root_declarations(&ask, ms_allprop),
            ms_allprop,
            // dav-server zero-pads quota-used-bytes for Finder ("otherwise the value is
            // off by a factor of 10"); kept, the number is the same.
            finder: contains(b"WebDAVFS"),
            ask,
            prefix: self.prefix.to_string(),
            dead,
            locks,
            target,
            target_href: href,
            dir_path: path.to_string(),
            dir_href,
            children,
        };
        let mut resp = Response::new(MultiStatus { r: Box::new(r), stage: Stage::Head });
        *resp.status_mut() = StatusCode::MULTI_STATUS;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml; charset=utf-8"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        let body = resp.body();
        if body.r.target.entry.is_dir && !raw.ends_with('/') {
            if let Ok(v) = HeaderValue::from_bytes(&body.r.target_href) {
                resp.headers_mut().insert(header::CONTENT_LOCATION, v);
            }
        }
        Answer::MultiStatus(resp)
    }

    fn drive_failed(&self, e: DriveError, path: &str, ctx: &RequestCtx) -> Answer {
        tracing::warn!(user = %Esc(&ctx.user.name), path = %Esc(path), "PROPFIND failed: {e}");
        Answer::Drive(e)
    }

    async fn virtual_children(&self, dir: &str, ctx: &RequestCtx, wants_quota: bool) -> Vec<Res> {
        let user = &ctx.user;
        let mut out = vec![];
        for name in self.fs.table().virtual_children(dir, &|m| user.sees(m)) {
            let child = if dir == "/" { format!("/{name}") } else { format!("{dir}/{name}") };
            let res = match self.fs.table().get(&child) {
                Some(m) => self.mount_root(m, &name, wants_quota).await,
                None => Res { entry: virtual_entry(&name), virt: true, quota: None },
            };
            out.push(res);
        }
        out
    }

    /// A mount's root as a member of a virtual folder (named as the folder shows it).
    async fn mount_root(&self, m: &Arc<Mount>, name: &str, wants_quota: bool) -> Res {
        let quota = if wants_quota { self.fs.quota_of(m).await } else { None };
        match m.resolve("").await {
            Ok(mut e) => {
                e.set_name(name);
                e.is_dir = true;
                Res { entry: e, virt: false, quota }
            }
            Err(e) => {
                tracing::warn!(mount = %m.path(), "mount root unavailable: {e}");
                Res { entry: virtual_entry(name), virt: true, quota }
            }
        }
    }
}

static START: LazyLock<std::time::SystemTime> = LazyLock::new(std::time::SystemTime::now);

fn virtual_entry(name: &str) -> Entry {
    Entry::dir("", name, *START)
}

/// `xmlns:…` attributes for the root element: DAV: always, and every namespace the
/// request names (with the prefix the answer uses for it).
fn root_declarations(ask: &Ask, ms_allprop: bool) -> Vec<u8> {
    let mut out = b" xmlns:D=\"DAV:\"".to_vec();
    let mut done: Vec<&str> = vec![NS_DAV];
    let declare = |out: &mut Vec<u8>, prefix: &str, ns: &str| {
        out.extend_from_slice(b" xmlns:");
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(b"=\"");
        x::attr(out, ns);
        out.push(b'"');
    };
    let list: &[PropName] = match ask {
        Ask::AllProp(l) | Ask::Prop(l) => l,
        Ask::PropName => &PROPNAMES,
    };
    let extra = match ask {
        Ask::AllProp(_) if ms_allprop => &MS_ALLPROP[..],
        _ => &[],
    };
    for p in list.iter().chain(extra) {
        if p.ns.is_empty() || done.contains(&p.ns.as_str()) {
            continue;
        }
        declare(&mut out, &p.prefix, &p.ns);
        done.push(&p.ns);
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Head,
    Target,
    Children(usize),
    Tail,
    Done,
}

/// Everything a multistatus needs, gathered before the first byte.
struct Render {
    ask: Ask,
    root_decls: Vec<u8>,
    ms_allprop: bool,
    finder: bool,
    prefix: String,
    /// Dead properties of the target and its members, by decoded path.
    dead: HashMap<String, Vec<DavProp>>,
    locks: Vec<LockView>,
    target: Res,
    target_href: Vec<u8>,
    /// The target's decoded path and encoded href with a trailing `/`, for members.
    dir_path: String,
    dir_href: Vec<u8>,
    children: Children,
}

/// One resource as rendered: its entry and what only the caller knows.
struct Item<'a> {
    e: &'a Entry,
    virt: bool,
    quota: Option<Quota>,
    /// Decoded path (only when dead properties or locks must be looked up).
    path: Option<String>,
}

/// The streaming 207 body.
pub struct MultiStatus {
    r: Box<Render>,
    stage: Stage,
}

impl Body for MultiStatus {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.stage == Stage::Done {
            return Poll::Ready(None);
        }
        let mut out = Vec::with_capacity(CHUNK + 8 * 1024);
        while out.len() < CHUNK && this.stage != Stage::Done {
            this.stage = this.r.step(this.stage, &mut out);
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
    }

    fn is_end_stream(&self) -> bool {
        self.stage == Stage::Done
    }
}

impl Render {
    /// Render one step into `out`; the next stage.
    fn step(&self, stage: Stage, out: &mut Vec<u8>) -> Stage {
        match stage {
            Stage::Head => {
                out.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus");
                out.extend_from_slice(&self.root_decls);
                out.push(b'>');
                Stage::Target
            }
            Stage::Target => {
                let path = self.needs_paths().then(|| self.dir_path.clone());
                let t = &self.target;
                self.response(&self.target_href, &Item { e: &t.entry, virt: t.virt, quota: t.quota, path }, out);
                Stage::Children(0)
            }
            Stage::Children(i) => match &self.children {
                Children::None => Stage::Tail,
                Children::Listing { list, quota } => {
                    let Some(e) = list.get(i) else { return Stage::Tail };
                    if !vfs::mount::is_reserved_name(e.name()) {
                        self.member(&Item { e, virt: false, quota: *quota, path: None }, out);
                    }
                    Stage::Children(i + 1)
                }
                Children::Virtual(v) => {
                    let Some(c) = v.get(i) else { return Stage::Tail };
                    self.member(&Item { e: &c.entry, virt: c.virt, quota: c.quota, path: None }, out);
                    Stage::Children(i + 1)
                }
            },
            Stage::Tail => {
                out.extend_from_slice(b"</D:multistatus>\n");
                Stage::Done
            }
            Stage::Done => Stage::Done,
        }
    }

    fn needs_paths(&self) -> bool {
        !self.dead.is_empty() || !self.locks.is_empty()
    }

    fn member(&self, it: &Item<'_>, out: &mut Vec<u8>) {
        let mut href = Vec::with_capacity(self.dir_href.len() + it.e.name().len() * 3 + 1);
        href.extend_from_slice(&self.dir_href);
        x::href_segment(&mut href, it.e.name());
        if it.e.is_dir {
            href.push(b'/');
        }
        if self.needs_paths() {
            let base = if self.dir_path == "/" { "" } else { &self.dir_path };
            let it = Item { path: Some(format!("{base}/{}", it.e.name())), ..*it };
            self.response(&href, &it, out);
        } else {
            self.response(&href, it, out);
        }
    }

    fn dead_of(&self, it: &Item<'_>) -> &[DavProp] {
        it.path.as_ref().and_then(|p| self.dead.get(p)).map(Vec::as_slice).unwrap_or_default()
    }

    fn response(&self, href: &[u8], it: &Item<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(b"<D:response><D:href>");
        out.extend_from_slice(href);
        out.extend_from_slice(b"</D:href>");
        let dead = self.dead_of(it);
        match &self.ask {
            Ask::Prop(list) => self.propstats(list.iter().map(|p| (p, true)), dead, &[], it, out),
            Ask::AllProp(include) => {
                let ms: &[PropName] = if self.ms_allprop { &MS_ALLPROP } else { &[] };
                let named = ALLPROP.iter().chain(ms).map(|p| (p, false));
                let all = named.chain(include.iter().map(|p| (p, true)));
                // Dead properties not already named above follow the live ones.
                let rest: Vec<&DavProp> =
                    dead.iter().filter(|d| !ALLPROP.iter().chain(ms).chain(include).any(|p| p.is(d))).collect();
                self.propstats(all, dead, &rest, it, out)
            }
            Ask::PropName => self.propnames(dead, it, out),
        }
        out.extend_from_slice(b"</D:response>");
    }

    /// A `200` propstat with every property found (dead ones in `extra` appended), then
    /// a `404` one naming every `strict` property not found. A response always carries
    /// at least one propstat.
    fn propstats<'p>(
        &self,
        props: impl Iterator<Item = (&'p PropName, bool)>,
        dead: &[DavProp],
        extra: &[&DavProp],
        it: &Item<'_>,
        out: &mut Vec<u8>,
    ) {
        let start = out.len();
        out.extend_from_slice(b"<D:propstat><D:prop>");
        let body = out.len();
        let mut missing: Vec<&PropName> = vec![];
        for (p, strict) in props {
            if !self.value(p, dead, it, out) && strict {
                missing.push(p);
            }
        }
        for d in extra {
            write_dead(d, out);
        }
        if out.len() > body || missing.is_empty() {
            out.extend_from_slice(b"</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>");
        } else {
            out.truncate(start);
        }
        if !missing.is_empty() {
            out.extend_from_slice(b"<D:propstat><D:prop>");
            for p in missing {
                p.empty(out);
            }
            out.extend_from_slice(b"</D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>");
        }
    }

    fn propnames(&self, dead: &[DavProp], it: &Item<'_>, out: &mut Vec<u8>) {
        out.extend_from_slice(b"<D:propstat><D:prop>");
        let mut scratch = vec![];
        for p in PROPNAMES.iter() {
            scratch.clear();
            if self.live(p, it, &mut scratch) && !dead.iter().any(|d| p.is(d)) {
                p.empty(out);
            }
        }
        for d in dead {
            out.push(b'<');
            match d.namespace.as_deref().filter(|ns| !ns.is_empty()) {
                Some(ns) => {
                    out.extend_from_slice(b"x:");
                    out.extend_from_slice(d.name.as_bytes());
                    out.extend_from_slice(b" xmlns:x=\"");
                    x::attr(out, ns);
                    out.push(b'"');
                }
                None => out.extend_from_slice(d.name.as_bytes()),
            }
            out.extend_from_slice(b"/>");
        }
        out.extend_from_slice(b"</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>");
    }

    /// Write property `p` of `it` if it has one: the dead value where one may be set
    /// (it overrides the Win32 values pandav would compute), else the live one.
    fn value(&self, p: &PropName, dead: &[DavProp], it: &Item<'_>, out: &mut Vec<u8>) -> bool {
        let dead_first = matches!(
            p.live,
            Live::DeadOnly | Live::No | Live::Win32CreationTime | Live::Win32LastAccessTime | Live::Win32FileAttributes
        );
        if dead_first || p.live == Live::Checksums {
            let found = dead.iter().find(|d| p.is(d));
            if dead_first {
                if let Some(d) = found {
                    write_dead(d, out);
                    return true;
                }
            } else if self.live(p, it, out) {
                return true;
            } else if let Some(d) = found {
                write_dead(d, out);
                return true;
            } else {
                return false;
            }
        }
        self.live(p, it, out)
    }

    fn live(&self, p: &PropName, it: &Item<'_>, out: &mut Vec<u8>) -> bool {
        let e = it.e;
        match p.live {
            Live::CreationDate | Live::Win32CreationTime => {
                let Some(t) = e.created else { return false };
                p.open(out);
                if p.live == Live::CreationDate {
                    x::rfc3339(out, printable(t));
                } else {
                    x::http_date(out, printable(t));
                }
                p.close(out);
            }
            Live::LastModified | Live::Win32LastModifiedTime => {
                p.open(out);
                x::http_date(out, printable(e.modified));
                p.close(out);
            }
            Live::ContentLength => {
                if e.is_dir {
                    return false;
                }
                p.open(out);
                x::u64(out, e.size);
                p.close(out);
            }
            Live::ContentType => {
                p.open(out);
                out.extend_from_slice(if e.is_dir { "httpd/unix-directory" } else { content_type(e.name()) }.as_bytes());
                p.close(out);
            }
            Live::ETag => {
                p.open(out);
                if it.virt {
                    out.extend_from_slice(b"\"pandav-root\"");
                } else {
                    x::text(out, &e.etag());
                }
                p.close(out);
            }
            Live::ResourceType => {
                if e.is_dir {
                    out.extend_from_slice(b"<D:resourcetype><D:collection/></D:resourcetype>");
                } else {
                    out.extend_from_slice(b"<D:resourcetype/>");
                }
            }
            Live::SupportedLock => out.extend_from_slice(
                b"<D:supportedlock><D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>\
                  <D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry></D:supportedlock>",
            ),
            Live::LockDiscovery => self.lockdiscovery(it, out),
            Live::QuotaAvailable => {
                let Some(avail) = it.quota.and_then(|q| q.total.map(|t| t.saturating_sub(q.used))) else {
                    return false;
                };
                p.open(out);
                x::u64(out, avail);
                p.close(out);
            }
            Live::QuotaUsed => {
                let Some(q) = it.quota else { return false };
                p.open(out);
                if self.finder {
                    x::u64_padded(out, q.used, 14);
                } else {
                    x::u64(out, q.used);
                }
                p.close(out);
            }
            Live::Win32FileAttributes => {
                let mut attr = 0u32;
                if e.name().starts_with('.') {
                    attr |= 0x02; // hidden
                }
                attr |= if e.is_dir { 0x10 } else { 0x20 }; // directory / archive
                p.open(out);
                out.extend_from_slice(format!("{attr:08x}").as_bytes());
                p.close(out);
            }
            Live::Checksums => {
                let Some(c) = super::props::checksums_text(e) else { return false };
                p.open(out);
                out.extend_from_slice(b"<oc:checksum>");
                x::text(out, &c);
                out.extend_from_slice(b"</oc:checksum>");
                p.close(out);
            }
            Live::Win32LastAccessTime | Live::Executable | Live::DeadOnly | Live::No => return false,
        }
        true
    }

    fn lockdiscovery(&self, it: &Item<'_>, out: &mut Vec<u8>) {
        let mine: Vec<&LockView> = match &it.path {
            Some(p) => self.locks.iter().filter(|l| l.covers(p)).collect(),
            None => vec![],
        };
        if mine.is_empty() {
            out.extend_from_slice(b"<D:lockdiscovery/>");
            return;
        }
        out.extend_from_slice(b"<D:lockdiscovery>");
        for l in mine {
            out.extend_from_slice(b"<D:activelock><D:lockscope>");
            out.extend_from_slice(if l.shared { b"<D:shared/>" } else { b"<D:exclusive/>" });
            out.extend_from_slice(b"</D:lockscope><D:locktype><D:write/></D:locktype><D:depth>");
            out.extend_from_slice(if l.deep { b"infinity" } else { b"0" });
            out.extend_from_slice(b"</D:depth>");
            if let Some(o) = &l.owner {
                out.extend_from_slice(o.as_bytes());
            }
            out.extend_from_slice(b"<D:timeout>Second-");
            x::u64(out, l.timeout.as_secs());
            out.extend_from_slice(b"</D:timeout>");
            // Shown to everyone, as dav-server did: only its owner can use it (`UserLocks`).
            out.extend_from_slice(b"<D:locktoken><D:href>");
            x::text(out, &l.token);
            out.extend_from_slice(b"</D:href></D:locktoken>");
            out.extend_from_slice(b"<D:lockroot><D:href>");
            x::href_path(out, &self.prefix);
            x::href_path(out, &l.path);
            if l.collection && !l.path.ends_with('/') {
                out.push(b'/');
            }
            out.extend_from_slice(b"</D:href></D:lockroot></D:activelock>");
        }
        out.extend_from_slice(b"</D:lockdiscovery>");
    }
}

/// A dead property's stored XML (as dav-server serialised it at PROPPATCH, possibly
/// after an XML declaration), or its empty element.
fn write_dead(d: &DavProp, out: &mut Vec<u8>) {
    match &d.xml {
        Some(xml) => {
            let mut s = xml.as_slice();
            if s.starts_with(b"<?xml") {
                if let Some(end) = s.windows(2).position(|w| w == b"?>") {
                    s = &s[end + 2..];
                }
            }
            out.extend_from_slice(s.trim_ascii());
        }
        None => {
            let ns = d.namespace.as_deref().unwrap_or("");
            out.extend_from_slice(b"<x:");
            out.extend_from_slice(d.name.as_bytes());
            out.extend_from_slice(b" xmlns:x=\"");
            x::attr(out, ns);
            out.extend_from_slice(b"\"/>");
        }
    }
}

/// The type dav-server gave a file: by the extension of its name.
fn content_type(name: &str) -> &'static str {
    name.rsplit_once('.')
        .and_then(|(_, ext)| mime_guess::from_ext(ext).first_raw())
        .unwrap_or("application/octet-stream")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(a: &Ask) -> Vec<(String, String)> {
        match a {
            Ask::Prop(l) | Ask::AllProp(l) => l.iter().map(|p| (p.ns.clone(), p.name.clone())).collect(),
            Ask::PropName => vec![],
        }
    }

    #[test]
    fn parses_what_clients_send() {
        assert_eq!(parse(b"").unwrap(), Ask::AllProp(vec![]));
        assert_eq!(parse(b" \r\n").unwrap(), Ask::AllProp(vec![]));
        // neon (davfs2): default namespace per property, CRLF between them.
        let neon = b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<propfind xmlns=\"DAV:\"><prop>\r\n\
            <getetag xmlns=\"DAV:\"/>\r\n<executable xmlns=\"http://apache.org/dav/props/\"/>\r\n</prop></propfind>\r\n";
        let a = parse(neon).unwrap();
        assert_eq!(names(&a), [("DAV:".into(), "getetag".into()), (NS_APACHE.into(), "executable".into())]);
        let inc = br#"<D:propfind xmlns:D="DAV:" xmlns:o="http://owncloud.org/ns"><D:allprop/><D:include><o:checksums/><x xmlns="urn:x"/></D:include></D:propfind>"#;
        let a = parse(inc).unwrap();
        assert!(matches!(a, Ask::AllProp(_)));
        assert_eq!(names(&a), [(NS_OC.into(), "checksums".into()), ("urn:x".into(), "x".into())]);
        assert_eq!(parse(br#"<propfind xmlns="DAV:"><propname/></propfind>"#).unwrap(), Ask::PropName);
        // Duplicates are asked once.
        let dup = br#"<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:getetag/></D:prop></D:propfind>"#;
        assert_eq!(names(&parse(dup).unwrap()).len(), 1);
        // Unknown namespaces get their own prefixes; no namespace stays unprefixed.
        let odd = br#"<D:propfind xmlns:D="DAV:"><D:prop><a:p xmlns:a="urn:a"/><b:q xmlns:b="urn:b"/><r xmlns=""/></D:prop></D:propfind>"#;
        let Ask::Prop(l) = parse(odd).unwrap() else { panic!() };
        assert_eq!(l.iter().map(|p| p.prefix.as_str()).collect::<Vec<_>>(), ["ns0", "ns1", ""]);
    }

    #[test]
    fn refuses_what_is_not_a_propfind() {
        for b in [
            &br#"<D:propertyupdate xmlns:D="DAV:"/>"#[..],
            br#"<propfind><prop/></propfind>"#,
            br#"<D:propfind xmlns:D="DAV:"/>"#,
            br#"<D:propfind xmlns:D="DAV:"><D:prop/><D:allprop/></D:propfind>"#,
        ] {
            assert!(parse(b).is_err(), "{}", String::from_utf8_lossy(b));
        }
        let many: String = (0..=MAX_PROPS).map(|i| format!("<x:p{i}/>")).collect();
        let body = format!("<D:propfind xmlns:D=\"DAV:\" xmlns:x=\"urn:x\"><D:prop>{many}</D:prop></D:propfind>");
        assert!(parse(body.as_bytes()).is_err());
    }
}
