//! End to end through the real binary with real clients: rclone copies a tree in
//! (nested folders, unicode, empty files, a 50 MiB file), checks it by downloading it
//! back through `redirect` and `proxy`, copies it out, moves and deletes; a 1 GiB rapid
//! upload of content the service knows sends no body bytes; ffprobe and ffmpeg seek in a
//! video through `redirect` and `proxy`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use emualiyun::{Options, Pattern};
use sha1::Digest;

use crate::binary::{mount_of, write_config};
use crate::common::*;
use crate::fixture::crash::*;
use crate::fixture::driver::rclone;
use crate::fixture::{tool, ConfigBuilder};

fn ok(out: std::process::Output, what: &str) {
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
}

fn sha1_upper(b: &[u8]) -> String {
    hex::encode_upper(sha1::Sha1::digest(b))
}

/// A file of `size` seeded random bytes, written in 1 MiB pieces.
fn write_random(path: &Path, size: usize, seed: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let mut left = size;
    let mut n = seed;
    while left > 0 {
        let chunk = random_bytes(left.min(1 << 20), n);
        f.write_all(&chunk).unwrap();
        left -= chunk.len();
        n += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_copy_check_copy_out_move_and_delete() {
    let env = env(Options::default()).await;
    let emu = &env.emu;
    let bob = emu.add_user("bob");
    let tb = emu.open_authorize(&bob.user_id, CLIENT_ID);
    let app = |rt: &str| {
        format!("client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nrefresh_token = \"{rt}\"\n")
    };
    let cfg = mount_of(ConfigBuilder::new(), emu, "/o", "", &app(&env.tok.refresh_token));
    let cfg = mount_of(cfg, emu, "/p", "policy = \"proxy\"", &app(&tb.refresh_token));
    let config = write_config(env.dir.path(), &cfg);
    let d = env.dir.path();
    let src = d.join("src");
    for sub in ["a/b/c", "目录 ü/内层", "empty dir"] {
        std::fs::create_dir_all(src.join(sub)).unwrap();
    }
    std::fs::write(src.join("top.txt"), b"top").unwrap();
    std::fs::write(src.join("a/one.txt"), b"one").unwrap();
    std::fs::write(src.join("a/b/two.txt"), b"two two").unwrap();
    std::fs::write(src.join("a/b/c/empty"), b"").unwrap();
    std::fs::write(src.join("目录 ü/文件 🎬 (1).txt"), "unicode body".as_bytes()).unwrap();
    std::fs::write(src.join("目录 ü/内层/空.bin"), b"").unwrap();
    write_random(&src.join("a/big.bin"), 50 * 1024 * 1024, 7);
    let known = random_bytes(2 * 1024 * 1024 + 9, 8);
    emu.add_known_content(known.clone());
    std::fs::write(src.join("a/known.bin"), &known).unwrap();
    let srv = serve(&config, &[]).await;
    for p in ["/o", "/p"] {
        assert_eq!(settled(srv.url(), p).await["ok"], true);
    }
    for (mount, drive) in [("o", env.drive().to_string()), ("p", bob.resource_drive_id.clone())] {
        emu.clear_log();
        let remote = format!("pd:{mount}/tree");
        ok(rclone(&["copy", "--create-empty-src-dirs", src.to_str().unwrap(), &remote], srv.url(), d), "rclone copy");
        // What the service holds is what was sent.
        for rel in [
            "top.txt",
            "a/one.txt",
            "a/b/two.txt",
            "a/b/c/empty",
            "目录 ü/文件 🎬 (1).txt",
            "目录 ü/内层/空.bin",
            "a/known.bin",
        ] {
            let id = emu.lookup(&drive, &format!("/tree/{rel}")).unwrap_or_else(|| panic!("{rel} missing"));
            assert_eq!(emu.file_bytes(&id).unwrap(), std::fs::read(src.join(rel)).unwrap(), "{rel}");
        }
        let big = emu.entry(&emu.lookup(&drive, "/tree/a/big.bin").unwrap()).unwrap();
        assert_eq!(big.size, 50 * 1024 * 1024);
        assert_eq!(big.content_hash, sha1_upper(&std::fs::read(src.join("a/big.bin")).unwrap()));
        assert!(emu.lookup(&drive, "/tree/empty dir").is_some(), "empty folders come along");
        // known.bin: rapid upload, no part of it was sent.
        let put_bytes: u64 = emu.log().iter().filter(|r| r.method == "PUT").map(|r| r.body_len).sum();
        let sent_content: u64 = ["top.txt", "a/one.txt", "a/b/two.txt", "目录 ü/文件 🎬 (1).txt", "a/big.bin"]
            .iter()
            .map(|r| std::fs::metadata(src.join(r)).unwrap().len())
            .sum();
        if mount == "o" {
            assert_eq!(put_bytes, sent_content, "part bytes = everything but the rapid upload");
        } else {
            // The second account uploads content the service now knows: all rapid.
            assert_eq!(put_bytes, 0, "known content was sent again");
        }
        ok(rclone(&["check", "--download", src.to_str().unwrap(), &remote], srv.url(), d), "rclone check --download");
        let back = d.join(format!("back-{mount}"));
        ok(rclone(&["copy", &remote, back.to_str().unwrap()], srv.url(), d), "rclone copy out");
        for rel in ["a/big.bin", "a/known.bin", "目录 ü/文件 🎬 (1).txt", "a/b/c/empty"] {
            assert_eq!(std::fs::read(back.join(rel)).unwrap(), std::fs::read(src.join(rel)).unwrap(), "{rel}");
        }
        // Move a folder (server-side MOVE), then delete it.
        ok(rclone(&["moveto", &format!("{remote}/a/b"), &format!("pd:{mount}/moved")], srv.url(), d), "rclone moveto");
        assert!(emu.lookup(&drive, "/tree/a/b").is_none());
        let two = emu.lookup(&drive, "/moved/two.txt").expect("moved");
        assert_eq!(emu.file_bytes(&two).unwrap(), b"two two");
        ok(rclone(&["purge", &format!("pd:{mount}/moved")], srv.url(), d), "rclone purge");
        assert!(emu.lookup(&drive, "/moved").is_none());
        ok(rclone(&["deletefile", &format!("{remote}/top.txt")], srv.url(), d), "rclone deletefile");
        assert!(emu.lookup(&drive, "/tree/top.txt").is_none());
        assert_eq!(emu.trashed(&drive).len(), 2, "deletes go to the recycle bin");
    }
    // /o redirects to the data host, /p proxies.
    let c = http();
    let r = c.get(format!("{}/o/tree/a/one.txt", srv.url())).send().await.unwrap();
    assert_eq!(r.status(), 302, "/o redirects");
    assert!(r.headers()["location"].to_str().unwrap().contains(&emu.endpoint("cn-beijing-data.aliyundrive.net")));
    let r = c.get(format!("{}/p/tree/a/one.txt", srv.url())).send().await.unwrap();
    assert_eq!(r.status(), 200, "/p proxies");
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"one");
}

/// 1 GiB of content the service knows (seeded by its SHA-1 alone), PUT as a stream that
/// is generated on the fly: stored by rapid upload with 0 body bytes to the data host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1gib_rapid_upload_sends_no_body_bytes() {
    const SIZE: u64 = 1 << 30;
    let env = env(Options::default()).await;
    let emu = &env.emu;
    let sha = emu.add_known_pattern(77, SIZE);
    let cfg = mount_of(ConfigBuilder::new(), emu, "/o", "", &env.app_options(&env.tok.refresh_token));
    let config = write_config(env.dir.path(), &cfg);
    let srv = serve(&config, &[]).await;
    assert_eq!(settled(srv.url(), "/o").await["ok"], true);
    emu.clear_log();
    let t = Instant::now();
    let status = put_pattern(&format!("{}/o/big.bin", srv.url()), Pattern::new(77, SIZE)).await;
    let took = t.elapsed();
    assert!(status == 201 || status == 204, "PUT answered {status}");
    let log = emu.log();
    let data_bytes: u64 =
        log.iter().filter(|r| r.host.contains("aliyundrive.net") || r.method == "PUT").map(|r| r.body_len).sum();
    assert_eq!(data_bytes, 0, "body bytes reached the data host");
    let api: Vec<String> =
        log.iter().filter(|r| r.host == "openapi.alipan.com").map(|r| format!("{} {}", r.path, r.status)).collect();
    eprintln!("1 GiB rapid upload: {took:?} through pandav, API calls: {api:?}");
    let id = emu.lookup(env.drive(), "/big.bin").expect("stored");
    let e = emu.entry(&id).unwrap();
    assert_eq!((e.size, e.content_hash.as_str()), (SIZE, sha.as_str()));
    // (A 429 of the emulator's strict 15/s bucket, waited out, may come in between.)
    let creates: Vec<u16> =
        log.iter().filter(|r| r.path == "/adrive/v1.0/openFile/create" && r.status != 429).map(|r| r.status).collect();
    assert_eq!(creates, vec![409, 200], "pre_hash matched, then the proof");
    let completes = log.iter().filter(|r| r.path == "/adrive/v1.0/openFile/complete" && r.status == 200).count();
    assert_eq!(completes, 1, "complete after the rapid upload");
}

