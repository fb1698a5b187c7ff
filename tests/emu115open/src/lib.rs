//! # emu115open — emulator of the 115 Open Platform HTTP API
//!
//! Written from `shared/reference/115-open.md` (cited below as "ref §x.y"), never from
//! a driver.  One HTTP/1.1 listener (emukit, path-prefix layout) on `127.0.0.1:0` serves every real host under a
//! path prefix named after the host:
//!
//! ```text
//! http://127.0.0.1:PORT/passportapi.115.com/open/refreshToken
//! http://127.0.0.1:PORT/proapi.115.com/open/ufile/files
//! http://127.0.0.1:PORT/qrcodeapi.115.com/get/status/
//! http://127.0.0.1:PORT/fhnfile.oss-cn-shenzhen.aliyuncs.com/<object>      (OSS, virtual-host style)
//! http://127.0.0.1:PORT/cdnfhnfile.115cdn.net/<link>/<name>?t=…&u=…&c=0&f=1&s=…  (download CDN)
//! http://127.0.0.1:PORT/api.oplist.org/115cloud/renewapi?refresh_ui=…     (online token broker)
//! ```
//!
//! [`Emu115Open::endpoint`] gives the base URL for a real hostname, [`Emu115Open::hosts`] the
//! list of all hostnames, so a driver's "real host → base URL" override table can be built.
//!
//! ## Typical driver test
//!
//! ```ignore
//! let emu = Emu115Open::start(Options { access_token_ttl: Duration::from_secs(5), ..Default::default() }).await;
//! let user = emu.add_user();
//! let tok = emu.authorize(user, DEFAULT_APP_ID);          // a grant, as after the QR flow
//! let dir = emu.mkdir(user, 0, "Movies");
//! emu.put_file(user, dir, "a.mkv", b"...");
//! let driver = Driver::new(emu.endpoint_table(), tok.access_token, tok.refresh_token);
//! // ... exercise the driver ...
//! emu.advance(Duration::from_secs(6));                     // access token now 40140125
//! assert_eq!(emu.refresh_count(tok.grant), 1);
//! emu.inject_times("/proapi.115.com/open/ufile/files", Fault::RateLimit, 1);
//! ```
//!
//! ## Token / grant rules (ref §2.4), as implemented
//! * each device-code / auth-code exchange (or [`Emu115Open::authorize`]) creates a grant
//!   `(user, app)` living [`Options::grant_ttl`]; at most [`Options::grant_limit`] live grants
//!   per (user, app) — the oldest is evicted;
//! * refresh: unknown token → `code 0, "error":"refresh token error"` (or a code, knob);
//!   rotated-away / evicted / revoked → `40140116 "no auth"`; grant expired → `40140119`;
//!   sooner than [`Options::min_refresh_interval`] after the last issuance → `40140117`
//!   (token stays valid); success rotates both tokens and kills the old pair;
//! * proapi Bearer: missing / unknown → `40140123`; expired / rotated away / evicted /
//!   revoked → `40140125`.  Errors are HTTP 200 with `state:false` and both `code`/`errno`
//!   and `message`/`error`.
//!
//! ## Not implemented (yet)
//! * `/open/offline/torrent`, `/open/offline/add_task_bt`
//! * `/open/video/*`, `/open/vip/*`
//! * broker `/115cloud/requests` and `/115cloud/callback` (only `renewapi` is emulated)
//! * OSS: `x-oss-complete-all`, object GET/HEAD, part-copy; the `Date` freshness window
//! * `c` (concurrent opens) and `f=3` (cookie) semantics of download links
//! * visibility lag after uploads and the transient `utime = 0` quirk of ref §4.2
//! * `type` listing filter knows only coarse extension groups

mod auth;
mod files;
mod http;
mod offline;
mod state;
mod upload;
mod util;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub use state::{Entry, GrantInfo, GrantState, OfflineTask, RequestRecord};

/// AppID registered at start-up (numeric string as the real ones are, ref §2.1).
pub const DEFAULT_APP_ID: &str = "100195123";
/// Secret of [`DEFAULT_APP_ID`] for the authorization-code flow (ref §2.2).
pub const DEFAULT_APP_SECRET: &str = "emu115opensecret0000000000000000";
/// Redirect domain registered for [`DEFAULT_APP_ID`].
pub const DEFAULT_REDIRECT_DOMAIN: &str = "app.example.com";

