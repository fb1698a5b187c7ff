//! GNOME (gvfs, Nautilus, gedit): lists with its `ls_propnames`; saving a file is
//! "HEAD with If-Match: <the getetag property>" then "PUT with the same If-Match", so the
//! property must be the quoted entity tag of the ETag header, or the save fails with
//! "the file was externally modified"; creates files with a body-less PUT.

use crate::*;

const UA: &str = "gvfs/1.50.4";

/// `propfind_request_new` with `ls_propnames` (no namespace given: `<D:name/>`).
const LS: &str = "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n <D:propfind xmlns:D=\"DAV:\">\n  <D:prop>\n<D:creationdate/>\n<D:displayname/>\n<D:getcontentlength/>\n<D:getcontenttype/>\n<D:getetag/>\n<D:getlastmodified/>\n<D:resourcetype/>\n  </D:prop>\n </D:propfind>";

/// `stat_location_start`.
const STAT: &str = "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n <D:propfind xmlns:D=\"DAV:\">\n  <D:prop>\n<D:resourcetype/>\n<D:getcontentlength/>\n  </D:prop>\n </D:propfind>";

/// `query_fs_info`.
const FS_INFO: &str = "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n <D:propfind xmlns:D=\"DAV:\">\n  <D:prop>\n<D:quota-available-bytes/>\n<D:quota-used-bytes/>\n  </D:prop>\n </D:propfind>";

#[test]
fn gnome_gvfs() {
    let fx = Fx::new();
    let h = |extra: &[(&'static str, &'static str)]| {
        hdrs(&[("User-Agent", UA), ("Content-Type", "application/xml")], extra)
    };
    let mut r = Replay::new("GNOME gvfs");
    r.step("mount: OPTIONS then PROPFIND Depth 0 (stat)", || {
        want_status(&fx.req("OPTIONS", "/data/", &[("User-Agent", UA)], None), &[200])?;
        let rs = ms(&fx.req("PROPFIND", "/data/", &h(&[("Depth", "0")]), Some(STAT.as_bytes())))?;
        check(find(&rs, "/data/")?.is_collection(), || format!("{rs:?}"))
    });
    let mut etag = String::new();
    r.step("enumerate: PROPFIND Depth 1 with ls_propnames, every property once", || {
        let rs = ms(&fx.req("PROPFIND", "/data/", &h(&[("Depth", "1")]), Some(LS.as_bytes())))?;
        each_once(
            &rs,
            &[
                ("DAV:", "creationdate"),
                ("DAV:", "displayname"),
                ("DAV:", "getcontentlength"),
                ("DAV:", "getcontenttype"),
                ("DAV:", "getetag"),
                ("DAV:", "getlastmodified"),
                ("DAV:", "resourcetype"),
            ],
        )?;
        let notes = find(&rs, "/data/notes.txt")?;
        etag = notes.text("DAV:", "getetag").ok_or_else(|| format!("{notes:?}"))?;
        check(notes.text("DAV:", "getcontenttype").as_deref() == Some("text/plain"), || format!("{notes:?}"))?;
        let root = find(&rs, "/data/")?;
        check(root.text("DAV:", "getcontenttype").as_deref() == Some("httpd/unix-directory"), || format!("{root:?}"))
    });
    r.step("the getetag property is the quoted ETag header", || {
        let head = fx.req("HEAD", "/data/notes.txt", &[("User-Agent", UA)], None);
        let header = head.header("ETag").unwrap_or_default().to_string();
        check(etag.starts_with('"') && etag.ends_with('"') && etag == header, || {
            format!("property {etag:?}, header {header:?}")
        })
    });
    r.step("replace: HEAD with If-Match: <getetag> is 200, not 412", || {
        want_status(&fx.req("HEAD", "/data/notes.txt", &[("User-Agent", UA), ("If-Match", &etag)], None), &[200])
    });
    r.step("the quoted getetag works in If-None-Match (304) and If-Range (206)", || {
        let g = fx.req("GET", "/data/notes.txt", &[("User-Agent", UA), ("If-None-Match", &etag)], None);
        want_status(&g, &[304])?;
        let g =
            fx.req("GET", "/data/notes.txt", &[("User-Agent", UA), ("Range", "bytes=0-4"), ("If-Range", &etag)], None);
        check(g.status == 206 && g.body == b"hello", || format!("{} {:?}", g.status, g.text()))
    });
    r.step("replace: PUT with If-Match: <getetag> saves", || {
        want_status(
            &fx.req("PUT", "/data/notes.txt", &[("User-Agent", UA), ("If-Match", &etag)], Some(b"edited in gedit")),
            &[200, 204],
        )?;
        let on_disk = std::fs::read(fx.t.join("data/notes.txt")).map_err(|e| e.to_string())?;
        check(on_disk == b"edited in gedit", || format!("{on_disk:?}"))
    });
    r.step("a stale getetag is still refused (412: externally modified)", || {
        want_status(&fx.req("HEAD", "/data/notes.txt", &[("User-Agent", UA), ("If-Match", &etag)], None), &[412])?;
        want_status(
            &fx.req("PUT", "/data/notes.txt", &[("User-Agent", UA), ("If-Match", &etag)], Some(b"lost")),
            &[412],
        )
    });
    r.step("an unquoted entity tag is a bad request, not a match", || {
        let bare = etag.trim_matches('"').to_string();
        want_status(&fx.req("PUT", "/data/notes.txt", &[("User-Agent", UA), ("If-Match", &bare)], Some(b"x")), &[400])
    });
    r.step("create: HEAD of the new name is 404, then a body-less PUT creates it", || {
        want_status(&fx.req("HEAD", "/data/Untitled%20Document", &[("User-Agent", UA)], None), &[404])?;
        want_status(&fx.req("PUT", "/data/Untitled%20Document", &[("User-Agent", UA)], None), &[201])?;
        check(fx.t.join("data/Untitled Document").is_file(), || "not created".into())
    });
    r.step("query_fs_info: quota properties", || {
        let rs = ms(&fx.req("PROPFIND", "/data/", &h(&[("Depth", "0")]), Some(FS_INFO.as_bytes())))?;
        let root = find(&rs, "/data/")?;
        check(
            root.text("DAV:", "quota-available-bytes").is_some() && root.text("DAV:", "quota-used-bytes").is_some(),
            || format!("{root:?}"),
        )
    });
    r.step("rename: MOVE with Overwrite: F", || {
        let dest = format!("{}/data/renamed.txt", fx.srv.url());
        want_status(
            &fx.req(
                "MOVE",
                "/data/Untitled%20Document",
                &[("User-Agent", UA), ("Destination", &dest), ("Overwrite", "F")],
                None,
            ),
            &[201],
        )
    });
    r.finish();
}
