//! The local driver in the conformance suite, plus what only a local folder can get
//! wrong: symbolic links out of the root and the driver's own temp names.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pandav::drivers::local::{LocalDrive, LocalOptions};
use pandav::drivers::DriverCtx;
use pandav::state::StateHandle;
use pandav::vfs::{DriveError, Mount};

use crate::suite::*;
use crate::{check, check_eq, check_err, ok};

pub struct LocalFixture {
    pub ttl: Duration,
    /// Every mount read-only (how a share driver is run: read scenarios only).
    pub read_only: bool,
    pub follow_symlinks: bool,
}

impl LocalFixture {
    pub fn new(ttl: Duration) -> LocalFixture {
        LocalFixture { ttl, read_only: false, follow_symlinks: false }
    }

    /// A mount over an existing folder (the local-specific tests prepare it themselves).
    pub async fn mount_at(&self, root: &Path, spec: &Spec) -> anyhow::Result<TestMount> {
        let work = tempfile::tempdir()?;
        let drive = LocalDrive::new(
            LocalOptions {
                root: root.to_path_buf(),
                follow_symlinks: self.follow_symlinks,
                create: false,
                file_mode: None,
                dir_mode: None,
            },
            &DriverCtx {
                mount_path: "/local".into(),
                state: StateHandle::at(work.path().join("state.json")),
                base_dir: work.path().to_path_buf(),
                source: None,
            },
        )?;
        let mut opts = mount_options("/local", spec, self.ttl, work.path().join("spool"));
        opts.read_only |= self.read_only;
        let mut tm = TestMount::start(opts, Arc::new(drive), vec![Box::new(work)]).await?;
        tm.outside = Some(Box::new(LocalOutside(root.to_path_buf())));
        Ok(tm)
    }
}

#[async_trait]
impl Fixture for LocalFixture {
    fn name(&self) -> String {
        format!("local(ttl={:?}{})", self.ttl, if self.read_only { ",ro" } else { "" })
    }

    fn profile(&self) -> Profile {
        Profile {
            writable: !self.read_only,
            // ext4/tmpfs keep nanoseconds; other file systems may keep less.
            mtime_precision: Duration::from_secs(1),
        }
    }

    async fn mount(&self, spec: &Spec) -> anyhow::Result<TestMount> {
        let root = tempfile::tempdir()?;
        for s in &spec.seed {
            match s {
                Seed::Dir(p) => std::fs::create_dir(root.path().join(p))?,
                Seed::File(p, data) => std::fs::write(root.path().join(p), data)?,
            }
        }
        let mut tm = self.mount_at(root.path(), spec).await?;
        tm.keep.push(Box::new(root));
        Ok(tm)
    }
}

struct LocalOutside(PathBuf);

