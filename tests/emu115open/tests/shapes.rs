//! Every example body of the reference (`115-open.md`) must have the same field names and
//! JSON types as what the emulator emits for the same call.  The examples are copied here
//! verbatim; `reference_examples_all_covered` checks (when the reference is on disk) that
//! no example of the document is missing from this list.

mod common;

use base64::Engine;
use common::*;
use emu115open::{Options, DEFAULT_APP_ID};
use serde_json::Value;
use sha2::Digest;

const REF: [(&str, &str); 16] = [
    ("1.3 pro envelope", r#"{"state": true, "code": 0, "message": "", "data": { }}"#),
    ("1.3 passport envelope", r#"{"state": 1, "code": 0, "message": "", "data": { }, "error": "", "errno": 0}"#),
    (
        "2.1 authDeviceCode",
        r#"{"state":1,"code":0,"message":"","data":{"uid":"e2b1c0ffee0000000000000000000000","time":1735689600,"qrcode":"https://115.com/scan/dg-e2b1c0ffee0000000000000000000000","sign":"0f3c…"},"error":"","errno":0}"#,
    ),
    ("2.1 qr status", r#"{"state":1,"code":0,"message":"","data":{"msg":"扫码成功","status":1,"version":"…"}}"#),
    (
        "2.1 deviceCodeToToken",
        r#"{"state":1,"code":0,"message":"","data":{"access_token":"<opaque>","refresh_token":"<opaque>","expires_in":7200},"error":"","errno":0}"#,
    ),
    (
        "2.3 refreshToken",
        r#"{"state":1,"code":0,"message":"","data":{"access_token":"<new>","refresh_token":"<new>","expires_in":7200}}"#,
    ),
    (
        "3 user/info",
        r#"{"state":true,"code":0,"message":"","data":{"user_id":123456789,"user_name":"alice","user_face_s":"https://…","user_face_m":"https://…","user_face_l":"https://…","rt_space_info":{"all_total":{"size":16492674416640,"size_format":"15TB"},"all_remain":{"size":15393162788864,"size_format":"14TB"},"all_use":{"size":1099511627776,"size_format":"1TB"}},"vip_info":{"level_name":"年费VIP","expire":1767225599}}}"#,
    ),
    (
        "4.1 ufile/files",
        r#"{"state":true,"code":0,"message":"","data":[
  {"fid":"3216547890123456001","aid":"1","pid":"0","fc":"0","fn":"Movies","fco":"","ism":"0","isp":0,"pc":"fa1b2c3d4e5f6g7h8","upt":1735689600,"uet":1735689600,"uppt":1735600000,"cm":0,"fdesc":"","ispl":0,"fl":[],"sha1":"","fs":0,"fta":"1","ico":"","fatr":"","isv":0,"def":0,"def2":0,"play_long":0,"v_img":"","thumb":"","uo":""},
  {"fid":"3216547890123456002","aid":"1","pid":"0","fc":"1","fn":"a.mkv","fco":"","ism":"0","isp":0,"pc":"a9z8y7x6w5v4u3t2s","upt":1735689700,"uet":1735689700,"uppt":1735689700,"cm":0,"fdesc":"","ispl":0,"fl":[],"sha1":"2AAE6C35C94FCFB415DBE95F408B9CE91EE846ED","fs":1048576,"fta":"1","ico":"mkv","fatr":"","isv":1,"def":4,"def2":4,"play_long":5400,"v_img":"","thumb":"","uo":""}
 ],
 "count":2,"sys_count":0,"offset":0,"limit":200,"aid":1,"cid":0,"is_asc":0,"min_size":0,"max_size":0,"sys_dir":"","hide_data":"","record_open_time":"1","star":0,"type":0,"suffix":"","path":[{"name":"根目录","aid":1,"cid":0,"pid":0,"isp":0,"p_cid":"","fv":""}],"cur":0,"stdir":0,"fields":"","order":"user_ptime"}"#,
    ),
    (
        "4.2 folder/get_info",
        r#"{"state":true,"code":0,"message":"","data":{"count":0,"size":"1.00MB","size_byte":1048576,"folder_count":0,"play_long":5400,"show_play_long":0,"ptime":"1735689700","utime":"1735689700","file_name":"a.mkv","pick_code":"a9z8y7x6w5v4u3t2s","sha1":"2AAE6C35C94FCFB415DBE95F408B9CE91EE846ED","file_id":"3216547890123456002","is_mark":"0","open_time":0,"file_category":"1","paths":[{"file_id":"0","file_name":"根目录"},{"file_id":"3216547890123456001","file_name":"Movies"}]}}"#,
    ),
    (
        "5 downurl",
        r#"{"state":true,"code":0,"message":"","data":{"3216547890123456002":{"file_name":"a.mkv","file_size":1048576,"pick_code":"a9z8y7x6w5v4u3t2s","sha1":"2AAE6C35C94FCFB415DBE95F408B9CE91EE846ED","url":{"url":"https://cdn.example.115cdn.net/…/a.mkv?t=1735693300&u=123456789&s=…&c=0&f=1&…"}}}}"#,
    ),
    (
        "7.2 rapid upload",
        r#"{"state":true,"code":0,"message":"","data":{"status":2,"file_id":"3216547890123456004","pick_code":"cq0example0000abc","bucket":"","object":"","target":"","callback":[]}}"#,
    ),
    (
        "7.2 second check",
        r#"{"state":true,"code":701,"message":"","data":{"status":7,"sign_key":"<opaque>","sign_check":"1048000-1048127","pick_code":"","file_id":"","target":"U_1_0","bucket":"","object":"","callback":[]}}"#,
    ),
    (
        "7.2 upload needed",
        r#"{"state":true,"code":0,"message":"","data":{"status":1,"pick_code":"abc123upload0000x","target":"U_1_3216547890123456001","bucket":"fhnfile","object":"<opaque object key>","file_id":"","sign_key":"","sign_check":"","callback":{"callback":"{\"callbackUrl\":\"http://uplb.115.com/3.0/completeupload.php\",\"callbackBody\":\"bucket=${bucket}&object=${object}&size=${size}&sha1=${sha1}&pick_code=${x:pick_code}&user_id=${x:user_id}&behavior_type=${x:behavior_type}&source=${x:source}&target=${x:target}&task_uid=${x:task_uid}\"}","callback_var":"{\"x:pick_code\":\"abc123upload0000x\",\"x:user_id\":\"123456789\",\"x:behavior_type\":\"0\",\"x:source\":\"100\",\"x:target\":\"U_1_3216547890123456001\",\"x:task_uid\":\"123456789\"}"}}}"#,
    ),
    (
        "7.3 get_token",
        r#"{"state":true,"code":0,"message":"","data":{"endpoint":"https://oss-cn-shenzhen.aliyuncs.com","AccessKeyId":"STS.NTxxxx","AccessKeySecret":"yyyy","SecurityToken":"zzzz","Expiration":"2026-01-01T01:00:00Z"}}"#,
    ),
    (
        "7.4 callback result",
        r#"{"state":true,"code":0,"message":"","data":{"pick_code":"abc123upload0000x","file_name":"a.mkv","file_size":1048576,"file_id":"3216547890123456003","thumb_url":"","sha1":"2AAE6C35C94FCFB415DBE95F408B9CE91EE846ED","aid":1,"cid":"3216547890123456001"}}"#,
    ),
    (
        "8 add_task_urls",
        r#"{"state":true,"code":0,"message":"","data":[{"state":true,"code":0,"message":"","info_hash":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b","url":"magnet:?xt=urn:btih:…"}]}"#,
    ),
];

fn reference(name: &str) -> Value {
    let (_, body) = REF.iter().find(|(n, _)| *n == name).unwrap();
    serde_json::from_str(body).unwrap()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every key of `r` exists in `a` with the same JSON type, recursively.  Objects keyed by
/// numeric ids (downurl) are compared value by value; arrays element by element.
fn diff(r: &Value, a: &Value, path: &str, out: &mut Vec<String>) {
    if kind(r) != kind(a) {
        out.push(format!("{path}: reference {} vs emulator {} ({a})", kind(r), kind(a)));
        return;
    }
    match (r, a) {
        (Value::Object(ro), Value::Object(ao)) => {
            let id_keyed = !ro.is_empty() && ro.keys().all(|k| k.bytes().all(|b| b.is_ascii_digit()));
            if id_keyed {
                let (rv, av) = (ro.values().next().unwrap(), ao.values().next());
                match av {
                    Some(av) => diff(rv, av, &format!("{path}.<id>"), out),
                    None => out.push(format!("{path}: emulator object has no id-keyed entry")),
                }
                return;
            }
            for (k, rv) in ro {
                match ao.get(k) {
                    Some(av) => diff(rv, av, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k}: missing in emulator output")),
                }
            }
        }
        (Value::Array(ra), Value::Array(aa)) => {
            for (i, rv) in ra.iter().enumerate() {
                match aa.get(i) {
                    Some(av) => diff(rv, av, &format!("{path}[{i}]"), out),
                    None => out.push(format!("{path}[{i}]: emulator array too short")),
                }
            }
        }
        _ => {}
    }
}

fn assert_shape(name: &str, actual: &Value) {
    let mut out = Vec::new();
    diff(&reference(name), actual, "$", &mut out);
    assert!(out.is_empty(), "ref §{name} vs emulator:\n{}\nemulator: {actual}", out.join("\n"));
}

/// The callback strings are JSON documents carried as strings: their inner shape must
/// match too.
fn assert_inner_json(name: &str, actual: &Value) {
    let r = reference(name);
    for k in ["callback", "callback_var"] {
        let rv: Value = serde_json::from_str(r["data"]["callback"][k].as_str().unwrap()).unwrap();
        let av: Value = serde_json::from_str(actual["data"]["callback"][k].as_str().unwrap()).unwrap();
        let mut out = Vec::new();
        diff(&rv, &av, k, &mut out);
        assert!(out.is_empty(), "{k}: {out:?}");
    }
}

#[tokio::test]
async fn passport_examples() {
    let t = setup().await;
    let verifier = "0".repeat(64);
    let challenge = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let dc = t
        .passport(
            "/open/authDeviceCode",
            &[("client_id", DEFAULT_APP_ID), ("code_challenge", &challenge), ("code_challenge_method", "sha256")],
        )
        .await;
    assert_shape("1.3 passport envelope", &dc);
    assert_shape("2.1 authDeviceCode", &dc);
    let uid = dc["data"]["uid"].as_str().unwrap().to_string();
    let time = dc["data"]["time"].to_string();
    let sign = dc["data"]["sign"].as_str().unwrap().to_string();
    assert!(t.emu.qr_scan(&uid, t.user));
    let st: Value = t
        .http
        .get(t.url(QR, "/get/status/"))
        .query(&[("uid", uid.as_str()), ("time", &time), ("sign", &sign)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_shape("2.1 qr status", &st);
    assert!(t.emu.qr_confirm(&uid));
    let tok = t.passport("/open/deviceCodeToToken", &[("uid", &uid), ("code_verifier", &verifier)]).await;
    assert_shape("2.1 deviceCodeToToken", &tok);
    let rt = tok["data"]["refresh_token"].as_str().unwrap().to_string();
    let re = t.refresh(&rt).await;
    assert_shape("2.3 refreshToken", &re);
}

#[tokio::test]
async fn resource_examples() {
    let t = setup().await;
    let movies = t.emu.mkdir(t.user, 0, "Movies");
    let content = vec![7u8; 1 << 20];
    let fid = t.emu.put_file(t.user, movies, "a.mkv", &content);
    // a file at the root, uploaded later, so that the folder sorts first as in the example
    t.emu.advance(std::time::Duration::from_secs(5));
    t.emu.put_file(t.user, 0, "a.mkv", &content);

    let ui = t.get("/open/user/info", &[]).await;
    assert_shape("1.3 pro envelope", &ui);
    assert_shape("3 user/info", &ui);

    let ls = t
        .get(
            "/open/ufile/files",
            &[
                ("cid", "0"),
                ("limit", "200"),
                ("offset", "0"),
                ("show_dir", "1"),
                ("asc", "0"),
                ("custom_order", "0"),
                ("stdir", "0"),
                ("star", "0"),
                ("cur", "0"),
            ],
        )
        .await;
    assert_eq!(ls["data"][0]["fc"], "0");
    assert_eq!(ls["data"][1]["fc"], "1");
    assert_shape("4.1 ufile/files", &ls);

    let fid_s = fid.to_string();
    let gi = t.get("/open/folder/get_info", &[("file_id", &fid_s)]).await;
    assert_shape("4.2 folder/get_info", &gi);
    let gi2 = t.post("/open/folder/get_info", &[("path", "/Movies/a.mkv")]).await;
    assert_eq!(gi, gi2);

    let pc = t.emu.entry(fid).unwrap().pick_code;
    let du = t.post("/open/ufile/downurl", &[("pick_code", &pc)]).await;
    assert_shape("5 downurl", &du);
    assert!(du["data"][&fid_s].is_object(), "keyed by file id");

    let add = t
        .post(
            "/open/offline/add_task_urls",
            &[("urls", "magnet:?xt=urn:btih:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"), ("wp_path_id", "0")],
        )
        .await;
    assert_shape("8 add_task_urls", &add);
}

#[tokio::test]
async fn upload_examples() {
    let t = setup().await;
    let dir = t.emu.mkdir(t.user, 0, "Movies");
    let target = format!("U_1_{dir}");
    // rapid upload (below the second-check threshold)
    let small = b"hello world".to_vec();
    let sha = t.emu.add_known_content(&small);
    let preid = sha.clone();
    let size = small.len().to_string();
    let v = t
        .post(
            "/open/upload/init",
            &[("file_name", "h.txt"), ("file_size", &size), ("target", "U_1_0"), ("fileid", &sha), ("preid", &preid)],
        )
        .await;
    assert_eq!(v["data"]["status"], 2, "{v}");
    assert_shape("7.2 rapid upload", &v);

    // second check (>= 1 MiB)
    let big = vec![3u8; 2 << 20];
    let sha_big = t.emu.add_known_content(&big);
    let size_big = big.len().to_string();
    let v = t
        .post(
            "/open/upload/init",
            &[("file_name", "b.bin"), ("file_size", &size_big), ("target", "U_1_0"), ("fileid", &sha_big)],
        )
        .await;
    assert_eq!(v["data"]["status"], 7, "{v}");
    assert_shape("7.2 second check", &v);

    // upload needed
    let fresh = vec![9u8; 4096];
    let sha_fresh = emu_sha1(&fresh);
    let v = t
        .post(
            "/open/upload/init",
            &[("file_name", "a.mkv"), ("file_size", "4096"), ("target", &target), ("fileid", &sha_fresh)],
        )
        .await;
    assert_eq!(v["data"]["status"], 1, "{v}");
    assert_shape("7.2 upload needed", &v);
    assert_inner_json("7.2 upload needed", &v);

    let tok = t.get("/open/upload/get_token", &[]).await;
    assert_shape("7.3 get_token", &tok);

    // OSS PutObject with the callback → 115's callback JSON
    let up = oss_put(&t, &tok["data"], &v["data"], fresh).await;
    assert_shape("7.4 callback result", &up);
}

fn emu_sha1(b: &[u8]) -> String {
    use sha1::Digest;
    hex::encode_upper(sha1::Sha1::digest(b))
}

async fn oss_put(t: &T, tok: &Value, init: &Value, body: Vec<u8>) -> Value {
    use hmac::Mac;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let bucket = init["bucket"].as_str().unwrap();
    let object = init["object"].as_str().unwrap();
    let host = format!("{bucket}.{}", tok["endpoint"].as_str().unwrap().trim_start_matches("https://"));
    let cb = b64(init["callback"]["callback"].as_str().unwrap());
    let cbv = b64(init["callback"]["callback_var"].as_str().unwrap());
    let date = "Thu, 01 Jan 2026 00:00:00 GMT";
    let sts = tok["SecurityToken"].as_str().unwrap();
    let to_sign = format!(
        "PUT\n\napplication/octet-stream\n{date}\nx-oss-callback:{cb}\nx-oss-callback-var:{cbv}\nx-oss-security-token:{sts}\n/{bucket}/{object}"
    );
    let mut mac =
        hmac::Hmac::<sha1::Sha1>::new_from_slice(tok["AccessKeySecret"].as_str().unwrap().as_bytes()).unwrap();
    mac.update(to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let r = t
        .http
        .put(format!("{}/{object}", t.emu.endpoint(&host)))
        .header("content-type", "application/octet-stream")
        .header("date", date)
        .header("x-oss-security-token", sts)
        .header("x-oss-callback", cb)
        .header("x-oss-callback-var", cbv)
        .header("authorization", format!("OSS {}:{sig}", tok["AccessKeyId"].as_str().unwrap()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn rapid_upload_example_with_passed_second_check_has_same_shape() {
    let t = setup_with(Options { second_check_min_size: Some(0), ..Options::default() }).await;
    let data = b"0123456789abcdef".repeat(100);
    let sha = t.emu.add_known_content(&data);
    let size = data.len().to_string();
    let base = [("file_name", "x.bin"), ("file_size", size.as_str()), ("target", "U_1_0"), ("fileid", sha.as_str())];
    let v = t.post("/open/upload/init", &base).await;
    assert_eq!(v["data"]["status"], 7);
    let (a, b) = v["data"]["sign_check"].as_str().unwrap().split_once('-').unwrap();
    let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
    let val = emu_sha1(&data[a..=b]);
    let key = v["data"]["sign_key"].as_str().unwrap().to_string();
    let mut form = base.to_vec();
    form.push(("sign_key", &key));
    form.push(("sign_val", &val));
    let v = t.post("/open/upload/init", &form).await;
    assert_shape("7.2 rapid upload", &v);
}

#[test]
fn reference_examples_all_covered() {
    let path = reference_doc("115-open.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for line in doc.lines() {
        match (&mut cur, line.trim_start()) {
            (None, l) if l.starts_with("```json") => cur = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => blocks.push(cur.take().unwrap()),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    assert!(!blocks.is_empty());
    let ours: Vec<Value> = REF.iter().map(|(_, b)| serde_json::from_str(b).unwrap()).collect();
    for b in blocks {
        let v: Value = serde_json::from_str(&b).unwrap_or_else(|e| panic!("reference block not JSON: {e}\n{b}"));
        assert!(ours.contains(&v), "reference example not covered by this test:\n{b}");
    }
}

/// The reference lives in `shared/reference/` beside the repository (`../shared` of the
/// checkout; CI lays a copy there). `PANDAV_REFERENCE_DIR` overrides the search. A missing
/// file is a failure, never a skip: this test must not turn green without its input.
fn reference_doc(name: &str) -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("PANDAV_REFERENCE_DIR") {
        return std::path::Path::new(&dir).join(name);
    }
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in manifest.ancestors() {
        let candidate = dir.join("shared").join("reference").join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "reference {name} not found in shared/reference/ beside any ancestor of {} (set PANDAV_REFERENCE_DIR)",
        manifest.display()
    );
}
