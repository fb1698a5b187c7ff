//! Item 12: dead properties were capped per path only; 768 PROPPATCHes added 136 MB.

use crate::*;

fn set(fx: &Fx, path: &str, name: &str, size: usize) -> Resp {
    let mut b = format!(
        "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\" xmlns:x=\"urn:x\"><D:set><D:prop><x:{name}>"
    )
    .into_bytes();
    b.extend(std::iter::repeat_n(b'v', size));
    b.extend_from_slice(format!("</x:{name}></D:prop></D:set></D:propertyupdate>").as_bytes());
    fx.req("PROPPATCH", path, Some("full"), &[], &b)
}

fn propstat_status(r: &Resp) -> Option<u16> {
    let body = r.body();
    let s = body.split("<D:status>").nth(1)?;
    s.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn dead_properties_are_bounded_in_total() {
    let mut fx = Fx::new();
    const SIZE: usize = 60_000;
    let (mut stored, mut refused) = (0usize, 0usize);
    // 16 MiB by default: 300 properties of 60 KB on 30 files are 18 MB.
    for i in 0..300 {
        let path = format!("/a/p{}.txt", i % 30);
        if i < 30 {
            fx.req("PUT", &path, Some("full"), &[], b"p").expect(201, "PUT");
        }
        let r = set(&fx, &path, &format!("v{i}"), SIZE);
        r.expect(207, "PROPPATCH");
        match propstat_status(&r) {
            Some(200) => stored += 1,
            Some(507) => refused += 1,
            other => panic!("property {i}: {other:?} {}", r.text()),
        }
    }
    assert!(refused > 0, "all {stored} properties of {SIZE} bytes were stored");
    assert!(stored * SIZE <= 16 * 1024 * 1024, "{stored} properties of {SIZE} bytes stored");
    // Room comes back when properties go.
    let rm = b"<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\" xmlns:x=\"urn:x\"><D:remove><D:prop><x:v0/></D:prop></D:remove></D:propertyupdate>";
    fx.req("PROPPATCH", "/a/p0.txt", Some("full"), &[], rm).expect(207, "remove");
    let r = set(&fx, "/a/p0.txt", "again", SIZE);
    assert_eq!(propstat_status(&r), Some(200), "{}", r.text());
    // Deleting a file frees its properties too.
    fx.req("DELETE", "/a/p1.txt", Some("full"), &[], b"").expect(204, "DELETE");
    for i in 0..5 {
        let r = set(&fx, "/a/p2.txt", &format!("after{i}"), SIZE);
        assert_eq!(propstat_status(&r), Some(200), "{}", r.text());
    }
    fx.assert_clean();
}
