//! 115 Open wire level: hosts and their overrides, the two envelopes (ref §1.3), lenient
//! decoding of unstable shapes (§1.4), and `Api::call`, which adds the Bearer token,
//! the rate limit, refresh-once-and-retry, back-off and error mapping to every call.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::login::{self, Class, Tokens};
use crate::drivers::http::{Call, Http, Response, RetryPolicy, Verdict};
use crate::vfs::credentials::{Cooldown, Credentials};
use crate::vfs::{DriveError, DriveResult, ProviderCode};

pub const PASSPORT: &str = "passportapi.115.com";
pub const PROAPI: &str = "proapi.115.com";
pub const QRCODE: &str = "qrcodeapi.115.com";
pub const BROKER_URL: &str = "https://api.oplist.org/115cloud/renewapi";

// ---------------------------------------------------------------------------------------
// Hosts

pub use crate::drivers::http::Endpoints;

// ---------------------------------------------------------------------------------------
// Lenient decoding

pub fn value_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => (if *b { "1" } else { "0" }).to_string(),
        _ => String::new(),
    }
}

pub fn value_i64(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).unwrap_or(0),
        Value::String(s) => {
            s.trim().parse::<i64>().ok().or_else(|| s.trim().parse::<f64>().ok().map(|f| f as i64)).unwrap_or(0)
        }
        Value::Bool(b) => *b as i64,
        _ => 0,
    }
}

pub fn value_u64(v: &Value) -> u64 {
    value_i64(v).max(0) as u64
}

pub fn value_bool(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => matches!(s.trim(), "1" | "true" | "True"),
        _ => false,
    }
}

pub fn de_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(value_string(&Value::deserialize(d)?))
}

pub fn de_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(value_u64(&Value::deserialize(d)?))
}

pub fn de_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(value_i64(&Value::deserialize(d)?))
}

// ---------------------------------------------------------------------------------------
// Envelopes

/// `proapi` envelope: boolean `state`, `code`/`message` (or `errno`/`error`), `data`, and
/// for listings extra top-level fields (kept in `raw`).
#[derive(Debug)]
pub struct ProEnvelope {
    pub state: bool,
    pub code: i64,
    pub message: String,
    pub data: Value,
    pub raw: Value,
}

pub fn parse_pro(body: &[u8]) -> Result<ProEnvelope, String> {
    let raw: Value = serde_json::from_slice(body).map_err(|_| "answer is not JSON".to_string())?;
    if !raw.is_object() {
        return Err("answer is not a JSON object".into());
    }
    let g = |k: &str| raw.get(k).cloned().unwrap_or(Value::Null);
    let code = match value_i64(&g("code")) {
        0 => value_i64(&g("errno")),
        c => c,
    };
    let message = match value_string(&g("message")) {
        m if m.is_empty() => value_string(&g("error")),
        m => m,
    };
    Ok(ProEnvelope { state: value_bool(&g("state")), code, message, data: g("data"), raw })
}

/// Passport envelope: numeric `state` (1 ok, 0 failed), `code`, `message`, `error`,
/// `errno`, `data` (object, or `{}`/`[]` on failure).
#[derive(Debug)]
pub struct PassportEnvelope {
    pub state: i64,
    pub code: i64,
    pub message: String,
    pub error: String,
    pub errno: i64,
    pub data: Value,
}

impl PassportEnvelope {
    /// Success as the sdk judges it: no `code`, no `error`, and `state` not 0.
    pub fn ok(&self) -> bool {
        self.code == 0 && self.error.is_empty() && self.state != 0
    }
}

pub fn parse_passport(body: &[u8]) -> Result<PassportEnvelope, String> {
    let raw: Value = serde_json::from_slice(body).map_err(|_| "answer is not JSON".to_string())?;
    let g = |k: &str| raw.get(k).cloned().unwrap_or(Value::Null);
    let state = match g("state") {
        Value::Bool(b) => b as i64,
        v => value_i64(&v),
    };
    Ok(PassportEnvelope {
        state,
        code: value_i64(&g("code")),
        message: value_string(&g("message")),
        error: value_string(&g("error")),
        errno: value_i64(&g("errno")),
        data: g("data"),
    })
}

// ---------------------------------------------------------------------------------------
// Calls

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// One proapi request.
pub struct Req<'a> {
    pub method: Method,
    pub path: &'a str,
    pub params: Vec<(&'a str, String)>,
    /// `User-Agent` (only `downurl` cares, ref §5).
    pub user_agent: Option<&'a str>,
    /// Safe to send twice (reads, and writes that are idempotent).
    pub idempotent: bool,
}

