//! 115 Open's own scenarios beside the shared suite (`p115open.rs`): what only this
//! driver has (second-check rapid upload, resumable multipart, recycle-bin purge,
//! offline tasks, 115's throttle codes), through a `Mount`, checked against the
//! emulator's own view. The environment helpers are shared with `tests/drv115open`.

use std::time::Duration;

use emu115open::{Fault, Options};
use pandav::vfs::{Drive, DriveError, LinkRequest};

use crate::open_env::*;

#[tokio::test]
async fn files_through_a_mount() {
    let env = env(Options::default()).await;
    let d = env.driver();
    let m = env.mount(d.clone());
    m.init().await.unwrap();
    assert!(m.health().ok);
    let sp = env.dir.path().join("spool");
    let u = env.user;
    let emu = &env.emu;

    // mkdir, and again → exists
    m.mkdir("docs").await.unwrap();
    assert!(matches!(m.mkdir("docs").await, Err(DriveError::Exists)));
    let docs = emu.lookup(u, "/docs").expect("docs on the emulator");
    assert!(emu.entry(docs).unwrap().is_dir);

    // put small, empty, unicode
    let e = put(&m, &sp, "docs/a.txt", b"hello world").await;
    assert_eq!(e.size, 11);
    put(&m, &sp, "docs/empty", b"").await;
    let uni = "文件 ü 🎬 (1).txt";
    put(&m, &sp, &format!("docs/{uni}"), "unicode body".as_bytes()).await;
    let (_, list) = m.list("docs").await.unwrap();
    let mut names: Vec<_> = list.iter().map(|e| e.name().to_string()).collect();
    names.sort();
    assert_eq!(names, vec!["a.txt".to_string(), "empty".into(), uni.to_string()]);
    let a = list.iter().find(|e| e.name() == "a.txt").unwrap();
    assert_eq!(a.hashes().sha1.as_deref(), Some(sha1_upper(b"hello world").to_lowercase().as_str()));
    assert_eq!(emu.file_bytes(emu.lookup(u, "/docs/empty").unwrap()).unwrap(), b"");
    assert_eq!(emu.file_bytes(emu.lookup(u, &format!("/docs/{uni}")).unwrap()).unwrap(), "unicode body".as_bytes());

    // read whole and ranges (through a link fetched with pandav's UA)
    assert_eq!(read_all(&m, "docs/a.txt", 0, None).await, b"hello world");
    assert_eq!(read_all(&m, "docs/a.txt", 1, Some(4)).await, b"ell");
    assert_eq!(read_all(&m, "docs/a.txt", 6, None).await, b"world");
    assert_eq!(read_all(&m, &format!("docs/{uni}"), 0, None).await, "unicode body".as_bytes());

    // large: multipart (part_size 100 KiB → 4 parts), sequential, with the callback
    let big = random_bytes(350 * 1024, 7);
    emu.reset_counters();
    put(&m, &sp, "docs/big.bin", &big).await;
    let id = emu.lookup(u, "/docs/big.bin").unwrap();
    assert_eq!(emu.file_bytes(id).unwrap(), big);
    assert!(emu.request_log().iter().any(|r| r.method == "POST" && r.query.contains("uploads")), "initiated");
    let parts = emu.request_log().iter().filter(|r| r.method == "PUT" && r.query.contains("partNumber")).count();
    assert_eq!(parts, 4, "four parts uploaded");
    assert_eq!(emu.open_multipart_uploads(), 0);
    assert_eq!(read_all(&m, "docs/big.bin", 100_000, Some(300_000)).await, &big[100_000..300_000]);

    // overwrite: the new content replaces the old file (115 would keep both)
    put(&m, &sp, "docs/a.txt", b"second version").await;
    let same: Vec<_> = emu.children(u, docs).into_iter().filter(|e| e.name == "a.txt").collect();
    assert_eq!(same.len(), 1, "exactly one a.txt after overwrite");
    assert_eq!(read_all(&m, "docs/a.txt", 0, None).await, b"second version");

    // rename in place, move, move + rename
    m.rename("docs/a.txt", "docs/b.txt").await.unwrap();
    assert!(emu.lookup(u, "/docs/a.txt").is_none());
    assert!(emu.lookup(u, "/docs/b.txt").is_some());
    m.mkdir("moved").await.unwrap();
    m.rename("docs/b.txt", "moved/b.txt").await.unwrap();
    assert!(emu.lookup(u, "/moved/b.txt").is_some());
    m.rename("moved/b.txt", "docs/c.txt").await.unwrap();
    assert_eq!(emu.file_bytes(emu.lookup(u, "/docs/c.txt").unwrap()).unwrap(), b"second version");
    assert!(emu.lookup(u, "/moved/b.txt").is_none());
    // a folder moves with its content
    m.mkdir("docs/sub").await.unwrap();
    put(&m, &sp, "docs/sub/x", b"x").await;
    m.rename("docs/sub", "moved/sub2").await.unwrap();
    assert_eq!(emu.file_bytes(emu.lookup(u, "/moved/sub2/x").unwrap()).unwrap(), b"x");

    // copy a file (other folder, new name) and a folder
    m.copy("docs/c.txt", "moved/d.txt").await.unwrap();
    assert_eq!(emu.file_bytes(emu.lookup(u, "/moved/d.txt").unwrap()).unwrap(), b"second version");
    assert!(emu.lookup(u, "/docs/c.txt").is_some());
    m.copy("docs/c.txt", "docs/c-copy.txt").await.unwrap();
    assert_eq!(emu.children(u, docs).iter().filter(|e| e.name.starts_with("c")).count(), 2);
    m.copy("moved/sub2", "docs/sub3").await.unwrap();
    assert_eq!(emu.file_bytes(emu.lookup(u, "/docs/sub3/x").unwrap()).unwrap(), b"x");

    // remove a file and a folder (to the recycle bin by default)
    m.remove("docs/c-copy.txt").await.unwrap();
    assert!(emu.lookup(u, "/docs/c-copy.txt").is_none());
    m.remove("moved").await.unwrap();
    assert!(emu.lookup(u, "/moved").is_none());
    assert!(emu.recycle_bin(u).iter().any(|e| e.name == "moved"));
    assert!(matches!(m.resolve("moved/d.txt").await, Err(DriveError::NotFound)));

    // quota
    let q = d.quota().await.unwrap().unwrap();
    assert!(q.total.unwrap() > 0);
}

