//! # emu115 — emulator of the 115 cloud web (cookie) API and the 115 share-link API
//!
//! Written from `shared/reference/115-web.md` (the "reference") and `tests/vectors/`, never
//! from a driver. One HTTP/1.1 listener (emukit, path-prefix layout) on 127.0.0.1 serves every real host under a
//! path prefix named after the host: `http://127.0.0.1:PORT/webapi.115.com/files?...`.
//! [`Emu115::endpoint`]`(host)` is the base URL that replaces `https://<host>`;
//! [`Emu115::endpoints`] lists all of them ([`HOSTS`]). Download URLs handed out by the
//! emulator point back to it (host [`CDN_HOST`]).
//!
//! ```text
//! let emu = Emu115::start(Opts::default()).await;          // inside a tokio runtime
//! let cookie = emu.add_user(123456789, "alice");            // "UID=..;CID=..;SEID=..;KID=.."
//! let dir = emu.mkdir(123456789, 0, "Movies");
//! let id = emu.put_file(123456789, dir, "a.mkv", bytes);   // ids are u64 > 2^53
//! // driver config: endpoints override from emu.endpoints(); m115 RSA modulus =
//! // emu.m115_modulus_hex() (TEST key); ec115: the published fixed p115cipher triple, or
//! // real ECDH against emu.ec_server_public_hex().
//! emu.inject("webapi.115.com/files", Fault::throttle().times(2));
//! assert_eq!(emu.calls("webapi.115.com/files"), n);
//! ```
//!
//! ## Reference sections → modules
//! * §0.4 envelopes, §1.4 auth errors, §8 405 HTML → `server.rs`; counters, log, faults → emukit
//! * §1.2 QR login (+ scan-side prompt/slogin/cancel), §1.3 my.115.com, check/sso → `api_auth.rs`
//! * §2.1 `/files`, §2.2 aps natsort, §2.3 get_info, §2.4 category/get, §2.5 getid,
//!   §2.6 index_info, §4.1–4.5 add/batch_rename/move/copy/rb delete, §4.6 rb list/revert/clean
//!   → `api_files.rs`; pick codes per §2.7 → `util::pickcode`
//! * §3.1 chrome downurl with m115 (`m115.rs`, server side with the TEST private key),
//!   §3.5 CDN links (UA binding, expiry `t`, optional `f=3` cookie, Range) → `api_down.rs`
//! * §5.2 uploadinfo, §5.3 initupload 4.0 (sig/token, statuses 1/2/7), §5.4 ec115
//!   (`ec115.rs`), §5.5 gettoken + OSS V1 signature, PUT / multipart + callback → `api_upload.rs`
//! * §6.1–6.4 lixianssp add (m115), task_lists, task_del, task_clear → `api_offline.rs`
//! * §7.2 share snap, §7.3 (a) app downurl m115 + (b) web downurl, §7.4 receive → `api_share.rs`
//!
//! ## Where the reference is uncertain, the stricter reading (grep `STRICT:`)
//! `/files` limits above 1150 are clamped and the clamp is echoed; `t` required on m115
//! endpoints; initupload: uppercase `fileid`, token checked like sig (400), status 7 always
//! for known content ≥ 1 MiB, `sign_val` exact uppercase, sign_key single-use and valid for
//! `sign_check_window`; OSS: V1 signature + STS token verified, `sequential` required on
//! multipart initiate, parts ≥ 100 KiB, callback fails (203) unless size/SHA-1/vars match;
//! CDN: UA must equal the downurl UA (absent == empty), 403 on mismatch/expiry/tampering;
//! share downurl (a) refuses non-115 UAs, (b) needs login and the 115cdn referer;
//! unchanged rename answers "更新的数据为空" with state false; category/get fails for root;
//! QR status checks `time`+`sign`; logged-out check/sso has non-zero state.
//!
//! ## Not emulated
//! legacy `115.com/?ct=offline` sign flow and `115.com/web/lixian`; android/os_* ufile
//! download(url) variants, `files/download`, `?ct=download&ac=video`, app/desktop share
//! downurl (c); labels, `files/search`, `files/get_path_id`, `offine/downpath`;
//! resumeupload / sampleinitupload; `add_task_bt`; system dirs at the root (`sys_count` 0);
//! the 25-level depth limit; proapi rejecting superseded cookies earlier than webapi;
//! rename's extension truncation (§4.2 wording too ambiguous to emulate); multi-range
//! requests (only the first range is served); a true TCP RST (a "reset" closes the
//! connection without a response).

