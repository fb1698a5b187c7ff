//! # emualiyun — emulator of Aliyun Drive (阿里云盘 / alipan)
//!
//! Written from the reference `shared/reference/aliyundrive.md` ("ref §x") and its vectors,
//! never from a driver. It serves, each real host on its own 127.0.0.1 port (emukit):
//!
//! | host(s) | what |
//! |---|---|
//! | `api.aliyundrive.com`, `api.alipan.com` | consumer API (A) and share API (B), device sessions |
//! | `auth.aliyundrive.com`, `auth.alipan.com` | `/v2/account/token` (§2.1) |
//! | `user.aliyundrive.com` | `/v2/user/get` (§4.1) |
//! | `openapi.alipan.com`, `openapi.aliyundrive.com` | Open platform (C): OAuth, QR, files (§2.3–2.6) |
//! | `passport.aliyundrive.com`, `passport.alipan.com` | consumer QR login (§2.6) |
//! | `cn-beijing-data.aliyundrive.net` | data host: downloads (Range, expiry, Referer binding) and part uploads |
//! | [`INTERNAL_DATA_HOST`] | the Beijing-internal OSS host (same part URLs) |
//! | `api.oplist.org`, `api.nn.ci`, `aliyundrive-oauth.messense.me`, `api.tickstep.com` | "online API" token brokers (§2.4) |
//!
//! [`EmuAliyun::endpoints`] maps each host to its base URL (`http://127.0.0.1:PORT`), for the
//! driver's `endpoints` option. URLs the emulator hands out (downloads, part uploads, QR codes)
//! already point at the emulator.
//!
//! ```ignore
//! let emu = EmuAliyun::start(&dir, Options::default()).await?;    // state persisted in `dir`
//! let alice = emu.add_user("alice");
//! let rt = emu.issue_refresh_token(&alice.user_id, TokenKind::Mobile);
//! let movies = emu.mkdir(&alice.resource_drive_id, "root", "Movies");
//! emu.put_file(&alice.resource_drive_id, &movies, "a.mkv", b"...".to_vec());
//! let sha = emu.add_known_pattern(7, 1 << 30);                    // 1 GiB rapid-upload hit
//! emu.inject("api.alipan.com/adrive/v3/file/list", Fault::custom(AliFault::TooManyRequests { retry_after_ms: Some(1000) }).times(1));
//! emu.advance(Duration::from_secs(7200));                         // access tokens expire
//! emu.stop().await;                                               // state saved; start again on `dir`
//! ```
//!
//! See `README.md` for what is checked strictly and how uncertain points of the reference are
//! emulated.

mod auth;
mod common;
mod consumer;
mod content;
mod crypto;
mod data;
mod files;
mod open;
mod share;
mod state;
mod upload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
pub use emukit::{Action, Fault, FaultId, LoggedRequest, Reply};
use emukit::{BindOptions, Bound, Clock, RateLimiter, Server};

pub use content::{Pattern, PatternReader};
pub use state::{ShareState, TokenKind};

/// Consumer API hosts (aliases).
pub const API_HOSTS: [&str; 2] = ["api.aliyundrive.com", "api.alipan.com"];
pub const AUTH_HOSTS: [&str; 2] = ["auth.aliyundrive.com", "auth.alipan.com"];
pub const USER_HOST: &str = "user.aliyundrive.com";
pub const OPEN_HOSTS: [&str; 2] = ["openapi.alipan.com", "openapi.aliyundrive.com"];
pub const PASSPORT_HOSTS: [&str; 2] = ["passport.aliyundrive.com", "passport.alipan.com"];
pub const DATA_HOST: &str = "cn-beijing-data.aliyundrive.net";
pub const INTERNAL_DATA_HOST: &str = "ccp-bj29-bj-1592982087.oss-cn-beijing-internal.aliyuncs.com";
/// OpenList broker (`GET /alicloud/renewapi`).
pub const OPENLIST_BROKER_HOST: &str = "api.oplist.org";
/// AList broker (`POST /alist/ali_open/token`).
pub const ALIST_BROKER_HOST: &str = "api.nn.ci";
/// messense broker (`POST /oauth/access_token`).
pub const MESSENSE_BROKER_HOST: &str = "aliyundrive-oauth.messense.me";
/// tickstep broker (`GET /auth/tickstep/aliyunpan/token/openapi/<ticket>/refresh`).
pub const TICKSTEP_BROKER_HOST: &str = "api.tickstep.com";

/// Every emulated host.
pub fn all_hosts() -> Vec<&'static str> {
    let mut v: Vec<&str> = Vec::new();
    v.extend(API_HOSTS);
    v.extend(AUTH_HOSTS);
    v.push(USER_HOST);
    v.extend(OPEN_HOSTS);
    v.extend(PASSPORT_HOSTS);
    v.push(DATA_HOST);
    v.push(INTERNAL_DATA_HOST);
    v.extend([OPENLIST_BROKER_HOST, ALIST_BROKER_HOST, MESSENSE_BROKER_HOST, TICKSTEP_BROKER_HOST]);
    v
}

