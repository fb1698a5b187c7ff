//! A small Aliyun OSS client for 115 uploads (115-web.md §5.5, 115-open.md §7.4), shared
//! by the 115 drivers: V1 header signing with STS credentials, single PUT, multipart
//! initiate / upload part / list parts / complete, and 115's upload callback
//! (`x-oss-callback` + `x-oss-callback-var`, the callback strings base64'd unchanged).
//!
//! Addressing is virtual-hosted (`https://{bucket}.{endpoint host}/{object}`); the base
//! URL is the caller's, so a test or relay can point it elsewhere while the signature
//! still names `/{bucket}/{object}`.

use std::time::{Duration, SystemTime};

use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::vfs::{DriveError, DriveResult, Hint, ProviderCode};

/// STS credentials (115's `get_token`).
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub access_key_secret: String,
    pub security_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// 115's callback pair, exactly as the provider returned the two JSON strings.
#[derive(Clone, Debug)]
pub struct Callback {
    pub callback: String,
    pub callback_var: String,
}

impl Callback {
    fn headers(&self) -> [(String, String); 2] {
        let b64 = base64::engine::general_purpose::STANDARD;
        [
            ("x-oss-callback".into(), b64.encode(self.callback.as_bytes())),
            ("x-oss-callback-var".into(), b64.encode(self.callback_var.as_bytes())),
        ]
    }
}

/// One uploaded part as OSS lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub number: u32,
    pub etag: String,
    pub size: u64,
}

/// The answer to a PUT or Complete with a callback: the callback server's body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

pub struct Bucket<'a> {
    pub http: &'a reqwest::Client,
    pub creds: &'a Credentials,
    /// `https://{bucket}.{endpoint host}` or an override (no trailing slash).
    pub base_url: String,
    pub bucket: String,
    pub user_agent: Option<String>,
}

