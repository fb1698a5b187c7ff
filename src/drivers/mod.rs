//! Drivers (one provider each) and the registry that builds them from config.
//!
//! A driver never knows WebDAV or the HTTP server; it speaks `vfs::Drive`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use serde::de::DeserializeOwned;

use crate::state::StateHandle;
use crate::vfs::credentials::{ErasedRefresh, MountSource};
use crate::vfs::Drive;

pub mod http;
pub mod local;
pub mod oss;
pub mod p115;
pub mod p115_open;
pub mod p115_share;

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

/// Static facts about a driver.
pub struct DriverInfo {
    pub name: &'static str,
    /// `redirect` for drives that hand out provider URLs, `proxy` for local folders.
    pub default_policy: &'static str,
    /// Policies the driver can serve.
    pub policies: &'static [&'static str],
}

const DRIVERS: &[DriverInfo] = &[
    DriverInfo { name: "local", default_policy: "proxy", policies: &["proxy", "proxy_url"] },
    DriverInfo { name: "115_open", default_policy: "redirect", policies: &["redirect", "proxy", "proxy_url"] },
    DriverInfo { name: "115", default_policy: "redirect", policies: &["redirect", "proxy", "proxy_url"] },
    DriverInfo { name: "115_share", default_policy: "redirect", policies: &["redirect", "proxy", "proxy_url"] },
];

pub fn info(name: &str) -> Option<&'static DriverInfo> {
    DRIVERS.iter().find(|d| d.name == name)
}

pub fn names() -> Vec<&'static str> {
    DRIVERS.iter().map(|d| d.name).collect()
}

/// Build a driver from its name and `[mounts.options]` table. Nothing touches the
/// network here: problems with options show in `pandav check`.
pub fn build(name: &str, options: toml::Table, mut ctx: DriverCtx) -> Result<Arc<dyn Drive>> {
    ctx.source = Some(MountSource {
        driver: name.to_string(),
        mount: ctx.mount_path.clone(),
        base_dir: ctx.base_dir.clone(),
        options: toml::to_string(&options)?,
    });
    match name {
        "local" => Ok(Arc::new(local::LocalDrive::new(parse_options(options)?, &ctx)?)),
        "115_open" => p115_open::build(options, &ctx),
        "115" => Ok(Arc::new(p115::build(options, &ctx)?)),
        "115_share" => Ok(Arc::new(p115_share::build(options, &ctx)?)),
        other => bail!("unknown driver {other:?} (known: {})", names().join(", ")),
    }
}

/// Deserialize a driver's options table, with unknown keys rejected by the struct.
pub fn parse_options<T: DeserializeOwned>(options: toml::Table) -> Result<T> {
    toml::Value::Table(options).try_into::<T>().map_err(|e| anyhow!("{}", e.to_string().trim()))
}

/// Rebuild a mount's refresher from its source (the `pandav __refresh` helper).
pub fn build_refresher(source: &MountSource) -> Result<Box<dyn ErasedRefresh>> {
    match source.driver.as_str() {
        "115_open" => p115_open::build_refresher(source),
        other => bail!("driver {other:?} has no refresher"),
    }
}
