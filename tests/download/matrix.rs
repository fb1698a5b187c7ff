//! Every policy × GET/HEAD × with/without Range × user × client rule, and what is never
//! redirected.

use std::collections::HashMap;

use crate::harness::*;
use pandav::vfs::Policy;

/// One User-Agent per rule, plus a plain one.
const UAS: &[&str] = &[
    "Plain/1.0",
    "ForceProxy/2.0",
    "davfs2/1.7.0 neon/0.32.5",
    "Microsoft-WebDAV-MiniRedir/10.0.19045",
    "WantRedirect/1.0",
    "RelayPlayer/3.1",
    "LinkMountOnly/1.0",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Exp {
    Redirect,
    Proxy,
    Relay,
}

/// What the issue says should happen, written independently of `policy.rs`.
fn expected(def: &MountDef, ua: &str) -> Exp {
    let u = ua.to_ascii_lowercase();
    let links = matches!(def.backend, Backend::Link(_));
    let base = match def.policy {
        Policy::Redirect => Exp::Redirect,
        Policy::Proxy => Exp::Proxy,
        Policy::ProxyUrl(_) => Exp::Relay,
    };
    // Config rules, then the built-in ones (clients that do not follow 302); the
    // LinkMountOnly rule is limited to /link.
    let proxy_rule = u.contains("forceproxy")
        || u.contains("davfs2")
        || u.contains("microsoft-webdav-miniredir")
        || (u.contains("linkmountonly") && def.path == "/link");
    let want = if proxy_rule {
        Exp::Proxy
    } else if u.contains("wantredirect") && links {
        Exp::Redirect
    } else if u.contains("relayplayer") && def.proxy_url.is_some() {
        Exp::Relay
    } else {
        base
    };
    // Links needing headers the client will not send are proxied instead.
    if want == Exp::Redirect && matches!(def.backend, Backend::Link(LinkHeaders::RefererCookie | LinkHeaders::OwnUa)) {
        Exp::Proxy
    } else {
        want
    }
}

const RANGE: (u64, u64) = (1000, 1999);

/// Check a 200/206 (or its HEAD) carrying `want` or the RANGE slice of it.
async fn check_body(r: reqwest::Response, method: &str, ranged: bool, want: &[u8], what: &str) {
    let size = want.len() as u64;
    assert!(header(&r, "set-cookie").is_none(), "{what}: Set-Cookie reached the client");
    let (status, slice) = if ranged { (206, &want[RANGE.0 as usize..=RANGE.1 as usize]) } else { (200, want) };
    assert_eq!(r.status().as_u16(), status, "{what}");
    assert_eq!(header(&r, "content-length"), Some(slice.len().to_string()), "{what}: Content-Length");
    if ranged {
        assert_eq!(header(&r, "content-range"), Some(format!("bytes {}-{}/{size}", RANGE.0, RANGE.1)), "{what}");
    } else {
        assert_eq!(header(&r, "content-range"), None, "{what}");
    }
    let body = r.bytes().await.unwrap();
    if method == "HEAD" {
        assert!(body.is_empty(), "{what}: HEAD with a body");
    } else {
        assert!(body[..] == *slice, "{what}: wrong bytes ({} received)", body.len());
    }
}

async fn one_case(
    h: &Harness,
    def: &MountDef,
    path: &str,
    ua: &str,
    method: &str,
    ranged: bool,
    who: (&str, &str),
) -> Exp {
    let want = h.content(path);
    let what = format!("{method} {path} as {} with UA {ua:?}{}", who.0, if ranged { " ranged" } else { "" });
    let hits_before = h.up.hits().len();
    let mut rq = h.req(method, path, Some(who), ua);
    if ranged {
        rq = rq.header("range", format!("bytes={}-{}", RANGE.0, RANGE.1));
    }
    let r = rq.send().await.unwrap();
    let exp = expected(def, ua);
    match exp {
        Exp::Redirect => {
            assert_eq!(r.status().as_u16(), 302, "{what}: {:?}", r.headers());
            let loc = header(&r, "location").unwrap();
            let blob = h.blob(path);
            assert!(loc.starts_with(&format!("{}/f/{blob}?", h.up.base())), "{what}: Location {loc}");
            assert_eq!(header(&r, "cache-control").as_deref(), Some("no-store"), "{what}");
            assert!(header(&r, "set-cookie").is_none());
            assert_eq!(h.up.hits().len(), hits_before, "{what}: a redirect touched the upstream");
            // Follow as the client would: same UA and Range, no pandav credentials.
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut f = h.client.request(m, &loc).header("user-agent", ua);
            if ranged {
                f = f.header("range", format!("bytes={}-{}", RANGE.0, RANGE.1));
            }
            let fr = f.send().await.unwrap();
            // (the upstream itself sends Set-Cookie; only check the bytes here)
            let st = fr.status().as_u16();
            assert_eq!(st, if ranged { 206 } else { 200 }, "{what}: following the redirect");
            let body = fr.bytes().await.unwrap();
            if method == "GET" {
                let slice = if ranged { &want[RANGE.0 as usize..=RANGE.1 as usize] } else { &want[..] };
                assert!(body[..] == *slice, "{what}: wrong bytes behind the redirect");
            }
        }
        Exp::Proxy => {
            assert_eq!(header(&r, "location"), None, "{what}");
            assert_eq!(header(&r, "accept-ranges").as_deref(), Some("bytes"), "{what}");
            check_body(r, method, ranged, &want, &what).await;
            let new: Vec<_> = h.up.hits()[hits_before..].to_vec();
            match (&def.backend, method) {
                (Backend::Local, _) | (_, "HEAD") => {
                    assert!(new.is_empty(), "{what}: upstream requests {new:?}")
                }
                (Backend::Link(hdrs), _) => {
                    assert_eq!(new.len(), 1, "{what}: one upstream request per read, got {new:?}");
                    let hit = &new[0];
                    assert_eq!(hit.blob.as_deref(), Some(h.blob(path).as_str()));
                    assert_eq!(hit.status, if ranged { 206 } else { 200 }, "{what}: upstream answered {hit:?}");
                    let want_range = ranged.then(|| format!("bytes={}-{}", RANGE.0, RANGE.1));
                    assert_eq!(hit.range().map(str::to_string), want_range, "{what}: Range passed upstream");
                    let want_ua = if *hdrs == LinkHeaders::OwnUa { DRIVE_UA } else { ua };
                    assert_eq!(hit.header("user-agent"), Some(want_ua), "{what}");
                    assert_eq!(hit.header("authorization"), None, "{what}: credentials forwarded");
                    if *hdrs == LinkHeaders::RefererCookie {
                        assert_eq!(hit.header("cookie"), Some(DRIVE_COOKIE), "{what}");
                        assert_eq!(hit.header("referer"), Some(DRIVE_REFERER), "{what}");
                    } else {
                        assert_eq!(hit.header("cookie"), None, "{what}: client cookie forwarded");
                    }
                }
            }
        }
        Exp::Relay => {
            assert_eq!(r.status().as_u16(), 302, "{what}");
            let loc = header(&r, "location").unwrap();
            let relay = RELAY.trim_end_matches('/');
            let want_prefix = format!("{relay}{}{}?sign=", h.prefix, encode(path));
            assert!(loc.starts_with(&want_prefix), "{what}: Location {loc}, wanted {want_prefix}…");
            assert_eq!(h.up.hits().len(), hits_before, "{what}: a relay redirect touched the upstream");
            // Be the relay: fetch pandav's signed route without credentials.
            let url = format!("{}{}", h.origin, &loc[relay.len()..]);
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut f = h.client.request(m, &url).header("user-agent", "relay/1");
            if ranged {
                f = f.header("range", format!("bytes={}-{}", RANGE.0, RANGE.1));
            }
            check_body(f.send().await.unwrap(), method, ranged, &want, &format!("{what} via relay")).await;
        }
    }
    exp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_policy_method_range_user_and_client_rule() {
    let h = Harness::start().await;
    let mut seen: HashMap<(String, Exp), usize> = HashMap::new();
    // A plain name, and one that must be percent-encoded (space, non-ASCII).
    for (def, file) in h.defs.clone().into_iter().flat_map(|d| [(d.clone(), "small.bin"), (d, "a b 电影.bin")]) {
        let path = format!("{}/{file}", def.path);

        // No credentials: a challenge, whatever the policy.
        for method in ["GET", "HEAD"] {
            let r = h.req(method, &path, None, "Plain/1.0").send().await.unwrap();
            assert_eq!(r.status().as_u16(), 401, "{method} {path} without credentials");
            assert!(header(&r, "www-authenticate").unwrap().starts_with("Basic"));
        }
        for ua in UAS {
            for method in ["GET", "HEAD"] {
                for ranged in [false, true] {
                    let exp = one_case(&h, &def, &path, ua, method, ranged, ALICE).await;
                    *seen.entry((def.path.to_string(), exp)).or_default() += 1;
                    // Bob is granted /local only: every other mount does not exist for him.
                    if def.path == "/local" {
                        one_case(&h, &def, &path, ua, method, ranged, BOB).await;
                    } else {
                        let hits = h.up.hits().len();
                        let calls = h.drive(def.path).total_link_calls();
                        let mut rq = h.req(method, &path, Some(BOB), ua);
                        if ranged {
                            rq = rq.header("range", "bytes=0-9");
                        }
                        let r = rq.send().await.unwrap();
                        assert_eq!(r.status().as_u16(), 404, "{method} {path} as bob ({ua})");
                        assert_eq!(header(&r, "location"), None);
                        assert_eq!(h.up.hits().len(), hits, "bob's request reached the upstream");
                        assert_eq!(h.drive(def.path).total_link_calls(), calls, "bob's request asked for a link");
                    }
                }
            }
        }
    }

    // The matrix really exercised each policy on the mounts where it applies.
    let n = |m: &str, e: Exp| seen.get(&(m.to_string(), e)).copied().unwrap_or(0);
    for (m, e) in [
        ("/link", Exp::Redirect),
        ("/link", Exp::Proxy),
        ("/plink", Exp::Proxy),
        ("/plink", Exp::Redirect),
        ("/relay", Exp::Relay),
        ("/relay", Exp::Proxy),
        ("/relay", Exp::Redirect),
        ("/hdr", Exp::Proxy),
        ("/own", Exp::Proxy),
        ("/echo", Exp::Redirect),
        ("/local", Exp::Proxy),
        ("/local", Exp::Relay),
    ] {
        assert!(n(m, e) > 0, "no case of {e:?} on {m}: {seen:?}");
    }
    assert_eq!(n("/hdr", Exp::Redirect) + n("/own", Exp::Redirect) + n("/local", Exp::Redirect), 0);

    // Across everything the upstream saw: no client credentials or cookies, and every
    // fetch (proxied or redirected) satisfied the link's requirements.
    let hits = h.up.hits();
    assert!(!hits.is_empty());
    for hit in &hits {
        assert_eq!(hit.header("authorization"), None, "{hit:?}");
        if let Some(c) = hit.header("cookie") {
            assert_eq!(c, DRIVE_COOKIE, "{hit:?}");
        }
        assert!(hit.status == 200 || hit.status == 206, "upstream refused a fetch: {hit:?}");
    }
}

/// PROPFIND, PUT and the other non-GET/HEAD methods are answered by WebDAV, never by a
/// redirect — also on redirect and proxy_url mounts and for a client rule asking for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_get_methods_are_never_redirected() {
    let h = Harness::start().await;
    for ua in ["Plain/1.0", "RelayPlayer/1.0", "WantRedirect/1.0"] {
        for path in ["/link/small.bin", "/relay/small.bin", "/local/small.bin"] {
            let r = h.req("PROPFIND", path, Some(ALICE), ua).header("depth", "0").send().await.unwrap();
            assert_eq!(r.status().as_u16(), 207, "PROPFIND {path} ({ua})");
            let xml = r.text().await.unwrap();
            assert!(xml.contains("100003"), "PROPFIND {path}: size missing in {xml}");

            for method in ["OPTIONS", "DELETE", "MOVE", "COPY", "PROPPATCH", "LOCK", "POST"] {
                if method == "DELETE" && path.starts_with("/local") {
                    continue; // would really delete it; the link mounts are read-only
                }
                let r = h.req(method, path, Some(ALICE), ua).send().await.unwrap();
                assert!(!r.status().is_redirection(), "{method} {path} ({ua}) answered {}", r.status());
                assert_eq!(header(&r, "location"), None, "{method} {path}");
            }
        }
        // GET of a folder is a listing, not a redirect.
        for dir in ["/link/", "/relay/", "/link"] {
            let r = h.req("GET", dir, Some(ALICE), ua).send().await.unwrap();
            assert!(!r.status().is_redirection() || dir == "/link", "GET {dir} ({ua}): {}", r.status());
            assert!(
                header(&r, "location").is_none_or(|l| !l.contains("sign=") && !l.contains(h.up.base())),
                "GET {dir}: {:?}",
                header(&r, "location")
            );
        }
    }
    // PUT on a link mount (read-only drive) is refused, not redirected.
    let r = h.req("PUT", "/link/new.bin", Some(ALICE), "RelayPlayer/1.0").body("x").send().await.unwrap();
    assert!(r.status().is_client_error(), "PUT on a read-only link mount: {}", r.status());
    // PUT on the local mount works for a client whose GETs go to the relay; the new file's
    // GET then is redirected to the relay, its PUT never was.
    let r = h.req("PUT", "/local/new.bin", Some(ALICE), "RelayPlayer/1.0").body("fresh bytes").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201, "PUT /local/new.bin");
    let r = h.req("GET", "/local/new.bin", Some(ALICE), "RelayPlayer/1.0").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    assert!(header(&r, "location").unwrap().starts_with("http://relay.invalid/r/local/new.bin?sign="));
    let r = h.req("GET", "/local/new.bin", Some(ALICE), "Plain/1.0").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.unwrap(), "fresh bytes");
    assert!(h.up.hits().is_empty(), "WebDAV methods reached the upstream: {:?}", h.up.hits());
}

