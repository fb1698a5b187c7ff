//! The token lifecycle in-process: rotation under load, restart from the state file,
//! dead grants, the JWT `sub` guard, every online-API shape against the emulator's
//! brokers, a PKCE app, throttled token endpoints.

use std::sync::Arc;
use std::time::Duration;

use emualiyun::{AppSpec, Fault, Options, Reply, BROKER_CLIENT_ID};
use pandav::vfs::{Drive, DriveError};

use crate::common::*;

#[tokio::test]
async fn many_requests_across_expiries_make_one_refresh_each() {
    let env = env(Options::default()).await;
    let drive = env.drive().to_string();
    for i in 0..5 {
        env.emu.put_file(&drive, "root", &format!("f{i}"), b"x".to_vec());
    }
    let d = env.driver();
    d.init().await.unwrap();
    let uid = env.user.user_id.clone();
    let base = env.emu.refresh_count(&uid);
    assert_eq!(base, 1, "the config token (no access token) was refreshed once at start");
    let root = d.root().await.unwrap();
    for round in 1..=3u64 {
        if round == 2 {
            // the clock jumps past the lifetime instead of a forced expiry
            env.emu.advance(Duration::from_secs(7201));
        } else {
            env.emu.expire_access_tokens(&uid);
        }
        let mut tasks = vec![];
        for i in 0..32 {
            let (d, root) = (Arc::clone(&d), root.clone());
            tasks.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    d.list(&root).await.map(|l| l.len())
                } else {
                    d.quota().await.map(|_| 5)
                }
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 5, "no request fails across the expiry");
        }
        assert_eq!(env.emu.refresh_count(&uid), base + round, "one refresh per expiry");
        assert_eq!(env.emu.refresh_reuse_count(&uid), 0, "no refresh token was ever reused");
        // persisted before use: the state file holds the live refresh token
        assert_eq!(env.live_refresh(), vec![saved_refresh(&env.state_path("o"))]);
        assert!(env.emu.is_refresh_token_live(&d.tokens().refresh_token));
    }
}

#[tokio::test]
async fn background_refresh_runs_ahead_of_expiry() {
    let env = env(Options { access_token_ttl: Duration::from_secs(10), ..Default::default() }).await;
    let d = env.driver();
    let t0 = std::time::Instant::now();
    d.init().await.unwrap();
    let uid = env.user.user_id.clone();
    assert_eq!(env.emu.refresh_count(&uid), 1);
    let wait = d.refresh().await.unwrap();
    // Bounds on what the driver decides; time already spent on a loaded machine counts.
    assert!(wait <= Duration::from_secs(9), "{wait:?}");
    assert!(wait + t0.elapsed() >= Duration::from_secs(6), "{wait:?} after {:?}", t0.elapsed());
    assert_eq!(env.emu.refresh_count(&uid), 1, "not due yet: no call");
    tokio::time::sleep(wait + Duration::from_millis(300)).await;
    let wait2 = d.refresh().await.unwrap();
    assert_eq!(env.emu.refresh_count(&uid), 2, "refreshed before the token expired");
    assert!(wait2 >= Duration::from_secs(6), "{wait2:?}");
    assert!(env.emu.is_access_token_live(&d.tokens().access_token));
}

#[tokio::test]
async fn restart_prefers_the_state_and_a_new_config_token_wins() {
    let env = env(Options::default()).await;
    let uid = env.user.user_id.clone();
    let r0 = env.tok.refresh_token.clone();
    let d = env.driver();
    d.init().await.unwrap();
    let r1 = d.tokens().refresh_token.clone();
    assert_ne!(r0, r1);
    assert!(!env.emu.is_refresh_token_live(&r0));
    drop(d);
    // Restart with the same (now dead) config value: the state wins, and its access
    // token is used as it is.
    let d2 = env.driver();
    assert_eq!(d2.tokens().refresh_token, r1);
    d2.init().await.unwrap();
    assert_eq!(env.emu.refresh_count(&uid), 1, "the saved access token was still good");
    assert_eq!(env.emu.refresh_reuse_count(&uid), 0, "the dead config token was never sent");
    // A new authorization put into the config wins over the old state.
    let fresh = env.emu.open_authorize(&uid, CLIENT_ID);
    let d3 = env.driver_with("o", &fresh.refresh_token, "");
    assert_eq!(d3.tokens().refresh_token, fresh.refresh_token);
    d3.init().await.unwrap();
    assert_eq!(saved_refresh(&env.state_path("o")), d3.tokens().refresh_token);
    // With no refresh token in the config at all, the state is used.
    let d4 = env.driver_from("o", &format!("client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n"));
    assert_eq!(d4.tokens().refresh_token, d3.tokens().refresh_token);
    d4.init().await.unwrap();
    assert_eq!(env.emu.refresh_reuse_count(&uid), 0);
}

