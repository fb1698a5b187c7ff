//! OAuth of the Aliyun Drive Open platform (ref §2.3–2.6): the token pair a mount keeps,
//! the token sources that rotate it (the official endpoint and the "online API" brokers of
//! §2.4), the JWT `sub` guard of §2.3, and `pandav login aliyundrive-open` (the QR flow of
//! §2.5–2.6, PKCE when there is no client secret).
//!
//! An Open refresh token is single use (§2.3): once a source answered a refresh, the old
//! token is dead. Everything around a refresh (single flight, cross-process lock,
//! adoption of a pair another process rotated, one durable write before use, the helper
//! process that survives a SIGKILL, the dead-grant latch) is the kit's
//! ([`crate::vfs::credentials`]); this module only says how a pair is rotated
//! ([`Refresher`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Digest;

use crate::drivers::aliyun::common::error::{classify, ApiError, Class as ErrClass, Family};
use crate::drivers::aliyun::common::json;
use crate::drivers::http::{Endpoints, Http, Response, RetryPolicy, Verdict};
use crate::drivers::QrState;
use crate::vfs::credentials::{self, Credentials};
pub use crate::vfs::credentials::{now_unix, redact};
use crate::vfs::DriveError;

/// The open API host (the official SDK's; `openapi.aliyundrive.com` is an alias, §1.1).
pub const OPENAPI: &str = "openapi.alipan.com";
/// OpenList's online token API (§2.4).
pub const OPENLIST_URL: &str = "https://api.oplist.org/alicloud/renewapi";
/// AList's online token API (§2.4).
pub const ALIST_URL: &str = "https://api.nn.ci/alist/ali_open/token";
/// messense's token proxy (§2.4, §11).
pub const MESSENSE_URL: &str = "https://aliyundrive-oauth.messense.me/oauth/access_token";
/// tickstep's broker, up to the ticket (§2.4).
pub const TICKSTEP_URL: &str = "https://api.tickstep.com/auth/tickstep/aliyunpan/token/openapi";
/// Scopes asked for by `pandav login` (§2.5).
pub const SCOPES: &[&str] = &["user:base", "file:all:read", "file:all:write"];
/// Access tokens live 7200 s when nobody says otherwise (§2.3).
const DEFAULT_LIFETIME: u64 = 7200;

/// The credentials a mount holds (its state file's `data`): the Aliyun token pair of
/// common (access token, single-use refresh token, expiry; `Debug` redacts). For the
/// tickstep broker the refresh token is its ticket id, which does not rotate; after a
/// PKCE login without a refresh token (the official Android SDK: "PKCE tokens last 30
/// days and cannot be refreshed") it is empty.
pub use crate::drivers::aliyun::common::auth::Tokens;

/// A pair issued now. `expires_in` 0 = not said: the access token's own `exp` claim,
/// else 7200 s (§2.3).
pub fn issued(access: String, refresh: String, expires_in: u64) -> Tokens {
    let now = now_unix();
    let expires_at = match expires_in {
        0 => jwt_claim(&access, "exp").and_then(|v| v.as_u64()).filter(|&t| t > now).unwrap_or(now + DEFAULT_LIFETIME),
        n => now + n,
    };
    Tokens { access_token: access, refresh_token: refresh, expires_at, issued_at: now, ..Tokens::default() }
}

/// A claim of a JWT's payload (the middle segment, base64url, JSON), without verifying
/// anything: only used to compare tokens with each other (§2.3) and read an expiry.
pub fn jwt_claim(token: &str, claim: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let payload = payload.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(payload))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get(claim).cloned()
}

