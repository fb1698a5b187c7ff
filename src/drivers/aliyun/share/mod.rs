//! `driver = "aliyundrive_share"`: an Aliyun Drive share link, read-only (reference
//! `shared/reference/aliyundrive.md`, family B; AList's "AliyundriveShare").
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `share_id` | — | the share's id, or its URL (`https://www.alipan.com/s/<id>`, also `…/folder/<folder id>`) |
//! | `share_pwd` | `""` | the extraction code (提取码), if the share has one |
//! | `root_folder_id` | `root` | folder of the share shown as the mount's root (`root` = the share's top level) |
//! | `refresh_token` | — | a refresh token of **your own** account (download links need a logged-in viewer, ref §8.4); optional once `pandav login aliyundrive --mount <this mount>` saved one |
//! | `order_by` | `name` | `name`, `created_at`, `updated_at`, `size` |
//! | `order_direction` | `ASC` | `ASC` or `DESC` |
//! | `rate_limit` | `3.9` | share calls per second (OpenList's list rate, ref §8.5); links at most 0.9/s; 0 = unlimited |
//! | `endpoints` | — | host → base URL overrides |
//!
//! The share token (`x-share-token`, ref §8.2) is fetched at start and renewed before its
//! 7200 s run out (and when the service says it expired). A cancelled, expired or
//! forbidden share, or a wrong extraction code, makes the mount unhealthy with that
//! reason; the viewer's login rotates like an `aliyundrive` mount's. Rate limits
//! (`ParamFlowException`, ref §8.5) are backed off, not passed to clients.

pub mod client;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use serde::Deserialize;

use super::common::auth::{self, ConsumerAuth, Tokens};
use crate::drivers::http::{Endpoints, Http, RetryPolicy};
use crate::drivers::DriverCtx;
use crate::vfs::credentials::{self, MountSource};
use crate::vfs::*;

fn root() -> String {
    "root".into()
}
fn by_name() -> String {
    "name".into()
}
fn asc() -> String {
    "ASC".into()
}
fn rate() -> f64 {
    3.9
}

/// `[mounts.options]` of an `aliyundrive_share` mount (table in the module comment).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub share_id: String,
    #[serde(default)]
    pub share_pwd: String,
    #[serde(default = "root")]
    pub root_folder_id: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default = "by_name")]
    pub order_by: String,
    #[serde(default = "asc")]
    pub order_direction: String,
    #[serde(default = "rate")]
    pub rate_limit: f64,
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("share_id", &self.share_id)
            .field("share_pwd", &if self.share_pwd.is_empty() { "" } else { "***" })
            .field("refresh_token", &self.refresh_token.as_deref().map(credentials::redact))
            .field("root_folder_id", &self.root_folder_id)
            .finish_non_exhaustive()
    }
}

/// `share_id` as given, or taken from a share URL; a `/folder/<id>` in the URL is the
/// root folder when none is configured.
pub fn parse_share(share: &str) -> anyhow::Result<(String, Option<String>)> {
    let s = share.trim();
    let (id, folder) = match s.find("/s/") {
        Some(i) => {
            let rest = s[i + 3..].split(['?', '#']).next().unwrap_or_default();
            let mut parts = rest.split('/').filter(|p| !p.is_empty());
            let id = parts.next().unwrap_or_default().to_string();
            let folder = match (parts.next(), parts.next()) {
                (Some("folder"), Some(f)) => Some(f.to_string()),
                _ => None,
            };
            (id, folder)
        }
        None => (s.to_string(), None),
    };
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        anyhow::bail!("share_id must be a share id like 7JQX1FswpQ8 or a share URL (got {share:?})");
    }
    if let Some(f) = &folder {
        if f.is_empty() || f.len() > 64 || !f.bytes().all(|b| b.is_ascii_alphanumeric()) {
            anyhow::bail!("the share URL's folder id {f:?} is not a file id");
        }
    }
    Ok((id, folder))
}

