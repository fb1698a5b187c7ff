//! Upstream trouble under `proxy`: a connection dropped mid-body is resumed with a Range
//! from the byte reached (exact bytes), or the client's response is aborted — never a
//! clean short 200; an expired link is replaced and the read goes on; 5xx/429 map to
//! 502/503; bodies stream rather than buffer.

use std::time::Duration;

use futures_util::StreamExt;
use upstream::{Fault, ALWAYS};

use crate::harness::*;

const BIG: &str = "/plink/big.bin";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_read_survives_a_drop_byte_for_byte() {
    let h = Harness::start().await;
    let blob = h.blob(BIG);
    let want = h.content(BIG);
    let size = want.len() as u64;
    let at = 1_234_567u64;
    h.up.add_fault(&blob, Fault::DropAt { offset: at, times: 1 });

    let r = h.get(BIG, "Resume/1").await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(header(&r, "content-length"), Some(size.to_string()));
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len() as u64, size);
    assert_eq!(sha256(&body), sha256(&want));

    let reqs = h.up.hits_for(&blob);
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].range(), None);
    assert_eq!(reqs[1].range(), Some(format!("bytes={at}-{}", size - 1)).as_deref(), "resumed from the break");
    assert_eq!(reqs[1].status, 206);
    assert_eq!(h.drive("/plink").link_calls("big.bin", "Resume/1"), 1, "the link was still good");
    assert!(h.up.connections() >= 2, "the broken connection cannot have been reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ranged_read_survives_several_drops() {
    let h = Harness::start().await;
    let blob = h.blob(BIG);
    let want = h.content(BIG);
    let (start, end) = (100_000u64, 3_000_000u64); // inclusive end
    h.up.add_fault(&blob, Fault::DropAfter { bytes: 500_000, times: 3 });

    let r = h.get_range(BIG, "Resume/2", &format!("bytes={start}-{end}")).await;
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(header(&r, "content-range"), Some(format!("bytes {start}-{end}/{}", want.len())));
    let body = r.bytes().await.unwrap();
    assert_eq!(sha256(&body), sha256(&want[start as usize..=end as usize]));

    let ranges: Vec<String> = h.up.hits_for(&blob).iter().map(|h| h.range().unwrap_or("-").to_string()).collect();
    assert_eq!(
        ranges,
        vec![
            format!("bytes={start}-{end}"),
            format!("bytes={}-{end}", start + 500_000),
            format!("bytes={}-{end}", start + 1_000_000),
            format!("bytes={}-{end}", start + 1_500_000),
        ]
    );
}

/// The upstream dies at the same byte every time: the client must see a broken
/// transfer (curl: partial file), not a short body passed off as complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_every_time_aborts_the_response() {
    let h = Harness::start().await;
    let blob = h.blob(BIG);
    let size = h.content(BIG).len() as u64;
    let at = 1_000_000u64;
    h.up.add_fault(&blob, Fault::DropAt { offset: at, times: ALWAYS });

    // reqwest: headers arrive (200, full Content-Length), then the body errors.
    let r = h.get(BIG, "Abort/1").await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(header(&r, "content-length"), Some(size.to_string()));
    let mut got = 0u64;
    let mut stream = r.bytes_stream();
    let mut failed = false;
    while let Some(c) = stream.next().await {
        match c {
            Ok(b) => got += b.len() as u64,
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the body ended cleanly after {got} of {size} bytes");
    assert_eq!(got, at, "every byte before the break was delivered");
    let hits = h.up.hits_for(&blob);
    assert!(hits.len() >= 2, "pandav did not try to resume: {hits:?}");
    assert!(hits[1..].iter().all(|x| x.range_start() == Some(at)), "{hits:?}");

    // curl: exit 18 (partial file) with fewer bytes than announced.
    let Some(curl) = tool("curl") else { return };
    let out = h.tmp.path().join("partial.bin");
    let run = run(
        &curl,
        vec![
            "-sS".into(),
            "-u".into(),
            format!("{}:{}", ALICE.0, ALICE.1),
            "-A".into(),
            "Abort/2".into(),
            "-o".into(),
            out.display().to_string(),
            "-w".into(),
            "%{http_code} %{size_download}".into(),
            h.url(BIG),
        ],
        vec![],
    )
    .await;
    let w = run.stdout_text();
    assert!(!run.ok(), "curl reported success: {w} {}", run.stderr);
    assert_eq!(run.code, Some(18), "curl: {} {}", w, run.stderr);
    let parts: Vec<&str> = w.split_whitespace().collect();
    assert_eq!(parts[0], "200");
    let n: u64 = parts[1].parse().unwrap();
    assert!(n < size, "curl got {n} of {size}");
    assert_eq!(std::fs::metadata(&out).unwrap().len(), at);
}

/// The cached link is refused mid-stream (410 or 403: expired early): pandav asks the
/// drive for a fresh link and continues from where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_expiring_mid_stream_is_replaced() {
    for expired in [410u16, 403] {
        let h = Harness::start().await;
        let path = "/plink/big.bin";
        let blob = h.blob(path);
        let want = h.content(path);
        let at = 1_048_576u64;
        h.up.set_expired_status(expired);
        // URLs live 60 s at the upstream, the drive says 2 h: the cache keeps the link,
        // and the upstream expires it when the body reaches `at`.
        h.drive("/plink").mode.lock().unwrap().url_ttl = Duration::from_secs(60);
        h.up.add_fault(&blob, Fault::ExpireAt { offset: at, times: 1 });

        let r = h.get(path, "Expiry/1").await;
        assert_eq!(r.status().as_u16(), 200);
        let body = r.bytes().await.expect("the read should continue with a fresh link");
        assert_eq!(sha256(&body), sha256(&want), "expired status {expired}");

        let hits = h.up.hits_for(&blob);
        let summary: Vec<(u16, Option<u64>)> = hits.iter().map(|x| (x.status, x.range_start())).collect();
        assert_eq!(summary, vec![(200, None), (expired, Some(at)), (206, Some(at))], "expired status {expired}");
        assert_ne!(hits[1].query, hits[2].query, "the retry used a new link");
        assert_eq!(h.drive("/plink").link_calls("big.bin", "Expiry/1"), 2);
    }
}