/// The `sub` claim of a token (the user id, §2.3).
pub fn jwt_sub(token: &str) -> Option<String> {
    match jwt_claim(token, "sub")? {
        Value::String(s) if !s.is_empty() => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Token sources (§2.3, §2.4)

/// Why a source could not rotate a pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fail {
    /// The grant is dead (revoked, expired, used, refused): the user must log in again.
    Dead(String),
    /// Rate limited: wait before the next try.
    TooFrequent,
    /// Network, 5xx, an unreadable answer: try again soon.
    Transient(String),
}

/// Where a mount's pair is rotated: the official endpoint, or an online API that holds
/// the client secret (§2.4 suggests exactly this trait).
#[async_trait]
pub trait TokenSource: Send + Sync {
    /// Named in messages ("the official token endpoint", "the OpenList online API").
    fn describe(&self) -> String;
    /// Exchange `held` for a new pair.
    async fn refresh(&self, http: &Http, held: &Tokens) -> Result<Tokens, Fail>;
    /// Whether the answer carries a rotated JWT refresh token whose `sub` must be the
    /// old one's (§2.3); tickstep hands out access tokens only.
    fn rotates(&self) -> bool {
        true
    }
}

/// `POST {openapi}/oauth/access_token` with the app's own id (and secret; a PKCE app
/// has none), §2.3.
pub struct Official {
    pub client_id: String,
    pub client_secret: Option<String>,
}

/// An online API that takes the official body (`client_id`/`client_secret` empty,
/// AList) or just `grant_type` + `refresh_token` (messense's proxy), §2.4.
pub struct ProxyPost {
    pub url: String,
    /// Send `client_id` and `client_secret` as empty strings (AList's shape).
    pub official_body: bool,
    pub label: &'static str,
}

/// OpenList's `GET <url>?refresh_ui=…&server_use=true&driver_txt=…`, §2.4.
pub struct RenewApi {
    pub url: String,
    /// `alicloud_qr`, or `alicloud_tv` for the "alipanTV" login type.
    pub driver_txt: &'static str,
}

/// tickstep's broker: `GET <prefix>/<ticket>/refresh?userId=…` with header `old-token`;
/// it holds the grant and hands out access tokens (§2.4).
pub struct Tickstep {
    pub prefix: String,
    pub user_id: String,
}

/// The body of an official token answer (§2.3), also relayed by the proxies.
#[derive(Deserialize, Default)]
struct TokenAnswer {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<Value>,
}

/// The token endpoint's verdict: 429 is a throttle (with `x-retry-after` or
/// `Retry-After`), 5xx and 408 are worth another try, the rest is read by the caller.
fn token_verdict(r: &Response) -> Verdict {
    match r.status {
        429 => Verdict::Throttled { why: "429 from the token endpoint".into(), after: r.retry_after() },
        408 | 500..=599 => Verdict::Retry(format!("HTTP {} from the token endpoint", r.status)),
        _ => Verdict::Done,
    }
}

/// Read an official-shaped token answer (§2.3). A refusal is judged by common's
/// catalogue (§9): a dead login, or any other 4xx the token endpoint gives for our
/// request, means the grant will not work again; throttles and 5xx pass.
fn read_token_answer(r: &Response, source: &str) -> Result<Tokens, Fail> {
    if r.status == 200 {
        let a: TokenAnswer = serde_json::from_slice(&r.body)
            .map_err(|_| Fail::Transient(format!("{source}: the answer is not JSON")))?;
        let (at, rt) = (a.access_token.unwrap_or_default(), a.refresh_token.unwrap_or_default());
        if at.is_empty() || rt.is_empty() {
            // AList treats an empty token in a 200 answer as a failure (§2.1).
            return Err(Fail::Transient(format!("{source} answered without tokens")));
        }
        let expires_in = a.expires_in.as_ref().map(json::u64_of).unwrap_or(0);
        return Ok(issued(at, rt, expires_in));
    }
    let e = ApiError::parse(r.status, &r.body);
    let what = e.describe(source);
    match classify(Family::Open, &e) {
        ErrClass::Throttled => Err(Fail::TooFrequent),
        ErrClass::Transient => Err(Fail::Transient(what)),
        // An unknown route says nothing about the token (a proxy being redeployed).
        _ if e.no_route || (e.code.is_empty() && r.status == 404) => Err(Fail::Transient(what)),
        _ if (400..500).contains(&r.status) => Err(Fail::Dead(format!("{source} refused the refresh token ({what})"))),
        _ => Err(Fail::Transient(what)),
    }
}

/// Send one token request through the kit's loop (pacing, retries of 5xx, throttles);
/// a throttle that outlasts the retries is "too frequent".
async fn exchange<B>(http: &Http, what: &str, build: B) -> Result<Response, Fail>
where
    B: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
{
    match http.send(what, false, build, token_verdict).await {
        Ok(r) => Ok(r),
        Err(DriveError::RateLimited { .. }) => Err(Fail::TooFrequent),
        Err(e) => Err(Fail::Transient(e.to_string())),
    }
}

#[async_trait]
impl TokenSource for Official {
    fn describe(&self) -> String {
        "the official token endpoint".into()
    }

    async fn refresh(&self, http: &Http, held: &Tokens) -> Result<Tokens, Fail> {
        let mut body = json!({
            "client_id": self.client_id,
            "grant_type": "refresh_token",
            "refresh_token": held.refresh_token,
        });
        if let Some(s) = &self.client_secret {
            body["client_secret"] = Value::String(s.clone());
        }
        let url = http.endpoints.url(OPENAPI, "/oauth/access_token");
        let r = exchange(http, "oauth/access_token", |c| c.post(&url).json(&body)).await?;
        read_token_answer(&r, "the official token endpoint")
    }
}

#[async_trait]
impl TokenSource for ProxyPost {
    fn describe(&self) -> String {
        format!("the {} online API", self.label)
    }

    async fn refresh(&self, http: &Http, held: &Tokens) -> Result<Tokens, Fail> {
        let body = if self.official_body {
            json!({"client_id": "", "client_secret": "", "grant_type": "refresh_token", "refresh_token": held.refresh_token})
        } else {
            json!({"grant_type": "refresh_token", "refresh_token": held.refresh_token})
        };
        let url = http.endpoints.rewrite(&self.url);
        let r = exchange(http, "online token API", |c| c.post(&url).json(&body)).await?;
        read_token_answer(&r, &self.describe())
    }
}

#[async_trait]
impl TokenSource for RenewApi {
    fn describe(&self) -> String {
        "the OpenList online API".into()
    }

    async fn refresh(&self, http: &Http, held: &Tokens) -> Result<Tokens, Fail> {
        let url = http.endpoints.rewrite(&self.url);
        let r = exchange(http, "online token API", |c| {
            c.get(&url).query(&[
                ("refresh_ui", held.refresh_token.as_str()),
                ("server_use", "true"),
                ("driver_txt", self.driver_txt),
            ])
        })
        .await?;
        if r.status == 429 {
            return Err(Fail::TooFrequent);
        }
        #[derive(Deserialize, Default)]
        struct Renew {
            #[serde(default)]
            refresh_token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            text: Option<String>,
        }
        let Ok(b) = serde_json::from_slice::<Renew>(&r.body) else {
            return Err(Fail::Transient(format!("the OpenList online API answered HTTP {} without JSON", r.status)));
        };
        match (b.access_token.filter(|s| !s.is_empty()), b.refresh_token.filter(|s| !s.is_empty())) {
            (Some(a), Some(rt)) if (200..300).contains(&r.status) => Ok(issued(a, rt, 0)),
            _ if r.status >= 500 && b.text.as_deref().unwrap_or("").is_empty() => {
                Err(Fail::Transient(format!("the OpenList online API answered HTTP {}", r.status)))
            }
            // Both tokens empty = failure, `text` says why (§2.4).
            _ => Err(Fail::Dead(format!(
                "the OpenList online API refused the refresh token (HTTP {}{})",
                r.status,
                b.text.filter(|t| !t.is_empty()).map(|t| format!(": {t}")).unwrap_or_default()
            ))),
        }
    }
}

#[async_trait]
impl TokenSource for Tickstep {
    fn describe(&self) -> String {
        "the tickstep online API".into()
    }

    fn rotates(&self) -> bool {
        false
    }

    async fn refresh(&self, http: &Http, held: &Tokens) -> Result<Tokens, Fail> {
        let ticket: String =
            percent_encoding::utf8_percent_encode(&held.refresh_token, percent_encoding::NON_ALPHANUMERIC).collect();
        let url = format!("{}/{ticket}/refresh", http.endpoints.rewrite(self.prefix.trim_end_matches('/')));
        let r = exchange(http, "online token API", |c| {
            let mut rb = c.get(&url).query(&[("userId", self.user_id.as_str())]);
            if !held.access_token.is_empty() {
                rb = rb.header("old-token", held.access_token.as_str());
            }
            rb
        })
        .await?;
        if r.status == 429 {
            return Err(Fail::TooFrequent);
        }
        let Ok(v) = serde_json::from_slice::<Value>(&r.body) else {
            return Err(Fail::Transient(format!("the tickstep online API answered HTTP {} without JSON", r.status)));
        };
        let code = match v.get("code") {
            Some(c) => json::string_of(c).trim().parse::<i64>().unwrap_or(-1),
            None => -1,
        };
        let data = v.get("data").cloned().unwrap_or_default();
        let access = data.get("accessToken").and_then(Value::as_str).unwrap_or("").to_string();
        if code == 0 && !access.is_empty() && (200..300).contains(&r.status) {
            let now = now_unix();
            let expired =
                data.get("expired").and_then(|e| e.as_u64().or_else(|| e.as_str()?.parse().ok())).unwrap_or(0);
            // Unix seconds; a millisecond value is scaled down.
            let expired = if expired > 100_000_000_000 { expired / 1000 } else { expired };
            let mut t = issued(access, held.refresh_token.clone(), 0);
            if expired > now {
                t.expires_at = expired;
            }
            return Ok(t);
        }
        let msg = v.get("msg").and_then(Value::as_str).unwrap_or("").to_string();
        if r.status >= 500 {
            return Err(Fail::Transient(format!("the tickstep online API answered HTTP {}", r.status)));
        }
        Err(Fail::Dead(format!(
            "the tickstep online API refused the ticket (code {code}, HTTP {}{})",
            r.status,
            if msg.is_empty() { String::new() } else { format!(": {msg}") }
        )))
    }
}

// ---------------------------------------------------------------------------------------
// The kit's refresher

/// The kit's retry policy for token requests: 5xx retried twice, a throttle waited out
/// once (up to 20 s), then "too frequent" (the kit's growing cool-down).
pub fn token_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        base: Duration::from_millis(1000),
        max: Duration::from_secs(20),
        throttle_attempts: 2,
        throttle_base: Duration::from_secs(2),
        cooldown: Duration::ZERO,
        pause_wait: Duration::ZERO,
        throttled_retry_after: Duration::from_secs(60),
    }
}

