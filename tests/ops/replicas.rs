//! Three `pandav serve` processes sharing their state in a real Redis: clients spread
//! over the replicas see the same tree, locks and dead properties, one download link per
//! file and User-Agent, one signing key; token rotation under kill -9 of replicas and a
//! Redis restart loses no token and never refreshes twice.

use std::path::Path;

use crate::common::*;
use crate::redis_fixture::Redis;
use crate::util::*;

/// A replica's config: `cfg` with the shared state, its own state dir below `dir`.
fn replica_text(cfg: &ConfigBuilder, redis: &Redis, dir: &Path) -> String {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    cfg.clone().server(&format!("state = {}", toml_str(&redis.url()))).build(&state)
}

/// The `<D:response>` of a multistatus whose href ends with `name`.
fn response_of<'b>(body: &'b str, name: &str) -> &'b str {
    body.split("<D:response>")
        .find(|r| r.split("</D:href>").next().is_some_and(|h| h.trim_end_matches('/').ends_with(name)))
        .unwrap_or_else(|| panic!("no response for {name} in {body}"))
}

async fn start_replicas(t: &TestDir, cfg: &ConfigBuilder, redis: &Redis, n: usize) -> Vec<Server> {
    let mut out = vec![];
    for i in 0..n {
        let dir = t.mkdir(&format!("replica-{i}"));
        out.push(serve(&dir, replica_text(cfg, redis, &dir)).await);
    }
    out
}

fn method(m: &str) -> reqwest::Method {
    reqwest::Method::from_bytes(m.as_bytes()).unwrap()
}

async fn send(rb: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, String) {
    let r = rb.send().await.unwrap();
    let (st, h) = (r.status().as_u16(), r.headers().clone());
    (st, h, r.text().await.unwrap_or_default())
}

