//! `driver = "aliyundrive"`: Aliyun Drive through the consumer API (reference
//! `shared/reference/aliyundrive.md`, family A; AList's "Aliyundrive").
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `refresh_token` | — | a refresh token of the web or mobile app (optional once `pandav login aliyundrive` saved one); rotated tokens live in the mount's state file, this value is never written back |
//! | `root_folder_id` | `root` | folder shown as the mount's root |
//! | `drive` | `resource` | `resource` (资源库), `backup` (备份盘) or `default` (the account's default drive), ref §4.1 |
//! | `order_by` | `name` | listing order: `name`, `created_at`, `updated_at`, `size` |
//! | `order_direction` | `ASC` | `ASC` or `DESC` |
//! | `rapid_upload` | `true` | store known content by hash without sending it (ref §7.4) |
//! | `internal_upload` | `false` | send parts to Aliyun's Beijing-internal OSS host (only for servers inside Aliyun's cn-beijing region) |
//! | `delete` | `trash` | `trash` (recycle bin) or `permanent` |
//! | `rate_limit` | `5` | API requests per second (burst 1); 0 = unlimited |
//! | `part_size` | 10 MiB | upload part size in bytes (≥ 102400; grown to stay within 10 000 parts) |
//! | `endpoints` | — | host → base URL overrides (`api.alipan.com`, `auth.alipan.com`, `passport.alipan.com`, `cn-beijing-data.aliyundrive.net`, the internal OSS host) |
//!
//! Every call carries the device signature (ref §3); the refresh token is single-use
//! and every rotation goes through the kit's credentials (saved before use, by one
//! writer; a dead login latches the mount with a `pandav login aliyundrive` hint).
//! Links of web-kind tokens are bound to a Referer (ref §2.2): they carry it in
//! `Link::headers`, so a `redirect` mount proxies them; mobile-kind links redirect.

pub mod client;
pub mod login;
pub mod upload;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use dashmap::DashMap;
use serde::Deserialize;

use super::common::auth::{self, ConsumerAuth, Tokens};
use super::common::hash::MIN_PART_SIZE;
use crate::drivers::http::{Endpoints, Http, RetryPolicy};
use crate::drivers::DriverCtx;
use crate::vfs::credentials::{self, MountSource};
use crate::vfs::*;

fn root() -> String {
    "root".into()
}
fn resource() -> String {
    "resource".into()
}
fn by_name() -> String {
    "name".into()
}
fn asc() -> String {
    "ASC".into()
}
fn yes() -> bool {
    true
}
fn trash() -> String {
    "trash".into()
}
fn rate() -> f64 {
    5.0
}

/// `[mounts.options]` of an `aliyundrive` mount (table in the module comment).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default = "root")]
    pub root_folder_id: String,
    #[serde(default = "resource")]
    pub drive: String,
    #[serde(default = "by_name")]
    pub order_by: String,
    #[serde(default = "asc")]
    pub order_direction: String,
    #[serde(default = "yes")]
    pub rapid_upload: bool,
    #[serde(default)]
    pub internal_upload: bool,
    #[serde(default = "trash")]
    pub delete: String,
    #[serde(default = "rate")]
    pub rate_limit: f64,
    #[serde(default)]
    pub part_size: Option<u64>,
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("refresh_token", &self.refresh_token.as_deref().map(credentials::redact))
            .field("root_folder_id", &self.root_folder_id)
            .field("drive", &self.drive)
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

const ORDER_BY: &[&str] = &["name", "created_at", "updated_at", "size"];

impl Options {
    fn check(&self) -> anyhow::Result<()> {
        if !["resource", "backup", "default"].contains(&self.drive.as_str()) {
            anyhow::bail!("drive must be \"resource\", \"backup\" or \"default\" (got {:?})", self.drive);
        }
        if !ORDER_BY.contains(&self.order_by.as_str()) {
            anyhow::bail!("order_by {:?} is not one of {}", self.order_by, ORDER_BY.join(", "));
        }
        if !["ASC", "DESC"].contains(&self.order_direction.as_str()) {
            anyhow::bail!("order_direction must be \"ASC\" or \"DESC\" (got {:?})", self.order_direction);
        }
        if !["trash", "permanent"].contains(&self.delete.as_str()) {
            anyhow::bail!("delete must be \"trash\" or \"permanent\" (got {:?})", self.delete);
        }
        if !self.rate_limit.is_finite() || self.rate_limit < 0.0 {
            anyhow::bail!("rate_limit must be a number of requests per second, 0 for no limit");
        }
        let id = self.root_folder_id.trim();
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            anyhow::bail!(
                "root_folder_id must be \"root\" or a file id (40 hex digits), got {:?}",
                self.root_folder_id
            );
        }
        if let Some(p) = self.part_size {
            if p < MIN_PART_SIZE {
                anyhow::bail!("part_size must be at least {MIN_PART_SIZE} bytes (the service's smallest part)");
            }
        }
        Ok(())
    }
}

