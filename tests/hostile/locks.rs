//! Items 6 and 7: the lock system. LOCK then UNLOCK of `/` poisoned dav-server's
//! `MemLs` (every later write of every user dropped its connection); locks ignored
//! permissions, never expired, had no bound, and anyone could remove anyone's.

use std::time::Duration;

use crate::*;

fn lock(fx: &Fx, path: &str, user: Option<&str>, headers: &[(&str, &str)]) -> Resp {
    let mut hs = headers.to_vec();
    if !hs.iter().any(|(k, _)| *k == "Timeout") {
        hs.push(("Timeout", "Second-600"));
    }
    fx.req("LOCK", path, user, &hs, &lockinfo("someone"))
}

fn unlock(fx: &Fx, path: &str, user: Option<&str>, token: &str) -> Resp {
    fx.req("UNLOCK", path, user, &[("Lock-Token", &format!("<{token}>"))], b"")
}

/// Writes of every user on every writable mount go through.
fn nothing_is_blocked(fx: &Fx) {
    fx.req("PUT", "/a/src.txt", Some("full2"), &[], b"w1").expect(204, "PUT /a");
    fx.req("PUT", "/b/precious.txt", Some("b"), &[], b"w2").expect(204, "PUT /b as b");
    fx.req("PUT", "/v/c/c.txt", Some("full2"), &[], b"w3").expect(204, "PUT /v/c");
    fx.req("MKCOL", "/a/newdir", Some("full2"), &[], b"").expect(201, "MKCOL");
    fx.req("DELETE", "/a/newdir", Some("full2"), &[], b"").expect(204, "DELETE");
}

#[test]
fn lock_and_unlock_of_the_root_do_not_wedge_anything() {
    let mut fx = Fx::new();
    let r = lock(&fx, "/", Some("full"), &[("Depth", "infinity")]);
    assert_eq!(r.status, Some(403), "LOCK /: {}", r.text());
    let r = unlock(&fx, "/", Some("full"), "urn:uuid:00000000-0000-4000-8000-000000000000");
    assert!(matches!(r.status, Some(400..=499)), "UNLOCK /: {}", r.text());
    // A mount root can be locked by a user who may write all of it, and unlocked.
    let r = lock(&fx, "/a", Some("full"), &[("Depth", "infinity")]);
    r.expect(200, "LOCK /a");
    let token = lock_token(&r);
    fx.req("PUT", "/a/src.txt", Some("full2"), &[], b"x").expect(423, "PUT below a locked mount root");
    unlock(&fx, "/a", Some("full"), &token).expect(204, "UNLOCK /a");
    unlock(&fx, "/a", Some("full"), &token).expect(409, "second UNLOCK");
    nothing_is_blocked(&fx);
    fx.assert_clean();
}

#[test]
fn locks_need_write_access_to_everything_they_cover() {
    let mut fx = Fx::new();
    let cases: Vec<(&str, Option<&str>, &str, u16)> = vec![
        ("/", None, "infinity", 403),
        ("/", Some("ro"), "infinity", 403),
        ("/", Some("b"), "infinity", 403),
        ("/", Some("full"), "0", 403),
        ("/v", Some("full"), "infinity", 403),
        ("/a", None, "infinity", 403),
        ("/a/src.txt", None, "0", 403),
        ("/a/src.txt", Some("ro"), "0", 403),
        ("/a/src.txt", Some("b"), "0", 404),
        ("/a/new-by-b.txt", Some("b"), "0", 404),
        ("/v/c/c.txt", Some("b"), "0", 404),
        ("/ro/r.txt", Some("full"), "0", 403),
        ("/ro", Some("full"), "infinity", 403),
    ];
    for (path, user, depth, want) in cases {
        let r = lock(&fx, path, user, &[("Depth", depth)]);
        assert_eq!(r.status, Some(want), "LOCK {path} Depth {depth} as {user:?}: {}", r.text());
    }
    assert!(!fx.t.join("a/new-by-b.txt").exists(), "a refused LOCK created a lock-null file");
    nothing_is_blocked(&fx);
    fx.assert_clean();
}

#[test]
fn locks_expire_and_timeouts_are_bounded() {
    let mut fx = Fx::new();
    let r = lock(&fx, "/a/src.txt", Some("full"), &[("Timeout", "Second-1")]);
    r.expect(200, "LOCK Second-1");
    assert!(r.body().contains("Second-1"), "{}", r.text());
    fx.req("PUT", "/a/src.txt", Some("full2"), &[], b"x").expect(423, "PUT while locked");
    std::thread::sleep(Duration::from_millis(2500));
    fx.req("PUT", "/a/src.txt", Some("full2"), &[], b"x").expect(204, "PUT after the lock expired");
    let r = lock(&fx, "/a/src.txt", Some("full"), &[("Timeout", "Second-0")]);
    r.expect(200, "LOCK Second-0");
    assert!(r.body().contains("Second-1"), "Second-0 is one second: {}", r.text());
    std::thread::sleep(Duration::from_millis(1500));
    fx.assert_clean();

    // The configured bound applies to long and infinite requests.
    let mut fx = Fx::with_server("lock_max_timeout = \"30s\"");
    for (i, t) in ["Infinite", "Second-4100000000", "Infinite, Second-60"].iter().enumerate() {
        let path = format!("/a/t{i}.txt");
        let r = lock(&fx, &path, Some("full"), &[("Timeout", t)]);
        assert_eq!(r.status, Some(201), "LOCK {t}: {}", r.text());
        assert!(r.body().contains("Second-30</D:timeout>"), "Timeout {t}: {}", r.text());
    }
    fx.assert_clean();
}

