//! The `Destination` header of COPY and MOVE, parsed once, by the code that acts on it.
//!
//! dav-server read it with `url::Url`, which resolves `http://host/..` to `/`, strips
//! tabs and treats `\` as `/`, while our root guard read it with `http::Uri` and saw
//! nothing to protect: `COPY /a/x` with `Destination: http://host/..` then replaced
//! the whole tree. Here a destination is an absolute path or an http(s) URL naming this
//! server, made of visible ASCII only; dot segments are resolved after decoding and one
//! that climbs above the root is an error, never clamped.

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestError {
    /// Not a destination at all (400).
    Bad(&'static str),
    /// Another server, or outside our URL prefix (502, RFC 4918 §9.8.5).
    Elsewhere,
}

impl std::fmt::Display for DestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DestError::Bad(why) => write!(f, "bad Destination: {why}"),
            DestError::Elsewhere => f.write_str("Destination is on another server"),
        }
    }
}

/// The names this server answers to, from the request: `Host` (or the HTTP/2
/// authority) and `X-Forwarded-Host` when a reverse proxy rewrote `Host`.
#[derive(Debug, Clone, Default)]
pub struct ThisServer<'a> {
    pub hosts: Vec<&'a str>,
}

/// Decode `%XX` escapes; `None` on a malformed escape.
pub(crate) fn percent_decode_strict(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.iter();
    while let Some(&b) = it.next() {
        if b == b'%' {
            let hi = (*it.next()? as char).to_digit(16)?;
            let lo = (*it.next()? as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

/// `host[:port]` compared without case, `:80`/`:443` equal to no port.
fn same_authority(a: &str, b: &str) -> bool {
    fn norm(s: &str) -> String {
        let s = s.trim().to_ascii_lowercase();
        for default in [":80", ":443"] {
            if let Some(h) = s.strip_suffix(default) {
                return h.to_string();
            }
        }
        s
    }
    !a.is_empty() && norm(a) == norm(b)
}

/// The decoded path (leading `/`, no trailing `/`, no dot or empty segments, prefix
/// removed) a `Destination` value names on this server.
pub fn parse_destination(value: &[u8], me: &ThisServer<'_>, prefix: &str) -> Result<String, DestError> {
    if value.is_empty() {
        return Err(DestError::Bad("empty"));
    }
    if let Some(&b) = value.iter().find(|&&b| !(0x21..=0x7e).contains(&b)) {
        return Err(match b {
            b' ' | b'\t' => DestError::Bad("white space"),
            0 => DestError::Bad("NUL"),
            _ => DestError::Bad("a control or non-ASCII byte"),
        });
    }
    if value.contains(&b'\\') {
        return Err(DestError::Bad("a backslash"));
    }
    if value.contains(&b'#') {
        return Err(DestError::Bad("a fragment"));
    }
    let lower: Vec<u8> = value.iter().take(8).map(u8::to_ascii_lowercase).collect();
    let path: &[u8] = if value.starts_with(b"//") {
        return Err(DestError::Bad("a scheme-relative URL"));
    } else if value.starts_with(b"/") {
        value
    } else {
        let rest = if lower.starts_with(b"http://") {
            value.get(7..)
        } else if lower.starts_with(b"https://") {
            value.get(8..)
        } else {
            return Err(DestError::Bad("neither an absolute path nor an http(s) URL"));
        };
        let rest = rest.unwrap_or_default();
        let end = rest.iter().position(|&b| b == b'/' || b == b'?').unwrap_or(rest.len());
        let authority = std::str::from_utf8(rest.get(..end).unwrap_or_default()).unwrap_or("");
        if authority.is_empty() {
            return Err(DestError::Bad("a URL without a host"));
        }
        if authority.contains('@') {
            return Err(DestError::Bad("credentials in the URL"));
        }
        if !me.hosts.iter().any(|h| same_authority(h, authority)) {
            return Err(DestError::Elsewhere);
        }
        match rest.get(end..) {
            Some(p) if p.starts_with(b"/") => p,
            _ => b"/",
        }
    };
    // The query does not name another resource (as for request paths).
    let path = match path.iter().position(|&b| b == b'?') {
        Some(i) => path.get(..i).unwrap_or_default(),
        None => path,
    };
    let mut segs: Vec<String> = vec![];
    for raw in path.split(|&b| b == b'/') {
        let seg = percent_decode_strict(raw).ok_or(DestError::Bad("a malformed %-escape"))?;
        let seg = String::from_utf8(seg).map_err(|_| DestError::Bad("not UTF-8 once decoded"))?;
        match seg.as_str() {
            "" | "." => {}
            ".." => {
                if segs.pop().is_none() {
                    return Err(DestError::Bad("'..' above the root"));
                }
            }
            s if s.contains('/') => return Err(DestError::Bad("an encoded '/' in a name")),
            s if s.contains('\0') => return Err(DestError::Bad("NUL")),
            s => segs.push(s.to_string()),
        }
    }
    let full = format!("/{}", segs.join("/"));
    if prefix.is_empty() {
        return Ok(full);
    }
    match full.strip_prefix(prefix) {
        Some("") => Ok("/".into()),
        Some(rest) if rest.starts_with('/') => Ok(rest.to_string()),
        _ => Err(DestError::Elsewhere),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> ThisServer<'static> {
        ThisServer { hosts: vec!["127.0.0.1:8080"] }
    }

    fn dest(v: &str) -> Result<String, DestError> {
        parse_destination(v.as_bytes(), &me(), "")
    }

    #[test]
    fn good_destinations() {
        assert_eq!(dest("http://127.0.0.1:8080/a/b.txt"), Ok("/a/b.txt".into()));
        assert_eq!(dest("HTTPS://127.0.0.1:8080/a/b/"), Ok("/a/b".into()));
        assert_eq!(dest("/a/%20x%2Ey"), Ok("/a/ x.y".into()));
        assert_eq!(dest("/a/./b//c/../d"), Ok("/a/b/d".into()));
        assert_eq!(dest("/a/b?x=1"), Ok("/a/b".into()));
        assert_eq!(dest("http://127.0.0.1:8080"), Ok("/".into()));
        assert_eq!(dest("/%E2%98%83"), Ok("/☃".into()));
        let h = ThisServer { hosts: vec!["Example.org"] };
        assert_eq!(parse_destination(b"http://example.org:80/x", &h, ""), Ok("/x".into()));
        assert_eq!(parse_destination(b"http://h/dav/x/y", &ThisServer { hosts: vec!["h"] }, "/dav"), Ok("/x/y".into()));
        assert_eq!(parse_destination(b"/dav", &ThisServer::default(), "/dav"), Ok("/".into()));
    }

    #[test]
    fn bad_destinations() {
        for v in [
            "http://127.0.0.1:8080/..",
            "http://127.0.0.1:8080/a/../..",
            "http://127.0.0.1:8080/%2e%2e",
            "/..",
            "/a/%2E%2E/../x",
            "file:///a",
            "x:/a",
            "a/b",
            "",
            "http://127.0.0.1:8080/.\t./",
            "http://127.0.0.1:8080/a b",
            "http://127.0.0.1:8080\\..",
            "http://127.0.0.1:8080/a\\..\\..",
            "/a%00b",
            "/a%2fb",
            "/a%zz",
            "/a%4",
            "/a/b#frag",
            "//127.0.0.1:8080/a",
            "http://user@127.0.0.1:8080/a",
            "http:///a",
            "/%ff",
            "/a\u{e9}",
        ] {
            assert!(matches!(dest(v), Err(DestError::Bad(_))), "{v:?} gave {:?}", dest(v));
        }
        for v in ["http://evil.example/a", "https://127.0.0.1:9999/a", "http://127.0.0.1/a"] {
            assert_eq!(dest(v), Err(DestError::Elsewhere), "{v:?}");
        }
        let h = ThisServer { hosts: vec!["h"] };
        assert_eq!(parse_destination(b"/other/x", &h, "/dav"), Err(DestError::Elsewhere));
        assert_eq!(parse_destination(b"/dav/../x", &h, "/dav"), Err(DestError::Elsewhere));
        assert_eq!(parse_destination(b"/davx/y", &h, "/dav"), Err(DestError::Elsewhere));
    }
}
