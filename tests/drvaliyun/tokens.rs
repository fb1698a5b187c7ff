//! The consumer token lifecycle in-process: rotation under load, background refresh,
//! restart from state, dead logins, two processes on one state file.

use std::sync::Arc;
use std::time::Duration;

use emualiyun::{Fault, Options, TokenKind};
use pandav::vfs::{Drive, DriveError};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_requests_across_expiries_make_one_refresh_each() {
    let env = env(Options::default()).await;
    for i in 0..5 {
        env.emu.put_file(env.drive(), "root", &format!("f{i}"), b"x".to_vec());
    }
    let d = env.driver();
    d.init().await.unwrap();
    let uid = env.user.user_id.clone();
    let base = env.emu.refresh_count(&uid);
    for round in 1..=3u64 {
        if round == 2 {
            env.emu.advance(Duration::from_secs(7201)); // the clock, not a forced expiry
        } else {
            env.emu.expire_access_tokens(&uid);
        }
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let d = Arc::clone(&d);
                tokio::spawn(async move {
                    if i % 2 == 0 {
                        d.list_id("root").await.map(|l| l.len())
                    } else {
                        d.quota().await.map(|_| 5)
                    }
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 5, "no request fails across the expiry");
        }
        assert_eq!(env.emu.refresh_count(&uid), base + round, "one refresh per expiry");
        assert_eq!(env.emu.refresh_reuse_count(&uid), 0, "a burnt refresh token was sent");
        assert_eq!(saved_refresh(&env.state_path("a")), d.tokens().refresh_token, "saved before use");
        assert!(env.emu.is_refresh_token_live(&d.tokens().refresh_token));
    }
}

#[tokio::test]
async fn background_refresh_runs_ahead_of_expiry() {
    let env = env(Options { access_token_ttl: Duration::from_secs(10), ..Default::default() }).await;
    let d = env.driver();
    d.init().await.unwrap(); // a config token of unknown age: refreshed at start
    assert_eq!(env.emu.refresh_count(&env.user.user_id), 1);
    let wait = d.refresh().await.unwrap();
    assert!(wait >= Duration::from_secs(7) && wait <= Duration::from_secs(9), "{wait:?}");
    assert_eq!(env.emu.refresh_count(&env.user.user_id), 1, "not due yet: no call");
    tokio::time::sleep(wait + Duration::from_millis(300)).await;
    d.refresh().await.unwrap();
    assert_eq!(env.emu.refresh_count(&env.user.user_id), 2, "refreshed before the token expired");
    assert!(env.emu.is_access_token_live(&d.tokens().access_token));
}

#[tokio::test]
async fn restart_prefers_the_state_and_a_new_config_token_wins() {
    let env = env(Options::default()).await;
    let r0 = env.rt.clone();
    let d = env.driver();
    d.init().await.unwrap();
    let r1 = d.tokens().refresh_token.clone();
    assert_ne!(r0, r1);
    assert!(!env.emu.is_refresh_token_live(&r0), "consumer refresh tokens are single-use");
    drop(d);
    // Restart with the same (now dead) config value: the saved token wins.
    let d2 = env.driver();
    assert_eq!(d2.tokens().refresh_token, r1);
    d2.init().await.unwrap();
    d2.list_id("root").await.unwrap();
    assert_eq!(env.emu.refresh_reuse_count(&env.user.user_id), 0, "the dead config token was never sent");
    // A new token put into the config wins over the old state.
    let fresh = env.emu.issue_refresh_token(&env.user.user_id, TokenKind::Mobile);
    let d3 = env.driver_with("a", &fresh, "");
    assert_eq!(d3.tokens().refresh_token, fresh);
    d3.init().await.unwrap();
    // With no refresh token in the config at all, the state is used.
    let d4 = env.driver_with("a", "", "");
    assert_eq!(d4.tokens().refresh_token, d3.tokens().refresh_token);
    assert_eq!(env.emu.refresh_reuse_count(&env.user.user_id), 0);
}

