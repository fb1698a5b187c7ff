//! Command line: the commands (`serve`, `check`, `login`, `offline`, `tasks`, `hash-password`) and
//! wiring config into a mount table through the driver registry. No driver is named
//! here: drivers come from `drivers::DRIVERS`.
//!
//! - `serve.rs`: `pandav serve` (listeners, mount start-up, shutdown barrier).
//! - `check.rs`: `pandav check`.
//! - `login.rs`: `pandav login <provider>` (the registry's login flows; QR in the terminal or PNG).
//! - `offline.rs`: `pandav offline add|list|remove`.
//! - `tasks.rs`: `pandav tasks` (copies between mounts, from the running server).

mod check;
mod login;
mod offline;
mod serve;
mod tasks;

pub use check::{check, print_table};
pub use login::login;
pub use offline::offline;
pub use serve::{healthcheck, serve};
pub use tasks::tasks;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::drivers::{self, DriverCtx};
use crate::state::StateDir;
use crate::vfs::{Mount, MountOptions, MountTable};

#[derive(Parser, Debug)]
#[command(name = "pandav", version, about = "One WebDAV tree over cloud drives and local folders")]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Serve WebDAV (with no --config: ./data as /local on 127.0.0.1:8080).
    Serve {
        #[arg(short, long, env = "PANDAV_CONFIG")]
        config: Option<PathBuf>,
        /// Listen address, overriding the config (repeatable).
        #[arg(short, long)]
        listen: Vec<String>,
        /// Log lines as text or as one JSON object per line (overrides `[server] log_format`).
        #[arg(long, env = "PANDAV_LOG_FORMAT", value_enum)]
        log_format: Option<crate::config::LogFormat>,
    },
    /// Ask the local server's `/-/health` (the container's HEALTHCHECK): exit 0 when it
    /// answers 200, 1 when not (or when nothing answers).
    Healthcheck {
        #[arg(short, long, env = "PANDAV_CONFIG")]
        config: Option<PathBuf>,
        /// Ask this URL instead of the config's first listen address.
        #[arg(long)]
        url: Option<String>,
    },
    /// Validate a config file and print the mount table. Exit 0 when valid, 2 when not.
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print an argon2 hash for `password_hash` (reads the password from stdin).
    HashPassword,
    /// Authorize a cloud drive account and save its login in the mount's state.
    Login {
        /// Which login (see the list below).
        provider: String,
        /// The login's own options (`pandav login <provider> --help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
    /// Offline download (cloud download) tasks of a mount whose drive has them.
    Offline {
        #[command(subcommand)]
        cmd: OfflineCmd,
    },
    /// Copies and moves between mounts running (or just finished) in a running server.
    Tasks(TasksArgs),
    /// Internal: one credential refresh of a mount in a separate process, so that a kill
    /// of the server cannot lose a rotated token (see vfs::credentials).
    #[command(name = "__refresh", hide = true)]
    Refresh {
        /// The mount (for `ps`; the job itself comes on stdin).
        mount: String,
    },
}

#[derive(clap::Args, Debug)]
pub struct TasksArgs {
    /// One task, by id.
    pub id: Option<String>,
    /// The server's URL (with its prefix), e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub url: Option<String>,
    /// Or its config file: the first listen address and the prefix are used.
    #[arg(short, long, env = "PANDAV_CONFIG")]
    pub config: Option<PathBuf>,
    /// A user of the server (password from PANDAV_PASSWORD, or the first line of stdin).
    #[arg(short, long)]
    pub user: Option<String>,
    /// Print the server's JSON.
    #[arg(long)]
    pub json: bool,
    /// Accept the server's TLS certificate without checking it (a self-signed one).
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Subcommand, Debug)]
pub enum OfflineCmd {
    /// Add magnet, http(s), ftp or ed2k URLs as tasks.
    Add {
        #[arg(short, long)]
        config: PathBuf,
        /// Mount path of a mount with offline download.
        mount: String,
        #[arg(required = true)]
        urls: Vec<String>,
        /// Folder (path inside the mount) to save into; default: the provider's own.
        #[arg(long)]
        dir: Option<String>,
    },
    /// List tasks.
    List {
        #[arg(short, long)]
        config: PathBuf,
        mount: String,
    },
    /// Remove tasks by info hash.
    Remove {
        #[arg(short, long)]
        config: PathBuf,
        mount: String,
        #[arg(required = true)]
        hashes: Vec<String>,
        /// Also delete the files the tasks downloaded.
        #[arg(long)]
        delete_files: bool,
    },
}

/// The state of `cfg`: its state dir, and its Redis when `[server] state` names one.
pub fn open_state(cfg: &Config) -> Result<StateDir> {
    let dir = StateDir::open(&cfg.state_dir())?;
    match &cfg.raw.server.state {
        Some(url) => dir.with_shared(&url.0),
        None => Ok(dir),
    }
}

