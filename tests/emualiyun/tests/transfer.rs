//! Downloads (ref §2.2, §5) and uploads (§7) over raw HTTP.

mod common;

use std::time::Duration;

use common::*;
use emualiyun::{AppSpec, EmuAliyun, Options, Pattern, TokenKind};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

async fn download_url(emu: &EmuAliyun, s: &Session, f: &str, expire: Option<u64>) -> Resp {
    let mut b = json!({"drive_id": s.drive(), "file_id": f});
    if let Some(e) = expire {
        b["expire_sec"] = json!(e);
    }
    s.call(emu, "/v2/file/get_download_url", b).await
}

#[tokio::test]
async fn mobile_links_are_direct_and_serve_ranges_until_they_expire() {
    let emu = emu().await;
    let s = login(&emu, TokenKind::Mobile).await;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let f = emu.put_file(s.drive(), "root", "b.bin", data.clone());
    let r = download_url(&emu, &s, &f, Some(14_400)).await;
    for k in [
        "method",
        "url",
        "internal_url",
        "expiration",
        "size",
        "ratelimit",
        "crc64_hash",
        "content_hash",
        "revision_id",
    ] {
        assert!(r.body.get(k).is_some(), "{k} missing: {}", r.body);
    }
    let url = r.body["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&emu.endpoint(DATA)));
    assert!(!url.contains("x-oss-additional-headers"), "mobile-kind links are not Referer-bound");
    let got = fetch(&url, None, None).await;
    assert_eq!((got.status, got.raw.len()), (200, data.len()));
    assert_eq!(got.headers["accept-ranges"], "bytes");
    let got = fetch(&url, None, Some("bytes=1000-1999")).await;
    assert_eq!(got.status, 206);
    assert_eq!(got.headers["content-range"], "bytes 1000-1999/100000");
    assert_eq!(got.raw, &data[1000..2000]);
    let got = fetch(&url, None, Some("bytes=99990-")).await;
    assert_eq!(got.raw, &data[99_990..]);
    assert_eq!(fetch(&url, None, Some("bytes=100000-")).await.status, 416);
    // tampered expiry → signature mismatch; expiry → 403 "Request has expired."
    let exp = url.split("x-oss-expires=").nth(1).unwrap().split('&').next().unwrap();
    let later =
        url.replace(&format!("x-oss-expires={exp}"), &format!("x-oss-expires={}", exp.parse::<i64>().unwrap() + 10));
    let r = fetch(&later, None, None).await;
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.raw).contains("<Code>SignatureDoesNotMatch</Code>"));
    // limits of expire_sec
    assert_eq!(download_url(&emu, &s, &f, Some(14_401)).await.body["code"], "InvalidParameter.ExpireSec");
    let short = download_url(&emu, &s, &f, None).await;
    let short_url = short.body["url"].as_str().unwrap().to_string();
    emu.advance(Duration::from_secs(901));
    let r = fetch(&short_url, None, None).await;
    assert_eq!(r.status, 403, "default expire_sec is 900");
    assert!(String::from_utf8_lossy(&r.raw).contains("Request has expired."));
    assert_eq!(fetch(&url, None, None).await.status, 200, "the 4 h link is still valid");
    // folders have no download URL
    let d = emu.mkdir(s.drive(), "root", "dir");
    assert_eq!(download_url(&emu, &s, &d, None).await.body["code"], "InvalidResource.FileTypeFolder");
}

#[tokio::test]
async fn web_links_need_a_referer_and_image_urls_are_previews() {
    let emu = emu().await;
    let s = login(&emu, TokenKind::Web).await;
    let f = emu.put_file(s.drive(), "root", "p.png", b"original image bytes".to_vec());
    let r = download_url(&emu, &s, &f, None).await;
    let url = r.body["url"].as_str().unwrap();
    assert!(url.contains("x-oss-additional-headers=referer"));
    assert_eq!(fetch(url, None, None).await.status, 403);
    assert_eq!(fetch(url, Some("https://example.com/"), None).await.status, 403);
    for referer in ["https://www.aliyundrive.com/", "https://www.alipan.com/"] {
        let got = fetch(url, Some(referer), None).await;
        assert_eq!((got.status, got.raw.as_slice()), (200, &b"original image bytes"[..]));
    }
    // dropping the parameter breaks the signature
    let stripped = url.replace("x-oss-additional-headers=referer&", "");
    assert_eq!(fetch(&stripped, Some("https://www.alipan.com/"), None).await.status, 403);
    // the list `url` of an image is the resized preview, not the original (ref §4.2)
    let l = s
        .call(&emu, "/adrive/v3/file/list", json!({"drive_id": s.drive(), "parent_file_id": "root", "fields": "*"}))
        .await;
    let item = &l.body["items"][0];
    let preview = fetch(item["url"].as_str().unwrap(), Some("https://www.alipan.com/"), None).await;
    assert_ne!(preview.raw, b"original image bytes");
    let orig = fetch(item["download_url"].as_str().unwrap(), Some("https://www.alipan.com/"), None).await;
    assert_eq!(orig.raw, b"original image bytes");
}

