//! Windows Explorer through the WebClient service (the mini-redirector): class 2
//! required; PROPFIND with an empty body (allprop, with Win32 properties because the
//! User-Agent says "Microsoft") and with its own `prop` list; a file is created as "PUT
//! empty → LOCK → PUT body → PROPPATCH Win32 times → UNLOCK", and Explorer then shows
//! the Win32LastModifiedTime it set as "Date modified".

use crate::*;

pub const UA: &str = "Microsoft-WebDAV-MiniRedir/10.0.19045";
const MS: &str = "urn:schemas-microsoft-com:";

/// What the mini-redirector sends to list a folder.
pub const LIST: &str = "<?xml version=\"1.0\" encoding=\"utf-8\" ?><D:propfind xmlns:D=\"DAV:\"><D:prop xmlns:Z=\"urn:schemas-microsoft-com:\"><D:creationdate/><D:displayname/><D:getcontentlength/><D:getlastmodified/><D:resourcetype/><Z:Win32CreationTime/><Z:Win32LastAccessTime/><Z:Win32LastModifiedTime/><Z:Win32FileAttributes/></D:prop></D:propfind>";

const QUOTA: &str = "<?xml version=\"1.0\" encoding=\"utf-8\" ?><D:propfind xmlns:D=\"DAV:\"><D:prop><D:quota-available-bytes/><D:quota-used-bytes/></D:prop></D:propfind>";

pub const TIME: &str = "Sat, 03 Feb 2001 04:05:06 GMT";

/// The PROPPATCH after writing a file.
pub fn win32_patch() -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\" ?><D:propertyupdate xmlns:D=\"DAV:\" xmlns:Z=\"urn:schemas-microsoft-com:\"><D:set><D:prop>\
         <Z:Win32CreationTime>Fri, 02 Feb 2001 01:02:03 GMT</Z:Win32CreationTime><Z:Win32LastAccessTime>{TIME}</Z:Win32LastAccessTime>\
         <Z:Win32LastModifiedTime>{TIME}</Z:Win32LastModifiedTime><Z:Win32FileAttributes>00000020</Z:Win32FileAttributes></D:prop></D:set></D:propertyupdate>"
    )
}

pub const LOCK: &str = "<?xml version=\"1.0\" encoding=\"utf-8\" ?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner><D:href>DESKTOP-1\\alice</D:href></D:owner></D:lockinfo>";

