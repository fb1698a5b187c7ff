//! Share-link calls (ref §8): the share token and its renewal, listing with
//! `x-share-token`, and download links fetched with the viewer's own login.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use serde_json::{json, Value};

use super::ShareDrive;
use crate::drivers::aliyun::common::auth::{judge_into, Tokens, SHARE_CANARY};
use crate::drivers::aliyun::common::error::{self, ApiError, Class, Family, Renew};
use crate::drivers::aliyun::common::item::{self, FileItem};
use crate::drivers::aliyun::common::{self as common, hosts, json};
use crate::drivers::http::{Call, Http, Response, Session, Verdict};
use crate::vfs::{DriveError, DriveResult, Entry, Link};

/// Listing page size (ref §8.3).
const PAGE: u64 = 200;
/// Share download links live at most 600 s (ref §8.4).
const LINK_EXPIRE_SEC: u64 = 600;
/// Renew the share token this long before it expires (or at a fifth of a short life).
const TOKEN_MARGIN: Duration = Duration::from_secs(600);

/// The share token in force (ref §8.2), renewed one at a time; and the latch of a dead
/// share (cancelled, expired, forbidden, unknown, wrong extraction code).
#[derive(Default)]
pub struct ShareTokenCell {
    current: RwLock<Option<(Arc<String>, Instant, Instant)>>,
    gen: AtomicU64,
    flight: tokio::sync::Mutex<()>,
    dead: Mutex<Option<String>>,
    /// Tokens obtained (tests).
    pub obtained: AtomicU64,
}

impl ShareTokenCell {
    pub fn generation(&self) -> u64 {
        self.gen.load(Ordering::SeqCst)
    }

    fn get(&self) -> (Arc<String>, u64) {
        let g = self.generation();
        let t = self.current.read().unwrap().as_ref().map(|(t, _, _)| Arc::clone(t)).unwrap_or_default();
        (t, g)
    }

    /// Why the share is gone, once it is.
    pub fn dead(&self) -> Option<String> {
        self.dead.lock().unwrap().clone()
    }

    /// When the token should be renewed: before it expires, with a margin.
    fn due_at(&self) -> Option<Instant> {
        self.current.read().unwrap().as_ref().map(|(_, got, exp)| {
            let margin = TOKEN_MARGIN.min(exp.saturating_duration_since(*got) / 5);
            *exp - margin
        })
    }

    pub fn due(&self) -> bool {
        self.due_at().is_none_or(|t| Instant::now() >= t)
    }

    pub fn until_due(&self) -> Duration {
        self.due_at().map(|t| t.saturating_duration_since(Instant::now())).unwrap_or_default()
    }

    fn expired(&self) -> bool {
        self.current.read().unwrap().as_ref().is_none_or(|(_, _, exp)| Instant::now() >= *exp)
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default, deserialize_with = "json::string")]
    share_token: String,
    #[serde(default, deserialize_with = "json::uint")]
    expires_in: u64,
}

#[derive(Deserialize)]
struct LinkAnswer {
    #[serde(default, deserialize_with = "json::string")]
    download_url: String,
    #[serde(default, deserialize_with = "json::string")]
    url: String,
}

/// The reason a dead share gives (ref §8.1–8.2), for the mount's health.
fn dead_reason(share: &str, e: &ApiError) -> String {
    let why = match e.code.as_str() {
        "InvalidResource.SharePwd" => "the extraction code (share_pwd) is wrong or missing".to_string(),
        "ShareLink.Cancelled" => "the share was cancelled by its creator".to_string(),
        "ShareLink.Expired" => "the share has expired".to_string(),
        "ShareLink.Forbidden" => "the share was blocked by Aliyun".to_string(),
        "NotFound.ShareLink" => "there is no such share".to_string(),
        c => format!("the share is not available ({c})"),
    };
    format!("Aliyun Drive share {share}: {why} ({})", e.code)
}

