//! The consumer login, shared by `aliyundrive` and `aliyundrive_share` (whose download
//! links need the viewer's own login, ref §8.4):
//!
//! - [`Tokens`]: the grant in the mount's state file (access + single-use refresh token,
//!   the user id the device signature needs);
//! - [`Refresher`]: `POST auth.alipan.com/v2/account/token` (ref §2.1) as the kit's
//!   refresher: the rotated token is saved by the kit's one writer (the `pandav
//!   __refresh` helper) before anyone uses it;
//! - [`ConsumerAuth`]: the mount's credentials plus its device session (ref §3): the
//!   headers every consumer call carries, `create_session` once at start and again when
//!   the service refuses the signature;
//! - [`CallSession`]: the kit `Session` one consumer call goes through, renewing what
//!   the refusal asked for (the token, or the device session) and resending once.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::{self, ApiError, Class, Family, Renew};
use super::hosts;
use super::json;
use super::signature::Device;
use crate::drivers::http::{Call, Endpoints, Http, Response, Session};
use crate::vfs::credentials::{self, now_unix, redact, Credentials, Grant};
use crate::vfs::{DriveError, DriveResult};

/// `X-Canary` of consumer calls (AList, ref §1.2).
pub const CANARY: &str = "client=Android,app=adrive,version=v4.1.0";
/// `X-Canary` of share calls: avoids `ParamFlowException` (ref §1.2, §8.5).
pub const SHARE_CANARY: &str = "client=web,app=share,version=v2.3.1";

/// The consumer grant a mount keeps. `Debug` never shows the tokens.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Tokens {
    pub access_token: String,
    /// Single use: every refresh answers a new one (ref §2.1).
    pub refresh_token: String,
    /// Unix seconds when the access token expires; 0 = unknown (refresh first).
    #[serde(default)]
    pub expires_at: u64,
    #[serde(default)]
    pub issued_at: u64,
    /// The account (signs the device signature, ref §3.1).
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub default_drive_id: String,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &redact(&self.access_token))
            .field("refresh_token", &redact(&self.refresh_token))
            .field("expires_at", &self.expires_at)
            .field("user_id", &self.user_id)
            .finish()
    }
}

impl Grant for Tokens {
    /// The refresh token; a grant without one (an Open PKCE login, ref §2.5) is told
    /// apart by its access token, so that a new login of that kind still revives a mount.
    fn rotating(&self) -> &str {
        if self.refresh_token.is_empty() {
            &self.access_token
        } else {
            &self.refresh_token
        }
    }

    fn usable(&self) -> bool {
        !self.access_token.is_empty()
    }
}

impl Tokens {
    /// A refresh token from the config: no access token yet.
    pub fn from_refresh_token(rt: &str) -> Tokens {
        Tokens { refresh_token: rt.trim().to_string(), ..Tokens::default() }
    }

    /// Seconds of validity left (0 when expired or unknown).
    pub fn remaining(&self) -> u64 {
        self.expires_at.saturating_sub(now_unix())
    }

    /// Refresh this long before expiry: 5 minutes (messense: 200 s), or a fifth of a short
    /// lifetime.
    pub fn margin(&self) -> u64 {
        match self.expires_at.saturating_sub(self.issued_at) {
            0 => 300,
            life => (life / 5).min(300),
        }
    }

    /// Due for a refresh (unknown expiry counts as due).
    pub fn due(&self) -> bool {
        self.expires_at == 0 || self.remaining() <= self.margin()
    }
}

/// The answer of `/v2/account/token` (ref §2.1; values we need).
#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default, deserialize_with = "json::string")]
    access_token: String,
    #[serde(default, deserialize_with = "json::string")]
    refresh_token: String,
    #[serde(default, deserialize_with = "json::uint")]
    expires_in: u64,
    #[serde(default, deserialize_with = "json::string")]
    user_id: String,
    #[serde(default, deserialize_with = "json::string")]
    default_drive_id: String,
}

/// What to tell a user whose login is gone, for mount `mount`.
pub fn relogin_hint(mount: &str) -> String {
    format!("run `pandav login aliyundrive --config <your config> --mount {mount}` (or set a new refresh_token)")
}

/// How a consumer mount rotates its tokens: the kit's refresher (ref §2.1).
pub struct Refresher {
    pub http: reqwest::Client,
    pub ep: Endpoints,
    pub mount: String,
}

