//! The consumer driver in-process against the emulator: listing and lookups, links of
//! web- and mobile-kind tokens, uploads (rapid, parts, failures), and injected faults.

use std::sync::Arc;

use emualiyun::{AliFault, Fault, Options, TokenKind, DATA_HOST, INTERNAL_DATA_HOST};
use pandav::vfs::{Drive, DriveError, Entry, LinkRequest};

use crate::common::*;

fn file_entry(e: &emualiyun::Entry) -> Entry {
    let mut x = Entry::dir(e.file_id.clone(), e.name.clone(), std::time::UNIX_EPOCH);
    x.is_dir = e.is_dir;
    x.size = e.size;
    x
}

async fn started(env: &Env, extra: &str) -> Arc<pandav::drivers::aliyun::consumer::AliyunDrive> {
    let d = env.driver_with("a", &env.rt, extra);
    d.init().await.unwrap();
    env.emu.clear_log();
    d
}

#[tokio::test]
async fn listing_pages_at_200_and_keeps_the_order_asked_for() {
    let env = env(Options::default()).await;
    let dir = env.emu.mkdir(env.drive(), "root", "many");
    for i in 0..450 {
        env.emu.put_file(env.drive(), &dir, &format!("f{i:03}"), vec![b'x'; i % 7]);
    }
    let d = started(&env, "order_by = \"name\"\norder_direction = \"DESC\"").await;
    let l = d.list_id(&dir).await.unwrap();
    assert_eq!(l.len(), 450);
    assert_eq!(l[0].name(), "f449", "DESC by name");
    assert_eq!(l[449].name(), "f000");
    assert!(l.iter().all(|e| e.size == (e.name()[1..].parse::<usize>().unwrap() % 7) as u64));
    assert_eq!(env.emu.calls("api.alipan.com/adrive/v3/file/list"), 3, "450 entries in pages of 200");
    let limits: Vec<u16> = env.emu.log().iter().map(|r| r.status).collect();
    assert!(limits.iter().all(|s| *s == 200), "{limits:?}");
}

#[tokio::test]
async fn get_by_path_saves_calls_in_big_folders_and_listing_takes_over_where_it_fails() {
    let env = env(Options::default()).await;
    let big = env.emu.mkdir(env.drive(), "root", "big");
    for i in 0..450 {
        env.emu.put_file(env.drive(), &big, &format!("f{i:03}"), b"x".to_vec());
    }
    env.emu.put_file(env.drive(), &big, "with space.txt", b"abc".to_vec());
    let small = env.emu.mkdir(env.drive(), "root", "small");
    env.emu.put_file(env.drive(), &small, "s.txt", b"s".to_vec());
    let d = started(&env, "").await;
    let m = env.mount(d.clone()); // cache_ttl 0: every resolution reaches the drive
    let lists = || env.emu.calls("api.alipan.com/adrive/v3/file/list");
    let by_path = || env.emu.calls("api.alipan.com/v2/file/get_by_path");
    assert_eq!(m.list("big").await.unwrap().1.len(), 451);
    assert_eq!((lists(), by_path()), (1 + 3, 0), "root, then big in 3 pages of 200");
    // Big folder, listing stale: one get_by_path instead of 3 pages.
    env.emu.clear_log();
    assert_eq!(m.resolve("big/f321").await.unwrap().size, 1);
    assert_eq!((lists(), by_path()), (1, 1), "the small root is listed, big is looked up by path");
    // A miss is a 404 (confirmed for missing paths, ref §4.4): no listing either. An
    // upload into the big folder checks its name that way.
    env.emu.clear_log();
    assert!(matches!(m.resolve("big/nope").await, Err(DriveError::NotFound)));
    put(&m, env.dir.path(), "big/new.bin", b"new").await;
    assert_eq!(lists(), 2, "only the root, once per resolution");
    assert!(by_path() >= 2);
    // A name with whitespace never goes to get_by_path: the big folder is listed.
    env.emu.clear_log();
    assert_eq!(m.resolve("big/with space.txt").await.unwrap().size, 3);
    assert_eq!(by_path(), 0, "a path with whitespace went to get_by_path");
    assert_eq!(lists(), 1 + 3);
    // A small folder is listed (one call, cached by the mount), never looked up by path.
    env.emu.clear_log();
    m.resolve("small/s.txt").await.unwrap();
    assert_eq!((lists(), by_path()), (2, 0));
    // The service errs on get_by_path: the listing answers.
    env.emu.clear_log();
    env.emu.inject("*/v2/file/get_by_path", Fault::status(400).times(1));
    assert_eq!(m.resolve("big/f001").await.unwrap().size, 1);
    assert_eq!(lists(), 1 + 3);
}