const LOCK_BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>replica-test</D:owner></D:lockinfo>"#;
const SET_NOTE: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:note>shared note</Z:note></D:prop></D:set></D:propertyupdate>"#;
const SET_NOTE_B: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:note>changed via B</Z:note></D:prop></D:set></D:propertyupdate>"#;
const GET_NOTE: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:z"><D:prop><Z:note/><D:lockdiscovery/></D:prop></D:propfind>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_tree_locks_properties_links_and_the_signing_key() {
    let redis = Redis::start();
    let cl = Cloud::new().await;
    cl.emu.put_file(UID, 0, "movie.mkv", pseudo_random(4000, 1));
    let t = TestDir::new();
    let data = t.mkdir("data");
    let cfg = cl
        .p115(
            ConfigBuilder::new().user("alice", "pw-a", &[], false).user("bob", "pw-b", &[], false),
            "/115",
            "cache_ttl = \"0s\"",
        )
        .local("/d", &data)
        .local_with("/signed", &data, "policy = \"proxy_url\"\nproxy_url = \"http://relay.invalid\"");
    let rs = start_replicas(&t, &cfg, &redis, 3).await;
    let (a, b, c) = (rs[0].url().to_string(), rs[1].url().to_string(), rs[2].url().to_string());
    let alice = basic("alice", "pw-a");
    let bob = basic("bob", "pw-b");
    for r in &rs {
        assert!(settled(r.url(), Some(&alice)).await.iter().all(|m| m["ok"] == true));
    }
    let h = http();
    let req = |m: &str, base: &str, path: &str, who: &str| {
        h.request(method(m), format!("{base}{path}")).header("Authorization", who.to_string())
    };

    // The tree: written through one replica, seen through the others.
    assert_eq!(send(req("MKCOL", &a, "/d/shared", &alice)).await.0, 201);
    assert_eq!(send(req("MKCOL", &b, "/115/cloud-dir", &alice)).await.0, 201);
    let (st, _, _) = send(req("PUT", &b, "/d/shared/f.txt", &alice).body("one")).await;
    assert!(st == 201 || st == 204, "{st}");
    let (st, _, body) = send(req("PROPFIND", &c, "/d/shared/", &alice).header("Depth", "1")).await;
    assert!(st == 207 && body.contains("f.txt"), "{st}");
    let (st, _, body) = send(req("PROPFIND", &a, "/115/", &alice).header("Depth", "1")).await;
    assert!(st == 207 && body.contains("cloud-dir"), "{st}");

    // A lock taken through A is honoured by B and C.
    let (st, hd, body) =
        send(req("LOCK", &a, "/d/shared/f.txt", &alice).header("Timeout", "Second-300").body(LOCK_BODY)).await;
    assert_eq!(st, 200, "{body}");
    let token = hd.get("lock-token").unwrap().to_str().unwrap().trim_matches(['<', '>']).to_string();
    let (st, _, _) = send(req("PUT", &b, "/d/shared/f.txt", &alice).body("two")).await;
    assert_eq!(st, 423, "B honours A's lock");
    let (st, _, _) = send(req("DELETE", &c, "/d/shared/f.txt", &alice)).await;
    assert_eq!(st, 423, "C honours A's lock");
    let (st, _, _) =
        send(req("PUT", &c, "/d/shared/f.txt", &bob).header("If", format!("(<{token}>)")).body("bob")).await;
    assert_eq!(st, 423, "another user's token does not open it, on any replica");
    assert_eq!(std::fs::read(data.join("shared/f.txt")).unwrap(), b"one");
    let (st, _, body) = send(req("PROPFIND", &b, "/d/shared/f.txt", &alice).header("Depth", "0").body(GET_NOTE)).await;
    assert!(st == 207 && body.contains(&token), "B discovers A's lock: {body}");
    let (st, _, _) =
        send(req("PUT", &c, "/d/shared/f.txt", &alice).header("If", format!("(<{token}>)")).body("two")).await;
    assert!(st == 201 || st == 204, "C accepts A's token: {st}");
    assert_eq!(std::fs::read(data.join("shared/f.txt")).unwrap(), b"two");
    let (st, _, _) =
        send(req("UNLOCK", &b, "/d/shared/f.txt", &alice).header("Lock-Token", format!("<{token}>"))).await;
    assert_eq!(st, 204, "B removes A's lock");
    let (st, _, _) = send(req("PUT", &a, "/d/shared/f.txt", &alice).body("three")).await;
    assert!(st == 201 || st == 204, "unlocked everywhere: {st}");

    // Dead properties: set through A, read through C, moved through B.
    let (st, _, body) = send(req("PROPPATCH", &a, "/d/shared/f.txt", &alice).body(SET_NOTE)).await;
    assert!(st == 207 && body.contains("200"), "{body}");
    let (st, _, body) = send(req("PROPFIND", &c, "/d/shared/f.txt", &alice).header("Depth", "0").body(GET_NOTE)).await;
    assert!(st == 207 && body.contains("shared note"), "C reads A's property: {body}");
    let dest = format!("{b}/d/shared/g.txt");
    let (st, _, _) = send(req("MOVE", &b, "/d/shared/f.txt", &alice).header("Destination", dest)).await;
    assert_eq!(st, 201);
    let (_, _, body) = send(req("PROPFIND", &a, "/d/shared/g.txt", &alice).header("Depth", "0").body(GET_NOTE)).await;
    assert!(body.contains("shared note"), "the property moved with the file, for A too: {body}");
    let (_, _, body) = send(req("PROPFIND", &c, "/d/shared/f.txt", &alice).header("Depth", "0").body(GET_NOTE)).await;
    assert!(!body.contains("shared note"), "{body}");

    // PROPFIND of a folder (Depth 1) through C shows, for its member, the property and
    // the lock that went through A; a PROPPATCH through B of A's property shows at once.
    let (st, hd, body) =
        send(req("LOCK", &a, "/d/shared/g.txt", &alice).header("Timeout", "Second-300").body(LOCK_BODY)).await;
    assert_eq!(st, 200, "{body}");
    let token = hd.get("lock-token").unwrap().to_str().unwrap().trim_matches(['<', '>']).to_string();
    for body_xml in [Some(GET_NOTE), None] {
        let mut r = req("PROPFIND", &c, "/d/shared/", &alice).header("Depth", "1");
        if let Some(x) = body_xml {
            r = r.body(x);
        }
        let (st, _, body) = send(r).await;
        assert_eq!(st, 207, "{body}");
        let g = response_of(&body, "/g.txt");
        assert!(g.contains("shared note"), "C lists A's property (body {body_xml:?}): {body}");
        assert!(g.contains(&token) && g.contains("replica-test"), "C lists A's lock (body {body_xml:?}): {body}");
    }
    let (st, _, _) = send(req("PROPPATCH", &b, "/d/shared/g.txt", &alice).body(SET_NOTE_B)).await;
    assert_eq!(st, 423, "B's PROPPATCH honours A's lock");
    let (st, _, body) =
        send(req("PROPPATCH", &b, "/d/shared/g.txt", &alice).header("If", format!("(<{token}>)")).body(SET_NOTE_B))
            .await;
    assert!(st == 207 && body.contains("200 OK"), "B changes A's property under A's token: {body}");
    let (st, _, body) = send(req("PROPFIND", &c, "/d/shared/", &alice).header("Depth", "1").body(GET_NOTE)).await;
    let g = response_of(&body, "/g.txt");
    assert!(st == 207 && g.contains("changed via B") && !g.contains("shared note"), "C sees B's change: {body}");
    let (st, _, body) = send(req("PROPFIND", &a, "/d/shared/g.txt", &alice).header("Depth", "0").body(GET_NOTE)).await;
    assert!(st == 207 && body.contains("changed via B") && body.contains(&token), "A sees B's change: {body}");
    let (st, _, _) =
        send(req("UNLOCK", &c, "/d/shared/g.txt", &alice).header("Lock-Token", format!("<{token}>"))).await;
    assert_eq!(st, 204);
    let (_, _, body) = send(req("PROPFIND", &b, "/d/shared/", &alice).header("Depth", "1").body(GET_NOTE)).await;
    let g = response_of(&body, "/g.txt");
    assert!(!g.contains(&token) && g.contains("changed via B"), "the unlock shows on B: {body}");

    // One link per file and User-Agent for the fleet.
    cl.emu.reset_counters();
    let mut locations = vec![];
    for base in [&a, &b, &c, &a] {
        let (st, hd, _) = send(req("GET", base, "/115/movie.mkv", &alice).header("User-Agent", "player/1")).await;
        assert_eq!(st, 302);
        locations.push(hd.get("location").unwrap().to_str().unwrap().to_string());
    }
    assert!(locations.windows(2).all(|w| w[0] == w[1]), "{locations:?}");
    assert_eq!(cl.emu.calls("proapi.115.com/app/chrome/downurl"), 1, "one link fetched for the fleet");

    // A link signed by one replica is good on the others.
    std::fs::write(data.join("signed.bin"), b"signed bytes").unwrap();
    let (st, hd, _) = send(req("GET", &a, "/signed/signed.bin", &alice)).await;
    assert_eq!(st, 302);
    let loc = hd.get("location").unwrap().to_str().unwrap().to_string();
    let path_q = loc.strip_prefix("http://relay.invalid").expect("relay URL");
    let r = h.get(format!("{c}{path_q}")).send().await.unwrap();
    assert_eq!(r.status(), 200, "C verifies A's signature");
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"signed bytes");

    // What is in Redis: the lock table, the properties, a link; no secrets in clear.
    let mut con = redis.client();
    let keys: Vec<String> = redis::cmd("KEYS").arg("pandav:*").query(&mut con).unwrap();
    for want in ["pandav:locks:table", "pandav:props:paths", "pandav:secret:sign"] {
        assert!(keys.iter().any(|k| k == want), "{want} in {keys:?}");
    }
    assert!(keys.iter().any(|k| k.starts_with("pandav:link:/115:")), "{keys:?}");
    for r in rs {
        assert!(!r.log().contains("pw-a"));
    }
}
