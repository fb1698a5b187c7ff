//! Bench (issue 13): one pandav beside three replicas sharing their state in Redis.
//!
//! A 115 Open mount on the in-process emulator (`emu115open`), a `redis-server` from
//! PATH on a free loopback port (`appendonly yes`, `appendfsync always`, as the README
//! asks), and three set-ups, each measured the same way:
//!
//! - `1 local`: one `pandav serve` with its state in the state dir (no Redis);
//! - `1 redis`: one `pandav serve` with `[server] state = "redis://…"`;
//! - `3 redis`: three of them on the same Redis, the bench's clients spread round robin.
//!
//! Figures per set-up:
//!
//! - **cached 302**: `BENCH_CLIENTS` (default 32) keep-alive clients sending
//!   `GET /o/movie.mkv` with one User-Agent for `BENCH_SECS` (default 5), every answer
//!   checked to be a 302 to the one link of the fleet (the link is fetched once, before
//!   the phase); requests/s, p50/p99;
//! - **PROPFIND Depth 1** of a 200-entry cloud folder (listing cached, `cache_ttl` 10
//!   min), 4 clients for `BENCH_SECS`; every answer checked to be 207 with 201
//!   `response` elements; requests/s, p50/p99;
//! - server CPU time per request, summed over the replicas (and Redis's, apart).
//!
//!   CARGO_TARGET_DIR=/work/target-bench cargo bench --bench replicas
//!
//! The machine has 2 cores shared by the bench's clients, the emulator, Redis and the
//! replicas: three replicas cannot be faster here than one; what the figures show is
//! the cost of the shared state per request, not the gain of more hosts.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use emu115open::{Emu115Open, Options, DEFAULT_APP_ID};

const FOLDER_FILES: usize = 200;
const UA: &str = "bench-player/1";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// `redis-server` on a free port, its data in `dir`. Missing: the bench stops (it has
/// no figure to print without it).
fn start_redis(dir: &Path) -> (Killed, u16) {
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
        .arg(dir)
        .args(["--appendonly", "yes", "--appendfsync", "always", "--save", ""])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start redis-server ({e}): apt-get install redis-server"));
    let child = Killed(child);
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(20), "redis-server did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, port)
}

fn config(emu: &Emu115Open, refresh_token: &str, state_dir: &Path, redis: Option<u16>) -> String {
    let mut eps = String::new();
    for (h, b) in emu.endpoint_table() {
        eps.push_str(&format!("{} = {}\n", q(&h), q(&b)));
    }
    let state = redis.map(|p| format!("state = \"redis://127.0.0.1:{p}/0\"\n")).unwrap_or_default();
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = {}\nlog_level = \"warn\"\n{state}\n\
         [[mounts]]\npath = \"/o\"\ndriver = \"115_open\"\ncache_ttl = \"10m\"\n\
         [mounts.options]\nrefresh_token = {}\nrate_limit = 0\nclient_id = {}\n\
         [mounts.options.endpoints]\n{eps}",
        q(&state_dir.display().to_string()),
        q(refresh_token),
        q(DEFAULT_APP_ID),
    )
}

struct Replica {
    child: Killed,
    url: String,
}

fn start_replicas(tmp: &Path, name: &str, n: usize, text: impl Fn(&Path) -> String) -> Vec<Replica> {
    (0..n)
        .map(|i| {
            let dir = tmp.join(format!("{name}-{i}"));
            std::fs::create_dir_all(dir.join("state")).unwrap();
            let cfg = dir.join("pandav.toml");
            std::fs::write(&cfg, text(&dir.join("state"))).unwrap();
            let (child, url) = spawn_pandav(env!("CARGO_BIN_EXE_pandav"), &cfg).unwrap_or_else(|e| panic!("{e}"));
            Replica { child, url }
        })
        .collect()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Wait until every replica's mount is up (its first listing answers).
async fn settle(rs: &[Replica]) {
    let c = client();
    for r in rs {
        let t = Instant::now();
        loop {
            let ok = c
                .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), format!("{}/o/", r.url))
                .header("Depth", "1")
                .send()
                .await
                .map(|a| a.status().as_u16() == 207)
                .unwrap_or(false);
            if ok {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "{} did not come up", r.url);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

struct Phase {
    rps: f64,
    p50: Duration,
    p99: Duration,
    cpu_per_req: Duration,
    redis_cpu_per_req: Duration,
    n: usize,
}

/// `clients` loops of `one` for `secs`, client `i` on replica `i % n`.
async fn phase<F, Fut>(rs: &[Replica], redis_pid: Option<&str>, clients: usize, secs: u64, one: F) -> Phase
where
    F: Fn(reqwest::Client, String) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let pids: Vec<String> = rs.iter().map(|r| r.child.pid()).collect();
    let cpu = |pids: &[String]| pids.iter().map(|p| cpu_time(p).unwrap_or_default()).sum::<Duration>();
    let redis_cpu = || redis_pid.and_then(cpu_time).unwrap_or_default();
    let (cpu0, rcpu0) = (cpu(&pids), redis_cpu());
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let mut tasks = vec![];
    for i in 0..clients {
        let base = rs[i % rs.len()].url.clone();
        let one = one.clone();
        tasks.push(tokio::spawn(async move {
            let c = client();
            let mut lat = vec![];
            while Instant::now() < until {
                let t = Instant::now();
                one(c.clone(), base.clone()).await?;
                lat.push(t.elapsed());
            }
            Ok::<_, String>(lat)
        }));
    }
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.unwrap().unwrap_or_else(|e| panic!("bad answer: {e}")));
    }
    let wall = start.elapsed();
    let (cpu1, rcpu1) = (cpu(&pids), redis_cpu());
    all.sort();
    let n = all.len().max(1) as u32;
    Phase {
        rps: all.len() as f64 / wall.as_secs_f64(),
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
        cpu_per_req: (cpu1 - cpu0) / n,
        redis_cpu_per_req: (rcpu1.saturating_sub(rcpu0)) / n,
        n: all.len(),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(run());
}

