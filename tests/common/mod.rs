//! Shared harness for the tests that drive the real `pandav` binary with real clients.
//!
//! The binary is started the way a user starts it (`pandav serve --config FILE`) on port
//! 0; the URL is read from the line it prints once listening. The server is killed when
//! the [`Server`] is dropped, and its log is printed when the test is failing.
//!
//! Each test file uses part of this module, so unused-item warnings are silenced.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod crash;
pub mod driver;

pub const BIN: &str = env!("CARGO_BIN_EXE_pandav");

/// What to tell someone whose machine lacks a client the tests need.
pub const INSTALL_HINT: &str = "run the tests through .ci/test.sh, which installs litmus, curl, ffmpeg and rclone";

/// A scratch folder for one test (config, data roots, client files), removed at the end.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> TestDir {
        TestDir { dir: tempfile::Builder::new().prefix("pandav-test-").tempdir().expect("temp dir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `rel` below the scratch folder.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Create folder `rel` (and parents) and return its path.
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.join(rel);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        p
    }

    /// Write file `rel` (creating parents) and return its path.
    pub fn write(&self, rel: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let p = self.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }
}

/// Builds a pandav config file: `[server]` plus users and mounts.
#[derive(Clone, Default)]
pub struct ConfigBuilder {
    server_extra: String,
    users: String,
    mounts: String,
}

/// A TOML string literal.
pub fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl ConfigBuilder {
    pub fn new() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// Extra lines for `[server]` (e.g. `allow_anonymous = true`).
    pub fn server(mut self, lines: &str) -> Self {
        self.server_extra.push_str(lines);
        self.server_extra.push('\n');
        self
    }

    /// A user with a plain password; `mounts` empty = all mounts.
    pub fn user(mut self, name: &str, password: &str, mounts: &[&str], read_only: bool) -> Self {
        let _ = writeln!(
            self.users,
            "[[users]]\nname = {}\npassword = {}\nread_only = {read_only}",
            toml_str(name),
            toml_str(password)
        );
        if !mounts.is_empty() {
            let list: Vec<String> = mounts.iter().map(|m| toml_str(m)).collect();
            let _ = writeln!(self.users, "mounts = [{}]", list.join(", "));
        }
        self.users.push('\n');
        self
    }

    /// A local mount of folder `root` at `path`.
    pub fn local(self, path: &str, root: &Path) -> Self {
        self.local_with(path, root, "")
    }

    /// A local mount with extra mount-level lines (e.g. `read_only = true`).
    pub fn local_with(mut self, path: &str, root: &Path, extra: &str) -> Self {
        let _ = writeln!(
            self.mounts,
            "[[mounts]]\npath = {}\ndriver = \"local\"\n{extra}\n[mounts.options]\nroot = {}\n",
            toml_str(path),
            toml_str(root.to_str().expect("utf-8 root"))
        );
        self
    }

    /// A mount of any driver: `extra` are mount-level lines (`policy = "proxy"`,
    /// `read_only = true`, `cache_ttl = "0s"`), `options` the `[mounts.options]` lines;
    /// `tables` more TOML after it (e.g. `[mounts.options.endpoints]` and its lines).
    pub fn mount(mut self, path: &str, driver: &str, extra: &str, options: &str, tables: &str) -> Self {
        let _ = writeln!(
            self.mounts,
            "[[mounts]]\npath = {}\ndriver = {}\n{extra}\n[mounts.options]\n{options}\n{tables}\n",
            toml_str(path),
            toml_str(driver)
        );
        self
    }

    /// The config text, listening on a free loopback port, state in `state_dir`.
    pub fn build(&self, state_dir: &Path) -> String {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = {}\nlog_level = \"info\"\n{}\n{}{}",
            toml_str(state_dir.to_str().unwrap()),
            self.server_extra,
            self.users,
            self.mounts
        )
    }
}

fn read_logs(log: &Path) -> String {
    format!(
        "{}{}",
        std::fs::read_to_string(log).unwrap_or_default(),
        std::fs::read_to_string(log.with_extension("stdout.log")).unwrap_or_default()
    )
}

/// A running `pandav serve`.
pub struct Server {
    child: Child,
    url: String,
    addr: SocketAddr,
    log: PathBuf,
    pub config: PathBuf,
    _stdout: std::thread::JoinHandle<()>,
}

/// How long the binary may take to print its URL (a debug build on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);

impl Server {
    /// Write `config` to `dir/pandav.toml` and serve it.
    pub fn start(dir: &TestDir, cfg: &ConfigBuilder) -> Server {
        let state = dir.mkdir("state");
        let text = cfg.build(&state);
        let config = dir.write("pandav.toml", &text);
        Server::start_file(&config, dir.path())
    }

