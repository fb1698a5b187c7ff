//! macOS Finder (WebDAVFS): read-only unless LOCK works; lists with its own `prop`
//! list (Apple's `appledoubleheader` included); asks for RFC 4331 quota (and the old
//! `quota`/`quotaused`); probes `._name` and `.DS_Store`; uploads chunked with
//! `X-Expected-Entity-Length`; sends names in NFD.

use crate::*;

pub const UA: &str = "WebDAVFS/3.0.0 (03008000) Darwin/22.1.0 (x86_64)";

/// The listing body (webdavfs `network_opendir`).
pub const LIST: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:propfind xmlns:D=\"DAV:\">\n<D:prop xmlns:A=\"http://www.apple.com/webdav_fs/props/\">\n<D:getlastmodified/>\n<D:getcontentlength/>\n<D:creationdate/>\n<D:resourcetype/>\n<A:appledoubleheader/>\n</D:prop>\n</D:propfind>\n";

/// The statfs body.
pub const QUOTA: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:propfind xmlns:D=\"DAV:\">\n<D:prop>\n<D:quota-available-bytes/>\n<D:quota-used-bytes/>\n<D:quota/>\n<D:quotaused/>\n</D:prop>\n</D:propfind>\n";

const LOCK: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:lockinfo xmlns:D=\"DAV:\">\n<D:lockscope><D:exclusive/></D:lockscope>\n<D:locktype><D:write/></D:locktype>\n<D:owner>\n<D:href>http://www.apple.com/webdav_fs/</D:href>\n</D:owner>\n</D:lockinfo>\n";

