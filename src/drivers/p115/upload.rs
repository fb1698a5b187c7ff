//! Upload (reference §5): `uploadinfo`, `initupload` 4.0 with `sig`/`token` inside an
//! ec115 envelope, rapid upload (status 2), the second-round range check (status 7), and
//! otherwise OSS (status 1): one PUT below the multipart threshold, sequential multipart
//! above it, with 115's callback creating the file only when the object is complete.
//!
//! The body is always streamed from the spooled file, never held in memory. A failed
//! upload creates nothing in 115 (an unfinished multipart upload is aborted), and the
//! file it replaces is removed only after the new one exists.

use std::io::SeekFrom;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::api::{self, fnum, fstr, get, hosts, Body};
use super::crypto::{ec115, sign};
use super::P115Drive;
use crate::drivers::http::{self, Verdict};
use crate::vfs::*;

const B64: base64::engine::general_purpose::GeneralPurpose = base64::engine::general_purpose::STANDARD;
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
            Some(x) => api::jnum(x).unwrap_or(-1),
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
        .ok_or_else(|| DriveError::Upstream("115 uploadinfo: no user_id".into()))?;
    let userkey = fstr(&v, "userkey")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| DriveError::Upstream("115 uploadinfo: no userkey".into()))?;
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

/// Uppercase SHA-1 of `len` bytes of the file from `start`, read in bounded memory.
pub async fn sha1_range(path: &std::path::Path, start: u64, len: u64) -> std::io::Result<String> {
    let mut f = tokio::fs::File::open(path).await?;
    f.seek(SeekFrom::Start(start)).await?;
    let mut h = Sha1::new();
    let mut left = len;
    let mut buf = vec![0u8; 256 * 1024];
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = f.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file shorter than expected"));
        }
        h.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hex::encode_upper(h.finalize()))
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
    let t = api::now_secs();
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
    let ua = api::browser_ua(&ver);
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
            |r| if r.status == 401 { Verdict::Retry("HTTP 401".into()) } else { api::classify(r, true) },
        )
        .await?;
    let v: Value = match ec.decrypt_response(&r.body).ok().and_then(|p| serde_json::from_slice(&p).ok()) {
        Some(v) => v,
        // Not encrypted: a plain JSON error (not logged in…) or a page.
        None => {
            let v = api::parse_json(&r, "initupload")?;
            if let Some(e) = api::envelope_error(&v) {
                return Err(d.api.api_error(&e, "initupload"));
            }
            v
        }
    };
    if let Some(e) = api::envelope_error(&v).filter(|e| e.code != 701 && get(&v, "status").is_none()) {
        return Err(d.api.api_error(&e, "initupload"));
    }
    let a = InitAnswer::from_json(&v);
    match a.statuscode {
        0 | 701 => Ok(a),
        400 => Err(DriveError::Upstream(format!("115 initupload: sig invalid (400) {}", a.statusmsg))),
        402 => Err(DriveError::Upstream(format!(
            "115 initupload: userid/filesize/target/pickcode invalid (402) {}",
            a.statusmsg
        ))),
        c => Err(DriveError::Upstream(format!("115 initupload: statuscode {c} {}", a.statusmsg))),
    }
}