#[tokio::test]
async fn open_download_expiry_is_capped_by_the_app_allowance() {
    let emu = emu_with(Options { open_rates: None, ..Options::default() }).await;
    emu.register_app(AppSpec::new("app1", "s"));
    let u = emu.add_user("o");
    let t = emu.open_authorize(&u.user_id, "app1");
    let f = emu.put_file(&u.resource_drive_id, "root", "a.bin", vec![9u8; 10]);
    let r = post(
        &emu,
        OPEN,
        "/adrive/v1.0/openFile/getDownloadUrl",
        Some(&t.access_token),
        None,
        json!({"drive_id": u.resource_drive_id, "file_id": f, "expire_sec": 14400}),
    )
    .await;
    assert_eq!(r.status, 200);
    let exp = emukit::util::parse_rfc3339_millis(r.body["expiration"].as_str().unwrap()).unwrap();
    assert!(exp - emu.now_ms() <= 900_000, "unapproved apps get 900 s at most");
    let url = r.body["url"].as_str().unwrap();
    assert_eq!(fetch(url, None, None).await.raw, vec![9u8; 10]);
    assert!(r.body.get("streamsUrl").is_some());
}

/// `proof_code` v1 (ref §7.2), written here independently of the emulator.
fn proof_code(token: &str, size: u64, read_at: impl Fn(u64, &mut [u8])) -> String {
    use base64::Engine;
    let md5 = hex::encode(md5::Md5::digest(token.as_bytes()));
    let off = u64::from_str_radix(&md5[..16], 16).unwrap() % size;
    let mut eight = vec![0u8; 8.min((size - off) as usize)];
    read_at(off, &mut eight);
    base64::engine::general_purpose::STANDARD.encode(&eight)
}

fn sha1_upper(d: &[u8]) -> String {
    hex::encode_upper(Sha1::digest(d))
}

fn parts_of(n: u64) -> Value {
    Value::Array((1..=n).map(|i| json!({"part_number": i})).collect())
}

async fn put(url: &str, body: Vec<u8>, ctype: Option<&str>) -> Resp {
    let mut r = http().put(url).body(body);
    if let Some(c) = ctype {
        r = r.header("Content-Type", c);
    }
    into(r.send().await.unwrap()).await
}

