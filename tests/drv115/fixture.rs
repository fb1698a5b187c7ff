//! A tiny local HTTP server for the 115 driver tests: every real host is served under a
//! path prefix (`http://127.0.0.1:PORT/<host>/…`), and each test supplies a handler that
//! answers with bodies taken from the reference. Requests are recorded for assertions.
//! This is not an emulator: it knows only what each test tells it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;

pub const HOSTS: &[&str] = &[
    "webapi.115.com",
    "proapi.115.com",
    "aps.115.com",
    "my.115.com",
    "passportapi.115.com",
    "qrcodeapi.115.com",
    "uplb.115.com",
    "lixian.115.com",
    "appversion.115.com",
    "oss-cn-shenzhen.aliyuncs.com",
];

#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub host: String,
    pub path: String,
    pub query: String,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

fn pairs(s: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(s.as_bytes()).into_owned().collect()
}

impl Req {
    pub fn q(&self, k: &str) -> Option<String> {
        pairs(&self.query).into_iter().find(|(a, _)| a == k).map(|(_, v)| v)
    }
    pub fn form(&self) -> Vec<(String, String)> {
        pairs(&String::from_utf8_lossy(&self.body))
    }
    pub fn f(&self, k: &str) -> Option<String> {
        self.form().into_iter().find(|(a, _)| a == k).map(|(_, v)| v)
    }
    pub fn header(&self, k: &str) -> Option<String> {
        self.headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
    pub fn is(&self, host: &str, path: &str) -> bool {
        self.host == host && self.path == path
    }
}

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(v: Value) -> Resp {
        Resp {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: v.to_string().into_bytes(),
        }
    }
    pub fn raw(status: u16, ctype: &str, body: impl Into<Vec<u8>>) -> Resp {
        Resp { status, headers: vec![("content-type".into(), ctype.into())], body: body.into() }
    }
    /// The WAF throttle page of §8.
    pub fn throttle() -> Resp {
        Resp::raw(
            405,
            "text/html",
            "<!doctypehtml><html><head><meta name=\"data-spm\" content=\"a3c0e\"><title>405</title></head><body>405</body></html>",
        )
    }
    pub fn with_header(mut self, k: &str, v: &str) -> Resp {
        self.headers.push((k.into(), v.into()));
        self
    }
}

pub type Handler = Arc<dyn Fn(&Req) -> Resp + Send + Sync>;

pub struct Fixture {
    pub base: String,
    pub log: Arc<Mutex<Vec<Req>>>,
}

impl Fixture {
    pub async fn start(handler: impl Fn(&Req) -> Resp + Send + Sync + 'static) -> Fixture {
        let handler: Handler = Arc::new(handler);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Vec<Req>>> = Arc::default();
        let log2 = Arc::clone(&log);
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else { return };
                let (h, log) = (Arc::clone(&handler), Arc::clone(&log2));
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (h, log) = (Arc::clone(&h), Arc::clone(&log));
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                            let full = parts.uri.path().to_string();
                            let trimmed = full.trim_start_matches('/');
                            let (host, path) = match trimmed.split_once('/') {
                                Some((h, p)) => (h.to_string(), format!("/{p}")),
                                None => (trimmed.to_string(), "/".to_string()),
                            };
                            let r = Req {
                                method: parts.method.to_string(),
                                host,
                                path,
                                query: parts.uri.query().unwrap_or("").to_string(),
                                headers: parts.headers,
                                body,
                            };
                            log.lock().unwrap().push(r.clone());
                            let out = h(&r);
                            let mut b = hyper::Response::builder().status(out.status);
                            for (k, v) in &out.headers {
                                b = b.header(k.as_str(), v.as_str());
                            }
                            Ok::<_, Infallible>(b.body(Full::new(Bytes::from(out.body))).unwrap())
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(s), svc).await;
                });
            }
        });
        Fixture { base: format!("http://{addr}"), log }
    }

    pub fn endpoints(&self) -> BTreeMap<String, String> {
        HOSTS.iter().map(|h| (h.to_string(), format!("{}/{h}", self.base))).collect()
    }

    pub fn endpoints_toml(&self) -> toml::Table {
        self.endpoints().into_iter().map(|(k, v)| (k, toml::Value::String(v))).collect()
    }

    pub fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self, host: &str, path: &str) -> usize {
        self.requests().iter().filter(|r| r.is(host, path)).count()
    }

    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }
}
