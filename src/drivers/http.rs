//! HTTP plumbing shared by the cloud drivers: endpoint overrides, pacing to N requests
//! per second, retry with exponential backoff and jitter, throttle detection, error
//! mapping, and redaction of cookies and tokens from anything that reaches a log.
//!
//! A driver builds one [`Http`] per mount and sends every provider call through
//! [`Http::send`], which owns the loop: wait for the rate limiter, send, classify the
//! answer (done, retry, throttled), back off with jitter, and after the last attempt turn
//! a throttle into [`DriveError::RateLimited`] (503 + Retry-After for the client). After a
//! lasting throttle the mount cools down: calls fail fast until the cool-down is over,
//! instead of pressing a provider that is already refusing us.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;

use crate::vfs::{DriveError, DriveResult};

/// Base URLs that replace `https://<host>` for the hosts a driver calls (tests point
/// them at an emulator; users behind a relay at the relay).
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    map: BTreeMap<String, String>,
}

impl Endpoints {
    /// Validate a `host → base URL` table: hosts are bare names, bases are http(s) URLs
    /// (a path prefix is allowed; a trailing `/` is dropped).
    pub fn new(map: BTreeMap<String, String>) -> anyhow::Result<Endpoints> {
        let mut out = BTreeMap::new();
        for (host, base) in map {
            let h = host.trim().to_ascii_lowercase();
            if h.is_empty() || h.contains('/') || h.contains(':') {
                anyhow::bail!("endpoints: key {host:?} must be a bare host name like \"webapi.115.com\"");
            }
            let b = base.trim().trim_end_matches('/').to_string();
            if !(b.starts_with("http://") || b.starts_with("https://")) {
                anyhow::bail!("endpoints.{host}: {base:?} must start with http:// or https://");
            }
            out.insert(h, b);
        }
        Ok(Endpoints { map: out })
    }

    /// The whole table (normalised host → base URL).
    pub fn map(&self) -> &BTreeMap<String, String> {
        &self.map
    }

    /// The override for `host`, if any.
    pub fn get(&self, host: &str) -> Option<&str> {
        self.map.get(&host.to_ascii_lowercase()).map(String::as_str)
    }

    /// `https://<host>` or its override.
    pub fn base(&self, host: &str) -> String {
        self.get(host).map(str::to_string).unwrap_or_else(|| format!("https://{host}"))
    }

    /// `base(host) + path_and_query` (`path_and_query` starts with `/`).
    pub fn url(&self, host: &str, path_and_query: &str) -> String {
        format!("{}{}", self.base(host), path_and_query)
    }

    /// Rewrite an absolute provider URL (`scheme://host/rest`) whose host has an
    /// override; other URLs are returned unchanged.
    pub fn rewrite(&self, url: &str) -> String {
        let Some((_, rest)) = url.split_once("://") else { return url.to_string() };
        let (host, tail) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let host_only = host.rsplit('@').next().unwrap_or(host);
        let host_only = host_only.split(':').next().unwrap_or(host_only);
        match self.get(host_only) {
            Some(base) => format!("{base}{tail}"),
            None => url.to_string(),
        }
    }
}

/// Pacing: at most `rate` requests per second, burst 1 (what AList/OpenList do for 115;
/// OpenList's Aliyun Open limiter is the same shape). Hand-written on purpose: it is a
/// dozen lines, and a `governor` limiter would add a dependency tree for the same thing.
///
/// Callers go one at a time, in the order they came (a fair async mutex held across
/// the sleep), and each one's slot is `interval` after the previous caller actually
/// left. A slot computed in advance would be kept even when its holder woke late (a
/// busy runtime), letting the next caller out right behind it: two calls closer than
/// the provider allows, and a 429.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    /// When the last caller left (`None`: nobody yet).
    last: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

impl RateLimiter {
    /// `rate <= 0` means unlimited.
    pub fn per_second(rate: f64) -> RateLimiter {
        let interval = if rate > 0.0 { Duration::from_secs_f64(1.0 / rate) } else { Duration::ZERO };
        RateLimiter { interval, last: tokio::sync::Mutex::new(None) }
    }