/// What one share call sends with: the share token, and the viewer's tokens.
pub struct ShareCred {
    pub share: Arc<String>,
    pub user: Arc<Tokens>,
}

/// The kit `Session` of one share call: the share token (renewed when refused), and
/// for download links the viewer's login (token refresh, device session).
struct ShareCall<'a> {
    d: &'a ShareDrive,
    http: &'a Http,
    user: bool,
    want: AtomicU8,
    device_seen: AtomicU64,
}

impl ShareCall<'_> {
    fn judge(&self, what: &str, r: &Response) -> Verdict {
        judge_into(&self.want, Family::Share, what, r, true, &[Class::ShareDead])
    }
}

#[async_trait::async_trait]
impl Session for ShareCall<'_> {
    type Cred = ShareCred;

    fn current(&self) -> DriveResult<(Arc<ShareCred>, u64)> {
        if let Some(m) = self.d.token.dead() {
            return Err(DriveError::AuthLost(m));
        }
        // The viewer's latch too: a dead login stops the mount's calls (and health).
        let (user, ugen) = self.d.auth.creds.current()?;
        let (share, sgen) = self.d.token.get();
        Ok((Arc::new(ShareCred { share, user }), (sgen << 32) | (ugen & 0xffff_ffff)))
    }

    fn usable(&self, c: &ShareCred) -> bool {
        !c.share.is_empty() && !self.d.token.expired() && (!self.user || !c.user.access_token.is_empty())
    }

    async fn reauth(&self, seen: u64) -> DriveResult<bool> {
        let (sgen, ugen) = (seen >> 32, seen & 0xffff_ffff);
        match Renew::from_u8(self.want.swap(0, Ordering::SeqCst)) {
            Some(Renew::ShareToken) => self.d.renew_share_token(sgen).await.map(|_| true),
            Some(r @ (Renew::Device | Renew::Token)) => {
                self.d.auth.renew(self.http, Some(r), ugen, self.device_seen.load(Ordering::SeqCst)).await
            }
            None if self.d.token.get().0.is_empty() || self.d.token.expired() => {
                self.d.renew_share_token(sgen).await.map(|_| true)
            }
            None => self.d.auth.creds.refresh(ugen).await.map(|r| r.adopted),
        }
    }
}

impl ShareDrive {
    /// A new share token unless one was obtained since generation `seen` (ref §8.2;
    /// no Authorization). A dead share latches the mount with the reason.
    pub async fn renew_share_token(&self, seen: u64) -> DriveResult<()> {
        let _flight = self.token.flight.lock().await;
        if let Some(m) = self.token.dead() {
            return Err(DriveError::AuthLost(m));
        }
        if self.token.generation() != seen {
            return Ok(());
        }
        let url = self.auth.ep.url(hosts::API, "/v2/share_link/get_share_token");
        let what = "get_share_token";
        let body = json!({"share_id": self.share_id, "share_pwd": self.opts.share_pwd});
        let r = self
            .http
            .send(
                what,
                true,
                |c| c.post(&url).header("X-Canary", SHARE_CANARY).json(&body),
                |r| error::verdict(Family::Share, what, r, true, &[Class::ShareDead]).0,
            )
            .await?;
        if !(200..300).contains(&r.status) {
            return Err(self.failed(what, &r));
        }
        let a: TokenAnswer = serde_json::from_slice(&r.body)
            .map_err(|_| DriveError::upstream("Aliyun get_share_token: unexpected answer"))?;
        if a.share_token.is_empty() {
            return Err(DriveError::upstream("Aliyun get_share_token answered without a token"));
        }
        let life = Duration::from_secs(if a.expires_in == 0 { 7200 } else { a.expires_in });
        let now = Instant::now();
        *self.token.current.write().unwrap() = Some((Arc::new(a.share_token), now, now + life));
        self.token.gen.fetch_add(1, Ordering::SeqCst);
        self.token.obtained.fetch_add(1, Ordering::SeqCst);
        tracing::debug!(mount = %self.mount, "share token obtained, valid {life:?}");
        Ok(())
    }

