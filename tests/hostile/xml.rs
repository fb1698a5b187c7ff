//! Item 5: a 7.5 KB body of ~1,900 nested elements overflowed the stack of the XML
//! tree builder and aborted the process, for PROPFIND, LOCK, PROPPATCH and our own
//! lastmodified PROPPATCH, anonymous or read-only clients included.

use crate::*;

fn nested(open: &str, close: &str, depth: usize) -> Vec<u8> {
    let mut b = format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>{open}").into_bytes();
    for _ in 0..depth {
        b.extend_from_slice(b"<x>");
    }
    for _ in 0..depth {
        b.extend_from_slice(b"</x>");
    }
    b.extend_from_slice(close.as_bytes());
    b
}

#[test]
fn deeply_nested_xml_is_refused_before_parsing() {
    let mut fx = Fx::new();
    let before = fx.snapshot();
    let propfind = nested("<D:propfind xmlns:D=\"DAV:\"><D:prop>", "</D:prop></D:propfind>", 2000);
    let lock = nested(
        "<D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>",
        "</D:owner></D:lockinfo>",
        2000,
    );
    let proppatch =
        nested("<D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop>", "</D:prop></D:set></D:propertyupdate>", 2000);
    let lastmod = nested(
        "<D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop><D:lastmodified>",
        "</D:lastmodified></D:prop></D:set></D:propertyupdate>",
        2000,
    );
    // Unclosed nesting: just as deep, never well-formed.
    let unclosed = "<a>".repeat(2500).into_bytes();
    let cases: Vec<(&str, &str, Option<&str>, &[u8])> = vec![
        ("PROPFIND", "/a/", None, &propfind),
        ("PROPFIND", "/", None, &unclosed),
        ("LOCK", "/a/src.txt", Some("full"), &lock),
        ("LOCK", "/a/src.txt", None, &unclosed),
        ("PROPPATCH", "/a/src.txt", Some("full"), &proppatch),
        ("PROPPATCH", "/a/src.txt", Some("ro"), &lastmod),
        ("PROPPATCH", "/a/src.txt", None, &lastmod),
        ("PROPPATCH", "/a/src.txt", Some("full"), &lastmod),
    ];
    for (method, path, user, body) in cases {
        let r = fx.req(method, path, user, &[("Depth", "1"), ("Timeout", "Second-60")], body);
        assert!(fx.srv.alive(), "pandav died on a nested {method} body as {user:?}:\n{}", fx.srv.log());
        assert_eq!(r.status, Some(400), "nested {method} as {user:?}: {}", r.text());
    }
    // Nothing locked, nothing changed; ordinary bodies still work.
    assert_same(&before, &fx, "nested XML bodies");
    fx.req("PUT", "/a/src.txt", Some("full2"), &[], b"after").expect(204, "PUT after nested LOCK bodies");
    let ok = b"<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop><D:getetag/></D:prop></D:propfind>";
    fx.req("PROPFIND", "/a/", None, &[("Depth", "1")], ok).expect(207, "plain PROPFIND");
    fx.assert_clean();
}
