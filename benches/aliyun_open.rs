//! Speed of the `aliyundrive_open` driver against the in-process emulator (`emualiyun`),
//! issue 11 "How it is proven":
//!
//! 1. Listing a 10,000-file folder through a `Mount`: API calls and wall time, cold
//!    (first listing) and cached (second listing within the TTL, then a resolve of every
//!    child).
//! 2. Uploading 1 GiB that Aliyun already knows (rapid-upload hit): spool (SHA-1 + MD5
//!    while writing to disk) then `Mount::put` (pre-hash, then content hash + proof,
//!    then `complete`, ref §7.5); the emulator confirms that no body byte reached the
//!    data host.
//!
//! Run: `cargo bench --profile dev --bench aliyun_open` (plain `harness = false` program,
//! prints figures). Knobs (environment): `ALIYUN_OPEN_BENCH_FILES` (default 10000),
//! `ALIYUN_OPEN_BENCH_UPLOAD_MB` (default 1024, 0 = skip), `ALIYUN_OPEN_BENCH_RATE` (the
//! driver's `rate_limit`; unset = its default pacing of §10.1 against the emulator's
//! rate limits; `0` = unpaced, and the emulator's limits off), `ALIYUN_OPEN_BENCH_TMP`
//! (spool folder, default /tmp).

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use emualiyun::{AppSpec, EmuAliyun, Options, Pattern, DATA_HOST};
use pandav::drivers::aliyun::open;
use pandav::drivers::DriverCtx;
use pandav::state::StateHandle;
use pandav::vfs::*;
use support::{env_num, ms};

mod support;

fn print_calls(label: &str, emu: &EmuAliyun) {
    support::print_counts(label, emu.log().iter().map(|r| format!("{} {}{} {}", r.method, r.host, r.path, r.status)));
}

fn main() {
    support::main_with(run());
}

async fn run() {
    let n_files = env_num("ALIYUN_OPEN_BENCH_FILES", 10_000) as usize;
    let upload_mb = env_num("ALIYUN_OPEN_BENCH_UPLOAD_MB", 1024);
    let rate = std::env::var("ALIYUN_OPEN_BENCH_RATE").ok().and_then(|v| v.parse::<f64>().ok());

    let mut eo = Options::default();
    if rate == Some(0.0) {
        eo.open_rates = None;
    }
    let emu = Arc::new(EmuAliyun::start_temp(eo).await);
    emu.register_app(AppSpec::new("benchapp", "bench-secret"));
    let user = emu.add_user("alice");
    let drive_id = user.resource_drive_id.clone();
    let tok = emu.open_authorize(&user.user_id, "benchapp");
    let dir = tempfile::tempdir_in(std::env::var("ALIYUN_OPEN_BENCH_TMP").unwrap_or_else(|_| "/tmp".into())).unwrap();

    let mut text = format!(
        "client_id = \"benchapp\"\nclient_secret = \"bench-secret\"\nrefresh_token = {:?}\n",
        tok.refresh_token
    );
    if let Some(r) = rate {
        text.push_str(&format!("rate_limit = {r}\n"));
    }
    text.push_str("[endpoints]\n");
    for (h, b) in emu.endpoints() {
        text.push_str(&format!("{h:?} = {b:?}\n"));
    }
    let ctx = DriverCtx {
        mount_path: "/open".into(),
        state: StateHandle::at(dir.path().join("state/mount-_open.json")),
        base_dir: dir.path().into(),
        source: None,
    };
    let drive: Arc<dyn Drive> = open::build(toml::from_str(&text).unwrap(), &ctx).unwrap();
    let m = support::bench_mount("/open", drive, dir.path());

    let t = Instant::now();
    let big = emu.mkdir(&drive_id, "root", "big");
    emu.mkdir(&drive_id, "root", "up");
    for i in 0..n_files {
        emu.put_file(&drive_id, &big, &format!("file-{i:05}.bin"), format!("content of file {i}\n").into_bytes());
    }
    println!("fixture: {n_files} files seeded in the emulator in {}", ms(t.elapsed()));
    emu.clear_log();
    let t = Instant::now();
    m.init().await.unwrap();
    println!("start-up (token refresh, drive id): {}", ms(t.elapsed()));
    print_calls("start-up", &emu);

    // ---------------------------------------------------------------- listing
    let pacing = match rate {
        Some(r) => format!("rate_limit {r}"),
        None => "default pacing (list 3.9/s, §10.1)".into(),
    };
    println!("\n== listing /big ({n_files} files), {pacing} ==");
    emu.clear_log();
    let t = Instant::now();
    let (_, l) = m.list("big").await.unwrap();
    let cold = t.elapsed();
    assert_eq!(l.len(), n_files);
    println!("cold list (resolve /big, then list it): {}", ms(cold));
    print_calls("cold", &emu);
    let throttled = emu.log().iter().filter(|r| r.status == 429).count();
    println!("  429 TooManyRequests answers: {throttled}");

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
    if upload_mb == 0 {
        return;
    }
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
