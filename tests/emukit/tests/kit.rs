//! emukit on a toy emulator: one port per host, log, faults, streamed bodies, stop/restart.

use std::sync::Arc;
use std::time::Duration;

use emukit::{Action, BindOptions, Bound, ByteSource, Fault, Reply, Request, Server};
use serde_json::json;

#[derive(Clone, Debug)]
enum Toy {
    Expired,
}

struct Counting;
impl ByteSource for Counting {
    fn read_at(&self, offset: u64, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = ((offset + i as u64) % 251) as u8;
        }
    }
}

async fn toy(opts: BindOptions) -> Server<Toy> {
    let bound = Bound::bind(&["api.example.com", "data.example.com"], &opts).await.unwrap();
    let eps = bound.endpoints();
    bound.serve(move |r: Request, custom: Option<Toy>| {
        let eps = eps.clone();
        async move {
            if let Some(Toy::Expired) = custom {
                return Reply::json_status(401, &json!({"code": "AccessTokenExpired"}));
            }
            match (r.host.as_str(), r.path.as_str()) {
                ("api.example.com", "/echo") => Reply::json(&json!({
                    "path": r.path, "q": r.query_param("a"), "len": r.body.len(),
                    "data": eps["data.example.com"],
                })),
                ("data.example.com", "/blob") => {
                    Reply::source(200, "application/octet-stream", Arc::new(Counting), 10, 1_000_000)
                }
                _ => Reply::text(404, "nope"),
            }
        }
    })
}

#[tokio::test]
async fn hosts_get_their_own_ports_and_log_everything() {
    let s = toy(BindOptions::default()).await;
    let api = s.endpoint("api.example.com");
    let data = s.endpoint("data.example.com");
    assert_ne!(api, data);
    let c = reqwest::Client::new();
    let v: serde_json::Value =
        c.post(format!("{api}/echo?a=%C3%A9")).body("12345").send().await.unwrap().json().await.unwrap();
    assert_eq!(v["q"], "é");
    assert_eq!(v["len"], 5);
    assert_eq!(v["data"], data.as_str());
    // the data host does not answer the api path
    assert_eq!(c.post(format!("{data}/echo")).send().await.unwrap().status(), 404);
    let log = s.log();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].key(), "api.example.com/echo");
    assert_eq!(log[0].body_len, 5);
    assert_eq!(log[0].status, 200);
    assert_eq!(log[0].query_param("a").as_deref(), Some("é"));
    assert_eq!(log[1].status, 404);
    assert_eq!(s.calls("api.example.com/echo"), 1);
    assert_eq!(s.calls_matching("*.example.com/echo"), 2);
}

#[tokio::test]
async fn faults_fire_n_times_in_order() {
    let s = toy(BindOptions::default()).await;
    let api = s.endpoint("api.example.com");
    let c = reqwest::Client::new();
    s.inject(
        "api.example.com/echo",
        Fault::reply(Reply::json_status(429, &json!({"code": "TooManyRequests"})).header("x-retry-after", "1500"))
            .times(1),
    );
    s.inject("api.example.com/echo", Fault::status(503).times(1));
    s.inject("/api.example.com/ec*", Fault::custom(Toy::Expired).times(1));
    let r = c.post(format!("{api}/echo")).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-retry-after"], "1500");
    assert_eq!(c.post(format!("{api}/echo")).send().await.unwrap().status(), 503);
    assert_eq!(c.post(format!("{api}/echo")).send().await.unwrap().status(), 401);
    assert_eq!(c.post(format!("{api}/echo")).send().await.unwrap().status(), 200);
    assert_eq!(s.armed_faults(), 0);
    let faults: Vec<_> = s.log().iter().map(|r| r.fault).collect();
    assert_eq!(faults, vec![Some("reply"), Some("reply"), Some("custom"), None]);

    s.inject("api.example.com/echo", Fault::reset().after(1).times(1));
    assert!(c.post(format!("{api}/echo")).send().await.is_ok());
    assert!(c.post(format!("{api}/echo")).send().await.is_err(), "second call is reset");
    assert_eq!(s.log().last().unwrap().status, 0);
    let id = s.inject("api.example.com/", Fault::new(Action::Delay(Duration::from_millis(1))));
    s.remove_fault(id);
    assert_eq!(s.armed_faults(), 0);
}

#[tokio::test]
async fn streamed_bodies_head_and_body_faults() {
    let s = toy(BindOptions::default()).await;
    let data = s.endpoint("data.example.com");
    let c = reqwest::Client::new();
    let b = c.get(format!("{data}/blob")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(b.len(), 1_000_000);
    assert!(b.iter().enumerate().all(|(i, &x)| x == ((i as u64 + 10) % 251) as u8));
    let h = c.head(format!("{data}/blob")).send().await.unwrap();
    assert_eq!(h.headers()["content-length"], "1000000");

    s.inject("data.example.com/blob", Fault::drop_after(1000).times(1));
    let r = c.get(format!("{data}/blob")).send().await.unwrap();
    assert!(r.bytes().await.is_err(), "body cut after 1000 bytes");
    s.inject("data.example.com/blob", Fault::slow_body(100_000, Duration::from_millis(1)).times(1));
    let b = c.get(format!("{data}/blob")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(b.len(), 1_000_000);
}

#[tokio::test]
async fn stop_releases_ports_for_a_restart_on_the_same_ports() {
    let s = toy(BindOptions::default()).await;
    let api = s.endpoint("api.example.com");
    let ports = s.ports();
    let c = reqwest::Client::new();
    assert!(c.post(format!("{api}/echo")).send().await.is_ok());
    s.stop().await;
    assert!(c.post(format!("{api}/echo")).send().await.is_err(), "stopped server still answers");
    let s2 = toy(BindOptions { ports: ports.clone(), ..Default::default() }).await;
    assert_eq!(s2.ports(), ports);
    assert!(c.post(format!("{api}/echo")).send().await.unwrap().status().is_success());
    // a taken port is an error, not a silent move
    assert!(Bound::bind(&["api.example.com"], &BindOptions { ports, ..Default::default() }).await.is_err());
}

#[tokio::test]
async fn path_prefix_layout_serves_every_host_on_one_port() {
    let bound = Bound::bind(
        &["api.example.com", "data.example.com"],
        &BindOptions { layout: emukit::Layout::PathPrefix, ..Default::default() },
    )
    .await
    .unwrap();
    let base = bound.base_url().unwrap();
    assert_eq!(bound.endpoints()["api.example.com"], format!("{base}/api.example.com"));
    let s: Server<Toy> =
        bound.serve(|r: Request, _| async move { Reply::text(200, &format!("{}|{}", r.host, r.path)) });
    let c = reqwest::Client::new();
    let body = c.get(format!("{}/a%20b", s.endpoint("data.example.com"))).send().await.unwrap().text().await.unwrap();
    assert_eq!(body, "data.example.com|/a b");
    let body = c.get(format!("{base}/Unknown.Host")).send().await.unwrap().text().await.unwrap();
    assert_eq!(body, "unknown.host|/", "unknown hosts reach the handler");
    s.inject("data.example.com/a", Fault::status(503).times(1));
    assert_eq!(c.get(format!("{base}/data.example.com/a")).send().await.unwrap().status(), 503);
    assert_eq!(s.calls("data.example.com/a b"), 1);
}
