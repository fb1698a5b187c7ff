//! The conformance framework: what a driver's test fixture provides, the scenario
//! registry, and the helpers scenarios use. Scenarios live in `scenarios.rs`.
//!
//! Plugging a driver in (see `local.rs` for the full example):
//!
//! ```ignore
//! struct MyFixture { emulator: Emulator }
//! #[async_trait]
//! impl Fixture for MyFixture {
//!     fn name(&self) -> String { "115".into() }
//!     fn profile(&self) -> Profile { Profile::default() }          // writable
//!     async fn mount(&self, spec: &Spec) -> anyhow::Result<TestMount> {
//!         // fresh empty root in the emulator, create spec.seed there behind the
//!         // driver's back, build the driver, then:
//!         TestMount::start(mount_options("/115", spec, self.ttl, spool), drive, keep).await
//!     }
//! }
//! #[tokio::test(flavor = "multi_thread")]
//! async fn conformance_115() { run_all(&MyFixture::new().await).await }
//! ```

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use async_trait::async_trait;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use md5::Digest as _;
use pandav::vfs::spool::Spool;
use pandav::vfs::{mount, transfer, Drive, DriveError, DriveResult, Entry, Mount, MountOptions, Policy, ReadRange};

// ---------------------------------------------------------------------------------------
// What a fixture provides
// ---------------------------------------------------------------------------------------

/// One item of pre-seeded content, created by the fixture behind the mount's back
/// (on disk, or in an emulator's store). Parents always come before their children.
#[derive(Clone, Debug)]
pub enum Seed {
    Dir(String),
    File(String, Vec<u8>),
}

/// What a scenario asks of a fresh mount.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    /// Content the root holds before the mount is built (empty: an empty root).
    pub seed: Vec<Seed>,
    /// Build the mount with `MountOptions::read_only`.
    pub read_only: bool,
    /// Override the fixture's cache TTL (cache scenarios force a long one).
    pub cache_ttl: Option<Duration>,
}

impl Spec {
    pub fn new() -> Spec {
        Spec::default()
    }
    pub fn dir(mut self, p: &str) -> Spec {
        self.seed.push(Seed::Dir(p.into()));
        self
    }
    pub fn file(mut self, p: &str, data: impl Into<Vec<u8>>) -> Spec {
        self.seed.push(Seed::File(p.into(), data.into()));
        self
    }
    pub fn read_only(mut self) -> Spec {
        self.read_only = true;
        self
    }
    pub fn ttl(mut self, ttl: Duration) -> Spec {
        self.cache_ttl = Some(ttl);
        self
    }
}

/// Static facts about a fixture (the drive's own capabilities come from `Mount::caps`).
#[derive(Clone, Debug)]
pub struct Profile {
    /// Writes through the mount are possible. `false` (share drivers): only the read
    /// scenarios run, against seeded content.
    pub writable: bool,
    /// How exactly the drive keeps modification times (providers that store seconds: 1 s).
    pub mtime_precision: Duration,
}

impl Default for Profile {
    fn default() -> Profile {
        Profile { writable: true, mtime_precision: Duration::from_secs(1) }
    }
}

/// Changes made behind the mount's back (another client of the same account), for the
/// cache scenarios. Paths are relative to the mount's root; parents exist.
#[async_trait]
pub trait Outside: Send + Sync {
    async fn write_file(&self, rel: &str, data: &[u8]) -> anyhow::Result<()>;
    async fn remove(&self, rel: &str) -> anyhow::Result<()>;
}

/// A mount built by a fixture, with whatever must live as long as it does.
pub struct TestMount {
    pub mount: Arc<Mount>,
    /// `None` where the fixture cannot change content behind the mount's back.
    pub outside: Option<Box<dyn Outside>>,
    /// Temp dirs, emulator handles… dropped after the mount.
    pub keep: Vec<Box<dyn Any + Send + Sync>>,
}

impl TestMount {
    /// `Mount::new` + `Mount::init` (the way `main` starts a mount).
    pub async fn start(
        opts: MountOptions,
        drive: Arc<dyn Drive>,
        keep: Vec<Box<dyn Any + Send + Sync>>,
    ) -> anyhow::Result<TestMount> {
        let mount = Arc::new(Mount::new(opts, drive));
        mount.init().await.context("Mount::init")?;
        Ok(TestMount { mount, outside: None, keep })
    }
}

impl std::ops::Deref for TestMount {
    type Target = Mount;
    fn deref(&self) -> &Mount {
        &self.mount
    }
}

/// A driver under test. One fixture value may build many mounts, each fresh.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// Shown in reports, e.g. `local(ttl=0)`.
    fn name(&self) -> String;
    fn profile(&self) -> Profile {
        Profile::default()
    }
    /// A fresh mount whose root holds exactly `spec.seed`.
    async fn mount(&self, spec: &Spec) -> anyhow::Result<TestMount>;
}

