//! The same client sequences against a cloud mount: the 115 driver through the binary,
//! against the emu115 emulator (written from the reference, not from the driver). 115
//! stores names in NFC and cannot set modification times; it knows its quota.

use std::sync::Arc;

use emu115::{Emu115, Opts};

use crate::*;

const UID: u64 = 42_424_242;

struct Cloud {
    _rt: tokio::runtime::Runtime,
    emu: Arc<Emu115>,
    _t: TestDir,
    srv: Server,
}

impl Cloud {
    fn new() -> Cloud {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let emu = Arc::new(rt.block_on(Emu115::start(Opts::default())));
        let cookie = emu.add_user(UID, "alice");
        let t = TestDir::new();
        let mut eps = String::new();
        for (h, b) in emu.endpoints() {
            eps.push_str(&format!("{h:?} = {b:?}\n"));
        }
        let mount = format!(
            "[[mounts]]\npath = \"/115\"\ndriver = \"115\"\npolicy = \"proxy\"\ncache_ttl = \"1h\"\n[mounts.options]\ncookie = {cookie:?}\nrate_limit = 0\nretry_base_ms = 20\nm115_test_modulus = {:?}\nec115_server_public_key = {:?}\n[mounts.options.endpoints]\n{eps}",
            emu.m115_modulus_hex(),
            emu.ec_server_public_hex()
        );
        let state = t.mkdir("state");
        let cfg = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = {}\nlog_level = \"info\"\n\n[[users]]\nname = {}\npassword = {}\n\n{mount}",
            toml_str(state.to_str().unwrap()),
            toml_str(USER),
            toml_str(PW)
        );
        let path = t.write("pandav.toml", cfg);
        let srv = Server::start_file(&path, t.path());
        Cloud { _rt: rt, emu, _t: t, srv }
    }

    fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> HttpOut {
        call(self.srv.url(), method, path, headers, body)
    }

    fn api_calls(&self) -> u64 {
        self.emu.requests().len() as u64
    }
}

