//! The Aliyun error envelope (ref §1.3) and what each code means (§9 catalogue, §10
//! retry advice), for every family: one [`classify`] maps provider codes to a [`Class`],
//! from which [`verdict`] gives the kit's [`Verdict`] and [`drive_error`] the
//! [`DriveError`] a client sees. Drivers never match on message text; the one place words
//! are read is [`ApiError::parse`], where the service says something in words only
//! (a plain-text gateway page, an OSS XML error, the code-less "not found device info").

use std::time::Duration;

use serde_json::Value;

use super::json;
use crate::drivers::http::{redact, Response, Verdict};
use crate::vfs::{DriveError, Hint, ProviderCode};

/// Which API answered: the families differ in a few codes (ref §9 "family" column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// (A) the consumer API (`api.alipan.com`, `auth.alipan.com`).
    Consumer,
    /// (B) share links: the consumer API with an `x-share-token`.
    Share,
    /// (C) the Open platform (`openapi.alipan.com`).
    Open,
}

/// One failed answer as the service described it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    /// The provider's code (`AccessTokenInvalid`, `NotFound.File`…); empty when the body
    /// had none (plain text, a Spring 404, an empty 401).
    pub code: String,
    pub message: String,
    pub request_id: String,
    /// A Spring-style "no such route" body (`{"timestamp","status","error","path"}`):
    /// the endpoint is unknown, which says nothing about files.
    pub no_route: bool,
}

impl ApiError {
    /// Read an error body: the JSON envelope `{code, message, requestId}` (also
    /// `display_message`, `resultCode`), a Spring 404, an OSS XML error
    /// (`<Code>…</Code><Message>…</Message>`), or plain text such as `Bad Gateway`.
    pub fn parse(status: u16, body: &[u8]) -> ApiError {
        let mut e = ApiError { status, ..ApiError::default() };
        if let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(body) {
            let s = |k: &str| o.get(k).map(json::string_of).unwrap_or_default();
            e.code = s("code");
            if e.code.is_empty() {
                // ParamFlowException comes with `resultCode` too (ref §8.5).
                e.code = s("resultCode");
            }
            e.message = [s("message"), s("display_message"), s("error")]
                .into_iter()
                .find(|m| !m.is_empty())
                .unwrap_or_default();
            e.request_id = [s("requestId"), s("request_id")].into_iter().find(|m| !m.is_empty()).unwrap_or_default();
            e.no_route = e.code.is_empty() && o.contains_key("timestamp") && o.contains_key("path");
            return e;
        }
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if let (Some(code), msg) = (xml_tag(text, "Code"), xml_tag(text, "Message")) {
            e.code = code;
            e.message = msg.unwrap_or_default();
            return e;
        }
        e.message = text.chars().take(200).collect();
        e
    }

    /// `"<what>: <code>: <message> (request <id>)"`, secrets redacted.
    pub fn describe(&self, what: &str) -> String {
        let mut s = format!("Aliyun {what}: HTTP {}", self.status);
        if !self.code.is_empty() {
            s.push_str(&format!(", {}", self.code));
        }
        if !self.message.is_empty() {
            s.push_str(&format!(": {}", self.message));
        }
        if !self.request_id.is_empty() {
            s.push_str(&format!(" (request {})", self.request_id));
        }
        redact(&s)
    }
}

/// Text of the first `<tag>…</tag>` (OSS XML errors).
fn xml_tag(s: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let i = s.find(&open)? + open.len();
    let j = s[i..].find(&format!("</{tag}>"))? + i;
    Some(s[i..j].trim().to_string())
}

/// What an error means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The access token is expired or refused: refresh once and resend (ref §2.3, §9).
    AccessToken,
    /// The device session is gone or its signature refused: create a session, resend
    /// (consumer only, ref §3.4–3.5).
    Device,
    /// The share token expired: get a new one, resend (ref §8.2).
    ShareToken,
    /// The login is gone for good (refresh token used, expired, revoked): log in again.
    LoginDead,
    /// The share is gone or the extraction code is wrong (ref §8.1–8.2).
    ShareDead,
    /// Rate limited (`TooManyRequests`, `ParamFlowException`, 429): back off (ref §10).
    Throttled,
    /// A hiccup (5xx, maintenance): worth another try when the call is idempotent.
    Transient,
    NotFound,
    Exists,
    NoSpace,
    IsADirectory,
    Forbidden,
    /// The service refused a name or parameter we sent.
    InvalidInput,
    /// Upload: the first-KiB hash matches a stored file; send the full hash (ref §7.4).
    PreHashMatched,
    /// Upload: the proof did not match (computed with another token?) (ref §7.2).
    InvalidRapidProof,
    /// Upload: the upload session is gone (ref §7.5): start again.
    UploadGone,
    /// Anything else: reported as is.
    Other,
}