#[test]
fn windows_mini_redirector() {
    let fx = Fx::new();
    let h = |extra: &[(&'static str, &'static str)]| hdrs(&[("User-Agent", UA), ("translate", "f")], extra);
    let mut r = Replay::new("Windows mini-redirector");
    r.step("OPTIONS / advertises class 2 and LOCK", || {
        let o = fx.req("OPTIONS", "/", &h(&[]), None);
        let hd = headers(&o);
        check(hd.get("dav").is_some_and(|d| d.contains('2')), || format!("DAV: {:?}", hd.get("dav")))?;
        check(hd.get("allow").is_some_and(|a| a.contains("LOCK")), || format!("Allow: {:?}", hd.get("allow")))
    });
    r.step("PROPFIND Depth 0 of the mount, empty body: allprop with Win32 properties", || {
        let rs = ms(&fx.req("PROPFIND", "/data", &h(&[("Depth", "0"), ("Content-Length", "0")]), None))?;
        let root = find(&rs, "/data/")?;
        check(root.is_collection(), || "the mount is not a collection".into())?;
        check(root.text(MS, "Win32FileAttributes").as_deref() == Some("00000010"), || format!("{root:?}"))?;
        check(root.text(MS, "Win32LastModifiedTime").is_some(), || format!("{root:?}"))
    });
    r.step("PROPFIND Depth 1 with the Win32 prop list: every property once, 200 first", || {
        let rs = ms(&fx.req("PROPFIND", "/data/", &h(&[("Depth", "1")]), Some(LIST.as_bytes())))?;
        check(rs.len() == 5, || format!("{} responses", rs.len()))?;
        each_once(
            &rs,
            &[
                ("DAV:", "creationdate"),
                ("DAV:", "displayname"),
                ("DAV:", "getcontentlength"),
                ("DAV:", "getlastmodified"),
                ("DAV:", "resourcetype"),
                (MS, "Win32CreationTime"),
                (MS, "Win32LastAccessTime"),
                (MS, "Win32LastModifiedTime"),
                (MS, "Win32FileAttributes"),
            ],
        )?;
        let notes = find(&rs, "/data/notes.txt")?;
        check(notes.first_status() == 200, || format!("{notes:?}"))?;
        check(notes.text("DAV:", "getlastmodified") == Some(mtime_http(&fx.t.join("data/notes.txt"))), || {
            format!("{notes:?}")
        })?;
        check(notes.text(MS, "Win32FileAttributes").as_deref() == Some("00000020"), || format!("{notes:?}"))?;
        let hidden = find(&rs, "/data/.hidden")?;
        check(hidden.text(MS, "Win32FileAttributes").as_deref() == Some("00000022"), || format!("{hidden:?}"))?;
        check(matches!(notes.prop("DAV:", "displayname"), Some((404, _))), || format!("{notes:?}"))
    });
    r.step("PROPFIND quota: free space of the folder's file system", || {
        let rs = ms(&fx.req("PROPFIND", "/data/", &h(&[("Depth", "0")]), Some(QUOTA.as_bytes())))?;
        let root = find(&rs, "/data/")?;
        let avail: u64 =
            root.text("DAV:", "quota-available-bytes").and_then(|t| t.parse().ok()).ok_or("no available")?;
        let used: u64 = root.text("DAV:", "quota-used-bytes").and_then(|t| t.parse().ok()).ok_or("no used")?;
        check(avail > 0 && used > 0, || format!("available {avail}, used {used}"))
    });
    r.step("PUT of an empty new file", || {
        want_status(&fx.req("PUT", "/data/new.docx", &h(&[("Content-Length", "0")]), Some(b"")), &[201])
    });
    let mut token = String::new();
    r.step("LOCK the new file", || {
        let l = fx.req("LOCK", "/data/new.docx", &h(&[("Timeout", "Second-3600")]), Some(LOCK.as_bytes()));
        want_status(&l, &[200])?;
        token = l.header("Lock-Token").unwrap_or_default().to_string();
        check(token.starts_with('<'), || format!("Lock-Token {token:?}"))
    });
    let cond = format!("({token})");
    r.step("PUT the body with the lock token", || {
        let c = [("User-Agent", UA), ("If", cond.as_str())];
        want_status(&fx.req("PUT", "/data/new.docx", &c, Some(b"the document")), &[200, 204])
    });
    r.step("PROPPATCH the Win32 times with the lock token: all 200", || {
        let c = [("User-Agent", UA), ("If", cond.as_str())];
        let rs = ms(&fx.req("PROPPATCH", "/data/new.docx", &c, Some(win32_patch().as_bytes())))?;
        let f = find(&rs, "/data/new.docx")?;
        check(f.propstats.len() == 1 && f.first_status() == 200 && f.propstats[0].props.len() == 4, || format!("{f:?}"))
    });
    r.step("the file's mtime is the Win32LastModifiedTime that was set", || {
        check(mtime_http(&fx.t.join("data/new.docx")) == TIME, || mtime_http(&fx.t.join("data/new.docx")))
    });
    r.step("PROPFIND shows that time and the creation time set", || {
        let rs = ms(&fx.req("PROPFIND", "/data/new.docx", &h(&[("Depth", "0")]), Some(LIST.as_bytes())))?;
        let f = find(&rs, "/data/new.docx")?;
        check(f.text("DAV:", "getlastmodified").as_deref() == Some(TIME), || format!("{f:?}"))?;
        check(f.text(MS, "Win32LastModifiedTime").as_deref() == Some(TIME), || format!("{f:?}"))?;
        check(f.text(MS, "Win32CreationTime").as_deref() == Some("Fri, 02 Feb 2001 01:02:03 GMT"), || format!("{f:?}"))
    });
    r.step("UNLOCK", || {
        let c = [("User-Agent", UA), ("Lock-Token", token.as_str())];
        want_status(&fx.req("UNLOCK", "/data/new.docx", &c, None), &[204])
    });
    r.step("PROPFIND of desktop.ini: 404", || {
        want_status(&fx.req("PROPFIND", "/data/desktop.ini", &h(&[("Depth", "0")]), Some(LIST.as_bytes())), &[404])
    });
    r.step("GET the file back", || {
        let g = fx.req("GET", "/data/new.docx", &h(&[]), None);
        want_status(&g, &[200])?;
        check(g.body == b"the document", || g.text())
    });
    r.finish();
}
