//! `pandav serve`: listeners, mounts and their background tasks, signals.
//!
//! - SIGTERM / SIGINT: stop accepting, let running requests and streams finish (up to
//!   `[server] shutdown_grace`), wait for credential refreshes, exit 0. A second
//!   SIGTERM or SIGINT exits at once.
//! - SIGHUP: re-read the config. Mounts whose table is unchanged keep running (their
//!   caches and their drive's session); changed mounts are built anew, new ones added,
//!   removed ones stopped; users, client rules and the other `[server]` keys that can
//!   change live apply to the next request. A config with an error is refused with a
//!   log line and the running one keeps serving.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use arc_swap::ArcSwap;

use super::{build_mount, build_table, init_logging_as};
use crate::config::Config;
use crate::server::App;
use crate::state::StateDir;
use crate::vfs::{Mount, MountTable};

/// The config at `path` (the embedded default without one), with `--listen` applied.
fn load(path: &Option<PathBuf>, listen: &[String]) -> Result<Config> {
    let mut cfg = match path {
        Some(p) => Config::load(p)?,
        None => Config::embedded_default(),
    };
    if !listen.is_empty() {
        cfg.raw.server.listen = toml::Spanned::new(0..0, crate::config::OneOrMany::Many(listen.to_vec()));
        // Re-validate: a public address without users must still be refused.
        cfg = Config::parse(&cfg_text_with_listen(&cfg)?, &cfg.source_name, cfg.base_dir.clone())?;
    }
    Ok(cfg)
}

pub async fn serve(
    config: Option<PathBuf>,
    listen: Vec<String>,
    log_format: Option<crate::config::LogFormat>,
) -> Result<()> {
    let cfg = load(&config, &listen)?;
    init_logging_as(&cfg.raw.server.log_level, log_format.unwrap_or(cfg.raw.server.log_format));
    // Catch SIGTERM from the start: a refresh that begins while the mounts start must
    // be waited for too (the shutdown barrier below).
    let (shutdown, reloads) = signals()?;
    // Token refreshes of rotating credentials run in a helper process that survives a
    // kill of the server, so a rotated token is always saved.
    // (PANDAV_NO_REFRESH_HELPER=1 refreshes in-process: only for showing what the helper
    // prevents.)
    if std::env::var_os("PANDAV_NO_REFRESH_HELPER").is_none() {
        if let Ok(exe) = std::env::current_exe() {
            crate::vfs::credentials::use_helper(exe);
        }
    }
    let state = super::open_state(&cfg)?;
    if let Some(s) = state.shared() {
        tracing::info!("shared state in Redis at {} (credentials, links, locks, properties, copy tasks)", s.shown());
    }
    let limits = crate::server::prepare(&cfg, &state.spool_dir());
    let table = Arc::new(build_table(&cfg, &state)?);
    let specs = mount_specs(&cfg)?;
    let mut live = HashMap::new();
    for m in table.mounts() {
        let spec = specs.get(m.path()).cloned().unwrap_or(toml::Value::Boolean(false));
        live.insert(m.path().to_string(), Live { spec, mount: Arc::clone(m), task: start(Arc::clone(m)) });
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
    let sign_key = state.shared_secret("sign").await?;
    let grace = cfg.raw.server.shutdown_grace;
    let app = App::new(&cfg, table, sign_key);
    // Once: a reload's successor keeps the same copy tasks (and their reporter).
    app.start_background();
    let apps = Arc::new(ArcSwap::new(Arc::new(app)));
    if state.shared().is_some() {
        // Half-built copy targets of replicas that stopped (and may never come back).
        let apps = Arc::clone(&apps);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEFTOVER_SWEEP).await;
                let app = apps.load_full();
                app.sweep_leftovers().await;
            }
        });
    }
    let reloader = Reloader { path: config, listen, cfg, apps: Arc::clone(&apps), live, state };
    let reloading = tokio::spawn(reloader.run(reloads));
    crate::server::serve_graceful(apps, listeners, tls, limits, shutdown, grace).await;
    reloading.abort();
    // A refresh cut between the provider's answer and the write would lose the token.
    let left = crate::vfs::credentials::barrier(Duration::from_secs(30)).await;
    if left > 0 {
        tracing::error!("{left} credential refresh(es) still running at exit");
    }
    tracing::info!("stopped");
    Ok(())
}

/// How often a replica sharing its state in Redis looks for the half-built copy
/// targets of replicas whose heartbeat expired.
const LEFTOVER_SWEEP: Duration = Duration::from_secs(15);

