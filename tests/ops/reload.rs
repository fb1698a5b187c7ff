//! SIGHUP through the real binary: a mount is added, a changed one restarts, an
//! unchanged one keeps its listing cache and its drive's session (told by the 115
//! emulator's request log), users change; a broken config is refused and the running
//! one keeps serving.

use std::time::Duration;

use crate::common::*;
use crate::util::*;

fn propfind(base: &str, path: &str, auth: &str) -> reqwest::RequestBuilder {
    http()
        .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), format!("{base}{path}"))
        .header("Depth", "1")
        .header("Authorization", auth.to_string())
}

async fn listing(base: &str, path: &str, auth: &str) -> (u16, String) {
    let r = propfind(base, path, auth).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The session id of a 115 cookie header value.
fn seid(cookie: &str) -> String {
    cookie.split(';').find_map(|kv| kv.trim().strip_prefix("SEID=")).expect("a SEID").to_string()
}

/// Requests the emulator served since its counters were reset, made with `cookie`'s
/// session, to `key` (a prefix of `host/path`).
fn served(cl: &Cloud, cookie: &str, key: &str) -> usize {
    let s = seid(cookie);
    cl.emu
        .requests()
        .iter()
        .filter(|r| r.key.starts_with(key) && r.cookie.as_deref().is_some_and(|c| c.contains(&s)))
        .count()
}

async fn wait_log_count(srv: &Server, needle: &str, n: usize) {
    let t = std::time::Instant::now();
    while srv.log().matches(needle).count() < n {
        assert!(t.elapsed() < Duration::from_secs(30), "no {needle:?} in the log:\n{}", srv.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_changes_and_keeps_mounts() {
    let cl = Cloud::new().await;
    let bob = cl.emu.add_user(UID + 1, "bob");
    cl.emu.put_file(UID, 0, "alice.txt", b"a".to_vec());
    cl.emu.put_file(UID + 1, 0, "bob.txt", b"b".to_vec());
    let t = TestDir::new();
    let data = t.mkdir("data");
    std::fs::write(data.join("local.txt"), b"l").unwrap();
    let state = t.mkdir("state");
    let alice_auth = basic("alice", "pw-a");
    let keep = |c: ConfigBuilder| c.mount("/keep", "115", "cache_ttl = \"1h\"", &cl.options(), &cl.endpoints());
    let first = keep(ConfigBuilder::new().user("alice", "pw-a", &[], false)).mount(
        "/change",
        "115",
        "cache_ttl = \"1h\"",
        &cl.options_with(&bob),
        &cl.endpoints(),
    );
    let srv = serve(t.path(), first.build(&state)).await;
    let base = srv.url().to_string();
    assert!(settled(&base, Some(&alice_auth)).await.iter().all(|m| m["ok"] == true));
    for (p, name) in [("/keep/", "alice.txt"), ("/change/", "bob.txt")] {
        let (st, body) = listing(&base, p, &alice_auth).await;
        assert!(st == 207 && body.contains(name), "{p}: {st}");
    }
    cl.emu.reset_counters();

    // /change becomes read-only, /new appears, carol can log in.
    let second = keep(ConfigBuilder::new().user("alice", "pw-a", &[], false).user("carol", "pw-c", &[], false))
        .mount("/change", "115", "cache_ttl = \"1h\"\nread_only = true", &cl.options_with(&bob), &cl.endpoints())
        .local("/new", &data);
    std::fs::write(&srv.config, second.build(&state)).unwrap();
    srv.signal("HUP");
    wait_log_count(&srv, "configuration reloaded: 1 mount(s) kept, 1 restarted, 1 added, 0 removed", 1).await;
    assert!(settled(&base, Some(&alice_auth)).await.iter().all(|m| m["ok"] == true));
    // The changed mount started again with its own session check; the kept one did not.
    assert_eq!(served(&cl, &bob, "my.115.com"), 1, "the restarted mount checked its cookie");
    assert_eq!(served(&cl, &cl.cookie, "my.115.com"), 0, "the kept mount's session was left alone");
    let (st, body) = listing(&base, "/keep/", &alice_auth).await;
    assert!(st == 207 && body.contains("alice.txt"));
    assert_eq!(served(&cl, &cl.cookie, "webapi.115.com/files"), 0, "the kept mount answered from its cache");
    let (st, body) = listing(&base, "/change/", &alice_auth).await;
    assert!(st == 207 && body.contains("bob.txt"));
    assert_eq!(served(&cl, &bob, "webapi.115.com/files"), 1, "the restarted mount listed anew");
    let r =
        http().put(format!("{base}/change/x.txt")).header("Authorization", &alice_auth).body("x").send().await.unwrap();
    assert_eq!(r.status(), 403, "the new read_only applies");
    let (st, body) = listing(&base, "/new/", &basic("carol", "pw-c")).await;
    assert!(st == 207 && body.contains("local.txt"), "the new mount and the new user: {st}");

    // A broken config is refused: everything stays as it is.
    cl.emu.reset_counters();
    std::fs::write(&srv.config, second.build(&state).replace("[[mounts]]", "[[mounts]]\nbogus = 1")).unwrap();
    srv.signal("HUP");
    wait_log_count(&srv, "configuration reload refused, the running one stays", 1).await;
    assert!(srv.log().contains("bogus"), "the reason is logged");
    let (st, body) = listing(&base, "/new/", &basic("carol", "pw-c")).await;
    assert!(st == 207 && body.contains("local.txt"));
    let r =
        http().put(format!("{base}/change/x.txt")).header("Authorization", &alice_auth).body("x").send().await.unwrap();
    assert_eq!(r.status(), 403);
    // Options a driver refuses are refused too (caught when the mount is built).
    std::fs::write(&srv.config, second.build(&state).replace("rate_limit = 0", "rate_limit = -1")).unwrap();
    srv.signal("HUP");
    wait_log_count(&srv, "configuration reload refused, the running one stays", 2).await;
    let (st, _) = listing(&base, "/keep/", &alice_auth).await;
    assert_eq!(st, 207);
    assert_eq!(cl.emu.requests().iter().filter(|r| r.key.starts_with("my.115.com")).count(), 0, "no mount restarted");

    // Removing a mount and a user.
    let third = keep(ConfigBuilder::new().user("alice", "pw-a", &[], false)).local("/new", &data);
    std::fs::write(&srv.config, third.build(&state)).unwrap();
    srv.signal("HUP");
    wait_log_count(&srv, "configuration reloaded: 2 mount(s) kept, 0 restarted, 0 added, 1 removed", 1).await;
    assert_eq!(listing(&base, "/change/", &alice_auth).await.0, 404);
    assert_eq!(listing(&base, "/new/", &basic("carol", "pw-c")).await.0, 401);
}
