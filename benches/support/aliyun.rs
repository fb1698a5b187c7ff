//! What the Aliyun benches (`aliyun`, `aliyun_open`) measure the same way, against the
//! `emualiyun` emulator: a big folder listed cold and cached, and a rapid upload.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use emualiyun::{EmuAliyun, Pattern, DATA_HOST};
use pandav::drivers::DriverCtx;
use pandav::state::StateHandle;
use pandav::vfs::{Drive, Mount};

use super::ms;

/// A driver's function that builds its drive from the mount's options.
pub type Build = fn(toml::Table, &DriverCtx) -> anyhow::Result<Arc<dyn Drive>>;

/// The mount at `path` of the drive `build` makes from `options` (TOML lines) and the
/// emulator's endpoints, its state under `dir`; then `/big` with `n_files` small files
/// and an empty `/up` in the user's drive `drive_id`.
pub fn mount_with_big_folder(
    emu: &EmuAliyun,
    drive_id: &str,
    n_files: usize,
    path: &str,
    options: &str,
    build: Build,
    dir: &Path,
) -> Mount {
    let mut text = format!("{options}\n[endpoints]\n");
    for (h, b) in emu.endpoints() {
        text.push_str(&format!("{h:?} = {b:?}\n"));
    }
    let ctx = DriverCtx {
        mount_path: path.into(),
        state: StateHandle::at(dir.join(format!("state/mount-{}.json", path.replace('/', "_")))),
        base_dir: dir.into(),
        source: None,
    };
    let drive = build(toml::from_str(&text).unwrap(), &ctx).unwrap();
    let m = super::bench_mount(path, drive, dir);

    let t = Instant::now();
    let big = emu.mkdir(drive_id, "root", "big");
    emu.mkdir(drive_id, "root", "up");
    for i in 0..n_files {
        emu.put_file(drive_id, &big, &format!("file-{i:05}.bin"), format!("content of file {i}\n").into_bytes());
    }
    println!("fixture: {n_files} files seeded in the emulator in {}", ms(t.elapsed()));
    m
}

/// The emulator's request log since the last `clear_log`, counted by endpoint and status.
pub fn print_calls(label: &str, emu: &EmuAliyun) {
    super::print_counts(label, emu.log().iter().map(|r| format!("{} {}{} {}", r.method, r.host, r.path, r.status)));
}

/// List `big` (`n_files` entries) cold, then again within the TTL, then resolve every
/// child; prints the times and calls, and checks the cached steps made none.
pub async fn listing(m: &Mount, emu: &EmuAliyun, n_files: usize) {
    emu.clear_log();
    let t = Instant::now();
    let (_, l) = m.list("big").await.unwrap();
    let cold = t.elapsed();
    assert_eq!(l.len(), n_files);
    println!("cold list (resolve /big, then list it): {}", ms(cold));
    print_calls("cold", emu);
    let throttled = emu.log().iter().filter(|r| r.status == 429).count();
    println!("  429 TooManyRequests answers: {throttled}");

    emu.clear_log();
    let t = Instant::now();
    let (_, l2) = m.list("big").await.unwrap();
    println!("cached list (same TTL window): {}", ms(t.elapsed()));
    assert_eq!(l2.len(), n_files);
    print_calls("cached list", emu);
    assert!(emu.log().is_empty(), "a cached listing called the API");

    emu.clear_log();
    let names: Vec<String> = l2.iter().map(|e| e.name().to_string()).collect();
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
    print_calls("cached resolves", emu);
}

/// Upload `upload_mb` MiB the emulator already knows to `up/big.bin` (drive `drive_id`):
/// spool, put, and check that no byte reached the data host.
pub async fn rapid_upload(m: &Mount, emu: &EmuAliyun, drive_id: &str, upload_mb: u64) {
    let size = upload_mb << 20;
    println!("\n== upload of {upload_mb} MiB, rapid-upload hit ==");
    let t = Instant::now();
    let sha1 = emu.add_known_pattern(42, size);
    println!("(emulator: add_known_pattern, its own SHA-1 pass, not counted: {})", ms(t.elapsed()));

    emu.clear_log();
    let mut r = Pattern::new(42, size).reader();
    let (_, spooled_sha1, _) = super::spool_and_put(m, "up/big.bin", size, |buf| r.read(buf).unwrap()).await;
    assert!(spooled_sha1.eq_ignore_ascii_case(&sha1));
    print_calls("upload", emu);
    let log = emu.log();
    let body: u64 = log.iter().map(|r| r.body_len).sum();
    let data = log.iter().filter(|r| r.host == DATA_HOST).count();
    println!(
        "  request body bytes sent in total: {body} (file is {size}); data-host calls: {data}; part bytes: {}",
        emu.uploaded_part_bytes()
    );
    assert_eq!(data, 0, "a rapid-upload hit sends nothing to the data host");
    assert_eq!(emu.uploaded_part_bytes(), 0);
    let id = emu.lookup(drive_id, "/up/big.bin").unwrap();
    let stored = emu.entry(&id).unwrap();
    println!("  stored: {:?} size {} sha1 {}", stored.name, stored.size, stored.content_hash);
}