/// Build every mount of `cfg` (no network: drivers connect in `Mount::init`).
pub fn build_table(cfg: &Config, state: &StateDir) -> Result<MountTable> {
    let mut mounts = vec![];
    for i in 0..cfg.raw.mounts.len() {
        mounts.push(Arc::new(build_mount(cfg, i, state)?));
    }
    Ok(MountTable::new(mounts))
}

/// Build mount `i` of `cfg` through the registry (no network).
pub fn build_mount(cfg: &Config, i: usize, state: &StateDir) -> Result<Mount> {
    let m = &cfg.raw.mounts[i];
    let path = cfg.mount_path(i);
    let at = cfg.at(m.path.span());
    let driver = m.driver.get_ref().as_str();
    let info = drivers::info(driver).ok_or_else(|| {
        anyhow!(
            "{}: mounts.driver {driver:?} is unknown (known: {})",
            cfg.at(m.driver.span()),
            drivers::names().join(", ")
        )
    })?;
    let policy = m.policy.as_ref().map(|p| *p.get_ref()).unwrap_or(info.default_policy);
    if !info.policies.contains(&policy) {
        let offered: Vec<&str> = info.policies.iter().map(|p| p.name()).collect();
        return Err(anyhow!(
            "{at}: mount {path}: policy {:?} is not available for driver {driver:?} (it offers {})",
            policy.name(),
            offered.join(", ")
        ));
    }
    let policy = policy.with_url(m.proxy_url.as_deref());
    let (options, opt_at) = match &m.options {
        Some(o) => (o.get_ref().clone(), cfg.at(o.span())),
        None => (toml::Table::new(), at.clone()),
    };
    let ctx =
        DriverCtx { mount_path: path.clone(), state: state.mount(&path), base_dir: cfg.base_dir.clone(), source: None };
    let drive = drivers::build(driver, options, ctx)
        .map_err(|e| anyhow!("{opt_at}: mount {path} ({driver}) options: {e:#}"))?;
    let default_ttl = if drive.caps().local_read { Duration::ZERO } else { Duration::from_secs(60) };
    let opts = MountOptions {
        path,
        policy,
        proxy_url: m.proxy_url.clone(),
        read_only: m.read_only,
        cache_ttl: m.cache_ttl.unwrap_or(default_ttl),
        spool_dir: state.spool_dir(),
    };
    let mount = Mount::new(opts, drive);
    Ok(match state.shared() {
        Some(s) => {
            let links = crate::vfs::shared_links::SharedLinks::new(Arc::clone(s), mount.path());
            mount.with_shared_links(links)
        }
        None => mount,
    })
}

/// Log to stderr at `level` (`RUST_LOG` wins), as text.
pub fn init_logging(level: &str) {
    init_logging_as(level, crate::config::LogFormat::Text)
}

/// Log to stderr at `level` (`RUST_LOG` wins), as text or as JSON lines. A JSON line
/// is one object: `timestamp`, `level`, `target` (`pandav::access` for the access
/// line), `message` and the event's fields at the top level, the same fields as the
/// text line; client-supplied strings are escaped (`dav::Esc`) before they are encoded.
pub fn init_logging_as(level: &str, format: crate::config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = match format {
        crate::config::LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        crate::config::LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_target(true)
            .with_writer(std::io::stderr)
            .try_init(),
    };
}

pub fn hash_password() -> Result<()> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let pass = line.trim_end_matches(['\r', '\n']);
    if pass.is_empty() {
        return Err(anyhow!("empty password on stdin"));
    }
    println!("{}", crate::server::auth::hash_password(pass)?);
    Ok(())
}

/// Parse the command line (the login flows are listed from the driver registry).
pub fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let mut list = String::from("Logins:\n");
    for l in drivers::logins() {
        list.push_str(&format!("  {:<12} {}\n", l.command, l.about));
    }
    let cmd = Cli::command().mut_subcommand("login", |c| c.after_help(list));
    Cli::from_arg_matches(&cmd.get_matches()).unwrap_or_else(|e| e.exit())
}

/// The mount `path` of the config at `config`, for a one-off command (with the real
/// state dir, so rotated tokens are shared with a running server).
pub fn find_mount(config: &std::path::Path, path: &str) -> Result<drivers::MountRef> {
    let cfg = Config::load(config)?;
    let want = crate::config::normalize_mount_path(path).map_err(|e| anyhow!("--mount: {e}"))?;
    for (i, m) in cfg.raw.mounts.iter().enumerate() {
        if cfg.mount_path(i) == want {
            let options = m.options.as_ref().map(|o| o.get_ref().clone()).unwrap_or_default();
            let state = open_state(&cfg)?.mount(&want);
            let ctx = DriverCtx { mount_path: want.clone(), state, base_dir: cfg.base_dir.clone(), source: None };
            return Ok(drivers::MountRef { path: want, driver: m.driver.get_ref().clone(), options, ctx });
        }
    }
    let known: Vec<String> = (0..cfg.raw.mounts.len()).map(|i| cfg.mount_path(i)).collect();
    Err(anyhow!("{}: no mount {want} (mounts: {})", cfg.source_name, known.join(", ")))
}
