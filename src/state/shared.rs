//! The state replicas share, in Redis (`[server] state = "redis://host:6379/0"`).
//!
//! This module knows Redis, not what is stored: each room keeps its own semantics and
//! uses these primitives (rotated credentials and their refresh lock in
//! `vfs::credentials`, download links in `vfs::mount`, WebDAV locks and dead properties
//! in `dav`, the link-signing key here, copy tasks and their half-built targets in
//! `vfs::tasks::fleet`).
//!
//! One multiplexed connection per process (redis' tokio `ConnectionManager`: it
//! reconnects by itself after an error), created on first use and again after a failed
//! start. Every command is bounded: 1 s to connect, 2 s for an answer. A caller decides
//! what an unreachable Redis means for it: caches go to the provider, a token refresh
//! waits (it never refreshes without the lock), a write of a rotated token is retried.
//!
//! Keys: `<namespace>:<room>:<name>`; the namespace is `pandav` unless the URL says
//! otherwise (`redis://host/0?namespace=home`), so several deployments can share one
//! Redis. Durability is Redis's: run it with `appendonly yes` and `appendfsync always`
//! (or `everysec`, accepting a second of rotated tokens at risk), see the README.

use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{FromRedisValue, RedisResult, Script, ToRedisArgs};
use anyhow::{anyhow, Context};

/// Time to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Time for one answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed connection, calls fail at once for this long instead of each waiting
/// for its own connection attempt (behind the one before it): while Redis is down,
/// requests that only read the shared state (lock discovery, links, properties) go on
/// without it promptly. Callers that must not go on without Redis retry in a loop.
const DOWN_BACKOFF: Duration = Duration::from_millis(500);

/// A Redis for shared state, with its key namespace.
pub struct Shared {
    client: ::redis::Client,
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
    /// Until when Redis counts as unreachable (see [`DOWN_BACKOFF`]).
    down_until: std::sync::Mutex<Option<std::time::Instant>>,
    namespace: String,
    /// The URL without its password, for messages.
    shown: String,
    /// The URL as configured (it is handed to the refresh helper).
    url: String,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("url", &self.shown).field("namespace", &self.namespace).finish()
    }
}