/// A link needing a Referer and a Cookie is proxied under `redirect`, the headers reach
/// the upstream, and the log explains it once per mount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_needing_headers_are_proxied_and_logged_once() {
    let h = Harness::with(Opts {
        mounts: vec![MountDef::link("/hdronce", Policy::Redirect, LinkHeaders::RefererCookie)],
        ..Opts::default()
    })
    .await;
    for (i, file) in ["small.bin", "big.bin", "small.bin", "a b 电影.bin"].iter().enumerate() {
        let path = format!("/hdronce/{file}");
        let r = h.get(&path, &format!("Player/{i}")).await;
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert!(header(&r, "set-cookie").is_none());
        assert!(r.bytes().await.unwrap() == h.content(&path), "{path}");
    }
    let hits = h.up.hits();
    assert_eq!(hits.len(), 4);
    for hit in &hits {
        assert_eq!(hit.status, 200, "{hit:?}");
        assert_eq!(hit.header("referer"), Some(DRIVE_REFERER));
        assert_eq!(hit.header("cookie"), Some(DRIVE_COOKIE));
        assert_eq!(hit.header("authorization"), None);
    }
    let log = log_text();
    let lines: Vec<&str> =
        log.lines().filter(|l| l.contains("/hdronce") && l.contains("proxying instead of redirecting")).collect();
    assert_eq!(lines.len(), 1, "the reason should be logged once: {lines:?}");
    assert!(lines[0].contains("Referer") && lines[0].contains("Cookie"), "{}", lines[0]);
}

