//! The share driver in-process: the share token and its renewal, dead shares, rate
//! limits, download links with the viewer's login.

use std::sync::Arc;
use std::time::Duration;

use emualiyun::{AliFault, Fault, Options, ShareState, TokenKind, UserInfo};
use pandav::drivers::aliyun::share::ShareDrive;
use pandav::drivers::DriverCtx;
use pandav::state::StateHandle;
use pandav::vfs::{Drive, DriveError, LinkRequest};

use crate::common::*;

struct Share {
    env: Env,
    sharer: UserInfo,
    share: String,
    folder: String,
    data: Vec<u8>,
}

async fn shared(opts: Options) -> Share {
    let env = env(opts).await; // alice is the viewer
    let sharer = env.emu.add_user("bob");
    let drive = sharer.resource_drive_id.clone();
    let folder = env.emu.mkdir(&drive, "root", "films");
    let data = random_bytes(500_000, 21);
    env.emu.put_file(&drive, &folder, "a.mkv", data.clone());
    env.emu.put_file(&drive, &folder, "b.txt", b"bee".to_vec());
    let share = env.emu.create_share(&sharer.user_id, &drive, &[&folder], "ab12");
    Share { env, sharer, share, folder, data }
}

impl Share {
    fn driver(&self, name: &str, pwd: &str, extra: &str) -> Arc<ShareDrive> {
        let text = format!(
            "share_id = \"https://www.alipan.com/s/{}\"\nshare_pwd = \"{pwd}\"\nrefresh_token = \"{}\"\nrate_limit = 0\n{extra}\n{}",
            self.share,
            self.env.rt,
            endpoints_toml(&self.env.emu, "endpoints")
        );
        let opts = pandav::drivers::parse_options(toml::from_str::<toml::Table>(&text).unwrap()).unwrap();
        let ctx = DriverCtx {
            mount_path: format!("/{name}"),
            state: StateHandle::at(self.env.state_path(name)),
            base_dir: self.env.dir.path().to_path_buf(),
            source: None,
        };
        let mut d = ShareDrive::new(opts, &ctx).unwrap();
        d.set_retry(fast_retry());
        Arc::new(d)
    }
}