/// Real hostnames the emulator answers for (plus the OSS bucket host and CDN host from
/// [`Options`]).
pub const PASSPORT_HOST: &str = "passportapi.115.com";
pub const QRCODE_HOST: &str = "qrcodeapi.115.com";
pub const PROAPI_HOST: &str = "proapi.115.com";
pub const BROKER_HOST: &str = "api.oplist.org";

/// How `/open/folder/get_info` answers for a missing item (ref §1.4, §4.2: both seen).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotFoundStyle {
    /// `{"state":true,…,"data":[]}`
    EmptyArray,
    /// `state:false`, `code 430004`
    Code430004,
}

/// How `/open/ufile/downurl` answers for an unknown pick code (ref §5: both seen).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownPickCodeStyle {
    /// `state:true`, `data: {}` (the client must notice the missing key)
    EmptyData,
    /// `state:false`, `code 50003`
    Code50003,
}

/// How `/open/refreshToken` answers for a token it never issued (ref §1.3, §2.3, §2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GarbageRefreshStyle {
    /// The verbatim shape of alist#8157: `code 0`, `"error":"refresh token error"`,
    /// `errno 0`, `state 0`.  A client that only checks `code` is fooled by it.
    ErrorString,
    /// `state 0` with this code (40140114 / 40140115 / 40140120).
    Code(i64),
}

