//! HTTP semantics of proxied downloads (link drive and local driver alike): HEAD without
//! an upstream body request, validators (304, 412, If-Range), and Range edge cases.

use crate::harness::*;

struct Case {
    headers: Vec<(&'static str, String)>,
    method: &'static str,
    status: u16,
    /// Expected body bytes `start..end` (for 200/206 GETs).
    body: Option<(usize, usize)>,
    content_range: Option<String>,
    /// Whether an upstream body request is expected (link mounts).
    upstream: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_http_semantics() {
    let h = Harness::start().await;
    for path in ["/plink/small.bin", "/local/small.bin"] {
        let want = h.content(path);
        let size = want.len();
        let link = path.starts_with("/plink");

        let r = h.req("HEAD", path, Some(ALICE), "Sem/1").send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "HEAD {path}");
        assert_eq!(header(&r, "content-length"), Some(size.to_string()));
        assert_eq!(header(&r, "accept-ranges").as_deref(), Some("bytes"));
        let etag = header(&r, "etag").expect("ETag");
        let lm = header(&r, "last-modified").expect("Last-Modified");
        assert!(etag.starts_with('"') && etag.ends_with('"'), "strong ETag: {etag}");
        assert!(r.bytes().await.unwrap().is_empty());
        assert!(h.up.hits().is_empty(), "HEAD made upstream requests: {:?}", h.up.hits());
        if link {
            assert_eq!(h.drive("/plink").total_link_calls(), 0, "HEAD needs no link under proxy");
        }

        let whole = |status| Case {
            headers: vec![],
            method: "GET",
            status,
            body: Some((0, size)),
            content_range: None,
            upstream: true,
        };
        let part = |s: usize, e: usize| Case {
            headers: vec![],
            method: "GET",
            status: 206,
            body: Some((s, e)),
            content_range: Some(format!("bytes {s}-{}/{size}", e - 1)),
            upstream: true,
        };
        let bare = |status: u16| Case {
            headers: vec![],
            method: "GET",
            status,
            body: None,
            content_range: None,
            upstream: false,
        };
        let with = |mut c: Case, hs: &[(&'static str, &str)]| {
            c.headers = hs.iter().map(|(k, v)| (*k, v.to_string())).collect();
            c
        };
        let weak = format!("W/{etag}");
        let other_date = "Tue, 14 Nov 2023 22:13:21 GMT"; // T0 + 1 s
        let unsatisfiable = format!("bytes={size}-");
        let cases: Vec<(&str, Case)> = vec![
            ("plain GET", whole(200)),
            ("If-None-Match matches", with(bare(304), &[("if-none-match", &etag)])),
            ("If-None-Match weak matches", with(bare(304), &[("if-none-match", &weak)])),
            ("If-None-Match list", with(bare(304), &[("if-none-match", &format!("\"x\", {etag}"))])),
            ("If-None-Match *", with(bare(304), &[("if-none-match", "*")])),
            ("If-None-Match other", with(whole(200), &[("if-none-match", "\"other\"")])),
            ("If-Modified-Since same", with(bare(304), &[("if-modified-since", &lm)])),
            ("If-Modified-Since older", with(whole(200), &[("if-modified-since", "Mon, 01 Jan 2001 00:00:00 GMT")])),
            ("If-Match other", with(bare(412), &[("if-match", "\"other\"")])),
            ("If-Match weak", with(bare(412), &[("if-match", &weak)])),
            ("If-Match matches", with(whole(200), &[("if-match", &etag)])),
            ("If-Unmodified-Since older", with(bare(412), &[("if-unmodified-since", "Mon, 01 Jan 2001 00:00:00 GMT")])),
            ("Range", with(part(10, 110), &[("range", "bytes=10-109")])),
            ("Range first byte", with(part(0, 1), &[("range", "bytes=0-0")])),
            ("Range last byte", with(part(size - 1, size), &[("range", &format!("bytes={}-", size - 1))])),
            ("Range suffix", with(part(size - 500, size), &[("range", "bytes=-500")])),
            ("Range suffix larger than file", with(part(0, size), &[("range", "bytes=-999999999")])),
            ("Range past the end", with(part(100_000, size), &[("range", "bytes=100000-999999")])),
            ("Range several (ignored)", with(whole(200), &[("range", "bytes=0-1,5-6")])),
            ("Range other unit (ignored)", with(whole(200), &[("range", "items=0-1")])),
            ("If-Range fresh ETag", with(part(10, 20), &[("range", "bytes=10-19"), ("if-range", &etag)])),
            ("If-Range stale ETag", with(whole(200), &[("range", "bytes=10-19"), ("if-range", "\"stale\"")])),
            ("If-Range weak ETag", with(whole(200), &[("range", "bytes=10-19"), ("if-range", &weak)])),
            ("If-Range fresh date", with(part(10, 20), &[("range", "bytes=10-19"), ("if-range", &lm)])),
            ("If-Range stale date", with(whole(200), &[("range", "bytes=10-19"), ("if-range", other_date)])),
            (
                "416",
                Case {
                    content_range: Some(format!("bytes */{size}")),
                    ..with(bare(416), &[("range", &unsatisfiable)])
                },
            ),
            (
                "416 empty suffix",
                Case { content_range: Some(format!("bytes */{size}")), ..with(bare(416), &[("range", "bytes=-0")]) },
            ),
            (
                "HEAD ranged",
                Case { method: "HEAD", body: None, upstream: false, ..with(part(10, 20), &[("range", "bytes=10-19")]) },
            ),
            ("HEAD If-None-Match", Case { method: "HEAD", ..with(bare(304), &[("if-none-match", &etag)]) }),
        ];
        for (name, c) in cases {
            let what = format!("{path}: {name}");
            h.up.clear_hits();
            let mut rq = h.req(c.method, path, Some(ALICE), "Sem/1");
            for (k, v) in &c.headers {
                rq = rq.header(*k, v);
            }
            let r = rq.send().await.unwrap();
            assert_eq!(r.status().as_u16(), c.status, "{what}");
            assert_eq!(header(&r, "content-range"), c.content_range, "{what}");
            if c.status == 304 {
                assert_eq!(header(&r, "etag").as_deref(), Some(etag.as_str()), "{what}: 304 keeps the ETag");
            }
            let len = header(&r, "content-length");
            let body = r.bytes().await.unwrap();
            match (c.method, c.body) {
                ("GET", Some((s, e))) => {
                    assert_eq!(len, Some((e - s).to_string()), "{what}");
                    assert!(body[..] == want[s..e], "{what}: wrong bytes ({} received)", body.len());
                }
                ("HEAD", _) => {
                    assert!(body.is_empty(), "{what}");
                    if c.status == 206 {
                        assert_eq!(len, Some("10".into()), "{what}");
                    }
                }
                _ => assert!(body.is_empty(), "{what}: {:?}", String::from_utf8_lossy(&body)),
            }
            let hits = h.up.hits();
            if link && c.upstream {
                assert_eq!(hits.len(), 1, "{what}: {hits:?}");
                // An ignored or failed If-Range means the whole file: no Range upstream.
                let want_range =
                    c.body.filter(|&(s, e)| (s, e) != (0, size)).map(|(s, e)| format!("bytes={s}-{}", e - 1));
                assert_eq!(hits[0].range().map(str::to_string), want_range, "{what}");
            } else {
                assert!(hits.is_empty(), "{what}: no upstream request expected, got {hits:?}");
            }
        }
    }
}
