//! The link cache: one `link()` per (file, User-Agent) for many requests, concurrent
//! ones included; a new call once a link is near its expiry.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::future::join_all;

use crate::harness::*;

async fn location(h: &Harness, method: &str, path: &str, ua: &str) -> String {
    let r = h.req(method, path, Some(ALICE), ua).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302, "{method} {path} ({ua})");
    header(&r, "location").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_make_one_link_call_per_file_and_user_agent() {
    let h = Harness::start().await;
    let d = h.drive("/link");

    let mut locs = HashSet::new();
    for i in 0..10 {
        let method = if i % 3 == 2 { "HEAD" } else { "GET" };
        locs.insert(location(&h, method, "/link/small.bin", "UA-A/1").await);
    }
    assert_eq!(d.link_calls("small.bin", "UA-A/1"), 1);
    assert_eq!(locs.len(), 1, "a cached link is handed out unchanged");
    let loc_a = locs.into_iter().next().unwrap();

    // Another User-Agent gets its own link (115 binds links to the UA that asked).
    let mut locs_b = HashSet::new();
    for _ in 0..5 {
        locs_b.insert(location(&h, "GET", "/link/small.bin", "UA-B/1").await);
    }
    assert_eq!(d.link_calls("small.bin", "UA-B/1"), 1);
    assert_eq!(d.link_calls("small.bin", "UA-A/1"), 1);
    assert_eq!(locs_b.len(), 1);
    let loc_b = locs_b.into_iter().next().unwrap();
    assert_ne!(loc_a, loc_b);
    // …and the separation matters: A's link does not work for B.
    let r = h.client.get(&loc_a).header("user-agent", "UA-B/1").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = h.client.get(&loc_b).header("user-agent", "UA-B/1").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // Another file: its own call.
    location(&h, "GET", "/link/big.bin", "UA-A/1").await;
    assert_eq!(d.link_calls("big.bin", "UA-A/1"), 1);
    assert_eq!(d.total_link_calls(), 3);

    // Proxied reads use the same cache: one link, one upstream request per read.
    let p = h.drive("/plink");
    for _ in 0..5 {
        let r = h.get("/plink/small.bin", "UA-A/1").await;
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.bytes().await.unwrap() == h.content("/plink/small.bin"));
    }
    assert_eq!(p.link_calls("small.bin", "UA-A/1"), 1);
    assert_eq!(h.up.body_requests(&h.blob("/plink/small.bin")).len(), 5);
    let r = h.get("/plink/small.bin", "UA-B/1").await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(p.link_calls("small.bin", "UA-B/1"), 1);
    assert_eq!(p.link_calls("small.bin", "UA-A/1"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_link_call() {
    let h = Harness::start().await;
    for m in ["/link", "/plink"] {
        h.drive(m).mode.lock().unwrap().delay = Duration::from_millis(300);
    }

    let locs = join_all((0..16).map(|_| location(&h, "GET", "/link/small.bin", "Conc/1"))).await;
    assert_eq!(h.drive("/link").link_calls("small.bin", "Conc/1"), 1, "16 concurrent GETs");
    assert_eq!(locs.iter().collect::<HashSet<_>>().len(), 1);

    // Three User-Agents at once: one call each.
    let uas = ["Conc/A", "Conc/B", "Conc/C"];
    join_all((0..18).map(|i| location(&h, "GET", "/link/big.bin", uas[i % 3]))).await;
    for ua in uas {
        assert_eq!(h.drive("/link").link_calls("big.bin", ua), 1, "{ua}");
    }

    // Concurrent proxied reads of a 4 MiB file: one link, exact bytes for everyone.
    let want = sha256(&h.content("/plink/big.bin"));
    let got = join_all((0..8).map(|_| async {
        let r = h.get("/plink/big.bin", "Conc/1").await;
        assert_eq!(r.status().as_u16(), 200);
        sha256(&r.bytes().await.unwrap())
    }))
    .await;
    assert!(got.iter().all(|g| *g == want));
    assert_eq!(h.drive("/plink").link_calls("big.bin", "Conc/1"), 1);
    assert_eq!(h.up.body_requests(&h.blob("/plink/big.bin")).len(), 8, "one upstream request per client read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_near_expiry_are_asked_for_again() {
    let h = Harness::start().await;
    let d = h.drive("/link");

    // Expires in 10 minutes: cached (the transition at expiry minus the 60 s margin is
    // tested with paused time in vfs::mount's unit tests, not with sleeps here).
    d.mode.lock().unwrap().claimed_ttl = Some(Duration::from_secs(600));
    let first = location(&h, "GET", "/link/small.bin", "Exp/1").await;
    let again = location(&h, "GET", "/link/small.bin", "Exp/1").await;
    assert_eq!(d.link_calls("small.bin", "Exp/1"), 1);
    assert_eq!(first, again);

    // Expiring within the margin: never served from the cache.
    d.mode.lock().unwrap().claimed_ttl = Some(Duration::from_secs(30));
    for _ in 0..3 {
        location(&h, "GET", "/link/small.bin", "Short/1").await;
    }
    assert_eq!(d.link_calls("small.bin", "Short/1"), 3);

    // No expiry given: cached (for the default time).
    d.mode.lock().unwrap().claimed_ttl = None;
    for _ in 0..3 {
        location(&h, "GET", "/link/small.bin", "NoExp/1").await;
    }
    assert_eq!(d.link_calls("small.bin", "NoExp/1"), 1);
}