/// Emulator knobs.  Defaults follow the reference; where it is uncertain the stricter
/// reading is the default.
#[derive(Clone, Debug)]
pub struct Options {
    /// access_token lifetime (ref §2.4: 7200 s).
    pub access_token_ttl: Duration,
    /// `expires_in` reported by refreshToken; `None` = the access-token lifetime
    /// (ref §14.3: docs mock 2592000 on that page, 7200 elsewhere).
    pub expires_in_on_refresh: Option<u64>,
    /// Grant (refresh-token) lifetime, not extended by refreshing (ref §2.4: 1 year).
    pub grant_ttl: Duration,
    /// Minimum time between two token issuances of one grant → 40140117 (ref §2.4).
    pub min_refresh_interval: Duration,
    /// Live grants per (user, app); a new grant evicts the oldest (ref §2.4: 2 or 3;
    /// default 2, the stricter).
    pub grant_limit: usize,
    /// Authorized apps per user (40140122); `None` = unlimited (number unknown, ref §2.4).
    pub max_apps_per_user: Option<usize>,
    /// Max `limit` of `/open/ufile/files` (ref §10.3: 1150).  Larger values are clamped and the
    /// clamped value is echoed.
    pub page_size_max: usize,
    /// Default `limit` of listings (ref §4.1: 20).
    pub default_list_limit: usize,
    /// Echo the listing `limit` as a numeric string (ref §1.4: number or string seen).
    pub list_limit_as_string: bool,
    /// Lifetime of a download URL (`t`).  Field reports: about 1 h.
    pub link_ttl: Duration,
    /// When the downurl request has no UA, mint an unbound `f=` link (ref §5, [unconfirmed]).
    /// Default false: the link is bound to "no UA" (stricter).
    pub empty_ua_unbound: bool,
    /// Device-code / QR lifetime.
    pub qr_ttl: Duration,
    /// Long-poll timeout of `qrcodeapi.115.com/get/status/`.
    pub qr_poll_timeout: Duration,
    /// Rapid uploads of files at least this big need the second check (ref §7.1, §7.7:
    /// 1 MiB; `Some(0)` = always, `None` = never).
    pub second_check_min_size: Option<u64>,
    /// STS credential lifetime of `/open/upload/get_token` (ref §7.7: 1 h).
    pub sts_ttl: Duration,
    /// OSS endpoint host returned by get_token (as `https://<host>`).
    pub oss_endpoint_host: String,
    /// OSS bucket returned by upload/init (ref §1.1: `fhnfile`).
    pub oss_bucket: String,
    /// Verify the OSS V1 `Authorization` signature.
    pub oss_verify_signature: bool,
    /// Host of download URLs.
    pub cdn_host: String,
    /// If true, download URLs carry `https://<cdn_host>/…` (the driver must map the host);
    /// default false: they point straight back at the emulator.
    pub cdn_urls_use_real_host: bool,
    /// Offline-download quota per user (tasks that may be added).
    pub offline_quota: u32,
    /// Tasks per page of `get_task_list`.
    pub offline_page_size: usize,
    /// Per-access-token token bucket `(rate per second, burst)` → 770004 (ref §10).
    pub qps_limit: Option<(f64, f64)>,
    /// Resource calls per user per (emulated) day → 406 (ref §10).
    pub daily_budget: Option<u64>,
    pub get_info_not_found: NotFoundStyle,
    pub downurl_unknown_pick_code: UnknownPickCodeStyle,
    pub garbage_refresh: GarbageRefreshStyle,
    /// A non-existent `cid` in `/open/ufile/files` answers with the root listing (ref §4.1,
    /// §13: the client must compare `cid`).  If false: error 20009.
    pub missing_cid_lists_root: bool,
    /// Honour `o`/`asc` even when `custom_order` is 0 or absent (ref §14.5, unconfirmed).
    /// Default false: the remembered order (`user_ptime` desc) is used instead.
    pub sort_without_custom_order: bool,
    /// Accept the sdk's `no_dupli` as an alias of `nodupli` on copy (ref §6.4).
    pub accept_no_dupli_alias: bool,
    /// Accept lowercase hex `fileid`/`sign_val` in upload/init (ref says uppercase).
    pub accept_lowercase_sha1: bool,
    /// Total space of every user, bytes.
    pub total_space: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            access_token_ttl: Duration::from_secs(7200),
            expires_in_on_refresh: None,
            grant_ttl: Duration::from_secs(365 * 24 * 3600),
            min_refresh_interval: Duration::ZERO,
            grant_limit: 2,
            max_apps_per_user: None,
            page_size_max: 1150,
            default_list_limit: 20,
            list_limit_as_string: false,
            link_ttl: Duration::from_secs(3600),
            empty_ua_unbound: false,
            qr_ttl: Duration::from_secs(300),
            qr_poll_timeout: Duration::from_secs(2),
            second_check_min_size: Some(1 << 20),
            sts_ttl: Duration::from_secs(3600),
            oss_endpoint_host: "oss-cn-shenzhen.aliyuncs.com".into(),
            oss_bucket: "fhnfile".into(),
            oss_verify_signature: true,
            cdn_host: "cdnfhnfile.115cdn.net".into(),
            cdn_urls_use_real_host: false,
            offline_quota: 1500,
            offline_page_size: 30,
            qps_limit: None,
            daily_budget: None,
            get_info_not_found: NotFoundStyle::EmptyArray,
            downurl_unknown_pick_code: UnknownPickCodeStyle::EmptyData,
            garbage_refresh: GarbageRefreshStyle::ErrorString,
            missing_cid_lists_root: true,
            sort_without_custom_order: false,
            accept_no_dupli_alias: false,
            accept_lowercase_sha1: false,
            total_space: 16_492_674_416_640,
        }
    }
}

/// A token pair as issued by the emulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub grant: u64,
}

/// Injected faults (see [`Emu115Open::inject`]).
#[derive(Clone, Debug)]
pub enum Fault {
    /// Bare HTTP status (e.g. 500, 502, 503) with a short text body.
    Status(u16),
    /// HTTP 200 error envelope with this code (pro shape on proapi, passport shape on
    /// passport hosts).
    Envelope { code: i64, message: String },
    /// `code/errno 770004` "访问频率过高" (ref §10.1).
    RateLimit,
    /// `code/errno 406` "已达到当前访问上限…" (ref §10.1).
    QuotaLimit,
    /// `state:false, code:0, message:""` (ref §10.1, hienao/ostrm#59).
    EmptyFailure,
    /// Close the connection without any response.
    Reset,
    /// Wait, then answer normally.
    Delay(Duration),
    /// Answer normally but trickle the body: `chunk` bytes every `every`.
    SlowBody { chunk: usize, every: Duration },
    /// Answer normally but cut the connection after `n` body bytes.
    DropAfter(usize),
    /// CDN only: treat the link as expired (403) regardless of `t`.
    ExpireLink,
}

