//! HTTP Basic authentication against the configured users.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use dashmap::DashSet;
use sha2::{Digest, Sha256};

use crate::config::UserConfig;
use crate::dav::User;

enum Secret {
    /// SHA-256 of the plain password (compared in constant time).
    Plain([u8; 32]),
    /// argon2 PHC string.
    Hash(String),
}

struct Account {
    user: Arc<User>,
    secret: Secret,
}

pub struct Auth {
    accounts: HashMap<String, Account>,
    anonymous: Option<Arc<User>>,
    /// (name, sha256(password)) pairs already verified against an argon2 hash, so a
    /// client sending Basic auth on every request costs one hash, not one argon2 run.
    verified: DashSet<(String, [u8; 32])>,
}

pub enum AuthResult {
    Ok(Arc<User>),
    /// No or wrong credentials: answer 401 with a challenge.
    Challenge,
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
                });
                let secret = match (&u.password, &u.password_hash) {
                    (Some(p), _) => Secret::Plain(Sha256::digest(p.as_bytes()).into()),
                    (None, Some(h)) => Secret::Hash(h.clone()),
                    (None, None) => unreachable!("validated in config"),
                };
                (name, Account { user, secret })
            })
            .collect::<HashMap<_, _>>();
        let anonymous = (users.is_empty() || allow_anonymous).then(|| {
            // With users configured, anonymous access is read-only.
            Arc::new(User { read_only: !users.is_empty(), ..User::anonymous() })
        });
        Auth { accounts, anonymous, verified: DashSet::new() }
    }

    pub fn check(&self, authorization: Option<&http::HeaderValue>) -> AuthResult {
        let Some(h) = authorization else {
            return match &self.anonymous {
                Some(u) => AuthResult::Ok(Arc::clone(u)),
                None => AuthResult::Challenge,
            };
        };
        let Some((name, pass)) = parse_basic(h) else {
            return AuthResult::Challenge;
        };
        let Some(acct) = self.accounts.get(&name) else {
            tracing::info!(user = %name, "login failed: unknown user");
            return AuthResult::Challenge;
        };
        let digest: [u8; 32] = Sha256::digest(pass.as_bytes()).into();
        let ok = match &acct.secret {
            Secret::Plain(want) => ct_eq(want, &digest),
            Secret::Hash(phc) => {
                let key = (name.clone(), digest);
                if self.verified.contains(&key) {
                    true
                } else if verify_argon2(phc, &pass) {
                    self.verified.insert(key);
                    true
                } else {
                    false
                }
            }
        };
        if ok {
            AuthResult::Ok(Arc::clone(&acct.user))
        } else {
            tracing::info!(user = %name, "login failed: wrong password");
            AuthResult::Challenge
        }
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

fn parse_basic(h: &http::HeaderValue) -> Option<(String, String)> {
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

    fn basic(u: &str, p: &str) -> http::HeaderValue {
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        http::HeaderValue::from_str(&format!("Basic {v}")).unwrap()
    }

    #[test]
    fn plain_and_hashed_passwords() {
        let h = hash_password("s3cret").unwrap();
        let a = Auth::new(
            &users(&format!("[[users]]\nname=\"a\"\npassword=\"pw\"\n[[users]]\nname=\"b\"\npassword_hash=\"{h}\"\n")),
            false,
        );
        assert!(matches!(a.check(Some(&basic("a", "pw"))), AuthResult::Ok(u) if u.name == "a"));
        assert!(matches!(a.check(Some(&basic("a", "pW"))), AuthResult::Challenge));
        assert!(matches!(a.check(Some(&basic("b", "s3cret"))), AuthResult::Ok(u) if u.name == "b"));
        assert!(matches!(a.check(Some(&basic("b", "s3cret"))), AuthResult::Ok(_)), "cached path");
        assert!(matches!(a.check(Some(&basic("b", "nope"))), AuthResult::Challenge));
        assert!(matches!(a.check(None), AuthResult::Challenge));
        assert!(matches!(a.check(Some(&http::HeaderValue::from_static("Basic !!!"))), AuthResult::Challenge));
        assert!(matches!(a.check(Some(&http::HeaderValue::from_static("Bearer x"))), AuthResult::Challenge));
    }

    #[test]
    fn anonymous_only_when_allowed() {
        let none = Auth::new(&[], false);
        assert!(matches!(none.check(None), AuthResult::Ok(u) if !u.read_only));
        let with_users = Auth::new(&users("[[users]]\nname=\"a\"\npassword=\"pw\"\n"), true);
        assert!(matches!(with_users.check(None), AuthResult::Ok(u) if u.read_only));
    }
}