/// Characters kept as they are in an object key on the URL path.
const KEY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// OSS V1 signature: base64(HMAC-SHA1(secret, VERB\nMD5\nType\nDate\n{x-oss-*}{resource})).
pub fn sign_v1(
    secret: &str,
    verb: &str,
    content_md5: &str,
    content_type: &str,
    date: &str,
    oss_headers: &[(String, String)],
    resource: &str,
) -> String {
    let mut hs: Vec<(String, String)> =
        oss_headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string())).collect();
    hs.retain(|(k, _)| k.starts_with("x-oss-"));
    hs.sort();
    let mut s = format!("{verb}\n{content_md5}\n{content_type}\n{date}\n");
    for (k, v) in hs {
        s.push_str(&format!("{k}:{v}\n"));
    }
    s.push_str(resource);
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(s.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `?a&b=c` sub-resource string, sorted, for the canonical resource and the URL.
fn subresources(sub: &[(&str, Option<String>)]) -> String {
    let mut v: Vec<&(&str, Option<String>)> = sub.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    let parts: Vec<String> = v
        .iter()
        .map(|(k, val)| match val {
            Some(x) => format!("{k}={x}"),
            None => k.to_string(),
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn oss_error(what: &str, status: u16, body: &[u8]) -> DriveError {
    let text = String::from_utf8_lossy(body);
    let tag = |t: &str| {
        let open = format!("<{t}>");
        let close = format!("</{t}>");
        text.find(&open).and_then(|i| {
            let rest = &text[i + open.len()..];
            rest.find(&close).map(|j| rest[..j].to_string())
        })
    };
    let code = tag("Code").unwrap_or_default();
    let msg = tag("Message").unwrap_or_default();
    match status {
        403 if code == "InvalidAccessKeyId" || code == "SecurityTokenExpired" => DriveError::provider(
            ProviderCode::Text(code.clone()),
            format!("OSS {what}: upload credentials expired ({code})"),
        )
        .with_hint(Hint::CredentialsExpired),
        429 | 503 => DriveError::RateLimited { retry_after: Some(Duration::from_secs(5)) },
        _ => {
            let e = DriveError::provider(
                ProviderCode::Text(code.clone()),
                format!("OSS {what}: HTTP {status} {code} {msg}").trim().to_string(),
            );
            if status >= 500 {
                e.with_hint(Hint::Transient)
            } else {
                e
            }
        }
    }
}

/// Whether an OSS failure is worth another try of the same request.
pub fn retryable(e: &DriveError) -> bool {
    match e {
        DriveError::RateLimited { .. } => true,
        other => other.hint() == Hint::Transient,
    }
}

impl<'a> Bucket<'a> {
    fn resource(&self, key: &str, sub: &[(&str, Option<String>)]) -> String {
        format!("/{}/{}{}", self.bucket, key, subresources(sub))
    }

    fn url(&self, key: &str, sub: &[(&str, Option<String>)]) -> String {
        let enc_sub: Vec<(&str, Option<String>)> = sub
            .iter()
            .map(|(k, v)| (*k, v.as_ref().map(|x| utf8_percent_encode(x, NON_ALPHANUMERIC).to_string())))
            .collect();
        format!("{}/{}{}", self.base_url, utf8_percent_encode(key, KEY), subresources(&enc_sub))
    }

    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        verb: reqwest::Method,
        key: &str,
        sub: &[(&str, Option<String>)],
        content_type: &str,
        content_md5: &str,
        extra: Vec<(String, String)>,
        body: Option<(reqwest::Body, Option<u64>)>,
    ) -> DriveResult<(u16, reqwest::header::HeaderMap, Bytes)> {
        let date = httpdate::fmt_http_date(SystemTime::now());
        let mut oss_headers = extra;
        if let Some(t) = &self.creds.security_token {
            oss_headers.push(("x-oss-security-token".into(), t.clone()));
        }
        let sig = sign_v1(
            &self.creds.access_key_secret,
            verb.as_str(),
            content_md5,
            content_type,
            &date,
            &oss_headers,
            &self.resource(key, sub),
        );
        let mut rb = self
            .http
            .request(verb, self.url(key, sub))
            .header("Date", &date)
            .header("Authorization", format!("OSS {}:{sig}", self.creds.access_key_id));
        if !content_type.is_empty() {
            rb = rb.header("Content-Type", content_type);
        }
        if !content_md5.is_empty() {
            rb = rb.header("Content-MD5", content_md5);
        }
        if let Some(ua) = &self.user_agent {
            rb = rb.header("User-Agent", ua);
        }
        for (k, v) in &oss_headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        let rb = match body {
            // A streamed body goes out with its length (not chunked).
            Some((b, Some(len))) => rb.header("Content-Length", len).body(b),
            Some((b, None)) => rb.body(b),
            None => rb.header("Content-Length", "0"),
        };
        let resp =
            rb.send().await.map_err(|e| DriveError::transient(format!("OSS request failed: {}", e.without_url())))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| DriveError::transient(format!("OSS request failed: connection {}", e.without_url())))?;
        Ok((status, headers, body))
    }

    /// Single `PutObject` of `body` (`len` bytes), with 115's callback. `md5_hex`, when
    /// given, goes out as Content-MD5 so OSS refuses a body damaged on the way.
    pub async fn put_object(
        &self,
        key: &str,
        body: reqwest::Body,
        len: u64,
        md5_hex: Option<&str>,
        cb: Option<&Callback>,
    ) -> DriveResult<Answer> {
        let extra = cb.map(|c| c.headers().to_vec()).unwrap_or_default();
        let md5 = md5_hex
            .and_then(|h| hex::decode(h).ok())
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
            .unwrap_or_default();
        let (status, _, body) = self
            .send(reqwest::Method::PUT, key, &[], "application/octet-stream", &md5, extra, Some((body, Some(len))))
            .await?;
        if status == 200 {
            Ok(Answer { status, body })
        } else if status == 203 {
            Err(DriveError::upstream(format!("OSS put: upload callback failed: {}", String::from_utf8_lossy(&body))))
        } else {
            Err(oss_error("put", status, &body))
        }
    }

    /// `InitiateMultipartUpload` (`?uploads`, plus `sequential` as 115 requires).
    pub async fn initiate(&self, key: &str) -> DriveResult<String> {
        // `sequential=1`: required by 115 (115-web §5.5 `?uploads&sequential=1`; 115-open
        // §7.4 names the bare key, and p115oss sends `=1`, which satisfies both readings).
        let sub = [("uploads", None), ("sequential", Some("1".to_string()))];
        let (status, _, body) = self.send(reqwest::Method::POST, key, &sub, "", "", vec![], None).await?;
        if status != 200 {
            return Err(oss_error("initiate multipart", status, &body));
        }
        xml_tag(&body, "UploadId").ok_or_else(|| DriveError::upstream("OSS initiate: no UploadId in the answer"))
    }

    /// `UploadPart` of `len` bytes; returns the part's ETag.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        data: reqwest::Body,
        len: u64,
    ) -> DriveResult<String> {
        let sub = [("partNumber", Some(number.to_string())), ("uploadId", Some(upload_id.to_string()))];
        let (status, headers, body) = self
            .send(reqwest::Method::PUT, key, &sub, "application/octet-stream", "", vec![], Some((data, Some(len))))
            .await?;
        if status != 200 {
            return Err(oss_error("upload part", status, &body));
        }
        headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.to_string())
            .ok_or_else(|| DriveError::upstream("OSS upload part: no ETag"))
    }

    /// `ListParts` of an open multipart upload (all pages).
    pub async fn list_parts(&self, key: &str, upload_id: &str) -> DriveResult<Vec<Part>> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut sub = vec![("uploadId", Some(upload_id.to_string()))];
            if let Some(m) = &marker {
                sub.push(("part-number-marker", Some(m.clone())));
            }
            let (status, _, body) = self.send(reqwest::Method::GET, key, &sub, "", "", vec![], None).await?;
            if status != 200 {
                return Err(oss_error("list parts", status, &body));
            }
            let text = String::from_utf8_lossy(&body).into_owned();
            for chunk in text.split("<Part>").skip(1) {
                let chunk = chunk.split("</Part>").next().unwrap_or("");
                let number = xml_tag(chunk.as_bytes(), "PartNumber").and_then(|s| s.parse().ok());
                let etag = xml_tag(chunk.as_bytes(), "ETag");
                let size = xml_tag(chunk.as_bytes(), "Size").and_then(|s| s.parse().ok()).unwrap_or(0);
                if let (Some(number), Some(etag)) = (number, etag) {
                    out.push(Part { number, etag: etag.replace("&quot;", "\""), size });
                }
            }
            let truncated = xml_tag(&body, "IsTruncated").is_some_and(|s| s == "true");
            match xml_tag(&body, "NextPartNumberMarker") {
                Some(m) if truncated && marker.as_deref() != Some(m.as_str()) => marker = Some(m),
                _ => break,
            }
        }
        out.sort_by_key(|p| p.number);
        Ok(out)
    }

    /// `CompleteMultipartUpload` with the parts in order and 115's callback.
    pub async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
        cb: Option<&Callback>,
    ) -> DriveResult<Answer> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (n, etag) in parts {
            let quoted = if etag.starts_with('"') { etag.clone() } else { format!("\"{etag}\"") };
            xml.push_str(&format!("<Part><PartNumber>{n}</PartNumber><ETag>{quoted}</ETag></Part>"));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let sub = [("uploadId", Some(upload_id.to_string()))];
        let extra = cb.map(|c| c.headers().to_vec()).unwrap_or_default();
        let (status, _, body) = self
            .send(reqwest::Method::POST, key, &sub, "text/xml", "", extra, Some((xml.into_bytes().into(), None)))
            .await?;
        if status == 200 {
            Ok(Answer { status, body })
        } else if status == 203 {
            Err(DriveError::upstream(format!(
                "OSS complete: upload callback failed: {}",
                String::from_utf8_lossy(&body)
            )))
        } else {
            Err(oss_error("complete multipart", status, &body))
        }
    }

    /// `AbortMultipartUpload` (best effort).
    pub async fn abort(&self, key: &str, upload_id: &str) -> DriveResult<()> {
        let sub = [("uploadId", Some(upload_id.to_string()))];
        let (status, _, body) = self.send(reqwest::Method::DELETE, key, &sub, "", "", vec![], None).await?;
        if status == 204 || status == 200 || status == 404 {
            Ok(())
        } else {
            Err(oss_error("abort multipart", status, &body))
        }
    }
}