    /// Wait for this caller's slot.
    pub async fn wait(&self) {
        if self.interval.is_zero() {
            return;
        }
        let mut last = self.last.lock().await;
        if let Some(t) = *last {
            tokio::time::sleep_until(t + self.interval).await;
        }
        *last = Some(tokio::time::Instant::now());
    }
}

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all after transient trouble (1 = no retry).
    pub attempts: u32,
    /// First backoff; doubles per attempt, with jitter.
    pub base: Duration,
    /// Cap of one backoff.
    pub max: Duration,
    /// Attempts in all while the provider throttles us.
    pub throttle_attempts: u32,
    /// First wait after a throttle answer (doubles per answer); with `pause_wait`, every
    /// call of the mount pauses that long.
    pub throttle_base: Duration,
    /// After retries against a throttle ran out: fail fast this long, and tell clients
    /// to come back after it (Retry-After). Zero: no cool-down.
    pub cooldown: Duration,
    /// A call arriving during a pause waits for it when it is at most this long, else
    /// fails fast with 503 (zero: always fails fast).
    pub pause_wait: Duration,
    /// Retry-After told to clients when throttling outlasted the retries and there is no
    /// cool-down.
    pub throttled_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(1000),
            max: Duration::from_secs(20),
            throttle_attempts: 4,
            throttle_base: Duration::from_millis(1000),
            cooldown: Duration::from_secs(60),
            pause_wait: Duration::ZERO,
            throttled_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Backoff before retry number `n` (0-based): `min(max, base·2ⁿ)` scaled by a random
    /// factor in [0.5, 1.0] ("equal jitter"), so that many clients do not retry in step.
    pub fn backoff(&self, n: u32) -> Duration {
        jittered(self.base, n, self.max)
    }
}

fn jittered(base: Duration, n: u32, max: Duration) -> Duration {
    let full = base.saturating_mul(1u32 << n.min(16)).min(max);
    let f: f64 = rand::thread_rng().gen_range(0.5..=1.0);
    full.mul_f64(f)
}

/// A provider answer, read whole (API bodies are small).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `name=value` of every `Set-Cookie` header.
    pub fn set_cookies(&self) -> Vec<(String, String)> {
        self.headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| {
                let first = v.split(';').next()?.trim();
                let (k, val) = first.split_once('=')?;
                Some((k.trim().to_string(), val.trim().to_string()))
            })
            .collect()
    }

    pub fn is_html(&self) -> bool {
        let ct = self.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        if ct.contains("html") {
            return true;
        }
        let head: Vec<u8> = self.body.iter().take(64).copied().collect();
        let head = String::from_utf8_lossy(&head).trim_start().to_ascii_lowercase();
        head.starts_with("<!doctype") || head.starts_with("<html")
    }

    /// `Retry-After` (seconds), or a provider's own header of that meaning
    /// (`x-retry-after` in milliseconds, Aliyun Open; `x-ratelimit-reset` in seconds).
    pub fn retry_after(&self) -> Option<Duration> {
        let h = |n: &str| self.headers.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
        if let Some(ms) = h("x-retry-after").and_then(|s| s.parse::<u64>().ok()) {
            return Some(Duration::from_millis(ms));
        }
        h("retry-after").or_else(|| h("x-ratelimit-reset")).and_then(|s| s.parse::<u64>().ok()).map(Duration::from_secs)
    }
}

/// What a driver makes of one answer.
pub enum Verdict {
    /// Hand it to the caller.
    Done,
    /// Transient trouble: try again after the backoff.
    Retry(String),
    /// The provider is pacing us (throttle page, 429…): back off, and if it lasts, cool
    /// down. `after` is the provider's own hint (Retry-After).
    Throttled { why: String, after: Option<Duration> },
    /// The credential was refused: re-authenticate once and resend. If the resend is
    /// refused too, the call fails with this error.
    Reauth(DriveError),
    /// Stop with this error.
    Fatal(DriveError),
}

/// What the call loop needs from a driver's login: the credential to build each attempt
/// with, and a way to get a new one.
#[async_trait::async_trait]
pub trait Session: Send + Sync {
    type Cred: Send + Sync;

    /// The credential in force and its generation; `AuthLost` while the login is
    /// known dead.
    fn current(&self) -> DriveResult<(std::sync::Arc<Self::Cred>, u64)>;

    /// Whether `cred` can be sent at all (an empty access token is refreshed first).
    fn usable(&self, _cred: &Self::Cred) -> bool {
        true
    }

    /// Re-authenticate unless generation `seen` is already superseded. `Ok(true)`: a
    /// credential another process had issued was adopted (its resend does not count).
    async fn reauth(&self, seen: u64) -> DriveResult<bool>;
}

/// No login (or one that cannot be renewed): every attempt is built without credentials.
pub struct NoSession;

#[async_trait::async_trait]
impl Session for NoSession {
    type Cred = ();