/// Handle to an injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FaultId(pub u64);

/// A user-visible QR session (device code).
#[derive(Clone, Debug)]
pub struct QrSession {
    pub uid: String,
    pub app_id: String,
    pub status: i32,
}

/// The running emulator.  Dropping it stops the listener.
pub struct Emu115Open {
    inner: Arc<state::Inner>,
    server: emukit::Server<Fault>,
}

/// Host of the QR hooks (`/__test/qr/{uid}/{scan|confirm|cancel|expire}`).
const HOOK_HOST: &str = "__test";

impl Emu115Open {
    /// Bind `127.0.0.1:0` and start serving (emukit, path-prefix layout: every host under
    /// `/<host>/…` of one port).
    pub async fn start(opts: Options) -> Emu115Open {
        let mut hosts = hosts_of(&opts);
        hosts.push(HOOK_HOST.to_string());
        let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
        let bind = emukit::BindOptions { layout: emukit::Layout::PathPrefix, ..Default::default() };
        let bound = emukit::Bound::bind(&names, &bind).await.expect("bind 127.0.0.1:0");
        let inner = Arc::new(state::Inner::new(opts, bound.base_url().expect("path-prefix base")));
        let h = inner.clone();
        let server = bound.serve(move |req, custom| http::handle(h.clone(), req, custom));
        Emu115Open { inner, server }
    }

    /// Start with default options.
    pub async fn start_default() -> Emu115Open {
        Self::start(Options::default()).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.base.trim_start_matches("http://").parse().expect("socket address")
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        self.inner.base.clone()
    }

    /// Base URL standing in for `https://<host>` (no trailing slash), e.g.
    /// `endpoint("proapi.115.com") == "http://127.0.0.1:PORT/proapi.115.com"`.
    pub fn endpoint(&self, host: &str) -> String {
        self.inner.endpoint(host)
    }

    /// Every real hostname served: passport, qrcode, proapi, OSS endpoint, OSS bucket host,
    /// CDN, broker.
    pub fn hosts(&self) -> Vec<String> {
        hosts_of(&self.options())
    }

    /// `(real host, base URL)` for every host of [`hosts`](Self::hosts).
    pub fn endpoint_table(&self) -> BTreeMap<String, String> {
        self.hosts().into_iter().map(|h| (h.clone(), self.endpoint(&h))).collect()
    }

    // ----------------------------------------------------------------- options / clock

    pub fn options(&self) -> Options {
        self.inner.lock().opts.clone()
    }

    /// Change knobs at runtime.
    pub fn configure(&self, f: impl FnOnce(&mut Options)) {
        f(&mut self.inner.lock().opts)
    }

    /// Move the emulated clock forward (token expiry, link expiry, intervals, QR expiry).
    pub fn advance(&self, d: Duration) {
        self.inner.clock_offset_ms.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
        self.inner.qr_notify.notify_waiters();
    }

    /// Emulated unix time in seconds.
    pub fn now_unix(&self) -> u64 {
        self.inner.now_ms() / 1000
    }

    // ----------------------------------------------------------------- users / apps / grants

    /// Create a user with an empty drive.  Returns the user id.
    pub fn add_user(&self) -> u64 {
        self.inner.lock().add_user(None)
    }

    pub fn add_user_named(&self, name: &str) -> u64 {
        self.inner.lock().add_user(Some(name))
    }

    /// Register another app (AppID, AppSecret, allowed redirect domain).
    pub fn register_app(&self, app_id: &str, secret: &str, redirect_domain: Option<&str>) {
        self.inner.lock().register_app(app_id, secret, redirect_domain)
    }

    /// Issue a grant directly (as a completed device-code or auth-code exchange would).
    /// Applies the grant limit: the oldest live grant of (user, app) may be evicted.
    pub fn authorize(&self, user: u64, app_id: &str) -> Tokens {
        let now = self.inner.now_ms();
        self.inner.lock().new_grant(user, app_id, now).expect("authorize")
    }

