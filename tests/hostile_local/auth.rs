//! Issue 9, item 10: argon2 verifications no longer run on the async workers, failed
//! logins are limited per address, and an unknown name costs what a wrong password
//! costs.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, PasswordVerifier, SaltString};

use crate::common::*;
use crate::helpers::*;

/// An argon2id hash of `pass` costing `m_kib` KiB and `t` passes per verification.
fn argon2_hash(pass: &str, m_kib: u32, t: u32) -> String {
    let params = argon2::Params::new(m_kib, t, 1, None).unwrap();
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    a.hash_password(pass.as_bytes(), &SaltString::generate(&mut OsRng)).unwrap().to_string()
}

/// The shortest of three verifications of `phc` here (same crate, same optimisation
/// as the server's): what one verification costs at least on this machine now.
fn verification_cost(phc: &str) -> Duration {
    let h = argon2::PasswordHash::new(phc).unwrap();
    (0..3)
        .map(|_| {
            let t = Instant::now();
            let _ = argon2::Argon2::default().verify_password(b"not it", &h);
            t.elapsed()
        })
        .min()
        .unwrap()
}

/// A connection to `to` from loopback address `from` (the server counts failures per
/// client address).
fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(IpAddr::from(from), 0)).unwrap();
        sock.connect(to).await.unwrap()
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s
}

/// GET `path` as `user:pass` from address `from`; the whole answer.
fn get_as(from: [u8; 4], to: SocketAddr, path: &str, user: &str, pass: &str) -> Vec<u8> {
    let mut s = connect_from(from, to);
    let req = request("GET", path, &format!("Authorization: {}\r\n", basic(user, pass)), b"");
    std::io::Write::write_all(&mut s, &req).unwrap();
    match watch(&mut s, Duration::from_secs(120)) {
        Ended::Closed(b) | Ended::StillOpen(b) => b,
    }
}

/// A server with `alice` (argon2, hash given) and `bob` (plain password `pw`), its log at
/// debug level for pandav (each argon2 verification logs a line).
fn auth_server(alice_hash: &str) -> (TestDir, Server) {
    let dir = TestDir::new();
    let root = dir.mkdir("root");
    std::fs::write(root.join("f.txt"), "hello").unwrap();
    let state = dir.mkdir("state");
    let cfg = ConfigBuilder::new().user("bob", "pw", &[], false).local("/local", &root);
    let text = cfg.build(&state).replace("log_level = \"info\"", "log_level = \"info,pandav=debug\"");
    let text = format!("{text}\n[[users]]\nname = \"alice\"\npassword_hash = {}\n", toml_str(alice_hash));
    // [[users]] after [[mounts]] is fine in TOML: arrays of tables may come in any order.
    let config = dir.write("pandav.toml", &text);
    let server = Server::start_file(&config, dir.path());
    (dir, server)
}

/// While wrong passwords for an argon2 user pour in (from many addresses, so the
/// per-address limit does not stop them), another client's GETs are answered without
/// waiting for the verifications: counted by how many flood answers arrive while each
/// GET is in flight. With argon2 on the async workers, every GET waited for at least
/// one verification to finish.
#[test]
fn a_flood_of_wrong_passwords_does_not_hold_up_other_clients() {
    let hash = argon2_hash("right", 32 * 1024, 6);
    let cost = verification_cost(&hash);
    eprintln!("one verification here: {cost:?}");
    let (_dir, mut server) = auth_server(&hash);
    let addr = server.addr();
    assert_eq!(status_of(&get_as([127, 0, 0, 2], addr, "/local/f.txt", "bob", "pw")), Some(200));

    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let flood: Vec<_> = (0..6u8)
        .map(|t| {
            let (done, stop) = (Arc::clone(&done), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    // A new address each time: 250 per thread, far from 10 failures each.
                    let from = [127, 1 + t, (n / 250) as u8, (n % 250) as u8 + 1];
                    let got = get_as(from, addr, "/local/f.txt", "alice", "wrong");
                    assert_eq!(status_of(&got), Some(401), "{}", String::from_utf8_lossy(&got));
                    done.fetch_add(1, Ordering::SeqCst);
                    n += 1;
                }
            })
        })
        .collect();
    wait_for("the flood to be answered", Duration::from_secs(120), || (done.load(Ordering::SeqCst) >= 4).then_some(()));
    let gets = 20;
    let mut overlapping = 0;
    for _ in 0..gets {
        let before = done.load(Ordering::SeqCst);
        let got = get_as([127, 0, 0, 2], addr, "/local/f.txt", "bob", "pw");
        overlapping += done.load(Ordering::SeqCst) - before;
        assert_eq!(status_of(&got), Some(200));
        assert!(got.ends_with(b"hello"));
    }
    stop.store(true, Ordering::Relaxed);
    for t in flood {
        t.join().unwrap();
    }
    eprintln!("{overlapping} flood answers arrived during {gets} GETs");
    assert!(
        overlapping < gets / 2,
        "{overlapping} flood answers arrived while {gets} GETs were in flight: the GETs waited for argon2"
    );
    assert_sound(&mut server);
}