fn names(l: &[pandav::vfs::Entry]) -> Vec<String> {
    let mut v: Vec<String> = l.iter().map(|e| e.name().to_string()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn lists_and_reads_a_share_with_the_viewers_login() {
    let s = shared(Options::default()).await;
    let d = s.driver("s", "ab12", "");
    d.init().await.unwrap();
    let top = d.list_id("root").await.unwrap();
    assert_eq!(names(&top), vec!["films".to_string()]);
    let files = d.list_id(&s.folder).await.unwrap();
    assert_eq!(names(&files), vec!["a.mkv".to_string(), "b.txt".to_string()]);
    let a = files.iter().find(|e| e.name() == "a.mkv").unwrap();
    s.env.emu.clear_log();
    let link = d.link(a, &LinkRequest::default()).await.unwrap();
    let req = s.env.emu.log().into_iter().find(|r| r.path == "/v2/file/get_share_link_download_url").unwrap();
    assert!(req.header("authorization").is_some_and(|h| h.starts_with("Bearer ")), "the viewer's token");
    assert!(req.header("x-share-token").is_some() && req.header("x-signature").is_some());
    assert!(req.header("x-canary").is_some_and(|c| c.contains("app=share")));
    // Share links are Referer-bound here: pandav proxies them with the header.
    let mut get = reqwest::Client::new().get(&link.url);
    for (k, v) in &link.headers {
        get = get.header(k.as_str(), v.as_str());
    }
    assert_eq!(get.send().await.unwrap().bytes().await.unwrap().as_ref(), &s.data[..]);
    // Through a mount (proxy): ranges of the shared file.
    let m = {
        let opts = pandav::vfs::MountOptions {
            path: "/s".into(),
            policy: pandav::vfs::Policy::Proxy,
            proxy_url: None,
            read_only: false,
            cache_ttl: Duration::from_secs(60),
            spool_dir: s.env.dir.path().join("spool"),
        };
        Arc::new(pandav::vfs::Mount::new(opts, d.clone()))
    };
    assert_eq!(read_all(&m, "films/a.mkv", 1000, Some(9000)).await, &s.data[1000..9000]);
    assert!(matches!(m.mkdir("films/x").await, Err(DriveError::ReadOnly)));
}

#[tokio::test]
async fn the_share_token_is_renewed_past_its_7200_s_and_when_refused() {
    let s = shared(Options::default()).await;
    let d = s.driver("s", "ab12", "");
    d.init().await.unwrap();
    assert_eq!(d.list_id(&s.folder).await.unwrap().len(), 2);
    let first = s.env.emu.calls("api.alipan.com/v2/share_link/get_share_token");
    s.env.emu.advance(Duration::from_secs(7300));
    assert_eq!(d.list_id(&s.folder).await.unwrap().len(), 2, "listing past the token's 7200 s");
    assert_eq!(s.env.emu.calls("api.alipan.com/v2/share_link/get_share_token"), first + 1);
    // And a link with both tokens expired (the viewer's access token lives 7200 s too).
    let a = d.list_id(&s.folder).await.unwrap().into_iter().find(|e| e.name() == "b.txt").unwrap();
    d.link(&a, &LinkRequest::default()).await.unwrap();
    s.env.emu.inject("*/adrive/v3/file/list", Fault::custom(AliFault::ShareTokenInvalid).times(1));
    assert_eq!(d.list_id(&s.folder).await.unwrap().len(), 2);
    assert_eq!(s.env.emu.calls("api.alipan.com/v2/share_link/get_share_token"), first + 2);
    assert_eq!(s.env.emu.refresh_reuse_count(&s.env.user.user_id), 0);
}

#[tokio::test]
async fn the_background_task_renews_the_share_token_before_it_expires() {
    let s = shared(Options { share_token_ttl: Duration::from_secs(5), ..Default::default() }).await;
    let t0 = std::time::Instant::now();
    let d = s.driver("s", "ab12", "");
    d.init().await.unwrap();
    let wait = d.refresh().await.unwrap();
    // Bounds on what the driver decides; time already spent on a loaded machine counts.
    assert!(wait <= Duration::from_secs(5), "{wait:?}");
    assert!(wait + t0.elapsed() >= Duration::from_secs(3), "{wait:?} after {:?}", t0.elapsed());
    assert_eq!(d.share_tokens_obtained(), 1);
    tokio::time::sleep(wait + Duration::from_millis(100)).await;
    d.refresh().await.unwrap();
    assert_eq!(d.share_tokens_obtained(), 2, "renewed ahead of expiry");
    s.env.emu.clear_log();
    d.list_id(&s.folder).await.unwrap();
    assert!(s.env.emu.log().iter().all(|r| r.status == 200), "the renewed token was valid");
}

#[tokio::test]
async fn wrong_codes_and_dead_shares_make_the_mount_unhealthy_with_the_reason() {
    let s = shared(Options::default()).await;
    for pwd in ["", "zz99"] {
        let d = s.driver(&format!("bad{}", pwd.len()), pwd, "");
        let m = pandav::vfs::Mount::new(
            pandav::vfs::MountOptions {
                path: "/bad".into(),
                policy: pandav::vfs::Policy::Redirect,
                proxy_url: None,
                read_only: false,
                cache_ttl: Duration::ZERO,
                spool_dir: s.env.dir.path().join("spool"),
            },
            d.clone(),
        );
        assert!(matches!(m.init().await, Err(DriveError::AuthLost(_))));
        let h = m.health();
        assert!(
            !h.ok && h.message.contains("extraction code") && h.message.contains("InvalidResource.SharePwd"),
            "{h:?}"
        );
        let before = s.env.emu.log().len();
        assert!(matches!(m.list("").await, Err(DriveError::AuthLost(_))));
        assert!(matches!(d.refresh().await, Err(DriveError::AuthLost(_))));
        assert_eq!(s.env.emu.log().len(), before, "a dead share is not asked again");
    }
    for (state, word) in
        [(Some(ShareState::Cancelled), "cancelled"), (Some(ShareState::Forbidden), "blocked"), (None, "expired")]
    {
        let s = shared(Options::default()).await;
        let d = s.driver("s", "ab12", "");
        d.init().await.unwrap();
        d.list_id(&s.folder).await.unwrap();
        match state {
            Some(st) => s.env.emu.set_share_state(&s.share, st),
            None => s.env.emu.set_share_expiration(&s.share, Some(s.env.emu.now_ms() - 1)),
        }
        let r = d.list_id(&s.folder).await;
        let Err(DriveError::AuthLost(msg)) = r else { panic!("{word}: {r:?}") };
        assert!(msg.contains(word), "{msg}");
    }
}

#[tokio::test]
async fn share_rate_limits_are_backed_off_not_passed_on() {
    let s = shared(Options::default()).await;
    let d = s.driver("s", "ab12", "");
    d.init().await.unwrap();
    s.env.emu.clear_log();
    s.env.emu.inject("*/adrive/v3/file/list", Fault::custom(AliFault::ParamFlow).times(2));
    assert_eq!(d.list_id(&s.folder).await.unwrap().len(), 2);
    assert_eq!(s.env.emu.calls("api.alipan.com/adrive/v3/file/list"), 3);
    // Every share call says it is the share web app (ref §8.5).
    assert!(s.env.emu.log().iter().all(|r| r.header("x-canary").is_some_and(|c| c.contains("app=share"))));
    // With the emulator's strict canary check on, calls still pass.
    s.env.emu.configure(|o| o.share_requires_canary = true);
    assert_eq!(d.list_id(&s.folder).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_share_mount_needs_and_keeps_the_viewers_login() {
    let s = shared(Options::default()).await;
    // No login at all: unhealthy with the login hint.
    let text = format!("share_id = \"{}\"\nshare_pwd = \"ab12\"\n{}", s.share, endpoints_toml(&s.env.emu, "endpoints"));
    let opts = pandav::drivers::parse_options(toml::from_str::<toml::Table>(&text).unwrap()).unwrap();
    let ctx = DriverCtx {
        mount_path: "/nologin".into(),
        state: StateHandle::at(s.env.state_path("nologin")),
        base_dir: s.env.dir.path().to_path_buf(),
        source: None,
    };
    let d = ShareDrive::new(opts, &ctx).unwrap();
    let Err(DriveError::AuthLost(msg)) = d.init().await else { panic!() };
    assert!(msg.contains("pandav login aliyundrive") && msg.contains("--mount /nologin"), "{msg}");
    // A viewer login that dies.
    let d = s.driver("s", "ab12", "");
    d.init().await.unwrap();
    assert!(s.env.emu.is_refresh_token_live(&d.tokens().refresh_token), "the viewer's token rotated and was kept");
    s.env.emu.revoke_user_tokens(&s.env.user.user_id);
    let a = d.list_id(&s.folder).await.unwrap().into_iter().next().unwrap();
    let r = d.link(&a, &LinkRequest::default()).await;
    assert!(matches!(r, Err(DriveError::AuthLost(ref m)) if m.contains("pandav login aliyundrive")), "{r:?}");
    let _ = s.sharer.user_id.len();
    let _ = TokenKind::Mobile;
}