/// How an `aliyundrive_open` mount rotates its pair.
pub struct Refresher {
    pub http: Arc<Http>,
    pub source: Arc<dyn TokenSource>,
    /// The `pandav login …` hint for a dead grant.
    pub hint: String,
}

impl Refresher {
    /// The message of a dead grant: what happened and what to do.
    pub fn dead(&self, why: &str) -> String {
        format!("Aliyun Drive Open: {why}; {}", self.hint)
    }
}

#[async_trait]
impl credentials::Refresh<Tokens> for Refresher {
    async fn refresh(&self, held: &Tokens) -> Result<Tokens, credentials::RefreshError> {
        use credentials::RefreshError as R;
        if held.refresh_token.is_empty() {
            let why = if held.access_token.is_empty() {
                "no refresh token"
            } else {
                "the login has no refresh token (a PKCE login cannot be renewed) and its access token expired"
            };
            return Err(R::Dead(self.dead(why)));
        }
        let new = match self.source.refresh(&self.http, held).await {
            Ok(t) => t,
            Err(Fail::Dead(why)) => return Err(R::Dead(self.dead(&why))),
            Err(Fail::TooFrequent) => return Err(R::TooFrequent),
            Err(Fail::Transient(m)) => return Err(R::Transient(m)),
        };
        if self.source.rotates() {
            // A proxy must not hand us someone else's account (§2.3, OpenList): the new
            // refresh token's `sub` is the old one's. The foreign pair is dropped unsaved.
            if let Some(old) = jwt_sub(&held.refresh_token) {
                if jwt_sub(&new.refresh_token).as_deref() != Some(old.as_str()) {
                    tracing::error!(
                        "{} returned a refresh token of another account (JWT sub mismatch); not using it",
                        self.source.describe()
                    );
                    return Err(R::Dead(self.dead(&format!(
                        "{} returned a token of another account (JWT sub mismatch)",
                        self.source.describe()
                    ))));
                }
            }
        }
        Ok(new)
    }
}

