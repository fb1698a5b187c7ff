//! The consumer QR login (ref §2.6): the Aliyun Drive phone app scans a passport QR code
//! and the passport hands back the app's own (mobile-kind) token pair.
//!
//! 1. `GET {passport}/newlogin/qrcode/generate.do?appName=aliyun_drive&fromSite=52…` →
//!    `content.data.{t, ck, codeContent}`; `codeContent` is the QR text;
//! 2. `POST …/newlogin/qrcode/query.do` with the form `t`, `ck`, every 2–3 s →
//!    `content.data.qrCodeStatus`: `NEW`, `SCANED`, `CONFIRMED` (with `bizExt`),
//!    `EXPIRED`, `CANCELED`;
//! 3. `bizExt` = base64 of GBK JSON `{"pds_login_result": {"refreshToken", …}}`.
//!
//! The caller saves the pair and runs the §2.1 refresh at once (rotating and persisting
//! it through the kit).

use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use super::hosts;
use super::json;
use crate::drivers::http::Endpoints;
use crate::drivers::QrState;

/// A generated QR code.
#[derive(Debug, Clone)]
pub struct Qr {
    /// The text to draw as a QR code.
    pub code_content: String,
    pub t: String,
    pub ck: String,
}

/// The login a confirmed QR code hands back (camelCase `pds_login_result`).
#[derive(Clone, Default)]
pub struct PdsLogin {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub user_id: String,
    pub default_drive_id: String,
    pub status: String,
}

impl std::fmt::Debug for PdsLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdsLogin").field("user_id", &self.user_id).field("status", &self.status).finish_non_exhaustive()
    }
}

async fn fetch(rb: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
    let resp = rb.send().await.map_err(|e| anyhow::anyhow!("{what}: {}", e.without_url()))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| anyhow::anyhow!("{what}: {}", e.without_url()))?;
    if !status.is_success() {
        anyhow::bail!("{what}: HTTP {status}");
    }
    serde_json::from_slice(&body).map_err(|_| anyhow::anyhow!("{what}: the answer is not JSON"))
}

/// Step 1: a new QR code.
pub async fn generate(http: &reqwest::Client, ep: &Endpoints) -> anyhow::Result<Qr> {
    let url = ep.url(
        hosts::PASSPORT,
        "/newlogin/qrcode/generate.do?appName=aliyun_drive&fromSite=52&appEntrance=web&isMobile=false&lang=zh_CN&returnUrl=&bizParams=&_bx-v=2.0.31",
    );
    let v = fetch(http.get(url), "QR generate").await?;
    if v.get("hasError").map(json::bool_of).unwrap_or(false)
        || !v.pointer("/content/success").map(json::bool_of).unwrap_or(true)
    {
        anyhow::bail!("the passport refused to generate a QR code");
    }
    let d = v.pointer("/content/data").cloned().unwrap_or_default();
    let s = |k: &str| d.get(k).map(json::string_of).unwrap_or_default();
    let qr = Qr { code_content: s("codeContent"), t: s("t"), ck: s("ck") };
    if qr.code_content.is_empty() || qr.t.is_empty() || qr.ck.is_empty() {
        anyhow::bail!("the passport's QR answer lacks codeContent, t or ck");
    }
    Ok(qr)
}

/// Step 2: one poll. `Confirmed` comes with the login.
pub async fn query(http: &reqwest::Client, ep: &Endpoints, qr: &Qr) -> anyhow::Result<(QrState, Option<PdsLogin>)> {
    let url = ep.url(hosts::PASSPORT, "/newlogin/qrcode/query.do?appName=aliyun_drive&fromSite=52&_bx-v=2.0.31");
    let v = fetch(http.post(url).form(&[("t", qr.t.as_str()), ("ck", qr.ck.as_str())]), "QR status").await?;
    if v.get("hasError").map(json::bool_of).unwrap_or(false) {
        return Ok((QrState::Refused("the passport answered hasError".into()), None));
    }
    let d = v.pointer("/content/data").cloned().unwrap_or_default();
    let status = d.get("qrCodeStatus").map(json::string_of).unwrap_or_default();
    Ok(match status.as_str() {
        "NEW" => (QrState::Waiting, None),
        "SCANED" => (QrState::Scanned, None),
        "EXPIRED" => (QrState::Expired, None),
        "CANCELED" => (QrState::Canceled, None),
        "CONFIRMED" => {
            let biz = d.get("bizExt").map(json::string_of).unwrap_or_default();
            let login = decode_biz_ext(&biz)?;
            if login.refresh_token.is_empty() {
                anyhow::bail!("the confirmed login carries no refresh token");
            }
            if !login.status.is_empty() && login.status != "enabled" {
                return Ok((QrState::Refused(format!("account status {:?}", login.status)), None));
            }
            (QrState::Confirmed, Some(login))
        }
        // OpenList maps unknown states to "waiting" (ref §2.6).
        _ => (QrState::Waiting, None),
    })
}