/// `redis://user:secret@host` → `redis://user:***@host`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    match auth {
        Some(a) => {
            let user = a.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

impl Shared {
    /// The one `Shared` of this process for `url` (one connection per Redis).
    pub fn get_or_open(url: &str) -> anyhow::Result<Arc<Shared>> {
        static ALL: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, Arc<Shared>>>> =
            std::sync::OnceLock::new();
        let mut all = ALL.get_or_init(Default::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = all.get(url) {
            return Ok(Arc::clone(s));
        }
        let s = Shared::open(url)?;
        all.insert(url.to_string(), Arc::clone(&s));
        Ok(s)
    }

    /// Check the URL (no connection yet: Redis may come up after pandav).
    pub fn open(url: &str) -> anyhow::Result<Arc<Shared>> {
        let shown = redact_url(url);
        if !(url.starts_with("redis://") || url.starts_with("unix://") || url.starts_with("redis+unix://")) {
            return Err(anyhow!("server.state {shown:?}: only redis:// (or unix://) URLs are supported"));
        }
        let (base, namespace) = match url.split_once("?namespace=") {
            Some((b, ns))
                if !ns.is_empty() && ns.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') =>
            {
                (b.to_string(), ns.to_string())
            }
            Some(_) => return Err(anyhow!("server.state {shown:?}: namespace must be letters, digits, - or _")),
            None => (url.to_string(), "pandav".to_string()),
        };
        let client = ::redis::Client::open(base.as_str()).with_context(|| format!("server.state {shown:?}"))?;
        Ok(Arc::new(Shared {
            client,
            conn: tokio::sync::Mutex::new(None),
            down_until: std::sync::Mutex::new(None),
            namespace,
            shown,
            url: url.to_string(),
        }))
    }

    /// The URL as configured (may hold a password: never log it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// `<namespace>:<room>:<name>`.
    pub fn key(&self, room: &str, name: &str) -> String {
        format!("{}:{room}:{name}", self.namespace)
    }

    fn is_down(&self) -> bool {
        let d = self.down_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        d.is_some_and(|t| std::time::Instant::now() < t)
    }

    fn mark_down(&self) {
        *self.down_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(std::time::Instant::now() + DOWN_BACKOFF);
    }

    async fn conn(&self) -> RedisResult<ConnectionManager> {
        let unreachable =
            || ::redis::RedisError::from((::redis::ErrorKind::IoError, "Redis is unreachable (retrying)"));
        if self.is_down() {
            return Err(unreachable());
        }
        let mut g = self.conn.lock().await;
        if let Some(c) = g.as_ref() {
            return Ok(c.clone());
        }
        if self.is_down() {
            // The caller before us just failed to connect.
            return Err(unreachable());
        }
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT)
            .set_number_of_retries(2)
            .set_max_delay(500);
        let c = tokio::time::timeout(CONNECT_TIMEOUT * 3, ConnectionManager::new_with_config(self.client.clone(), cfg))
            .await
            .map_err(|_| ::redis::RedisError::from((::redis::ErrorKind::IoError, "connecting to Redis timed out")))
            .and_then(|r| r);
        let c = match c {
            Ok(c) => c,
            Err(e) => {
                self.mark_down();
                return Err(e);
            }
        };
        *g = Some(c.clone());
        Ok(c)
    }

    /// Run one command.
    pub async fn query<T: FromRedisValue>(&self, cmd: &::redis::Cmd) -> RedisResult<T> {
        let mut c = self.conn().await?;
        let r = match tokio::time::timeout(RESPONSE_TIMEOUT * 2, cmd.query_async(&mut c)).await {
            Ok(r) => r,
            Err(_) => Err(::redis::RedisError::from((::redis::ErrorKind::IoError, "Redis did not answer in time"))),
        };
        self.after(r).await
    }

    /// After a connection-level failure, start the next call on a new connection (the
    /// manager reconnects by itself, but not if the runtime it was made in is gone).
    async fn after<T>(&self, r: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &r {
            if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
                self.mark_down();
                *self.conn.lock().await = None;
            }
        }
        r
    }

    /// Run a Lua script (EVALSHA, loading it when Redis does not know it yet).
    pub async fn script<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[&dyn ToArg],
    ) -> RedisResult<T> {
        let mut c = self.conn().await?;
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(*k);
        }
        for a in args {
            a.push(&mut inv);
        }
        let r = match tokio::time::timeout(RESPONSE_TIMEOUT * 2, inv.invoke_async(&mut c)).await {
            Ok(r) => r,
            Err(_) => Err(::redis::RedisError::from((::redis::ErrorKind::IoError, "Redis did not answer in time"))),
        };
        self.after(r).await
    }

    /// Run one command on a new blocking connection (for the few readers that are not
    /// async: a mount's credentials when it is built, the dead-login latch).
    pub fn query_blocking<T: FromRedisValue>(&self, cmd: &::redis::Cmd) -> RedisResult<T> {
        let mut c = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        c.set_read_timeout(Some(RESPONSE_TIMEOUT))?;
        c.set_write_timeout(Some(RESPONSE_TIMEOUT))?;
        cmd.query(&mut c)
    }

    /// A random secret made once for the whole fleet (e.g. the link-signing key).
    pub async fn secret(&self, name: &str) -> anyhow::Result<Vec<u8>> {
        let key = self.key("secret", name);
        let mut fresh = vec![0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut fresh[..]);
        let _: Option<String> =
            self.query(::redis::cmd("SET").arg(&key).arg(&fresh).arg("NX")).await.map_err(|e| self.err(e))?;
        let v: Option<Vec<u8>> = self.query(::redis::cmd("GET").arg(&key)).await.map_err(|e| self.err(e))?;
        match v {
            Some(v) if v.len() >= 32 => Ok(v),
            _ => Err(anyhow!("shared secret {key} in {} is missing or too short", self.shown)),
        }
    }

    /// An error with the (password-free) URL.
    pub fn err(&self, e: ::redis::RedisError) -> anyhow::Error {
        anyhow!("Redis at {}: {e}", self.shown)
    }
}

/// A script argument (strings, bytes and numbers).
pub trait ToArg: Sync {
    fn push(&self, inv: &mut ::redis::ScriptInvocation<'_>);
}

impl<T: ToRedisArgs + Sync> ToArg for T {
    fn push(&self, inv: &mut ::redis::ScriptInvocation<'_>) {
        inv.arg(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_redacted() {
        assert_eq!(redact_url("redis://:hunter2@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(redact_url("redis://u:p@h/0"), "redis://u:***@h/0");
        assert_eq!(redact_url("redis://h/0"), "redis://h/0");
        assert!(Shared::open("http://h").is_err());
        let s = Shared::open("redis://:pw@127.0.0.1:1/0?namespace=home").unwrap();
        assert_eq!(s.key("locks", "all"), "home:locks:all");
        assert!(!format!("{s:?}").contains("pw"));
        assert!(Shared::open("redis://h/0?namespace=a:b").is_err());
    }
}
