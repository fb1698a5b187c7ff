//! §2 listing/metadata, §4 mutations, §0.4/§1.4 envelopes, §8 throttling, faults.

mod common;
use common::*;
use emu115::{Emu115, Fault, Opts, Throttle};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

const UID: u64 = 123456789;

async fn setup() -> (Emu115, String, reqwest::Client) {
    let emu = Emu115::start(Opts::default()).await;
    let cookie = emu.add_user(UID, "alice");
    (emu, cookie, client())
}

fn files_url(emu: &Emu115, cid: u64, offset: usize, limit: usize) -> String {
    format!(
        "{}/files?aid=1&asc=1&cid={cid}&fc_mix=0&format=json&limit={limit}&natsort=0&o=user_ptime&offset={offset}&record_open_time=1&show_dir=1&snap=0",
        emu.endpoint("webapi.115.com")
    )
}

/// §2.1 example, verbatim from the reference.
const FILES_EXAMPLE: &str = r##"{"state":true,"error":"","errNo":0,
 "aid":1,"cid":"2593093001609739968","count":3,"order":"user_ptime","is_asc":1,
 "offset":0,"limit":1150,"page_size":1150,"fc_mix":0,"sys_count":0,
 "path":[{"name":"根目录","aid":1,"cid":0,"pid":0},{"name":"Movies","aid":1,"cid":"2593093001609739968","pid":"0"}],
 "data":[
  {"cid":"2593093001609740001","pid":"2593093001609739968","aid":"1","n":"Season 1",
   "t":"1700000000","te":"1700000000","tp":"1699990000","pc":"fbndxbf3njpb2sw7he","m":0,"fl":[],"ns":"Season 1"},
  {"fid":"2593093001609740123","cid":"2593093001609739968","uid":123456789,"aid":"1",
   "n":"movie.mkv","s":1073741824,"sha":"0123456789ABCDEF0123456789ABCDEF01234567",
   "pc":"a87dby98esbg8hgqn","ico":"mkv","class":"AVI","iv":1,"vdi":4,"play_long":5400,
   "t":"2023-11-15 06:13","te":"1700000000","tp":"1699990000","to":"1700000500",
   "m":0,"fl":[{"id":"3","name":"movie","color":"#2670FC","sort":"0","create_time":1690000000,"update_time":1690000000}],
   "u":"https://thumb.115.com/...","d":0,"c":0,"sh":0,"e":"","p":0,"sta":1,"hdf":0}
 ]}"##;

#[tokio::test]
async fn files_listing_matches_reference_example() {
    let (emu, cookie, c) = setup().await;
    let movies = emu.mkdir(UID, 0, "Movies");
    let season = emu.mkdir(UID, movies, "Season 1");
    let movie = emu.put_file(UID, movies, "movie.mkv", vec![7u8; 1000]);
    emu.set_times(movie, 1_699_990_000, 1_700_000_000);
    let v = get_json(&c, &files_url(&emu, movies, 0, 1150), &cookie).await;
    let ex: Value = serde_json::from_str(FILES_EXAMPLE).unwrap();
    // folder first (fc_mix=0), then the file; compare each to the example's item of that kind
    assert_shape(&json!({"a": ex["data"][0]}), &json!({"a": v["data"][0]}), "", &[]);
    assert_shape(&json!({"a": ex["data"][1]}), &json!({"a": v["data"][1]}), "", &[]);
    let mut top = ex.clone();
    top["data"] = json!([]);
    assert_shape(&top, &v, "", &[]);
    // semantics
    assert_eq!(v["cid"], json!(movies.to_string()));
    assert_eq!(v["count"], json!(2));
    assert_eq!(v["path"][1]["name"], "Movies");
    let d = &v["data"][0];
    assert_eq!(d["cid"], json!(season.to_string()));
    assert_eq!(d["pid"], json!(movies.to_string()));
    assert!(d.get("fid").is_none());
    let f = &v["data"][1];
    assert_eq!(f["fid"], json!(movie.to_string()));
    assert_eq!(f["cid"], json!(movies.to_string()), "file cid is the parent");
    assert_eq!(f["t"], "2023-11-15 06:13", "Asia/Shanghai minute string");
    assert_eq!(f["sha"], json!(sha1_upper(&[7u8; 1000])));
    assert!(movie > (1u64 << 53), "ids exceed 2^53");
    assert_eq!(f["pc"], json!(emu.pick_code(movie).unwrap()));
}