#[tokio::test]
async fn a_revoked_grant_fails_fast_with_a_login_hint() {
    let env = env(Options::default()).await;
    let uid = env.user.user_id.clone();
    let d = env.driver();
    d.init().await.unwrap();
    let root = d.root().await.unwrap();
    env.emu.revoke_user_tokens(&uid);
    let r = d.list(&root).await;
    let Err(DriveError::AuthLost(msg)) = r else { panic!("{r:?}") };
    assert!(msg.contains("pandav login aliyundrive-open") && msg.contains("--mount /o"), "{msg}");
    assert!(msg.contains("RefreshToken"), "the provider's code is named: {msg}");
    assert!(!msg.contains(&env.tok.refresh_token) && !msg.contains(&d.tokens().refresh_token));
    let before = env.emu.log().len();
    for _ in 0..20 {
        assert!(matches!(d.list(&root).await, Err(DriveError::AuthLost(_))));
        assert!(matches!(d.refresh().await, Err(DriveError::AuthLost(_))));
        assert!(matches!(d.quota().await, Err(DriveError::AuthLost(_))));
    }
    assert_eq!(env.emu.log().len(), before, "no calls after the grant died");
}

#[tokio::test]
async fn a_new_login_in_the_state_file_revives_a_dead_mount() {
    let env = env(Options::default()).await;
    let uid = env.user.user_id.clone();
    let d = env.driver();
    d.init().await.unwrap();
    let root = d.root().await.unwrap();
    env.emu.revoke_user_tokens(&uid);
    assert!(matches!(d.list(&root).await, Err(DriveError::AuthLost(_))));
    // `pandav login` writes a new pair into the state file: the mount picks it up.
    let fresh = env.emu.open_authorize(&uid, CLIENT_ID);
    let t = pandav::drivers::aliyun::open::login::issued(fresh.access_token, fresh.refresh_token, 7200);
    let state = pandav::state::StateHandle::at(env.state_path("o"));
    pandav::vfs::credentials::Credentials::restore(&state, &env.tok.refresh_token, Default::default())
        .unwrap()
        .save_login(t)
        .await
        .unwrap();
    d.list(&root).await.expect("revived from the state file");
}

/// A PKCE login (official SDK: no refresh token) saved by `pandav login` revives a dead
/// mount too: such a grant is told apart by its access token.
#[tokio::test]
async fn a_login_without_refresh_token_in_the_state_file_revives_a_dead_mount() {
    let env = env(Options::default()).await;
    let uid = env.user.user_id.clone();
    env.emu.put_file(env.drive(), "root", "still-here.txt", b"x".to_vec());
    let d = env.driver();
    d.init().await.unwrap();
    let root = d.root().await.unwrap();
    env.emu.revoke_user_tokens(&uid);
    assert!(matches!(d.list(&root).await, Err(DriveError::AuthLost(_))));
    let fresh = env.emu.open_authorize(&uid, CLIENT_ID);
    let t = pandav::drivers::aliyun::open::login::issued(fresh.access_token, String::new(), 7200);
    let state = pandav::state::StateHandle::at(env.state_path("o"));
    pandav::vfs::credentials::Credentials::restore(&state, &env.tok.refresh_token, Default::default())
        .unwrap()
        .save_login(t)
        .await
        .unwrap();
    let names: Vec<_> =
        d.list(&root).await.expect("revived from the state file").into_iter().map(|e| e.name().to_string()).collect();
    assert_eq!(names, ["still-here.txt"]);
}

