//! Helpers of the ops tests: a 115 cloud on the emulator, a reqwest client, scraping
//! and parsing the metrics exposition.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use emu115::{Emu115, Opts};

use crate::common::*;

pub const UID: u64 = 123456789;

/// The 115 emulator with one account.
pub struct Cloud {
    pub emu: Arc<Emu115>,
    pub cookie: String,
}

impl Cloud {
    pub async fn new() -> Cloud {
        let emu = Arc::new(Emu115::start(Opts::default()).await);
        let cookie = emu.add_user(UID, "alice");
        Cloud { emu, cookie }
    }

    pub fn endpoints(&self) -> String {
        let mut s = String::from("[mounts.options.endpoints]\n");
        for (h, b) in self.emu.endpoints() {
            s.push_str(&format!("{} = {}\n", toml_str(&h), toml_str(&b)));
        }
        s
    }

    /// The `[mounts.options]` lines of a `115` mount on the emulator's account.
    pub fn options(&self) -> String {
        self.options_with(&self.cookie)
    }

    /// The `[mounts.options]` lines of a `115` mount logged in with `cookie`.
    pub fn options_with(&self, cookie: &str) -> String {
        format!(
            "cookie = {}\nrate_limit = 0\nretry_base_ms = 20\napp_version = \"35.6.0.3\"\nm115_test_modulus = {}\nec115_server_public_key = {}",
            toml_str(cookie),
            toml_str(&self.emu.m115_modulus_hex()),
            toml_str(&self.emu.ec_server_public_hex())
        )
    }

    /// A `115` mount at `path` (`extra`: mount-level lines).
    pub fn p115(&self, cfg: ConfigBuilder, path: &str, extra: &str) -> ConfigBuilder {
        cfg.mount(path, "115", extra, &self.options(), &self.endpoints())
    }
}

/// Start `pandav serve` off the runtime thread (emulators keep serving meanwhile).
pub async fn serve(dir: &Path, text: String) -> Server {
    serve_env(dir, text, vec![]).await
}

pub async fn serve_env(dir: &Path, text: String, env: Vec<(&'static str, String)>) -> Server {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let config = dir.join("pandav.toml");
        std::fs::write(&config, text).unwrap();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Server::start_file_env(&config, &dir, &env)
    })
    .await
    .unwrap()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Wait until every mount reports something other than "starting" in `/-/health`
/// (asked with `auth`, if any); returns the mounts' entries.
pub async fn settled(base: &str, auth: Option<&str>) -> Vec<serde_json::Value> {
    settled_counted(base, auth).await.0
}

/// [`settled`], and how many health requests it made.
pub async fn settled_counted(base: &str, auth: Option<&str>) -> (Vec<serde_json::Value>, usize) {
    let t = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let mut rb = http().get(format!("{base}/-/health"));
        if let Some(a) = auth {
            rb = rb.header("Authorization", a);
        }
        if let Ok(r) = rb.send().await {
            if let Ok(v) = r.json::<serde_json::Value>().await {
                if let Some(ms) = v["mounts"].as_array() {
                    if ms.iter().all(|m| m["message"] != "starting") {
                        return (ms.clone(), n);
                    }
                }
            }
        }
        assert!(t.elapsed() < Duration::from_secs(60), "mounts never finished starting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A parsed exposition: `name{label="value",…}` (labels sorted) → value.
pub type Samples = BTreeMap<String, f64>;

/// Parse the Prometheus text format (what a scraper reads), independently of the crate
/// that wrote it.
pub fn parse_exposition(text: &str) -> Samples {
    let mut out = Samples::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let key = match series.split_once('{') {
            None => series.to_string(),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("bad labels in {line:?}"));
                let mut labels: Vec<String> = vec![];
                let mut cur = String::new();
                let mut in_q = false;
                let mut esc = false;
                for c in body.chars() {
                    match c {
                        _ if esc => {
                            cur.push(c);
                            esc = false;
                        }
                        '\\' => {
                            cur.push(c);
                            esc = true;
                        }
                        '"' => {
                            cur.push(c);
                            in_q = !in_q;
                        }
                        ',' if !in_q => labels.push(std::mem::take(&mut cur)),
                        _ => cur.push(c),
                    }
                }
                if !cur.is_empty() {
                    labels.push(cur);
                }
                labels.sort();
                format!("{name}{{{}}}", labels.join(","))
            }
        };
        assert!(out.insert(key.clone(), value).is_none(), "series {key} twice");
    }
    out
}

/// `name{a="x",b="y"}` with the labels in the order given (sorted here).
pub fn series(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let mut l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    l.sort();
    format!("{name}{{{}}}", l.join(","))
}

/// GET `/-/metrics` with optional credentials: (status, body).
pub async fn scrape_raw(base: &str, auth: Option<&str>) -> (u16, String) {
    let mut rb = http().get(format!("{base}/-/metrics"));
    if let Some(a) = auth {
        rb = rb.header("Authorization", a);
    }
    let r = rb.send().await.unwrap();
    let st = r.status().as_u16();
    (st, r.text().await.unwrap())
}

pub async fn scrape(base: &str, auth: Option<&str>) -> Samples {
    let (st, body) = scrape_raw(base, auth).await;
    assert_eq!(st, 200, "scrape: {body}");
    parse_exposition(&body)
}

/// `after - before` of one series (absent = 0).
pub fn delta(before: &Samples, after: &Samples, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

/// Every series of `name` whose value moved between the scrapes, with the change.
pub fn moved(before: &Samples, after: &Samples, name: &str) -> BTreeMap<String, f64> {
    let prefix = format!("{name}{{");
    after
        .keys()
        .chain(before.keys())
        .filter(|k| k.starts_with(&prefix) || *k == name)
        .map(|k| (k.clone(), delta(before, after, k)))
        .filter(|(_, d)| *d != 0.0)
        .collect()
}
