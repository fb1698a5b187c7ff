//! The token lifecycle in-process: rotation under load, restart from state, dead grants,
//! 40140117, the online broker.

use std::sync::Arc;
use std::time::Duration;

use emu115open::{GarbageRefreshStyle, Options};
use pandav::vfs::{Drive, DriveError};

use crate::common::*;

fn saved_refresh(path: &std::path::Path) -> String {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["data"]["refresh_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn many_requests_across_expiries_make_one_refresh_each() {
    let env = env(Options::default()).await;
    for i in 0..5 {
        env.emu.put_file(env.user, 0, &format!("f{i}"), b"x");
    }
    let d = env.driver();
    d.init().await.unwrap();
    let base = env.emu.refresh_count(env.tok.grant);
    for round in 1..=3u64 {
        if round == 2 {
            // the clock jumps past the lifetime instead of a forced expiry
            env.emu.advance(Duration::from_secs(7201));
        } else {
            env.emu.expire_access_token(env.tok.grant);
        }
        let mut tasks = vec![];
        for i in 0..64 {
            let d = Arc::clone(&d);
            tasks.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    d.list_id("0").await.map(|l| l.len())
                } else {
                    d.quota().await.map(|_| 5)
                }
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 5, "no request fails across the expiry");
        }
        let info = env.emu.grant_info(env.tok.grant).unwrap();
        assert_eq!(env.emu.refresh_count(env.tok.grant), base + round, "one refresh per expiry");
        assert_eq!(info.refresh_attempts, info.refresh_count, "no refresh token was ever reused");
        // persisted before use: the state file holds the live refresh token
        assert_eq!(saved_refresh(&env.state_path("o")), info.refresh_token);
        assert!(env.emu.is_refresh_token_live(&d.tokens().refresh_token));
    }
}

#[tokio::test]
async fn background_refresh_runs_ahead_of_expiry() {
    let env = env(Options { access_token_ttl: Duration::from_secs(10), ..Default::default() }).await;
    let d = env.driver();
    let t0 = std::time::Instant::now();
    d.init().await.unwrap(); // config token of unknown age: refreshed at start
    assert_eq!(env.emu.refresh_count(env.tok.grant), 1);
    let wait = d.refresh().await.unwrap();
    // Bounds on what the driver decides; time already spent on a loaded machine counts.
    assert!(wait <= Duration::from_secs(9), "{wait:?}");
    assert!(wait + t0.elapsed() >= Duration::from_secs(7), "{wait:?} after {:?}", t0.elapsed());
    assert_eq!(env.emu.refresh_count(env.tok.grant), 1, "not due yet: no call");
    tokio::time::sleep(wait + Duration::from_millis(300)).await;
    let wait2 = d.refresh().await.unwrap();
    assert_eq!(env.emu.refresh_count(env.tok.grant), 2, "refreshed before the token expired");
    assert!(wait2 >= Duration::from_secs(7), "{wait2:?}");
    assert!(env.emu.is_access_token_live(&d.tokens().access_token));
}

#[tokio::test]
async fn restart_prefers_the_state_and_never_writes_config_back() {
    let env = env(Options::default()).await;
    let r0 = env.tok.refresh_token.clone();
    let d = env.driver();
    d.init().await.unwrap();
    let r1 = d.tokens().refresh_token.clone();
    assert_ne!(r0, r1);
    assert!(!env.emu.is_refresh_token_live(&r0));
    drop(d);
    // Restart with the same (now dead) config value: the state wins.
    let d2 = env.driver();
    assert_eq!(d2.tokens().refresh_token, r1);
    d2.init().await.unwrap();
    d2.list_id("0").await.unwrap();
    let info = env.emu.grant_info(env.tok.grant).unwrap();
    assert_eq!(info.refresh_attempts, info.refresh_count, "the dead config token was never sent");
    assert_eq!(saved_refresh(&env.state_path("o")), info.refresh_token);
    // A new authorization put into the config wins over the old state.
    let fresh = env.emu.authorize(env.user, APP);
    let d3 = env.driver_with("o", &fresh.refresh_token, "");
    assert_eq!(d3.tokens().refresh_token, fresh.refresh_token);
    d3.init().await.unwrap();
    // With no refresh token in the config at all, the state is used.
    let d4 = env.driver_with("o", "", "");
    assert_eq!(d4.tokens().refresh_token, d3.tokens().refresh_token);
}

