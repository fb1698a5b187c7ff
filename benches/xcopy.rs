//! COPY between mounts through the real binary (`pandav serve`), issue 12 "Cross-mount
//! COPY and MOVE": the emulators (`emu115open` as the source, `emu115` as the target)
//! run in this process, pandav in its own, every byte over 127.0.0.1.
//!
//! 1. Unknown content: `COPY /open/u.bin → /115/u.bin` streams the bytes from Open's
//!    CDN to 115's OSS. Wall time, throughput, peak RSS of the server (VmHWM, reset
//!    before), and the OSS body bytes emu115 received.
//! 2. The two sides alone, through the same server: the source read (`GET /open/u0.bin`
//!    proxied by pandav, bytes discarded) and the target written (a local
//!    file whose SHA-1 is already in the hash cache, `COPY /local/l.bin → /115/l.bin`, so
//!    only 115's intake limits it). The copy's throughput is set against the slower.
//! 3. Known content: `COPY /open/u.bin → /115/known.bin` once 115 has the content: the
//!    OSS body bytes (0 expected), the CDN requests for the proofs, wall time.
//!
//! Run: `cargo bench --bench xcopy` (a `harness = false` program printing figures).
//! Knobs: `XCOPY_BENCH_MB` (default 1024), `XCOPY_BENCH_ROUNDS` (default 1: rounds of
//! step 2, each with content of its own, the two copies of a round back to back in
//! alternating order; the median ratio is printed), `XCOPY_BENCH_TMP` (where the local
//! files and the server's state go; default the system temp dir), `PANDAV_BIN` (the
//! pandav binary to run; default this build's). Holds about 4× the size per round in
//! this process's memory (the emulators keep their files in RAM).

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use emu115::{Emu115, Opts};
use emu115open::{Emu115Open, Options as OpenOptions, DEFAULT_APP_ID};
use futures_util::StreamExt;

const UID: u64 = 123456789;

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Prng::new(seed).fill(&mut v);
    v
}

fn config(
    emu: &Emu115,
    cookie: &str,
    open: &Emu115Open,
    refresh: &str,
    local: &std::path::Path,
    state: &std::path::Path,
) -> String {
    let mut ep115 = String::new();
    for (h, b) in emu.endpoints() {
        ep115.push_str(&format!("{} = {}\n", toml_str(&h), toml_str(&b)));
    }
    let mut ep_open = String::new();
    for (h, b) in open.endpoint_table() {
        ep_open.push_str(&format!("{} = {}\n", toml_str(&h), toml_str(&b)));
    }
    format!(
        r#"[server]
listen = "127.0.0.1:0"
state_dir = {state}
log_level = "warn"
copy_wait = "1h"

[[mounts]]
path = "/local"
driver = "local"
[mounts.options]
root = {local}

[[mounts]]
path = "/115"
driver = "115"
cache_ttl = "0s"
[mounts.options]
cookie = {cookie}
rate_limit = 0
app_version = "35.6.0.3"
m115_test_modulus = {modulus}
ec115_server_public_key = {ec}
[mounts.options.endpoints]
{ep115}
[[mounts]]
path = "/open"
driver = "115_open"
cache_ttl = "0s"
policy = "proxy"
[mounts.options]
refresh_token = {refresh}
client_id = {app}
rate_limit = 0
[mounts.options.endpoints]
{ep_open}"#,
        state = toml_str(state.to_str().unwrap()),
        local = toml_str(local.to_str().unwrap()),
        cookie = toml_str(cookie),
        modulus = toml_str(&emu.m115_modulus_hex()),
        ec = toml_str(&emu.ec_server_public_hex()),
        refresh = toml_str(refresh),
        app = toml_str(DEFAULT_APP_ID),
    )
}

/// OSS request-body bytes emu115 received since its counters were reset.
fn oss_bytes(emu: &Emu115) -> u64 {
    emu.requests().iter().filter(|r| r.key.contains("aliyuncs.com")).map(|r| r.body_len as u64).sum()
}

struct Run {
    wall: Duration,
    status: u16,
    hwm_mib: f64,
}

async fn copy(c: &reqwest::Client, url: &str, pid: &str, from: &str, to: &str) -> Run {
    reset_hwm(pid);
    let t = Instant::now();
    let r = c
        .request(reqwest::Method::from_bytes(b"COPY").unwrap(), format!("{url}{from}"))
        .header("Destination", format!("{url}{to}"))
        .send()
        .await
        .expect("COPY");
    let status = r.status().as_u16();
    let body = r.text().await.unwrap_or_default();
    let wall = t.elapsed();
    assert!(status == 201 || status == 204, "COPY {from} {to}: {status} {body}");
    Run { wall, status, hwm_mib: vm_hwm_mib(pid).unwrap_or(f64::NAN) }
}