/// Mount options for a fixture: `spec` decides read-only and may override `ttl`.
pub fn mount_options(path: &str, spec: &Spec, ttl: Duration, spool_dir: std::path::PathBuf) -> MountOptions {
    MountOptions {
        path: path.into(),
        policy: Policy::Proxy,
        proxy_url: None,
        read_only: spec.read_only,
        cache_ttl: spec.cache_ttl.unwrap_or(ttl),
        spool_dir,
    }
}

/// Seed through a writable mount, for fixtures without a back door.
#[allow(dead_code)]
pub async fn seed_through(m: &Mount, seed: &[Seed]) -> DriveResult<()> {
    for s in seed {
        match s {
            Seed::Dir(p) => {
                m.mkdir(p).await?;
            }
            Seed::File(p, data) => {
                put_bytes(m, p, data, None).await?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Scenario registry and runner
// ---------------------------------------------------------------------------------------

pub type ScenarioFn = for<'a> fn(&'a dyn Fixture) -> BoxFuture<'a, anyhow::Result<()>>;

pub struct Scenario {
    pub name: &'static str,
    /// Needs a writable drive (skipped for read-only fixtures).
    pub writes: bool,
    pub run: ScenarioFn,
}

/// Run every scenario (or those named in `CONFORMANCE_ONLY=a,b`, substrings) against
/// `fixture`, print a line per scenario, and panic listing all failures at the end.
pub async fn run_all(fixture: &dyn Fixture) {
    run_scenarios(fixture, crate::scenarios::ALL).await
}

pub async fn run_scenarios(fixture: &dyn Fixture, scenarios: &[Scenario]) {
    let only: Vec<String> = std::env::var("CONFORMANCE_ONLY")
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default();
    let profile = fixture.profile();
    let name = fixture.name();
    let started = Instant::now();
    let mut failed = Vec::new();
    let (mut ran, mut skipped) = (0, 0);
    for s in scenarios {
        if !only.is_empty() && !only.iter().any(|o| s.name.contains(o.as_str())) {
            continue;
        }
        if s.writes && !profile.writable {
            skipped += 1;
            println!("[{name}] {:<32} skip (read-only fixture)", s.name);
            continue;
        }
        ran += 1;
        let t = Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(120),
            std::panic::AssertUnwindSafe((s.run)(fixture)).catch_unwind(),
        )
        .await;
        let outcome = match r {
            Err(_) => Err("timed out after 120 s".to_string()),
            Ok(Err(panic)) => Err(format!("panicked: {}", panic_text(&panic))),
            Ok(Ok(Err(e))) => Err(format!("{e:#}")),
            Ok(Ok(Ok(()))) => Ok(()),
        };
        let ms = t.elapsed().as_millis();
        match outcome {
            Ok(()) => println!("[{name}] {:<32} ok ({ms} ms)", s.name),
            Err(e) => {
                println!("[{name}] {:<32} FAILED ({ms} ms): {e}", s.name);
                failed.push(format!("{}: {e}", s.name));
            }
        }
    }
    println!("[{name}] {ran} ran, {} failed, {skipped} skipped in {} ms", failed.len(), started.elapsed().as_millis());
    if !failed.is_empty() {
        panic!("conformance of {name}: {} scenario(s) failed:\n  {}", failed.len(), failed.join("\n  "));
    }
}

fn panic_text(p: &Box<dyn Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic)".into()
    }
}

// ---------------------------------------------------------------------------------------
// Checks: return an error (with file:line) instead of panicking, so one run reports all.
// ---------------------------------------------------------------------------------------

#[macro_export]
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            anyhow::bail!("{}:{}: {}", file!(), line!(), format!($($fmt)+));
        }
    };
}

#[macro_export]
macro_rules! check_eq {
    ($a:expr, $b:expr $(,)?) => {
        match (&$a, &$b) {
            (a, b) => if a != b {
                anyhow::bail!(
                    "{}:{}: {} == {} failed:\n    left: {:?}\n   right: {:?}",
                    file!(), line!(), stringify!($a), stringify!($b), a, b
                );
            }
        }
    };
    ($a:expr, $b:expr, $($fmt:tt)+) => {
        match (&$a, &$b) {
            (a, b) => if a != b {
                anyhow::bail!(
                    "{}:{}: {}:\n    left: {:?}\n   right: {:?}",
                    file!(), line!(), format!($($fmt)+), a, b
                );
            }
        }
    };
}

