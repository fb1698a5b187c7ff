//! Drivers (one provider each) and the registry that builds them from config.
//!
//! A driver never knows WebDAV or the HTTP server; it speaks `vfs::Drive`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use serde::de::DeserializeOwned;

use crate::state::StateHandle;
use crate::vfs::credentials::{ErasedRefresh, MountSource};
use crate::vfs::{Drive, PolicyKind};

pub mod aliyun;
pub mod http;
pub mod local;
pub mod p115;
pub mod source;

/// What a driver gets besides its options.
#[derive(Debug, Clone)]
pub struct DriverCtx {
    pub mount_path: String,
    pub state: StateHandle,
    /// Folder that relative paths in the options are relative to (the config's folder).
    pub base_dir: PathBuf,
    /// The mount's driver name and options, so that a refresh helper process can rebuild
    /// its refresher through the registry (filled by [`build`]; `None`: refresh in-process).
    pub source: Option<MountSource>,
}

impl DriverCtx {
    pub fn new(mount_path: impl Into<String>, state: StateHandle, base_dir: PathBuf) -> DriverCtx {
        DriverCtx { mount_path: mount_path.into(), state, base_dir, source: None }
    }
}

/// What `pandav login <provider>` hands a driver's login flow: the mount it logs in
/// (the command reads the config, the driver never does), how to show a QR code
/// (terminal or PNG), and where to say what happens.
pub trait LoginHost: Send + Sync {
    /// The mount named by `--config`/`--mount`, with its real state dir.
    fn mount(&self, common: &LoginCommon) -> Result<MountRef>;
    /// Show `text` as a QR code (in the terminal, or as a PNG at `png`).
    fn show_qr(&self, text: &str, png: Option<&Path>) -> Result<()>;
    /// A status line.
    fn say(&self, line: &str);
}

/// A configured mount, for a one-off command.
pub struct MountRef {
    pub path: String,
    pub driver: String,
    pub options: toml::Table,
    pub ctx: DriverCtx,
}

impl MountRef {
    /// Refuses a mount whose driver is none of `drivers` (a login serves its own).
    pub fn expect_driver(&self, drivers: &[&str]) -> Result<()> {
        if drivers.contains(&self.driver.as_str()) {
            return Ok(());
        }
        Err(anyhow!("mount {} uses driver {:?}, not {}", self.path, self.driver, drivers.join(" or ")))
    }

    /// The mount's options as `T`, once its driver is one of `drivers`.
    pub fn options_for<T: DeserializeOwned>(&mut self, drivers: &[&str]) -> Result<T> {
        self.expect_driver(drivers)?;
        parse_options(std::mem::take(&mut self.options)).map_err(|e| anyhow!("mount {} options: {e:#}", self.path))
    }
}

/// Arguments every `pandav login <provider>` takes (a driver's login flattens them).
#[derive(clap::Args, Debug, Clone)]
pub struct LoginCommon {
    #[arg(short, long, env = "PANDAV_CONFIG")]
    pub config: PathBuf,
    /// The mount (its path in the config) whose state gets the login.
    #[arg(short, long)]
    pub mount: String,
    /// Write the QR code to this PNG file instead of drawing it in the terminal.
    #[arg(long)]
    pub png: Option<PathBuf>,
}

/// Rebuilds a mount's refresher from its source.
pub type BuildRefresher = fn(&MountSource) -> Result<Box<dyn ErasedRefresh>>;

pub type LoginFuture<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// Where a QR-code login stands while it is polled (115's QR and device-code logins;
/// the Aliyun passport and Open QR logins have the same states).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QrState {
    Waiting,
    Scanned,
    Confirmed,
    Expired,
    Canceled,
    /// The provider ended the login otherwise (an unknown status, a code no longer
    /// valid), in its words.
    Refused(String),
}

impl QrState {
    /// The line a login command shows for this state.
    pub fn message(&self) -> String {
        match self {
            QrState::Waiting => "waiting for the QR code to be scanned with the app…".into(),
            QrState::Scanned => "scanned: confirm the login on your phone…".into(),
            QrState::Confirmed => "confirmed on the phone".into(),
            QrState::Expired => "the QR code expired; run the command again for a new one".into(),
            QrState::Canceled => "the login was canceled on the phone".into(),
            QrState::Refused(why) => format!("the login was refused ({why})"),
        }
    }
}

/// Failures in a row of a QR login's status polls: a passing one is said and waited out
/// (`Ok(None)`: poll again), the tenth in a row ends the login.
#[derive(Debug, Default)]
pub struct PollFailures(u32);