/// Drivers declare their default policy and the policies they can serve: the local
/// driver proxies by default, and `redirect` on it is a config error naming the mount.
#[test]
fn a_policy_the_driver_cannot_serve_is_a_config_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let state = pandav::state::StateDir::open(&tmp.path().join("state")).unwrap();
    let cfg = |policy: &str| {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[[mounts]]\npath = \"/files\"\ndriver = \"local\"\n{policy}\
             proxy_url = \"http://relay.invalid\"\n[mounts.options]\nroot = \"{}\"\n",
            data.display()
        );
        pandav::config::Config::parse(&text, "t.toml", tmp.path().to_path_buf()).unwrap()
    };
    let table = pandav::cli::build_table(&cfg(""), &state).unwrap();
    assert_eq!(table.mounts()[0].opts.policy, Policy::Proxy, "local defaults to proxy");
    let table = pandav::cli::build_table(&cfg("policy = \"proxy_url\"\n"), &state).unwrap();
    assert_eq!(table.mounts()[0].opts.policy, Policy::ProxyUrl("http://relay.invalid".into()));
    let err = pandav::cli::build_table(&cfg("policy = \"redirect\"\n"), &state).err().expect("redirect on local");
    let msg = format!("{err:#}");
    assert!(msg.contains("/files") && msg.contains("redirect") && msg.contains("local"), "{msg}");
}