#[tokio::test]
async fn a_garbage_refresh_token_is_terminal() {
    let env = env(Options::default()).await;
    let d = env.driver_with("o", "not-a-token", "");
    let r = d.init().await;
    let Err(DriveError::AuthLost(msg)) = r else { panic!("{r:?}") };
    assert!(msg.contains("pandav login aliyundrive-open"), "{msg}");
}

#[tokio::test]
async fn a_wrong_client_secret_is_terminal() {
    let env = env(Options::default()).await;
    let opts = format!(
        "client_id = \"{CLIENT_ID}\"\nclient_secret = \"wrong\"\nrefresh_token = \"{}\"\n",
        env.tok.refresh_token
    );
    let d = env.driver_from("o", &opts);
    let r = d.init().await;
    assert!(matches!(r, Err(DriveError::AuthLost(_))), "{r:?}");
}

/// The JWT `sub` guard (§2.3): a proxy that hands back another account's pair is not
/// believed, and that pair never reaches the state file.
#[tokio::test]
async fn a_token_of_another_account_is_refused_and_not_saved() {
    let env = env(Options::default()).await;
    let bob = env.emu.add_user("bob");
    let mine = env.emu.open_authorize(&env.user.user_id, BROKER_CLIENT_ID);
    let theirs = env.emu.open_authorize(&bob.user_id, BROKER_CLIENT_ID);
    env.emu.inject(
        "api.oplist.org/alicloud/renewapi",
        Fault::reply(Reply::json(&serde_json::json!({
            "refresh_token": theirs.refresh_token, "access_token": theirs.access_token, "text": ""
        })))
        .times(1),
    );
    let d = env.driver_from("o", &format!("use_online_api = true\nrefresh_token = \"{}\"\n", mine.refresh_token));
    let r = d.init().await;
    let Err(DriveError::AuthLost(msg)) = r else { panic!("{r:?}") };
    assert!(msg.contains("another account"), "{msg}");
    let saved = std::fs::read_to_string(env.state_path("o")).unwrap_or_default();
    assert!(!saved.contains(&theirs.refresh_token), "the foreign token was saved");
    assert_eq!(env.emu.calls("openapi.alipan.com/adrive/v1.0/user/getDriveInfo"), 0, "the foreign token was used");
}

/// Each shape of §2.4 against the emulator's broker of that shape.
#[tokio::test]
async fn every_online_api_shape_refreshes_through_its_broker() {
    let env = env(Options::default()).await;
    let uid = env.user.user_id.clone();
    let drive = env.drive().to_string();
    env.emu.put_file(&drive, "root", "hello.txt", b"hi".to_vec());
    for (i, (shape, host_path)) in [
        ("openlist", "api.oplist.org/alicloud/renewapi"),
        ("openlist_tv", "api.oplist.org/alicloud/renewapi"),
        ("alist", "api.nn.ci/alist/ali_open/token"),
        ("messense", "aliyundrive-oauth.messense.me/oauth/access_token"),
    ]
    .into_iter()
    .enumerate()
    {
        let tok = env.emu.open_authorize(&uid, BROKER_CLIENT_ID);
        let name = format!("m{i}");
        let d = env.driver_from(
            &name,
            &format!("use_online_api = true\nonline_api = \"{shape}\"\nrefresh_token = \"{}\"\n", tok.refresh_token),
        );
        let before = env.emu.calls(host_path);
        d.init().await.unwrap_or_else(|e| panic!("{shape}: {e}"));
        assert_eq!(env.emu.calls(host_path) - before, 1, "{shape}: one refresh at the broker");
        let root = d.root().await.unwrap();
        assert_eq!(d.list(&root).await.unwrap().len(), 1, "{shape}");
        assert!(env.emu.is_refresh_token_live(&d.tokens().refresh_token), "{shape}");
        assert!(!env.emu.is_refresh_token_live(&tok.refresh_token), "{shape}: rotated");
        assert_eq!(saved_refresh(&env.state_path(&name)), d.tokens().refresh_token, "{shape}: saved");
        if shape == "openlist_tv" {
            let last = env.emu.log().into_iter().rev().find(|r| r.key() == host_path).unwrap();
            assert_eq!(last.query_param("driver_txt").as_deref(), Some("alicloud_tv"));
        }
        // and again after an expiry
        env.emu.expire_access_tokens(&uid);
        assert_eq!(d.list(&root).await.unwrap().len(), 1, "{shape}");
        assert_eq!(env.emu.calls(host_path) - before, 2, "{shape}");
    }
    // tickstep: a ticket, access tokens only.
    let ticket = env.emu.tickstep_ticket(&uid);
    let d = env.driver_from(
        "tick",
        &format!("use_online_api = true\nonline_api = \"tickstep\"\nticket_id = \"{ticket}\"\nuser_id = \"{uid}\"\n"),
    );
    d.init().await.expect("tickstep");
    let root = d.root().await.unwrap();
    assert_eq!(d.list(&root).await.unwrap().len(), 1);
    let tick = env.emu.log().into_iter().filter(|r| r.host == "api.tickstep.com").collect::<Vec<_>>();
    assert_eq!(tick.len(), 1);
    assert_eq!(tick[0].query_param("userId").as_deref(), Some(uid.as_str()));
    env.emu.expire_access_tokens(&uid);
    assert_eq!(d.list(&root).await.unwrap().len(), 1);
    let tick = env.emu.log().into_iter().filter(|r| r.host == "api.tickstep.com").collect::<Vec<_>>();
    assert_eq!(tick.len(), 2);
    assert!(tick[1].header("old-token").is_some(), "the old access token goes along");
    assert_eq!(env.emu.refresh_reuse_count(&uid), 0);
}

