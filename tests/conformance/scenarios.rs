//! The scenarios every driver runs, through the `Mount` API (the path WebDAV requests
//! take). Each builds its own fresh mount, so they are independent of one another.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pandav::vfs::{DriveError, Entry};

use crate::suite::*;
use crate::{check, check_eq, check_err, ok};

macro_rules! scenarios {
    ($($name:ident: $writes:expr),* $(,)?) => {
        pub const ALL: &[Scenario] = &[
            $(Scenario { name: stringify!($name), writes: $writes, run: |fx| Box::pin($name(fx)) }),*
        ];
    };
}

const R: bool = false; // read scenarios: seeded content, any fixture
const W: bool = true; // need a writable drive

scenarios! {
    list_empty: R,
    list_many: R,
    stat_resolve: R,
    read_ranges: R,
    names_seeded: R,
    read_only_mount_refuses_writes: R,
    ttl_zero_sees_outside_changes: R,
    probe_names_missing: R,
    list_empty_root: W,
    mkdir: W,
    driver_mkdir_existing: W,
    rename_file: W,
    rename_folder: W,
    move_into_folder: W,
    move_onto_existing: W,
    copy_file: W,
    copy_folder: W,
    copy_folder_into_itself: W,
    remove_file: W,
    remove_folder_recursive: W,
    put_small: W,
    put_empty: W,
    put_large: W,
    overwrite: W,
    names_written: W,
    bad_names: W,
    driver_refuses_bad_names: W,
    missing_parents: W,
    cache_invalidation: W,
    probe_names_written: W,
    concurrent_puts: W,
    mtime_on_put: W,
    hashes_on_put: W,
}

const LONG_TTL: Duration = Duration::from_secs(3600);

/// Names that break URL building, encoding or normalisation somewhere.
const ODD_NAMES: &[&str] = &[
    "中文文件名.txt",
    "日本語 ファイル.mkv",
    "한국어.srt",
    "emoji 🎬🍿.mp4",
    "e\u{301}tude combining.txt", // e + COMBINING ACUTE (NFD)
    "\u{e9}tude precomposed.txt", // é (NFC): a different name
    "Ångström",
    "with space.txt",
    "double  space.txt",
    "100% done.txt",
    "%20literal.txt",
    "a%2Fb.txt",
    "#hash.txt",
    "what?.txt",
    "amp&plus+semi;eq=.txt",
    "quote'brackets[1](2){3}.txt",
    "~tilde,comma@at!.txt",
];

fn a_while_ago() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_000_000_000) // 2001-09-09
}

// ---------------------------------------------------------------------------------------
// Read scenarios (run against seeded content; also for read-only share drivers)
// ---------------------------------------------------------------------------------------

async fn list_empty(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new().dir("empty")).await?;
    let (dir, list) = ok!(m.list("empty").await);
    check!(dir.is_dir, "listed folder is not a dir: {dir:?}");
    check_eq!(dir.name(), "empty");
    check!(list.is_empty(), "empty folder lists {list:?}");
    // The root holds exactly what was seeded: no state, spool or temp files.
    check_eq!(ok!(names(&m, "").await), sorted(&["empty"]));
    Ok(())
}

async fn list_many(fx: &dyn Fixture) -> anyhow::Result<()> {
    const N: usize = 1234; // more than one page everywhere (115: 1,000-1,150; Aliyun: 100-200)
    let mut spec = Spec::new().dir("big");
    for i in 0..N {
        spec = spec.file(&format!("big/f{i:04}.txt"), "x".repeat(i % 17));
    }
    for d in 0..3 {
        spec = spec.dir(&format!("big/sub{d}"));
    }
    let m = fresh(fx, spec).await?;
    let (_, list) = ok!(m.list("big").await);
    check_eq!(list.len(), N + 3, "entry count");
    let mut seen = HashSet::new();
    for e in list.iter() {
        check!(seen.insert(e.name().to_string()), "{} listed twice", e.name());
        if let Some(i) = e.name().strip_prefix('f').and_then(|r| r.strip_suffix(".txt")) {
            let i: usize = i.parse()?;
            check!(i < N && !e.is_dir, "unexpected entry {e:?}");
            check_eq!(e.size, (i % 17) as u64, "size of {}", e.name());
        } else {
            check!(e.name().starts_with("sub") && e.is_dir, "unexpected entry {e:?}");
        }
    }
    // Lookups on the first, a middle and the last page.
    for i in [0, 617, N - 1] {
        let e = ok!(m.resolve(&format!("big/f{i:04}.txt")).await);
        check_eq!(e.size, (i % 17) as u64);
    }
    check!(ok!(m.resolve("big/sub2").await).is_dir, "sub2 is a dir");
    check_eq!(ok!(names(&m, "").await), sorted(&["big"]));
    Ok(())
}