/// `bizExt`: base64 of a GBK/GB18030 JSON document (ref §2.6). Tokens are ASCII, so
/// every non-ASCII character (a nickname) is replaced whole — its trail bytes can be
/// ASCII (`\`!), so a byte-wise lossy UTF-8 decode could break the JSON.
pub fn decode_biz_ext(b64: &str) -> anyhow::Result<PdsLogin> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| anyhow::anyhow!("bizExt is not base64"))?;
    let text = gbk_lossy(&raw);
    let v: Value = serde_json::from_str(&text).map_err(|_| anyhow::anyhow!("bizExt is not JSON"))?;
    let r = v.get("pds_login_result").unwrap_or(&v);
    let s = |k: &str| r.get(k).map(json::string_of).unwrap_or_default();
    Ok(PdsLogin {
        access_token: s("accessToken"),
        refresh_token: s("refreshToken"),
        expires_in: r.get("expiresIn").map(json::u64_of).unwrap_or(0),
        user_id: s("userId"),
        default_drive_id: s("defaultDriveId"),
        status: s("status"),
    })
}

/// ASCII as is; every GBK (2-byte) or GB18030 (4-byte) character as U+FFFD.
fn gbk_lossy(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c < 0x80 {
            out.push(c as char);
            i += 1;
            continue;
        }
        let four = c >= 0x81
            && b.get(i + 1).is_some_and(|x| (0x30..=0x39).contains(x))
            && b.get(i + 2).is_some_and(|x| (0x81..=0xFE).contains(x))
            && b.get(i + 3).is_some_and(|x| (0x30..=0x39).contains(x));
        let two = (0x81..=0xFE).contains(&c) && b.get(i + 1).is_some_and(|x| (0x40..=0xFE).contains(x) && *x != 0x7F);
        out.push('\u{FFFD}');
        i += if four {
            4
        } else if two {
            2
        } else {
            1
        };
    }
    out
}

/// Poll interval (ref §2.6: 2–3 s).
pub const POLL: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------
// `pandav login aliyundrive`

#[derive(clap::Parser, Debug)]
#[command(
    name = "pandav login aliyundrive",
    about = "Aliyun Drive: scan a QR code with the Aliyun Drive app (saves a mobile-kind token)"
)]
struct LoginArgs {
    /// Give up after this many seconds without a confirmation.
    #[arg(long, default_value_t = 180)]
    timeout: u64,
    #[command(flatten)]
    common: crate::drivers::LoginCommon,
}

/// The options of the mount the login is for (`aliyundrive` or `aliyundrive_share`):
/// only what the login needs.
#[derive(serde::Deserialize)]
struct MountOpts {
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    endpoints: std::collections::BTreeMap<String, String>,
}

/// Drivers whose mounts this login serves.
const DRIVERS: &[&str] = &["aliyundrive", "aliyundrive_share"];

/// The registry's login entry: `pandav login aliyundrive …`.
pub fn login_entry(args: Vec<String>, host: &dyn crate::drivers::LoginHost) -> crate::drivers::LoginFuture<'_> {
    Box::pin(async move {
        use clap::Parser;
        let a = LoginArgs::parse_from(std::iter::once("pandav login aliyundrive".to_string()).chain(args));
        let mut m = host.mount(&a.common)?;
        let opts: MountOpts = m.options_for(DRIVERS)?;
        login(host, &opts, &m.ctx, a.common.png.as_deref(), Duration::from_secs(a.timeout)).await
    })
}

