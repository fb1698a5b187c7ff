//! The 115 web login shared by the `115` and `115_share` drivers: the cookie (reference
//! §1.1) and what `pandav login 115` saves in a mount's state.

use serde::{Deserialize, Serialize};

/// A web session: UID, CID, SEID and (for cookies issued since Dec 2024) KID.
#[derive(Clone, PartialEq, Eq)]
pub struct Cookie {
    pub uid: String,
    pub cid: String,
    pub seid: String,
    pub kid: Option<String>,
}

impl std::fmt::Debug for Cookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cookie(***)")
    }
}

impl Cookie {
    /// Parse `UID=..; CID=..; SEID=..; KID=..`: items split on `;` and trimmed, empty
    /// items (a trailing `;`) skipped, names upper-cased, other cookies ignored. UID, CID
    /// and SEID are required. Errors name the missing keys, never a value.
    pub fn parse(s: &str) -> Result<Cookie, String> {
        let (mut uid, mut cid, mut seid, mut kid) = (None, None, None, None);
        for item in s.split(';') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let Some((k, v)) = item.split_once('=') else {
                return Err("cookie item without '=' (expected UID=…; CID=…; SEID=…; KID=…)".into());
            };
            let v = v.trim().to_string();
            match k.trim().to_ascii_uppercase().as_str() {
                "UID" => uid = Some(v),
                "CID" => cid = Some(v),
                "SEID" => seid = Some(v),
                "KID" => kid = Some(v),
                _ => {}
            }
        }
        let missing: Vec<&str> = [("UID", &uid), ("CID", &cid), ("SEID", &seid)]
            .iter()
            .filter(|(_, v)| v.as_deref().unwrap_or("").is_empty())
            .map(|(k, _)| *k)
            .collect();
        if !missing.is_empty() {
            return Err(format!("cookie lacks {}", missing.join(", ")));
        }
        Ok(Cookie {
            uid: uid.unwrap_or_default(),
            cid: cid.unwrap_or_default(),
            seid: seid.unwrap_or_default(),
            kid: kid.filter(|k| !k.is_empty()),
        })
    }

    /// `UID=..;CID=..;SEID=..;KID=..` (the serialisation of 115driver).
    pub fn header(&self) -> String {
        let mut s = format!("UID={};CID={};SEID={}", self.uid, self.cid, self.seid);
        if let Some(k) = &self.kid {
            s.push_str(&format!(";KID={k}"));
        }
        s
    }

    /// The user id: UID up to the first `_` (`123456789_A1_1700000000`).
    pub fn user_id(&self) -> Option<u64> {
        self.uid.split('_').next()?.parse().ok()
    }

    /// The device slot (ssoent) of the session, e.g. `A1` for web, `I1` for tv.
    pub fn ssoent(&self) -> Option<&str> {
        self.uid.split('_').nth(1)
    }
}

/// What `pandav login 115` saves in the mount's state (a grant of the kit's credentials).
#[derive(Clone, Serialize, Deserialize, Default)]
pub struct SavedLogin {
    pub cookie: String,
    /// The app (device slot) the cookie was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

impl std::fmt::Debug for SavedLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedLogin").field("cookie", &"***").field("app", &self.app).finish()
    }
}

impl crate::vfs::credentials::Grant for SavedLogin {
    /// A cookie does not rotate, but a new login replaces it: another cookie in the state
    /// file revives a mount whose cookie died.
    fn rotating(&self) -> &str {
        self.cookie.trim()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_parse_tolerates_trailing_semicolon_and_spaces() {
        let c = Cookie::parse(" UID=123456789_A1_1700000000; CID=0f1e ;SEID=9a8b; KID=c3d4; ").unwrap();
        assert_eq!(c.header(), "UID=123456789_A1_1700000000;CID=0f1e;SEID=9a8b;KID=c3d4");
        assert_eq!(c.user_id(), Some(123456789));
        assert_eq!(c.ssoent(), Some("A1"));
        let old = Cookie::parse("uid=1_A1_2;cid=a;seid=b;").unwrap();
        assert_eq!(old.kid, None);
        let e = Cookie::parse("UID=1_A1_2;SEID=secretvalue").unwrap_err();
        assert!(e.contains("CID") && !e.contains("secretvalue"), "{e}");
        assert!(Cookie::parse("garbage").is_err());
        assert_eq!(format!("{c:?}"), "Cookie(***)");
    }
}
