//! The systemd install as the README documents it: the unit verifies clean, and pandav
//! starts the way the unit starts it (config handed over by `LoadCredential=` in a
//! private directory, state in `$STATE_DIRECTORY`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::helpers::*;

fn repo_file(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// `systemd-analyze verify` of systemd/pandav.service says nothing (the binary path is
/// pointed at the one under test, which verify checks exists).
#[test]
fn systemd_unit_verifies_clean() {
    let tool = tool("systemd-analyze");
    let dir = TestDir::new();
    let unit = std::fs::read_to_string(repo_file("systemd/pandav.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/pandav "), "the unit's ExecStart moved");
    for key in
        ["LoadCredential=", "ProtectProc=invisible", "ProcSubset=pid", "TasksMax=", "MemoryHigh=", "LimitNOFILE="]
    {
        assert!(unit.contains(key), "the unit lacks {key}");
    }
    let unit = unit.replace("/usr/local/bin/pandav", BIN);
    let path = dir.write("pandav.service", unit);
    let out = run(Command::new(tool).arg("verify").arg(&path), Duration::from_secs(60));
    assert!(out.ok() && out.stdout.trim().is_empty() && out.stderr.trim().is_empty(), "not clean: {out:?}");
}

/// pandav run as the unit runs it, with the shipped config/pandav.toml unchanged: it
/// starts, serves, and puts the example's `root = "./data"` in the state directory,
/// not in the (read-only, private) credentials directory.
#[test]
fn the_documented_systemd_install_starts() {
    let dir = TestDir::new();
    let creds = dir.mkdir("run/credentials/pandav.service");
    let state = dir.mkdir("var/lib/pandav");
    let config = creds.join("pandav.toml");
    std::fs::copy(repo_file("config/pandav.toml"), &config).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o400)).unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o500)).unwrap();
    let log = std::fs::File::create(dir.join("pandav.log")).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("CREDENTIALS_DIRECTORY", &creds)
        .env("STATE_DIRECTORY", &state)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("pandav serving WebDAV at ") {
                let _ = tx.send(url.trim_end_matches('/').to_string());
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = loop {
        if let Ok(u) = rx.recv_timeout(Duration::from_millis(100)) {
            break u;
        }
        if let Ok(Some(st)) = child.try_wait() {
            let _ = std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o700));
            panic!("pandav exited ({st}):\n{}", std::fs::read_to_string(dir.join("pandav.log")).unwrap_or_default());
        }
        assert!(Instant::now() < deadline, "pandav did not start");
    };
    let addr: std::net::SocketAddr = url.strip_prefix("http://").unwrap().parse().unwrap();
    let got = exchange(addr, &request("PUT", "/local/hello.txt", "", b"hi"));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o700));
    assert_eq!(status_of(&got), Some(201), "{}", String::from_utf8_lossy(&got));
    assert_eq!(std::fs::read(state.join("data/hello.txt")).unwrap(), b"hi", "the mount is not in the state dir");
    assert!(!creds.join("data").exists(), "data went into the credentials directory");
    assert!(state.join("sign.key").exists(), "state not in $STATE_DIRECTORY");
}