pub mod ec115;
pub mod m115;
pub mod util;

mod api_auth;
mod api_down;
mod api_files;
mod api_offline;
mod api_share;
mod api_upload;
mod server;
mod state;

use bytes::Bytes;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use state::State;

/// Every host the emulator serves (each under `/<host>/...`).
pub const HOSTS: &[&str] = &[
    "webapi.115.com",
    "web.api.115.com",
    "aps.115.com",
    "proapi.115.com",
    "my.115.com",
    "passportapi.115.com",
    "hnpassportapi.115.com",
    "qrcodeapi.115.com",
    "hnqrcodeapi.115.com",
    "uplb.115.com",
    "lixian.115.com",
    "clouddownload.115.com",
    "appversion.115.com",
    OSS_HOST,
    OSS_ENDPOINT_HOST,
    CDN_HOST,
];

/// Virtual-hosted OSS bucket host (bucket `fhnfile`). Path-style `OSS_ENDPOINT_HOST/{bucket}/{object}` also works.
pub const OSS_HOST: &str = "fhnfile.oss-cn-shenzhen.aliyuncs.com";
pub const OSS_ENDPOINT_HOST: &str = "oss-cn-shenzhen.aliyuncs.com";
pub const OSS_BUCKET: &str = "fhnfile";
/// Host of the signed download URLs (`*.115cdn.net`, §0.2).
pub const CDN_HOST: &str = "cdnfhnfile.115cdn.net";

