//! Item 8: inputs that panicked a request (and dropped its connection): malformed `If`
//! headers (dav-server's parser indexed past the end), a bare `"` as an entity tag
//! (sliced `[1..0]`), a lastmodified beyond any clock, and file times an HTTP date
//! cannot print. Each must be a clean answer, and the server must keep serving every
//! method afterwards.

use crate::*;

#[test]
fn malformed_conditional_headers_are_bad_requests() {
    let mut fx = Fx::new();
    let before = fx.snapshot();
    let ifs = ["(<urn:x> [x", "<x", "([", "(<", "([\"", "([\"])", "(<urn:\"x>)", "(Not)", "()", "(<urn:x>", "junk"];
    for v in ifs {
        for (method, body) in [("PUT", &b"new"[..]), ("LOCK", b""), ("DELETE", b""), ("PROPPATCH", b""), ("MKCOL", b"")]
        {
            let path = if method == "MKCOL" { "/a/newdir" } else { "/a/src.txt" };
            let r = fx.req(method, path, Some("full"), &[("If", v)], body);
            assert_eq!(r.status, Some(400), "{method} with If: {v:?}: {}", r.text());
        }
        let r = fx.req("COPY", "/a/src.txt", Some("full"), &[("If", v), ("Destination", "/b/precious.txt")], b"");
        assert_eq!(r.status, Some(400), "COPY with If: {v:?}: {}", r.text());
    }
    for (name, v) in [("If-Match", "\""), ("If-Match", "W/\""), ("If-None-Match", "\""), ("If-Match", "\"a\", \"")] {
        let r = fx.req("PUT", "/a/src.txt", Some("full"), &[(name, v)], b"new");
        assert_eq!(r.status, Some(400), "PUT with {name}: {v:?}: {}", r.text());
    }
    let r = fx.req("GET", "/a/", Some("full"), &[("If-Range", "\"")], b"");
    assert_eq!(r.status, Some(400), "GET of a folder with If-Range: \": {}", r.text());
    assert_same(&before, &fx, "malformed conditional headers");

    // A well-formed If that does not hold is a 412, not a 400.
    fx.req("PUT", "/a/src.txt", Some("full"), &[("If", "(<DAV:no-lock>)")], b"new").expect(412, "If that fails");
    every_method_still_works(&mut fx);
}

#[test]
fn out_of_range_times_are_bad_requests() {
    let mut fx = Fx::new();
    for v in ["18446744073709551615", "253402300800", "99999999999999999999"] {
        let body = format!(
            "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop><D:lastmodified>{v}</D:lastmodified></D:prop></D:set></D:propertyupdate>"
        );
        let r = fx.req("PROPPATCH", "/a/src.txt", Some("full"), &[], body.as_bytes());
        assert_eq!(r.status, Some(400), "lastmodified {v}: {}", r.text());
    }
    // A file dated before 1970 (as a local folder may hold) is listed, not a panic.
    let old = fx.t.join("a/old.txt");
    std::fs::write(&old, "old").unwrap();
    let f = std::fs::File::options().write(true).open(&old).unwrap();
    f.set_modified(std::time::UNIX_EPOCH - std::time::Duration::from_secs(10 * 365 * 86400)).unwrap();
    let r = fx.req("PROPFIND", "/a/", Some("full"), &[("Depth", "1")], b"");
    assert_eq!(r.status, Some(207), "PROPFIND of a folder with a file from 1960: {}", r.text());
    assert!(r.body().contains("old.txt"));
    fx.req("GET", "/a/old.txt", Some("full"), &[], b"").expect(200, "GET of a file from 1960");
    every_method_still_works(&mut fx);
}

/// Nothing is wedged: every write method of every user works.
fn every_method_still_works(fx: &mut Fx) {
    fx.req("PUT", "/a/fresh.txt", Some("full"), &[], b"fresh").expect(201, "PUT");
    fx.req("PUT", "/b/fresh.txt", Some("b"), &[], b"fresh").expect(201, "PUT as b");
    fx.req("MKCOL", "/a/fresh-dir", Some("full2"), &[], b"").expect(201, "MKCOL");
    let patch = b"<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\" xmlns:x=\"urn:x\"><D:set><D:prop><x:k>v</x:k></D:prop></D:set></D:propertyupdate>";
    fx.req("PROPPATCH", "/a/fresh.txt", Some("full"), &[], patch).expect(207, "PROPPATCH");
    fx.req("COPY", "/a/fresh.txt", Some("full"), &[("Destination", "/b/copied.txt")], b"").expect(201, "COPY");
    fx.req("MOVE", "/b/copied.txt", Some("b"), &[("Destination", "/b/moved.txt")], b"").expect(201, "MOVE");
    let l = fx.req("LOCK", "/a/fresh.txt", Some("full"), &[("Timeout", "Second-30")], &lockinfo("me"));
    l.expect(200, "LOCK");
    let token = format!("<{}>", lock_token(&l));
    fx.req("UNLOCK", "/a/fresh.txt", Some("full"), &[("Lock-Token", &token)], b"").expect(204, "UNLOCK");
    fx.req("DELETE", "/b/moved.txt", Some("b"), &[], b"").expect(204, "DELETE");
    fx.assert_clean();
}
