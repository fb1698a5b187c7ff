//! Upload (reference §5): `uploadinfo`, `initupload` 4.0 with `sig`/`token` inside an
//! ec115 envelope, rapid upload (status 2), the second-round range check (status 7), and
//! otherwise OSS (status 1): one PUT below the multipart threshold, sequential multipart
//! above it, with 115's callback creating the file only when the object is complete.
//!
//! The bytes come from a `ByteSource` (`common::source`): the spooled file of a PUT, or
//! another mount's file for a copy between mounts, which then reads only the range 115's
//! second check names unless 115 wants the body. The body is streamed, never held in
//! memory. A failed upload creates nothing in 115 (an unfinished multipart upload is
//! aborted), and the file it replaces is removed only after the new one exists.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::client::{self, fnum, fstr, get, hosts, Body};
use super::crypto::{ec115, sign};
use super::P115Drive;
use crate::drivers::http::{self, Verdict};
use crate::drivers::p115::common::oss;
use crate::drivers::source::{sha1_upper, Feed};
use crate::vfs::*;

/// The UA 115driver/OpenList send to OSS.
const OSS_UA: &str = "aliyun-sdk-android/2.9.1";
/// STS credentials live about an hour; 115driver renews them every 50 minutes.
const STS_RENEW: Duration = Duration::from_secs(50 * 60);

/// `proapi /app/uploadinfo` (§5.2).
#[derive(Debug, Clone)]
pub struct UploadInfo {
    pub user_id: u64,
    pub userkey: String,
    pub size_limit: Option<u64>,
    at: Instant,
}

/// The decrypted initupload answer.
#[derive(Debug, Clone)]
pub struct InitAnswer {
    pub status: i64,
    pub statuscode: i64,
    pub statusmsg: String,
    pub pickcode: String,
    pub bucket: String,
    pub object: String,
    pub callback: String,
    pub callback_var: String,
    pub sign_key: String,
    pub sign_check: String,
}

impl InitAnswer {
    pub fn from_json(v: &Value) -> InitAnswer {
        // `status` may be JSON false (115driver maps it to -1).
        let status = match get(v, "status") {
            Some(Value::Bool(false)) | None => -1,
            Some(x) => client::jnum(x).unwrap_or(-1),
        };
        let cb = get(v, "callback");
        let cbf = |k: &str| -> String {
            match cb.and_then(|c| get(c, k)) {
                Some(Value::String(s)) => s.clone(),
                Some(o @ Value::Object(_)) => o.to_string(),
                _ => String::new(),
            }
        };
        InitAnswer {
            status,
            statuscode: fnum(v, "statuscode").unwrap_or(0),
            statusmsg: fstr(v, "statusmsg").unwrap_or_default(),
            pickcode: fstr(v, "pickcode").or_else(|| fstr(v, "pick_code")).unwrap_or_default(),
            bucket: fstr(v, "bucket").unwrap_or_default(),
            object: fstr(v, "object").unwrap_or_default(),
            callback: cbf("callback"),
            callback_var: cbf("callback_var"),
            sign_key: fstr(v, "sign_key").unwrap_or_default(),
            sign_check: fstr(v, "sign_check").unwrap_or_default(),
        }
    }
}

pub async fn upload_info(d: &P115Drive) -> DriveResult<UploadInfo> {
    let mut g = d.upload_info.lock().await;
    if let Some(i) = g.as_ref() {
        if i.at.elapsed() < Duration::from_secs(3600) {
            return Ok(i.clone());
        }
    }
    let (v, _) = d
        .api
        .call("uploadinfo", reqwest::Method::GET, hosts::PROAPI, "/app/uploadinfo", Body::None, None, true)
        .await?;
    let user_id = fnum(&v, "user_id")
        .filter(|u| *u > 0)
        .map(|u| u as u64)
        .or_else(|| d.api.creds().ok().and_then(|c| c.cookie.user_id()))
        .ok_or_else(|| DriveError::upstream("115 uploadinfo: no user_id"))?;
    let userkey = fstr(&v, "userkey")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| DriveError::upstream("115 uploadinfo: no userkey"))?;
    if get(&v, "upload_allowed").and_then(Value::as_bool) == Some(false) {
        let why = fstr(&v, "upload_allowed_msg").unwrap_or_default();
        return Err(DriveError::Forbidden(format!("115 does not allow uploads for this account: {why}")));
    }
    let info = UploadInfo {
        user_id,
        userkey,
        size_limit: fnum(&v, "size_limit").filter(|s| *s > 0).map(|s| s as u64),
        at: Instant::now(),
    };
    *g = Some(info.clone());
    Ok(info)
}

