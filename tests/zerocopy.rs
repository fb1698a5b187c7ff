//! Local files sent by `sendfile` on plain HTTP/1 connections (`server::zerocopy`):
//! every byte arrives as it is in the file, in order, whatever the client does —
//! pipelined requests, ranges, a slow reader, pages not in the page cache, a file cut
//! short while it is sent — and HTTP/2, TLS-less or not, and `sendfile = false` send
//! the same bytes the ordinary way.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{ConfigBuilder, Server, TestDir};

/// Deterministic bytes that differ at every offset, so a misplaced or zeroed chunk
/// cannot pass for the right one.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    upstream::pseudo_random(len, seed)
}

struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Reads one HTTP/1.1 response (a body of `Content-Length` bytes or chunked; none for
/// HEAD).
fn read_response(r: &mut BufReader<TcpStream>, head_only: bool) -> Resp {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).expect("response head");
        assert!(n > 0, "connection closed before a full response head: {head:?}");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0);
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    if head_only || !chunked {
        let mut body = vec![0u8; if head_only { 0 } else { len }];
        r.read_exact(&mut body).expect("response body");
        return Resp { status, head, body };
    }
    let mut body = vec![];
    loop {
        let mut size = String::new();
        r.read_line(&mut size).expect("chunk size");
        let n = usize::from_str_radix(size.trim().split(';').next().unwrap(), 16).expect("hex chunk size");
        let mut chunk = vec![0u8; n + 2];
        r.read_exact(&mut chunk).expect("chunk");
        assert_eq!(&chunk[n..], b"\r\n");
        if n == 0 {
            return Resp { status, head, body };
        }
        body.extend_from_slice(&chunk[..n]);
    }
}

fn connect(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n")
}

/// `pandav_zero_copy_bytes_total` now.
fn zero_copy_bytes(srv: &Server) -> u64 {
    let (mut s, mut r) = connect(srv.addr());
    s.write_all(get("/-/metrics", "Connection: close\r\n").as_bytes()).unwrap();
    let resp = read_response(&mut r, false);
    assert_eq!(resp.status, 200, "metrics: {}", resp.head);
    let text = String::from_utf8(resp.body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("pandav_zero_copy_bytes_total ").map(|v| v.trim().parse().unwrap()))
        .expect("pandav_zero_copy_bytes_total in /-/metrics")
}

fn server(dir: &TestDir, extra: &str) -> Server {
    let data = dir.mkdir("data");
    Server::start(
        dir,
        &ConfigBuilder::new().server("allow_anonymous = true\nmetrics = true").server(extra).local("/l", &data),
    )
}

#[test]
fn pipelined_requests_get_every_byte_in_order_by_sendfile() {
    let dir = TestDir::new();
    let srv = server(&dir, "");
    let big = pattern(3 * 1024 * 1024 + 12_345, 7);
    let path = dir.write("data/big.bin", &big);
    dir.write("data/small.txt", "just a few bytes\n");
    let before = zero_copy_bytes(&srv);

    // All on one connection, written at once: hyper answers them one after the other,
    // and the file regions must line up with the responses they belong to.
    let (mut s, mut r) = connect(srv.addr());
    let mut reqs = String::new();
    reqs += &get("/l/big.bin", "");
    reqs += &get("/l/big.bin", "Range: bytes=1000-1050575\r\n");
    reqs += "HEAD /l/big.bin HTTP/1.1\r\nHost: t\r\n\r\n";
    reqs += "PROPFIND /l/ HTTP/1.1\r\nHost: t\r\nDepth: 1\r\nContent-Length: 0\r\n\r\n";
    reqs += &get("/l/small.txt", "");
    reqs += &get("/l/big.bin", "Range: bytes=-777\r\n");
    reqs += &get("/l/big.bin", "");
    s.write_all(reqs.as_bytes()).unwrap();

    let whole = read_response(&mut r, false);
    assert_eq!(whole.status, 200);
    assert!(whole.body == big, "whole file differs");
    let part = read_response(&mut r, false);
    assert_eq!(part.status, 206, "{}", part.head);
    assert!(part.body == big[1000..=1_050_575], "range differs");
    let head = read_response(&mut r, true);
    assert_eq!(head.status, 200);
    assert!(head.head.to_ascii_lowercase().contains(&format!("content-length: {}", big.len())), "{}", head.head);
    let pf = read_response(&mut r, false);
    assert_eq!(pf.status, 207);
    assert!(String::from_utf8_lossy(&pf.body).contains("big.bin"));
    let small = read_response(&mut r, false);
    assert_eq!(small.body, b"just a few bytes\n");
    let tail = read_response(&mut r, false);
    assert_eq!(tail.status, 206);
    assert!(tail.body == big[big.len() - 777..], "suffix range differs");
    let again = read_response(&mut r, false);
    assert!(again.body == big, "second whole GET differs");

    // The file bodies went by sendfile: the counter grew by (nearly, should a page have
    // left the cache in between) all of them, and never by more.
    let expected = (2 * big.len() + 1_049_576 + 777 + 17) as u64;
    let sent = zero_copy_bytes(&srv) - before;
    assert!(sent <= expected && sent >= expected * 9 / 10, "sendfile sent {sent} of {expected} file bytes");

    // Pages not in the page cache: read the ordinary way, then sent; same bytes.
    let f = std::fs::File::open(&path).unwrap();
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    s.write_all(get("/l/big.bin", "").as_bytes()).unwrap();
    assert!(read_response(&mut r, false).body == big, "GET of an uncached file differs");
}