/// One `aliyundrive` mount.
pub struct AliyunDrive {
    pub(crate) opts: Options,
    pub(crate) mount: String,
    /// Paced API calls.
    pub(crate) http: Http,
    /// Part uploads (same client, unpaced).
    pub(crate) parts: Http,
    pub(crate) auth: ConsumerAuth,
    /// The drive served (resolved at start from `drive`, ref §4.1).
    pub(crate) drive_id: std::sync::RwLock<String>,
    /// Path from the drive's root (`/a/b`) of folders and files seen, for get_by_path.
    pub(crate) paths: DashMap<String, String>,
    /// Parent id of entries seen.
    pub(crate) parents: DashMap<String, String>,
    /// Entries of a folder at its last listing (get_by_path pays off for big ones).
    pub(crate) sizes: DashMap<String, usize>,
}

/// The API's retry policy: transient trouble 4 tries from 1 s; throttling honours
/// `x-retry-after` / `Retry-After`, else a doubling wait, and every call of the mount
/// waits with it (ref §10.2: back off, ~5 attempts).
pub fn policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base: Duration::from_millis(1000),
        max: Duration::from_secs(20),
        throttle_attempts: 5,
        throttle_base: Duration::from_millis(1000),
        cooldown: Duration::from_secs(30),
        pause_wait: Duration::from_secs(20),
        throttled_retry_after: Duration::from_secs(30),
    }
}

impl AliyunDrive {
    pub fn new(opts: Options, ctx: &DriverCtx) -> anyhow::Result<AliyunDrive> {
        opts.check()?;
        let ep = Endpoints::new(opts.endpoints.clone())?;
        let secret = opts.refresh_token.clone().unwrap_or_default();
        let client = crate::drivers::http::client();
        let auth = auth::mount_auth(&secret, ctx, &ep, &client)?;
        let http = Http::with_client(client, "Aliyun Drive", ep.clone(), opts.rate_limit, policy());
        let parts = http.sibling(0.0, RetryPolicy { attempts: 3, ..policy() });
        Ok(AliyunDrive {
            auth,
            mount: ctx.mount_path.clone(),
            http,
            parts,
            drive_id: std::sync::RwLock::new(String::new()),
            paths: DashMap::new(),
            parents: DashMap::new(),
            sizes: DashMap::new(),
            opts,
        })
    }

