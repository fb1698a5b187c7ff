//! COPY and MOVE between mounts through the real binary (`pandav serve`), against the
//! emu115 and emu115open emulators and local folders: by hash first (a known content
//! sends no body byte: the emulators' OSS logs), a local source hashed once (the
//! server's read counter in /proc), folder trees with Overwrite and Depth, a move that
//! fails at the target, a server killed mid-copy, the task endpoint and `pandav tasks`,
//! rclone's server-side copy between two mounts, and 115 <-> Aliyun Drive (`emualiyun`)
//! by hash with the proofs read from the source.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use emu115::{Emu115, Opts};
use emu115open::{Emu115Open, Options as OpenOptions, Tokens, DEFAULT_APP_ID};

const UID: u64 = 123456789;

struct Env {
    t: TestDir,
    emu: Arc<Emu115>,
    cookie: String,
    open: Emu115Open,
    open_user: u64,
    tok: Tokens,
    local: PathBuf,
    /// Extra `[server]` lines and `[[users]]`.
    server: String,
    users: Vec<(&'static str, &'static str, bool)>,
}

impl Env {
    async fn new() -> Env {
        Env::with(Opts::default()).await
    }

    async fn with(opts: Opts) -> Env {
        let emu = Arc::new(Emu115::start(opts).await);
        let cookie = emu.add_user(UID, "alice");
        let open = Emu115Open::start(OpenOptions::default()).await;
        let open_user = open.add_user_named("alice");
        let tok = open.authorize(open_user, DEFAULT_APP_ID);
        let t = TestDir::new();
        let local = t.mkdir("data");
        Env { t, emu, cookie, open, open_user, tok, local, server: String::new(), users: vec![] }
    }

    fn config(&self) -> String {
        // `[[users]]` right after the `[server]` lines (ConfigBuilder writes no `admin`).
        let mut users = String::new();
        for (name, pass, admin) in &self.users {
            users.push_str(&format!(
                "[[users]]\nname = {}\npassword = {}\nadmin = {admin}\n",
                toml_str(name),
                toml_str(pass)
            ));
        }
        let c = ConfigBuilder::new().server(&self.server).server(&users);
        let mut ep115 = String::from("[mounts.options.endpoints]\n");
        for (h, b) in self.emu.endpoints() {
            ep115.push_str(&format!("{} = {}\n", toml_str(&h), toml_str(&b)));
        }
        let opts115 = format!(
            "cookie = {}\nrate_limit = 0\nretry_base_ms = 20\napp_version = \"35.6.0.3\"\nm115_test_modulus = {}\nec115_server_public_key = {}",
            toml_str(&self.cookie),
            toml_str(&self.emu.m115_modulus_hex()),
            toml_str(&self.emu.ec_server_public_hex())
        );
        let mut ep_open = String::from("[mounts.options.endpoints]\n");
        for (h, b) in self.open.endpoint_table() {
            ep_open.push_str(&format!("{} = {}\n", toml_str(&h), toml_str(&b)));
        }
        let opts_open = format!(
            "refresh_token = {}\nclient_id = {}\nrate_limit = 0\npart_size = 1048576",
            toml_str(&self.tok.refresh_token),
            toml_str(DEFAULT_APP_ID)
        );
        c.local("/local", &self.local)
            .mount("/115", "115", "cache_ttl = \"0s\"", &opts115, &ep115)
            .mount("/open", "115_open", "cache_ttl = \"0s\"", &opts_open, &ep_open)
            .build(&self.t.join("state"))
    }

    fn share_mount(&self, owner: u64, dir: u64) -> String {
        let sh = self.emu.create_share(owner, &[dir]);
        let mut ep = String::from("[mounts.options.endpoints]\n");
        for (h, b) in self.emu.endpoints() {
            ep.push_str(&format!("{} = {}\n", toml_str(&h), toml_str(&b)));
        }
        format!(
            "\n[[mounts]]\npath = \"/share\"\ndriver = \"115_share\"\n[mounts.options]\nurl = {}\ncookie = {}\nrate_limit = 0\nretry_base_ms = 20\napp_version = \"35.6.0.3\"\nm115_test_modulus = {}\n{ep}",
            toml_str(&format!("https://115cdn.com/s/{}?password={}", sh.share_code, sh.receive_code)),
            toml_str(&self.cookie),
            toml_str(&self.emu.m115_modulus_hex())
        )
    }

