//! The TOML configuration: schema, defaults and validation with messages that name the
//! key and the line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

pub use crate::vfs::PolicyKind;

/// The embedded default: `./data` as `/local`, read-write, on 127.0.0.1:8080.
pub const DEFAULT_CONFIG: &str = r#"
[server]
listen = ["127.0.0.1:8080"]
state_dir = ".pandav"

[[mounts]]
path = "/local"
driver = "local"
[mounts.options]
root = "./data"
create = true
"#;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub users: Vec<UserConfig>,
    #[serde(default)]
    pub mounts: Vec<MountConfig>,
    #[serde(default)]
    pub clients: Vec<ClientRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: Spanned<OneOrMany>,
    /// Where rotated tokens, cookies, secrets and upload spools live.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Keep the state several replicas share in Redis (`redis://host:6379/0`): rotated
    /// credentials and their refresh lock, download links, WebDAV locks, dead
    /// properties, the link-signing key. Default: the state dir, as for one process.
    #[serde(default)]
    pub state: Option<Redacted>,
    /// Serve WebDAV below this URL prefix (e.g. `/dav`).
    #[serde(default)]
    pub prefix: String,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// `error`, `warn`, `info`, `debug`, `trace` or a tracing filter; `RUST_LOG` wins.
    #[serde(default = "default_log")]
    pub log_level: String,
    /// `text` (one line per event, for people) or `json` (one JSON object per line,
    /// for log shippers); `--log-format` wins.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Allow requests without credentials when users are configured or when listening
    /// beyond loopback.
    #[serde(default)]
    pub allow_anonymous: bool,
    /// Realm shown in the browser's login prompt.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// Lifetime of signed download links (`proxy_url` and `?sign=` routes).
    #[serde(default = "default_sign_ttl", deserialize_with = "de_duration")]
    pub sign_ttl: Duration,
    /// Open connections at most; newer ones are closed at once beyond it. Default:
    /// half the open-file limit (after raising it to the hard limit), at most 4096.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// A new connection must complete its TLS handshake and send its first request's
    /// headers within this.
    #[serde(default = "default_header_timeout", deserialize_with = "de_duration")]
    pub header_timeout: Duration,
    /// A connection with no request in progress is closed after this (HTTP/1 keep-alive,
    /// HTTP/2 idle); it is also how long an HTTP/1 client has for a later request's headers.
    #[serde(default = "default_idle_timeout", deserialize_with = "de_duration")]
    pub idle_timeout: Duration,
    /// Uploads received at once (PUT, and copies between mounts); more get 503.
    #[serde(default = "default_max_uploads")]
    pub max_uploads: usize,
    /// How long a request body may stall (no byte arriving) before the request ends
    /// with 408 and its spool is removed.
    #[serde(default = "default_body_timeout", deserialize_with = "de_duration")]
    pub body_timeout: Duration,
    /// Longest lifetime of a WebDAV lock: a client's `Timeout` is honoured up to this,
    /// and `Infinite` gets this.
    #[serde(default = "default_lock_max_timeout", deserialize_with = "de_duration")]
    pub lock_max_timeout: Duration,
    /// Most WebDAV locks one user may hold at once.
    #[serde(default = "default_locks_per_user")]
    pub locks_per_user: usize,
    /// Most WebDAV locks the server holds at once.
    #[serde(default = "default_locks_total")]
    pub locks_total: usize,
    /// On SIGTERM, how long running requests and streams may take to finish before
    /// pandav exits anyway.
    #[serde(default = "default_shutdown_grace", deserialize_with = "de_duration")]
    pub shutdown_grace: Duration,
    /// Serve Prometheus metrics at `/-/metrics`.
    #[serde(default)]
    pub metrics: bool,
    /// Credentials for `/-/metrics` of their own (a scraper that is not a WebDAV user);
    /// without them any configured user may scrape (anyone when there are no users).
    pub metrics_user: Option<String>,
    pub metrics_password: Option<Redacted>,
    /// An argon2 PHC string (`pandav hash-password`).
    pub metrics_password_hash: Option<String>,
    /// How long a COPY or MOVE between two mounts waits for its copy before it answers
    /// `202 Accepted` (the copy goes on as a task, see `GET /-/tasks`).
    #[serde(default = "default_copy_wait", deserialize_with = "de_duration")]
    pub copy_wait: Duration,
    /// Copies and moves between mounts running at once; more are refused with 503.
    #[serde(default = "default_copy_tasks")]
    pub copy_tasks: usize,
    /// Send local files with `sendfile` on plain HTTP/1 connections (the kernel moves
    /// the bytes; pandav does not copy them). `false`: read and write them as on TLS
    /// and HTTP/2.
    #[serde(default = "default_sendfile")]
    pub sendfile: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A secret from the config (a password): usable, never printed by `Debug`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: Spanned<String>,
    pub password: Option<String>,
    /// An argon2 PHC string (`pandav hash-password`).
    pub password_hash: Option<String>,
    /// Mount paths this user sees; absent = all.
    pub mounts: Option<Vec<String>>,
    #[serde(default)]
    pub read_only: bool,
    /// Sees every user's copy tasks (`GET /-/tasks`), not only their own.
    #[serde(default)]
    pub admin: bool,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountConfig {
    pub path: Spanned<String>,
    pub driver: Spanned<String>,
    /// `redirect`, `proxy` or `proxy_url`; default depends on the driver.
    pub policy: Option<Spanned<PolicyKind>>,
    /// Base URL of the external relay, for `policy = "proxy_url"`.
    pub proxy_url: Option<String>,
    #[serde(default)]
    pub read_only: bool,
    /// How long directory listings are cached (`30s`, `10m`, or seconds).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub cache_ttl: Option<Duration>,
    #[serde(default)]
    pub options: Option<Spanned<toml::Table>>,
}

