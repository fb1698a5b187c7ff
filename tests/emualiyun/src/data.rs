//! The data host (ref §5.3, §2.2, §7.4): presigned download URLs (expiry, Referer binding,
//! Range) and presigned part-upload URLs.
//!
//! URLs are signed with the emulator's secret (HMAC-SHA1 over method, path, expiry and the
//! signed options), so a tampered `x-oss-expires` or a dropped `x-oss-additional-headers`
//! fails like a real OSS signature would.

use std::sync::Arc;

use emukit::util::{pct_encode_query, rand_from, ALNUM};
use emukit::{Reply, Request};

use crate::common::{Call, UrlCtx};
use crate::content::Content;
use crate::crypto::hmac_sha1_b64;
use crate::state::{Node, State, DOMAIN_ID};
use crate::{AliFault, Inner};

const PREVIEW_PROCESS: &str = "image/resize,w_1920/format,jpeg";

fn sign(st: &State, msg: &str) -> String {
    hmac_sha1_b64(st.url_secret.as_bytes(), msg)
}

/// A download URL for `n` on the data `host` (and its expiry, unix ms). `preview` = the
/// processed image/thumbnail variant, which serves other bytes than the file.
pub(crate) fn download_url(
    inner: &Inner,
    st: &State,
    n: &Node,
    u: &UrlCtx,
    now: i64,
    preview: bool,
    host: &str,
) -> (String, i64) {
    let (user_id, referer_bound) = (u.user_id, u.referer_bound);
    let expires = now / 1000 + u.expire_sec as i64;
    let path = format!("/{}/{}/{}", n.drive_id, n.file_id, n.sha1);
    let process = if preview { PREVIEW_PROCESS } else { "" };
    let referer = if referer_bound { "referer" } else { "" };
    let sig = sign(st, &format!("GET\n{path}\n{expires}\n{referer}\n{process}"));
    let disposition = format!("attachment; filename*=UTF-8''{}", pct_encode_query(&n.name));
    let mut q = vec![
        ("di", DOMAIN_ID.to_string()),
        ("dr", n.drive_id.clone()),
        ("f", n.file_id.clone()),
        ("response-content-disposition", disposition),
        ("security-token", rand_from(ALNUM, 48)),
        ("u", user_id.to_string()),
        ("x-oss-access-key-id", format!("STS.{}", rand_from(ALNUM, 24))),
    ];
    if referer_bound {
        q.push(("x-oss-additional-headers", "referer".into()));
    }
    q.push(("x-oss-expires", expires.to_string()));
    if preview {
        q.push(("x-oss-process", PREVIEW_PROCESS.into()));
    }
    q.push(("x-oss-signature", sig));
    q.push(("x-oss-signature-version", "OSS2".into()));
    let query: Vec<String> = q.into_iter().map(|(k, v)| format!("{k}={}", pct_encode_query(&v))).collect();
    (format!("{}{path}?{}", inner.endpoint(host), query.join("&")), expires * 1000)
}

/// A presigned part-upload URL (PUT) on `host`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn part_url(
    inner: &Inner,
    st: &State,
    drive: &str,
    file_id: &str,
    upload_id: &str,
    part: u32,
    expires_ms: i64,
    host: &str,
) -> String {
    let expires = expires_ms / 1000;
    let path = format!("/{drive}/{file_id}/{upload_id}");
    let sig = sign(st, &format!("PUT\n{path}\n{part}\n{upload_id}\n{expires}"));
    format!(
        "{}{path}?partNumber={part}&uploadId={upload_id}&security-token={}&x-oss-access-key-id=STS.{}&x-oss-expires={expires}&x-oss-signature={}&x-oss-signature-version=OSS2",
        inner.endpoint(host),
        rand_from(ALNUM, 48),
        rand_from(ALNUM, 24),
        pct_encode_query(&sig)
    )
}

/// OSS XML error.
pub(crate) fn oss_error(status: u16, code: &str, message: &str, host: &str) -> Reply {
    let id = crate::state::new_request_id().to_ascii_uppercase();
    Reply::xml(
        status,
        &format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>{code}</Code>\n  <Message>{message}</Message>\n  <RequestId>{id}</RequestId>\n  <HostId>{host}</HostId>\n</Error>\n"
        ),
    )
    .header("x-oss-request-id", id)
}

pub(crate) fn signature_mismatch(host: &str) -> Reply {
    oss_error(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        host,
    )
}

