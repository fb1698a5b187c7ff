//! §3.1 chrome downurl with m115 (client side inline in tests/common), §3.5 CDN links.

mod common;
use common::*;
use emu115::{Emu115, Fault, Opts};
use serde_json::{json, Value};
use std::time::Duration;

const UID: u64 = 123456789;
const PLAYER_UA: &str = "Mozilla/5.0 TestPlayer/1.0";

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// POST downurl; returns (outer envelope, decoded data or Null, set-cookie).
async fn downurl(
    emu: &Emu115,
    c: &reqwest::Client,
    cookie: &str,
    ua: Option<&str>,
    plain: &str,
) -> (Value, Value, Option<String>) {
    let k: [u8; 16] = rand::random();
    let data = m115_encode(plain.as_bytes(), &k);
    let mut rb = c
        .post(format!("{}/app/chrome/downurl?t={}", emu.endpoint("proapi.115.com"), now_s()))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("data={}", enc(&data)));
    if let Some(ua) = ua {
        rb = rb.header("user-agent", ua);
    }
    let r = rb.send().await.unwrap();
    assert_eq!(r.status(), 200);
    let sc = r.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_string());
    let v: Value = r.json().await.unwrap();
    let dec = match v["data"].as_str() {
        Some(d) if v["state"] == true => serde_json::from_slice(&m115_decode(d, &k)).unwrap(),
        _ => Value::Null,
    };
    (v, dec, sc)
}

async fn fetch(c: &reqwest::Client, url: &str, ua: Option<&str>, range: Option<&str>) -> reqwest::Response {
    let mut rb = c.get(url);
    if let Some(ua) = ua {
        rb = rb.header("user-agent", ua);
    }
    if let Some(r) = range {
        rb = rb.header("range", r);
    }
    rb.send().await.unwrap()
}

fn content(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + 11) as u8).collect()
}

