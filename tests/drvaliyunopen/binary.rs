//! The real `pandav` binary against the emulator: crash safety under SIGKILL during
//! refreshes, two servers on one state dir, dead grants in `/-/health`, and
//! `pandav login aliyundrive-open`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use emualiyun::{AppSpec, EmuAliyun, Options, BROKER_CLIENT_ID};

use crate::common::*;
use crate::fixture::crash::*;
use crate::fixture::ConfigBuilder;

/// A mount of the test app at `path` with option lines `options` (the endpoints are
/// added), and mount-level lines `extra`.
pub fn mount_of(cfg: ConfigBuilder, emu: &EmuAliyun, path: &str, extra: &str, options: &str) -> ConfigBuilder {
    let mut tables = String::from("[mounts.options.endpoints]\n");
    for (h, b) in emu.endpoints() {
        tables.push_str(&format!("\"{h}\" = \"{b}\"\n"));
    }
    cfg.mount(path, "aliyundrive_open", &format!("cache_ttl = \"0s\"\n{extra}"), options, &tables)
}

/// Write the config into `dir` (state in `dir/state`); its path.
pub fn write_config(dir: &Path, cfg: &ConfigBuilder) -> PathBuf {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let p = dir.join("pandav.toml");
    std::fs::write(&p, cfg.build(&state)).unwrap();
    p
}