impl<'a> Req<'a> {
    pub fn get(path: &'a str, params: Vec<(&'a str, String)>) -> Req<'a> {
        Req { method: Method::Get, path, params, user_agent: None, idempotent: true }
    }
    pub fn post(path: &'a str, params: Vec<(&'a str, String)>, idempotent: bool) -> Req<'a> {
        Req { method: Method::Post, path, params, user_agent: None, idempotent }
    }
}

/// Tunables of retries (shortened in tests through the options).
#[derive(Clone, Debug)]
pub struct Backoff {
    /// First wait after a throttle answer; doubles per attempt.
    pub throttle_first: Duration,
    /// Throttle answers retried within one call before giving up with 503.
    pub throttle_tries: u32,
    /// First wait after 40140117 on refresh; doubles up to `too_frequent_max`.
    pub too_frequent_first: Duration,
    pub too_frequent_max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            throttle_first: Duration::from_secs(1),
            throttle_tries: 3,
            too_frequent_first: Duration::from_secs(60),
            too_frequent_max: Duration::from_secs(1800),
        }
    }
}

impl Backoff {
    pub fn cooldown(&self) -> Cooldown {
        Cooldown { first: self.too_frequent_first, max: self.too_frequent_max }
    }
}

pub struct Api {
    pub ep: Endpoints,
    /// The kit's call loop: one client for the mount, the pacer, retries, pauses.
    pub http: Http,
    /// The token pair: single flight, cross-process lock, one writer, the dead latch.
    pub creds: Credentials<Tokens>,
    pub mount: String,
    pub backoff: Backoff,
}

pub struct ApiConfig {
    pub ep: Endpoints,
    pub rate_limit: f64,
    pub creds: Credentials<Tokens>,
    pub mount: String,
    pub backoff: Backoff,
    /// The mount's client (shared with its refresher).
    pub client: reqwest::Client,
}

/// 115 Open's retry policy: transient trouble retried 3 times; throttle answers pause
/// every call of the mount (up to 15 s is waited out) and are retried
/// `throttle_tries` times with a doubling wait; no cool-down after that.
fn policy(b: &Backoff) -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base: Duration::from_millis(500),
        max: Duration::from_secs(20),
        throttle_attempts: b.throttle_tries,
        throttle_base: b.throttle_first,
        cooldown: Duration::ZERO,
        pause_wait: Duration::from_secs(15),
        throttled_retry_after: Duration::from_secs(60),
    }
}

impl Api {
    pub fn new(c: ApiConfig) -> Api {
        let http = Http::with_client(c.client, "115 Open", c.ep.clone(), c.rate_limit, policy(&c.backoff));
        Api { ep: c.ep, http, creds: c.creds.with_cooldown(c.backoff.cooldown()), mount: c.mount, backoff: c.backoff }
    }

    pub fn set_backoff(&mut self, b: Backoff) {
        self.creds.set_cooldown(b.cooldown());
        self.http.retry = policy(&b);
        self.backoff = b;
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http.client
    }

    /// `Some(message)` while the grant is known dead (a new pair in the state file is
    /// adopted without the network).
    pub async fn dead_check(&self) -> Option<String> {
        self.creds.latched()
    }

    pub fn is_dead(&self) -> bool {
        self.creds.is_latched()
    }

    /// Refresh unless another caller already did since generation `seen`.
    pub async fn refresh(&self, seen: u64) -> DriveResult<Arc<Tokens>> {
        let r = self.creds.refresh(seen).await?;
        tracing::debug!(mount = %self.mount, expires_in = r.grant.remaining(), adopted = r.adopted, "115 Open tokens refreshed");
        Ok(r.grant)
    }

    /// One proapi call through the kit's loop. Returns the success envelope.
    pub async fn call(&self, req: &Req<'_>) -> DriveResult<ProEnvelope> {
        let url = self.ep.url(PROAPI, req.path);
        let r = self
            .http
            .call(
                Call::new(req.path, req.idempotent),
                &self.creds,
                |c, tok| {
                    let mut rb = match req.method {
                        Method::Get => c.get(&url).query(&req.params),
                        Method::Post => c.post(&url).form(&req.params),
                    };
                    if !tok.access_token.is_empty() {
                        rb = rb.bearer_auth(&tok.access_token);
                    }
                    if let Some(ua) = req.user_agent {
                        rb = rb.header(reqwest::header::USER_AGENT, ua);
                    }
                    rb
                },
                |r| self.verdict(req, r),
            )
            .await?;
        finish(req.path, &r)
    }