async fn run() {
    let secs = env_num("BENCH_SECS", 5);
    let clients = env_num("BENCH_CLIENTS", 32) as usize;
    println!("replicas bench: {} cores, load average {} (start)", nproc(), loadavg());
    let tmp = tempfile::Builder::new().prefix("pandav-bench-replicas-").tempdir().unwrap();
    let emu = Emu115Open::start(Options::default()).await;
    let user = emu.add_user_named("bench");
    let tok = emu.authorize(user, DEFAULT_APP_ID);
    emu.put_file(user, 0, "movie.mkv", &[7u8; 4096]);
    let dir = emu.mkdir(user, 0, "many");
    for i in 0..FOLDER_FILES {
        emu.put_file(user, dir, &format!("f{i:03}.bin"), b"x");
    }
    let redis_dir = tmp.path().join("redis");
    std::fs::create_dir_all(&redis_dir).unwrap();
    let (redis, port) = start_redis(&redis_dir);
    let redis_pid = redis.pid();

    let mut cols = vec![];
    let mut rows: Vec<Vec<String>> = vec![vec![]; 8];
    for (name, n, shared) in [("1 local", 1, false), ("1 redis", 1, true), ("3 redis", 3, true)] {
        // Every set-up starts from the emulator's current grant: a set-up before may
        // have rotated it (the local one keeps its rotation in its own state dir).
        let refresh = emu.current_tokens(tok.grant).unwrap().refresh_token;
        let rs = start_replicas(tmp.path(), &name.replace(' ', "-"), n, |state| {
            config(&emu, &refresh, state, shared.then_some(port))
        });
        settle(&rs).await;
        // Warm: the link (one for the fleet) and every replica's listing.
        let c = client();
        let mut location = None;
        for r in &rs {
            let a = c.get(format!("{}/o/movie.mkv", r.url)).header("User-Agent", UA).send().await.unwrap();
            assert_eq!(a.status(), 302, "{name}: GET");
            let l = a.headers()["location"].to_str().unwrap().to_string();
            if shared {
                assert!(location.as_ref().is_none_or(|x| x == &l), "{name}: one link for the fleet");
            }
            location = Some(l);
        }
        let location = location.unwrap();
        let get = {
            let location = location.clone();
            move |c: reqwest::Client, base: String| {
                let location = location.clone();
                async move {
                    let a = c
                        .get(format!("{base}/o/movie.mkv"))
                        .header("User-Agent", UA)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    let l = a.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    if a.status() != 302 || l != location {
                        return Err(format!("{} {l}", a.status()));
                    }
                    Ok(())
                }
            }
        };
        let propfind = |c: reqwest::Client, base: String| async move {
            let a = c
                .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), format!("{base}/o/many/"))
                .header("Depth", "1")
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let st = a.status().as_u16();
            let body = a.text().await.map_err(|e| e.to_string())?;
            let n = body.matches("<D:response>").count();
            if st != 207 || n != FOLDER_FILES + 1 {
                return Err(format!("PROPFIND {st}, {n} responses"));
            }
            Ok(())
        };
        for r in &rs {
            propfind(client(), r.url.clone()).await.unwrap();
        }
        let rp = shared.then_some(redis_pid.as_str());
        let g = phase(&rs, rp, clients, secs, get).await;
        let p = phase(&rs, rp, 4, secs, propfind).await;
        cols.push(name.to_string());
        let cells = [
            format!("{:.0} ({} req)", g.rps, g.n),
            format!("{} / {}", ms(g.p50), ms(g.p99)),
            format!("{:.0} µs", g.cpu_per_req.as_secs_f64() * 1e6),
            format!("{:.0} µs", g.redis_cpu_per_req.as_secs_f64() * 1e6),
            format!("{:.1} ({} req)", p.rps, p.n),
            format!("{} / {}", ms(p.p50), ms(p.p99)),
            format!("{:.1} ms", p.cpu_per_req.as_secs_f64() * 1e3),
            format!("{:.0} µs", p.redis_cpu_per_req.as_secs_f64() * 1e6),
        ];
        for (row, cell) in rows.iter_mut().zip(cells) {
            row.push(cell);
        }
        drop(rs);
    }
    let mut t = Table::new("figure", &cols);
    let names = [
        format!("cached 302, {clients} clients: req/s"),
        "  p50 / p99".into(),
        "  pandav CPU per request (all replicas)".into(),
        "  Redis CPU per request".into(),
        "PROPFIND Depth 1, 200 entries, 4 clients: req/s".into(),
        "  p50 / p99".into(),
        "  pandav CPU per request (all replicas)".into(),
        "  Redis CPU per request".into(),
    ];
    for (name, row) in names.iter().zip(rows) {
        t.row(name, row);
    }
    t.print();
    println!("load average {} (end); {secs} s per phase", loadavg());
    drop(redis);
}
