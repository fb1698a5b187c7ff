//! What the hostile tests need beyond tests/common: the server's process (threads,
//! limits), connections watched until the server closes them, file trees with contents.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::Server;

/// The pid of `server` (the `pandav serve` whose command line names its config).
pub fn server_pid(server: &Server) -> u32 {
    let want = server.config.to_str().unwrap().to_string();
    for de in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = de.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let args: Vec<String> = cmd.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if args.iter().any(|a| a == "serve") && args.contains(&want) {
            return pid;
        }
    }
    panic!("no pandav process serving {want}");
}

/// A field of /proc/PID/status (e.g. `Threads`), as a number.
pub fn proc_status(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// (soft, hard) open-file limit of a process.
pub fn open_file_limits(pid: u32) -> (String, String) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = s.lines().find(|l| l.starts_with("Max open files")).expect("Max open files line");
    let v: Vec<&str> = line.split_whitespace().collect();
    (v[3].to_string(), v[4].to_string())
}

/// How a watched connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The server closed it (EOF or reset), after sending these bytes.
    Closed(Vec<u8>),
    /// Still open when we stopped watching, with these bytes received.
    StillOpen(Vec<u8>),
}

/// Read from `s` until the server closes it or `within` passes.
pub fn watch(s: &mut TcpStream, within: Duration) -> Ended {
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let deadline = Instant::now() + within;
    let mut got = vec![];
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return Ended::Closed(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return Ended::Closed(got),
        }
    }
    Ended::StillOpen(got)
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect")
}

/// Send `req` on a new connection and read the whole answer (the request should say
/// `Connection: close`).
pub fn exchange(addr: SocketAddr, req: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    s.write_all(req).unwrap();
    match watch(&mut s, Duration::from_secs(60)) {
        Ended::Closed(b) | Ended::StillOpen(b) => b,
    }
}

/// Every file and folder below `root` with file contents (links as `-> target`), sorted:
/// compare two of these to see that nothing changed.
pub fn snapshot(root: &Path) -> Vec<(String, String)> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for de in std::fs::read_dir(dir).unwrap().flatten() {
            let p = de.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let ft = de.file_type().unwrap();
            if ft.is_symlink() {
                out.push((rel, format!("-> {}", std::fs::read_link(&p).unwrap().display())));
            } else if ft.is_dir() {
                out.push((format!("{rel}/"), String::new()));
                go(root, &p, out);
            } else {
                out.push((rel, String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()).into_owned()));
            }
        }
    }
    let mut out = vec![];
    go(root, root, &mut out);
    out.sort();
    out
}

/// The server is up, answers, and logged no panic.
pub fn assert_sound(server: &mut Server) {
    server.assert_healthy();
    let log = server.log();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

/// An HTTP/1.1 request with `Connection: close` and optional extra header lines. The
/// host is `t`: a `Destination` must name it (`http://t/…`) to be on this server.
pub fn request(method: &str, path: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}