/// The app id the broker hosts use for the tokens they hand out (§2.4).
pub const BROKER_CLIENT_ID: &str = "b0e5a1f3c9d24e7b8a6f1c2d3e4f5a6b";
pub(crate) const BROKER_SECRET: &str = "emulated-broker-secret";

/// App ids accepted in the `x-signature` message by default (ref §3.1, §3.6).
pub const WEB_APP_ID: &str = "5dde4e1bdf9e4966b387ba58f4b3fdc3";
pub const TICKSTEP_APP_ID: &str = "25dzX3vbYqktVxyX";

/// `x-signature` checking (ref §3.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureMode {
    /// No check at all.
    Off,
    /// Headers present and a session registered for `(user, x-device-id)`.
    Lenient,
    /// Full ECDSA verification, low-S, app id from [`Options::app_ids`], nonce 0.
    Strict,
}

/// Rates of the open API per (user, app), requests per second (ref §10.1).
#[derive(Clone, Copy, Debug)]
pub struct OpenRates {
    pub list: f64,
    pub download_url: f64,
    pub other: f64,
    /// Bucket size (the real burst is unknown; 1 is the strict reading).
    pub burst: f64,
}

/// Emulator knobs. Defaults follow the reference; where it is uncertain, the stricter reading.
#[derive(Clone, Debug)]
pub struct Options {
    /// Access-token lifetime, all families (ref §2.1/§2.3: 7200 s).
    pub access_token_ttl: Duration,
    /// A consumer refresh token dies when it is used (ref §2.1 knob `consumer_rt_single_use`).
    pub consumer_rt_single_use: bool,
    /// Consumer refresh-token lifetime ("months", [unconfirmed]).
    pub consumer_rt_ttl: Duration,
    /// Open refresh-token lifetime (ref §2.3: 90 days).
    pub open_rt_ttl: Duration,
    /// HTTP status of `RefreshTokenInvalid` on the open token endpoint (ref §2.3: 400/401).
    pub open_refresh_invalid_status: u16,
    pub signature: SignatureMode,
    /// App ids accepted in the signed message.
    pub app_ids: Vec<String>,
    /// Devices per account; `create_session` for one more answers `result: false` (ref §3.3).
    pub max_devices: usize,
    /// Share calls that carry a user `Authorization` also need the device signature.
    pub share_calls_require_signature: bool,
    /// Referers accepted on Referer-bound download URLs (ref §2.2: both, exact match).
    pub accepted_referers: Vec<String>,
    /// Share download URLs are Referer-bound whatever the viewer's token kind.
    pub share_links_referer_bound: bool,
    /// Consumer list `limit` maximum (ref §4.2: 200 → above it 400 `InvalidParameter.Limit`).
    pub consumer_list_max: u64,
    /// Consumer list `limit` when omitted (ref §4.2: 50).
    pub consumer_list_default: u64,
    /// Open list `limit` maximum: larger values are clamped (ref §4.2, §15.5).
    pub open_list_max: u64,
    pub open_list_default: u64,
    /// Download `expire_sec` default / maximum (ref §5.1: 900 / 14400).
    pub download_expire_default: u64,
    pub download_expire_max: u64,
    /// Share download `expire_sec` maximum (ref §8.4: 600).
    pub share_expire_max: u64,
    /// Presigned part URL lifetime (ref §7.5: ~1 h inferred).
    pub upload_url_ttl: Duration,
    /// Minimum part size except the last (ref §7.3: 100 KB).
    pub min_part_size: u64,
    pub max_part_size: u64,
    /// Maximum part count (ref §7.3: 10 000).
    pub max_parts: u32,
    /// A part PUT with a `Content-Type` is refused like a signature mismatch (ref §7.4, SDK).
    pub reject_part_content_type: bool,
    /// Parts must arrive in order (ref §7.4, enforcement [unconfirmed]).
    pub require_sequential_parts: bool,
    /// `Running` answers of `async_task/get` before `Succeed`.
    pub async_task_running_polls: u32,
    /// Passport QR lifetime (ref §2.6 knob `qr_ttl_s`, default 180).
    pub qr_ttl: Duration,
    /// Answer CONFIRMED again on later polls of a confirmed pair ([unconfirmed]).
    pub qr_repeat_confirmed: bool,
    /// `bizExt` carries a GBK-encoded non-ASCII `nickName` (ref §2.6).
    pub qr_gbk_nickname: bool,
    /// Open-platform QR lifetime (ref §2.6: 180 s).
    pub open_qr_ttl: Duration,
    /// Share token lifetime (ref §8.2: 7200 s).
    pub share_token_ttl: Duration,
    /// Open API token buckets per (user, app); `None` = no limit.
    pub open_rates: Option<OpenRates>,
    /// Consumer API limiter per user `(rate, burst)` → 429 `TooManyRequests`.
    pub consumer_rate: Option<(f64, f64)>,
    /// Share API limiter per share `(rate, burst)` → `ParamFlowException`.
    pub share_rate: Option<(f64, f64)>,
    /// Share calls without `X-Canary: …app=share…` get `ParamFlowException` (ref §8.5).
    pub share_requires_canary: bool,
    /// HTTP status of `ParamFlowException` ("?" in ref §9).
    pub param_flow_status: u16,
    /// Broker limiter per client IP `(rate, burst)` → 429.
    pub broker_rate: Option<(f64, f64)>,
    /// `default_drive_id` is the backup drive (ref §15.11 [unconfirmed]); default: three
    /// distinct drives.
    pub default_is_backup: bool,
    /// `get_by_path` answers 404 for a path with whitespace in a name (messense: "path may
    /// contain whitespaces which get_by_path can't handle", ref §4.4), so clients must be able
    /// to fall back to listing.
    pub get_by_path_fails_on_whitespace: bool,
    /// An async task (folder trash/delete/copy) completes by itself this long after it started,
    /// even if nobody polls it.
    pub async_task_settle: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            access_token_ttl: Duration::from_secs(7200),
            consumer_rt_single_use: true,
            consumer_rt_ttl: Duration::from_secs(90 * 86_400),
            open_rt_ttl: Duration::from_secs(90 * 86_400),
            open_refresh_invalid_status: 401,
            signature: SignatureMode::Strict,
            app_ids: vec![WEB_APP_ID.into(), TICKSTEP_APP_ID.into()],
            max_devices: 10,
            share_calls_require_signature: true,
            accepted_referers: vec!["https://www.aliyundrive.com/".into(), "https://www.alipan.com/".into()],
            share_links_referer_bound: true,
            consumer_list_max: 200,
            consumer_list_default: 50,
            open_list_max: 100,
            open_list_default: 50,
            download_expire_default: 900,
            download_expire_max: 14_400,
            share_expire_max: 600,
            upload_url_ttl: Duration::from_secs(3600),
            min_part_size: 100 * 1024,
            max_part_size: 5 << 30,
            max_parts: 10_000,
            reject_part_content_type: true,
            require_sequential_parts: true,
            async_task_running_polls: 1,
            qr_ttl: Duration::from_secs(180),
            qr_repeat_confirmed: false,
            qr_gbk_nickname: true,
            open_qr_ttl: Duration::from_secs(180),
            share_token_ttl: Duration::from_secs(7200),
            open_rates: Some(OpenRates { list: 4.0, download_url: 1.0, other: 15.0, burst: 1.0 }),
            consumer_rate: None,
            share_rate: None,
            share_requires_canary: false,
            param_flow_status: 429,
            broker_rate: None,
            default_is_backup: false,
            get_by_path_fails_on_whitespace: true,
            async_task_settle: Duration::from_secs(2),
        }
    }
}

