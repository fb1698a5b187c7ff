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
    /// 115 offline download (cloud download) tasks of a `115` mount.
    Offline {
        #[command(subcommand)]
        cmd: OfflineCmd,
    },
    /// Internal: one credential refresh of a mount in a separate process, so that a kill
    /// of the server cannot lose a rotated token (see vfs::credentials).
    #[command(name = "__refresh", hide = true)]
    Refresh {
        /// The mount (for `ps`; the job itself comes on stdin).
        mount: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum LoginCmd {
    /// 115 Cloud (cookie): QR code login; the cookie goes into the mount's state.
    #[command(name = "115")]
    P115 {
        /// 115 app slot to occupy (tv, android, ios, alipaymini, wechatmini, qandroid, web, …).
        /// Logging in signs out any other session of the same app type.
        #[arg(long, default_value = "tv")]
        app: String,
        /// Write the QR code to this PNG file instead of drawing it in the terminal.
        #[arg(long)]
        png: Option<PathBuf>,
        #[arg(short, long, env = "PANDAV_CONFIG")]
        config: PathBuf,
        /// The mount (its path in the config) whose state gets the login.
        #[arg(long)]
        mount: String,
    },
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
        LoginCmd::P115 { app, png, config, mount } => rt.block_on(login_115(app, png, config, mount)),
        LoginCmd::Open115 { client_id, config, mount, timeout } => {
            rt.block_on(drivers::p115_open::auth::login(&config, &mount, client_id, Duration::from_secs(timeout)))
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum OfflineCmd {
    /// Add magnet, http(s), ftp or ed2k URLs as tasks.
    Add {
        #[arg(short, long)]
        config: PathBuf,
        /// Mount path of a `115` mount.
        mount: String,
        #[arg(required = true)]
        urls: Vec<String>,
        /// Folder (path inside the mount) to save into; default: 115's cloud-download folder.
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
        let ctx = DriverCtx {
            mount_path: path.clone(),
            state: state.mount(&path),
            base_dir: cfg.base_dir.clone(),
            source: None,
        };
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
    // Catch SIGTERM from the start: a refresh that begins while the mounts start must
    // be waited for too (the shutdown barrier below).
    let shutdown = shutdown_signal()?;
    // Token refreshes of rotating credentials run in a helper process that survives a
    // kill of the server, so a rotated token is always saved.
    // (PANDAV_NO_REFRESH_HELPER=1 refreshes in-process: only for showing what the helper
    // prevents.)
    if std::env::var_os("PANDAV_NO_REFRESH_HELPER").is_none() {
        if let Ok(exe) = std::env::current_exe() {
            crate::vfs::credentials::use_helper(exe);
        }
    }
    let state = StateDir::open(&cfg.state_dir())?;
    let table = Arc::new(build_table(&cfg, &state)?);

    for m in table.mounts() {
        let m = Arc::clone(m);
        tokio::spawn(async move {
            // A provider that cannot be reached at start is tried again with backoff; a lost
            // login is left to the refresh task (it notices a new `pandav login`).
            let mut wait = Duration::from_secs(5);
            loop {
                match m.init().await {
                    Ok(()) => {
                        tracing::info!(mount = %m.path(), driver = m.drive.kind(), "mount ready");
                        break;
                    }
                    Err(e @ crate::vfs::DriveError::AuthLost(_)) => {
                        tracing::error!(mount = %m.path(), "mount failed to start: {e}");
                        break;
                    }
                    Err(e) => {
                        tracing::error!(mount = %m.path(), "mount failed to start, retrying in {}s: {e}", wait.as_secs());
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(300));
                    }
                }
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
    crate::server::serve(app, listeners, tls, shutdown).await;
    // A refresh cut between the provider's answer and the write would lose the token.
    let left = crate::vfs::credentials::barrier(Duration::from_secs(30)).await;
    if left > 0 {
        tracing::error!("{left} credential refresh(es) still running at exit");
    }
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

/// A future that completes on Ctrl-C or SIGTERM; the handlers are in place as soon as
/// this returns.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
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

/// The mount `path` of `cfg`: (index, normalised path, driver name, options).
fn find_mount(cfg: &Config, path: &str) -> Result<(String, String, toml::Table)> {
    let want = crate::config::normalize_mount_path(path).map_err(|e| anyhow!("--mount: {e}"))?;
    for (i, m) in cfg.raw.mounts.iter().enumerate() {
        if cfg.mount_path(i) == want {
            let opts = m.options.as_ref().map(|o| o.get_ref().clone()).unwrap_or_default();
            return Ok((want, m.driver.get_ref().clone(), opts));
        }
    }
    let known: Vec<String> = (0..cfg.raw.mounts.len()).map(|i| cfg.mount_path(i)).collect();
    Err(anyhow!("{}: no mount {want} (mounts: {})", cfg.source_name, known.join(", ")))
}

/// `pandav login 115`: QR login, cookie saved in the mount's state.
pub async fn login_115(app: String, png: Option<PathBuf>, config: PathBuf, mount: String) -> Result<()> {
    use crate::drivers::p115::auth;
    if !auth::QR_APPS.iter().any(|(a, _)| *a == app) {
        let names: Vec<&str> = auth::QR_APPS.iter().map(|(a, _)| *a).collect();
        return Err(anyhow!("--app {app:?} is not a 115 app type (one of: {})", names.join(", ")));
    }
    let cfg = Config::load(&config)?;
    init_logging("warn");
    let (path, driver, opts) = find_mount(&cfg, &mount)?;
    if driver != "115" && driver != "115_share" {
        return Err(anyhow!("mount {path} uses driver {driver:?}; 115 login is for 115 and 115_share mounts"));
    }
    let config_cookie = opts.get("cookie").and_then(|c| c.as_str()).unwrap_or("").trim().to_string();
    let endpoints: std::collections::BTreeMap<String, String> = match opts.get("endpoints") {
        Some(e) => e.clone().try_into().map_err(|e| anyhow!("mount {path}: endpoints: {e}"))?,
        None => Default::default(),
    };
    let http = crate::drivers::p115::build_http(endpoints, 0.0, Some(2), None, Some(0))?;
    let state = StateDir::open(&cfg.state_dir())?.mount(&path);
    let slot = auth::QR_APPS.iter().find(|(a, _)| *a == app).map(|(_, d)| *d).unwrap_or("");
    eprintln!(
        "Logging in as app type {app:?} ({slot}). 115 allows one session per app type: this signs out\n\
         any other {app:?} session of the account (browsers stay logged in unless you use --app web)."
    );
    let cookie = auth::qr_login(
        &http,
        &app,
        |tok| {
            match &png {
                Some(file) => {
                    write_qr_png(&tok.qrcode, file)?;
                    eprintln!("QR code written to {}: open it and scan it with the 115 app.", file.display());
                }
                None => {
                    let code = qrcode::QrCode::new(tok.qrcode.as_bytes())?;
                    let art = code
                        .render::<qrcode::render::unicode::Dense1x2>()
                        .dark_color(qrcode::render::unicode::Dense1x2::Light)
                        .light_color(qrcode::render::unicode::Dense1x2::Dark)
                        .quiet_zone(true)
                        .build();
                    println!("{art}");
                    eprintln!("Scan this QR code with the 115 app (or open {} on the phone).", tok.qrcode);
                }
            }
            Ok(())
        },
        |st| eprintln!("{}", st.message()),
    )
    .await?;
    let saved = auth::SavedLogin { cookie: cookie.header(), app: Some(app.clone()) };
    crate::drivers::p115::auth_login(&state, &config_cookie)?
        .save_login(saved)
        .await
        .map_err(|e| anyhow!("saving the login: {e}"))?;
    let who = cookie.user_id().map(|u| format!("user {u}")).unwrap_or_else(|| "the account".into());
    println!("Logged in as {who} (app {app}); saved to {}.", state.path().display());
    println!("`pandav serve` with this config uses it for {path} (a running server picks it up on its next call).");
    Ok(())
}

/// A QR code as a black-on-white PNG, 8 px per module, with a 4-module quiet zone.
fn write_qr_png(text: &str, file: &std::path::Path) -> Result<()> {
    let code = qrcode::QrCode::new(text.as_bytes())?;
    let w = code.width();
    let colors = code.to_colors();
    let (scale, quiet) = (8usize, 4usize);
    let side = (w + 2 * quiet) * scale;
    let mut px = vec![255u8; side * side];
    for y in 0..w {
        for x in 0..w {
            if colors[y * w + x] == qrcode::Color::Dark {
                for dy in 0..scale {
                    let row = ((y + quiet) * scale + dy) * side;
                    for dx in 0..scale {
                        px[row + (x + quiet) * scale + dx] = 0;
                    }
                }
            }
        }
    }
    let f = std::fs::File::create(file).with_context(|| format!("cannot write {}", file.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(f), side as u32, side as u32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header()?;
    wr.write_image_data(&px)?;
    wr.finish()?;
    Ok(())
}

/// Build the `115` driver of a mount for offline commands, logged in and checked.
/// The named mount of a config, built and initialised for a one-off command (with the
/// real state dir, so rotated tokens are shared with a running server).
async fn one_mount(config: &std::path::Path, mount: &str) -> Result<Arc<Mount>> {
    let cfg = Config::load(config)?;
    init_logging("warn");
    let state = StateDir::open(&cfg.state_dir())?;
    let table = build_table(&cfg, &state)?;
    let path = crate::config::normalize_mount_path(mount).map_err(|e| anyhow!("mount {e}"))?;
    let m = table.get(&path).cloned().ok_or_else(|| anyhow!("no mount {path} in {}", cfg.source_name))?;
    if !m.caps().offline_download {
        return Err(anyhow!("mount {path} (driver {}) has no offline download", m.drive.kind()));
    }
    m.init().await.map_err(|e| anyhow!("mount {path}: {e}"))?;
    Ok(m)
}

/// `pandav offline …`. Returns the exit code.
pub async fn offline(cmd: OfflineCmd) -> Result<i32> {
    match cmd {
        OfflineCmd::Add { config, mount, urls, dir } => {
            let m = one_mount(&config, &mount).await?;
            let res = m.offline_add(&urls, dir.as_deref()).await.map_err(|e| anyhow!("{e}"))?;
            let mut failed = 0;
            for r in &res {
                if r.exists {
                    println!("exists  {}  {}  (task already exists)", r.info_hash, r.url);
                } else if r.ok {
                    println!("added   {}  {}  {}", r.info_hash, r.name, r.url);
                } else {
                    failed += 1;
                    println!("failed  {}  {}", r.url, r.message);
                }
            }
            Ok(if failed > 0 { 1 } else { 0 })
        }
        OfflineCmd::List { config, mount } => {
            let m = one_mount(&config, &mount).await?;
            let l = m.offline_list().await.map_err(|e| anyhow!("{e}"))?;
            println!("{:<12} {:>6} {:>14}  {:<40}  name", "status", "done", "size", "info_hash");
            for t in &l.tasks {
                println!("{:<12} {:>5.1}% {:>14}  {:<40}  {}", t.status_text(), t.percent, t.size, t.info_hash, t.name);
            }
            if let (Some(total), Some(left)) = (l.quota_total, l.quota_left) {
                println!("{} task(s); quota {left} left of {total}", l.tasks.len());
            } else {
                println!("{} task(s)", l.tasks.len());
            }
            Ok(0)
        }
        OfflineCmd::Remove { config, mount, hashes, delete_files } => {
            let m = one_mount(&config, &mount).await?;
            m.offline_remove(&hashes, delete_files).await.map_err(|e| anyhow!("{e}"))?;
            println!("removed {} task(s){}", hashes.len(), if delete_files { " and their files" } else { "" });
            Ok(0)
        }
    }
}
