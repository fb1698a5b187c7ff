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

use std::sync::Arc;
use std::time::Instant;

use emualiyun::{EmuAliyun, Options, TokenKind};
use pandav::drivers::aliyun::consumer;
use support::aliyun::{mount_with_big_folder, print_calls};
use support::{env_num, ms};

mod support;

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

    let options = format!("refresh_token = {rt:?}\nrate_limit = {rate}");
    let m = mount_with_big_folder(&emu, &drive_id, n_files, "/aliyun", &options, consumer::build, dir.path());
    let t = Instant::now();
    m.init().await.unwrap();
    println!("start-up (token refresh, device session, drive id): {}", ms(t.elapsed()));
    print_calls("start-up", &emu);

    // ---------------------------------------------------------------- listing
    println!("\n== listing /big ({n_files} files), rate_limit {rate} ==");
    support::aliyun::listing(&m, &emu, n_files).await;

    // ---------------------------------------------------------------- upload
    support::aliyun::rapid_upload(&m, &emu, &drive_id, upload_mb).await;
}
