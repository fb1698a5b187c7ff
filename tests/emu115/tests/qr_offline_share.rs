//! §1 QR login & cookie checks, §6 offline, §7 shares.

mod common;
use common::*;
use emu115::{Emu115, Opts, ShareState};
use serde_json::{json, Value};
use std::time::Duration;

const UID: u64 = 123456789;

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

async fn status(c: &reqwest::Client, emu: &Emu115, tok: &Value) -> Value {
    let d = &tok["data"];
    get_json(
        c,
        &format!(
            "{}/get/status/?uid={}&time={}&sign={}&_={}",
            emu.endpoint("qrcodeapi.115.com"),
            d["uid"].as_str().unwrap(),
            d["time"],
            d["sign"].as_str().unwrap(),
            now_s()
        ),
        "",
    )
    .await
}

#[tokio::test]
async fn qr_login_flow_issues_cookies_for_the_app_slot() {
    let emu = Emu115::start(Opts::default()).await;
    let old_web = emu.add_user(UID, "alice");
    let c = client();
    let tok = get_json(&c, &format!("{}/api/1.0/web/1.0/token/", emu.endpoint("qrcodeapi.115.com")), "").await;
    let ex: Value = serde_json::from_str(
        r#"{"state":1,"code":0,"message":"","errno":0,"error":"",
 "data":{"uid":"6ae86b118792f0152699613b728dea650afdd40b","time":1700000000,
         "sign":"2c1b7f6e...","qrcode":"https://115.com/scan/dg-6ae86b118792f0152699613b728dea650afdd40b"}}"#,
    )
    .unwrap();
    assert_shape(&ex, &tok, "", &[]);
    let uid = tok["data"]["uid"].as_str().unwrap().to_string();
    assert_eq!(uid.len(), 40);
    let s = status(&c, &emu, &tok).await;
    assert_shape(&json!({"state":1,"code":0,"message":"","data":{"msg":"","status":1,"version":""}}), &s, "", &[]);
    assert_eq!(s["data"]["status"], json!(0));
    // result before confirmation fails
    let r = post_form(
        &c,
        &format!("{}/app/1.0/web/1.0/login/qrcode", emu.endpoint("passportapi.115.com")),
        "",
        &[("account", &uid), ("app", "web")],
    )
    .await;
    assert_eq!(r["state"], json!(0));
    assert!(emu.qr_scan(&uid, UID));
    assert_eq!(status(&c, &emu, &tok).await["data"]["status"], json!(1));
    assert!(emu.qr_confirm(&uid));
    assert_eq!(status(&c, &emu, &tok).await["data"]["status"], json!(2));
    let r = post_form(
        &c,
        &format!("{}/app/1.0/web/1.0/login/qrcode", emu.endpoint("passportapi.115.com")),
        "",
        &[("account", &uid), ("app", "web")],
    )
    .await;
    let ex: Value = serde_json::from_str(
        r#"{"state":1,"code":0,"message":"","errno":0,"error":"",
 "data":{"alert":"","bind_mobile":1,"country":"CN","email":"","from":"",
         "face":{"face_l":"https://...","face_m":"https://...","face_s":"https://..."},
         "is_chang_passwd":0,"is_first_login":0,"is_trusted":null,"is_vip":1,"mark":0,
         "mobile":"138****0000","user_id":123456789,"user_name":"alice",
         "cookie":{"UID":"123456789_I1_1700000100","CID":"0f1e...","SEID":"9a8b...","KID":"c3d4..."}}}"#,
    )
    .unwrap();
    assert_shape(&ex, &r, "", &[]);
    let ck = &r["data"]["cookie"];
    assert!(ck["UID"].as_str().unwrap().starts_with("123456789_A1_"));
    let cookie = format!(
        "UID={}; CID={}; SEID={}; KID={}",
        ck["UID"].as_str().unwrap(),
        ck["CID"].as_str().unwrap(),
        ck["SEID"].as_str().unwrap(),
        ck["KID"].as_str().unwrap()
    );
    let files = format!("{}/files?aid=1&cid=0&show_dir=1", emu.endpoint("webapi.115.com"));
    assert_eq!(get_json(&c, &files, &cookie).await["state"], true);
    // one session per device type: the older web cookie is dead now
    assert_eq!(get_json(&c, &files, &old_web).await["errNo"], json!(990001));
    // the token is single-use
    let r = post_form(
        &c,
        &format!("{}/app/1.0/web/1.0/login/qrcode/", emu.endpoint("qrcodeapi.115.com")),
        "",
        &[("account", &uid)],
    )
    .await;
    assert_eq!(r["code"], json!(40199002));

    // cookie checks
    let my = emu.endpoint("my.115.com");
    assert_eq!(get_json(&c, &format!("{my}/?ct=guide&ac=status&_={}", now_s()), &cookie).await["state"], true);
    let nav = get_json(&c, &format!("{my}/?ct=ajax&ac=nav&_={}", now_s()), &cookie).await;
    assert_eq!(nav["data"]["user_id"], json!(UID));
    assert!(nav["data"]["privilege"]["mark"].is_string());
    let sso = get_json(
        &c,
        &format!("{}/app/1.0/web/1.0/check/sso?_={}", emu.endpoint("passportapi.115.com"), now_s()),
        &cookie,
    )
    .await;
    assert_eq!((sso["state"].clone(), sso["data"]["user_id"].clone()), (json!(0), json!(UID)));
    assert_eq!(get_json(&c, &format!("{my}/?ct=guide&ac=status"), "").await["state"], false);
}