impl Refresher {
    /// One exchange at the auth host. The old refresh token is dead once this answers.
    pub async fn exchange(&self, refresh_token: &str) -> Result<Tokens, credentials::RefreshError> {
        use credentials::RefreshError as R;
        if refresh_token.trim().is_empty() {
            return Err(R::Dead(format!("Aliyun Drive: no refresh token; {}", relogin_hint(&self.mount))));
        }
        let url = self.ep.url(hosts::AUTH, "/v2/account/token");
        let resp = self
            .http
            .post(url)
            .json(&json!({"grant_type": "refresh_token", "refresh_token": refresh_token}))
            .send()
            .await
            .map_err(|e| R::Transient(redact_err(e)))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| R::Transient(redact_err(e)))?;
        if !(200..300).contains(&status) {
            let e = ApiError::parse(status, &body);
            return Err(match error::classify(Family::Consumer, &e) {
                Class::LoginDead => R::Dead(format!(
                    "Aliyun Drive: the refresh token was refused ({}: expired, revoked or already used); {}",
                    if e.code.is_empty() { format!("HTTP {status}") } else { e.code.clone() },
                    relogin_hint(&self.mount)
                )),
                Class::Throttled => R::TooFrequent,
                _ => R::Transient(e.describe("token refresh")),
            });
        }
        let a: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|_| R::Transient(format!("token refresh: HTTP {status}, unreadable answer")))?;
        if a.access_token.is_empty() || a.refresh_token.is_empty() {
            // AList treats an empty refresh token in a 200 as an error (ref §2.1).
            return Err(R::Transient("token refresh answered without a token".into()));
        }
        let now = now_unix();
        let life = if a.expires_in == 0 { 7200 } else { a.expires_in };
        Ok(Tokens {
            access_token: a.access_token,
            refresh_token: a.refresh_token,
            expires_at: now + life,
            issued_at: now,
            user_id: a.user_id,
            default_drive_id: a.default_drive_id,
        })
    }
}

fn redact_err(e: reqwest::Error) -> String {
    crate::drivers::http::redact(&e.without_url().to_string())
}

#[async_trait::async_trait]
impl credentials::Refresh<Tokens> for Refresher {
    async fn refresh(&self, held: &Tokens) -> Result<Tokens, credentials::RefreshError> {
        let mut t = self.exchange(&held.refresh_token).await?;
        if t.user_id.is_empty() {
            t.user_id = held.user_id.clone();
        }
        if t.default_drive_id.is_empty() {
            t.default_drive_id = held.default_drive_id.clone();
        }
        Ok(t)
    }
}

/// A mount's consumer login: the rotating tokens (kit credentials) and the device
/// session.
pub struct ConsumerAuth {
    pub creds: Credentials<Tokens>,
    pub ep: Endpoints,
    pub mount: String,
    /// The device of the last user id seen (derived, ref §3.1).
    device: Mutex<Option<Arc<Device>>>,
    /// Bumped when a session is (re)created, so concurrent refusals make one session.
    device_gen: AtomicU64,
    device_flight: tokio::sync::Mutex<()>,
    /// Sessions created by this mount (for tests and logs).
    pub sessions_created: AtomicU64,
    /// The user id learned from `/v2/user/get` when the grant lacks one.
    user_id: Mutex<String>,
}

impl ConsumerAuth {
    pub fn new(creds: Credentials<Tokens>, ep: Endpoints, mount: &str) -> ConsumerAuth {
        ConsumerAuth {
            creds,
            ep,
            mount: mount.to_string(),
            device: Mutex::new(None),
            device_gen: AtomicU64::new(0),
            device_flight: tokio::sync::Mutex::new(()),
            sessions_created: AtomicU64::new(0),
            user_id: Mutex::new(String::new()),
        }
    }

    /// Sign as `user_id` when the grant does not say (learned from `/v2/user/get`).
    pub fn set_user_id(&self, user_id: &str) {
        *self.user_id.lock().unwrap() = user_id.to_string();
    }

    /// The user id of grant `t` (or the one learned).
    pub fn user_id_of(&self, t: &Tokens) -> String {
        if t.user_id.is_empty() {
            self.user_id.lock().unwrap().clone()
        } else {
            t.user_id.clone()
        }
    }

    /// The tokens in force (never log them).
    pub fn tokens(&self) -> Arc<Tokens> {
        self.creds.get().0
    }