#[tokio::test]
async fn multipart_upload_enforces_order_sizes_expiry_and_completes_idempotently() {
    let emu = emu().await;
    let s = login(&emu, TokenKind::Mobile).await;
    let part = 100 * 1024;
    let data: Vec<u8> = (0..(2 * part + 5000)).map(|i| (i % 251) as u8).collect();
    let mut body = json!({"drive_id": s.drive(), "parent_file_id": "root", "name": "u.bin", "type": "file",
        "check_name_mode": "refuse", "size": data.len(), "part_info_list": parts_of(3),
        "content_hash_name": "none", "proof_version": "v1"});
    let r = s.call(&emu, "/adrive/v2/file/createWithFolders", body.clone()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["rapid_upload"], false);
    let upload_id = r.body["upload_id"].as_str().unwrap().to_string();
    assert!(upload_id.len() == 32 && upload_id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
    let file_id = r.body["file_id"].as_str().unwrap().to_string();
    let urls: Vec<String> = r.body["part_info_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["upload_url"].as_str().unwrap().to_string())
        .collect();
    assert!(r.body["part_info_list"][0]["internal_upload_url"]
        .as_str()
        .unwrap()
        .starts_with(&emu.endpoint(emualiyun::INTERNAL_DATA_HOST)));
    // out of order, with a Content-Type → refused
    assert_eq!(put(&urls[1], data[part..2 * part].to_vec(), None).await.status, 400);
    assert_eq!(put(&urls[0], data[..part].to_vec(), Some("application/octet-stream")).await.status, 403);
    let r = put(&urls[0], data[..part].to_vec(), None).await;
    assert_eq!(r.status, 200);
    assert!(r.headers.get("etag").is_some());
    assert_eq!(put(&urls[0], data[..part].to_vec(), None).await.status, 409, "PartAlreadyExist");
    // not complete yet: the file is not there
    let done = json!({"drive_id": s.drive(), "file_id": file_id, "upload_id": upload_id});
    assert_eq!(s.call(&emu, "/v2/file/complete", done.clone()).await.status, 400);
    assert!(emu.lookup(s.drive(), "/u.bin").is_none());
    // URLs expire; get_upload_url hands out fresh ones
    emu.advance(Duration::from_secs(3601));
    let r = put(&urls[1], data[part..2 * part].to_vec(), None).await;
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.raw).contains("Request has expired."));
    let r = s
        .call(
            &emu,
            "/v2/file/get_upload_url",
            json!({"drive_id": s.drive(), "file_id": file_id, "upload_id": upload_id,
        "part_info_list": [{"part_number": 2}, {"part_number": 3}]}),
        )
        .await;
    assert!(r.body.get("create_at").is_some(), "consumer spelling: {}", r.body);
    let fresh: Vec<String> = r.body["part_info_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["upload_url"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(put(&fresh[0], data[part..2 * part].to_vec(), None).await.status, 200);
    assert_eq!(put(&fresh[1], data[2 * part..].to_vec(), None).await.status, 200);
    let r = s.call(&emu, "/v2/file/complete", done.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["content_hash"], sha1_upper(&data).as_str());
    assert_eq!(r.body["file_id"], file_id.as_str());
    assert_eq!(s.call(&emu, "/v2/file/complete", done).await.body["file_id"], file_id.as_str(), "idempotent");
    assert_eq!(emu.file_bytes(&file_id).unwrap(), data);
    // refuse on an existing name answers exist: true and no upload
    body["size"] = json!(1);
    body["part_info_list"] = parts_of(1);
    let r = s.call(&emu, "/adrive/v2/file/createWithFolders", body).await;
    assert_eq!((r.body["exist"].as_bool(), r.body["file_id"].as_str()), (Some(true), Some(file_id.as_str())));
}

#[tokio::test]
async fn small_parts_wrong_sizes_and_too_many_parts_fail() {
    let emu = emu().await;
    let s = login(&emu, TokenKind::Mobile).await;
    let r = s
        .call(
            &emu,
            "/adrive/v2/file/createWithFolders",
            json!({"drive_id": s.drive(), "parent_file_id": "root",
        "name": "x", "type": "file", "size": 1, "part_info_list": parts_of(10_001)}),
        )
        .await;
    assert_eq!(r.body["message"], "The input parameter part_info_list is not valid. part count can not over 10000");
    let r = s
        .call(
            &emu,
            "/adrive/v2/file/createWithFolders",
            json!({"drive_id": s.drive(), "parent_file_id": "root",
        "name": "small", "type": "file", "size": 2000, "part_info_list": parts_of(2)}),
        )
        .await;
    let urls: Vec<String> = r.body["part_info_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["upload_url"].as_str().unwrap().to_string())
        .collect();
    put(&urls[0], vec![1u8; 1000], None).await;
    put(&urls[1], vec![1u8; 1000], None).await;
    let done = json!({"drive_id": s.drive(), "file_id": r.body["file_id"], "upload_id": r.body["upload_id"]});
    let r = s.call(&emu, "/v2/file/complete", done).await;
    assert_eq!((r.status, r.body["code"].as_str()), (400, Some("EntityTooSmall")));
    // a 0-byte file: one default part, completes without any PUT
    let r = s
        .call(
            &emu,
            "/adrive/v2/file/createWithFolders",
            json!({"drive_id": s.drive(), "parent_file_id": "root",
        "name": "empty", "type": "file", "size": 0}),
        )
        .await;
    assert_eq!(r.body["part_info_list"].as_array().unwrap().len(), 1);
    let done = json!({"drive_id": s.drive(), "file_id": r.body["file_id"], "upload_id": r.body["upload_id"]});
    let r = s.call(&emu, "/v2/file/complete", done).await;
    assert_eq!((r.status, r.body["size"].as_u64()), (200, Some(0)));
    assert_eq!(r.body["content_hash"], "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709");
}

#[tokio::test]
async fn rapid_upload_of_large_known_content_sends_no_body_bytes() {
    let emu = emu().await;
    let s = login(&emu, TokenKind::Mobile).await;
    let size = 64u64 << 20;
    let sha = emu.add_known_pattern(42, size);
    let p = Pattern::new(42, size);
    let mut first = vec![0u8; 1024];
    p.read_at(0, &mut first);
    let pre = hex::encode(Sha1::digest(&first));
    let mut b = json!({"drive_id": s.drive(), "parent_file_id": "root", "name": "big.bin", "type": "file",
        "check_name_mode": "overwrite", "size": size, "part_info_list": parts_of(7), "pre_hash": pre});
    let r = s.call(&emu, "/adrive/v2/file/createWithFolders", b.clone()).await;
    assert_eq!((r.status, r.body["code"].as_str()), (409, Some("PreHashMatched")));
    // proof with THIS request's token (ref §7.2), computed here independently
    let proof = proof_code(&s.at, size, |off, buf| p.read_at(off, buf));
    let o = b.as_object_mut().unwrap();
    o.remove("pre_hash");
    o.insert("content_hash".into(), json!(sha));
    o.insert("content_hash_name".into(), json!("sha1"));
    o.insert("proof_code".into(), json!(proof));
    o.insert("proof_version".into(), json!("v1"));
    emu.clear_log();
    let r = s.call(&emu, "/adrive/v2/file/createWithFolders", b.clone()).await;
    assert_eq!((r.status, r.body["rapid_upload"].as_bool()), (201, Some(true)), "{}", r.body);
    let id = r.body["file_id"].as_str().unwrap();
    assert_eq!(emu.entry(id).unwrap().size, size);
    let sent: u64 = emu.log().iter().filter(|l| l.host == DATA).map(|l| l.body_len).sum();
    assert_eq!(sent, 0);
    assert_eq!(emu.uploaded_part_bytes(), 0);
    // the same proof with another token is wrong
    let other = login_user(&emu, emu.add_user("eve"), TokenKind::Mobile).await;
    b["drive_id"] = json!(other.drive());
    let r = other.call(&emu, "/adrive/v2/file/createWithFolders", b.clone()).await;
    assert_eq!(r.body["code"], "InvalidRapidProof");
    // overwrite replaced nothing (new name); a second rapid upload with overwrite replaces the file
    b["drive_id"] = json!(s.drive());
    let r = s.call(&emu, "/adrive/v2/file/createWithFolders", b).await;
    let id2 = r.body["file_id"].as_str().unwrap();
    assert_ne!(id2, id);
    assert!(emu.entry(id).is_none());
    assert_eq!(emu.children(s.drive(), "root").len(), 1);
}

#[tokio::test]
async fn open_upload_completes_after_rapid_and_after_parts() {
    let emu = emu_with(Options { open_rates: None, ..Options::default() }).await;
    emu.register_app(AppSpec::new("app1", "s"));
    let u = emu.add_user("o");
    let t = emu.open_authorize(&u.user_id, "app1");
    let at = t.access_token.as_str();
    let drive = u.resource_drive_id.as_str();
    let data = b"hello open upload".to_vec();
    let r = post(
        &emu,
        OPEN,
        "/adrive/v1.0/openFile/create",
        Some(at),
        None,
        json!({"drive_id": drive, "parent_file_id": "root",
        "name": "h.txt", "type": "file", "check_name_mode": "ignore", "size": data.len(), "part_info_list": parts_of(1),
        "local_modified_at": "2024-01-02T03:04:05.678Z"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let url = r.body["part_info_list"][0]["upload_url"].as_str().unwrap();
    assert_eq!(put(url, data.clone(), None).await.status, 200);
    let c = post(
        &emu,
        OPEN,
        "/adrive/v1.0/openFile/complete",
        Some(at),
        None,
        json!({"drive_id": drive, "file_id": r.body["file_id"], "upload_id": r.body["upload_id"]}),
    )
    .await;
    assert_eq!(c.status, 200);
    assert_eq!(c.body["updated_at"], "2024-01-02T03:04:05.678Z");
    let bad = post(
        &emu,
        OPEN,
        "/adrive/v1.0/openFile/complete",
        Some(at),
        None,
        json!({"drive_id": drive, "file_id": r.body["file_id"], "upload_id": "0".repeat(32)}),
    )
    .await;
    assert_eq!((bad.status, bad.body["code"].as_str()), (400, Some("NotFound.UploadId")));
    // rapid: complete is still accepted
    let sha = sha1_upper(&data);
    let proof = proof_code(at, data.len() as u64, |off, buf| {
        buf.copy_from_slice(&data[off as usize..off as usize + buf.len()])
    });
    let r = post(
        &emu,
        OPEN,
        "/adrive/v1.0/openFile/create",
        Some(at),
        None,
        json!({"drive_id": drive, "parent_file_id": "root",
        "name": "h2.txt", "type": "file", "check_name_mode": "ignore", "size": data.len(), "content_hash": sha,
        "content_hash_name": "sha1", "proof_code": proof, "proof_version": "v1"}),
    )
    .await;
    assert_eq!((r.status, r.body["rapid_upload"].as_bool()), (200, Some(true)), "{}", r.body);
    let c = post(
        &emu,
        OPEN,
        "/adrive/v1.0/openFile/complete",
        Some(at),
        None,
        json!({"drive_id": drive, "file_id": r.body["file_id"], "upload_id": r.body["upload_id"]}),
    )
    .await;
    assert_eq!((c.status, c.body["name"].as_str()), (200, Some("h2.txt")));
}