    /// The error of a failed share answer; a dead share latches.
    fn failed(&self, what: &str, r: &Response) -> DriveError {
        let e = ApiError::parse(r.status, &r.body);
        if error::classify(Family::Share, &e) == Class::ShareDead {
            let reason = dead_reason(&self.share_id, &e);
            tracing::error!(mount = %self.mount, "{reason}");
            *self.token.dead.lock().unwrap() = Some(reason.clone());
            return DriveError::AuthLost(reason);
        }
        error::error_of(Family::Share, what, r)
    }

    /// One share call (`POST api/path`), with the viewer's login when `user`.
    async fn share_call(&self, http: &Http, path: &str, what: &str, body: Value, user: bool) -> DriveResult<Value> {
        let url = self.auth.ep.url(hosts::API, path);
        let session = ShareCall { d: self, http, user, want: AtomicU8::new(0), device_seen: AtomicU64::new(0) };
        let r = http
            .call(
                Call::new(what, true),
                &session,
                |c, cred| {
                    let rb = c.post(&url).header("x-share-token", cred.share.as_str());
                    let rb = if user {
                        session.device_seen.store(self.auth.device_generation(), Ordering::SeqCst);
                        self.auth.sign_as(rb, &cred.user, SHARE_CANARY)
                    } else {
                        rb.header(reqwest::header::CONTENT_TYPE, "application/json").header("X-Canary", SHARE_CANARY)
                    };
                    rb.json(&body)
                },
                |r| session.judge(what, r),
            )
            .await?;
        if !(200..300).contains(&r.status) {
            return Err(self.failed(what, &r));
        }
        if r.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&r.body)
            .map_err(|_| DriveError::upstream(format!("Aliyun {what}: the answer is not JSON")))
    }

    /// Every child of a shared folder, all pages (ref §8.3).
    pub async fn list_id(&self, id: &str) -> DriveResult<Vec<Entry>> {
        let items = item::all_pages("share list", |marker| async move {
            let body = json!({
                "share_id": self.share_id, "parent_file_id": id, "limit": PAGE, "marker": marker,
                "order_by": self.opts.order_by, "order_direction": self.opts.order_direction,
            });
            self.share_call(&self.http, "/adrive/v3/file/list", "share list", body, false).await
        })
        .await?;
        if let Some(d) = items.iter().map(|i| &i.drive_id).find(|d| !d.is_empty()) {
            if self.sharer_drive.read().unwrap().is_empty() {
                *self.sharer_drive.write().unwrap() = d.clone();
            }
        }
        Ok(items.iter().filter(|i| i.visible()).map(FileItem::to_entry).collect())
    }

    /// A download link of a shared file, fetched with the viewer's login (ref §8.4).
    pub async fn download_link(&self, file_id: &str) -> DriveResult<Link> {
        if self.sharer_drive.read().unwrap().is_empty() {
            // The sharer's drive id comes with listings (AList remembers it, ref §8.3).
            self.list_id("root").await?;
        }
        let drive = self.sharer_drive.read().unwrap().clone();
        let body =
            json!({"drive_id": drive, "file_id": file_id, "share_id": self.share_id, "expire_sec": LINK_EXPIRE_SEC});
        let v = self
            .share_call(&self.links, "/v2/file/get_share_link_download_url", "get_share_link_download_url", body, true)
            .await?;
        let a: LinkAnswer =
            serde_json::from_value(v).unwrap_or(LinkAnswer { download_url: String::new(), url: String::new() });
        let url = if a.download_url.is_empty() { a.url } else { a.download_url };
        if url.is_empty() {
            return Err(DriveError::upstream("Aliyun share: no download URL for this file"));
        }
        let ours = SystemTime::now() + Duration::from_secs(LINK_EXPIRE_SEC);
        let expires = Some(common::url_expiry(&url).map_or(ours, |t| t.min(ours)));
        Ok(common::link(self.auth.ep.rewrite(&url), expires))
    }
}