#[tokio::test]
async fn web_token_links_carry_the_referer_and_mobile_links_do_not() {
    let env = env(Options::default()).await;
    let id = env.emu.put_file(env.drive(), "root", "v.bin", random_bytes(1000, 3));
    let web = env.emu.issue_refresh_token(&env.user.user_id, TokenKind::Web);
    let dw = env.driver_with("w", &web, "");
    dw.init().await.unwrap();
    let dm = started(&env, "").await;
    let entry = file_entry(&env.emu.entry(&id).unwrap());
    let c = reqwest::Client::new();
    let lw = dw.link(&entry, &LinkRequest::default()).await.unwrap();
    assert!(lw.url.contains("x-oss-additional-headers=referer"), "{}", lw.url);
    assert_eq!(lw.headers, vec![("Referer".to_string(), "https://www.alipan.com/".to_string())]);
    assert!(lw.expires_at.is_some());
    assert_eq!(c.get(&lw.url).send().await.unwrap().status(), 403, "bound to the Referer");
    let r = c.get(&lw.url).header("Referer", &lw.headers[0].1).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &random_bytes(1000, 3)[..]);
    let lm = dm.link(&entry, &LinkRequest::default()).await.unwrap();
    assert!(lm.headers.is_empty(), "{:?}", lm.headers);
    assert_eq!(c.get(&lm.url).send().await.unwrap().status(), 200, "a mobile link works as is");
}

#[tokio::test]
async fn rapid_upload_sends_no_bytes_and_normal_uploads_go_in_parts() {
    let env = env(Options::default()).await;
    let d = started(&env, "part_size = 204800").await;
    let m = env.mount(d.clone());
    let known = random_bytes(3 * 1024 * 1024 + 5, 11);
    env.emu.add_known_content(known.clone());
    let e = put(&m, env.dir.path(), "known.bin", &known).await;
    assert_eq!(e.size, known.len() as u64);
    assert_eq!(env.emu.uploaded_part_bytes(), 0, "rapid upload sent content");
    assert_eq!(env.emu.log().iter().filter(|r| r.method == "PUT").count(), 0);
    assert_eq!(env.emu.calls("api.alipan.com/adrive/v2/file/createWithFolders"), 2, "pre-hash, then hash + proof");
    assert_eq!(env.emu.calls("api.alipan.com/v2/file/complete"), 0, "the consumer API needs no complete after it");
    let id = env.emu.lookup(env.drive(), "/known.bin").unwrap();
    assert_eq!(env.emu.file_bytes(&id).unwrap(), known);

    env.emu.clear_log();
    let fresh = random_bytes(1024 * 1024 + 77, 12);
    let e = put(&m, env.dir.path(), "fresh.bin", &fresh).await;
    assert_eq!(e.hashes().sha1.as_deref().map(str::len), Some(40));
    let puts: Vec<_> = env.emu.log().into_iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(puts.len(), 6, "1 MiB + 77 in parts of 200 KiB");
    assert!(puts.iter().all(|r| r.header("content-type").is_none()), "a part PUT carried a Content-Type");
    assert!(puts.iter().all(|r| r.header("authorization").is_none()));
    assert_eq!(puts.iter().map(|r| r.body_len).sum::<u64>(), fresh.len() as u64);
    let id = env.emu.lookup(env.drive(), "/fresh.bin").unwrap();
    assert_eq!(env.emu.file_bytes(&id).unwrap(), fresh);
    assert_eq!(read_all(&m, "fresh.bin", 100, Some(300_000)).await, &fresh[100..300_000]);

    // rapid_upload = false: the content is sent even when the service knows it.
    let off = env.driver_with(
        "off",
        &env.emu.issue_refresh_token(&env.user.user_id, TokenKind::Mobile),
        "rapid_upload = false",
    );
    off.init().await.unwrap();
    assert!(!off.caps().rapid_upload_sha1);
    let mo = env.mount(off);
    env.emu.clear_log();
    put(&mo, env.dir.path(), "again.bin", &known).await;
    assert!(env.emu.log().iter().filter(|r| r.method == "PUT").map(|r| r.body_len).sum::<u64>() >= known.len() as u64);
}