async fn stat_resolve(fx: &dyn Fixture) -> anyhow::Result<()> {
    let spec = Spec::new().dir("a").dir("a/b").file("a/b/c.txt", "hello world").file("top.bin", vec![0u8; 3]);
    let m = fresh(fx, spec).await?;
    let root = ok!(m.resolve("").await);
    check!(root.is_dir, "root is not a dir: {root:?}");
    let a = ok!(m.resolve("a").await);
    check!(a.is_dir && a.name() == "a", "a: {a:?}");
    let c = ok!(m.resolve("a/b/c.txt").await);
    check!(!c.is_dir, "c.txt is a dir");
    check_eq!(c.name(), "c.txt");
    check_eq!(c.size, 11);
    check!(c.modified > UNIX_EPOCH + Duration::from_secs(1_000_000_000), "modified time not set: {:?}", c.modified);
    // The listing and the lookup agree on the entry.
    let from_list = ok!(listed(&m, "a/b", "c.txt").await);
    let from_list = from_list.ok_or_else(|| anyhow::anyhow!("c.txt not listed"))?;
    check_eq!((from_list.id(), from_list.size, from_list.is_dir), (c.id(), c.size, c.is_dir));
    check_eq!(ok!(names(&m, "a").await), sorted(&["b"]));
    check_eq!(ok!(names(&m, "").await), sorted(&["a", "top.bin"]));
    // Missing things.
    check_err!(m.resolve("nope").await, DriveError::NotFound);
    check_err!(m.resolve("a/nope").await, DriveError::NotFound);
    check_err!(m.resolve("nope/deeper").await, DriveError::NotFound);
    check_err!(m.resolve("a/b/c.txt/x").await, DriveError::NotFound);
    check_err!(m.list("nope").await, DriveError::NotFound);
    check_err!(m.list("a/nope").await, DriveError::NotFound);
    check_err!(m.list("a/b/c.txt").await, DriveError::NotADirectory);
    Ok(())
}

async fn read_ranges(fx: &dyn Fixture) -> anyhow::Result<()> {
    let data = noise(300_001, 1); // more than one 256 KiB read chunk
    let len = data.len() as u64;
    let m = fresh(fx, Spec::new().file("r.bin", data.clone()).file("zero.bin", "")).await?;
    same_bytes("full read", &ok!(read_all(&m, "r.bin").await), &data)?;
    let cases: &[(u64, Option<u64>)] = &[
        (0, Some(1)),
        (0, Some(100)),
        (1000, Some(5000)),
        (262_140, Some(262_150)), // across a chunk boundary
        (len - 100, None),
        (len - 100, Some(len)),
        (len - 1, None),
        (len - 10, Some(len + 1000)), // end past the end: clipped
        (12_345, None),
    ];
    for &(start, end) in cases {
        let got = ok!(read_range(&m, "r.bin", range(start, end)).await);
        let e = end.unwrap_or(len).min(len) as usize;
        same_bytes(&format!("range {start}..{end:?}"), &got, &data[start as usize..e])?;
    }
    // At or past the end: no bytes (an error is fine too), never data.
    for start in [len, len + 10, len + 1_000_000] {
        if let Ok(got) = read_range(&m, "r.bin", range(start, None)).await {
            check!(got.is_empty(), "read from {start} (size {len}) gave {} bytes", got.len());
        }
    }
    check_eq!(ok!(read_all(&m, "zero.bin").await).len(), 0);
    Ok(())
}

async fn names_seeded(fx: &dyn Fixture) -> anyhow::Result<()> {
    let mut spec = Spec::new().dir("目录 📁 #1%");
    for n in ODD_NAMES {
        spec = spec.file(n, n.as_bytes());
    }
    spec = spec.file("目录 📁 #1%/inner ?.txt", "inner");
    let m = fresh(fx, spec).await?;
    let mut want: Vec<&str> = ODD_NAMES.to_vec();
    want.push("目录 📁 #1%");
    check_eq!(ok!(names(&m, "").await), sorted(&want));
    for n in ODD_NAMES {
        let e = ok!(m.resolve(n).await);
        check_eq!(e.name(), *n);
        same_bytes(n, &ok!(read_all(&m, n).await), n.as_bytes())?;
    }
    check_eq!(ok!(names(&m, "目录 📁 #1%").await), sorted(&["inner ?.txt"]));
    same_bytes("inner", &ok!(read_all(&m, "目录 📁 #1%/inner ?.txt").await), b"inner")?;
    Ok(())
}

async fn read_only_mount_refuses_writes(fx: &dyn Fixture) -> anyhow::Result<()> {
    let spec = Spec::new().file("f", "data").dir("d").file("d/x", "x").read_only();
    let m = fresh(fx, spec).await?;
    check!(m.read_only(), "mount built read-only does not say so");
    check_err!(m.mkdir("n").await, DriveError::ReadOnly);
    check_err!(m.mkdir("d/n").await, DriveError::ReadOnly);
    check_err!(put_bytes(&m, "n", b"new", None).await, DriveError::ReadOnly);
    check_err!(put_bytes(&m, "f", b"overwrite", None).await, DriveError::ReadOnly);
    check_err!(m.rename("f", "g").await, DriveError::ReadOnly);
    check_err!(m.rename("d", "e").await, DriveError::ReadOnly);
    check_err!(m.copy("f", "g").await, DriveError::ReadOnly);
    check_err!(m.copy("d", "e").await, DriveError::ReadOnly);
    check_err!(m.remove("f").await, DriveError::ReadOnly);
    check_err!(m.remove("d").await, DriveError::ReadOnly);
    check_err!(m.set_mtime("f", a_while_ago()).await, DriveError::ReadOnly);
    // Nothing changed and reads still work.
    check_eq!(ok!(names(&m, "").await), sorted(&["d", "f"]));
    check_eq!(ok!(names(&m, "d").await), sorted(&["x"]));
    same_bytes("f", &ok!(read_all(&m, "f").await), b"data")?;
    Ok(())
}