/// Emulator options. `Opts::default()` is the documented behaviour.
#[derive(Clone, Debug)]
pub struct Opts {
    /// Lifetime of download URLs (`t` query param). Reference: "about 1 h" [unconfirmed].
    pub link_ttl: Duration,
    /// `f=3` links: the CDN also requires the `<32hex>=<32hex>` cookie that the downurl
    /// response set (§3.5). Default `false` → `f=1` (UA only), as in the reference's examples.
    pub link_require_cookie: bool,
    /// `/files` page-size maximum (§2.1: 1150). Larger `limit`s are clamped.
    pub files_max_limit: usize,
    /// `aps natsort` maximum (§2.2: 1200).
    pub natsort_max_limit: usize,
    /// Emit `share_state`/`receive_count`/`auto_renewal`/`auto_fill_recvcode` as numbers
    /// (post-Aug-2025) instead of strings (§7.2). Switch at run time with
    /// [`Emu115::set_share_state_numeric`].
    pub share_state_numeric: bool,
    /// Web share downurl (§7.3 b) answers the bare "当前版本过低" error.
    pub share_web_downurl_version_gate: bool,
    /// Size cap of the web share downurl (200 MB, §7.3 b / §8).
    pub share_web_downurl_max: u64,
    /// chrome downurl answers 50028 above this size (threshold unknown, §3.1). None = no cap.
    pub downurl_max_size: Option<u64>,
    /// Files at least this big get the status-7 second round on a rapid-upload hit (§5.3: ≥ 1 MiB).
    pub sign_check_min_size: u64,
    /// After this long, a status-7 `sign_key` is answered with "sig invalid" (§5.3 time window).
    pub sign_check_window: Duration,
    /// QR token lifetime (§1.2.6: ~5 min assumed).
    pub qr_ttl: Duration,
    /// How long `/get/status/` holds the request waiting for a change (long-poll, §1.2.3).
    pub qr_long_poll: Duration,
    /// Artificial duration of move/copy/delete; a concurrent one gets 990019/990009 (§4, §8).
    pub mutation_latency: Duration,
    /// Per-cookie token bucket → 405 HTML when exceeded (§8). None = off.
    pub throttle: Option<Throttle>,
    /// STS token lifetime (§5.5: ≈ 1 h).
    pub sts_ttl: Duration,
    /// Verify the OSS V1 `Authorization` signature and `x-oss-security-token` (§5.5).
    pub oss_check_signature: bool,
    /// Minimum multipart part size except the last one (§8: 100 KiB).
    pub oss_min_part_size: u64,
    /// Offline quota per user (tasks).
    pub offline_quota: u32,
    /// initupload rejects `appversion` lower than this with "请升级到最新版本" (§0.3). None = off.
    pub min_app_version: Option<String>,
    /// uploadinfo `size_limit` (§5.2).
    pub size_limit: u64,
    /// Space per user (index_info, copy 91005).
    pub space_total: u64,
    /// Test P-224 server scalar (hex, 28 bytes). None = random per emulator.
    pub ec_server_scalar_hex: Option<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            link_ttl: Duration::from_secs(3600),
            link_require_cookie: false,
            files_max_limit: 1150,
            natsort_max_limit: 1200,
            share_state_numeric: true,
            share_web_downurl_version_gate: false,
            share_web_downurl_max: 200 * 1024 * 1024,
            downurl_max_size: None,
            sign_check_min_size: 1024 * 1024,
            sign_check_window: Duration::from_secs(120),
            qr_ttl: Duration::from_secs(300),
            qr_long_poll: Duration::ZERO,
            mutation_latency: Duration::ZERO,
            throttle: None,
            sts_ttl: Duration::from_secs(3600),
            oss_check_signature: true,
            oss_min_part_size: 100 * 1024,
            offline_quota: 1500,
            min_app_version: None,
            size_limit: 115_964_116_992,
            space_total: 16_492_674_416_640,
            ec_server_scalar_hex: None,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Throttle {
    pub rate_per_sec: f64,
    pub burst: u32,
}

/// A fault to inject on requests whose `host/path` matches a pattern (see [`Emu115::inject`]).
#[derive(Clone, Debug)]
pub struct Fault {
    pub kind: FaultKind,
    /// How many matching requests are affected; `None` = until cleared.
    pub times: Option<u32>,
}

#[derive(Clone, Debug)]
pub enum FaultKind {
    /// Plain-text HTTP error with this status (e.g. 500, 502, 503).
    Status(u16),
    /// The §8 405 HTML throttle page.
    Throttle,
    /// The §7.2 WAF "访问被阻断" HTML page (status 403).
    WafBlock,
    /// Close the connection without any response.
    Reset,
    /// Stream the body in `chunk`-byte pieces with `delay` before each piece.
    SlowBody { chunk: usize, delay: Duration },
    /// Send `bytes` bytes of the body, then drop the connection.
    DropAfter { bytes: u64 },
    /// "Link expiry now": applied at injection time to every download URL handed out so
    /// far whose CDN path matches the pattern (use `"*"` or the CDN host for all). Not stored.
    ExpireLinks,
}

impl Fault {
    pub fn status(code: u16) -> Fault {
        Fault { kind: FaultKind::Status(code), times: None }
    }
    pub fn throttle() -> Fault {
        Fault { kind: FaultKind::Throttle, times: None }
    }
    pub fn waf_block() -> Fault {
        Fault { kind: FaultKind::WafBlock, times: None }
    }
    pub fn reset() -> Fault {
        Fault { kind: FaultKind::Reset, times: None }
    }
    pub fn slow_body(chunk: usize, delay: Duration) -> Fault {
        Fault { kind: FaultKind::SlowBody { chunk: chunk.max(1), delay }, times: None }
    }
    pub fn drop_after(bytes: u64) -> Fault {
        Fault { kind: FaultKind::DropAfter { bytes }, times: None }
    }
    pub fn expire_links() -> Fault {
        Fault { kind: FaultKind::ExpireLinks, times: None }
    }
    /// Limit the fault to the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Fault {
        self.times = Some(n);
        self
    }
}

/// Share states (§7.2 table, elevengo values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareState {
    UnderReview,
    Ok,
    Rejected,
    Canceled,
    Deleted,
    Expired,
    Generating,
    Failed,
    Raw(i32),
}