#[tokio::test]
async fn revoked_grant_fails_fast_with_a_login_hint() {
    let env = env(Options::default()).await;
    let d = env.driver();
    d.init().await.unwrap();
    env.emu.revoke(env.tok.grant);
    let r = d.list_id("0").await;
    let Err(DriveError::AuthLost(msg)) = r else { panic!("{r:?}") };
    assert!(msg.contains("pandav login 115-open") && msg.contains("--mount /o"), "{msg}");
    assert!(msg.contains("40140116"), "{msg}");
    assert!(!msg.contains(&env.tok.refresh_token) && !msg.contains(&d.tokens().refresh_token));
    let before = env.emu.request_log().len();
    for _ in 0..20 {
        assert!(matches!(d.list_id("0").await, Err(DriveError::AuthLost(_))));
        assert!(matches!(d.refresh().await, Err(DriveError::AuthLost(_))));
    }
    assert_eq!(env.emu.request_log().len(), before, "no calls after the grant died");
    assert_eq!(env.emu.refresh_attempts(env.tok.grant), 2, "init refresh + the one that found out");
}

#[tokio::test]
async fn evicted_grant_is_dead_and_a_new_login_revives_the_mount() {
    let env = env(Options::default()).await; // grant limit 2
    let d = env.driver();
    d.init().await.unwrap();
    env.emu.authorize(env.user, APP);
    env.emu.authorize(env.user, APP); // third grant evicts ours
    env.emu.expire_access_token(env.tok.grant);
    let r = d.list_id("0").await;
    assert!(matches!(r, Err(DriveError::AuthLost(_))), "{r:?}");
    // `pandav login` writes a new pair into the state file: the mount picks it up.
    let fresh = env.emu.authorize(env.user, APP);
    let t = pandav::drivers::p115::open::login::Tokens::from_grant(fresh.access_token, fresh.refresh_token, 7200);
    let state = pandav::state::StateHandle::at(env.state_path("o"));
    pandav::vfs::credentials::Credentials::restore(&state, &env.tok.refresh_token, Default::default())
        .unwrap()
        .save_login(t)
        .await
        .unwrap();
    // No waiting: the changed state file is noticed on the next call.
    d.list_id("0").await.expect("revived from the state file");
}

#[tokio::test]
async fn garbage_refresh_token_is_terminal() {
    for style in [GarbageRefreshStyle::ErrorString, GarbageRefreshStyle::Code(40140120)] {
        let env = env(Options { garbage_refresh: style, ..Default::default() }).await;
        let d = env.driver_with("o", "not-a-token", "");
        let r = d.init().await;
        let Err(DriveError::AuthLost(msg)) = r else { panic!("{r:?}") };
        assert!(msg.contains("pandav login 115-open"), "{msg}");
    }
}

