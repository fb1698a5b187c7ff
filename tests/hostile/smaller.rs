//! The smaller items: the health page told anonymous clients every mount (hidden ones
//! too); control characters in a signed path or a user name forged log lines; a body
//! that stopped coming held its request, task and spool for ever.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::*;

#[test]
fn health_without_credentials_says_only_ok() {
    let mut fx = Fx::new();
    let r = fx.req("GET", "/-/health", None, &[], b"");
    r.expect(200, "anonymous health");
    let v: serde_json::Value = serde_json::from_str(&r.body()).unwrap();
    assert_eq!(v, serde_json::json!({"ok": true}), "anonymous health: {}", r.body());
    let mounts = |user| {
        let r = fx.req("GET", "/-/health", Some(user), &[], b"");
        let v: serde_json::Value = serde_json::from_str(&r.body()).unwrap();
        let mut paths: Vec<String> =
            v["mounts"].as_array().unwrap().iter().map(|m| m["path"].as_str().unwrap().to_string()).collect();
        paths.sort();
        paths
    };
    assert_eq!(mounts("full"), vec!["/a", "/b", "/ro", "/v/c"]);
    assert_eq!(mounts("b"), vec!["/b"]);
    // Wrong credentials are no credentials.
    let r = fx.req("GET", "/-/health", None, &[("Authorization", &basic("full", "wrong"))], b"");
    assert!(!r.body().contains("/b"), "{}", r.text());
    fx.assert_clean();
}

#[test]
fn log_lines_cannot_be_forged() {
    let mut fx = Fx::new();
    let r = fx.req("GET", "/a/x%0aFORGED-LINE-1%0d%0aFORGED-LINE-2?sign=abc", None, &[], b"");
    assert_eq!(r.status, Some(403), "{}", r.text());
    let evil = basic("evil\nFORGED-LINE-3 INFO", "pw");
    let r = fx.req("GET", "/a/", None, &[("Authorization", &evil)], b"");
    assert_eq!(r.status, Some(401), "{}", r.text());
    let evil = basic("full\u{1b}[2J", "pw");
    fx.req("GET", "/a/", None, &[("Authorization", &evil)], b"").expect(401, "escape sequence in a name");
    fx.assert_clean();
    let log = fx.srv.log();
    for l in log.lines() {
        assert!(!l.trim_start().starts_with("FORGED-LINE"), "forged log line {l:?} in:\n{log}");
        assert!(!l.contains('\u{1b}'), "raw escape sequence in {l:?}");
    }
    assert!(log.contains("FORGED-LINE-1"), "the refused signed link is not logged:\n{log}");
}

/// Connect and send `head` plus `part` of a body, then nothing more.
fn stall(fx: &Fx, head: &str, part: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(fx.srv.addr()).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(part).unwrap();
    s.flush().unwrap();
    s
}

#[test]
fn bodies_that_stop_coming_time_out() {
    let mut fx = Fx::with_server("body_timeout = \"2s\"");
    let auth = basic("full", PW);
    let spools =
        |fx: &Fx| -> Vec<String> { walk(&fx.t.join("a")).into_iter().filter(|p| p.contains(".pandav-")).collect() };
    let put = format!("PUT /a/src.txt HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 1000000\r\n\r\n");
    let mut s = stall(&fx, &put, &pseudo_random(100_000, 1));
    wait_for("the upload's spool", T, || (!spools(&fx).is_empty()).then_some(()));
    let started = Instant::now();
    let r = read_until_close(&mut s, T);
    assert_eq!(status_of(&r), Some(408), "stalled PUT: {}", String::from_utf8_lossy(&r));
    assert!(started.elapsed() < Duration::from_secs(15));
    wait_for("the spool to go", T, || spools(&fx).is_empty().then_some(()));
    assert_eq!(fx.file("a/src.txt").as_deref(), Some("source"), "a stalled PUT changed the file");
    for (method, path) in [("PROPFIND", "/a/"), ("LOCK", "/a/src.txt"), ("PROPPATCH", "/a/src.txt")] {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nDepth: 0\r\nContent-Length: 500\r\n\r\n"
        );
        let mut s = stall(&fx, &head, b"<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\">");
        let r = read_until_close(&mut s, T);
        assert_eq!(status_of(&r), Some(408), "stalled {method}: {}", String::from_utf8_lossy(&r));
    }
    fx.req("PUT", "/a/src.txt", Some("full2"), &[], b"fine").expect(204, "PUT after the stalled ones");
    fx.assert_clean();
}