// ---------------------------------------------------------------------------------------
// `pandav login aliyundrive-open` (§2.5, §2.6)

/// A PKCE verifier and its challenge as the official SDK sends it: SHA-256 of the
/// verifier in base64 with `-_` for `+/` and the `=` padding kept (§2.6).
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

/// A random 64-character RFC 7636 verifier (the service does not check its form, §2.6).
pub fn pkce() -> Pkce {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
    let mut rng = rand::thread_rng();
    let verifier: String = (0..64).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    Pkce { challenge: challenge_of(&verifier), verifier }
}

pub fn challenge_of(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// Who issues the QR code and exchanges the authorization code.
pub enum LoginVia {
    /// The app's own id: with its secret, or PKCE without one.
    App { client_id: String, client_secret: Option<String> },
    /// messense's proxy holds the secret: the QR code from `<proxy>/oauth/authorize/qrcode`,
    /// the code exchanged at `<proxy>/oauth/access_token` (§2.4, §2.6).
    Proxy { token_url: String },
}

/// An open-platform QR login in progress.
pub struct QrLogin {
    pub qr_code_url: String,
    pub sid: String,
    pkce: Option<Pkce>,
}

async fn json_answer(r: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = r.status();
    let body = r.bytes().await.map_err(|e| anyhow::anyhow!("{what}: {}", e.without_url()))?;
    let v: Value =
        serde_json::from_slice(&body).map_err(|_| anyhow::anyhow!("{what}: HTTP {status}, the answer is not JSON"))?;
    if !status.is_success() {
        let code = v.get("code").and_then(Value::as_str).unwrap_or("");
        let msg = v.get("message").and_then(Value::as_str).unwrap_or("");
        anyhow::bail!("{what}: HTTP {status} {code} {msg}");
    }
    Ok(v)
}

/// The proxy's base (its token URL without `/oauth/access_token`).
fn proxy_base(token_url: &str) -> &str {
    token_url.trim_end_matches('/').trim_end_matches("/oauth/access_token")
}

/// `POST /oauth/authorize/qrcode` (§2.5): a QR code to scan with the Aliyun Drive app.
pub async fn qr_start(http: &reqwest::Client, ep: &Endpoints, via: &LoginVia) -> anyhow::Result<QrLogin> {
    let (url, body, pkce) = match via {
        LoginVia::App { client_id, client_secret } => {
            let mut body = json!({"client_id": client_id, "scopes": SCOPES});
            let pkce = match client_secret {
                Some(s) => {
                    body["client_secret"] = Value::String(s.clone());
                    None
                }
                None => {
                    let p = pkce();
                    body["code_challenge"] = Value::String(p.challenge.clone());
                    body["code_challenge_method"] = Value::String("S256".into());
                    Some(p)
                }
            };
            (ep.url(OPENAPI, "/oauth/authorize/qrcode"), body, pkce)
        }
        LoginVia::Proxy { token_url } => {
            let url = format!("{}/oauth/authorize/qrcode", proxy_base(&ep.rewrite(token_url)));
            (url, json!({"scopes": SCOPES}), None)
        }
    };
    let r = http
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("authorize/qrcode: {}", e.without_url()))?;
    let v = json_answer(r, "authorize/qrcode").await?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (qr_code_url, sid) = (s("qrCodeUrl"), s("sid"));
    if qr_code_url.is_empty() || sid.is_empty() {
        anyhow::bail!("authorize/qrcode answered without qrCodeUrl/sid");
    }
    Ok(QrLogin { qr_code_url, sid, pkce })
}