pub(crate) fn expired(host: &str) -> Reply {
    oss_error(403, "AccessDenied", "Request has expired.", host)
}

pub(crate) fn route(call: &mut Call) -> Reply {
    match call.req.method.as_str() {
        "GET" | "HEAD" => download(call),
        "PUT" => crate::upload::put_part(call),
        _ => oss_error(
            405,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
            &call.req.host,
        ),
    }
}

fn download(call: &Call) -> Reply {
    let req = call.req;
    let host = req.host.as_str();
    let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let [_drive, _file, sha] = segs.as_slice() else {
        return oss_error(404, "NoSuchKey", "The specified key does not exist.", host);
    };
    let q = |k: &str| req.query_param(k);
    let (Some(expires), Some(sig)) = (q("x-oss-expires"), q("x-oss-signature")) else {
        return oss_error(403, "AccessDenied", "AccessDenied", host);
    };
    let referer_bound = q("x-oss-additional-headers").as_deref() == Some("referer");
    let process = q("x-oss-process").unwrap_or_default();
    let st = call.inner.st();
    let expect =
        sign(&st, &format!("GET\n{}\n{expires}\n{}\n{process}", req.path, if referer_bound { "referer" } else { "" }));
    if sig != expect {
        return signature_mismatch(host);
    }
    let exp: i64 = expires.parse().unwrap_or(0);
    if exp * 1000 <= call.now || matches!(call.custom, Some(AliFault::ExpireLink)) {
        return expired(host);
    }
    if referer_bound {
        // The signature covers the Referer header: another value or none is a mismatch (ref §2.2).
        let referer = req.header("referer").unwrap_or_default();
        if !call.opts.accepted_referers.contains(&referer) {
            return signature_mismatch(host);
        }
    }
    let content = if !process.is_empty() {
        Content::Bytes(bytes::Bytes::from(format!("EMULATED-PREVIEW {process} of {sha}")))
    } else {
        match st.contents.get(*sha) {
            Some(c) => c.clone(),
            None => return oss_error(404, "NoSuchKey", "The specified key does not exist.", host),
        }
    };
    drop(st);
    serve_range(req, content)
}

/// 200 with `Accept-Ranges`, or 206 for one `bytes=` range, or 416 (ref §5.3).
fn serve_range(req: &Request, content: Content) -> Reply {
    let size = content.size();
    let src: Arc<dyn emukit::ByteSource> = Arc::new(content);
    let base = |status: u16, start: u64, len: u64| {
        Reply::source(status, "application/octet-stream", src.clone(), start, len)
            .header("accept-ranges", "bytes")
            .header("etag", "\"EMULATED\"")
            .header("x-oss-request-id", crate::state::new_request_id().to_ascii_uppercase())
    };
    let Some(range) = req.header("range") else { return base(200, 0, size) };
    match parse_range(&range, size) {
        RangeSpec::Ignore => base(200, 0, size),
        RangeSpec::Unsatisfiable => oss_error(416, "InvalidRange", "The requested range is not satisfiable", &req.host)
            .header("content-range", format!("bytes */{size}")),
        RangeSpec::Span(a, b) => base(206, a, b - a + 1).header("content-range", format!("bytes {a}-{b}/{size}")),
    }
}

enum RangeSpec {
    Ignore,
    Unsatisfiable,
    Span(u64, u64),
}

fn parse_range(h: &str, size: u64) -> RangeSpec {
    let Some(spec) = h.trim().strip_prefix("bytes=") else { return RangeSpec::Ignore };
    if spec.contains(',') {
        // OSS serves the whole object for multi-range requests.
        return RangeSpec::Ignore;
    }
    let Some((a, b)) = spec.split_once('-') else { return RangeSpec::Ignore };
    let (a, b) = (a.trim(), b.trim());
    let span = match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(a), Ok(b)) if a <= b => (a, b.min(size.saturating_sub(1))),
        (Ok(_), Ok(_)) => return RangeSpec::Ignore,
        (Ok(a), Err(_)) if b.is_empty() => (a, size.saturating_sub(1)),
        (Err(_), Ok(n)) if a.is_empty() => {
            if n == 0 {
                return RangeSpec::Unsatisfiable;
            }
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        _ => return RangeSpec::Ignore,
    };
    if span.0 >= size {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Span(span.0, span.1)
}
