//! rclone's webdav remote (1.75): lists with `standardProps` (vendor other) or
//! `owncloudProps` (owncloud); reads only the *first* propstat's status of each
//! response (`Prop.StatusOK`), so the 200 propstat must come first; `About` asks for
//! the quota; sets mtimes with PROPPATCH of `DAV:lastmodified` (with `oc:checksums`
//! when it knows a hash); checks that a range comes back 206.

use crate::*;

const UA: &str = "rclone/v1.75.2";

const STANDARD: &str = "<?xml version=\"1.0\"?>\n<d:propfind xmlns:d=\"DAV:\">\n <d:prop>\n  <d:displayname/>\n  <d:getlastmodified/>\n  <d:getcontentlength/>\n  <d:resourcetype/>\n </d:prop>\n</d:propfind>\n";

const OWNCLOUD: &str = "<?xml version=\"1.0\"?>\n<d:propfind  xmlns:d=\"DAV:\" xmlns:oc=\"http://owncloud.org/ns\" xmlns:nc=\"http://nextcloud.org/ns\">\n <d:prop>\n  <d:displayname />\n  <d:getlastmodified />\n  <d:getcontentlength />\n  <d:resourcetype />\n  <oc:checksums />\n  <oc:permissions />\n </d:prop>\n</d:propfind>\n";

const ABOUT: &str = "<?xml version=\"1.0\" ?>\n<D:propfind xmlns:D=\"DAV:\">\n <D:prop>\n  <D:quota-available-bytes/>\n  <D:quota-used-bytes/>\n </D:prop>\n</D:propfind>\n";

const OC: &str = "http://owncloud.org/ns";

fn propset(secs: u64) -> String {
    format!("<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<D:propertyupdate xmlns:D=\"DAV:\">\n <D:set>\n  <D:prop>\n   <lastmodified xmlns=\"DAV:\">{secs}</lastmodified>\n  </D:prop>\n </D:set>\n</D:propertyupdate>\n")
}

#[test]
fn rclone_webdav_remote() {
    let fx = Fx::new();
    let h = |extra: &[(&'static str, &'static str)]| hdrs(&[("User-Agent", UA)], extra);
    let mut r = Replay::new("rclone");
    r.step("vendor other: list, the first status of every entry is 200", || {
        let rs = ms(&fx.req("PROPFIND", "/data/", &h(&[("Depth", "1")]), Some(STANDARD.as_bytes())))?;
        check(rs.len() == 5, || format!("{} responses", rs.len()))?;
        for x in &rs {
            check(x.first_status() == 200, || format!("rclone would skip {}: {x:?}", x.href))?;
        }
        each_once(&rs, &[("DAV:", "displayname"), ("DAV:", "getlastmodified"), ("DAV:", "resourcetype")])
    });
    r.step("vendor owncloud: checksums once at most, only because asked; permissions 404", || {
        let rs = ms(&fx.req("PROPFIND", "/data/", &h(&[("Depth", "1")]), Some(OWNCLOUD.as_bytes())))?;
        each_once(&rs, &[("DAV:", "getcontentlength"), (OC, "checksums"), (OC, "permissions")])?;
        for x in &rs {
            check(x.first_status() == 200, || format!("{x:?}"))?;
            check(matches!(x.prop(OC, "permissions"), Some((404, _))), || format!("{x:?}"))?;
        }
        Ok(())
    });
    r.step("upload with X-OC-Mtime and OC-Checksum: accepted", || {
        use sha1::Digest;
        let sum = format!("SHA1:{}", hex::encode(sha1::Sha1::digest(b"uploaded by rclone")));
        let c = [("User-Agent", UA), ("X-OC-Mtime", "981173106"), ("OC-Checksum", sum.as_str())];
        let p = fx.req("PUT", "/data/up.bin", &c, Some(b"uploaded by rclone"));
        want_status(&p, &[201])?;
        check(p.header("X-OC-Mtime") == Some("accepted"), || format!("{:?}", p.headers))
    });
    r.step("a plain listing never carries oc:checksums", || {
        let g = fx.req("PROPFIND", "/data/", &h(&[("Depth", "1")]), Some(STANDARD.as_bytes()));
        check(!g.text().contains("checksum"), || g.text())
    });
    r.step("stat: PROPFIND Depth 0 of a file", || {
        let rs = ms(&fx.req("PROPFIND", "/data/up.bin", &h(&[("Depth", "0")]), Some(OWNCLOUD.as_bytes())))?;
        check(
            rs.len() == 1
                && rs[0].first_status() == 200
                && rs[0].text("DAV:", "getcontentlength").as_deref() == Some("18"),
            || format!("{rs:?}"),
        )?;
        check(rs[0].text("DAV:", "getlastmodified").as_deref() == Some("Sat, 03 Feb 2001 04:05:06 GMT"), || {
            format!("{rs:?}")
        })
    });
    r.step("stat of a missing object: 404", || {
        want_status(&fx.req("PROPFIND", "/data/nothing.bin", &h(&[("Depth", "0")]), Some(OWNCLOUD.as_bytes())), &[404])
    });
    r.step("About: used and available", || {
        let rs = ms(&fx.req("PROPFIND", "/data/", &h(&[("Depth", "0")]), Some(ABOUT.as_bytes())))?;
        let a: i64 = rs[0].text("DAV:", "quota-available-bytes").and_then(|t| t.parse().ok()).unwrap_or(-1);
        let u: i64 = rs[0].text("DAV:", "quota-used-bytes").and_then(|t| t.parse().ok()).unwrap_or(-1);
        check(a >= 0 && u >= 0, || format!("{rs:?}"))
    });
    r.step("SetModTime: PROPPATCH lastmodified, one response whose status is OK", || {
        let rs = ms(&fx.req("PROPPATCH", "/data/up.bin", &h(&[]), Some(propset(1_000_000_000).as_bytes())))?;
        check(rs.len() == 1 && rs[0].first_status() == 200, || format!("{rs:?}"))?;
        check(mtime_http(&fx.t.join("data/up.bin")) == "Sun, 09 Sep 2001 01:46:40 GMT", || {
            mtime_http(&fx.t.join("data/up.bin"))
        })
    });
    r.step("SetModTime with a checksum we do not know: refused as a whole", || {
        let body = "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<D:propertyupdate xmlns:D=\"DAV:\" xmlns:oc=\"http://owncloud.org/ns\">\n <D:set>\n  <D:prop>\n   <lastmodified xmlns=\"DAV:\">1100000000</lastmodified>\n   <oc:checksums>\n\t<oc:checksum>SHA1:0000000000000000000000000000000000000000</oc:checksum>\n   </oc:checksums>\n  </D:prop>\n </D:set>\n</D:propertyupdate>\n";
        let rs = ms(&fx.req("PROPPATCH", "/data/up.bin", &h(&[]), Some(body.as_bytes())))?;
        check(rs[0].first_status() != 200, || format!("{rs:?}"))?;
        check(mtime_http(&fx.t.join("data/up.bin")) == "Sun, 09 Sep 2001 01:46:40 GMT", || "the mtime changed".into())
    });
    r.step("a range comes back 206", || {
        let g = fx.req("GET", "/data/movies/film%20one.mkv", &h(&[("Range", "bytes=100-199")]), None);
        check(g.status == 206 && g.body == noise(300_000)[100..200], || format!("{} {:?}", g.status, g.headers))
    });
    r.finish();
}
