//! Signed links: `proxy_url` answers 302 to `<relay><prefix><path>?sign=…`, and pandav's
//! own `<path>?sign=` route serves without credentials; tampered, expired, other-path
//! and replayed-after-expiry signatures get 403.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pandav::server::sign::Signer;

use crate::harness::*;

const FILE: &str = "/relay/a b 电影.bin";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Ask pandav (as alice) for the relay URL of `path`; return (pandav URL of the signed
/// route, the sign value as it appears in the query).
async fn relay_link(h: &Harness, path: &str, ua: &str) -> (String, String) {
    let r = h.get(path, ua).await;
    assert_eq!(r.status().as_u16(), 302, "{path}");
    let loc = header(&r, "location").unwrap();
    let relay = RELAY.trim_end_matches('/');
    let expect = format!("{relay}{}{}?sign=", h.prefix, encode(path));
    assert!(loc.starts_with(&expect), "Location {loc}, wanted {expect}…");
    let sign = loc[expect.len()..].to_string();
    assert!(!sign.is_empty() && !sign.contains('&'), "{loc}");
    (format!("{}{}", h.origin, &loc[relay.len()..]), sign)
}

/// GET without credentials (as a relay would).
async fn fetch(h: &Harness, url: &str) -> reqwest::Response {
    h.client.get(url).header("user-agent", "relay/1").send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_links_work_and_refuse_tampering_and_other_paths() {
    let h = Harness::with(Opts { prefix: "/dav", ..Opts::default() }).await;
    let want = h.content(FILE);
    let (url, sign) = relay_link(&h, FILE, "Player/1").await;
    assert_eq!(h.up.hits().len(), 0, "the relay redirect fetched nothing");

    // Valid: whole, ranged, HEAD — no Basic auth needed.
    let r = fetch(&h, &url).await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(header(&r, "set-cookie").is_none());
    assert!(r.bytes().await.unwrap() == want);
    let r = h.client.get(&url).header("range", "bytes=5-14").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 206);
    assert!(r.bytes().await.unwrap() == want[5..15]);
    let r = h.client.head(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(header(&r, "content-length"), Some(want.len().to_string()));
    // The signed route always proxies: the upstream saw pandav, without credentials.
    for hit in h.up.hits() {
        assert_eq!(hit.header("authorization"), None);
        assert_eq!(hit.header("cookie"), None);
    }
    assert_eq!(h.up.body_requests(&h.blob(FILE)).len(), 2);

    // The same route without the signature needs credentials.
    let bare = url.split('?').next().unwrap();
    assert_eq!(fetch(&h, bare).await.status().as_u16(), 401);

    let decoded = percent_encoding::percent_decode_str(&sign).decode_utf8().unwrap().to_string();
    let (tag, exp) = decoded.rsplit_once(':').unwrap();
    let base = url.split("?sign=").next().unwrap().to_string();
    let with_sign = |s: &str| format!("{base}?sign={}", encode(s));

    // Tampered: one character of the MAC, the expiry, or junk.
    let mut t = tag.as_bytes().to_vec();
    t[5] = if t[5] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{}:{exp}", String::from_utf8(t).unwrap());
    let later = format!("{tag}:{}", exp.parse::<u64>().unwrap() + 3600);
    for bad in [tampered.as_str(), later.as_str(), "junk", "", ":", &format!("{tag}:"), tag] {
        let r = fetch(&h, &with_sign(bad)).await;
        assert_eq!(r.status().as_u16(), 403, "sign {bad:?}");
        let r = h.client.head(with_sign(bad)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 403, "HEAD with sign {bad:?}");
    }
    // A signature of another path, and one from another key.
    let other = format!("{}{}/dav/relay/small.bin?sign={}", h.origin, "", encode(&decoded));
    assert_eq!(fetch(&h, &other).await.status().as_u16(), 403, "sign of another path");
    let other_dir = format!("{}/dav/link/a%20b%20%E7%94%B5%E5%BD%B1.bin?sign={}", h.origin, encode(&decoded));
    assert_eq!(fetch(&h, &other_dir).await.status().as_u16(), 403, "same name in another mount");
    let foreign = Signer::new(vec![7; 32]).sign(FILE, 600);
    assert_eq!(fetch(&h, &with_sign(&foreign)).await.status().as_u16(), 403, "another key");
    // Signed with the prefix in the path (the route signs the path without it).
    let with_prefix = Signer::new(SIGN_KEY.to_vec()).sign(&format!("/dav{FILE}"), 600);
    assert_eq!(fetch(&h, &with_sign(&with_prefix)).await.status().as_u16(), 403, "path with the prefix");
    // And a correctly made one for the path works (the key is the server's).
    let ok = Signer::new(SIGN_KEY.to_vec()).sign(FILE, 600);
    assert_eq!(fetch(&h, &with_sign(&ok)).await.status().as_u16(), 200);
    // An expired one, made directly.
    let old = Signer::new(SIGN_KEY.to_vec()).sign_until(FILE, now() - 1);
    assert_eq!(fetch(&h, &with_sign(&old)).await.status().as_u16(), 403, "expired");

    // A signature authorises GET/HEAD only, never a write.
    let r = h.client.put(&url).body("overwrite").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "PUT with a sign");
    let r = h.client.request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), &url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "PROPFIND with a sign");

    // The local driver's files take the same route.
    let (lurl, _) = relay_link(&h, "/local/small.bin", "RelayPlayer/1").await;
    let r = fetch(&h, &lurl).await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.bytes().await.unwrap() == h.content("/local/small.bin"));
    // A name full of URL syntax (#, ?, &, +, %, =, ;) survives signing and routing.
    let odd = "/local/odd #1 ?&+%=; ü.bin";
    let r = h.req("PUT", odd, Some(ALICE), "Plain/1").body("odd bytes").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let (ourl, _) = relay_link(&h, odd, "RelayPlayer/1").await;
    let r = fetch(&h, &ourl).await;
    assert_eq!(r.status().as_u16(), 200, "{ourl}");
    assert_eq!(r.text().await.unwrap(), "odd bytes");
    // A signed path that names nothing is a 404, not a listing or a 500.
    let ghost = Signer::new(SIGN_KEY.to_vec()).sign("/local/ghost.bin", 600);
    let r = fetch(&h, &format!("{}/dav/local/ghost.bin?sign={}", h.origin, encode(&ghost))).await;
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_links_expire_and_cannot_be_replayed() {
    let h = Harness::with(Opts { sign_ttl: "2s", ..Opts::default() }).await;
    let (url, sign) = relay_link(&h, FILE, "Player/1").await;
    let decoded = percent_encoding::percent_decode_str(&sign).decode_utf8().unwrap().to_string();
    let exp: u64 = decoded.rsplit_once(':').unwrap().1.parse().unwrap();
    let issued = now();
    assert!(exp > issued && exp <= issued + 3, "sign_ttl of 2 s, got expiry {exp} at {issued}");

    let r = fetch(&h, &url).await;
    assert_eq!(r.status().as_u16(), 200, "fresh");
    assert!(r.bytes().await.unwrap() == h.content(FILE));

    // Wait until past the expiry, then replay the very same URL.
    let wait = (exp + 1).saturating_sub(now());
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(100)).await;
    let hits = h.up.hits().len();
    let r = fetch(&h, &url).await;
    assert_eq!(r.status().as_u16(), 403, "replay after expiry");
    let r = h.client.head(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403, "HEAD replay after expiry");
    assert_eq!(h.up.hits().len(), hits, "an expired sign reached the upstream");

    // A new redirect hands out a new, working signature.
    let (url2, _) = relay_link(&h, FILE, "Player/1").await;
    assert_ne!(url, url2);
    assert_eq!(fetch(&h, &url2).await.status().as_u16(), 200);
}
