//! OAuth for 115 Open (ref §2): the token pair, error classification, refresh against
//! passportapi or the online broker (§2.8), and the PKCE device-code flow (§2.1).
//!
//! A refresh token is single use (§2.4): once the provider answered a refresh, the old
//! token is dead. The lifecycle around a refresh (single flight, cross-process lock,
//! adoption of a pair another process rotated, one durable write before use, the
//! helper process that survives a SIGKILL, the dead-grant latch) is the kit's:
//! [`crate::vfs::credentials`]. This module only says how 115 rotates a pair
//! ([`Refresher`]).

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::client::{self, Endpoints, PassportEnvelope};
use crate::vfs::credentials::{self, Credentials, Grant};
pub use crate::vfs::credentials::{now_unix, redact};

/// The credentials a mount holds. Never printed: `Debug` redacts.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Unix seconds when the access token expires; 0 = unknown (treat as due).
    #[serde(default)]
    pub expires_at: u64,
    /// Unix seconds when this pair was issued (0 = unknown, e.g. from config).
    #[serde(default)]
    pub issued_at: u64,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &redact(&self.access_token))
            .field("refresh_token", &redact(&self.refresh_token))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Grant for Tokens {
    fn rotating(&self) -> &str {
        &self.refresh_token
    }

    fn usable(&self) -> bool {
        !self.access_token.is_empty()
    }
}

impl Tokens {
    pub fn from_grant(access: String, refresh: String, expires_in: u64) -> Tokens {
        let now = now_unix();
        Tokens { access_token: access, refresh_token: refresh, expires_at: now + expires_in, issued_at: now }
    }

    /// Seconds of validity left (0 when expired or unknown).
    pub fn remaining(&self) -> u64 {
        self.expires_at.saturating_sub(now_unix())
    }

    /// How long before expiry a refresh is due: 5 minutes (ref §2.6), or a fifth of the
    /// lifetime for short-lived tokens.
    pub fn margin(&self) -> u64 {
        let life = self.expires_at.saturating_sub(self.issued_at);
        if life == 0 {
            300
        } else {
            (life / 5).min(300)
        }
    }

    /// Refresh now? (unknown expiry counts as due)
    pub fn due(&self) -> bool {
        self.expires_at == 0 || self.remaining() <= self.margin()
    }
}

// ---------------------------------------------------------------------------------------
// Error classification (ref §2.5, §10.1, §11)

/// What a code from 115 means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The access token is bad: refresh once, then retry the call.
    AccessToken,
    /// The refresh token / grant is dead: stop, the user must authorize again.
    Reauthorize,
    /// Refreshed too often (40140117): back off for minutes, then refresh again.
    TooFrequent,
    /// Throttled (770004, 406, 590075, "已达到当前访问上限", empty failure): back off.
    RateLimited,
    /// Worth retrying soon (40110000, 40140121, busy batch operations).
    Transient,
    NotFound,
    Exists,
    /// Anything else: reported as is.
    Other,
}

/// Classify a failure code of proapi or passport. `message` matters for the throttle
/// text that comes with varying codes.
pub fn classify(code: i64, message: &str) -> Class {
    if message.contains("已达到当前访问上限") {
        return Class::RateLimited;
    }
    match code {
        40140114 | 40140115 | 40140116 | 40140119 | 40140120 => Class::Reauthorize,
        40140117 => Class::TooFrequent,
        40140121 | 40110000 => Class::Transient,
        40140123..=40140126 | 99 | 990001 => Class::AccessToken,
        770004 | 406 | 590075 => Class::RateLimited,
        // A "state:false, code:0, message:''" failure was seen when scanning too fast.
        0 if message.is_empty() => Class::RateLimited,
        990005 | 990009 | 990019 => Class::Transient,
        430004 | 20018 | 20013 | 31003 | 50015 | 70005 | 70008 | 90008 | 20009 | 50003 => Class::NotFound,
        20004 => Class::Exists,
        // The sdk refreshes on any other code starting with 401 too (ref §2.6).
        c if (40100000..=40199999).contains(&c) => Class::AccessToken,
        _ => Class::Other,
    }
}