/// One initupload round.
#[allow(clippy::too_many_arguments)]
async fn initupload(
    d: &P115Drive,
    info: &UploadInfo,
    name: &str,
    size: u64,
    fileid: &str,
    target: &str,
    second: Option<(&str, &str)>,
) -> DriveResult<InitAnswer> {
    let ver = d.api.app_ver().await;
    let t = client::now_secs();
    let ts = t.to_string();
    let (sk, sv) = second.unwrap_or(("", ""));
    let sig = sign::upload_sig(info.user_id, &info.userkey, fileid, target);
    let token = sign::upload_token(fileid, size, sk, sv, info.user_id, &ts, &ver);
    let size_s = size.to_string();
    let uid_s = info.user_id.to_string();
    // Sorted by key, like Go's url.Values.Encode (order is irrelevant to the server).
    let mut pairs: Vec<(&str, &str)> = vec![
        ("appid", "0"),
        ("appversion", &ver),
        ("fileid", fileid),
        ("filename", name),
        ("filesize", &size_s),
        ("sig", &sig),
        ("t", &ts),
        ("target", target),
        ("token", &token),
        ("topupload", "true"),
        ("userid", &uid_s),
    ];
    if second.is_some() {
        pairs.push(("sign_key", sk));
        pairs.push(("sign_val", sv));
        pairs.sort_by(|a, b| a.0.cmp(b.0));
    }
    let form = http::form(&pairs);
    let ec = ec115::ecdh_random(&d.ec_server);
    let k_ec = ec.k_ec(t as u32);
    let body = ec.encrypt_request(form.as_bytes());
    let creds = d.api.creds()?;
    let url = d.api.http.endpoints.url(hosts::UPLB, &format!("/4.0/initupload.php?k_ec={}", http::qs(&k_ec)));
    let ua = client::browser_ua(&ver);
    let r = d
        .api
        .http
        .send(
            "initupload",
            true,
            |c| {
                c.post(&url)
                    .header("User-Agent", &ua)
                    .header("Cookie", &creds.header)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(body.clone())
            },
            // "occasionally returns HTTP 401; just retry" (p115client).
            |r| if r.status == 401 { Verdict::Retry("HTTP 401".into()) } else { client::classify(r, true) },
        )
        .await?;
    let v: Value = match ec.decrypt_response(&r.body).ok().and_then(|p| serde_json::from_slice(&p).ok()) {
        Some(v) => v,
        // Not encrypted: a plain JSON error (not logged in…) or a page.
        None => {
            let v = client::parse_json(&r, "initupload")?;
            if let Some(e) = client::envelope_error(&v) {
                return Err(d.api.api_error(&e, "initupload"));
            }
            v
        }
    };
    if let Some(e) = client::envelope_error(&v).filter(|e| e.code != 701 && get(&v, "status").is_none()) {
        return Err(d.api.api_error(&e, "initupload"));
    }
    let a = InitAnswer::from_json(&v);
    match a.statuscode {
        0 | 701 => Ok(a),
        400 => Err(DriveError::upstream(format!("115 initupload: sig invalid (400) {}", a.statusmsg))),
        402 => Err(DriveError::upstream(format!(
            "115 initupload: userid/filesize/target/pickcode invalid (402) {}",
            a.statusmsg
        ))),
        c => Err(DriveError::upstream(format!("115 initupload: statuscode {c} {}", a.statusmsg))),
    }
}

/// Store `upload` as `parent/name`.
pub async fn put(d: &P115Drive, parent: &Entry, name: &str, upload: &Upload) -> DriveResult<Entry> {
    let src = crate::vfs::transfer::hashed_upload(upload);
    store(d, parent, name, &src, RapidMode::OrUpload)
        .await?
        .ok_or_else(|| DriveError::upstream("115 upload: no file was made"))
}

