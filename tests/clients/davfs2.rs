//! davfs2 (neon): lists with `ne_propfind_named` (each property with its own default
//! namespace, Apache's `executable` among them), reads `df` from the quota properties,
//! locks before writing and writes with `If` and `If-Match` (the getetag property,
//! which it keeps with its quotes), checks creation with `If-None-Match: *`.

use crate::*;

const UA: &str = "davfs2/1.6.1 neon/0.32.2";

/// neon's body for davfs2's `prop_names`.
const LIST: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<propfind xmlns=\"DAV:\"><prop>\r\n<getetag xmlns=\"DAV:\"/>\r\n<getcontentlength xmlns=\"DAV:\"/>\r\n<creationdate xmlns=\"DAV:\"/>\r\n<getlastmodified xmlns=\"DAV:\"/>\r\n<resourcetype xmlns=\"DAV:\"/>\r\n<executable xmlns=\"http://apache.org/dav/props/\"/>\r\n</prop></propfind>\r\n";

const QUOTA: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<propfind xmlns=\"DAV:\"><prop>\r\n<quota-available-bytes xmlns=\"DAV:\"/>\r\n<quota-used-bytes xmlns=\"DAV:\"/>\r\n</prop></propfind>\r\n";

const LOCK: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<lockinfo xmlns='DAV:'>\r\n <lockscope><exclusive/></lockscope>\r\n<locktype><write/></locktype><owner>alice</owner>\r\n</lockinfo>\r\n";

#[test]
fn davfs2_neon() {
    let fx = Fx::new();
    let h = |extra: &[(&'static str, &'static str)]| {
        hdrs(&[("User-Agent", UA), ("Content-Type", "application/xml")], extra)
    };
    let mut r = Replay::new("davfs2 / neon");
    r.step("OPTIONS: class 2 (else davfs2 mounts read-only)", || {
        check(
            headers(&fx.req("OPTIONS", "/data/", &[("User-Agent", UA)], None))
                .get("dav")
                .is_some_and(|d| d.contains('2')),
            || "no class 2".into(),
        )
    });
    let mut etag = String::new();
    r.step("PROPFIND Depth 1: executable in a 404 propstat, the rest once", || {
        let rs = ms(&fx.req("PROPFIND", "/data/", &h(&[("Depth", "1")]), Some(LIST.as_bytes())))?;
        each_once(
            &rs,
            &[
                ("DAV:", "getetag"),
                ("DAV:", "getlastmodified"),
                ("DAV:", "resourcetype"),
                ("http://apache.org/dav/props/", "executable"),
            ],
        )?;
        for x in &rs {
            check(matches!(x.prop("http://apache.org/dav/props/", "executable"), Some((404, _))), || format!("{x:?}"))?;
            check(x.first_status() == 200, || format!("{x:?}"))?;
        }
        let notes = find(&rs, "/data/notes.txt")?;
        etag = notes.text("DAV:", "getetag").unwrap_or_default();
        check(etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'), || format!("getetag {etag:?}"))
    });
    r.step("df: quota properties", || {
        let rs = ms(&fx.req("PROPFIND", "/data/", &h(&[("Depth", "0")]), Some(QUOTA.as_bytes())))?;
        let root = find(&rs, "/data/")?;
        check(root.propstats.len() == 1 && root.first_status() == 200, || format!("{root:?}"))
    });
    let mut token = String::new();
    r.step("LOCK before writing", || {
        let l = fx.req("LOCK", "/data/notes.txt", &h(&[("Timeout", "Second-1800")]), Some(LOCK.as_bytes()));
        want_status(&l, &[200])?;
        token = l.header("Lock-Token").unwrap_or_default().to_string();
        check(!token.is_empty(), || "no token".into())
    });
    let cond = format!("({token})");
    r.step("PUT with If: (<token>) and If-Match: <getetag>", || {
        let c = [("User-Agent", UA), ("If", cond.as_str()), ("If-Match", etag.as_str())];
        want_status(&fx.req("PUT", "/data/notes.txt", &c, Some(b"from davfs2")), &[204])
    });
    r.step("PROPFIND Depth 0 shows the lock in lockdiscovery", || {
        let body = b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<propfind xmlns=\"DAV:\"><prop>\r\n<lockdiscovery xmlns=\"DAV:\"/>\r\n</prop></propfind>\r\n";
        let rs = ms(&fx.req("PROPFIND", "/data/notes.txt", &h(&[("Depth", "0")]), Some(body)))?;
        let (code, ld) = rs[0].prop("DAV:", "lockdiscovery").ok_or("no lockdiscovery")?;
        let active = ld.get_child(("activelock", "DAV:")).ok_or_else(|| format!("no activelock: {ld:?}"))?;
        let t = active
            .get_child(("locktoken", "DAV:"))
            .and_then(|l| l.get_child(("href", "DAV:")))
            .and_then(|h| h.get_text())
            .unwrap_or_default();
        check(code == 200 && format!("<{t}>") == token, || format!("{t:?} vs {token:?}"))
    });
    r.step("UNLOCK", || {
        want_status(&fx.req("UNLOCK", "/data/notes.txt", &[("User-Agent", UA), ("Lock-Token", &token)], None), &[204])
    });
    r.step("create check: PUT with If-None-Match: * on an existing file is 412", || {
        want_status(
            &fx.req("PUT", "/data/notes.txt", &[("User-Agent", UA), ("If-None-Match", "*")], Some(b"x")),
            &[412],
        )
    });
    r.step("GET the whole file into the cache", || {
        let g = fx.req("GET", "/data/notes.txt", &[("User-Agent", UA)], None);
        check(g.status == 200 && g.body == b"from davfs2" && g.header("Content-Length") == Some("11"), || {
            format!("{g:?}")
        })
    });
    r.finish();
}