#[tokio::test]
async fn listing_pages_and_missing_folders() {
    let env = env(Options::default()).await;
    let dir = env.emu.mkdir(env.user, 0, "many");
    for i in 0..8 {
        env.emu.put_file(env.user, dir, &format!("f{i}"), format!("{i}").as_bytes());
    }
    let d = env.driver_with("o", &env.tok.refresh_token, "page_size = 3");
    d.init().await.unwrap();
    env.emu.reset_counters();
    let list = d.list_id(&dir.to_string()).await.unwrap();
    assert_eq!(list.len(), 8);
    assert_eq!(env.emu.request_count("proapi.115.com/open/ufile/files"), 3);
    assert!(list.iter().all(|e| !e.is_dir && e.extra().is_some()));
    // A folder id that does not exist answers with the root listing: must be NotFound.
    assert!(matches!(d.list_id("987654321").await, Err(DriveError::NotFound)));
}

#[tokio::test]
async fn links_carry_the_client_user_agent() {
    let env = env(Options::default()).await;
    let id = env.emu.put_file(env.user, 0, "v.mkv", b"0123456789");
    let d = env.driver();
    d.init().await.unwrap();
    let e = d.list_id("0").await.unwrap().into_iter().find(|e| e.name() == "v.mkv").unwrap();
    assert_eq!(e.id(), id.to_string());
    let link = d.link(&e, &LinkRequest { user_agent: "VLC/3.0.20".into(), ip: None }).await.unwrap();
    assert_eq!(link.headers, vec![("User-Agent".to_string(), "VLC/3.0.20".to_string())]);
    assert!(link.expires_at.is_some());
    let c = reqwest::Client::new();
    let ok = c.get(&link.url).header("User-Agent", "VLC/3.0.20").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.bytes().await.unwrap().as_ref(), b"0123456789");
    let bad = c.get(&link.url).header("User-Agent", "curl/8").send().await.unwrap();
    assert_eq!(bad.status(), 403, "links are bound to the UA that asked");
    let log = env.emu.request_log();
    let du = log.iter().find(|r| r.path == "/open/ufile/downurl").unwrap();
    assert_eq!(du.user_agent.as_deref(), Some("VLC/3.0.20"));
}

#[tokio::test]
async fn rapid_upload_with_second_check_sends_no_bytes() {
    let env = env(Options::default()).await;
    let body = random_bytes((1 << 20) + 4321, 42);
    env.emu.add_known_content(&body);
    let d = env.driver();
    let m = env.mount(d);
    m.init().await.unwrap();
    env.emu.reset_counters();
    put(&m, &env.dir.path().join("spool"), "known.bin", &body).await;
    let id = env.emu.lookup(env.user, "/known.bin").unwrap();
    assert_eq!(env.emu.file_bytes(id).unwrap(), body);
    let log = env.emu.request_log();
    let inits: Vec<_> = log.iter().filter(|r| r.path == "/open/upload/init").collect();
    assert_eq!(inits.len(), 2, "init, then init with sign_key/sign_val");
    assert!(log.iter().all(|r| !r.host.contains("aliyuncs")), "no OSS traffic on a rapid upload");
    assert_eq!(env.emu.request_count("proapi.115.com/open/upload/get_token"), 0);
}

