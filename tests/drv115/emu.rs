//! The drivers against emu115 (the emulator written from the reference by someone
//! else): upload paths, throttling, cookie expiry, link expiry mid-stream, QR login
//! through the binary, offline tasks, broken shares, and an rclone round trip through
//! `pandav serve`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use emu115::{Emu115, Fault, Opts, ShareState};
use futures_util::StreamExt;
use pandav::drivers::p115::web::{self as p115, P115Drive};
use pandav::drivers::DriverCtx;
use pandav::state::StateHandle;
use pandav::vfs::*;

const UID: u64 = 123456789;

struct E {
    emu: Arc<Emu115>,
    cookie: String,
    dir: tempfile::TempDir,
}

impl E {
    async fn new(opts: Opts) -> E {
        let emu = Arc::new(Emu115::start(opts).await);
        let cookie = emu.add_user(UID, "alice");
        E { emu, cookie, dir: tempfile::tempdir().unwrap() }
    }

    fn endpoints_toml(&self) -> String {
        let mut s = String::from("[endpoints]\n");
        for (h, b) in self.emu.endpoints() {
            s.push_str(&format!("{h:?} = {b:?}\n"));
        }
        s
    }

    fn opts_text(&self, extra: &str) -> String {
        format!(
            "cookie = {:?}\nrate_limit = 0\nretry_base_ms = 20\nthrottle_cooldown_secs = 1\nm115_test_modulus = {:?}\nec115_server_public_key = {:?}\n{extra}\n{}",
            self.cookie,
            self.emu.m115_modulus_hex(),
            self.emu.ec_server_public_hex(),
            self.endpoints_toml()
        )
    }

    fn ctx(&self) -> DriverCtx {
        DriverCtx {
            mount_path: "/115".into(),
            state: StateHandle::at(self.dir.path().join("state/mount-_115.json")),
            base_dir: self.dir.path().into(),
            source: None,
        }
    }

    fn drive(&self, extra: &str) -> P115Drive {
        p115::build(toml::from_str(&self.opts_text(extra)).unwrap(), &self.ctx()).unwrap()
    }

    fn oss_calls(&self) -> u64 {
        self.emu.calls_prefix("fhnfile.oss-cn-shenzhen.aliyuncs.com")
            + self.emu.calls_prefix("oss-cn-shenzhen.aliyuncs.com")
    }
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    upstream::pseudo_random(len, seed)
}

async fn spool(dir: &Path, data: &[u8]) -> spool::Spooled {
    let mut s = spool::Spool::create(dir).await.unwrap();
    for c in data.chunks(256 * 1024) {
        s.write(c).await.unwrap();
    }
    s.finish(None).await.unwrap()
}

fn root() -> Entry {
    Entry::dir("0", "", std::time::UNIX_EPOCH)
}

#[tokio::test]
async fn emu_rapid_upload_second_round_oss_and_multipart() {
    let e = E::new(Opts::default()).await;
    let d = e.drive("multipart_threshold = 204800");
    d.init().await.unwrap();
    // Rapid-upload hit, small: one initupload, nothing to OSS.
    let small = noise(50_000, 1);
    e.emu.add_known_content(small.clone());
    let sp = spool(e.dir.path(), &small).await;
    let f = d.put(&root(), "small-hit.bin", sp.upload).await.unwrap();
    assert_eq!(f.size, 50_000);
    assert_eq!(e.emu.calls("uplb.115.com/4.0/initupload.php"), 1);
    assert_eq!(e.oss_calls(), 0);
    // Hit of ≥ 1 MiB: the second round (status 7) with the range SHA-1, still no body.
    let big = noise(3 << 20, 2);
    e.emu.add_known_content(big.clone());
    let sp = spool(e.dir.path(), &big).await;
    let f = d.put(&root(), "big-hit.bin", sp.upload).await.unwrap();
    assert_eq!(f.size, 3 << 20);
    assert_eq!(e.emu.calls("uplb.115.com/4.0/initupload.php"), 3, "{:#?}", e.emu.upload_log());
    assert_eq!(e.oss_calls(), 0);
    // Miss below the threshold: one signed PUT with the callback.
    let miss = noise(150_000, 3);
    let sp = spool(e.dir.path(), &miss).await;
    let f = d.put(&root(), "miss.bin", sp.upload).await.unwrap();
    assert_eq!(e.emu.file_bytes(f.id().parse().unwrap()).unwrap().as_ref(), &miss[..]);
    assert!(e.oss_calls() >= 1);
    // Miss above it: sequential multipart.
    let before = e.oss_calls();
    let mp = noise(700_000, 4);
    let sp = spool(e.dir.path(), &mp).await;
    let f = d.put(&root(), "multi.bin", sp.upload).await.unwrap();
    assert_eq!(e.emu.file_bytes(f.id().parse().unwrap()).unwrap().as_ref(), &mp[..]);
    assert!(e.oss_calls() - before >= 5, "initiate + 3 parts + complete: {:#?}", e.emu.upload_log());
    // Everything listed with the right SHA-1.
    let l = d.list(&root()).await.unwrap();
    assert_eq!(l.len(), 4);
    for x in &l {
        assert_eq!(x.hashes().sha1.as_ref().unwrap().len(), 40);
    }
}

