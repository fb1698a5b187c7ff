//! What the 115 drivers share: the web-API client with its envelopes, lenient JSON and
//! error codes (`client.rs`), the cookie login (`cookie.rs`), the m115/ec115/upload-sign
//! cryptography (`crypto/`), the Aliyun OSS client 115 uploads go through (`oss.rs`), and
//! the option helpers of the `115` and `115_share` drivers (below). Where an upload's
//! bytes come from is `drivers::source` (shared with the Aliyun drivers).

pub mod client;
pub mod cookie;
pub mod crypto;
pub mod oss;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Deserializer};

use crate::drivers::http::{Endpoints, Http, RetryPolicy};

pub fn root_id() -> String {
    "0".into()
}
pub fn yes() -> bool {
    true
}
pub fn default_rate() -> f64 {
    2.0
}
/// Ids as strings, also when written as TOML integers.
pub fn de_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        N(u64),
    }
    Ok(match Id::deserialize(d)? {
        Id::S(s) => s.trim().to_string(),
        Id::N(n) => n.to_string(),
    })
}

/// The shared HTTP side from the common options.
pub fn build_http(
    endpoints: BTreeMap<String, String>,
    rate: f64,
    retries: Option<u32>,
    base_ms: Option<u64>,
    cooldown: Option<u64>,
) -> anyhow::Result<Http> {
    if !(rate >= 0.0 && rate.is_finite()) {
        bail!("rate_limit must be a number >= 0 (requests per second)");
    }
    let mut retry = RetryPolicy::default();
    if let Some(n) = retries {
        retry.attempts = n.saturating_add(1);
        retry.throttle_attempts = retry.attempts;
    }
    if let Some(ms) = base_ms {
        retry.base = Duration::from_millis(ms);
        retry.throttle_base = retry.base;
        retry.max = retry.max.max(retry.base);
    }
    if let Some(s) = cooldown {
        retry.cooldown = Duration::from_secs(s);
    }
    Http::new("115", Endpoints::new(endpoints)?, rate, retry)
}

/// The login of a mount: the saved one (`pandav login 115`) when it descends from the
/// configured cookie, else the configured cookie. A corrupt state file is an error now,
/// not a surprise later.
pub fn auth_login(
    state: &crate::state::StateHandle,
    config_cookie: &str,
) -> anyhow::Result<crate::vfs::credentials::Credentials<cookie::SavedLogin>> {
    let config_cookie = config_cookie.trim();
    let seed = cookie::SavedLogin { cookie: config_cookie.to_string(), app: None };
    crate::vfs::credentials::Credentials::restore(state, config_cookie, seed).context("115 login state")
}

pub fn build_rsa(modulus: Option<&str>) -> anyhow::Result<crypto::m115::RsaPublic> {
    match modulus {
        Some(n) => crypto::m115::RsaPublic::from_hex_modulus(n).map_err(|e| anyhow::anyhow!("m115_test_modulus: {e}")),
        None => Ok(crypto::m115::RsaPublic::default_115()),
    }
}
