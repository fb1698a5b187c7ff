//! Credentials that rotate: single-flight refresh, persisted before use.
//!
//! A refresh token that rotates is dead once used. If the process dies after the
//! provider rotated it but before we saved the new one, the user is locked out. So a
//! refresh goes: (1) one refresh at a time per cell; (2) the new credentials are written
//! durably to the mount's state file; (3) only then are they handed to requests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::Digest;

use super::error::{DriveError, DriveResult};
use crate::state::StateHandle;

pub struct TokenCell<T> {
    current: RwLock<Arc<T>>,
    generation: AtomicU64,
    refresh_lock: tokio::sync::Mutex<()>,
    /// The last failed refresh: (generation it started from, when it failed, why).
    /// Callers that were queued behind it get its answer instead of trying the same dead
    /// token again; a caller arriving later tries afresh (drivers latch a lost grant
    /// themselves, and may adopt new credentials through `refresh`).
    failed: std::sync::Mutex<Option<(u64, std::time::Instant, DriveError)>>,
    state: StateHandle,
    /// Fingerprint of the configured secret this state descends from.
    seed: String,
}

/// Fingerprint of a configured secret (never the secret itself).
pub fn fingerprint(secret: &str) -> String {
    hex::encode(&sha2::Sha256::digest(secret.as_bytes())[..16])
}

impl<T: Serialize + DeserializeOwned + Send + Sync> TokenCell<T> {
    /// Start from the saved state when it descends from the same configured secret
    /// (`config_secret`), since it then holds newer, rotated credentials; start from
    /// `from_config` when there is no state or the user configured a new secret.
    pub fn restore(state: StateHandle, config_secret: &str, from_config: T) -> anyhow::Result<TokenCell<T>> {
        let seed = fingerprint(config_secret);
        let saved = state.load()?;
        let value = match saved {
            Some(v) if v.get("seed").and_then(|s| s.as_str()) == Some(seed.as_str()) || config_secret.is_empty() => {
                let data = v.get("data").cloned().unwrap_or_default();
                match serde_json::from_value::<T>(data) {
                    Ok(t) => {
                        tracing::info!(file = %state.path().display(), "using saved credentials (newer than config)");
                        t
                    }
                    Err(e) => anyhow::bail!("state file {} has unusable credentials: {e}", state.path().display()),
                }
            }
            _ => from_config,
        };
        Ok(TokenCell {
            current: RwLock::new(Arc::new(value)),
            generation: AtomicU64::new(0),
            refresh_lock: tokio::sync::Mutex::new(()),
            failed: std::sync::Mutex::new(None),
            state,
            seed,
        })
    }

    /// The credentials in force and their generation (pass it back to `refresh`).
    pub fn get(&self) -> (Arc<T>, u64) {
        let g = self.generation.load(Ordering::SeqCst);
        (Arc::clone(&self.current.read().unwrap()), g)
    }

    /// Save the current value (e.g. right after a login) without rotating.
    pub async fn persist(&self) -> DriveResult<()> {
        let cur = self.get().0;
        self.save(&cur).await
    }

    async fn save(&self, value: &T) -> DriveResult<()> {
        let doc = serde_json::json!({
            "seed": self.seed,
            "saved_at": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            "data": serde_json::to_value(value).map_err(|e| DriveError::Upstream(format!("serialize credentials: {e}")))?,
        });
        self.state.save(&doc).await.map_err(DriveError::Io)
    }

    /// Refresh unless another caller already did since generation `seen`. `f` gets the
    /// current credentials and returns new ones; they are saved durably before anyone
    /// else sees them. If saving fails, the new credentials are still installed in memory
    /// (the old ones are dead at the provider) and the error is returned to be logged.
    pub async fn refresh<F, Fut>(&self, seen: u64, f: F) -> DriveResult<Arc<T>>
    where
        F: FnOnce(Arc<T>) -> Fut,
        Fut: std::future::Future<Output = DriveResult<T>>,
    {
        let arrived = std::time::Instant::now();
        let _guard = self.refresh_lock.lock().await;
        let (cur, gen) = self.get();
        if gen != seen {
            return Ok(cur);
        }
        if let Some((g, at, e)) = self.failed.lock().unwrap().as_ref() {
            if *g == gen && *at >= arrived {
                return Err(e.duplicate());
            }
        }
        let new = match f(cur).await {
            Ok(n) => n,
            Err(e) => {
                *self.failed.lock().unwrap() = Some((gen, std::time::Instant::now(), e.duplicate()));
                return Err(e);
            }
        };
        *self.failed.lock().unwrap() = None;
        let saved = self.save(&new).await;
        let new = Arc::new(new);
        *self.current.write().unwrap() = Arc::clone(&new);
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = saved {
            tracing::error!(file = %self.state.path().display(), "could not save rotated credentials: {e}");
            return Err(e);
        }
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[derive(Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
    struct Tok {
        refresh: String,
        n: u32,
    }

    fn cell(dir: &std::path::Path, cfg: &str) -> TokenCell<Tok> {
        let h = StateHandle::at(dir.join("m.json"));
        TokenCell::restore(h, cfg, Tok { refresh: cfg.into(), n: 0 }).unwrap()
    }

    #[tokio::test]
    async fn concurrent_refreshes_are_single_flight_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let c = Arc::new(cell(dir.path(), "r0"));
        let calls = Arc::new(AtomicUsize::new(0));
        let (_, seen) = c.get();
        let mut tasks = vec![];
        for _ in 0..20 {
            let c = Arc::clone(&c);
            let calls = Arc::clone(&calls);
            tasks.push(tokio::spawn(async move {
                c.refresh(seen, |old| async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    Ok(Tok { refresh: format!("{}+", old.refresh), n: old.n + 1 })
                })
                .await
                .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().n, 1);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A restart with the same configured secret picks up the rotated token.
        let again = cell(dir.path(), "r0");
        assert_eq!(again.get().0.refresh, "r0+");
        // A new secret in the config wins over the old state.
        let fresh = cell(dir.path(), "other");
        assert_eq!(fresh.get().0.refresh, "other");
    }

    #[tokio::test]
    async fn failed_refresh_keeps_old_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let c = cell(dir.path(), "r0");
        let r = c.refresh(0, |_| async { Err::<Tok, _>(DriveError::AuthLost("revoked".into())) }).await;
        assert!(matches!(r, Err(DriveError::AuthLost(_))));
        assert_eq!(c.get().0.refresh, "r0");
        assert_eq!(c.get().1, 0);
    }
}