/// One poll of `GET /oauth/qrcode/{sid}/status` (§2.5): the state, and the
/// authorization code once the login succeeded.
pub async fn qr_status(http: &reqwest::Client, ep: &Endpoints, sid: &str) -> anyhow::Result<(QrState, Option<String>)> {
    let sid_path: String = percent_encoding::utf8_percent_encode(sid, percent_encoding::NON_ALPHANUMERIC).collect();
    let r = http
        .get(ep.url(OPENAPI, &format!("/oauth/qrcode/{sid_path}/status")))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("qrcode status: {}", e.without_url()))?;
    let v = json_answer(r, "qrcode status").await?;
    let status = v.get("status").and_then(Value::as_str).unwrap_or("");
    let code = v.get("authCode").and_then(Value::as_str).filter(|c| !c.is_empty()).map(str::to_string);
    Ok((parse_status(status, code.is_some()), code))
}

/// The open QR states onto the kit's (§2.5): `LoginSuccess` counts only with a code.
pub fn parse_status(status: &str, has_code: bool) -> QrState {
    match status {
        "WaitLogin" => QrState::Waiting,
        "ScanSuccess" => QrState::Scanned,
        "LoginSuccess" if has_code => QrState::Confirmed,
        "LoginSuccess" => QrState::Refused("LoginSuccess without an authCode".into()),
        "QRCodeExpired" => QrState::Expired,
        other => QrState::Refused(format!("status {other:?}")),
    }
}

