//! Speed of the `aliyundrive` driver against the in-process emulator (`emualiyun`),
//! issue 11 "How it is proven":
//!
//! 1. Listing a 10,000-file folder through a `Mount`: API calls and wall time, cold
//!    (first listing) and cached (second listing within the TTL, then a PROPFIND-style
//!    resolve of every child).
//! 2. Uploading 1 GiB that Aliyun already knows (rapid-upload hit): spool (SHA-1 + MD5
//!    while writing to disk) then `Mount::put` (pre-hash, then content hash + proof); the
//!    emulator confirms that no body byte reached the data host.
//!
//! Run: `cargo bench --bench aliyun` (plain `harness = false` program, prints figures).
//! Knobs (environment): `ALIYUN_BENCH_FILES` (default 10000), `ALIYUN_BENCH_UPLOAD_MB`
//! (default 1024), `ALIYUN_BENCH_RATE` (driver `rate_limit`, default 0 = unpaced),
//! `ALIYUN_BENCH_TMP` (spool folder, default /tmp).

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use emualiyun::{EmuAliyun, Options, Pattern, TokenKind, DATA_HOST};
use pandav::drivers::aliyun::consumer;
use pandav::drivers::DriverCtx;
use pandav::state::StateHandle;
use pandav::vfs::*;
use support::{env_num, ms};

mod support;

fn print_calls(label: &str, emu: &EmuAliyun) {
    support::print_counts(label, emu.log().iter().map(|r| format!("{} {}{}", r.method, r.host, r.path)));
}

fn main() {
    support::main_with(run());
}

async fn run() {
    let n_files = env_num("ALIYUN_BENCH_FILES", 10_000) as usize;
    let upload_mb = env_num("ALIYUN_BENCH_UPLOAD_MB", 1024);
    let rate = env_num("ALIYUN_BENCH_RATE", 0);

    let emu = Arc::new(EmuAliyun::start_temp(Options::default()).await);
    let user = emu.add_user("alice");
    let drive_id = user.resource_drive_id.clone();
    let rt = emu.issue_refresh_token(&user.user_id, TokenKind::Mobile);
    let dir = tempfile::tempdir_in(std::env::var("ALIYUN_BENCH_TMP").unwrap_or_else(|_| "/tmp".into())).unwrap();

    let mut text = format!("refresh_token = {rt:?}\nrate_limit = {rate}\n[endpoints]\n");
    for (h, b) in emu.endpoints() {
        text.push_str(&format!("{h:?} = {b:?}\n"));
    }
    let ctx = DriverCtx {
        mount_path: "/aliyun".into(),
        state: StateHandle::at(dir.path().join("state/mount-_aliyun.json")),
        base_dir: dir.path().into(),
        source: None,
    };
    let drive: Arc<dyn Drive> = consumer::build(toml::from_str(&text).unwrap(), &ctx).unwrap();
    let m = support::bench_mount("/aliyun", drive, dir.path());

    let t = Instant::now();
    let big = emu.mkdir(&drive_id, "root", "big");
    emu.mkdir(&drive_id, "root", "up");
    for i in 0..n_files {
        emu.put_file(&drive_id, &big, &format!("file-{i:05}.bin"), format!("content of file {i}\n").into_bytes());
    }
    println!("fixture: {n_files} files seeded in the emulator in {}", ms(t.elapsed()));
    let t = Instant::now();
    m.init().await.unwrap();
    println!("start-up (token refresh, device session, drive id): {}", ms(t.elapsed()));
    print_calls("start-up", &emu);

    // ---------------------------------------------------------------- listing
    println!("\n== listing /big ({n_files} files), rate_limit {rate} ==");
    emu.clear_log();
    let t = Instant::now();
    let (_, l) = m.list("big").await.unwrap();
    let cold = t.elapsed();
    assert_eq!(l.len(), n_files);
    println!("cold list (list the root to resolve /big, then /big): {}", ms(cold));
    print_calls("cold", &emu);

    emu.clear_log();
    let t = Instant::now();
    let (_, l2) = m.list("big").await.unwrap();
    println!("cached list (same TTL window): {}", ms(t.elapsed()));
    assert_eq!(l2.len(), n_files);
    print_calls("cached list", &emu);
    assert!(emu.log().is_empty(), "a cached listing called the API");

    emu.clear_log();
    let names: Vec<String> = l2.iter().map(|e| e.name.clone()).collect();
    let t = Instant::now();
    for n in &names {
        assert!(!m.resolve(&format!("big/{n}")).await.unwrap().is_dir);
    }
    let res = t.elapsed();
    println!(
        "cached resolve of every child ({} resolves): {} total, {:.2} µs each",
        names.len(),
        ms(res),
        res.as_secs_f64() * 1e6 / names.len().max(1) as f64
    );
    print_calls("cached resolves", &emu);

    // ---------------------------------------------------------------- upload
    let size = upload_mb << 20;
    println!("\n== upload of {upload_mb} MiB, rapid-upload hit ==");
    let t = Instant::now();
    let sha1 = emu.add_known_pattern(42, size);
    println!("(emulator: add_known_pattern, its own SHA-1 pass, not counted: {})", ms(t.elapsed()));

    emu.clear_log();
    let mut r = Pattern::new(42, size).reader();
    let (_, spooled_sha1, _) = support::spool_and_put(&m, "up/big.bin", size, |buf| r.read(buf).unwrap()).await;
    assert!(spooled_sha1.eq_ignore_ascii_case(&sha1));
    print_calls("upload", &emu);
    let log = emu.log();
    let body: u64 = log.iter().map(|r| r.body_len).sum();
    let data = log.iter().filter(|r| r.host == DATA_HOST).count();
    println!(
        "  request body bytes sent in total: {body} (file is {size}); data-host calls: {data}; part bytes: {}",
        emu.uploaded_part_bytes()
    );
    assert_eq!(data, 0, "a rapid-upload hit sends nothing to the data host");
    assert_eq!(emu.uploaded_part_bytes(), 0);
    let id = emu.lookup(&drive_id, "/up/big.bin").unwrap();
    let stored = emu.entry(&id).unwrap();
    println!("  stored: {:?} size {} sha1 {}", stored.name, stored.size, stored.content_hash);
}