#[tokio::test]
async fn metadata_endpoints_match_reference_examples() {
    let (emu, cookie, c) = setup().await;
    let movies = emu.mkdir(UID, 0, "Movies");
    let f = emu.put_file(UID, movies, "movie.mkv", b"hello world".to_vec());
    let base = emu.endpoint("webapi.115.com");

    let ex: Value = serde_json::from_str(r#"{"state":true,"code":0,"message":"","data":[{"fid":"2593093001609740123","cid":"2593093001609739968","n":"movie.mkv","s":"1073741824","sha":"0123…","pc":"a87dby98esbg8hgqn","ico":"mkv","t":"2023-11-15 06:13","te":"1700000000","tp":"1699990000","m":"0","fl":[]}]}"#).unwrap();
    let v = get_json(&c, &format!("{base}/files/get_info?file_id={f}"), &cookie).await;
    assert_shape(&ex, &v, "", &[]);
    let pc = emu.pick_code(f).unwrap();
    let v2 = get_json(&c, &format!("{base}/files/get_info?pick_code={pc}"), &cookie).await;
    assert_eq!(v2["data"][0]["fid"], json!(f.to_string()));
    let v = get_json(&c, &format!("{base}/files/get_info?file_id=42"), &cookie).await;
    assert_eq!(v, json!({"state": false, "errno": 20018, "error": "文件不存在或已删除。"}));

    let ex: Value = serde_json::from_str(
        r#"{"count":"12","size":"3.2GB","folder_count":"2","ptime":"1699990000","utime":"1700000000",
 "is_share":"0","file_name":"Movies","pick_code":"fbndxbf3njpbpxw7he","sha1":"","is_mark":"0",
 "open_time":1700000500,"file_category":"0",
 "paths":[{"file_id":0,"file_name":"根目录"},{"file_id":2593093001609739968,"file_name":"Movies"}]}"#,
    )
    .unwrap();
    let v = get_json(&c, &format!("{base}/category/get?cid={movies}&aid=1"), &cookie).await;
    assert_shape(&ex, &v, "", &[]);
    assert_eq!(v["count"], "1");
    assert_eq!(v["paths"][1]["file_id"], json!(movies));
    assert!(v.get("state").is_none(), "flat response without state");

    let v = get_json(&c, &format!("{base}/files/getid?path=%2FMovies"), &cookie).await;
    assert_shape(&json!({"state":true,"id":"2593093001609739968","is_private":"0","error":""}), &v, "", &[]);
    assert_eq!(v["id"], json!(movies.to_string()));
    let v = get_json(&c, &format!("{base}/files/getid?path=Movies%2Fnope"), &cookie).await;
    assert_eq!(v["state"], true);
    assert_eq!(v["id"], json!(0), "missing dir is id 0 with state true");

    let ex: Value = serde_json::from_str(r#"{"state":true,"error":"","errno":0,"data":{
  "space_info":{"all_total":{"size":16492674416640,"size_format":"15TB"},
                "all_remain":{"size":10995116277760,"size_format":"10TB"},
                "all_use":{"size":5497558138880,"size_format":"5TB"}},
  "login_devices_info":{"last":{"ip":"1.2.3.4","device":"web","device_id":"","network":"","os":"","city":"","utime":1700000000},
                        "list":[{"is_current":1,"ssoent":"A1","utime":1700000000,"device":"web","name":"网页版","icon":"","desc":"","ip":"1.2.3.4","city":"","is_unusual":0}]},
  "imei_info":false}}"#).unwrap();
    let v = get_json(&c, &format!("{base}/files/index_info"), &cookie).await;
    assert_shape(&ex, &v, "", &[]);
    assert_eq!(v["data"]["space_info"]["all_use"]["size"], json!(11));
}