    fn current(&self) -> DriveResult<(std::sync::Arc<()>, u64)> {
        Ok((std::sync::Arc::new(()), 0))
    }

    async fn reauth(&self, _seen: u64) -> DriveResult<bool> {
        Err(DriveError::Unsupported("re-authentication"))
    }
}

/// Every mount's [`Credentials`](crate::vfs::credentials::Credentials) is a session:
/// the latch answers `AuthLost`, a refusal refreshes through the kit (single flight,
/// adoption, one writer).
#[async_trait::async_trait]
impl<T: crate::vfs::credentials::Grant> Session for crate::vfs::credentials::Credentials<T> {
    type Cred = T;

    fn current(&self) -> DriveResult<(std::sync::Arc<T>, u64)> {
        if let Some(m) = self.latched() {
            return Err(DriveError::AuthLost(m));
        }
        Ok(self.get())
    }

    fn usable(&self, cred: &T) -> bool {
        cred.usable()
    }

    async fn reauth(&self, seen: u64) -> DriveResult<bool> {
        self.refresh(seen).await.map(|r| r.adopted)
    }
}

/// The default classification: 405 with an HTML body or 429 is a throttle, 5xx (and 408)
/// is worth retrying when the request is idempotent, the rest is the caller's.
pub fn default_verdict(r: &Response, idempotent: bool) -> Verdict {
    match r.status {
        429 => Verdict::Throttled { why: "429 Too Many Requests".into(), after: r.retry_after() },
        405 if r.is_html() => Verdict::Throttled { why: "405 throttle page".into(), after: None },
        500 | 502 | 503 | 504 | 408 if idempotent => Verdict::Retry(format!("HTTP {}", r.status)),
        _ => Verdict::Done,
    }
}

/// A client for one mount: API calls (timeout, no redirects) and a long-lived variant.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .timeout(CALL_TIMEOUT)
        // API calls never follow redirects: a logged-out legacy page redirects to a
        // login page, and that must be seen, not followed.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// Total time one API call may take (uploads and long polls set their own).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Options of one call.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// What it does, for messages and logs.
    pub what: &'a str,
    /// Safe to send twice (retry after failures where it may have reached the provider).
    pub idempotent: bool,
    /// Attempts in all, overriding the policy (e.g. 1 for a best-effort probe).
    pub attempts: Option<u32>,
}

impl<'a> Call<'a> {
    pub fn new(what: &'a str, idempotent: bool) -> Call<'a> {
        Call { what, idempotent, attempts: None }
    }
}

/// One provider's HTTP side for one mount: one `reqwest::Client` (clones share it), the
/// pacer, the retry policy, and the pause after throttling.
pub struct Http {
    pub client: reqwest::Client,
    pub endpoints: Endpoints,
    pub limiter: RateLimiter,
    pub retry: RetryPolicy,
    /// Provider name for messages ("115").
    pub provider: &'static str,
    paused_until: std::sync::Mutex<Option<Instant>>,
}

impl Http {
    pub fn new(provider: &'static str, endpoints: Endpoints, rate: f64, retry: RetryPolicy) -> anyhow::Result<Http> {
        Ok(Http::with_client(client(), provider, endpoints, rate, retry))
    }

    pub fn with_client(
        client: reqwest::Client,
        provider: &'static str,
        endpoints: Endpoints,
        rate: f64,
        retry: RetryPolicy,
    ) -> Http {
        Http {
            client,
            endpoints,
            limiter: RateLimiter::per_second(rate),
            retry,
            provider,
            paused_until: std::sync::Mutex::new(None),
        }
    }

    /// Another loop over the same client (e.g. unpaced uploads beside paced API calls).
    pub fn sibling(&self, rate: f64, retry: RetryPolicy) -> Http {
        Http::with_client(self.client.clone(), self.provider, self.endpoints.clone(), rate, retry)
    }

    /// Time left of a throttle pause or cool-down, if one is running.
    pub fn cooling(&self) -> Option<Duration> {
        let mut g = self.paused_until.lock().unwrap();
        match *g {
            Some(t) if t > Instant::now() => Some(t - Instant::now()),
            Some(_) => {
                *g = None;
                None
            }
            None => None,
        }
    }

    /// Pause every call of the mount for `d` (extends, never shortens, a pause).
    pub fn pause(&self, d: Duration) {
        if d.is_zero() {
            return;
        }
        let mut g = self.paused_until.lock().unwrap();
        let until = Instant::now() + d;
        if g.is_none_or(|x| x < until) {
            *g = Some(until);
        }
    }