/// Store `upload` as `parent/name`: by hash when 115 knows the content, else (with
/// `RapidMode::OrUpload`) by sending the body; `None` when 115 does not know it and
/// `RapidMode::HashOnly` (nothing made).
pub async fn store(
    d: &P115Drive,
    parent: &Entry,
    name: &str,
    upload: &Hashed,
    mode: RapidMode,
) -> DriveResult<Option<Entry>> {
    crate::vfs::mount::check_name(name)?;
    let existing = d.named(parent.id(), name).await?;
    if existing.iter().any(|e| e.is_dir) {
        return Err(DriveError::IsADirectory);
    }
    let info = upload_info(d).await?;
    if let Some(limit) = info.size_limit {
        if upload.size > limit {
            return Err(DriveError::Forbidden(format!(
                "{} bytes is above 115's upload limit of {limit} bytes",
                upload.size
            )));
        }
    }
    let fileid = upload.sha1.to_ascii_uppercase();
    if fileid.len() != 40 {
        return Err(DriveError::InvalidInput("upload without a SHA-1".into()));
    }
    // preid (SHA-1 of the first 128 KiB) belongs to upload API 3.0; 4.0 does not send
    // it, so it is not read.
    tracing::debug!(file = name, size = upload.size, sha1 = %fileid, "115 upload");
    let target = format!("U_1_{}", parent.id());
    let mut second: Option<(String, String)> = None;
    let mut made: Option<Entry> = None;
    for _round in 0..3 {
        let a = initupload(
            d,
            &info,
            name,
            upload.size,
            &fileid,
            &target,
            second.as_ref().map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .await?;
        match a.status {
            2 => {
                tracing::info!(file = name, "115 rapid upload: content already known, nothing sent");
                made = Some(find_uploaded(d, parent, name, &a.pickcode, &fileid).await?);
                break;
            }
            7 => {
                let range = sign::parse_sign_check(&a.sign_check)
                    .map_err(|e| DriveError::upstream(format!("115 initupload: {e}")))?;
                if *range.end() >= upload.size || a.sign_key.is_empty() {
                    return Err(DriveError::upstream(format!(
                        "115 initupload: bad second-round check {:?}",
                        a.sign_check
                    )));
                }
                let val = sha1_upper(&*upload.body, *range.start(), range.end() - range.start() + 1).await?;
                second = Some((a.sign_key.clone(), val));
            }
            1 if mode == RapidMode::HashOnly => {
                tracing::debug!(file = name, "115 does not know the content");
                return Ok(None);
            }
            1 => {
                let cb = oss_upload(d, upload, &a).await?;
                made = Some(entry_from_callback(d, parent, name, &cb, &fileid).await?);
                break;
            }
            s => {
                return Err(DriveError::upstream(format!("115 initupload: status {s} {}", a.statusmsg)));
            }
        }
    }
    let new = made.ok_or_else(|| DriveError::upstream("115 initupload: still asking for checks after 3 rounds"))?;
    // The new file exists: now retire the one(s) it replaces, and take its name. Asked
    // again under the lock, so that concurrent uploads of one name leave one file.
    let _g = d.mutate.lock().await;
    drop(existing);
    let old: Vec<String> = d
        .named(parent.id(), name)
        .await?
        .into_iter()
        .filter(|e| e.id() != new.id() && !e.is_dir)
        .map(|e| e.id().to_string())
        .collect();
    if !old.is_empty() {
        d.delete_ids(&old).await?;
    }
    let new = if new.name() != name { d.settle_name(new.id(), new.name(), name).await? } else { new };
    d.own_add(parent.id(), &new);
    Ok(Some(new))
}

/// The file a rapid upload made: by pick code, else by name and SHA-1 in the folder.
async fn find_uploaded(d: &P115Drive, parent: &Entry, name: &str, pc: &str, fileid: &str) -> DriveResult<Entry> {
    if !pc.is_empty() {
        if let Ok(v) = d.api.get_info("pick_code", pc).await {
            if let Some(e) = client::entry_from_item(&v) {
                return Ok(e);
            }
        }
    }
    let sha = fileid.to_ascii_lowercase();
    let list = d.list(parent).await?;
    list.iter()
        .filter(|e| !e.is_dir && e.hashes().sha1.as_deref() == Some(sha.as_str()))
        .find(|e| (!pc.is_empty() && e.extra() == Some(pc)) || e.name() == name)
        .cloned()
        .ok_or_else(|| DriveError::upstream("115 upload: done, but the file is not in the folder"))
}

async fn entry_from_callback(
    d: &P115Drive,
    parent: &Entry,
    name: &str,
    cb: &Value,
    fileid: &str,
) -> DriveResult<Entry> {
    if let Some(e) = client::envelope_error(cb) {
        return Err(d.api.api_error(&e, "upload callback"));
    }
    let data = get(cb, "data").cloned().unwrap_or(Value::Null);
    if let Some(id) = client::fid(&data, "file_id") {
        if let Ok(e) = d.info(&id).await {
            return Ok(e);
        }
    }
    let pc = fstr(&data, "pick_code").unwrap_or_default();
    find_uploaded(d, parent, name, &pc, fileid).await
}

// ---------------------------------------------------------------------------------
// OSS

/// STS credentials from `uplb /3.0/gettoken.php` (§5.5), and when they were issued.
async fn sts(d: &P115Drive) -> DriveResult<(oss::Credentials, Instant)> {
    let (v, _) =
        d.api.call("gettoken", reqwest::Method::GET, hosts::UPLB, "/3.0/gettoken.php", Body::None, None, true).await?;
    let code = get(&v, "StatusCode").and_then(client::jstr).unwrap_or_default();
    if code != "200" {
        return Err(DriveError::upstream(format!("115 gettoken: StatusCode {code:?}")));
    }
    let f = |k: &str| fstr(&v, k).filter(|s| !s.is_empty());
    match (f("AccessKeyId"), f("AccessKeySecret"), f("SecurityToken")) {
        (Some(id), Some(secret), Some(token)) => Ok((
            oss::Credentials { access_key_id: id, access_key_secret: secret, security_token: Some(token) },
            Instant::now(),
        )),
        _ => Err(DriveError::upstream("115 gettoken: incomplete credentials")),
    }
}

/// The base URL of a bucket: virtual-hosted `https://<bucket>.<region>` unless the bucket
/// host or the region host has an override (the latter: path style, `<base>/<bucket>`).
pub fn oss_base(eps: &http::Endpoints, bucket: &str) -> String {
    let bucket_host = format!("{bucket}.{}", hosts::OSS);
    if let Some(base) = eps.get(&bucket_host) {
        return base.to_string();
    }
    if let Some(base) = eps.get(hosts::OSS) {
        return format!("{base}/{bucket}");
    }
    format!("https://{bucket_host}")
}

/// How often one OSS request is tried (5xx, 429, a broken connection) before giving up.
const OSS_TRIES: u32 = 3;

/// One OSS bucket as the shared client sees it, with 115's OSS User-Agent.
fn bucket<'a>(d: &'a P115Drive, creds: &'a oss::Credentials, a: &InitAnswer) -> oss::Bucket<'a> {
    oss::Bucket {
        http: &d.oss.client,
        creds,
        base_url: oss_base(&d.oss.endpoints, &a.bucket),
        bucket: a.bucket.clone(),
        user_agent: Some(OSS_UA.to_string()),
    }
}

/// Run `op` again for what OSS may answer differently next time (5xx, 429, a broken
/// connection, expired credentials); STS credentials are renewed when old or refused.
async fn with_retries<T, F, Fut>(
    d: &P115Drive,
    creds: &mut (oss::Credentials, Instant),
    what: &str,
    mut op: F,
) -> DriveResult<T>
where
    F: FnMut(oss::Credentials) -> Fut,
    Fut: std::future::Future<Output = DriveResult<T>>,
{
    let mut tries = 0;
    loop {
        if creds.1.elapsed() > STS_RENEW {
            *creds = sts(d).await?;
        }
        tries += 1;
        match op(creds.0.clone()).await {
            Ok(v) => return Ok(v),
            Err(e) if tries < OSS_TRIES && e.hint() == crate::vfs::Hint::CredentialsExpired => *creds = sts(d).await?,
            Err(e) if tries < OSS_TRIES && oss::retryable(&e) => {
                tracing::info!("115 OSS {what}: {}; trying again", http::redact(&e.to_string()));
                tokio::time::sleep(Duration::from_millis(500 << tries)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The OSS leg (status 1), through the shared OSS client (`drivers::oss`): one PUT below
/// the multipart threshold, sequential multipart above it; returns 115's callback JSON.
async fn oss_upload(d: &P115Drive, upload: &Hashed, a: &InitAnswer) -> DriveResult<Value> {
    if a.bucket.is_empty() || a.object.is_empty() || a.callback.is_empty() {
        return Err(DriveError::upstream("115 initupload: status 1 without bucket/object/callback"));
    }
    let cb = oss::Callback { callback: a.callback.clone(), callback_var: a.callback_var.clone() };
    let feed = Feed::new(std::sync::Arc::clone(&upload.body));
    let (cb, object, size, md5, feed) = (&cb, a.object.as_str(), upload.size, upload.md5.as_deref(), &feed);
    let mut creds = sts(d).await?;
    if size < d.multipart_threshold {
        let answer = with_retries(d, &mut creds, "put", |c| async move {
            bucket(d, &c, a).put_object(object, feed.body(0, size).await?, size, md5, Some(cb)).await
        })
        .await?;
        return callback_json(answer.status, &answer.body);
    }
    let upload_id =
        with_retries(d, &mut creds, "initiate", |c| async move { bucket(d, &c, a).initiate(object).await }).await?;
    let upload_id = upload_id.as_str();
    let result = async {
        let part = part_size(size);
        let mut etags: Vec<(u32, String)> = vec![];
        let (mut n, mut off) = (1u32, 0u64);
        while off < size {
            let len = part.min(size - off);
            let etag = with_retries(d, &mut creds, "upload part", |c| async move {
                bucket(d, &c, a).upload_part(object, upload_id, n, feed.body(off, len).await?, len).await
            })
            .await?;
            etags.push((n, etag));
            off += len;
            n += 1;
        }
        let etags = &etags;
        with_retries(d, &mut creds, "complete", |c| async move {
            bucket(d, &c, a).complete(object, upload_id, etags, Some(cb)).await
        })
        .await
    }
    .await;
    match result {
        Ok(answer) => callback_json(answer.status, &answer.body),
        Err(e) => {
            // Leave nothing behind: abort the unfinished upload (best effort).
            if let Ok((c, _)) = sts(d).await {
                let _ = bucket(d, &c, a).abort(object, upload_id).await;
            }
            Err(e)
        }
    }
}

fn callback_json(status: u16, body: &[u8]) -> DriveResult<Value> {
    serde_json::from_slice(body)
        .map_err(|_| DriveError::upstream(format!("115 upload: OSS answered {status} without 115's callback result")))
}

/// OpenList/115driver part sizing (§5.5): below i GiB use i×1000 parts (i = 1..9),
/// above 9 GiB 10,000 parts; parts are at least 100 KiB.
pub fn part_size(size: u64) -> u64 {
    const GIB: u64 = 1 << 30;
    let parts = (1..=9u64).find(|i| size < i * GIB).map(|i| i * 1000).unwrap_or(10_000);
    size.div_ceil(parts).max(100 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes() {
        assert_eq!(part_size(20 << 20), 100 * 1024);
        assert_eq!(part_size(1 << 30), (1u64 << 30).div_ceil(2000));
        let p = part_size(100u64 << 30);
        assert!((100u64 << 30).div_ceil(p) <= 10_000);
    }

    #[test]
    fn oss_bases() {
        let none = http::Endpoints::default();
        assert_eq!(oss_base(&none, "fhnfile"), "https://fhnfile.oss-cn-shenzhen.aliyuncs.com");
        let mut m = std::collections::BTreeMap::new();
        m.insert(hosts::OSS.to_string(), "http://127.0.0.1:1/oss".to_string());
        let e = http::Endpoints::new(m).unwrap();
        assert_eq!(oss_base(&e, "fhnfile"), "http://127.0.0.1:1/oss/fhnfile");
    }

    #[test]
    fn init_answer_quirks() {
        let v: Value = serde_json::from_str(
            r#"{"request":"","version":"4.1","status":1,"statuscode":0,"statusmsg":"",
 "pickcode":"a87dby98esb5xhgqn","target":"U_1_0","fileid":0,"fileinfo":"",
 "bucket":"fhnfile","object":"u1/abc",
 "callback":{"callback":"{\"callbackUrl\":\"http://uplb.115.com/3.0/completeupload.php\"}",
             "callback_var":"{\"x:pick_code\":\"a87dby98esb5xhgqn\"}"}}"#,
        )
        .unwrap();
        let a = InitAnswer::from_json(&v);
        assert_eq!((a.status, a.bucket.as_str(), a.object.as_str()), (1, "fhnfile", "u1/abc"));
        assert!(a.callback.starts_with("{\"callbackUrl\""));
        assert_eq!(InitAnswer::from_json(&serde_json::json!({"status":false})).status, -1);
        assert_eq!(
            InitAnswer::from_json(
                &serde_json::json!({"status":"7","statuscode":701,"sign_key":"k","sign_check":"0-9"})
            )
            .status,
            7
        );
    }
}
