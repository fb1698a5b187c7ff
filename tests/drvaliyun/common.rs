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
use pandav::vfs::spool::Spool;
use pandav::vfs::{Entry, Mount, MountOptions, Policy, Upload};

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

/// Spool `bytes` like a WebDAV PUT would.
pub async fn spooled(dir: &std::path::Path, bytes: &[u8]) -> (Upload, tempfile::TempPath) {
    let mut s = Spool::create(dir).await.unwrap();
    s.write(bytes).await.unwrap();
    let sp = s.finish(None).await.unwrap();
    (sp.upload, sp.guard)
}

pub async fn put(m: &Arc<Mount>, dir: &std::path::Path, rel: &str, bytes: &[u8]) -> Entry {
    let (up, guard) = spooled(dir, bytes).await;
    let e = m.put(rel, up).await.unwrap_or_else(|e| panic!("put {rel}: {e}"));
    drop(guard);
    e
}

pub async fn read_all(m: &Arc<Mount>, rel: &str, start: u64, end: Option<u64>) -> Vec<u8> {
    use futures_util::StreamExt;
    let e = m.resolve(rel).await.unwrap();
    let mut s = pandav::vfs::transfer::open(m, &e, pandav::vfs::ReadRange { start, end }).await.unwrap();
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; n];
    r.fill_bytes(&mut v);
    v
}

pub fn saved_refresh(path: &std::path::Path) -> String {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["data"]["refresh_token"].as_str().unwrap().to_string()
}

pub fn kind_mobile() -> TokenKind {
    TokenKind::Mobile
}