    /// Wait out a short pause; fail fast (503 + Retry-After) during a long one.
    async fn respect_pause(&self) -> DriveResult<()> {
        if let Some(left) = self.cooling() {
            if left > self.retry.pause_wait {
                return Err(DriveError::RateLimited { retry_after: Some(left.max(Duration::from_secs(1))) });
            }
            tokio::time::sleep(left).await;
        }
        Ok(())
    }

    /// Send a request without a login: see [`call`](Self::call).
    pub async fn send<B, C>(&self, what: &str, idempotent: bool, build: B, classify: C) -> DriveResult<Response>
    where
        B: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        C: Fn(&Response) -> Verdict,
    {
        self.call(Call::new(what, idempotent), &NoSession, |c, _| build(c), classify).await
    }

    /// The call loop. Each attempt: wait out a pause, take the session's current
    /// credential (refreshing first when it is unusable), wait for the pacer, build the
    /// request with the credential (`build` is called again for every attempt), send,
    /// read the answer and let `classify` judge it:
    ///
    /// - `Done`: return it (also a `Retry` answer whose retries ran out: the caller maps
    ///   its status or errno);
    /// - `Retry`: back off (jitter) and resend, within the policy's attempts;
    /// - `Throttled`: pause the mount (the provider's hint, else a growing backoff) and
    ///   resend; when it lasts, cool down and fail with 503 + Retry-After;
    /// - `Reauth`: re-authenticate once and resend (an adopted credential does not use up
    ///   the resend, twice at most);
    /// - `Fatal`: fail with its error.
    ///
    /// Network failures are retried when the request cannot have reached the provider
    /// (connect) or is idempotent.
    pub async fn call<S, B, C>(&self, call: Call<'_>, session: &S, build: B, classify: C) -> DriveResult<Response>
    where
        S: Session + ?Sized,
        B: Fn(&reqwest::Client, &S::Cred) -> reqwest::RequestBuilder,
        C: Fn(&Response) -> Verdict,
    {
        let what = call.what;
        let attempts = call.attempts.unwrap_or(self.retry.attempts).max(1);
        let throttle_attempts = call.attempts.unwrap_or(self.retry.throttle_attempts).max(1);
        let (mut tries, mut throttles) = (0u32, 0u32);
        let (mut reauthed, mut adoptions) = (false, 0u32);
        let mut last = String::new();
        let count = |o: crate::metrics::Outcome| crate::metrics::upstream(self.provider, what, o);
        use crate::metrics::Outcome;
        loop {
            self.respect_pause().await?;
            let (cred, gen) = session.current()?;
            if !session.usable(&cred) && !reauthed {
                reauthed = true;
                session.reauth(gen).await?;
                continue;
            }
            self.limiter.wait().await;
            let sent = build(&self.client, &cred).send().await;
            let transient = |why: String, tries: &mut u32, last: &mut String| -> bool {
                *last = why;
                *tries += 1;
                *tries < attempts
            };
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    // A refused connection never reached the provider: always safe to retry.
                    let retry =
                        e.is_connect() || (call.idempotent && (e.is_timeout() || e.is_request() || e.is_body()));
                    let msg = redact(&e.without_url().to_string());
                    if retry && transient(format!("network: {msg}"), &mut tries, &mut last) {
                        count(Outcome::Retried);
                        self.backoff(what, tries, &last).await;
                        continue;
                    }
                    count(Outcome::Failed);
                    return Err(DriveError::transient(format!("{} {what}: {msg}", self.provider)));
                }
            };
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = match resp.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    let msg = format!("reading body: {}", redact(&e.without_url().to_string()));
                    if call.idempotent && transient(msg.clone(), &mut tries, &mut last) {
                        count(Outcome::Retried);
                        self.backoff(what, tries, &last).await;
                        continue;
                    }
                    count(Outcome::Failed);
                    return Err(DriveError::transient(format!("{} {what}: {msg}", self.provider)));
                }
            };
            let r = Response { status, headers, body };
            match classify(&r) {
                Verdict::Done => {
                    count(Outcome::Ok);
                    return Ok(r);
                }
                Verdict::Fatal(e) => {
                    count(Outcome::Failed);
                    return Err(e);
                }
                Verdict::Retry(why) => {
                    if transient(why, &mut tries, &mut last) {
                        count(Outcome::Retried);
                        self.backoff(what, tries, &last).await;
                        continue;
                    }
                    // Retries ran out on an answer: the caller maps it (an errno, a 5xx).
                    count(Outcome::Failed);
                    return Ok(r);
                }
                Verdict::Reauth(refused) => {
                    if reauthed {
                        count(Outcome::Failed);
                        return Err(refused);
                    }
                    count(Outcome::Retried);
                    tracing::debug!(provider = self.provider, call = what, "credential refused, re-authenticating");
                    let adopted = session.reauth(gen).await?;
                    if !adopted || adoptions >= 2 {
                        reauthed = true;
                    }
                    adoptions += 1;
                    continue;
                }
                Verdict::Throttled { why, after } => {
                    count(Outcome::Throttled);
                    tracing::warn!(provider = self.provider, call = what, "throttled: {why}");
                    throttles += 1;
                    // No jitter here: the pause is the mount's, not one caller's.
                    let exact = self.retry.throttle_base.saturating_mul(1u32 << (throttles - 1).min(16));
                    let wait = after.unwrap_or(exact.min(self.retry.max));
                    if throttles < throttle_attempts && wait <= self.retry.max.max(self.retry.pause_wait) {
                        if !self.retry.pause_wait.is_zero() {
                            // The other calls of the mount wait with us.
                            self.pause(wait);
                        }
                        tracing::info!(provider = self.provider, call = what, "waiting {wait:?} before retrying");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    let after = if !self.retry.cooldown.is_zero() {
                        self.pause(self.retry.cooldown);
                        tracing::warn!(
                            provider = self.provider,
                            call = what,
                            "still throttled after {throttles} attempts; pausing calls for {:?}",
                            self.retry.cooldown
                        );
                        self.retry.cooldown
                    } else {
                        self.pause(wait.min(self.retry.throttled_retry_after));
                        after.unwrap_or(self.retry.throttled_retry_after)
                    };
                    return Err(DriveError::RateLimited { retry_after: Some(after.max(Duration::from_secs(1))) });
                }
            }
        }
    }

    async fn backoff(&self, what: &str, tries: u32, last: &str) {
        let wait = self.retry.backoff(tries - 1);
        tracing::info!(provider = self.provider, call = what, attempt = tries + 1, "retrying in {wait:?}: {last}");
        tokio::time::sleep(wait).await;
    }
}

