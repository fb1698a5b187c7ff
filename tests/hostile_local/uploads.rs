//! Issue 9, item 11 and the smaller upload items: stalled uploads pin no threads and
//! are capped (503 + Retry-After), an aborted one leaves no spool file, a `kill -9`
//! during one leaves a temp file the next start removes, stored files get the umask's
//! mode or the mount's `file_mode`/`dir_mode`.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::common::*;
use crate::helpers::*;

fn temps(dir: &Path) -> Vec<String> {
    walk(dir).into_iter().filter(|p| p.rsplit('/').next().is_some_and(|n| n.starts_with(".pandav-tmp-"))).collect()
}

/// A PUT of `total` bytes that sends its headers and the first KiB, then nothing.
fn stalled_put(server: &Server, path: &str, total: usize) -> TcpStream {
    let mut s = connect(server.addr());
    s.write_all(format!("PUT {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {total}\r\n\r\n").as_bytes()).unwrap();
    s.write_all(&[b'x'; 1024]).unwrap();
    s
}

/// Stalled uploads hold spool files but no threads, and no more of them run than
/// `max_uploads`: the next gets 503 with Retry-After. When their clients go, their
/// spool files go, and uploads are taken again.
#[test]
fn stalled_uploads_pin_no_threads_and_are_capped() {
    let dir = TestDir::new();
    let root = dir.mkdir("root");
    let mut server = Server::start(&dir, &ConfigBuilder::new().server("max_uploads = 20").local("/local", &root));
    let pid = server_pid(&server);
    let before = proc_status(pid, "Threads");
    let stalled: Vec<_> = (0..20).map(|i| stalled_put(&server, &format!("/local/big-{i}.bin"), 10 << 20)).collect();
    wait_for("20 spool files", Duration::from_secs(60), || (temps(&root).len() == 20).then_some(()));
    // Threads the blocking pool started for short jobs end after 10 s idle; threads
    // pinned by a stalled upload would stay.
    let settled = wait_for("the thread count to settle", Duration::from_secs(60), || {
        let n = proc_status(pid, "Threads");
        (n <= before + 2).then_some(n)
    });
    eprintln!("threads: {before} before, {settled} with 20 stalled uploads");

    let got = exchange(server.addr(), &request("PUT", "/local/one-more.txt", "", b"more"));
    assert_eq!(status_of(&got), Some(503), "{}", String::from_utf8_lossy(&got));
    assert!(String::from_utf8_lossy(&got).to_ascii_lowercase().contains("\r\nretry-after: "));
    assert!(!root.join("one-more.txt").exists());

    drop(stalled);
    wait_for("the aborted uploads' spool files to go", Duration::from_secs(60), || {
        temps(&root).is_empty().then_some(())
    });
    let got = exchange(server.addr(), &request("PUT", "/local/one-more.txt", "", b"more"));
    assert_eq!(status_of(&got), Some(201), "{}", String::from_utf8_lossy(&got));
    assert_eq!(std::fs::read(root.join("one-more.txt")).unwrap(), b"more");
    assert_eq!(walk(&root), ["one-more.txt"], "aborted uploads left files");
    assert_eq!(server.log().matches("too many uploads at once").count(), 1, "one line per burst");
    assert_sound(&mut server);
}

