//! Listing, metadata and mutations (ref §4, §6).

mod common;

use std::collections::HashSet;

use common::*;
use emu115open::{NotFoundStyle, Options};
use serde_json::Value;

#[tokio::test]
async fn paging_returns_every_item_exactly_once() {
    let t = setup().await;
    let dir = t.emu.mkdir(t.user, 0, "big");
    let mut want = HashSet::new();
    for i in 0..2403 {
        let id = if i % 10 == 0 {
            t.emu.mkdir(t.user, dir, &format!("d{i:05}"))
        } else {
            t.emu.put_file(t.user, dir, &format!("f{i:05}.txt"), format!("{i}").as_bytes())
        };
        want.insert(id.to_string());
    }
    for page in [1150usize, 200, 7, 5000] {
        let all = t.list_all(dir, page).await;
        let ids: Vec<String> = all.iter().map(|v| v["fid"].as_str().unwrap().to_string()).collect();
        let set: HashSet<String> = ids.iter().cloned().collect();
        assert_eq!(ids.len(), want.len(), "page {page}: duplicates or gaps");
        assert_eq!(set, want, "page {page}");
    }
    // limit > 1150 is clamped and the clamped value is echoed (page_size_max)
    let v = t.get("/open/ufile/files", &[("cid", &dir.to_string()), ("limit", "5000"), ("show_dir", "1")]).await;
    assert_eq!(v["limit"], 1150);
    assert_eq!(v["data"].as_array().unwrap().len(), 1150);
    assert_eq!(v["count"], 2403);
    // default limit 20
    let v = t.get("/open/ufile/files", &[("cid", &dir.to_string()), ("show_dir", "1")]).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 20);
}

#[tokio::test]
async fn page_size_max_knob() {
    let t = setup_with(Options { page_size_max: 3, ..Options::default() }).await;
    for i in 0..10 {
        t.emu.put_file(t.user, 0, &format!("{i}"), b"x");
    }
    let v = t.get("/open/ufile/files", &[("limit", "100"), ("show_dir", "1")]).await;
    assert_eq!(v["limit"], 3);
    assert_eq!(t.list_all(0, 100).await.len(), 10);
}

#[tokio::test]
async fn show_dir_and_folders_first() {
    let t = setup().await;
    t.emu.put_file(t.user, 0, "z.txt", b"1");
    let d = t.emu.mkdir(t.user, 0, "a-dir");
    t.emu.put_file(t.user, 0, "b.txt", b"2");
    let v = t.get("/open/ufile/files", &[("cid", "0")]).await;
    assert_eq!(v["count"], 2, "show_dir defaults to 0: folders hidden");
    let v = t.get("/open/ufile/files", &[("cid", "0"), ("show_dir", "1")]).await;
    assert_eq!(v["count"], 3);
    assert_eq!(v["data"][0]["fid"], d.to_string());
    assert_eq!(v["data"][0]["fc"], "0");
    // custom_order=1 with o=file_name asc
    let v =
        t.get("/open/ufile/files", &[("show_dir", "1"), ("o", "file_name"), ("asc", "1"), ("custom_order", "1")]).await;
    let names: Vec<&str> = v["data"].as_array().unwrap().iter().map(|x| x["fn"].as_str().unwrap()).collect();
    assert_eq!(names, ["a-dir", "b.txt", "z.txt"]);
    assert_eq!(v["order"], "file_name");
}