impl ShareState {
    pub fn code(self) -> i32 {
        match self {
            ShareState::UnderReview => 0,
            ShareState::Ok => 1,
            ShareState::Rejected => 2,
            ShareState::Canceled => 4,
            ShareState::Deleted => 5,
            ShareState::Expired => 7,
            ShareState::Generating => 8,
            ShareState::Failed => 9,
            ShareState::Raw(v) => v,
        }
    }
}

/// Inspection view of a file or folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    pub id: u64,
    pub parent_id: u64,
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
    /// Uppercase SHA-1 ("" for folders).
    pub sha1: String,
    pub pick_code: String,
    pub ctime: i64,
    pub mtime: i64,
    pub in_recycle_bin: bool,
}

/// One served request, for inspection.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// `host/path` (e.g. `webapi.115.com/files`).
    pub key: String,
    pub query: String,
    pub user_agent: Option<String>,
    pub referer: Option<String>,
    pub cookie: Option<String>,
    /// Request body length in bytes.
    pub body_len: usize,
}

/// Share handle returned by [`Emu115::create_share`].
#[derive(Clone, Debug)]
pub struct ShareHandle {
    pub share_code: String,
    pub receive_code: String,
}

/// Offline task view.
#[derive(Clone, Debug)]
pub struct TaskInfo {
    pub info_hash: String,
    pub name: String,
    pub url: String,
    pub status: i32,
    pub percent_done: f64,
    pub file_id: Option<u64>,
    pub wp_path_id: u64,
}

pub(crate) struct Inner {
    pub state: Mutex<State>,
    pub notify: tokio::sync::Notify,
    pub base: String,
}

impl Inner {
    pub fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running emulator. Dropping it stops the listener.
pub struct Emu115 {
    inner: Arc<Inner>,
    port: u16,
    server: emukit::Server<()>,
}

impl Emu115 {
    /// `start(Opts::default())`.
    pub async fn start_default() -> Emu115 {
        Emu115::start(Opts::default()).await
    }

    /// Bind 127.0.0.1:0 and serve. Must be called inside a tokio runtime.
    pub async fn start(opts: Opts) -> Emu115 {
        let ec = match &opts.ec_server_scalar_hex {
            Some(h) => ec115::ServerKey::from_scalar_hex(h).expect("ec_server_scalar_hex"),
            None => ec115::ServerKey::generate(),
        };
        let bind = emukit::BindOptions { layout: emukit::Layout::PathPrefix, ..Default::default() };
        let bound = emukit::Bound::bind(HOSTS, &bind).await.expect("bind 127.0.0.1:0");
        let port = bound.ports()["*"];
        let inner = Arc::new(Inner {
            state: Mutex::new(State::new(opts, ec)),
            notify: tokio::sync::Notify::new(),
            base: bound.base_url().expect("path-prefix base"),
        });
        let h = inner.clone();
        let server = bound.serve(move |req, _: Option<()>| server::handle(h.clone(), req));
        Emu115 { inner, port, server }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        self.inner.base.clone()
    }

    /// Base URL replacing `https://<host>` (no trailing slash), e.g.
    /// `endpoint("webapi.115.com") == "http://127.0.0.1:PORT/webapi.115.com"`.
    pub fn endpoint(&self, host: &str) -> String {
        format!("{}/{}", self.inner.base, host)
    }

    /// `(real host, base URL)` for every served host.
    pub fn endpoints(&self) -> Vec<(String, String)> {
        HOSTS.iter().map(|h| (h.to_string(), self.endpoint(h))).collect()
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.inner.st()
    }

    // ---------------------------------------------------------------- users & cookies

    /// Create a user and a `web` (A1) session. Returns the cookie header value
    /// `UID=..;CID=..;SEID=..;KID=..`.
    pub fn add_user(&self, user_id: u64, name: &str) -> String {
        let mut st = self.st();
        st.add_user(user_id, name);
        st.login(user_id, "web").unwrap().cookie()
    }

