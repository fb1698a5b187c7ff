//! Kodi (`DAVDirectory.cpp`, libcurl): lists with its own body and `Content-Type:
//! text/xml`; takes a propstat only when its status is exactly `HTTP/1.1 200 OK`; walks
//! the XML with TinyXML child by child (no text between elements); needs
//! Content-Length and Accept-Ranges on GET to seek.

use crate::*;

const UA: &str = "Kodi/21.0 (X11; Linux x86_64) App_Bitness/64 Version/21.0-(21.0.0)-Git:20240406-0b5aeb6";

const LIST: &str = "<?xml version=\"1.0\" encoding=\"utf-8\" ?> <D:propfind xmlns:D=\"DAV:\">   <D:prop>     <D:resourcetype/>     <D:getcontentlength/>     <D:getlastmodified/>     <D:creationdate/>     <D:displayname/>    </D:prop>  </D:propfind>";

#[test]
fn kodi() {
    let fx = Fx::new();
    let mut r = Replay::new("Kodi");
    let h = [("User-Agent", UA), ("Content-Type", "text/xml"), ("Depth", "1")];
    r.step("PROPFIND Depth 1: each response has an exact \"HTTP/1.1 200 OK\" propstat", || {
        let g = fx.req("PROPFIND", "/data/movies/", &h, Some(LIST.as_bytes()));
        let rs = ms(&g)?;
        check(rs.len() == 3, || format!("{rs:?}"))?;
        for x in &rs {
            check(x.propstats.iter().any(|p| p.status == "HTTP/1.1 200 OK"), || format!("{x:?}"))?;
        }
        // No whitespace between elements (TinyXML would see text nodes).
        let text = g.text();
        let body = text.split_once("?>").map(|(_, b)| b.trim()).unwrap_or_default();
        check(!body.contains("> <") && !body.contains(">\n<"), || text.clone())
    });
    r.step("folders are collections with a trailing slash, files have a size", || {
        let rs = ms(&fx.req("PROPFIND", "/data/", &h, Some(LIST.as_bytes())))?;
        check(find(&rs, "/data/movies/")?.is_collection(), || "movies".into())?;
        let notes = find(&rs, "/data/notes.txt")?;
        check(!notes.is_collection() && notes.text("DAV:", "getcontentlength").as_deref() == Some("11"), || {
            format!("{notes:?}")
        })
    });
    r.step("HEAD (Exists) has Content-Length", || {
        let g = fx.req("HEAD", "/data/movies/film%20one.mkv", &[("User-Agent", UA)], None);
        check(g.status == 200 && g.header("Content-Length") == Some("300000"), || format!("{g:?}"))
    });
    r.step("open: GET Range: bytes=0- is 206 with Content-Length and Accept-Ranges", || {
        let g = fx.req("GET", "/data/movies/film%20one.mkv", &[("User-Agent", UA), ("Range", "bytes=0-")], None);
        check(
            g.status == 206
                && g.header("Content-Length") == Some("300000")
                && g.header("Accept-Ranges") == Some("bytes"),
            || format!("{} {:?}", g.status, g.headers),
        )
    });
    r.step("seek: a range in the middle", || {
        let g = fx.req("GET", "/data/movies/film%20one.mkv", &[("User-Agent", UA), ("Range", "bytes=150000-")], None);
        check(g.status == 206 && g.body == noise(300_000)[150_000..], || format!("{} {:?}", g.status, g.headers))
    });
    r.finish();
}
