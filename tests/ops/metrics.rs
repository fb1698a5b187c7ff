//! `/-/metrics` through the real binary: exact counter deltas after a known sequence of
//! requests against the 115 emulator (whose own request log is the oracle for the
//! upstream counters), the proxy byte and stream gauges, token refreshes against the
//! 115 Open emulator, and who may scrape.

use std::io::{Read, Write};
use std::time::Duration;

use crate::common::*;
use crate::util::*;

const METRICS_ON: &str = "metrics = true";

async fn get_ua(base: &str, path: &str, ua: &str) -> u16 {
    http().get(format!("{base}{path}")).header("User-Agent", ua).send().await.unwrap().status().as_u16()
}

/// Wait until the server's access log has at least `n` lines containing each needle
/// (the access line and the request counters are written when a response body is
/// dropped, just after the client has read it).
async fn wait_log(srv: &Server, want: &[(&str, usize)]) {
    let t = std::time::Instant::now();
    loop {
        let log = srv.log();
        if want.iter().all(|(needle, n)| log.lines().filter(|l| l.contains(needle)).count() >= *n) {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "access lines {want:?} never came:\n{log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_exactly_with_a_known_sequence_of_requests() {
    let cl = Cloud::new().await;
    let t = TestDir::new();
    let movie = pseudo_random(5000, 3);
    cl.emu.put_file(UID, 0, "movie.mkv", movie.clone());
    let local = t.mkdir("data");
    let local_file = pseudo_random(100_000, 4);
    std::fs::write(local.join("file.bin"), &local_file).unwrap();
    let cfg = cl.p115(ConfigBuilder::new().server(METRICS_ON), "/115", "").local("/loc", &local);
    let srv = serve(t.path(), cfg.build(&t.mkdir("state"))).await;
    let base = srv.url().to_string();
    let (mounts, healths) = settled_counted(&base, None).await;
    assert!(mounts.iter().all(|m| m["ok"] == true), "{mounts:?}");
    // Every request so far is counted before the first scrape.
    wait_log(&srv, &[("path=/-/health status=", healths)]).await;
    let before = scrape(&base, None).await;
    cl.emu.reset_counters();
    // 1. A redirect: the root listing and a link are fetched.
    assert_eq!(get_ua(&base, "/115/movie.mkv", "ua-1").await, 302);
    // 2. The same again: both from the caches.
    assert_eq!(get_ua(&base, "/115/movie.mkv", "ua-1").await, 302);
    // 3. Another User-Agent: a new link, and the provider throttles once.
    cl.emu.inject("proapi.115.com/app/chrome/downurl", emu115::Fault::throttle().times(1));
    assert_eq!(get_ua(&base, "/115/movie.mkv", "ua-2").await, 302);
    // 4. A third: the provider fails every attempt (4 in all: 3 retries).
    cl.emu.inject("proapi.115.com/app/chrome/downurl", emu115::Fault::status(500).times(4));
    assert_eq!(get_ua(&base, "/115/movie.mkv", "ua-3").await, 502);
    wait_log(
        &srv,
        &[
            ("path=/-/metrics status=200", 1),
            ("path=/115/movie.mkv status=302", 3),
            ("path=/115/movie.mkv status=502", 1),
        ],
    )
    .await;
    let mid = scrape(&base, None).await;
    let after = mid.clone();
    // Upstream calls: exactly what the emulator served, by endpoint and outcome.
    let up = |ep: &str, res: &str| {
        series("pandav_upstream_calls_total", &[("driver", "115"), ("endpoint", ep), ("result", res)])
    };
    let upstream = moved(&before, &after, "pandav_upstream_calls_total");
    let expect: std::collections::BTreeMap<String, f64> = [
        (up("list", "ok"), 1.0),
        (up("downurl", "ok"), 2.0),
        (up("downurl", "throttled"), 1.0),
        (up("downurl", "retried"), 3.0),
        (up("downurl", "failed"), 1.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(upstream, expect, "upstream calls");
    assert_eq!(cl.emu.calls("proapi.115.com/app/chrome/downurl"), 2 + 1 + 4, "the emulator agrees");
    assert_eq!(cl.emu.calls("webapi.115.com/files"), 1, "the emulator agrees");

    // Caches: the listing was fetched once and then reused three times; links: ua-1
    // twice (a miss, then a hit), ua-2 and ua-3 once each (misses).
    let cache = |c: &str, r: &str| series("pandav_cache_requests_total", &[("cache", c), ("result", r)]);
    assert_eq!(delta(&before, &after, &cache("listing", "miss")), 1.0);
    assert_eq!(delta(&before, &after, &cache("listing", "hit")), 3.0);
    assert_eq!(delta(&before, &after, &cache("link", "miss")), 3.0);
    assert_eq!(delta(&before, &after, &cache("link", "hit")), 1.0);

    // 5. A proxied file of a local mount, and a PROPFIND.
    let r = http().get(format!("{base}/loc/file.bin")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &local_file[..]);
    let r = http()
        .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), format!("{base}/loc/"))
        .header("Depth", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 207);
    r.bytes().await.unwrap();

    let req = |m: &str, s: &str| series("pandav_http_requests_total", &[("method", m), ("status", s)]);
    let want_requests = [
        (req("GET", "302"), 3.0),
        (req("GET", "502"), 1.0),
        // the file, and the first two scrapes
        (req("GET", "200"), 3.0),
        (req("PROPFIND", "207"), 1.0),
    ];
    wait_log(
        &srv,
        &[
            ("path=/-/metrics status=200", 2),
            ("path=/115/movie.mkv status=302", 3),
            ("path=/115/movie.mkv status=502", 1),
            ("path=/loc/file.bin status=200", 1),
            ("path=/loc/ status=207", 1),
        ],
    )
    .await;
    let after = scrape(&base, None).await;
    let requests = moved(&before, &after, "pandav_http_requests_total");
    let expect: std::collections::BTreeMap<String, f64> = want_requests.iter().cloned().collect();
    assert_eq!(requests, expect, "requests by method and status");
    let count = |m: &str| series("pandav_http_request_duration_seconds_count", &[("method", m)]);
    assert_eq!(delta(&before, &after, &count("GET")), 7.0);
    assert_eq!(delta(&before, &after, &count("PROPFIND")), 1.0);
    let inf = series("pandav_http_request_duration_seconds_bucket", &[("le", "+Inf"), ("method", "GET")]);
    assert_eq!(delta(&before, &after, &inf), 7.0, "every request lands in the +Inf bucket");

    // Downloads by policy, and the bytes pandav streamed itself.
    let dl = |p: &str| series("pandav_downloads_total", &[("policy", p)]);
    assert_eq!(delta(&before, &after, &dl("redirect")), 3.0, "the failed link is no redirect");
    assert_eq!(delta(&before, &after, &dl("proxy")), 1.0);
    let bytes = series("pandav_download_bytes_total", &[("policy", "proxy")]);
    assert_eq!(delta(&before, &after, &bytes), local_file.len() as f64);
    assert_eq!(after.get("pandav_proxy_streams_active"), Some(&0.0));
    for d in ["115", "local"] {
        assert_eq!(after.get(&series("pandav_mounts", &[("driver", d), ("healthy", "true")])), Some(&1.0), "{d}");
    }
    // Nothing about what is served or to whom.
    let (_, text) = scrape_raw(&base, None).await;
    for private in ["/115", "/loc", "movie", "file.bin", "ua-1", "alice"] {
        assert!(!text.contains(private), "{private:?} in the exposition");
    }

    // The sample dashboard reads only series the server has (token refreshes are
    // checked by the test below, which makes some).
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/grafana-pandav.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut exprs = vec![];
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(exprs.len() >= 10, "{exprs:?}");
    for e in &exprs {
        for name in e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("pandav_")) {
            let known = name == "pandav_token_refreshes_total"
                || after.keys().any(|k| k == name || k.starts_with(&format!("{name}{{")));
            assert!(known, "the dashboard reads {name}, which the server does not have");
        }
    }

    // A stream in progress shows in the gauge until the client goes away.
    let big = pseudo_random(48 << 20, 5);
    std::fs::write(local.join("big.bin"), &big).unwrap();
    let addr = srv.addr();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /loc/big.bin HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut first = [0u8; 4096];
    let n = s.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let streaming = scrape(&base, None).await;
    assert_eq!(streaming.get("pandav_proxy_streams_active"), Some(&1.0));
    drop(s);
    let t0 = std::time::Instant::now();
    loop {
        let now = scrape(&base, None).await;
        if now.get("pandav_proxy_streams_active") == Some(&0.0) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "the stream never ended: {now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refreshes_are_counted() {
    use emu115open::{Emu115Open, Options, DEFAULT_APP_ID};
    let emu = Emu115Open::start(Options::default()).await;
    let user = emu.add_user_named("alice");
    let tok = emu.authorize(user, DEFAULT_APP_ID);
    emu.put_file(user, 0, "a.txt", b"a");
    let t = TestDir::new();
    let mut eps = String::from("[mounts.options.endpoints]\n");
    for (h, b) in emu.endpoint_table() {
        eps.push_str(&format!("{} = {}\n", toml_str(&h), toml_str(&b)));
    }
    let opts = format!(
        "refresh_token = {}\nrate_limit = 0\nclient_id = {}",
        toml_str(&tok.refresh_token),
        toml_str(DEFAULT_APP_ID)
    );
    let cfg = ConfigBuilder::new().server(METRICS_ON).mount("/o", "115_open", "cache_ttl = \"0s\"", &opts, &eps);
    let srv = serve(t.path(), cfg.build(&t.mkdir("state"))).await;
    let base = srv.url().to_string();
    assert!(settled(&base, None).await.iter().all(|m| m["ok"] == true));
    let before = scrape(&base, None).await;
    let refreshes = emu.refresh_count(tok.grant);
    for _ in 0..2 {
        emu.expire_access_token(tok.grant);
        let r = http()
            .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), format!("{base}/o/"))
            .header("Depth", "1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 207);
        assert!(r.text().await.unwrap().contains("a.txt"));
    }
    let after = scrape(&base, None).await;
    let rotated = emu.refresh_count(tok.grant) - refreshes;
    assert_eq!(rotated, 2, "the emulator saw two refreshes");
    let moved = moved(&before, &after, "pandav_token_refreshes_total");
    let expect: std::collections::BTreeMap<String, f64> =
        [(series("pandav_token_refreshes_total", &[("result", "rotated")]), 2.0)].into_iter().collect();
    assert_eq!(moved, expect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_may_scrape() {
    let t = TestDir::new();
    let data = t.mkdir("data");
    // Off by default: no such route.
    let srv = serve(t.path(), ConfigBuilder::new().local("/secret-mount", &data).build(&t.mkdir("state"))).await;
    assert_eq!(scrape_raw(srv.url(), None).await.0, 404);
    drop(srv);

    // On, with users: any configured user, nobody else (anonymous readers neither).
    let cfg = ConfigBuilder::new()
        .server("metrics = true\nallow_anonymous = true")
        .user("alice", "pw-a", &[], false)
        .local("/secret-mount", &data);
    let srv = serve(t.path(), cfg.build(&t.mkdir("state"))).await;
    let (st, _) = scrape_raw(srv.url(), None).await;
    assert_eq!(st, 401);
    assert_eq!(scrape_raw(srv.url(), Some(&basic("alice", "wrong"))).await.0, 401);
    let (st, text) = scrape_raw(srv.url(), Some(&basic("alice", "pw-a"))).await;
    assert_eq!(st, 200);
    assert!(text.contains("pandav_http_requests_total") && !text.contains("secret-mount") && !text.contains("alice"));
    drop(srv);

    // Own credentials: only those.
    let cfg = ConfigBuilder::new()
        .server("metrics = true\nmetrics_user = \"prom\"\nmetrics_password = \"scrape-pw\"")
        .user("alice", "pw-a", &[], false)
        .local("/secret-mount", &data);
    let srv = serve(t.path(), cfg.build(&t.mkdir("state"))).await;
    assert_eq!(scrape_raw(srv.url(), Some(&basic("alice", "pw-a"))).await.0, 401);
    assert_eq!(scrape_raw(srv.url(), None).await.0, 401);
    let (st, text) = scrape_raw(srv.url(), Some(&basic("prom", "scrape-pw"))).await;
    assert_eq!(st, 200, "{text}");
    // The scraper is no WebDAV user.
    let r = http()
        .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), srv.at("/secret-mount/"))
        .header("Authorization", basic("prom", "scrape-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(!srv.log().contains("scrape-pw"), "the password reached the log");
}
