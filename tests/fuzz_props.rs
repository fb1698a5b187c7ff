//! The fuzz targets of `fuzz/` (`pandav::dav::fuzz`), run as bounded property tests on
//! stable: each target gets a few thousand inputs built from the pieces its grammar is
//! made of (so that most reach deep into the parser), plus raw bytes.
//!
//! A failure prints the seed; `ARBTEST_SEED=<seed> cargo test --test fuzz_props` replays it.

use arbtest::arbitrary::{Result, Unstructured};
use pandav::dav::fuzz;

/// Time per target: a few seconds even on a busy 2-core CI machine.
const BUDGET_MS: u64 = 2_000;

/// Up to `max` pieces from `alphabet` (or a raw byte now and then), joined.
fn pieces(u: &mut Unstructured<'_>, alphabet: &[&str], max: usize) -> Result<Vec<u8>> {
    let n = u.int_in_range(0..=max)?;
    let mut out = vec![];
    for _ in 0..n {
        if u.ratio(1, 12)? {
            out.push(u.arbitrary::<u8>()?);
        } else {
            out.extend_from_slice(u.choose(alphabet)?.as_bytes());
        }
    }
    Ok(out)
}

fn run(target: fn(&[u8]), alphabet: &'static [&'static str], max: usize) {
    arbtest::arbtest(|u| {
        let data = if u.ratio(1, 5)? { u.arbitrary::<Vec<u8>>()? } else { pieces(u, alphabet, max)? };
        target(&data);
        Ok(())
    })
    .budget_ms(BUDGET_MS);
}

#[test]
fn if_header() {
    const A: &[&str] = &[
        "(",
        ")",
        "<",
        ">",
        "[",
        "]",
        "\"",
        "W/",
        "Not",
        "Not ",
        " ",
        "\t",
        "urn:uuid:a-b",
        "DAV:no-lock",
        "http://h/a",
        "/a/b",
        "%41",
        "%",
        "x",
        "\"e\"",
        ":",
        ",",
    ];
    run(fuzz::if_header, A, 24);
}

#[test]
fn etag_lists() {
    const A: &[&str] = &["\"", "W/", "*", ",", " ", "a", "\"x\"", "\t", "Sat, 03 Feb 2001 04:05:06 GMT"];
    run(fuzz::etag_list, A, 12);
}

#[test]
fn destination() {
    const A: &[&str] = &[
        "http://",
        "https://",
        "HTTP://",
        "h:1",
        "example.org",
        "/",
        "//",
        ".",
        "..",
        "%2e",
        "%2E%2e",
        "%2f",
        "%00",
        "%",
        "%zz",
        "a",
        "dav",
        "?q=1",
        "#f",
        "\\",
        "\t",
        " ",
        "@",
        "file:",
        "x:",
        "\u{e9}",
    ];
    run(fuzz::destination, A, 16);
}

#[test]
fn request_path() {
    const A: &[&str] = &["/", "//", ".", "..", "%2e", "%2f", "%00", "%", "a", "dav", "?x", "#", "\\", " ", "%ff"];
    run(fuzz::request_path, A, 16);
}

#[test]
fn xml_body() {
    const A: &[&str] = &[
        "<?xml version=\"1.0\"?>",
        "<D:propfind xmlns:D=\"DAV:\">",
        "</D:propfind>",
        "<D:prop>",
        "</D:prop>",
        "<a>",
        "</a>",
        "<a/>",
        "<x:y xmlns:x=\"urn:x\">",
        "</x:y>",
        "text",
        "&amp;",
        "&x;",
        "<!--c-->",
        "<![CDATA[d]]>",
        "<!DOCTYPE a [<!ENTITY x \"y\">]>",
        "<D:propertyupdate xmlns:D=\"DAV:\">",
        "<D:set>",
        "<D:lastmodified>",
        "5",
    ];
    run(fuzz::xml_body, A, 80);
}

#[test]
fn propfind_body() {
    const A: &[&str] = &[
        "<D:propfind xmlns:D=\"DAV:\">",
        "</D:propfind>",
        "<propfind xmlns=\"DAV:\">",
        "</propfind>",
        "<D:prop>",
        "</D:prop>",
        "<D:allprop/>",
        "<D:propname/>",
        "<D:include>",
        "</D:include>",
        "<D:getetag/>",
        "<x:p xmlns:x=\"urn:x\"/>",
        "<p xmlns=\"\"/>",
        "<D:getetag xmlns:D=\"DAV:\"/>",
        "<oc:checksums xmlns:oc=\"http://owncloud.org/ns\"/>",
        "text",
        " ",
        "<",
        ">",
    ];
    run(fuzz::propfind_body, A, 24);
}

#[test]
fn lastmodified() {
    const A: &[&str] =
        &["1", "0", "9", "18446744073709551615", "253402300799", " ", "Sat, 03 Feb 2001 04:05:06 GMT", "-", "e", "."];
    run(fuzz::lastmodified, A, 8);
}

#[test]
fn range() {
    const A: &[&str] = &["bytes=", "-", ",", "0", "1", "9", "18446744073709551615", " ", "x", "="];
    run(fuzz::range, A, 10);
}