/// A running mount: its config table (to tell whether a reload changes it) and its
/// background task (start-up, then the refresh loop).
struct Live {
    spec: toml::Value,
    mount: Arc<Mount>,
    task: tokio::task::JoinHandle<()>,
}

/// Aborts the task it holds when dropped (the refresh loop inside a mount's task).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Start a mount: initialise it (a provider that cannot be reached is tried again with
/// backoff; a lost login is left to the refresh loop, which notices a new `pandav
/// login`), then run its refresh loop. Aborting the returned task stops both.
fn start(m: Arc<Mount>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
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
        if let Some(h) = m.spawn_refresh() {
            let mut refreshing = AbortOnDrop(h);
            let _ = (&mut refreshing.0).await;
        }
    })
}

/// Each mount's table in the config text, by normalised mount path: what a reload
/// compares to decide whether a mount changed.
fn mount_specs(cfg: &Config) -> Result<HashMap<String, toml::Value>> {
    let doc: toml::Table = toml::from_str(cfg.text()).context("re-reading config")?;
    let list = doc.get("mounts").and_then(|m| m.as_array()).cloned().unwrap_or_default();
    Ok((0..cfg.raw.mounts.len()).filter_map(|i| Some((cfg.mount_path(i), list.get(i)?.clone()))).collect())
}

/// `[server]` keys a reload cannot apply and that differ.
fn restart_only(old: &Config, new: &Config) -> Vec<&'static str> {
    let (a, b) = (&old.raw.server, &new.raw.server);
    let d = |x: &dyn std::fmt::Debug, y: &dyn std::fmt::Debug| format!("{x:?}") != format!("{y:?}");
    let mut out = vec![];
    for (key, changed) in [
        ("listen", d(&a.listen.get_ref().to_vec(), &b.listen.get_ref().to_vec())),
        ("state_dir", old.state_dir() != new.state_dir()),
        ("state", a.state != b.state),
        ("tls_cert", a.tls_cert != b.tls_cert),
        ("tls_key", a.tls_key != b.tls_key),
        ("log_level", a.log_level != b.log_level),
        ("log_format", a.log_format != b.log_format),
        ("max_connections", a.max_connections != b.max_connections),
        ("header_timeout", a.header_timeout != b.header_timeout),
        ("idle_timeout", a.idle_timeout != b.idle_timeout),
        ("sendfile", a.sendfile != b.sendfile),
        ("max_uploads", a.max_uploads != b.max_uploads),
        ("shutdown_grace", a.shutdown_grace != b.shutdown_grace),
        ("lock_max_timeout", a.lock_max_timeout != b.lock_max_timeout),
        ("locks_per_user", a.locks_per_user != b.locks_per_user),
        ("locks_total", a.locks_total != b.locks_total),
    ] {
        if changed {
            out.push(key);
        }
    }
    out
}

/// Applies SIGHUPs.
struct Reloader {
    path: Option<PathBuf>,
    listen: Vec<String>,
    cfg: Config,
    apps: Arc<ArcSwap<App>>,
    live: HashMap<String, Live>,
    state: StateDir,
}

impl Reloader {
    async fn run(mut self, mut reloads: tokio::sync::mpsc::UnboundedReceiver<()>) {
        while reloads.recv().await.is_some() {
            match self.reload() {
                Ok(msg) => {
                    crate::metrics::reload(true);
                    tracing::info!("configuration reloaded: {msg}");
                }
                Err(e) => {
                    crate::metrics::reload(false);
                    tracing::error!("configuration reload refused, the running one stays: {e:#}");
                }
            }
        }
    }