#[test]
fn clients_on_a_cloud_mount() {
    let c = Cloud::new();
    let dir = c.emu.mkdir(UID, 0, "Films");
    c.emu.put_file(UID, dir, "caf\u{e9}.txt", b"nfc on 115".to_vec());
    for i in 0..40 {
        c.emu.put_file(UID, dir, &format!("clip {i:02}.mp4"), format!("clip {i}").into_bytes());
    }
    c.emu.set_space_total(UID, 1_000_000_000);
    let mut r = Replay::new("clients on a 115 mount");
    let list = crate::finder::LIST.as_bytes();
    r.step("Finder lists the folder (cold: the provider is asked)", || {
        let rs =
            ms(&c.req("PROPFIND", "/115/Films/", &[("User-Agent", crate::finder::UA), ("Depth", "1")], Some(list)))?;
        check(rs.len() == 42, || format!("{} responses", rs.len()))?;
        find(&rs, "/115/Films/caf%C3%A9.txt").map(|_| ())
    });
    r.step("a warm listing asks the provider nothing", || {
        let before = c.api_calls();
        let rs = ms(&c.req("PROPFIND", "/115/Films/", &[("Depth", "1")], Some(list)))?;
        let after = c.api_calls();
        check(rs.len() == 42 && after == before, || {
            format!("{} responses, {} provider calls", rs.len(), after - before)
        })
    });
    r.step("Finder's NFD name finds the NFC file", || {
        let rs = ms(&c.req(
            "PROPFIND",
            "/115/Films/cafe%CC%81.txt",
            &[("User-Agent", crate::finder::UA), ("Depth", "0")],
            Some(list),
        ))?;
        check(rs.len() == 1 && rs[0].text("DAV:", "getcontentlength").as_deref() == Some("10"), || format!("{rs:?}"))
    });
    r.step("PUT of the NFD name replaces the NFC file; no second file", || {
        want_status(
            &c.req(
                "PUT",
                "/115/Films/cafe%CC%81.txt",
                &[("User-Agent", crate::finder::UA)],
                Some(b"saved from Finder"),
            ),
            &[204],
        )?;
        let cafes: Vec<_> = c.emu.list_children(UID, dir).into_iter().filter(|e| e.name.starts_with("caf")).collect();
        check(cafes.len() == 1 && cafes[0].name == "caf\u{e9}.txt", || format!("{cafes:?}"))?;
        let bytes = c.emu.file_bytes(cafes[0].id).unwrap_or_default();
        check(&bytes[..] == b"saved from Finder", || format!("{bytes:?}"))
    });
    r.step("quota from the provider: used + available = its total", || {
        let rs = ms(&c.req("PROPFIND", "/115/", &[("Depth", "0")], Some(crate::finder::QUOTA.as_bytes())))?;
        let n = |name| rs[0].text("DAV:", name).and_then(|t| t.parse::<u64>().ok());
        let (a, u) = (n("quota-available-bytes"), n("quota-used-bytes"));
        check(matches!((a, u), (Some(a), Some(u)) if a + u == 1_000_000_000), || format!("{rs:?}"))
    });
    r.step("Windows PROPPATCH of Win32 times: 403 for the mtime 115 cannot set, 424 for the rest", || {
        let path = "/115/Films/clip%2000.mp4";
        let rs = ms(&c.req(
            "PROPPATCH",
            path,
            &[("User-Agent", crate::windows::UA)],
            Some(crate::windows::win32_patch().as_bytes()),
        ))?;
        let f = &rs[0];
        check(matches!(f.prop("urn:schemas-microsoft-com:", "Win32LastModifiedTime"), Some((403, _))), || {
            format!("{f:?}")
        })?;
        check(matches!(f.prop("urn:schemas-microsoft-com:", "Win32CreationTime"), Some((424, _))), || {
            format!("{f:?}")
        })?;
        check(!f.propstats.iter().any(|p| p.code() == 200), || format!("a false 200: {f:?}"))?;
        // Nothing was kept: the times are 115's.
        let rs = ms(&c.req("PROPFIND", path, &[("Depth", "0")], Some(crate::windows::LIST.as_bytes())))?;
        let created = rs[0].text("urn:schemas-microsoft-com:", "Win32CreationTime");
        let modified = rs[0].text("DAV:", "getlastmodified");
        check(
            !created.as_deref().is_some_and(|t| t.contains("2001"))
                && modified.as_deref() != Some(crate::windows::TIME),
            || format!("{created:?} {modified:?}"),
        )
    });
    r.step("rclone (owncloud) gets oc:checksums once, with 115's SHA-1", || {
        let body = b"<?xml version=\"1.0\"?>\n<d:propfind xmlns:d=\"DAV:\" xmlns:oc=\"http://owncloud.org/ns\">\n <d:prop>\n  <d:getcontentlength />\n  <oc:checksums />\n </d:prop>\n</d:propfind>\n";
        let rs = ms(&c.req("PROPFIND", "/115/Films/", &[("Depth", "1")], Some(body)))?;
        each_once(&rs, &[("http://owncloud.org/ns", "checksums")])?;
        let clip = find(&rs, "/115/Films/clip%2002.mp4")?;
        let (code, sums) = clip.prop("http://owncloud.org/ns", "checksums").ok_or("no checksums")?;
        let text = sums.get_child("checksum").and_then(|t| t.get_text()).unwrap_or_default().into_owned();
        use sha1::Digest;
        let want = format!("SHA1:{}", hex::encode(sha1::Sha1::digest(b"clip 2")));
        check(code == 200 && text == want, || format!("{code} {text:?}, want {want:?}"))?;
        // Asked for nothing else, nothing else comes.
        let plain = c.req("PROPFIND", "/115/Films/", &[("Depth", "1")], Some(crate::finder::LIST.as_bytes()));
        check(!plain.text().contains("checksum"), || "oc:checksums unasked".into())
    });
    r.step("gvfs saves with If-Match of the getetag property", || {
        let ls = b"<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n <D:propfind xmlns:D=\"DAV:\">\n  <D:prop>\n<D:getetag/>\n  </D:prop>\n </D:propfind>";
        let rs = ms(&c.req("PROPFIND", "/115/Films/clip%2001.mp4", &[("Depth", "0")], Some(ls)))?;
        let etag = rs[0].text("DAV:", "getetag").ok_or("no getetag")?;
        want_status(&c.req("PUT", "/115/Films/clip%2001.mp4", &[("If-Match", &etag)], Some(b"re-saved")), &[204])
    });
    r.finish();
}
