//! File APIs (ref §3.6, §4, §6) over raw HTTP, consumer and open.

mod common;

use std::collections::HashSet;

use common::*;
use emualiyun::{AppSpec, Options, TokenKind};
use serde_json::{json, Value};

#[tokio::test]
async fn signed_endpoints_need_a_device_session() {
    let emu = emu().await;
    let s = login(&emu, TokenKind::Mobile).await;
    let list = json!({"drive_id": s.drive(), "parent_file_id": "root"});
    let r = post(&emu, API, "/adrive/v3/file/list", Some(&s.at), None, list.clone()).await;
    assert_eq!((r.status, r.body["code"].as_str()), (400, Some("DeviceSessionSignatureInvalid")));
    let other = Dev::new();
    let sig = other.sign(emualiyun::WEB_APP_ID, &s.user.user_id, 0);
    let r = post(&emu, API, "/adrive/v3/file/list", Some(&s.at), Some((&other.device_id, &sig)), list.clone()).await;
    assert_eq!(r.body["message"], "not found device info");
    // a signature by another key for the registered device id
    let r = post(&emu, API, "/adrive/v3/file/list", Some(&s.at), Some((&s.dev.device_id, &sig)), list.clone()).await;
    assert_eq!(r.body["code"], "DeviceSessionSignatureInvalid");
    assert_eq!(s.call(&emu, "/adrive/v3/file/list", list.clone()).await.status, 200);
    // a kicked device is offline until it creates a session again
    emu.kick_device(&s.user.user_id, &s.dev.device_id);
    let r = s.call(&emu, "/v2/file/list", list.clone()).await;
    assert_eq!((r.status, r.body["code"].as_str()), (401, Some("UserDeviceOffline")));
    // renew_session keeps a live session alive; unsigned async_task/get is fine
    let r = post(&emu, API, "/v2/async_task/get", Some(&s.at), None, json!({"async_task_id": "x"})).await;
    assert_eq!(r.status, 404);
}

async fn mkdir(emu: &emualiyun::EmuAliyun, s: &Session, parent: &str, name: &str, mode: &str) -> Resp {
    s.call(emu, "/adrive/v2/file/createWithFolders",
        json!({"drive_id": s.drive(), "parent_file_id": parent, "name": name, "type": "folder", "check_name_mode": mode}))
        .await
}

