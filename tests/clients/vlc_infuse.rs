//! Media players. VLC opens a URL with `Range: bytes=0-` and `Icy-MetaData: 1`, and
//! seeks with new ranged requests. Infuse (closed source; from its documented
//! behaviour: "follows 302, plays via ranged GETs", and its bug reports about invalid
//! PROPFIND answers) browses with PROPFIND Depth 1 and plays with ranged GETs; the
//! browse body is assumed to be allprop, the commonest.

use crate::*;

const VLC: &str = "VLC/3.0.20 LibVLC/3.0.20";
const INFUSE: &str = "Infuse/7.7.5 (iPhone; iOS 17.4)";

#[test]
fn vlc() {
    let fx = Fx::new();
    let film = noise(300_000);
    let mut r = Replay::new("VLC");
    r.step("open: GET with Range: bytes=0- and Icy-MetaData: 1", || {
        let g = fx.req(
            "GET",
            "/data/movies/film%20one.mkv",
            &[("User-Agent", VLC), ("Range", "bytes=0-"), ("Icy-MetaData", "1"), ("Accept", "*/*")],
            None,
        );
        check(g.status == 206 && g.header("Content-Range") == Some("bytes 0-299999/300000"), || format!("{g:?}"))?;
        check(g.body == film, || "wrong bytes".into())
    });
    r.step("seek: GET Range: bytes=N-", || {
        let g = fx.req("GET", "/data/movies/film%20one.mkv", &[("User-Agent", VLC), ("Range", "bytes=299000-")], None);
        check(g.status == 206 && g.body == film[299_000..], || format!("{} {:?}", g.status, g.headers))
    });
    r.step("a range past the end is 416", || {
        let g = fx.req("GET", "/data/movies/film%20one.mkv", &[("User-Agent", VLC), ("Range", "bytes=400000-")], None);
        want_status(&g, &[416])
    });
    r.finish();
}

#[test]
fn infuse() {
    let fx = Fx::new();
    let allprop = "<?xml version=\"1.0\" encoding=\"utf-8\"?><D:propfind xmlns:D=\"DAV:\"><D:allprop/></D:propfind>";
    let mut r = Replay::new("Infuse");
    let browse = || {
        ms(&fx.req("PROPFIND", "/data/movies/", &[("User-Agent", INFUSE), ("Depth", "1")], Some(allprop.as_bytes())))
    };
    r.step("browse: PROPFIND Depth 1 allprop, a well-formed multistatus", || {
        let rs = browse()?;
        check(rs.len() == 3, || format!("{rs:?}"))?;
        each_once(&rs, &[("DAV:", "getlastmodified"), ("DAV:", "resourcetype"), ("DAV:", "getetag")])
    });
    r.step("hrefs are percent-encoded and decode to the stored names", || {
        let rs = browse()?;
        let mut names: Vec<String> =
            rs.iter().map(|x| percent_encoding::percent_decode_str(&x.href).decode_utf8_lossy().into_owned()).collect();
        names.sort();
        check(names == ["/data/movies/", "/data/movies/caf\u{e9}.txt", "/data/movies/film one.mkv"], || {
            format!("{names:?}")
        })?;
        check(rs.iter().all(|x| !x.href.contains(' ')), || "raw space in an href".into())
    });
    r.step("the root lists the mount as a collection with a quoted ETag", || {
        let rs = ms(&fx.req("PROPFIND", "/", &[("User-Agent", INFUSE), ("Depth", "1")], Some(allprop.as_bytes())))?;
        let root = find(&rs, "/")?;
        check(root.text("DAV:", "getetag").as_deref() == Some("\"pandav-root\""), || format!("{root:?}"))?;
        check(find(&rs, "/data/")?.is_collection(), || "mount".into())
    });
    r.step("play: GET Range: bytes=0-1, then the rest", || {
        let a = fx.req("GET", "/data/movies/film%20one.mkv", &[("User-Agent", INFUSE), ("Range", "bytes=0-1")], None);
        check(a.status == 206 && a.body.len() == 2, || format!("{a:?}"))?;
        let b = fx.req("GET", "/data/movies/film%20one.mkv", &[("User-Agent", INFUSE), ("Range", "bytes=2-")], None);
        check(b.status == 206 && b.body.len() == 299_998, || format!("{} {:?}", b.status, b.headers))
    });
    r.finish();
}
