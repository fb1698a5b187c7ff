//! `pandav offline add|list|remove`: offline (cloud) download tasks of any mount whose
//! drive has them.

use std::sync::Arc;

use anyhow::{anyhow, Result};

use super::{build_table, init_logging, OfflineCmd};
use crate::config::Config;
use crate::vfs::Mount;

/// The named mount of a config, built and initialised for a one-off command (with the
/// real state dir, so rotated tokens are shared with a running server).
async fn one_mount(config: &std::path::Path, mount: &str) -> Result<Arc<Mount>> {
    let cfg = Config::load(config)?;
    init_logging("warn");
    let state = super::open_state(&cfg)?;
    let table = build_table(&cfg, &state)?;
    let path = crate::config::normalize_mount_path(mount).map_err(|e| anyhow!("mount {e}"))?;
    let m = table.get(&path).cloned().ok_or_else(|| anyhow!("no mount {path} in {}", cfg.source_name))?;
    if !m.caps().offline_download {
        return Err(anyhow!("mount {path} (driver {}) has no offline download", m.drive.kind()));
    }
    m.init().await.map_err(|e| anyhow!("mount {path}: {e}"))?;
    Ok(m)
}

/// `pandav offline …`. Returns the exit code.
pub async fn offline(cmd: OfflineCmd) -> Result<i32> {
    match cmd {
        OfflineCmd::Add { config, mount, urls, dir } => {
            let m = one_mount(&config, &mount).await?;
            let res = m.offline_add(&urls, dir.as_deref()).await.map_err(|e| anyhow!("{e}"))?;
            let mut failed = 0;
            for r in &res {
                if r.exists {
                    println!("exists  {}  {}  (task already exists)", r.info_hash, r.url);
                } else if r.ok {
                    println!("added   {}  {}  {}", r.info_hash, r.name, r.url);
                } else {
                    failed += 1;
                    println!("failed  {}  {}", r.url, r.message);
                }
            }
            Ok(if failed > 0 { 1 } else { 0 })
        }
        OfflineCmd::List { config, mount } => {
            let m = one_mount(&config, &mount).await?;
            let l = m.offline_list().await.map_err(|e| anyhow!("{e}"))?;
            println!("{:<12} {:>6} {:>14}  {:<40}  name", "status", "done", "size", "info_hash");
            for t in &l.tasks {
                println!("{:<12} {:>5.1}% {:>14}  {:<40}  {}", t.status_text(), t.percent, t.size, t.info_hash, t.name);
            }
            if let (Some(total), Some(left)) = (l.quota_total, l.quota_left) {
                println!("{} task(s); quota {left} left of {total}", l.tasks.len());
            } else {
                println!("{} task(s)", l.tasks.len());
            }
            Ok(0)
        }
        OfflineCmd::Remove { config, mount, hashes, delete_files } => {
            let m = one_mount(&config, &mount).await?;
            m.offline_remove(&hashes, delete_files).await.map_err(|e| anyhow!("{e}"))?;
            println!("removed {} task(s){}", hashes.len(), if delete_files { " and their files" } else { "" });
            Ok(0)
        }
    }
}