/// `check_err!(expr, Pattern)`: `expr` must be `Err(e)` with `e` matching `Pattern`.
#[macro_export]
macro_rules! check_err {
    ($e:expr, $pat:pat $(,)?) => {{
        match $e {
            Err($pat) => {}
            Err(other) => anyhow::bail!(
                "{}:{}: {}: expected Err({}), got Err({:?})",
                file!(),
                line!(),
                stringify!($e),
                stringify!($pat),
                other
            ),
            Ok(v) => anyhow::bail!(
                "{}:{}: {}: expected Err({}), got Ok({:?})",
                file!(),
                line!(),
                stringify!($e),
                stringify!($pat),
                v
            ),
        }
    }};
}

/// `ok!(expr)`: unwrap a `DriveResult`, failing the scenario with file:line and the call.
#[macro_export]
macro_rules! ok {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(err) => anyhow::bail!("{}:{}: {} failed: {:?}", file!(), line!(), stringify!($e), err),
        }
    };
}

/// Byte strings compared without dumping megabytes on a mismatch.
pub fn same_bytes(what: &str, got: &[u8], want: &[u8]) -> anyhow::Result<()> {
    if got == want {
        return Ok(());
    }
    let at = got.iter().zip(want).position(|(a, b)| a != b);
    anyhow::bail!(
        "{what}: got {} bytes, want {}; first difference at {:?}{}",
        got.len(),
        want.len(),
        at.or(Some(got.len().min(want.len()))),
        if want.len() <= 64 {
            format!(" (got {:?}, want {:?})", String::from_utf8_lossy(got), String::from_utf8_lossy(want))
        } else {
            String::new()
        }
    )
}

// ---------------------------------------------------------------------------------------
// Helpers that go the way WebDAV requests go
// ---------------------------------------------------------------------------------------

/// PUT: spool (in the folder the mount picks) while hashing, then `Mount::put`.
pub async fn put_bytes(m: &Mount, rel: &str, data: &[u8], mtime: Option<SystemTime>) -> DriveResult<Entry> {
    put_chunks(m, rel, data.chunks(64 * 1024), mtime).await
}

pub async fn put_chunks<'c>(
    m: &Mount,
    rel: &str,
    chunks: impl IntoIterator<Item = &'c [u8]>,
    mtime: Option<SystemTime>,
) -> DriveResult<Entry> {
    let dir = m.spool_dir_for(mount::split_parent(rel).0).await;
    let mut spool = Spool::create(&dir).await?;
    for c in chunks {
        spool.write(c).await?;
    }
    let spooled = spool.finish(mtime).await?;
    let r = m.put(rel, spooled.upload).await;
    drop(spooled.guard);
    r
}

/// GET of a range, through `transfer::open` (local read or the drive's link).
pub async fn read_range(m: &Mount, rel: &str, range: ReadRange) -> DriveResult<Vec<u8>> {
    let e = m.resolve(rel).await?;
    read_entry(m, &e, range).await
}

pub async fn read_entry(m: &Mount, e: &Entry, range: ReadRange) -> DriveResult<Vec<u8>> {
    let mut s = transfer::open(m, e, range).await?;
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c?);
    }
    Ok(out)
}

pub async fn read_all(m: &Mount, rel: &str) -> DriveResult<Vec<u8>> {
    read_range(m, rel, ReadRange { start: 0, end: None }).await
}

pub fn range(start: u64, end: Option<u64>) -> ReadRange {
    ReadRange { start, end }
}

/// Sorted names in folder `rel`.
pub async fn names(m: &Mount, rel: &str) -> DriveResult<Vec<String>> {
    let (_, list) = m.list(rel).await?;
    let mut v: Vec<String> = list.iter().map(|e| e.name().to_string()).collect();
    v.sort();
    Ok(v)
}

/// The entry named `name` in the listing of `dir`.
pub async fn listed(m: &Mount, dir: &str, name: &str) -> DriveResult<Option<Entry>> {
    let (_, list) = m.list(dir).await?;
    Ok(list.iter().find(|e| e.name() == name).cloned())
}

pub fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

pub fn sha1_hex(data: &[u8]) -> String {
    hex::encode(sha1::Sha1::digest(data))
}

pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(md5::Md5::digest(data))
}

pub use upstream::pseudo_random as noise;

/// Two times equal within `tol`.
pub fn near(a: SystemTime, b: SystemTime, tol: Duration) -> bool {
    let d = a.duration_since(b).or_else(|_| b.duration_since(a)).unwrap_or_default();
    d <= tol
}

/// Is `e` "already exists", in any of the shapes drivers use for it (variant or io kind)?
pub fn is_exists(e: &DriveError) -> bool {
    e.status() == http::StatusCode::METHOD_NOT_ALLOWED
}

/// A fresh mount from the fixture, with the fixture's name in the error.
pub async fn fresh(fx: &dyn Fixture, spec: Spec) -> anyhow::Result<TestMount> {
    fx.mount(&spec).await.with_context(|| format!("fixture {} could not build a mount", fx.name()))
}