    fn reload(&mut self) -> Result<String> {
        if self.path.is_none() {
            anyhow::bail!("pandav was started without --config: nothing to re-read");
        }
        let new = load(&self.path, &self.listen)?;
        let specs = mount_specs(&new)?;
        // Build everything first: a mount whose options are wrong refuses the reload.
        let mut next: HashMap<String, Live> = HashMap::new();
        let mut fresh = vec![];
        let (mut kept, mut restarted, mut added) = (0, 0, 0);
        for i in 0..new.raw.mounts.len() {
            let path = new.mount_path(i);
            let spec = specs.get(&path).cloned().context("mount table")?;
            match self.live.get(&path) {
                Some(l) if l.spec == spec => kept += 1,
                Some(_) => {
                    restarted += 1;
                    fresh.push((path, spec, Arc::new(build_mount(&new, i, &self.state)?)));
                }
                None => {
                    added += 1;
                    fresh.push((path, spec, Arc::new(build_mount(&new, i, &self.state)?)));
                }
            }
        }
        for key in restart_only(&self.cfg, &new) {
            tracing::warn!("server.{key} changed: it takes effect when pandav is restarted");
        }
        // Swap: the new App serves the next request; the old mounts finish what runs.
        let mut mounts: Vec<Arc<Mount>> = vec![];
        for (path, spec, m) in &fresh {
            mounts.push(Arc::clone(m));
            next.insert(path.clone(), Live { spec: spec.clone(), mount: Arc::clone(m), task: start(Arc::clone(m)) });
        }
        let mut removed = 0;
        for (path, l) in self.live.drain() {
            if next.contains_key(&path) || !specs.contains_key(&path) {
                if !specs.contains_key(&path) {
                    removed += 1;
                }
                l.task.abort();
                continue;
            }
            mounts.push(Arc::clone(&l.mount));
            next.insert(path, l);
        }
        let table = Arc::new(MountTable::new(mounts));
        let app = self.apps.load().successor(&new, table);
        // The added and restarted mounts: what earlier runs left half-built on them goes
        // once they are up (never what a running copy is building).
        app.clean_when_up(fresh.iter().map(|(_, _, m)| Arc::clone(m)).collect());
        self.apps.store(Arc::new(app));
        self.live = next;
        self.cfg = new;
        Ok(format!("{kept} mount(s) kept, {restarted} restarted, {added} added, {removed} removed"))
    }
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

/// Signal handling, in place as soon as this returns: a future that completes on the
/// first SIGTERM or SIGINT (a second one exits the process at once), and a channel
/// with one message per SIGHUP.
fn signals() -> Result<(impl std::future::Future<Output = ()>, tokio::sync::mpsc::UnboundedReceiver<()>)> {
    let (down_tx, down_rx) = tokio::sync::oneshot::channel::<()>();
    let (hup_tx, hup_rx) = tokio::sync::mpsc::unbounded_channel();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            let mut down_tx = Some(down_tx);
            loop {
                let (name, num) = tokio::select! {
                    _ = term.recv() => ("SIGTERM", libc::SIGTERM),
                    _ = int.recv() => ("SIGINT", libc::SIGINT),
                    _ = hup.recv() => ("SIGHUP", libc::SIGHUP),
                };
                if num == libc::SIGHUP {
                    tracing::info!("SIGHUP: re-reading the configuration");
                    let _ = hup_tx.send(());
                    continue;
                }
                match down_tx.take() {
                    Some(tx) => {
                        tracing::info!("{name}: shutting down (a second SIGTERM or SIGINT exits at once)");
                        let _ = tx.send(());
                    }
                    None => {
                        tracing::warn!("{name} again: exiting now, without waiting");
                        std::process::exit(128 + num);
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    {
        drop(hup_tx);
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            let _ = down_tx.send(());
            let _ = tokio::signal::ctrl_c().await;
            std::process::exit(130);
        });
    }
    Ok((
        async move {
            let _ = down_rx.await;
        },
        hup_rx,
    ))
}

/// `pandav healthcheck`: GET `<prefix>/-/health` of the first listen address (a
/// wildcard address is asked on loopback; TLS without checking the certificate, which
/// is ours). Exit 0 on 200, else 1; 2 for a config that cannot be read.
pub fn healthcheck(config: Option<PathBuf>, url: Option<String>) -> i32 {
    let url = match url {
        Some(u) => u,
        None => {
            let cfg = match &config {
                Some(p) => Config::load(p),
                None => Ok(Config::embedded_default()),
            };
            let cfg = match cfg {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return 2;
                }
            };
            let Some(addr) = cfg.listen_addrs().ok().and_then(|a| a.first().copied()) else {
                eprintln!("error: no listen address");
                return 2;
            };
            let ip = match addr.ip() {
                std::net::IpAddr::V4(v) if v.is_unspecified() => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                std::net::IpAddr::V6(v) if v.is_unspecified() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
                ip => ip,
            };
            let scheme = if cfg.raw.server.tls_cert.is_some() { "https" } else { "http" };
            format!("{scheme}://{}{}/-/health", std::net::SocketAddr::new(ip, addr.port()), cfg.raw.server.prefix)
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .danger_accept_invalid_certs(true)
            .redirect(reqwest::redirect::Policy::none())
            .build();
        let r = match client {
            Ok(c) => c.get(&url).header("User-Agent", "pandav-healthcheck").send().await,
            Err(e) => Err(e),
        };
        match r {
            Ok(r) => {
                let status = r.status();
                println!("{status} {}", r.text().await.unwrap_or_default().trim());
                if status.is_success() {
                    0
                } else {
                    1
                }
            }
            Err(e) => {
                println!("unreachable: {}", e.without_url());
                1
            }
        }
    })
}