/// An unknown name, a wrong password for an argon2 user and a wrong password for a
/// plain user each cost one argon2 verification (counted in the debug log, and taking
/// at least about that long); a right password is verified once, then remembered.
#[test]
fn unknown_users_and_wrong_passwords_cost_the_same() {
    let hash = argon2_hash("right", 32 * 1024, 6);
    let cost = verification_cost(&hash);
    let (_dir, mut server) = auth_server(&hash);
    let addr = server.addr();
    let verifications = |s: &Server| s.log().matches("argon2 verification").count();
    for (i, (user, pass, status, want)) in [
        ("mallory", "right", 401, 1),
        ("alice", "wrong", 401, 1),
        ("bob", "wrong", 401, 1),
        ("alice", "right", 200, 1),
        ("alice", "right", 200, 0),
        ("bob", "pw", 200, 0),
    ]
    .into_iter()
    .enumerate()
    {
        let before = verifications(&server);
        let t = Instant::now();
        let got = get_as([127, 0, 0, 20 + i as u8], addr, "/local/f.txt", user, pass);
        let took = t.elapsed();
        assert_eq!(status_of(&got), Some(status), "{user}:{pass}");
        // The request log line comes after the verification's: wait for it.
        wait_for("the request's log line", Duration::from_secs(10), || {
            (server.log().matches("path=/local/f.txt").count() > i).then_some(())
        });
        assert_eq!(verifications(&server) - before, want, "{user}:{pass}: argon2 verifications");
        if status == 401 {
            assert!(took >= cost / 3, "{user}:{pass} answered in {took:?}, one verification costs {cost:?}");
        }
    }
    assert!(!server.log().contains("right"), "a password reached the log");
    assert_sound(&mut server);
}

/// Past a burst of failed logins, an address gets 429 with Retry-After (no verification);
/// other addresses are not affected.
#[test]
fn failed_logins_are_limited_per_address() {
    let hash = argon2_hash("right", 8 * 1024, 1);
    let (_dir, mut server) = auth_server(&hash);
    let addr = server.addr();
    let mut statuses = vec![];
    for _ in 0..15 {
        statuses.push(status_of(&get_as([127, 0, 0, 3], addr, "/local/f.txt", "bob", "guess")).unwrap());
    }
    let first_429 = statuses.iter().position(|s| *s == 429).unwrap_or_else(|| panic!("never limited: {statuses:?}"));
    assert!(statuses[..first_429].iter().all(|s| *s == 401) && first_429 >= 5, "{statuses:?}");
    assert!(statuses[first_429..].iter().all(|s| *s == 429), "{statuses:?}");
    let limited = get_as([127, 0, 0, 3], addr, "/local/f.txt", "bob", "pw");
    assert_eq!(status_of(&limited), Some(429), "the right password from a limited address");
    let text = String::from_utf8_lossy(&limited).to_ascii_lowercase();
    assert!(text.contains("\r\nretry-after: "), "{text}");
    assert_eq!(status_of(&get_as([127, 0, 0, 4], addr, "/local/f.txt", "bob", "pw")), Some(200));
    assert_sound(&mut server);
}
