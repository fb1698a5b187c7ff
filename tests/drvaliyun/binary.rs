//! The real `pandav` binary against the emulator: crash safety under SIGKILL during
//! refreshes, two servers on one state dir, dead logins in `/-/health`, `pandav login
//! aliyundrive`, rclone end to end, a 1 GiB rapid upload, web- vs mobile-kind links,
//! ffprobe through redirect and proxy, a share mount.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use emualiyun::{EmuAliyun, Options, Pattern, ShareState, TokenKind, DATA_HOST};

use crate::common::*;
use crate::fixture::crash::{
    get_status, http, listing, mount_health, serve, settled, sigkill_during_refreshes, CrashLoop,
};
use crate::fixture::{run, tool, ConfigBuilder, Out};

/// An `aliyundrive` mount of the emulator.
fn mount(
    cfg: ConfigBuilder,
    emu: &EmuAliyun,
    path: &str,
    rt: Option<&str>,
    extra: &str,
    options: &str,
) -> ConfigBuilder {
    let mut o = String::from("rate_limit = 0\n");
    if let Some(rt) = rt {
        o.push_str(&format!("refresh_token = \"{rt}\"\n"));
    }
    o.push_str(options);
    cfg.mount(
        path,
        "aliyundrive",
        &format!("cache_ttl = \"0s\"\n{extra}"),
        &o,
        &endpoints_toml(emu, "mounts.options.endpoints"),
    )
}

fn write(dir: &Path, cfg: &ConfigBuilder) -> PathBuf {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let p = dir.join("pandav.toml");
    std::fs::write(&p, cfg.build(&state)).unwrap();
    p
}

