//! `pandav tasks`: the copies and moves between mounts of a running server, read from
//! its `GET /-/tasks` with the credentials of one of its users (the server's view is
//! the only one: tasks live in the server; with shared state in Redis any replica
//! answers for the whole fleet, each task naming its replica). A user sees the tasks
//! they started; a user with `admin = true` sees all.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use super::TasksArgs;
use crate::config::Config;
use crate::vfs::tasks::TaskInfo;

/// The server's base URL: `--url`, else the config's first listen address and prefix.
fn base_url(args: &TasksArgs) -> Result<String> {
    if let Some(u) = &args.url {
        return Ok(u.trim_end_matches('/').to_string());
    }
    let config = args.config.as_ref().ok_or_else(|| anyhow!("give the server's --url, or its --config"))?;
    let cfg = Config::load(config)?;
    let addr = *cfg.listen_addrs()?.first().ok_or_else(|| anyhow!("{}: no listen address", cfg.source_name))?;
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v) if v.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(v) if v.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(v) => format!("[{v}]"),
        ip => ip.to_string(),
    };
    let scheme = if cfg.raw.server.tls_cert.is_some() { "https" } else { "http" };
    Ok(format!("{scheme}://{ip}:{}{}", addr.port(), cfg.raw.server.prefix))
}

/// The password of `--user`: `PANDAV_PASSWORD`, else the first line of stdin (never
/// read from a terminal, where it would be echoed).
fn password() -> Result<String> {
    if let Ok(p) = std::env::var("PANDAV_PASSWORD") {
        return Ok(p);
    }
    if std::io::stdin().is_terminal() {
        bail!("set PANDAV_PASSWORD or pipe the password on stdin");
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// 1536 → "1.5 KiB".
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn print_table(tasks: &[TaskInfo]) {
    println!("{:<12} {:<5} {:<8} {:>23} {:>11} {:>9}  from -> to", "id", "kind", "state", "done", "rate", "files");
    for t in tasks {
        let done = format!("{}/{}", human(t.bytes_done), human(t.bytes_total));
        let rate = format!("{}/s", human(t.rate));
        let files = format!("{}/{}", t.files_done, t.files_total);
        println!(
            "{:<12} {:<5} {:<8} {:>23} {:>11} {:>9}  {} -> {}",
            t.id, t.kind, t.state, done, rate, files, t.from, t.to
        );
        if let Some(r) = &t.replica {
            println!("{:<12} on replica {r}", "");
        }
        if t.bytes_by_hash > 0 {
            println!("{:<12} {} stored by hash (no body sent)", "", human(t.bytes_by_hash));
        }
        if let Some(e) = &t.error {
            println!("{:<12} error: {e}", "");
        }
        for f in &t.failures {
            println!("{:<12} not copied: {} ({}): {}", "", f.path, f.status, f.error);
        }
    }
    println!("{} task(s)", tasks.len());
}

/// `pandav tasks …`. Returns the exit code.
pub async fn tasks(args: TasksArgs) -> Result<i32> {
    let base = base_url(&args)?;
    let url = match &args.id {
        Some(id) => {
            format!("{base}/-/tasks/{}", percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC))
        }
        None => format!("{base}/-/tasks"),
    };
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .danger_accept_invalid_certs(args.insecure)
        .build()?;
    let mut req = client.get(&url);
    if let Some(u) = &args.user {
        req = req.basic_auth(u, Some(password()?));
    }
    let resp = req.send().await.with_context(|| format!("cannot reach {base}"))?;
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        let msg = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        eprintln!("error: {} answered {status}: {msg}", base);
        return Ok(1);
    }
    if args.json {
        println!("{}", String::from_utf8_lossy(&body));
        return Ok(0);
    }
    let list: Vec<TaskInfo> = if args.id.is_some() {
        vec![serde_json::from_slice(&body).context("the server's answer")?]
    } else {
        #[derive(serde::Deserialize)]
        struct List {
            tasks: Vec<TaskInfo>,
        }
        serde_json::from_slice::<List>(&body).context("the server's answer")?.tasks
    };
    print_table(&list);
    Ok(0)
}