#[async_trait]
impl Outside for LocalOutside {
    async fn write_file(&self, rel: &str, data: &[u8]) -> anyhow::Result<()> {
        Ok(std::fs::write(self.0.join(rel), data)?)
    }
    async fn remove(&self, rel: &str) -> anyhow::Result<()> {
        let p = self.0.join(rel);
        if p.is_dir() {
            std::fs::remove_dir_all(p)?;
        } else {
            std::fs::remove_file(p)?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_local_ttl0() {
    run_all(&LocalFixture::new(Duration::ZERO)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_local_long_ttl() {
    run_all(&LocalFixture::new(Duration::from_secs(3600))).await;
}

/// The read scenarios the way a read-only share driver runs them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_local_read_only() {
    let fx = LocalFixture { read_only: true, ..LocalFixture::new(Duration::from_secs(60)) };
    run_all(&fx).await;
}

// ---------------------------------------------------------------------------------------
// Local-only: symbolic links out of the root
// ---------------------------------------------------------------------------------------

struct Escape {
    _base: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

/// `root/` with `inside.txt` and links: `out` → a folder outside, `out.txt` → a file
/// outside, `in-link` → `inside.txt`, `dangling` → nothing.
fn escape_tree() -> Escape {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("root");
    let outside = base.path().join("outside");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "secret").unwrap();
    std::fs::write(base.path().join("secret-file.txt"), "also secret").unwrap();
    std::fs::write(root.join("inside.txt"), "inside").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("out")).unwrap();
    std::os::unix::fs::symlink(base.path().join("secret-file.txt"), root.join("out.txt")).unwrap();
    std::os::unix::fs::symlink("inside.txt", root.join("in-link")).unwrap();
    std::os::unix::fs::symlink(base.path().join("missing"), root.join("dangling")).unwrap();
    Escape { _base: base, root, outside }
}

async fn local_mount(root: &Path, follow: bool, ttl: Duration) -> TestMount {
    let fx = LocalFixture { follow_symlinks: follow, ..LocalFixture::new(ttl) };
    fx.mount_at(root, &Spec::new()).await.unwrap()
}

async fn symlinks_hidden(m: &Mount, t: &Escape) -> anyhow::Result<()> {
    check_eq!(ok!(names(m, "").await), sorted(&["inside.txt"]));
    for p in ["out", "out/secret.txt", "out.txt", "in-link", "dangling"] {
        check_err!(m.resolve(p).await, DriveError::NotFound);
        check!(read_all(m, p).await.is_err(), "{p} readable");
    }
    check_err!(m.list("out").await, DriveError::NotFound);
    check_err!(m.remove("out").await, DriveError::NotFound);
    check_err!(m.rename("out/secret.txt", "stolen.txt").await, DriveError::NotFound);
    check_err!(m.copy("out", "copied").await, DriveError::NotFound);
    check_err!(put_bytes(m, "out/planted.txt", b"x", None).await, DriveError::NotFound);
    // Writing over a link's name must not write through the link.
    let r = put_bytes(m, "out.txt", b"overwritten", None).await;
    let _ = m.mkdir("out").await;
    let _ = m.copy("inside.txt", "out.txt").await;
    check_eq!(
        std::fs::read_to_string(t._base.path().join("secret-file.txt"))?,
        "also secret",
        "file outside the root changed (put over link gave {r:?})"
    );
    check_eq!(std::fs::read_to_string(t.outside.join("secret.txt"))?, "secret");
    let outside_names: Vec<_> = std::fs::read_dir(&t.outside)?.map(|e| e.unwrap().file_name()).collect();
    check_eq!(outside_names.len(), 1, "files appeared outside the root: {outside_names:?}");
    Ok(())
}

#[tokio::test]
async fn symlinks_out_of_root_are_invisible_without_follow() {
    for ttl in [Duration::ZERO, Duration::from_secs(3600)] {
        let t = escape_tree();
        let m = local_mount(&t.root, false, ttl).await;
        symlinks_hidden(&m, &t).await.unwrap();
    }
}

#[tokio::test]
async fn symlinks_are_followed_when_asked() {
    let t = escape_tree();
    let m = local_mount(&t.root, true, Duration::ZERO).await;
    assert_eq!(
        names(&m, "").await.unwrap(),
        sorted(&["in-link", "inside.txt", "out", "out.txt"]),
        "dangling links stay hidden, live ones show"
    );
    assert!(m.resolve("out").await.unwrap().is_dir);
    assert_eq!(names(&m, "out").await.unwrap(), sorted(&["secret.txt"]));
    assert_eq!(read_all(&m, "out/secret.txt").await.unwrap(), b"secret");
    assert_eq!(read_all(&m, "out.txt").await.unwrap(), b"also secret");
    assert_eq!(read_all(&m, "in-link").await.unwrap(), b"inside");
    assert!(matches!(m.resolve("dangling").await, Err(DriveError::NotFound)));
    // Removing a link removes the link, never what it points to.
    m.remove("out").await.unwrap();
    m.remove("out.txt").await.unwrap();
    assert!(t.outside.join("secret.txt").exists(), "remove followed the folder link");
    assert!(t._base.path().join("secret-file.txt").exists(), "remove followed the file link");
    assert_eq!(names(&m, "").await.unwrap(), sorted(&["in-link", "inside.txt"]));
}

/// The driver hides its own temp names (`.pandav-tmp-*`); a client's file with such a
/// name must then be refused, not stored and made invisible.
#[tokio::test]
async fn temp_prefix_names_are_not_swallowed() {
    let base = tempfile::tempdir().unwrap();
    let m = local_mount(base.path(), false, Duration::ZERO).await;
    let r = put_bytes(&m, ".pandav-tmp-mine", b"data", None).await;
    if r.is_ok() {
        assert!(
            m.resolve(".pandav-tmp-mine").await.is_ok(),
            "put of .pandav-tmp-mine succeeded, but the file is invisible afterwards"
        );
    }
    let r = m.mkdir(".pandav-tmp-dir").await;
    if r.is_ok() {
        assert!(
            m.resolve(".pandav-tmp-dir").await.is_ok(),
            "mkdir of .pandav-tmp-dir succeeded, but the folder is invisible afterwards"
        );
    }
}