// Debug by hand: passwords and driver options (cookies, tokens) never reach a log line.
impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", self.name.get_ref())
            .field("mounts", &self.mounts)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for MountConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let option_keys: Vec<&String> = self.options.as_ref().map(|o| o.get_ref().keys().collect()).unwrap_or_default();
        f.debug_struct("MountConfig")
            .field("path", self.path.get_ref())
            .field("driver", self.driver.get_ref())
            .field("policy", &self.policy.as_ref().map(|p| p.get_ref()))
            .field("read_only", &self.read_only)
            .field("option_keys", &option_keys)
            .finish_non_exhaustive()
    }
}

/// Override a mount's download policy for clients whose User-Agent matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRule {
    /// Case-insensitive substring of the User-Agent.
    pub user_agent: String,
    pub policy: Spanned<PolicyKind>,
    /// Mount paths the rule applies to; absent = all.
    pub mounts: Option<Vec<String>>,
}

fn default_listen() -> Spanned<OneOrMany> {
    Spanned::new(0..0, OneOrMany::One("127.0.0.1:8080".into()))
}
fn default_log() -> String {
    "info".into()
}
fn default_realm() -> String {
    "pandav".into()
}
fn default_sign_ttl() -> Duration {
    Duration::from_secs(4 * 3600)
}
fn default_header_timeout() -> Duration {
    Duration::from_secs(20)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_sendfile() -> bool {
    true
}

fn default_max_uploads() -> usize {
    64
}
fn default_body_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_lock_max_timeout() -> Duration {
    Duration::from_secs(3600)
}
fn default_shutdown_grace() -> Duration {
    Duration::from_secs(30)
}
fn default_locks_per_user() -> usize {
    256
}
fn default_locks_total() -> usize {
    4096
}
fn default_copy_wait() -> Duration {
    Duration::from_secs(30)
}
fn default_copy_tasks() -> usize {
    8
}

/// Durations as seconds (`90`) or with a unit (`90s`, `15m`, `4h`, `1d`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("bad duration {s:?} (use e.g. 90s, 15m, 4h)"))?;
    let mult = match unit.trim() {
        "" | "s" => 1,
        "ms" => return Ok(Duration::from_millis(n)),
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("bad duration unit in {s:?} (use s, m, h or d)")),
    };
    Ok(Duration::from_secs(n.saturating_mul(mult)))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DurRepr {
    Secs(u64),
    Text(String),
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match DurRepr::deserialize(d)? {
        DurRepr::Secs(n) => Ok(Duration::from_secs(n)),
        DurRepr::Text(s) => parse_duration(&s).map_err(serde::de::Error::custom),
    }
}