/// Exchange the authorization code for the first pair (§2.3, §2.6).
pub async fn qr_exchange(
    http: &reqwest::Client,
    ep: &Endpoints,
    via: &LoginVia,
    q: &QrLogin,
    code: &str,
) -> anyhow::Result<Tokens> {
    let (url, body) = match via {
        LoginVia::App { client_id, client_secret } => {
            let mut body = json!({"client_id": client_id, "grant_type": "authorization_code", "code": code});
            match (client_secret, &q.pkce) {
                (Some(s), _) => body["client_secret"] = Value::String(s.clone()),
                (None, Some(p)) => body["code_verifier"] = Value::String(p.verifier.clone()),
                (None, None) => {}
            }
            (ep.url(OPENAPI, "/oauth/access_token"), body)
        }
        LoginVia::Proxy { token_url } => {
            (ep.rewrite(token_url), json!({"grant_type": "authorization_code", "code": code}))
        }
    };
    let r =
        http.post(url).json(&body).send().await.map_err(|e| anyhow::anyhow!("access_token: {}", e.without_url()))?;
    let v = json_answer(r, "access_token").await?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (at, rt) = (s("access_token"), s("refresh_token"));
    // A PKCE grant may come without a refresh token (the official Android SDK); every
    // other one has both.
    let pkce = matches!(via, LoginVia::App { client_secret: None, .. });
    if at.is_empty() || (rt.is_empty() && !pkce) {
        anyhow::bail!("access_token answered without tokens");
    }
    if rt.is_empty() {
        println!("note: this app login has no refresh token; run the login again when it expires");
    }
    let expires_in = v.get("expires_in").and_then(Value::as_u64).unwrap_or(0);
    Ok(issued(at, rt, expires_in))
}

#[derive(clap::Parser, Debug)]
#[command(
    name = "pandav login aliyundrive-open",
    about = "Aliyun Drive Open: scan a QR code with the Aliyun Drive app (PKCE when there is no client secret)"
)]
struct LoginArgs {
    /// The app's client id (default: the mount's `client_id`).
    #[arg(long)]
    client_id: Option<String>,
    /// The app's client secret (default: the mount's `client_secret`; none = PKCE).
    #[arg(long)]
    client_secret: Option<String>,
    /// Give up after this many seconds without a confirmation (the QR code lives 180 s).
    #[arg(long, default_value_t = 180)]
    timeout: u64,
    #[command(flatten)]
    common: crate::drivers::LoginCommon,
}