fn app_mount(env: &Env, path: &str, refresh_token: Option<&str>, extra: &str) -> String {
    let mut o = format!("client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n");
    if let Some(r) = refresh_token {
        o.push_str(&format!("refresh_token = \"{r}\"\n"));
    }
    let _ = (env, path);
    o.push_str(extra);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_refreshes_never_loses_a_token() {
    let env = env(Options::default()).await;
    let uid = env.user.user_id.clone();
    env.emu.put_file(env.drive(), "root", "hello.txt", b"hi".to_vec());
    let cfg =
        mount_of(ConfigBuilder::new(), &env.emu, "/o", "", &app_mount(&env, "/o", Some(&env.tok.refresh_token), ""));
    let config = write_config(env.dir.path(), &cfg);
    // A slow token endpoint widens the window between the provider's answer and the
    // write (without the refresh helper this loop loses the token within a few rounds).
    env.emu.inject("openapi.alipan.com/oauth/access_token", emualiyun::Fault::delay(Duration::from_millis(150)));
    let expire = || env.emu.expire_access_tokens(&uid);
    let describe =
        || format!("refreshes {}, reused {}", env.emu.refresh_count(&uid), env.emu.refresh_reuse_count(&uid));
    let rounds = sigkill_during_refreshes(CrashLoop {
        config: &config,
        mount: "/o",
        file: "hello.txt",
        get_status: 302,
        expire: &expire,
        describe: &describe,
    })
    .await;
    let refreshes = env.emu.refresh_count(&uid) as usize;
    eprintln!("crash test: {refreshes} refreshes over {rounds} kills");
    assert!(refreshes >= rounds, "refreshes were exercised: {refreshes}");
    assert_eq!(env.emu.refresh_reuse_count(&uid), 0, "a refresh token was sent twice (a lost rotation)");
    let live = env.live_refresh();
    assert_eq!(live.len(), 1, "one live refresh token");
    assert_eq!(saved_refresh(&env.dir.path().join("state/mount-_o.json")), live[0]);
}

/// Two servers on one state dir (a restart overlapping the old process, a second
/// instance by mistake): both serve, and neither burns the token the other rotated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_state_dir_burn_no_token() {
    let env = env(Options::default()).await;
    let uid = env.user.user_id.clone();
    env.emu.put_file(env.drive(), "root", "hello.txt", b"hi".to_vec());
    let cfg =
        mount_of(ConfigBuilder::new(), &env.emu, "/o", "", &app_mount(&env, "/o", Some(&env.tok.refresh_token), ""));
    let config = write_config(env.dir.path(), &cfg);
    let a = serve(&config, &[]).await;
    let b = serve(&config, &[]).await;
    for s in [&a, &b] {
        assert_eq!(settled(s.url(), "/o").await["ok"], true);
    }
    for round in 0..30 {
        env.emu.expire_access_tokens(&uid);
        let (ua, ub) = (a.url().to_string(), b.url().to_string());
        let ta = tokio::spawn(async move { listing(&ua, "/o/").await });
        let tb = tokio::spawn(async move { listing(&ub, "/o/").await });
        for t in [ta, tb] {
            let (st, body) = t.await.unwrap();
            assert!(st == 207 && body.contains("hello.txt"), "round {round}: {st}");
        }
    }
    assert!(env.emu.refresh_count(&uid) >= 30);
    assert_eq!(env.emu.refresh_reuse_count(&uid), 0, "a server burnt a token the other had rotated");
    for s in [&a, &b] {
        assert_eq!(mount_health(&health(s.url()).await, "/o")["ok"], true);
    }
    drop((a, b));
    let live = env.live_refresh();
    assert_eq!(live.len(), 1);
    assert_eq!(saved_refresh(&env.dir.path().join("state/mount-_o.json")), live[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_grant_shows_in_health_and_other_mounts_keep_serving() {
    let env = env(Options::default()).await;
    let emu = &env.emu;
    let bob = emu.add_user("bob");
    let tb = emu.open_authorize(&bob.user_id, CLIENT_ID);
    emu.put_file(env.drive(), "root", "a.txt", b"a".to_vec());
    emu.put_file(&bob.resource_drive_id, "root", "b.txt", b"b".to_vec());
    let cfg = mount_of(ConfigBuilder::new(), emu, "/a", "", &app_mount(&env, "/a", Some(&env.tok.refresh_token), ""));
    let cfg = mount_of(cfg, emu, "/b", "", &app_mount(&env, "/b", Some(&tb.refresh_token), ""));
    let config = write_config(env.dir.path(), &cfg);
    let srv = serve(&config, &[]).await;
    for p in ["/a", "/b"] {
        assert_eq!(settled(srv.url(), p).await["ok"], true, "{p} starts healthy");
    }
    emu.revoke_user_tokens(&env.user.user_id);
    let log_len = emu.log().len();
    for _ in 0..20 {
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
    assert!(msg.contains("pandav login aliyundrive-open") && msg.contains("--mount /a"), "{msg}");
    assert_eq!(mount_health(&h, "/b")["ok"], true);
    // Bounded: one refresh attempt found out; then no more traffic for /a.
    let later = &emu.log()[log_len..];
    let refreshes = later.iter().filter(|r| r.path == "/oauth/access_token").count();
    assert_eq!(refreshes, 1, "refresh attempts after the revocation");
    let bob_calls = later.iter().filter(|r| r.path == "/adrive/v1.0/openFile/list").count();
    let a_calls = later.iter().filter(|r| r.path.starts_with("/adrive/")).count() - bob_calls;
    assert!(a_calls <= 2, "the dead mount kept calling the API ({a_calls})");
    assert_eq!(get_status(srv.url(), "/b/b.txt").await, 302);
}

/// A refresh token past its 90 days (§2.3: `RefreshTokenExpired`): that mount is
/// unhealthy with the login hint from the start and stays quiet; the other serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_login_is_unhealthy_with_a_hint_and_other_mounts_keep_serving() {
    let env = env(Options::default()).await;
    let emu = &env.emu;
    emu.put_file(env.drive(), "root", "a.txt", b"a".to_vec());
    // Alice's grant (issued by `env`) ages past the documented 90 days; Bob authorizes after.
    emu.advance(Duration::from_secs(91 * 86_400));
    let bob = emu.add_user("bob");
    let tb = emu.open_authorize(&bob.user_id, CLIENT_ID);
    emu.put_file(&bob.resource_drive_id, "root", "b.txt", b"b".to_vec());
    let cfg = mount_of(ConfigBuilder::new(), emu, "/a", "", &app_mount(&env, "/a", Some(&env.tok.refresh_token), ""));
    let cfg = mount_of(cfg, emu, "/b", "", &app_mount(&env, "/b", Some(&tb.refresh_token), ""));
    let config = write_config(env.dir.path(), &cfg);
    let srv = serve(&config, &[]).await;
    let a = settled(srv.url(), "/a").await;
    assert_eq!(a["ok"], false, "{a}");
    let msg = a["message"].as_str().unwrap();
    assert!(msg.contains("pandav login aliyundrive-open") && msg.contains("--mount /a"), "{msg}");
    assert!(msg.contains("RefreshTokenExpired"), "the provider's code is named: {msg}");
    assert!(!msg.contains(&env.tok.refresh_token), "the token is not shown: {msg}");
    assert_eq!(settled(srv.url(), "/b").await["ok"], true);
    let token_calls = emu.calls("openapi.alipan.com/oauth/access_token");
    for _ in 0..10 {
        assert_eq!(get_status(srv.url(), "/a/a.txt").await, 503);
        let (st, body) = listing(srv.url(), "/b/").await;
        assert!(st == 207 && body.contains("b.txt"), "the other mount keeps serving");
    }
    assert_eq!(get_status(srv.url(), "/b/b.txt").await, 302);
    let refused = emu.log().into_iter().filter(|r| r.path == "/oauth/access_token" && r.status >= 400).count();
    assert_eq!(refused, 1, "the expired token was offered once, then the mount stopped asking");
    assert_eq!(emu.calls("openapi.alipan.com/oauth/access_token"), token_calls, "no refreshes after it died");
}

fn bin() -> &'static Path {
    static BIN: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    crate::fixture::driver::private_bin(&BIN, "aliyundrive-open")
}

/// `pandav login aliyundrive-open` with the QR flow; `scan` drives the emulator.
async fn run_login(config: &Path, args: &[&str], emu: &EmuAliyun, user: &str) -> (bool, String, String) {
    let child = Command::new(bin())
        .args(["login", "aliyundrive-open", "--mount", "/o", "--config"])
        .arg(config)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let sid = loop {
        if let Some(s) = emu.open_qr_sessions().last() {
            break s.clone();
        }
        if t.elapsed() > Duration::from_secs(30) {
            let o = child.wait_with_output().unwrap();
            panic!(
                "no QR code requested: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(emu.open_qr_scan(&sid));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(emu.open_qr_confirm(&sid, user));
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_the_qr_code_then_serve() {
    let env = env(Options::default()).await;
    let uid = env.user.user_id.clone();
    env.emu.put_file(env.drive(), "root", "after-login.txt", b"ok".to_vec());
    let cfg = mount_of(ConfigBuilder::new(), &env.emu, "/o", "", &app_mount(&env, "/o", None, ""));
    let config = write_config(env.dir.path(), &cfg);
    // Without tokens the mount says what to do.
    {
        let srv = serve(&config, &[]).await;
        let m = settled(srv.url(), "/o").await;
        assert_eq!(m["ok"], false);
        assert!(m["message"].as_str().unwrap().contains("pandav login aliyundrive-open"), "{m}");
    }
    let (ok, stdout, stderr) = run_login(&config, &[], &env.emu, &uid).await;
    assert!(ok, "login failed: {stdout}\n{stderr}");
    assert!(stdout.contains("scanned") && stdout.contains("authorized"), "{stdout}");
    assert!(stdout.contains('█') || stdout.contains('▀') || stdout.contains('▄'), "a QR code was drawn");
    let qr = env.emu.log().into_iter().find(|r| r.path == "/oauth/authorize/qrcode").unwrap();
    assert_eq!(qr.status, 200);
    let saved = saved_refresh(&env.dir.path().join("state/mount-_o.json"));
    assert!(env.emu.is_refresh_token_live(&saved));
    assert!(!stdout.contains(&saved) && !stderr.contains(&saved), "tokens are not printed");
    let srv = serve(&config, &[]).await;
    assert_eq!(settled(srv.url(), "/o").await["ok"], true);
    assert!(listing(srv.url(), "/o/").await.1.contains("after-login.txt"));
}

/// A PKCE app (no secret): the QR request carries a challenge, the exchange the verifier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_of_a_pkce_app() {
    let env = env_with_app(Options::default(), AppSpec::new(CLIENT_ID, "")).await;
    let uid = env.user.user_id.clone();
    env.emu.put_file(env.drive(), "root", "pkce.txt", b"ok".to_vec());
    let cfg = mount_of(ConfigBuilder::new(), &env.emu, "/o", "", &format!("client_id = \"{CLIENT_ID}\"\n"));
    let config = write_config(env.dir.path(), &cfg);
    let (ok, stdout, stderr) = run_login(&config, &[], &env.emu, &uid).await;
    assert!(ok, "login failed: {stdout}\n{stderr}");
    let srv = serve(&config, &[]).await;
    assert_eq!(settled(srv.url(), "/o").await["ok"], true, "{}", srv.log());
    assert!(listing(srv.url(), "/o/").await.1.contains("pkce.txt"));
}

/// Without an app of one's own: messense's proxy issues the QR code and exchanges the
/// code (§2.4: "the same proxy exposes /oauth/authorize/qrcode"). The emulator's
/// messense broker has only the token route, so the test stands in for the proxy's QR
/// route: it asks the open platform for a QR code of the broker's app (PKCE, it has no
/// secret to give) and has the proxy answer with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_through_the_messense_proxy() {
    let env = env(Options::default()).await;
    let uid = env.user.user_id.clone();
    env.emu.put_file(env.drive(), "root", "proxied.txt", b"ok".to_vec());
    let qr: serde_json::Value = http()
        .post(format!("{}/oauth/authorize/qrcode", env.emu.endpoint("openapi.alipan.com")))
        .json(&serde_json::json!({
            "client_id": BROKER_CLIENT_ID, "scopes": ["user:base", "file:all:read", "file:all:write"],
            "code_challenge": "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0=", "code_challenge_method": "S256",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    env.emu.inject(
        "aliyundrive-oauth.messense.me/oauth/authorize/qrcode",
        emualiyun::Fault::reply(emualiyun::Reply::json(&qr)).times(1),
    );
    let cfg = mount_of(ConfigBuilder::new(), &env.emu, "/o", "", "use_online_api = true\nonline_api = \"messense\"\n");
    let config = write_config(env.dir.path(), &cfg);
    let (ok, stdout, stderr) = run_login(&config, &[], &env.emu, &uid).await;
    assert!(ok, "login failed: {stdout}\n{stderr}");
    let asked =
        env.emu.log().into_iter().filter(|r| r.key() == "aliyundrive-oauth.messense.me/oauth/authorize/qrcode").count();
    assert_eq!(asked, 1, "the QR code came from the proxy");
    let srv = serve(&config, &[]).await;
    assert_eq!(settled(srv.url(), "/o").await["ok"], true, "{}", srv.log());
    assert!(listing(srv.url(), "/o/").await.1.contains("proxied.txt"));
}

#[test]
fn check_accepts_the_example_and_names_a_bad_key() {
    let out = Command::new(bin())
        .args(["check", "--config", concat!(env!("CARGO_MANIFEST_DIR"), "/examples/aliyundrive-open.toml")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("aliyundrive_open"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    for (options, key) in [
        ("client_id = \"x\"\ndrvie = \"backup\"\n", "drvie"),
        ("client_id = \"x\"\ndrive = \"sbox\"\n", "drive"),
        ("use_online_api = true\nonline_api = \"tickstep\"\n", "ticket_id"),
        ("refresh_token = \"SECRETTOKEN\"\n", "client_id"),
    ] {
        let bad = dir.path().join("bad.toml");
        std::fs::write(
            &bad,
            format!("[[mounts]]\npath = \"/o\"\ndriver = \"aliyundrive_open\"\n[mounts.options]\n{options}"),
        )
        .unwrap();
        let out = Command::new(bin()).args(["check", "--config"]).arg(&bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{options}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{options}: {err}");
        assert!(!err.contains("SECRETTOKEN"), "a secret in the message: {err}");
    }
}
