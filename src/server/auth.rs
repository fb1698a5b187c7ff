//! HTTP Basic authentication against the configured users.
//!
//! argon2 is slow on purpose, so it never runs on the async workers: verifications run
//! on the blocking pool, [`ARGON2_AT_ONCE`] at a time. A success is remembered for
//! [`VERIFIED_TTL`] under a keyed hash of name and password (never the password), so a
//! client sending Basic auth on every request costs one argon2 run, not one per
//! request. Failures are counted per client address (a token bucket; an IPv6 client
//! per /64): past the burst, that address gets 429 without any verification. Once any
//! argon2 hash is configured, every failed login (unknown name, wrong password) costs
//! exactly one argon2 verification, so the time of an answer does not tell which
//! names exist.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use hmac::Mac;
use http::{header, HeaderValue, Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::{full, BoxBody};
use crate::config::UserConfig;
use crate::dav::User;

/// argon2 verifications running at once (each takes a core and its memory cost).
pub const ARGON2_AT_ONCE: usize = 2;
/// How long a verified name and password are accepted without argon2.
pub const VERIFIED_TTL: Duration = Duration::from_secs(300);
/// Remembered verifications at most (each is 32 bytes and an instant).
const VERIFIED_MAX: usize = 4096;
/// Failed logins an address may make in a burst …
const FAIL_BURST: f64 = 10.0;
/// … and then one more per this long.
const FAIL_REFILL: Duration = Duration::from_secs(6);
/// Addresses with failures remembered at most.
const FAILURES_MAX: usize = 10_000;

/// argon2 verifications this process ran (for tests and the debug log).
static VERIFICATIONS: AtomicU64 = AtomicU64::new(0);

pub fn argon2_verifications() -> u64 {
    VERIFICATIONS.load(Ordering::Relaxed)
}

enum Secret {
    /// SHA-256 of the plain password (compared in constant time).
    Plain([u8; 32]),
    /// argon2 PHC string.
    Hash(Arc<str>),
}

struct Account {
    user: Arc<User>,
    secret: Secret,
}

/// Token bucket of one client address's failed logins.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refilled(&mut self, now: Instant) -> f64 {
        let gained = now.duration_since(self.at).as_secs_f64() / FAIL_REFILL.as_secs_f64();
        self.tokens = (self.tokens + gained).min(FAIL_BURST);
        self.at = now;
        self.tokens
    }
}

pub struct Auth {
    accounts: HashMap<String, Account>,
    anonymous: Option<Arc<User>>,
    /// A hash with the cost of the first configured one, that nothing matches: what a
    /// failed login is verified against when there is no real hash to try.
    dummy: Option<Arc<str>>,
    /// Key of the hash under which verified name+password pairs are remembered.
    cache_key: [u8; 32],
    verified: Mutex<HashMap<[u8; 32], Instant>>,
    failures: Mutex<HashMap<IpAddr, Bucket>>,
    argon2: Arc<Semaphore>,
}

