//! 115 login: the cookie (reference §1.1), the QR-code flow (§1.2) and the state saved
//! by `pandav login 115`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api::{self, fnum, fstr, get, hosts, state_of};
use crate::drivers::http::{self, Http};
use crate::vfs::{DriveError, DriveResult};

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

/// App types a QR login may occupy (§1.2.5); logging in kicks out the same app type.
pub const QR_APPS: &[(&str, &str)] = &[
    ("web", "A1, web / 115 Browser"),
    ("ios", "D1, 115生活 iOS"),
    ("115ios", "D3, 115 iOS"),
    ("android", "F1, 115生活 Android"),
    ("115android", "F3, 115 Android"),
    ("ipad", "H1, 115生活 iPad"),
    ("115ipad", "H3, 115 iPad"),
    ("tv", "I1, Android TV"),
    ("apple_tv", "I2, Apple TV"),
    ("qandroid", "M1, 115管理 Android"),
    ("qios", "N1, 115管理 iOS"),
    ("qipad", "O1, 115管理 iPad"),
    ("os_windows", "P1, Windows client"),
    ("os_mac", "P2, macOS client"),
    ("os_linux", "P3, Linux client"),
    ("wechatmini", "R1, WeChat mini-program"),
    ("alipaymini", "R2, Alipay mini-program"),
    ("harmony", "S1, HarmonyOS"),
];

/// How an app name goes on the wire of the login-result call (p115client, §1.2.4):
/// `desktop` is `web`; bare `windows`/`mac`/`linux` are disabled, their `os_` names are
/// used; `ios`, `qios`, `ipad` and `qipad` are all posted as `ios`, told apart by the UA.
pub fn qr_app_wire(app: &str) -> (&str, Option<&'static str>) {
    match app {
        "desktop" => ("web", None),
        "windows" => ("os_windows", None),
        "mac" => ("os_mac", None),
        "linux" => ("os_linux", None),
        "ios" => ("ios", Some("UPhone/1.0.0")),
        "qios" => ("ios", Some("OfficePhone/1.0.0")),
        "ipad" => ("ios", Some("UPad/1.0.0")),
        "qipad" => ("ios", Some("OfficePad/1.0.0")),
        other => (other, None),
    }
}

/// A QR token (§1.2.1).
#[derive(Debug, Clone)]
pub struct QrToken {
    pub uid: String,
    pub time: i64,
    pub sign: String,
    /// Text to draw as the QR code.
    pub qrcode: String,
}

/// Poll results (§1.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QrStatus {
    Waiting,
    Scanned,
    Confirmed,
    Expired,
    Canceled,
    /// Missing or unknown status (p115qrcode: -99, aborted).
    Other(i64),
}

impl QrStatus {
    pub fn message(&self) -> String {
        match self {
            QrStatus::Waiting => "waiting for the QR code to be scanned with the 115 app…".into(),
            QrStatus::Scanned => "scanned: confirm the login on your phone…".into(),
            QrStatus::Confirmed => "confirmed on the phone".into(),
            QrStatus::Expired => "the QR code expired; run the command again for a new one".into(),
            QrStatus::Canceled => "the login was canceled on the phone".into(),
            QrStatus::Other(n) => format!("the login was aborted (status {n})"),
        }
    }
}

fn qr_ua() -> &'static str {
    "Mozilla/5.0"
}

/// GET the QR login calls need no cookie.
async fn qr_get(http: &Http, what: &str, host: &str, pq: &str, timeout: Duration) -> DriveResult<Value> {
    let url = http.endpoints.url(host, pq);
    let r = http
        .send(what, true, |c| c.get(&url).header("User-Agent", qr_ua()).timeout(timeout), |r| api::classify(r, true))
        .await?;
    api::parse_json(&r, what)
}

fn qr_error(v: &Value, what: &str) -> DriveError {
    let e = api::envelope_error(v).unwrap_or(api::ApiError { code: 0, msg: String::new() });
    let text = match e.code {
        40199002 => "the QR code expired".to_string(),
        40101004 => "115 reports an IP login anomaly (40101004); try again tomorrow or use another --app".into(),
        40101017 => "user verification failed (40101017)".into(),
        40101030 => "the account has no bound mobile number (40101030)".into(),
        40101033 | 40101038 => format!("repeat login ({})", e.code),
        40100000 => "bad or missing parameters (40100000)".into(),
        c => format!("errno {c} {}", e.msg),
    };
    DriveError::upstream(format!("115 {what}: {text}"))
}