/// PUT the pattern as a streamed body (1 MiB pieces generated as they are sent).
async fn put_pattern(url: &str, p: Pattern) -> u16 {
    let size = p.size();
    let stream = futures_util::stream::unfold((p, 0u64), move |(p, at)| async move {
        if at >= size {
            return None;
        }
        let n = (size - at).min(1 << 20) as usize;
        let mut buf = vec![0u8; n];
        p.read_at(at, &mut buf);
        Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), (p, at + n as u64)))
    });
    reqwest::Client::builder()
        .timeout(Duration::from_secs(1800))
        .build()
        .unwrap()
        .put(url)
        .header("Content-Length", size)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A 10 s, 1 Mbit/s test video with a keyframe every second and the moov box at the end
/// (players must seek for it).
fn make_video(dir: &Path) -> Vec<u8> {
    let out = dir.join("video.mp4");
    let mut last = String::new();
    for codec in [&["libx264", "-preset", "ultrafast"][..], &["mpeg4", "-q:v", "4"][..]] {
        let st = Command::new(tool("ffmpeg"))
            .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
            .args(["-i", "testsrc=duration=10:size=320x240:rate=25", "-c:v"])
            .args(codec)
            .args(["-g", "25", "-b:v", "1M", "-pix_fmt", "yuv420p", "-an"])
            .arg(&out)
            .output()
            .unwrap();
        if st.status.success() {
            return std::fs::read(out).unwrap();
        }
        last = String::from_utf8_lossy(&st.stderr).into_owned();
    }
    panic!("ffmpeg could not make a test video: {last}");
}