    /// Serve an existing config file; the log goes next to it.
    pub fn start_file(config: &Path, log_dir: &Path) -> Server {
        Server::start_file_env(config, log_dir, &[])
    }

    /// [`start_file`](Self::start_file) with extra environment variables for the server.
    pub fn start_file_env(config: &Path, log_dir: &Path, env: &[(&str, &str)]) -> Server {
        let log = log_dir.join(format!(
            "pandav-{}.log",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        ));
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .env_remove("PANDAV_CONFIG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawn pandav");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // pandav logs to stdout (tracing's default writer) as well as printing its URL
        // there: keep every line in a second log file, so a failing test shows both.
        let out_log = log.with_extension("stdout.log");
        let mut out_file = std::fs::File::create(&out_log).expect("stdout log");
        // Reads the URL line, then keeps draining stdout so the server never blocks.
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let mut sent = false;
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let _ = out_file.write_all(line.as_bytes());
                        if !sent {
                            if let Some(rest) = line.trim().strip_prefix("pandav serving WebDAV at ") {
                                let _ = tx.send(rest.to_string());
                                sent = true;
                            }
                        }
                    }
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let url = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(u) => break u,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().ok();
                    panic!("pandav exited before listening ({status:?}); log:\n{}", read_logs(&log));
                }
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!("pandav exited before listening ({st}); log:\n{}", read_logs(&log));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("pandav did not print its URL within {START_TIMEOUT:?}; log:\n{}", read_logs(&log));
            }
        };
        let url = url.trim_end_matches('/').to_string();
        let hostport = url.strip_prefix("http://").expect("http URL").split('/').next().unwrap();
        let addr: SocketAddr = hostport.parse().expect("printed address");
        Server { child, url, addr, log, config: config.to_path_buf(), _stdout: reader }
    }

    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `url()` + `path` (which starts with `/`).
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the server wrote so far: stderr, then stdout (where its log lines go).
    pub fn log(&self) -> String {
        format!(
            "{}{}",
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            std::fs::read_to_string(self.log.with_extension("stdout.log")).unwrap_or_default()
        )
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, no chance to clean up (what a crash or the OOM killer does).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait (at most a minute) for the process to exit.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let st = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(st.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st;
            }
            assert!(Instant::now() < deadline, "pandav did not exit after SIGTERM; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait (at most `timeout`) for the process to exit by itself; its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st;
            }
            assert!(Instant::now() < deadline, "pandav did not exit within {timeout:?}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send `signal` (`"TERM"`, `"HUP"`, …) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let st = Command::new("kill").args([&format!("-{signal}"), &pid]).status().expect("kill");
        assert!(st.success(), "kill -{signal} {pid} failed");
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Assert the server is running and answers its health route.
    pub fn assert_healthy(&mut self) {
        assert!(self.alive(), "pandav died; log:\n{}", self.log());
        let resp = raw_request(
            self.addr,
            b"GET /-/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            Duration::from_secs(10),
        );
        assert!(resp.starts_with(b"HTTP/1.1 200"), "health check failed: {}", String::from_utf8_lossy(&resp));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- pandav log ({}) -----\n{}----- end of pandav log -----", self.log.display(), self.log());
        }
    }
}