pub enum AuthResult {
    Ok(Arc<User>),
    /// No or wrong credentials: answer 401 with a challenge.
    Challenge,
    /// Too many failed logins from this address: answer 429 (see [`throttled`]).
    Throttled(Duration),
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The 429 for an address that failed too often.
pub fn throttled(retry_after: Duration) -> Response<BoxBody> {
    let mut r = Response::new(full(Bytes::from_static(b"too many failed logins; try again later\n")));
    *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// Failures are counted per address; an IPv6 client usually has a whole /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// A PHC string with the algorithm and cost of `phc`, a random salt and a random hash.
fn dummy_like(phc: &str) -> Option<String> {
    use argon2::password_hash::{rand_core::OsRng, rand_core::RngCore, Output, PasswordHash, SaltString};
    let mut h = PasswordHash::new(phc).ok()?;
    let salt = SaltString::generate(&mut OsRng);
    let len = h.hash.map(|o| o.len()).unwrap_or(32);
    let mut bytes = vec![0u8; len];
    OsRng.fill_bytes(&mut bytes);
    h.salt = Some(salt.as_salt());
    h.hash = Some(Output::new(&bytes).ok()?);
    Some(h.to_string())
}

impl Auth {
    pub fn new(users: &[UserConfig], allow_anonymous: bool) -> Auth {
        let accounts = users
            .iter()
            .map(|u| {
                let name = u.name.get_ref().clone();
                let user = Arc::new(User {
                    name: name.clone(),
                    mounts: u
                        .mounts
                        .as_ref()
                        .map(|v| v.iter().filter_map(|p| crate::config::normalize_mount_path(p).ok()).collect()),
                    read_only: u.read_only,
                    admin: u.admin,
                });
                let secret = match (&u.password, &u.password_hash) {
                    (Some(p), _) => Secret::Plain(Sha256::digest(p.as_bytes()).into()),
                    (None, Some(h)) => Secret::Hash(Arc::from(h.as_str())),
                    (None, None) => unreachable!("validated in config"),
                };
                (name, Account { user, secret })
            })
            .collect::<HashMap<_, _>>();
        let anonymous = (users.is_empty() || allow_anonymous).then(|| {
            // With users configured, anonymous access is read-only.
            Arc::new(User { read_only: !users.is_empty(), ..User::anonymous() })
        });
        let dummy = users.iter().filter_map(|u| u.password_hash.as_deref()).find_map(dummy_like).map(Arc::from);
        let mut cache_key = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut cache_key[..]);
        Auth {
            accounts,
            anonymous,
            dummy,
            cache_key,
            verified: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            argon2: Arc::new(Semaphore::new(ARGON2_AT_ONCE)),
        }
    }

    /// Who is asking, from the `Authorization` header of a request from `client`.
    pub async fn check(&self, authorization: Option<&HeaderValue>, client: IpAddr) -> AuthResult {
        let Some(h) = authorization else {
            return match &self.anonymous {
                Some(u) => AuthResult::Ok(Arc::clone(u)),
                None => AuthResult::Challenge,
            };
        };
        let Some((name, pass)) = parse_basic(h) else {
            return AuthResult::Challenge;
        };
        // Before anything that could tell a right password from a wrong one (the
        // remembered pairs too: they would be a free oracle for a throttled guesser).
        if let Some(wait) = self.throttle_wait(client) {
            tracing::info!(user = ?name, %client, "login refused: too many failures from this address");
            return AuthResult::Throttled(wait);
        }
        let key = self.pair_key(&name, &pass);
        let acct = self.accounts.get(&name);
        if let Some(a) = acct {
            if self.recently_verified(&key) {
                return AuthResult::Ok(Arc::clone(&a.user));
            }
        }
        let ok = match acct.map(|a| &a.secret) {
            Some(Secret::Plain(want)) => {
                let ok = ct_eq(want, &Sha256::digest(pass.as_bytes()));
                if !ok {
                    self.burn_time(&pass).await;
                }
                ok
            }
            Some(Secret::Hash(phc)) => self.verify(Arc::clone(phc), pass).await,
            None => {
                self.burn_time(&pass).await;
                false
            }
        };
        match acct {
            Some(a) if ok => {
                if matches!(a.secret, Secret::Hash(_)) {
                    self.remember(key);
                }
                AuthResult::Ok(Arc::clone(&a.user))
            }
            _ => {
                self.failed(client);
                let why = if acct.is_some() { "wrong password" } else { "unknown user" };
                tracing::info!(user = ?name, %client, "login failed: {why}");
                AuthResult::Challenge
            }
        }
    }

    fn pair_key(&self, name: &str, pass: &str) -> [u8; 32] {
        let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(&self.cache_key).expect("any key length");
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(pass.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn recently_verified(&self, key: &[u8; 32]) -> bool {
        let v = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        v.get(key).is_some_and(|at| at.elapsed() < VERIFIED_TTL)
    }

    fn remember(&self, key: [u8; 32]) {
        let mut v = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() >= VERIFIED_MAX {
            v.retain(|_, at| at.elapsed() < VERIFIED_TTL);
            if v.len() >= VERIFIED_MAX {
                v.clear();
            }
        }
        v.insert(key, Instant::now());
    }

    /// How long `client` must wait when it has no failures left, else `None`.
    fn throttle_wait(&self, client: IpAddr) -> Option<Duration> {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let b = f.get_mut(&client_key(client))?;
        let tokens = b.refilled(Instant::now());
        (tokens < 1.0).then(|| FAIL_REFILL.mul_f64(1.0 - tokens))
    }

    fn failed(&self, client: IpAddr) {
        let now = Instant::now();
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if f.len() >= FAILURES_MAX {
            f.retain(|_, b| b.refilled(now) < FAIL_BURST);
            if f.len() >= FAILURES_MAX {
                f.clear();
            }
        }
        let b = f.entry(client_key(client)).or_insert(Bucket { tokens: FAIL_BURST, at: now });
        b.refilled(now);
        b.tokens = (b.tokens - 1.0).max(0.0);
    }

    /// A failed login costs what a wrong password for an argon2 user costs.
    async fn burn_time(&self, pass: &str) {
        if let Some(d) = &self.dummy {
            self.verify(Arc::clone(d), pass.to_string()).await;
        }
    }

    /// One argon2 verification on the blocking pool, at most [`ARGON2_AT_ONCE`] at once.
    async fn verify(&self, phc: Arc<str>, pass: String) -> bool {
        let Ok(_permit) = self.argon2.acquire().await else {
            return false;
        };
        VERIFICATIONS.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("argon2 verification");
        tokio::task::spawn_blocking(move || verify_argon2(&phc, &pass)).await.unwrap_or(false)
    }
}

fn verify_argon2(phc: &str, pass: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    match PasswordHash::new(phc) {
        Ok(h) => argon2::Argon2::default().verify_password(pass.as_bytes(), &h).is_ok(),
        Err(e) => {
            tracing::error!("a configured password_hash cannot be parsed: {e}");
            false
        }
    }
}

/// Hash a password for `password_hash` in the config.
pub fn hash_password(pass: &str) -> anyhow::Result<String> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(pass.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash: {e}"))
}

fn parse_basic(h: &HeaderValue) -> Option<(String, String)> {
    let s = h.to_str().ok()?;
    let (scheme, rest) = s.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(toml_text: &str) -> Vec<UserConfig> {
        #[derive(serde::Deserialize)]
        struct W {
            users: Vec<UserConfig>,
        }
        toml::from_str::<W>(toml_text).unwrap().users
    }

    fn basic(u: &str, p: &str) -> HeaderValue {
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        HeaderValue::from_str(&format!("Basic {v}")).unwrap()
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, n))
    }

    #[tokio::test]
    async fn plain_and_hashed_passwords() {
        let _lock = COUNTED.lock().await;
        let h = hash_password("s3cret").unwrap();
        let a = Auth::new(
            &users(&format!("[[users]]\nname=\"a\"\npassword=\"pw\"\n[[users]]\nname=\"b\"\npassword_hash=\"{h}\"\n")),
            false,
        );
        assert!(matches!(a.check(Some(&basic("a", "pw")), IP).await, AuthResult::Ok(u) if u.name == "a"));
        assert!(matches!(a.check(Some(&basic("a", "pW")), IP).await, AuthResult::Challenge));
        assert!(matches!(a.check(Some(&basic("b", "s3cret")), IP).await, AuthResult::Ok(u) if u.name == "b"));
        assert!(matches!(a.check(Some(&basic("b", "s3cret")), IP).await, AuthResult::Ok(_)), "cached path");
        assert!(matches!(a.check(Some(&basic("b", "nope")), IP).await, AuthResult::Challenge));
        assert!(matches!(a.check(None, IP).await, AuthResult::Challenge));
        assert!(matches!(a.check(Some(&HeaderValue::from_static("Basic !!!")), IP).await, AuthResult::Challenge));
        assert!(matches!(a.check(Some(&HeaderValue::from_static("Bearer x")), IP).await, AuthResult::Challenge));
    }

    #[tokio::test]
    async fn anonymous_only_when_allowed() {
        let none = Auth::new(&[], false);
        assert!(matches!(none.check(None, IP).await, AuthResult::Ok(u) if !u.read_only));
        let with_users = Auth::new(&users("[[users]]\nname=\"a\"\npassword=\"pw\"\n"), true);
        assert!(matches!(with_users.check(None, IP).await, AuthResult::Ok(u) if u.read_only));
    }

    /// Unknown names and wrong passwords (argon2 or plain users) take the same path: one
    /// argon2 verification each; a remembered success takes none. (The counter is
    /// process-wide: tests that verify take `COUNTED` first.)
    #[tokio::test]
    async fn every_failure_costs_one_verification_and_a_success_is_remembered() {
        let h = hash_password("s3cret").unwrap();
        let a = Auth::new(
            &users(&format!("[[users]]\nname=\"p\"\npassword=\"pw\"\n[[users]]\nname=\"b\"\npassword_hash=\"{h}\"\n")),
            false,
        );
        let lock = COUNTED.lock().await;
        for (who, pass, want) in [("nobody", "x", 1), ("b", "wrong", 1), ("p", "wrong", 1), ("b", "s3cret", 1)] {
            let before = argon2_verifications();
            let _ = a.check(Some(&basic(who, pass)), ip(1)).await;
            assert_eq!(argon2_verifications() - before, want, "{who}:{pass}");
        }
        let before = argon2_verifications();
        assert!(matches!(a.check(Some(&basic("b", "s3cret")), ip(1)).await, AuthResult::Ok(_)));
        assert!(matches!(a.check(Some(&basic("p", "pw")), ip(1)).await, AuthResult::Ok(_)));
        assert_eq!(argon2_verifications(), before, "a remembered or plain success needs no argon2");
        drop(lock);
    }

    /// Tests that count verifications run one at a time.
    static COUNTED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    #[tokio::test]
    async fn failures_are_limited_per_address() {
        let _lock = COUNTED.lock().await;
        let a = Auth::new(&users("[[users]]\nname=\"p\"\npassword=\"pw\"\n"), false);
        for _ in 0..FAIL_BURST as usize {
            assert!(matches!(a.check(Some(&basic("p", "bad")), ip(2)).await, AuthResult::Challenge));
        }
        assert!(matches!(a.check(Some(&basic("p", "bad")), ip(2)).await, AuthResult::Throttled(_)));
        assert!(matches!(a.check(Some(&basic("p", "pw")), ip(2)).await, AuthResult::Throttled(_)));
        assert!(matches!(a.check(Some(&basic("p", "pw")), ip(3)).await, AuthResult::Ok(_)), "another address");
        let (v4a, v4b) = (IpAddr::V4([10, 0, 0, 2].into()), IpAddr::V4([10, 0, 0, 2].into()));
        assert_eq!(client_key(v4a), client_key(v4b));
        // One more try after the refill time (simulated).
        a.failures.lock().unwrap().get_mut(&ip(2)).unwrap().at -= FAIL_REFILL;
        assert!(matches!(a.check(Some(&basic("p", "pw")), ip(2)).await, AuthResult::Ok(_)));
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(client_key(mapped), "10.1.2.3".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_dummy_hash_has_the_configured_cost_and_matches_nothing() {
        let h = hash_password("s3cret").unwrap();
        let d = dummy_like(&h).unwrap();
        let params = |s: &str| s.split('$').nth(3).unwrap().to_string();
        assert_eq!(params(&d), params(&h));
        assert_ne!(d, h);
        assert!(!verify_argon2(&d, "s3cret") && !verify_argon2(&d, ""));
    }
}