/// With `cache_ttl = 0`, changes made by someone else show at once. Needs a fixture
/// with `TestMount::outside` and a zero TTL; otherwise nothing to check.
async fn ttl_zero_sees_outside_changes(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new().dir("d").file("d/a", "a").ttl(Duration::ZERO)).await?;
    let Some(outside) = m.outside.as_ref() else {
        return Ok(());
    };
    check_eq!(ok!(names(&m, "d").await), sorted(&["a"]));
    outside.write_file("d/ghost", b"boo").await?;
    check_eq!(ok!(names(&m, "d").await), sorted(&["a", "ghost"]));
    check_eq!(ok!(m.resolve("d/ghost").await).size, 3);
    outside.remove("d/a").await?;
    check_err!(m.resolve("d/a").await, DriveError::NotFound);
    check_eq!(ok!(names(&m, "d").await), sorted(&["ghost"]));
    Ok(())
}

async fn probe_names_missing(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new().dir("d").file("d/real", "r")).await?;
    ok!(m.list("d").await);
    for n in ["._real", ".DS_Store", "desktop.ini", "Thumbs.db"] {
        check_err!(m.resolve(&format!("d/{n}")).await, DriveError::NotFound);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Write scenarios
// ---------------------------------------------------------------------------------------

async fn list_empty_root(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new()).await?;
    let (root, list) = ok!(m.list("").await);
    check!(root.is_dir, "root not a dir");
    check!(list.is_empty(), "fresh root lists {list:?}");
    Ok(())
}

async fn mkdir(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new()).await?;
    let d = ok!(m.mkdir("d").await);
    check!(d.is_dir, "mkdir returned a file: {d:?}");
    check_eq!(d.name(), "d");
    check!(ok!(m.resolve("d").await).is_dir, "d resolves to a file");
    check_eq!(ok!(names(&m, "").await), sorted(&["d"]));
    check!(ok!(names(&m, "d").await).is_empty(), "new folder not empty");
    check_err!(m.mkdir("d").await, DriveError::Exists);
    let e = ok!(m.mkdir("d/e").await);
    check!(e.is_dir && e.name() == "e", "{e:?}");
    check_eq!(ok!(names(&m, "d").await), sorted(&["e"]));
    check_err!(m.mkdir("d/x/y").await, DriveError::NotFound);
    ok!(put_bytes(&m, "f", b"file", None).await);
    check_err!(m.mkdir("f").await, DriveError::Exists);
    check_err!(m.mkdir("f/x").await, DriveError::NotADirectory);
    // No renamed duplicates ("d (1)") anywhere.
    check_eq!(ok!(names(&m, "").await), sorted(&["d", "f"]));
    check_eq!(ok!(names(&m, "d").await), sorted(&["e"]));
    Ok(())
}

/// The drive itself (past the mount's cache) refuses to create a folder whose name is
/// taken, rather than auto-renaming it.
async fn driver_mkdir_existing(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new()).await?;
    ok!(m.mkdir("d").await);
    ok!(put_bytes(&m, "f", b"file", None).await);
    let root = ok!(m.resolve("").await);
    for n in ["d", "f"] {
        match m.drive.mkdir(&root, n).await {
            Err(e) if is_exists(&e) => {}
            other => anyhow::bail!("Drive::mkdir of existing {n:?}: want Exists, got {other:?}"),
        }
    }
    m.invalidate("");
    check_eq!(ok!(names(&m, "").await), sorted(&["d", "f"]));
    check!(!ok!(m.resolve("f").await).is_dir, "f became a folder");
    Ok(())
}

async fn rename_file(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new()).await?;
    ok!(put_bytes(&m, "a.txt", b"alpha", None).await);
    check_eq!(ok!(names(&m, "").await), sorted(&["a.txt"]));
    let b = ok!(m.rename("a.txt", "b.txt").await);
    check_eq!((b.name(), b.size, b.is_dir), ("b.txt", 5, false));
    check_err!(m.resolve("a.txt").await, DriveError::NotFound);
    check_eq!(ok!(names(&m, "").await), sorted(&["b.txt"]));
    same_bytes("b.txt", &ok!(read_all(&m, "b.txt").await), b"alpha")?;
    Ok(())
}

async fn rename_folder(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new()).await?;
    ok!(m.mkdir("d").await);
    ok!(m.mkdir("d/sub").await);
    ok!(put_bytes(&m, "d/x.txt", b"x", None).await);
    ok!(put_bytes(&m, "d/sub/y.txt", b"yy", None).await);
    // Prime the caches of the folders that move.
    check_eq!(ok!(names(&m, "d").await), sorted(&["sub", "x.txt"]));
    check_eq!(ok!(names(&m, "d/sub").await), sorted(&["y.txt"]));
    let e = ok!(m.rename("d", "e").await);
    check!(e.is_dir && e.name() == "e", "{e:?}");
    check_err!(m.resolve("d").await, DriveError::NotFound);
    check_err!(m.resolve("d/sub/y.txt").await, DriveError::NotFound);
    check_eq!(ok!(names(&m, "").await), sorted(&["e"]));
    check_eq!(ok!(names(&m, "e").await), sorted(&["sub", "x.txt"]));
    check_eq!(ok!(names(&m, "e/sub").await), sorted(&["y.txt"]));
    same_bytes("e/sub/y.txt", &ok!(read_all(&m, "e/sub/y.txt").await), b"yy")?;
    // A new folder under the old name starts empty (no stale cached children).
    ok!(m.mkdir("d").await);
    check!(ok!(names(&m, "d").await).is_empty(), "new d shows old children");
    check_err!(m.resolve("d/sub").await, DriveError::NotFound);
    Ok(())
}