/// Output of an external command.
#[derive(Debug)]
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub stdout_bytes: Vec<u8>,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.status.success()
    }

    /// Panic with the whole output unless the command succeeded.
    pub fn expect_ok(self, what: &str) -> Out {
        assert!(
            self.ok(),
            "{what} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Run `cmd` to completion within `timeout`, capturing stdout and stderr (killed and
/// reported as a failure if it runs over).
pub fn run(cmd: &mut Command, timeout: Duration) -> Out {
    run_with_input(cmd, None, timeout)
}

pub fn run_with_input(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Out {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {desc}: {e}; {INSTALL_HINT}"));
    if let Some(data) = input {
        let mut stdin = child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = vec![];
        let _ = so.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = vec![];
        let _ = se.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let out = t_out.join().unwrap();
            let err = t_err.join().unwrap();
            panic!(
                "{desc} did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = t_out.join().unwrap();
    let err = t_err.join().unwrap();
    Out {
        status,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
        stdout_bytes: out,
    }
}

/// The path of external tool `name` on PATH, or a failure telling how to get it.
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{name}` is not on PATH; {INSTALL_HINT}");
}

/// Send raw bytes on a new connection and read the answer until the server closes it
/// (or `timeout`, or a read error such as a reset). Returns what was read.
pub fn raw_request(addr: SocketAddr, req: &[u8], timeout: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    s.set_write_timeout(Some(timeout)).unwrap();
    // The server may answer (and close) before taking the whole request.
    let _ = s.write_all(req);
    read_until_close(&mut s, timeout)
}

/// Read from `s` until EOF, an error, or `timeout`.
pub fn read_until_close(s: &mut TcpStream, timeout: Duration) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let deadline = Instant::now() + timeout;
    let mut out = vec![];
    let mut buf = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    out
}

/// Status code of a raw HTTP/1.1 response (`None` when there is no status line).
pub fn status_of(resp: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(resp);
    let line = text.lines().next()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// `Authorization: Basic …` header value.
pub fn basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
}

/// Poll `f` until it returns `Some`, or panic with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every file and folder below `root` (relative, `/`-separated, sorted), without
/// following symlinks.
pub fn walk(root: &Path) -> Vec<String> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
            .map(|d| d.unwrap())
            .collect();
        v.sort_by_key(|d| d.file_name());
        for d in v {
            let p = d.path();
            let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
            let ft = d.file_type().unwrap();
            if ft.is_dir() {
                out.push(format!("{rel}/"));
                go(root, &p, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = vec![];
    go(root, root, &mut out);
    out.sort();
    out
}

#[allow(unused_imports)] // not every test binary generates content
pub use upstream::pseudo_random;

/// One HTTP answer as curl saw it (the last one, after any `100 Continue`).
#[derive(Debug)]
pub struct HttpOut {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpOut {
    /// First header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Run curl with `args` (plus `-sS`, headers and body captured) and optional stdin.
pub fn curl_in(args: &[&str], stdin: Option<&[u8]>) -> HttpOut {
    let curl = tool("curl");
    let tmp = tempfile::tempdir().unwrap();
    let hdr = tmp.path().join("h");
    let body = tmp.path().join("b");
    let mut cmd = Command::new(curl);
    cmd.args(["-sS", "--max-time", "60", "-D"]).arg(&hdr).arg("-o").arg(&body).args(args);
    let out = run_with_input(&mut cmd, stdin, Duration::from_secs(90));
    assert!(out.ok(), "curl {args:?} failed ({}): {}", out.status, out.stderr);
    let head = std::fs::read_to_string(&hdr).unwrap_or_default();
    // The last header block: earlier ones are interim (100 Continue) answers.
    let block = head
        .split("\r\n\r\n")
        .filter(|b| b.starts_with("HTTP/"))
        .last()
        .unwrap_or_else(|| panic!("curl {args:?}: no response headers: {head:?}"));
    let mut lines = block.lines();
    let status =
        lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).expect("status line");
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    HttpOut { status, headers, body: std::fs::read(&body).unwrap_or_default() }
}

pub fn curl(args: &[&str]) -> HttpOut {
    curl_in(args, None)
}

/// The `<D:response>` blocks of a multistatus body, as (href, block text).
pub fn dav_responses(xml: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    for part in xml.split("<D:response>").skip(1) {
        let block = part.split("</D:response>").next().unwrap_or(part);
        let href = between(block, "<D:href>", "</D:href>").unwrap_or_default();
        out.push((href, block.to_string()));
    }
    out
}

/// The hrefs of a multistatus body, in order.
pub fn dav_hrefs(xml: &str) -> Vec<String> {
    dav_responses(xml).into_iter().map(|(h, _)| h).collect()
}

/// Text between the first `open` and the next `close`.
pub fn between(s: &str, open: &str, close: &str) -> Option<String> {
    let i = s.find(open)? + open.len();
    let j = s[i..].find(close)? + i;
    Some(s[i..j].to_string())
}

/// The environment that gives `rclone` (binary `bin`) the WebDAV remote `pd:` at
/// `url` with `vendor`'s dialect and these credentials, its config and cache in `t`.
pub fn rclone_remote_env(
    t: &TestDir,
    bin: &Path,
    url: &str,
    vendor: &str,
    user: &str,
    pass: &str,
) -> Vec<(String, String)> {
    let conf = t.write("rclone/rclone.conf", b"");
    let obscured = run(Command::new(bin).args(["obscure", pass]), Duration::from_secs(60))
        .expect_ok("rclone obscure")
        .stdout
        .trim()
        .to_string();
    vec![
        ("RCLONE_CONFIG".into(), conf.to_str().unwrap().into()),
        ("RCLONE_CACHE_DIR".into(), t.mkdir("rclone/cache").to_str().unwrap().into()),
        ("RCLONE_CONFIG_PD_TYPE".into(), "webdav".into()),
        ("RCLONE_CONFIG_PD_URL".into(), format!("{url}/")),
        ("RCLONE_CONFIG_PD_VENDOR".into(), vendor.into()),
        ("RCLONE_CONFIG_PD_USER".into(), user.into()),
        ("RCLONE_CONFIG_PD_PASS".into(), obscured),
    ]
}