/// The message shown when the grant is gone: what happened and what to run.
pub fn reauthorize_message(mount: &str, code: i64, message: &str) -> String {
    let why = match code {
        40140116 => "the authorization was revoked, or evicted by a newer login of the same app",
        40140119 => "the authorization expired (refresh tokens live one year)",
        40140114 | 40140115 | 40140120 => "the refresh token was rejected (malformed or already used)",
        _ => "the refresh token was rejected",
    };
    let detail = if message.is_empty() { String::new() } else { format!(", \"{message}\"") };
    format!(
        "115 Open: {why} (code {code}{detail}); run `pandav login 115-open --config <your config> --mount {mount}` to authorize again"
    )
}

/// A failed refresh, before it becomes a `DriveError`.
#[derive(Debug, Clone)]
pub enum RefreshError {
    /// Terminal: the grant is dead.
    Dead { code: i64, message: String },
    /// 40140117: try again later.
    TooFrequent,
    /// Network, 5xx, 40140121…: try again soon.
    Transient(String),
}

/// Classify a passport failure envelope (sdk order: `code` first, then `error`, ref §1.3).
fn passport_refresh_error(env: &PassportEnvelope) -> RefreshError {
    let (code, msg) = if env.code != 0 {
        (env.code, env.message.clone())
    } else if !env.error.is_empty() {
        (env.errno, env.error.clone())
    } else {
        (env.errno, env.message.clone())
    };
    match classify(code, &msg) {
        Class::TooFrequent => RefreshError::TooFrequent,
        Class::Transient | Class::RateLimited => RefreshError::Transient(format!("code {code}: {msg}")),
        // "refresh token error" with code 0 (alist#8157) and every other refusal of a
        // refresh token: the token is not usable, the user must authorize again.
        _ => RefreshError::Dead { code, message: msg },
    }
}

// ---------------------------------------------------------------------------------------
// Refresh requests

/// Where refreshes go.
#[derive(Clone, Debug)]
pub enum RefreshVia {
    /// `POST passportapi.115.com/open/refreshToken` (ref §2.3).
    Passport,
    /// `GET {api_url}?refresh_ui=…` on the online broker (ref §2.8).
    Broker(String),
}