#[tokio::test]
async fn emu_failed_oss_upload_leaves_nothing() {
    let e = E::new(Opts::default()).await;
    let d = e.drive("multipart_threshold = 204800\nretries = 1");
    e.emu.inject("fhnfile.oss-cn-shenzhen.aliyuncs.com", Fault::status(500));
    e.emu.inject("oss-cn-shenzhen.aliyuncs.com", Fault::status(500));
    let sp = spool(e.dir.path(), &noise(500_000, 9)).await;
    assert!(d.put(&root(), "fail.bin", sp.upload).await.is_err());
    assert!(e.emu.list_children(UID, 0).is_empty(), "a failed upload left {:?}", e.emu.list_children(UID, 0));
}

#[tokio::test]
async fn emu_throttle_then_recovery_and_expired_cookie() {
    let e = E::new(Opts::default()).await;
    e.emu.mkdir(UID, 0, "Movies");
    let d = e.drive("retries = 3");
    e.emu.inject("webapi.115.com/files", Fault::throttle().times(2));
    assert_eq!(d.list(&root()).await.unwrap().len(), 1, "recovers after two 405 pages");
    e.emu.inject("webapi.115.com/files", Fault::throttle());
    let err = d.list(&root()).await.unwrap_err();
    assert_eq!(err.status(), 503);
    assert!(err.retry_after().is_some());
    e.emu.clear_faults();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(d.list(&root()).await.unwrap().len(), 1);
    // The cookie dies: one call finds out, then 115 is left alone.
    e.emu.expire_cookie(UID);
    let err = d.list(&root()).await.unwrap_err();
    assert!(matches!(&err, DriveError::AuthLost(m) if m.contains("pandav login 115")), "{err:?}");
    let n = e.emu.requests().len();
    for _ in 0..10 {
        assert!(d.list(&root()).await.is_err());
    }
    assert_eq!(e.emu.requests().len(), n);
}

#[tokio::test]
async fn emu_link_expiry_and_drop_mid_stream_resume() {
    let e = E::new(Opts::default()).await;
    let data = noise(2_000_000, 5);
    e.emu.put_file(UID, 0, "movie.mkv", data.clone());
    let d: Arc<dyn Drive> = Arc::new(e.drive(""));
    let m = Arc::new(Mount::new(
        MountOptions {
            path: "/115".into(),
            policy: Policy::Proxy,
            proxy_url: None,
            read_only: false,
            cache_ttl: Duration::from_secs(60),
            spool_dir: e.dir.path().join("spool"),
        },
        d,
    ));
    m.init().await.unwrap();
    let f = m.resolve("movie.mkv").await.unwrap();
    e.emu.inject(emu115::CDN_HOST, Fault::drop_after(300_000).times(1));
    let req = LinkRequest { user_agent: "VLC/3.0".into(), ip: None };
    let mut s = transfer::open_as(&m, &f, ReadRange { start: 0, end: None }, &req).await.unwrap();
    // The link dies while the first connection is still streaming.
    e.emu.expire_links();
    let mut got = Vec::new();
    while let Some(c) = s.next().await {
        got.extend_from_slice(&c.unwrap());
    }
    assert!(got == data, "resumed stream differs ({} of {} bytes)", got.len(), data.len());
    assert_eq!(e.emu.calls("proapi.115.com/app/chrome/downurl"), 2, "a fresh link after the old one was refused");
    let r = e.emu.requests().into_iter().find(|r| r.key == "proapi.115.com/app/chrome/downurl").unwrap();
    assert_eq!(r.user_agent.as_deref(), Some("VLC/3.0"));
}

