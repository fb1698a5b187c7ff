//! SIGTERM through the real binary: a running stream is let finish while new
//! connections are refused, `shutdown_grace` bounds the wait, a second signal exits at
//! once.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::*;

const SIZE: usize = 32 << 20;

/// A server with `/d/big.bin` (SIZE bytes) and `shutdown_grace`.
fn server(t: &TestDir, grace: &str) -> (Server, Vec<u8>) {
    let data = t.mkdir("data");
    let big = pseudo_random(SIZE, 7);
    std::fs::write(data.join("big.bin"), &big).unwrap();
    let cfg = ConfigBuilder::new().server(&format!("shutdown_grace = \"{grace}\"")).local("/d", &data);
    (Server::start(t, &cfg), big)
}

/// Start a GET of the big file and read its head (and a first piece of the body).
fn start_stream(srv: &Server) -> (TcpStream, usize, Vec<u8>) {
    let mut s = TcpStream::connect(srv.addr()).unwrap();
    s.write_all(b"GET /d/big.bin HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = vec![];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the head");
        got.extend_from_slice(&buf[..n]);
    }
    let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .expect("a Content-Length");
    (s, len, got[end..].to_vec())
}

/// Wait until the listener refuses connections.
fn wait_refused(srv: &Server) {
    wait_for("new connections to be refused", Duration::from_secs(30), || {
        TcpStream::connect_timeout(&srv.addr(), Duration::from_secs(1)).is_err().then_some(())
    });
}

#[test]
fn a_running_stream_finishes_after_sigterm_while_new_connections_are_refused() {
    let t = TestDir::new();
    let (mut srv, big) = server(&t, "60s");
    let (mut s, len, mut body) = start_stream(&srv);
    assert_eq!(len, SIZE);
    srv.signal("TERM");
    wait_refused(&srv);
    assert!(srv.alive(), "exited while a stream was running");
    // The stream goes on to its end.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
            Err(e) => panic!("the stream broke after {} bytes: {e}", body.len()),
        }
    }
    assert_eq!(body.len(), len, "the whole body");
    assert!(body == big, "the right bytes");
    let st = srv.wait_exit(Duration::from_secs(60));
    assert_eq!(st.code(), Some(0), "{}", srv.log());
    let log = srv.log();
    assert!(log.contains("SIGTERM: shutting down") && log.contains("every connection finished"), "{log}");
}

#[test]
fn shutdown_grace_bounds_the_wait() {
    let t = TestDir::new();
    let (mut srv, _) = server(&t, "1s");
    // A client that stops reading: its stream cannot finish.
    let (mut s, len, mut body) = start_stream(&srv);
    srv.signal("TERM");
    let st = srv.wait_exit(Duration::from_secs(60));
    assert_eq!(st.code(), Some(0), "{}", srv.log());
    assert!(srv.log().contains("shutdown_grace (1s) is over"), "{}", srv.log());
    body.extend(read_until_close(&mut s, Duration::from_secs(30)));
    assert!(body.len() < len, "the stalled stream was cut ({} of {len})", body.len());
}

#[test]
fn a_second_signal_exits_at_once() {
    let t = TestDir::new();
    let (mut srv, _) = server(&t, "600s");
    let (_s, _, _) = start_stream(&srv);
    srv.signal("TERM");
    wait_refused(&srv);
    assert!(srv.alive());
    srv.signal("INT");
    // Well before the 600 s grace: the exit code says it did not wait.
    let st = srv.wait_exit(Duration::from_secs(30));
    assert_eq!(st.code(), Some(128 + 2), "{}", srv.log());
    assert!(srv.log().contains("SIGINT again: exiting now"), "{}", srv.log());
}