/// The registry's login entry: `pandav login aliyundrive-open …`.
pub fn login_entry(args: Vec<String>, host: &dyn crate::drivers::LoginHost) -> crate::drivers::LoginFuture<'_> {
    Box::pin(async move {
        use clap::Parser;
        let a = LoginArgs::parse_from(std::iter::once("pandav login aliyundrive-open".to_string()).chain(args));
        let mut m = host.mount(&a.common)?;
        let opts: super::Options = m.options_for(&[super::NAME])?;
        let via = login_via(&opts, a.client_id, a.client_secret)?;
        login(host, &opts, &m.ctx, &via, a.common.png.as_deref(), Duration::from_secs(a.timeout)).await
    })
}

/// Who runs the login for a mount with these options.
fn login_via(opts: &super::Options, id: Option<String>, secret: Option<String>) -> anyhow::Result<LoginVia> {
    let client_id = id.or_else(|| opts.client_id.clone()).filter(|c| !c.trim().is_empty());
    if let Some(client_id) = client_id {
        let client_secret =
            secret.or_else(|| opts.client_secret.as_ref().map(|s| s.expose().to_string())).filter(|s| !s.is_empty());
        return Ok(LoginVia::App { client_id, client_secret });
    }
    match super::online_kind(opts) {
        Some(super::OnlineApi::Messense) => Ok(LoginVia::Proxy { token_url: opts.api_url() }),
        _ => anyhow::bail!(
            "no client id: pass --client-id (your app on the Aliyun Drive open platform; without a secret PKCE is used), \
             set mounts.options.client_id, or use online_api = \"messense\" whose proxy runs the QR login; \
             with the other online APIs get a refresh token from their page and set mounts.options.refresh_token"
        ),
    }
}

