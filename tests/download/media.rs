//! Real clients: ffprobe and ffmpeg reading a real video (moov at the end, so they must
//! seek) through `proxy` and `redirect`, including a seek to the middle; rclone reading
//! through `redirect` (it wants 206 for ranged reads after the 302) and `proxy`.

use std::path::Path;

use bytes::Bytes;

use crate::harness::*;

fn s(v: &str) -> String {
    v.to_string()
}

/// Top-level MP4 box types in file order.
fn mp4_boxes(b: &[u8]) -> Vec<String> {
    let mut out = vec![];
    let mut at = 0usize;
    while at + 8 <= b.len() {
        let mut size = u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as u64;
        let kind = String::from_utf8_lossy(&b[at + 4..at + 8]).into_owned();
        if size == 1 {
            size = u64::from_be_bytes(b[at + 8..at + 16].try_into().unwrap());
        } else if size == 0 {
            size = (b.len() - at) as u64;
        }
        out.push(kind);
        if size < 8 {
            break;
        }
        at += size as usize;
    }
    out
}

/// A 10 s, 25 fps test video with a keyframe every second and the moov box at the end.
async fn make_video(ffmpeg: &Path, dir: &Path) -> Bytes {
    let out = dir.join("video.mp4");
    let mut last = String::new();
    for codec in [vec![s("libx264"), s("-preset"), s("ultrafast")], vec![s("mpeg4"), s("-q:v"), s("4")]] {
        let mut args = vec![s("-hide_banner"), s("-loglevel"), s("error"), s("-y"), s("-f"), s("lavfi")];
        args.extend([s("-i"), s("testsrc=duration=10:size=320x240:rate=25"), s("-c:v")]);
        args.extend(codec);
        args.extend([s("-g"), s("25"), s("-b:v"), s("1M"), s("-pix_fmt"), s("yuv420p"), s("-an")]);
        args.push(out.display().to_string());
        let r = run(ffmpeg, args, vec![]).await;
        if r.ok() {
            let data = Bytes::from(std::fs::read(&out).unwrap());
            let boxes = mp4_boxes(&data);
            let (mdat, moov) = (boxes.iter().position(|b| b == "mdat"), boxes.iter().position(|b| b == "moov"));
            assert!(mdat.is_some() && moov > mdat, "moov must follow mdat to force seeking: {boxes:?}");
            return data;
        }
        last = r.stderr;
    }
    panic!("ffmpeg could not make a test video: {last}");
}

