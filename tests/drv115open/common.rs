//! Shared set-up: an emulator with one user and grant, and drivers / mounts on it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use emu115open::{Emu115Open, Options, Tokens, DEFAULT_APP_ID};
use pandav::drivers::p115::open::{client::Backoff, Open115, Options as DriverOptions};
use pandav::drivers::DriverCtx;
use pandav::state::StateHandle;
use pandav::vfs::{Mount, MountOptions, Policy};

pub struct Env {
    pub emu: Emu115Open,
    pub user: u64,
    pub tok: Tokens,
    pub dir: tempfile::TempDir,
}

pub async fn env(opts: Options) -> Env {
    let emu = Emu115Open::start(opts).await;
    let user = emu.add_user_named("alice");
    let tok = emu.authorize(user, DEFAULT_APP_ID);
    Env { emu, user, tok, dir: tempfile::tempdir().unwrap() }
}

/// The `endpoints` table as TOML lines.
pub fn endpoints_toml(emu: &Emu115Open) -> String {
    let mut s = String::from("[endpoints]\n");
    for (h, b) in emu.endpoint_table() {
        s.push_str(&format!("\"{h}\" = \"{b}\"\n"));
    }
    s
}

pub fn fast_backoff() -> Backoff {
    Backoff {
        throttle_first: Duration::from_millis(200),
        throttle_tries: 3,
        too_frequent_first: Duration::from_millis(1500),
        too_frequent_max: Duration::from_secs(5),
    }
}

impl Env {
    pub fn state_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("mount-{name}.json"))
    }

    /// A driver on `refresh_token` (plus extra option lines), its state in the temp dir.
    pub fn driver_with(&self, name: &str, refresh_token: &str, extra: &str) -> Arc<Open115> {
        let text = format!(
            "refresh_token = \"{refresh_token}\"\nrate_limit = 0\npart_size = 102400\n{extra}\n{}",
            endpoints_toml(&self.emu)
        );
        let table: toml::Table = toml::from_str(&text).unwrap();
        let opts: DriverOptions = pandav::drivers::parse_options(table).unwrap();
        let ctx = DriverCtx {
            mount_path: format!("/{name}"),
            state: StateHandle::at(self.state_path(name)),
            base_dir: self.dir.path().to_path_buf(),
            source: None,
        };
        let mut d = Open115::new(opts, &ctx).unwrap();
        d.set_backoff(fast_backoff());
        Arc::new(d)
    }

    pub fn driver(&self) -> Arc<Open115> {
        self.driver_with("o", &self.tok.refresh_token.clone(), "")
    }

    pub fn mount(&self, d: Arc<Open115>) -> Arc<Mount> {
        let opts = MountOptions {
            path: "/o".into(),
            policy: Policy::Redirect,
            proxy_url: None,
            read_only: false,
            cache_ttl: Duration::ZERO,
            spool_dir: self.dir.path().join("spool"),
        };
        Arc::new(Mount::new(opts, d))
    }
}

#[allow(unused_imports)] // not every crate that includes this file uses all of them
pub use crate::fixture::driver::{put, random_bytes, read_all, spooled};

pub fn sha1_upper(b: &[u8]) -> String {
    use sha1::Digest;
    hex::encode_upper(sha1::Sha1::digest(b))
}

pub const APP: &str = DEFAULT_APP_ID;