    /// Shorter waits (tests).
    pub fn set_retry(&mut self, p: RetryPolicy) {
        self.http.retry = p;
        self.parts.retry = RetryPolicy { attempts: p.attempts.min(3), ..p };
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The tokens in force (tests and login; never log them).
    pub fn tokens(&self) -> Arc<Tokens> {
        self.auth.tokens()
    }

    pub fn auth(&self) -> &ConsumerAuth {
        &self.auth
    }

    /// The drive served (empty before `init`).
    pub fn drive_id(&self) -> String {
        self.drive_id.read().unwrap().clone()
    }

    fn no_token_message(&self) -> String {
        format!("Aliyun Drive: no refresh token; {}", auth::relogin_hint(&self.mount))
    }

    /// Start-up: tokens (a config token of unknown age is refreshed at once, which also
    /// moves the rotation into the state file), the user id, a device session, the drive
    /// id, and the root folder.
    async fn start(&self) -> DriveResult<()> {
        self.auth.start(&self.http, || self.no_token_message()).await?;
        let u = auth::user_get(&self.auth, &self.http).await?;
        let chosen = match self.opts.drive.as_str() {
            "resource" => u.resource_drive_id.clone(),
            "backup" => u.backup_drive_id.clone(),
            _ => u.default_drive_id.clone(),
        };
        let id = if chosen.is_empty() {
            let fallback = if u.default_drive_id.is_empty() {
                self.auth.tokens().default_drive_id.clone()
            } else {
                u.default_drive_id.clone()
            };
            if fallback.is_empty() {
                return Err(DriveError::upstream("Aliyun Drive: the account has no drive id"));
            }
            tracing::warn!(mount = %self.mount, drive = %self.opts.drive, "the account has no such drive; serving the default drive");
            fallback
        } else {
            chosen
        };
        tracing::info!(mount = %self.mount, drive = %self.opts.drive, drive_id = %id, "Aliyun Drive ready");
        *self.drive_id.write().unwrap() = id;
        let root = self.opts.root_folder_id.clone();
        if root == "root" {
            self.paths.insert(root, String::new());
        } else {
            let item = self.get_file(&root).await?;
            if !item.is_dir() {
                return Err(DriveError::NotADirectory);
            }
            if let Some(p) = self.path_of_folder(&item).await {
                self.paths.insert(root, p);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Drive for AliyunDrive {
    fn kind(&self) -> &'static str {
        "aliyundrive"
    }

    fn rapid(&self) -> Option<&dyn RapidPut> {
        Some(self)
    }

    fn caps(&self) -> Caps {
        super::common::writable_caps(self.opts.rapid_upload)
    }

    async fn init(&self) -> DriveResult<()> {
        auth::start_with_retries(&self.mount, || self.start()).await
    }

    async fn root(&self) -> DriveResult<Entry> {
        Ok(Entry::dir(self.opts.root_folder_id.clone(), "", UNIX_EPOCH))
    }

    async fn list(&self, dir: &Entry) -> DriveResult<Vec<Entry>> {
        self.list_id(dir.id()).await
    }

    async fn lookup(&self, parent: &Entry, name: &str) -> DriveResult<Option<Entry>> {
        self.lookup_child(parent, name).await
    }

    async fn link(&self, file: &Entry, _req: &LinkRequest) -> DriveResult<Link> {
        if file.is_dir {
            return Err(DriveError::IsADirectory);
        }
        self.download_link(file.id()).await
    }

    async fn mkdir(&self, parent: &Entry, name: &str) -> DriveResult<Entry> {
        mount::check_name(name)?;
        self.create_folder(parent, name).await
    }

    async fn move_to(&self, entry: &Entry, new_parent: &Entry, new_name: &str) -> DriveResult<Entry> {
        mount::check_name(new_name)?;
        if entry.id() == self.opts.root_folder_id || entry.id() == "root" {
            return Err(DriveError::Forbidden("cannot move the mount's root".into()));
        }
        self.move_entry(entry, new_parent, new_name).await
    }

    async fn copy_to(&self, entry: &Entry, new_parent: &Entry, new_name: &str) -> DriveResult<Entry> {
        mount::check_name(new_name)?;
        self.copy_entry(entry, new_parent, new_name).await
    }

    async fn remove(&self, entry: &Entry) -> DriveResult<()> {
        if entry.id() == self.opts.root_folder_id || entry.id() == "root" {
            return Err(DriveError::Forbidden("cannot remove the mount's root".into()));
        }
        self.remove_id(entry.id(), self.opts.delete == "permanent").await
    }

    async fn put(&self, parent: &Entry, name: &str, up: Upload) -> DriveResult<Entry> {
        mount::check_name(name)?;
        let item = self.upload(parent, name, &up).await?;
        let e = item.to_entry();
        self.seen(parent.id(), &e);
        Ok(e)
    }

    async fn quota(&self) -> DriveResult<Option<Quota>> {
        self.capacity().await.map(Some)
    }

    async fn refresh(&self) -> DriveResult<Duration> {
        if let Some(m) = self.auth.creds.latched() {
            return Err(DriveError::AuthLost(m));
        }
        let (tok, gen) = self.auth.creds.get();
        if tok.refresh_token.is_empty() {
            return Err(self.auth.creds.lose(self.no_token_message()));
        }
        let tok = if tok.due() { self.auth.creds.refresh(gen).await?.grant } else { tok };
        Ok(Duration::from_secs(tok.remaining().saturating_sub(tok.margin()).max(1)))
    }
}

/// Build the driver from its options (the registry's constructor).
pub fn build(options: toml::Table, ctx: &DriverCtx) -> anyhow::Result<Arc<dyn Drive>> {
    let opts: Options = crate::drivers::parse_options(options)?;
    Ok(Arc::new(AliyunDrive::new(opts, ctx)?))
}

/// The registry's refresher constructor (the `pandav __refresh` helper process).
pub fn build_refresher(source: &MountSource) -> anyhow::Result<Box<dyn credentials::ErasedRefresh>> {
    let table: toml::Table = toml::from_str(&source.options)?;
    let opts: Options = crate::drivers::parse_options(table)?;
    Ok(auth::erased_refresher(Endpoints::new(opts.endpoints)?, &source.mount))
}

/// The registry entry.
pub const ENTRY: crate::drivers::DriverEntry = crate::drivers::DriverEntry {
    name: "aliyundrive",
    about: "Aliyun Drive (阿里云盘) through the consumer API (a refresh token that rotates)",
    default_policy: PolicyKind::Redirect,
    policies: crate::drivers::ALL_POLICIES,
    options: &[
        "refresh_token",
        "root_folder_id",
        "drive",
        "order_by",
        "order_direction",
        "rapid_upload",
        "internal_upload",
        "delete",
        "rate_limit",
        "part_size",
        "endpoints",
    ],
    build,
    login: Some(crate::drivers::LoginEntry {
        command: "aliyundrive",
        about: "Aliyun Drive: scan a QR code with the Aliyun Drive app (saves a mobile-kind token)",
        run: login::login_entry,
    }),
    refresher: Some(build_refresher),
};

/// Now, for entries pandav makes.
pub(crate) fn now() -> SystemTime {
    SystemTime::now()
}
