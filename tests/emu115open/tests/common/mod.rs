//! Shared helpers for the fidelity tests: a plain reqwest client talking to the emulator
//! the way the reference describes the wire (form bodies, Bearer header, …).
#![allow(dead_code)]

use emu115open::{Emu115Open, Options, Tokens, DEFAULT_APP_ID};
use serde_json::Value;

pub const PRO: &str = "proapi.115.com";
pub const PASS: &str = "passportapi.115.com";
pub const QR: &str = "qrcodeapi.115.com";

pub fn client() -> reqwest::Client {
    // reqwest sends no User-Agent unless told to.
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

pub struct T {
    pub emu: Emu115Open,
    pub http: reqwest::Client,
    pub user: u64,
    pub tok: Tokens,
}

pub async fn setup_with(opts: Options) -> T {
    let emu = Emu115Open::start(opts).await;
    let user = emu.add_user_named("alice");
    let tok = emu.authorize(user, DEFAULT_APP_ID);
    T { emu, http: client(), user, tok }
}

pub async fn setup() -> T {
    setup_with(Options::default()).await
}

impl T {
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("{}{}", self.emu.endpoint(host), path)
    }

    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        self.get_with(&self.tok.access_token.clone(), path, query).await
    }

    pub async fn get_with(&self, token: &str, path: &str, query: &[(&str, &str)]) -> Value {
        let r = self
            .http
            .get(self.url(PRO, path))
            .query(query)
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Value {
        self.post_with(&self.tok.access_token.clone(), path, form).await
    }

    pub async fn post_with(&self, token: &str, path: &str, form: &[(&str, &str)]) -> Value {
        let r = self
            .http
            .post(self.url(PRO, path))
            .form(form)
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "POST {path}");
        r.json().await.unwrap()
    }

    pub async fn passport(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let r = self.http.post(self.url(PASS, path)).form(form).send().await.unwrap();
        assert_eq!(r.status(), 200, "POST {path}");
        r.json().await.unwrap()
    }

    pub async fn refresh(&self, refresh_token: &str) -> Value {
        self.passport("/open/refreshToken", &[("refresh_token", refresh_token)]).await
    }

    /// List a whole directory with the given page size (OpenList's loop, ref §4.1).
    pub async fn list_all(&self, cid: u64, page: usize) -> Vec<Value> {
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let cid_s = cid.to_string();
            let (l, o) = (page.to_string(), offset.to_string());
            let v = self
                .get(
                    "/open/ufile/files",
                    &[("cid", &cid_s), ("limit", &l), ("offset", &o), ("show_dir", "1"), ("custom_order", "0")],
                )
                .await;
            assert_eq!(v["state"], true, "{v}");
            let items = v["data"].as_array().unwrap().clone();
            let count = v["count"].as_u64().unwrap() as usize;
            let got = items.len();
            out.extend(items);
            offset += v["limit"].as_u64().unwrap() as usize;
            if out.len() >= count || got == 0 {
                break;
            }
        }
        out
    }
}

/// `code` of an envelope.
pub fn code(v: &Value) -> i64 {
    v["code"].as_i64().unwrap_or(-1)
}