/// Names whose values are secrets wherever they appear as `name=value` or
/// `"name":"value"`: matched exactly (cookie names are upper case; `cid` in lower case is
/// a folder id and stays visible).
const SECRET_EXACT: &[&str] = &["UID", "CID", "SEID", "KID"];
/// Matched case-insensitively.
const SECRET_ANYCASE: &[&str] = &[
    "cookie",
    "token",
    "access_token",
    "refresh_token",
    "securitytoken",
    "accesskeysecret",
    "accesskeyid",
    "x-oss-security-token",
    "authorization",
    "userkey",
    "sig",
    "sign",
    "k_ec",
    "password",
    "receive_code",
    "set-cookie",
];

fn is_secret_name(name: &str) -> bool {
    SECRET_EXACT.contains(&name) || SECRET_ANYCASE.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// Replace the values of cookies, tokens and signatures in `s` by `***`: `name=value`
/// pairs (query strings, cookie headers, forms), `"name":"value"` JSON members and
/// `name: value` header lines, plus bare `<32 hex>=<32 hex>` download cookies.
pub fn redact(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        // A name: letters, digits, '_' and '-'.
        if b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'-' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'-') {
                i += 1;
            }
            let name = &s[start..i];
            out.push_str(name);
            // Separator: `=`, `:` or `":` with optional spaces and an opening quote.
            let mut j = i;
            if j < b.len() && b[j] == b'"' {
                j += 1;
            }
            while j < b.len() && b[j] == b' ' {
                j += 1;
            }
            if j < b.len() && (b[j] == b'=' || b[j] == b':') {
                j += 1;
                while j < b.len() && b[j] == b' ' {
                    j += 1;
                }
                let quoted = j < b.len() && b[j] == b'"';
                if quoted {
                    j += 1;
                }
                let vstart = j;
                while j < b.len() {
                    let c = b[j];
                    if quoted && c == b'"' {
                        break;
                    }
                    if !quoted && (c == b';' || c == b'&' || c == b',' || c == b' ' || c == b'"' || c == b'\n') {
                        break;
                    }
                    j += 1;
                }
                let value = &s[vstart..j];
                let hex_cookie = name.len() == 32
                    && value.len() == 32
                    && name.bytes().all(|c| c.is_ascii_hexdigit())
                    && value.bytes().all(|c| c.is_ascii_hexdigit());
                if (is_secret_name(name) || hex_cookie) && !value.is_empty() {
                    out.push_str(&s[i..vstart]);
                    out.push_str("***");
                    i = j;
                    continue;
                }
            }
            continue;
        }
        let ch = s[i..].chars().next().expect("char boundary");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// A secret string (cookie, token): usable, but never printed by `Debug`.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("\"***\"")
        }
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

