//! What the provider benches share: knobs from the environment, figures as text, and
//! the runtime they run on (2 workers, like the machine; `RUST_LOG` shows the steps).
#![allow(dead_code)]

pub mod aliyun;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pandav::vfs::{spool, Drive, Entry, Mount, MountOptions, Policy};

/// A number from the environment, or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

pub fn mbps(bytes: u64, d: Duration) -> String {
    format!("{:.0} MB/s", bytes as f64 / 1e6 / d.as_secs_f64())
}

/// `label: N calls` and the calls by endpoint, most frequent last.
pub fn print_counts(label: &str, keys: impl IntoIterator<Item = String>) {
    let mut m = std::collections::BTreeMap::new();
    let mut n = 0;
    for k in keys {
        *m.entry(k).or_insert(0) += 1;
        n += 1;
    }
    println!("  {label}: {n} API calls");
    for (k, v) in m {
        println!("      {v:>5}  {k}");
    }
}

/// Run `bench` on a 2-worker runtime; `RUST_LOG=pandav=debug` shows the driver's steps
/// with timestamps (where the time goes).
pub fn main_with<F: std::future::Future<Output = ()>>(bench: F) {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(bench);
}

/// The mount a bench measures: `drive` at `path`, proxy policy, listings cached 60 s,
/// spooling in `dir/spool`.
pub fn bench_mount(path: &str, drive: Arc<dyn Drive>, dir: &std::path::Path) -> Mount {
    let opts = MountOptions {
        path: path.into(),
        policy: Policy::Proxy,
        proxy_url: None,
        read_only: false,
        cache_ttl: Duration::from_secs(60),
        spool_dir: dir.join("spool"),
    };
    Mount::new(opts, drive)
}

/// Spool `size` bytes that `fill` produces (256 KiB at a time: it fills the buffer and
/// says how much it wrote, 0 at the end), then `Mount::put` them at `rel`; prints the
/// timings. Returns the entry, the spool's SHA-1 and the total time.
pub async fn spool_and_put(
    m: &Mount,
    rel: &str,
    size: u64,
    mut fill: impl FnMut(&mut [u8]) -> usize,
) -> (Entry, String, Duration) {
    let t_all = Instant::now();
    let parent = rel.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    let mut sp = spool::Spool::create(&m.spool_dir_for(parent).await).await.unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = fill(&mut buf);
        if n == 0 {
            break;
        }
        sp.write(&buf[..n]).await.unwrap();
    }
    let t_write = t_all.elapsed();
    let sp = sp.finish(None).await.unwrap();
    let t_spool = t_all.elapsed();
    let sha1 = sp.upload.sha1.clone();
    let t = Instant::now();
    let e = m.put(rel, sp.upload).await.unwrap();
    let t_put = t.elapsed();
    let total = t_all.elapsed();
    drop(sp.guard);
    assert_eq!(e.size, size);
    println!("spool write (SHA-1+MD5+disk): {:>10}  {}", ms(t_write), mbps(size, t_write));
    println!("spool incl. flush+fsync:      {:>10}  {}", ms(t_spool), mbps(size, t_spool));
    println!("Mount::put (rapid upload):    {:>10}", ms(t_put));
    println!("TOTAL spool + put:            {:>10}  {}", ms(total), mbps(size, total));
    (e, sha1, total)
}
