//! Issue 9, item 9: connections that say nothing (or too little, or nothing more) are
//! closed; the number of connections is capped, newest shed; the open-file limit is
//! raised at start.

use std::io::Write;
use std::time::Duration;

use crate::common::*;
use crate::helpers::*;

/// An h2 connection's first bytes: the preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// HEADERS (END_STREAM | END_HEADERS) for `GET /-/health` on stream 1, HPACK-encoded
/// with the static table: :method GET, :scheme http, :path (literal), :authority x.
fn h2_get_health() -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x44, 9];
    block.extend_from_slice(b"/-/health");
    block.extend_from_slice(&[0x41, 1, b'x']);
    let mut f = vec![0, 0, block.len() as u8, 0x1, 0x5, 0, 0, 0, 1];
    f.extend_from_slice(&block);
    f
}

fn watched_server(extra: &str) -> (TestDir, Server) {
    let dir = TestDir::new();
    let root = dir.mkdir("root");
    std::fs::write(root.join("f.txt"), "hello").unwrap();
    let cfg = ConfigBuilder::new().server(extra).local("/local", &root);
    let server = Server::start(&dir, &cfg);
    (dir, server)
}

/// Every way of holding a connection without a request ends with the server closing
/// it: silence, half an HTTP/2 preface (the protocol is never detected), a full preface
/// and nothing more, an HTTP/1 connection kept alive after its answer, and an HTTP/2
/// connection after its answer. A client that asks in time is answered.
#[test]
fn connections_without_a_request_are_closed() {
    let (_dir, mut server) = watched_server("header_timeout = \"1s\"\nidle_timeout = \"2s\"");
    let addr = server.addr();
    let silent = connect(addr);
    let mut half_preface = connect(addr);
    half_preface.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    let mut h2_no_request = connect(addr);
    h2_no_request.write_all(H2_PREFACE).unwrap();
    let mut h1_kept = connect(addr);
    h1_kept.write_all(b"GET /-/health HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut h2_done = connect(addr);
    h2_done.write_all(H2_PREFACE).unwrap();
    h2_done.write_all(&h2_get_health()).unwrap();

    // Ten times the longest limit: a server that closes them does so long before.
    let within = Duration::from_secs(20);
    for (what, mut s) in [
        ("a silent connection", silent),
        ("half an HTTP/2 preface", half_preface),
        ("an HTTP/2 preface without a request", h2_no_request),
        ("an idle HTTP/1 keep-alive connection", h1_kept),
        ("an idle HTTP/2 connection", h2_done),
    ] {
        match watch(&mut s, within) {
            Ended::Closed(got) => {
                if what.contains("idle") {
                    assert!(!got.is_empty(), "{what}: closed without answering its request");
                }
            }
            Ended::StillOpen(got) => {
                panic!("{what}: still open after {within:?} ({} bytes received)", got.len())
            }
        }
    }
    let answer = exchange(addr, &request("GET", "/local/f.txt", "", b""));
    assert_eq!(status_of(&answer), Some(200), "{}", String::from_utf8_lossy(&answer));
    assert!(answer.ends_with(b"hello"));
    assert_sound(&mut server);
}

/// At `max_connections`, new connections are closed at once (the ones already open keep
/// their place), with one log line for the whole burst; when some end, new ones are
/// served again.
#[test]
fn connection_cap_sheds_the_newest() {
    let (_dir, mut server) = watched_server("max_connections = 4\nheader_timeout = \"60s\"");
    let addr = server.addr();
    // (No request before these: its connection might still hold a slot when they come.)
    let holders: Vec<_> = (0..4).map(|_| connect(addr)).collect();
    for i in 0..12 {
        let mut s = connect(addr);
        let _ = s.write_all(&request("GET", "/local/f.txt", "", b""));
        match watch(&mut s, Duration::from_secs(30)) {
            Ended::Closed(got) => assert!(got.is_empty(), "connection {i} over the cap was answered"),
            Ended::StillOpen(_) => panic!("connection {i} over the cap was neither answered nor closed"),
        }
    }
    drop(holders);
    let ok = wait_for("a connection slot to free up", Duration::from_secs(30), || {
        let got = exchange(addr, &request("GET", "/local/f.txt", "", b""));
        (status_of(&got) == Some(200)).then_some(got)
    });
    assert!(ok.ends_with(b"hello"));
    let log = server.log();
    assert_eq!(log.matches("closing new ones").count(), 1, "one line per burst:\n{log}");
    // The 12, and any tries above made before the server saw the holders go.
    let shed: u64 = between(&log, "accepting connections again; ", " were closed at the limit")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no end-of-burst line:\n{log}"));
    assert!(shed >= 12, "{shed} counted as shed:\n{log}");
    assert_sound(&mut server);
}

/// pandav raises its soft open-file limit to the hard limit (a service started with
/// the usual soft 1024 would run out of descriptors long before its connection cap).
#[test]
fn open_file_limit_is_raised_at_start() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let mine = getrlimit(Resource::Nofile);
    let hard = mine.maximum.expect("a finite hard limit");
    assert!(hard > 512, "the hard open-file limit here is too low to show anything: {hard}");
    // Children inherit the limit: start the server under a low soft limit.
    setrlimit(Resource::Nofile, Rlimit { current: Some(512), maximum: mine.maximum }).unwrap();
    let started = std::panic::catch_unwind(|| watched_server(""));
    setrlimit(Resource::Nofile, mine).unwrap();
    let (_dir, mut server) = started.unwrap_or_else(|e| std::panic::resume_unwind(e));
    let (soft, hard_seen) = open_file_limits(server_pid(&server));
    assert_eq!(hard_seen, hard.to_string());
    assert_eq!(soft, hard_seen, "soft limit not raised");
    assert_sound(&mut server);
}

/// With TLS, a client that connects and never starts (or never finishes) the handshake
/// is closed after `header_timeout` too.
#[test]
fn a_silent_tls_handshake_is_closed() {
    let dir = TestDir::new();
    let root = dir.mkdir("root");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = run(
        std::process::Command::new(tool("openssl"))
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .args(["-days", "2", "-subj", "/CN=localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert),
        Duration::from_secs(60),
    );
    assert!(out.ok(), "openssl: {out:?}");
    let extra = format!(
        "header_timeout = \"1s\"\ntls_cert = {}\ntls_key = {}",
        toml_str(cert.to_str().unwrap()),
        toml_str(key.to_str().unwrap())
    );
    let text = ConfigBuilder::new().server(&extra).local("/local", &root).build(&dir.mkdir("state"));
    // The fixture reads an http:// URL; the address is all these connections need.
    let config = dir.write("pandav.toml", text);
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let url =
        line.trim().strip_prefix("pandav serving WebDAV at https://").expect("an https URL").trim_end_matches('/');
    let addr: std::net::SocketAddr = url.parse().unwrap();
    let mut silent = connect(addr);
    let mut half = connect(addr);
    // The first bytes of a TLS record header (handshake, TLS 1.0), then nothing.
    half.write_all(&[0x16, 0x03, 0x01]).unwrap();
    let within = Duration::from_secs(20);
    let ends = [watch(&mut silent, within), watch(&mut half, within)];
    let _ = child.kill();
    let _ = child.wait();
    for (what, end) in ["no handshake", "half a handshake"].iter().zip(ends) {
        assert!(matches!(end, Ended::Closed(_)), "{what}: still open after {within:?}");
    }
}