    /// A new session for `app` (e.g. "tv", "alipaymini"); invalidates the previous session
    /// of the same device type only (§1.1).
    pub fn login(&self, user_id: u64, app: &str) -> Option<String> {
        let mut st = self.st();
        if !st.users.contains_key(&user_id) {
            return None;
        }
        st.login(user_id, app).map(|s| s.cookie())
    }

    /// Kill every session of the user (→ 990001 on `/files`, 99 elsewhere, §1.4).
    pub fn expire_cookie(&self, user_id: u64) {
        for s in self.st().sessions.iter_mut().filter(|s| s.user_id == user_id) {
            s.alive = false;
        }
    }

    /// Kill one session given its cookie string.
    pub fn expire_session(&self, cookie: &str) {
        let mut st = self.st();
        let uid = st.session_for(&[cookie.to_string()]).map(|s| s.uid.clone());
        if let Some(uid) = uid {
            for s in st.sessions.iter_mut().filter(|s| s.uid == uid) {
                s.alive = false;
            }
        }
    }

    /// `userkey` as served by uploadinfo (used in `sig`).
    pub fn userkey(&self, user_id: u64) -> Option<String> {
        self.st().users.get(&user_id).map(|u| u.userkey.clone())
    }

    pub fn set_userkey(&self, user_id: u64, key: &str) {
        if let Some(u) = self.st().users.get_mut(&user_id) {
            u.userkey = key.to_string();
        }
    }

    /// Remaining offline quota (10010 at zero).
    pub fn set_offline_quota(&self, user_id: u64, left: u32) {
        if let Some(u) = self.st().users.get_mut(&user_id) {
            u.offline_quota_left = left;
        }
    }

    pub fn set_space_total(&self, user_id: u64, total: u64) {
        if let Some(u) = self.st().users.get_mut(&user_id) {
            u.space_total = total;
        }
    }

    // ---------------------------------------------------------------- file tree seeding

    /// Store a file (content deduplicated by SHA-1, so it also becomes a rapid-upload hit).
    pub fn put_file(&self, user_id: u64, parent_id: u64, name: &str, data: impl Into<Bytes>) -> u64 {
        let b: Bytes = data.into();
        self.st().insert_node(user_id, parent_id, name, false, Some(&b))
    }

    pub fn mkdir(&self, user_id: u64, parent_id: u64, name: &str) -> u64 {
        self.st().insert_node(user_id, parent_id, name, true, None)
    }

    /// Create every missing folder of `/a/b/c` and return the last id.
    pub fn mkdir_p(&self, user_id: u64, path: &str) -> u64 {
        let mut cur = 0;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            let existing = {
                let st = self.st();
                st.children(user_id, cur).iter().find(|n| n.is_dir && n.name == part).map(|n| n.id)
            };
            cur = match existing {
                Some(id) => id,
                None => self.mkdir(user_id, cur, part),
            };
        }
        cur
    }

    /// Put raw bytes into the global content store (rapid-upload hit without a file).
    pub fn add_known_content(&self, data: impl Into<Bytes>) -> String {
        let b: Bytes = data.into();
        let sha = util::sha1_upper(&b);
        self.st().content.insert(sha.clone(), b);
        sha
    }

    pub fn set_times(&self, id: u64, ctime: i64, mtime: i64) {
        if let Some(n) = self.st().nodes.get_mut(&id) {
            n.ctime = ctime;
            n.mtime = mtime;
            n.atime = mtime;
        }
    }

    pub fn set_starred(&self, id: u64, starred: bool) {
        if let Some(n) = self.st().nodes.get_mut(&id) {
            n.starred = starred;
        }
    }

    // ---------------------------------------------------------------- inspection

    /// Bytes of a file (any state, including the recycle bin).
    pub fn file_bytes(&self, id: u64) -> Option<Bytes> {
        let st = self.st();
        let n = st.nodes.get(&id)?;
        if n.is_dir {
            return None;
        }
        st.content.get(&n.sha1).cloned()
    }