#[tokio::test]
async fn emu_offline_tasks() {
    let e = E::new(Opts::default()).await;
    let d = e.drive("");
    let dl = e.emu.mkdir(UID, 0, "Downloads");
    let urls = vec![
        "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567".to_string(),
        "https://example.com/a.iso".into(),
    ];
    let r = d.offline_add(&urls, Some(&dl.to_string())).await.unwrap();
    assert!(r.iter().all(|x| x.ok), "{r:?}");
    let r = d.offline_add(&urls[..1], Some(&dl.to_string())).await.unwrap();
    assert!(r[0].exists && r[0].message.contains("task already exists"), "{r:?}");
    let l = d.offline_list().await.unwrap();
    assert_eq!(l.tasks.len(), 2);
    assert_eq!(e.emu.offline_tasks(UID).len(), 2);
    let h = l.tasks[0].info_hash.clone();
    d.offline_remove(&[h], false).await.unwrap();
    assert_eq!(e.emu.offline_tasks(UID).len(), 1);
    e.emu.set_offline_quota(UID, 0);
    let r = d.offline_add(&["https://example.com/b.iso".to_string()], None).await;
    let text = match r {
        Ok(v) => v[0].message.clone(),
        Err(e) => e.to_string(),
    };
    assert!(text.contains("quota"), "{text}");
}