/// One refresh request: the provider rotates `refresh_token` and answers the new pair.
pub async fn refresh_request(
    http: &reqwest::Client,
    ep: &Endpoints,
    via: &RefreshVia,
    refresh_token: &str,
) -> Result<Tokens, RefreshError> {
    if refresh_token.is_empty() {
        return Err(RefreshError::Dead { code: 0, message: "no refresh token".into() });
    }
    match via {
        RefreshVia::Passport => {
            let url = ep.url(client::PASSPORT, "/open/refreshToken");
            let resp = http
                .post(url)
                .form(&[("refresh_token", refresh_token)])
                .send()
                .await
                .map_err(|e| RefreshError::Transient(e.without_url().to_string()))?;
            let status = resp.status();
            let body = resp.bytes().await.map_err(|e| RefreshError::Transient(e.without_url().to_string()))?;
            if status.is_server_error() || status.as_u16() == 429 {
                return Err(RefreshError::Transient(format!("HTTP {status}")));
            }
            let env = client::parse_passport(&body)
                .map_err(|_| RefreshError::Transient(format!("HTTP {status}, unreadable answer")))?;
            if !env.ok() {
                return Err(passport_refresh_error(&env));
            }
            let d: TokenData = serde_json::from_value(env.data)
                .map_err(|e| RefreshError::Transient(format!("unexpected token answer: {e}")))?;
            if d.access_token.is_empty() || d.refresh_token.is_empty() {
                return Err(RefreshError::Transient("empty token in the answer".into()));
            }
            Ok(Tokens::from_grant(d.access_token, d.refresh_token, if d.expires_in == 0 { 7200 } else { d.expires_in }))
        }
        RefreshVia::Broker(api_url) => {
            let url = ep.rewrite(api_url);
            let resp = http
                .get(url)
                .query(&[("refresh_ui", refresh_token), ("server_use", "true"), ("driver_txt", "115cloud_go")])
                .send()
                .await
                .map_err(|e| RefreshError::Transient(e.without_url().to_string()))?;
            let status = resp.status();
            let body = resp.bytes().await.map_err(|e| RefreshError::Transient(e.without_url().to_string()))?;
            #[derive(Deserialize, Default)]
            struct Broker {
                #[serde(default)]
                refresh_token: Option<String>,
                #[serde(default)]
                access_token: Option<String>,
                #[serde(default)]
                text: Option<String>,
            }
            let b: Broker = serde_json::from_slice(&body).unwrap_or_default();
            match (b.access_token.filter(|s| !s.is_empty()), b.refresh_token.filter(|s| !s.is_empty())) {
                (Some(a), Some(r)) if status.is_success() => Ok(Tokens::from_grant(a, r, 7200)),
                _ => {
                    // The broker relays 115's `error` text as `text` (HTTP 500). A
                    // 5xx from a proxy in front of it has no JSON at all: transient.
                    let text = b.text.unwrap_or_default();
                    if text.is_empty() && body.first() != Some(&b'{') {
                        return Err(RefreshError::Transient(format!("online API answered HTTP {status}")));
                    }
                    if text.contains("刷新太频繁") || text.contains("40140117") {
                        return Err(RefreshError::TooFrequent);
                    }
                    let msg = if text.is_empty() {
                        "empty token returned from the online API, a wrong refresh token may have been used".into()
                    } else {
                        text
                    };
                    Err(RefreshError::Dead { code: 0, message: msg })
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct TokenData {
    #[serde(default, deserialize_with = "client::de_string")]
    access_token: String,
    #[serde(default, deserialize_with = "client::de_string")]
    refresh_token: String,
    #[serde(default, deserialize_with = "client::de_u64")]
    expires_in: u64,
}

/// How a `115_open` mount rotates its pair: the kit's refresher.
pub struct Refresher {
    /// The mount's client.
    pub http: reqwest::Client,
    pub ep: Endpoints,
    pub via: RefreshVia,
    pub mount: String,
}

#[async_trait::async_trait]
impl credentials::Refresh<Tokens> for Refresher {
    async fn refresh(&self, held: &Tokens) -> Result<Tokens, credentials::RefreshError> {
        use credentials::RefreshError as R;
        match refresh_request(&self.http, &self.ep, &self.via, &held.refresh_token).await {
            Ok(t) => Ok(t),
            Err(RefreshError::Dead { code, message }) => Err(R::Dead(reauthorize_message(&self.mount, code, &message))),
            Err(RefreshError::TooFrequent) => Err(R::TooFrequent),
            Err(RefreshError::Transient(m)) => Err(R::Transient(m)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// PKCE device code (ref §2.1)

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
    pub method: &'static str,
}

/// A random 64-character verifier (43–128 allowed) and its SHA-256 challenge in standard
/// padded base64, as every known client sends it.
pub fn pkce() -> Pkce {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
    let mut rng = rand::thread_rng();
    let verifier: String = (0..64).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    let challenge = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    Pkce { verifier, challenge, method: "sha256" }
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeviceCode {
    #[serde(deserialize_with = "client::de_string")]
    pub uid: String,
    #[serde(default, deserialize_with = "client::de_u64")]
    pub time: u64,
    #[serde(default, deserialize_with = "client::de_string")]
    pub sign: String,
    #[serde(default, deserialize_with = "client::de_string")]
    pub qrcode: String,
}

/// Status of a device code while polling: the kit's QR states.
pub use crate::drivers::QrState as QrStatus;

fn passport_fail(env: &PassportEnvelope) -> anyhow::Error {
    if env.code != 0 {
        anyhow::anyhow!("code: {}, message: {}", env.code, env.message)
    } else if !env.error.is_empty() {
        anyhow::anyhow!("error: {}, errno: {}", env.error, env.errno)
    } else {
        anyhow::anyhow!("request refused (state 0)")
    }
}

pub async fn device_code(
    http: &reqwest::Client,
    ep: &Endpoints,
    client_id: &str,
    p: &Pkce,
) -> anyhow::Result<DeviceCode> {
    let resp = http
        .post(ep.url(client::PASSPORT, "/open/authDeviceCode"))
        .form(&[("client_id", client_id), ("code_challenge", &p.challenge), ("code_challenge_method", p.method)])
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("authDeviceCode: {}", e.without_url()))?;
    let body = resp.bytes().await.map_err(|e| anyhow::anyhow!("authDeviceCode: {}", e.without_url()))?;
    let env = client::parse_passport(&body).map_err(|e| anyhow::anyhow!("authDeviceCode: {e}"))?;
    if !env.ok() {
        return Err(passport_fail(&env).context("authDeviceCode refused (is the client id right?)"));
    }
    let mut d: DeviceCode = serde_json::from_value(env.data)?;
    if d.qrcode.is_empty() {
        d.qrcode = format!("https://115.com/scan/dg-{}", d.uid);
    }
    Ok(d)
}

/// One long poll of `qrcodeapi.115.com/get/status/`.
pub async fn poll_status(http: &reqwest::Client, ep: &Endpoints, d: &DeviceCode) -> anyhow::Result<QrStatus> {
    let time = d.time.to_string();
    let resp = http
        .get(ep.url(client::QRCODE, "/get/status/"))
        .timeout(Duration::from_secs(90))
        .query(&[("uid", d.uid.as_str()), ("time", time.as_str()), ("sign", d.sign.as_str())])
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("status poll: {}", e.without_url()))?;
    let body = resp.bytes().await.map_err(|e| anyhow::anyhow!("status poll: {}", e.without_url()))?;
    let env = client::parse_passport(&body).map_err(|e| anyhow::anyhow!("status poll: {e}"))?;
    if env.state == 0 {
        let msg = if !env.message.is_empty() { env.message.clone() } else { env.error.clone() };
        return Ok(QrStatus::Refused(msg));
    }
    let status = env.data.get("status").map(client::value_i64).unwrap_or(0);
    Ok(match status {
        1 => QrStatus::Scanned,
        2 => QrStatus::Confirmed,
        -1 => QrStatus::Expired,
        -2 => QrStatus::Canceled,
        _ => QrStatus::Waiting,
    })
}

pub async fn exchange(http: &reqwest::Client, ep: &Endpoints, d: &DeviceCode, p: &Pkce) -> anyhow::Result<Tokens> {
    let resp = http
        .post(ep.url(client::PASSPORT, "/open/deviceCodeToToken"))
        .form(&[("uid", d.uid.as_str()), ("code_verifier", p.verifier.as_str())])
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("deviceCodeToToken: {}", e.without_url()))?;
    let body = resp.bytes().await.map_err(|e| anyhow::anyhow!("deviceCodeToToken: {}", e.without_url()))?;
    let env = client::parse_passport(&body).map_err(|e| anyhow::anyhow!("deviceCodeToToken: {e}"))?;
    if !env.ok() {
        return Err(passport_fail(&env).context("deviceCodeToToken refused"));
    }
    let d: TokenData = serde_json::from_value(env.data)?;
    if d.access_token.is_empty() || d.refresh_token.is_empty() {
        anyhow::bail!("deviceCodeToToken answered without tokens");
    }
    Ok(Tokens::from_grant(d.access_token, d.refresh_token, if d.expires_in == 0 { 7200 } else { d.expires_in }))
}

// ---------------------------------------------------------------------------------------
// `pandav login 115-open`

#[derive(clap::Parser, Debug)]
#[command(
    name = "pandav login 115-open",
    about = "115 Open: PKCE device-code flow (scan the QR code with the 115 app)"
)]
struct LoginArgs {
    /// AppID of your 115 Open app (default: the mount's `client_id` option).
    #[arg(long)]
    client_id: Option<String>,
    /// Give up after this many seconds without a confirmation.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    #[command(flatten)]
    common: crate::drivers::LoginCommon,
}

/// The registry's login entry: `pandav login 115-open …`.
pub fn login_entry(args: Vec<String>, host: &dyn crate::drivers::LoginHost) -> crate::drivers::LoginFuture<'_> {
    Box::pin(async move {
        use clap::Parser;
        let a = LoginArgs::parse_from(std::iter::once("pandav login 115-open".to_string()).chain(args));
        let mut m = host.mount(&a.common)?;
        let opts: super::Options = m.options_for(&["115_open"])?;
        login(host, &opts, &m.ctx, a.client_id, a.common.png.as_deref(), Duration::from_secs(a.timeout)).await
    })
}

/// The device-code login: QR in the terminal (or a PNG), polling with status lines,
/// tokens saved in the mount's state through the kit's credentials.
pub async fn login(
    host: &dyn crate::drivers::LoginHost,
    opts: &super::Options,
    ctx: &crate::drivers::DriverCtx,
    client_id: Option<String>,
    png: Option<&Path>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let client_id = client_id.or(opts.client_id.clone()).filter(|c| !c.is_empty()).ok_or_else(|| {
        anyhow::anyhow!("no AppID: pass --client-id or set mounts.options.client_id (your app on open.115.com)")
    })?;
    let ep = Endpoints::new(opts.endpoints.clone())?;
    let http = crate::drivers::http::client();
    let p = pkce();
    let d = device_code(&http, &ep, &client_id, &p).await?;
    host.show_qr(&d.qrcode, png)?;
    println!("Scan this code with the 115 app and confirm the authorization.");
    println!("(QR content: {})", d.qrcode);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last: Option<QrStatus> = None;
    let mut failures = crate::drivers::PollFailures::default();
    loop {
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("gave up after {}s without a confirmation; run the command again", timeout.as_secs());
        }
        let polled = poll_status(&http, &ep, &d).await;
        let Some(st) = failures.check(polled, Duration::from_secs(2), |m| eprintln!("{m}")).await? else {
            continue;
        };
        if last.as_ref() != Some(&st) {
            match &st {
                QrStatus::Waiting => println!("status: waiting for the scan…"),
                QrStatus::Scanned => println!("status: scanned, confirm on your phone…"),
                QrStatus::Confirmed => println!("status: confirmed, fetching tokens…"),
                QrStatus::Expired => anyhow::bail!("the QR code expired; run the command again"),
                QrStatus::Canceled => anyhow::bail!("the authorization was cancelled on the phone"),
                QrStatus::Refused(m) => anyhow::bail!(
                    "the QR code is no longer valid{}",
                    if m.is_empty() { String::new() } else { format!(": {m}") }
                ),
            }
        }
        if st == QrStatus::Confirmed {
            break;
        }
        last = Some(st);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let t = exchange(&http, &ep, &d, &p).await?;
    let secret = opts.refresh_token.clone().unwrap_or_default();
    let path = ctx.state.path().to_path_buf();
    Credentials::restore(&ctx.state, &secret, Tokens::default())?.save_login(t).await?;
    println!("authorized: tokens for mount {} saved in {}", ctx.mount_path, path.display());
    if !secret.is_empty() {
        println!("note: the refresh_token in the config is superseded by the saved tokens (leave it unchanged, or remove it)");
    }
    println!("a running pandav picks the new tokens up by itself; restart it to use them at once");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_reference() {
        for c in [40140123, 40140124, 40140125, 40140126, 99] {
            assert_eq!(classify(c, "x"), Class::AccessToken, "{c}");
        }
        for c in [40140114, 40140115, 40140116, 40140119, 40140120] {
            assert_eq!(classify(c, "x"), Class::Reauthorize, "{c}");
        }
        assert_eq!(classify(40140117, "x"), Class::TooFrequent);
        assert_eq!(classify(40140121, "x"), Class::Transient);
        assert_eq!(classify(770004, "访问频率过高"), Class::RateLimited);
        assert_eq!(classify(406, "x"), Class::RateLimited);
        assert_eq!(classify(999, "已达到当前访问上限，请稍后再试"), Class::RateLimited);
        assert_eq!(classify(430004, "x"), Class::NotFound);
        assert_eq!(classify(20004, "x"), Class::Exists);
        assert_eq!(classify(91002, "x"), Class::Other);
    }

    #[test]
    fn debug_never_shows_tokens() {
        let t = Tokens::from_grant("ACCESS-SECRET".into(), "REFRESH-SECRET".into(), 7200);
        let s = format!("{t:?}");
        assert!(!s.contains("SECRET"), "{s}");
    }

    #[test]
    fn pkce_is_within_limits() {
        let p = pkce();
        assert!((43..=128).contains(&p.verifier.len()));
        let want = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(p.verifier.as_bytes()));
        assert_eq!(p.challenge, want);
    }

    #[test]
    fn margin_scales_with_lifetime() {
        let t = Tokens { expires_at: 7200 + 100, issued_at: 100, ..Default::default() };
        assert_eq!(t.margin(), 300);
        let t = Tokens { expires_at: 110, issued_at: 100, ..Default::default() };
        assert_eq!(t.margin(), 2);
    }
}
