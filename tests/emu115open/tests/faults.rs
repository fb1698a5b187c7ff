//! Fault injection and rate limits (ref §10).

mod common;

use std::time::{Duration, Instant};

use common::*;
use emu115open::{Fault, Options};

#[tokio::test]
async fn status_and_envelope_faults() {
    let t = setup().await;
    let id = t.emu.inject("/proapi.115.com/open/ufile/files", Fault::Status(503));
    let r = t
        .http
        .get(t.url(PRO, "/open/ufile/files"))
        .header("authorization", format!("Bearer {}", t.tok.access_token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    t.emu.remove_fault(id);
    assert_eq!(t.get("/open/ufile/files", &[]).await["state"], true);

    t.emu.inject_times("proapi.115.com/open/user/info", Fault::RateLimit, 2);
    for _ in 0..2 {
        let v = t.get("/open/user/info", &[]).await;
        assert_eq!((v["state"].as_bool(), code(&v), v["errno"].as_i64()), (Some(false), 770004, Some(770004)));
        assert_eq!(v["message"], "访问频率过高");
    }
    assert_eq!(t.get("/open/user/info", &[]).await["state"], true, "only twice");

    t.emu.inject_times("/proapi.115.com/", Fault::QuotaLimit, 1);
    let v = t.get("/open/user/info", &[]).await;
    assert_eq!(code(&v), 406);
    assert!(v["message"].as_str().unwrap().contains("已达到当前访问上限"));

    t.emu.inject_times("/proapi.115.com/", Fault::EmptyFailure, 1);
    let v = t.get("/open/user/info", &[]).await;
    assert_eq!((v["state"].as_bool(), code(&v), v["message"].as_str()), (Some(false), 0, Some("")));

    // passport hosts get the passport shape
    t.emu.inject_times(
        "/passportapi.115.com/open/refreshToken",
        Fault::Envelope { code: 40140121, message: "retry".into() },
        1,
    );
    let v = t.refresh(&t.tok.refresh_token).await;
    assert_eq!((v["state"].as_i64(), code(&v)), (Some(0), 40140121));
    assert_eq!(t.refresh(&t.tok.refresh_token).await["state"], 1, "token not consumed by the fault");
}

#[tokio::test]
async fn reset_and_delay() {
    let t = setup().await;
    t.emu.inject_times("/proapi.115.com/open/user/info", Fault::Reset, 1);
    let r = t
        .http
        .get(t.url(PRO, "/open/user/info"))
        .header("authorization", format!("Bearer {}", t.tok.access_token))
        .send()
        .await;
    assert!(r.is_err(), "connection closed without response");
    t.emu.inject_times("/proapi.115.com/open/user/info", Fault::Delay(Duration::from_millis(200)), 1);
    let start = Instant::now();
    assert_eq!(t.get("/open/user/info", &[]).await["state"], true);
    assert!(start.elapsed() >= Duration::from_millis(190));
    let log = t.emu.request_log();
    assert_eq!(log.iter().filter(|r| r.path == "/open/user/info").count(), 2);
    assert_eq!(log[0].status, 0);
}

async fn download_url(t: &T, data: &[u8]) -> String {
    let fid = t.emu.put_file(t.user, 0, "f.bin", data);
    let pc = t.emu.entry(fid).unwrap().pick_code;
    let v = t
        .http
        .post(t.url(PRO, "/open/ufile/downurl"))
        .form(&[("pick_code", pc.as_str())])
        .header("authorization", format!("Bearer {}", t.tok.access_token))
        .header("user-agent", "UA")
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    v["data"][fid.to_string()]["url"]["url"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn body_faults_on_download() {
    let t = setup().await;
    let data = vec![42u8; 64 * 1024];
    let url = download_url(&t, &data).await;
    let cdn = "/cdnfhnfile.115cdn.net/";

    t.emu.inject_times(cdn, Fault::DropAfter(1000), 1);
    let r = t.http.get(&url).header("user-agent", "UA").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "65536");
    assert!(r.bytes().await.is_err(), "body cut short");

    t.emu.inject_times(cdn, Fault::SlowBody { chunk: 16 * 1024, every: Duration::from_millis(50) }, 1);
    let start = Instant::now();
    let r = t.http.get(&url).header("user-agent", "UA").send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), data.len());
    assert!(start.elapsed() >= Duration::from_millis(140));

    t.emu.inject_times(cdn, Fault::ExpireLink, 1);
    assert_eq!(t.http.get(&url).header("user-agent", "UA").send().await.unwrap().status(), 403);
    assert_eq!(t.http.get(&url).header("user-agent", "UA").send().await.unwrap().status(), 200);
    assert_eq!(t.emu.request_count("cdnfhnfile.115cdn.net"), 4);
}

#[tokio::test]
async fn qps_limit_and_daily_budget() {
    let t = setup_with(Options { qps_limit: Some((2.0, 2.0)), ..Options::default() }).await;
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(code(&t.get("/open/user/info", &[]).await));
    }
    assert_eq!(codes, [0, 0, 770004, 770004]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(code(&t.get("/open/user/info", &[]).await), 0);

    let t = setup_with(Options { daily_budget: Some(3), ..Options::default() }).await;
    for _ in 0..3 {
        assert_eq!(code(&t.get("/open/user/info", &[]).await), 0);
    }
    assert_eq!(code(&t.get("/open/user/info", &[]).await), 406);
    t.emu.advance(Duration::from_secs(86_400));
    let fresh = t.emu.authorize(t.user, emu115open::DEFAULT_APP_ID);
    assert_eq!(code(&t.get_with(&fresh.access_token, "/open/user/info", &[]).await), 0, "new day, new budget");
}

#[tokio::test]
async fn endpoints_and_counters() {
    let t = setup().await;
    let table = t.emu.endpoint_table();
    for h in [
        "passportapi.115.com",
        "qrcodeapi.115.com",
        "proapi.115.com",
        "oss-cn-shenzhen.aliyuncs.com",
        "fhnfile.oss-cn-shenzhen.aliyuncs.com",
        "cdnfhnfile.115cdn.net",
        "api.oplist.org",
    ] {
        assert_eq!(table[h], format!("{}/{h}", t.emu.base_url()));
    }
    t.get("/open/ufile/files", &[]).await;
    t.get("/open/ufile/files", &[]).await;
    assert_eq!(t.emu.request_count("proapi.115.com/open/ufile/files"), 2);
    assert_eq!(t.emu.request_counts()["proapi.115.com/open/ufile/files"], 2);
    t.emu.reset_counters();
    assert_eq!(t.emu.request_count("proapi.115.com/open/ufile/files"), 0);
    let r = t.http.get(format!("{}/nosuchhost.example/x", t.emu.base_url())).send().await.unwrap();
    assert_eq!(r.status(), 404);
}
