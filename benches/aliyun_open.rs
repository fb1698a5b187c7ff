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

use std::sync::Arc;
use std::time::Instant;

use emualiyun::{AppSpec, EmuAliyun, Options};
use pandav::drivers::aliyun::open;
use support::aliyun::{mount_with_big_folder, print_calls};
use support::{env_num, ms};

mod support;

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
    let m = mount_with_big_folder(&emu, &drive_id, n_files, "/open", &text, open::build, dir.path());
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
    support::aliyun::listing(&m, &emu, n_files).await;

    // ---------------------------------------------------------------- upload
    if upload_mb == 0 {
        return;
    }
    support::aliyun::rapid_upload(&m, &emu, &drive_id, upload_mb).await;
}
