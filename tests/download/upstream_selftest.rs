//! The test upstream itself, checked with a plain client: the other tests are only as
//! good as its Range, refusals, expiry and faults.

use std::time::Duration;

use futures_util::StreamExt;
use upstream::{Fault, Upstream, ALWAYS, SET_COOKIE};

use crate::harness::{pseudo_random, sha256};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_upstream_behaves() {
    let up = Upstream::start().await;
    let data = pseudo_random("selftest", 300_000);
    up.put("b", data.clone());
    let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let get = |url: String, hs: Vec<(&'static str, String)>| {
        let mut r = c.get(url);
        for (k, v) in hs {
            r = r.header(k, v);
        }
        r.send()
    };

    // Whole, ranged, suffix, unsatisfiable, HEAD.
    let r = get(up.url("b"), vec![]).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["set-cookie"], SET_COOKIE);
    assert_eq!(sha256(&r.bytes().await.unwrap()), sha256(&data));
    let r = get(up.url("b"), vec![("range", "bytes=10-19".into())]).await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 10-19/300000");
    assert!(r.bytes().await.unwrap() == data[10..20]);
    let r = get(up.url("b"), vec![("range", "bytes=-5".into())]).await.unwrap();
    assert!(r.bytes().await.unwrap() == data[data.len() - 5..]);
    let r = get(up.url("b"), vec![("range", "bytes=300000-".into())]).await.unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */300000");
    let r = c.head(up.url("b")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "300000");
    assert_eq!(up.hits_for("b").last().unwrap().span, None, "HEAD has no body");
    assert_eq!(up.range_count("b", "bytes=10-19"), 1);
    assert_eq!(get(format!("{}/f/nope", up.base()), vec![]).await.unwrap().status(), 404);

    // Signed URLs: bound User-Agent, tampering, expiry (410, then 403).
    let url = up.issue("b", Duration::from_secs(60), Some("Bound/1"));
    assert_eq!(get(url.clone(), vec![("user-agent", "Bound/1".into())]).await.unwrap().status(), 200);
    assert_eq!(get(url.clone(), vec![("user-agent", "Other/1".into())]).await.unwrap().status(), 403);
    let tampered = url.replace("exp=", "exp=1");
    assert_eq!(get(tampered, vec![("user-agent", "Bound/1".into())]).await.unwrap().status(), 403);
    up.advance_clock(Duration::from_secs(61));
    assert_eq!(get(url.clone(), vec![("user-agent", "Bound/1".into())]).await.unwrap().status(), 410);
    up.set_expired_status(403);
    assert_eq!(get(url, vec![("user-agent", "Bound/1".into())]).await.unwrap().status(), 403);
    up.signed_only("b");
    assert_eq!(get(up.url("b"), vec![]).await.unwrap().status(), 403);
    let fresh = up.issue("b", Duration::from_secs(60), None);

    // Required headers.
    up.require("b", "referer", "https://r/");
    assert_eq!(get(fresh.clone(), vec![]).await.unwrap().status(), 403);
    let ok = get(fresh.clone(), vec![("referer", "https://r/".into())]).await.unwrap();
    assert_eq!(ok.status(), 200);
    ok.bytes().await.unwrap();
    let with_ref = || vec![("referer", "https://r/".to_string())];

    // Status faults wear off.
    up.add_fault("b", Fault::Status { code: 503, times: 1 });
    let r = get(fresh.clone(), with_ref()).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(get(fresh.clone(), with_ref()).await.unwrap().status(), 200);

    // A drop at byte 100 000: exactly that many bytes, then a broken body; once.
    up.add_fault("b", Fault::DropAt { offset: 100_000, times: 1 });
    let conns = up.connections();
    let r = get(fresh.clone(), with_ref()).await.unwrap();
    assert_eq!(r.status(), 200);
    let mut s = r.bytes_stream();
    let mut n = 0;
    let mut broke = false;
    while let Some(c) = s.next().await {
        match c {
            Ok(b) => n += b.len(),
            Err(_) => broke = true,
        }
    }
    assert!(broke);
    assert_eq!(n, 100_000);
    let dropped_on = up.hits_for("b").last().expect("the dropped request was seen").conn;
    let r = get(fresh.clone(), with_ref()).await.unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), 300_000, "the fault wore off");
    // The dropped connection is gone: the next request comes on another one (a new one,
    // or another already in the client's pool — which one depends on timing).
    let next_on = up.hits_for("b").last().unwrap().conn;
    assert_ne!(next_on, dropped_on, "the request after the drop reused the dropped connection");
    assert!(up.connections() >= conns, "connection count went backwards");

    // Always at the same byte: a request starting there gets headers, then a break.
    up.clear_faults("b");
    up.add_fault("b", Fault::DropAt { offset: 1000, times: ALWAYS });
    let mut hs = with_ref();
    hs.push(("range", "bytes=1000-".into()));
    let r = get(fresh.clone(), hs).await.unwrap();
    assert_eq!(r.status(), 206);
    assert!(r.bytes().await.is_err());

    // Slow bodies take their time.
    up.clear_faults("b");
    up.slow("b", 100_000, Duration::from_millis(150));
    let t = std::time::Instant::now();
    assert_eq!(get(fresh, with_ref()).await.unwrap().bytes().await.unwrap().len(), 300_000);
    assert!(t.elapsed() >= Duration::from_millis(450));
}
