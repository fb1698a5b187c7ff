//! Small helpers: request/response types, envelopes, encodings.

use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

/// A fully read request, host prefix already split off.
pub(crate) struct Req {
    pub method: String,
    pub host: String,
    /// Path below the host, percent-decoded, e.g. `/open/ufile/files`.
    pub path: String,
    pub raw_query: String,
    pub query: Vec<(String, String)>,
    pub form: Vec<(String, String)>,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    pub fn q(&self, name: &str) -> Option<String> {
        non_empty(&self.query, name)
    }

    pub fn f(&self, name: &str) -> Option<String> {
        non_empty(&self.form, name)
    }

    /// Query or form.
    pub fn any(&self, name: &str) -> Option<String> {
        self.q(name).or_else(|| self.f(name))
    }

    pub fn has_query_key(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }
}

fn non_empty(v: &[(String, String)], name: &str) -> Option<String> {
    v.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).filter(|v| !v.is_empty())
}

/// A response before it becomes a hyper response.
pub(crate) struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// For HEAD: content-length to announce without a body.
    pub head_len: Option<u64>,
}

impl Resp {
    pub fn new(status: u16, ctype: &str, body: impl Into<Bytes>) -> Resp {
        Resp { status, headers: vec![("content-type".into(), ctype.into())], body: body.into(), head_len: None }
    }

    pub fn json(v: Value) -> Resp {
        Self::json_status(200, v)
    }

    pub fn json_status(status: u16, v: Value) -> Resp {
        Resp::new(status, "application/json; charset=utf-8", serde_json::to_vec(&v).unwrap())
    }

    pub fn text(status: u16, s: &str) -> Resp {
        Resp::new(status, "text/plain; charset=utf-8", s.to_string())
    }

    pub fn xml(status: u16, s: String) -> Resp {
        Resp::new(status, "application/xml", s)
    }

    pub fn empty(status: u16) -> Resp {
        Resp { status, headers: vec![], body: Bytes::new(), head_len: None }
    }

    pub fn header(mut self, k: &str, v: impl Into<String>) -> Resp {
        self.headers.push((k.to_string(), v.into()));
        self
    }
}

// ---------------------------------------------------------------------- envelopes (ref §1.3)

/// proapi success: `{"state":true,"code":0,"message":"","data":…}`
pub(crate) fn pro_ok(data: Value) -> Resp {
    Resp::json(json!({"state": true, "code": 0, "message": "", "data": data}))
}

/// proapi failure: HTTP 200, `state:false`, both `code`+`errno` and `message`+`error`
/// (ref §1.3: "the fake server should emit both pairs on errors").
pub(crate) fn pro_err(code: i64, msg: &str) -> Resp {
    Resp::json(json!({"state": false, "code": code, "errno": code, "message": msg, "error": msg, "data": {}}))
}

/// passport success: numeric `state` 1.
pub(crate) fn pass_ok(data: Value) -> Resp {
    Resp::json(json!({"state": 1, "code": 0, "message": "", "data": data, "error": "", "errno": 0}))
}

/// passport failure: numeric `state` 0, `data` `{}`.
pub(crate) fn pass_err(code: i64, msg: &str) -> Resp {
    Resp::json(json!({"state": 0, "code": code, "message": msg, "data": {}, "error": msg, "errno": code}))
}

// ---------------------------------------------------------------------- parsing

pub(crate) fn parse_urlencoded(b: &[u8]) -> Vec<(String, String)> {
    emukit::util::parse_urlencoded(b)
}

/// Minimal multipart/form-data parser (restic-115 sends multipart, ref §1.2).
pub(crate) fn parse_multipart(body: &[u8], boundary: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    let mut pos = match find(body, d, 0) {
        Some(p) => p + d.len(),
        None => return out,
    };
    loop {
        // after a delimiter: "--" ends, else CRLF then headers
        if body[pos..].starts_with(b"--") {
            break;
        }
        if body[pos..].starts_with(b"\r\n") {
            pos += 2;
        }
        let Some(hend) = find(body, b"\r\n\r\n", pos) else { break };
        let headers = String::from_utf8_lossy(&body[pos..hend]).into_owned();
        let content_start = hend + 4;
        let Some(next) = find(body, d, content_start) else { break };
        let mut content_end = next;
        if content_end >= 2 && &body[content_end - 2..content_end] == b"\r\n" {
            content_end -= 2;
        }
        let name = headers.lines().find(|l| l.to_ascii_lowercase().starts_with("content-disposition")).and_then(|l| {
            let i = l.find("name=\"")?;
            let rest = &l[i + 6..];
            Some(rest[..rest.find('"')?].to_string())
        });
        if let Some(name) = name {
            out.push((name, String::from_utf8_lossy(&body[content_start..content_end]).into_owned()));
        }
        pos = next + d.len();
    }
    out
}

