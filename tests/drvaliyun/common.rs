//! Shared set-up: an emulator with one user, drivers and mounts on it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use emualiyun::{EmuAliyun, Options, TokenKind, UserInfo};
use pandav::drivers::aliyun::consumer::{AliyunDrive, Options as DriverOptions};
use pandav::drivers::http::RetryPolicy;
use pandav::drivers::DriverCtx;
use pandav::state::StateHandle;
use pandav::vfs::{Mount, MountOptions, Policy};

pub struct Env {
    pub emu: EmuAliyun,
    pub user: UserInfo,
    /// A mobile-kind refresh token of the user.
    pub rt: String,
    pub dir: tempfile::TempDir,
}

pub async fn env(opts: Options) -> Env {
    let emu = EmuAliyun::start_temp(opts).await;
    let user = emu.add_user("alice");
    let rt = emu.issue_refresh_token(&user.user_id, TokenKind::Mobile);
    Env { emu, user, rt, dir: tempfile::tempdir().unwrap() }
}

/// The `endpoints` table as TOML lines (`[endpoints]` or a dotted table name).
pub fn endpoints_toml(emu: &EmuAliyun, table: &str) -> String {
    let mut s = format!("[{table}]\n");
    for (h, b) in emu.endpoints() {
        s.push_str(&format!("\"{h}\" = \"{b}\"\n"));
    }
    s
}

/// Short waits: a fault-free emulator needs no retries; injected faults should not make
/// tests sit out production back-offs.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base: Duration::from_millis(50),
        max: Duration::from_secs(2),
        throttle_attempts: 5,
        throttle_base: Duration::from_millis(100),
        cooldown: Duration::from_secs(2),
        pause_wait: Duration::from_secs(5),
        throttled_retry_after: Duration::from_secs(2),
    }
}

impl Env {
    pub fn state_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("mount-{name}.json"))
    }

    /// A driver on `refresh_token` (plus extra option lines), its state in the temp dir.
    pub fn driver_with(&self, name: &str, refresh_token: &str, extra: &str) -> Arc<AliyunDrive> {
        let text = format!(
            "refresh_token = \"{refresh_token}\"\nrate_limit = 0\n{extra}\n{}",
            endpoints_toml(&self.emu, "endpoints")
        );
        let table: toml::Table = toml::from_str(&text).unwrap();
        let opts: DriverOptions = pandav::drivers::parse_options(table).unwrap();
        let ctx = DriverCtx {
            mount_path: format!("/{name}"),
            state: StateHandle::at(self.state_path(name)),
            base_dir: self.dir.path().to_path_buf(),
            source: None,
        };
        let mut d = AliyunDrive::new(opts, &ctx).unwrap();
        d.set_retry(fast_retry());
        Arc::new(d)
    }

    pub fn driver(&self) -> Arc<AliyunDrive> {
        self.driver_with("a", &self.rt.clone(), "")
    }

    pub fn mount(&self, d: Arc<AliyunDrive>) -> Arc<Mount> {
        let opts = MountOptions {
            path: "/a".into(),
            policy: Policy::Redirect,
            proxy_url: None,
            read_only: false,
            cache_ttl: Duration::ZERO,
            spool_dir: self.dir.path().join("spool"),
        };
        Arc::new(Mount::new(opts, d))
    }

    /// The drive a default mount serves.
    pub fn drive(&self) -> &str {
        &self.user.resource_drive_id
    }
}

#[allow(unused_imports)] // not every module uses each helper
pub use crate::fixture::driver::{put, random_bytes, read_all, saved_refresh, spooled};

pub fn kind_mobile() -> TokenKind {
    TokenKind::Mobile
}