/// Store `upload` as `parent/name`.
pub async fn put(d: &P115Drive, parent: &Entry, name: &str, upload: &Upload) -> DriveResult<Entry> {
    crate::vfs::mount::check_name(name)?;
    let existing = d.named(&parent.id, name).await?;
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
    // preid (SHA-1 of the first 128 KiB) belongs to upload API 3.0; 4.0 does not send it.
    let preid = sha1_range(&upload.path, 0, upload.size.min(sign::PREID_LEN as u64)).await?;
    tracing::debug!(file = name, size = upload.size, sha1 = %fileid, preid = %preid, "115 upload");
    let target = format!("U_1_{}", parent.id);
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
                    .map_err(|e| DriveError::Upstream(format!("115 initupload: {e}")))?;
                if *range.end() >= upload.size || a.sign_key.is_empty() {
                    return Err(DriveError::Upstream(format!(
                        "115 initupload: bad second-round check {:?}",
                        a.sign_check
                    )));
                }
                let val = sha1_range(&upload.path, *range.start(), range.end() - range.start() + 1).await?;
                second = Some((a.sign_key.clone(), val));
            }
            1 => {
                let cb = oss_upload(d, upload, &a).await?;
                made = Some(entry_from_callback(d, parent, name, &cb, &fileid).await?);
                break;
            }
            s => {
                return Err(DriveError::Upstream(format!("115 initupload: status {s} {}", a.statusmsg)));
            }
        }
    }
    let new =
        made.ok_or_else(|| DriveError::Upstream("115 initupload: still asking for checks after 3 rounds".into()))?;
    // The new file exists: now retire the one(s) it replaces, and take its name. Asked
    // again under the lock, so that concurrent uploads of one name leave one file.
    let _g = d.mutate.lock().await;
    drop(existing);
    let old: Vec<String> =
        d.named(&parent.id, name).await?.into_iter().filter(|e| e.id != new.id && !e.is_dir).map(|e| e.id).collect();
    if !old.is_empty() {
        d.delete_ids(&old).await?;
    }
    let new = if new.name != name { d.settle_name(&new.id, &new.name, name).await? } else { new };
    d.own_add(&parent.id, &new);
    Ok(new)
}

/// The file a rapid upload made: by pick code, else by name and SHA-1 in the folder.
async fn find_uploaded(d: &P115Drive, parent: &Entry, name: &str, pc: &str, fileid: &str) -> DriveResult<Entry> {
    if !pc.is_empty() {
        if let Ok(v) = d.api.get_info("pick_code", pc).await {
            if let Some(e) = api::entry_from_item(&v) {
                return Ok(e);
            }
        }
    }
    let sha = fileid.to_ascii_lowercase();
    let list = d.list(parent).await?;
    list.iter()
        .filter(|e| !e.is_dir && e.hashes.sha1.as_deref() == Some(sha.as_str()))
        .find(|e| (!pc.is_empty() && e.extra.as_deref() == Some(pc)) || e.name == name)
        .cloned()
        .ok_or_else(|| DriveError::Upstream("115 upload: done, but the file is not in the folder".into()))
}

async fn entry_from_callback(
    d: &P115Drive,
    parent: &Entry,
    name: &str,
    cb: &Value,
    fileid: &str,
) -> DriveResult<Entry> {
    if let Some(e) = api::envelope_error(cb) {
        return Err(d.api.api_error(&e, "upload callback"));
    }
    let data = get(cb, "data").cloned().unwrap_or(Value::Null);
    if let Some(id) = api::fid(&data, "file_id") {
        if let Ok(e) = d.info(&id).await {
            return Ok(e);
        }
    }
    let pc = fstr(&data, "pick_code").unwrap_or_default();
    find_uploaded(d, parent, name, &pc, fileid).await
}

// ---------------------------------------------------------------------------------
// OSS

/// STS credentials from `uplb /3.0/gettoken.php` (§5.5).
#[derive(Clone)]
struct Sts {
    id: String,
    secret: String,
    token: String,
    at: Instant,
}

async fn sts(d: &P115Drive) -> DriveResult<Sts> {
    let (v, _) =
        d.api.call("gettoken", reqwest::Method::GET, hosts::UPLB, "/3.0/gettoken.php", Body::None, None, true).await?;
    let code = get(&v, "StatusCode").and_then(api::jstr).unwrap_or_default();
    if code != "200" {
        return Err(DriveError::Upstream(format!("115 gettoken: StatusCode {code:?}")));
    }
    let f = |k: &str| fstr(&v, k).filter(|s| !s.is_empty());
    match (f("AccessKeyId"), f("AccessKeySecret"), f("SecurityToken")) {
        (Some(id), Some(secret), Some(token)) => Ok(Sts { id, secret, token, at: Instant::now() }),
        _ => Err(DriveError::Upstream("115 gettoken: incomplete credentials".into())),
    }
}

