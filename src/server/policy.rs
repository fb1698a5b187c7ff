//! Which download policy a GET/HEAD gets: the mount's, unless a client rule says
//! otherwise. Clients known not to follow 302 on GET are proxied by default.

use std::collections::HashSet;

use crate::config::ClientRule;
use crate::vfs::{Mount, Policy, PolicyKind};

enum Want {
    Redirect,
    Proxy,
    ProxyUrl,
}

struct Rule {
    ua: String,
    want: Want,
    mounts: Option<HashSet<String>>,
}

pub struct Rules {
    rules: Vec<Rule>,
}

/// User-Agent substrings (lowercase) of clients that do not follow a 302 on GET:
/// davfs2 (follow_redirect is off by default), the Windows mini-redirector, RaiDrive,
/// and miquels/webdavfs.
const NO_REDIRECT_CLIENTS: &[&str] = &["davfs2", "microsoft-webdav-miniredir", "raidrive", "webdavfs"];

impl Rules {
    pub fn new(cfg: &[ClientRule]) -> Rules {
        let mut rules: Vec<Rule> = cfg
            .iter()
            .map(|r| Rule {
                ua: r.user_agent.to_ascii_lowercase(),
                want: match r.policy.get_ref() {
                    PolicyKind::Redirect => Want::Redirect,
                    PolicyKind::ProxyUrl => Want::ProxyUrl,
                    PolicyKind::Proxy => Want::Proxy,
                },
                mounts: r
                    .mounts
                    .as_ref()
                    .map(|v| v.iter().filter_map(|p| crate::config::normalize_mount_path(p).ok()).collect()),
            })
            .collect();
        rules.extend(NO_REDIRECT_CLIENTS.iter().map(|ua| Rule { ua: ua.to_string(), want: Want::Proxy, mounts: None }));
        Rules { rules }
    }

    /// The policy for `mount` and this User-Agent. A rule asking for something the mount
    /// cannot do (redirect on a local folder, proxy_url without a relay) is skipped.
    pub fn effective(&self, mount: &Mount, user_agent: &str) -> Policy {
        let ua = user_agent.to_ascii_lowercase();
        for r in &self.rules {
            if !ua.contains(&r.ua) || r.mounts.as_ref().is_some_and(|m| !m.contains(mount.path())) {
                continue;
            }
            match r.want {
                Want::Proxy => return Policy::Proxy,
                Want::Redirect if mount.caps().links => return Policy::Redirect,
                Want::ProxyUrl => {
                    if let Some(url) = &mount.opts.proxy_url {
                        return Policy::ProxyUrl(url.clone());
                    }
                }
                _ => {}
            }
        }
        mount.opts.policy.clone()
    }
}
