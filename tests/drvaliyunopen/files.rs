//! Files through a mount, checked against the emulator's own view: rapid upload, the
//! pre-hash round, part URLs that expire, failed uploads, async tasks, get_by_path and
//! its fallback, link lifetimes, and faults (5xx, TooManyRequests, expired tokens and
//! links).

use std::time::{Duration, Instant, SystemTime};

use emualiyun::{AliFault, AppSpec, Fault, OpenRates, Options};
use pandav::vfs::{Drive, DriveError, LinkRequest};

use crate::common::*;

fn sp(env: &Env) -> std::path::PathBuf {
    env.dir.path().join("spool")
}

/// Calls of `path` the emulator served. A call it refused with 429 `TooManyRequests` is not
/// counted: the driver paces at 14.9/s against a 15/s bucket of size 1 (§10.1), so on a
/// loaded machine a call now and then arrives a fraction of a millisecond early and is
/// waited out and resent (that path has its own test); what these tests count is the work
/// the driver asked for.
fn count(env: &Env, path: &str) -> usize {
    served(env).iter().filter(|r| r.path == path).count()
}

fn served(env: &Env) -> Vec<emualiyun::LoggedRequest> {
    env.emu.log().into_iter().filter(|r| r.host == "openapi.alipan.com" && r.status != 429).collect()
}

#[tokio::test]
async fn rapid_upload_of_known_content_sends_no_bytes_and_completes() {
    let env = env(Options::default()).await;
    let d = env.driver();
    let m = env.mount(d.clone());
    m.init().await.unwrap();
    let known = random_bytes(3 * 1024 * 1024 + 5, 11);
    env.emu.add_known_content(known.clone());
    env.emu.clear_log();
    let e = put(&m, &sp(&env), "known.bin", &known).await;
    assert_eq!(e.size, known.len() as u64);
    let puts = env.emu.log().iter().filter(|r| r.method == "PUT").count();
    assert_eq!(puts, 0, "rapid upload sent body bytes");
    // pre_hash first (larger than 1 KiB), PreHashMatched, then the content hash + proof.
    let creates: Vec<_> = served(&env).into_iter().filter(|r| r.path == "/adrive/v1.0/openFile/create").collect();
    assert_eq!(creates.len(), 2, "pre-hash probe, then the proof");
    assert_eq!(creates[0].status, 409, "PreHashMatched");
    assert_eq!(creates[1].status, 200);
    assert_eq!(count(&env, "/adrive/v1.0/openFile/complete"), 1, "complete after a rapid upload (§7.5)");
    let id = env.emu.lookup(env.drive(), "/known.bin").expect("stored");
    assert_eq!(env.emu.file_bytes(&id).unwrap(), known);
    assert_eq!(read_all(&m, "known.bin", 7, Some(1000)).await, &known[7..1000]);
}

#[tokio::test]
async fn new_content_goes_in_parts_without_content_type() {
    let env = env(Options::default()).await;
    let d = env.driver();
    let m = env.mount(d);
    m.init().await.unwrap();
    let data = random_bytes(21 * 1024 * 1024 + 3, 12);
    env.emu.clear_log();
    put(&m, &sp(&env), "new.bin", &data).await;
    let parts: Vec<_> = env.emu.log().into_iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(parts.len(), 3, "10 MiB parts");
    for p in &parts {
        assert_eq!(p.status, 200);
        assert!(p.header("content-type").is_none(), "a part carried a Content-Type");
        assert!(p.header("authorization").is_none(), "a part carried the bearer token");
    }
    assert_eq!(parts.iter().map(|p| p.body_len).sum::<u64>(), data.len() as u64);
    assert_eq!(env.emu.open_uploads(), 0);
    let id = env.emu.lookup(env.drive(), "/new.bin").unwrap();
    assert_eq!(env.emu.file_bytes(&id).unwrap(), data);
}

