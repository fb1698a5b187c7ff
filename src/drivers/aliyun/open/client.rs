//! The Open API on the wire (ref §1.2–1.3, §9, §10): every call is a JSON `POST` to
//! `openapi.alipan.com` with `Authorization: Bearer <access token>`, through the kit's
//! call loop with the mount's credentials. One loop per rate class of §10.1 (list 4/s,
//! getDownloadUrl 1/s, the rest 15/s, paced a little below), each with its own pause
//! after a `TooManyRequests` (its `x-retry-after` is in milliseconds).

use std::time::Duration;

use serde_json::Value;

use super::login::{Tokens, OPENAPI};
use crate::drivers::aliyun::common::error::{self, Class as ErrClass, Family};
use crate::drivers::http::{Call, Endpoints, Http, Response, RetryPolicy};
use crate::vfs::credentials::Credentials;
use crate::vfs::{DriveError, DriveResult};

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

/// Part uploads to presigned URLs: 5xx and network trouble retried three more times
/// (OpenList: 3× from 1 s, §7.5); a 429 from the data host waited out.
pub fn part_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base: Duration::from_secs(1),
        max: Duration::from_secs(20),
        throttle_attempts: 4,
        throttle_base: Duration::from_secs(1),
        cooldown: Duration::ZERO,
        pause_wait: Duration::ZERO,
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

    /// Shorten or lengthen the retry waits of API calls (tests).
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

    /// `POST {openapi}{path}` with the body `body` builds for each attempt's token; the
    /// answer when it is a success (2xx; the Open API answers 200, §1.3) or of a class in
    /// `accept`, else the error (§9, common's catalogue). `idempotent`: safe to send twice
    /// (reads, and writes whose repetition changes nothing).
    pub async fn send<B>(
        &self,
        class: Class,
        path: &str,
        body: B,
        idempotent: bool,
        accept: &[ErrClass],
    ) -> DriveResult<Response>
    where
        B: Fn(&Tokens) -> Value,
    {
        let url = self.ep.url(OPENAPI, path);
        let r = self
            .http(class)
            .call(
                Call::new(path, idempotent),
                &self.creds,
                |c, tok| c.post(&url).bearer_auth(&tok.access_token).json(&body(tok)),
                |r| error::verdict(Family::Open, path, r, idempotent, accept).0,
            )
            .await?;
        if (200..300).contains(&r.status) {
            return Ok(r);
        }
        let e = error::ApiError::parse(r.status, &r.body);
        if accept.contains(&error::classify(Family::Open, &e)) {
            return Ok(r);
        }
        Err(error::error_of(Family::Open, path, &r))
    }

    /// [`send`](Self::send) of a fixed body; the answer's JSON.
    pub async fn post(&self, class: Class, path: &str, body: &Value, idempotent: bool) -> DriveResult<Value> {
        let r = self.send(class, path, |_| body.clone(), idempotent, &[]).await?;
        if r.body.is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_slice(&r.body).map_err(|_| {
            DriveError::upstream(format!("Aliyun Drive Open {path}: HTTP {} with an answer that is not JSON", r.status))
        })
    }
}
