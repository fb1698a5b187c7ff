//! Download links shared by replicas (`[server] state = "redis://…"`): one link per file
//! and User-Agent for the whole fleet, as the link cache of one process is for itself.
//!
//! Each replica keeps its own cache in front ([`super::mount::LinkCache`]); on a miss
//! it looks here before asking the provider, and a link it fetched is offered here with
//! `SET NX`: when another replica was first, that replica's link is used instead, so
//! every client of the fleet gets the same URL. An unreachable Redis is a miss (the
//! provider is asked), never an error.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::Digest;

use super::types::{Entry, Link, LinkRequest};
use crate::state::shared::Shared;

/// Where a mount's links are shared.
pub struct SharedLinks {
    s: Arc<Shared>,
    mount: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    url: String,
    headers: Vec<(String, String)>,
    /// The provider's expiry, in Unix seconds.
    expires: Option<u64>,
    /// When the cache drops it, in Unix milliseconds.
    until_ms: u64,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl SharedLinks {
    pub fn new(s: Arc<Shared>, mount: &str) -> SharedLinks {
        SharedLinks { s, mount: mount.to_string() }
    }

    fn key(&self, entry: &Entry, req: &LinkRequest) -> String {
        let mut h = sha2::Sha256::new();
        h.update(entry.id().as_bytes());
        h.update([0]);
        h.update(req.user_agent.as_bytes());
        let d = h.finalize();
        self.s.key("link", &format!("{}:{}", self.mount, hex::encode(&d[..16])))
    }

    fn decode(v: &[u8]) -> Option<(Link, Duration)> {
        let s: Saved = serde_json::from_slice(v).ok()?;
        let left = Duration::from_millis(s.until_ms.saturating_sub(unix_ms(SystemTime::now())));
        if left.is_zero() {
            return None;
        }
        let link =
            Link { url: s.url, headers: s.headers, expires_at: s.expires.map(|e| UNIX_EPOCH + Duration::from_secs(e)) };
        Some((link, left))
    }

    /// Another replica's link for this file and User-Agent, with how long it is good.
    pub async fn get(&self, entry: &Entry, req: &LinkRequest) -> Option<(Link, Duration)> {
        let r: redis::RedisResult<Option<Vec<u8>>> = self.s.query(redis::cmd("GET").arg(self.key(entry, req))).await;
        match r {
            Ok(v) => Self::decode(&v?),
            Err(e) => {
                tracing::debug!("shared link cache: {}", self.s.err(e));
                None
            }
        }
    }

    /// Offer `link` (good for `ttl`); the link to use: ours, or the one another replica
    /// stored first.
    pub async fn offer(&self, entry: &Entry, req: &LinkRequest, link: Link, ttl: Duration) -> (Link, Duration) {
        if ttl < Duration::from_millis(1) {
            return (link, ttl);
        }
        let saved = Saved {
            url: link.url.clone(),
            headers: link.headers.clone(),
            expires: link.expires_at.map(|t| t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)),
            until_ms: unix_ms(SystemTime::now() + ttl),
        };
        let Ok(json) = serde_json::to_vec(&saved) else { return (link, ttl) };
        let key = self.key(entry, req);
        let set: redis::RedisResult<Option<String>> =
            self.s.query(redis::cmd("SET").arg(&key).arg(json).arg("NX").arg("PX").arg(ttl.as_millis() as u64)).await;
        match set {
            Ok(Some(_)) => (link, ttl),
            Ok(None) => {
                let theirs: redis::RedisResult<Option<Vec<u8>>> = self.s.query(redis::cmd("GET").arg(&key)).await;
                theirs.ok().flatten().and_then(|v| Self::decode(&v)).unwrap_or((link, ttl))
            }
            Err(e) => {
                tracing::debug!("shared link cache: {}", self.s.err(e));
                (link, ttl)
            }
        }
    }

    /// Drop a link the provider refused.
    pub async fn forget(&self, entry: &Entry, req: &LinkRequest) {
        let _: redis::RedisResult<i64> = self.s.query(redis::cmd("DEL").arg(self.key(entry, req))).await;
    }
}
