//! Download URLs (ref §5): keyed by file id, UA-bound, expiring, Range.

mod common;

use std::time::Duration;

use common::*;
use emu115open::{Options, UnknownPickCodeStyle};
use serde_json::Value;

const UA: &str = "Mozilla/5.0 OpenList/425.6.30";

async fn link(t: &T, pc: &str, ua: Option<&str>) -> Value {
    let mut rq = t
        .http
        .post(t.url(PRO, "/open/ufile/downurl"))
        .form(&[("pick_code", pc)])
        .header("authorization", format!("Bearer {}", t.tok.access_token));
    if let Some(ua) = ua {
        rq = rq.header("user-agent", ua);
    }
    rq.send().await.unwrap().json().await.unwrap()
}

async fn fetch(t: &T, url: &str, ua: Option<&str>, range: Option<&str>) -> reqwest::Response {
    let mut rq = t.http.get(url);
    if let Some(ua) = ua {
        rq = rq.header("user-agent", ua);
    }
    if let Some(r) = range {
        rq = rq.header("range", r);
    }
    rq.send().await.unwrap()
}

fn content() -> Vec<u8> {
    (0..10_000u32).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn ua_binding_expiry_and_range() {
    let t = setup_with(Options { link_ttl: Duration::from_secs(600), ..Options::default() }).await;
    let data = content();
    let fid = t.emu.put_file(t.user, 0, "a b.mkv", &data);
    let e = t.emu.entry(fid).unwrap();
    let v = link(&t, &e.pick_code, Some(UA)).await;
    let d = &v["data"][fid.to_string()];
    assert_eq!(d["file_size"], 10_000);
    assert_eq!(d["sha1"], e.sha1.clone().unwrap());
    let url = d["url"]["url"].as_str().unwrap().to_string();
    assert!(url.contains("&f=1"), "{url}");
    let t_param: u64 = url.split("t=").nth(1).unwrap().split('&').next().unwrap().parse().unwrap();
    assert_eq!(t_param, t.emu.now_unix() + 600);

    // same UA: full body
    let r = fetch(&t, &url, Some(UA), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.bytes().await.unwrap().to_vec(), data);
    // another UA or none → 403
    assert_eq!(fetch(&t, &url, Some("curl/8"), None).await.status(), 403);
    assert_eq!(fetch(&t, &url, None, None).await.status(), 403);
    // tampered t → 403
    let tampered = url.replace(&format!("t={t_param}"), &format!("t={}", t_param + 1000));
    assert_eq!(fetch(&t, &tampered, Some(UA), None).await.status(), 403);

    // ranges
    let r = fetch(&t, &url, Some(UA), Some("bytes=100-199")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 100-199/10000");
    assert_eq!(r.bytes().await.unwrap().to_vec(), data[100..200].to_vec());
    let r = fetch(&t, &url, Some(UA), Some("bytes=9990-")).await;
    assert_eq!(r.headers()["content-range"], "bytes 9990-9999/10000");
    assert_eq!(r.bytes().await.unwrap().len(), 10);
    let r = fetch(&t, &url, Some(UA), Some("bytes=-5")).await;
    assert_eq!(r.bytes().await.unwrap().to_vec(), data[9995..].to_vec());
    let r = fetch(&t, &url, Some(UA), Some("bytes=9000-20000")).await;
    assert_eq!(r.headers()["content-range"], "bytes 9000-9999/10000");
    let r = fetch(&t, &url, Some(UA), Some("bytes=10000-")).await;
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */10000");

    // HEAD
    let r = t.http.head(&url).header("user-agent", UA).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "10000");

    // expiry by clock
    t.emu.advance(Duration::from_secs(600));
    assert_eq!(fetch(&t, &url, Some(UA), None).await.status(), 403);
}

#[tokio::test]
async fn expire_links_now_and_folder_and_unknown() {
    let t = setup().await;
    let fid = t.emu.put_file(t.user, 0, "f", b"abc");
    let d = t.emu.mkdir(t.user, 0, "dir");
    let (pf, pd) = (t.emu.entry(fid).unwrap().pick_code, t.emu.entry(d).unwrap().pick_code);
    let v = link(&t, &format!("{pf},{pd},nosuchcode"), Some(UA)).await;
    let obj = v["data"].as_object().unwrap();
    assert_eq!(obj.len(), 2);
    assert_eq!(v["data"][d.to_string()]["url"], false, "folder: url falsy");
    let url = v["data"][fid.to_string()]["url"]["url"].as_str().unwrap().to_string();
    assert_eq!(fetch(&t, &url, Some(UA), None).await.status(), 200);
    t.emu.expire_links();
    assert_eq!(fetch(&t, &url, Some(UA), None).await.status(), 403);

    let v = link(&t, "nosuchcode", Some(UA)).await;
    assert_eq!((v["state"].as_bool(), v["data"].clone()), (Some(true), serde_json::json!({})));
    t.emu.configure(|o| o.downurl_unknown_pick_code = UnknownPickCodeStyle::Code50003);
    let v = link(&t, "nosuchcode", Some(UA)).await;
    assert_eq!(code(&v), 50003);
}

#[tokio::test]
async fn empty_ua_links() {
    let t = setup().await;
    let fid = t.emu.put_file(t.user, 0, "f", b"abc");
    let pc = t.emu.entry(fid).unwrap().pick_code;
    // default: bound to "no UA" (stricter)
    let v = link(&t, &pc, None).await;
    let url = v["data"][fid.to_string()]["url"]["url"].as_str().unwrap().to_string();
    assert_eq!(fetch(&t, &url, None, None).await.status(), 200);
    assert_eq!(fetch(&t, &url, Some(UA), None).await.status(), 403);
    // knob: f= (unbound)
    t.emu.configure(|o| o.empty_ua_unbound = true);
    let v = link(&t, &pc, None).await;
    let url = v["data"][fid.to_string()]["url"]["url"].as_str().unwrap().to_string();
    assert!(url.contains("&f=&"), "{url}");
    assert_eq!(fetch(&t, &url, Some(UA), None).await.status(), 200);
}

#[tokio::test]
async fn real_cdn_host_knob() {
    let t = setup_with(Options { cdn_urls_use_real_host: true, ..Options::default() }).await;
    let fid = t.emu.put_file(t.user, 0, "f", b"abc");
    let pc = t.emu.entry(fid).unwrap().pick_code;
    let v = link(&t, &pc, Some(UA)).await;
    let url = v["data"][fid.to_string()]["url"]["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("https://cdnfhnfile.115cdn.net/"));
    let mapped = url.replace("https://cdnfhnfile.115cdn.net", &t.emu.endpoint("cdnfhnfile.115cdn.net"));
    assert_eq!(fetch(&t, &mapped, Some(UA), None).await.bytes().await.unwrap().as_ref(), b"abc");
}