/// Step 1: a QR token (`qrcodeapi /api/1.0/web/1.0/token/`).
pub async fn qr_token(http: &Http) -> DriveResult<QrToken> {
    let v = qr_get(http, "QR token", hosts::QRCODEAPI, "/api/1.0/web/1.0/token/", Duration::from_secs(30)).await?;
    if state_of(&v) != Some(true) {
        return Err(qr_error(&v, "QR token"));
    }
    let d = get(&v, "data").ok_or_else(|| DriveError::upstream("115 QR token: no data"))?;
    let uid = fstr(d, "uid").filter(|s| !s.is_empty()).ok_or_else(|| DriveError::upstream("115 QR token: no uid"))?;
    let qrcode =
        fstr(d, "qrcode").filter(|s| !s.is_empty()).unwrap_or_else(|| format!("https://115.com/scan/dg-{uid}"));
    Ok(QrToken { time: fnum(d, "time").unwrap_or(0), sign: fstr(d, "sign").unwrap_or_default(), uid, qrcode })
}

/// Step 2 (optional): the QR image as PNG from 115 (`/api/1.0/{app}/1.0/qrcode`).
pub async fn qr_png_url(http: &Http, uid: &str) -> String {
    http.endpoints.url(hosts::QRCODEAPI, &format!("/api/1.0/web/1.0/qrcode?uid={}", http::qs(uid)))
}

/// Step 3: one status poll (the server may hold it open: long poll).
pub async fn qr_status(http: &Http, tok: &QrToken) -> DriveResult<QrStatus> {
    let pq = format!(
        "/get/status/?uid={}&time={}&sign={}&_={}",
        http::qs(&tok.uid),
        tok.time,
        http::qs(&tok.sign),
        api::now_secs()
    );
    let v = qr_get(http, "QR status", hosts::QRCODEAPI, &pq, Duration::from_secs(120)).await?;
    if let Some(e) = api::envelope_error(&v) {
        if e.code == 40199002 {
            return Ok(QrStatus::Expired);
        }
        return Err(qr_error(&v, "QR status"));
    }
    let status = get(&v, "data").and_then(|d| fnum(d, "status"));
    Ok(match status {
        Some(0) => QrStatus::Waiting,
        Some(1) => QrStatus::Scanned,
        Some(2) => QrStatus::Confirmed,
        Some(-1) => QrStatus::Expired,
        Some(-2) => QrStatus::Canceled,
        Some(n) => QrStatus::Other(n),
        None => QrStatus::Other(-99),
    })
}

/// Step 4: the cookies for `app` (`passportapi /app/1.0/{app}/1.0/login/qrcode`).
pub async fn qr_result(http: &Http, tok: &QrToken, app: &str) -> DriveResult<Cookie> {
    let (app, ua) = qr_app_wire(app);
    let url = http.endpoints.url(hosts::PASSPORTAPI, &format!("/app/1.0/{app}/1.0/login/qrcode"));
    let body = http::form(&[("account", &tok.uid), ("app", app)]);
    let ua = ua.unwrap_or(qr_ua());
    let r = http
        .send(
            "QR login result",
            false,
            |c| {
                c.post(&url)
                    .header("User-Agent", ua)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(body.clone())
            },
            |r| api::classify(r, false),
        )
        .await?;
    let v = api::parse_json(&r, "QR login result")?;
    if state_of(&v) != Some(true) {
        return Err(qr_error(&v, "QR login result"));
    }
    let c = get(&v, "data")
        .and_then(|d| get(d, "cookie"))
        .ok_or_else(|| DriveError::upstream("115 QR login: no cookie in the answer"))?;
    let part = |k: &str| fstr(c, k).unwrap_or_default();
    let text = format!("UID={};CID={};SEID={};KID={}", part("UID"), part("CID"), part("SEID"), part("KID"));
    Cookie::parse(&text).map_err(|e| DriveError::upstream(format!("115 QR login: {e}")))
}

/// The whole flow: token, `show` the QR text, poll until confirmed (reporting each
/// change through `say`), fetch the cookie.
pub async fn qr_login(
    http: &Http,
    app: &str,
    show: impl FnOnce(&QrToken) -> anyhow::Result<()>,
    mut say: impl FnMut(&QrStatus),
) -> anyhow::Result<Cookie> {
    let tok = qr_token(http).await?;
    show(&tok)?;
    let mut last = None;
    loop {
        let st = match qr_status(http, &tok).await {
            Ok(s) => s,
            // A long poll that timed out or a hiccup: ask again.
            Err(e) if e.hint() == crate::vfs::Hint::Transient => continue,
            Err(e) => return Err(e.into()),
        };
        if last.as_ref() != Some(&st) {
            say(&st);
            last = Some(st.clone());
        }
        match st {
            QrStatus::Waiting | QrStatus::Scanned => tokio::time::sleep(Duration::from_millis(1000)).await,
            QrStatus::Confirmed => break,
            other => anyhow::bail!("{}", other.message()),
        }
    }
    Ok(qr_result(http, &tok, app).await?)
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