    /// The device signing for `user_id` (`None` before the user id is known).
    pub fn device(&self, user_id: &str) -> Option<Arc<Device>> {
        if user_id.is_empty() {
            return None;
        }
        let mut g = self.device.lock().unwrap();
        match g.as_ref() {
            Some(d) if d.user_id == user_id => Some(Arc::clone(d)),
            _ => {
                let d = Arc::new(Device::for_user(user_id));
                *g = Some(Arc::clone(&d));
                Some(d)
            }
        }
    }

    /// The headers of a consumer call made with `t` (ref §1.2): Bearer token, JSON,
    /// `X-Canary`, and the device signature once the user id is known.
    pub fn sign(&self, rb: reqwest::RequestBuilder, t: &Tokens) -> reqwest::RequestBuilder {
        self.sign_as(rb, t, CANARY)
    }

    /// [`sign`](Self::sign) with another `X-Canary` (share calls, ref §8.4).
    pub fn sign_as(&self, rb: reqwest::RequestBuilder, t: &Tokens, canary: &str) -> reqwest::RequestBuilder {
        let mut rb = rb.header(reqwest::header::CONTENT_TYPE, "application/json").header("X-Canary", canary);
        if !t.access_token.is_empty() {
            rb = rb.bearer_auth(&t.access_token);
        }
        if let Some(d) = self.device(&self.user_id_of(t)) {
            rb = rb.header("x-device-id", &d.device_id).header("x-signature", d.signature());
        }
        rb
    }

    pub fn device_generation(&self) -> u64 {
        self.device_gen.load(Ordering::SeqCst)
    }

    /// `create_session` for the current device unless one was created since generation
    /// `seen` (ref §3.3). One at a time per mount.
    pub async fn renew_device(&self, http: &Http, seen: u64) -> DriveResult<()> {
        let _flight = self.device_flight.lock().await;
        if self.device_generation() != seen {
            return Ok(());
        }
        self.create_session(http).await?;
        self.device_gen.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Register this device's key (ref §3.3). Signed with the key being registered.
    async fn create_session(&self, http: &Http) -> DriveResult<()> {
        let url = self.ep.url(hosts::API, "/users/v1/users/device/create_session");
        let what = "create_session";
        let r = http
            .call(
                Call::new(what, true),
                &self.creds,
                |c, t| {
                    let pub_key = self.device(&self.user_id_of(t)).map(|d| d.public_key_hex()).unwrap_or_default();
                    self.sign(c.post(&url), t).json(
                        &json!({"deviceName": "pandav", "modelName": "pandav WebDAV", "pubKey": pub_key, "nonce": 0}),
                    )
                },
                |r| error::verdict(Family::Consumer, what, r, true, &[]).0,
            )
            .await?;
        if !(200..300).contains(&r.status) {
            return Err(error::error_of(Family::Consumer, what, &r));
        }
        let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        if !v.get("result").map(json::bool_of).unwrap_or(false) {
            // tickstep: "too many logged-in devices" (at most 10, ref §3.3).
            return Err(DriveError::Forbidden(format!(
                "Aliyun refused a device session for {} (result: false: too many devices signed in? sign one out in the app)",
                self.mount
            )));
        }
        self.sessions_created.fetch_add(1, Ordering::SeqCst);
        tracing::info!(mount = %self.mount, "Aliyun device session created");
        Ok(())
    }

    /// Renew what a refusal asked for: the token (`Ok(adopted)`), or the device session
    /// (`Ok(true)`: it does not use up the call's one token refresh).
    pub async fn renew(&self, http: &Http, what: Option<Renew>, token_gen: u64, device_gen: u64) -> DriveResult<bool> {
        match what {
            Some(Renew::Device) => {
                tracing::info!(mount = %self.mount, "Aliyun refused the device signature: creating a session");
                self.renew_device(http, device_gen).await.map(|_| true)
            }
            _ => self.creds.refresh(token_gen).await.map(|r| r.adopted),
        }
    }

    /// One consumer API call (`POST host/path` with a JSON body) through the kit's loop:
    /// signed headers, refresh-and-resend on a refused token, a new device session and
    /// resend on a refused signature, throttling and retries per ref §10. Answers in
    /// `req.accept` come back as they are; other failures as errors.
    pub async fn post(&self, http: &Http, req: &ApiReq<'_>, body: &Value) -> DriveResult<Response> {
        self.post_with(http, req, |_| body.clone()).await
    }

    /// [`post`](Self::post) with a body built for each attempt from its tokens (a
    /// rapid-upload proof depends on the access token, ref §7.2).
    pub async fn post_with(
        &self,
        http: &Http,
        req: &ApiReq<'_>,
        body: impl Fn(&Tokens) -> Value,
    ) -> DriveResult<Response> {
        let url = self.ep.url(req.host, req.path);
        let session = CallSession::new(self, http);
        let r = http
            .call(
                Call::new(req.what, req.idempotent),
                &session,
                |c, t| {
                    session.sent_with_device(self.device_generation());
                    self.sign(c.post(&url), t).json(&body(t))
                },
                |r| judge_into(&session.want, Family::Consumer, req.what, r, req.idempotent, req.accept),
            )
            .await?;
        if (200..300).contains(&r.status) || req.accept.contains(&classify_of(r.status, &r.body)) {
            return Ok(r);
        }
        Err(error::error_of(Family::Consumer, req.what, &r))
    }
}

fn classify_of(status: u16, body: &[u8]) -> Class {
    error::classify(Family::Consumer, &ApiError::parse(status, body))
}

/// One consumer API request.
pub struct ApiReq<'a> {
    pub host: &'a str,
    pub path: &'a str,
    /// For messages and logs.
    pub what: &'a str,
    pub idempotent: bool,
    /// Error classes handed back as answers (e.g. `PreHashMatched`).
    pub accept: &'a [Class],
}