/// The meaning of an error answered by `family` (ref §9; statuses where a code is
/// missing). The only mapping of Aliyun codes in pandav.
pub fn classify(family: Family, e: &ApiError) -> Class {
    let open = family == Family::Open;
    let code = e.code.as_str();
    match code {
        "AccessTokenInvalid" | "AccessTokenExpired" => Class::AccessToken,
        // OpenList treats it like an expired token (ref §2.3).
        "I400JD" if open => Class::AccessToken,
        "DeviceSessionSignatureInvalid" | "UserDeviceOffline" | "UserDeviceIllegality" if !open => Class::Device,
        "ShareLinkTokenInvalid" => Class::ShareToken,
        "InvalidParameter.RefreshToken"
        | "InvalidParameterMissing.RefreshToken"
        | "RefreshTokenExpired"
        | "RefreshTokenInvalid"
        | "InvalidClientId"
        | "InvalidClientSecret"
        | "AppNotExists" => Class::LoginDead,
        "ShareLink.Cancelled" | "ShareLink.Expired" | "ShareLink.Forbidden" | "NotFound.ShareLink" => Class::ShareDead,
        "InvalidResource.SharePwd" => Class::ShareDead,
        "TooManyRequests" | "ParamFlowException" | "ExceedMaxConcurrency" => Class::Throttled,
        "FeatureTemporaryDisabled" => Class::Transient,
        "PreHashMatched" => Class::PreHashMatched,
        "InvalidRapidProof" => Class::InvalidRapidProof,
        "NotFound.UploadId" => Class::UploadGone,
        // A trashed file is gone as far as clients are concerned.
        "ForbiddenFileInTheRecycleBin" => Class::NotFound,
        "InvalidResource.FileTypeFolder" => Class::IsADirectory,
        "ForbiddenNoPermission.File"
        | "ForbiddenDriveLocked"
        | "ForbiddenDriveNotValid"
        | "UserNotAllowedAccessDrive"
        | "FileShareNotAllowed"
        | "PermissionDenied"
        | "ExceedCapacityForbidden"
        | "SharelinkCreateExceedDailyLimit" => Class::Forbidden,
        "Payload Too Large" => Class::InvalidInput,
        "InvalidParameter.Name" | "InvalidParameter.FileName" | "InvalidParameterNotMatch.Name" => Class::InvalidInput,
        c if c.starts_with("QuotaExhausted") => Class::NoSpace,
        c if c.starts_with("AlreadyExist") => Class::Exists,
        c if c.starts_with("NotFound.") => Class::NotFound,
        // aligo: HTTP 400 saying "not found device info" without a code (ref §3.4).
        "" if !open && e.status == 400 && e.message.contains("not found device info") => Class::Device,
        "" if e.status == 401 => Class::AccessToken,
        _ => match e.status {
            429 => Class::Throttled,
            500..=599 | 408 => Class::Transient,
            413 => Class::InvalidInput,
            _ => Class::Other,
        },
    }
}

/// Which credential a refused answer asks to renew before the resend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renew {
    Token,
    Device,
    ShareToken,
}

impl Renew {
    pub fn as_u8(self) -> u8 {
        match self {
            Renew::Token => 1,
            Renew::Device => 2,
            Renew::ShareToken => 3,
        }
    }
    pub fn from_u8(n: u8) -> Option<Renew> {
        match n {
            1 => Some(Renew::Token),
            2 => Some(Renew::Device),
            3 => Some(Renew::ShareToken),
            _ => None,
        }
    }
}

/// The kit's verdict on one answer of `family` (2xx is success, also with an empty body;
/// classes in `accept` are handed back to the caller, e.g. `PreHashMatched`), and the
/// credential to renew when it is `Reauth`.
pub fn verdict(
    family: Family,
    what: &str,
    r: &Response,
    idempotent: bool,
    accept: &[Class],
) -> (Verdict, Option<Renew>) {
    if (200..300).contains(&r.status) {
        return (Verdict::Done, None);
    }
    let e = ApiError::parse(r.status, &r.body);
    let class = classify(family, &e);
    if accept.contains(&class) {
        return (Verdict::Done, None);
    }
    let refused = || DriveError::upstream(format!("{} (refused again right after renewing)", e.describe(what)));
    match class {
        Class::AccessToken => (Verdict::Reauth(refused()), Some(Renew::Token)),
        Class::Device => (Verdict::Reauth(refused()), Some(Renew::Device)),
        Class::ShareToken => (Verdict::Reauth(refused()), Some(Renew::ShareToken)),
        Class::Throttled => (Verdict::Throttled { why: e.describe(what), after: r.retry_after() }, None),
        Class::Transient if idempotent => (Verdict::Retry(e.describe(what)), None),
        _ => (Verdict::Fatal(drive_error(class, &e, what)), None),
    }
}

