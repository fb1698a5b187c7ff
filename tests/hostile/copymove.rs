//! Items 1 and 2: COPY and MOVE never escape through `Destination`, never use a mount
//! root or virtual folder, and never change anything when refused.

use crate::*;

/// `COPY /a/src.txt` with `Destination: http://host/..` and `Overwrite: T` used to
/// answer 207 after deleting every file of every writable mount.
#[test]
fn destination_forms_never_escape_or_wipe() {
    let mut fx = Fx::new();
    let before = fx.snapshot();
    let h = fx.host();
    let cases: Vec<(String, u16)> = vec![
        (format!("http://{h}/.."), 400),
        (format!("http://{h}/a/../.."), 400),
        (format!("http://{h}/%2e%2e/"), 400),
        (format!("http://{h}/a/%2E%2E/%2e%2e"), 400),
        ("/a/../..".into(), 400),
        ("file:///a".into(), 400),
        ("x:/a".into(), 400),
        (format!("http://{h}/.\t./"), 400),
        (format!("http://{h}\\.."), 400),
        (format!("http://{h}/a\\..\\.."), 400),
        (format!("http://{h}/a/x%00y"), 400),
        (format!("http://{h}/a/x%2fy"), 400),
        ("//evil.example/a/x".into(), 400),
        ("http://evil.example/a/x.txt".into(), 502),
        (format!("http://{h}/"), 403),
        (format!("http://{h}/a"), 403),
        (format!("http://{h}/a/"), 403),
        (format!("http://{h}/v"), 403),
        (format!("http://{h}/v/c/"), 403),
        ("/b".into(), 403),
    ];
    for method in ["COPY", "MOVE"] {
        for (dest, want) in &cases {
            let r = fx.req(method, "/a/src.txt", Some("full"), &[("Destination", dest), ("Overwrite", "T")], b"");
            assert_eq!(r.status, Some(*want), "{method} to {dest:?}: {}", r.text());
            assert_same(&before, &fx, &format!("{method} to {dest:?}"));
        }
    }
    // Mount roots and virtual folders are no sources either.
    for (method, src, dest) in [
        ("COPY", "/a", "/b/acopy"),
        ("COPY", "/a/", "/b/acopy"),
        ("COPY", "/", "/b/rootcopy"),
        ("COPY", "/v", "/b/vcopy"),
        ("MOVE", "/b", "/a/bmoved"),
        ("MOVE", "/v/c", "/a/cmoved"),
        ("MOVE", "/v", "/a/vmoved"),
    ] {
        let r = fx.req(method, src, Some("full"), &[("Destination", dest), ("Overwrite", "T")], b"");
        assert_eq!(r.status, Some(403), "{method} {src} to {dest}: {}", r.text());
        assert_same(&before, &fx, &format!("{method} {src}"));
    }
    fx.assert_clean();
}

