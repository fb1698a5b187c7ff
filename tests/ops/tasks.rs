//! Copy tasks of replicas sharing their state in Redis, through the real binary: a slow
//! copy between mounts started on replica A is seen with its progress on B and C (and
//! in `pandav tasks`), the same COPY repeated through B and C joins it instead of
//! starting a second copy, and after a kill -9 of A the task shows as interrupted and
//! its hidden half-built target is removed by another replica, A never coming back.
//! And a reload (SIGHUP, one process): copies on kept and restarted mounts go on, and
//! a mount the reload adds gets what an earlier run left half-built there removed.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::redis_fixture::Redis;
use crate::util::*;

const MIB: usize = 1 << 20;

/// Names in `dir` that pandav hides (half-built entries and spools).
fn hidden(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".pandav-"))
        .collect();
    v.sort();
    v
}

fn swaps(dir: &Path) -> Vec<String> {
    hidden(dir).into_iter().filter(|n| n.starts_with(".pandav-swap-")).collect()
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn ask(method: &str, url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut r = http().request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    Answer { status, headers, body: resp.text().await.unwrap_or_default() }
}

async fn copy(base: &str, from: &str, to: &str, extra: &[(&str, &str)]) -> Answer {
    let dest = format!("{base}{to}");
    let mut h = vec![("Destination", dest.as_str())];
    h.extend_from_slice(extra);
    ask("COPY", &format!("{base}{from}"), &h).await
}

async fn task_list(base: &str, auth: &str) -> Vec<serde_json::Value> {
    let r = ask("GET", &format!("{base}/-/tasks"), &[("Authorization", auth)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    v["tasks"].as_array().unwrap().clone()
}

/// Poll `base`'s task list until `f` holds for it (at most `limit`).
async fn tasks_until(
    base: &str,
    auth: &str,
    limit: Duration,
    what: &str,
    f: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let t = Instant::now();
    loop {
        let l = task_list(base, auth).await;
        if f(&l) {
            return l;
        }
        assert!(t.elapsed() < limit, "waiting {limit:?} for {what}: {l:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `[[users]]`: alice, bob, and root (admin), as `[server]` lines (ConfigBuilder
/// writes no `admin`).
const USERS: &str = "copy_wait = \"1s\"\n[[users]]\nname = \"alice\"\npassword = \"pw-a\"\n\
[[users]]\nname = \"bob\"\npassword = \"pw-b\"\n[[users]]\nname = \"root\"\npassword = \"pw-r\"\nadmin = true\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_copy_tasks_join_repeats_and_clean_up_after_a_dead_one() {
    let redis = Redis::start();
    let cl = Cloud::new().await;
    let dir = cl.emu.mkdir(UID, 0, "slowdir");
    cl.emu.put_file(UID, dir, "a.txt", b"small first".to_vec());
    let size = 8 * MIB;
    cl.emu.put_file(UID, dir, "big.bin", pseudo_random(size, 41));
    let t = TestDir::new();
    let data = t.mkdir("data");
    // `state` before the `[[users]]` that end the `[server]` lines.
    let server = format!("state = {}\n{USERS}", toml_str(&redis.url()));
    let cfg = cl.p115(ConfigBuilder::new().server(&server), "/115", "cache_ttl = \"0s\"").local("/local", &data);
    let mut rs = vec![];
    for i in 0..3 {
        let dir = t.mkdir(&format!("replica-{i}"));
        rs.push(serve(&dir, cfg.build(&dir.join("state"))).await);
    }
    let (alice, bob, root) = (basic("alice", "pw-a"), basic("bob", "pw-b"), basic("root", "pw-r"));
    for r in &rs {
        assert!(settled(r.url(), Some(&alice)).await.iter().all(|m| m["ok"] == true));
    }
    let (a, b, c) = (rs[0].url().to_string(), rs[1].url().to_string(), rs[2].url().to_string());
    // The CDN trickles (160 KiB/s): the copy outlasts everything below.
    cl.emu.inject(emu115::CDN_HOST, emu115::Fault::slow_body(16 * 1024, Duration::from_millis(100)));

    let r = copy(&a, "/115/slowdir", "/local/slowdir", &[("Authorization", &alice)]).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let loc = r.headers.get("location").and_then(|v| v.to_str().ok()).expect("Location").to_string();
    let id = loc.strip_prefix("/-/tasks/").expect("a task address").to_string();

    // (a) B and C show A's task with its progress, and which replica runs it.
    for base in [&b, &c] {
        let l = tasks_until(base, &alice, Duration::from_secs(60), "A's task with progress", |l| {
            l.iter().any(|t| t["id"] == id.as_str() && t["bytes_done"].as_u64().unwrap_or(0) > 0)
        })
        .await;
        let task = l.iter().find(|t| t["id"] == id.as_str()).unwrap();
        assert_eq!(
            (task["state"].as_str(), task["owner"].as_str(), task["bytes_total"].as_u64()),
            (Some("running"), Some("alice"), Some(size as u64 + 11)),
            "{task}"
        );
        assert!(task["replica"].as_str().is_some_and(|r| !r.is_empty()), "{task}");
        let one = ask("GET", &format!("{base}{loc}"), &[("Authorization", &alice)]).await;
        assert_eq!(one.status, 200, "{}", one.body);
    }
    let first: serde_json::Value =
        serde_json::from_str(&ask("GET", &format!("{c}{loc}"), &[("Authorization", &root)]).await.body).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later: serde_json::Value =
        serde_json::from_str(&ask("GET", &format!("{c}{loc}"), &[("Authorization", &root)]).await.body).unwrap();
    assert!(later["bytes_done"].as_u64() > first["bytes_done"].as_u64(), "progress moves on C: {first} {later}");
    // Same visibility rules: bob sees nothing of alice's, the admin sees it.
    assert!(task_list(&b, &bob).await.is_empty());
    assert_eq!(ask("GET", &format!("{b}{loc}"), &[("Authorization", &bob)]).await.status, 404);
    assert!(task_list(&b, &root).await.iter().any(|t| t["id"] == id.as_str()));
    let out = {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["tasks", "--url", &c, "--user", "root"]).env("PANDAV_PASSWORD", "pw-r");
        tokio::task::spawn_blocking(move || run(&mut cmd, Duration::from_secs(60))).await.unwrap()
    };
    assert!(out.ok(), "{}{}", out.stdout, out.stderr);
    let row = out.stdout.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("no {id}: {}", out.stdout));
    assert!(row.contains("running") && row.contains("/115/slowdir -> /local/slowdir"), "{row}");
    assert!(out.stdout.contains("on replica "), "{}", out.stdout);

    // (b) The same COPY repeated through B (a file manager) and C (rclone) joins A's
    // task: B answers 202 with A's task, C 503 + Retry-After, and no second copy starts.
    let r = copy(&b, "/115/slowdir", "/local/slowdir", &[("Authorization", &alice)]).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.headers.get("location").unwrap().to_str().unwrap(), loc, "B points at A's task");
    let r = copy(&c, "/115/slowdir", "/local/slowdir", &[("Authorization", &alice), ("User-Agent", "rclone/v1.75.2")])
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.headers.get("retry-after").is_some() && r.body.contains(&id), "{}", r.body);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(swaps(&data).len(), 1, "one half-built target, not two: {:?}", hidden(&data));
    for r in &rs[1..] {
        let log = r.log();
        assert!(!log.contains("between mounts started"), "a replica started a second copy:\n{log}");
        assert!(log.contains("waiting for the task running on another replica"), "{log}");
    }
    let l = task_list(&c, &root).await;
    assert_eq!(l.iter().filter(|t| t["to"] == "/local/slowdir").count(), 1, "one task in the fleet: {l:?}");
    assert!(!data.join("slowdir").exists());

    // (c) kill -9 A mid-copy: B shows the task interrupted within the heartbeat's TTL
    // (10 s; 30 s allowed), and B or C removes the hidden target without A coming back.
    let running = task_list(&b, &alice).await;
    assert!(running.iter().any(|t| t["id"] == id.as_str() && t["state"] == "running"), "{running:?}");
    let dead = rs.remove(0);
    dead.kill();
    let killed = Instant::now();
    let l = tasks_until(&b, &alice, Duration::from_secs(30), "the task shown interrupted", |l| {
        l.iter().any(|t| t["id"] == id.as_str() && t["state"] == "failed")
    })
    .await;
    let task = l.iter().find(|t| t["id"] == id.as_str()).unwrap();
    assert!(task["error"].as_str().is_some_and(|e| e.contains("interrupted")), "a clear reason: {task}");
    let r = ask("GET", &format!("{c}{loc}"), &[("Authorization", &alice)]).await;
    assert!(r.status == 200 && r.body.contains("\"failed\""), "C agrees: {}", r.body);
    loop {
        assert!(!data.join("slowdir").exists(), "the real target never appears");
        if swaps(&data).is_empty() {
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(90), "left behind: {:?}", hidden(&data));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let logs = format!("{}{}", rs[0].log(), rs[1].log());
    assert!(logs.contains("half-built copy target(s) of a replica that stopped"), "{logs}");
    assert!(!data.join("slowdir").exists());
    // Repeating the COPY now starts a fresh copy (A's claim lapsed with it).
    let r = copy(&b, "/115/slowdir", "/local/slowdir", &[("Authorization", &alice)]).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_ne!(r.headers.get("location").unwrap().to_str().unwrap(), loc);
    assert!(rs[0].log().contains("between mounts started"));
    let fresh = r.headers.get("location").unwrap().to_str().unwrap().trim_start_matches("/-/tasks/").to_string();

    // Redis away: B still lists its own task (no error page), and says so once.
    let mut redis = redis;
    redis.kill();
    for _ in 0..3 {
        let l = task_list(&b, &alice).await;
        assert!(l.iter().any(|t| t["id"] == fresh.as_str() && t["state"] == "running"), "{l:?}");
        assert!(!l.iter().any(|t| t["id"] == id.as_str()), "only B's own: {l:?}");
    }
    assert_eq!(rs[0].log().matches("copy tasks: Redis unreachable").count(), 1, "{}", rs[0].log());
    // Back after longer than the heartbeat's TTL: B says its heartbeat lapsed, and its
    // task is the fleet's again (C sees it running).
    tokio::time::sleep(Duration::from_secs(11)).await;
    redis.start_again();
    let t0 = Instant::now();
    while !rs[0].log().contains("this replica's heartbeat lapsed") {
        assert!(t0.elapsed() < Duration::from_secs(30), "{}", rs[0].log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tasks_until(&c, &alice, Duration::from_secs(30), "B's task on C", |l| {
        l.iter().any(|t| t["id"] == fresh.as_str() && t["state"] == "running")
    })
    .await;
    for r in &rs {
        assert!(!r.log().contains("pw-a"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_running_copies_and_cleans_what_added_mounts_were_left() {
    let cl = Cloud::new().await;
    cl.emu.put_file(UID, 0, "one.bin", pseudo_random(2 * MIB, 51));
    let dir = cl.emu.mkdir(UID, 0, "tree");
    cl.emu.put_file(UID, dir, "two.bin", pseudo_random(2 * MIB, 52));
    let t = TestDir::new();
    let (local, dst, later) = (t.mkdir("local"), t.mkdir("dst"), t.mkdir("later"));
    let state = t.mkdir("state");
    // An earlier run was killed while building an entry on /later, a mount the
    // running config does not have yet.
    std::fs::create_dir_all(later.join(".pandav-swap-00000000000000aa")).unwrap();
    std::fs::write(later.join(".pandav-swap-00000000000000aa/part.bin"), b"half").unwrap();
    std::fs::write(
        state.join("copies-in-progress.json"),
        r#"{"entries":[{"mount":"/later","rel":".pandav-swap-00000000000000aa"}],"spools":[]}"#,
    )
    .unwrap();
    let alice = basic("alice", "pw-a");
    let base_cfg = |dst_extra: &str| {
        cl.p115(ConfigBuilder::new().server("copy_wait = \"1s\"").user("alice", "pw-a", &[], false), "/115", "")
            .local("/local", &local)
            .local_with("/dst", &dst, dst_extra)
    };
    let srv = serve(t.path(), base_cfg("").build(&state)).await;
    let base = srv.url().to_string();
    assert!(settled(&base, Some(&alice)).await.iter().all(|m| m["ok"] == true));
    let fault = cl.emu.inject(emu115::CDN_HOST, emu115::Fault::slow_body(16 * 1024, Duration::from_millis(100)));
    let r = copy(&base, "/115/one.bin", "/local/one.bin", &[("Authorization", &alice)]).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = copy(&base, "/115/tree", "/dst/tree", &[("Authorization", &alice)]).await;
    assert_eq!(r.status, 202, "{}", r.body);
    tasks_until(&base, &alice, Duration::from_secs(60), "both copies under way", |l| {
        l.len() == 2 && l.iter().all(|t| t["state"] == "running" && t["bytes_done"].as_u64().unwrap_or(0) > 0)
    })
    .await;
    assert_eq!(swaps(&dst).len(), 1, "{:?}", hidden(&dst));

    // /local stays, /dst changes (restarts), /later is added.
    let next = base_cfg("cache_ttl = \"5s\"").local("/later", &later);
    std::fs::write(&srv.config, next.build(&state)).unwrap();
    srv.signal("HUP");
    let since = Instant::now();
    while !srv.log().contains("configuration reloaded: 2 mount(s) kept, 1 restarted, 1 added, 0 removed") {
        assert!(since.elapsed() < Duration::from_secs(30), "no reload:\n{}", srv.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The added mount's leftover goes once it is up, without a restart.
    while later.join(".pandav-swap-00000000000000aa").exists() {
        assert!(since.elapsed() < Duration::from_secs(30), "the added mount's leftover stays:\n{}", srv.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(swaps(&dst).len(), 1, "the restarted mount's running copy is not cleaned: {:?}", hidden(&dst));
    let l = task_list(&base, &alice).await;
    assert!(l.iter().all(|t| t["state"] == "running"), "{l:?}");

    cl.emu.remove_fault(fault);
    let l = tasks_until(&base, &alice, Duration::from_secs(120), "both copies to finish", |l| {
        l.iter().all(|t| t["state"] != "running")
    })
    .await;
    assert!(l.iter().all(|t| t["state"] == "done" && t["status"] == 201), "{l:?}");
    assert_eq!(std::fs::read(local.join("one.bin")).unwrap(), pseudo_random(2 * MIB, 51));
    assert_eq!(std::fs::read(dst.join("tree/two.bin")).unwrap(), pseudo_random(2 * MIB, 52));
    assert!(swaps(&dst).is_empty() && swaps(&local).is_empty());
}