#[tokio::test]
async fn an_expired_part_url_is_renewed() {
    let env = env(Options::default()).await;
    let d = env.driver();
    let m = env.mount(d);
    m.init().await.unwrap();
    let data = random_bytes(12 * 1024 * 1024, 13);
    env.emu.clear_log();
    // The second part's URL has expired when it is used.
    env.emu.inject(
        "cn-beijing-data.aliyundrive.net/*",
        Fault::custom(AliFault::ExpireLink).method(http::Method::PUT).after(1).times(1),
    );
    put(&m, &sp(&env), "renewed.bin", &data).await;
    assert_eq!(count(&env, "/adrive/v1.0/openFile/getUploadUrl"), 1, "fresh URLs once");
    let id = env.emu.lookup(env.drive(), "/renewed.bin").unwrap();
    assert_eq!(env.emu.file_bytes(&id).unwrap(), data);
}

#[tokio::test]
async fn part_urls_that_aged_past_their_lifetime_are_renewed() {
    let env = env(Options::default()).await;
    let d = env.driver();
    let m = env.mount(d);
    m.init().await.unwrap();
    let data = random_bytes(12 * 1024 * 1024, 14);
    env.emu.clear_log();
    // The clock jumps two hours while the first part is on its way.
    env.emu.inject(
        "cn-beijing-data.aliyundrive.net/*",
        Fault::delay(Duration::from_millis(50)).method(http::Method::PUT).times(1),
    );
    let (up, guard) = spooled(&sp(&env), &data).await;
    let task = {
        let m = m.clone();
        tokio::spawn(async move { m.put("aged.bin", up).await })
    };
    let t = Instant::now();
    while !env.emu.log().iter().any(|r| r.method == "PUT") {
        assert!(t.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    env.emu.advance(Duration::from_secs(7200));
    task.await.unwrap().expect("the upload survives URLs that expired on the way");
    drop(guard);
    assert!(count(&env, "/adrive/v1.0/openFile/getUploadUrl") >= 1);
    let id = env.emu.lookup(env.drive(), "/aged.bin").unwrap();
    assert_eq!(env.emu.file_bytes(&id).unwrap(), data);
}

#[tokio::test]
async fn a_failed_upload_leaves_nothing_and_the_old_file_stays() {
    let env = env(Options::default()).await;
    let d = env.driver();
    let m = env.mount(d);
    m.init().await.unwrap();
    put(&m, &sp(&env), "keep.bin", b"the old content").await;
    env.emu.inject("cn-beijing-data.aliyundrive.net/*", Fault::status(500).method(http::Method::PUT));
    let (up, guard) = spooled(&sp(&env), &random_bytes(300 * 1024, 15)).await;
    let r = m.put("keep.bin", up).await;
    drop(guard);
    assert!(r.is_err(), "{r:?}");
    let (up, guard) = spooled(&sp(&env), &random_bytes(200 * 1024, 16)).await;
    assert!(m.put("fresh.bin", up).await.is_err());
    drop(guard);
    env.emu.clear_faults();
    let names: Vec<String> = env.emu.children(env.drive(), "root").into_iter().map(|e| e.name).collect();
    assert_eq!(names, vec!["keep.bin".to_string()], "a failed upload left something");
    assert!(env.emu.trashed(env.drive()).is_empty(), "failed uploads went to the recycle bin");
    assert_eq!(read_all(&m, "keep.bin", 0, None).await, b"the old content");
}

#[tokio::test]
async fn folders_removed_wait_for_their_async_task() {
    let env = env(Options { async_task_running_polls: 2, ..Default::default() }).await;
    let d = env.driver();
    let m = env.mount(d);
    m.init().await.unwrap();
    m.mkdir("d").await.unwrap();
    put(&m, &sp(&env), "d/x", b"x").await;
    m.remove("d").await.unwrap();
    assert!(env.emu.lookup(env.drive(), "/d").is_none(), "removed only once the task succeeded");
    assert!(count(&env, "/adrive/v1.0/openFile/async_task/get") >= 3, "polled until Succeed");
    assert_eq!(env.emu.trashed(env.drive()).len(), 1, "trash by default");
    // delete = "permanent": gone, not in the recycle bin.
    let d = env.driver_with(
        "p",
        &env.emu.open_authorize(&env.user.user_id, CLIENT_ID).refresh_token,
        "delete = \"permanent\"",
    );
    let m = env.mount(d);
    m.init().await.unwrap();
    m.mkdir("e").await.unwrap();
    put(&m, &sp(&env), "f", b"f").await;
    m.remove("e").await.unwrap();
    m.remove("f").await.unwrap();
    assert!(env.emu.children(env.drive(), "root").is_empty());
    assert_eq!(env.emu.trashed(env.drive()).len(), 1, "permanent deletes skip the recycle bin");
}

/// get_by_path where it saves calls (§4.4): in a folder whose listing took more than one
/// page; small folders are listed (the mount caches that), names with whitespace too.
#[tokio::test]
async fn lookups_use_get_by_path_in_big_folders_and_fall_back_to_listing() {
    let env = env(Options::default()).await;
    let drive = env.drive().to_string();
    let big = env.emu.mkdir(&drive, "root", "big");
    for i in 0..250 {
        env.emu.put_file(&drive, &big, &format!("f{i:03}"), b"x".to_vec());
    }
    env.emu.put_file(&drive, &big, "with space.txt", b"s".to_vec());
    let d = env.driver();
    let m = env.mount(d);
    m.init().await.unwrap();
    // Never listed: both folders are listed (root: 1 page, big: 3 pages of 100).
    env.emu.clear_log();
    assert_eq!(m.resolve("big/f123").await.unwrap().size, 1);
    assert_eq!(count(&env, "/adrive/v1.0/openFile/get_by_path"), 0);
    assert_eq!(count(&env, "/adrive/v1.0/openFile/list"), 4);
    // Now big is known to take 3 pages: one get_by_path instead (the root, one page, is
    // listed again: this mount caches nothing).
    env.emu.clear_log();
    assert_eq!(m.resolve("big/f124").await.unwrap().size, 1);
    assert_eq!(count(&env, "/adrive/v1.0/openFile/get_by_path"), 1, "one call for a name in a big folder");
    assert_eq!(count(&env, "/adrive/v1.0/openFile/list"), 1, "the small root folder is listed");
    env.emu.clear_log();
    assert!(matches!(m.resolve("big/nope").await, Err(DriveError::NotFound)));
    assert_eq!(count(&env, "/adrive/v1.0/openFile/list"), 1, "a 404 without whitespace is trusted");
    // get_by_path answers 404 for names with whitespace (§4.4): the folder is listed.
    env.emu.clear_log();
    assert_eq!(m.resolve("big/with space.txt").await.unwrap().size, 1);
    assert_eq!(count(&env, "/adrive/v1.0/openFile/get_by_path"), 0);
    assert_eq!(count(&env, "/adrive/v1.0/openFile/list"), 4, "the root, then the 3 pages of big");
}

/// Within the cache TTL, resolving paths costs no call: small folders are listed and the
/// mount keeps those listings (a lookup's answer is not cached).
#[tokio::test]
async fn resolves_within_the_cache_ttl_make_no_calls() {
    let env = env(Options::default()).await;
    let drive = env.drive().to_string();
    let dir = env.emu.mkdir(&drive, "root", "dir");
    env.emu.put_file(&drive, &dir, "v.mkv", b"v".to_vec());
    let d = env.driver();
    let m = env.mount_ttl(d, Duration::from_secs(600));
    m.init().await.unwrap();
    assert_eq!(m.resolve("dir/v.mkv").await.unwrap().size, 1);
    env.emu.clear_log();
    for _ in 0..5 {
        assert_eq!(m.resolve("dir/v.mkv").await.unwrap().size, 1);
        assert!(matches!(m.resolve("dir/nope").await, Err(DriveError::NotFound)));
    }
    assert_eq!(env.emu.log().len(), 0, "{:?}", env.emu.log().iter().map(|r| r.path.clone()).collect::<Vec<_>>());
}

#[tokio::test]
async fn links_follow_the_answers_expiration_and_are_cached() {
    // The app may only get 900 s however much it asks for (§5.2).
    let env = env(Options::default()).await;
    env.emu.put_file(env.drive(), "root", "v.bin", random_bytes(1000, 17));
    let d = env.driver_with("o", &env.tok.refresh_token.clone(), "expire_sec = 14400");
    let m = env.mount(d.clone());
    m.init().await.unwrap();
    let e = m.resolve("v.bin").await.unwrap();
    let l = d.link(&e, &LinkRequest::default()).await.unwrap();
    let left = l.expires_at.unwrap().duration_since(SystemTime::now()).unwrap();
    assert!(left > Duration::from_secs(800) && left <= Duration::from_secs(901), "{left:?}");
    assert!(l.headers.is_empty(), "open links need no Referer");
    env.emu.clear_log();
    for _ in 0..3 {
        assert_eq!(read_all(&m, "v.bin", 0, Some(10)).await.len(), 10);
    }
    assert_eq!(count(&env, "/adrive/v1.0/openFile/getDownloadUrl"), 1, "the link is reused until it expires");
    // An app allowed 4 h gets 4 h.
    let env =
        env_with_app(Options::default(), AppSpec { max_expire_sec: 14400, ..AppSpec::new(CLIENT_ID, CLIENT_SECRET) })
            .await;
    env.emu.put_file(env.drive(), "root", "v.bin", random_bytes(1000, 17));
    let d = env.driver_with("o", &env.tok.refresh_token.clone(), "expire_sec = 14400");
    d.init().await.unwrap();
    let e = d.list(&d.root().await.unwrap()).await.unwrap().remove(0);
    let l = d.link(&e, &LinkRequest::default()).await.unwrap();
    let left = l.expires_at.unwrap().duration_since(SystemTime::now()).unwrap();
    assert!(left > Duration::from_secs(14000), "{left:?}");
}

#[tokio::test]
async fn an_expired_link_is_fetched_again_mid_read() {
    let env = env(Options::default()).await;
    let data = random_bytes(2_000_000, 18);
    env.emu.put_file(env.drive(), "root", "e.bin", data.clone());
    let d = env.driver();
    let m = env.mount(d);
    m.init().await.unwrap();
    assert_eq!(read_all(&m, "e.bin", 0, Some(100)).await, &data[..100]);
    env.emu.inject("cn-beijing-data.aliyundrive.net/*", Fault::custom(AliFault::ExpireLink).times(1));
    env.emu.clear_log();
    assert_eq!(read_all(&m, "e.bin", 1000, None).await, &data[1000..]);
    assert_eq!(count(&env, "/adrive/v1.0/openFile/getDownloadUrl"), 1, "a fresh link after the 403");
}

#[tokio::test]
async fn too_many_requests_waits_x_retry_after_milliseconds() {
    let env = env(Options::default()).await;
    env.emu.put_file(env.drive(), "root", "a", b"a".to_vec());
    let d = env.driver();
    d.init().await.unwrap();
    let root = d.root().await.unwrap();
    env.emu.inject(
        "openapi.alipan.com/adrive/v1.0/openFile/list",
        Fault::custom(AliFault::TooManyRequests { retry_after_ms: Some(700) }).times(2),
    );
    env.emu.clear_log();
    let t = Instant::now();
    assert_eq!(d.list(&root).await.unwrap().len(), 1);
    assert!(t.elapsed() >= Duration::from_millis(1400), "x-retry-after (ms) was not honoured: {:?}", t.elapsed());
    assert_eq!(env.emu.calls("openapi.alipan.com/adrive/v1.0/openFile/list"), 3, "two 429s, then the answer");
    // A throttle that does not end: 503 + Retry-After for the client, not a hang.
    env.emu.inject(
        "openapi.alipan.com/adrive/v1.0/openFile/list",
        Fault::custom(AliFault::TooManyRequests { retry_after_ms: Some(100) }),
    );
    let r = d.list(&root).await;
    assert!(matches!(r, Err(DriveError::RateLimited { retry_after: Some(_) })), "{r:?}");
}

#[tokio::test]
async fn the_default_pacing_stays_under_the_documented_limits() {
    // The documented rates (§10.1) with a bucket of 2 rather than the emulator's strict 1:
    // what is checked is the sustained rate; with a bucket of 1 a call that the loaded
    // test machine sends a few milliseconds late lets the next one arrive early.
    let rates = OpenRates { list: 4.0, download_url: 1.0, other: 15.0, burst: 2.0 };
    let env = env(Options { open_rates: Some(rates), ..Options::default() }).await;
    let drive = env.drive().to_string();
    let dir = env.emu.mkdir(&drive, "root", "d");
    for i in 0..450 {
        env.emu.put_file(&drive, &dir, &format!("f{i}"), b"x".to_vec());
    }
    let d = env.driver();
    d.init().await.unwrap();
    let folder = d.list(&d.root().await.unwrap()).await.unwrap().remove(0);
    env.emu.clear_log();
    let (a, b) = tokio::join!(d.list(&folder), d.list(&folder));
    assert_eq!((a.unwrap().len(), b.unwrap().len()), (450, 450));
    let throttled = env.emu.log().iter().filter(|r| r.status == 429).count();
    let total = env.emu.log().len();
    assert_eq!(throttled, 0, "pacing at 3.9 list calls/s never met the 4/s limit ({throttled} of {total})");
}

#[tokio::test]
async fn server_errors_are_retried_for_reads_only() {
    let env = env(Options::default()).await;
    env.emu.put_file(env.drive(), "root", "a", b"a".to_vec());
    let d = env.driver();
    let m = env.mount(d.clone());
    m.init().await.unwrap();
    env.emu.inject("openapi.alipan.com/adrive/v1.0/openFile/list", Fault::status(502).times(2));
    env.emu.clear_log();
    assert_eq!(m.list("").await.unwrap().1.len(), 1);
    assert_eq!(count(&env, "/adrive/v1.0/openFile/list"), 3);
    // A create that may have happened is not sent twice: the client sees the error.
    env.emu.inject("openapi.alipan.com/adrive/v1.0/openFile/create", Fault::status(503).times(1));
    env.emu.clear_log();
    let r = m.mkdir("d").await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(count(&env, "/adrive/v1.0/openFile/create"), 1);
    m.mkdir("d").await.unwrap();
}

#[tokio::test]
async fn an_access_token_that_expires_mid_call_is_renewed_once() {
    let env = env(Options::default()).await;
    env.emu.put_file(env.drive(), "root", "a", b"a".to_vec());
    let d = env.driver();
    let m = env.mount(d.clone());
    m.init().await.unwrap();
    let uid = env.user.user_id.clone();
    env.emu.inject("openapi.alipan.com/adrive/v1.0/openFile/list", Fault::custom(AliFault::ExpireAccessToken).times(1));
    assert_eq!(m.list("").await.unwrap().1.len(), 1);
    assert_eq!(env.emu.refresh_count(&uid), 2, "init + one renewal");
    assert_eq!(env.emu.refresh_reuse_count(&uid), 0);
    assert!(m.health().ok);
}

#[tokio::test]
async fn quota_comes_from_get_space_info() {
    let env = env(Options::default()).await;
    env.emu.put_file(env.drive(), "root", "a", random_bytes(12345, 1));
    let d = env.driver();
    d.init().await.unwrap();
    let q = d.quota().await.unwrap().expect("a quota");
    assert!(q.total.is_some_and(|t| t > 0), "{q:?}");
    assert_eq!(count(&env, "/adrive/v1.0/user/getSpaceInfo"), 1);
}