async fn move_into_folder(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new()).await?;
    ok!(put_bytes(&m, "f.txt", b"file", None).await);
    ok!(m.mkdir("dst").await);
    ok!(m.mkdir("d").await);
    ok!(put_bytes(&m, "d/in.txt", b"in", None).await);
    check_eq!(ok!(names(&m, "dst").await), Vec::<String>::new());
    let f = ok!(m.rename("f.txt", "dst/f.txt").await);
    check_eq!(f.name(), "f.txt");
    ok!(m.rename("d", "dst/d").await);
    check_eq!(ok!(names(&m, "").await), sorted(&["dst"]));
    check_eq!(ok!(names(&m, "dst").await), sorted(&["d", "f.txt"]));
    same_bytes("moved file", &ok!(read_all(&m, "dst/f.txt").await), b"file")?;
    same_bytes("moved folder's file", &ok!(read_all(&m, "dst/d/in.txt").await), b"in")?;
    // Move and rename at once, back to the root.
    let g = ok!(m.rename("dst/f.txt", "g.txt").await);
    check_eq!(g.name(), "g.txt");
    check_eq!(ok!(names(&m, "").await), sorted(&["dst", "g.txt"]));
    check_eq!(ok!(names(&m, "dst").await), sorted(&["d"]));
    // A folder cannot move into itself.
    check_err!(m.rename("dst", "dst/d/inner").await, DriveError::Forbidden(_));
    check_eq!(ok!(names(&m, "dst/d").await), sorted(&["in.txt"]));
    Ok(())
}

async fn move_onto_existing(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new()).await?;
    ok!(put_bytes(&m, "a", b"A", None).await);
    ok!(put_bytes(&m, "b", b"BB", None).await);
    check_err!(m.rename("a", "b").await, DriveError::Exists);
    same_bytes("a after refused move", &ok!(read_all(&m, "a").await), b"A")?;
    same_bytes("b after refused move", &ok!(read_all(&m, "b").await), b"BB")?;
    check_eq!(ok!(names(&m, "").await), sorted(&["a", "b"]));
    ok!(m.remove("b").await);
    ok!(m.rename("a", "b").await);
    same_bytes("b after move", &ok!(read_all(&m, "b").await), b"A")?;
    check_eq!(ok!(names(&m, "").await), sorted(&["b"]));
    // Folders.
    ok!(m.mkdir("x").await);
    ok!(m.mkdir("y").await);
    ok!(put_bytes(&m, "x/1", b"1", None).await);
    ok!(put_bytes(&m, "y/2", b"2", None).await);
    check_err!(m.rename("x", "y").await, DriveError::Exists);
    check_eq!(ok!(names(&m, "x").await), sorted(&["1"]));
    check_eq!(ok!(names(&m, "y").await), sorted(&["2"]));
    // A file onto a folder and a folder onto a file.
    check_err!(m.rename("b", "y").await, DriveError::Exists);
    check_err!(m.rename("x", "b").await, DriveError::Exists);
    check_eq!(ok!(names(&m, "").await), sorted(&["b", "x", "y"]));
    ok!(m.remove("y").await);
    ok!(m.rename("x", "y").await);
    check_eq!(ok!(names(&m, "y").await), sorted(&["1"]));
    check_eq!(ok!(names(&m, "").await), sorted(&["b", "y"]));
    Ok(())
}

async fn copy_file(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new()).await?;
    ok!(put_bytes(&m, "a", b"original", None).await);
    ok!(m.mkdir("dir").await);
    check_eq!(ok!(names(&m, "").await), sorted(&["a", "dir"]));
    let b = ok!(m.copy("a", "b").await);
    check_eq!((b.name(), b.size, b.is_dir), ("b", 8, false));
    for h in [&b.hashes().sha1, &b.hashes().md5].into_iter().flatten() {
        check!(*h == sha1_hex(b"original") || *h == md5_hex(b"original"), "copy's hash {h} does not match its content");
    }
    ok!(m.copy("a", "dir/a2").await);
    check_eq!(ok!(names(&m, "").await), sorted(&["a", "b", "dir"]));
    check_eq!(ok!(names(&m, "dir").await), sorted(&["a2"]));
    same_bytes("copy", &ok!(read_all(&m, "b").await), b"original")?;
    // Independent afterwards.
    ok!(put_bytes(&m, "a", b"changed!!", None).await);
    same_bytes("copy after source changed", &ok!(read_all(&m, "b").await), b"original")?;
    same_bytes("copy in folder", &ok!(read_all(&m, "dir/a2").await), b"original")?;
    ok!(m.remove("b").await);
    same_bytes("source after copy removed", &ok!(read_all(&m, "a").await), b"changed!!")?;
    Ok(())
}

