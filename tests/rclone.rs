//! rclone (a current release, not Debian's 1.60) as a `webdav` remote of the real binary.
//!
//! Vendor `owncloud`: it is the rclone vendor whose quirks match what pandav offers.
//! rclone then sends `X-OC-Mtime` with every PUT and believes the server when it answers
//! `X-OC-Mtime: accepted` (so modification times survive uploads), asks PROPFIND for
//! `oc:checksums` (which we serve when a hash is known), streams uploads of unknown size
//! (`canStream`), and uses PROPPATCH of `DAV:lastmodified` to change the time of an
//! object that is already there. `nextcloud` would try its chunked-upload API
//! (`/remote.php/dav/uploads/…`) which we do not have; `other` never preserves mtimes.
//!
//! The remote is configured through `RCLONE_CONFIG_PD_*` environment variables, with an
//! empty config file of its own, so the user's rclone.conf is never read.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use common::*;

const USER: &str = "rc";
const PASS: &str = "rclone pass";
const BIG: usize = 50 * 1024 * 1024;

struct Rclone {
    bin: PathBuf,
    env: Vec<(String, String)>,
}

impl Rclone {
    /// rclone pointed at `srv` as remote `pd:`.
    fn new(t: &TestDir, srv: &Server) -> Rclone {
        let bin = tool("rclone");
        let v = run(Command::new(&bin).arg("version"), Duration::from_secs(60)).expect_ok("rclone version");
        let ver = v
            .stdout
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("rclone v"))
            .unwrap_or_else(|| panic!("unexpected `rclone version` output: {}", v.stdout));
        let mut nums = ver.split(['.', '-']).map(|n| n.parse::<u32>().unwrap_or(0));
        let (major, minor) = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
        assert!(
            (major, minor) >= (1, 65),
            "{} is rclone {ver}; these tests need rclone >= 1.65 (Debian's 1.60 lacks fixes the \
             owncloud vendor relies on); {INSTALL_HINT}",
            bin.display()
        );
        let env = rclone_remote_env(t, &bin, srv.url(), "owncloud", USER, PASS);
        Rclone { bin, env }
    }

    /// Run `rclone args…` (no retries, so a failure shows the first error) and return its
    /// output; panics on a non-zero exit.
    fn ok(&self, args: &[&str]) -> Out {
        let out = self.run(args);
        out.expect_ok(&format!("rclone {}", args.join(" ")))
    }

    fn run(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .args(["--retries", "1", "--low-level-retries", "1", "--contimeout", "20s", "--timeout", "120s"])
            .env_remove("RCLONE_VERBOSE");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        run(&mut cmd, Duration::from_secs(600))
    }
}

/// Names that exercise URL encoding and Unicode handling, used at several depths.
const ODD_NAMES: &[&str] = &[
    "with space.txt",
    "  two  spaces inside.txt",
    "中文目录文件.txt",
    "日本語のファイル.md",
    "한국어 파일.txt",
    "emoji 🎉🚀.txt",
    "naïve café.txt",
    "a+b=c & d.txt",
    "100% sure.txt",
    "hash#tag.txt",
    "question?.txt",
    "semi;colon,comma.txt",
    "quote's \"double\".txt",
    "brackets [1] {2} (3).txt",
    "tilde~caret^.txt",
    "percent%20literal.txt",
];

/// Make the source tree: ~200 files in nested folders, odd names, empty files, one
/// 50 MiB file; every file gets a distinct whole-second mtime in the past.
/// Returns relative path → mtime (seconds).
fn make_tree(src: &Path) -> BTreeMap<String, u64> {
    let mut files: Vec<(String, Vec<u8>)> = vec![];
    for d in 0..6 {
        for s in 0..3 {
            for f in 0..8 {
                let rel = format!("dir{d}/sub{s}/file{f}.txt");
                let body = format!("{rel}\n").repeat(1 + (d * 31 + s * 7 + f) % 50);
                files.push((rel, body.into_bytes()));
            }
        }
    }
    for (i, name) in ODD_NAMES.iter().enumerate() {
        files.push((name.to_string(), format!("top {i}\n").into_bytes()));
        files.push((format!("Unicode 目录 🗂/{name}"), format!("nested {i}\n").into_bytes()));
    }
    for i in 0..5 {
        files.push((format!("empties/empty{i}"), vec![]));
    }
    files.push(("empties/deeper/also empty".into(), vec![]));
    files.push(("deep/a/b/c/d/e/f/g/bottom.bin".into(), pseudo_random(123_457, 3)));
    files.push(("big/fifty-mib.bin".into(), pseudo_random(BIG, 11)));
    std::fs::create_dir_all(src.join("empty folder")).unwrap();

    let base: u64 = 1_600_000_000; // 2020-09-13
    let mut times = BTreeMap::new();
    for (i, (rel, body)) in files.iter().enumerate() {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, body).unwrap();
        let t = base + i as u64 * 3_607;
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(UNIX_EPOCH + Duration::from_secs(t))
            .unwrap();
        times.insert(rel.clone(), t);
    }
    assert!(times.len() >= 180, "tree has {} files", times.len());
    times
}