impl PollFailures {
    pub async fn check<T>(&mut self, r: Result<T>, wait: std::time::Duration, say: impl Fn(&str)) -> Result<Option<T>> {
        match r {
            Ok(v) => {
                self.0 = 0;
                Ok(Some(v))
            }
            Err(e) => {
                self.0 += 1;
                if self.0 >= 10 {
                    return Err(e.context("polling the QR status kept failing"));
                }
                say(&format!("status poll failed ({e:#}), retrying"));
                tokio::time::sleep(wait).await;
                Ok(None)
            }
        }
    }
}

/// A `pandav login <command>` flow: `run` parses the arguments after the command name.
pub struct LoginEntry {
    pub command: &'static str,
    pub about: &'static str,
    pub run: for<'a> fn(Vec<String>, &'a dyn LoginHost) -> LoginFuture<'a>,
}

/// One driver, everything the rest of pandav needs to know about it. Adding a driver is
/// one entry in [`DRIVERS`] (and the driver's folder).
pub struct DriverEntry {
    /// `driver = "…"` in the config.
    pub name: &'static str,
    /// One line for `pandav check` and the docs.
    pub about: &'static str,
    /// Policy of a mount that does not choose one.
    pub default_policy: PolicyKind,
    /// Policies the driver can serve.
    pub policies: &'static [PolicyKind],
    /// The keys of `[mounts.options]` (the options struct rejects any other).
    pub options: &'static [&'static str],
    /// Build the driver from its options. Nothing touches the network here.
    pub build: fn(toml::Table, &DriverCtx) -> Result<Arc<dyn Drive>>,
    /// `pandav login …` for mounts of this driver.
    pub login: Option<LoginEntry>,
    /// Rebuild the mount's credential refresher (the `pandav __refresh` helper).
    pub refresher: Option<BuildRefresher>,
}

pub const ALL_POLICIES: &[PolicyKind] = &[PolicyKind::Redirect, PolicyKind::Proxy, PolicyKind::ProxyUrl];

/// Local folders (the entry lives here: the driver's folder is another engineer's).
const LOCAL: DriverEntry = DriverEntry {
    name: "local",
    about: "a folder of this machine",
    default_policy: PolicyKind::Proxy,
    policies: &[PolicyKind::Proxy, PolicyKind::ProxyUrl],
    options: &["root", "follow_symlinks", "create"],
    build: |o, ctx| Ok(Arc::new(local::LocalDrive::new(parse_options(o)?, ctx)?)),
    login: None,
    refresher: None,
};

/// The registry: one entry per driver.
pub static DRIVERS: &[DriverEntry] = &[
    LOCAL,
    p115::open::ENTRY,
    p115::web::ENTRY,
    p115::share::ENTRY,
    aliyun::consumer::ENTRY,
    aliyun::share::ENTRY,
    aliyun::open::ENTRY,
];

pub fn info(name: &str) -> Option<&'static DriverEntry> {
    DRIVERS.iter().find(|d| d.name == name)
}

pub fn names() -> Vec<&'static str> {
    DRIVERS.iter().map(|d| d.name).collect()
}

/// The login flow called `command` (`pandav login <command>`).
pub fn login(command: &str) -> Option<&'static LoginEntry> {
    DRIVERS.iter().filter_map(|d| d.login.as_ref()).find(|l| l.command == command)
}

/// Every login flow, for `pandav login --help`.
pub fn logins() -> impl Iterator<Item = &'static LoginEntry> {
    DRIVERS.iter().filter_map(|d| d.login.as_ref())
}

/// Build a driver from its name and `[mounts.options]` table. Nothing touches the
/// network here: problems with options show in `pandav check`.
pub fn build(name: &str, options: toml::Table, mut ctx: DriverCtx) -> Result<Arc<dyn Drive>> {
    let Some(entry) = info(name) else { bail!("unknown driver {name:?} (known: {})", names().join(", ")) };
    ctx.source = Some(MountSource {
        driver: name.to_string(),
        mount: ctx.mount_path.clone(),
        base_dir: ctx.base_dir.clone(),
        options: toml::to_string(&options)?,
    });
    (entry.build)(options, &ctx)
}

/// Rebuild a mount's refresher from its source (the `pandav __refresh` helper).
pub fn build_refresher(source: &MountSource) -> Result<Box<dyn ErasedRefresh>> {
    match info(&source.driver).and_then(|d| d.refresher) {
        Some(f) => f(source),
        None => bail!("driver {:?} has no refresher", source.driver),
    }
}

/// Deserialize a driver's options table, with unknown keys rejected by the struct.
pub fn parse_options<T: DeserializeOwned>(options: toml::Table) -> Result<T> {
    toml::Value::Table(options).try_into::<T>().map_err(|e| anyhow!("{}", e.to_string().trim()))
}
