//! Helpers of the cloud-driver tests (tests/drv115open, tests/drvaliyunopen, …): spool
//! an upload as a WebDAV PUT would and read a file back through a `Mount`, seeded bytes,
//! the state file a mount saved, a private copy of the binary, rclone on a WebDAV remote.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use pandav::vfs::spool::Spool;
use pandav::vfs::{Entry, Mount, Upload};

/// Spool `bytes` like a WebDAV PUT would: the upload and the guard that removes it.
pub async fn spooled(dir: &Path, bytes: &[u8]) -> (Upload, tempfile::TempPath) {
    std::fs::create_dir_all(dir).unwrap();
    let mut s = Spool::create(dir).await.unwrap();
    s.write(bytes).await.unwrap();
    let sp = s.finish(None).await.unwrap();
    (sp.upload, sp.guard)
}

/// `Mount::put` of `bytes` at `rel`, spooled in `dir`; panics on failure.
pub async fn put(m: &Arc<Mount>, dir: &Path, rel: &str, bytes: &[u8]) -> Entry {
    let (up, guard) = spooled(dir, bytes).await;
    let e = m.put(rel, up).await.unwrap_or_else(|e| panic!("put {rel}: {e}"));
    drop(guard);
    e
}

/// Bytes `start..end` of `rel` as pandav reads them (through the drive's link).
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

/// `n` bytes from a seeded generator.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; n];
    r.fill_bytes(&mut v);
    v
}

/// The refresh token a mount's state file holds (`data.refresh_token`).
pub fn saved_refresh(state_file: &Path) -> String {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(state_file).unwrap()).unwrap();
    v["data"]["refresh_token"].as_str().unwrap().to_string()
}

/// The `pandav` binary, copied once to a private place (a target dir shared with other
/// branches may get its `pandav` replaced by their builds while tests run); checked to
/// know the login `login` (so that it is this branch's build).
pub fn private_bin(cell: &'static std::sync::OnceLock<(tempfile::TempDir, PathBuf)>, login: &str) -> &'static Path {
    &cell
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("pandav");
            std::fs::copy(super::BIN, &p).unwrap();
            let help = Command::new(&p).args(["login", "--help"]).output().unwrap();
            assert!(
                String::from_utf8_lossy(&help.stdout).contains(login),
                "{} is not this branch's pandav (replaced by another build in a shared target dir?)",
                super::BIN
            );
            (dir, p)
        })
        .1
}

/// rclone with the WebDAV remote `pd:` at `base` (config kept in `dir`).
pub fn rclone(args: &[&str], base: &str, dir: &Path) -> std::process::Output {
    Command::new(super::tool("rclone"))
        .args(args)
        .env("RCLONE_CONFIG", dir.join("rclone.conf"))
        .env("RCLONE_CONFIG_PD_TYPE", "webdav")
        .env("RCLONE_CONFIG_PD_URL", base)
        .env("RCLONE_CONFIG_PD_VENDOR", "other")
        .output()
        .expect("rclone")
}