/// Emulator-specific faults ([`Fault::custom`]).
#[derive(Clone, Debug)]
pub enum AliFault {
    /// The presented access token expires now (consumer: 401 `AccessTokenInvalid`; open: 401
    /// `AccessTokenExpired`).
    ExpireAccessToken,
    /// 400 `DeviceSessionSignatureInvalid` (the device session is dropped).
    SignatureInvalid,
    /// 401 `UserDeviceOffline` (the device is kicked out).
    DeviceOffline,
    /// 429 `TooManyRequests`, with `x-retry-after` (ms) when given.
    TooManyRequests { retry_after_ms: Option<u64> },
    /// Share rate limit `ParamFlowException` (ref §8.5).
    ParamFlow,
    /// 401 `ShareLinkTokenInvalid` (the share token is dropped).
    ShareTokenInvalid,
    /// Data host: the URL is treated as expired (403 `Request has expired.`).
    ExpireLink,
}

/// A user as created by [`EmuAliyun::add_user`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub user_id: String,
    pub name: String,
    pub default_drive_id: String,
    pub resource_drive_id: String,
    pub backup_drive_id: String,
    pub sbox_drive_id: String,
}

/// A token pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

/// Inspection view of a file or folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub file_id: String,
    pub drive_id: String,
    pub parent_file_id: String,
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
    /// Uppercase SHA-1 ("" for folders).
    pub content_hash: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub trashed: bool,
}

/// Open-app settings for [`EmuAliyun::register_app`].
#[derive(Clone, Debug)]
pub struct AppSpec {
    pub client_id: String,
    pub client_secret: String,
    /// Longest download `expire_sec` granted (ref §5.2: 14400 only "after applying").
    pub max_expire_sec: u64,
    pub grant_resource: bool,
    pub grant_backup: bool,
    pub redirect_uris: Vec<String>,
}

