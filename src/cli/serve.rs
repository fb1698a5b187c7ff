//! `pandav serve`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::{build_table, init_logging};
use crate::config::Config;
use crate::state::StateDir;

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
    let limits = crate::server::prepare(&cfg, &state.spool_dir());
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
    app.start_background();
    crate::server::serve_with(app, listeners, tls, limits, shutdown).await;
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
