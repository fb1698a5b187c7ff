//! Upload (ref §7): `upload/init` with fileid + preid, the second check (sign_key /
//! sign_val over a byte range), rapid upload without sending the body, and otherwise OSS
//! (single PUT or sequential multipart) with 115's callback; an interrupted multipart
//! upload resumes through `upload/resume` + OSS ListParts.
//!
//! The bytes come from a `ByteSource` (`common::source`): the spooled file of a PUT, or
//! another mount's file for a copy between mounts, which then reads only the proofs
//! (preid, the second check's range) unless 115 wants the body. Bodies are streamed.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::client::{value_i64, value_string, Req};
use super::{Open115, PRE_HASH_LEN};
use crate::drivers::p115::common::oss::{self, Bucket, Callback, Credentials};
use crate::drivers::source::{sha1_upper, Feed};
use crate::vfs::{DriveError, DriveResult, Entry, Hashed, Hashes, RapidMode};

/// STS credentials from `upload/get_token` and until when to use them.
#[derive(Clone)]
pub struct Sts {
    pub creds: Credentials,
    pub endpoint: String,
    pub use_until: SystemTime,
}

/// A multipart upload that can be continued.
#[derive(Clone, Debug)]
pub struct Resumable {
    pub upload_id: String,
    pub object: String,
    pub pick_code: String,
    pub target: String,
    pub part_size: u64,
}

const PART_TRIES: u32 = 3;

/// `"a-b"` (inclusive) → (start, len).
fn parse_sign_check(s: &str, size: u64) -> Option<(u64, u64)> {
    let (a, b) = s.trim().split_once('-')?;
    let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b && b < size.max(1)).then(|| (a, b - a + 1))
}