fn mtime_secs(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().modified().unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// Assert two trees hold the same files with the same bytes.
fn assert_same_tree(a: &Path, b: &Path) {
    let (la, lb) = (walk(a), walk(b));
    assert_eq!(la, lb, "trees differ: {} vs {}", a.display(), b.display());
    for rel in la.iter().filter(|r| !r.ends_with('/')) {
        let (x, y) = (std::fs::read(a.join(rel)).unwrap(), std::fs::read(b.join(rel)).unwrap());
        assert!(x == y, "{rel}: contents differ ({} vs {} bytes)", x.len(), y.len());
    }
}

fn server(t: &TestDir) -> Server {
    let data = t.mkdir("data");
    let other = t.mkdir("other");
    Server::start(t, &ConfigBuilder::new().user(USER, PASS, &[], false).local("/local", &data).local("/other", &other))
}

#[test]
fn rclone_round_trip() {
    let t = TestDir::new();
    let src = t.mkdir("src");
    let times = make_tree(&src);
    let mut srv = server(&t);
    let rc = Rclone::new(&t, &srv);
    let data = t.join("data");
    let src_s = src.to_str().unwrap();

    // Copy in.
    rc.ok(&["copy", "--transfers", "4", src_s, "pd:local/tree"]);
    // rclone does not create empty folders on copy unless asked; do as users do.
    rc.ok(&["copy", "--create-empty-src-dirs", src_s, "pd:local/tree"]);
    assert_same_tree(&src, &data.join("tree"));

    // Listing through pandav matches the source listing exactly.
    let remote = rc.ok(&["lsf", "-R", "pd:local/tree"]).stdout;
    let local = rc.ok(&["lsf", "-R", src_s]).stdout;
    assert_eq!(sorted_lines(&remote), sorted_lines(&local));

    // Modification times survived the upload (X-OC-Mtime), to the second: on disk,
    // and as rclone lists them.
    for (rel, secs) in &times {
        assert_eq!(mtime_secs(&data.join("tree").join(rel)), *secs, "server-side mtime of {rel}");
    }
    let lsl = |remote: &str| -> BTreeMap<String, String> {
        rc.ok(&["lsl", remote])
            .stdout
            .lines()
            .map(|l| {
                // "   size YYYY-MM-DD HH:MM:SS.fffffffff path"
                let mut it = l.trim_start().splitn(4, ' ');
                let (_size, date, time, path) =
                    (it.next().unwrap(), it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
                (path.to_string(), format!("{date} {}", &time[..8]))
            })
            .collect()
    };
    let (rl, ll) = (lsl("pd:local/tree"), lsl(src_s));
    assert_eq!(rl.len(), times.len());
    assert_eq!(rl, ll, "lsl times differ between pandav and the source");

    // check --download: every byte compared through GET.
    rc.ok(&["check", "--download", src_s, "pd:local/tree"]);
    // A changed byte on the server side is noticed (the check above could fail).
    let victim = data.join("tree/dir2/sub1/file3.txt");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&victim, &bytes).unwrap();
    let bad = rc.run(&["check", "--download", src_s, "pd:local/tree"]);
    assert!(!bad.ok(), "check --download missed a changed byte:\n{}", bad.stderr);
    bytes[0] ^= 1;
    std::fs::write(&victim, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&victim)
        .unwrap()
        .set_modified(UNIX_EPOCH + Duration::from_secs(times["dir2/sub1/file3.txt"]))
        .unwrap();

    // Copy back out: same bytes, same mtimes.
    let back = t.join("back");
    rc.ok(&["copy", "--transfers", "4", "--create-empty-src-dirs", "pd:local/tree", back.to_str().unwrap()]);
    assert_same_tree(&src, &back);
    for (rel, secs) in &times {
        assert_eq!(mtime_secs(&back.join(rel)), *secs, "copied-out mtime of {rel}");
    }
    // A range read of the big file through rclone cat (--offset/--count → Range GET).
    let cat = rc.ok(&["cat", "--offset", "1000000", "--count", "4096", "pd:local/tree/big/fifty-mib.bin"]);
    assert_eq!(cat.stdout_bytes, pseudo_random(BIG, 11)[1_000_000..1_004_096]);

    // moveto: a single file renamed into a new folder (server-side MOVE).
    rc.ok(&["moveto", "pd:local/tree/dir0/sub0/file0.txt", "pd:local/tree/moved/renamed 文件.txt"]);
    assert!(!data.join("tree/dir0/sub0/file0.txt").exists());
    assert_eq!(
        std::fs::read(data.join("tree/moved/renamed 文件.txt")).unwrap(),
        std::fs::read(src.join("dir0/sub0/file0.txt")).unwrap()
    );
    assert_eq!(mtime_secs(&data.join("tree/moved/renamed 文件.txt")), times["dir0/sub0/file0.txt"]);
    // move: a folder, within the mount (DirMove) ...
    rc.ok(&["move", "pd:local/tree/dir1", "pd:local/dir1-moved"]);
    assert_same_tree(&src.join("dir1"), &data.join("dir1-moved"));
    assert!(!data.join("tree/dir1").exists() || walk(&data.join("tree/dir1")).iter().all(|p| p.ends_with('/')));
    // ... and across mounts (the server copies between drives, then removes).
    rc.ok(&["move", "pd:local/tree/Unicode 目录 🗂", "pd:other/unicode"]);
    assert_same_tree(&src.join("Unicode 目录 🗂"), &t.join("other/unicode"));
    let left = rc.run(&["lsf", "-R", "--files-only", "pd:local/tree/Unicode 目录 🗂"]);
    assert!(
        left.stdout.trim().is_empty() && (left.ok() || left.stderr.contains("directory not found")),
        "after move: {} {}",
        left.stdout,
        left.stderr
    );
    assert!(walk(&data.join("tree")).iter().all(|p| !p.starts_with("Unicode")));

    // delete: files only (folders stay) ...
    rc.ok(&["delete", "--include", "*.txt", "pd:local/tree/dir2"]);
    let rest = walk(&data.join("tree/dir2"));
    assert!(rest.iter().all(|p| p.ends_with('/')), "files left after delete: {rest:?}");
    assert!(!rest.is_empty(), "delete removed the folders too");
    // ... and purge: the whole tree, folders included.
    rc.ok(&["purge", "pd:local/tree"]);
    assert!(!data.join("tree").exists(), "purge left {:?}", walk(&data.join("tree")));
    let top = rc.ok(&["lsf", "pd:local"]).stdout;
    assert_eq!(sorted_lines(&top), vec!["dir1-moved/"]);
    // No spool or temp files anywhere in the served roots.
    for root in [&data, &t.join("other")] {
        let all = walk(root);
        assert!(all.iter().all(|p| !p.contains(".pandav-tmp")), "temp files: {all:?}");
    }
    srv.assert_healthy();
}

/// `rclone touch` (and `sync`/`copy` when only the time differs) changes the mtime of
/// an object that is already there with `PROPPATCH <DAV:lastmodified>unix</…>`, as
/// ownCloud accepts. dav-server 0.11 treats every `DAV:` property it does not know as
/// protected (`liveprop_set` → 403), so pandav intercepts this one and sets the time
/// through `vfs::Mount::set_mtime` for drives with `caps.set_mtime`; otherwise rclone
/// reports "can't set modified time" and sync uploads the whole file again.
#[test]
fn rclone_sets_mtime_of_existing_file() {
    let t = TestDir::new();
    let srv = server(&t);
    let rc = Rclone::new(&t, &srv);
    t.write("data/stamp.txt", b"stamp");
    let want = "2001-02-03 04:05:06";
    let secs = 981_173_106; // 2001-02-03T04:05:06Z
    let out = rc.run(&["touch", "--no-create", "-t", "2001-02-03T04:05:06", "pd:local/stamp.txt"]);
    let got = mtime_secs(&t.join("data/stamp.txt"));
    let lsl = rc.ok(&["lsl", "pd:local/stamp.txt"]).stdout;
    assert!(
        out.ok() && got == secs && lsl.contains(want),
        "rclone could not set the mtime of an existing file (PROPPATCH DAV:lastmodified): \
         touch {} ({}); on disk {}; rclone lsl: {lsl}",
        out.status,
        out.stderr.trim(),
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(got))
    );
}

/// A streamed upload (`rcat`: size unknown, chunked body) lands intact with the time
/// rclone asked for.
#[test]
fn rclone_rcat_streams_unknown_size() {
    let t = TestDir::new();
    let srv = server(&t);
    let rc = Rclone::new(&t, &srv);
    let body = pseudo_random(3 * 1024 * 1024 + 17, 5);
    let mut cmd = Command::new(&rc.bin);
    cmd.args(["rcat", "pd:local/streamed/s.bin"]);
    for (k, v) in &rc.env {
        cmd.env(k, v);
    }
    run_with_input(&mut cmd, Some(&body), Duration::from_secs(300)).expect_ok("rclone rcat");
    assert_eq!(std::fs::read(t.join("data/streamed/s.bin")).unwrap(), body);
    let cat = rc.ok(&["cat", "pd:local/streamed/s.bin"]);
    assert!(cat.stdout_bytes == body, "cat returned {} bytes", cat.stdout_bytes.len());
}