/// Where an object lives: virtual-hosted `https://<bucket>.<region>/<object>` unless the
/// bucket host or the region host has an override (the latter: path style).
pub fn oss_url(eps: &http::Endpoints, bucket: &str, object: &str) -> String {
    let key: String = object
        .split('/')
        .map(|s| percent_encoding::utf8_percent_encode(s, OSS_SEG).to_string())
        .collect::<Vec<_>>()
        .join("/");
    let bucket_host = format!("{bucket}.{}", hosts::OSS);
    if let Some(base) = eps.get(&bucket_host) {
        return format!("{base}/{key}");
    }
    if let Some(base) = eps.get(hosts::OSS) {
        return format!("{base}/{bucket}/{key}");
    }
    format!("https://{bucket_host}/{key}")
}

const OSS_SEG: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Aliyun OSS V1 signature (§5.5): `base64(HMAC-SHA1(secret, VERB\nMD5\nType\nDate\n
/// canonical x-oss headers + /bucket/object?sub-resources))`.
pub fn oss_signature(
    secret: &str,
    verb: &str,
    md5: &str,
    ctype: &str,
    date: &str,
    oss_headers: &[(String, String)],
    resource: &str,
) -> String {
    let mut hs: Vec<(String, String)> =
        oss_headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string())).collect();
    hs.sort();
    let mut s = format!("{verb}\n{md5}\n{ctype}\n{date}\n");
    for (k, v) in hs {
        s.push_str(&format!("{k}:{v}\n"));
    }
    s.push_str(resource);
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(s.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

/// The canonical resource: `/bucket/object` plus sorted sub-resources.
pub fn oss_resource(bucket: &str, object: &str, sub: &[(&str, Option<&str>)]) -> String {
    let mut r = format!("/{bucket}/{object}");
    let mut s: Vec<&(&str, Option<&str>)> = sub.iter().collect();
    s.sort_by(|a, b| a.0.cmp(b.0));
    for (i, (k, v)) in s.iter().enumerate() {
        r.push(if i == 0 { '?' } else { '&' });
        r.push_str(k);
        if let Some(v) = v {
            r.push('=');
            r.push_str(v);
        }
    }
    r
}

struct OssReq<'a> {
    verb: reqwest::Method,
    query: String,
    sub: Vec<(&'a str, Option<String>)>,
    ctype: &'a str,
    md5: String,
    callback: bool,
}

fn oss_request(c: &reqwest::Client, sts: &Sts, url: &str, a: &InitAnswer, q: &OssReq<'_>) -> reqwest::RequestBuilder {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let mut oss_h: Vec<(String, String)> = vec![("x-oss-security-token".into(), sts.token.clone())];
    if q.callback {
        oss_h.push(("x-oss-callback".into(), B64.encode(a.callback.as_bytes())));
        oss_h.push(("x-oss-callback-var".into(), B64.encode(a.callback_var.as_bytes())));
    }
    let sub: Vec<(&str, Option<&str>)> = q.sub.iter().map(|(k, v)| (*k, v.as_deref())).collect();
    let resource = oss_resource(&a.bucket, &a.object, &sub);
    let sig = oss_signature(&sts.secret, q.verb.as_str(), &q.md5, q.ctype, &date, &oss_h, &resource);
    let full = if q.query.is_empty() { url.to_string() } else { format!("{url}?{}", q.query) };
    let mut rb = c
        .request(q.verb.clone(), full)
        .header("Date", date)
        .header("Authorization", format!("OSS {}:{sig}", sts.id))
        .header("User-Agent", OSS_UA);
    if !q.ctype.is_empty() {
        rb = rb.header("Content-Type", q.ctype);
    }
    if !q.md5.is_empty() {
        rb = rb.header("Content-MD5", &q.md5);
    }
    for (k, v) in oss_h {
        rb = rb.header(k, v);
    }
    rb
}

/// A streaming body of `len` bytes of the file from `start`.
fn file_body(path: &std::path::Path, start: u64, len: u64) -> std::io::Result<reqwest::Body> {
    use std::io::Seek;
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(start))?;
    let f = tokio::fs::File::from_std(f).take(len);
    Ok(reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024)))
}