impl<'a> ApiReq<'a> {
    pub fn new(path: &'a str, what: &'a str, idempotent: bool) -> ApiReq<'a> {
        ApiReq { host: hosts::API, path, what, idempotent, accept: &[] }
    }

    pub fn accept(mut self, classes: &'a [Class]) -> ApiReq<'a> {
        self.accept = classes;
        self
    }
}

/// The kit `Session` of one consumer call: the mount's tokens, and a note of what the
/// last refusal asked to renew.
pub struct CallSession<'a> {
    auth: &'a ConsumerAuth,
    http: &'a Http,
    want: AtomicU8,
    device_seen: AtomicU64,
}

impl<'a> CallSession<'a> {
    pub fn new(auth: &'a ConsumerAuth, http: &'a Http) -> CallSession<'a> {
        CallSession { auth, http, want: AtomicU8::new(0), device_seen: AtomicU64::new(auth.device_generation()) }
    }

    /// Note the device-session generation a request was signed under.
    pub fn sent_with_device(&self, gen: u64) {
        self.device_seen.store(gen, Ordering::SeqCst);
    }
}

/// [`error::verdict`], noting in `want` what a `Reauth` asks to renew (for a `Session`
/// whose `reauth` reads it).
pub fn judge_into(
    want: &AtomicU8,
    family: Family,
    what: &str,
    r: &Response,
    idempotent: bool,
    accept: &[Class],
) -> crate::drivers::http::Verdict {
    let (v, renew) = error::verdict(family, what, r, idempotent, accept);
    if let Some(renew) = renew {
        want.store(renew.as_u8(), Ordering::SeqCst);
    }
    v
}

#[async_trait::async_trait]
impl Session for CallSession<'_> {
    type Cred = Tokens;

    fn current(&self) -> DriveResult<(Arc<Tokens>, u64)> {
        self.auth.creds.current()
    }

    fn usable(&self, cred: &Tokens) -> bool {
        cred.usable()
    }

    async fn reauth(&self, seen: u64) -> DriveResult<bool> {
        let what = Renew::from_u8(self.want.swap(0, Ordering::SeqCst));
        self.auth.renew(self.http, what, seen, self.device_seen.load(Ordering::SeqCst)).await
    }
}

/// A mount's consumer login from its configured `refresh_token` (`secret`) and state:
/// the kit's credentials with the §2.1 refresher, in the helper process under `serve`.
pub fn mount_auth(
    secret: &str,
    ctx: &crate::drivers::DriverCtx,
    ep: &Endpoints,
    client: &reqwest::Client,
) -> anyhow::Result<ConsumerAuth> {
    let refresher = Refresher { http: client.clone(), ep: ep.clone(), mount: ctx.mount_path.clone() };
    let creds = Credentials::restore(&ctx.state, secret, Tokens::from_refresh_token(secret))?
        .with_refresher(Arc::new(refresher), ctx.source.clone());
    Ok(ConsumerAuth::new(creds, ep.clone(), &ctx.mount_path))
}