#[tokio::test]
async fn too_frequent_refresh_backs_off() {
    let env = env(Options::default()).await;
    let d = env.driver();
    d.init().await.unwrap();
    env.emu.configure(|o| o.min_refresh_interval = Duration::from_secs(3600));
    env.emu.expire_access_token(env.tok.grant);
    let r = d.list_id("0").await;
    assert!(matches!(r, Err(DriveError::RateLimited { .. })), "{r:?}");
    let attempts = env.emu.refresh_attempts(env.tok.grant);
    for _ in 0..5 {
        assert!(d.list_id("0").await.is_err());
    }
    assert_eq!(env.emu.refresh_attempts(env.tok.grant), attempts, "no refresh while backing off");
    env.emu.configure(|o| o.min_refresh_interval = Duration::ZERO);
    // Event order, not a guessed sleep: calls keep failing fast without a refresh attempt
    // until the back-off is over; then exactly one refresh, and the call succeeds.
    let t = std::time::Instant::now();
    loop {
        match d.list_id("0").await {
            Ok(_) => break,
            Err(DriveError::RateLimited { .. }) => {
                assert_eq!(env.emu.refresh_attempts(env.tok.grant), attempts, "refresh attempted while backing off");
            }
            Err(e) => panic!("{e:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(30), "the back-off never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(env.emu.refresh_attempts(env.tok.grant), attempts + 1, "one refresh after the back-off");
    assert!(env.emu.is_refresh_token_live(&d.tokens().refresh_token));
}

#[tokio::test]
async fn online_api_refreshes_through_the_broker() {
    let env = env(Options::default()).await;
    let d = env.driver_with("o", &env.tok.refresh_token, "use_online_api = true");
    d.init().await.unwrap();
    assert_eq!(env.emu.request_count("api.oplist.org/115cloud/renewapi"), 1);
    assert_eq!(env.emu.request_count("passportapi.115.com/open/refreshToken"), 1, "the broker relays to 115");
    assert!(env.emu.is_refresh_token_live(&d.tokens().refresh_token));
    d.list_id("0").await.unwrap();
}

#[tokio::test]
async fn two_processes_on_one_state_adopt_instead_of_burning_tokens() {
    let env = env(Options::default()).await;
    let g = env.tok.grant;
    let a = env.driver();
    a.init().await.unwrap();
    let b = env.driver(); // starts from the state a wrote
    assert_eq!(b.tokens().refresh_token, a.tokens().refresh_token);
    // a rotates; b still holds the old pair in memory
    env.emu.expire_access_token(g);
    a.list_id("0").await.unwrap();
    b.list_id("0").await.expect("b adopts a's saved pair");
    assert_eq!(b.tokens().refresh_token, a.tokens().refresh_token);
    // a rotates again and its new access token then expires too: b adopts a dead access
    // token, so it refreshes for real once more (not counted as its one retry)
    env.emu.expire_access_token(g);
    a.list_id("0").await.unwrap();
    env.emu.expire_access_token(g);
    b.list_id("0").await.expect("adopted, then refreshed");
    let info = env.emu.grant_info(g).unwrap();
    assert_eq!(info.refresh_attempts, info.refresh_count, "no refresh token was burned");
    assert_eq!(saved_refresh(&env.state_path("o")), info.refresh_token);
}

/// The kit saves a rotated pair before any request uses it: when the first request with
/// the new access token reaches 115, the state file already holds the refresh token 115
/// issued with it. (A driver that saves after using would leave the old token on disk
/// during that request, and a crash then would lock the user out.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_pair_is_saved_before_its_first_use() {
    let env = env(Options::default()).await;
    env.emu.put_file(env.user, 0, "f", b"x");
    let d = env.driver();
    d.init().await.unwrap();
    let g = env.tok.grant;
    env.emu.expire_access_token(g);
    env.emu.reset_counters();
    // Hold both listing requests at the emulator for a while once they arrived: the one
    // with the expired token, then the retry with the new one.
    env.emu.inject_times("/proapi.115.com/open/ufile/files", emu115open::Fault::Delay(Duration::from_millis(800)), 2);
    let task = {
        let d = Arc::clone(&d);
        tokio::spawn(async move { d.list_id("0").await })
    };
    let t = std::time::Instant::now();
    while env.emu.request_count("proapi.115.com/open/ufile/files") < 2 {
        assert!(t.elapsed() < Duration::from_secs(20), "the retry with the new token never came");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The retry is being held at the emulator right now: the new token is in use.
    let live = env.emu.grant_info(g).unwrap();
    assert_eq!(env.emu.refresh_count(g), 2, "init + the refresh for the expired token");
    assert_eq!(saved_refresh(&env.state_path("o")), live.refresh_token, "in use before it was saved");
    assert_eq!(task.await.unwrap().unwrap().len(), 1);
}