/// One `aliyundrive_share` mount.
pub struct ShareDrive {
    pub(crate) opts: Options,
    pub(crate) mount: String,
    pub(crate) share_id: String,
    pub(crate) root: String,
    /// Listing and share-token calls.
    pub(crate) http: Http,
    /// Download-link calls (ref §8.5: OpenList paces them at 0.9/s).
    pub(crate) links: Http,
    /// The viewer's own login (download links, ref §8.4).
    pub(crate) auth: ConsumerAuth,
    pub(crate) token: client::ShareTokenCell,
    /// The sharer's drive id, from listings (ref §8.3).
    pub(crate) sharer_drive: std::sync::RwLock<String>,
}

/// Retry policy: like the consumer driver's; `ParamFlowException` is a throttle.
fn policy() -> RetryPolicy {
    super::consumer::policy()
}

impl ShareDrive {
    pub fn new(opts: Options, ctx: &DriverCtx) -> anyhow::Result<ShareDrive> {
        let (share_id, folder) = parse_share(&opts.share_id)?;
        let root = match (opts.root_folder_id.trim(), folder) {
            ("root", Some(f)) => f,
            (r, _) => r.to_string(),
        };
        if root.is_empty() || root.len() > 64 || !root.bytes().all(|b| b.is_ascii_alphanumeric()) {
            anyhow::bail!("root_folder_id must be \"root\" or a file id, got {:?}", opts.root_folder_id);
        }
        if opts.share_pwd.chars().count() > 32 {
            anyhow::bail!(
                "share_pwd is the share's extraction code (4 characters), not {} characters",
                opts.share_pwd.len()
            );
        }
        if !["name", "created_at", "updated_at", "size"].contains(&opts.order_by.as_str()) {
            anyhow::bail!("order_by must be name, created_at, updated_at or size (got {:?})", opts.order_by);
        }
        if !["ASC", "DESC"].contains(&opts.order_direction.as_str()) {
            anyhow::bail!("order_direction must be \"ASC\" or \"DESC\" (got {:?})", opts.order_direction);
        }
        if !opts.rate_limit.is_finite() || opts.rate_limit < 0.0 {
            anyhow::bail!("rate_limit must be a number of requests per second, 0 for no limit");
        }
        let ep = Endpoints::new(opts.endpoints.clone())?;
        let secret = opts.refresh_token.clone().unwrap_or_default();
        let client = crate::drivers::http::client();
        let auth = auth::mount_auth(&secret, ctx, &ep, &client)?;
        let http = Http::with_client(client, "Aliyun Drive share", ep.clone(), opts.rate_limit, policy());
        let link_rate = if opts.rate_limit == 0.0 { 0.0 } else { opts.rate_limit.min(0.9) };
        let links = http.sibling(link_rate, policy());
        Ok(ShareDrive {
            auth,
            mount: ctx.mount_path.clone(),
            share_id,
            root,
            http,
            links,
            token: client::ShareTokenCell::default(),
            sharer_drive: std::sync::RwLock::new(String::new()),
            opts,
        })
    }

    /// Shorter waits (tests).
    pub fn set_retry(&mut self, p: RetryPolicy) {
        self.http.retry = p;
        self.links.retry = p;
    }

    pub fn share_id(&self) -> &str {
        &self.share_id
    }

    /// Share tokens obtained so far (tests).
    pub fn share_tokens_obtained(&self) -> u64 {
        self.token.obtained.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The viewer's tokens (tests; never log them).
    pub fn tokens(&self) -> Arc<Tokens> {
        self.auth.tokens()
    }

    /// Start-up: the share token (a wrong code or a dead share shows here), then the
    /// viewer's login and device session.
    async fn start(&self) -> DriveResult<()> {
        self.renew_share_token(self.token.generation()).await?;
        self.auth
            .start(&self.http, || {
                format!("Aliyun Drive share: download links need your own login; {}", auth::relogin_hint(&self.mount))
            })
            .await?;
        tracing::info!(mount = %self.mount, share = %self.share_id, "Aliyun Drive share ready");
        Ok(())
    }
}

#[async_trait]
impl Drive for ShareDrive {
    fn kind(&self) -> &'static str {
        "aliyundrive_share"
    }