    /// Start the server on `config` (off the runtime thread: the emulators keep serving).
    async fn serve_text(&self, config: String) -> Server {
        let path = self.t.write("pandav.toml", config);
        let dir = self.t.path().to_path_buf();
        let srv = tokio::task::spawn_blocking(move || Server::start_file(&path, &dir)).await.unwrap();
        // With users, only a user is told the mounts' health.
        let auth = self.users.first().map(|(u, p, _)| basic(u, p));
        wait_ready(&srv, auth.as_deref()).await;
        srv
    }

    async fn serve(&self) -> Server {
        self.serve_text(self.config()).await
    }

    /// OSS body bytes emu115 received.
    fn oss115_bytes(&self) -> usize {
        self.emu.requests().iter().filter(|r| r.key.contains("aliyuncs.com")).map(|r| r.body_len).sum()
    }

    /// OSS requests emu115open received (any of them carries body bytes).
    fn oss_open_requests(&self) -> usize {
        self.open.request_log().iter().filter(|r| r.host.contains("aliyuncs.com")).count()
    }

    fn cdn115_requests(&self) -> usize {
        self.emu.requests().iter().filter(|r| r.key.starts_with(emu115::CDN_HOST)).count()
    }

    fn bytes115(&self, path: &str) -> Option<Vec<u8>> {
        let id = self.emu.find_path(UID, path)?;
        self.emu.file_bytes(id).map(|b| b.to_vec())
    }

    fn bytes_open(&self, path: &str) -> Option<Vec<u8>> {
        self.open.file_bytes(self.open.lookup(self.open_user, path)?)
    }

    /// Names in a 115 folder (hidden ones included).
    fn names115(&self, dir: &str) -> Vec<String> {
        let id = if dir == "/" { 0 } else { self.emu.find_path(UID, dir).expect("115 folder") };
        self.emu.list_children(UID, id).into_iter().map(|e| e.name).collect()
    }

    fn names_open(&self, dir: &str) -> Vec<String> {
        let id = if dir == "/" { 0 } else { self.open.lookup(self.open_user, dir).expect("open folder") };
        self.open.children(self.open_user, id).into_iter().map(|e| e.name).collect()
    }
}