fn de_opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

/// A config error with the line it points at.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ConfigError {}

/// A loaded config, with the source text kept to turn spans into line numbers.
#[derive(Debug, Clone)]
pub struct Config {
    pub raw: RawConfig,
    pub source_name: String,
    text: String,
    /// Folder relative paths in the config are taken from.
    pub base_dir: PathBuf,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config {}: {e}", path.display())))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = systemd_credential_base(&base).unwrap_or(base);
        Config::parse(&text, &path.display().to_string(), base)
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn embedded_default() -> Config {
        Config::parse(DEFAULT_CONFIG, "<embedded default>", PathBuf::from(".")).expect("embedded default config")
    }

    pub fn parse(text: &str, source_name: &str, base_dir: PathBuf) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError(format!("{source_name}: {e}")))?;
        let cfg = Config { raw, source_name: source_name.into(), text: text.into(), base_dir };
        cfg.validate()?;
        Ok(cfg)
    }

    /// `file:line` for a span.
    pub fn at(&self, span: std::ops::Range<usize>) -> String {
        let line = self.text[..span.start.min(self.text.len())].matches('\n').count() + 1;
        format!("{}:{line}", self.source_name)
    }

    fn err(&self, span: std::ops::Range<usize>, msg: impl std::fmt::Display) -> ConfigError {
        ConfigError(format!("{}: {msg}", self.at(span)))
    }

    /// Resolve a path from the config against the config file's folder.
    pub fn resolve_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        match &self.raw.server.state_dir {
            Some(p) => self.resolve_path(p),
            None => match std::env::var_os("STATE_DIRECTORY") {
                // systemd's StateDirectory=
                Some(d) => PathBuf::from(d),
                None => self.resolve_path(Path::new(".pandav")),
            },
        }
    }

    /// `file:line` of `server.listen`, or just the file when it was not written there.
    fn listen_at(&self) -> String {
        let span = self.raw.server.listen.span();
        if span.is_empty() {
            self.source_name.clone()
        } else {
            self.at(span)
        }
    }

    pub fn listen_addrs(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        self.raw
            .server
            .listen
            .get_ref()
            .to_vec()
            .iter()
            .map(|s| {
                s.parse::<SocketAddr>().map_err(|_| {
                    ConfigError(format!(
                        "{}: server.listen: {s:?} is not an address like 127.0.0.1:8080",
                        self.listen_at()
                    ))
                })
            })
            .collect()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.raw.server;
        self.listen_addrs()?;
        if s.listen.get_ref().to_vec().is_empty() {
            return Err(ConfigError(format!("{}: server.listen is empty", self.listen_at())));
        }
        if s.tls_cert.is_some() != s.tls_key.is_some() {
            return Err(ConfigError(format!("{}: server.tls_cert and server.tls_key go together", self.source_name)));
        }
        if !s.prefix.is_empty() && (!s.prefix.starts_with('/') || s.prefix.ends_with('/')) {
            return Err(ConfigError(format!(
                "{}: server.prefix must start with '/' and not end with one (e.g. \"/dav\")",
                self.source_name
            )));
        }
        for (key, zero) in [
            ("max_connections", s.max_connections == Some(0)),
            ("max_uploads", s.max_uploads == 0),
            ("header_timeout", s.header_timeout.is_zero()),
            ("idle_timeout", s.idle_timeout.is_zero()),
        ] {
            if zero {
                return Err(ConfigError(format!("{}: server.{key} must be more than 0", self.source_name)));
            }
        }
        if let Some(url) = &s.state {
            let u = url.0.as_str();
            if !(u.starts_with("redis://") || u.starts_with("unix://") || u.starts_with("redis+unix://")) {
                return Err(ConfigError(format!(
                    "{}: server.state must be a redis:// URL (e.g. \"redis://127.0.0.1:6379/0\"); leave it out to keep the state in state_dir",
                    self.source_name
                )));
            }
        }
        if self.raw.mounts.is_empty() {
            return Err(ConfigError(format!("{}: no [[mounts]] configured", self.source_name)));
        }
        for (key, d) in [("body_timeout", s.body_timeout), ("lock_max_timeout", s.lock_max_timeout)] {
            if d < Duration::from_secs(1) {
                return Err(ConfigError(format!("{}: server.{key} must be at least 1s", self.source_name)));
            }
        }
        match (&s.metrics_user, &s.metrics_password, &s.metrics_password_hash) {
            (None, None, None) => {}
            (Some(u), Some(_), None) | (Some(u), None, Some(_)) if !u.is_empty() && !u.contains(':') => {}
            (Some(_), Some(_), Some(_)) | (Some(_), None, None) => {
                return Err(ConfigError(format!(
                "{}: server.metrics_user needs exactly one of server.metrics_password and server.metrics_password_hash",
                self.source_name
            )))
            }
            (None, _, _) => {
                return Err(ConfigError(format!(
                    "{}: server.metrics_password needs server.metrics_user",
                    self.source_name
                )))
            }
            _ => {
                return Err(ConfigError(format!(
                    "{}: server.metrics_user must be non-empty and without ':'",
                    self.source_name
                )))
            }
        }
        if let Some(h) = &s.metrics_password_hash {
            if !h.starts_with("$argon2") {
                return Err(ConfigError(format!(
                    "{}: server.metrics_password_hash must be an argon2 PHC string (pandav hash-password)",
                    self.source_name
                )));
            }
        }
        for (key, n) in
            [("locks_per_user", s.locks_per_user), ("locks_total", s.locks_total), ("copy_tasks", s.copy_tasks)]
        {
            if n == 0 {
                return Err(ConfigError(format!("{}: server.{key} must be at least 1", self.source_name)));
            }
        }
        let mut paths: Vec<(String, std::ops::Range<usize>)> = vec![];
        for m in &self.raw.mounts {
            let p = normalize_mount_path(m.path.get_ref())
                .map_err(|e| self.err(m.path.span(), format!("mounts.path: {e}")))?;
            for (q, _) in &paths {
                if *q == p || is_below(&p, q) || is_below(q, &p) {
                    return Err(self.err(m.path.span(), format!("mounts.path {p:?} overlaps mount {q:?}")));
                }
            }
            if let Some(pol) = &m.policy {
                if *pol.get_ref() == PolicyKind::ProxyUrl && m.proxy_url.as_deref().unwrap_or("").is_empty() {
                    return Err(self.err(
                        pol.span(),
                        "mounts.policy = \"proxy_url\" needs mounts.proxy_url (the relay's base URL)",
                    ));
                }
            }
            if let Some(u) = &m.proxy_url {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(
                        self.err(m.path.span(), format!("mounts.proxy_url {u:?} must start with http:// or https://"))
                    );
                }
            }
            paths.push((p, m.path.span()));
        }
        let mut names = std::collections::HashSet::new();
        for u in &self.raw.users {
            let name = u.name.get_ref();
            if name.is_empty() || name.contains(':') {
                return Err(self.err(u.name.span(), "users.name must be non-empty and without ':'"));
            }
            if !names.insert(name.clone()) {
                return Err(self.err(u.name.span(), format!("users.name {name:?} is configured twice")));
            }
            match (&u.password, &u.password_hash) {
                (None, None) => {
                    return Err(self.err(u.name.span(), format!("user {name:?} needs password or password_hash")))
                }
                (Some(_), Some(_)) => {
                    return Err(
                        self.err(u.name.span(), format!("user {name:?}: give password or password_hash, not both"))
                    )
                }
                (None, Some(h)) if !h.starts_with("$argon2") => {
                    return Err(self.err(
                        u.name.span(),
                        format!("user {name:?}: password_hash must be an argon2 PHC string (pandav hash-password)"),
                    ))
                }
                _ => {}
            }
            for mp in u.mounts.iter().flatten() {
                let n = normalize_mount_path(mp).map_err(|e| self.err(u.name.span(), format!("users.mounts: {e}")))?;
                if !paths.iter().any(|(p, _)| *p == n) {
                    return Err(self.err(
                        u.name.span(),
                        format!("user {name:?}: users.mounts names {mp:?}, which is not a mount"),
                    ));
                }
            }
        }
        for r in &self.raw.clients {
            if r.user_agent.is_empty() {
                return Err(self.err(r.policy.span(), "clients.user_agent must not be empty"));
            }
        }
        let addrs = self.listen_addrs()?;
        if self.raw.users.is_empty() && !s.allow_anonymous && addrs.iter().any(|a| !a.ip().is_loopback()) {
            return Err(ConfigError(format!(
                "{}: server.listen includes a non-loopback address but no [[users]] are configured; add users or set server.allow_anonymous = true",
                self.listen_at()
            )));
        }
        Ok(())
    }

    /// Normalised mount path of mount `i` (validated at load).
    pub fn mount_path(&self, i: usize) -> String {
        normalize_mount_path(self.raw.mounts[i].path.get_ref()).expect("validated")
    }
}