fn oss_error(what: &str, r: &http::Response) -> DriveError {
    let t = r.text();
    let tag = |n: &str| {
        t.split(&format!("<{n}>")).nth(1).and_then(|x| x.split(&format!("</{n}>")).next()).unwrap_or("").to_string()
    };
    let (code, msg) = (tag("Code"), tag("Message"));
    if r.status == 403 && code.contains("Expired") {
        return DriveError::Upstream(format!("115 OSS {what}: credentials expired"));
    }
    DriveError::Upstream(format!("115 OSS {what}: HTTP {} {code} {}", r.status, http::redact(&msg)))
}

fn oss_verdict(r: &http::Response) -> Verdict {
    match r.status {
        500 | 502 | 503 | 504 => Verdict::Retry(format!("OSS HTTP {}", r.status)),
        429 => Verdict::Throttled("OSS 429".into()),
        _ => Verdict::Done,
    }
}

/// The OSS leg (status 1): returns 115's callback JSON.
async fn oss_upload(d: &P115Drive, upload: &Upload, a: &InitAnswer) -> DriveResult<Value> {
    if a.bucket.is_empty() || a.object.is_empty() || a.callback.is_empty() {
        return Err(DriveError::Upstream("115 initupload: status 1 without bucket/object/callback".into()));
    }
    let mut creds = sts(d).await?;
    let url = oss_url(&d.oss.endpoints, &a.bucket, &a.object);
    if upload.size < d.multipart_threshold {
        let md5 = hex::decode(&upload.md5).map(|b| B64.encode(b)).unwrap_or_default();
        let q = OssReq {
            verb: reqwest::Method::PUT,
            query: String::new(),
            sub: vec![],
            ctype: "application/octet-stream",
            md5,
            callback: true,
        };
        let path = upload.path.clone();
        let size = upload.size;
        let r = d
            .oss
            .send(
                "put",
                true,
                |c| {
                    let rb = oss_request(c, &creds, &url, a, &q).header("Content-Length", size);
                    match file_body(&path, 0, size) {
                        Ok(b) => rb.body(b),
                        // Surfaces as a body error on send.
                        Err(e) => rb.body(reqwest::Body::wrap_stream(futures_util::stream::once(async move {
                            Err::<bytes::Bytes, _>(e)
                        }))),
                    }
                },
                oss_verdict,
            )
            .await?;
        if !(200..300).contains(&r.status) || r.status == 203 {
            return Err(oss_error("put", &r));
        }
        return callback_json(&r);
    }
    // Multipart, sequential (§5.5).
    let init = OssReq {
        verb: reqwest::Method::POST,
        query: "uploads&sequential=1".into(),
        sub: vec![("uploads", None), ("sequential", Some("1".into()))],
        ctype: "",
        md5: String::new(),
        callback: false,
    };
    let r = d.oss.send("initiate multipart", true, |c| oss_request(c, &creds, &url, a, &init), oss_verdict).await?;
    if !(200..300).contains(&r.status) {
        return Err(oss_error("initiate multipart", &r));
    }
    let text = r.text();
    let upload_id = text
        .split("<UploadId>")
        .nth(1)
        .and_then(|x| x.split("</UploadId>").next())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| DriveError::Upstream("115 OSS: no UploadId".into()))?
        .to_string();
    let result = async {
        let part = part_size(upload.size);
        let mut etags = vec![];
        let mut n = 1u32;
        let mut off = 0u64;
        while off < upload.size {
            if creds.at.elapsed() > STS_RENEW {
                creds = sts(d).await?;
            }
            let len = part.min(upload.size - off);
            let q = OssReq {
                verb: reqwest::Method::PUT,
                query: format!("partNumber={n}&uploadId={}", http::qs(&upload_id)),
                sub: vec![("partNumber", Some(n.to_string())), ("uploadId", Some(upload_id.clone()))],
                ctype: "application/octet-stream",
                md5: String::new(),
                callback: false,
            };
            let path = upload.path.clone();
            let r = d
                .oss
                .send(
                    "upload part",
                    true,
                    |c| {
                        let rb = oss_request(c, &creds, &url, a, &q).header("Content-Length", len);
                        match file_body(&path, off, len) {
                            Ok(b) => rb.body(b),
                            Err(e) => rb.body(reqwest::Body::wrap_stream(futures_util::stream::once(async move {
                                Err::<bytes::Bytes, _>(e)
                            }))),
                        }
                    },
                    oss_verdict,
                )
                .await?;
            if !(200..300).contains(&r.status) {
                return Err(oss_error("upload part", &r));
            }
            let etag = r
                .headers
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(|s| s.trim_matches('"').to_string())
                .ok_or_else(|| DriveError::Upstream("115 OSS: part without ETag".into()))?;
            etags.push((n, etag));
            off += len;
            n += 1;
        }
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (n, e) in &etags {
            xml.push_str(&format!("<Part><PartNumber>{n}</PartNumber><ETag>\"{e}\"</ETag></Part>"));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let q = OssReq {
            verb: reqwest::Method::POST,
            query: format!("uploadId={}", http::qs(&upload_id)),
            sub: vec![("uploadId", Some(upload_id.clone()))],
            ctype: "text/xml",
            md5: String::new(),
            callback: true,
        };
        let r = d
            .oss
            .send("complete multipart", true, |c| oss_request(c, &creds, &url, a, &q).body(xml.clone()), oss_verdict)
            .await?;
        if !(200..300).contains(&r.status) || r.status == 203 {
            return Err(oss_error("complete multipart", &r));
        }
        callback_json(&r)
    }
    .await;
    if result.is_err() {
        // Leave nothing behind: abort the unfinished upload (best effort).
        let q = OssReq {
            verb: reqwest::Method::DELETE,
            query: format!("uploadId={}", http::qs(&upload_id)),
            sub: vec![("uploadId", Some(upload_id.clone()))],
            ctype: "",
            md5: String::new(),
            callback: false,
        };
        if let Ok(c) = sts(d).await {
            let _ = oss_request(&d.oss.client, &c, &url, a, &q).send().await;
        }
    }
    result
}

