//! Strict parsers for the conditional headers clients send with writes: WebDAV's `If`
//! (RFC 4918 §10.4) and HTTP's entity-tag lists (`If-Match`, `If-None-Match`,
//! `If-Range`, RFC 9110 §13.1).
//!
//! dav-server's own `If` parser indexes past the end of the header on inputs such as
//! `(<urn:x> [x` and its entity-tag parser slices `"` to `[1..0]`: both panic. Every
//! request carrying these headers is checked here first and answered 400 when
//! malformed; what passes is well-formed enough for dav-server's parser too (checked
//! by `tests::accepted_headers_do_not_panic_dav_server` and the fuzz targets).

/// Most lists and conditions one `If` header may hold: evaluating a condition can cost
/// a lookup on a cloud drive.
pub const MAX_CONDITIONS: usize = 64;

/// A parsed `If` header: the lists are ORed, the conditions of a list ANDed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfHeader {
    pub lists: Vec<IfList>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfList {
    /// The Resource-Tag the list applies to (as written: an absolute URI or an absolute
    /// path); `None` = the request's resource.
    pub resource: Option<String>,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub not: bool,
    pub item: Item,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A state token (a lock token such as `urn:uuid:…`), without the angle brackets.
    Token(String),
    /// An entity tag, with its quotes (`"abc"`), and whether it is weak (`W/`).
    ETag { weak: bool, tag: String },
}

impl IfHeader {
    /// Every state token the header submits (RFC 4918 §10.4.1: the lock tokens a
    /// client presents, whatever the outcome of the conditions).
    pub fn tokens(&self) -> Vec<String> {
        self.lists
            .iter()
            .flat_map(|l| l.conditions.iter())
            .filter_map(|c| match &c.item {
                Item::Token(t) => Some(t.clone()),
                Item::ETag { .. } => None,
            })
            .collect()
    }
}

/// Why a header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t')
}

/// Characters of a URI reference (RFC 3986: unreserved, reserved, `%`).
fn is_uri_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b)
}

/// `etagc` of RFC 9110: `!`, `#`..`~`, obs-text. No quote, no space, no control.
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn skip_lws(&mut self) {
        while self.s.get(self.i).copied().is_some_and(is_lws) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    /// `<…>` with URI characters inside; the text between the brackets.
    fn angle(&mut self) -> Result<&'a str, Malformed> {
        if self.peek() != Some(b'<') {
            return Err(Malformed("expected '<'"));
        }
        let start = self.i + 1;
        let rest = self.s.get(start..).unwrap_or_default();
        let len = rest.iter().position(|&b| b == b'>').ok_or(Malformed("'<' without '>'"))?;
        let inner = rest.get(..len).unwrap_or_default();
        if inner.is_empty() || !inner.iter().all(|&b| is_uri_char(b)) {
            return Err(Malformed("not a URI between '<' and '>'"));
        }
        if !valid_percent(inner) {
            return Err(Malformed("bad %-escape in a URI"));
        }
        self.i = start + len + 1;
        // Only ASCII URI characters got here.
        std::str::from_utf8(inner).map_err(|_| Malformed("not a URI between '<' and '>'"))
    }

    /// `[ entity-tag ]`.
    fn bracketed_etag(&mut self) -> Result<(bool, &'a str), Malformed> {
        if self.peek() != Some(b'[') {
            return Err(Malformed("expected '['"));
        }
        self.i += 1;
        let (weak, tag, used) =
            entity_tag(self.s.get(self.i..).unwrap_or_default()).ok_or(Malformed("bad entity tag in '[…]'"))?;
        self.i += used;
        if self.peek() != Some(b']') {
            return Err(Malformed("'[' without ']'"));
        }
        self.i += 1;
        Ok((weak, tag))
    }
}

/// `%` is always followed by two hex digits.
fn valid_percent(s: &[u8]) -> bool {
    crate::dav::destination::percent_decode_strict(s).is_some()
}

