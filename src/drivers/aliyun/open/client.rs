//! The Open API on the wire (ref §1.2–1.3, §9, §10): every call is a JSON `POST` to
//! `openapi.alipan.com` with `Authorization: Bearer <access token>`, through the kit's
//! call loop with the mount's credentials. One loop per rate class of §10.1 (list 4/s,
//! getDownloadUrl 1/s, the rest 15/s, paced a little below), each with its own pause
//! after a `TooManyRequests` (its `x-retry-after` is in milliseconds).

use std::time::Duration;

use serde_json::Value;

use super::login::{Tokens, OPENAPI};
use crate::drivers::http::{Call, Endpoints, Http, Response, RetryPolicy, Verdict};
use crate::vfs::credentials::Credentials;
use crate::vfs::{DriveError, DriveResult, ProviderCode};

/// The rate classes of §10.1, paced at OpenList's 3.9 / 0.9 / 14.9 per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    List,
    Link,
    Other,
}

pub const LIST_RATE: f64 = 3.9;
pub const LINK_RATE: f64 = 0.9;
pub const OTHER_RATE: f64 = 14.9;

/// Retries of the Open API: 5xx of idempotent calls three more times; `TooManyRequests`
/// waited out (the provider's `x-retry-after`, else a doubling pause from 1 s) up to four
/// times, the class's other calls waiting with it (up to 15 s); then 503 + Retry-After.
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base: Duration::from_millis(500),
        max: Duration::from_secs(20),
        throttle_attempts: 5,
        throttle_base: Duration::from_secs(1),
        cooldown: Duration::ZERO,
        pause_wait: Duration::from_secs(15),
        throttled_retry_after: Duration::from_secs(30),
    }
}

/// One mount's Open API side.
pub struct Api {
    pub ep: Endpoints,
    /// The token pair: single flight, cross-process lock, one writer, the dead latch.
    pub creds: Credentials<Tokens>,
    list: Http,
    link: Http,
    other: Http,
}

/// An error envelope `{"code", "message", "requestId"}` (§1.3), or nothing readable.
// TODO(common): the envelope and the code → DriveError mapping are common/'s (error
// envelope + code mapping per family); use them once the `aliyun` branch has them.
#[derive(Debug, Default, Clone)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

pub fn parse_error(body: &[u8]) -> ApiError {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    ApiError { code: s("code"), message: s("message") }
}

/// Codes that mean "the access token is not good": refresh once and resend (§2.3:
/// OpenList also treats `I400JD` so).
pub fn is_token_code(code: &str) -> bool {
    matches!(code, "AccessTokenInvalid" | "AccessTokenExpired" | "I400JD")
}

/// A refused call as a `DriveError` (§9): decided on the code, never on the message.
// TODO(common): replace by common's mapping for the Open family.
pub fn map_error(what: &str, status: u16, e: &ApiError) -> DriveError {
    let code = e.code.as_str();
    let msg = || {
        if e.message.is_empty() {
            format!("Aliyun Drive Open {what}: {code} (HTTP {status})")
        } else {
            format!("Aliyun Drive Open {what}: {code} (HTTP {status}): {}", e.message)
        }
    };
    if code.starts_with("NotFound") || code == "ForbiddenFileInTheRecycleBin" || (code.is_empty() && status == 404) {
        return DriveError::NotFound;
    }
    if code.starts_with("AlreadyExist") || (code.is_empty() && status == 409) {
        return DriveError::Exists;
    }
    if code.starts_with("QuotaExhausted") {
        return DriveError::NoSpace;
    }
    if code == "TooManyRequests" || status == 429 {
        return DriveError::RateLimited { retry_after: None };
    }
    if matches!(code, "PermissionDenied" | "UserNotAllowedAccessDrive" | "FileShareNotAllowed")
        || code.starts_with("Forbidden")
    {
        return DriveError::Forbidden(msg());
    }
    if code.is_empty() {
        return DriveError::upstream(msg());
    }
    let err = DriveError::provider(ProviderCode::Text(code.to_string()), msg());
    if status >= 500 {
        err.with_hint(crate::vfs::Hint::Transient)
    } else {
        err
    }
}

impl Api {
    pub fn new(http: Http, creds: Credentials<Tokens>, rate: f64) -> Api {
        let capped = |cap: f64| if rate <= 0.0 { 0.0 } else { rate.min(cap) };
        let retry = http.retry;
        Api {
            ep: http.endpoints.clone(),
            list: http.sibling(capped(LIST_RATE), retry),
            link: http.sibling(capped(LINK_RATE), retry),
            other: http.sibling(if rate <= 0.0 { 0.0 } else { rate }, retry),
            creds,
        }
    }