fn callback_json(r: &http::Response) -> DriveResult<Value> {
    serde_json::from_slice(&r.body).map_err(|_| {
        DriveError::Upstream(format!("115 upload: OSS answered {} without 115's callback result", r.status))
    })
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
    fn oss_resource_sorts_subresources() {
        assert_eq!(
            oss_resource("b", "o/k", &[("uploads", None), ("sequential", Some("1"))]),
            "/b/o/k?sequential=1&uploads"
        );
        assert_eq!(
            oss_resource("b", "o", &[("uploadId", Some("U")), ("partNumber", Some("2"))]),
            "/b/o?partNumber=2&uploadId=U"
        );
    }

    #[test]
    fn oss_signature_known_answer() {
        // The example of Aliyun's OSS V1 signature documentation.
        let sig = oss_signature(
            "OtxrzxIsfpFjA7SwPzILwy8Bw21TLhquhboDYROV",
            "PUT",
            "ODBGOERFMDMzQTczRUY3NUE3NzA5QzdFNUYzMDQxNEM=",
            "text/html",
            "Thu, 17 Nov 2005 18:49:58 GMT",
            &[("X-OSS-Meta-Author".into(), "foo@bar.com".into()), ("X-OSS-Magic".into(), "abracadabra".into())],
            "/oss-example/nelson",
        );
        assert_eq!(sig, "26NBxoKdsyly4EDv6inkoDft/yA=");
    }

    #[test]
    fn oss_urls() {
        let none = http::Endpoints::default();
        assert_eq!(oss_url(&none, "fhnfile", "u1/a b"), "https://fhnfile.oss-cn-shenzhen.aliyuncs.com/u1/a%20b");
        let mut m = std::collections::BTreeMap::new();
        m.insert(hosts::OSS.to_string(), "http://127.0.0.1:1/oss".to_string());
        let e = http::Endpoints::new(m).unwrap();
        assert_eq!(oss_url(&e, "fhnfile", "u1/x"), "http://127.0.0.1:1/oss/fhnfile/u1/x");
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