    /// Revoke a grant (user revoked the app in the 115 app / device management).
    pub fn revoke(&self, grant: u64) {
        self.inner.lock().set_grant_state(grant, GrantState::Revoked)
    }

    pub fn grant_info(&self, grant: u64) -> Option<GrantInfo> {
        let now = self.inner.now_ms();
        self.inner.lock().grant_info(grant, now)
    }

    /// All grants ever issued for (user, app), oldest first.
    pub fn grants(&self, user: u64, app_id: &str) -> Vec<GrantInfo> {
        let now = self.inner.now_ms();
        let st = self.inner.lock();
        st.grants
            .values()
            .filter(|g| g.user == user && g.app == app_id)
            .filter_map(|g| st.grant_info(g.id, now))
            .collect()
    }

    /// Successful refreshes of a grant.
    pub fn refresh_count(&self, grant: u64) -> u64 {
        self.inner.lock().grants.get(&grant).map(|g| g.refresh_ok).unwrap_or(0)
    }

    /// Refresh attempts (successful or not) that presented a token of this grant.
    pub fn refresh_attempts(&self, grant: u64) -> u64 {
        self.inner.lock().grants.get(&grant).map(|g| g.refresh_attempts).unwrap_or(0)
    }

    /// Would this refresh token be accepted right now (ignoring the min interval)?
    pub fn is_refresh_token_live(&self, token: &str) -> bool {
        let now = self.inner.now_ms();
        self.inner.lock().refresh_token_live(token, now)
    }

    /// Would this access token be accepted right now?
    pub fn is_access_token_live(&self, token: &str) -> bool {
        let now = self.inner.now_ms();
        self.inner.lock().check_access(token, now).is_ok()
    }

    /// The live refresh tokens of all live grants of (user, app).
    pub fn live_refresh_tokens(&self, user: u64, app_id: &str) -> Vec<String> {
        let now = self.inner.now_ms();
        let st = self.inner.lock();
        st.grants
            .values()
            .filter(|g| g.user == user && g.app == app_id)
            .filter(|g| st.refresh_token_live(&g.refresh_token, now))
            .map(|g| g.refresh_token.clone())
            .collect()
    }

    /// Current tokens of a grant (what a perfect client would hold).
    pub fn current_tokens(&self, grant: u64) -> Option<Tokens> {
        let st = self.inner.lock();
        let g = st.grants.get(&grant)?;
        Some(Tokens {
            access_token: g.access_token.clone(),
            refresh_token: g.refresh_token.clone(),
            expires_in: st.opts.access_token_ttl.as_secs(),
            grant,
        })
    }

    /// Make the current access token of a grant expire now.
    pub fn expire_access_token(&self, grant: u64) {
        let now = self.inner.now_ms();
        if let Some(g) = self.inner.lock().grants.get_mut(&grant) {
            g.access_expires_ms = now;
        }
    }

    /// Who is "logged in" in the browser for `GET /open/authorize` (ref §2.2).
    pub fn set_browser_user(&self, user: Option<u64>) {
        self.inner.lock().browser_user = user;
    }

    // ----------------------------------------------------------------- QR / device code

    /// The most recent device-code session (created by `authDeviceCode`).
    pub fn latest_qr(&self) -> Option<QrSession> {
        let st = self.inner.lock();
        st.qr_order.last().and_then(|uid| st.qr.get(uid)).map(|q| QrSession {
            uid: q.uid.clone(),
            app_id: q.app.clone(),
            status: q.status,
        })
    }

    /// The phone scanned the code (status 1).
    pub fn qr_scan(&self, uid: &str, user: u64) -> bool {
        self.inner.qr_set(uid, |q| {
            if q.status == 0 {
                q.status = 1;
                q.user = Some(user);
                true
            } else {
                false
            }
        })
    }

    /// The user confirmed on the phone (status 2).
    pub fn qr_confirm(&self, uid: &str) -> bool {
        self.inner.qr_set(uid, |q| {
            if q.status == 1 {
                q.status = 2;
                true
            } else {
                false
            }
        })
    }

    /// The user cancelled (status -2).
    pub fn qr_cancel(&self, uid: &str) -> bool {
        self.inner.qr_set(uid, |q| {
            q.status = -2;
            true
        })
    }