    /// Shorten or lengthen the retry waits (tests).
    pub fn set_retry(&mut self, retry: RetryPolicy) {
        for h in [&mut self.list, &mut self.link, &mut self.other] {
            h.retry = retry;
        }
    }

    fn http(&self, class: Class) -> &Http {
        match class {
            Class::List => &self.list,
            Class::Link => &self.link,
            Class::Other => &self.other,
        }
    }

    /// The mount's HTTP client (part uploads, the refresher).
    pub fn client(&self) -> &reqwest::Client {
        &self.other.client
    }

    /// `POST {openapi}{path}` with `body`; the answer's JSON on 200 (the only success
    /// status, §1.3), else the mapped error. `idempotent`: safe to send twice (reads, and
    /// writes whose repetition changes nothing).
    pub async fn post(&self, class: Class, path: &str, body: &Value, idempotent: bool) -> DriveResult<Value> {
        let url = self.ep.url(OPENAPI, path);
        let r = self
            .http(class)
            .call(
                Call::new(path, idempotent),
                &self.creds,
                |c, tok| c.post(&url).bearer_auth(&tok.access_token).json(body),
                |r| verdict(path, r, idempotent),
            )
            .await?;
        if r.status == 200 {
            return serde_json::from_slice(&r.body).map_err(|_| {
                DriveError::upstream(format!("Aliyun Drive Open {path}: HTTP 200 with an answer that is not JSON"))
            });
        }
        let e = parse_error(&r.body);
        tracing::debug!(call = path, status = r.status, code = %e.code, "Aliyun Drive Open refused a call");
        Err(map_error(path, r.status, &e))
    }
}

/// The Open API's reading of one answer (§2.3, §9, §10).
fn verdict(path: &str, r: &Response, idempotent: bool) -> Verdict {
    if r.status == 200 {
        return Verdict::Done;
    }
    let e = parse_error(&r.body);
    if is_token_code(&e.code) || (r.status == 401 && e.code.is_empty()) {
        return Verdict::Reauth(DriveError::upstream(format!(
            "Aliyun Drive Open {path}: the access token was refused right after a refresh ({}, HTTP {})",
            e.code, r.status
        )));
    }
    if r.status == 429 || e.code == "TooManyRequests" {
        return Verdict::Throttled { why: format!("{path}: TooManyRequests"), after: r.retry_after() };
    }
    if idempotent && (r.status >= 500 || r.status == 408) {
        return Verdict::Retry(format!("HTTP {}", r.status));
    }
    Verdict::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str, headers: &[(&'static str, &str)]) -> Response {
        let mut h = http::HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.parse().unwrap());
        }
        Response { status, headers: h, body: bytes::Bytes::from(body.to_string()) }
    }

    #[test]
    fn token_codes_reauthenticate_and_throttles_carry_x_retry_after_in_ms() {
        for code in ["AccessTokenInvalid", "AccessTokenExpired", "I400JD"] {
            let r = resp(401, &format!(r#"{{"code":"{code}","message":"m"}}"#), &[]);
            assert!(matches!(verdict("/x", &r, true), Verdict::Reauth(_)), "{code}");
        }
        let r = resp(429, r#"{"code":"TooManyRequests","message":"Too Many Requests"}"#, &[("x-retry-after", "1500")]);
        match verdict("/x", &r, false) {
            Verdict::Throttled { after, .. } => assert_eq!(after, Some(Duration::from_millis(1500))),
            _ => panic!("not a throttle"),
        }
        assert!(matches!(verdict("/x", &resp(502, "Bad Gateway", &[]), true), Verdict::Retry(_)));
        assert!(matches!(verdict("/x", &resp(502, "Bad Gateway", &[]), false), Verdict::Done));
        assert!(matches!(verdict("/x", &resp(200, "{}", &[]), false), Verdict::Done));
    }

    #[test]
    fn codes_map_to_drive_errors() {
        let e = |status, code: &str| map_error("/x", status, &ApiError { code: code.into(), message: "m".into() });
        assert!(matches!(e(404, "NotFound.FileId"), DriveError::NotFound));
        assert!(matches!(e(400, "NotFound.File"), DriveError::NotFound));
        assert!(matches!(e(400, "ForbiddenFileInTheRecycleBin"), DriveError::NotFound));
        assert!(matches!(e(409, "AlreadyExist.File"), DriveError::Exists));
        assert!(matches!(e(400, "QuotaExhausted.Drive"), DriveError::NoSpace));
        assert!(matches!(e(403, "PermissionDenied"), DriveError::Forbidden(_)));
        let other = e(400, "InvalidParameter.Name");
        assert_eq!(other.code(), Some(&ProviderCode::Text("InvalidParameter.Name".into())));
    }
}