#[tokio::test]
async fn paging_returns_every_file_exactly_once() {
    let (emu, cookie, c) = setup().await;
    let dir = emu.mkdir(UID, 0, "big");
    let mut all = HashSet::new();
    for i in 0..2600 {
        all.insert(emu.put_file(UID, dir, &format!("f{i:05}.bin"), vec![(i % 251) as u8; 3]));
    }
    for i in 0..30 {
        all.insert(emu.mkdir(UID, dir, &format!("d{i}")));
    }
    // 115driver algorithm: offset = resp.offset + L; stop when offset >= count
    for l in [1150usize, 56] {
        let mut seen = Vec::new();
        let mut offset = 0;
        loop {
            let v = get_json(&c, &files_url(&emu, dir, offset, l), &cookie).await;
            let data = v["data"].as_array().unwrap();
            assert!(data.len() <= l);
            for it in data {
                let id = it.get("fid").unwrap_or(&it["cid"]).as_str().unwrap().parse::<u64>().unwrap();
                seen.push(id);
            }
            offset = v["offset"].as_u64().unwrap() as usize + l;
            if offset >= v["count"].as_u64().unwrap() as usize {
                break;
            }
        }
        assert_eq!(seen.len(), all.len(), "L={l}");
        assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), all);
    }
    // documented maximum page size is enforced
    let v = get_json(&c, &files_url(&emu, dir, 0, 5000), &cookie).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1150);
    assert_eq!(v["limit"], json!(1150));
    assert_eq!(v["count"], json!(2630));
    // aps natsort: max 1200, o ignored, deep offsets restart
    let aps = emu.endpoint("aps.115.com");
    let v = get_json(
        &c,
        &format!("{aps}/natsort/files.php?aid=1&cid={dir}&offset=0&limit=5000&show_dir=1&o=file_size&asc=1&fc_mix=1"),
        &cookie,
    )
    .await;
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 1200);
    assert_eq!(data[0]["n"], "d0");
    assert_eq!(data[1]["n"], "d1");
    assert_eq!(data[2]["n"], "d2", "natural order: d2 < d10");
    let v = get_json(&c, &format!("{aps}/natsort/files.php?aid=1&cid={dir}&offset=1300&limit=10&show_dir=1"), &cookie)
        .await;
    assert_eq!(v["offset"], json!(0));
}