/// A link the cache considers stale at the moment of a break is asked for again too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_break_after_the_cached_link_lapsed_uses_a_new_link() {
    let h = Harness::start().await;
    let path = "/plink/big.bin";
    let blob = h.blob(path);
    // Claimed expiry 61 s: cached for ~1 s, and the break comes after ~1.3 s.
    h.drive("/plink").mode.lock().unwrap().claimed_ttl = Some(Duration::from_secs(61));
    h.up.slow(&blob, 128 * 1024, Duration::from_millis(130));
    h.up.add_fault(&blob, Fault::DropAt { offset: 10 * 128 * 1024, times: 1 });
    let r = h.get(path, "Lapse/1").await;
    assert_eq!(r.status().as_u16(), 200);
    h.up.clear_faults(&blob); // the resumed request runs at full speed
    let body = r.bytes().await.unwrap();
    assert_eq!(sha256(&body), sha256(&h.content(path)));
    let hits = h.up.hits_for(&blob);
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert_ne!(hits[0].query, hits[1].query);
    assert_eq!(h.drive("/plink").link_calls("big.bin", "Lapse/1"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_map_to_gateway_statuses() {
    let h = Harness::start().await;
    let path = "/plink/small.bin";
    let blob = h.blob(path);
    for (code, want, retry_after) in [(500u16, 502u16, false), (502, 502, false), (503, 503, true), (429, 503, true)] {
        h.up.add_fault(&blob, Fault::Status { code, times: 1 });
        let r = h.get(path, "Err/1").await;
        assert_eq!(r.status().as_u16(), want, "upstream {code}");
        assert_eq!(header(&r, "retry-after").is_some(), retry_after, "upstream {code}");
        assert!(header(&r, "set-cookie").is_none());
        // The fault wore off: the next read works.
        let r = h.get(path, "Err/1").await;
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.bytes().await.unwrap() == h.content(path));
    }
    // An upstream ignoring Range must not make pandav serve the wrong bytes.
    h.up.ignore_range(&blob, true);
    let r = h.get_range(path, "Err/1", "bytes=10-20").await;
    assert_eq!(r.status().as_u16(), 502);
    // A refused link (twice, also when fresh) is an error, not an empty 200.
    h.up.ignore_range(&blob, false);
    h.up.require(&blob, "x-never-sent", "1");
    let r = h.get(path, "Err/2").await;
    assert_eq!(r.status().as_u16(), 502);
    assert_eq!(h.drive("/plink").link_calls("small.bin", "Err/2"), 2, "one retry with a fresh link");
}

/// The proxy streams: the first bytes reach the client while the upstream still holds
/// back the rest, through one upstream request on one connection. Event order, no
/// timing: a proxy that buffered would never show the first bytes before the gate opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_through_one_upstream_request() {
    let h = Harness::start().await;
    let path = "/plink/big.bin";
    let blob = h.blob(path);
    let gate = h.up.hold_after_first_chunk(&blob, 256 * 1024);
    let conns = h.up.connections();
    let r = h.get(path, "Stream/1").await;
    assert_eq!(r.status().as_u16(), 200);
    let mut stream = r.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(60), stream.next())
        .await
        .expect("no bytes while the upstream held back all but its first chunk: buffered, not streamed")
        .unwrap()
        .unwrap();
    let mut n = first.len();
    assert!(n <= 256 * 1024, "{n} bytes before the upstream sent more than its first chunk");
    gate.add_permits(1);
    while let Some(c) = stream.next().await {
        n += c.unwrap().len();
    }
    assert_eq!(n, h.content(path).len());
    assert_eq!(h.up.body_requests(&blob).len(), 1);
    assert_eq!(h.up.connections(), conns + 1);
}

/// The provider's file changed size after it was listed: pandav announced the listed
/// length, so a shorter upstream body must abort the response (never a clean short
/// 200), and a longer one is cut at the announced length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_another_size_than_listed_never_gives_a_clean_wrong_body() {
    let h = Harness::start().await;
    let path = "/plink/small.bin";
    let blob = h.blob(path);
    let listed = h.content(path).len();
    let r = h.get(path, "Size/1").await; // lists the folder, caches the size
    assert_eq!(r.bytes().await.unwrap().len(), listed);

    let shorter = pseudo_random("shorter", listed - 1000);
    h.up.put(&blob, shorter.clone());
    h.up.signed_only(&blob);
    let r = h.get(path, "Size/1").await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(header(&r, "content-length"), Some(listed.to_string()));
    let got = r.bytes().await;
    assert!(got.is_err(), "a short body was passed off as complete ({} bytes)", got.unwrap().len());

    let longer = pseudo_random("longer", listed + 1000);
    h.up.put(&blob, longer.clone());
    h.up.signed_only(&blob);
    let r = h.get(path, "Size/1").await;
    assert_eq!(r.status().as_u16(), 200);
    let body = r.bytes().await.unwrap();
    assert!(body[..] == longer[..listed], "the listed length of the new bytes");
}