#[tokio::test]
async fn missing_cid_lists_root_and_path_chain() {
    let t = setup().await;
    let a = t.emu.mkdir(t.user, 0, "a");
    let b = t.emu.mkdir(t.user, a, "b");
    t.emu.put_file(t.user, b, "x.bin", b"x");
    let v = t.get("/open/ufile/files", &[("cid", "424242"), ("show_dir", "1")]).await;
    assert_eq!(v["state"], true);
    assert_eq!(v["cid"], 0, "client must compare cid (ref §4.1)");
    let v = t.get("/open/ufile/files", &[("cid", &b.to_string()), ("show_dir", "1")]).await;
    assert_eq!(v["cid"].as_u64(), Some(b));
    let path: Vec<&str> = v["path"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(path, ["根目录", "a", "b"]);
    t.emu.configure(|o| o.missing_cid_lists_root = false);
    let v = t.get("/open/ufile/files", &[("cid", "424242")]).await;
    assert_eq!(v["state"], false);
}

#[tokio::test]
async fn get_info_by_id_and_path() {
    let t = setup().await;
    let a = t.emu.mkdir(t.user, 0, "a");
    let b = t.emu.mkdir(t.user, a, "b");
    let f = t.emu.put_file(t.user, b, "x.bin", &[1u8; 3000]);
    t.emu.put_file(t.user, a, "y.bin", &[2u8; 1000]);
    let v = t.get("/open/folder/get_info", &[("file_id", &a.to_string())]).await;
    assert_eq!(v["data"]["count"], 2);
    assert_eq!(v["data"]["folder_count"], 1);
    assert_eq!(v["data"]["size_byte"], 4000);
    assert_eq!(v["data"]["file_category"], "0");
    for p in ["/a/b/x.bin", ">a>b>x.bin", "/a/b/x.bin/"] {
        let v = t.post("/open/folder/get_info", &[("path", p)]).await;
        assert_eq!(v["data"]["file_id"], f.to_string(), "{p}");
        let paths: Vec<(&str, &str)> = v["data"]["paths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["file_id"].as_str().unwrap(), p["file_name"].as_str().unwrap()))
            .collect();
        assert_eq!(paths, [("0", "根目录"), (a.to_string().as_str(), "a"), (b.to_string().as_str(), "b")]);
    }
    // GET with path works too
    let v = t.get("/open/folder/get_info", &[("path", "/a/b")]).await;
    assert_eq!(v["data"]["file_id"], b.to_string());
    // not found → data [] ; path must start with a separator; root not queryable
    for p in ["/a/nope", "a/b", "/"] {
        let v = t.post("/open/folder/get_info", &[("path", p)]).await;
        assert_eq!(v["state"], true);
        assert_eq!(v["data"], serde_json::json!([]), "{p}");
    }
    t.emu.configure(|o| o.get_info_not_found = NotFoundStyle::Code430004);
    let v = t.get("/open/folder/get_info", &[("file_id", "1")]).await;
    assert_eq!((v["state"].as_bool(), code(&v)), (Some(false), 430004));
}

#[tokio::test]
async fn mkdir_rename_move_copy_delete() {
    let t = setup().await;
    let v = t.post("/open/folder/add", &[("pid", "0"), ("file_name", "docs")]).await;
    assert_eq!(v["state"], true, "{v}");
    let docs: u64 = v["data"]["file_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(v["data"]["file_name"], "docs");
    let v = t.post("/open/folder/add", &[("pid", "0"), ("file_name", "docs")]).await;
    assert_eq!(code(&v), 20004);
    assert_eq!(v["errno"], 20004);
    assert_eq!(code(&t.post("/open/folder/add", &[("pid", "987"), ("file_name", "x")]).await), 20009);
    assert_eq!(code(&t.post("/open/folder/add", &[("pid", "0"), ("file_name", "a<b")]).await), 20003);

    let f = t.emu.put_file(t.user, 0, "a.txt", b"hello");
    let v = t.post("/open/ufile/update", &[("file_id", &f.to_string()), ("file_name", "b.txt")]).await;
    assert_eq!(v["data"], serde_json::json!({"file_name": "b.txt", "star": "0"}));
    assert_eq!(t.emu.entry(f).unwrap().name, "b.txt");

    let v = t.post("/open/ufile/move", &[("file_ids", &f.to_string()), ("to_cid", &docs.to_string())]).await;
    assert_eq!(v["data"], serde_json::json!([]));
    assert_eq!(t.emu.entry(f).unwrap().parent, docs);
    // into itself
    let v = t.post("/open/ufile/move", &[("file_ids", &docs.to_string()), ("to_cid", &docs.to_string())]).await;
    assert_eq!(code(&v), 91002);

    let v = t.post("/open/ufile/copy", &[("file_id", &docs.to_string()), ("pid", "0")]).await;
    assert_eq!(v["state"], true, "{v}");
    let copies: Vec<_> = t.emu.children(t.user, 0).into_iter().filter(|e| e.name == "docs").collect();
    assert_eq!(copies.len(), 2, "duplicates allowed by default");
    let copy = copies.iter().find(|e| e.id != docs).unwrap();
    let kids = t.emu.children(t.user, copy.id);
    assert_eq!(kids.len(), 1);
    assert_eq!(t.emu.file_bytes(kids[0].id).unwrap(), b"hello");
    // nodupli=1 refuses; the sdk's no_dupli is ignored unless the knob says otherwise
    let v =
        t.post("/open/ufile/copy", &[("file_id", &f.to_string()), ("pid", &docs.to_string()), ("nodupli", "1")]).await;
    assert_eq!(v["state"], false);
    let v =
        t.post("/open/ufile/copy", &[("file_id", &f.to_string()), ("pid", &docs.to_string()), ("no_dupli", "1")]).await;
    assert_eq!(v["state"], true);

    let v = t.post("/open/ufile/delete", &[("file_ids", &copy.id.to_string()), ("parent_id", "0")]).await;
    assert_eq!(v["data"], serde_json::json!([]));
    let v = t.post("/open/ufile/delete", &[("file_ids", &copy.id.to_string())]).await;
    assert_eq!(code(&v), 231011, "already deleted");
    let v = t.post("/open/ufile/delete", &[("file_ids", "5")]).await;
    assert_eq!(code(&v), 430004);
    // deleted folder's children are not listable; its cid answers with the root
    let v = t.get("/open/ufile/files", &[("cid", &copy.id.to_string())]).await;
    assert_eq!(v["cid"], 0);
}

#[tokio::test]
async fn recycle_bin() {
    let t = setup().await;
    let d = t.emu.mkdir(t.user, 0, "d");
    let f = t.emu.put_file(t.user, d, "f", b"1");
    t.post("/open/ufile/delete", &[("file_ids", &d.to_string())]).await;
    let v = t.get("/open/rb/list", &[]).await;
    assert_eq!(v["data"]["count"], "1");
    assert_eq!(v["data"][d.to_string()]["type"], "2");
    assert!(t.emu.entry(f).unwrap().in_recycle_bin);
    let v = t.post("/open/rb/revert", &[("tid", &d.to_string())]).await;
    assert_eq!(v["data"][d.to_string()]["state"], true);
    assert!(!t.emu.entry(f).unwrap().in_recycle_bin);
    t.post("/open/ufile/delete", &[("file_ids", &d.to_string())]).await;
    let v = t.post("/open/rb/del", &[]).await;
    assert_eq!(v["data"], serde_json::json!([]));
    assert!(t.emu.entry(f).is_none());
    assert!(t.emu.recycle_bin(t.user).is_empty());
}

#[tokio::test]
async fn search() {
    let t = setup().await;
    let d = t.emu.mkdir(t.user, 0, "Season 1");
    let f = t.emu.put_file(t.user, d, "Episode 01.mkv", b"ep1");
    t.emu.put_file(t.user, 0, "notes.txt", b"n");
    let v = t.get("/open/ufile/search", &[("search_value", "episode")]).await;
    assert_eq!(v["count"], 1);
    assert_eq!(v["data"][0]["file_id"], f.to_string());
    assert_eq!(v["data"][0]["file_size"], "3");
    let sha = t.emu.entry(f).unwrap().sha1.unwrap();
    let v = t.get("/open/ufile/search", &[("search_value", &sha)]).await;
    assert_eq!(v["count"], 1);
    let v = t.get("/open/ufile/search", &[("search_value", "e"), ("fc", "1")]).await;
    assert_eq!(v["data"][0]["file_category"], "0");
    let v = t.get("/open/ufile/search", &[("search_value", "e"), ("cid", "-1")]).await;
    assert_eq!(v["count"], 0);
    let v = t.get("/open/ufile/search", &[("search_value", "e"), ("offset", "9990"), ("limit", "20")]).await;
    assert_eq!(v["state"], false, "offset + limit <= 10000");
}

#[tokio::test]
async fn user_info_reflects_usage() {
    let t = setup().await;
    t.emu.put_file(t.user, 0, "x", &[0u8; 1234]);
    let v = t.get("/open/user/info", &[]).await;
    assert_eq!(v["data"]["user_id"], t.user);
    assert_eq!(v["data"]["user_name"], "alice");
    assert_eq!(v["data"]["rt_space_info"]["all_use"]["size"], 1234);
    let total = v["data"]["rt_space_info"]["all_total"]["size"].as_u64().unwrap();
    assert_eq!(v["data"]["rt_space_info"]["all_remain"]["size"].as_u64().unwrap(), total - 1234);
}

#[tokio::test]
async fn users_are_isolated() {
    let t = setup().await;
    let bob = t.emu.add_user();
    let f = t.emu.put_file(bob, 0, "secret", b"s");
    let v = t.get("/open/folder/get_info", &[("file_id", &f.to_string())]).await;
    assert_eq!(v["data"], serde_json::json!([]));
    let pc = t.emu.entry(f).unwrap().pick_code;
    let v = t.post("/open/ufile/downurl", &[("pick_code", &pc)]).await;
    assert_eq!(v["data"], serde_json::json!({}));
    let v: Value = t.post("/open/ufile/delete", &[("file_ids", &f.to_string())]).await;
    assert_eq!(code(&v), 430004);
}

#[tokio::test]
async fn wrong_method_refused() {
    let t = setup().await;
    let r = t
        .http
        .get(t.url(PRO, "/open/folder/add"))
        .header("authorization", format!("Bearer {}", t.tok.access_token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn limit_as_string_knob() {
    let t = setup_with(Options { list_limit_as_string: true, ..Options::default() }).await;
    let v = t.get("/open/ufile/files", &[("limit", "50")]).await;
    assert_eq!(v["limit"], "50");
}
