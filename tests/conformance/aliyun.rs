//! The `aliyundrive` driver in the conformance suite, against the emualiyun emulator
//! (written from the reference, not from the driver). Every mount is a fresh emulated
//! user with a fresh mobile-kind refresh token; `spec.seed` is created in the emulator's
//! store behind the driver's back. Changes "from outside" go through the emulator's
//! store (writes) and through the consumer API as another device (deletes).
//!
//! The share fixture (read-only profile) seeds a folder of a sharer's drive, shares it
//! with an extraction code, and mounts it as another logged-in account.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use emualiyun::{EmuAliyun, Options, TokenKind};
use pandav::drivers::aliyun::consumer::AliyunDrive;
use pandav::drivers::aliyun::share::ShareDrive;
use pandav::drivers::http::RetryPolicy;
use pandav::drivers::DriverCtx;
use pandav::state::StateHandle;

use crate::aliyun_outside::OtherDevice;
use crate::suite::*;

pub fn parent_and_name(p: &str) -> (String, &str) {
    match p.rfind('/') {
        Some(i) => (format!("/{}", &p[..i]), &p[i + 1..]),
        None => ("/".to_string(), p),
    }
}

pub fn lookup(emu: &EmuAliyun, drive: &str, path: &str) -> anyhow::Result<String> {
    emu.lookup(drive, path).ok_or_else(|| anyhow::anyhow!("{path} missing in the emulator"))
}

/// Create `seed` in `drive` below folder `base` (`/` or a path).
pub fn seed_emu(emu: &EmuAliyun, drive: &str, base: &str, seed: &[Seed]) -> anyhow::Result<()> {
    let base = base.trim_end_matches('/');
    for s in seed {
        let p = match s {
            Seed::Dir(p) | Seed::File(p, _) => p,
        };
        let (parent, name) = parent_and_name(p);
        let parent = format!("{base}{}", if parent == "/" { String::new() } else { parent });
        let pid = if parent.is_empty() { "root".to_string() } else { lookup(emu, drive, &parent)? };
        match s {
            Seed::Dir(_) => {
                emu.mkdir(drive, &pid, name);
            }
            Seed::File(_, data) => {
                emu.put_file(drive, &pid, name, data.clone());
            }
        }
    }
    Ok(())
}

pub fn endpoints(emu: &EmuAliyun) -> toml::Table {
    emu.endpoints().into_iter().map(|(h, b)| (h, toml::Value::String(b))).collect()
}

/// Retries kept short: a fault-free emulator should never need them.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        base: Duration::from_millis(50),
        max: Duration::from_secs(1),
        throttle_attempts: 3,
        throttle_base: Duration::from_millis(100),
        cooldown: Duration::from_secs(1),
        pause_wait: Duration::from_secs(2),
        throttled_retry_after: Duration::from_secs(1),
    }
}

pub struct AliyunFixture {
    emu: Arc<EmuAliyun>,
    ttl: Duration,
    next: AtomicU64,
}

impl AliyunFixture {
    pub async fn new(ttl: Duration) -> AliyunFixture {
        AliyunFixture { emu: Arc::new(EmuAliyun::start_temp(Options::default()).await), ttl, next: AtomicU64::new(1) }
    }
}

#[async_trait]
impl Fixture for AliyunFixture {
    fn name(&self) -> String {
        format!("aliyundrive(ttl={:?})", self.ttl)
    }

    fn profile(&self) -> Profile {
        Profile { writable: true, mtime_precision: Duration::from_secs(1) }
    }

    async fn mount(&self, spec: &Spec) -> anyhow::Result<TestMount> {
        let user = self.emu.add_user(&format!("user{}", self.next.fetch_add(1, Ordering::SeqCst)));
        let drive = user.resource_drive_id.clone();
        seed_emu(&self.emu, &drive, "/", &spec.seed)?;
        let rt = self.emu.issue_refresh_token(&user.user_id, TokenKind::Mobile);
        let work = tempfile::tempdir()?;
        let (opts, ctx) = setup(&self.emu, &format!("refresh_token = {rt:?}"), "/aliyun", work.path())?;
        let mut d = AliyunDrive::new(pandav::drivers::parse_options(opts)?, &ctx)?;
        d.set_retry(fast_retry());
        let opts = mount_options("/aliyun", spec, self.ttl, work.path().join("spool"));
        let mut tm = TestMount::start(opts, Arc::new(d), vec![Box::new(work)]).await?;
        let client = OtherDevice::new(&self.emu, &user.user_id, &drive).await?;
        tm.outside = Some(Box::new(EmuOutside { emu: Arc::clone(&self.emu), drive, base: "", client }));
        Ok(tm)
    }
}