/// A config handed over by systemd's `LoadCredential=` sits in `$CREDENTIALS_DIRECTORY`,
/// a read-only copy: relative paths in it (`root = "./data"`) are taken from
/// `$STATE_DIRECTORY` (else the working directory) instead.
fn systemd_credential_base(config_dir: &Path) -> Option<PathBuf> {
    let creds = PathBuf::from(std::env::var_os("CREDENTIALS_DIRECTORY")?);
    let same = |a: &Path, b: &Path| a == b || a.canonicalize().ok().is_some_and(|a| b.canonicalize().ok() == Some(a));
    if !same(config_dir, &creds) {
        return None;
    }
    match std::env::var_os("STATE_DIRECTORY") {
        // StateDirectory= may name several, separated by ':'.
        Some(d) => d.to_str().and_then(|s| s.split(':').next()).map(PathBuf::from),
        None => std::env::current_dir().ok(),
    }
}

fn is_below(p: &str, q: &str) -> bool {
    q == "/" || p.starts_with(&format!("{q}/"))
}

/// `/a/b` form: leading slash, no trailing slash, no empty, `.` or `..` parts.
pub fn normalize_mount_path(p: &str) -> Result<String, String> {
    if !p.starts_with('/') {
        return Err(format!("{p:?} must start with '/'"));
    }
    let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    for part in &parts {
        if *part == "." || *part == ".." || part.contains('\0') || part.contains('\\') {
            return Err(format!("{p:?} has a bad component {part:?}"));
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, "t.toml", PathBuf::from("."))
    }

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::embedded_default();
        assert_eq!(c.mount_path(0), "/local");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = parse("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n[[mounts]]\npath=\"/a\"\ndriver=\"local\"\n")
            .unwrap_err();
        assert!(e.0.contains("lisen") && e.0.contains("line 3"), "{e}");
    }

    #[test]
    fn overlapping_mounts_rejected_with_line() {
        let e = parse("[[mounts]]\npath=\"/a\"\ndriver=\"local\"\n[[mounts]]\npath=\"/a/b/\"\ndriver=\"local\"\n")
            .unwrap_err();
        assert!(e.0.contains("overlaps") && e.0.contains("t.toml:5"), "{e}");
        let e = parse("[[mounts]]\npath=\"/a\"\ndriver=\"local\"\n[[mounts]]\npath=\"/a\"\ndriver=\"local\"\n")
            .unwrap_err();
        assert!(e.0.contains("overlaps"), "{e}");
        parse("[[mounts]]\npath=\"/a\"\ndriver=\"local\"\n[[mounts]]\npath=\"/ab\"\ndriver=\"local\"\n").unwrap();
    }

    #[test]
    fn bad_values_rejected() {
        for (s, want) in [
            ("[[mounts]]\npath=\"a\"\ndriver=\"local\"\n", "must start with '/'"),
            ("[[mounts]]\npath=\"/a/../b\"\ndriver=\"local\"\n", "bad component"),
            ("[[mounts]]\npath=\"/a\"\ndriver=\"local\"\npolicy=\"teleport\"\n", "teleport"),
            ("[[mounts]]\npath=\"/a\"\ndriver=\"local\"\npolicy=\"proxy_url\"\n", "needs mounts.proxy_url"),
            ("[[mounts]]\npath=\"/a\"\ndriver=\"local\"\ncache_ttl=\"5 parsecs\"\n", "duration"),
            ("[server]\nlisten=\"nope\"\n[[mounts]]\npath=\"/a\"\ndriver=\"local\"\n", "not an address"),
            ("[server]\nmax_connections=0\n[[mounts]]\npath=\"/a\"\ndriver=\"local\"\n", "server.max_connections must be"),
            ("[server]\nheader_timeout=\"0s\"\n[[mounts]]\npath=\"/a\"\ndriver=\"local\"\n", "server.header_timeout must be"),
            ("[server]\nmax_uploads=0\n[[mounts]]\npath=\"/a\"\ndriver=\"local\"\n", "server.max_uploads must be"),
            ("", "no [[mounts]]"),
            ("[[mounts]]\npath=\"/a\"\n", "driver"),
            ("[[users]]\nname=\"u\"\n[[mounts]]\npath=\"/a\"\ndriver=\"local\"\n", "needs password"),
            ("[[users]]\nname=\"u\"\npassword=\"p\"\nmounts=[\"/nope\"]\n[[mounts]]\npath=\"/a\"\ndriver=\"local\"\n", "not a mount"),
        ] {
            let e = parse(s).unwrap_err();
            assert!(e.0.contains(want), "{s:?}: {e}");
        }
    }

    #[test]
    fn public_listen_needs_users_or_explicit_anonymous() {
        let base = "[[mounts]]\npath=\"/a\"\ndriver=\"local\"\n";
        let e = parse(&format!("[server]\nlisten=\"0.0.0.0:80\"\n{base}")).unwrap_err();
        assert!(e.0.contains("no [[users]]"), "{e}");
        parse(&format!("[server]\nlisten=\"0.0.0.0:80\"\nallow_anonymous=true\n{base}")).unwrap();
        parse(&format!("[server]\nlisten=\"[::]:80\"\n[[users]]\nname=\"u\"\npassword=\"p\"\n{base}")).unwrap();
    }

    #[test]
    fn debug_output_hides_secrets() {
        let c = parse("[server]\nmetrics_user=\"m\"\nmetrics_password=\"scrapepw\"\n[[users]]\nname=\"u\"\npassword=\"hunter2\"\n[[mounts]]\npath=\"/a\"\ndriver=\"local\"\n[mounts.options]\ncookie=\"UID=1;SEID=sesame\"\n").unwrap();
        let d = format!("{:?}", c.raw);
        assert!(!d.contains("hunter2") && !d.contains("sesame") && !d.contains("scrapepw"), "{d}");
        assert!(d.contains("cookie") && d.contains("\"u\""), "{d}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5y").is_err());
    }
}