#[tokio::test]
async fn interrupted_multipart_upload_resumes() {
    let env = env(Options::default()).await;
    let d = env.driver();
    let m = env.mount(d);
    m.init().await.unwrap();
    let body = random_bytes(600 * 1024, 9); // 6 parts of 100 KiB
    let sp = env.dir.path().join("spool");
    let oss_host = format!("{}.{}", env.emu.options().oss_bucket, env.emu.options().oss_endpoint_host);
    // Let initiate and two parts through, then fail every OSS request.
    let m2 = m.clone();
    let sp2 = sp.clone();
    let body2 = body.clone();
    let task = tokio::spawn(async move {
        let (up, guard) = spooled(&sp2, &body2).await;
        let r = m2.put("resume.bin", up).await;
        drop(guard);
        r
    });
    let prefix = format!("/{oss_host}/");
    let t0 = std::time::Instant::now();
    loop {
        let parts = env.emu.request_log().iter().filter(|r| r.query.contains("partNumber") && r.status == 200).count();
        if parts >= 2 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "parts never started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let f = env.emu.inject(&prefix, Fault::Status(500));
    let r = task.await.unwrap();
    assert!(r.is_err(), "the upload fails while OSS is down");
    assert!(env.emu.lookup(env.user, "/resume.bin").is_none());
    env.emu.remove_fault(f);
    let parts_before =
        env.emu.request_log().iter().filter(|r| r.query.contains("partNumber") && r.status == 200).count();
    put(&m, &sp, "resume.bin", &body).await;
    let id = env.emu.lookup(env.user, "/resume.bin").unwrap();
    assert_eq!(env.emu.file_bytes(id).unwrap(), body);
    assert_eq!(env.emu.request_count("proapi.115.com/open/upload/resume"), 1, "resumed, not restarted");
    let parts_after =
        env.emu.request_log().iter().filter(|r| r.query.contains("partNumber") && r.status == 200).count();
    assert!(parts_after - parts_before < 6, "parts already on OSS were not sent again");
}

#[tokio::test]
async fn permanent_delete_empties_the_recycle_bin() {
    let env = env(Options::default()).await;
    env.emu.put_file(env.user, 0, "gone.txt", b"bye");
    let d = env.driver_with("o", &env.tok.refresh_token, "delete = \"permanent\"");
    let m = env.mount(d);
    m.init().await.unwrap();
    m.remove("gone.txt").await.unwrap();
    assert!(env.emu.lookup(env.user, "/gone.txt").is_none());
    assert!(env.emu.recycle_bin(env.user).iter().all(|e| e.name != "gone.txt"));
}

#[tokio::test]
async fn offline_tasks_add_list_remove() {
    let env = env(Options::default()).await;
    let d = env.driver();
    d.init().await.unwrap();
    let added = d
        .offline_add(
            &[
                "https://example.com/a.iso".to_string(),
                "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567".into(),
            ],
            None,
        )
        .await
        .unwrap();
    assert_eq!(added.len(), 2);
    assert!(added.iter().all(|a| a.ok && !a.info_hash.is_empty()), "{added:?}");
    env.emu.offline_progress(&added[0].info_hash, 40.0);
    let tasks = d.offline_list().await.unwrap();
    assert_eq!(tasks.len(), 2);
    let t = tasks.iter().find(|t| t.info_hash == added[0].info_hash).unwrap();
    assert_eq!(t.status, pandav::vfs::TaskStatus::Downloading);
    assert!((t.percent - 40.0).abs() < 0.01);
    d.offline_remove(&added[0].info_hash, false).await.unwrap();
    let tasks = d.offline_list().await.unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(env.emu.offline_tasks(env.user).len(), 1);
}

#[tokio::test]
async fn throttling_backs_off_and_recovers() {
    let env = env(Options::default()).await;
    let d = env.driver();
    d.init().await.unwrap();
    env.emu.inject_times("/proapi.115.com/open/ufile/files", Fault::RateLimit, 1);
    env.emu.inject_times("/proapi.115.com/open/ufile/files", Fault::QuotaLimit, 1);
    let t = std::time::Instant::now();
    d.list_id("0").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(500), "waited between attempts: {:?}", t.elapsed());
    // Persistent throttling ends in 503 + Retry-After, not a hang.
    let f = env.emu.inject("/proapi.115.com/open/ufile/files", Fault::RateLimit);
    let r = d.list_id("0").await;
    assert!(matches!(r, Err(DriveError::RateLimited { .. })), "{r:?}");
    env.emu.remove_fault(f);
}

#[tokio::test]
async fn a_folder_as_the_root() {
    let env = env(Options::default()).await;
    let sub = env.emu.mkdir_p(env.user, "/media/films");
    env.emu.put_file(env.user, sub, "f.mkv", b"film");
    env.emu.put_file(env.user, 0, "outside.txt", b"no");
    let d = env.driver_with("o", &env.tok.refresh_token, &format!("root_folder_id = \"{sub}\""));
    let m = env.mount(d);
    m.init().await.unwrap();
    let (_, list) = m.list("").await.unwrap();
    assert_eq!(list.iter().map(|e| e.name()).collect::<Vec<_>>(), vec!["f.mkv"]);
    put(&m, &env.dir.path().join("spool"), "new.txt", b"new").await;
    assert!(env.emu.lookup(env.user, "/media/films/new.txt").is_some());
    // A root id that is a file, or missing, fails init.
    let file = env.emu.lookup(env.user, "/outside.txt").unwrap();
    let bad =
        env.driver_with("o2", &env.emu.authorize(env.user, APP).refresh_token, &format!("root_folder_id = \"{file}\""));
    assert!(matches!(bad.init().await, Err(DriveError::NotADirectory)));
}