/// Another client of the same account, changing things below folder `base` (`""`: the
/// drive's root).
struct EmuOutside {
    emu: Arc<EmuAliyun>,
    drive: String,
    base: &'static str,
    client: OtherDevice,
}

#[async_trait]
impl Outside for EmuOutside {
    async fn write_file(&self, rel: &str, data: &[u8]) -> anyhow::Result<()> {
        let (parent, name) = parent_and_name(rel);
        let parent = format!("{}{}", self.base, if parent == "/" { "" } else { parent.as_str() });
        let pid = if parent.is_empty() { "root".to_string() } else { lookup(&self.emu, &self.drive, &parent)? };
        if let Some(old) = self.emu.children(&self.drive, &pid).into_iter().find(|e| e.name == name) {
            self.client.delete(&old.file_id).await?;
        }
        self.emu.put_file(&self.drive, &pid, name, data.to_vec());
        Ok(())
    }

    async fn remove(&self, rel: &str) -> anyhow::Result<()> {
        let id = lookup(&self.emu, &self.drive, &format!("{}/{rel}", self.base))?;
        self.client.delete(&id).await
    }
}

/// A driver's options (`lines`, unpaced, with the emulator's endpoints) and its context,
/// state in `work`.
fn setup(emu: &EmuAliyun, lines: &str, path: &str, work: &std::path::Path) -> anyhow::Result<(toml::Table, DriverCtx)> {
    let mut o: toml::Table = toml::from_str(&format!("{lines}\nrate_limit = 0"))?;
    o.insert("endpoints".into(), toml::Value::Table(endpoints(emu)));
    let ctx = DriverCtx {
        mount_path: path.into(),
        state: StateHandle::at(work.join("state.json")),
        base_dir: work.to_path_buf(),
        source: None,
    };
    Ok((o, ctx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_aliyundrive_ttl0() {
    run_all(&AliyunFixture::new(Duration::ZERO).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_aliyundrive_long_ttl() {
    run_all(&AliyunFixture::new(Duration::from_secs(3600)).await).await;
}

/// `aliyundrive_share`: a fresh sharer and viewer per mount.
pub struct AliyunShareFixture {
    emu: Arc<EmuAliyun>,
    ttl: Duration,
    next: AtomicU64,
}

impl AliyunShareFixture {
    pub async fn new(ttl: Duration) -> AliyunShareFixture {
        AliyunShareFixture {
            emu: Arc::new(EmuAliyun::start_temp(Options::default()).await),
            ttl,
            next: AtomicU64::new(1),
        }
    }
}

#[async_trait]
impl Fixture for AliyunShareFixture {
    fn name(&self) -> String {
        format!("aliyundrive_share(ttl={:?})", self.ttl)
    }

    fn profile(&self) -> Profile {
        Profile { writable: false, mtime_precision: Duration::from_secs(1) }
    }

    async fn mount(&self, spec: &Spec) -> anyhow::Result<TestMount> {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let sharer = self.emu.add_user(&format!("sharer{n}"));
        let viewer = self.emu.add_user(&format!("viewer{n}"));
        let drive = sharer.resource_drive_id.clone();
        let folder = self.emu.mkdir(&drive, "root", "shared");
        seed_emu(&self.emu, &drive, "/shared", &spec.seed)?;
        let share = self.emu.create_share(&sharer.user_id, &drive, &[&folder], "ab12");
        let rt = self.emu.issue_refresh_token(&viewer.user_id, TokenKind::Mobile);
        let work = tempfile::tempdir()?;
        let lines =
            format!("share_id = {share:?}\nshare_pwd = \"ab12\"\nroot_folder_id = {folder:?}\nrefresh_token = {rt:?}");
        let (opts, ctx) = setup(&self.emu, &lines, "/share", work.path())?;
        let mut d = ShareDrive::new(pandav::drivers::parse_options(opts)?, &ctx)?;
        d.set_retry(fast_retry());
        let opts = mount_options("/share", spec, self.ttl, work.path().join("spool"));
        let mut tm = TestMount::start(opts, Arc::new(d), vec![Box::new(work)]).await?;
        let client = OtherDevice::new(&self.emu, &sharer.user_id, &drive).await?;
        tm.outside = Some(Box::new(EmuOutside { emu: Arc::clone(&self.emu), drive, base: "/shared", client }));
        Ok(tm)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_aliyundrive_share() {
    run_all(&AliyunShareFixture::new(Duration::ZERO).await).await;
    run_all(&AliyunShareFixture::new(Duration::from_secs(3600)).await).await;
}
