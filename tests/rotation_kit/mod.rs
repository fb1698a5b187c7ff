//! Token rotation through the real binary, for every driver whose grant rotates: start
//! `pandav serve` on a config, wait for a mount to settle, read it over WebDAV, and the
//! SIGKILL loop that kills the server while refreshes are in flight. The provider side
//! (its emulator) is the caller's: it says how to expire the access token and checks
//! afterwards that no refresh token was lost or burnt.
//!
//! Include it with `#[path = "rotation_kit/mod.rs"] mod rotation_kit;` next to
//! `#[path = "common/mod.rs"] mod fixture;` (the `Server` it starts comes from there).
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::fixture::Server;

/// Start `pandav serve` on `config` (the shared fixture) off the runtime thread, which
/// keeps an in-process emulator serving meanwhile.
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
            // The server is still in scope: its log is printed as the panic unwinds.
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

/// GET without following redirects: the status.
pub async fn get_status(base: &str, path: &str) -> u16 {
    http()
        .get(format!("{base}{path}"))
        .header("User-Agent", "pandav-test/1")
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// A string field of a mount's state file (`data.<field>`).
pub fn saved_field(state_file: &Path, field: &str) -> String {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(state_file).unwrap()).unwrap();
    v["data"][field].as_str().unwrap_or_default().to_string()
}

/// The SIGKILL loop: `rounds` times, start the server, check the mount is healthy, lists
/// `file` and redirects a GET of it (302), then keep expiring the access token
/// (`expire`) while listings flow, and kill the server at a random moment — often with a
/// refresh in flight, in the `pandav __refresh` helper or between the provider's answer
/// and the write. `PANDAV_CRASH_ROUNDS` / `PANDAV_CRASH_SEED` override rounds and seed.
pub async fn sigkill_loop(config: &Path, mount: &str, file: &str, rounds: usize, expire: &(dyn Fn() + Sync)) {
    let rounds: usize = std::env::var("PANDAV_CRASH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(rounds);
    let seed: u64 = std::env::var("PANDAV_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("crash test: {rounds} rounds, seed {seed} (PANDAV_CRASH_SEED to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = format!("{}/", mount.trim_end_matches('/'));
    for round in 0..rounds {
        let srv = serve(config, &[]).await;
        // After every restart the mount authenticates with the live token.
        let m = settled(srv.url(), mount).await;
        assert_eq!(m["ok"], true, "round {round}: mount locked out after restart: {m}");
        let (st, body) = listing(srv.url(), &dir).await;
        assert!(st == 207 && body.contains(file), "round {round}: listing failed: {st}");
        assert_eq!(get_status(srv.url(), &format!("{dir}{file}")).await, 302, "round {round}: no download link");
        let kill_at = Instant::now() + Duration::from_millis(rng.gen_range(0..700));
        let mut inflight = vec![];
        while Instant::now() < kill_at {
            expire();
            let (base, dir) = (srv.url().to_string(), dir.clone());
            inflight.push(tokio::spawn(async move { listing(&base, &dir).await }));
            tokio::time::sleep(Duration::from_millis(rng.gen_range(1..40))).await;
        }
        if rng.gen_bool(0.3) {
            // sometimes right at a refresh's start
            expire();
            let (base, dir) = (srv.url().to_string(), dir.clone());
            inflight.push(tokio::spawn(async move { listing(&base, &dir).await }));
            tokio::time::sleep(Duration::from_micros(rng.gen_range(0..3000))).await;
        }
        srv.kill();
        let mut codes = std::collections::BTreeMap::new();
        for t in inflight {
            let (st, body) = t.await.unwrap_or((0, String::new()));
            *codes.entry((st, body.contains(file))).or_insert(0) += 1;
        }
        if std::env::var_os("PANDAV_CRASH_VERBOSE").is_some() {
            eprintln!("round {round}: statuses {codes:?}");
        }
    }
}