    /// Expire the code now (status -1).
    pub fn qr_expire(&self, uid: &str) -> bool {
        self.inner.qr_set(uid, |q| {
            q.status = -1;
            true
        })
    }

    // ----------------------------------------------------------------- files

    /// Create a folder under `parent` (0 = root).  Panics if the parent is missing.
    pub fn mkdir(&self, user: u64, parent: u64, name: &str) -> u64 {
        let now = self.inner.now_ms() / 1000;
        self.inner.lock().create_node(user, parent, name, true, None, now).expect("mkdir")
    }

    /// `mkdir -p` for a `/`-separated path; returns the id of the last folder.
    pub fn mkdir_p(&self, user: u64, path: &str) -> u64 {
        let now = self.inner.now_ms() / 1000;
        let mut st = self.inner.lock();
        let mut cur = 0;
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            cur = match st.child_named(user, cur, comp) {
                Some(id) if st.nodes[&id].is_dir => id,
                _ => st.create_node(user, cur, comp, true, None, now).expect("mkdir_p"),
            };
        }
        cur
    }

    /// Store a file (its content also becomes known for rapid upload).
    pub fn put_file(&self, user: u64, parent: u64, name: &str, bytes: &[u8]) -> u64 {
        let now = self.inner.now_ms() / 1000;
        let mut st = self.inner.lock();
        let sha1 = st.add_blob(bytes::Bytes::copy_from_slice(bytes));
        st.create_node(user, parent, name, false, Some(sha1), now).expect("put_file")
    }

    /// Make content known to the rapid-upload store without creating a file
    /// (someone else on 115 uploaded it).  Returns the uppercase SHA-1.
    pub fn add_known_content(&self, bytes: &[u8]) -> String {
        self.inner.lock().add_blob(bytes::Bytes::copy_from_slice(bytes))
    }

    /// Resolve a `/`-separated path (visible items only); `"/"` is 0.
    pub fn lookup(&self, user: u64, path: &str) -> Option<u64> {
        let st = self.inner.lock();
        let mut cur = 0;
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            cur = st.child_named(user, cur, comp)?;
        }
        Some(cur)
    }

    pub fn entry(&self, id: u64) -> Option<Entry> {
        let st = self.inner.lock();
        st.nodes.get(&id).map(|n| st.entry_of(n))
    }

    /// Visible children of a folder (0 = root), sorted by name then id.
    pub fn children(&self, user: u64, dir: u64) -> Vec<Entry> {
        let st = self.inner.lock();
        let mut v: Vec<Entry> =
            st.visible_children(user, dir).into_iter().map(|id| st.entry_of(&st.nodes[&id])).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        v
    }

    /// Content of a file (also of one in the recycle bin).
    pub fn file_bytes(&self, id: u64) -> Option<Vec<u8>> {
        let st = self.inner.lock();
        let n = st.nodes.get(&id)?;
        let sha = n.sha1.as_ref()?;
        st.blobs.get(sha).map(|b| b.to_vec())
    }

    /// Top-level items in a user's recycle bin.
    pub fn recycle_bin(&self, user: u64) -> Vec<Entry> {
        let st = self.inner.lock();
        let mut v: Vec<Entry> =
            st.nodes.values().filter(|n| n.user == user && n.recycled.is_some()).map(|n| st.entry_of(n)).collect();
        v.sort_by_key(|e| e.id);
        v
    }

    /// Make every download link issued so far expire now.
    pub fn expire_links(&self) {
        let mut st = self.inner.lock();
        for l in st.links.values_mut() {
            l.expires_ms = 0;
        }
    }

    /// Number of download links issued so far.
    pub fn links_issued(&self) -> usize {
        self.inner.lock().links.len()
    }

    // ----------------------------------------------------------------- upload inspection

    /// Pending upload sessions (status-1 inits whose callback has not run yet).
    pub fn pending_uploads(&self) -> usize {
        self.inner.lock().uploads.len()
    }

    /// Open OSS multipart uploads.
    pub fn open_multipart_uploads(&self) -> usize {
        self.inner.lock().multiparts.len()
    }

    // ----------------------------------------------------------------- offline

    pub fn offline_tasks(&self, user: u64) -> Vec<OfflineTask> {
        let st = self.inner.lock();
        st.offline.iter().filter(|t| t.user == user).cloned().collect()
    }

    /// Set a task's progress (status 1 while < 100).
    pub fn offline_progress(&self, info_hash: &str, percent: f64) -> bool {
        let now = self.inner.now_ms() / 1000;
        let mut st = self.inner.lock();
        match st.offline.iter_mut().find(|t| t.info_hash == info_hash) {
            Some(t) => {
                t.percent_done = percent;
                t.status = 1;
                t.last_update = now;
                true
            }
            None => false,
        }
    }

    /// Finish a task: the content appears as a file named after the task in its target dir.
    pub fn offline_complete(&self, info_hash: &str, content: &[u8]) -> Option<u64> {
        let now = self.inner.now_ms() / 1000;
        self.inner.lock().offline_complete(info_hash, content, now)
    }

    /// Fail a task (status -1).
    pub fn offline_fail(&self, info_hash: &str) -> bool {
        let mut st = self.inner.lock();
        match st.offline.iter_mut().find(|t| t.info_hash == info_hash) {
            Some(t) => {
                t.status = -1;
                true
            }
            None => false,
        }
    }

    /// Remaining offline quota of a user.
    pub fn set_offline_quota(&self, user: u64, remaining: u32) {
        if let Some(u) = self.inner.lock().users.get_mut(&user) {
            u.offline_used = 0;
            u.offline_quota = remaining;
        }
    }

    // ----------------------------------------------------------------- faults / counters

    /// Inject a fault for every request whose `host/path` (no query; a leading `/` is
    /// ignored) starts with `prefix`, until removed.
    pub fn inject(&self, prefix: &str, fault: Fault) -> FaultId {
        FaultId(self.server.inject(prefix, kit_fault(fault)).0)
    }

    /// Inject a fault for the next `times` matching requests.
    pub fn inject_times(&self, prefix: &str, fault: Fault, times: u32) -> FaultId {
        FaultId(self.server.inject(prefix, kit_fault(fault).times(times)).0)
    }

    pub fn remove_fault(&self, id: FaultId) {
        self.server.remove_fault(emukit::FaultId(id.0))
    }

    pub fn clear_faults(&self) {
        self.server.clear_faults()
    }

    /// Requests seen for one endpoint, given as `host/path` (leading `/` optional), e.g.
    /// `"proapi.115.com/open/ufile/files"`; the CDN and OSS bucket hosts count by host.
    pub fn request_count(&self, endpoint: &str) -> u64 {
        let key = endpoint.trim_start_matches('/');
        self.request_counts().get(key).copied().unwrap_or(0)
    }

    /// Requests per endpoint.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        http::counts(&self.inner, &self.server.log())
    }

    /// Every request seen, in order.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.server
            .log()
            .into_iter()
            .map(|r| RequestRecord {
                user_agent: r.header("user-agent"),
                authorization: r.header("authorization"),
                method: r.method,
                host: r.host,
                path: r.path,
                query: r.query,
                status: r.status,
            })
            .collect()
    }

    pub fn reset_counters(&self) {
        self.inner.lock().counters.clear();
        self.server.clear_log();
    }
}

fn hosts_of(o: &Options) -> Vec<String> {
    vec![
        PASSPORT_HOST.into(),
        QRCODE_HOST.into(),
        PROAPI_HOST.into(),
        o.oss_endpoint_host.clone(),
        format!("{}.{}", o.oss_bucket, o.oss_endpoint_host),
        o.cdn_host.clone(),
        BROKER_HOST.into(),
    ]
}

/// The generic faults are emukit's; the 115-specific ones are answered by [`http::handle`].
fn kit_fault(f: Fault) -> emukit::Fault<Fault> {
    match f {
        Fault::Reset => emukit::Fault::reset(),
        Fault::Delay(d) => emukit::Fault::delay(d),
        Fault::SlowBody { chunk, every } => emukit::Fault::slow_body(chunk, every),
        Fault::DropAfter(n) => emukit::Fault::drop_after(n as u64),
        other => emukit::Fault::custom(other),
    }
}