/// The raw RGB frame at 5 s.
async fn frame_at_5s(ffmpeg: &Path, input: &str) -> Run {
    let args = vec![
        s("-hide_banner"),
        s("-loglevel"),
        s("error"),
        s("-ss"),
        s("5"),
        s("-i"),
        s(input),
        s("-frames:v"),
        s("1"),
        s("-f"),
        s("rawvideo"),
        s("-pix_fmt"),
        s("rgb24"),
        s("-"),
    ];
    run(ffmpeg, args, vec![]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffprobe_and_ffmpeg_read_and_seek_through_proxy_and_redirect() {
    let (Some(ffmpeg), Some(ffprobe)) = (tool("ffmpeg"), tool("ffprobe")) else { return };
    let scratch = tempfile::tempdir().unwrap();
    let video = make_video(&ffmpeg, scratch.path()).await;
    let size = video.len() as u64;
    let local_copy = scratch.path().join("video.mp4");
    let reference = frame_at_5s(&ffmpeg, &local_copy.display().to_string()).await;
    assert!(reference.ok(), "{}", reference.stderr);
    assert_eq!(reference.stdout.len(), 320 * 240 * 3);

    // ffmpeg (5.1 at least) drops Basic credentials once it has followed a 302 and seeks
    // back to the original URL without them (it keeps no redirect cache and does not
    // answer the 401): under `redirect` it needs anonymous access, as players on a LAN
    // are commonly set up. Under `proxy` it authenticates with Basic.
    let h =
        Harness::with(Opts { extra_files: vec![(s("video.mp4"), video.clone())], anonymous: true, ..Opts::default() })
            .await;
    for mount in ["/plink", "/link"] {
        let path = format!("{mount}/video.mp4");
        let blob = h.blob(&path);
        let url = if mount == "/plink" { h.url_with_auth(&path, ALICE) } else { h.url(&path) };
        h.up.clear_hits();

        // ffprobe: duration and streams (it must fetch the moov at the end).
        let args = vec![
            s("-v"),
            s("error"),
            s("-show_entries"),
            s("format=duration:stream=codec_type,codec_name,width,height"),
            s("-of"),
            s("json"),
            url.clone(),
        ];
        let r = run(&ffprobe, args, vec![]).await;
        assert!(r.ok(), "ffprobe via {mount}: {}", r.stderr);
        let j: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        let dur: f64 = j["format"]["duration"].as_str().unwrap().parse().unwrap();
        assert!((dur - 10.0).abs() < 0.2, "duration {dur} via {mount}");
        let streams = j["streams"].as_array().unwrap();
        assert_eq!(streams.len(), 1, "{j}");
        assert_eq!(streams[0]["codec_type"], "video");
        assert_eq!(streams[0]["width"], 320);
        assert_eq!(streams[0]["height"], 240);
        let hits = h.up.hits_for(&blob);
        assert!(hits.iter().all(|x| x.status == 200 || x.status == 206), "via {mount}: {hits:?}");
        assert!(
            hits.iter().any(|x| x.status == 206 && x.range_start().is_some_and(|s| s > size / 2)),
            "ffprobe via {mount} should have read the moov at the end with a Range: {:?}",
            hits.iter().map(|x| x.range()).collect::<Vec<_>>()
        );

        // ffmpeg: seek to the middle and decode one frame, identical to the local file's.
        h.up.clear_hits();
        let r = frame_at_5s(&ffmpeg, &url).await;
        assert!(r.ok(), "ffmpeg -ss 5 via {mount}: {}", r.stderr);
        assert_eq!(sha256(&r.stdout), sha256(&reference.stdout), "frame at 5 s via {mount}");
        let hits = h.up.hits_for(&blob);
        let starts: Vec<Option<u64>> = hits.iter().map(|x| x.range_start()).collect();
        assert!(
            starts.iter().flatten().any(|&s| s > size * 3 / 10 && s < size * 7 / 10),
            "ffmpeg via {mount} should have jumped to the middle with a Range: {starts:?} of {size}"
        );
        assert!(hits.iter().all(|x| x.status == 200 || x.status == 206), "via {mount}: {hits:?}");
        if mount == "/plink" {
            for x in &hits {
                assert_eq!(x.header("authorization"), None);
            }
        }
    }
    // Under redirect, every (file, User-Agent) needed one link, however many requests.
    let counts = h.drive("/link").link_call_counts();
    assert!(!counts.is_empty());
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert!(counts.keys().all(|(_, ua)| ua.starts_with("Lavf/")), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_reads_through_redirect_and_proxy() {
    let Some(rclone) = tool("rclone") else { return };
    let h = Harness::start().await;
    let tmp = h.tmp.path().to_path_buf();
    let conf = tmp.join("rclone.conf");
    std::fs::write(&conf, "").unwrap();
    let obscured = run(&rclone, vec![s("obscure"), s(ALICE.1)], vec![]).await;
    assert!(obscured.ok(), "{}", obscured.stderr);
    let env = vec![
        (s("RCLONE_CONFIG"), conf.display().to_string()),
        (s("RCLONE_WEBDAV_URL"), format!("{}{}", h.origin, h.prefix)),
        (s("RCLONE_WEBDAV_VENDOR"), s("other")),
        (s("RCLONE_WEBDAV_USER"), s(ALICE.0)),
        (s("RCLONE_WEBDAV_PASS"), obscured.stdout_text().trim().to_string()),
        (s("RCLONE_LOW_LEVEL_RETRIES"), s("1")),
        (s("RCLONE_RETRIES"), s("1")),
    ];

    for mount in ["/link", "/plink"] {
        let path = format!("{mount}/big.bin");
        let want = h.content(&path);
        let size = want.len() as u64;
        let blob = h.blob(&path);
        let remote = format!(":webdav:{}", &path[1..]);
        for (offset, count) in [(1000u64, 5000u64), (size - 700, 1000), (0, 10)] {
            h.up.clear_hits();
            let args =
                vec![s("cat"), s("--offset"), offset.to_string(), s("--count"), count.to_string(), remote.clone()];
            let r = run(&rclone, args, env.clone()).await;
            assert!(r.ok(), "rclone cat {remote} --offset {offset}: {}", r.stderr);
            let end = (offset + count).min(size);
            assert_eq!(r.stdout.len() as u64, end - offset, "rclone cat {remote} --offset {offset}");
            assert!(r.stdout[..] == want[offset as usize..end as usize], "rclone cat {remote} --offset {offset}");
            let ranged: Vec<_> = h.up.hits_for(&blob).into_iter().filter(|x| x.status == 206).collect();
            assert!(
                ranged.iter().any(|x| x.range_start() == Some(offset)),
                "the upstream should have answered 206 from {offset}: {:?}",
                h.up.hits_for(&blob)
            );
            for x in h.up.hits_for(&blob) {
                assert!(x.header("user-agent").unwrap_or("").starts_with("rclone/"), "{x:?}");
            }
        }

        // rclone copy of the whole folder: every file byte for byte.
        let dest = tmp.join(format!("copy{}", mount.replace('/', "-")));
        let args = vec![s("copy"), format!(":webdav:{}", &mount[1..]), dest.display().to_string()];
        let r = run(&rclone, args, env.clone()).await;
        assert!(r.ok(), "rclone copy {mount}: {}", r.stderr);
        for (name, _) in FILES {
            let got = std::fs::read(dest.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(sha256(&got), sha256(&h.content(&format!("{mount}/{name}"))), "rclone copy {mount}/{name}");
        }
    }
    // Under redirect rclone's one User-Agent needed one link per file.
    let counts = h.drive("/link").link_call_counts();
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert!(counts.keys().all(|(_, ua)| ua.starts_with("rclone/")), "{counts:?}");
    assert_eq!(counts.len(), FILES.len());
}