async fn run() {
    let mb = std::env::var("XCOPY_BENCH_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024u64);
    let rounds = std::env::var("XCOPY_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1usize).max(1);
    let size = (mb << 20) as usize;
    let tmp = tempfile::Builder::new()
        .prefix("pandav-xcopy-bench-")
        .tempdir_in(std::env::var_os("XCOPY_BENCH_TMP").map(Into::into).unwrap_or_else(std::env::temp_dir))
        .unwrap();
    let (local, state) = (tmp.path().join("local"), tmp.path().join("state"));
    std::fs::create_dir_all(&local).unwrap();

    let emu = Emu115::start(Opts::default()).await;
    let cookie = emu.add_user(UID, "alice");
    let open = Emu115Open::start(OpenOptions::default()).await;
    let user = open.add_user_named("alice");
    let tok = open.authorize(user, DEFAULT_APP_ID);
    // Each round copies content 115 has never seen: its own source file at Open, and
    // (odd seeds: the generator sets the low bit, so seeds 2k and 2k+1 would agree)
    // its own local file, sent once to Open so that the hash cache knows it (115 does
    // not).
    for r in 0..rounds {
        open.put_file(user, 0, &format!("u{r}.bin"), &noise(size, 1001 + 2 * r as u64));
        ensure_random_file(&local.join(format!("l{r}.bin")), size as u64, 2001 + 2 * r as u64).unwrap();
    }

    let cfg = tmp.path().join("pandav.toml");
    std::fs::write(&cfg, config(&emu, &cookie, &open, &tok.refresh_token, &local, &state)).unwrap();
    let bin = std::env::var("PANDAV_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_pandav").into());
    let shown = bin.clone();
    let (child, url) = tokio::task::spawn_blocking(move || spawn_pandav(&bin, &cfg)).await.unwrap().unwrap();
    let pid = child.pid();
    let c = reqwest::Client::builder().timeout(Duration::from_secs(3600)).build().unwrap();
    // Mounts up.
    for _ in 0..600 {
        if c.request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), format!("{url}/115/"))
            .header("Depth", "1")
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 207)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let start_rss = vm_rss_mib(&pid).unwrap_or(f64::NAN);

    println!("# cross-mount COPY, {mb} MiB, {rounds} round(s), pandav {shown}");
    println!("# nproc {}, load average {}, server RSS at start {start_rss:.1} MiB", nproc(), loadavg());

    // 1. The source side alone: GET proxied by pandav, discarded.
    let t = Instant::now();
    let r = c.get(format!("{url}/open/u0.bin")).send().await.expect("GET");
    assert!(r.status().is_success(), "GET: {}", r.status());
    let mut got = 0u64;
    let mut s = r.bytes_stream();
    while let Some(chunk) = s.next().await {
        got += chunk.expect("GET body").len() as u64;
    }
    let read = t.elapsed();
    assert_eq!(got, size as u64);
    let n = size as u64;
    let read_rate = mib_s(n, read);

    // 2. Per round, back to back (in alternating order, so that a drift of the
    // machine's load weighs on both alike): unknown content Open → 115, and the target
    // side alone, local (hash cached) → 115.
    println!();
    println!("| round | unknown content, COPY /open → /115 | target alone: COPY /local (hash cached) → /115 | copy ÷ slower side |");
    println!("|---|---|---|---|");
    let mut ratios = vec![];
    let mut sent = 0;
    let mut hwm: f64 = 0.0;
    for r in 0..rounds {
        copy(&c, &url, &pid, &format!("/local/l{r}.bin"), &format!("/open/l{r}.bin")).await;
        let (u_from, u_to) = (format!("/open/u{r}.bin"), format!("/115/u{r}.bin"));
        let (l_from, l_to) = (format!("/local/l{r}.bin"), format!("/115/l{r}.bin"));
        let unknown_copy = || copy(&c, &url, &pid, &u_from, &u_to);
        let target_alone = || copy(&c, &url, &pid, &l_from, &l_to);
        emu.reset_counters();
        let (unknown, write) = if r % 2 == 0 {
            let u = unknown_copy().await;
            sent = oss_bytes(&emu);
            (u, target_alone().await)
        } else {
            let w = target_alone().await;
            emu.reset_counters();
            let u = unknown_copy().await;
            sent = oss_bytes(&emu);
            (u, w)
        };
        assert_eq!(
            emu.find_path(UID, &format!("/u{r}.bin")).and_then(|id| emu.file_bytes(id)).map(|b| b.len()),
            Some(size)
        );
        hwm = hwm.max(unknown.hwm_mib);
        let (copy_rate, write_rate) = (mib_s(n, unknown.wall), mib_s(n, write.wall));
        let ratio = copy_rate / read_rate.min(write_rate);
        ratios.push(ratio);
        println!(
            "| {r} | {} ({}), {copy_rate:.0} MiB/s, peak RSS {:.1} MiB | {}, {write_rate:.0} MiB/s | {ratio:.2}× |",
            ms(unknown.wall),
            unknown.status,
            unknown.hwm_mib,
            ms(write.wall),
        );
    }
    ratios.sort_by(|a, b| a.total_cmp(b));
    println!();
    println!("source alone: GET /open/u0.bin proxied by pandav, {} = {read_rate:.0} MiB/s", ms(read));
    println!(
        "copy ÷ slower side: median {:.2}× of {rounds} (min {:.2}×, max {:.2}×); peak RSS of the copies {hwm:.1} MiB; last copy sent {sent} OSS body bytes",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1]
    );

    // 3. Known content: 115 has it now.
    emu.reset_counters();
    open.reset_counters();
    let known = copy(&c, &url, &pid, "/open/u0.bin", "/115/known.bin").await;
    let known_sent = oss_bytes(&emu);
    let cdn = open.request_log().iter().filter(|r| r.host.contains("115cdn")).count();
    let known_calls = emu.requests().len();
    assert_eq!(emu.find_path(UID, "/known.bin").and_then(|id| emu.file_bytes(id)).map(|b| b.len()), Some(size));
    println!(
        "known content, COPY /open → /115 ({}): {}, peak RSS {:.1} MiB, **{known_sent}** OSS body bytes, {known_calls} requests to emu115, {cdn} source CDN requests",
        known.status,
        ms(known.wall),
        known.hwm_mib
    );
    println!("# load average after: {}", loadavg());
    drop(child);
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(run());
}