fn frame_at_5s(input: &str) -> Vec<u8> {
    let out = Command::new(tool("ffmpeg"))
        .args(["-hide_banner", "-loglevel", "error", "-ss", "5", "-i", input, "-frames:v", "1"])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "ffmpeg -ss 5 {input}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffprobe_and_ffmpeg_seek_through_redirect_and_proxy() {
    let env = env(Options::default()).await;
    let emu = &env.emu;
    let video = make_video(env.dir.path());
    let reference = frame_at_5s(env.dir.path().join("video.mp4").to_str().unwrap());
    assert_eq!(reference.len(), 320 * 240 * 3);
    emu.put_file(env.drive(), "root", "video.mp4", video.clone());
    let tok2 = emu.open_authorize(&env.user.user_id, CLIENT_ID);
    let cfg = mount_of(ConfigBuilder::new(), emu, "/o", "", &env.app_options(&env.tok.refresh_token));
    let cfg = mount_of(cfg, emu, "/p", "policy = \"proxy\"", &env.app_options(&tok2.refresh_token));
    let config = write_config(env.dir.path(), &cfg);
    let srv = serve(&config, &[]).await;
    for p in ["/o", "/p"] {
        assert_eq!(settled(srv.url(), p).await["ok"], true);
    }
    let size = video.len() as u64;
    for mount in ["/o", "/p"] {
        let url = format!("{}{mount}/video.mp4", srv.url());
        emu.clear_log();
        let out = Command::new(tool("ffprobe"))
            .args(["-v", "error", "-show_entries", "format=duration:stream=codec_type,width,height", "-of", "json"])
            .arg(&url)
            .output()
            .unwrap();
        assert!(out.status.success(), "ffprobe via {mount}: {}", String::from_utf8_lossy(&out.stderr));
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let dur: f64 = j["format"]["duration"].as_str().unwrap().parse().unwrap();
        assert!((dur - 10.0).abs() < 0.2, "duration {dur} via {mount}");
        assert_eq!(j["streams"][0]["width"], 320);
        let ranged: Vec<u64> = emu
            .log()
            .iter()
            .filter(|r| r.host == "cn-beijing-data.aliyundrive.net" && r.status == 206)
            .filter_map(|r| r.header("range"))
            .filter_map(|r| r.strip_prefix("bytes=")?.split('-').next()?.parse().ok())
            .collect();
        assert!(ranged.iter().any(|&s| s > size / 2), "ffprobe via {mount} read the moov with a Range: {ranged:?}");
        emu.clear_log();
        assert_eq!(sha1_upper(&frame_at_5s(&url)), sha1_upper(&reference), "frame at 5 s via {mount}");
        let starts: Vec<u64> = emu
            .log()
            .iter()
            .filter(|r| r.host == "cn-beijing-data.aliyundrive.net")
            .filter_map(|r| r.header("range"))
            .filter_map(|r| r.strip_prefix("bytes=")?.split('-').next()?.parse().ok())
            .collect();
        assert!(
            starts.iter().any(|&s| s > size * 3 / 10 && s < size * 7 / 10),
            "ffmpeg via {mount} jumped to the middle with a Range: {starts:?} of {size}"
        );
    }
}