#[tokio::test]
async fn listing_pages_with_markers_at_the_documented_limits() {
    let emu = emu().await;
    let s = login(&emu, TokenKind::Mobile).await;
    let d = emu.mkdir(s.drive(), "root", "many");
    for i in 0..450 {
        emu.put_file(s.drive(), &d, &format!("f{i:04}.txt"), format!("{i}").into_bytes());
    }
    let r =
        s.call(&emu, "/adrive/v3/file/list", json!({"drive_id": s.drive(), "parent_file_id": d, "limit": 201})).await;
    assert_eq!((r.status, r.body["code"].as_str()), (400, Some("InvalidParameter.Limit")));
    assert_eq!(r.body["message"], "The input parameter limit is not valid. limit should be less than 200");
    let mut seen = Vec::new();
    let mut marker = String::new();
    let mut pages = 0;
    loop {
        let r = s
            .call(
                &emu,
                "/adrive/v3/file/list",
                json!({"drive_id": s.drive(), "parent_file_id": d, "limit": 200,
            "marker": marker, "order_by": "name", "order_direction": "DESC", "fields": "*"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        pages += 1;
        for it in r.body["items"].as_array().unwrap() {
            seen.push(it["name"].as_str().unwrap().to_string());
            assert!(it["download_url"].as_str().unwrap().contains("x-oss-expires="));
            assert_eq!(it["content_hash_name"], "sha1");
        }
        marker = r.body["next_marker"].as_str().unwrap().to_string();
        if marker.is_empty() {
            break;
        }
    }
    assert_eq!(pages, 3);
    let mut want: Vec<String> = (0..450).map(|i| format!("f{i:04}.txt")).collect();
    want.reverse();
    assert_eq!(seen, want);
    // default limit 50; no URLs without fields "*"
    let r = s.call(&emu, "/v2/file/list", json!({"drive_id": s.drive(), "parent_file_id": d})).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 50);
    assert!(r.body["items"][0].get("download_url").is_none());
    // a bad marker is refused
    let r = s.call(&emu, "/v2/file/list", json!({"drive_id": s.drive(), "parent_file_id": d, "marker": "%%%"})).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn file_object_shape_get_and_get_by_path() {
    let emu = emu().await;
    let s = login(&emu, TokenKind::Mobile).await;
    let d = emu.mkdir_p(s.drive(), "/a/b c");
    let f = emu.put_file(s.drive(), &d, "v.mp4", vec![7u8; 1000]);
    let r = s.call(&emu, "/v2/file/get", json!({"drive_id": s.drive(), "file_id": f, "fields": "*"})).await;
    let o = &r.body;
    assert_eq!(o["file_id"].as_str().unwrap().len(), 40);
    assert_eq!(o["type"], "file");
    assert_eq!(o["category"], "video");
    assert_eq!(o["size"], 1000);
    assert_eq!(o["content_hash"].as_str().unwrap(), o["content_hash"].as_str().unwrap().to_uppercase());
    assert!(o["crc64_hash"].as_str().unwrap().parse::<u64>().is_ok());
    let ts = o["updated_at"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.len() == 24, "RFC 3339 with milliseconds: {ts}");
    let dir = s.call(&emu, "/v2/file/get", json!({"drive_id": s.drive(), "file_id": d})).await;
    assert_eq!(dir.body["type"], "folder");
    assert!(dir.body.get("size").is_none());
    let r = s.call(&emu, "/v2/file/get", json!({"drive_id": s.drive(), "file_id": "0".repeat(40)})).await;
    assert_eq!((r.status, r.body["code"].as_str()), (404, Some("NotFound.File")));
    // get_by_path: found without whitespace, 404 with it (clients must fall back to listing)
    let a = emu.lookup(s.drive(), "/a").unwrap();
    let r = s.call(&emu, "/v2/file/get_by_path", json!({"drive_id": s.drive(), "file_path": "/a"})).await;
    assert_eq!(r.body["file_id"], a.as_str());
    let r = s.call(&emu, "/v2/file/get_by_path", json!({"drive_id": s.drive(), "file_path": "/a/b c/v.mp4"})).await;
    assert_eq!(r.status, 404);
    // another user's drive is off limits
    let other = emu.add_user("bob");
    let r = s.call(&emu, "/v2/file/list", json!({"drive_id": other.resource_drive_id, "parent_file_id": "root"})).await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn mkdir_modes_rename_move_copy() {
    let emu = emu().await;
    let s = login(&emu, TokenKind::Mobile).await;
    let r = mkdir(&emu, &s, "root", "new dir", "refuse").await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["file_name"], "new dir");
    assert!(r.body.get("exist").is_none());
    let id = r.body["file_id"].as_str().unwrap().to_string();
    let r = mkdir(&emu, &s, "root", "new dir", "refuse").await;
    assert_eq!((r.body["exist"].as_bool(), r.body["file_id"].as_str()), (Some(true), Some(id.as_str())));
    let r = mkdir(&emu, &s, "root", "new dir", "auto_rename").await;
    assert_eq!(r.body["file_name"], "new dir(1)");
    let r = mkdir(&emu, &s, "root", "a/b", "refuse").await;
    assert_eq!(r.status, 400);
    // rename conflict → 409
    let f = emu.put_file(s.drive(), "root", "x.txt", b"x".to_vec());
    let r = s
        .call(
            &emu,
            "/v3/file/update",
            json!({"drive_id": s.drive(), "file_id": f, "name": "new dir", "check_name_mode": "refuse"}),
        )
        .await;
    assert_eq!((r.status, r.body["code"].as_str()), (409, Some("AlreadyExist.File")));
    let r = s
        .call(
            &emu,
            "/v3/file/update",
            json!({"drive_id": s.drive(), "file_id": f, "name": "y.txt", "check_name_mode": "refuse"}),
        )
        .await;
    assert_eq!(r.body["name"], "y.txt");
    // move into the folder, conflict on the way back
    let r = s
        .call(
            &emu,
            "/v2/file/move",
            json!({"drive_id": s.drive(), "file_id": f, "to_drive_id": s.drive(), "to_parent_file_id": id}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(emu.entry(&f).unwrap().parent_file_id, id);
    emu.put_file(s.drive(), "root", "y.txt", b"other".to_vec());
    let r =
        s.call(&emu, "/v2/file/move", json!({"drive_id": s.drive(), "file_id": f, "to_parent_file_id": "root"})).await;
    assert_eq!(r.status, 409);
    let r = s.call(&emu, "/v2/file/move", json!({"drive_id": s.drive(), "file_id": id, "to_parent_file_id": id})).await;
    assert_eq!(r.status, 400, "into itself");
    // copy a file: 201 and a new id; copy a folder: 202 + task, visible after the task
    let r = s
        .call(
            &emu,
            "/v2/file/copy",
            json!({"drive_id": s.drive(), "file_id": f, "to_parent_file_id": "root", "new_name": "z.txt"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let copied = r.body["file_id"].as_str().unwrap();
    assert_ne!(copied, f);
    assert_eq!(emu.file_bytes(copied).unwrap(), b"x");
    let r = s
        .call(
            &emu,
            "/v2/file/copy",
            json!({"drive_id": s.drive(), "file_id": id, "to_parent_file_id": "root", "new_name": "dir2"}),
        )
        .await;
    assert_eq!(r.status, 202);
    let task = r.body["async_task_id"].as_str().unwrap().to_string();
    assert!(emu.lookup(s.drive(), "/dir2").is_none(), "not done before the task");
    let poll = |t: String| {
        let (emu, s) = (&emu, &s);
        async move { post(emu, API, "/v2/async_task/get", Some(&s.at), None, json!({"async_task_id": t})).await.body }
    };
    assert_eq!(poll(task.clone()).await["state"], "Running");
    assert_eq!(poll(task.clone()).await["state"], "Succeed");
    assert!(emu.lookup(s.drive(), "/dir2/y.txt").is_some());
}

#[tokio::test]
async fn trash_delete_recyclebin_and_batch() {
    let emu = emu_with(Options { async_task_running_polls: 0, ..Options::default() }).await;
    let s = login(&emu, TokenKind::Mobile).await;
    let f = emu.put_file(s.drive(), "root", "a.txt", b"a".to_vec());
    let d = emu.mkdir(s.drive(), "root", "d");
    emu.put_file(s.drive(), &d, "in.txt", b"i".to_vec());
    let r = s.call(&emu, "/v2/recyclebin/trash", json!({"drive_id": s.drive(), "file_id": f})).await;
    assert_eq!((r.status, r.raw.len()), (204, 0));
    assert!(emu.entry(&f).unwrap().trashed);
    let r = s.call(&emu, "/v2/recyclebin/trash", json!({"drive_id": s.drive(), "file_id": f})).await;
    assert_eq!(r.body["code"], "ForbiddenFileInTheRecycleBin");
    let r = s.call(&emu, "/v2/recyclebin/list", json!({"drive_id": s.drive()})).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(s.call(&emu, "/v2/recyclebin/restore", json!({"drive_id": s.drive(), "file_id": f})).await.status, 204);
    let r = s.call(&emu, "/v2/file/delete", json!({"drive_id": s.drive(), "file_id": d})).await;
    assert_eq!(r.status, 202);
    let t = r.body["async_task_id"].as_str().unwrap();
    let r = post(&emu, API, "/v2/async_task/get", Some(&s.at), None, json!({"async_task_id": t})).await;
    assert_eq!(r.body["state"], "Succeed");
    assert!(emu.entry(&d).is_none());
    // batch: per-item status, outer 200, ≤ 100 items
    let g = emu.put_file(s.drive(), "root", "g.txt", b"g".to_vec());
    let e = emu.mkdir(s.drive(), "root", "e");
    let req = |id: &str, url: &str, body: Value| {
        json!({"id": id, "method": "POST", "url": url,
        "headers": {"Content-Type": "application/json"}, "body": body})
    };
    let r = s.call(&emu, "/v3/batch", json!({"resource": "file", "requests": [
        req(&g, "/file/move", json!({"drive_id": s.drive(), "file_id": g, "to_drive_id": s.drive(), "to_parent_file_id": e})),
        req(&f, "/recyclebin/trash", json!({"drive_id": s.drive(), "file_id": f})),
        req("x", "/file/get", json!({"drive_id": s.drive(), "file_id": "f".repeat(40)})),
    ]})).await;
    assert_eq!(r.status, 200);
    let st: Vec<u64> = r.body["responses"].as_array().unwrap().iter().map(|x| x["status"].as_u64().unwrap()).collect();
    assert_eq!(st, vec![200, 204, 404]);
    assert!(r.body["responses"][1].get("body").is_none());
    let many: Vec<Value> = (0..101).map(|i| req(&i.to_string(), "/file/get", json!({}))).collect();
    assert_eq!(s.call(&emu, "/v3/batch", json!({"requests": many})).await.status, 400);
}

#[tokio::test]
async fn open_file_api_shapes_and_limits() {
    let emu = emu_with(Options { open_rates: None, ..Options::default() }).await;
    let app = AppSpec { grant_backup: false, ..AppSpec::new("app1", "sec") };
    emu.register_app(app);
    let u = emu.add_user("o");
    let t = emu.open_authorize(&u.user_id, "app1");
    let at = t.access_token.as_str();
    let call = |path: &'static str, body: Value| {
        let emu = &emu;
        async move { post(emu, OPEN, path, Some(at), None, body).await }
    };
    let info = call("/adrive/v1.0/user/getDriveInfo", json!({})).await;
    assert!(info.body.get("backup_drive_id").is_none(), "not granted");
    assert_eq!(info.body["resource_drive_id"], u.resource_drive_id.as_str());
    let drive = u.resource_drive_id.as_str();
    for i in 0..130 {
        emu.put_file(drive, "root", &format!("{i}.txt"), vec![1u8; 3]);
    }
    let r =
        call("/adrive/v1.0/openFile/list", json!({"drive_id": drive, "parent_file_id": "root", "limit": 200})).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 100, "clamped to 100");
    let r2 = call(
        "/adrive/v1.0/openFile/list",
        json!({"drive_id": drive, "parent_file_id": "root", "limit": 100,
        "marker": r.body["next_marker"]}),
    )
    .await;
    let names: HashSet<String> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(r2.body["items"].as_array().unwrap())
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 130);
    assert_eq!(r2.body["next_marker"], "");
    // name_enhanced is numeric-aware
    let r = call(
        "/adrive/v1.0/openFile/list",
        json!({"drive_id": drive, "parent_file_id": "root", "limit": 3, "order_by": "name_enhanced"}),
    )
    .await;
    let first: Vec<&str> = r.body["items"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(first, vec!["0.txt", "1.txt", "2.txt"]);
    assert!(r.body["items"][0].get("crc64_hash").is_none(), "open shape");
    // backup drive not granted
    let r = call("/adrive/v1.0/openFile/list", json!({"drive_id": u.backup_drive_id, "parent_file_id": "root"})).await;
    assert_eq!(r.body["code"], "UserNotAllowedAccessDrive");
    // create folder 200 (not 201), refuse → exist
    let r = call("/adrive/v1.0/openFile/create", json!({"drive_id": drive, "parent_file_id": "root", "name": "d", "type": "folder", "check_name_mode": "refuse"})).await;
    assert_eq!((r.status, r.body["exist"].as_bool()), (200, Some(false)));
    let r2 = call("/adrive/v1.0/openFile/create", json!({"drive_id": drive, "parent_file_id": "root", "name": "d", "type": "folder", "check_name_mode": "refuse"})).await;
    assert_eq!((r2.body["exist"].as_bool(), &r2.body["file_id"]), (Some(true), &r.body["file_id"]));
    let r = call("/adrive/v1.0/openFile/create", json!({"drive_id": drive, "parent_file_id": "root", "name": "e", "type": "folder", "check_name_mode": "overwrite"})).await;
    assert_eq!(r.status, 400, "no overwrite on the open API");
    let r = call("/adrive/v1.0/openFile/get", json!({"drive_id": drive, "file_id": "0".repeat(40)})).await;
    assert_eq!((r.status, r.body["code"].as_str()), (404, Some("NotFound.FileId")));
    let r = call("/adrive/v1.0/openFile/nope", json!({})).await;
    assert_eq!((r.status, r.body["error"].as_str()), (404, Some("Not Found")));
    let f = emu.lookup(drive, "/5.txt").unwrap();
    let r = call("/adrive/v1.0/openFile/recyclebin/trash", json!({"drive_id": drive, "file_id": f})).await;
    assert_eq!((r.status, r.body["async_task_id"].as_str()), (200, Some("")));
}