/// The refresher the `pandav __refresh` helper rebuilds for a consumer or share mount.
pub fn erased_refresher(ep: Endpoints, mount: &str) -> Box<dyn credentials::ErasedRefresh> {
    let r = Refresher { http: crate::drivers::http::client(), ep, mount: mount.to_string() };
    credentials::erase::<Tokens>(Arc::new(r))
}

impl ConsumerAuth {
    /// Start-up of a consumer login: a missing token latches with `no_token` (a login
    /// hint), a config token of unknown age is refreshed at once (which also moves the
    /// rotation into the state file), the user id is learned if the grant lacks it, and a
    /// device session is created (ref §3.4).
    pub async fn start(&self, http: &Http, no_token: impl FnOnce() -> String) -> DriveResult<()> {
        let (tok, gen) = self.creds.get();
        if tok.refresh_token.is_empty() {
            return Err(self.creds.lose(no_token()));
        }
        if tok.access_token.is_empty() || tok.expires_at == 0 {
            self.creds.refresh(gen).await?;
        }
        if self.tokens().user_id.is_empty() {
            let u = user_get(self, http).await?;
            self.set_user_id(&u.user_id);
        }
        self.renew_device(http, self.device_generation()).await
    }
}

/// Run a driver's start-up, trying a passing hiccup a few more times (the mount calls
/// `init` once).
pub async fn start_with_retries<F, Fut>(mount: &str, mut start: F) -> DriveResult<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = DriveResult<()>>,
{
    let mut tries = 0u64;
    loop {
        match start().await {
            Err(DriveError::Upstream(m)) if tries < 3 && m.hint != crate::vfs::Hint::Permanent => {
                tries += 1;
                tracing::info!(mount = %mount, "Aliyun start-up failed ({m}), retrying");
                tokio::time::sleep(Duration::from_secs(tries)).await;
            }
            r => return r,
        }
    }
}

/// Learn the user id when the grant lacks it (`POST /v2/user/get`, unsigned-OK, ref §3.4,
/// §4.1). Returns the user's drive ids too.
pub async fn user_get(auth: &ConsumerAuth, http: &Http) -> DriveResult<UserInfo> {
    let r = auth.post(http, &ApiReq::new("/v2/user/get", "user/get", true), &json!({})).await?;
    serde_json::from_slice(&r.body)
        .map_err(|e| DriveError::upstream(format!("Aliyun user/get: unreadable answer: {e}")))
}

/// `/v2/user/get` (ref §4.1; fields pandav uses).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UserInfo {
    #[serde(default, deserialize_with = "json::string")]
    pub user_id: String,
    #[serde(default, deserialize_with = "json::string")]
    pub default_drive_id: String,
    #[serde(default, deserialize_with = "json::string")]
    pub resource_drive_id: String,
    #[serde(default, deserialize_with = "json::string")]
    pub backup_drive_id: String,
}

/// Wait between polls of an async task (ref §6.5), growing.
pub fn task_poll_wait(n: u32) -> Duration {
    Duration::from_millis((200u64 << n.min(4)).min(2000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_show_in_debug_and_fall_due() {
        let t = Tokens {
            access_token: "ACCESS-SECRET".into(),
            refresh_token: "REFRESH-SECRET".into(),
            ..Default::default()
        };
        let s = format!("{t:?}");
        assert!(!s.contains("SECRET"), "{s}");
        assert!(t.due(), "unknown expiry is due");
        let now = now_unix();
        let t = Tokens { expires_at: now + 7200, issued_at: now, ..t };
        assert!(!t.due());
        assert_eq!(t.margin(), 300);
        let t = Tokens { expires_at: now + 200, issued_at: now - 7000, ..t };
        assert!(t.due());
    }

    #[test]
    fn a_grant_without_refresh_token_is_known_by_its_access_token() {
        let t = Tokens { access_token: "A1".into(), refresh_token: "R1".into(), ..Default::default() };
        assert_eq!(t.rotating(), "R1");
        let pkce = Tokens { access_token: "A2".into(), ..Default::default() };
        assert_eq!(pkce.rotating(), "A2");
    }
}
