//! Hostile clients against the real binary (issue 9), one module per class of attack:
//!
//! - `copymove`: Destination forms that emptied every mount, refused COPY/MOVE that
//!   still deleted the destination, overwrite that must replace (items 1 and 2);
//! - `xml`: nested XML bodies that overflowed the stack (item 5);
//! - `locks`: LOCK/UNLOCK of `/` poisoning the lock system, locks without permission,
//!   without end, without bound, removable by anyone (items 6 and 7);
//! - `panics`: malformed conditional headers and values that panicked (item 8);
//! - `props`: dead properties without a total bound (item 12);
//! - `propfind`: PROPFIND and time PROPPATCH, answered by pandav (issue 12);
//! - `smaller`: the health page, forged log lines, bodies that stop coming.
//!
//! Every test compares the served trees before and after where data is at stake, and
//! ends by checking that the server is alive, healthy and never panicked.

#[path = "../common/mod.rs"]
mod common;

mod copymove;
mod locks;
mod panics;
mod propfind;
mod props;
mod smaller;
mod xml;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use common::*;

pub const T: Duration = Duration::from_secs(30);
pub const PW: &str = "pw";

/// Four mounts and four kinds of user:
///
/// - `/a`, `/b`: writable local folders; `/ro`: a read-only mount; `/v/c`: a mount
///   below the virtual folder `/v`;
/// - `full` and `full2` (everything, read-write), `ro` (everything, read-only), `b`
///   (only `/b`, read-write), and anonymous clients (read-only).
pub struct Fx {
    pub t: TestDir,
    pub srv: Server,
    pub roots: Vec<(String, PathBuf)>,
    pub extra: String,
}

pub const MOUNTS: [(&str, &str); 4] = [("/a", "a"), ("/b", "b"), ("/ro", "ro"), ("/v/c", "c")];

impl Default for Fx {
    fn default() -> Fx {
        Fx::new()
    }
}

impl Fx {
    pub fn new() -> Fx {
        Fx::with_server("")
    }

    /// The fixture with extra `[server]` lines.
    pub fn with_server(extra: &str) -> Fx {
        let t = TestDir::new();
        t.write("a/src.txt", "source");
        t.write("a/dir/x.txt", "x");
        t.write("a/dir/sub/y.txt", "y");
        t.write("b/precious.txt", "precious");
        t.write("b/keep/k.txt", "k");
        t.write("ro/r.txt", "read-only");
        t.write("c/c.txt", "c");
        let srv = Server::start(&t, &Self::config(&t, extra));
        let roots = MOUNTS.iter().map(|(m, d)| (m.to_string(), t.join(d))).collect();
        Fx { t, srv, roots, extra: extra.to_string() }
    }

    fn config(t: &TestDir, extra: &str) -> ConfigBuilder {
        ConfigBuilder::new()
            .server(&format!("allow_anonymous = true\n{extra}"))
            .user("full", PW, &[], false)
            .user("full2", PW, &[], false)
            .user("ro", PW, &[], true)
            .user("b", PW, &["/b"], false)
            .local("/a", &t.join("a"))
            .local("/b", &t.join("b"))
            .local_with("/ro", &t.join("ro"), "read_only = true")
            .local("/v/c", &t.join("c"))
    }

    /// Stop the server and start it again on the same config and state.
    pub fn restart(&mut self) {
        let config = self.srv.config.clone();
        // Dropping the old server kills it before the new one starts.
        let old = std::mem::replace(&mut self.srv, Server::start_file(&config, self.t.path()));
        drop(old);
    }

    pub fn host(&self) -> String {
        self.srv.addr().to_string()
    }

    /// `method path` as `user` (`None`: anonymous) with extra header lines.
    pub fn req(&self, method: &str, path: &str, user: Option<&str>, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let mut r = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.host(),
            body.len()
        );
        if let Some(u) = user {
            r.push_str(&format!("Authorization: {}\r\n", basic(u, PW)));
        }
        for (k, v) in headers {
            r.push_str(&format!("{k}: {v}\r\n"));
        }
        r.push_str("\r\n");
        let mut bytes = r.into_bytes();
        bytes.extend_from_slice(body);
        let raw = raw_request(self.srv.addr(), &bytes, T);
        Resp { status: status_of(&raw), raw }
    }

    /// Every file (with its bytes) and folder (with `None`) below every mount's root.
    pub fn snapshot(&self) -> BTreeMap<String, Option<Vec<u8>>> {
        let mut out = BTreeMap::new();
        for (m, root) in &self.roots {
            out.insert(format!("{m}/"), None);
            for rel in walk(root) {
                let data = if rel.ends_with('/') { None } else { Some(std::fs::read(root.join(&rel)).unwrap()) };
                out.insert(format!("{m}/{rel}"), data);
            }
        }
        out
    }

    /// Alive, healthy, and no panic in the log.
    pub fn assert_clean(&mut self) {
        self.srv.assert_healthy();
        let log = self.srv.log();
        assert!(!log.contains("panicked"), "the server panicked:\n{log}");
    }

    pub fn file(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.t.join(rel)).ok()
    }
}

pub struct Resp {
    pub status: Option<u16>,
    pub raw: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// The body after the header block.
    pub fn body(&self) -> String {
        let t = self.text();
        t.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let t = self.text();
        let head = t.split("\r\n\r\n").next().unwrap_or("");
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    #[track_caller]
    pub fn expect(&self, want: u16, what: &str) -> &Resp {
        assert_eq!(self.status, Some(want), "{what}: {}", self.text());
        self
    }
}

/// Differences between two snapshots, for messages.
pub fn diff(a: &BTreeMap<String, Option<Vec<u8>>>, b: &BTreeMap<String, Option<Vec<u8>>>) -> String {
    let mut out = String::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push_str(&format!("  gone: {k}\n")),
            Some(w) if w != v => out.push_str(&format!("  changed: {k}\n")),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        out.push_str(&format!("  new: {k}\n"));
    }
    out
}

/// Nothing changed on disk.
#[track_caller]
pub fn assert_same(before: &BTreeMap<String, Option<Vec<u8>>>, fx: &Fx, what: &str) {
    let after = fx.snapshot();
    assert!(before == &after, "{what} changed the tree:\n{}", diff(before, &after));
}

/// A LOCK body.
pub fn lockinfo(owner: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:exclusive/></D:lockscope>\
         <D:locktype><D:write/></D:locktype><D:owner>{owner}</D:owner></D:lockinfo>"
    )
    .into_bytes()
}

/// The lock token of a successful LOCK answer.
pub fn lock_token(r: &Resp) -> String {
    r.header("Lock-Token")
        .map(|t| t.trim_matches(|c| c == '<' || c == '>').to_string())
        .unwrap_or_else(|| panic!("no Lock-Token in {}", r.text()))
}
