//! Speed of the `115` driver against the in-process emulator (`emu115`), issue 4 "Speed":
//!
//! 1. Listing a 10,000-file folder through a `Mount`: API calls and wall time, cold
//!    (first listing) and cached (second listing within the TTL, then a PROPFIND-style
//!    resolve of every child).
//! 2. Uploading 1 GiB that 115 already knows (rapid-upload hit): spool (SHA-1 + MD5 while
//!    writing to disk) then `Mount::put`; the hashing throughput measured on its own over
//!    the same bytes; the emulator confirms that no body byte was sent.
//!
//! Run: `cargo bench --bench p115` (plain `harness = false` program, prints figures).
//! Knobs (environment): `P115_BENCH_FILES` (default 10000), `P115_BENCH_UPLOAD_MB`
//! (default 1024), `P115_BENCH_PAGE_SIZE` (driver `page_size`, default: driver default).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use emu115::{Emu115, Opts};
use md5::Digest as _;
use pandav::drivers::p115::web as p115;
use pandav::drivers::DriverCtx;
use pandav::state::StateHandle;
use pandav::vfs::*;
use support::{env_num, mbps, ms};

mod support;

const UID: u64 = 123456789;

/// Deterministic incompressible bytes (xorshift64), as in `tests/drv115/emu.rs`.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = vec![0u8; len];
    for c in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        c.copy_from_slice(&b[..c.len()]);
    }
    out
}

/// Requests served since the last `reset_counters`, by `host/path`.
fn print_calls(label: &str, emu: &Emu115) {
    support::print_counts(label, emu.requests().into_iter().map(|r| r.key));
}

fn main() {
    support::main_with(run());
}