pub(crate) fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > hay.len() {
        return None;
    }
    hay[from..].windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

pub(crate) fn parse_form_body(content_type: Option<&str>, body: &[u8]) -> Vec<(String, String)> {
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    if ct.starts_with("multipart/form-data") {
        let boundary = content_type
            .unwrap()
            .split(';')
            .map(str::trim)
            .find_map(|p| p.strip_prefix("boundary=").or_else(|| p.strip_prefix("BOUNDARY=")))
            .map(|b| b.trim_matches('"').to_string());
        match boundary {
            Some(b) => parse_multipart(body, &b),
            None => Vec::new(),
        }
    } else if ct.starts_with("application/x-www-form-urlencoded") || ct.is_empty() {
        parse_urlencoded(body)
    } else {
        Vec::new()
    }
}

// ---------------------------------------------------------------------- encodings

pub(crate) fn sha1_hex(b: &[u8]) -> String {
    hex::encode_upper(Sha1::digest(b))
}

pub(crate) fn rand_alnum(n: usize) -> String {
    emukit::util::rand_from(emukit::util::ALNUM, n)
}

pub(crate) fn rand_lower(n: usize) -> String {
    emukit::util::rand_from(emukit::util::LOWER_ALNUM, n)
}

pub(crate) fn rand_hex(n: usize) -> String {
    emukit::util::rand_hex(n)
}

/// Decode base64 in either alphabet, with or without padding (ref §2.1 PKCE).
pub(crate) fn b64_lenient(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let s = s.trim();
    STANDARD
        .decode(s)
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .ok()
}

pub(crate) fn pct(s: &str) -> String {
    emukit::util::pct_encode(s)
}

pub(crate) fn pct_decode(s: &str) -> String {
    emukit::util::pct_decode(s)
}

/// `"1.00MB"`-style size (ref §4.2 `size`).
pub(crate) fn size_format(n: u64) -> String {
    const U: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{v:.2}{}", U[i])
    }
}

/// Unix seconds → `2026-01-01T01:00:00Z`.
pub(crate) fn rfc3339(secs: u64) -> String {
    emukit::util::rfc3339(secs as i64)
}

/// Unix seconds → `2026-01-01T01:00:00.000Z` (OSS XML style).
pub(crate) fn iso_millis(secs: u64) -> String {
    emukit::util::rfc3339_millis(secs as i64 * 1000)
}

pub(crate) fn is_upper_hex40(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c))
}

pub(crate) fn is_hex40(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

pub(crate) fn extension(name: &str) -> String {
    match name.rfind('.') {
        Some(i) if i + 1 < name.len() => name[i + 1..].to_ascii_lowercase(),
        _ => String::new(),
    }
}

pub(crate) fn is_video_ext(ext: &str) -> bool {
    matches!(
        ext,
        "mkv" | "mp4" | "avi" | "mov" | "wmv" | "flv" | "ts" | "m2ts" | "rmvb" | "webm" | "iso" | "mpg" | "mpeg"
    )
}

/// Coarse `type` categories of ref §4.1.
pub(crate) fn type_of_ext(ext: &str) -> u32 {
    match ext {
        "doc" | "docx" | "xls" | "xlsx" | "ppt" | "pptx" | "pdf" | "txt" | "md" | "csv" => 1,
        "jpg" | "jpeg" | "png" | "gif" | "bmp" | "webp" | "heic" | "tif" | "tiff" => 2,
        "mp3" | "flac" | "wav" | "aac" | "ogg" | "m4a" | "ape" => 3,
        e if is_video_ext(e) => 4,
        "zip" | "rar" | "7z" | "tar" | "gz" | "bz2" | "xz" => 5,
        "apk" | "exe" | "dmg" | "msi" | "ipa" => 6,
        "epub" | "mobi" | "azw3" => 7,
        _ => 0,
    }
}

/// Escape XML element text (quotes stay literal, as OSS prints `<ETag>"…"</ETag>`).
pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Text of every `<tag>…</tag>` in document order (flat XML only).
pub(crate) fn xml_tags(doc: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(i) = doc[pos..].find(&open) {
        let s = pos + i + open.len();
        let Some(j) = doc[s..].find(&close) else { break };
        out.push(doc[s..s + j].to_string());
        pos = s + j + close.len();
    }
    out
}