async fn copy_folder(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new()).await?;
    for d in ["d", "d/sub", "d/sub/deep"] {
        ok!(m.mkdir(d).await);
    }
    ok!(put_bytes(&m, "d/x", b"xx", None).await);
    ok!(put_bytes(&m, "d/sub/y", b"yy", None).await);
    ok!(put_bytes(&m, "d/sub/deep/z", b"", None).await);
    let e = ok!(m.copy("d", "e").await);
    check!(e.is_dir && e.name() == "e", "{e:?}");
    check_eq!(ok!(names(&m, "").await), sorted(&["d", "e"]));
    check_eq!(ok!(names(&m, "e").await), sorted(&["sub", "x"]));
    check_eq!(ok!(names(&m, "e/sub").await), sorted(&["deep", "y"]));
    check_eq!(ok!(names(&m, "e/sub/deep").await), sorted(&["z"]));
    same_bytes("e/x", &ok!(read_all(&m, "e/x").await), b"xx")?;
    same_bytes("e/sub/y", &ok!(read_all(&m, "e/sub/y").await), b"yy")?;
    // Independent afterwards.
    ok!(put_bytes(&m, "e/x", b"new", None).await);
    same_bytes("d/x after copy changed", &ok!(read_all(&m, "d/x").await), b"xx")?;
    ok!(m.remove("d").await);
    same_bytes("copy after source removed", &ok!(read_all(&m, "e/sub/y").await), b"yy")?;
    check_eq!(ok!(names(&m, "").await), sorted(&["e"]));
    Ok(())
}

/// Copying a folder into its own subtree must be refused, like moving it there.
async fn copy_folder_into_itself(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new()).await?;
    ok!(m.mkdir("d").await);
    ok!(m.mkdir("d/sub").await);
    ok!(put_bytes(&m, "d/x", b"x", None).await);
    let r = m.copy("d", "d/sub/copy").await;
    let after_sub = ok!(names(&m, "d/sub").await);
    check_err!(r, DriveError::Forbidden(_));
    check_eq!(after_sub, Vec::<String>::new(), "d/sub after the refused copy");
    check_err!(m.copy("", "d/root-copy").await, DriveError::Forbidden(_));
    check_eq!(ok!(names(&m, "d").await), sorted(&["sub", "x"]));
    Ok(())
}

async fn remove_file(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new()).await?;
    ok!(put_bytes(&m, "f", b"f", None).await);
    ok!(put_bytes(&m, "keep", b"k", None).await);
    check_eq!(ok!(names(&m, "").await), sorted(&["f", "keep"]));
    ok!(m.remove("f").await);
    check_err!(m.resolve("f").await, DriveError::NotFound);
    check_eq!(ok!(names(&m, "").await), sorted(&["keep"]));
    check_err!(m.remove("f").await, DriveError::NotFound);
    check_err!(m.remove("nope/x").await, DriveError::NotFound);
    check_err!(m.remove("").await, DriveError::Forbidden(_));
    check_eq!(ok!(names(&m, "").await), sorted(&["keep"]));
    Ok(())
}

async fn remove_folder_recursive(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new()).await?;
    for d in ["d", "d/sub", "d/sub/deep"] {
        ok!(m.mkdir(d).await);
    }
    ok!(put_bytes(&m, "d/x", b"x", None).await);
    ok!(put_bytes(&m, "d/sub/y", b"y", None).await);
    ok!(put_bytes(&m, "d/sub/deep/z", b"z", None).await);
    for d in ["", "d", "d/sub", "d/sub/deep"] {
        ok!(m.list(d).await); // prime every cache below
    }
    ok!(m.remove("d").await);
    for p in ["d", "d/x", "d/sub", "d/sub/y", "d/sub/deep", "d/sub/deep/z"] {
        check_err!(m.resolve(p).await, DriveError::NotFound);
    }
    check!(ok!(names(&m, "").await).is_empty(), "root not empty after remove");
    // Recreated folders start empty.
    ok!(m.mkdir("d").await);
    check!(ok!(names(&m, "d").await).is_empty(), "recreated d shows old children");
    ok!(m.mkdir("d/sub").await);
    check!(ok!(names(&m, "d/sub").await).is_empty(), "recreated d/sub shows old children");
    Ok(())
}

async fn put_small(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new()).await?;
    // While the body is spooling, nothing half-written shows.
    let dir = m.spool_dir_for("").await;
    let mut spool = ok!(pandav::vfs::spool::Spool::create(&dir).await);
    ok!(spool.write(b"hel").await);
    check!(ok!(names(&m, "").await).is_empty(), "spool file visible during upload");
    check_err!(m.resolve("hello.txt").await, DriveError::NotFound);
    ok!(spool.write(b"lo").await);
    let spooled = ok!(spool.finish(None).await);
    let e = ok!(m.put("hello.txt", spooled.upload).await);
    drop(spooled.guard);
    check_eq!((e.name(), e.size, e.is_dir), ("hello.txt", 5, false));
    check_hashes(&e, b"hello")?;
    same_bytes("hello.txt", &ok!(read_all(&m, "hello.txt").await), b"hello")?;
    let l = ok!(listed(&m, "", "hello.txt").await);
    check_eq!(l.map(|l| l.size), Some(5));
    check_eq!(ok!(names(&m, "").await), sorted(&["hello.txt"]));
    Ok(())
}

async fn put_empty(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new()).await?;
    let e = ok!(put_bytes(&m, "empty", b"", None).await);
    check_eq!((e.size, e.is_dir), (0, false));
    check_hashes(&e, b"")?;
    check_eq!(ok!(m.resolve("empty").await).size, 0);
    check_eq!(ok!(read_all(&m, "empty").await).len(), 0);
    check_eq!(ok!(listed(&m, "", "empty").await).map(|e| e.size), Some(0));
    Ok(())
}