async fn run() {
    let n_files = env_num("P115_BENCH_FILES", 10_000) as usize;
    let upload_mb = env_num("P115_BENCH_UPLOAD_MB", 1024);
    let page_size = std::env::var("P115_BENCH_PAGE_SIZE").ok();

    let emu = Arc::new(Emu115::start(Opts::default()).await);
    let cookie = emu.add_user(UID, "alice");
    let dir = tempfile::tempdir_in(std::env::var("P115_BENCH_TMP").unwrap_or_else(|_| "/tmp".into())).unwrap();

    // The driver exactly as tests/drv115/emu.rs builds it (rate_limit = 0: unpaced).
    let mut text = format!(
        "cookie = {cookie:?}\nrate_limit = 0\nretry_base_ms = 20\nthrottle_cooldown_secs = 1\nm115_test_modulus = {:?}\nec115_server_public_key = {:?}\n",
        emu.m115_modulus_hex(),
        emu.ec_server_public_hex(),
    );
    if let Some(p) = &page_size {
        text.push_str(&format!("page_size = {p}\n"));
    }
    text.push_str("[endpoints]\n");
    for (h, b) in emu.endpoints() {
        text.push_str(&format!("{h:?} = {b:?}\n"));
    }
    let ctx = DriverCtx {
        mount_path: "/115".into(),
        state: StateHandle::at(dir.path().join("state/mount-_115.json")),
        base_dir: dir.path().into(),
        source: None,
    };
    let drive: Arc<dyn Drive> = Arc::new(p115::build(toml::from_str(&text).unwrap(), &ctx).unwrap());
    let m = support::bench_mount("/115", drive, dir.path());

    // Fixture: /big with n_files small files, /up for the upload.
    let t = Instant::now();
    let big = emu.mkdir(UID, 0, "big");
    emu.mkdir(UID, 0, "up");
    for i in 0..n_files {
        emu.put_file(UID, big, &format!("file-{i:05}.bin"), format!("content of file {i}\n").into_bytes());
    }
    println!("fixture: {n_files} files seeded in the emulator in {}", ms(t.elapsed()));
    m.init().await.unwrap();

    // ---------------------------------------------------------------- listing
    println!("\n== listing /big ({n_files} files), page_size {} ==", page_size.as_deref().unwrap_or("default (1000)"));
    emu.reset_counters();
    let t = Instant::now();
    let (_, l) = m.list("big").await.unwrap();
    let cold = t.elapsed();
    assert_eq!(l.len(), n_files);
    println!("cold list (resolve /big via the root listing, then /big): {}", ms(cold));
    print_calls("cold", &emu);
    // Page requests for /big: offsets asked.
    let offs: Vec<String> = emu
        .requests()
        .into_iter()
        .filter(|r| r.key == "webapi.115.com/files" && r.query.contains(&format!("cid={big}&")))
        .filter_map(|r| r.query.split('&').find(|p| p.starts_with("offset=")).map(|p| p[7..].to_string()))
        .collect();
    println!("  /files pages for /big: {} (offsets {})", offs.len(), offs.join(","));

    emu.reset_counters();
    let t = Instant::now();
    let (_, l2) = m.list("big").await.unwrap();
    let warm = t.elapsed();
    assert_eq!(l2.len(), n_files);
    println!("cached list (same TTL window): {}", ms(warm));
    print_calls("cached list", &emu);

    emu.reset_counters();
    let names: Vec<String> = l2.iter().map(|e| e.name().to_string()).collect();
    let t = Instant::now();
    for n in &names {
        let e = m.resolve(&format!("big/{n}")).await.unwrap();
        assert!(!e.is_dir);
    }
    let res = t.elapsed();
    println!(
        "cached resolve of every child ({} resolves, PROPFIND-style): {} total, {:.2} µs each",
        names.len(),
        ms(res),
        res.as_secs_f64() * 1e6 / names.len().max(1) as f64
    );
    print_calls("cached resolves", &emu);

    // ---------------------------------------------------------------- upload
    let size = (upload_mb as usize) << 20;
    println!("\n== upload of {upload_mb} MiB, rapid-upload hit ==");
    let t = Instant::now();
    let data = Bytes::from(noise(size, 42));
    println!("generate {} bytes: {}", size, ms(t.elapsed()));

    // Hashing alone over the same in-memory bytes (no disk), same chunking as the spool.
    const CHUNK: usize = 256 * 1024;
    let t = Instant::now();
    let mut h = sha1::Sha1::new();
    for c in data.chunks(CHUNK) {
        h.update(c);
    }
    let sha1_hex = hex::encode(h.finalize());
    let t_sha1 = t.elapsed();
    let t = Instant::now();
    let mut h = md5::Md5::new();
    for c in data.chunks(CHUNK) {
        h.update(c);
    }
    let _ = h.finalize();
    let t_md5 = t.elapsed();
    let t = Instant::now();
    let (mut a, mut b) = (sha1::Sha1::new(), md5::Md5::new());
    for c in data.chunks(CHUNK) {
        a.update(c);
        b.update(c);
    }
    let _ = (a.finalize(), b.finalize());
    let t_both = t.elapsed();
    println!("SHA-1 alone (memory):        {:>10}  {}", ms(t_sha1), mbps(size as u64, t_sha1));
    println!("MD5 alone (memory):          {:>10}  {}", ms(t_md5), mbps(size as u64, t_md5));
    println!("SHA-1 + MD5 (memory):        {:>10}  {}", ms(t_both), mbps(size as u64, t_both));

    let t = Instant::now();
    let known = emu.add_known_content(data.clone());
    println!("(emulator: add_known_content, its own SHA-1, not counted: {})", ms(t.elapsed()));
    assert!(known.eq_ignore_ascii_case(&sha1_hex), "emulator sha1 {known} vs {sha1_hex}");

    emu.reset_counters();
    let mut at = 0usize;
    let (_, spooled_sha1, total) = support::spool_and_put(&m, "up/big.bin", size as u64, |buf| {
        let n = buf.len().min(data.len() - at);
        buf[..n].copy_from_slice(&data[at..at + n]);
        at += n;
        n
    })
    .await;
    assert_eq!(spooled_sha1, sha1_hex);
    println!(
        "hashing share of total: SHA-1 alone {:.0}%, SHA-1+MD5 {:.0}%",
        100.0 * t_sha1.as_secs_f64() / total.as_secs_f64(),
        100.0 * t_both.as_secs_f64() / total.as_secs_f64()
    );
    print_calls("upload", &emu);
    let reqs = emu.requests();
    let body: usize = reqs.iter().map(|r| r.body_len).sum();
    let oss = emu.calls_prefix(emu115::OSS_HOST) + emu.calls_prefix(emu115::OSS_ENDPOINT_HOST);
    println!("  request body bytes sent in total: {body} (file is {size}); OSS calls: {oss}");
    assert_eq!(oss, 0, "a rapid-upload hit sends nothing to OSS");
    assert!(body < 64 * 1024, "no body upload");
    for l in emu.upload_log() {
        println!("  emu upload log: {l}");
    }
    let stored = emu.list_children(UID, emu.find_path(UID, "/up").unwrap());
    println!("  stored: {:?} size {} sha1 {}", stored[0].name, stored[0].size, stored[0].sha1);
}
