//! The real binary under `kill -9` while tokens rotate, for every driver whose refresh
//! token is single-use (115 Open, Aliyun Drive…), and the async helpers those tests share
//! (start `pandav serve` off the runtime, `/-/health`, PROPFIND, GET without redirects).
//!
//! [`sigkill_during_refreshes`] starts the server on a config, checks the mount comes up
//! healthy with the live token, then keeps expiring the access token at the provider (a
//! callback) while listings flow, and SIGKILLs the server at a random moment — often with
//! a refresh in flight. The provider-specific verdict (no refresh token sent twice, the
//! saved token is the live one) is the caller's.

use std::path::Path;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use super::Server;

/// Start `pandav serve` (the shared fixture) off the runtime thread, which keeps an
/// in-process emulator serving meanwhile.
pub async fn serve(config: &Path, env: &[(&'static str, &'static str)]) -> Server {
    let (config, dir, env) = (config.to_path_buf(), config.parent().unwrap().to_path_buf(), env.to_vec());
    tokio::task::spawn_blocking(move || Server::start_file_env(&config, &dir, &env)).await.unwrap()
}

/// A client that does not follow redirects.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub async fn health(base: &str) -> serde_json::Value {
    http().get(format!("{base}/-/health")).send().await.unwrap().json().await.unwrap()
}

pub fn mount_health<'a>(h: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    h["mounts"].as_array().unwrap().iter().find(|m| m["path"] == path).unwrap()
}

/// Wait until `path` has finished starting; its health entry.
pub async fn settled(base: &str, path: &str) -> serde_json::Value {
    let t = Instant::now();
    loop {
        let h = health(base).await;
        let m = mount_health(&h, path).clone();
        if m["message"] != "starting" {
            return m;
        }
        if t.elapsed() > Duration::from_secs(60) {
            panic!("mount {path} never finished starting");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// PROPFIND depth 1: status and body (a listing that failed may still answer 207 with
/// the folder alone, so callers look for a child's name in the body).
pub async fn listing(base: &str, path: &str) -> (u16, String) {
    match http()
        .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), format!("{base}{path}"))
        .header("Depth", "1")
        .send()
        .await
    {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// GET without following redirects.
pub async fn get_status(base: &str, path: &str) -> u16 {
    http()
        .get(format!("{base}{path}"))
        .header("User-Agent", "pandav-test/1")
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// One kill -9 loop.
pub struct CrashLoop<'a> {
    pub config: &'a Path,
    /// The mount's path (`/o`).
    pub mount: &'a str,
    /// A file in the mount's root, listed and linked after every start.
    pub file: &'a str,
    /// What a GET of `file` answers on this mount (302 redirect, 200 proxy).
    pub get_status: u16,
    /// Make the mount's access token expire at the provider now.
    pub expire: &'a (dyn Fn() + Send + Sync),
    /// A line about the provider's counters, for `PANDAV_CRASH_VERBOSE`.
    pub describe: &'a (dyn Fn() -> String + Send + Sync),
}

/// Run `PANDAV_CRASH_ROUNDS` (default 50) rounds with seed `PANDAV_CRASH_SEED`, then
/// start once more and check the mount is healthy. Returns the rounds run.
pub async fn sigkill_during_refreshes(l: CrashLoop<'_>) -> usize {
    let rounds: usize = std::env::var("PANDAV_CRASH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(50);
    let seed: u64 = std::env::var("PANDAV_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("crash test: {rounds} rounds, seed {seed} (PANDAV_CRASH_SEED to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let root = format!("{}/", l.mount);
    let file = format!("{}/{}", l.mount, l.file);
    for round in 0..rounds {
        let srv = serve(l.config, &[]).await;
        // After every restart the mount authenticates with the live token.
        let m = settled(srv.url(), l.mount).await;
        assert_eq!(m["ok"], true, "round {round}: mount locked out after restart: {m}");
        let (st, body) = listing(srv.url(), &root).await;
        assert!(st == 207 && body.contains(l.file), "round {round}: listing failed: {st}");
        assert_eq!(get_status(srv.url(), &file).await, l.get_status, "round {round}: no download");
        // Drive refreshes: the access token keeps expiring while requests flow, and the
        // server is killed at a random moment (often with a refresh in flight).
        let kill_at = Instant::now() + Duration::from_millis(rng.gen_range(0..700));
        let mut inflight = vec![];
        while Instant::now() < kill_at {
            (l.expire)();
            let (base, root) = (srv.url().to_string(), root.clone());
            inflight.push(tokio::spawn(async move { listing(&base, &root).await }));
            tokio::time::sleep(Duration::from_millis(rng.gen_range(1..40))).await;
        }
        if rng.gen_bool(0.3) {
            // sometimes right at a refresh's start
            (l.expire)();
            let (base, root) = (srv.url().to_string(), root.clone());
            inflight.push(tokio::spawn(async move { listing(&base, &root).await }));
            tokio::time::sleep(Duration::from_micros(rng.gen_range(0..3000))).await;
        }
        srv.kill();
        let mut codes = std::collections::BTreeMap::new();
        for t in inflight {
            let (st, body) = t.await.unwrap_or((0, String::new()));
            *codes.entry((st, body.contains(l.file))).or_insert(0) += 1;
        }
        if std::env::var_os("PANDAV_CRASH_VERBOSE").is_some() {
            eprintln!("round {round}: statuses {codes:?}, {}", (l.describe)());
        }
    }
    // One more start: healthy, serving.
    let srv = serve(l.config, &[]).await;
    assert_eq!(settled(srv.url(), l.mount).await["ok"], true);
    assert!(listing(srv.url(), &root).await.1.contains(l.file));
    srv.kill();
    tokio::time::sleep(Duration::from_millis(300)).await; // a helper may still be writing
    rounds
}