/// A PKCE app (no secret) sends its client id alone; the emulator (and the official
/// Android SDK) do not renew such a grant: the mount asks for a new login.
#[tokio::test]
async fn a_pkce_app_without_a_secret_asks_for_a_new_login() {
    let env = env_with_app(Options::default(), AppSpec::new(CLIENT_ID, "")).await;
    let opts = format!("client_id = \"{CLIENT_ID}\"\nrefresh_token = \"{}\"\n", env.tok.refresh_token);
    let d = env.driver_from("o", &opts);
    let r = d.init().await;
    let Err(DriveError::AuthLost(msg)) = r else { panic!("{r:?}") };
    assert!(msg.contains("pandav login aliyundrive-open"), "{msg}");
    assert_eq!(env.emu.calls("openapi.alipan.com/oauth/access_token"), 1, "asked once, then latched");
    let r = env.emu.log().into_iter().find(|r| r.path == "/oauth/access_token").unwrap();
    assert_eq!(r.status, 400);
}

/// A throttled token endpoint: waited out when it says how long, else the kit's
/// cool-down (no burnt token either way).
#[tokio::test]
async fn a_throttled_token_endpoint_is_waited_out() {
    let env = env(Options::default()).await;
    let uid = env.user.user_id.clone();
    env.emu.inject(
        "openapi.alipan.com/oauth/access_token",
        Fault::reply(
            Reply::json_status(429, &serde_json::json!({"code": "TooManyRequests", "message": "Too Many Requests"}))
                .header("x-retry-after", "300"),
        )
        .times(1),
    );
    let d = env.driver();
    d.init().await.expect("waited 300 ms and refreshed");
    let tries = env.emu.log().into_iter().filter(|r| r.path == "/oauth/access_token").count();
    assert_eq!(tries, 2);
    assert_eq!(env.emu.refresh_reuse_count(&uid), 0);
}

#[tokio::test]
async fn two_drivers_on_one_state_adopt_instead_of_burning_tokens() {
    let env = env(Options::default()).await;
    let uid = env.user.user_id.clone();
    let a = env.driver();
    a.init().await.unwrap();
    let b = env.driver(); // starts from the state a wrote
    assert_eq!(b.tokens().refresh_token, a.tokens().refresh_token);
    b.init().await.unwrap();
    let root = a.root().await.unwrap();
    // a rotates; b still holds the old pair in memory
    env.emu.expire_access_tokens(&uid);
    a.list(&root).await.unwrap();
    b.list(&root).await.expect("b adopts a's saved pair");
    assert_eq!(b.tokens().refresh_token, a.tokens().refresh_token);
    // a rotates again and its new access token then expires too: b adopts a dead access
    // token, so it refreshes for real once more
    env.emu.expire_access_tokens(&uid);
    a.list(&root).await.unwrap();
    env.emu.expire_access_tokens(&uid);
    b.list(&root).await.expect("adopted, then refreshed");
    assert_eq!(env.emu.refresh_reuse_count(&uid), 0, "no refresh token was burned");
    assert_eq!(env.live_refresh(), vec![saved_refresh(&env.state_path("o"))]);
}