async fn login(
    host: &dyn crate::drivers::LoginHost,
    opts: &MountOpts,
    ctx: &crate::drivers::DriverCtx,
    png: Option<&std::path::Path>,
    timeout: Duration,
) -> anyhow::Result<()> {
    use super::auth::{Refresher, Tokens};
    use crate::vfs::credentials::{now_unix, Credentials};
    let ep = Endpoints::new(opts.endpoints.clone())?;
    let http = crate::drivers::http::client();
    let qr = generate(&http, &ep).await?;
    host.show_qr(&qr.code_content, png)?;
    host.say("Scan this code with the Aliyun Drive app (阿里云盘) and confirm the login on the phone.");
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last: Option<QrState> = None;
    let mut failures = crate::drivers::PollFailures::default();
    let login = loop {
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("gave up after {}s without a confirmation; run the command again", timeout.as_secs());
        }
        let Some((st, login)) = failures.check(query(&http, &ep, &qr).await, POLL, |m| host.say(m)).await? else {
            continue;
        };
        if last.as_ref() != Some(&st) {
            host.say(&format!("status: {}", st.message()));
        }
        match st {
            QrState::Confirmed => break login.expect("a confirmed login carries its tokens"),
            QrState::Expired | QrState::Canceled | QrState::Refused(_) => anyhow::bail!("{}", st.message()),
            QrState::Waiting | QrState::Scanned => {}
        }
        last = Some(st);
        tokio::time::sleep(POLL).await;
    };
    let now = now_unix();
    let t = Tokens {
        access_token: login.access_token.clone(),
        refresh_token: login.refresh_token.clone(),
        // Unknown lifetime: treated as due, so the refresh below happens at once.
        expires_at: if login.access_token.is_empty() || login.expires_in == 0 { 0 } else { now + login.expires_in },
        issued_at: now,
        user_id: login.user_id.clone(),
        default_drive_id: login.default_drive_id.clone(),
    };
    let secret = opts.refresh_token.clone().unwrap_or_default();
    let refresher = Refresher { http: http.clone(), ep: ep.clone(), mount: ctx.mount_path.clone() };
    let creds = Credentials::restore(&ctx.state, &secret, Tokens::default())?
        .with_refresher(std::sync::Arc::new(refresher), None);
    // Saved first (the passport's pair has no other copy), then rotated at once through
    // the kit, which saves the new pair before returning (ref §2.6 step 3, §2.1).
    creds.save_login(t).await?;
    let (_, gen) = creds.get();
    if let Err(e) = creds.refresh(gen).await {
        host.say(&format!("note: the first token refresh failed ({e}); the mount will refresh when it starts"));
    }
    host.say(&format!("logged in: tokens for mount {} saved in {}", ctx.mount_path, ctx.state.path().display()));
    if !secret.is_empty() {
        host.say("note: the refresh_token in the config is superseded by the saved tokens (leave it unchanged, or remove it)");
    }
    host.say("a running pandav picks the new tokens up by itself");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn biz_ext_in_gbk_with_a_backslash_trail_byte() {
        // "\u{5f20}" (张) is D5 C5 in GBK; 0x5C ('\') is a valid GBK trail byte: 坼 = DB 5C.
        let mut doc = br#"{"pds_login_result":{"accessToken":"eyJ.a.b","refreshToken":"rt-123","expiresIn":7200,"userId":"0d35e837530445e09a1bf00d7e38fb90","nickName":""#.to_vec();
        doc.extend_from_slice(&[0xD5, 0xC5, 0xDB, 0x5C]);
        doc.extend_from_slice(br#"","defaultDriveId":"74470","status":"enabled"}}"#);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&doc);
        let l = decode_biz_ext(&b64).unwrap();
        assert_eq!(l.refresh_token, "rt-123");
        assert_eq!(l.access_token, "eyJ.a.b");
        assert_eq!(l.expires_in, 7200);
        assert_eq!(l.user_id, "0d35e837530445e09a1bf00d7e38fb90");
        assert_eq!(l.default_drive_id, "74470");
        assert!(!format!("{l:?}").contains("rt-123"));
        // A plain UTF-8-lossy decode would have kept the backslash and broken the JSON.
        assert!(serde_json::from_str::<Value>(&String::from_utf8_lossy(&doc)).is_err());
        assert!(decode_biz_ext("%%%").is_err());
    }
}