#[test]
fn a_slow_reader_gets_every_byte() {
    let dir = TestDir::new();
    let srv = server(&dir, "");
    let big = pattern(6 * 1024 * 1024 + 3, 11);
    dir.write("data/slow.bin", &big);
    let (mut s, mut r) = connect(srv.addr());
    s.write_all(get("/l/slow.bin", "").as_bytes()).unwrap();
    // The socket fills; the server waits for room again and again.
    let mut head = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut got = Vec::with_capacity(big.len());
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < big.len() {
        let n = r.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
        std::thread::sleep(Duration::from_millis(3));
    }
    assert!(got == big, "slowly read file differs");
}

#[test]
fn a_file_cut_short_while_sent_breaks_the_transfer() {
    let dir = TestDir::new();
    let srv = server(&dir, "");
    let big = pattern(32 * 1024 * 1024, 3);
    let path = dir.write("data/cut.bin", &big);
    let (mut s, mut r) = connect(srv.addr());
    s.write_all(get("/l/cut.bin", "").as_bytes()).unwrap();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let mut first = vec![0u8; 64 * 1024];
    r.read_exact(&mut first).unwrap();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(1024 * 1024).unwrap();
    // The rest: whatever was under way, then the server closes the connection.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut rest = vec![];
    let _ = r.read_to_end(&mut rest);
    let total = first.len() + rest.len();
    assert!(total < big.len(), "a file cut to 1 MiB was sent whole ({total} bytes with headers)");
    // The server goes on serving.
    let (mut s2, mut r2) = connect(srv.addr());
    s2.write_all(get("/l/cut.bin", "").as_bytes()).unwrap();
    assert!(read_response(&mut r2, false).body == big[..1024 * 1024]);
}

#[test]
fn http2_and_sendfile_off_send_the_same_bytes_the_ordinary_way() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let big = pattern(2 * 1024 * 1024 + 99, 5);

    let dir = TestDir::new();
    let srv = server(&dir, "");
    dir.write("data/h2.bin", &big);
    let before = zero_copy_bytes(&srv);
    let url = srv.at("/l/h2.bin");
    let body = rt.block_on(async {
        let c = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        r.bytes().await.unwrap()
    });
    assert!(body[..] == big[..], "HTTP/2 body differs");
    assert_eq!(zero_copy_bytes(&srv), before, "HTTP/2 must not use the placeholders");

    let dir2 = TestDir::new();
    let off = server(&dir2, "sendfile = false");
    dir2.write("data/off.bin", &big);
    let (mut s, mut r) = connect(off.addr());
    s.write_all(get("/l/off.bin", "").as_bytes()).unwrap();
    assert!(read_response(&mut r, false).body == big, "sendfile = false body differs");
    assert_eq!(zero_copy_bytes(&off), 0, "sendfile = false still used sendfile");
}