#[test]
fn only_the_owner_may_refresh_unlock_or_use_a_lock() {
    let mut fx = Fx::new();
    let r = lock(&fx, "/a/src.txt", Some("full"), &[]);
    r.expect(200, "LOCK");
    let token = lock_token(&r);
    // Everyone can see the token...
    let pf = b"<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop><D:lockdiscovery/></D:prop></D:propfind>";
    let r = fx.req("PROPFIND", "/a/src.txt", Some("full2"), &[("Depth", "0")], pf);
    assert!(r.body().contains(&token), "{}", r.text());
    // ...but it is of no use to them.
    unlock(&fx, "/a/src.txt", Some("full2"), &token).expect(403, "UNLOCK by another user");
    unlock(&fx, "/a/src.txt", None, &token).expect(403, "UNLOCK by an anonymous client");
    let cond = format!("(<{token}>)");
    fx.req("PUT", "/a/src.txt", Some("full2"), &[("If", &cond)], b"x").expect(423, "PUT with another's token");
    let refresh = fx.req("LOCK", "/a/src.txt", Some("full2"), &[("If", &cond), ("Timeout", "Second-60")], b"");
    assert!(matches!(refresh.status, Some(403 | 412)), "refresh by another user: {}", refresh.text());
    fx.req("PUT", "/a/src.txt", Some("full2"), &[], b"x").expect(423, "the lock still holds");
    assert_eq!(fx.file("a/src.txt").as_deref(), Some("source"));
    // The owner can.
    let r = fx.req("LOCK", "/a/src.txt", Some("full"), &[("If", &cond), ("Timeout", "Second-60")], b"");
    r.expect(200, "refresh by the owner");
    fx.req("PUT", "/a/src.txt", Some("full"), &[("If", &cond)], b"mine").expect(204, "owner's PUT");
    unlock(&fx, "/a/src.txt", Some("full"), &token).expect(204, "owner's UNLOCK");
    fx.req("PUT", "/a/src.txt", Some("full2"), &[], b"x").expect(204, "PUT after UNLOCK");
    fx.assert_clean();
}

#[test]
fn locks_are_bounded_per_user_in_total_and_in_size() {
    let mut fx = Fx::new();
    // 256 per user by default.
    for i in 0..256 {
        lock(&fx, &format!("/a/l{i}.txt"), Some("full"), &[]).expect(201, "LOCK within the bound");
    }
    let r = lock(&fx, "/a/one-too-many.txt", Some("full"), &[]);
    assert_eq!(r.status, Some(507), "the 257th lock of one user: {}", r.text());
    assert!(!fx.t.join("a/one-too-many.txt").exists());
    lock(&fx, "/a/other-user.txt", Some("full2"), &[]).expect(201, "another user's lock");
    // A 60 KB owner is not kept.
    let big = fx.req("LOCK", "/a/src.txt", Some("full2"), &[("Timeout", "Second-60")], &lockinfo(&"o".repeat(60_000)));
    assert_eq!(big.status, Some(413), "LOCK with a 60 KB owner: {}", big.text());
    fx.req("PUT", "/a/src.txt", Some("full"), &[], b"x").expect(204, "the refused LOCK left no lock");
    fx.assert_clean();

    let mut fx = Fx::with_server("locks_total = 3");
    for (i, user) in ["full", "full2", "b"].iter().enumerate() {
        lock(&fx, &format!("/b/t{i}.txt"), Some(user), &[]).expect(201, "LOCK within the total");
    }
    let r = lock(&fx, "/b/t9.txt", Some("full"), &[]);
    assert_eq!(r.status, Some(507), "a lock above the total: {}", r.text());
    fx.assert_clean();
}

#[test]
fn locks_survive_a_restart() {
    let mut fx = Fx::new();
    let r = lock(&fx, "/a/src.txt", Some("full"), &[]);
    r.expect(200, "LOCK");
    let token = lock_token(&r);
    fx.restart();
    fx.req("PUT", "/a/src.txt", Some("full2"), &[], b"x").expect(423, "another user's PUT after a restart");
    let cond = format!("(<{token}>)");
    fx.req("PUT", "/a/src.txt", Some("full"), &[("If", &cond)], b"saved").expect(204, "the owner saves with the token");
    unlock(&fx, "/a/src.txt", Some("full"), &token).expect(204, "UNLOCK after a restart");
    assert_eq!(fx.file("a/src.txt").as_deref(), Some("saved"));
    fx.assert_clean();
}