#[test]
fn macos_finder() {
    let fx = Fx::new();
    let h = |extra: &[(&'static str, &'static str)]| hdrs(&[("User-Agent", UA)], extra);
    let mut r = Replay::new("macOS Finder");
    r.step("OPTIONS: class 2 (else Finder mounts read-only)", || {
        let o = fx.req("OPTIONS", "/data/", &h(&[]), None);
        check(headers(&o).get("dav").is_some_and(|d| d.contains('2')), || format!("{:?}", o.headers))
    });
    r.step("PROPFIND Depth 0 of the mount with the listing body", || {
        let rs = ms(&fx.req("PROPFIND", "/data/", &h(&[("Depth", "0")]), Some(LIST.as_bytes())))?;
        check(rs.len() == 1 && find(&rs, "/data/")?.is_collection(), || format!("{rs:?}"))
    });
    r.step("statfs PROPFIND: quota-available-bytes and quota-used-bytes known", || {
        let rs = ms(&fx.req("PROPFIND", "/data/", &h(&[("Depth", "0")]), Some(QUOTA.as_bytes())))?;
        let root = find(&rs, "/data/")?;
        let avail = root.text("DAV:", "quota-available-bytes").ok_or_else(|| format!("{root:?}"))?;
        let used = root.text("DAV:", "quota-used-bytes").ok_or_else(|| format!("{root:?}"))?;
        check(avail.parse::<u64>().is_ok_and(|n| n > 0) && used.parse::<u64>().is_ok(), || format!("{avail} {used}"))?;
        // The old names are not ours: reported missing, not dropped.
        check(matches!(root.prop("DAV:", "quota"), Some((404, _))), || format!("{root:?}"))?;
        check(matches!(root.prop("DAV:", "quotaused"), Some((404, _))), || format!("{root:?}"))
    });
    r.step("PROPFIND Depth 1 of a folder: each entry once, 200 first, appledoubleheader 404", || {
        let rs = ms(&fx.req("PROPFIND", "/data/movies/", &h(&[("Depth", "1")]), Some(LIST.as_bytes())))?;
        check(rs.len() == 3, || format!("{} responses", rs.len()))?;
        each_once(&rs, &[("DAV:", "getlastmodified"), ("DAV:", "resourcetype")])?;
        let film = find(&rs, "/data/movies/film%20one.mkv")?;
        check(film.first_status() == 200, || format!("{film:?}"))?;
        check(film.text("DAV:", "getcontentlength").as_deref() == Some("300000"), || format!("{film:?}"))?;
        check(matches!(film.prop("http://www.apple.com/webdav_fs/props/", "appledoubleheader"), Some((404, _))), || {
            format!("{film:?}")
        })
    });
    r.step("probe of ._film one.mkv: 404", || {
        want_status(
            &fx.req("PROPFIND", "/data/movies/._film%20one.mkv", &h(&[("Depth", "0")]), Some(LIST.as_bytes())),
            &[404],
        )
    });
    r.step("probe of .DS_Store: 404", || {
        want_status(&fx.req("PROPFIND", "/data/.DS_Store", &h(&[("Depth", "0")]), Some(LIST.as_bytes())), &[404])
    });
    let mut token = String::new();
    r.step("LOCK a new file", || {
        let l = fx.req(
            "LOCK",
            "/data/movies/new.txt",
            &h(&[("Depth", "0"), ("Timeout", "Second-600")]),
            Some(LOCK.as_bytes()),
        );
        want_status(&l, &[200, 201])?;
        token = l.header("Lock-Token").unwrap_or_default().to_string();
        check(!token.is_empty(), || format!("{:?}", l.headers))
    });
    let cond = format!("({token})");
    r.step("PUT chunked with X-Expected-Entity-Length and the lock token", || {
        let c = [
            ("User-Agent", UA),
            ("If", cond.as_str()),
            ("Transfer-Encoding", "chunked"),
            ("X-Expected-Entity-Length", "9"),
        ];
        want_status(&fx.req("PUT", "/data/movies/new.txt", &c, Some(b"from mac\n")), &[200, 201, 204])?;
        let on_disk = std::fs::read(fx.t.join("data/movies/new.txt")).map_err(|e| e.to_string())?;
        check(on_disk == b"from mac\n", || format!("{on_disk:?}"))
    });
    r.step("UNLOCK", || {
        want_status(
            &fx.req("UNLOCK", "/data/movies/new.txt", &[("User-Agent", UA), ("Lock-Token", &token)], None),
            &[204],
        )
    });
    r.step("GET has Content-Length", || {
        let g = fx.req("GET", "/data/movies/new.txt", &h(&[]), None);
        check(g.header("Content-Length") == Some("9"), || format!("{:?}", g.headers))
    });
    // "café.txt" exists in NFC; Finder names it in NFD.
    let nfd = "/data/movies/cafe%CC%81.txt";
    r.step("PROPFIND of a name in NFD finds the file stored in NFC", || {
        let rs = ms(&fx.req("PROPFIND", nfd, &h(&[("Depth", "0")]), Some(LIST.as_bytes())))?;
        check(rs.len() == 1 && rs[0].text("DAV:", "getcontentlength").as_deref() == Some("13"), || format!("{rs:?}"))
    });
    r.step("GET of the NFD name reads the NFC file", || {
        let g = fx.req("GET", nfd, &h(&[]), None);
        check(g.status == 200 && g.body == b"stored in NFC", || format!("{} {}", g.status, g.text()))
    });
    r.step("PUT of the NFD name overwrites the NFC file, no second file", || {
        want_status(&fx.req("PUT", nfd, &h(&[]), Some(b"saved from Finder")), &[204])?;
        let names: Vec<String> = std::fs::read_dir(fx.t.join("data/movies"))
            .map_err(|e| e.to_string())?
            .map(|d| d.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("caf"))
            .collect();
        check(names == ["caf\u{e9}.txt"], || format!("{names:?}"))?;
        let on_disk = std::fs::read(fx.t.join("data/movies/caf\u{e9}.txt")).map_err(|e| e.to_string())?;
        check(on_disk == b"saved from Finder", || format!("{on_disk:?}"))
    });
    r.step("the listing keeps the stored (NFC) name", || {
        let rs = ms(&fx.req("PROPFIND", "/data/movies/", &h(&[("Depth", "1")]), Some(LIST.as_bytes())))?;
        find(&rs, "/data/movies/caf%C3%A9.txt").map(|_| ())
    });
    r.finish();
}