async fn put_large(fx: &dyn Fixture) -> anyhow::Result<()> {
    let data = noise(21 * 1024 * 1024 + 77, 7);
    let m = fresh(fx, Spec::new()).await?;
    ok!(m.mkdir("big").await);
    let e = ok!(put_chunks(&m, "big/large.bin", data.chunks(1 << 20), None).await);
    check_eq!(e.size, data.len() as u64);
    check_hashes(&e, &data)?;
    check_eq!(ok!(m.resolve("big/large.bin").await).size, data.len() as u64);
    let got = ok!(read_all(&m, "big/large.bin").await);
    check_eq!(got.len(), data.len());
    check_eq!(sha1_hex(&got), sha1_hex(&data), "content of the large file");
    let mid = 16 * 1024 * 1024 - 333;
    let part = ok!(read_range(&m, "big/large.bin", range(mid, Some(mid + 1_000_000))).await);
    same_bytes("middle range", &part, &data[mid as usize..mid as usize + 1_000_000])?;
    Ok(())
}

async fn overwrite(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new()).await?;
    ok!(put_bytes(&m, "o.txt", b"old content that is longer", None).await);
    check_eq!(ok!(m.resolve("o.txt").await).size, 26); // cached now
    let e = ok!(put_bytes(&m, "o.txt", b"new", None).await);
    check_eq!(e.size, 3);
    check_hashes(&e, b"new")?;
    check_eq!(ok!(m.resolve("o.txt").await).size, 3);
    same_bytes("overwritten", &ok!(read_all(&m, "o.txt").await), b"new")?;
    check_eq!(ok!(names(&m, "").await), sorted(&["o.txt"])); // one file, no duplicate
    ok!(put_bytes(&m, "o.txt", b"", None).await);
    check_eq!(ok!(m.resolve("o.txt").await).size, 0);
    check_eq!(ok!(read_all(&m, "o.txt").await).len(), 0);
    // A file cannot replace a folder; the folder stays intact.
    ok!(m.mkdir("d").await);
    ok!(put_bytes(&m, "d/child", b"c", None).await);
    let r = put_bytes(&m, "d", b"not a folder", None).await;
    check!(r.is_err(), "put over a folder succeeded: {r:?}");
    check!(ok!(m.resolve("d").await).is_dir, "folder replaced by a file");
    check_eq!(ok!(names(&m, "d").await), sorted(&["child"]));
    check_eq!(ok!(names(&m, "").await), sorted(&["d", "o.txt"]));
    Ok(())
}

async fn names_written(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new()).await?;
    for n in ODD_NAMES {
        let e = ok!(put_bytes(&m, n, n.as_bytes(), None).await);
        check_eq!(e.name(), *n, "name returned by put");
    }
    check_eq!(ok!(names(&m, "").await), sorted(ODD_NAMES));
    for n in ODD_NAMES {
        check_eq!(ok!(m.resolve(n).await).name(), *n);
        same_bytes(n, &ok!(read_all(&m, n).await), n.as_bytes())?;
    }
    // Folders with odd names, files inside them, renames between odd names.
    let dir = "目录 📁 #1% ?";
    let d = ok!(m.mkdir(dir).await);
    check_eq!(d.name(), dir);
    for n in &ODD_NAMES[..6] {
        ok!(m.rename(n, &format!("{dir}/{n}")).await);
    }
    let mut want: Vec<&str> = ODD_NAMES[6..].to_vec();
    want.push(dir);
    check_eq!(ok!(names(&m, "").await), sorted(&want));
    check_eq!(ok!(names(&m, dir).await), sorted(&ODD_NAMES[..6]));
    let renamed = format!("{dir}/renamed ✓ %41#?.txt");
    ok!(m.rename(&format!("{dir}/{}", ODD_NAMES[0]), &renamed).await);
    same_bytes("renamed", &ok!(read_all(&m, &renamed).await), ODD_NAMES[0].as_bytes())?;
    ok!(m.copy(dir, "copy ☃").await);
    check_eq!(ok!(names(&m, "copy ☃").await), ok!(names(&m, dir).await));
    Ok(())
}

async fn bad_names(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new()).await?;
    ok!(put_bytes(&m, "f", b"x", None).await);
    ok!(m.mkdir("sub").await);
    let long = "n".repeat(256);
    let bad = ["..", ".", "", "a\0b", long.as_str()];
    for b in bad {
        for p in [b.to_string(), format!("sub/{b}")] {
            check_err!(m.mkdir(&p).await, DriveError::InvalidInput(_));
            check_err!(put_bytes(&m, &p, b"x", None).await, DriveError::InvalidInput(_));
            check_err!(m.rename("f", &p).await, DriveError::InvalidInput(_) | DriveError::Forbidden(_));
            check_err!(m.copy("f", &p).await, DriveError::InvalidInput(_) | DriveError::Forbidden(_));
        }
    }
    // Paths never climb out or skip components.
    for p in ["..", "../f", "sub/../f", "sub/..", "./f", "sub//f", "a\0b"] {
        let r = m.resolve(p).await;
        check!(matches!(r, Err(DriveError::NotFound) | Err(DriveError::InvalidInput(_))), "resolve({p:?}) = {r:?}");
    }
    check_eq!(ok!(names(&m, "").await), sorted(&["f", "sub"]));
    check!(ok!(names(&m, "sub").await).is_empty(), "something was created in sub");
    Ok(())
}

