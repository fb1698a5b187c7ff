//! Bench (issue 9): served requests under load, with and without 1,000 silent sockets.
//!
//! Against the real `pandav serve` (the bench-profile binary) on a local folder:
//! 500 active HTTP/1.1 keep-alive connections, each sending small GETs (4 out of 5) and
//! PROPFIND Depth 1 of a 50-entry folder (1 out of 5) one after the other, for
//! `BENCH_SECS` (default 10); then 1,000 more sockets are opened that never send a
//! byte, and the same load runs again. Printed: requests/s, latency percentiles of the
//! served requests, errors, the server's peak RSS (VmHWM, reset per phase), its threads
//! and open descriptors; and afterwards, how many of the silent sockets the server
//! closed by itself (`header_timeout`, set to 30 s here so that they stay open through
//! the measured phase).
//!
//!   cargo bench --bench load
//!
//! Environment: `BENCH_SECS=10`, `BENCH_ACTIVE=500`, `BENCH_SILENT=1000`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const SMALL_FILES: usize = 50;
const SMALL_SIZE: usize = 1024;
const HEADER_TIMEOUT_SECS: u64 = 30;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Pandav {
    child: Killed,
    url: String,
}

fn start_pandav(tmp: &std::path::Path) -> Pandav {
    let data = tmp.join("data");
    std::fs::create_dir_all(data.join("small")).unwrap();
    let mut rng = Prng::new(9);
    for i in 0..SMALL_FILES {
        let mut b = vec![0u8; SMALL_SIZE];
        rng.fill(&mut b);
        std::fs::write(data.join(format!("small/f{i:02}.bin")), b).unwrap();
    }
    let cfg = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = {state:?}\nlog_level = \"info\"\n\
         header_timeout = \"{HEADER_TIMEOUT_SECS}s\"\n\n\
         [[mounts]]\npath = \"/local\"\ndriver = \"local\"\n[mounts.options]\nroot = {root:?}\n",
        state = tmp.join("state").display().to_string(),
        root = data.display().to_string(),
    );
    let cfg_path = tmp.join("pandav.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let (child, url) = spawn_pandav(env!("CARGO_BIN_EXE_pandav"), &cfg_path).unwrap_or_else(|e| panic!("{e}"));
    Pandav { child, url }
}

fn count_fds(pid: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// What one phase measured.
struct Phase {
    name: String,
    latencies: Vec<Duration>,
    gets: Vec<Duration>,
    propfinds: Vec<Duration>,
    errors: u64,
    secs: f64,
    hwm_mib: f64,
    threads: u64,
    fds: usize,
}

/// `active` connections (one reqwest client with one connection each) sending requests
/// back to back for `secs`.
async fn run_load(name: &str, url: &str, active: usize, secs: u64, pid: &str) -> Phase {
    reset_hwm(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(Mutex::new((Vec::with_capacity(200_000), Vec::with_capacity(50_000))));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..active {
        let (stop, errors, lat) = (Arc::clone(&stop), Arc::clone(&errors), Arc::clone(&lat));
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .http1_only()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap();
            let propfind = reqwest::Method::from_bytes(b"PROPFIND").unwrap();
            let (mut gets, mut props) = (Vec::new(), Vec::new());
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let is_propfind = i % 5 == 4;
                let ok = if is_propfind {
                    match client
                        .request(propfind.clone(), format!("{url}/local/small/"))
                        .header("Depth", "1")
                        .send()
                        .await
                    {
                        Ok(r) if r.status().as_u16() == 207 => r.bytes().await.is_ok(),
                        _ => false,
                    }
                } else {
                    match client.get(format!("{url}/local/small/f{:02}.bin", i % SMALL_FILES)).send().await {
                        Ok(r) if r.status().is_success() => r.bytes().await.is_ok_and(|b| b.len() == SMALL_SIZE),
                        _ => false,
                    }
                };
                match (ok, is_propfind) {
                    (true, true) => props.push(t.elapsed()),
                    (true, false) => gets.push(t.elapsed()),
                    (false, _) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += 1;
            }
            let mut l = lat.lock().unwrap();
            l.0.extend(gets);
            l.1.extend(props);
        }));
    }
    let mut threads = 0;
    let mut fds = 0;
    let until = started + Duration::from_secs(secs);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(500)).await;
        threads = threads.max(vm_kib(pid, "Threads").unwrap_or(0));
        fds = fds.max(count_fds(pid));
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let (mut gets, mut propfinds) = std::mem::take(&mut *lat.lock().unwrap());
    gets.sort();
    propfinds.sort();
    let mut latencies: Vec<Duration> = gets.iter().chain(&propfinds).copied().collect();
    latencies.sort();
    Phase {
        name: name.into(),
        latencies,
        gets,
        propfinds,
        errors: errors.load(Ordering::Relaxed),
        secs,
        hwm_mib: vm_hwm_mib(pid).unwrap_or(0.0),
        threads,
        fds,
    }
}

