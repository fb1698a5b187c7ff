//! 115 share links (reference §7): link parsing, `share/snap` listing, and the two
//! download-URL variants (app m115 and plain web).

use std::time::Duration;

use serde_json::Value;

use crate::drivers::http::{self, Response};
use crate::drivers::p115::common::client::{self as api115, fnum, fstr, get, hosts, Api};
use crate::vfs::*;

/// The desktop-browser UA OpenList uses for share calls.
pub const SHARE_BROWSER_UA: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
/// The 115-client UA the app share downurl wants when the player's is not one (§7.3 a).
pub const SHARE_APP_UA: &str = "Mozilla/5.0 115Browser/27.0.5.7";

/// A share's code and receive code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRef {
    pub share_code: String,
    pub receive_code: String,
}

fn is_code(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Parse the forms of §7.1: `https://115cdn.com/s/{code}?password={rc}`, the same on
/// `115.com/s/`, `https://share.115.com/{code}?password={rc}`, and `{code}-{rc}`.
pub fn parse_share_url(s: &str) -> Result<ShareRef, String> {
    let s = s.trim();
    if let Some((_, rest)) = s.split_once("://") {
        let (hostpath, query) = match rest.split_once('?') {
            Some((a, b)) => (a, b.split('#').next().unwrap_or(b)),
            None => (rest.split('#').next().unwrap_or(rest), ""),
        };
        let (host, path) = hostpath.split_once('/').unwrap_or((hostpath, ""));
        let host = host.to_ascii_lowercase();
        let code = if host == "share.115.com" {
            path.trim_matches('/')
        } else if host.ends_with("115cdn.com") || host.ends_with("115.com") {
            path.strip_prefix("s/").unwrap_or("").trim_matches('/')
        } else {
            return Err(format!("{host} is not a 115 share host"));
        };
        let code = code.split('/').next().unwrap_or("");
        if !is_code(code) {
            return Err("no share code in the URL".into());
        }
        let rc = query.split('&').find_map(|kv| kv.strip_prefix("password=")).unwrap_or("").to_string();
        if !rc.is_empty() && !is_code(&rc) {
            return Err("the receive code (password=) must be letters and digits".into());
        }
        return Ok(ShareRef { share_code: code.to_ascii_lowercase(), receive_code: rc.to_ascii_lowercase() });
    }
    if let Some((code, rc)) = s.split_once('-') {
        if is_code(code) && is_code(rc) {
            return Ok(ShareRef { share_code: code.to_ascii_lowercase(), receive_code: rc.to_ascii_lowercase() });
        }
    }
    Err("not a share link (expected https://115cdn.com/s/CODE?password=XXXX or CODE-XXXX)".into())
}

/// `share_state` in plain words (elevengo's table).
pub fn share_state_text(st: i64) -> &'static str {
    match st {
        0 => "under review",
        1 => "normal",
        2 | 3 | 6 | 11 => "rejected for a violation",
        4 => "canceled",
        5 => "deleted",
        7 => "expired",
        8 => "still being generated",
        9 => "failed",
        _ => "in an unknown state",
    }
}

/// Share errnos (§7.2) in plain words.
pub fn share_error_text(code: i64) -> Option<&'static str> {
    Some(match code {
        4100000 => "the share was closed",
        4100008 => "wrong receive code (password)",
        4100009 | 4100010 | 4100018 | 4100033 => "the share was canceled or is invalid",
        4100012 => "the share needs a receive code (password)",
        4100026 => "the share does not exist or was deleted",
        4100030 => "too many files to receive",
        _ => return None,
    })
}

/// The referer share calls send (115driver ≥1.3).
pub fn referer(s: &ShareRef) -> String {
    format!("https://115cdn.com/s/{}?password={}&", s.share_code, s.receive_code)
}

/// An error of a share call: a share that is gone or locked is `AuthLost` with a clear
/// message (the mount reports it as unhealthy).
pub fn share_error(s: &ShareRef, e: &api115::ApiError, what: &str) -> DriveError {
    if let Some(t) = share_error_text(e.code) {
        return DriveError::AuthLost(format!("115 share {}: {t} (errno {})", s.share_code, e.code));
    }
    if api115::is_auth_code(e.code) {
        // The downloader's login, not the share: not a reason to call the share broken.
        return DriveError::Forbidden(format!("115 {what}: needs a valid 115 login (errno {})", e.code));
    }
    if api115::is_busy_code(e.code) {
        return DriveError::RateLimited { retry_after: Some(Duration::from_secs(30)) };
    }
    api115::map_api_error(e, what)
}

/// GET a share endpoint (no login needed, sent when there is one).
pub async fn share_get(
    api: &Api,
    what: &str,
    host: &str,
    pq: &str,
    ua: &str,
    referer: Option<&str>,
) -> DriveResult<(Value, Response)> {
    let url = api.http.endpoints.url(host, pq);
    let creds = api.try_creds();
    let r = api
        .http
        .send(
            what,
            true,
            |c| {
                let mut rb = c.get(&url);
                if !ua.is_empty() {
                    rb = rb.header("User-Agent", ua);
                }
                if let Some(r) = referer {
                    rb = rb.header("Referer", r);
                }
                if let Some(c) = &creds {
                    rb = rb.header("Cookie", &c.header);
                }
                rb
            },
            |r| api115::classify(r, true),
        )
        .await?;
    let v = api115::parse_json(&r, what)?;
    Ok((v, r))
}