/// The kit saves a rotated pair before any request uses it: when the first request with
/// the new access token reaches the API, the state file already holds its refresh token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_pair_is_saved_before_its_first_use() {
    let env = env(Options::default()).await;
    let uid = env.user.user_id.clone();
    let d = env.driver();
    d.init().await.unwrap();
    let root = d.root().await.unwrap();
    env.emu.expire_access_tokens(&uid);
    env.emu.clear_log();
    // Hold both listing requests a while once they arrived: the one with the expired
    // token, then the retry with the new one.
    env.emu.inject("openapi.alipan.com/adrive/v1.0/openFile/list", Fault::delay(Duration::from_millis(800)).times(2));
    let task = {
        let (d, root) = (Arc::clone(&d), root.clone());
        tokio::spawn(async move { d.list(&root).await })
    };
    let t = std::time::Instant::now();
    while env.emu.calls("openapi.alipan.com/adrive/v1.0/openFile/list") < 2 {
        assert!(t.elapsed() < Duration::from_secs(20), "the retry with the new token never came");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The retry is being held at the emulator right now: the new token is in use.
    assert_eq!(env.emu.refresh_count(&uid), 2, "init + the refresh for the expired token");
    assert_eq!(env.live_refresh(), vec![saved_refresh(&env.state_path("o"))], "in use before it was saved");
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn drives_are_chosen_by_the_option() {
    let app = AppSpec { grant_resource: true, grant_backup: true, ..AppSpec::new(CLIENT_ID, CLIENT_SECRET) };
    let env = env_with_app(Options::default(), app).await;
    let u = env.user.clone();
    env.emu.put_file(&u.resource_drive_id, "root", "in-resource", b"r".to_vec());
    env.emu.put_file(&u.backup_drive_id, "root", "in-backup", b"b".to_vec());
    env.emu.put_file(&u.default_drive_id, "root", "in-default", b"d".to_vec());
    for (i, (drive, want)) in
        [("", "in-resource"), ("resource", "in-resource"), ("backup", "in-backup"), ("default", "in-default")]
            .into_iter()
            .enumerate()
    {
        let tok = env.emu.open_authorize(&u.user_id, CLIENT_ID);
        let extra = if drive.is_empty() { String::new() } else { format!("drive = \"{drive}\"") };
        let d = env.driver_with(&format!("d{i}"), &tok.refresh_token, &extra);
        d.init().await.unwrap();
        let names: Vec<String> =
            d.list(&d.root().await.unwrap()).await.unwrap().into_iter().map(|e| e.name().to_string()).collect();
        assert_eq!(names, vec![want.to_string()], "drive {drive:?}");
    }
    // A drive the app was not granted is an error naming it, not another drive.
    let env = env_with_app(
        Options::default(),
        AppSpec { grant_resource: false, grant_backup: false, ..AppSpec::new(CLIENT_ID, CLIENT_SECRET) },
    )
    .await;
    let d = env.driver_with("x", &env.tok.refresh_token.clone(), "drive = \"backup\"");
    let r = d.init().await;
    assert!(matches!(&r, Err(DriveError::Forbidden(m)) if m.contains("backup")), "{r:?}");
    // Not chosen and no resource drive: the default one.
    let tok = env.emu.open_authorize(&env.user.user_id, CLIENT_ID);
    env.emu.put_file(&env.user.default_drive_id, "root", "in-default", b"d".to_vec());
    let d = env.driver_with("y", &tok.refresh_token, "");
    d.init().await.unwrap();
    let names: Vec<String> =
        d.list(&d.root().await.unwrap()).await.unwrap().into_iter().map(|e| e.name().to_string()).collect();
    assert_eq!(names, vec!["in-default".to_string()]);
}
