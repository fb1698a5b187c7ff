//! `driver = "115_share"`: a 115 share link as a read-only folder (reference §7).
//!
//! Options (`[mounts.options]`):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `url` | — | a share link (`https://115cdn.com/s/CODE?password=XXXX`, `115.com/s/…`, `share.115.com/…`, or `CODE-XXXX`) |
//! | `share_code` / `receive_code` | — | instead of `url` |
//! | `root_folder_id` | `"0"` | folder of the share shown as the root |
//! | `cookie` | — | a 115 login (or `pandav login 115` for this mount): browsing works without, download links need it for the app endpoint; without one only the web endpoint (≤ 200 MB files) is tried |
//! | `page_size` | 200 | listing page size (kept moderate: big share bursts trigger 115's WAF block) |
//! | `order` / `asc` | `file_name` / `true` | `file_name`, `file_size` or `user_ptime` |
//! | `rate_limit`, `retries`, `retry_base_ms`, `throttle_cooldown_secs`, `endpoints`, `m115_test_modulus`, `app_version` | | as for the `115` driver |
//!
//! An expired, canceled, deleted or wrong-password share makes the mount unhealthy with a
//! message saying which.

pub mod client;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::bail;
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use self::client::ShareRef;
use super::common::client::{self as api115, get, Api, ApiConfig};
use super::common::{auth_login, build_http, build_rsa, de_id};
use crate::drivers::http::Secret;
use crate::drivers::DriverCtx;
use crate::vfs::*;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareOptions {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub share_code: Option<String>,
    #[serde(default)]
    pub receive_code: Option<Secret>,
    #[serde(default = "super::common::root_id", deserialize_with = "de_id")]
    pub root_folder_id: String,
    #[serde(default)]
    pub cookie: Secret,
    #[serde(default = "default_page")]
    pub page_size: u32,
    #[serde(default = "default_order")]
    pub order: String,
    #[serde(default = "super::common::yes")]
    pub asc: bool,
    #[serde(default = "super::common::default_rate")]
    pub rate_limit: f64,
    #[serde(default)]
    pub app_version: Option<String>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub retry_base_ms: Option<u64>,
    #[serde(default)]
    pub throttle_cooldown_secs: Option<u64>,
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
    /// TEST ONLY.
    #[serde(default)]
    pub m115_test_modulus: Option<String>,
}

fn default_page() -> u32 {
    200
}
fn default_order() -> String {
    "file_name".into()
}

/// How long a broken share is answered from memory before 115 is asked again.
const BROKEN_RECHECK: Duration = Duration::from_secs(300);

pub struct ShareDrive {
    api: Api,
    share: ShareRef,
    root_id: String,
    page_size: u32,
    order: String,
    asc: bool,
    broken: Mutex<Option<(String, Instant)>>,
}

