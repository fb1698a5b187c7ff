//! Shared set-up: an emulator with one user and an authorized app, and drivers / mounts
//! on it. Also used by the conformance fixture (tests/conformance/aliyun_open.rs).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use emualiyun::{AppSpec, EmuAliyun, Options, TokenPair, UserInfo};
use pandav::drivers::aliyun::open::{AliyunOpen, Options as DriverOptions};
use pandav::drivers::http::RetryPolicy;
use pandav::drivers::DriverCtx;
use pandav::state::StateHandle;
use pandav::vfs::{Mount, MountOptions, Policy};

pub const CLIENT_ID: &str = "pandavtestapp0001";
pub const CLIENT_SECRET: &str = "pandav-test-secret";

pub struct Env {
    pub emu: EmuAliyun,
    pub user: UserInfo,
    pub tok: TokenPair,
    pub dir: tempfile::TempDir,
}

pub async fn env(opts: Options) -> Env {
    env_with_app(opts, AppSpec::new(CLIENT_ID, CLIENT_SECRET)).await
}

pub async fn env_with_app(opts: Options, app: AppSpec) -> Env {
    let emu = EmuAliyun::start_temp(opts).await;
    emu.register_app(app);
    let user = emu.add_user("alice");
    let tok = emu.open_authorize(&user.user_id, CLIENT_ID);
    Env { emu, user, tok, dir: tempfile::tempdir().unwrap() }
}

/// The `endpoints` table as TOML lines.
pub fn endpoints_toml(emu: &EmuAliyun) -> String {
    let mut s = String::from("[endpoints]\n");
    for (h, b) in emu.endpoints() {
        s.push_str(&format!("\"{h}\" = \"{b}\"\n"));
    }
    s
}

/// Retries kept short: a test that injects faults should not sit out real back-offs.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base: Duration::from_millis(50),
        max: Duration::from_secs(5),
        throttle_attempts: 5,
        throttle_base: Duration::from_millis(100),
        cooldown: Duration::ZERO,
        pause_wait: Duration::from_secs(5),
        throttled_retry_after: Duration::from_secs(5),
    }
}

impl Env {
    pub fn state_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("mount-{name}.json"))
    }

    /// The resource drive (the driver's default).
    pub fn drive(&self) -> &str {
        &self.user.resource_drive_id
    }

    /// Option lines of a mount on this app with `refresh_token`.
    pub fn app_options(&self, refresh_token: &str) -> String {
        format!(
            "client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nrefresh_token = \"{refresh_token}\"\n"
        )
    }

    /// A driver from option lines (plus the endpoints), its state in the temp dir.
    pub fn driver_from(&self, name: &str, options: &str) -> Arc<AliyunOpen> {
        let text = format!("{options}\n{}", endpoints_toml(&self.emu));
        let table: toml::Table = toml::from_str(&text).unwrap();
        let opts: DriverOptions = pandav::drivers::parse_options(table).unwrap();
        let ctx = DriverCtx {
            mount_path: format!("/{name}"),
            state: StateHandle::at(self.state_path(name)),
            base_dir: self.dir.path().to_path_buf(),
            source: None,
        };
        let mut d = AliyunOpen::new(opts, &ctx).unwrap();
        d.set_retry(fast_retry());
        Arc::new(d)
    }

    /// A driver on the app with `refresh_token` and extra option lines.
    pub fn driver_with(&self, name: &str, refresh_token: &str, extra: &str) -> Arc<AliyunOpen> {
        self.driver_from(name, &format!("{}{extra}\n", self.app_options(refresh_token)))
    }

    pub fn driver(&self) -> Arc<AliyunOpen> {
        self.driver_with("o", &self.tok.refresh_token.clone(), "")
    }

    pub fn mount(&self, d: Arc<AliyunOpen>) -> Arc<Mount> {
        self.mount_ttl(d, Duration::ZERO)
    }

    pub fn mount_ttl(&self, d: Arc<AliyunOpen>, ttl: Duration) -> Arc<Mount> {
        let opts = MountOptions {
            path: "/o".into(),
            policy: Policy::Redirect,
            proxy_url: None,
            read_only: false,
            cache_ttl: ttl,
            spool_dir: self.dir.path().join("spool"),
        };
        Arc::new(Mount::new(opts, d))
    }

    /// The live refresh token the emulator holds for our user (exactly one expected).
    pub fn live_refresh(&self) -> Vec<String> {
        self.emu.live_refresh_tokens(&self.user.user_id)
    }
}

#[allow(unused_imports)] // not every crate that includes this file uses all of them
pub use crate::fixture::driver::{put, random_bytes, read_all, saved_refresh, spooled};
