//! Helpers shared by the benchmark programs: process readings from /proc, percentiles,
//! a fast PRNG for test data, and table printing.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// A child process (a server under test) killed and reaped when dropped.
pub struct Killed(pub std::process::Child);

impl Killed {
    pub fn pid(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Drain a child's pipe so it never blocks on a full pipe; lines go nowhere.
pub fn drain<R: std::io::Read + Send + 'static>(r: R) {
    std::thread::spawn(move || {
        let mut r = r;
        let mut buf = vec![0u8; 64 * 1024];
        while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
    });
}

/// Start `pandav serve --config CFG` (its log into a drained pipe) and wait for the URL it
/// prints; returns the process and the URL without a trailing `/`.
pub fn spawn_pandav(bin: &str, cfg: &Path) -> Result<(Killed, String), String> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(bin)
        .args(["serve", "--config"])
        .arg(cfg)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {bin}: {e}"))?;
    let mut out = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
    let child = Killed(child);
    let mut line = String::new();
    let url = loop {
        line.clear();
        if out.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("pandav exited before printing its URL".into());
        }
        if let Some(rest) = line.trim().strip_prefix("pandav serving WebDAV at ") {
            break rest.trim_end_matches('/').to_string();
        }
    };
    // The request log goes to stdout: drain it so the server never blocks on the pipe.
    drain(out);
    Ok((child, url))
}

/// `/proc/loadavg`'s first three fields.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

pub fn nproc() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// One `VmXXX:` field of `/proc/<pid>/status`, in KiB.
pub fn vm_kib(pid: &str, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Peak resident set size (VmHWM) in MiB.
pub fn vm_hwm_mib(pid: &str) -> Option<f64> {
    vm_kib(pid, "VmHWM").map(|k| k as f64 / 1024.0)
}

/// Current resident set size (VmRSS) in MiB.
pub fn vm_rss_mib(pid: &str) -> Option<f64> {
    vm_kib(pid, "VmRSS").map(|k| k as f64 / 1024.0)
}

/// Reset VmHWM to the current RSS (Linux ≥ 4.0, `echo 5 > clear_refs`).
pub fn reset_hwm(pid: &str) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: &str) -> Option<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`, which may contain spaces.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after comm.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 1000 / clk_tck()))
}

fn clk_tck() -> u64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux we run on; no libc dependency for it.
    100
}

/// `q` in 0..=1 of sorted samples (nearest rank).
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn ms(d: Duration) -> String {
    let m = d.as_secs_f64() * 1000.0;
    if m < 10.0 {
        format!("{m:.2} ms")
    } else {
        format!("{m:.0} ms")
    }
}

pub fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64().max(1e-9)
}

/// xorshift64*: fast enough to fill a GiB in about a second, deterministic by seed.
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Make sure `path` holds `size` pseudo-random bytes (made once, reused across runs).
pub fn ensure_random_file(path: &Path, size: u64, seed: u64) -> std::io::Result<()> {
    if std::fs::metadata(path).map(|m| m.len() == size).unwrap_or(false) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    eprintln!("making {} ({} MiB of PRNG bytes, once)…", path.display(), size >> 20);
    let tmp = path.with_extension("tmp");
    let mut f = std::io::BufWriter::with_capacity(4 << 20, std::fs::File::create(&tmp)?);
    let mut rng = Prng::new(seed);
    let mut buf = vec![0u8; 4 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Read a whole file once so every server starts from a warm page cache.
pub fn warm_page_cache(path: &Path) -> std::io::Result<()> {
    let mut f = std::fs::File::open(path)?;
    std::io::copy(&mut f, &mut std::io::sink())?;
    Ok(())
}

/// A markdown table: first column names the figure, then one column per server.
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(first: &str, cols: &[String]) -> Table {
        let mut header = vec![first.to_string()];
        header.extend(cols.iter().cloned());
        Table { header, rows: vec![] }
    }
    pub fn row(&mut self, name: &str, cells: Vec<String>) {
        let mut r = vec![name.to_string()];
        r.extend(cells);
        self.rows.push(r);
    }
    pub fn print(&self) {
        let n = self.header.len();
        let mut w = vec![3usize; n];
        for r in std::iter::once(&self.header).chain(&self.rows) {
            for (i, c) in r.iter().enumerate().take(n) {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |r: &Vec<String>| {
            let cells: Vec<String> = (0..n)
                .map(|i| {
                    let c = r.get(i).map(String::as_str).unwrap_or("");
                    format!("{c:<width$}", width = w[i])
                })
                .collect();
            println!("| {} |", cells.join(" | "));
        };
        line(&self.header);
        println!("|{}|", w.iter().map(|x| "-".repeat(x + 2)).collect::<Vec<_>>().join("|"));
        for r in &self.rows {
            line(r);
        }
    }
}
