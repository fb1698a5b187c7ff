//! What the Aliyun drivers share. Written once for the consumer API (`aliyundrive`), share
//! links (`aliyundrive_share`) and the Open platform (`aliyundrive_open`); every item
//! cites the reference section it follows.
//!
//! # Module API
//!
//! **Errors** — [`error`]:
//! - [`error::ApiError::parse`]`(status, body)` reads any failed answer: the JSON
//!   envelope `{code, message, requestId}`, a Spring 404 (`no_route`), an OSS XML error,
//!   plain text (`Bad Gateway`).
//! - [`error::classify`]`(Family, &ApiError) -> Class`: **the** mapping of provider codes
//!   (§9) for all three families ([`error::Family::Consumer`], `Share`, `Open`).
//! - [`error::verdict`]`(family, what, &Response, idempotent, accept)` → the kit's
//!   `Verdict` (`Reauth` for token / device / share-token errors, `Throttled` with
//!   `x-retry-after`, `Retry` for 5xx when idempotent, `Fatal(DriveError)`), plus the
//!   [`error::Renew`] a `Reauth` asks for. Classes in `accept` come back as `Done` (e.g.
//!   `Class::PreHashMatched` for a create). Use it as the `classify` of `Http::call`:
//!
//!   ```ignore
//!   let r = http.call(Call::new("list", true), &session, build,
//!       |r| error::verdict(Family::Open, "list", r, true, &[]).0).await?;
//!   if !(200..300).contains(&r.status) { return Err(error::error_of(Family::Open, "list", &r)); }
//!   ```
//! - [`error::drive_error`] / [`error::error_of`]: the `DriveError` of an answer.
//!
//! **JSON** — [`json`]: `string_of`, `u64_of`, `bool_of` and the serde helpers
//! `json::string`, `json::uint`, `json::boolean` (`#[serde(deserialize_with = …)]`);
//! [`json::time`] parses RFC 3339 (millis, offsets) and [`json::rfc3339`] writes
//! `2006-01-02T15:04:05.000Z` (the Open `local_*_at` fields).
//!
//! **Files** — [`item::FileItem`]: the file object of listings, get, get_by_path, create
//! (`file_name`) and complete answers; `visible()` (not trashed, not uploading), `sha1()`
//! (lower-case from the upper-case `content_hash`), `to_entry()` (`updated_at` as mtime).
//!
//! **Hashes** — [`hash`]: `pre_hash(_file)` (§7.1), `proof_code(_file)` v1 (§7.2, with the
//! token of the request that carries it), [`hash::PartPlan`] (§7.3: 10 MiB parts, grown
//! to stay within 10 000).
//!
//! **Upload** — [`upload`]: implement [`upload::UploadApi`] (create, upload_urls,
//! complete, discard, the part `Http`, the part URL, complete-after-rapid) and call
//! [`upload::upload`]`(api, parent_id, name, &Source, &UploadOptions)`. It runs
//! pre-hash → `PreHashMatched` → content hash + proof → rapid upload (0 body bytes) or
//! parts in order (no Content-Type; 403 = expired → `upload_urls` and once more; 409 =
//! already there) → complete, and discards the file on failure. `CreateFile::body(token)`
//! gives the shared create fields; add `drive_id`, `check_name_mode` and your extras.
//!
//! **Consumer login** (consumer and share drivers; the Open platform has its own OAuth):
//! [`signature`] (the device key and `x-signature`, §3, `k256`), [`auth`] (the rotating
//! token pair through the kit's credentials, the device session, the per-call session
//! for `Http::call`), [`passport`] (the QR login of §2.6).

pub mod auth;
pub mod error;
pub mod hash;
pub mod item;
pub mod json;
pub mod passport;
pub mod signature;
pub mod upload;

/// What the writable Aliyun drives (consumer and Open) can do: the same API shape, so
/// the same capabilities; rapid put follows the mount's `rapid_upload` option.
pub fn writable_caps(rapid_upload: bool) -> crate::vfs::Caps {
    crate::vfs::Caps {
        links: true,
        rapid_upload_sha1: rapid_upload,
        rapid_put: rapid_upload,
        server_side_copy: true,
        refresh: true,
        fast_lookup: true,
        ..crate::vfs::Caps::default()
    }
}

/// Hosts (ref §1.1). Every one can be overridden through a mount's `endpoints`.
pub mod hosts {
    /// Consumer and share API (alias `api.aliyundrive.com`).
    pub const API: &str = "api.alipan.com";
    /// Consumer token refresh (alias `auth.aliyundrive.com`).
    pub const AUTH: &str = "auth.alipan.com";
    /// Consumer QR login (alias `passport.aliyundrive.com`).
    pub const PASSPORT: &str = "passport.alipan.com";
    /// Open platform (alias `openapi.aliyundrive.com`).
    pub const OPEN: &str = "openapi.alipan.com";
    /// Download and part-upload host of presigned URLs.
    pub const DATA: &str = "cn-beijing-data.aliyundrive.net";
    /// The older data host.
    pub const DATA_OLD: &str = "bj29.cn-beijing.data.alicloudccp.com";
    /// The Beijing-internal OSS host (only reachable from Aliyun's cn-beijing region).
    pub const INTERNAL_DATA: &str = "ccp-bj29-bj-1592982087.oss-cn-beijing-internal.aliyuncs.com";
    /// What the web app sends as Referer / Origin (ref §2.2: Referer-bound links).
    pub const REFERER: &str = "https://www.alipan.com/";
}

/// Whether a download URL is bound to the Referer (a web-kind token's link, ref §2.2):
/// its OSS signature covers the `Referer` header.
pub fn needs_referer(url: &str) -> bool {
    let Some((_, q)) = url.split_once('?') else { return false };
    q.split('&').any(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        k == "x-oss-additional-headers"
            && percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .split(';')
                .any(|h| h.eq_ignore_ascii_case("referer"))
    })
}

/// A download link as the kit wants it: the Referer in `headers` when the URL is bound
/// to it (so a `redirect` mount proxies it), none otherwise (the client gets a 302).
pub fn link(url: String, expires_at: Option<std::time::SystemTime>) -> crate::vfs::Link {
    let headers = if needs_referer(&url) { vec![("Referer".to_string(), hosts::REFERER.to_string())] } else { vec![] };
    crate::vfs::Link { url, headers, expires_at }
}

/// `x-oss-expires` (Unix seconds) of a presigned URL.
pub fn url_expiry(url: &str) -> Option<std::time::SystemTime> {
    let (_, q) = url.split_once('?')?;
    q.split('&')
        .find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == "x-oss-expires").then(|| v.parse::<u64>().ok()).flatten()
        })
        .map(|s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referer_binding_is_read_from_the_url() {
        let web = "https://cn-beijing-data.aliyundrive.net/x?di=bj29&x-oss-access-key-id=STS.x&x-oss-additional-headers=referer&x-oss-expires=1617974565&x-oss-signature=s";
        assert!(needs_referer(web));
        let l = link(web.into(), None);
        assert_eq!(l.headers, vec![("Referer".to_string(), "https://www.alipan.com/".to_string())]);
        assert_eq!(url_expiry(web), Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1617974565)));
        let mobile = "https://cn-beijing-data.aliyundrive.net/x?di=bj29&x-oss-expires=1617974565&x-oss-signature=s";
        assert!(!needs_referer(mobile));
        assert!(link(mobile.into(), None).headers.is_empty());
        assert!(needs_referer("http://h/x?x-oss-additional-headers=host%3Breferer"));
        assert!(!needs_referer("http://h/x?referer=x-oss-additional-headers"));
    }
}