/// Unix seconds of an RFC 3339 UTC time like `2026-01-01T01:00:00Z`.
fn parse_rfc3339(s: &str) -> Option<u64> {
    let s = s.trim();
    let (date, time) = s.split_once(['T', ' '])?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
    let time = time.trim_end_matches('Z');
    let time = time.split(['+', '.']).next()?;
    let mut t = time.split(':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next().flatten().unwrap_or(0));
    // days from civil (Howard Hinnant)
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + hh * 3600 + mm * 60 + ss;
    (secs >= 0).then_some(secs as u64)
}

fn callback_of(data: &Value) -> Option<Callback> {
    let cb = data.get("callback")?;
    let callback = value_string(cb.get("callback")?);
    let callback_var = value_string(cb.get("callback_var").unwrap_or(&Value::Null));
    (!callback.is_empty()).then_some(Callback { callback, callback_var })
}

impl Open115 {
    fn uploaded_entry(&self, id: String, pick_code: String, name: &str, up: &Hashed) -> Entry {
        let now = SystemTime::now();
        Entry::file(id, name, up.size, now)
            .with_created(Some(now))
            .with_hashes(Hashes { sha1: Some(up.sha1.to_ascii_lowercase()), md5: None })
            .with_extra((!pick_code.is_empty()).then_some(pick_code))
    }

    /// STS credentials for OSS, cached until 5 minutes before they expire.
    async fn sts(&self, force: bool) -> DriveResult<Sts> {
        let mut g = self.sts.lock().await;
        if let Some(s) = g.as_ref() {
            if !force && SystemTime::now() < s.use_until {
                return Ok(s.clone());
            }
        }
        let env = self.call(Req::get("/open/upload/get_token", vec![])).await?;
        // The docs say an array of objects, real answers are an object (ref §1.4).
        let d = match &env.data {
            Value::Array(a) => a.first().cloned().unwrap_or(Value::Null),
            v => v.clone(),
        };
        let s = |k: &str| d.get(k).map(value_string).unwrap_or_default();
        let secret = match s("AccessKeySecret") {
            x if x.is_empty() => s("AccessKeySecrett"),
            x => x,
        };
        let exp = match s("Expiration") {
            x if x.is_empty() => s("expiration"),
            x => x,
        };
        let endpoint = s("endpoint");
        if s("AccessKeyId").is_empty() || secret.is_empty() || endpoint.is_empty() {
            return Err(DriveError::upstream("115 Open upload/get_token answered without credentials"));
        }
        let use_until = match parse_rfc3339(&exp) {
            Some(t) => UNIX_EPOCH + Duration::from_secs(t.saturating_sub(300)),
            None => SystemTime::now() + Duration::from_secs(600),
        };
        let token = s("SecurityToken");
        let sts = Sts {
            creds: Credentials {
                access_key_id: s("AccessKeyId"),
                access_key_secret: secret,
                security_token: (!token.is_empty()).then_some(token),
            },
            endpoint,
            use_until,
        };
        *g = Some(sts.clone());
        Ok(sts)
    }

    fn bucket_for<'a>(&'a self, sts: &'a Sts, bucket: &str) -> Bucket<'a> {
        let (scheme, host) = match sts.endpoint.split_once("://") {
            Some((s, h)) => (s, h),
            None => ("https", sts.endpoint.as_str()),
        };
        let host = host.trim_end_matches('/');
        let vhost = format!("{bucket}.{host}");
        let base = if self.api.ep.map().contains_key(&vhost.to_ascii_lowercase()) {
            self.api.ep.base(&vhost)
        } else {
            format!("{scheme}://{vhost}")
        };
        Bucket {
            http: self.api.http(),
            creds: &sts.creds,
            base_url: base,
            bucket: bucket.to_string(),
            user_agent: self.ua().map(|s| s.to_string()),
        }
    }

    fn part_size(&self, size: u64) -> u64 {
        self.options().part_size.unwrap_or_else(|| oss::part_size_for(size))
    }

    /// Store `up` as `parent/name` (a new entry; replacing is the caller's business): by
    /// hash when 115 knows the content, else (with `RapidMode::OrUpload`) by sending the
    /// body; `None` when 115 does not know it and `RapidMode::HashOnly` (nothing made).
    pub(crate) async fn upload(
        &self,
        parent: &Entry,
        name: &str,
        up: &Hashed,
        mode: RapidMode,
    ) -> DriveResult<Option<Entry>> {
        let sha1 = up.sha1.to_ascii_uppercase();
        let target = format!("U_1_{}", parent.id());
        let key = format!("{sha1}:{}:{target}:{name}", up.size);
        if let Some(r) = self.resumable.get(&key).map(|r| r.clone()).filter(|_| mode == RapidMode::OrUpload) {
            match self.resume(&r, name, up).await {
                Ok(e) => {
                    self.resumable.remove(&key);
                    return Ok(Some(e));
                }
                Err(e) => {
                    tracing::info!(file = %name, "could not resume the upload ({e}), starting over");
                    self.resumable.remove(&key);
                }
            }
        }
        let preid = sha1_upper(&*up.body, 0, up.size.min(PRE_HASH_LEN)).await?;
        let base: Vec<(&str, String)> = vec![
            ("file_name", name.to_string()),
            ("file_size", up.size.to_string()),
            ("target", target.clone()),
            ("fileid", sha1.clone()),
            ("preid", preid),
        ];
        let mut params = base.clone();
        let mut data = Value::Null;
        for round in 0..3 {
            let env = self.call(Req::post("/open/upload/init", params.clone(), true)).await?;
            data = env.data;
            let status = data.get("status").map(value_i64).unwrap_or(-1);
            match status {
                2 => {
                    let id = data.get("file_id").map(value_string).unwrap_or_default();
                    let pc = data.get("pick_code").map(value_string).unwrap_or_default();
                    if id.is_empty() {
                        return Err(DriveError::upstream("115 Open rapid upload answered without a file_id"));
                    }
                    tracing::debug!(file = %name, "rapid upload (no bytes sent)");
                    return Ok(Some(self.uploaded_entry(id, pc, name, up)));
                }
                1 if mode == RapidMode::HashOnly => {
                    tracing::debug!(file = %name, "115 does not know the content");
                    return Ok(None);
                }
                1 => break,
                6..=8 if round < 2 => {
                    // Second check: SHA-1 of the byte range the server names (ref §7.1).
                    let check = data.get("sign_check").map(value_string).unwrap_or_default();
                    let sign_key = data.get("sign_key").map(value_string).unwrap_or_default();
                    let (start, len) = parse_sign_check(&check, up.size)
                        .ok_or_else(|| DriveError::upstream(format!("115 Open upload: bad sign_check {check:?}")))?;
                    let sign_val = sha1_upper(&*up.body, start, len).await?;
                    params = base.clone();
                    let pc = data.get("pick_code").map(value_string).unwrap_or_default();
                    if !pc.is_empty() {
                        params.push(("pick_code", pc));
                    }
                    params.push(("sign_key", sign_key));
                    params.push(("sign_val", sign_val));
                }
                s => {
                    return Err(DriveError::upstream(format!(
                        "115 Open upload/init: status {s} (code {})",
                        data.get("code").map(value_i64).unwrap_or(0)
                    )))
                }
            }
        }
        if data.get("status").map(value_i64) != Some(1) {
            return Err(DriveError::upstream("115 Open upload/init: the second check kept failing"));
        }
        let bucket = data.get("bucket").map(value_string).unwrap_or_default();
        let object = data.get("object").map(value_string).unwrap_or_default();
        let pick_code = data.get("pick_code").map(value_string).unwrap_or_default();
        let cb = callback_of(&data)
            .ok_or_else(|| DriveError::upstream("115 Open upload/init: no callback for the upload"))?;
        if bucket.is_empty() || object.is_empty() {
            return Err(DriveError::upstream("115 Open upload/init: no bucket/object for the upload"));
        }
        let part_size = self.part_size(up.size);
        let feed = Feed::new(Arc::clone(&up.body));
        if up.size <= part_size {
            let answer = self.put_single(&bucket, &object, up, &feed, &cb).await?;
            return self.finish(&answer, name, up, pick_code).map(Some);
        }
        let sts = self.sts(false).await?;
        let upload_id = self.bucket_for(&sts, &bucket).initiate(&object).await?;
        let r = Resumable { upload_id, object: object.clone(), pick_code: pick_code.clone(), target, part_size };
        self.resumable.insert(key.clone(), r.clone());
        let answer = self.upload_parts(&bucket, &r, up, &feed, &cb, &[]).await?;
        self.resumable.remove(&key);
        self.finish(&answer, name, up, pick_code).map(Some)
    }

    async fn put_single(
        &self,
        bucket: &str,
        object: &str,
        up: &Hashed,
        feed: &Feed,
        cb: &Callback,
    ) -> DriveResult<oss::Answer> {
        let mut last = None;
        for i in 0..PART_TRIES {
            let sts = self.sts(i > 0).await?;
            let body = feed.body(0, up.size).await?;
            match self.bucket_for(&sts, bucket).put_object(object, body, up.size, up.md5.as_deref(), Some(cb)).await {
                Ok(a) => return Ok(a),
                Err(e) if oss::retryable(&e) || e.hint() == crate::vfs::Hint::CredentialsExpired => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_secs(1 << i)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| DriveError::upstream("OSS put failed")))
    }

    /// Upload every part not in `done` (sequentially, as `sequential` requires), then
    /// complete with the callback.
    async fn upload_parts(
        &self,
        bucket: &str,
        r: &Resumable,
        up: &Hashed,
        feed: &Feed,
        cb: &Callback,
        done: &[oss::Part],
    ) -> DriveResult<oss::Answer> {
        let n = up.size.div_ceil(r.part_size).max(1);
        let mut etags: Vec<(u32, String)> = Vec::with_capacity(n as usize);
        for i in 0..n {
            let number = (i + 1) as u32;
            let start = i * r.part_size;
            let len = r.part_size.min(up.size - start);
            if let Some(p) = done.iter().find(|p| p.number == number && p.size == len) {
                etags.push((number, p.etag.clone()));
                continue;
            }
            let mut attempt = 0;
            let etag = loop {
                let sts = self.sts(attempt > 0).await?;
                let data = feed.body(start, len).await?;
                match self.bucket_for(&sts, bucket).upload_part(&r.object, &r.upload_id, number, data, len).await {
                    Ok(t) => break t,
                    Err(e)
                        if attempt + 1 < PART_TRIES
                            && (oss::retryable(&e) || e.hint() == crate::vfs::Hint::CredentialsExpired) =>
                    {
                        attempt += 1;
                        tracing::info!(part = number, "OSS part upload failed ({e}), retrying");
                        tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
                    }
                    Err(e) => return Err(e),
                }
            };
            etags.push((number, etag));
        }
        let mut attempt = 0;
        loop {
            let sts = self.sts(attempt > 0).await?;
            match self.bucket_for(&sts, bucket).complete(&r.object, &r.upload_id, &etags, Some(cb)).await {
                Ok(a) => return Ok(a),
                Err(e) if attempt + 1 < PART_TRIES && oss::retryable(&e) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Continue an interrupted multipart upload: fresh callback from `upload/resume`,
    /// the parts OSS already has from ListParts, the rest uploaded, then complete.
    async fn resume(&self, r: &Resumable, name: &str, up: &Hashed) -> DriveResult<Entry> {
        let env = self
            .call(Req::post(
                "/open/upload/resume",
                vec![
                    ("file_size", up.size.to_string()),
                    ("target", r.target.clone()),
                    ("fileid", up.sha1.to_ascii_uppercase()),
                    ("pick_code", r.pick_code.clone()),
                ],
                true,
            ))
            .await?;
        let data = env.data;
        let bucket = data.get("bucket").map(value_string).unwrap_or_default();
        let object = data.get("object").map(value_string).filter(|o| !o.is_empty()).unwrap_or_else(|| r.object.clone());
        let cb = callback_of(&data).ok_or_else(|| DriveError::upstream("115 Open upload/resume: no callback"))?;
        let sts = self.sts(false).await?;
        let done = self.bucket_for(&sts, &bucket).list_parts(&object, &r.upload_id).await?;
        tracing::info!(file = %name, parts = done.len(), "resuming a multipart upload");
        let r2 = Resumable { object, ..r.clone() };
        let feed = Feed::new(Arc::clone(&up.body));
        let answer = self.upload_parts(&bucket, &r2, up, &feed, &cb, &done).await?;
        self.finish(&answer, name, up, r.pick_code.clone())
    }

    /// Read 115's callback result (the body of the final OSS request).
    fn finish(&self, answer: &oss::Answer, name: &str, up: &Hashed, pick_code: String) -> DriveResult<Entry> {
        let v: Value = serde_json::from_slice(&answer.body)
            .map_err(|_| DriveError::upstream("OSS answered without 115's callback result"))?;
        let ok = v.get("state").map(super::client::value_bool).unwrap_or(false);
        let d = v.get("data").cloned().unwrap_or(Value::Null);
        let id = d.get("file_id").map(value_string).unwrap_or_default();
        if !ok || id.is_empty() {
            let msg = v.get("message").map(value_string).unwrap_or_default();
            return Err(DriveError::upstream(format!("115 upload callback failed: {msg}")));
        }
        let pc = d.get("pick_code").map(value_string).filter(|p| !p.is_empty()).unwrap_or(pick_code);
        Ok(self.uploaded_entry(id, pc, name, up))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_check_ranges_are_inclusive() {
        assert_eq!(parse_sign_check("2392148-2392298", 3_000_000), Some((2392148, 151)));
        assert_eq!(parse_sign_check("5-4", 10), None);
        assert_eq!(parse_sign_check("0-10", 10), None);
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-01-01T01:00:00Z"), Some(1767229200));
    }
}
