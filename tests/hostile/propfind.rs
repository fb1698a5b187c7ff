//! PROPFIND and time PROPPATCH are answered by pandav itself (issue 12): hostile bodies
//! and headers are clean 4xx answers, nothing leaks past a user's mounts, and nothing
//! changes on disk.

use crate::*;

fn pf(props: &str) -> Vec<u8> {
    format!("<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop>{props}</D:prop></D:propfind>").into_bytes()
}

#[test]
fn hostile_propfinds_are_refused_cleanly() {
    let mut fx = Fx::new();
    let before = fx.snapshot();
    let many: String = (0..300).map(|i| format!("<x:p{i} xmlns:x=\"urn:{i}\"/>")).collect();
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        ("too many properties", vec![("Depth", "1")], pf(&many), 400),
        ("Depth 2", vec![("Depth", "2")], pf("<D:getetag/>"), 400),
        ("Depth infinity", vec![("Depth", "infinity")], pf("<D:getetag/>"), 403),
        ("not a propfind", vec![("Depth", "0")], b"<D:propertyupdate xmlns:D=\"DAV:\"/>".to_vec(), 400),
        ("no mode", vec![("Depth", "0")], b"<D:propfind xmlns:D=\"DAV:\"/>".to_vec(), 400),
        (
            "two modes",
            vec![("Depth", "0")],
            b"<D:propfind xmlns:D=\"DAV:\"><D:allprop/><D:propname/></D:propfind>".to_vec(),
            400,
        ),
        ("not XML", vec![("Depth", "0")], b"<D:propfind".to_vec(), 400),
    ];
    for (what, headers, body, want) in cases {
        let r = fx.req("PROPFIND", "/a/", Some("full"), &headers, &body);
        assert_eq!(r.status, Some(want), "{what}: {}", r.text());
    }
    // A property name and a namespace that need escaping come back well-formed.
    let odd = pf("<x:q xmlns:x=\"urn:a&amp;b&quot;c&lt;\"/>");
    let r = fx.req("PROPFIND", "/a/src.txt", Some("full"), &[("Depth", "0")], &odd);
    r.expect(207, "odd namespace");
    let body = r.body();
    let xml = body.split_once("<?xml").map(|(_, b)| format!("<?xml{b}")).unwrap_or_default();
    let xml = xml.rsplit_once('>').map(|(a, _)| format!("{a}>")).unwrap_or_default();
    assert!(xmltree::Element::parse(dechunk(&xml).as_bytes()).is_ok(), "not well-formed: {body}");
    // Reserved names and other users' mounts are not there.
    fx.req("PROPFIND", "/a/.pandav-swap-0000000000000000", Some("full"), &[("Depth", "0")], b"")
        .expect(404, "swap name");
    fx.req("PROPFIND", "/a/", Some("b"), &[("Depth", "0")], b"").expect(404, "a mount user b does not see");
    let r = fx.req("PROPFIND", "/", Some("b"), &[("Depth", "1")], b"");
    r.expect(207, "root for b");
    assert!(!r.body().contains("/a/") && r.body().contains("/b/"), "b sees: {}", r.text());
    assert_same(&before, &fx, "hostile PROPFINDs");
    fx.assert_clean();
}

/// The body of a chunked answer, de-chunked (raw_request reads the wire bytes).
fn dechunk(s: &str) -> String {
    let mut out = String::new();
    for line in s.split("\r\n") {
        if line.chars().all(|c| c.is_ascii_hexdigit()) && !line.is_empty() {
            continue;
        }
        out.push_str(line);
    }
    out
}

#[test]
fn time_proppatches_need_write_access_and_fail_whole() {
    let mut fx = Fx::new();
    let before = fx.snapshot();
    let win = "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\" xmlns:Z=\"urn:schemas-microsoft-com:\"><D:set><D:prop>\
               <Z:Win32LastModifiedTime>Sat, 03 Feb 2001 04:05:06 GMT</Z:Win32LastModifiedTime><Z:Win32FileAttributes>00000002</Z:Win32FileAttributes></D:prop></D:set></D:propertyupdate>";
    fx.req("PROPPATCH", "/a/src.txt", Some("ro"), &[], win.as_bytes()).expect(403, "read-only user");
    fx.req("PROPPATCH", "/a/src.txt", None, &[], win.as_bytes()).expect(403, "anonymous");
    fx.req("PROPPATCH", "/ro/r.txt", Some("full"), &[], win.as_bytes()).expect(403, "read-only mount");
    fx.req("PROPPATCH", "/v", Some("full"), &[], win.as_bytes()).expect(403, "virtual folder");
    fx.req("PROPPATCH", "/a/missing.txt", Some("full"), &[], win.as_bytes()).expect(404, "missing file");
    fx.req("PROPPATCH", "/b/precious.txt", Some("full"), &[("If", "(<urn:uuid:not-a-lock>)")], win.as_bytes())
        .expect(412, "an If that does not hold");
    // A bad value fails everything: the attributes are not kept either.
    let bad = win.replace("Sat, 03 Feb 2001 04:05:06 GMT", "not a date");
    let r = fx.req("PROPPATCH", "/a/src.txt", Some("full"), &[], bad.as_bytes());
    r.expect(207, "bad date");
    assert!(r.body().contains("409") && r.body().contains("424") && !r.body().contains(" 200 "), "{}", r.text());
    let q = "<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop><Z:Win32FileAttributes xmlns:Z=\"urn:schemas-microsoft-com:\"/></D:prop></D:propfind>";
    let r = fx.req("PROPFIND", "/a/src.txt", Some("full"), &[("Depth", "0")], q.as_bytes());
    assert!(r.body().contains("00000020"), "the attributes changed: {}", r.text());
    // A locked file needs the token.
    let l = fx.req("LOCK", "/a/src.txt", Some("full2"), &[("Timeout", "Second-60")], &lockinfo("other"));
    l.expect(200, "LOCK");
    fx.req("PROPPATCH", "/a/src.txt", Some("full"), &[], win.as_bytes()).expect(423, "locked by another");
    assert_same(&before, &fx, "refused time PROPPATCHes");
    fx.assert_clean();
}