/// Map a network failure of a non-retried call.
pub fn net_error(provider: &str, what: &str, e: reqwest::Error) -> DriveError {
    DriveError::transient(format!("{provider} {what}: {}", redact(&e.without_url().to_string())))
}

/// Query-string encoding of one value.
pub fn qs(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// A form body from pairs, in the given order.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_cookies_tokens_and_json_members() {
        let s = "Cookie: UID=1_A1_2; CID=abc; SEID=def; KID=ghi; cid=123&token=zz&sig=AA";
        let r = redact(s);
        assert!(!r.contains("abc") && !r.contains("def") && !r.contains("ghi") && !r.contains("zz"), "{r}");
        assert!(r.contains("cid=123"), "folder ids stay visible: {r}");
        let j = r#"{"SecurityToken":"sss","AccessKeySecret":"kkk","n":"a.txt","userkey":"uk"}"#;
        let r = redact(j);
        assert!(!r.contains("sss") && !r.contains("kkk") && !r.contains("uk\""), "{r}");
        assert!(r.contains("a.txt"));
        let c = "0123456789abcdef0123456789abcdef=fedcba9876543210fedcba9876543210";
        assert!(!redact(c).contains("fedcba"), "{}", redact(c));
        assert_eq!(redact("状态 ok"), "状态 ok");
    }

    #[test]
    fn endpoints_override_and_rewrite() {
        let mut m = BTreeMap::new();
        m.insert("webapi.115.com".into(), "http://127.0.0.1:9/webapi.115.com/".into());
        let e = Endpoints::new(m).unwrap();
        assert_eq!(e.url("webapi.115.com", "/files?x=1"), "http://127.0.0.1:9/webapi.115.com/files?x=1");
        assert_eq!(e.url("proapi.115.com", "/a"), "https://proapi.115.com/a");
        assert_eq!(e.rewrite("https://webapi.115.com/x?y"), "http://127.0.0.1:9/webapi.115.com/x?y");
        assert_eq!(e.rewrite("https://other/x"), "https://other/x");
        let mut bad = BTreeMap::new();
        bad.insert("webapi.115.com".into(), "ftp://x".into());
        assert!(Endpoints::new(bad).is_err());
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let p = RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(100),
            max: Duration::from_millis(350),
            cooldown: Duration::ZERO,
            ..RetryPolicy::default()
        };
        for n in 0..6 {
            let d = p.backoff(n);
            let full = (100u64 << n).min(350);
            assert!(d >= Duration::from_millis(full / 2) && d <= Duration::from_millis(full), "{n}: {d:?}");
        }
    }

    #[tokio::test]
    async fn limiter_paces() {
        let l = RateLimiter::per_second(20.0);
        let t = Instant::now();
        for _ in 0..5 {
            l.wait().await;
        }
        assert!(t.elapsed() >= Duration::from_millis(190), "{:?}", t.elapsed());
    }

    /// Callers that woke late (the runtime was busy past their slots) still leave one
    /// interval apart: a slot is counted from when the caller before actually left.
    #[test]
    fn limiter_keeps_the_interval_after_a_late_wake_up() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let interval = Duration::from_millis(100);
        let gaps = rt.block_on(async {
            let l = std::sync::Arc::new(RateLimiter::per_second(1.0 / interval.as_secs_f64()));
            l.wait().await;
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let l = std::sync::Arc::clone(&l);
                    tokio::spawn(async move {
                        l.wait().await;
                        Instant::now()
                    })
                })
                .collect();
            tokio::task::yield_now().await;
            // The only runtime thread is busy well past every waiter's first slot.
            std::thread::sleep(interval * 4);
            let mut left = vec![];
            for w in waiters {
                left.push(w.await.unwrap());
            }
            left.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()
        });
        for g in gaps {
            assert!(g >= interval - Duration::from_millis(2), "two calls {g:?} apart, interval {interval:?}");
        }
    }

    #[test]
    fn secret_debug_hides_value() {
        assert_eq!(format!("{:?}", Secret("UID=1".into())), "\"***\"");
    }
}