/// A MOVE refused for its read-only source used to answer 403 after deleting the
/// destination (dav-server removed it first); so did every other refusal.
#[test]
fn refused_copy_and_move_keep_the_destination() {
    let mut fx = Fx::new();
    let before = fx.snapshot();
    let t = [("Overwrite", "T")];
    type Case<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Vec<(&'a str, &'a str)>, u16);
    let cases: Vec<Case> = vec![
        ("MOVE", "/ro/r.txt", "/b/precious.txt", Some("full"), t.to_vec(), 403),
        ("MOVE", "/ro/r.txt", "/b/keep", Some("full"), t.to_vec(), 403),
        ("COPY", "/a/src.txt", "/ro/r.txt", Some("full"), t.to_vec(), 403),
        ("COPY", "/a/src.txt", "/b/precious.txt", Some("ro"), t.to_vec(), 403),
        ("MOVE", "/a/src.txt", "/b/precious.txt", Some("ro"), t.to_vec(), 403),
        ("MOVE", "/a/dir", "/b/keep", Some("ro"), t.to_vec(), 403),
        ("COPY", "/a/src.txt", "/b/precious.txt", None, t.to_vec(), 403),
        ("MOVE", "/a/src.txt", "/b/precious.txt", Some("b"), t.to_vec(), 404),
        ("COPY", "/b/precious.txt", "/a/src.txt", Some("b"), t.to_vec(), 403),
        ("COPY", "/a/src.txt", "/b/precious.txt", Some("full"), vec![("Overwrite", "F")], 412),
        ("MOVE", "/a/dir", "/b/keep", Some("full"), vec![("Overwrite", "F")], 412),
        ("COPY", "/a/src.txt", "/b/missing/x.txt", Some("full"), t.to_vec(), 409),
        ("COPY", "/a/src.txt", "/b/precious.txt/x.txt", Some("full"), t.to_vec(), 409),
        ("MOVE", "/a/dir", "/a/dir/sub/inner", Some("full"), t.to_vec(), 403),
        ("COPY", "/a/dir", "/a/dir/sub/inner", Some("full"), t.to_vec(), 403),
        ("MOVE", "/a/src.txt", "/a/src.txt", Some("full"), t.to_vec(), 403),
        ("MOVE", "/a/nope.txt", "/b/precious.txt", Some("full"), t.to_vec(), 404),
        ("COPY", "/a/src.txt", "/b/precious.txt", Some("full"), vec![("Overwrite", "maybe")], 400),
        ("MOVE", "/a/dir", "/b/keep", Some("full"), vec![("Depth", "0"), ("Overwrite", "T")], 400),
        ("COPY", "/a/dir", "/b/keep", Some("full"), vec![("Depth", "1"), ("Overwrite", "T")], 400),
        ("COPY", "/a/src.txt", "/b/precious.txt", Some("full"), vec![("If", "(<urn:uuid:nope>)")], 412),
    ];
    for (method, src, dest, user, headers, want) in cases {
        let mut hs = headers.clone();
        hs.push(("Destination", dest));
        let r = fx.req(method, src, user, &hs, b"");
        assert_eq!(r.status, Some(want), "{method} {src} to {dest} as {user:?} {headers:?}: {}", r.text());
        assert_same(&before, &fx, &format!("{method} {src} to {dest} as {user:?}"));
    }

    // A destination locked by someone else: 423 and untouched.
    let l = fx.req("LOCK", "/b/precious.txt", Some("full"), &[("Timeout", "Second-60")], &lockinfo("full"));
    l.expect(200, "LOCK");
    let token = lock_token(&l);
    let locked = fx.snapshot();
    for user in ["b", "full2"] {
        let r =
            fx.req("COPY", "/b/keep/k.txt", Some(user), &[("Destination", "/b/precious.txt"), ("Overwrite", "T")], b"");
        r.expect(423, "COPY onto a locked file");
        let r = fx.req("MOVE", "/b/keep", Some(user), &[("Destination", "/b/precious.txt"), ("Overwrite", "T")], b"");
        r.expect(423, "MOVE onto a locked file");
        // Submitting someone else's token (tagged with the destination) does not help.
        let if_token = format!("<http://{}/b/precious.txt> (<{token}>)", fx.host());
        let hs = [("Destination", "/b/precious.txt"), ("Overwrite", "T"), ("If", if_token.as_str())];
        fx.req("COPY", "/b/keep/k.txt", Some(user), &hs, b"").expect(423, "COPY with another's token");
    }
    // Moving the locked file away is refused too.
    fx.req("MOVE", "/b/precious.txt", Some("full2"), &[("Destination", "/b/moved.txt")], b"")
        .expect(423, "MOVE of a locked file");
    assert_same(&locked, &fx, "COPY/MOVE onto a locked destination");
    // The owner, with the token, may replace it.
    let if_token = format!("<http://{}/b/precious.txt> (<{token}>)", fx.host());
    let hs = [("Destination", "/b/precious.txt"), ("Overwrite", "T"), ("If", if_token.as_str())];
    fx.req("COPY", "/b/keep/k.txt", Some("full"), &hs, b"").expect(204, "owner's COPY with the token");
    assert_eq!(fx.file("b/precious.txt").as_deref(), Some("k"));
    fx.assert_clean();
}

/// Overwrite replaces (204), a new name is created (201), folders are replaced whole,
/// Depth 0 copies a folder without its members, and no temporary name is left or
/// shown.
#[test]
fn overwrite_replaces_and_leaves_nothing_behind() {
    let mut fx = Fx::new();
    let t = [("Overwrite", "T")];
    let mv = |fx: &Fx, m: &str, s: &str, d: &str, extra: &[(&str, &str)]| {
        let mut hs = vec![("Destination", d)];
        hs.extend_from_slice(extra);
        fx.req(m, s, Some("full"), &hs, b"")
    };
    // Across mounts.
    mv(&fx, "COPY", "/a/src.txt", "/b/precious.txt", &t).expect(204, "COPY over a file");
    assert_eq!(fx.file("b/precious.txt").as_deref(), Some("source"));
    mv(&fx, "MOVE", "/a/dir", "/b/keep", &t).expect(204, "MOVE of a folder over a folder");
    assert!(fx.t.join("b/keep/x.txt").is_file() && fx.t.join("b/keep/sub/y.txt").is_file());
    assert!(!fx.t.join("b/keep/k.txt").exists(), "the old folder's member survived its replacement");
    assert!(!fx.t.join("a/dir").exists());
    // Within a mount.
    mv(&fx, "COPY", "/b/keep", "/b/keep2", &[]).expect(201, "COPY of a folder");
    mv(&fx, "MOVE", "/b/keep2/x.txt", "/b/precious.txt", &t).expect(204, "MOVE over a file");
    assert_eq!(fx.file("b/precious.txt").as_deref(), Some("x"));
    mv(&fx, "COPY", "/b/precious.txt", "/b/keep2", &t).expect(204, "COPY of a file over a folder");
    assert_eq!(fx.file("b/keep2").as_deref(), Some("x"));
    mv(&fx, "COPY", "/b/keep", "/b/empty", &[("Depth", "0")]).expect(201, "Depth 0 COPY");
    assert!(fx.t.join("b/empty").is_dir() && walk(&fx.t.join("b/empty")).is_empty());
    mv(&fx, "MOVE", "/b/keep/sub", "/v/c/sub", &[]).expect(201, "MOVE into a nested mount");
    assert_eq!(fx.file("c/sub/y.txt").as_deref(), Some("y"));
    for (_, root) in &fx.roots {
        let left: Vec<String> = walk(root).into_iter().filter(|p| p.contains(".pandav-")).collect();
        assert!(left.is_empty(), "temporary names left: {left:?}");
    }
    fx.assert_clean();
}