/// One page of `share/snap`.
pub async fn snap(
    api: &Api,
    s: &ShareRef,
    cid: &str,
    offset: u64,
    limit: u32,
    order: &str,
    asc: bool,
) -> DriveResult<Value> {
    let pq = format!(
        "/share/snap?share_code={}&receive_code={}&cid={}&offset={offset}&limit={limit}&asc={}&o={}&format=json",
        http::qs(&s.share_code),
        http::qs(&s.receive_code),
        http::qs(cid),
        asc as u8,
        http::qs(order)
    );
    let (v, _) = share_get(api, "share snap", hosts::WEBAPI, &pq, SHARE_BROWSER_UA, Some(&referer(s))).await?;
    if let Some(e) = api115::envelope_error(&v) {
        return Err(share_error(s, &e, "share snap"));
    }
    // `share_state` is a string or a number (it changed in Aug 2025).
    let data = get(&v, "data").cloned().unwrap_or(Value::Null);
    let state = get(&data, "shareinfo").and_then(|i| fnum(i, "share_state")).or_else(|| fnum(&data, "share_state"));
    if let Some(st) = state {
        if st != 1 {
            let why = get(&data, "shareinfo").and_then(|i| fstr(i, "forbid_reason")).filter(|r| !r.is_empty());
            return Err(DriveError::AuthLost(format!(
                "115 share {} is {} (share_state {st}){}",
                s.share_code,
                share_state_text(st),
                why.map(|w| format!(": {w}")).unwrap_or_default()
            )));
        }
    }
    Ok(data)
}

/// The URL of a `{fid, fn, fs, url{url}}` record.
pub fn share_url_of(d: &Value) -> DriveResult<String> {
    if fnum(d, "fs").is_some_and(|s| s < 0) {
        return Err(DriveError::upstream("115 share downurl: no URL for this file"));
    }
    match get(d, "url") {
        Some(u @ Value::Object(_)) => fstr(u, "url").filter(|x| !x.is_empty()).ok_or(DriveError::NotFound),
        Some(Value::String(x)) if !x.is_empty() => Ok(x.clone()),
        _ => Err(DriveError::NotFound),
    }
}

/// Does this UA pass the app endpoint's 115-client gate?
pub fn is_115_ua(ua: &str) -> bool {
    let l = ua.to_ascii_lowercase();
    l.contains("115browser")
        || l.contains("115disk")
        || l.contains("115desktop")
        || l.contains("udown/")
        || l.contains("115wangpan")
}

/// (a) `POST proapi /app/share/downurl` (m115, needs a login and a 115-client UA).
/// Returns the URL, the UA it was asked with, and the answer's cookies.
pub async fn downurl_app(
    api: &Api,
    s: &ShareRef,
    file_id: &str,
    player_ua: &str,
) -> DriveResult<(String, String, Vec<(String, String)>)> {
    let ua = if is_115_ua(player_ua) { player_ua.to_string() } else { SHARE_APP_UA.to_string() };
    let plain =
        serde_json::json!({"share_code": s.share_code, "receive_code": s.receive_code, "file_id": file_id}).to_string();
    let (outer, r, key) = api
        .m115_post_raw(
            "share downurl",
            hosts::PROAPI,
            "/app/share/downurl",
            plain.as_bytes(),
            Some(&ua),
            true,
            &[("Accept", "application/json;charset=UTF-8")],
        )
        .await?;
    if let Some(e) = api115::envelope_error(&outer) {
        return Err(share_error(s, &e, "share downurl"));
    }
    let dec = api.m115_data("share downurl", &outer, key)?;
    let v: Value =
        serde_json::from_slice(&dec).map_err(|e| DriveError::upstream(format!("115 share downurl: bad JSON ({e})")))?;
    Ok((share_url_of(&v)?, ua, r.set_cookies()))
}

/// (b) `GET webapi /share/downurl` (plain JSON, the player's UA, ≤ 200 MB).
pub async fn downurl_web(
    api: &Api,
    s: &ShareRef,
    file_id: &str,
    player_ua: &str,
) -> DriveResult<(String, Vec<(String, String)>)> {
    let pq = format!(
        "/share/downurl?share_code={}&receive_code={}&file_id={}&dl=1",
        http::qs(&s.share_code),
        http::qs(&s.receive_code),
        http::qs(file_id)
    );
    let (v, r) = share_get(api, "share downurl (web)", hosts::WEBAPI, &pq, player_ua, Some(&referer(s))).await?;
    if let Some(e) = api115::envelope_error(&v) {
        return Err(share_error(s, &e, "share downurl (web)"));
    }
    let d = get(&v, "data").cloned().unwrap_or(Value::Null);
    Ok((share_url_of(&d)?, r.set_cookies()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_links() {
        let want = ShareRef { share_code: "sw6pw793wfp".into(), receive_code: "w816".into() };
        for s in [
            "https://115cdn.com/s/sw6pw793wfp?password=w816",
            "https://115.com/s/sw6pw793wfp?password=w816#",
            "https://share.115.com/sw6pw793wfp?password=w816",
            "sw6pw793wfp-w816",
            " https://115cdn.com/s/sw6pw793wfp?password=w816& ",
        ] {
            assert_eq!(parse_share_url(s).unwrap(), want, "{s}");
        }
        assert!(parse_share_url("https://example.com/s/x?password=1").is_err());
        assert!(parse_share_url("nonsense").is_err());
        assert_eq!(parse_share_url("https://115cdn.com/s/abc").unwrap().receive_code, "");
    }

    #[test]
    fn state_words() {
        assert_eq!(share_state_text(7), "expired");
        assert_eq!(share_error_text(4100008), Some("wrong receive code (password)"));
    }
}