#[tokio::test]
async fn a_revoked_login_fails_fast_with_a_login_hint_until_a_new_login_is_saved() {
    let env = env(Options::default()).await;
    let d = env.driver();
    d.init().await.unwrap();
    env.emu.revoke_user_tokens(&env.user.user_id);
    let r = d.list_id("root").await;
    let Err(DriveError::AuthLost(msg)) = r else { panic!("{r:?}") };
    assert!(msg.contains("pandav login aliyundrive") && msg.contains("--mount /a"), "{msg}");
    assert!(!msg.contains(&d.tokens().refresh_token) && !msg.contains(&env.rt), "a token in the message");
    let before = env.emu.log().len();
    for _ in 0..20 {
        assert!(matches!(d.list_id("root").await, Err(DriveError::AuthLost(_))));
        assert!(matches!(d.refresh().await, Err(DriveError::AuthLost(_))));
    }
    assert_eq!(env.emu.log().len(), before, "no calls after the login died");
    // `pandav login` saves a new pair into the state file: the mount picks it up.
    let pair = env.emu.issue_consumer_tokens(&env.user.user_id, TokenKind::Mobile);
    let t = pandav::drivers::aliyun::common::auth::Tokens {
        access_token: pair.access_token,
        refresh_token: pair.refresh_token,
        expires_at: pandav::vfs::credentials::now_unix() + 7000,
        issued_at: pandav::vfs::credentials::now_unix(),
        user_id: env.user.user_id.clone(),
        default_drive_id: String::new(),
    };
    let state = pandav::state::StateHandle::at(env.state_path("a"));
    pandav::vfs::credentials::Credentials::restore(&state, &env.rt, Default::default())
        .unwrap()
        .save_login(t)
        .await
        .unwrap();
    d.list_id("root").await.expect("revived from the state file");
}

#[tokio::test]
async fn a_garbage_refresh_token_is_terminal_at_start() {
    let env = env(Options::default()).await;
    let d = env.driver_with("a", "not-a-token", "");
    let r = d.init().await;
    let Err(DriveError::AuthLost(msg)) = r else { panic!("{r:?}") };
    assert!(msg.contains("pandav login aliyundrive") && msg.contains("InvalidParameter.RefreshToken"), "{msg}");
    let d = env.driver_with("b", "", "");
    let Err(DriveError::AuthLost(msg)) = d.init().await else { panic!() };
    assert!(msg.contains("pandav login aliyundrive --config"), "{msg}");
}

#[tokio::test]
async fn two_processes_on_one_state_adopt_instead_of_burning_tokens() {
    let env = env(Options::default()).await;
    let uid = env.user.user_id.clone();
    let a = env.driver();
    a.init().await.unwrap();
    let b = env.driver(); // starts from the state a wrote
    assert_eq!(b.tokens().refresh_token, a.tokens().refresh_token);
    b.init().await.unwrap();
    env.emu.expire_access_tokens(&uid);
    a.list_id("root").await.unwrap();
    b.list_id("root").await.expect("b adopts a's saved pair");
    assert_eq!(b.tokens().refresh_token, a.tokens().refresh_token);
    // a rotates again and its new access token expires too: b adopts a dead access
    // token, so it refreshes for real once more.
    env.emu.expire_access_tokens(&uid);
    a.list_id("root").await.unwrap();
    env.emu.expire_access_tokens(&uid);
    b.list_id("root").await.expect("adopted, then refreshed");
    assert_eq!(env.emu.refresh_reuse_count(&uid), 0, "a refresh token was burned");
    assert_eq!(saved_refresh(&env.state_path("a")), b.tokens().refresh_token);
    assert!(env.emu.is_refresh_token_live(&b.tokens().refresh_token));
}

/// The kit saves a rotated pair before any request uses it: while the first request with
/// the new access token is held at the emulator, the state file already holds the
/// refresh token issued with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_pair_is_saved_before_its_first_use() {
    let env = env(Options::default()).await;
    let d = env.driver();
    d.init().await.unwrap();
    env.emu.expire_access_tokens(&env.user.user_id);
    env.emu.clear_log();
    env.emu.inject("api.alipan.com/adrive/v3/file/list", Fault::delay(Duration::from_millis(800)).times(2));
    let task = {
        let d = Arc::clone(&d);
        tokio::spawn(async move { d.list_id("root").await })
    };
    let t = std::time::Instant::now();
    while env.emu.calls("api.alipan.com/adrive/v3/file/list") < 2 {
        assert!(t.elapsed() < Duration::from_secs(20), "the retry with the new token never came");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let live = env.emu.live_refresh_tokens(&env.user.user_id);
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(saved_refresh(&env.state_path("a")), live[0], "in use before it was saved");
    task.await.unwrap().unwrap();
}