impl ShareDrive {
    pub fn new(o: ShareOptions, ctx: &DriverCtx) -> anyhow::Result<ShareDrive> {
        let share = match (&o.url, &o.share_code) {
            (Some(_), Some(_)) => bail!("give url or share_code, not both"),
            (Some(u), None) => {
                let mut s = client::parse_share_url(u).map_err(|e| anyhow::anyhow!("url: {e}"))?;
                if let Some(rc) = &o.receive_code {
                    s.receive_code = rc.expose().trim().to_string();
                }
                s
            }
            (None, Some(c)) => {
                let c = c.trim();
                if c.is_empty() || !c.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    bail!("share_code must be letters and digits");
                }
                ShareRef {
                    share_code: c.to_string(),
                    receive_code: o.receive_code.as_ref().map(|r| r.expose().trim().to_string()).unwrap_or_default(),
                }
            }
            (None, None) => bail!("set url (a share link) or share_code and receive_code"),
        };
        if o.page_size == 0 || o.page_size > 1150 {
            bail!("page_size must be 1..=1150 (keep it moderate: 115 blocks big share bursts)");
        }
        if !["file_name", "file_size", "user_ptime"].contains(&o.order.as_str()) {
            bail!("order {:?} is not one of file_name, file_size, user_ptime", o.order);
        }
        if !o.cookie.is_empty() {
            super::common::cookie::Cookie::parse(o.cookie.expose()).map_err(|e| anyhow::anyhow!("cookie: {e}"))?;
        }
        let http = build_http(o.endpoints.clone(), o.rate_limit, o.retries, o.retry_base_ms, o.throttle_cooldown_secs)?;
        let api = Api::new(ApiConfig {
            http,
            rsa: build_rsa(o.m115_test_modulus.as_deref())?,
            login: auth_login(&ctx.state, o.cookie.expose())?,
            mount_path: ctx.mount_path.clone(),
            app_version: o.app_version.clone(),
        });
        Ok(ShareDrive {
            api,
            share,
            root_id: o.root_folder_id,
            page_size: o.page_size,
            order: o.order,
            asc: o.asc,
            broken: Mutex::new(None),
        })
    }

    /// Fail fast while the share is known to be broken; note when it breaks.
    fn guard(&self) -> DriveResult<()> {
        let b = self.broken.lock().unwrap();
        match b.as_ref() {
            Some((msg, at)) if at.elapsed() < BROKEN_RECHECK => Err(DriveError::AuthLost(msg.clone())),
            _ => Ok(()),
        }
    }

    fn note<T>(&self, r: DriveResult<T>) -> DriveResult<T> {
        match &r {
            Err(DriveError::AuthLost(m)) => *self.broken.lock().unwrap() = Some((m.clone(), Instant::now())),
            Ok(_) => *self.broken.lock().unwrap() = None,
            _ => {}
        }
        r
    }

    async fn list_items(&self, cid: &str) -> DriveResult<Vec<Value>> {
        let mut out = vec![];
        let mut offset = 0u64;
        loop {
            let d = client::snap(&self.api, &self.share, cid, offset, self.page_size, &self.order, self.asc).await?;
            let list = match get(&d, "list") {
                Some(Value::Array(a)) => a.clone(),
                _ => vec![],
            };
            if list.len() > self.page_size as usize {
                return Err(DriveError::upstream(format!(
                    "115 share snap: {} items for a page of {}",
                    list.len(),
                    self.page_size
                )));
            }
            let count = api115::fnum(&d, "count").unwrap_or(0).max(0) as u64;
            let n = list.len() as u64;
            out.extend(list);
            offset += n;
            if n == 0 || offset >= count {
                break;
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Drive for ShareDrive {
    fn kind(&self) -> &'static str {
        "115_share"
    }

    fn caps(&self) -> Caps {
        Caps { read_only: true, links: true, refresh: true, ..Caps::default() }
    }

    /// Check the share now: a gone or locked share is a clear error at start.
    async fn init(&self) -> DriveResult<()> {
        let r = client::snap(&self.api, &self.share, &self.root_id, 0, 1, &self.order, self.asc).await.map(|_| ());
        self.note(r)
    }

    async fn root(&self) -> DriveResult<Entry> {
        Ok(Entry::dir(self.root_id.clone(), "", UNIX_EPOCH))
    }

    async fn list(&self, dir: &Entry) -> DriveResult<Vec<Entry>> {
        self.guard()?;
        let items = self.note(self.list_items(dir.id()).await)?;
        let mut seen = std::collections::HashSet::new();
        Ok(items
            .iter()
            .filter_map(api115::entry_from_item)
            .filter(|e| seen.insert((e.is_dir, e.id().to_string())))
            .collect())
    }

    async fn link(&self, file: &Entry, req: &LinkRequest) -> DriveResult<Link> {
        if file.is_dir {
            return Err(DriveError::IsADirectory);
        }
        self.guard()?;
        // (a) the app endpoint when logged in, then (b) the web endpoint (§7.3).
        let mut first_err = None;
        if self.api.try_creds().is_some() {
            match client::downurl_app(&self.api, &self.share, file.id(), &req.user_agent).await {
                // The URL may be bound to the UA that asked: declare it (proxied when it
                // is not the client's own).
                Ok((url, ua, cookies)) => return Ok(api115::make_link(url, &ua, &cookies)),
                Err(e @ DriveError::AuthLost(_)) => return self.note(Err(e)),
                Err(e) => {
                    tracing::info!(file = %file.name(), "115 share app downurl failed ({e}); trying the web endpoint");
                    first_err = Some(e);
                }
            }
        }
        match client::downurl_web(&self.api, &self.share, file.id(), &req.user_agent).await {
            Ok((url, cookies)) => Ok(api115::make_link(url, &req.user_agent, &cookies)),
            Err(e @ DriveError::AuthLost(_)) => self.note(Err(e)),
            Err(e) => Err(match first_err {
                Some(f) => {
                    DriveError::upstream(format!("115 share download link: app endpoint: {f}; web endpoint: {e}"))
                }
                None => e,
            }),
        }
    }

    /// A broken share is checked again now and then (it may be renewed or fixed).
    async fn refresh(&self) -> DriveResult<Duration> {
        if self.broken.lock().unwrap().is_none() {
            return Ok(Duration::from_secs(600));
        }
        let r = client::snap(&self.api, &self.share, &self.root_id, 0, 1, &self.order, self.asc).await.map(|_| ());
        self.note(r).map(|_| Duration::from_secs(600))
    }
}

/// Registry constructor.
pub fn build(options: toml::Table, ctx: &DriverCtx) -> anyhow::Result<ShareDrive> {
    ShareDrive::new(crate::drivers::parse_options(options)?, ctx)
}

/// The registry entry (`pandav login 115` logs a share mount in for downloads).
pub const ENTRY: crate::drivers::DriverEntry = crate::drivers::DriverEntry {
    name: "115_share",
    about: "a 115 share link as a read-only folder",
    default_policy: crate::vfs::PolicyKind::Redirect,
    policies: crate::drivers::ALL_POLICIES,
    options: &[
        "url",
        "share_code",
        "receive_code",
        "root_folder_id",
        "cookie",
        "page_size",
        "order",
        "asc",
        "rate_limit",
        "app_version",
        "retries",
        "retry_base_ms",
        "throttle_cooldown_secs",
        "endpoints",
        "m115_test_modulus",
    ],
    build: |o, ctx| Ok(std::sync::Arc::new(build(o, ctx)?)),
    login: None,
    refresher: None,
};