fn xml_tag(body: &[u8], tag: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let open = format!("<{tag}>");
    let i = text.find(&open)? + open.len();
    let j = text[i..].find(&format!("</{tag}>"))?;
    Some(text[i..i + j].trim().to_string())
}

/// Part size for a file of `size` bytes (OpenList `calPartSize`, 115-open §7.4): 20 MiB up
/// to 128 GiB, growing above so that no upload needs more than 10 000 parts.
pub fn part_size_for(size: u64) -> u64 {
    const GIB: u64 = 1 << 30;
    match size {
        s if s > 1024 * GIB => 5 * GIB,
        s if s > 768 * GIB => 109_951_163,
        s if s > 512 * GIB => 82_463_373,
        s if s > 384 * GIB => 54_975_582,
        s if s > 256 * GIB => 41_231_687,
        s if s > 128 * GIB => 27_487_791,
        _ => 20 << 20,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_signature_matches_aliyun_example() {
        // The worked example of Aliyun's OSS V1 documentation.
        let sig = sign_v1(
            "OtxrzxIsfpFjA7SwPzILwy8Bw21TLhquhboDYROV",
            "PUT",
            "ODBGOERFMDMzQTczRUY3NUE3NzA5QzdFNUYzMDQxNEM=",
            "text/html",
            "Thu, 17 Nov 2005 18:49:58 GMT",
            &[("X-OSS-Magic".into(), "abracadabra".into()), ("X-OSS-Meta-Author".into(), "foo@bar.com".into())],
            "/oss-example/nelson",
        );
        assert_eq!(sig, "26NBxoKdsyly4EDv6inkoDft/yA=");
    }

    #[test]
    fn subresources_sort() {
        assert_eq!(subresources(&[("uploads", None), ("sequential", None)]), "?sequential&uploads");
        assert_eq!(
            subresources(&[("uploadId", Some("x".into())), ("partNumber", Some("2".into()))]),
            "?partNumber=2&uploadId=x"
        );
    }

    #[test]
    fn part_sizes_stay_under_ten_thousand_parts() {
        for gib in [1u64, 100, 128, 129, 300, 500, 700, 1000, 1024] {
            let size = gib << 30;
            assert!(size.div_ceil(part_size_for(size)) <= 10_000, "{gib} GiB");
        }
    }
}