fn main() {
    let secs = env_num("BENCH_SECS", 10);
    let active = env_num("BENCH_ACTIVE", 500) as usize;
    let silent_n = env_num("BENCH_SILENT", 1000) as usize;
    let tmp = tempfile::tempdir().unwrap();
    let server = start_pandav(tmp.path());
    let pid = server.child.pid();
    println!(
        "load bench: {active} active connections (GET 1 KiB 4/5, PROPFIND Depth 1 of 50 entries 1/5), \
         {secs} s per phase; nproc {}, load average {}",
        nproc(),
        loadavg()
    );
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let phases = rt.block_on(async {
        // Warm-up: connections made, page cache and allocator settled.
        let _ = run_load("warm-up", &server.url, active, 2, &pid).await;
        let base = run_load("without silent sockets", &server.url, active, secs, &pid).await;
        let addr: std::net::SocketAddr = server.url.strip_prefix("http://").unwrap().parse().unwrap();
        let mut silent = Vec::with_capacity(silent_n);
        for _ in 0..silent_n {
            silent.push(tokio::net::TcpStream::connect(addr).await.expect("silent socket"));
        }
        let opened = Instant::now();
        let with = run_load(&format!("with {silent_n} silent sockets"), &server.url, active, secs, &pid).await;
        // How many the server closes by itself once header_timeout has passed.
        let deadline = opened + Duration::from_secs(HEADER_TIMEOUT_SECS + 15);
        let mut closed = 0;
        for s in &silent {
            let mut buf = [0u8; 1];
            let left = deadline.saturating_duration_since(Instant::now());
            if let Ok(Ok(0)) = tokio::time::timeout(left, s.peek(&mut buf)).await {
                closed += 1;
            }
        }
        let closed_after = opened.elapsed();
        (vec![base, with], closed, closed_after)
    });
    let (phases, closed, closed_after) = phases;
    let mut t = Table::new("figure", &phases.iter().map(|p| p.name.clone()).collect::<Vec<_>>());
    t.row("requests/s", phases.iter().map(|p| format!("{:.0}", p.latencies.len() as f64 / p.secs)).collect());
    for (label, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)] {
        t.row(&format!("latency {label}"), phases.iter().map(|p| ms(percentile(&p.latencies, q))).collect());
    }
    t.row("latency max", phases.iter().map(|p| ms(p.latencies.last().copied().unwrap_or_default())).collect());
    for q in [0.5, 0.99] {
        t.row(&format!("GET p{}", q * 100.0), phases.iter().map(|p| ms(percentile(&p.gets, q))).collect());
        t.row(&format!("PROPFIND p{}", q * 100.0), phases.iter().map(|p| ms(percentile(&p.propfinds, q))).collect());
    }
    t.row("failed requests", phases.iter().map(|p| p.errors.to_string()).collect());
    t.row("server peak RSS (VmHWM)", phases.iter().map(|p| format!("{:.1} MiB", p.hwm_mib)).collect());
    t.row("server threads (max)", phases.iter().map(|p| p.threads.to_string()).collect());
    t.row("server open fds (max)", phases.iter().map(|p| p.fds.to_string()).collect());
    t.print();
    println!(
        "silent sockets closed by the server: {closed} of {silent_n}, all by {:.0} s after opening \
         (header_timeout = {HEADER_TIMEOUT_SECS}s); load average now {}",
        closed_after.as_secs_f64(),
        loadavg()
    );
}