    fn caps(&self) -> Caps {
        Caps { read_only: true, links: true, refresh: true, ..Caps::default() }
    }

    async fn init(&self) -> DriveResult<()> {
        auth::start_with_retries(&self.mount, || self.start()).await
    }

    async fn root(&self) -> DriveResult<Entry> {
        Ok(Entry::dir(self.root.clone(), "", UNIX_EPOCH))
    }

    async fn list(&self, dir: &Entry) -> DriveResult<Vec<Entry>> {
        self.list_id(dir.id()).await
    }

    async fn link(&self, file: &Entry, _req: &LinkRequest) -> DriveResult<Link> {
        if file.is_dir {
            return Err(DriveError::IsADirectory);
        }
        self.download_link(file.id()).await
    }

    async fn refresh(&self) -> DriveResult<Duration> {
        if let Some(m) = self.token.dead() {
            return Err(DriveError::AuthLost(m));
        }
        if let Some(m) = self.auth.creds.latched() {
            return Err(DriveError::AuthLost(m));
        }
        if self.token.due() {
            self.renew_share_token(self.token.generation()).await?;
        }
        let (tok, gen) = self.auth.creds.get();
        let tok =
            if !tok.refresh_token.is_empty() && tok.due() { self.auth.creds.refresh(gen).await?.grant } else { tok };
        let user_wait = tok.remaining().saturating_sub(tok.margin()).max(1);
        Ok(Duration::from_secs(user_wait).min(self.token.until_due()).max(Duration::from_secs(1)))
    }
}

/// Build the driver from its options (the registry's constructor).
pub fn build(options: toml::Table, ctx: &DriverCtx) -> anyhow::Result<Arc<dyn Drive>> {
    let opts: Options = crate::drivers::parse_options(options)?;
    Ok(Arc::new(ShareDrive::new(opts, ctx)?))
}

/// The registry's refresher constructor (the viewer's login, in the helper process).
pub fn build_refresher(source: &MountSource) -> anyhow::Result<Box<dyn credentials::ErasedRefresh>> {
    let table: toml::Table = toml::from_str(&source.options)?;
    let opts: Options = crate::drivers::parse_options(table)?;
    Ok(auth::erased_refresher(Endpoints::new(opts.endpoints)?, &source.mount))
}

/// The registry entry. Its login is `pandav login aliyundrive` (the `aliyundrive`
/// entry's flow serves share mounts too).
pub const ENTRY: crate::drivers::DriverEntry = crate::drivers::DriverEntry {
    name: "aliyundrive_share",
    about: "an Aliyun Drive (阿里云盘) share link, read-only (your own login fetches the links)",
    default_policy: PolicyKind::Redirect,
    policies: crate::drivers::ALL_POLICIES,
    options: &[
        "share_id",
        "share_pwd",
        "root_folder_id",
        "refresh_token",
        "order_by",
        "order_direction",
        "rate_limit",
        "endpoints",
    ],
    build,
    login: None,
    refresher: Some(build_refresher),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_ids_and_urls() {
        assert_eq!(parse_share("7JQX1FswpQ8").unwrap(), ("7JQX1FswpQ8".into(), None));
        assert_eq!(parse_share("https://www.alipan.com/s/7JQX1FswpQ8").unwrap(), ("7JQX1FswpQ8".into(), None));
        assert_eq!(
            parse_share(
                "https://www.aliyundrive.com/s/7JQX1FswpQ8/folder/606f010752c5091c6d674d4fae4664c1f6eef8ad?x=1"
            )
            .unwrap(),
            ("7JQX1FswpQ8".into(), Some("606f010752c5091c6d674d4fae4664c1f6eef8ad".into()))
        );
        assert!(parse_share("").is_err());
        assert!(parse_share("../etc").is_err());
        assert!(parse_share("https://www.alipan.com/s/").is_err());
    }
}