#[tokio::test]
async fn qr_tv_login_keeps_web_session_and_alias_hosts() {
    let emu = Emu115::start(Opts::default()).await;
    let web = emu.add_user(UID, "alice");
    let c = client();
    let tok = get_json(&c, &format!("{}/api/1.0/tv/1.0/token", emu.endpoint("hnqrcodeapi.115.com")), "").await;
    let uid = tok["data"]["uid"].as_str().unwrap().to_string();
    // scanning side over HTTP with the logged-in cookie (§1.2.6)
    let q = emu.endpoint("qrcodeapi.115.com");
    assert_eq!(get_json(&c, &format!("{q}/api/2.0/prompt.php?uid={uid}"), &web).await["state"], json!(1));
    assert_eq!(
        get_json(&c, &format!("{q}/api/2.0/slogin.php?key={uid}&uid={uid}&client=0"), &web).await["state"],
        json!(1)
    );
    let r = post_form(
        &c,
        &format!("{}/app/1.0/tv/1.0/login/qrcode", emu.endpoint("hnpassportapi.115.com")),
        "",
        &[("account", &uid), ("app", "tv")],
    )
    .await;
    assert!(r["data"]["cookie"]["UID"].as_str().unwrap().contains("_I1_"));
    assert_eq!(get_json(&c, &format!("{}/files", emu.endpoint("webapi.115.com")), &web).await["state"], true);
    // bare "mac" is disabled
    let tok = get_json(&c, &format!("{q}/api/1.0/mac/1.0/token"), "").await;
    let u2 = tok["data"]["uid"].as_str().unwrap().to_string();
    emu.qr_scan(&u2, UID);
    emu.qr_confirm(&u2);
    let r = post_form(
        &c,
        &format!("{}/app/1.0/mac/1.0/login/qrcode", emu.endpoint("passportapi.115.com")),
        "",
        &[("account", &u2)],
    )
    .await;
    assert_eq!(r["state"], json!(0));
}

