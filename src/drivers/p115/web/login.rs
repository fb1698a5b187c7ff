//! `pandav login 115`: the QR-code login (reference §1.2) of a `115` or `115_share`
//! mount; the cookie goes into the mount's state through the kit's credentials.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, Result};
use clap::Parser;
use serde_json::Value;

use super::client::{self, fnum, fstr, get, hosts, state_of};
use crate::drivers::http::{self, Http};
pub use crate::drivers::p115::common::cookie::{Cookie, SavedLogin};
use crate::drivers::{LoginCommon, LoginFuture, LoginHost};
use crate::vfs::{DriveError, DriveResult};

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

/// Poll results (§1.2.3): the kit's QR states.
pub use crate::drivers::QrState as QrStatus;

fn qr_ua() -> &'static str {
    "Mozilla/5.0"
}

/// GET the QR login calls need no cookie.
async fn qr_get(http: &Http, what: &str, host: &str, pq: &str, timeout: Duration) -> DriveResult<Value> {
    let url = http.endpoints.url(host, pq);
    let r = http
        .send(what, true, |c| c.get(&url).header("User-Agent", qr_ua()).timeout(timeout), |r| client::classify(r, true))
        .await?;
    client::parse_json(&r, what)
}

fn qr_error(v: &Value, what: &str) -> DriveError {
    let e = client::envelope_error(v).unwrap_or(client::ApiError { code: 0, msg: String::new() });
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
        client::now_secs()
    );
    let v = qr_get(http, "QR status", hosts::QRCODEAPI, &pq, Duration::from_secs(120)).await?;
    if let Some(e) = client::envelope_error(&v) {
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
        // p115qrcode: -99 (missing) and unknown statuses abort the login.
        Some(n) => QrStatus::Refused(format!("status {n}")),
        None => QrStatus::Refused("status -99".into()),
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
            |r| client::classify(r, false),
        )
        .await?;
    let v = client::parse_json(&r, "QR login result")?;
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

#[derive(Parser, Debug)]
#[command(
    name = "pandav login 115",
    about = "115 Cloud (cookie): QR code login; the cookie goes into the mount's state"
)]
struct Args {
    /// 115 app slot to occupy (tv, android, ios, alipaymini, wechatmini, qandroid, web, …).
    /// Logging in signs out any other session of the same app type.
    #[arg(long, default_value = "tv")]
    app: String,
    #[command(flatten)]
    common: LoginCommon,
}

/// The registry's login entry.
pub fn run(args: Vec<String>, host: &dyn LoginHost) -> LoginFuture<'_> {
    Box::pin(async move {
        let a = Args::parse_from(std::iter::once("pandav login 115".to_string()).chain(args));
        login(a, host).await
    })
}

async fn login(a: Args, host: &dyn LoginHost) -> Result<()> {
    let app = a.app;
    if !QR_APPS.iter().any(|(x, _)| *x == app) {
        let names: Vec<&str> = QR_APPS.iter().map(|(x, _)| *x).collect();
        return Err(anyhow!("--app {app:?} is not a 115 app type (one of: {})", names.join(", ")));
    }
    let m = host.mount(&a.common)?;
    m.expect_driver(&["115", "115_share"])?;
    let config_cookie = m.options.get("cookie").and_then(|c| c.as_str()).unwrap_or("").trim().to_string();
    let endpoints: BTreeMap<String, String> = match m.options.get("endpoints") {
        Some(e) => e.clone().try_into().map_err(|e| anyhow!("mount {}: endpoints: {e}", m.path))?,
        None => Default::default(),
    };
    let http = crate::drivers::p115::common::build_http(endpoints, 0.0, Some(2), None, Some(0))?;
    let slot = QR_APPS.iter().find(|(x, _)| *x == app).map(|(_, d)| *d).unwrap_or("");
    host.say(&format!(
        "Logging in as app type {app:?} ({slot}). 115 allows one session per app type: this signs out\n\
         any other {app:?} session of the account (browsers stay logged in unless you use --app web)."
    ));
    let png = a.common.png.clone();
    let cookie = qr_login(
        &http,
        &app,
        |tok| {
            host.show_qr(&tok.qrcode, png.as_deref())?;
            host.say(&format!("Scan this QR code with the 115 app (or open {} on the phone).", tok.qrcode));
            Ok(())
        },
        |st| host.say(&st.message()),
    )
    .await?;
    let saved = SavedLogin { cookie: cookie.header(), app: Some(app.clone()) };
    crate::drivers::p115::common::auth_login(&m.ctx.state, &config_cookie)?
        .save_login(saved)
        .await
        .map_err(|e| anyhow!("saving the login: {e}"))?;
    let who = cookie.user_id().map(|u| format!("user {u}")).unwrap_or_else(|| "the account".into());
    println!("Logged in as {who} (app {app}); saved to {}.", m.ctx.state.path().display());
    println!("`pandav serve` with this config uses it for {} (a running server picks it up on its next call).", m.path);
    Ok(())
}