impl AppSpec {
    pub fn new(client_id: &str, client_secret: &str) -> AppSpec {
        AppSpec {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            max_expire_sec: 900,
            grant_resource: true,
            grant_backup: true,
            redirect_uris: vec!["oob".into()],
        }
    }
}

pub(crate) struct Inner {
    pub st: Mutex<state::State>,
    pub opts: Mutex<Options>,
    pub clock: Clock,
    pub endpoints: BTreeMap<String, String>,
    pub limiter: RateLimiter,
}

impl Inner {
    pub fn st(&self) -> MutexGuard<'_, state::State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn opts(&self) -> Options {
        self.opts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn endpoint(&self, host: &str) -> String {
        self.endpoints.get(host).cloned().unwrap_or_else(|| format!("https://{host}"))
    }
}

/// The running emulator. Dropping it stops the listeners and saves the state.
pub struct EmuAliyun {
    inner: Arc<Inner>,
    server: Server<AliFault>,
    dir: PathBuf,
    _temp: Option<TempDir>,
}

/// A state folder removed on drop ([`EmuAliyun::start_temp`]).
struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for EmuAliyun {
    fn drop(&mut self) {
        let _ = self.save();
    }
}

impl EmuAliyun {
    /// Start on a state folder (created if missing). A folder used before brings back users,
    /// tokens (rotated refresh tokens included), files, shares and the clock offset, and the
    /// emulator binds the same ports again (an error if one is taken).
    pub async fn start(dir: impl AsRef<Path>, opts: Options) -> std::io::Result<EmuAliyun> {
        let dir = dir.as_ref().to_path_buf();
        let mut st = state::State::load_or_new(&dir)?;
        st.apps.entry(BROKER_CLIENT_ID.to_string()).or_insert_with(broker_app);
        let ports: BTreeMap<String, u16> = match std::fs::read(dir.join("ports.json")) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
            Err(_) => BTreeMap::new(),
        };
        let bound = Bound::bind(&all_hosts(), &BindOptions { ports, ..Default::default() }).await?;
        std::fs::write(dir.join("ports.json"), serde_json::to_vec(&bound.ports()).map_err(std::io::Error::other)?)?;
        let inner = Arc::new(Inner {
            clock: Clock::with_offset_ms(st.clock_offset_ms),
            st: Mutex::new(st),
            opts: Mutex::new(opts),
            endpoints: bound.endpoints(),
            limiter: RateLimiter::new(),
        });
        let h = inner.clone();
        let server = bound.serve(move |req, custom| {
            let h = h.clone();
            async move { common::handle(&h, req, custom) }
        });
        Ok(EmuAliyun { inner, server, dir, _temp: None })
    }

    /// Start on a fresh temporary state folder (removed when the emulator is dropped).
    pub async fn start_temp(opts: Options) -> EmuAliyun {
        let dir = std::env::temp_dir().join(format!("emualiyun-{}", emukit::util::rand_hex(16)));
        let mut e = EmuAliyun::start(&dir, opts).await.expect("start emualiyun");
        e._temp = Some(TempDir(dir));
        e
    }

    /// Close every port and connection (like a crash of the service) and save the state.
    pub async fn stop(&self) {
        self.server.stop().await;
        let _ = self.save();
    }

    /// Write the state folder now.
    pub fn save(&self) -> std::io::Result<()> {
        let mut st = self.inner.st();
        st.clock_offset_ms = self.inner.clock.offset_ms();
        st.save()
    }

    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    // ------------------------------------------------------------------ endpoints

    /// Base URL (`http://127.0.0.1:PORT`) standing in for `https://<host>`.
    pub fn endpoint(&self, host: &str) -> String {
        self.server.endpoint(host)
    }

    /// `host → base URL` for every emulated host.
    pub fn endpoints(&self) -> BTreeMap<String, String> {
        self.server.endpoints()
    }

    pub fn hosts(&self) -> Vec<String> {
        self.server.hosts()
    }

    // ------------------------------------------------------------------ options and clock

    pub fn options(&self) -> Options {
        self.inner.opts()
    }

    /// Change knobs at run time.
    pub fn configure(&self, f: impl FnOnce(&mut Options)) {
        f(&mut self.inner.opts.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Move the emulated clock forward: tokens, download and part URLs, share tokens, QR codes
    /// and share expirations are judged against it.
    pub fn advance(&self, d: Duration) {
        self.inner.clock.advance(d);
    }

    /// Emulated unix time, milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.inner.now()
    }

    // ------------------------------------------------------------------ users and tokens

    /// A user with four drives (default, resource, backup, safe box).
    pub fn add_user(&self, name: &str) -> UserInfo {
        let u = self.inner.st().add_user(name, self.inner.opts().default_is_backup);
        UserInfo {
            user_id: u.user_id,
            name: u.name,
            default_drive_id: u.default_drive_id,
            resource_drive_id: u.resource_drive_id,
            backup_drive_id: u.backup_drive_id,
            sbox_drive_id: u.sbox_drive_id,
        }
    }

    /// A user with a chosen `user_id` (e.g. the one of a signature vector).
    pub fn add_user_with_id(&self, user_id: &str, name: &str) -> UserInfo {
        let info = self.add_user(name);
        let mut st = self.inner.st();
        let mut u = st.users.remove(&info.user_id).expect("user");
        u.user_id = user_id.to_string();
        st.users.insert(user_id.to_string(), u);
        UserInfo { user_id: user_id.to_string(), ..info }
    }

    /// Register an access token with a chosen value (e.g. the token of a proof_code vector).
    pub fn seed_access_token(&self, user_id: &str, kind: TokenKind, token: &str, app: Option<&str>) {
        let o = self.inner.opts();
        let now = self.inner.now();
        self.inner.st().access.insert(
            token.to_string(),
            state::AccessTok {
                user_id: user_id.into(),
                kind,
                app: app.map(Into::into),
                expires_ms: now + o.access_token_ttl.as_millis() as i64,
                revoked: false,
            },
        );
    }

    /// A consumer refresh token of this kind (as taken from the web or mobile app).
    pub fn issue_refresh_token(&self, user_id: &str, kind: TokenKind) -> String {
        assert!(kind != TokenKind::Open, "use open_authorize for open tokens");
        let o = self.inner.opts();
        let now = self.inner.now();
        let mut st = self.inner.st();
        assert!(st.users.contains_key(user_id), "unknown user {user_id}");
        let t = st.issue_refresh(user_id, kind, None, o.consumer_rt_ttl.as_millis() as i64, now, false);
        let _ = st.save();
        t
    }

    /// A consumer access + refresh pair, as a token refresh would return.
    pub fn issue_consumer_tokens(&self, user_id: &str, kind: TokenKind) -> TokenPair {
        let o = self.inner.opts();
        let now = self.inner.now();
        let mut st = self.inner.st();
        let at = st.issue_access(user_id, kind, None, o.access_token_ttl.as_millis() as i64, now);
        let rt = st.issue_refresh(user_id, kind, None, o.consumer_rt_ttl.as_millis() as i64, now, false);
        let _ = st.save();
        TokenPair { access_token: at, refresh_token: rt, expires_in: o.access_token_ttl.as_secs() }
    }

    /// Register an open-platform app.
    pub fn register_app(&self, spec: AppSpec) {
        self.inner.st().apps.insert(
            spec.client_id.clone(),
            state::App {
                client_id: spec.client_id,
                secret: spec.client_secret,
                max_expire_sec: spec.max_expire_sec,
                grant_resource: spec.grant_resource,
                grant_backup: spec.grant_backup,
                redirect_uris: spec.redirect_uris,
            },
        );
    }

    /// Tokens of an app the user has authorized (as after the OAuth code exchange).
    pub fn open_authorize(&self, user_id: &str, client_id: &str) -> TokenPair {
        let o = self.inner.opts();
        let now = self.inner.now();
        let mut st = self.inner.st();
        assert!(st.apps.contains_key(client_id), "unknown app {client_id}");
        let at = st.issue_access(user_id, TokenKind::Open, Some(client_id), o.access_token_ttl.as_millis() as i64, now);
        let rt =
            st.issue_refresh(user_id, TokenKind::Open, Some(client_id), o.open_rt_ttl.as_millis() as i64, now, false);
        let _ = st.save();
        TokenPair { access_token: at, refresh_token: rt, expires_in: o.access_token_ttl.as_secs() }
    }

    /// Would this refresh token be accepted now?
    pub fn is_refresh_token_live(&self, token: &str) -> bool {
        let now = self.inner.now();
        self.inner.st().refresh.get(token).is_some_and(|r| r.state == state::RtState::Live && r.expires_ms > now)
    }

    /// Would this access token be accepted now?
    pub fn is_access_token_live(&self, token: &str) -> bool {
        let now = self.inner.now();
        self.inner.st().access.get(token).is_some_and(|a| !a.revoked && a.expires_ms > now)
    }

    /// Live refresh tokens of a user (of any kind and app).
    pub fn live_refresh_tokens(&self, user_id: &str) -> Vec<String> {
        let now = self.inner.now();
        let st = self.inner.st();
        let mut v: Vec<(i64, String)> = st
            .refresh
            .iter()
            .filter(|(_, r)| r.user_id == user_id && r.state == state::RtState::Live && r.expires_ms > now)
            .map(|(t, r)| (r.issued_ms, t.clone()))
            .collect();
        v.sort();
        v.into_iter().map(|(_, t)| t).collect()
    }

    /// Successful refreshes of a user's tokens (consumer and open).
    pub fn refresh_count(&self, user_id: &str) -> u64 {
        self.inner.st().counters.refresh_ok.get(user_id).copied().unwrap_or(0)
    }

    /// Refresh attempts that presented an already used or revoked token ("burnt" tokens).
    pub fn refresh_reuse_count(&self, user_id: &str) -> u64 {
        self.inner.st().counters.refresh_reused.get(user_id).copied().unwrap_or(0)
    }

    /// Revoke a refresh token (the user logged out / revoked the app).
    pub fn revoke_refresh_token(&self, token: &str) {
        let mut st = self.inner.st();
        if let Some(r) = st.refresh.get_mut(token) {
            r.state = state::RtState::Revoked;
        }
        st.tokens_dirty = true;
        let _ = st.save();
    }

    /// Revoke every token of a user: refresh and access (login lost).
    pub fn revoke_user_tokens(&self, user_id: &str) {
        let mut st = self.inner.st();
        for r in st.refresh.values_mut().filter(|r| r.user_id == user_id) {
            r.state = state::RtState::Revoked;
        }
        for a in st.access.values_mut().filter(|a| a.user_id == user_id) {
            a.revoked = true;
        }
        let _ = st.save();
    }

    /// Make every access token of a user expire now.
    pub fn expire_access_tokens(&self, user_id: &str) {
        let now = self.inner.now();
        let mut st = self.inner.st();
        for a in st.access.values_mut().filter(|a| a.user_id == user_id) {
            a.expires_ms = a.expires_ms.min(now);
        }
    }

    // ------------------------------------------------------------------ device sessions

    /// Device ids with a session for this user.
    pub fn device_sessions(&self, user_id: &str) -> Vec<String> {
        self.inner
            .st()
            .sessions
            .values()
            .filter(|s| s.user_id == user_id && !s.kicked)
            .map(|s| s.device_id.clone())
            .collect()
    }

    /// Kick a device out: its calls answer 401 `UserDeviceOffline` until `create_session`.
    pub fn kick_device(&self, user_id: &str, device_id: &str) {
        if let Some(s) = self.inner.st().sessions.get_mut(&format!("{user_id}|{device_id}")) {
            s.kicked = true;
        }
    }

    /// Drop every device session of a user (calls answer `DeviceSessionSignatureInvalid`).
    pub fn drop_device_sessions(&self, user_id: &str) {
        self.inner.st().sessions.retain(|_, s| s.user_id != user_id);
    }

    // ------------------------------------------------------------------ files

    /// Create a folder (`parent` = `"root"` or a folder id). Panics on a bad parent.
    pub fn mkdir(&self, drive_id: &str, parent: &str, name: &str) -> String {
        let now = self.inner.now();
        let mut st = self.inner.st();
        st.check_folder(drive_id, parent).expect("mkdir parent");
        st.insert_node(drive_id, parent, name, true, None, None, now)
    }

    /// `mkdir -p` of a `/`-separated path; returns the last folder's id.
    pub fn mkdir_p(&self, drive_id: &str, path: &str) -> String {
        let now = self.inner.now();
        let mut st = self.inner.st();
        let mut cur = "root".to_string();
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            cur = match st.child_named(drive_id, &cur, comp) {
                Some(n) if n.is_dir => n.file_id.clone(),
                _ => st.insert_node(drive_id, &cur, comp, true, None, None, now),
            };
        }
        cur
    }

    /// Store a file; its content also becomes known for rapid upload.
    pub fn put_file(&self, drive_id: &str, parent: &str, name: &str, data: impl Into<Bytes>) -> String {
        let now = self.inner.now();
        let mut st = self.inner.st();
        st.check_folder(drive_id, parent).expect("put_file parent");
        let sha = st.add_content(content::Content::Bytes(data.into()), None).expect("store blob");
        st.insert_node(drive_id, parent, name, false, Some(&sha), None, now)
    }

    /// Store a file whose content is `Pattern::new(seed, size)` (never held in memory).
    pub fn put_pattern_file(&self, drive_id: &str, parent: &str, name: &str, seed: u64, size: u64) -> String {
        let sha = self.add_known_pattern(seed, size);
        let now = self.inner.now();
        let mut st = self.inner.st();
        st.check_folder(drive_id, parent).expect("put_pattern_file parent");
        st.insert_node(drive_id, parent, name, false, Some(&sha), None, now)
    }

    /// Make content known to the service (someone else uploaded it): a rapid-upload hit.
    /// Returns the uppercase SHA-1.
    pub fn add_known_content(&self, data: impl Into<Bytes>) -> String {
        self.inner.st().add_content(content::Content::Bytes(data.into()), None).expect("store blob")
    }

    /// Known content `Pattern::new(seed, size)`, hashed once here (streaming); returns its SHA-1.
    pub fn add_known_pattern(&self, seed: u64, size: u64) -> String {
        let p = Pattern::new(seed, size);
        let hashes = p.hashes();
        self.inner.st().add_content(content::Content::Pattern(p), Some(hashes)).expect("store blob")
    }

    /// Known pattern content whose SHA-1 the caller already computed (no hashing here; the
    /// CRC-64 is then reported as 0).
    pub fn add_known_pattern_with_sha1(&self, seed: u64, size: u64, sha1: &str) -> String {
        let p = Pattern::new(seed, size);
        self.inner.st().add_content(content::Content::Pattern(p), Some((sha1.to_ascii_uppercase(), 0))).expect("store")
    }

    /// Set the times of an entry (unix ms).
    pub fn set_times(&self, file_id: &str, created_ms: i64, updated_ms: i64) {
        if let Some(n) = self.inner.st().nodes.get_mut(file_id) {
            n.created_ms = created_ms;
            n.updated_ms = updated_ms;
        }
    }

    /// Resolve `/a/b` in a drive (live entries); `"/"` is `"root"`.
    pub fn lookup(&self, drive_id: &str, path: &str) -> Option<String> {
        self.inner.st().lookup(drive_id, path)
    }

    pub fn entry(&self, file_id: &str) -> Option<Entry> {
        self.inner.st().nodes.get(file_id).map(entry_of)
    }

    /// Live children of a folder, by name.
    pub fn children(&self, drive_id: &str, parent: &str) -> Vec<Entry> {
        let st = self.inner.st();
        let mut v: Vec<Entry> = st.children(drive_id, parent).into_iter().map(entry_of).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name).then(a.file_id.cmp(&b.file_id)));
        v
    }

    /// Top-level entries of a drive's recycle bin.
    pub fn trashed(&self, drive_id: &str) -> Vec<Entry> {
        self.inner.st().nodes.values().filter(|n| n.drive_id == drive_id && n.trashed).map(entry_of).collect()
    }

    /// Content of a file (trashed ones too).
    pub fn file_bytes(&self, file_id: &str) -> Option<Vec<u8>> {
        let st = self.inner.st();
        let n = st.nodes.get(file_id)?;
        let c = st.content_of(n)?;
        let mut v = vec![0u8; c.size() as usize];
        c.read_at(0, &mut v);
        Some(v)
    }

    /// Upload sessions not completed yet.
    pub fn open_uploads(&self) -> usize {
        self.inner.st().uploads.values().filter(|u| !u.done).count()
    }

    /// Bytes received by the data host in part uploads, over all sessions still known.
    pub fn uploaded_part_bytes(&self) -> u64 {
        self.inner.st().uploads.values().flat_map(|u| u.received.values()).map(|b| b.len() as u64).sum()
    }

    // ------------------------------------------------------------------ shares

    /// Share some entries of a drive; `pwd` is the 4-char extraction code ("" for none).
    /// Returns the share id.
    pub fn create_share(&self, user_id: &str, drive_id: &str, file_ids: &[&str], pwd: &str) -> String {
        let now = self.inner.now();
        let mut st = self.inner.st();
        let id = emukit::util::rand_from(emukit::util::ALNUM, 11);
        st.shares.insert(
            id.clone(),
            state::Share {
                share_id: id.clone(),
                user_id: user_id.into(),
                drive_id: drive_id.into(),
                file_ids: file_ids.iter().map(|s| s.to_string()).collect(),
                pwd: pwd.into(),
                created_ms: now,
                expiration_ms: None,
                state: ShareState::Ok,
            },
        );
        id
    }

    pub fn set_share_state(&self, share_id: &str, state: ShareState) {
        if let Some(s) = self.inner.st().shares.get_mut(share_id) {
            s.state = state;
        }
    }

    /// Expire the share at this emulated time (unix ms); `None` = never.
    pub fn set_share_expiration(&self, share_id: &str, at_ms: Option<i64>) {
        if let Some(s) = self.inner.st().shares.get_mut(share_id) {
            s.expiration_ms = at_ms;
        }
    }

    /// Invalidate every share token of a share (the next call answers `ShareLinkTokenInvalid`).
    pub fn expire_share_tokens(&self, share_id: &str) {
        self.inner.st().share_tokens.retain(|_, t| t.share_id != share_id);
    }

    // ------------------------------------------------------------------ QR hooks

    /// `ck` of every passport QR code generated so far, oldest first.
    pub fn passport_qr_codes(&self) -> Vec<String> {
        let st = self.inner.st();
        let mut v: Vec<(i64, String)> = st.passport_qr.values().map(|q| (q.created_ms, q.ck.clone())).collect();
        v.sort();
        v.into_iter().map(|(_, c)| c).collect()
    }

    /// The phone scanned the code (NEW → SCANED).
    pub fn passport_qr_scan(&self, ck: &str) -> bool {
        auth::passport_set(&self.inner, ck, "SCANED", None)
    }

    /// The user confirmed on the phone (→ CONFIRMED, a mobile-kind pair is issued for `user_id`).
    pub fn passport_qr_confirm(&self, ck: &str, user_id: &str) -> bool {
        auth::passport_set(&self.inner, ck, "CONFIRMED", Some(user_id))
    }

    /// The user declined (→ CANCELED).
    pub fn passport_qr_cancel(&self, ck: &str) -> bool {
        auth::passport_set(&self.inner, ck, "CANCELED", None)
    }

    /// The code dies now (→ EXPIRED).
    pub fn passport_qr_expire(&self, ck: &str) -> bool {
        auth::passport_set(&self.inner, ck, "EXPIRED", None)
    }

    /// The refresh token handed out by a confirmed passport QR.
    pub fn passport_qr_refresh_token(&self, ck: &str) -> Option<String> {
        self.inner.st().passport_qr.get(ck).and_then(|q| q.tokens.as_ref().map(|t| t.1.clone()))
    }

    /// `sid` of every open-platform QR session, oldest first.
    pub fn open_qr_sessions(&self) -> Vec<String> {
        let st = self.inner.st();
        let mut v: Vec<(i64, String)> = st.open_qr.values().map(|q| (q.created_ms, q.sid.clone())).collect();
        v.sort();
        v.into_iter().map(|(_, c)| c).collect()
    }

    /// WaitLogin → ScanSuccess.
    pub fn open_qr_scan(&self, sid: &str) -> bool {
        auth::open_qr_set(&self.inner, sid, "ScanSuccess", None)
    }

    /// → LoginSuccess with an `authCode` for `user_id`.
    pub fn open_qr_confirm(&self, sid: &str, user_id: &str) -> bool {
        auth::open_qr_set(&self.inner, sid, "LoginSuccess", Some(user_id))
    }

    /// → QRCodeExpired.
    pub fn open_qr_expire(&self, sid: &str) -> bool {
        auth::open_qr_set(&self.inner, sid, "QRCodeExpired", None)
    }

    /// An authorization code for (user, app), as the browser flow would deliver (ref §2.5).
    /// `challenge` = PKCE `(code_challenge, method)`.
    pub fn open_auth_code(&self, user_id: &str, client_id: &str, challenge: Option<(&str, &str)>) -> String {
        auth::mint_code(&self.inner, user_id, client_id, challenge.map(|(a, b)| (a.to_string(), b.to_string())))
    }

    /// A tickstep broker ticket for the user (§2.4): the broker holds an open grant for it.
    pub fn tickstep_ticket(&self, user_id: &str) -> String {
        auth::mint_ticket(&self.inner, user_id)
    }

    // ------------------------------------------------------------------ log and faults

    /// Every request so far, in arrival order.
    pub fn log(&self) -> Vec<LoggedRequest> {
        self.server.log()
    }

    pub fn clear_log(&self) {
        self.server.clear_log()
    }

    /// Requests whose `host/path` equals `key`, e.g. `"api.alipan.com/adrive/v3/file/list"`.
    pub fn calls(&self, key: &str) -> usize {
        self.server.calls(key)
    }

    /// Requests whose `host/path` matches a pattern (glob with `*`, else prefix), e.g.
    /// `"*/v2/file/get_download_url"` for both API host aliases.
    pub fn calls_matching(&self, pattern: &str) -> usize {
        self.server.calls_matching(pattern)
    }

    /// Inject a fault on requests whose `host/path` matches `pattern` (see emukit).
    pub fn inject(&self, pattern: &str, fault: Fault<AliFault>) -> FaultId {
        self.server.inject(pattern, fault)
    }

    pub fn remove_fault(&self, id: FaultId) {
        self.server.remove_fault(id)
    }

    pub fn clear_faults(&self) {
        self.server.clear_faults()
    }
}

fn entry_of(n: &state::Node) -> Entry {
    Entry {
        file_id: n.file_id.clone(),
        drive_id: n.drive_id.clone(),
        parent_file_id: n.parent.clone(),
        name: n.name.clone(),
        is_dir: n.is_dir,
        size: n.size,
        content_hash: n.sha1.clone(),
        created_ms: n.created_ms,
        updated_ms: n.updated_ms,
        trashed: n.trashed,
    }
}

/// Register the broker app at start (its secret never leaves the emulator).
pub(crate) fn broker_app() -> state::App {
    state::App {
        client_id: BROKER_CLIENT_ID.into(),
        secret: BROKER_SECRET.into(),
        max_expire_sec: 14_400,
        grant_resource: true,
        grant_backup: true,
        redirect_uris: vec![],
    }
}