/// The error a client sees for an answer of class `class`.
pub fn drive_error(class: Class, e: &ApiError, what: &str) -> DriveError {
    let msg = e.describe(what);
    let code = || ProviderCode::Text(if e.code.is_empty() { format!("HTTP {}", e.status) } else { e.code.clone() });
    match class {
        Class::NotFound => DriveError::NotFound,
        Class::Exists => DriveError::Exists,
        Class::NoSpace => DriveError::NoSpace,
        Class::IsADirectory => DriveError::IsADirectory,
        Class::Forbidden => DriveError::Forbidden(msg),
        Class::InvalidInput => DriveError::InvalidInput(msg),
        Class::LoginDead => DriveError::AuthLost(msg),
        Class::Throttled => DriveError::RateLimited { retry_after: None },
        Class::Transient => DriveError::provider(code(), msg).with_hint(Hint::Transient),
        Class::AccessToken | Class::Device | Class::ShareToken => {
            DriveError::provider(code(), msg).with_hint(Hint::CredentialsExpired)
        }
        Class::ShareDead | Class::PreHashMatched | Class::InvalidRapidProof | Class::UploadGone | Class::Other => {
            DriveError::provider(code(), msg)
        }
    }
}

/// The error of an answer a call loop handed back as done although it failed (a
/// `Retry` whose tries ran out, an accepted class the caller did not expect).
pub fn error_of(family: Family, what: &str, r: &Response) -> DriveError {
    let e = ApiError::parse(r.status, &r.body);
    drive_error(classify(family, &e), &e, what)
}