#[tokio::test]
async fn listing_quirks_and_sorting() {
    let (emu, cookie, c) = setup().await;
    let a = emu.put_file(UID, 0, "b.txt", b"22".to_vec());
    let b = emu.put_file(UID, 0, "a.txt", b"1".to_vec());
    let d = emu.mkdir(UID, 0, "zdir");
    emu.set_times(a, 100, 100);
    emu.set_times(b, 200, 200);
    let base = emu.endpoint("webapi.115.com");
    // missing cid silently lists the root
    let v = get_json(&c, &format!("{base}/files?aid=1&cid=999&show_dir=1&limit=10&offset=0"), &cookie).await;
    assert_eq!(v["cid"], json!(0));
    assert_eq!(v["count"], json!(3));
    // sort by name descending, dirs first with fc_mix=0
    let v = get_json(&c, &format!("{base}/files?aid=1&cid=0&show_dir=1&limit=10&o=file_name&asc=0&fc_mix=0"), &cookie)
        .await;
    let names: Vec<&str> = v["data"].as_array().unwrap().iter().map(|x| x["n"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["zdir", "b.txt", "a.txt"]);
    // mixed, by size ascending
    let v = get_json(&c, &format!("{base}/files?aid=1&cid=0&show_dir=0&limit=10&o=file_size&asc=1"), &cookie).await;
    let names: Vec<&str> = v["data"].as_array().unwrap().iter().map(|x| x["n"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["a.txt", "b.txt"]);
    // unsupported order
    let v = get_json(&c, &format!("{base}/files?aid=1&cid=0&o=bogus"), &cookie).await;
    assert_eq!(v["state"], false);
    assert_eq!(v["errNo"], json!(20130827));
    let _ = d;
}

#[tokio::test]
async fn auth_failure_bodies() {
    let (emu, cookie, c) = setup().await;
    let base = emu.endpoint("webapi.115.com");
    let url = files_url(&emu, 0, 0, 1150);
    let v = get_json(&c, &url, "").await;
    let q = url.split_once('?').unwrap().1;
    assert_eq!(
        v,
        json!({"state": false, "error": "登录超时，请重新登录。", "errNo": 990001, "request": format!("/files?{q}")})
    );
    // the same cookie works, then dies on expire_cookie
    assert_eq!(get_json(&c, &url, &cookie).await["state"], true);
    emu.expire_cookie(UID);
    assert_eq!(get_json(&c, &url, &cookie).await["errNo"], json!(990001));
    let v = get_json(&c, &format!("{base}/files/getid?path=%2F%E6%88%91%E7%9A%84%E6%8E%A5%E6%94%B6"), &cookie).await;
    assert_eq!(
        v,
        json!({"state": false, "error": "登录超时，请重新登录。", "errNo": 990001, "request": "/files/getid?path=%2F%E6%88%91%E7%9A%84%E6%8E%A5%E6%94%B6"})
    );
    let v = get_json(&c, &format!("{base}/files/get_info?file_id=1"), &cookie).await;
    assert_eq!(v, json!({"state": false, "errno": 99, "error": "请重新登录"}));
    let v = post_form(
        &c,
        &format!("{}/app/chrome/downurl?t=1741113364", emu.endpoint("proapi.115.com")),
        &cookie,
        &[("data", "x")],
    )
    .await;
    assert_eq!(
        v,
        json!({"state": false, "error": "请重新登录", "errno": 99, "request": "/app/chrome/downurl?t=1741113364", "data": []})
    );
    // cookie without KID or with a trailing garbage value is not a session
    let fresh = emu.login(UID, "web").unwrap();
    let no_kid: String = fresh.split(';').filter(|p| !p.starts_with("KID")).collect::<Vec<_>>().join(";");
    assert_eq!(get_json(&c, &url, &no_kid).await["errNo"], json!(990001));
    assert_eq!(get_json(&c, &url, &format!("{fresh};")).await["state"], true, "server tolerates a trailing ;");
    // a new login of another device type does not disturb the web session
    let _tv = emu.login(UID, "tv").unwrap();
    assert_eq!(get_json(&c, &url, &fresh).await["state"], true);
    // a new web login does
    let _web2 = emu.login(UID, "web").unwrap();
    assert_eq!(get_json(&c, &url, &fresh).await["errNo"], json!(990001));
}

#[tokio::test]
async fn mkdir_rename_errors() {
    let (emu, cookie, c) = setup().await;
    let base = emu.endpoint("webapi.115.com");
    let add = format!("{base}/files/add");
    let v = post_form(&c, &add, &cookie, &[("pid", "0"), ("cname", "New folder")]).await;
    let ex: Value = serde_json::from_str(r#"{"state":true,"error":"","errno":0,"aid":1,"cid":"2593093001609740777","cname":"New folder","file_id":"2593093001609740777","file_name":"New folder"}"#).unwrap();
    assert_shape(&ex, &v, "", &[]);
    let id: u64 = v["cid"].as_str().unwrap().parse().unwrap();
    assert!(emu.entry(id).unwrap().is_dir);
    let e = |v: &Value| v["errno"].as_i64().unwrap();
    assert_eq!(e(&post_form(&c, &add, &cookie, &[("pid", "0"), ("cname", "New folder")]).await), 20004);
    assert_eq!(e(&post_form(&c, &add, &cookie, &[("pid", "0"), ("cname", "")]).await), 20001);
    assert_eq!(e(&post_form(&c, &add, &cookie, &[("pid", "0"), ("cname", "a<b")]).await), 20003);
    assert_eq!(e(&post_form(&c, &add, &cookie, &[("pid", "12345"), ("cname", "x")]).await), 20009);
    // a file may share a folder's name
    emu.put_file(UID, 0, "dup", b"x".to_vec());
    assert_eq!(post_form(&c, &add, &cookie, &[("pid", "0"), ("cname", "dup")]).await["state"], true);

    let ren = format!("{base}/files/batch_rename");
    let other = emu.mkdir(UID, 0, "Other");
    let f = emu.put_file(UID, 0, "a.txt", b"a".to_vec());
    let v = post_form(&c, &ren, &cookie, &[(&format!("files_new_name[{other}]"), "New folder")]).await;
    assert_eq!(v["state"], false);
    assert_eq!(v["errno"], json!("20004"), "numeric-string error code");
    let v = post_form(&c, &ren, &cookie, &[(&format!("files_new_name[{f}]"), "a.txt")]).await;
    assert_eq!(v["error"], "更新的数据为空");
    let v = post_form(
        &c,
        &ren,
        &cookie,
        &[(&format!("files_new_name[{f}]"), "b.txt"), (&format!("files_new_name[{other}]"), "Renamed")],
    )
    .await;
    assert_eq!(v["state"], true);
    assert_eq!(v["data"], json!([]));
    assert_eq!(emu.entry(f).unwrap().name, "b.txt");
    assert_eq!(emu.entry(other).unwrap().name, "Renamed");
    // legacy fid/file_name form
    let v = post_form(&c, &ren, &cookie, &[("fid", &f.to_string()), ("file_name", "c.txt")]).await;
    assert_eq!(v["state"], true);
    assert_eq!(emu.entry(f).unwrap().name, "c.txt");
}

#[tokio::test]
async fn move_copy_delete_batch_semantics() {
    let (emu, cookie, c) = setup().await;
    let base = emu.endpoint("webapi.115.com");
    let a = emu.mkdir(UID, 0, "A");
    let b = emu.mkdir(UID, a, "B");
    let f1 = emu.put_file(UID, a, "1.txt", b"one".to_vec());
    let f2 = emu.put_file(UID, 0, "2.txt", b"two".to_vec());
    let mv = format!("{base}/files/move");
    // cycle
    let v = post_form(&c, &mv, &cookie, &[("pid", &b.to_string()), ("fid[0]", &a.to_string())]).await;
    assert_eq!(v["errno"], json!(800006));
    // all-or-nothing: one bad id → nothing moves
    let v =
        post_form(&c, &mv, &cookie, &[("pid", &b.to_string()), ("fid[0]", &f2.to_string()), ("fid[1]", "77")]).await;
    assert_eq!(v["state"], false);
    assert_eq!(emu.entry(f2).unwrap().parent_id, 0);
    // good batch
    let v = post_form(
        &c,
        &mv,
        &cookie,
        &[("pid", &b.to_string()), ("fid[0]", &f2.to_string()), ("fid[1]", &f1.to_string())],
    )
    .await;
    assert_eq!(v["state"], true);
    assert_eq!(emu.list_children(UID, b).len(), 2);
    // moving to a non-existent pid "succeeds" and leaves a dangling node
    let v = post_form(&c, &mv, &cookie, &[("pid", "31337"), ("fid", &f1.to_string())]).await;
    assert_eq!(v["state"], true);
    assert_eq!(emu.entry(f1).unwrap().parent_id, 31337);
    assert!(emu.list_children(UID, b).iter().all(|e| e.id != f1));

    let cp = format!("{base}/files/copy");
    let v = post_form(&c, &cp, &cookie, &[("pid", &b.to_string()), ("fid[0]", &a.to_string())]).await;
    assert_eq!(v["errno"], json!(91002));
    let v = post_form(&c, &cp, &cookie, &[("pid", "0"), ("fid[0]", &a.to_string())]).await;
    assert_eq!(v["state"], true);
    let roots: Vec<_> = emu.list_children(UID, 0).into_iter().filter(|e| e.name == "A").collect();
    assert_eq!(roots.len(), 2, "copy keeps the name; duplicates are legal");
    let copy = roots.iter().find(|e| e.id != a).unwrap();
    let cb = emu.list_children(UID, copy.id);
    assert_eq!(cb.len(), 1);
    let cf = emu.list_children(UID, cb[0].id);
    assert_eq!(emu.file_bytes(cf[0].id).unwrap(), &b"two"[..]);
    // no space
    emu.set_space_total(UID, 10);
    let v = post_form(&c, &cp, &cookie, &[("pid", "0"), ("fid[0]", &f2.to_string())]).await;
    assert_eq!(v["errno"], json!(91005));

    let del = format!("{base}/rb/delete");
    let v = post_form(&c, &del, &cookie, &[("fid[0]", &a.to_string()), ("ignore_warn", "1")]).await;
    assert_eq!(v["state"], true);
    assert!(!emu.is_alive(a) && !emu.is_alive(b) && !emu.is_alive(f2));
    assert_eq!(emu.recycle_bin(UID).len(), 1);
    let v = post_form(&c, &del, &cookie, &[("fid[0]", &a.to_string())]).await;
    assert_eq!(v["errno"], json!(231011));
    // get_info refuses recycled items; listing the recycled folder falls back to root
    let v = get_json(&c, &format!("{base}/files/get_info?file_id={f2}"), &cookie).await;
    assert_eq!(v["state"], false);
    let v = get_json(&c, &format!("{base}/files?aid=1&cid={a}&show_dir=1"), &cookie).await;
    assert_eq!(v["cid"], json!(0));
    // recycle bin listing and revert
    let v = get_json(&c, &format!("{base}/rb?aid=7&cid=0&format=json&offset=0&limit=10"), &cookie).await;
    assert_eq!(v["data"][0]["id"], json!(a.to_string()));
    assert_shape(
        &json!({"id":"1","file_name":"","file_size":"0","cid":"0","parent_name":"","dtime":"1"}),
        &v["data"][0],
        "",
        &[],
    );
    let v = post_form(&c, &format!("{base}/rb/revert"), &cookie, &[("rid[0]", &a.to_string())]).await;
    assert_eq!(v["state"], true);
    assert!(emu.is_alive(f2));
}

#[tokio::test]
async fn concurrent_mutations_are_refused_while_busy() {
    let emu = Emu115::start(Opts { mutation_latency: Duration::from_millis(400), ..Opts::default() }).await;
    let cookie = emu.add_user(UID, "alice");
    let c = client();
    let d = emu.mkdir(UID, 0, "d");
    let f = emu.put_file(UID, 0, "f", b"1".to_vec());
    let g = emu.put_file(UID, 0, "g", b"2".to_vec());
    let mv = format!("{}/files/move", emu.endpoint("webapi.115.com"));
    let (c1, k1, u1, fs) = (c.clone(), cookie.clone(), mv.clone(), f.to_string());
    let ds = d.to_string();
    let first = tokio::spawn(async move { post_form(&c1, &u1, &k1, &[("pid", &ds), ("fid", &fs)]).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let v = post_form(&c, &mv, &cookie, &[("pid", &d.to_string()), ("fid", &g.to_string())]).await;
    assert_eq!(v["errno"], json!(990019));
    assert_eq!(first.await.unwrap()["state"], true);
    let v = post_form(&c, &mv, &cookie, &[("pid", &d.to_string()), ("fid", &g.to_string())]).await;
    assert_eq!(v["state"], true);
}

#[tokio::test]
async fn throttle_page_is_html_405_and_faults() {
    let (emu, cookie, c) = setup().await;
    let url = files_url(&emu, 0, 0, 10);
    emu.inject("webapi.115.com/files", Fault::throttle().times(2));
    for _ in 0..2 {
        let r = c.get(&url).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(r.status(), 405);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let body = r.text().await.unwrap();
        assert!(body.starts_with("<!doctypehtml>") && body.contains("<title>405</title>") && body.contains("data-spm"));
    }
    assert_eq!(get_json(&c, &url, &cookie).await["state"], true);
    assert_eq!(emu.calls("webapi.115.com/files"), 3);

    emu.inject("*/files/get_info", Fault::status(503).times(1));
    let r = c
        .get(format!("{}/files/get_info?file_id=1", emu.endpoint("webapi.115.com")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);

    let id = emu.inject("webapi.115.com/files", Fault::reset());
    assert!(c.get(&url).header("cookie", &cookie).send().await.is_err(), "connection dropped");
    emu.remove_fault(id);
    assert_eq!(get_json(&c, &url, &cookie).await["state"], true);

    // slow body still delivers the whole JSON
    emu.inject("webapi.115.com/files", Fault::slow_body(16, Duration::from_millis(5)).times(1));
    let t0 = std::time::Instant::now();
    assert_eq!(get_json(&c, &url, &cookie).await["state"], true);
    assert!(t0.elapsed() >= Duration::from_millis(50));
}

#[tokio::test]
async fn token_bucket_throttle() {
    let emu = Emu115::start(Opts { throttle: Some(Throttle { rate_per_sec: 0.5, burst: 3 }), ..Opts::default() }).await;
    let cookie = emu.add_user(UID, "alice");
    let other = emu.add_user(UID + 1, "bob");
    let c = client();
    let url = files_url(&emu, 0, 0, 10);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(c.get(&url).header("cookie", &cookie).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, vec![200, 200, 200, 405, 405]);
    // cookie-scoped: another account is unaffected
    assert_eq!(c.get(&url).header("cookie", &other).send().await.unwrap().status(), 200);
}