    /// 115 Open's reading of one answer (ref §2.5, §10.1, §11).
    fn verdict(&self, req: &Req<'_>, r: &Response) -> Verdict {
        let path = req.path;
        if r.status == 429 {
            // Retry-After is honoured by failing fast: the whole mount pauses meanwhile.
            let wait = r.retry_after().unwrap_or(Duration::from_secs(60));
            self.http.pause(wait.min(Duration::from_secs(60)));
            return Verdict::Fatal(DriveError::RateLimited { retry_after: Some(wait) });
        }
        if r.status >= 500 {
            if req.idempotent {
                return Verdict::Retry(format!("HTTP {}", r.status));
            }
            return Verdict::Fatal(DriveError::upstream(format!("115 Open {path}: HTTP {}", r.status)));
        }
        let env = match parse_pro(&r.body) {
            Ok(e) => e,
            // A bare 401: treat like a bad access token.
            Err(m) if r.status == 401 => {
                return Verdict::Reauth(DriveError::upstream(format!("115 Open {path}: HTTP 401 ({m})")))
            }
            Err(m) => return Verdict::Fatal(DriveError::upstream(format!("115 Open {path}: HTTP {}, {m}", r.status))),
        };
        if env.state {
            return Verdict::Done;
        }
        match login::classify(env.code, &env.message) {
            // Refresh once and retry (ref §2.6).
            Class::AccessToken | Class::Reauthorize => Verdict::Reauth(DriveError::upstream(format!(
                "115 Open {path}: access token refused right after a refresh (code {}: {})",
                env.code, env.message
            ))),
            Class::RateLimited | Class::TooFrequent => {
                Verdict::Throttled { why: format!("code {} {}", env.code, env.message), after: None }
            }
            Class::Transient => Verdict::Retry(format!("code {} {}", env.code, env.message)),
            Class::NotFound => Verdict::Fatal(DriveError::NotFound),
            Class::Exists => Verdict::Fatal(DriveError::Exists),
            Class::Other => Verdict::Fatal(map_other(path, env.code, &env.message)),
        }
    }
}

/// The envelope of an answer the loop handed back (a success, or a transient failure
/// whose retries ran out).
fn finish(path: &str, r: &Response) -> DriveResult<ProEnvelope> {
    if r.status >= 500 {
        return Err(DriveError::upstream(format!("115 Open {path}: HTTP {}", r.status)));
    }
    let env =
        parse_pro(&r.body).map_err(|m| DriveError::upstream(format!("115 Open {path}: HTTP {}, {m}", r.status)))?;
    if env.state {
        return Ok(env);
    }
    Err(map_other(path, env.code, &env.message))
}

/// Codes with a better home than "provider error" (ref §11).
fn map_other(path: &str, code: i64, message: &str) -> DriveError {
    match code {
        91002 => DriveError::Forbidden("cannot copy or move a folder into itself".into()),
        91005 | 2 => DriveError::NoSpace,
        20001 | 20003 | 990002 => {
            DriveError::InvalidInput(format!("115 Open refused the name or parameter: {message}"))
        }
        50038 | 50028 => DriveError::Forbidden(format!("115 Open: {message} (code {code})")),
        91004 | 990023 => DriveError::Forbidden("more than 50 000 items in one operation".into()),
        _ => DriveError::provider(ProviderCode::Num(code), format!("115 Open {path}: code {code}: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_read_leniently() {
        let e = parse_pro(br#"{"state":false,"errno":770004,"error":"x","data":{}}"#).unwrap();
        assert!(!e.state);
        assert_eq!(e.code, 770004);
        assert_eq!(e.message, "x");
        let e = parse_pro(br#"{"state":1,"code":0,"message":"","data":[]}"#).unwrap();
        assert!(e.state);
        let p =
            parse_passport(br#"{"state":0,"code":0,"message":"","error":"refresh token error","errno":0,"data":[]}"#)
                .unwrap();
        assert!(!p.ok());
        let p = parse_passport(br#"{"state":true,"code":0,"message":"","data":{"a":1}}"#).unwrap();
        assert!(p.ok());
    }

    #[test]
    fn endpoints_rewrite_hosts() {
        let mut m = std::collections::BTreeMap::new();
        m.insert("cdn.example.net".to_string(), "http://127.0.0.1:9/cdn".to_string());
        let ep = Endpoints::new(m).unwrap();
        assert_eq!(ep.rewrite("https://cdn.example.net/a/b?t=1"), "http://127.0.0.1:9/cdn/a/b?t=1");
        assert_eq!(ep.rewrite("https://other.net/a"), "https://other.net/a");
        assert_eq!(ep.url(PROAPI, "/open/x"), "https://proapi.115.com/open/x");
        assert!(Endpoints::new([("a".to_string(), "ftp://x".to_string())].into()).is_err());
    }
}
