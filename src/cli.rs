//! Command line: `serve`, `check`, `hash-password`, and wiring config into a mount table.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::drivers::{self, DriverCtx};
use crate::state::StateDir;
use crate::vfs::{Mount, MountOptions, MountTable, Policy};

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
    },
    /// Validate a config file and print the mount table. Exit 0 when valid, 2 when not.
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print an argon2 hash for `password_hash` (reads the password from stdin).
    HashPassword,
    /// Authorize a cloud drive account and save its tokens in the mount's state.
    Login {
        #[command(subcommand)]
        provider: LoginCmd,
    },
    /// Internal: one 115 Open token refresh in a separate process (see drivers::p115_open::auth).
    #[command(name = "__refresh-115-open", hide = true)]
    Refresh115OpenHelper,
}

#[derive(Subcommand, Debug)]
pub enum LoginCmd {
    /// 115 Open: PKCE device-code flow (scan the QR code with the 115 app).
    #[command(name = "115-open")]
    Open115 {
        /// AppID of your 115 Open app (default: the mount's `client_id` option).
        #[arg(long)]
        client_id: Option<String>,
        #[arg(short, long, env = "PANDAV_CONFIG")]
        config: PathBuf,
        /// Mount path of the 115_open mount, e.g. `/115`.
        #[arg(short, long)]
        mount: String,
        /// Give up after this many seconds without a confirmation.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
}

/// `pandav login …`
pub fn login(cmd: LoginCmd) -> Result<()> {
    init_logging("warn");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cmd {
        LoginCmd::Open115 { client_id, config, mount, timeout } => {
            rt.block_on(drivers::p115_open::auth::login(&config, &mount, client_id, Duration::from_secs(timeout)))
        }
    }
}

/// Build every mount of `cfg` (no network: drivers connect in `Mount::init`).
pub fn build_table(cfg: &Config, state: &StateDir) -> Result<MountTable> {
    let mut mounts = vec![];
    for (i, m) in cfg.raw.mounts.iter().enumerate() {
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
        let policy_name = m.policy.as_ref().map(|p| p.get_ref().as_str()).unwrap_or(info.default_policy);
        if !info.policies.contains(&policy_name) {
            return Err(anyhow!(
                "{at}: mount {path}: policy {policy_name:?} is not available for driver {driver:?} (it offers {})",
                info.policies.join(", ")
            ));
        }
        let policy = match policy_name {
            "redirect" => Policy::Redirect,
            "proxy" => Policy::Proxy,
            _ => Policy::ProxyUrl(m.proxy_url.clone().unwrap_or_default()),
        };
        let (options, opt_at) = match &m.options {
            Some(o) => (o.get_ref().clone(), cfg.at(o.span())),
            None => (toml::Table::new(), at.clone()),
        };
        let ctx = DriverCtx { mount_path: path.clone(), state: state.mount(&path), base_dir: cfg.base_dir.clone() };
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
        mounts.push(Arc::new(Mount::new(opts, drive)));
    }
    Ok(MountTable::new(mounts))
}

pub fn print_table(cfg: &Config, table: &MountTable) {
    println!("{}: ok", cfg.source_name);
    println!("listen: {}", cfg.raw.server.listen.get_ref().to_vec().join(", "));
    println!("{:<24} {:<12} {:<10} {:<6} cache", "mount", "driver", "policy", "mode");
    for m in table.mounts() {
        println!(
            "{:<24} {:<12} {:<10} {:<6} {}s",
            m.path(),
            m.drive.kind(),
            m.opts.policy.name(),
            if m.read_only() { "ro" } else { "rw" },
            m.opts.cache_ttl.as_secs()
        );
    }
    if cfg.raw.users.is_empty() {
        println!("users: none (anonymous access)");
    } else {
        for u in &cfg.raw.users {
            let mounts = u.mounts.as_ref().map(|v| v.join(", ")).unwrap_or_else(|| "all mounts".into());
            println!("user {}: {}{}", u.name.get_ref(), mounts, if u.read_only { " (read-only)" } else { "" });
        }
    }
}

pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

pub async fn serve(config: Option<PathBuf>, listen: Vec<String>) -> Result<()> {
    let mut cfg = match &config {
        Some(p) => Config::load(p)?,
        None => Config::embedded_default(),
    };
    if !listen.is_empty() {
        cfg.raw.server.listen = toml::Spanned::new(0..0, crate::config::OneOrMany::Many(listen));
        // Re-validate: a public address without users must still be refused.
        cfg = Config::parse(&cfg_text_with_listen(&cfg)?, &cfg.source_name, cfg.base_dir.clone())?;
    }
    init_logging(&cfg.raw.server.log_level);
    // Token refreshes of rotating credentials run in a helper process that survives a
    // kill of the server, so a rotated token is always saved.
    // (PANDAV_NO_REFRESH_HELPER=1 refreshes in-process: only for showing what the helper
    // prevents.)
    if std::env::var_os("PANDAV_NO_REFRESH_HELPER").is_none() {
        if let Ok(exe) = std::env::current_exe() {
            drivers::p115_open::use_refresh_helper(exe);
        }
    }
    let state = StateDir::open(&cfg.state_dir())?;
    let table = Arc::new(build_table(&cfg, &state)?);

    for m in table.mounts() {
        let m = Arc::clone(m);
        tokio::spawn(async move {
            match m.init().await {
                Ok(()) => tracing::info!(mount = %m.path(), driver = m.drive.kind(), "mount ready"),
                Err(e) => tracing::error!(mount = %m.path(), "mount failed to start: {e}"),
            }
            m.spawn_refresh();
        });
    }

    let tls = match (&cfg.raw.server.tls_cert, &cfg.raw.server.tls_key) {
        (Some(c), Some(k)) => Some(crate::server::tls::acceptor(&cfg.resolve_path(c), &cfg.resolve_path(k))?),
        _ => None,
    };
    let mut listeners = vec![];
    for addr in cfg.listen_addrs()? {
        let l = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let local = l.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let host = if local.ip().is_unspecified() { "127.0.0.1".to_string() } else { local.ip().to_string() };
        let host = if local.is_ipv6() && !local.ip().is_unspecified() { format!("[{host}]") } else { host };
        println!("pandav serving WebDAV at {scheme}://{host}:{}{}/", local.port(), cfg.raw.server.prefix);
        listeners.push(l);
    }
    let sign_key = state.secret("sign")?;
    let app = Arc::new(crate::server::App::new(&cfg, Arc::clone(&table), sign_key));
    crate::server::serve(app, listeners, tls, shutdown_signal()).await;
    Ok(())
}

/// The config's text with `[server] listen` replaced (for `--listen`), so the same
/// validation runs on what will actually be served.
fn cfg_text_with_listen(cfg: &Config) -> Result<String> {
    let mut doc: toml::Table = toml::from_str(cfg.text()).context("re-reading config")?;
    let server = doc.entry("server").or_insert_with(|| toml::Value::Table(Default::default()));
    if let toml::Value::Table(t) = server {
        t.insert(
            "listen".into(),
            toml::Value::Array(cfg.raw.server.listen.get_ref().to_vec().into_iter().map(toml::Value::String).collect()),
        );
    }
    Ok(toml::to_string(&doc)?)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

pub fn check(config: PathBuf) -> i32 {
    let cfg = match Config::load(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    // Build drivers against a scratch state dir: check must not touch live state.
    let state = match StateDir::open(dir.path()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 2;
        }
    };
    match build_table(&cfg, &state) {
        Ok(t) => {
            print_table(&cfg, &t);
            0
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
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