/// Drives called directly (past the mount's checks) refuse names that are paths or
/// that climb: a driver must never turn `sub/x` into a nested path or `""` into its
/// parent. Every (operation, name) pair runs on a fresh mount; all offenders are listed.
async fn driver_refuses_bad_names(fx: &dyn Fixture) -> anyhow::Result<()> {
    let mut offenders = Vec::new();
    for b in ["..", ".", "", "sub/x", "a\0b"] {
        for op in ["mkdir", "move_to", "copy_to", "put"] {
            let m = fresh(fx, Spec::new()).await?;
            let f = ok!(put_bytes(&m, "f", b"x", None).await);
            ok!(m.mkdir("sub").await);
            let root = ok!(m.resolve("").await);
            let r = match op {
                "mkdir" => m.drive.mkdir(&root, b).await,
                "move_to" => m.drive.move_to(&f, &root, b).await,
                "copy_to" => m.drive.copy_to(&f, &root, b).await,
                _ => {
                    let mut spool = ok!(pandav::vfs::spool::Spool::create(&m.opts.spool_dir).await);
                    ok!(spool.write(b"y").await);
                    let spooled = ok!(spool.finish(None).await);
                    m.drive.put(&root, b, spooled.upload).await
                }
            };
            m.invalidate("");
            m.invalidate("sub");
            let (top, below) = (ok!(names(&m, "").await), ok!(names(&m, "sub").await));
            let intact = top == sorted(&["f", "sub"]) && below.is_empty();
            if !matches!(r, Err(DriveError::InvalidInput(_))) || !intact {
                offenders.push(format!(
                    "{op}({b:?}) = {r:?}{}",
                    if intact { String::new() } else { format!(", tree now {top:?} + sub/{below:?}") }
                ));
            }
        }
    }
    check!(offenders.is_empty(), "bad names not refused with InvalidInput:\n      {}", offenders.join("\n      "));
    Ok(())
}

async fn missing_parents(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new()).await?;
    ok!(put_bytes(&m, "f", b"f", None).await);
    check_err!(m.mkdir("nope/x").await, DriveError::NotFound);
    check_err!(put_bytes(&m, "nope/x", b"x", None).await, DriveError::NotFound);
    check_err!(put_bytes(&m, "nope/deeper/x", b"x", None).await, DriveError::NotFound);
    check_err!(m.rename("f", "nope/f").await, DriveError::NotFound);
    check_err!(m.copy("f", "nope/f").await, DriveError::NotFound);
    check_err!(m.rename("nope/a", "b").await, DriveError::NotFound);
    check_err!(m.copy("nope/a", "b").await, DriveError::NotFound);
    check_err!(m.remove("nope").await, DriveError::NotFound);
    check_err!(m.list("nope").await, DriveError::NotFound);
    check_err!(m.set_mtime("nope", a_while_ago()).await, DriveError::NotFound);
    // A file as parent.
    check_err!(put_bytes(&m, "f/x", b"x", None).await, DriveError::NotADirectory);
    check_err!(m.mkdir("f/x").await, DriveError::NotADirectory);
    check_err!(m.copy("f", "f/x").await, DriveError::NotADirectory);
    check_eq!(ok!(names(&m, "").await), sorted(&["f"]));
    same_bytes("f", &ok!(read_all(&m, "f").await), b"f")?;
    Ok(())
}

/// With a long TTL, every write through the mount shows at once. When the fixture can
/// write behind the mount's back, also check that the cache is really in use (so the
/// rest of this scenario is not passing vacuously).
async fn cache_invalidation(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new().dir("d").file("d/a.txt", "a").ttl(LONG_TTL)).await?;
    check_eq!(ok!(names(&m, "").await), sorted(&["d"]));
    check_eq!(ok!(names(&m, "d").await), sorted(&["a.txt"]));
    check_eq!(ok!(m.resolve("d/a.txt").await).size, 1);
    if let Some(outside) = m.outside.as_ref() {
        outside.write_file("d/ghost", b"boo").await?;
        check_eq!(ok!(names(&m, "d").await), sorted(&["a.txt"]), "cache not in use");
        check_err!(m.resolve("d/ghost").await, DriveError::NotFound);
        outside.remove("d/ghost").await?;
    }
    ok!(put_bytes(&m, "d/new.txt", b"new!", None).await);
    check_eq!(ok!(names(&m, "d").await), sorted(&["a.txt", "new.txt"]));
    check_eq!(ok!(listed(&m, "d", "new.txt").await).map(|e| e.size), Some(4));
    ok!(put_bytes(&m, "d/a.txt", b"longer", None).await);
    check_eq!(ok!(m.resolve("d/a.txt").await).size, 6);
    check_eq!(ok!(listed(&m, "d", "a.txt").await).map(|e| e.size), Some(6));
    ok!(m.mkdir("d/sub").await);
    check_eq!(ok!(names(&m, "d").await), sorted(&["a.txt", "new.txt", "sub"]));
    check!(ok!(names(&m, "d/sub").await).is_empty(), "new folder not empty");
    ok!(put_bytes(&m, "d/sub/z", b"z", None).await);
    check_eq!(ok!(names(&m, "d/sub").await), sorted(&["z"]));
    ok!(m.rename("d/new.txt", "d/sub/new2.txt").await);
    check_eq!(ok!(names(&m, "d").await), sorted(&["a.txt", "sub"]));
    check_eq!(ok!(names(&m, "d/sub").await), sorted(&["new2.txt", "z"]));
    ok!(m.copy("d/a.txt", "c.txt").await);
    check_eq!(ok!(names(&m, "").await), sorted(&["c.txt", "d"]));
    ok!(m.rename("d/sub", "sub2").await);
    check_eq!(ok!(names(&m, "").await), sorted(&["c.txt", "d", "sub2"]));
    check_eq!(ok!(names(&m, "sub2").await), sorted(&["new2.txt", "z"]));
    check_err!(m.resolve("d/sub/z").await, DriveError::NotFound);
    ok!(m.remove("sub2").await);
    check_err!(m.resolve("sub2/z").await, DriveError::NotFound);
    check_eq!(ok!(names(&m, "").await), sorted(&["c.txt", "d"]));
    if m.caps().set_mtime {
        ok!(m.set_mtime("d/a.txt", a_while_ago()).await);
        let e = ok!(m.resolve("d/a.txt").await);
        check!(
            near(e.modified, a_while_ago(), fx.profile().mtime_precision),
            "set_mtime not visible: {:?}",
            e.modified
        );
    }
    Ok(())
}