fn state_refresh(dir: &Path, mount_file: &str) -> String {
    saved_refresh(&dir.join("state").join(mount_file))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_refreshes_never_loses_the_token() {
    let env = env(Options::default()).await;
    env.emu.put_file(env.drive(), "root", "hello.txt", b"hi".to_vec());
    let cfg = write(env.dir.path(), &mount(ConfigBuilder::new(), &env.emu, "/a", Some(&env.rt), "", ""));
    let uid = env.user.user_id.clone();
    let rounds = sigkill_during_refreshes(CrashLoop {
        config: &cfg,
        mount: "/a",
        file: "hello.txt",
        get_status: 302,
        expire: &|| env.emu.expire_access_tokens(&uid),
        describe: &|| {
            format!(
                "refreshes {}, burnt {}, list calls {}",
                env.emu.refresh_count(&uid),
                env.emu.refresh_reuse_count(&uid),
                env.emu.calls("api.alipan.com/adrive/v3/file/list")
            )
        },
    })
    .await;
    let refreshes = env.emu.refresh_count(&uid);
    eprintln!("crash test: {refreshes} refreshes over {rounds} kills");
    assert!(refreshes as usize >= rounds, "refreshes were exercised: {refreshes}");
    assert_eq!(env.emu.refresh_reuse_count(&uid), 0, "a refresh token was sent twice: a rotation was lost");
    let saved = state_refresh(env.dir.path(), "mount-_a.json");
    assert!(env.emu.is_refresh_token_live(&saved), "the saved refresh token is not the live one");
    assert_eq!(env.emu.live_refresh_tokens(&uid), vec![saved]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_state_dir_burn_no_token() {
    let env = env(Options::default()).await;
    env.emu.put_file(env.drive(), "root", "hello.txt", b"hi".to_vec());
    let cfg = write(env.dir.path(), &mount(ConfigBuilder::new(), &env.emu, "/a", Some(&env.rt), "", ""));
    let (a, b) = (serve(&cfg, &[]).await, serve(&cfg, &[]).await);
    for s in [&a, &b] {
        assert_eq!(settled(s.url(), "/a").await["ok"], true);
    }
    let uid = env.user.user_id.clone();
    for round in 0..20 {
        env.emu.expire_access_tokens(&uid);
        let tasks: Vec<_> = [a.url(), b.url(), a.url(), b.url()]
            .into_iter()
            .map(|base| {
                let base = base.to_string();
                tokio::spawn(async move { listing(&base, "/a/").await })
            })
            .collect();
        for t in tasks {
            let (st, body) = t.await.unwrap();
            assert!(st == 207 && body.contains("hello.txt"), "round {round}: {st}");
        }
    }
    assert!(env.emu.refresh_count(&uid) >= 20);
    assert_eq!(env.emu.refresh_reuse_count(&uid), 0, "the two servers burnt a token");
    let saved = state_refresh(env.dir.path(), "mount-_a.json");
    assert_eq!(env.emu.live_refresh_tokens(&uid), vec![saved]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_login_shows_in_health_and_other_mounts_keep_serving() {
    let env = env(Options::default()).await;
    let bob = env.emu.add_user("bob");
    let rt_b = env.emu.issue_refresh_token(&bob.user_id, TokenKind::Mobile);
    env.emu.put_file(env.drive(), "root", "a.txt", b"a".to_vec());
    env.emu.put_file(&bob.resource_drive_id, "root", "b.txt", b"b".to_vec());
    let cfg = mount(ConfigBuilder::new(), &env.emu, "/a", Some(&env.rt), "", "");
    let cfg = write(env.dir.path(), &mount(cfg, &env.emu, "/b", Some(&rt_b), "", ""));
    let srv = serve(&cfg, &[]).await;
    for p in ["/a", "/b"] {
        assert_eq!(settled(srv.url(), p).await["ok"], true, "{p} starts healthy");
    }
    env.emu.revoke_user_tokens(&env.user.user_id);
    env.emu.clear_log();
    for _ in 0..25 {
        assert_eq!(get_status(srv.url(), "/a/a.txt").await, 503);
        assert!(!listing(srv.url(), "/a/").await.1.contains("a.txt"));
        let (st, body) = listing(srv.url(), "/b/").await;
        assert!(st == 207 && body.contains("b.txt"), "the other mount keeps serving");
    }
    let resp = http().get(format!("{}/-/health", srv.url())).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let h: serde_json::Value = resp.json().await.unwrap();
    let m = mount_health(&h, "/a");
    assert_eq!(m["ok"], false, "{m}");
    let msg = m["message"].as_str().unwrap();
    assert!(msg.contains("pandav login aliyundrive") && msg.contains("--mount /a"), "{msg}");
    assert!(!msg.contains(&env.rt), "a token in the health message");
    assert_eq!(mount_health(&h, "/b")["ok"], true);
    // Bounded: one refused call and one refresh found out; then nothing for /a.
    assert_eq!(env.emu.calls("auth.alipan.com/v2/account/token"), 1);
    let a_calls = env.emu.log().iter().filter(|r| r.status == 401).count();
    assert!(a_calls <= 2, "the dead login was called {a_calls} times");
    assert_eq!(get_status(srv.url(), "/b/b.txt").await, 302);
}

/// An expired refresh token (90 days, ref §2.1; 400 `RefreshTokenExpired`) ends the
/// login like a revoked one: unhealthy with the login hint. The other mount is on a
/// second emulator whose clock did not move, so it keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_login_is_unhealthy_with_a_login_hint_and_other_mounts_keep_serving() {
    let other = env(Options::default()).await;
    let env = env(Options::default()).await;
    env.emu.put_file(env.drive(), "root", "a.txt", b"a".to_vec());
    other.emu.put_file(other.drive(), "root", "b.txt", b"b".to_vec());
    let cfg = mount(ConfigBuilder::new(), &env.emu, "/a", Some(&env.rt), "", "");
    let cfg = write(env.dir.path(), &mount(cfg, &other.emu, "/b", Some(&other.rt), "", ""));
    let srv = serve(&cfg, &[]).await;
    for p in ["/a", "/b"] {
        assert_eq!(settled(srv.url(), p).await["ok"], true, "{p} starts healthy");
    }
    assert!(listing(srv.url(), "/a/").await.1.contains("a.txt"));
    // 91 days later at /a's provider: its access token and its refresh token are stale.
    env.emu.advance(Duration::from_secs(91 * 24 * 3600));
    env.emu.clear_log();
    for _ in 0..10 {
        assert!(!listing(srv.url(), "/a/").await.1.contains("a.txt"));
        let (st, body) = listing(srv.url(), "/b/").await;
        assert!(st == 207 && body.contains("b.txt"), "the other mount keeps serving");
    }
    let h = crate::fixture::crash::health(srv.url()).await;
    let m = mount_health(&h, "/a");
    assert_eq!(m["ok"], false, "{m}");
    let msg = m["message"].as_str().unwrap();
    assert!(msg.contains("pandav login aliyundrive") && msg.contains("--mount /a"), "{msg}");
    assert!(msg.contains("RefreshTokenExpired"), "the provider's reason: {msg}");
    assert!(!msg.contains(&env.rt), "a token in the health message");
    assert_eq!(mount_health(&h, "/b")["ok"], true);
    // The expired token was presented once; nothing more is asked for /a.
    assert_eq!(env.emu.calls("auth.alipan.com/v2/account/token"), 1);
    assert!(env.emu.log().len() <= 2, "the dead login kept calling: {}", env.emu.log().len());
    assert_eq!(get_status(srv.url(), "/b/b.txt").await, 302);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_by_qr_code_then_serve() {
    let env = env(Options::default()).await;
    env.emu.put_file(env.drive(), "root", "after-login.txt", b"ok".to_vec());
    let cfg = write(env.dir.path(), &mount(ConfigBuilder::new(), &env.emu, "/a", None, "", ""));
    {
        let srv = serve(&cfg, &[]).await;
        let m = settled(srv.url(), "/a").await;
        assert_eq!(m["ok"], false);
        assert!(m["message"].as_str().unwrap().contains("pandav login aliyundrive"), "{m}");
    }
    let login = |png: Option<PathBuf>| {
        let mut c = Command::new(crate::fixture::BIN);
        c.args(["login", "aliyundrive", "--mount", "/a", "--config"]).arg(&cfg);
        if let Some(p) = png {
            c.arg("--png").arg(p);
        }
        c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    };
    let emu = &env.emu;
    let next_qr = |seen: usize| async move {
        let t = Instant::now();
        loop {
            let codes = emu.passport_qr_codes();
            if codes.len() > seen {
                return codes[seen].clone();
            }
            assert!(t.elapsed() < Duration::from_secs(30), "no QR code was generated");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    // Declined on the phone, or the code runs out before anyone scans it: the command
    // says which and fails.
    for (i, word) in ["canceled", "expired"].into_iter().enumerate() {
        let child = login(None);
        let ck = next_qr(i).await;
        assert!(if i == 0 { env.emu.passport_qr_cancel(&ck) } else { env.emu.passport_qr_expire(&ck) });
        let out = blocking(move || child.wait_with_output().unwrap()).await;
        assert!(!out.status.success());
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(word), "{said}");
    }
    assert!(!env.dir.path().join("state/mount-_a.json").exists(), "nothing saved before a confirmation");
    // Scanned, confirmed: saved; the QR went to a PNG.
    let png = env.dir.path().join("qr.png");
    let child = login(Some(png.clone()));
    let ck = next_qr(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(env.emu.passport_qr_scan(&ck));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(env.emu.passport_qr_confirm(&ck, &env.user.user_id));
    let out = blocking(move || child.wait_with_output().unwrap()).await;
    let stdout = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "login failed: {stdout}");
    assert!(stdout.contains("scanned") && stdout.contains("logged in"), "{stdout}");
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"), "the QR code was written as a PNG");
    let saved = state_refresh(env.dir.path(), "mount-_a.json");
    let issued = env.emu.passport_qr_refresh_token(&ck).unwrap();
    assert_ne!(saved, issued, "the passport's token was rotated at once (ref §2.6)");
    assert!(env.emu.is_refresh_token_live(&saved));
    assert!(!stdout.contains(&saved) && !stdout.contains(&issued), "tokens are not printed");
    let srv = serve(&cfg, &[]).await;
    assert_eq!(settled(srv.url(), "/a").await["ok"], true);
    assert!(listing(srv.url(), "/a/").await.1.contains("after-login.txt"));
}

fn rclone(args: &[&str], base: &str, dir: &Path) -> Out {
    let mut c = Command::new(tool("rclone"));
    c.args(args)
        .env("RCLONE_CONFIG", dir.join("rclone.conf"))
        .env("RCLONE_CONFIG_PD_TYPE", "webdav")
        .env("RCLONE_CONFIG_PD_URL", base)
        .env("RCLONE_CONFIG_PD_VENDOR", "owncloud");
    run(&mut c, Duration::from_secs(600))
}

async fn rc(args: &[&str], base: &str, dir: &Path) -> Out {
    let (args, base, dir): (Vec<String>, String, PathBuf) =
        (args.iter().map(|s| s.to_string()).collect(), base.to_string(), dir.to_path_buf());
    blocking(move || rclone(&args.iter().map(String::as_str).collect::<Vec<_>>(), &base, &dir)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_copies_checks_reads_moves_and_deletes_a_tree() {
    let env = env(Options::default()).await;
    let emu = &env.emu;
    let rt_p = emu.issue_refresh_token(&env.user.user_id, TokenKind::Mobile);
    let cfg = mount(ConfigBuilder::new(), emu, "/a", Some(&env.rt), "", "");
    let cfg = write(env.dir.path(), &mount(cfg, emu, "/p", Some(&rt_p), "policy = \"proxy\"", ""));
    let src = env.dir.path().join("src");
    let big = random_bytes(50 * 1024 * 1024, 50);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("top.txt", b"top".to_vec()),
        ("empty.bin", vec![]),
        ("a/b/c/deep.txt", b"deep inside".to_vec()),
        ("a/b/empty too", vec![]),
        ("目录/文件 ü ☃.txt", "unicode ✓".as_bytes().to_vec()),
        ("目录/한국어 #1%.srt", b"subs".to_vec()),
        ("media/big.bin", big.clone()),
        ("media/small.bin", random_bytes(300_000, 51)),
    ];
    for (p, d) in &files {
        let path = src.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, d).unwrap();
    }
    let srv = serve(&cfg, &[]).await;
    for p in ["/a", "/p"] {
        assert_eq!(settled(srv.url(), p).await["ok"], true);
    }
    let d = env.dir.path();
    let s = src.to_str().unwrap();
    rc(&["copy", s, "pd:a/in"], srv.url(), d).await.expect_ok("rclone copy");
    for (p, data) in &files {
        let id = emu.lookup(env.drive(), &format!("/in/{p}")).unwrap_or_else(|| panic!("{p} missing"));
        assert_eq!(emu.file_bytes(&id).unwrap(), *data, "{p}");
    }
    // Hashes from oc:checksums (content_hash), then every byte through 302 and proxy.
    rc(&["check", s, "pd:a/in"], srv.url(), d).await.expect_ok("rclone check (SHA-1)");
    for remote in ["pd:a/in", "pd:p/in"] {
        rc(&["check", "--download", s, remote], srv.url(), d)
            .await
            .expect_ok(&format!("rclone check --download {remote}"));
        let back = d.join(format!("back-{}", &remote[3..4]));
        rc(&["copy", remote, back.to_str().unwrap()], srv.url(), d).await.expect_ok("rclone copy back");
        for (p, data) in &files {
            assert_eq!(std::fs::read(back.join(p)).unwrap(), *data, "{p} back from {remote}");
        }
    }
    // Move a folder, delete a file and a tree.
    rc(&["move", "pd:a/in/目录", "pd:a/moved/目录"], srv.url(), d).await.expect_ok("rclone move");
    assert!(emu.lookup(env.drive(), "/in/目录/文件 ü ☃.txt").is_none());
    let id = emu.lookup(env.drive(), "/moved/目录/文件 ü ☃.txt").expect("moved");
    assert_eq!(emu.file_bytes(&id).unwrap(), "unicode ✓".as_bytes());
    rc(&["deletefile", "pd:a/in/top.txt"], srv.url(), d).await.expect_ok("rclone deletefile");
    assert!(emu.lookup(env.drive(), "/in/top.txt").is_none());
    rc(&["purge", "pd:a/in/a"], srv.url(), d).await.expect_ok("rclone purge");
    assert!(emu.lookup(env.drive(), "/in/a").is_none());
    let trashed: Vec<String> = emu.trashed(env.drive()).into_iter().map(|e| e.name).collect();
    assert!(trashed.contains(&"top.txt".to_string()) && trashed.contains(&"a".to_string()), "{trashed:?}");
    let out = rc(&["lsf", "-R", "pd:a"], srv.url(), d).await.expect_ok("rclone lsf");
    assert!(!out.stdout.contains(".pandav"), "a swap or temp name is visible: {}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_rapid_upload_sends_no_body_bytes() {
    let env = env(Options::default()).await;
    const SIZE: u64 = 1 << 30;
    let sha1 = env.emu.add_known_pattern(77, SIZE);
    let cfg = write(env.dir.path(), &mount(ConfigBuilder::new(), &env.emu, "/a", Some(&env.rt), "", ""));
    let srv = serve(&cfg, &[]).await;
    assert_eq!(settled(srv.url(), "/a").await["ok"], true);
    env.emu.clear_log();
    // The body is generated as a stream on the client side, never held in memory.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    std::thread::spawn(move || {
        use std::io::Read;
        let mut r = Pattern::new(77, SIZE).reader();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 || tx.blocking_send(Ok(bytes::Bytes::copy_from_slice(&buf[..n]))).is_err() {
                return;
            }
        }
    });
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let r = reqwest::Client::new()
        .put(format!("{}/a/known-1gib.bin", srv.url()))
        .header("Content-Length", SIZE)
        .timeout(Duration::from_secs(600))
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "PUT: {}", r.status());
    assert_eq!(env.emu.uploaded_part_bytes(), 0, "part bytes were sent");
    let to_data = env.emu.log().iter().filter(|r| r.host == DATA_HOST || r.method == "PUT").count();
    assert_eq!(to_data, 0, "the data host was contacted");
    assert_eq!(env.emu.calls("api.alipan.com/adrive/v2/file/createWithFolders"), 2, "pre-hash, then hash + proof");
    let id = env.emu.lookup(env.drive(), "/known-1gib.bin").unwrap();
    let e = env.emu.entry(&id).unwrap();
    assert_eq!((e.size, e.content_hash.as_str()), (SIZE, sha1.as_str()));
}

/// A channel receiver as a stream.
fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_kind_mounts_proxy_and_log_why_once_while_mobile_kind_mounts_redirect() {
    let env = env(Options::default()).await;
    let data = random_bytes(200_000, 7);
    env.emu.put_file(env.drive(), "root", "f1.bin", data.clone());
    env.emu.put_file(env.drive(), "root", "f2.bin", b"two".to_vec());
    let web = env.emu.issue_refresh_token(&env.user.user_id, TokenKind::Web);
    let cfg = mount(ConfigBuilder::new(), &env.emu, "/m", Some(&env.rt), "policy = \"redirect\"", "");
    let cfg = write(env.dir.path(), &mount(cfg, &env.emu, "/w", Some(&web), "policy = \"redirect\"", ""));
    let srv = serve(&cfg, &[]).await;
    for p in ["/m", "/w"] {
        assert_eq!(settled(srv.url(), p).await["ok"], true);
    }
    let c = http();
    let r = c.get(format!("{}/m/f1.bin", srv.url())).send().await.unwrap();
    assert_eq!(r.status(), 302, "a mobile-kind link is redirected to");
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(!loc.contains("x-oss-additional-headers"), "{loc}");
    assert_eq!(reqwest::get(&loc).await.unwrap().bytes().await.unwrap().as_ref(), &data[..], "without a Referer");
    for f in ["f1.bin", "f2.bin", "f1.bin"] {
        let r = c.get(format!("{}/w/{f}", srv.url())).send().await.unwrap();
        assert_eq!(r.status(), 200, "a Referer-bound link is proxied");
    }
    let r = c.get(format!("{}/w/f1.bin", srv.url())).header("Range", "bytes=100-199").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[100..200]);
    let data_gets: Vec<_> = env.emu.log().into_iter().filter(|r| r.host == DATA_HOST && r.method == "GET").collect();
    assert!(
        data_gets
            .iter()
            .filter(|r| r.query.contains("referer"))
            .all(|r| r.header("referer").is_some() && r.status < 300),
        "pandav fetched a bound link without its Referer"
    );
    let log = srv.log();
    assert_eq!(log.matches("proxying instead of redirecting").count(), 1, "log why once per mount:\n{log}");
    assert!(log.contains("Referer"), "the log says which header");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffprobe_seeks_through_redirect_and_proxy() {
    let env = env(Options::default()).await;
    let dir = env.dir.path();
    let out = run(
        Command::new(tool("ffmpeg"))
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc=duration=10:size=320x240:rate=25",
                "-c:v",
                "mpeg4",
                "-q:v",
                "4",
                "-g",
                "25",
                "-pix_fmt",
                "yuv420p",
                "-an",
            ])
            .arg(dir.join("v.mp4")),
        Duration::from_secs(120),
    );
    out.expect_ok("ffmpeg");
    let video = std::fs::read(dir.join("v.mp4")).unwrap();
    let size = video.len() as u64;
    env.emu.put_file(env.drive(), "root", "video.mp4", video);
    let web = env.emu.issue_refresh_token(&env.user.user_id, TokenKind::Web);
    let cfg = mount(ConfigBuilder::new(), &env.emu, "/m", Some(&env.rt), "policy = \"redirect\"", "");
    let cfg = write(dir, &mount(cfg, &env.emu, "/w", Some(&web), "policy = \"redirect\"", ""));
    let srv = serve(&cfg, &[]).await;
    for p in ["/m", "/w"] {
        assert_eq!(settled(srv.url(), p).await["ok"], true);
        env.emu.clear_log();
        let url = format!("{}{p}/video.mp4", srv.url());
        let out = blocking(move || {
            run(
                Command::new(tool("ffprobe")).args([
                    "-v",
                    "error",
                    "-show_entries",
                    "format=duration",
                    "-of",
                    "json",
                    &url,
                ]),
                Duration::from_secs(120),
            )
        })
        .await
        .expect_ok(&format!("ffprobe via {p}"));
        let j: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let dur: f64 = j["format"]["duration"].as_str().unwrap().parse().unwrap();
        assert!((dur - 10.0).abs() < 0.3, "duration {dur} via {p}");
        // It read the moov atom at the end with a Range, at the data host.
        let seeks = env
            .emu
            .log()
            .into_iter()
            .filter(|r| r.host == DATA_HOST && r.status == 206)
            .filter_map(|r| r.header("range"))
            .filter_map(|h| {
                h.strip_prefix("bytes=").and_then(|x| x.split('-').next()).and_then(|s| s.parse::<u64>().ok())
            })
            .filter(|s| *s > size / 2)
            .count();
        assert!(seeks >= 1, "ffprobe via {p} did not seek to the end");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_mount_serves_and_a_bad_code_is_unhealthy_with_the_reason() {
    let env = env(Options::default()).await;
    let bob = env.emu.add_user("bob");
    let folder = env.emu.mkdir(&bob.resource_drive_id, "root", "shared");
    env.emu.put_file(&bob.resource_drive_id, &folder, "s.txt", b"shared bytes".to_vec());
    let share = env.emu.create_share(&bob.user_id, &bob.resource_drive_id, &[&folder], "ab12");
    let ep = endpoints_toml(&env.emu, "mounts.options.endpoints");
    let opts = |pwd: &str| {
        format!("share_id = \"https://www.alipan.com/s/{share}\"\nshare_pwd = \"{pwd}\"\nrefresh_token = \"{}\"\nrate_limit = 0\n", env.rt)
    };
    let cfg = ConfigBuilder::new().mount("/s", "aliyundrive_share", "policy = \"proxy\"", &opts("ab12"), &ep).mount(
        "/bad",
        "aliyundrive_share",
        "",
        &opts("0000"),
        &ep,
    );
    let cfg = write(env.dir.path(), &cfg);
    let srv = serve(&cfg, &[]).await;
    assert_eq!(settled(srv.url(), "/s").await["ok"], true);
    let (st, body) = listing(srv.url(), "/s/shared/").await;
    assert!(st == 207 && body.contains("s.txt"), "{st}");
    let r = http().get(format!("{}/s/shared/s.txt", srv.url())).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"shared bytes");
    let r = http().put(format!("{}/s/shared/new.txt", srv.url())).body("x").send().await.unwrap();
    assert_eq!(r.status(), 403, "a share is read-only");
    let m = settled(srv.url(), "/bad").await;
    assert_eq!(m["ok"], false);
    assert!(m["message"].as_str().unwrap().contains("extraction code"), "{m}");
}

/// Shares that die while served (cancelled by the sharer, past their expiry, ref §8.3,
/// §9): each mount turns unhealthy with its own reason in `/-/health`, stops asking, and
/// a consumer mount beside them keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_cancelled_or_expired_while_served_are_unhealthy_with_the_reason() {
    let env = env(Options::default()).await;
    let bob = env.emu.add_user("bob");
    let drive = bob.resource_drive_id.clone();
    env.emu.put_file(env.drive(), "root", "mine.txt", b"m".to_vec());
    let ep = endpoints_toml(&env.emu, "mounts.options.endpoints");
    let mut cfg = mount(ConfigBuilder::new(), &env.emu, "/a", Some(&env.rt), "", "");
    let mut shares = vec![];
    for name in ["c", "e"] {
        let folder = env.emu.mkdir(&drive, "root", name);
        env.emu.put_file(&drive, &folder, "s.txt", b"shared".to_vec());
        let share = env.emu.create_share(&bob.user_id, &drive, &[&folder], "ab12");
        let opts = format!(
            "share_id = \"{share}\"\nshare_pwd = \"ab12\"\nrefresh_token = \"{}\"\nrate_limit = 0\n",
            env.emu.issue_refresh_token(&env.user.user_id, TokenKind::Mobile)
        );
        cfg = cfg.mount(&format!("/{name}"), "aliyundrive_share", "cache_ttl = \"0s\"", &opts, &ep);
        shares.push(share);
    }
    let srv = serve(&write(env.dir.path(), &cfg), &[]).await;
    for p in ["/a", "/c", "/e"] {
        assert_eq!(settled(srv.url(), p).await["ok"], true, "{p} starts healthy");
    }
    for p in ["/c/c/", "/e/e/"] {
        assert!(listing(srv.url(), p).await.1.contains("s.txt"), "{p} lists while alive");
    }
    env.emu.set_share_state(&shares[0], ShareState::Cancelled);
    env.emu.set_share_expiration(&shares[1], Some(env.emu.now_ms() - 1));
    for p in ["/c/c/", "/e/e/"] {
        assert!(!listing(srv.url(), p).await.1.contains("s.txt"), "{p} still lists a dead share");
    }
    env.emu.clear_log();
    for p in ["/c/c/", "/e/e/", "/c/c/s.txt"] {
        assert!(!listing(srv.url(), p).await.1.contains("s.txt"));
    }
    assert_eq!(env.emu.log().len(), 0, "a dead share was asked again");
    let h = crate::fixture::crash::health(srv.url()).await;
    for (p, why) in [("/c", "cancelled"), ("/e", "expired")] {
        let m = mount_health(&h, p);
        assert_eq!(m["ok"], false, "{m}");
        assert!(m["message"].as_str().unwrap().contains(why), "{p}: {m}");
    }
    assert_eq!(mount_health(&h, "/a")["ok"], true);
    assert!(listing(srv.url(), "/a/").await.1.contains("mine.txt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_accepts_the_examples_and_names_a_bad_key() {
    for ex in ["aliyundrive.toml", "aliyundrive-share.toml"] {
        let out = Command::new(crate::fixture::BIN)
            .args(["check", "--config", &format!("{}/examples/{ex}", env!("CARGO_MANIFEST_DIR"))])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("aliyundrive"),
            "{ex}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    for (opts, key) in
        [("refresh_tokn = \"x\"", "refresh_tokn"), ("drive = \"both\"", "drive"), ("delete = \"shred\"", "delete")]
    {
        std::fs::write(
            &bad,
            format!("[[mounts]]\npath = \"/a\"\ndriver = \"aliyundrive\"\n[mounts.options]\n{opts}\n"),
        )
        .unwrap();
        let out = Command::new(crate::fixture::BIN).args(["check", "--config"]).arg(&bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{opts}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(key), "{opts}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
