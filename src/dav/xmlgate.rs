//! A streaming check of XML request bodies (PROPFIND, PROPPATCH, LOCK) before any tree
//! is built from them.
//!
//! xmltree builds elements recursively: ~1,900 nested elements in a 7.5 KB body
//! overflowed the worker's stack and aborted the whole process. This check reads the
//! body as a stream of events with the same parser and settings xmltree uses (so it
//! refuses exactly what xmltree would refuse, plus bodies nested deeper than
//! [`MAX_DEPTH`]), in constant stack and linear time.

use xml::reader::{ParserConfig, XmlEvent};

/// Deepest element nesting accepted. Real clients stay below 8 (`propertyupdate /
/// set / prop / value / …`); dead property values may nest a little more.
pub const MAX_DEPTH: usize = 32;

/// Largest XML body read (dav-server's own limit for bodies it reads itself).
pub const MAX_BODY: usize = 64 * 1024;

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XmlReject {
    TooDeep,
    /// Not well-formed, or without a root element (what xmltree would fail on, or
    /// — for a body with no element at all — panic on).
    Malformed(String),
}

impl std::fmt::Display for XmlReject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XmlReject::TooDeep => write!(f, "XML nested deeper than {MAX_DEPTH} elements"),
            XmlReject::Malformed(m) => write!(f, "malformed XML: {m}"),
        }
    }
}

/// The parser settings xmltree's `Element::parse` uses.
fn config() -> ParserConfig {
    ParserConfig::new().ignore_comments(false)
}

/// Check a non-empty body: well-formed, one root element, nesting at most `MAX_DEPTH`.
pub fn check(body: &[u8]) -> Result<(), XmlReject> {
    let reader = config().create_reader(body);
    let mut depth = 0usize;
    let mut elements = 0usize;
    for ev in reader {
        match ev {
            Ok(XmlEvent::StartElement { .. }) => {
                depth += 1;
                elements += 1;
                if depth > MAX_DEPTH {
                    return Err(XmlReject::TooDeep);
                }
            }
            Ok(XmlEvent::EndElement { .. }) => depth = depth.saturating_sub(1),
            Ok(XmlEvent::EndDocument) => break,
            Ok(_) => {}
            Err(e) => return Err(XmlReject::Malformed(e.msg().to_string())),
        }
    }
    if elements == 0 {
        return Err(XmlReject::Malformed("no root element".into()));
    }
    Ok(())
}

/// Parse `body` into a tree, after [`check`]: the only way our own code builds trees
/// from client XML.
pub fn parse(body: &[u8]) -> Result<xmltree::Element, XmlReject> {
    check(body)?;
    xmltree::Element::parse_with_config(body, config()).map_err(|e| XmlReject::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(n: usize) -> Vec<u8> {
        let mut b = b"<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\">".to_vec();
        for _ in 0..n {
            b.extend_from_slice(b"<x>");
        }
        for _ in 0..n {
            b.extend_from_slice(b"</x>");
        }
        b.extend_from_slice(b"</D:propfind>");
        b
    }

    #[test]
    fn depth_is_bounded_before_any_tree() {
        assert_eq!(check(&nested(MAX_DEPTH - 1)), Ok(()));
        assert_eq!(check(&nested(MAX_DEPTH)), Err(XmlReject::TooDeep));
        // Deep enough to overflow a recursive parser: refused in constant stack.
        assert_eq!(check(&nested(200_000)), Err(XmlReject::TooDeep));
        // Unclosed nesting (no end tags at all) too.
        assert_eq!(check(&"<a>".repeat(100_000).into_bytes()), Err(XmlReject::TooDeep));
    }

    #[test]
    fn malformed_and_rootless_bodies() {
        for b in
            [&b"<a>"[..], b"not xml", b"<!-- only a comment -->", b"<?xml version=\"1.0\"?>", b"<a></b>", b"\xff\xfe"]
        {
            assert!(matches!(check(b), Err(XmlReject::Malformed(_))), "{:?}", String::from_utf8_lossy(b));
        }
        let ok = br#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>"#;
        assert_eq!(check(ok), Ok(()));
        assert_eq!(parse(ok).unwrap().name, "propfind");
    }
}