/// The QR login: show the code (terminal or PNG), poll every second with status lines,
/// exchange the code, and save the pair in the mount's state through the kit.
pub async fn login(
    host: &dyn crate::drivers::LoginHost,
    opts: &super::Options,
    ctx: &crate::drivers::DriverCtx,
    via: &LoginVia,
    png: Option<&Path>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let ep = Endpoints::new(opts.endpoints.clone())?;
    let http = crate::drivers::http::client();
    let q = qr_start(&http, &ep, via).await?;
    host.show_qr(&q.qr_code_url, png)?;
    println!("Scan this code with the Aliyun Drive app and confirm the authorization.");
    println!("(or open {} in a browser)", q.qr_code_url);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last: Option<QrState> = None;
    let mut failures = crate::drivers::PollFailures::default();
    let code = loop {
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("gave up after {}s without a confirmation; run the command again", timeout.as_secs());
        }
        let polled = qr_status(&http, &ep, &q.sid).await;
        let Some((st, code)) = failures.check(polled, Duration::from_secs(2), |m| eprintln!("{m}")).await? else {
            continue;
        };
        if last.as_ref() != Some(&st) {
            println!("status: {}", st.message());
        }
        match (&st, code) {
            (QrState::Confirmed, Some(c)) => break c,
            (QrState::Waiting | QrState::Scanned, _) => {}
            _ => anyhow::bail!("{}", st.message()),
        }
        last = Some(st);
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let t = qr_exchange(&http, &ep, via, &q, &code).await?;
    let secret = super::config_secret(opts);
    let path = ctx.state.path().to_path_buf();
    Credentials::restore(&ctx.state, &secret, Tokens::default())?.save_login(t).await?;
    println!("authorized: tokens for mount {} saved in {}", ctx.mount_path, path.display());
    if !secret.is_empty() {
        println!("note: the refresh_token in the config is superseded by the saved tokens (leave it, or remove it)");
    }
    println!("a running pandav picks the new tokens up by itself");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &Value) -> String {
        let e = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        format!("{}.{}.{}", e(br#"{"alg":"RS256","typ":"JWT"}"#), e(payload.to_string().as_bytes()), e(b"sig"))
    }

    #[test]
    fn jwt_sub_and_exp_are_read_from_the_payload() {
        let t = jwt(&json!({"sub": "0d35e837530445e09a1bf00d7e38fb90", "exp": 1700000000u64}));
        assert_eq!(jwt_sub(&t).as_deref(), Some("0d35e837530445e09a1bf00d7e38fb90"));
        assert_eq!(jwt_claim(&t, "exp"), Some(json!(1700000000u64)));
        assert_eq!(jwt_sub("opaque-consumer-token"), None, "fewer than three segments");
        assert_eq!(jwt_sub("a.!!!.c"), None);
        assert_eq!(jwt_sub(&jwt(&json!({"aud": "x"}))), None);
    }

    #[test]
    fn issued_pairs_use_expires_in_then_the_jwt_exp() {
        let now = now_unix();
        let t = issued("a".into(), "r".into(), 7200);
        assert!(t.expires_at >= now + 7200 && t.expires_at <= now + 7202);
        let at = jwt(&json!({"sub": "u", "exp": now + 600}));
        assert_eq!(issued(at, "r".into(), 0).expires_at, now + 600);
        // An exp in the past is not believed.
        let old = jwt(&json!({"sub": "u", "exp": 5}));
        assert!(issued(old, "r".into(), 0).expires_at >= now + 7200);
    }

    #[test]
    fn pkce_challenge_is_sha256_base64url_with_padding() {
        // SHA-256("abc") = ba7816bf 8f01cfea 414140de 5dae2223 b00361a3 96177a9c b410ff61 f20015ad
        assert_eq!(challenge_of("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0=");
        let p = pkce();
        assert_eq!(p.verifier.len(), 64);
        assert_eq!(p.challenge, challenge_of(&p.verifier));
    }

    #[test]
    fn qr_states_map_onto_the_kit() {
        assert_eq!(parse_status("WaitLogin", false), QrState::Waiting);
        assert_eq!(parse_status("ScanSuccess", false), QrState::Scanned);
        assert_eq!(parse_status("LoginSuccess", true), QrState::Confirmed);
        assert!(matches!(parse_status("LoginSuccess", false), QrState::Refused(_)));
        assert_eq!(parse_status("QRCodeExpired", false), QrState::Expired);
        assert!(matches!(parse_status("LoginFailed", false), QrState::Refused(_)));
    }

    fn resp(status: u16, body: &str) -> Response {
        Response { status, headers: Default::default(), body: bytes::Bytes::from(body.to_string()) }
    }

    #[test]
    fn token_answers_are_classified_by_code() {
        let ok = read_token_answer(
            &resp(200, r#"{"token_type":"Bearer","access_token":"a","refresh_token":"r","expires_in":7200}"#),
            "t",
        )
        .unwrap();
        assert_eq!((ok.access_token.as_str(), ok.refresh_token.as_str()), ("a", "r"));
        for (status, code) in [(401, "RefreshTokenExpired"), (400, "RefreshTokenInvalid"), (401, "RefreshTokenInvalid")]
        {
            let body = format!(r#"{{"code":"{code}","message":"m","requestId":"x"}}"#);
            assert!(matches!(read_token_answer(&resp(status, &body), "t"), Err(Fail::Dead(_))), "{code}");
        }
        assert!(matches!(
            read_token_answer(&resp(400, r#"{"code":"InvalidClientSecret","message":"m"}"#), "t"),
            Err(Fail::Dead(_))
        ));
        assert_eq!(read_token_answer(&resp(429, r#"{"code":"TooManyRequests"}"#), "t"), Err(Fail::TooFrequent));
        assert!(matches!(read_token_answer(&resp(502, "Bad Gateway"), "t"), Err(Fail::Transient(_))));
        assert!(matches!(read_token_answer(&resp(200, r#"{"access_token":""}"#), "t"), Err(Fail::Transient(_))));
    }
}