/// An absolute URI (`scheme:` then anything) — what a state token must be.
fn is_absolute_uri(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once(':') else {
        return false;
    };
    let mut cs = scheme.bytes();
    cs.next().is_some_and(|c| c.is_ascii_alphabetic())
        && cs.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

/// One entity tag at the start of `s`: (weak, tag with quotes, bytes used).
fn entity_tag(s: &[u8]) -> Option<(bool, &str, usize)> {
    let (weak, off) = if s.starts_with(b"W/") { (true, 2) } else { (false, 0) };
    let body = s.get(off..)?;
    if body.first() != Some(&b'"') {
        return None;
    }
    let close = body.iter().skip(1).position(|&b| !is_etagc(b))? + 1;
    if body.get(close) != Some(&b'"') {
        return None;
    }
    let tag = std::str::from_utf8(body.get(..=close)?).ok()?;
    Some((weak, tag, off + close + 1))
}

/// Parse an `If` header value (RFC 4918 §10.4):
/// `1*No-tag-list | 1*Tagged-list`, `List = "(" 1*Condition ")"`,
/// `Condition = ["Not"] (Coded-URL | "[" entity-tag "]")`.
pub fn parse_if(value: &[u8]) -> Result<IfHeader, Malformed> {
    let mut c = Cursor { s: value, i: 0 };
    let mut lists: Vec<IfList> = vec![];
    let mut tagged: Option<bool> = None;
    let mut resource: Option<String> = None;
    let mut count = 0usize;
    loop {
        c.skip_lws();
        let Some(b) = c.peek() else { break };
        match b {
            b'<' => {
                if tagged == Some(false) {
                    return Err(Malformed("a Resource-Tag after untagged lists"));
                }
                if resource.is_some() && lists.last().is_none_or(|l| l.resource != resource) {
                    return Err(Malformed("a Resource-Tag without a list"));
                }
                let r = c.angle()?;
                tagged = Some(true);
                resource = Some(r.to_string());
                c.skip_lws();
                if c.peek() != Some(b'(') {
                    return Err(Malformed("a Resource-Tag must be followed by a list"));
                }
            }
            b'(' => {
                if tagged.is_none() {
                    tagged = Some(false);
                }
                c.i += 1;
                let mut conditions = vec![];
                loop {
                    c.skip_lws();
                    match c.peek() {
                        Some(b')') => {
                            c.i += 1;
                            break;
                        }
                        None => return Err(Malformed("'(' without ')'")),
                        _ => {}
                    }
                    let mut not = false;
                    if c.s.get(c.i..).is_some_and(|r| r.starts_with(b"Not")) {
                        not = true;
                        c.i += 3;
                        c.skip_lws();
                    }
                    let item = match c.peek() {
                        Some(b'<') => {
                            let t = c.angle()?;
                            if !is_absolute_uri(t) {
                                return Err(Malformed("a state token must be an absolute URI"));
                            }
                            Item::Token(t.to_string())
                        }
                        Some(b'[') => {
                            let (weak, tag) = c.bracketed_etag()?;
                            Item::ETag { weak, tag: tag.to_string() }
                        }
                        _ => return Err(Malformed("expected a state token '<…>' or an entity tag '[…]'")),
                    };
                    // A condition ends at white space, the next condition or ')'.
                    if !matches!(c.peek(), Some(b' ' | b'\t' | b'<' | b'[' | b')' | b'N')) {
                        return Err(Malformed("junk after a condition"));
                    }
                    count += 1;
                    if count > MAX_CONDITIONS {
                        return Err(Malformed("too many conditions"));
                    }
                    conditions.push(Condition { not, item });
                }
                if conditions.is_empty() {
                    return Err(Malformed("an empty list '()'"));
                }
                lists.push(IfList { resource: resource.clone(), conditions });
            }
            _ => return Err(Malformed("expected '(' or '<'")),
        }
    }
    if lists.is_empty() || !c.at_end() {
        return Err(Malformed("no list"));
    }
    if resource.is_some() && lists.last().is_some_and(|l| l.resource != resource) {
        return Err(Malformed("a Resource-Tag without a list"));
    }
    Ok(IfHeader { lists })
}

/// `If-Match` / `If-None-Match`: `*` or a comma-separated list of entity tags.
pub fn valid_etag_list(value: &[u8]) -> bool {
    let trimmed = trim(value);
    if trimmed == b"*" {
        return true;
    }
    let mut any = false;
    for part in trimmed.split(|&b| b == b',') {
        let p = trim(part);
        if p.is_empty() {
            continue; // RFC 9110 §5.6.1: empty list elements are allowed
        }
        match entity_tag(p) {
            Some((_, _, used)) if used == p.len() => any = true,
            _ => return false,
        }
    }
    any
}

/// `If-Range`: one entity tag or an HTTP date.
pub fn valid_if_range(value: &[u8]) -> bool {
    let v = trim(value);
    if let Some((_, _, used)) = entity_tag(v) {
        return used == v.len();
    }
    std::str::from_utf8(v).is_ok_and(|s| httpdate::parse_http_date(s).is_ok())
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if is_lws(*first) {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if is_lws(*last) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(t: &str) -> Condition {
        Condition { not: false, item: Item::Token(t.into()) }
    }

    #[test]
    fn parses_the_rfc_examples() {
        // RFC 4918's own examples put spaces in entity tags, which RFC 9110 does not
        // allow (and dav-server cannot read); ours have none.
        assert!(parse_if(b"([\"I am an ETag\"])").is_err());
        let h =
            parse_if(b"(<urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2> [\"I-am-an-ETag\"]) ([\"another\"])").unwrap();
        assert_eq!(h.lists.len(), 2);
        assert_eq!(h.lists[0].conditions[1].item, Item::ETag { weak: false, tag: "\"I-am-an-ETag\"".into() });
        let h = parse_if(
            b"(Not <urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2> <urn:uuid:58f202ac-22cf-11d1-b12d-002035b29092>)",
        )
        .unwrap();
        assert!(h.lists[0].conditions[0].not);
        assert!(!h.lists[0].conditions[1].not);
        let h = parse_if(b"</resource1> (<urn:uuid:a> [W/\"weak\"]) ([\"strong\"])").unwrap();
        assert_eq!(h.lists.len(), 2);
        assert!(h.lists.iter().all(|l| l.resource.as_deref() == Some("/resource1")));
        let h =
            parse_if(b"<http://www.example.com/specs/> (<urn:uuid:a>) <http://x.example/b> (<urn:uuid:b>)").unwrap();
        assert_eq!(h.lists[1].resource.as_deref(), Some("http://x.example/b"));
        assert_eq!(h.tokens(), vec!["urn:uuid:a".to_string(), "urn:uuid:b".to_string()]);
        // litmus sends these.
        parse_if(b"(<DAV:no-lock>)").unwrap();
        parse_if(b"(<opaquelocktoken:abc> [\"x\"]) (Not <DAV:no-lock> [\"x\"])").unwrap();
        assert_eq!(parse_if(b"  (<urn:x>)  ").unwrap().lists[0].conditions, vec![tok("urn:x")]);
        parse_if(b"(Not<urn:x>)").unwrap();
    }

    #[test]
    fn refuses_what_crashed_dav_server() {
        for bad in [
            &b"(<urn:x> [x"[..],
            b"<x",
            b"([",
            b"(<",
            b"([\"",
            b"([\"])",
            b"(<urn:\"x>)",
            b"([W/\"])",
            b"",
            b"   ",
            b"()",
            b"(<>)",
            b"(<urn:x>",
            b"(urn:x)",
            b"(<nocolon>)",
            b"(<urn:x>)junk",
            b"(<urn:x>) </a> (<urn:y>)",
            b"</a>",
            b"</a> (<urn:x>) </b>",
            b"(Not)",
            b"(Not Not <urn:x>)",
            b"(<urn:x%zz>)",
            b"(<urn:x y>)",
            b"([\"a\"b])",
            b"(\xff)",
            b"(<urn:\xc3\xa9>)",
        ] {
            assert!(parse_if(bad).is_err(), "accepted {:?}", String::from_utf8_lossy(bad));
        }
        let many = "(<urn:x>)".repeat(MAX_CONDITIONS + 1);
        assert!(parse_if(many.as_bytes()).is_err());
    }

    #[test]
    fn etag_lists() {
        for good in [&b"*"[..], b"\"a\"", b"W/\"a\", \"b\"", b" \"a\" ,, \"\" "] {
            assert!(valid_etag_list(good), "{:?}", String::from_utf8_lossy(good));
        }
        for bad in [&b"\""[..], b"W/\"", b"a", b"\"a", b"\"a\" b", b"", b",", b"\"a\"\"b\"", b"* , \"a\""] {
            assert!(!valid_etag_list(bad), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(valid_if_range(b"\"x\""));
        assert!(valid_if_range(b"Sat, 03 Feb 2001 04:05:06 GMT"));
        assert!(!valid_if_range(b"\""));
        assert!(!valid_if_range(b"yesterday"));
    }

    /// Whatever passes our parser, dav-server's parser must survive.
    #[test]
    fn accepted_headers_do_not_panic_dav_server() {
        for v in [
            &b"(<urn:x> [\"a]b\"])"[..],
            b"([W/\"\"])",
            b"(Not<urn:x>[\"\"])",
            b"</a/b> (<urn:x>)",
            b"<http://h/a> ([\"x\"]) (<urn:y>)",
        ] {
            assert!(parse_if(v).is_ok(), "{:?}", String::from_utf8_lossy(v));
            crate::dav::fuzz::if_header(v);
        }
    }
}
