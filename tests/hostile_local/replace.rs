//! `Caps::replace_file` of the local driver: move_to, copy_to and put onto an existing
//! file replace it atomically, the old file stays intact when it fails, and a folder is
//! never replaced. (Driven through the `Drive` API: the mount layer decides when to ask
//! for a replacement.)

use std::path::Path;
use std::sync::Arc;

use pandav::drivers::local::{LocalDrive, LocalOptions};
use pandav::drivers::DriverCtx;
use pandav::state::StateHandle;
use pandav::vfs::{Drive, DriveError, Entry, Upload};

use crate::helpers::snapshot;

fn drive(root: &Path, work: &Path) -> Arc<LocalDrive> {
    let opts = LocalOptions {
        root: root.to_path_buf(),
        follow_symlinks: false,
        create: false,
        file_mode: None,
        dir_mode: None,
    };
    let ctx = DriverCtx::new("/l", StateHandle::at(work.join("state.json")), work.to_path_buf());
    Arc::new(LocalDrive::new(opts, &ctx).unwrap())
}

async fn entry(d: &LocalDrive, rel: &str) -> Entry {
    let mut e = d.root().await.unwrap();
    for name in rel.split('/') {
        e = d.lookup(&e, name).await.unwrap().unwrap_or_else(|| panic!("{rel}: no {name}"));
    }
    e
}

fn temps_left(root: &Path) -> Vec<(String, String)> {
    snapshot(root).into_iter().filter(|(p, _)| p.contains(".pandav-tmp-")).collect()
}

#[tokio::test]
async fn move_and_copy_onto_a_file_replace_it() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    for (p, c) in [("a.txt", "A"), ("b.txt", "BB"), ("c.txt", "CCC")] {
        std::fs::write(root.path().join(p), c).unwrap();
    }
    let d = drive(root.path(), work.path());
    assert!(d.caps().replace_file);
    let top = d.root().await.unwrap();

    let moved = d.move_to(&entry(&d, "a.txt").await, &top, "b.txt").await.unwrap();
    assert_eq!((moved.name(), moved.size), ("b.txt", 1));
    let copied = d.copy_to(&entry(&d, "c.txt").await, &top, "b.txt").await.unwrap();
    assert_eq!(copied.size, 3);
    assert_eq!(
        snapshot(root.path()),
        [("b.txt".to_string(), "CCC".to_string()), ("c.txt".to_string(), "CCC".to_string())]
    );
}

#[tokio::test]
async fn a_failed_replace_leaves_the_old_file_and_no_temp() {
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("old.txt"), "old").unwrap();
    std::fs::write(root.path().join("src.txt"), "new").unwrap();
    std::fs::create_dir(root.path().join("folder")).unwrap();
    std::fs::write(root.path().join("folder/in.txt"), "in").unwrap();
    let d = drive(root.path(), work.path());
    let top = d.root().await.unwrap();
    let src = entry(&d, "src.txt").await;
    let before = snapshot(root.path());

    // The source is gone by the time it is copied: the target must not be touched.
    std::fs::rename(root.path().join("src.txt"), work.path().join("away.txt")).unwrap();
    assert!(d.copy_to(&src, &top, "old.txt").await.is_err());
    assert!(d.move_to(&src, &top, "old.txt").await.is_err());
    std::fs::rename(work.path().join("away.txt"), root.path().join("src.txt")).unwrap();
    assert_eq!(snapshot(root.path()), before);

    // A folder is never replaced by a file, nor a file by a folder.
    let folder = entry(&d, "folder").await;
    assert!(matches!(d.copy_to(&src, &top, "folder").await, Err(DriveError::Exists | DriveError::IsADirectory)));
    assert!(matches!(d.move_to(&src, &top, "folder").await, Err(DriveError::Exists)));
    assert!(matches!(d.move_to(&folder, &top, "old.txt").await, Err(DriveError::Exists)));
    assert!(matches!(d.copy_to(&folder, &top, "old.txt").await, Err(DriveError::Exists)));
    let spool = work.path().join("up");
    std::fs::write(&spool, "upload").unwrap();
    let up = Upload { path: spool, size: 6, sha1: "x".into(), md5: "y".into(), mtime: None };
    assert!(matches!(d.put(&top, "folder", up).await, Err(DriveError::IsADirectory)));
    assert_eq!(snapshot(root.path()), before);
    assert!(temps_left(root.path()).is_empty());
}