    /// Live children (not in the recycle bin), in id order.
    pub fn list_children(&self, user_id: u64, parent_id: u64) -> Vec<EntryInfo> {
        let st = self.st();
        st.children(user_id, parent_id).into_iter().map(|n| st.entry_info(n)).collect()
    }

    pub fn entry(&self, id: u64) -> Option<EntryInfo> {
        let st = self.st();
        st.nodes.get(&id).map(|n| st.entry_info(n))
    }

    /// Is the item alive (exists and not in the recycle bin, directly or via an ancestor)?
    pub fn is_alive(&self, id: u64) -> bool {
        let st = self.st();
        st.nodes.contains_key(&id) && st.alive(id)
    }

    /// Resolve `/a/b/c` (first match on duplicate names). `/` is 0.
    pub fn find_path(&self, user_id: u64, path: &str) -> Option<u64> {
        let st = self.st();
        let mut cur = 0;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            let mut kids = st.children(user_id, cur);
            kids.sort_by_key(|n| n.id);
            cur = kids.iter().find(|n| n.name == part)?.id;
        }
        Some(cur)
    }

    /// Top-level items in the recycle bin.
    pub fn recycle_bin(&self, user_id: u64) -> Vec<EntryInfo> {
        let st = self.st();
        st.nodes.values().filter(|n| n.owner == user_id && n.deleted.is_some()).map(|n| st.entry_info(n)).collect()
    }

    pub fn pick_code(&self, id: u64) -> Option<String> {
        self.st().nodes.get(&id).map(|n| n.pc.clone())
    }

    // ---------------------------------------------------------------- counters & log

    /// Served requests of the emulated hosts (unknown hosts excluded), in arrival order.
    fn served(&self) -> Vec<emukit::LoggedRequest> {
        self.server.log_filter(|r| HOSTS.contains(&r.host.as_str()))
    }

    /// Requests served for `host/path` (trailing `/` trimmed; e.g. `webapi.115.com/files`).
    /// Query-dispatched endpoints are also counted as `host/path?ac=NAME`.
    pub fn calls(&self, key: &str) -> u64 {
        let k = key.trim_end_matches('/');
        let (base, ac) = match k.split_once("?ac=") {
            Some((b, a)) => (b, Some(a)),
            None => (k, None),
        };
        self.served()
            .iter()
            .filter(|r| r.key().trim_end_matches('/') == base)
            .filter(|r| ac.is_none_or(|a| r.query_param("ac").as_deref() == Some(a)))
            .count() as u64
    }

    /// Sum of counters whose key starts with `prefix`.
    pub fn calls_prefix(&self, prefix: &str) -> u64 {
        self.served().iter().filter(|r| r.key().trim_end_matches('/').starts_with(prefix)).count() as u64
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.served()
            .into_iter()
            .map(|r| RecordedRequest {
                key: r.key().trim_end_matches('/').to_string(),
                user_agent: r.header("user-agent"),
                referer: r.header("referer"),
                cookie: r.header("cookie"),
                body_len: r.body_len as usize,
                method: r.method,
                query: r.query,
            })
            .collect()
    }

    pub fn reset_counters(&self) {
        self.server.clear_log();
    }

    // ---------------------------------------------------------------- faults & time

    /// Inject a fault for requests whose `host/path` (no query) matches `pattern`: a glob
    /// with `*` if it contains one, otherwise a prefix. Returns an id for [`Emu115::remove_fault`].
    pub fn inject(&self, pattern: &str, fault: Fault) -> u64 {
        if let FaultKind::ExpireLinks = fault.kind {
            let mut st = self.st();
            let now = st.now();
            let pat = pattern.trim_start_matches('/').to_string();
            for (token, l) in st.links.iter_mut() {
                let key = format!("{CDN_HOST}/{token}");
                let m = if pat.contains('*') {
                    emukit::util::glob_match(&pat, &key)
                } else {
                    key.starts_with(&pat) || CDN_HOST.starts_with(&pat)
                };
                if m {
                    l.expires = now - 1;
                }
            }
            return 0;
        }
        let kit = match fault.kind {
            FaultKind::Status(code) => emukit::Fault::status(code),
            FaultKind::Throttle => {
                emukit::Fault::reply(server::to_reply(server::Reply::html(405, server::THROTTLE_HTML)))
            }
            FaultKind::WafBlock => emukit::Fault::reply(server::to_reply(server::Reply::html(403, server::WAF_HTML))),
            FaultKind::Reset => emukit::Fault::reset(),
            FaultKind::SlowBody { chunk, delay } => emukit::Fault::slow_body(chunk, delay),
            FaultKind::DropAfter { bytes } => emukit::Fault::drop_after(bytes),
            FaultKind::ExpireLinks => unreachable!(),
        };
        let kit = match fault.times {
            Some(n) => kit.times(n),
            None => kit,
        };
        self.server.inject(pattern, kit).0
    }

    pub fn remove_fault(&self, id: u64) {
        self.server.remove_fault(emukit::FaultId(id))
    }

    pub fn clear_faults(&self) {
        self.server.clear_faults()
    }

    /// Expire every download URL handed out so far ("link expiry now").
    pub fn expire_links(&self) {
        let mut st = self.st();
        let now = st.now();
        for l in st.links.values_mut() {
            l.expires = now - 1;
        }
    }

    /// Move the emulator clock forward (link/QR/STS/sign-check expiry).
    pub fn advance_time(&self, d: Duration) {
        self.st().clock_offset += d.as_secs() as i64;
    }

    /// Emulator time, unix seconds.
    pub fn now(&self) -> i64 {
        self.st().now()
    }

    // ---------------------------------------------------------------- crypto parameters

    /// X||Y (56 bytes, hex) of the emulator's P-224 test server key, for real ECDH (§0.5 B).
    pub fn ec_server_public_hex(&self) -> String {
        self.st().ec.public_xy_hex()
    }

    /// The m115 TEST RSA modulus (hex) the emulator decrypts/encrypts with (§0.5).
    pub fn m115_modulus_hex(&self) -> String {
        m115::TEST_N_HEX.to_string()
    }

    // ---------------------------------------------------------------- QR hooks (§1.2.6)

    /// Phone scanned the code (status 0 → 1) as `user_id`.
    pub fn qr_scan(&self, qr_uid: &str, user_id: u64) -> bool {
        let ok = {
            let mut st = self.st();
            match st.qr.get_mut(qr_uid) {
                Some(q) if q.status == 0 => {
                    q.status = 1;
                    q.user = Some(user_id);
                    true
                }
                _ => false,
            }
        };
        self.inner.notify.notify_waiters();
        ok
    }

    /// Phone confirmed (1 → 2).
    pub fn qr_confirm(&self, qr_uid: &str) -> bool {
        let ok = {
            let mut st = self.st();
            match st.qr.get_mut(qr_uid) {
                Some(q) if q.status == 1 => {
                    q.status = 2;
                    true
                }
                _ => false,
            }
        };
        self.inner.notify.notify_waiters();
        ok
    }

    /// Phone cancelled (→ -2).
    pub fn qr_cancel(&self, qr_uid: &str) -> bool {
        let ok = {
            let mut st = self.st();
            match st.qr.get_mut(qr_uid) {
                Some(q) if q.status == 0 || q.status == 1 => {
                    q.status = -2;
                    true
                }
                _ => false,
            }
        };
        self.inner.notify.notify_waiters();
        ok
    }

    /// Expire the token now (→ -1 / 40199002).
    pub fn qr_expire(&self, qr_uid: &str) -> bool {
        let ok = {
            let mut st = self.st();
            match st.qr.get_mut(qr_uid) {
                Some(q) => {
                    q.force_expired = true;
                    true
                }
                None => false,
            }
        };
        self.inner.notify.notify_waiters();
        ok
    }

    /// QR tokens issued so far (the 40-hex `uid`s), oldest first.
    pub fn qr_tokens(&self) -> Vec<String> {
        let st = self.st();
        let mut v: Vec<(&String, i64)> = st.qr.iter().map(|(k, q)| (k, q.time)).collect();
        v.sort_by_key(|(_, t)| *t);
        v.into_iter().map(|(k, _)| k.clone()).collect()
    }

    // ---------------------------------------------------------------- offline hooks (§6)

    pub fn offline_tasks(&self, user_id: u64) -> Vec<TaskInfo> {
        self.st()
            .tasks
            .iter()
            .filter(|t| t.user_id == user_id)
            .map(|t| TaskInfo {
                info_hash: t.info_hash.clone(),
                name: t.name.clone(),
                url: t.url.clone(),
                status: t.status,
                percent_done: t.percent,
                file_id: t.file_id,
                wp_path_id: t.wp_path_id,
            })
            .collect()
    }

    /// Finish a task: the file `name` with `data` appears in the task's save directory.
    pub fn offline_complete(&self, user_id: u64, info_hash: &str, data: impl Into<Bytes>) -> Option<u64> {
        let b: Bytes = data.into();
        let mut st = self.st();
        let idx = st.tasks.iter().position(|t| t.user_id == user_id && t.info_hash == info_hash)?;
        let (dir, name) = (st.tasks[idx].wp_path_id, st.tasks[idx].name.clone());
        let id = st.insert_node(user_id, dir, &name, false, Some(&b));
        let now = st.now();
        let t = &mut st.tasks[idx];
        t.status = 2;
        t.percent = 100.0;
        t.size = b.len() as u64;
        t.file_id = Some(id);
        t.last_update = now;
        Some(id)
    }

    /// Set a task's status (0 queued, 1 downloading, 2 done, -1 failed) and percentage.
    pub fn offline_set_status(&self, user_id: u64, info_hash: &str, status: i32, percent: f64) -> bool {
        let mut st = self.st();
        let now = st.now();
        match st.tasks.iter_mut().find(|t| t.user_id == user_id && t.info_hash == info_hash) {
            Some(t) => {
                t.status = status;
                t.percent = percent;
                t.last_update = now;
                true
            }
            None => false,
        }
    }

    // ---------------------------------------------------------------- shares (§7)

    /// Share `ids` (files/folders of `owner`). Share code `[a-z0-9]{11}`, receive code 4 chars.
    pub fn create_share(&self, owner: u64, ids: &[u64]) -> ShareHandle {
        let mut st = self.st();
        let code = loop {
            let c = format!("sw{}", util::rand_alnum(9));
            if !st.shares.contains_key(&c) {
                break c;
            }
        };
        let receive_code = util::rand_alnum(4);
        let title = ids.first().and_then(|i| st.nodes.get(i)).map(|n| n.name.clone()).unwrap_or_default();
        let now = st.now();
        let snap_id = st.alloc_id() % 10_000_000;
        st.shares.insert(
            code.clone(),
            state::Share {
                code: code.clone(),
                owner,
                receive_code: receive_code.clone(),
                ids: ids.to_vec(),
                state: 1,
                title,
                create_time: now,
                expire_time: -1,
                receive_count: 0,
                snap_id,
            },
        );
        ShareHandle { share_code: code, receive_code }
    }

    pub fn set_share_state(&self, share_code: &str, state: ShareState) {
        if let Some(s) = self.st().shares.get_mut(share_code) {
            s.state = state.code();
        }
    }

    pub fn set_share_receive_code(&self, share_code: &str, receive_code: &str) {
        if let Some(s) = self.st().shares.get_mut(share_code) {
            s.receive_code = receive_code.to_string();
        }
    }

    /// `share_state` etc. as JSON numbers (true) or numeric strings (false).
    pub fn set_share_state_numeric(&self, numeric: bool) {
        self.st().share_state_numeric = numeric;
    }

    // ---------------------------------------------------------------- upload inspection

    /// Object stored in the emulated OSS (`bucket`, `object`).
    pub fn oss_object(&self, bucket: &str, object: &str) -> Option<Bytes> {
        self.st().oss_objects.get(&format!("{bucket}/{object}")).cloned()
    }

    /// Human-readable log of upload decisions (statuses, sig checks, callbacks).
    pub fn upload_log(&self) -> Vec<String> {
        self.st().upload_log.clone()
    }
}