#[tokio::test]
async fn downurl_shape_ua_binding_and_range() {
    let emu = Emu115::start(Opts::default()).await;
    let cookie = emu.add_user(UID, "alice");
    let c = client();
    let data = content(100_000);
    let f = emu.put_file(UID, 0, "movie.mkv", data.clone());
    let pc = emu.pick_code(f).unwrap();
    let (outer, dec, sc) = downurl(&emu, &c, &cookie, Some(PLAYER_UA), &format!(r#"{{"pickcode":"{pc}"}}"#)).await;
    assert_shape(&json!({"state":true,"msg":"","errno":0,"error":"","data":"x"}), &outer, "", &[]);
    let ex: Value = serde_json::from_str(r#"{"file_name":"movie.mkv","file_size":"1073741824","pick_code":"a87dby98esbg8hgqn",
  "sha1":"0123456789ABCDEF0123456789ABCDEF01234567",
  "url":{"client":1,"oss_id":"fhnfile/…","url":"https://cdnfhnfile.115cdn.net/…/movie.mkv?t=1700003600&u=123456789&c=0&f=1&…"}}"#).unwrap();
    let entry = &dec[f.to_string()];
    assert_shape(&ex, entry, "", &[]);
    assert_eq!(entry["file_size"], json!("100000"));
    let sc = sc.expect("downurl sets the <32hex>=<32hex> cookie");
    let pair = sc.split(';').next().unwrap();
    let (a, b) = pair.split_once('=').unwrap();
    assert!(a.len() == 32 && b.len() == 32 && a.chars().chain(b.chars()).all(|c| c.is_ascii_hexdigit()));
    let url = entry["url"]["url"].as_str().unwrap();
    assert!(url.starts_with(&emu.endpoint(emu115::CDN_HOST)));
    assert!(url.contains("&f=1&") && url.contains(&format!("&u={UID}&")));

    // same UA: full body
    let r = fetch(&c, url, Some(PLAYER_UA), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.bytes().await.unwrap().to_vec(), data);
    // another UA, or none: 403 (§3.5)
    assert_eq!(fetch(&c, url, Some("Mozilla/5.0 Other"), None).await.status(), 403);
    assert_eq!(fetch(&c, url, None, None).await.status(), 403);
    // Range
    let r = fetch(&c, url, Some(PLAYER_UA), Some("bytes=10-19")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 10-19/100000");
    assert_eq!(r.bytes().await.unwrap().to_vec(), data[10..20].to_vec());
    let r = fetch(&c, url, Some(PLAYER_UA), Some("bytes=99990-")).await;
    assert_eq!(r.headers()["content-range"], "bytes 99990-99999/100000");
    assert_eq!(r.bytes().await.unwrap().len(), 10);
    let r = fetch(&c, url, Some(PLAYER_UA), Some("bytes=-5")).await;
    assert_eq!(r.bytes().await.unwrap().to_vec(), data[99995..].to_vec());
    let r = fetch(&c, url, Some(PLAYER_UA), Some("bytes=100000-")).await;
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */100000");
    // tampering with the signed query
    assert_eq!(fetch(&c, &url.replace("?t=", "?t=1"), Some(PLAYER_UA), None).await.status(), 403);
    // expiry by clock
    emu.advance_time(Duration::from_secs(3601));
    assert_eq!(fetch(&c, url, Some(PLAYER_UA), None).await.status(), 403);
    assert_eq!(emu.calls(&format!("{}/app/chrome/downurl", "proapi.115.com")), 1);
}

#[tokio::test]
async fn downurl_without_ua_and_link_expiry_now() {
    let emu = Emu115::start(Opts::default()).await;
    let cookie = emu.add_user(UID, "alice");
    let c = client();
    let f = emu.put_file(UID, 0, "a.bin", content(1000));
    let pc = emu.pick_code(f).unwrap();
    let (_, dec, _) = downurl(&emu, &c, &cookie, None, &format!(r#"{{"pickcode":"{pc}","user_id":{UID}}}"#)).await;
    let url = dec[f.to_string()]["url"]["url"].as_str().unwrap().to_string();
    assert_eq!(fetch(&c, &url, None, None).await.status(), 200, "no UA then, no UA now");
    assert_eq!(fetch(&c, &url, Some(PLAYER_UA), None).await.status(), 403);
    emu.expire_links();
    assert_eq!(fetch(&c, &url, None, None).await.status(), 403);
    // the same through fault injection
    let (_, dec, _) = downurl(&emu, &c, &cookie, None, &format!(r#"{{"pickcode":"{pc}"}}"#)).await;
    let url = dec[f.to_string()]["url"]["url"].as_str().unwrap().to_string();
    assert_eq!(fetch(&c, &url, None, None).await.status(), 200);
    emu.inject(emu115::CDN_HOST, Fault::expire_links());
    assert_eq!(fetch(&c, &url, None, None).await.status(), 403);
}

#[tokio::test]
async fn downurl_errors_and_directories() {
    let emu = Emu115::start(Opts { downurl_max_size: Some(500), ..Opts::default() }).await;
    let cookie = emu.add_user(UID, "alice");
    let c = client();
    let d = emu.mkdir(UID, 0, "dir");
    let big = emu.put_file(UID, 0, "big", content(501));
    let small = emu.put_file(UID, 0, "small", content(5));
    let (_, dec, _) =
        downurl(&emu, &c, &cookie, Some(PLAYER_UA), &format!(r#"{{"pickcode":"{}"}}"#, emu.pick_code(d).unwrap()))
            .await;
    assert_eq!(dec[d.to_string()]["url"], json!(false), "url is false for directories");
    let (v, _, _) = downurl(&emu, &c, &cookie, Some(PLAYER_UA), r#"{"pickcode":"zzzzzzzzzzzzzzz"}"#).await;
    assert_eq!((v["state"].clone(), v["errno"].clone()), (json!(false), json!(50003)));
    let (v, _, _) = downurl(&emu, &c, &cookie, Some(PLAYER_UA), r#"{"pickcode":""}"#).await;
    assert_eq!(v["errno"], json!(50001));
    let (v, _, _) =
        downurl(&emu, &c, &cookie, Some(PLAYER_UA), &format!(r#"{{"pickcode":"{}"}}"#, emu.pick_code(big).unwrap()))
            .await;
    assert_eq!(v["errno"], json!(50028));
    // several pick codes at once
    let pcs = format!("{},{}", emu.pick_code(small).unwrap(), emu.pick_code(d).unwrap());
    let (_, dec, _) = downurl(&emu, &c, &cookie, Some(PLAYER_UA), &format!(r#"{{"pickcode":"{pcs}"}}"#)).await;
    assert_eq!(dec.as_object().unwrap().len(), 2);
    // another user's pick code does not exist for me
    let other = emu.add_user(UID + 1, "bob");
    let (v, _, _) =
        downurl(&emu, &c, &other, Some(PLAYER_UA), &format!(r#"{{"pickcode":"{}"}}"#, emu.pick_code(small).unwrap()))
            .await;
    assert_eq!(v["errno"], json!(50003));
    // deleted file
    emu.inject("nothing", Fault::status(500));
    let _ = post_form(
        &c,
        &format!("{}/rb/delete", emu.endpoint("webapi.115.com")),
        &cookie,
        &[("fid[0]", &small.to_string())],
    )
    .await;
    let (v, _, _) =
        downurl(&emu, &c, &cookie, Some(PLAYER_UA), &format!(r#"{{"pickcode":"{}"}}"#, emu.pick_code(small).unwrap()))
            .await;
    assert_eq!(v["errno"], json!(50015));
    // missing `t`
    let r: Value = c
        .post(format!("{}/app/chrome/downurl", emu.endpoint("proapi.115.com")))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("data={}", enc(&m115_encode(b"{}", &[0; 16]))))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["state"], false);
}

#[tokio::test]
async fn cookie_bound_links_f3() {
    let emu = Emu115::start(Opts { link_require_cookie: true, ..Opts::default() }).await;
    let cookie = emu.add_user(UID, "alice");
    let c = client();
    let f = emu.put_file(UID, 0, "a.bin", content(64));
    let (_, dec, sc) =
        downurl(&emu, &c, &cookie, Some(PLAYER_UA), &format!(r#"{{"pickcode":"{}"}}"#, emu.pick_code(f).unwrap()))
            .await;
    let url = dec[f.to_string()]["url"]["url"].as_str().unwrap();
    assert!(url.contains("&f=3&"));
    assert_eq!(fetch(&c, url, Some(PLAYER_UA), None).await.status(), 403);
    let pair = sc.unwrap().split(';').next().unwrap().to_string();
    let r = c.get(url).header("user-agent", PLAYER_UA).header("cookie", pair).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn download_faults_drop_and_slow() {
    let emu = Emu115::start(Opts::default()).await;
    let cookie = emu.add_user(UID, "alice");
    let c = client();
    let data = content(300_000);
    let f = emu.put_file(UID, 0, "a.bin", data.clone());
    let (_, dec, _) =
        downurl(&emu, &c, &cookie, Some(PLAYER_UA), &format!(r#"{{"pickcode":"{}"}}"#, emu.pick_code(f).unwrap()))
            .await;
    let url = dec[f.to_string()]["url"]["url"].as_str().unwrap().to_string();

    emu.inject(&format!("{}/*", emu115::CDN_HOST), Fault::drop_after(70_000).times(1));
    let r = fetch(&c, &url, Some(PLAYER_UA), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "300000");
    let mut got = 0usize;
    let mut r = r;
    let mut failed = false;
    loop {
        match r.chunk().await {
            Ok(Some(b)) => got += b.len(),
            Ok(None) => break,
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "body must fail mid-way");
    assert_eq!(got, 70_000);
    // resume with Range after the drop
    let r = fetch(&c, &url, Some(PLAYER_UA), Some("bytes=70000-")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().to_vec(), data[70_000..].to_vec());

    emu.inject(emu115::CDN_HOST, Fault::slow_body(100_000, Duration::from_millis(60)).times(1));
    let t0 = std::time::Instant::now();
    let r = fetch(&c, &url, Some(PLAYER_UA), None).await;
    assert_eq!(r.bytes().await.unwrap().to_vec(), data);
    assert!(t0.elapsed() >= Duration::from_millis(180));
}