/// `x-retry-after` (ms) / `Retry-After` of a throttled answer, if any.
pub fn retry_after(r: &Response) -> Option<Duration> {
    r.retry_after()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> Response {
        Response { status, headers: http::HeaderMap::new(), body: bytes::Bytes::from(body.to_string()) }
    }

    #[test]
    fn envelopes_of_every_shape() {
        let e = ApiError::parse(
            401,
            br#"{"code":"AccessTokenInvalid","message":"not login","requestId":"0a0080e216757311048316214ed958"}"#,
        );
        assert_eq!((e.code.as_str(), e.message.as_str()), ("AccessTokenInvalid", "not login"));
        assert_eq!(e.request_id, "0a0080e216757311048316214ed958");
        let e = ApiError::parse(
            429,
            br#"{"code":"ParamFlowException","message":"1.2.3.4","requestId":"x","resultCode":"ParamFlowException"}"#,
        );
        assert_eq!(classify(Family::Share, &e), Class::Throttled);
        let e = ApiError::parse(
            404,
            br#"{"timestamp":"2024-01-01T00:00:00.000+00:00","status":404,"error":"Not Found","path":"/x"}"#,
        );
        assert!(e.no_route && e.code.is_empty());
        assert_eq!(classify(Family::Open, &e), Class::Other, "a missing route is not a missing file");
        let e = ApiError::parse(502, b"Bad Gateway");
        assert_eq!((e.code.as_str(), e.message.as_str()), ("", "Bad Gateway"));
        assert_eq!(classify(Family::Consumer, &e), Class::Transient);
        let e = ApiError::parse(
            403,
            b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Request has expired.</Message></Error>",
        );
        assert_eq!((e.code.as_str(), e.message.as_str()), ("AccessDenied", "Request has expired."));
        let e = ApiError::parse(401, b"");
        assert_eq!(classify(Family::Consumer, &e), Class::AccessToken);
    }

    #[test]
    fn the_catalogue() {
        let c = |f, status, code: &str| classify(f, &ApiError { status, code: code.into(), ..Default::default() });
        use Family::*;
        assert_eq!(c(Consumer, 401, "AccessTokenInvalid"), Class::AccessToken);
        assert_eq!(c(Open, 401, "AccessTokenExpired"), Class::AccessToken);
        assert_eq!(c(Open, 400, "I400JD"), Class::AccessToken);
        assert_eq!(c(Consumer, 400, "I400JD"), Class::Other);
        assert_eq!(c(Consumer, 400, "DeviceSessionSignatureInvalid"), Class::Device);
        assert_eq!(c(Consumer, 401, "UserDeviceOffline"), Class::Device);
        assert_eq!(c(Share, 401, "ShareLinkTokenInvalid"), Class::ShareToken);
        assert_eq!(c(Consumer, 400, "InvalidParameter.RefreshToken"), Class::LoginDead);
        assert_eq!(c(Open, 401, "RefreshTokenExpired"), Class::LoginDead);
        for s in [
            "ShareLink.Cancelled",
            "ShareLink.Expired",
            "ShareLink.Forbidden",
            "NotFound.ShareLink",
            "InvalidResource.SharePwd",
        ] {
            assert_eq!(c(Share, 400, s), Class::ShareDead, "{s}");
        }
        assert_eq!(c(Consumer, 429, "TooManyRequests"), Class::Throttled);
        assert_eq!(c(Consumer, 404, "NotFound.File"), Class::NotFound);
        assert_eq!(c(Open, 404, "NotFound.FileId"), Class::NotFound);
        assert_eq!(c(Open, 400, "NotFound.UploadId"), Class::UploadGone);
        assert_eq!(c(Consumer, 409, "AlreadyExist.File"), Class::Exists);
        assert_eq!(c(Consumer, 409, "PreHashMatched"), Class::PreHashMatched);
        assert_eq!(c(Consumer, 400, "InvalidRapidProof"), Class::InvalidRapidProof);
        assert_eq!(c(Consumer, 400, "QuotaExhausted.Drive"), Class::NoSpace);
        assert_eq!(c(Consumer, 400, "ForbiddenFileInTheRecycleBin"), Class::NotFound);
        assert_eq!(c(Consumer, 400, "InvalidResource.FileTypeFolder"), Class::IsADirectory);
        assert_eq!(c(Open, 403, "UserNotAllowedAccessDrive"), Class::Forbidden);
        assert_eq!(c(Consumer, 503, ""), Class::Transient);
        assert_eq!(c(Consumer, 400, "BadRequest"), Class::Other);
        let words = ApiError { status: 400, message: "not found device info".into(), ..Default::default() };
        assert_eq!(classify(Consumer, &words), Class::Device);
    }

    #[test]
    fn verdicts_and_errors() {
        let (v, renew) = verdict(Family::Consumer, "list", &resp(401, r#"{"code":"AccessTokenInvalid"}"#), true, &[]);
        assert!(matches!(v, Verdict::Reauth(_)) && renew == Some(Renew::Token));
        let (v, renew) =
            verdict(Family::Consumer, "list", &resp(400, r#"{"code":"DeviceSessionSignatureInvalid"}"#), true, &[]);
        assert!(matches!(v, Verdict::Reauth(_)) && renew == Some(Renew::Device));
        let (v, _) = verdict(Family::Consumer, "list", &resp(502, "Bad Gateway"), true, &[]);
        assert!(matches!(v, Verdict::Retry(_)));
        let (v, _) = verdict(Family::Consumer, "mkdir", &resp(502, "Bad Gateway"), false, &[]);
        assert!(matches!(v, Verdict::Fatal(ref e) if e.hint() == Hint::Transient));
        let (v, _) = verdict(
            Family::Consumer,
            "create",
            &resp(409, r#"{"code":"PreHashMatched"}"#),
            false,
            &[Class::PreHashMatched],
        );
        assert!(matches!(v, Verdict::Done));
        let (v, _) = verdict(Family::Consumer, "get", &resp(404, r#"{"code":"NotFound.File"}"#), true, &[]);
        assert!(matches!(v, Verdict::Fatal(DriveError::NotFound)));
        let (v, _) = verdict(Family::Consumer, "trash", &resp(204, ""), false, &[]);
        assert!(matches!(v, Verdict::Done));
        let mut h = http::HeaderMap::new();
        h.insert("x-retry-after", "1500".parse().unwrap());
        let r = Response { status: 429, headers: h, body: bytes::Bytes::from_static(br#"{"code":"TooManyRequests"}"#) };
        let (v, _) = verdict(Family::Open, "list", &r, true, &[]);
        assert!(matches!(v, Verdict::Throttled { after: Some(d), .. } if d == Duration::from_millis(1500)));
        let e = error_of(Family::Consumer, "x", &resp(400, r#"{"code":"Odd","message":"refresh_token=abc"}"#));
        assert_eq!(e.code(), Some(&ProviderCode::Text("Odd".into())));
        assert!(!e.to_string().contains("abc"), "{e}");
    }
}