/// `kill -9` during an upload leaves its temp file; the next start removes it (and the
/// listing of a folder removes stale ones found there), but never a temp file newer
/// than the process, nor anything not named like ours.
#[test]
fn temp_files_of_a_killed_upload_are_removed_at_start() {
    let dir = TestDir::new();
    let root = dir.mkdir("root");
    let cfg = ConfigBuilder::new().local("/local", &root);
    let mut server = Server::start(&dir, &cfg);
    let _upload = stalled_put(&server, "/local/big.bin", 10 << 20);
    wait_for("the spool file", Duration::from_secs(60), || (temps(&root).len() == 1).then_some(()));
    let left = temps(&root);
    let out = run(Command::new("kill").args(["-9", &server_pid(&server).to_string()]), Duration::from_secs(10));
    assert!(out.ok(), "{out:?}");
    wait_for("the server to die", Duration::from_secs(30), || (!server.alive()).then_some(()));
    assert_eq!(temps(&root), left, "the kill left no temp file: nothing to show");
    // Older ones: in a subfolder (found by a listing) and in the spool dir of cloud mounts.
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    for p in ["sub/.pandav-tmp-old1", "state/spool/.pandav-tmp-old2", "sub/.pandav-tmpnot", "sub/keep.txt"] {
        let f = std::fs::File::create(dir.write(p, "x")).unwrap();
        f.set_modified(old).unwrap();
    }
    std::fs::rename(dir.join("sub"), root.join("sub")).unwrap();
    std::fs::create_dir(root.join(".pandav-tmp-a-folder")).unwrap();

    let config = server.config.clone();
    drop(server);
    // As a restart would (systemd waits 5 s): temp files of the last second are spared.
    std::thread::sleep(Duration::from_millis(1500));
    let mut server = Server::start_file(&config, dir.path());
    wait_for("the killed upload's temp file to go", Duration::from_secs(30), || {
        (!root.join(&left[0]).exists()).then_some(())
    });
    assert!(!dir.join("state/spool/.pandav-tmp-old2").exists(), "stale spool file in the state dir kept");
    // A temp file written after the start stays, even in a listed folder.
    std::fs::write(root.join("sub/.pandav-tmp-fresh"), "x").unwrap();
    let got = exchange(server.addr(), &request("PROPFIND", "/local/sub/", "Depth: 1\r\n", b""));
    assert_eq!(status_of(&got), Some(207));
    let mut left = walk(&root);
    left.sort();
    assert_eq!(left, [".pandav-tmp-a-folder/", "sub/", "sub/.pandav-tmp-fresh", "sub/.pandav-tmpnot", "sub/keep.txt"]);
    assert_sound(&mut server);
}

fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn umask() -> u32 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let v = s.lines().find_map(|l| l.strip_prefix("Umask:")).unwrap();
    u32::from_str_radix(v.trim(), 8).unwrap()
}

/// Stored files follow the umask (pandav inherits the test's), or `file_mode`; created
/// folders `dir_mode` when set.
#[test]
fn stored_files_get_the_umask_or_the_configured_mode() {
    let dir = TestDir::new();
    let plain = dir.mkdir("plain");
    let modes = dir.mkdir("modes");
    let cfg = ConfigBuilder::new().local("/plain", &plain).local("/modes", &modes);
    let text = cfg.build(&dir.mkdir("state"));
    let (head, tail) = text.split_at(text.rfind("[mounts.options]").unwrap() + "[mounts.options]\n".len());
    let text = format!("{head}file_mode = \"0640\"\ndir_mode = \"0750\"\n{tail}");
    let mut server = Server::start_file(&dir.write("pandav.toml", &text), dir.path());
    let addr = server.addr();
    for m in ["plain", "modes"] {
        assert_eq!(status_of(&exchange(addr, &request("PUT", &format!("/{m}/up.txt"), "", b"up"))), Some(201));
        assert_eq!(status_of(&exchange(addr, &request("MKCOL", &format!("/{m}/d"), "", b""))), Some(201));
        let copy = request("COPY", &format!("/{m}/up.txt"), &format!("Destination: http://t/{m}/d/copy.txt\r\n"), b"");
        assert_eq!(status_of(&exchange(addr, &copy)), Some(201));
    }
    let want = 0o666 & !umask();
    assert_eq!(mode_of(&plain.join("up.txt")), want, "PUT: {:o}", mode_of(&plain.join("up.txt")));
    assert_eq!(mode_of(&plain.join("d/copy.txt")), want, "COPY");
    assert_eq!(mode_of(&plain.join("d")), 0o777 & !umask(), "MKCOL");
    assert_eq!(mode_of(&modes.join("up.txt")), 0o640);
    assert_eq!(mode_of(&modes.join("d/copy.txt")), 0o640);
    assert_eq!(mode_of(&modes.join("d")), 0o750);
    assert_sound(&mut server);
}

/// A bad mode is a config error naming the key.
#[test]
fn a_bad_file_mode_is_refused_at_start() {
    let dir = TestDir::new();
    let root = dir.mkdir("root");
    let text = ConfigBuilder::new().local("/local", &root).build(&dir.mkdir("state"));
    let text = text.replace("[mounts.options]\n", "[mounts.options]\nfile_mode = \"0999\"\n");
    let config = dir.write("pandav.toml", &text);
    let out = run(Command::new(BIN).args(["check", "--config"]).arg(&config), Duration::from_secs(60));
    assert!(!out.ok(), "{out:?}");
    assert!(out.stderr.contains("file_mode"), "{out:?}");
}

use std::process::Command;