/// Every mount has started (its health is no longer "starting").
async fn wait_ready(srv: &Server, auth: Option<&str>) {
    let url = srv.at("/-/health");
    let t = Instant::now();
    loop {
        let mut r = client().get(&url);
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        if let Ok(r) = r.send().await {
            if let Ok(v) = r.json::<serde_json::Value>().await {
                let mounts = v["mounts"].as_array().cloned().unwrap_or_default();
                if !mounts.is_empty() && mounts.iter().all(|m| m["message"] != "starting") {
                    return;
                }
            }
        }
        assert!(t.elapsed() < Duration::from_secs(60), "mounts never started; log:\n{}", srv.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn req(method: &str, url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut r = client().request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap_or_default();
    Answer { status, headers, body }
}

/// COPY or MOVE `from` to `to` (server paths) with extra headers.
async fn cm(srv: &Server, method: &str, from: &str, to: &str, extra: &[(&str, &str)]) -> Answer {
    let dest = srv.at(to);
    let mut h = vec![("Destination", dest.as_str())];
    h.extend_from_slice(extra);
    req(method, &srv.at(from), &h).await
}

/// Bytes the server process has read through read() calls so far (files and sockets).
fn rchar(srv: &Server) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{}/io", srv.pid())).expect("/proc/<pid>/io");
    io.lines().find_map(|l| l.strip_prefix("rchar: ")).and_then(|v| v.trim().parse().ok()).expect("rchar")
}

/// A local file whose times are old enough for the hash cache (it does not remember
/// files modified within 2 s of being hashed).
fn settle(p: &Path) {
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(3600)).unwrap();
    drop(f);
    std::thread::sleep(Duration::from_millis(2100));
}

fn hidden(names: &[String]) -> Vec<String> {
    names.iter().filter(|n| n.starts_with(".pandav-")).cloned().collect()
}

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_to_115_is_hashed_once_and_then_sent_by_hash() {
    let env = Env::new().await;
    let size = 8 * MIB;
    let file = env.local.join("film.bin");
    std::fs::write(&file, pseudo_random(size, 1)).unwrap();
    settle(&file);
    let srv = env.serve().await;

    // First copy: read to hash it, and again to upload what 115 does not know.
    let before = rchar(&srv);
    let r = cm(&srv, "COPY", "/local/film.bin", "/115/a.bin", &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(rchar(&srv) - before >= size as u64, "the first copy read the file");
    assert_eq!(env.bytes115("/a.bin").as_deref(), Some(&pseudo_random(size, 1)[..]));
    assert!(env.oss115_bytes() >= size, "the body went to OSS");

    // Second copy: the hash comes from the cache and 115 knows the content: no body
    // byte is sent and the file is not read again (only the second check's range).
    env.emu.reset_counters();
    let before = rchar(&srv);
    let r = cm(&srv, "COPY", "/local/film.bin", "/115/b.bin", &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let read = rchar(&srv) - before;
    assert!(read < MIB as u64, "the second copy read {read} bytes");
    assert_eq!(env.oss115_bytes(), 0, "known content sends no body");
    assert_eq!(env.bytes115("/b.bin").as_deref(), Some(&pseudo_random(size, 1)[..]));

    // The cache survives a restart.
    srv.kill();
    let srv = env.serve().await;
    env.emu.reset_counters();
    let before = rchar(&srv);
    let r = cm(&srv, "COPY", "/local/film.bin", "/115/c.bin", &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let read = rchar(&srv) - before;
    assert!(read < MIB as u64, "after a restart the copy read {read} bytes");
    assert_eq!(env.oss115_bytes(), 0);

    // Changed in place (same size, its old mtime put back): hashed again, and the new
    // content arrives — never the old one by a stale hash.
    {
        use std::io::{Seek, Write};
        let mut f = std::fs::File::options().write(true).open(&file).unwrap();
        f.seek(std::io::SeekFrom::Start(4096)).unwrap();
        f.write_all(b"changed in place").unwrap();
    }
    let mut want = pseudo_random(size, 1);
    want[4096..4096 + 16].copy_from_slice(b"changed in place");
    settle(&file);
    env.emu.reset_counters();
    let r = cm(&srv, "COPY", "/local/film.bin", "/115/d.bin", &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(env.bytes115("/d.bin").as_deref(), Some(&want[..]));
    assert!(env.oss115_bytes() >= size, "new content is uploaded");
    assert!(hidden(&env.names115("/")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn between_115_and_115_open_by_hash_and_by_stream() {
    let env = Env::new().await;
    let size = 3 * MIB + 123;
    env.emu.put_file(UID, 0, "film.bin", pseudo_random(size, 2));
    let srv = env.serve().await;

    // Unknown to 115 Open: the body streams from 115's CDN to Open's OSS.
    let r = cm(&srv, "COPY", "/115/film.bin", "/open/film.bin", &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(env.bytes_open("/film.bin").as_deref(), Some(&pseudo_random(size, 2)[..]));
    assert!(env.oss_open_requests() > 0);

    // Known now: no OSS request at all, and from the source only the proofs (the first
    // 128 KiB and the second check's range), not the film.
    env.open.reset_counters();
    env.emu.reset_counters();
    // The CDN drops any answer past 256 KiB: the proofs fit, the film would not.
    let cap = env.emu.inject(emu115::CDN_HOST, emu115::Fault::drop_after(256 * 1024));
    let r = cm(&srv, "COPY", "/115/film.bin", "/open/again.bin", &[]).await;
    env.emu.remove_fault(cap);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(env.oss_open_requests(), 0, "known content sends no body");
    assert!(env.cdn115_requests() <= 2, "{} CDN requests for the proofs", env.cdn115_requests());
    assert_eq!(env.bytes_open("/again.bin").as_deref(), Some(&pseudo_random(size, 2)[..]));

    // Back to 115, which knows it: no OSS body byte; and as a MOVE the source goes.
    env.emu.reset_counters();
    let r = cm(&srv, "MOVE", "/open/again.bin", "/115/back.bin", &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(env.oss115_bytes(), 0);
    assert_eq!(env.bytes115("/back.bin").as_deref(), Some(&pseudo_random(size, 2)[..]));
    assert!(env.open.lookup(env.open_user, "/again.bin").is_none(), "moved away");
    assert!(hidden(&env.names_open("/")).is_empty() && hidden(&env.names115("/")).is_empty());
}

/// `rel → content` of every file below `root`.
fn files(root: &Path) -> Vec<(String, Vec<u8>)> {
    walk(root)
        .into_iter()
        .filter(|p| !p.ends_with('/'))
        .map(|p| {
            let b = std::fs::read(root.join(&p)).unwrap();
            (p, b)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trees_from_115_open_and_a_115_share_to_local_with_overwrite_and_depth() {
    let env = Env::new().await;
    let u = env.open_user;
    let tree = env.open.mkdir(u, 0, "tree");
    env.open.put_file(u, tree, "a.txt", b"alpha");
    let sub = env.open.mkdir(u, tree, "sub");
    env.open.put_file(u, sub, "b.bin", &pseudo_random(300_000, 3));
    env.open.put_file(u, sub, "empty", b"");
    env.open.mkdir(u, tree, "empty dir");
    let owner = UID + 1;
    env.emu.add_user(owner, "owner");
    let shared = env.emu.mkdir(owner, 0, "shared");
    env.emu.put_file(owner, shared, "s.txt", b"from a share".to_vec());
    let deep = env.emu.mkdir(owner, shared, "deep");
    env.emu.put_file(owner, deep, "d.bin", pseudo_random(200_000, 4));
    let config = env.config() + &env.share_mount(owner, shared);
    let srv = env.serve_text(config).await;
    let want = vec![
        ("a.txt".to_string(), b"alpha".to_vec()),
        ("sub/b.bin".to_string(), pseudo_random(300_000, 3)),
        ("sub/empty".to_string(), vec![]),
    ];

    let r = cm(&srv, "COPY", "/open/tree", "/local/tree", &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(files(&env.local.join("tree")), want);
    assert!(env.local.join("tree/empty dir").is_dir());

    // Overwrite: F refuses and changes nothing; T replaces the whole folder.
    std::fs::write(env.local.join("tree/extra.txt"), "mine").unwrap();
    let r = cm(&srv, "COPY", "/open/tree", "/local/tree", &[("Overwrite", "F")]).await;
    assert_eq!(r.status, 412, "{}", r.body);
    assert!(env.local.join("tree/extra.txt").exists());
    let r = cm(&srv, "COPY", "/open/tree", "/local/tree", &[("Overwrite", "T")]).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(files(&env.local.join("tree")), want, "replaced as a whole");

    // Depth 0: the folder without its members.
    let r = cm(&srv, "COPY", "/open/tree", "/local/tree0", &[("Depth", "0")]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(walk(&env.local.join("tree0")).is_empty());
    // Depth infinity, said out loud, into 115.
    let r = cm(&srv, "COPY", "/open/tree", "/115/tree", &[("Depth", "infinity")]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(env.bytes115("/tree/sub/b.bin").as_deref(), Some(&pseudo_random(300_000, 3)[..]));
    assert_eq!(env.bytes115("/tree/sub/empty").as_deref(), Some(&b""[..]));

    // A share is a source (read-only: copied from, never moved from).
    let r = cm(&srv, "COPY", "/share/shared", "/local/fromshare", &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        files(&env.local.join("fromshare")),
        vec![("deep/d.bin".to_string(), pseudo_random(200_000, 4)), ("s.txt".to_string(), b"from a share".to_vec())]
    );
    let r = cm(&srv, "MOVE", "/share/shared/s.txt", "/local/s.txt", &[]).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(!env.local.join("s.txt").exists());
    assert!(hidden(
        &std::fs::read_dir(&env.local)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect::<Vec<_>>()
    )
    .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_that_fails_at_the_target_leaves_the_source() {
    let env = Env::new().await;
    std::fs::write(env.local.join("one.bin"), pseudo_random(400_000, 5)).unwrap();
    let dir = env.t.mkdir("data/dir");
    for i in 0..3 {
        std::fs::write(dir.join(format!("f{i}.bin")), pseudo_random(200_000 + i, 6 + i as u64)).unwrap();
    }
    let srv = env.serve().await;
    let before = files(&env.local);
    // Open's OSS refuses every upload.
    let fault = env.open.inject("fhnfile.oss-cn-shenzhen.aliyuncs.com", emu115open::Fault::Status(500));
    let r = cm(&srv, "MOVE", "/local/one.bin", "/open/one.bin", &[]).await;
    assert!(r.status >= 500, "{} {}", r.status, r.body);
    let r = cm(&srv, "MOVE", "/local/dir", "/open/dir", &[]).await;
    assert!(r.status >= 500, "{} {}", r.status, r.body);
    assert_eq!(files(&env.local), before, "the sources are intact");
    let names = env.names_open("/");
    assert!(!names.iter().any(|n| n == "one.bin" || n == "dir"), "{names:?}");
    assert!(hidden(&names).is_empty(), "nothing half-built is left: {names:?}");
    // Once the target works, the same move goes through.
    env.open.remove_fault(fault);
    let r = cm(&srv, "MOVE", "/local/dir", "/open/dir", &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(!env.local.join("dir").exists());
    assert_eq!(env.bytes_open("/dir/f2.bin").as_deref(), Some(&pseudo_random(200_002, 8)[..]));
}

/// Poll `/-/tasks` (as `auth`) until `f` holds for the task list.
async fn tasks_until(
    srv: &Server,
    auth: Option<&str>,
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let t = Instant::now();
    loop {
        let h: Vec<(&str, &str)> = auth.map(|a| vec![("Authorization", a)]).unwrap_or_default();
        let r = req("GET", &srv.at("/-/tasks"), &h).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        if f(&v) {
            return v;
        }
        assert!(t.elapsed() < Duration::from_secs(90), "waiting for {what}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn running(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v["tasks"].as_array().unwrap().iter().filter(|t| t["state"] == "running").cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_copy_leaves_no_partial_target() {
    let mut env = Env::new().await;
    env.server = "copy_wait = \"1s\"".into();
    let size = 4 * MIB;
    env.emu.put_file(UID, 0, "slow.bin", pseudo_random(size, 9));
    let d = env.emu.mkdir(UID, 0, "slowdir");
    env.emu.put_file(UID, d, "x.bin", pseudo_random(size, 10));
    env.emu.put_file(UID, d, "y.bin", pseudo_random(1000, 11));
    // The CDN trickles: a copy takes long enough to be killed in the middle.
    env.emu.inject(emu115::CDN_HOST, emu115::Fault::slow_body(32 * 1024, Duration::from_millis(50)));
    let srv = env.serve().await;
    let r = cm(&srv, "COPY", "/115/slow.bin", "/local/slow.bin", &[]).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = cm(&srv, "COPY", "/115/slowdir", "/open/slowdir", &[]).await;
    assert_eq!(r.status, 202, "{}", r.body);
    tasks_until(&srv, None, "both copies under way", |v| {
        running(v).len() == 2 && running(v).iter().all(|t| t["bytes_done"].as_u64().unwrap_or(0) > 0)
    })
    .await;
    // The Open target holds a hidden half-built folder now.
    assert!(!hidden(&env.names_open("/")).is_empty(), "{:?}", env.names_open("/"));
    srv.kill();

    let srv = env.serve().await;
    let r = req("PROPFIND", &srv.at("/local/"), &[("Depth", "1")]).await;
    assert!(!r.body.contains("slow.bin") && !r.body.contains(".pandav-"), "{}", r.body);
    let r = req("PROPFIND", &srv.at("/open/"), &[("Depth", "1")]).await;
    assert!(!r.body.contains("slowdir") && !r.body.contains(".pandav-"), "{}", r.body);
    // And what was left hidden is removed once the mounts are up.
    let t = Instant::now();
    loop {
        let local: Vec<String> =
            std::fs::read_dir(&env.local).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        if hidden(&env.names_open("/")).is_empty() && hidden(&local).is_empty() {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "left behind: {:?} {local:?}", env.names_open("/"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!env.local.join("slow.bin").exists());
    assert!(env.open.lookup(env.open_user, "/slowdir").is_none());
}

/// `pandav tasks --url <srv> ARGS` with `PANDAV_PASSWORD`.
async fn pandav_tasks(srv: &Server, args: &[&str], password: &str) -> Out {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["tasks", "--url", srv.url()]).args(args).env("PANDAV_PASSWORD", password);
    tokio::task::spawn_blocking(move || run(&mut cmd, Duration::from_secs(60))).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_copies_become_tasks_seen_by_their_owner_the_admin_and_the_cli() {
    let mut env = Env::new().await;
    env.server = "copy_wait = \"1s\"".into();
    env.users = vec![("alice", "a-pass", false), ("bob", "b-pass", false), ("root", "r-pass", true)];
    let size = 2 * MIB;
    env.emu.put_file(UID, 0, "slow.bin", pseudo_random(size, 12));
    let fault = env.emu.inject(emu115::CDN_HOST, emu115::Fault::slow_body(64 * 1024, Duration::from_millis(100)));
    let srv = env.serve().await;
    let (alice, bob, root) = (basic("alice", "a-pass"), basic("bob", "b-pass"), basic("root", "r-pass"));

    let r = cm(&srv, "COPY", "/115/slow.bin", "/local/slow.bin", &[("Authorization", &alice)]).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let loc = r.headers.get("location").and_then(|v| v.to_str().ok()).expect("Location").to_string();
    let id = loc.strip_prefix("/-/tasks/").expect("a task address").to_string();
    let info: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(info["id"], id.as_str());
    assert_eq!(info["bytes_total"], size as u64);

    // The same COPY again joins the running task; rclone is told to come back.
    let r = cm(&srv, "COPY", "/115/slow.bin", "/local/slow.bin", &[("Authorization", &alice)]).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.headers.get("location").unwrap().to_str().unwrap(), loc);
    let r = cm(
        &srv,
        "COPY",
        "/115/slow.bin",
        "/local/slow.bin",
        &[("Authorization", &alice), ("User-Agent", "rclone/v1.75.2")],
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.headers.get("retry-after").is_some());

    let v = tasks_until(&srv, Some(&alice), "alice's task", |v| !running(v).is_empty()).await;
    assert_eq!(v["tasks"].as_array().unwrap().len(), 1, "one task, joined twice: {v}");
    let t = &v["tasks"][0];
    assert_eq!(
        (t["from"].as_str(), t["to"].as_str(), t["owner"].as_str()),
        (Some("/115/slow.bin"), Some("/local/slow.bin"), Some("alice"))
    );
    let r = req("GET", &srv.at("/-/tasks"), &[("Authorization", &bob)]).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["tasks"], serde_json::json!([]));
    assert_eq!(req("GET", &srv.at(&loc), &[("Authorization", &bob)]).await.status, 404);
    assert_eq!(req("GET", &srv.at(&loc), &[("Authorization", &root)]).await.status, 200);
    assert_eq!(req("GET", &srv.at("/-/tasks"), &[]).await.status, 401);

    // The CLI, with alice's credentials.
    let out = pandav_tasks(&srv, &["--user", "alice"], "a-pass").await;
    assert!(out.ok(), "{}{}", out.stdout, out.stderr);
    let line =
        out.stdout.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("no row for {id}: {}", out.stdout));
    assert!(line.contains("running") && line.contains("/115/slow.bin -> /local/slow.bin"), "{line}");
    assert!(line.contains("/2.0 MiB") && line.contains("/s "), "bytes done of the total, and a rate: {line}");
    let out = pandav_tasks(&srv, &["--json", "--user", "alice", &id], "a-pass").await;
    assert!(out.ok(), "{}{}", out.stdout, out.stderr);
    let one: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!((one["state"].as_str(), one["bytes_total"].as_u64()), (Some("running"), Some(size as u64)), "{one}");
    assert!(one["rate"].is_u64() && one["bytes_done"].is_u64(), "{one}");
    let out = pandav_tasks(&srv, &["--user", "bob"], "wrong").await;
    assert!(!out.ok(), "a wrong password fails: {}", out.stdout);

    env.emu.remove_fault(fault);
    let v = tasks_until(&srv, Some(&root), "the copy to finish", |v| running(v).is_empty()).await;
    let t = &v["tasks"][0];
    assert_eq!(
        (t["state"].as_str(), t["status"].as_u64(), t["bytes_done"].as_u64()),
        (Some("done"), Some(201), Some(size as u64))
    );
    assert_eq!(std::fs::read(env.local.join("slow.bin")).unwrap(), pseudo_random(size, 12));
    assert!(srv.log().contains("copied between mounts"), "logged");
}

struct Rclone {
    env: Vec<(String, String)>,
}

impl Rclone {
    fn new(t: &TestDir, srv: &Server) -> Rclone {
        let bin = tool("rclone");
        // Not "owncloud": that vendor sets every copy's time with PROPPATCH after the
        // COPY, which 115 and 115 Open refuse (they keep their own times).
        let env = rclone_remote_env(t, &bin, srv.url(), "other", "rc", "x");
        Rclone { env }
    }

    async fn run(&self, args: &[&str]) -> Out {
        let mut cmd = std::process::Command::new(tool("rclone"));
        cmd.args(args).env_remove("RCLONE_VERBOSE");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        tokio::task::spawn_blocking(move || run(&mut cmd, Duration::from_secs(300))).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_copies_between_two_mounts_server_side() {
    let mut env = Env::new().await;
    env.server = "copy_wait = \"1s\"".into();
    env.users = vec![("rc", "x", false)];
    let src = env.t.mkdir("data/photos");
    for i in 0..5 {
        let f = src.join(format!("p{i}.jpg"));
        std::fs::write(&f, pseudo_random(100_000 + i * 1000, 20 + i as u64)).unwrap();
    }
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/n.txt"), "nested").unwrap();
    let srv = env.serve().await;
    let rc = Rclone::new(&env.t, &srv);

    let out = rc.run(&["copy", "pd:local/photos", "pd:115/photos", "-v"]).await;
    assert!(out.ok(), "{}\n{}", out.stdout, out.stderr);
    for i in 0..5 {
        assert_eq!(env.bytes115(&format!("/photos/p{i}.jpg")), Some(pseudo_random(100_000 + i * 1000, 20 + i as u64)));
    }
    assert_eq!(env.bytes115("/photos/sub/n.txt").as_deref(), Some(&b"nested"[..]));
    let log = srv.log();
    assert!(log.contains("method=COPY"), "rclone copied server-side");
    assert!(!log.contains("method=PUT"), "and uploaded nothing itself");

    // Cloud to cloud, with a copy that outlasts copy_wait: rclone is told 503 and
    // retries until the task is done.
    env.emu.put_file(UID, env.emu.find_path(UID, "/photos").unwrap(), "slow.bin", pseudo_random(MIB + 5, 30));
    let fault = env.emu.inject(emu115::CDN_HOST, emu115::Fault::slow_body(64 * 1024, Duration::from_millis(150)));
    let out = rc.run(&["copy", "pd:115/photos", "pd:open/photos", "-v"]).await;
    env.emu.remove_fault(fault);
    assert!(out.ok(), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(env.bytes_open("/photos/slow.bin"), Some(pseudo_random(MIB + 5, 30)));
    assert_eq!(env.bytes_open("/photos/p3.jpg"), Some(pseudo_random(103_000, 23)));
    assert!(srv.log().contains("status=503"), "the long copy was answered 503 at least once");
}

/// The server's peak resident memory (VmHWM), in bytes.
fn peak_rss(srv: &Server) -> u64 {
    let st = std::fs::read_to_string(format!("/proc/{}/status", srv.pid())).expect("/proc/<pid>/status");
    let kb: u64 = st
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_content_streams_between_clouds_in_bounded_memory() {
    let env = Env::new().await;
    let size = 96 * MIB + 7;
    env.emu.put_file(UID, 0, "big.bin", pseudo_random(size, 40));
    let srv = env.serve().await;
    // Warm the server (TLS, pools, listings) with a small copy first.
    env.emu.put_file(UID, 0, "small.bin", pseudo_random(1000, 41));
    let r = cm(&srv, "COPY", "/115/small.bin", "/open/small.bin", &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let before = peak_rss(&srv);

    let r = cm(&srv, "COPY", "/115/big.bin", "/open/big.bin", &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let grew = peak_rss(&srv).saturating_sub(before);
    eprintln!("peak RSS {} MiB before, grew {} MiB", before >> 20, grew >> 20);
    assert_eq!(env.bytes_open("/big.bin").map(|b| b == pseudo_random(size, 40)), Some(true));
    assert!(env.oss_open_requests() > 0, "it was uploaded, not known");
    // The whole file in memory would be 96 MiB more; a stream needs a few parts.
    assert!(grew < 40 * MIB as u64, "peak RSS grew by {} MiB copying 96 MiB", grew >> 20);
}

/// Body bytes the Aliyun emulator received on upload paths (part PUTs to the data host).
fn aliyun_body_bytes(ali: &emualiyun::EmuAliyun) -> u64 {
    ali.log().iter().filter(|r| r.method == "PUT" || r.host == emualiyun::DATA_HOST).map(|r| r.body_len).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn between_115_and_aliyun_by_hash_with_proofs_read_from_the_source() {
    let env = Env::new().await;
    let ali = emualiyun::EmuAliyun::start_temp(emualiyun::Options::default()).await;
    let user = ali.add_user("alice");
    let rt = ali.issue_refresh_token(&user.user_id, emualiyun::TokenKind::Mobile);
    let drive = user.resource_drive_id.clone();
    let mut ep = String::from("[mounts.options.endpoints]\n");
    for (h, b) in ali.endpoints() {
        ep.push_str(&format!("{} = {}\n", toml_str(&h), toml_str(&b)));
    }
    let config = format!(
        "{}\n[[mounts]]\npath = \"/ali\"\ndriver = \"aliyundrive\"\ncache_ttl = \"0s\"\n[mounts.options]\nrefresh_token = {}\nrate_limit = 0\n{ep}",
        env.config(),
        toml_str(&rt)
    );
    let size = 3 * MIB + 5;
    let film = pseudo_random(size, 50);
    env.emu.put_file(UID, 0, "film.bin", film.clone());
    ali.add_known_content(film.clone());
    let fresh = pseudo_random(2 * MIB + 1, 51);
    env.emu.put_file(UID, 0, "fresh.bin", fresh.clone());
    let srv = env.serve_text(config).await;

    // Known to Aliyun: the pre-hash (1 KiB) and the proof (8 bytes at a token-derived
    // offset) come from 115's CDN by range; no body byte reaches Aliyun. The CDN drops
    // any answer past 256 KiB, so the film itself cannot be read.
    env.emu.reset_counters();
    ali.clear_log();
    let cap = env.emu.inject(emu115::CDN_HOST, emu115::Fault::drop_after(256 * 1024));
    let r = cm(&srv, "COPY", "/115/film.bin", "/ali/film.bin", &[]).await;
    env.emu.remove_fault(cap);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(aliyun_body_bytes(&ali), 0, "known content sends no body");
    assert_eq!(ali.uploaded_part_bytes(), 0);
    assert!(env.cdn115_requests() <= 2, "{} CDN requests for the pre-hash and the proof", env.cdn115_requests());
    let id = ali.lookup(&drive, "/film.bin").expect("stored at Aliyun");
    assert!(ali.file_bytes(&id) == Some(film.clone()), "the stored content");

    // Unknown to Aliyun: the body streams from 115's CDN into Aliyun's parts.
    ali.clear_log();
    let r = cm(&srv, "COPY", "/115/fresh.bin", "/ali/fresh.bin", &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = ali.lookup(&drive, "/fresh.bin").expect("uploaded to Aliyun");
    assert!(ali.file_bytes(&id) == Some(fresh.clone()));
    assert!(aliyun_body_bytes(&ali) >= fresh.len() as u64, "the body was sent");

    // Back to 115 as a MOVE: 115 knows the film, so no OSS body byte; the source goes.
    env.emu.reset_counters();
    let r = cm(&srv, "MOVE", "/ali/film.bin", "/115/back.bin", &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(env.oss115_bytes(), 0);
    assert_eq!(env.bytes115("/back.bin").as_deref(), Some(&film[..]));
    assert!(ali.lookup(&drive, "/film.bin").is_none(), "moved away");
    let root: Vec<String> = ali.children(&drive, "root").into_iter().map(|e| e.name).collect();
    assert!(hidden(&root).is_empty() && hidden(&env.names115("/")).is_empty(), "{root:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_115_to_aliyun_open_by_hash_with_proofs_read_from_the_source() {
    let env = Env::new().await;
    let ali = emualiyun::EmuAliyun::start_temp(emualiyun::Options::default()).await;
    let (client_id, secret) = ("pandavxcopytest01", "xcopy-secret");
    ali.register_app(emualiyun::AppSpec::new(client_id, secret));
    let user = ali.add_user("alice");
    let tok = ali.open_authorize(&user.user_id, client_id);
    let drive = user.resource_drive_id.clone();
    let mut ep = String::from("[mounts.options.endpoints]\n");
    for (h, b) in ali.endpoints() {
        ep.push_str(&format!("{} = {}\n", toml_str(&h), toml_str(&b)));
    }
    let config = format!(
        "{}\n[[mounts]]\npath = \"/alio\"\ndriver = \"aliyundrive_open\"\ncache_ttl = \"0s\"\n[mounts.options]\nclient_id = {}\nclient_secret = {}\nrefresh_token = {}\n{ep}",
        env.config(),
        toml_str(client_id),
        toml_str(secret),
        toml_str(&tok.refresh_token)
    );
    let size = 3 * MIB + 7;
    let film = pseudo_random(size, 60);
    env.emu.put_file(UID, 0, "film.bin", film.clone());
    ali.add_known_content(film.clone());
    let fresh = pseudo_random(MIB + 3, 61);
    env.emu.put_file(UID, 0, "fresh.bin", fresh.clone());
    let srv = env.serve_text(config).await;

    // Known: the pre-hash and the proof from 115's CDN by range, no body to Aliyun.
    env.emu.reset_counters();
    ali.clear_log();
    let cap = env.emu.inject(emu115::CDN_HOST, emu115::Fault::drop_after(256 * 1024));
    let r = cm(&srv, "COPY", "/115/film.bin", "/alio/film.bin", &[]).await;
    env.emu.remove_fault(cap);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(aliyun_body_bytes(&ali), 0, "known content sends no body");
    assert!(env.cdn115_requests() <= 2, "{} CDN requests for the pre-hash and the proof", env.cdn115_requests());
    let id = ali.lookup(&drive, "/film.bin").expect("stored at Aliyun Open");
    assert!(ali.file_bytes(&id) == Some(film.clone()));

    // Unknown: streamed from 115's CDN into the parts.
    ali.clear_log();
    let r = cm(&srv, "COPY", "/115/fresh.bin", "/alio/fresh.bin", &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = ali.lookup(&drive, "/fresh.bin").expect("uploaded to Aliyun Open");
    assert!(ali.file_bytes(&id) == Some(fresh.clone()));
    assert!(aliyun_body_bytes(&ali) >= fresh.len() as u64, "the body was sent");
    let root: Vec<String> = ali.children(&drive, "root").into_iter().map(|e| e.name).collect();
    assert!(hidden(&root).is_empty(), "{root:?}");
}
