//! `/-/metrics`: who may scrape, and the answer (the counting is in `crate::metrics`).
//!
//! Off unless `[server] metrics = true` (then 404, as if there were no such route). With
//! `metrics_user` the scraper needs exactly those credentials; without, any configured
//! user may scrape (and anyone when no users are configured, which pandav allows only
//! on loopback or with `allow_anonymous`). The exposition has no mount paths and no
//! user names, so what a scraper learns is how the server is doing, nothing more.

use std::net::IpAddr;
use std::sync::Arc;

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use super::auth::{self, Auth, AuthResult};
use super::body::BoxBody;
use crate::config::{ServerConfig, UserConfig};
use crate::vfs::MountTable;

pub enum Access {
    Off,
    /// Any configured user (anyone when there are none).
    Users,
    /// Only these credentials.
    Own(Box<Auth>),
}

impl Access {
    pub fn new(s: &ServerConfig) -> Access {
        if !s.metrics {
            return Access::Off;
        }
        match &s.metrics_user {
            Some(name) => {
                let u = UserConfig {
                    name: toml::Spanned::new(0..0, name.clone()),
                    password: s.metrics_password.as_ref().map(|p| p.0.clone()),
                    password_hash: s.metrics_password_hash.clone(),
                    mounts: Some(vec![]),
                    read_only: true,
                    admin: false,
                };
                Access::Own(Box::new(Auth::new(&[u], false)))
            }
            None => Access::Users,
        }
    }
}

/// Answer a scrape: 404 when off, 401/429 without the right credentials.
pub async fn serve(
    access: &Access,
    users: &Auth,
    has_users: bool,
    table: &Arc<MountTable>,
    headers: &HeaderMap,
    client: IpAddr,
    challenge: impl FnOnce() -> Response<BoxBody>,
) -> Response<BoxBody> {
    let who = match access {
        Access::Off => return super::status(StatusCode::NOT_FOUND, "not found\n"),
        Access::Users => match users.check(headers.get(header::AUTHORIZATION), client).await {
            // With users configured an anonymous (`-`) user is not enough.
            AuthResult::Ok(u) if !(has_users && u.name == "-") => Ok(()),
            AuthResult::Throttled(w) => Err(Some(w)),
            _ => Err(None),
        },
        Access::Own(a) => match a.check(headers.get(header::AUTHORIZATION), client).await {
            AuthResult::Ok(u) if u.name != "-" => Ok(()),
            AuthResult::Throttled(w) => Err(Some(w)),
            _ => Err(None),
        },
    };
    match who {
        Ok(()) => {}
        Err(Some(wait)) => return auth::throttled(wait),
        Err(None) => return challenge(),
    }
    let text = crate::metrics::render(table.mounts().iter().map(|m| (m.drive.kind(), m.health().ok)));
    let mut r = super::status(StatusCode::OK, &text);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(crate::metrics::CONTENT_TYPE));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
