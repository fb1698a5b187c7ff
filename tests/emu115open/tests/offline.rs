//! Offline download (ref §8).

mod common;

use std::collections::HashSet;

use common::*;
use emu115open::Options;
use serde_json::Value;

const MAGNET: &str = "magnet:?xt=urn:btih:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b&dn=ubuntu.iso";
const MAGNET32: &str = "magnet:?xt=urn:btih:T6DNBAMIJR6WLGRP5KQMKWWQCWR36TY3";
const HTTP: &str = "https://example.com/files/a%20b.iso";
const ED2K: &str = "ed2k://|file|movie.mkv|734003200|0123456789abcdef0123456789abcdef|/";

#[tokio::test]
async fn add_list_delete() {
    let t = setup().await;
    let dir = t.emu.mkdir(t.user, 0, "cloud");
    let urls = format!("{MAGNET}\n{HTTP}\n{ED2K}\nnot a link\n{MAGNET}");
    let v = t.post("/open/offline/add_task_urls", &[("urls", &urls), ("wp_path_id", &dir.to_string())]).await;
    assert_eq!(v["state"], true);
    let res = v["data"].as_array().unwrap();
    assert_eq!(res.len(), 5);
    assert_eq!(res[0]["info_hash"], "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b");
    assert_eq!(res[0]["state"], true);
    assert_eq!(res[1]["state"], true);
    assert_eq!(res[2]["state"], true);
    assert_eq!((res[3]["state"].as_bool(), code(&res[3])), (Some(false), 10004));
    assert_eq!((res[4]["state"].as_bool(), code(&res[4])), (Some(false), 10008), "duplicate");
    assert!(res[4].get("info_hash").is_none(), "info_hash only on success");
    // base32 btih of the same hash is a duplicate too
    let v = t.post("/open/offline/add_task_urls", &[("urls", MAGNET32), ("wp_path_id", &dir.to_string())]).await;
    assert_eq!(code(&v["data"][0]), 10008, "{v}");

    let tasks = t.emu.offline_tasks(t.user);
    assert_eq!(tasks.len(), 3);
    assert_eq!(tasks[0].name, "ubuntu.iso");
    assert_eq!(tasks[1].name, "a b.iso");
    assert_eq!((tasks[2].name.as_str(), tasks[2].size), ("movie.mkv", 734_003_200));

    // progress and completion through the hooks
    let h = tasks[0].info_hash.clone();
    t.emu.offline_progress(&h, 40.0);
    let l = t.get("/open/offline/get_task_list", &[("page", "1")]).await;
    let task = l["data"]["tasks"].as_array().unwrap().iter().find(|x| x["info_hash"] == h.as_str()).unwrap().clone();
    assert_eq!((task["status"].as_i64(), task["percentDone"].as_f64()), (Some(1), Some(40.0)));
    let fid = t.emu.offline_complete(&h, b"iso bytes").unwrap();
    assert_eq!(t.emu.entry(fid).unwrap().parent, dir);
    let l = t.get("/open/offline/get_task_list", &[]).await;
    let task = l["data"]["tasks"].as_array().unwrap().iter().find(|x| x["info_hash"] == h.as_str()).unwrap().clone();
    assert_eq!(task["status"], 2);
    assert_eq!(task["file_id"], fid.to_string());
    assert_eq!(task["wp_path_id"], dir.to_string());

    // delete with the source file
    let v = t.post("/open/offline/del_task", &[("info_hash", &h), ("del_source_file", "1")]).await;
    assert_eq!(v["state"], true);
    assert!(t.emu.entry(fid).unwrap().in_recycle_bin);
    assert_eq!(t.emu.offline_tasks(t.user).len(), 2);
    // clear failed ones
    let h2 = t.emu.offline_tasks(t.user)[0].info_hash.clone();
    t.emu.offline_fail(&h2);
    t.post("/open/offline/clear_task", &[("flag", "2")]).await;
    assert_eq!(t.emu.offline_tasks(t.user).len(), 1);
}

#[tokio::test]
async fn paging_and_page_in_body() {
    let t = setup_with(Options { offline_page_size: 7, ..Options::default() }).await;
    let urls: Vec<String> = (0..20).map(|i| format!("https://example.com/f{i}.bin")).collect();
    t.post("/open/offline/add_task_urls", &[("urls", &urls.join("\n"))]).await;
    let mut seen = HashSet::new();
    let first = t.get("/open/offline/get_task_list", &[]).await;
    assert_eq!(
        (first["data"]["page"].as_u64(), first["data"]["page_count"].as_u64(), first["data"]["count"].as_u64()),
        (Some(1), Some(3), Some(20))
    );
    for page in 1..=3 {
        let v = t.get("/open/offline/get_task_list", &[("page", &page.to_string())]).await;
        for task in v["data"]["tasks"].as_array().unwrap() {
            assert!(seen.insert(task["info_hash"].as_str().unwrap().to_string()));
        }
    }
    assert_eq!(seen.len(), 20);
    // the sdk sends page as a form body on a GET
    let v: Value = t
        .http
        .get(t.url(PRO, "/open/offline/get_task_list"))
        .header("authorization", format!("Bearer {}", t.tok.access_token))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("page=2")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"]["page"], 2);
}

#[tokio::test]
async fn quota_and_bad_dir() {
    let t = setup().await;
    t.emu.set_offline_quota(t.user, 1);
    let v = t.post("/open/offline/add_task_urls", &[("urls", "https://a.example/1\nhttps://a.example/2")]).await;
    assert_eq!(v["data"][0]["state"], true);
    assert_eq!(code(&v["data"][1]), 10010);
    let q = t.get("/open/offline/get_quota_info", &[]).await;
    assert_eq!((q["data"]["surplus"].as_u64(), q["data"]["used"].as_u64()), (Some(0), Some(1)));
    let v = t.post("/open/offline/add_task_urls", &[("urls", "https://a.example/3"), ("wp_path_id", "12345")]).await;
    assert_eq!(v["state"], false);
}