#[tokio::test]
async fn qr_cancel_expiry_and_long_poll() {
    let emu = Emu115::start(Opts { qr_long_poll: Duration::from_secs(3), ..Opts::default() }).await;
    emu.add_user(UID, "alice");
    let c = client();
    let q = emu.endpoint("qrcodeapi.115.com");
    let tok = get_json(&c, &format!("{q}/api/1.0/web/1.0/token/"), "").await;
    let uid = tok["data"]["uid"].as_str().unwrap().to_string();
    // long poll: held until the scan happens
    let emu_uid = uid.clone();
    let t0 = std::time::Instant::now();
    let (c2, tok2) = (c.clone(), tok.clone());
    let endpoint = emu.endpoint("qrcodeapi.115.com");
    let waiter = tokio::spawn(async move {
        let d = &tok2["data"];
        get_json(
            &c2,
            &format!(
                "{endpoint}/get/status/?uid={}&time={}&sign={}",
                d["uid"].as_str().unwrap(),
                d["time"],
                d["sign"].as_str().unwrap()
            ),
            "",
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    emu.qr_scan(&emu_uid, UID);
    let s = waiter.await.unwrap();
    assert_eq!(s["data"]["status"], json!(1));
    assert!(t0.elapsed() >= Duration::from_millis(250) && t0.elapsed() < Duration::from_secs(3));
    emu.qr_cancel(&uid);
    assert_eq!(status(&c, &emu, &tok).await["data"]["status"], json!(-2));
    // expiry: by clock
    let tok = get_json(&c, &format!("{q}/api/1.0/web/1.0/token/"), "").await;
    emu.advance_time(Duration::from_secs(301));
    let s = status(&c, &emu, &tok).await;
    assert_eq!((s["code"].clone(), s["data"]["status"].clone()), (json!(40199002), json!(-1)));
    // wrong sign
    let mut bad = tok.clone();
    bad["data"]["sign"] = json!("nope");
    assert_eq!(status(&c, &emu, &bad).await["state"], json!(0));
}

async fn offline_add(emu: &Emu115, c: &reqwest::Client, cookie: &str, payload: &Value) -> (Value, Value) {
    let k: [u8; 16] = rand::random();
    let data = m115_encode(payload.to_string().as_bytes(), &k);
    let outer = post_form(
        c,
        &format!("{}/lixianssp/?ac={}&t={}", emu.endpoint("lixian.115.com"), payload["ac"].as_str().unwrap(), now_s()),
        cookie,
        &[("data", &data)],
    )
    .await;
    let dec = match outer["data"].as_str() {
        Some(d) => serde_json::from_slice(&m115_decode(d, &k)).unwrap(),
        None => Value::Null,
    };
    (outer, dec)
}

#[tokio::test]
async fn offline_add_list_delete() {
    let emu = Emu115::start(Opts::default()).await;
    let cookie = emu.add_user(UID, "alice");
    let c = client();
    let dir = emu.mkdir(UID, 0, "dl");
    let magnet = "magnet:?xt=urn:btih:A1B2C3D4E5F60718293A4B5C6D7E8F9012345678&dn=ubuntu.iso";
    let payload = json!({"ac": "add_task_urls", "wp_path_id": dir.to_string(), "app_ver": "35.6.0.3", "uid": UID.to_string(),
                         "url[0]": magnet, "url[1]": "https://example.com/path/file.iso?x=1", "url[2]": "ed2k://|file|a.mkv|123|0123456789abcdef0123456789abcdef|/", "url[3]": "nonsense"});
    let (outer, dec) = offline_add(&emu, &c, &cookie, &payload).await;
    assert_shape(&json!({"state":true,"errno":0,"error":"","data":"x"}), &outer, "", &[]);
    let ex: Value = serde_json::from_str(r#"{"state":true,"errno":0,"errcode":0,"result":[
   {"state":true,"errno":0,"errcode":0,"errtype":"","info_hash":"a1b2c3…40hex","name":"ubuntu.iso","url":"https://…"}]}"#).unwrap();
    assert_shape(&ex, &dec, "", &[]);
    let res = dec["result"].as_array().unwrap();
    assert_eq!(res.len(), 4);
    assert_eq!(res[0]["info_hash"], "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678");
    assert_eq!(res[0]["name"], "ubuntu.iso");
    assert_eq!(res[1]["name"], "file.iso");
    assert_eq!(res[2]["state"], true);
    assert_eq!((res[3]["state"].clone(), res[3]["errcode"].clone()), (json!(false), json!(10004)));
    // task exists
    let (_, dec) = offline_add(
        &emu,
        &c,
        &cookie,
        &json!({"ac": "add_task_urls", "wp_path_id": dir.to_string(), "url[0]": magnet}),
    )
    .await;
    assert_eq!(dec["result"][0]["errcode"], json!(10008));
    assert_eq!(dec["result"][0]["info_hash"], "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678");
    // quota
    emu.set_offline_quota(UID, 0);
    let (_, dec) =
        offline_add(&emu, &c, &cookie, &json!({"ac": "add_task_urls", "url[0]": "https://example.com/2"})).await;
    assert_eq!(dec["result"][0]["errcode"], json!(10010));
    // missing save dir
    let (outer, _) = offline_add(
        &emu,
        &c,
        &cookie,
        &json!({"ac": "add_task_urls", "wp_path_id": "1", "url[0]": "https://example.com/3"}),
    )
    .await;
    assert_eq!(outer["errno"], json!(10014));

    // list with paging
    emu.set_offline_quota(UID, 100);
    for i in 0..40 {
        offline_add(&emu, &c, &cookie, &json!({"ac": "add_task_url", "url": format!("https://example.com/f{i}")}))
            .await;
    }
    let base = emu.endpoint("lixian.115.com");
    let v = post_form(&c, &format!("{base}/lixian/?ct=lixian&ac=task_lists&page=1"), &cookie, &[]).await;
    let ex: Value = serde_json::from_str(r#"{"state":true,"errno":0,"error":"","page":1,"page_count":1,"page_row":30,"count":2,
 "total":1500,"quota":1498,
 "tasks":[{"info_hash":"a1b2…","name":"ubuntu.iso","size":4700000000,"url":"https://…","add_time":1700000000,
           "last_update":1700000300,"left_time":0,"peers":0,"rateDownload":0,"status":2,"percentDone":100,
           "file_id":"2593093001609742000","delete_file_id":"2593093001609742000","wp_path_id":"2593093001609739968","move":1}]}"#).unwrap();
    assert_shape(&ex, &v, "", &[]);
    assert_eq!(v["count"], json!(43));
    assert_eq!(v["page_count"], json!(2));
    assert_eq!(v["tasks"].as_array().unwrap().len(), 30);
    let v2 = get_json(&c, &format!("{base}/lixian/?ct=lixian&ac=task_lists&page=2"), &cookie).await;
    assert_eq!(v2["tasks"].as_array().unwrap().len(), 13);
    // completion hook puts the file into the save dir
    let fid = emu.offline_complete(UID, "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678", b"iso".to_vec()).unwrap();
    assert_eq!(emu.entry(fid).unwrap().parent_id, dir);
    // delete with flag=1 also removes the file
    let v = post_form(
        &c,
        &format!("{base}/lixian/?ct=lixian&ac=task_del"),
        &cookie,
        &[("hash[0]", "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"), ("flag", "1")],
    )
    .await;
    assert_eq!(v["state"], true);
    assert!(!emu.is_alive(fid));
    assert_eq!(emu.offline_tasks(UID).len(), 42);
    let v = post_form(&c, &format!("{base}/lixian/?ct=lixian&ac=task_clear"), &cookie, &[("flag", "1")]).await;
    assert_eq!(v["state"], true);
    assert!(emu.offline_tasks(UID).is_empty());
    assert_eq!(emu.calls("lixian.115.com/lixianssp?ac=add_task_urls"), 4);
}

const SNAP_EXAMPLE: &str = r#"{"state":true,"error":"","errno":0,
 "data":{"userinfo":{"user_id":"123456789","user_name":"alice","face":"https://…"},
  "shareinfo":{"snap_id":"1234567","file_size":"2147483648","share_title":"My share","share_state":1,
               "forbid_reason":"","create_time":"1699990000","receive_code":"w816","receive_count":"3",
               "expire_time":1702582000,"file_category":1,"auto_renewal":"0","auto_fill_recvcode":"0",
               "can_report":1,"can_notice":1,"have_vio_file":0},
  "count":2,"share_state":"1",
  "list":[{"cid":"2593093001609750000","pid":"0","n":"Folder A","t":"1699990000","fc":0,"uid":123456789,"fl":[]},
          {"fid":"2593093001609750001","cid":"0","uid":123456789,"n":"video.mp4","s":1048576,"sha":"ABCD…",
           "ico":"mp4","fc":1,"t":"1699990000","iv":1,"vdi":4,"play_long":300,"u":"https://…"}],
  "user_appeal":{"can_appeal":0,"can_share_appeal":0,"popup_appeal_page":0,"can_global_appeal":0}}}"#;

#[tokio::test]
async fn share_snap_states_and_downloads() {
    let emu = Emu115::start(Opts::default()).await;
    let owner = emu.add_user(UID, "alice");
    let viewer = emu.add_user(UID + 1, "bob");
    let c = client();
    let folder = emu.mkdir(UID, 0, "Folder A");
    for i in 0..25 {
        emu.put_file(UID, folder, &format!("ep{i:02}.mkv"), vec![i as u8; 10]);
    }
    let video = emu.put_file(UID, 0, "video.mp4", (0..1000u32).map(|i| i as u8).collect::<Vec<u8>>());
    let sh = emu.create_share(UID, &[folder, video]);
    assert!(sh.share_code.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    assert_eq!(sh.receive_code.len(), 4);
    let web = emu.endpoint("webapi.115.com");
    let snap = |cid: u64, off: usize, lim: usize, recv: &str| {
        format!("{web}/share/snap?share_code={}&receive_code={recv}&cid={cid}&offset={off}&limit={lim}&asc=1&o=file_name&format=json", sh.share_code)
    };
    let v = get_json(&c, &snap(0, 0, 20, &sh.receive_code), "").await;
    let ex: Value = serde_json::from_str(SNAP_EXAMPLE).unwrap();
    assert_shape(&ex, &v, "", &["share_state", "receive_count", "auto_renewal", "auto_fill_recvcode"]);
    assert_eq!(v["data"]["shareinfo"]["share_state"], json!(1));
    assert_eq!(v["data"]["count"], json!(2));
    emu.set_share_state_numeric(false);
    let v = get_json(&c, &snap(0, 0, 20, &sh.receive_code), "").await;
    assert_eq!(v["data"]["shareinfo"]["share_state"], json!("1"));
    assert_eq!(v["data"]["share_state"], json!("1"));
    // paging inside the shared folder returns each file once
    let mut seen = std::collections::HashSet::new();
    let mut off = 0;
    loop {
        let v = get_json(&c, &snap(folder, off, 7, &sh.receive_code), "").await;
        let list = v["data"]["list"].as_array().unwrap();
        for it in list {
            assert!(seen.insert(it["fid"].as_str().unwrap().to_string()));
            assert_eq!(it["cid"], json!(folder.to_string()));
        }
        off += list.len();
        if list.is_empty() || off >= v["data"]["count"].as_u64().unwrap() as usize {
            break;
        }
    }
    assert_eq!(seen.len(), 25);
    // receive code handling; the owner may omit it
    assert_eq!(get_json(&c, &snap(0, 0, 20, "zzzz"), "").await["errno"], json!(4100008));
    assert_eq!(get_json(&c, &snap(0, 0, 20, ""), "").await["errno"], json!(4100012));
    assert_eq!(get_json(&c, &snap(0, 0, 20, ""), &owner).await["state"], true);
    assert_eq!(
        get_json(&c, &format!("{web}/share/snap?share_code=nope&receive_code=abcd&cid=0"), "").await["errno"],
        json!(4100026)
    );

    // (a) app downurl: m115, 115 UA, logged in
    let pro = emu.endpoint("proapi.115.com");
    let ua = "Mozilla/5.0 115Browser/27.0.5.7";
    let k: [u8; 16] = rand::random();
    let payload =
        json!({"share_code": sh.share_code, "receive_code": sh.receive_code, "file_id": video.to_string()}).to_string();
    let send = |ua: &'static str, cookie: String| {
        let c = c.clone();
        let data = m115_encode(payload.as_bytes(), &k);
        let url = format!("{pro}/app/share/downurl?t={}", now_s());
        async move {
            let r = c
                .post(url)
                .header("user-agent", ua)
                .header("cookie", cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("data={}", enc(&data)))
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(send(ua, String::new()).await, json!({"state": false, "error": "请重新登录", "errno": 99, "data": []}));
    let v = send("Mozilla/5.0 VLC", viewer.clone()).await;
    assert_eq!(v, json!({"state": false, "error": "当前版本过低，请升级到最新版本下载。"}));
    let v = send(ua, viewer.clone()).await;
    let dec: Value = serde_json::from_slice(&m115_decode(v["data"].as_str().unwrap(), &k)).unwrap();
    assert_shape(&serde_json::from_str(r#"{"fid":"…","fn":"video.mp4","fs":"1048576","url":{"url":"https://…","client":1,"desc":null,"isp":null,"oss_id":"…","ooid":"…"}}"#).unwrap(), &dec, "", &[]);
    let url = dec["url"]["url"].as_str().unwrap();
    let r = c.get(url).header("user-agent", ua).header("range", "bytes=0-9").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().to_vec(), (0..10u8).collect::<Vec<u8>>());
    assert_eq!(c.get(url).header("user-agent", "other").send().await.unwrap().status(), 403);

    // (b) web downurl needs the share referer
    let u = format!(
        "{web}/share/downurl?share_code={}&receive_code={}&file_id={video}&dl=1",
        sh.share_code, sh.receive_code
    );
    let v: Value = c.get(&u).header("cookie", &viewer).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["state"], false);
    let v: Value = c
        .get(&u)
        .header("cookie", &viewer)
        .header("user-agent", "Player")
        .header("referer", format!("https://115cdn.com/s/{}?password={}&", sh.share_code, sh.receive_code))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"]["fs"], json!("1000"));
    let url = v["data"]["url"]["url"].as_str().unwrap();
    assert_eq!(c.get(url).header("user-agent", "Player").send().await.unwrap().status(), 200);

    // receive into bob's drive
    let v = post_form(
        &c,
        &format!("{web}/share/receive"),
        &viewer,
        &[
            ("user_id", &(UID + 1).to_string()),
            ("share_code", &sh.share_code),
            ("receive_code", &sh.receive_code),
            ("file_id", &format!("{folder},{video}")),
            ("cid", "0"),
        ],
    )
    .await;
    assert_eq!(v["state"], true);
    let kids = emu.list_children(UID + 1, 0);
    assert_eq!(kids.len(), 2);
    let f = kids.iter().find(|e| e.is_dir).unwrap();
    assert_eq!(emu.list_children(UID + 1, f.id).len(), 25);
    let empty = emu.mkdir(UID, 0, "empty");
    let sh2 = emu.create_share(UID, &[empty]);
    let v = post_form(
        &c,
        &format!("{web}/share/receive"),
        &viewer,
        &[("share_code", &sh2.share_code), ("receive_code", &sh2.receive_code), ("file_id", &empty.to_string())],
    )
    .await;
    assert_eq!(v["errno"], json!(51011));

    // states
    emu.set_share_state(&sh.share_code, ShareState::Canceled);
    assert_eq!(get_json(&c, &snap(0, 0, 20, &sh.receive_code), "").await["errno"], json!(4100009));
    emu.set_share_state(&sh.share_code, ShareState::Expired);
    assert_eq!(get_json(&c, &snap(0, 0, 20, &sh.receive_code), "").await["errno"], json!(4100010));
    emu.set_share_state(&sh.share_code, ShareState::Deleted);
    assert_eq!(get_json(&c, &snap(0, 0, 20, &sh.receive_code), "").await["errno"], json!(4100026));
}

#[tokio::test]
async fn share_web_downurl_version_gate_option() {
    let emu = Emu115::start(Opts { share_web_downurl_version_gate: true, ..Opts::default() }).await;
    let cookie = emu.add_user(UID, "alice");
    let f = emu.put_file(UID, 0, "a", b"x".to_vec());
    let sh = emu.create_share(UID, &[f]);
    let c = client();
    let v = get_json(
        &c,
        &format!(
            "{}/share/downurl?share_code={}&receive_code={}&file_id={f}&dl=1",
            emu.endpoint("webapi.115.com"),
            sh.share_code,
            sh.receive_code
        ),
        &cookie,
    )
    .await;
    assert_eq!(v, json!({"state": false, "error": "当前版本过低，请升级到最新版本下载。"}));
}