#[tokio::test]
async fn an_expired_part_url_is_renewed_and_the_part_sent_again() {
    let env = env(Options::default()).await;
    let d = started(&env, "part_size = 204800").await;
    let m = env.mount(d);
    env.emu.inject(
        &format!("{DATA_HOST}/*"),
        Fault::custom(AliFault::ExpireLink).method(http::Method::PUT).after(2).times(1),
    );
    let data = random_bytes(900_000, 5);
    put(&m, env.dir.path(), "p.bin", &data).await;
    assert_eq!(env.emu.calls("api.alipan.com/v2/file/get_upload_url"), 1, "fresh URLs after the 403");
    let id = env.emu.lookup(env.drive(), "/p.bin").unwrap();
    assert_eq!(env.emu.file_bytes(&id).unwrap(), data);
    // And when the presign expires by the clock (the emulator's hour).
    env.emu.clear_log();
    let data2 = random_bytes(500_000, 6);
    let (up, guard) = spooled(env.dir.path(), &data2).await;
    let m2 = m.clone();
    let emu_advanced = async {
        // Hold the second part until the clock moved past the URLs' life.
        env.emu.inject(
            &format!("{DATA_HOST}/*"),
            Fault::delay(std::time::Duration::from_millis(400)).method(http::Method::PUT).after(1).times(1),
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    emu_advanced.await;
    let task = tokio::spawn(async move { m2.put("q.bin", up).await });
    while env.emu.log().iter().filter(|r| r.method == "PUT").count() < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    env.emu.advance(std::time::Duration::from_secs(2 * 3600));
    task.await.unwrap().unwrap();
    drop(guard);
    // Two hours also expired the access token: get_upload_url was refused once (401),
    // the token refreshed, and the URLs renewed.
    let renewed = env.emu.log().iter().filter(|r| r.path == "/v2/file/get_upload_url" && r.status == 200).count();
    assert_eq!(renewed, 1, "URLs past their hour were renewed");
    let expired = env.emu.log().iter().filter(|r| r.method == "PUT" && r.status == 403).count();
    assert_eq!(expired, 1, "one part met the expired presign");
    let id = env.emu.lookup(env.drive(), "/q.bin").unwrap();
    assert_eq!(env.emu.file_bytes(&id).unwrap(), data2);
}

#[tokio::test]
async fn a_failed_upload_leaves_nothing_behind_and_the_old_file_intact() {
    let env = env(Options::default()).await;
    let d = started(&env, "part_size = 204800").await;
    let m = env.mount(d);
    put(&m, env.dir.path(), "keep.bin", b"the old content").await;
    let fault = env.emu.inject(&format!("{DATA_HOST}/*"), Fault::status(500).method(http::Method::PUT).after(1));
    for name in ["new.bin", "keep.bin"] {
        let (up, guard) = spooled(env.dir.path(), &random_bytes(700_000, 9)).await;
        let r = m.put(name, up).await;
        drop(guard);
        assert!(r.is_err(), "{name}: {r:?}");
    }
    env.emu.remove_fault(fault);
    let names: Vec<String> = env.emu.children(env.drive(), "root").into_iter().map(|e| e.name).collect();
    assert_eq!(names, vec!["keep.bin".to_string()], "no partial or swap file left");
    assert!(env.emu.trashed(env.drive()).is_empty(), "discarded for good, not into the recycle bin");
    let id = env.emu.lookup(env.drive(), "/keep.bin").unwrap();
    assert_eq!(env.emu.file_bytes(&id).unwrap(), b"the old content");
    assert_eq!(read_all(&m, "keep.bin", 0, None).await, b"the old content");
    // An overwrite that works replaces it.
    put(&m, env.dir.path(), "keep.bin", b"new").await;
    assert_eq!(read_all(&m, "keep.bin", 0, None).await, b"new");
    let names: Vec<String> = env.emu.children(env.drive(), "root").into_iter().map(|e| e.name).collect();
    assert_eq!(names, vec!["keep.bin".to_string()]);
}

#[tokio::test]
async fn internal_upload_sends_parts_to_the_internal_host() {
    let env = env(Options::default()).await;
    let d = started(&env, "internal_upload = true\npart_size = 204800").await;
    let m = env.mount(d);
    let data = random_bytes(300_000, 4);
    put(&m, env.dir.path(), "i.bin", &data).await;
    let hosts: Vec<String> = env.emu.log().into_iter().filter(|r| r.method == "PUT").map(|r| r.host).collect();
    assert_eq!(hosts, vec![INTERNAL_DATA_HOST.to_string(); 2]);
    let id = env.emu.lookup(env.drive(), "/i.bin").unwrap();
    assert_eq!(env.emu.file_bytes(&id).unwrap(), data);
}

#[tokio::test]
async fn trash_or_delete_and_folders_wait_for_their_task() {
    let env = env(Options::default()).await;
    let d = started(&env, "").await;
    let m = env.mount(d);
    m.mkdir("d").await.unwrap();
    put(&m, env.dir.path(), "d/x", b"x").await;
    put(&m, env.dir.path(), "f", b"f").await;
    m.remove("d").await.unwrap();
    assert!(env.emu.calls("api.alipan.com/v2/async_task/get") >= 1, "the folder's task was waited for");
    m.remove("f").await.unwrap();
    let mut trashed: Vec<String> = env.emu.trashed(env.drive()).into_iter().map(|e| e.name).collect();
    trashed.sort();
    assert_eq!(trashed, vec!["d".to_string(), "f".to_string()]);
    assert!(env.emu.children(env.drive(), "root").is_empty());
    let p = env.driver_with(
        "p",
        &env.emu.issue_refresh_token(&env.user.user_id, TokenKind::Mobile),
        "delete = \"permanent\"",
    );
    p.init().await.unwrap();
    let mp = env.mount(p);
    put(&mp, env.dir.path(), "g", b"g").await;
    mp.remove("g").await.unwrap();
    assert_eq!(env.emu.trashed(env.drive()).len(), 2, "deleted for good");
    assert!(env.emu.lookup(env.drive(), "/g").is_none());
}

#[tokio::test]
async fn drive_option_picks_the_drive_and_quota_is_reported() {
    let env = env(Options::default()).await;
    env.emu.put_file(&env.user.backup_drive_id, "root", "in-backup.txt", b"b".to_vec());
    env.emu.put_file(&env.user.resource_drive_id, "root", "in-resource.txt", b"r".to_vec());
    for (opt, want) in [("backup", "in-backup.txt"), ("resource", "in-resource.txt")] {
        let d = env.driver_with(
            opt,
            &env.emu.issue_refresh_token(&env.user.user_id, TokenKind::Mobile),
            &format!("drive = \"{opt}\""),
        );
        d.init().await.unwrap();
        let names: Vec<String> = d.list_id("root").await.unwrap().into_iter().map(|e| e.name().to_string()).collect();
        assert_eq!(names, vec![want.to_string()], "{opt}");
        let q = d.quota().await.unwrap().unwrap();
        assert!(q.total.is_some_and(|t| t >= q.used), "{q:?}");
    }
}

#[tokio::test]
async fn server_hiccups_and_throttling_are_retried() {
    let env = env(Options::default()).await;
    env.emu.put_file(env.drive(), "root", "a", b"a".to_vec());
    let d = started(&env, "").await;
    env.emu.inject("*/adrive/v3/file/list", Fault::status(502).times(2));
    assert_eq!(d.list_id("root").await.unwrap().len(), 1);
    assert_eq!(env.emu.calls("api.alipan.com/adrive/v3/file/list"), 3);
    env.emu.clear_log();
    env.emu.inject(
        "*/adrive/v3/file/list",
        Fault::custom(AliFault::TooManyRequests { retry_after_ms: Some(200) }).times(2),
    );
    assert_eq!(d.list_id("root").await.unwrap().len(), 1);
    assert_eq!(env.emu.calls("api.alipan.com/adrive/v3/file/list"), 3);
    // A non-idempotent call is not repeated after a 5xx: the client sees the error.
    env.emu.clear_log();
    env.emu.inject("*/adrive/v2/file/createWithFolders", Fault::status(503).times(1));
    let m = env.mount(d.clone());
    assert!(m.mkdir("x").await.is_err());
    assert_eq!(env.emu.calls("api.alipan.com/adrive/v2/file/createWithFolders"), 1);
    m.mkdir("x").await.unwrap();
    // Throttling that lasts ends as 503 + Retry-After, not as a hang.
    env.emu.inject("*/adrive/v3/file/list", Fault::custom(AliFault::TooManyRequests { retry_after_ms: Some(100) }));
    let r = d.list_id("root").await;
    assert!(matches!(r, Err(DriveError::RateLimited { retry_after: Some(_) })), "{r:?}");
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once_and_saved_before_use() {
    let env = env(Options::default()).await;
    let d = started(&env, "").await;
    let before = env.emu.refresh_count(&env.user.user_id);
    env.emu.inject("*/adrive/v3/file/list", Fault::custom(AliFault::ExpireAccessToken).times(1));
    d.list_id("root").await.unwrap();
    assert_eq!(env.emu.refresh_count(&env.user.user_id), before + 1);
    assert_eq!(env.emu.refresh_reuse_count(&env.user.user_id), 0);
    assert_eq!(saved_refresh(&env.state_path("a")), d.tokens().refresh_token);
    assert!(env.emu.is_refresh_token_live(&d.tokens().refresh_token));
}

#[tokio::test]
async fn a_refused_signature_or_a_kicked_device_makes_a_new_session() {
    let env = env(Options::default()).await;
    let d = started(&env, "").await;
    let created = d.auth().sessions_created.load(std::sync::atomic::Ordering::SeqCst);
    env.emu.inject("*/adrive/v3/file/list", Fault::custom(AliFault::SignatureInvalid).times(1));
    d.list_id("root").await.unwrap();
    env.emu.inject("*/adrive/v3/file/list", Fault::custom(AliFault::DeviceOffline).times(1));
    d.list_id("root").await.unwrap();
    env.emu.drop_device_sessions(&env.user.user_id);
    d.list_id("root").await.unwrap();
    assert_eq!(d.auth().sessions_created.load(std::sync::atomic::Ordering::SeqCst), created + 3);
    assert_eq!(env.emu.calls("api.alipan.com/users/v1/users/device/create_session"), 3);
    assert_eq!(env.emu.refresh_count(&env.user.user_id), 1, "no token refresh for a signature error");
    // Refused again right after a new session: the error, not a loop.
    env.emu.clear_log();
    env.emu.inject("*/adrive/v3/file/list", Fault::custom(AliFault::SignatureInvalid));
    assert!(d.list_id("root").await.is_err());
    assert!(
        env.emu.calls("api.alipan.com/adrive/v3/file/list") <= 4,
        "{}",
        env.emu.calls("api.alipan.com/adrive/v3/file/list")
    );
}

#[tokio::test]
async fn an_expired_link_is_asked_for_again() {
    let env = env(Options::default()).await;
    let data = random_bytes(400_000, 8);
    env.emu.put_file(env.drive(), "root", "l.bin", data.clone());
    let d = started(&env, "").await;
    let m = env.mount(d);
    assert_eq!(read_all(&m, "l.bin", 0, None).await, data);
    // The cached link dies (403 Request has expired): a new one, same bytes.
    env.emu.inject(&format!("{DATA_HOST}/*"), Fault::custom(AliFault::ExpireLink).times(1));
    env.emu.clear_log();
    assert_eq!(read_all(&m, "l.bin", 1000, Some(2000)).await, &data[1000..2000]);
    assert_eq!(env.emu.calls_matching("*/v2/file/get_download_url"), 1, "one fresh link after the refusal");
    // The link outlives requests until shortly before its expiration.
    env.emu.clear_log();
    for _ in 0..5 {
        read_all(&m, "l.bin", 0, Some(10)).await;
    }
    assert_eq!(env.emu.calls_matching("*/v2/file/get_download_url"), 0, "links are cached");
}