#[tokio::test]
async fn emu_broken_shares_say_why() {
    let e = E::new(Opts::default()).await;
    let f = e.emu.put_file(UID, 0, "a.txt", b"abc".to_vec());
    let sh = e.emu.create_share(UID, &[f]);
    let viewer = e.emu.add_user(UID + 1, "bob");
    let build = |rc: &str| {
        let text = format!(
            "url = \"https://115cdn.com/s/{}?password={rc}\"\ncookie = {viewer:?}\nrate_limit = 0\nretry_base_ms = 20\nm115_test_modulus = {:?}\n{}",
            sh.share_code,
            e.emu.m115_modulus_hex(),
            e.endpoints_toml()
        );
        pandav::drivers::build("115_share", toml::from_str(&text).unwrap(), e.ctx()).unwrap()
    };
    let d = build(&sh.receive_code);
    d.init().await.unwrap();
    let l = d.list(&d.root().await.unwrap()).await.unwrap();
    assert_eq!(l[0].name(), "a.txt");
    let bad = build("zzzz");
    assert!(matches!(bad.init().await, Err(DriveError::AuthLost(m)) if m.contains("wrong receive code")));
    for (st, word) in
        [(ShareState::Expired, "expired"), (ShareState::Canceled, "cancel"), (ShareState::Deleted, "deleted")]
    {
        e.emu.set_share_state(&sh.share_code, st);
        match build(&sh.receive_code).init().await {
            Err(DriveError::AuthLost(m)) => {
                assert!(m.contains(word) || m.contains("invalid") || m.contains("does not exist"), "{m}")
            }
            other => panic!("{word}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------
// Through the binary

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pandav")
}

fn write_config(e: &E, opts: &str, tail: &str) -> PathBuf {
    let mut eps = String::new();
    for (h, b) in e.emu.endpoints() {
        eps.push_str(&format!("{h:?} = {b:?}\n"));
    }
    let cfg = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = {:?}\nlog_level = \"warn\"\n\n[[mounts]]\npath = \"/115\"\ndriver = \"115\"\n[mounts.options]\n{opts}\nrate_limit = 0\nm115_test_modulus = {:?}\nec115_server_public_key = {:?}\n[mounts.options.endpoints]\n{eps}\n{tail}",
        e.dir.path().join("state"),
        e.emu.m115_modulus_hex(),
        e.emu.ec_server_public_hex()
    );
    let p = e.dir.path().join("pandav.toml");
    std::fs::write(&p, cfg).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emu_qr_login_through_the_binary() {
    let e = E::new(Opts::default()).await;
    let cfg = write_config(&e, "", "");
    let child = std::process::Command::new(bin())
        .args(["login", "115", "--app", "tv", "--config"])
        .arg(&cfg)
        .args(["--mount", "/115"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut tok = None;
    for _ in 0..200 {
        if let Some(t) = e.emu.qr_tokens().pop() {
            tok = Some(t);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tok = tok.expect("the login asked for a QR token");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(e.emu.qr_scan(&tok, UID));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(e.emu.qr_confirm(&tok));
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let (so, se) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    for w in ["waiting", "scanned", "confirmed", "signs out"] {
        assert!(se.contains(w), "missing {w:?} in:\n{se}");
    }
    assert!(so.contains("█") || so.contains("▀") || so.contains("▄"), "QR drawn in the terminal");
    // serve's driver, with no cookie in the config, uses the saved tv login.
    let text = e.opts_text("").replace(&format!("cookie = {:?}\n", e.cookie), "");
    let d = p115::build(toml::from_str(&text).unwrap(), &e.ctx()).unwrap();
    d.init().await.unwrap();
    assert!(d.list(&root()).await.is_ok());
    let last = e.emu.requests().into_iter().rev().find(|r| r.key == "webapi.115.com/files").unwrap();
    assert!(last.cookie.unwrap().contains("_I1_"), "the tv (I1) session is used");
}

/// `pandav serve` through the shared fixture (`tests/common`), its log next to the config.
fn serve(cfg: &Path) -> crate::common::Server {
    crate::common::Server::start_file(cfg, cfg.parent().unwrap())
}

fn rclone(url: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new("rclone")
        .args(args)
        .env("RCLONE_CONFIG", "/dev/null")
        .env("RCLONE_CONFIG_PD_TYPE", "webdav")
        .env("RCLONE_CONFIG_PD_URL", format!("{url}/"))
        .env("RCLONE_CONFIG_PD_VENDOR", "owncloud")
        .output()
        .expect("rclone")
}

fn curl(args: &[&str]) -> std::process::Output {
    std::process::Command::new("curl").args(["-s", "-S"]).args(args).output().expect("curl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emu_rclone_round_trip_through_serve() {
    // A missing rclone fails the test: a green run must mean rclone was exercised.
    let v = std::process::Command::new("rclone").arg("version").output();
    assert!(v.is_ok_and(|o| o.status.success()), "rclone is needed for this test; run the tests through .ci/test.sh");
    let e = E::new(Opts::default()).await;
    let cfg = write_config(
        &e,
        &format!("cookie = {:?}\nmultipart_threshold = 1048576", e.cookie),
        "[[clients]]\nuser_agent = \"proxyme\"\npolicy = \"proxy\"\n",
    );
    let src = e.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let hit = noise(1_500_000, 11); // known to 115: rapid upload with the second round
    e.emu.add_known_content(hit.clone());
    let miss = noise(200_000, 12);
    let big = noise(3 * 1024 * 1024 + 5, 13); // above the multipart threshold
    std::fs::write(src.join("hit.bin"), &hit).unwrap();
    std::fs::write(src.join("miss.bin"), &miss).unwrap();
    std::fs::write(src.join("big.bin"), &big).unwrap();
    let srv = serve(&cfg);
    let url = srv.url().to_string();
    let src_s = src.to_string_lossy().to_string();
    let (e2, u2) = (Arc::clone(&e.emu), url.clone());
    let out = tokio::task::spawn_blocking(move || {
        // The mount starts in the background: wait until it lists.
        for _ in 0..50 {
            if rclone(&u2, &["lsd", "pd:115"]).status.success() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let copy = rclone(&u2, &["copy", &src_s, "pd:115/in"]);
        let lsl = rclone(&u2, &["lsl", "pd:115/in"]);
        let check = rclone(&u2, &["check", "--download", &src_s, "pd:115/in"]);
        let check_hash = rclone(&u2, &["check", &src_s, "pd:115/in"]);
        let _ = e2;
        (copy, lsl, check, check_hash)
    })
    .await
    .unwrap();
    let show = |o: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };
    assert!(out.0.status.success(), "rclone copy: {}", show(&out.0));
    let lsl = show(&out.1);
    for (n, len) in [("hit.bin", hit.len()), ("miss.bin", miss.len()), ("big.bin", big.len())] {
        assert!(
            lsl.lines().any(|l| l.contains(n) && l.trim_start().starts_with(&len.to_string())),
            "{n} {len} in:\n{lsl}"
        );
    }
    assert!(out.2.status.success(), "rclone check --download: {}", show(&out.2));
    assert!(out.3.status.success(), "rclone check (hashes): {}", show(&out.3));
    let log = e.emu.upload_log().join("\n");
    let in_id = e.emu.find_path(UID, "/in").unwrap();
    let kids = e.emu.list_children(UID, in_id);
    assert_eq!(kids.len(), 3, "{kids:?}");
    // The hit went without its body: no OSS object carries it.
    let hit_sha = emu115::util::sha1_upper(&hit);
    assert!(kids.iter().any(|k| k.sha1 == hit_sha));
    assert!(log.contains("\"status\":7") && log.contains("\"status\":2"), "second round, then hit:\n{log}");
    // Read back via 302 (the client's UA) and via proxy (a [[clients]] rule).
    let u3 = url.clone();
    let (redir, follow, proxied, ranged) = tokio::task::spawn_blocking(move || {
        let redir = curl(&[
            "-A",
            "Infuse/7",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
            &format!("{u3}/115/in/miss.bin"),
        ]);
        let follow = curl(&["-A", "Infuse/7", "-L", &format!("{u3}/115/in/miss.bin")]);
        let proxied = curl(&["-A", "proxyme", "-w", "", &format!("{u3}/115/in/big.bin")]);
        let ranged = curl(&["-A", "proxyme", "-r", "1000-1999", "-D", "-", &format!("{u3}/115/in/big.bin")]);
        (redir, follow, proxied, ranged)
    })
    .await
    .unwrap();
    let r = String::from_utf8_lossy(&redir.stdout).to_string();
    assert!(r.starts_with("302 ") && r.contains(emu115::CDN_HOST), "{r}");
    assert!(follow.stdout == miss, "302 then GET with the same UA gives the file");
    assert!(proxied.stdout == big, "proxied body differs ({} bytes)", proxied.stdout.len());
    let rr = String::from_utf8_lossy(&ranged.stdout);
    assert!(rr.starts_with("HTTP/1.1 206"), "{rr:.200}");
    assert!(ranged.stdout.ends_with(&big[1000..2000]));
    drop(srv);
}

#[tokio::test]
async fn emu_delete_to_recycle_bin_or_permanently() {
    let e = E::new(Opts::default()).await;
    let a = e.emu.put_file(UID, 0, "a.txt", b"a".to_vec());
    let b = e.emu.put_file(UID, 0, "b.txt", b"b".to_vec());
    let d = e.drive("");
    let l = d.list(&root()).await.unwrap();
    d.remove(l.iter().find(|x| x.name() == "a.txt").unwrap()).await.unwrap();
    assert!(!e.emu.is_alive(a));
    assert!(e.emu.recycle_bin(UID).iter().any(|x| x.id == a), "recycle keeps it in the bin");
    let p = e.drive("delete = \"permanent\"");
    p.remove(l.iter().find(|x| x.name() == "b.txt").unwrap()).await.unwrap();
    assert!(!e.emu.is_alive(b));
    assert!(
        !e.emu.recycle_bin(UID).iter().any(|x| x.id == b),
        "permanent empties it from the bin: {:?}",
        e.emu.recycle_bin(UID)
    );
    assert!(e.emu.recycle_bin(UID).iter().any(|x| x.id == a), "and only it");
}

/// Offline download through the running server's admin endpoint and through the
/// `pandav offline` command, both landing in the emulator's task list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emu_offline_admin_endpoint_and_cli() {
    let e = E::new(Opts::default()).await;
    e.emu.mkdir(UID, 0, "Downloads");
    let cookie = e.cookie.clone();
    let users = "[[users]]\nname = \"admin\"\npassword = \"pw\"\n[[users]]\nname = \"viewer\"\npassword = \"pw\"\nread_only = true\n";
    let cfg = write_config(&e, &format!("cookie = {cookie:?}"), users);
    let srv = serve(&cfg);
    let api = format!("{}/-/offline/115", srv.url());
    let magnet = "magnet:?xt=urn:btih:89abcdef0123456789abcdef0123456789abcdef";
    let body = format!("{{\"urls\": [{magnet:?}], \"dir\": \"Downloads\"}}");

    // No credentials, a read-only user, a bad body, an unknown mount: refused plainly.
    let o = curl(&["-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-d", &body, &api]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "401");
    let o = curl(&["-o", "/dev/null", "-w", "%{http_code}", "-u", "viewer:pw", "-X", "POST", "-d", &body, &api]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "403");
    let o = curl(&["-w", " %{http_code}", "-u", "admin:pw", "-X", "POST", "-d", "{\"urls\": 5}", &api]);
    let so = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(so.ends_with(" 400") && so.contains("bad JSON"), "{so}");
    let o =
        curl(&["-o", "/dev/null", "-w", "%{http_code}", "-u", "admin:pw", &format!("{}/-/offline/nope", srv.url())]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "404");

    // Add, see it in the list (also as the read-only user), add again: "exists".
    let o = curl(&["-w", " %{http_code}", "-u", "admin:pw", "-X", "POST", "-d", &body, &api]);
    let so = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(so.ends_with(" 200") && so.contains("\"ok\":true"), "{so}");
    assert_eq!(e.emu.offline_tasks(UID).len(), 1);
    let o = curl(&["-u", "viewer:pw", &api]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list["tasks"].as_array().unwrap().len(), 1, "{list}");
    let hash = list["tasks"][0]["info_hash"].as_str().unwrap().to_string();
    let o = curl(&["-u", "admin:pw", "-X", "POST", "-d", &body, &api]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"exists\":true"));

    // The CLI sees the same task (same state dir), then removes it.
    let out =
        std::process::Command::new(bin()).args(["offline", "list", "--config"]).arg(&cfg).arg("/115").output().unwrap();
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && so.contains(&hash), "{so}{}", String::from_utf8_lossy(&out.stderr));
    let out = std::process::Command::new(bin())
        .args(["offline", "remove", "--config"])
        .arg(&cfg)
        .args(["/115", &hash])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(e.emu.offline_tasks(UID).is_empty());

    // DELETE through the endpoint of a task added by the CLI.
    let out = std::process::Command::new(bin())
        .args(["offline", "add", "--config"])
        .arg(&cfg)
        .args(["/115", "https://example.com/c.iso"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let h = e.emu.offline_tasks(UID)[0].info_hash.clone();
    let o = curl(&[
        "-w",
        " %{http_code}",
        "-u",
        "admin:pw",
        "-X",
        "DELETE",
        "-d",
        &format!("{{\"hashes\": [{h:?}]}}"),
        &api,
    ]);
    assert!(String::from_utf8_lossy(&o.stdout).ends_with(" 200"));
    assert!(e.emu.offline_tasks(UID).is_empty());
}

/// A folder whose listing fails must not look empty: a client syncing from it (rclone
/// sync) would delete its own copies. PROPFIND answers the provider's trouble (503 with
/// Retry-After for a throttled 115) instead of a 207 with no children.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emu_failed_listing_is_an_error_not_an_empty_folder() {
    let e = E::new(Opts::default()).await;
    let movies = e.emu.mkdir(UID, 0, "Movies");
    e.emu.put_file(UID, movies, "a.mkv", b"aaaa".to_vec());
    let cookie = e.cookie.clone();
    let cfg = write_config(&e, &format!("cookie = {cookie:?}\nretries = 1"), "");
    let srv = serve(&cfg);
    // The root listing works (resolves /115/Movies); then /files fails for good.
    let o = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "PROPFIND",
        "-H",
        "Depth: 1",
        &format!("{}/115/", srv.url()),
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "207");
    e.emu.inject("webapi.115.com/files", Fault::throttle());
    let o = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-X",
        "PROPFIND",
        "-H",
        "Depth: 1",
        &format!("{}/115/Movies/", srv.url()),
    ]);
    let head = String::from_utf8_lossy(&o.stdout).to_lowercase();
    assert!(head.starts_with("http/1.1 503"), "a failed listing must not answer 207:\n{head}");
    assert!(head.contains("retry-after:"), "{head}");
    e.emu.clear_faults();
}