/// Names the mount answers from cache (`._*`, `.DS_Store`) still show once written.
async fn probe_names_written(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new().ttl(LONG_TTL)).await?;
    ok!(m.mkdir("d").await);
    ok!(m.list("d").await);
    for n in ["._movie.mkv", ".DS_Store"] {
        check_err!(m.resolve(&format!("d/{n}")).await, DriveError::NotFound);
        ok!(put_bytes(&m, &format!("d/{n}"), b"meta", None).await);
        check_eq!(ok!(m.resolve(&format!("d/{n}")).await).size, 4, "{n} after put");
        ok!(m.remove(&format!("d/{n}")).await);
        check_err!(m.resolve(&format!("d/{n}")).await, DriveError::NotFound);
    }
    Ok(())
}

async fn concurrent_puts(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new().dir("c").ttl(LONG_TTL)).await?;
    let mount = &m.mount;
    let puts = (0..24).map(|i| async move {
        let _ = mount.list("c").await; // listings racing the writes
        put_bytes(mount, &format!("c/{i:02}"), format!("body {i}").as_bytes(), None).await
    });
    for r in futures_util::future::join_all(puts).await {
        ok!(r);
    }
    let want: Vec<String> = (0..24).map(|i| format!("{i:02}")).collect();
    check_eq!(ok!(names(&m, "c").await), want);
    for i in 0..24 {
        let got = ok!(read_all(&m, &format!("c/{i:02}")).await);
        same_bytes("concurrent put", &got, format!("body {i}").as_bytes())?;
    }
    Ok(())
}

async fn mtime_on_put(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new()).await?;
    if !m.caps().set_mtime {
        return Ok(());
    }
    let tol = fx.profile().mtime_precision;
    let t1 = a_while_ago();
    let e = ok!(put_bytes(&m, "f", b"one", Some(t1)).await);
    check!(near(e.modified, t1, tol), "put returned modified {:?}", e.modified);
    check!(near(ok!(m.resolve("f").await).modified, t1, tol), "resolve after put");
    let l = ok!(listed(&m, "", "f").await).ok_or_else(|| anyhow::anyhow!("f not listed"))?;
    check!(near(l.modified, t1, tol), "listed modified {:?}", l.modified);
    let t2 = UNIX_EPOCH + Duration::from_secs(1_234_567_890);
    ok!(put_bytes(&m, "f", b"two", Some(t2)).await);
    check!(near(ok!(m.resolve("f").await).modified, t2, tol), "mtime of overwrite");
    // No mtime asked for: about now.
    let e = ok!(put_bytes(&m, "g", b"now", None).await);
    check!(
        near(e.modified, SystemTime::now(), Duration::from_secs(3600)),
        "modified of a put without mtime: {:?}",
        e.modified
    );
    let t3 = UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    ok!(m.set_mtime("g", t3).await);
    check!(near(ok!(m.resolve("g").await).modified, t3, tol), "set_mtime");
    Ok(())
}

async fn hashes_on_put(fx: &dyn Fixture) -> anyhow::Result<()> {
    let m = fresh(fx, Spec::new()).await?;
    let mut any = false;
    for (i, data) in [Vec::new(), b"abc".to_vec(), noise(1 << 20, 3)].iter().enumerate() {
        let name = format!("h{i}");
        let e = ok!(put_bytes(&m, &name, data, None).await);
        check_hashes(&e, data)?;
        any |= e.hashes().sha1.is_some() || e.hashes().md5.is_some();
        // Hashes a listing reports must match too.
        let l = ok!(listed(&m, "", &name).await).ok_or_else(|| anyhow::anyhow!("not listed"))?;
        check_hashes(&l, data)?;
    }
    if m.caps().rapid_upload_sha1 {
        check!(any, "a drive with rapid upload by SHA-1 returned no hashes from put");
    }
    Ok(())
}

fn check_hashes(e: &Entry, data: &[u8]) -> anyhow::Result<()> {
    if let Some(h) = &e.hashes().sha1 {
        check_eq!(h.as_str(), sha1_hex(data).as_str(), "sha1 of {}", e.name());
    }
    if let Some(h) = &e.hashes().md5 {
        check_eq!(h.as_str(), md5_hex(data).as_str(), "md5 of {}", e.name());
    }
    Ok(())
}
