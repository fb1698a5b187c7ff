//! Upload (ref §7): init statuses, second check, get_token, OSS PUT / multipart with the
//! callback, resume.

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use emu115open::Options;
use hmac::Mac;
use serde_json::Value;

fn sha1u(b: &[u8]) -> String {
    use sha1::Digest;
    hex::encode_upper(sha1::Sha1::digest(b))
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

const DATE: &str = "Thu, 01 Jan 2026 00:00:00 GMT";
const SIGNED: &[&str] = &["uploads", "sequential", "partNumber", "uploadId"];

/// An OSS V1-signed request against the emulator's bucket host (115-web §5.5).
#[allow(clippy::too_many_arguments)]
async fn oss(
    t: &T,
    tok: &Value,
    method: &str,
    bucket: &str,
    object: &str,
    query: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> reqwest::Response {
    oss_signed(t, tok, method, bucket, object, query, headers, body, None).await
}

#[allow(clippy::too_many_arguments)]
async fn oss_signed(
    t: &T,
    tok: &Value,
    method: &str,
    bucket: &str,
    object: &str,
    query: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    secret_override: Option<&str>,
) -> reqwest::Response {
    let endpoint = tok["endpoint"].as_str().unwrap().trim_start_matches("https://");
    let host = format!("{bucket}.{endpoint}");
    let ctype = if method == "POST" && query.contains("uploadId") { "text/xml" } else { "application/octet-stream" };
    let mut oss_h: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    oss_h.push(("x-oss-security-token".into(), tok["SecurityToken"].as_str().unwrap().into()));
    oss_h.sort();
    let mut sub: Vec<&str> = query.split('&').filter(|kv| SIGNED.contains(&kv.split('=').next().unwrap())).collect();
    sub.sort();
    let mut to_sign = format!("{method}\n\n{ctype}\n{DATE}\n");
    for (k, v) in &oss_h {
        to_sign.push_str(&format!("{k}:{v}\n"));
    }
    to_sign.push_str(&format!("/{bucket}/{object}"));
    if !sub.is_empty() {
        to_sign.push('?');
        to_sign.push_str(&sub.join("&"));
    }
    let secret = secret_override.unwrap_or(tok["AccessKeySecret"].as_str().unwrap());
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let mut url = format!("{}/{object}", t.emu.endpoint(&host));
    if !query.is_empty() {
        url = format!("{url}?{query}");
    }
    let mut rq = t
        .http
        .request(method.parse().unwrap(), url)
        .header("content-type", ctype)
        .header("date", DATE)
        .header("authorization", format!("OSS {}:{sig}", tok["AccessKeyId"].as_str().unwrap()));
    for (k, v) in oss_h {
        rq = rq.header(k, v);
    }
    rq.body(body).send().await.unwrap()
}

fn cb_headers(init: &Value) -> Vec<(&'static str, String)> {
    vec![
        ("x-oss-callback", b64(init["callback"]["callback"].as_str().unwrap())),
        ("x-oss-callback-var", b64(init["callback"]["callback_var"].as_str().unwrap())),
    ]
}

async fn init(t: &T, name: &str, data: &[u8], target: &str) -> Value {
    let sha = sha1u(data);
    let preid = sha1u(&data[..data.len().min(128 * 1024)]);
    let size = data.len().to_string();
    t.post(
        "/open/upload/init",
        &[("file_name", name), ("file_size", &size), ("target", target), ("fileid", &sha), ("preid", &preid)],
    )
    .await
}

fn xml_tag(doc: &str, tag: &str) -> String {
    let s = doc.find(&format!("<{tag}>")).unwrap() + tag.len() + 2;
    let e = doc[s..].find(&format!("</{tag}>")).unwrap() + s;
    doc[s..e].to_string()
}

#[tokio::test]
async fn simple_put_with_callback_creates_file_then_rapid_upload() {
    let t = setup().await;
    let dir = t.emu.mkdir(t.user, 0, "up");
    let data = b"some bytes to upload".repeat(50);
    let v = init(&t, "x.bin", &data, &format!("U_1_{dir}")).await;
    assert_eq!(v["data"]["status"], 1, "{v}");
    let d = v["data"].clone();
    assert_eq!(t.emu.pending_uploads(), 1);
    let cbv: Value = serde_json::from_str(d["callback"]["callback_var"].as_str().unwrap()).unwrap();
    assert_eq!(cbv["x:pick_code"], d["pick_code"]);
    assert_eq!(cbv["x:target"], format!("U_1_{dir}"));
    let tok = t.get("/open/upload/get_token", &[]).await["data"].clone();
    assert!(tok["AccessKeyId"].as_str().unwrap().starts_with("STS."));

    // path-style addressing is refused
    let r = t
        .http
        .put(format!("{}/fhnfile/{}", t.emu.endpoint("oss-cn-shenzhen.aliyuncs.com"), d["object"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("SecondLevelDomainForbidden"));

    let r = oss(&t, &tok, "PUT", "fhnfile", d["object"].as_str().unwrap(), "", &cb_headers(&d), data.clone()).await;
    assert_eq!(r.status(), 200);
    let cb: Value = r.json().await.unwrap();
    assert_eq!(cb["state"], true, "{cb}");
    let fid: u64 = cb["data"]["file_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(cb["data"]["pick_code"], d["pick_code"], "the file keeps the upload's pick code");
    assert_eq!(cb["data"]["cid"], dir.to_string());
    assert_eq!(t.emu.file_bytes(fid).unwrap(), data);
    assert_eq!(t.emu.entry(fid).unwrap().parent, dir);
    assert_eq!(t.emu.pending_uploads(), 0);

    // same content again: rapid upload (< 1 MiB, no second check); names may repeat
    let v = init(&t, "x.bin", &data, &format!("U_1_{dir}")).await;
    assert_eq!(v["data"]["status"], 2, "{v}");
    assert_eq!(v["data"]["callback"], serde_json::json!([]));
    assert_eq!(t.emu.children(t.user, dir).iter().filter(|e| e.name == "x.bin").count(), 2);
}

#[tokio::test]
async fn second_check() {
    let t = setup().await;
    let data: Vec<u8> = (0..(3u32 << 20)).map(|i| (i * 7 % 256) as u8).collect();
    let sha = t.emu.add_known_content(&data);
    let size = data.len().to_string();
    let base =
        vec![("file_name", "big.bin"), ("file_size", size.as_str()), ("target", "U_1_0"), ("fileid", sha.as_str())];
    let v = t.post("/open/upload/init", &base).await;
    assert_eq!((v["code"].as_i64(), v["data"]["status"].as_i64()), (Some(701), Some(7)), "{v}");
    assert_eq!(v["state"], true);
    let key = v["data"]["sign_key"].as_str().unwrap().to_string();
    let (a, b) = v["data"]["sign_check"].as_str().unwrap().split_once('-').unwrap();
    let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
    assert!(b < data.len() && a <= b);

    // wrong value → status 8 / code 702 (with a fresh challenge)
    let mut bad = base.clone();
    let wrong = sha1u(&data[a..b]); // off by one: inclusive range expected
    bad.push(("sign_key", key.as_str()));
    bad.push(("sign_val", wrong.as_str()));
    let v8 = t.post("/open/upload/init", &bad).await;
    assert_eq!((v8["code"].as_i64(), v8["data"]["status"].as_i64()), (Some(702), Some(8)), "{v8}");
    // lowercase value is refused too (uppercase per ref §7.1)
    let lower = sha1u(&data[a..=b]).to_lowercase();
    let mut low = base.clone();
    low.push(("sign_key", key.as_str()));
    low.push(("sign_val", lower.as_str()));
    assert_eq!(t.post("/open/upload/init", &low).await["data"]["status"], 8);

    // right value → status 2
    let right = sha1u(&data[a..=b]);
    let mut good = base.clone();
    good.push(("sign_key", key.as_str()));
    good.push(("sign_val", right.as_str()));
    let v = t.post("/open/upload/init", &good).await;
    assert_eq!(v["data"]["status"], 2, "{v}");
    let fid: u64 = v["data"]["file_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(t.emu.file_bytes(fid).unwrap(), data);
    // the sign_key is single use
    let v = t.post("/open/upload/init", &good).await;
    assert_eq!(v["data"]["status"], 8);
}

#[tokio::test]
async fn init_parameter_errors() {
    let t = setup().await;
    let data = b"abc";
    let sha = sha1u(data);
    let lower = sha.to_lowercase();
    for (target, fileid, want) in
        [("U_1_0", lower.as_str(), 990002), ("X_0", sha.as_str(), 990002), ("U_1_777", sha.as_str(), 20009)]
    {
        let v = t
            .post(
                "/open/upload/init",
                &[("file_name", "a"), ("file_size", "3"), ("target", target), ("fileid", fileid)],
            )
            .await;
        assert_eq!((v["state"].as_bool(), code(&v)), (Some(false), want), "{target} {fileid}");
    }
    // pre_id (qmediasync spelling) or a wrong preid are tolerated
    let v = t
        .post(
            "/open/upload/init",
            &[("file_name", "a"), ("file_size", "3"), ("target", "U_1_0"), ("fileid", &sha), ("pre_id", "0000")],
        )
        .await;
    assert_eq!(v["data"]["status"], 1);
}

#[tokio::test]
async fn multipart_resume_and_callback_only_on_complete() {
    let t = setup().await;
    let part = 100 * 1024;
    let data: Vec<u8> = (0..(2 * part + 1234)).map(|i| (i % 253) as u8).collect();
    let v = init(&t, "movie.mkv", &data, "U_1_0").await;
    let d = v["data"].clone();
    let pc = d["pick_code"].as_str().unwrap().to_string();
    let obj = d["object"].as_str().unwrap().to_string();
    let tok = t.get("/open/upload/get_token", &[]).await["data"].clone();

    // sequential is required on initiate
    let r = oss(&t, &tok, "POST", "fhnfile", &obj, "uploads", &[], vec![]).await;
    assert_eq!(r.status(), 400);
    let r = oss(&t, &tok, "POST", "fhnfile", &obj, "uploads&sequential=1", &[], vec![]).await;
    assert_eq!(r.status(), 200);
    let upload_id = xml_tag(&r.text().await.unwrap(), "UploadId");
    let r = oss(
        &t,
        &tok,
        "PUT",
        "fhnfile",
        &obj,
        &format!("partNumber=1&uploadId={upload_id}"),
        &[],
        data[..part].to_vec(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let etag1 = r.headers()["etag"].to_str().unwrap().to_string();

    // "crash": resume gives the same object/callback for the task's pick_code
    let r = t
        .post(
            "/open/upload/resume",
            &[("file_size", "1"), ("target", "U_1_0"), ("fileid", &"0".repeat(40)), ("pick_code", &pc)],
        )
        .await;
    assert_eq!(r["state"], true, "{r}");
    assert_eq!(r["data"]["object"], d["object"]);
    assert_eq!(r["data"]["callback"], d["callback"]);
    let r2 = t.post("/open/upload/resume", &[("pick_code", "nosuchtask")]).await;
    assert_eq!(r2["state"], false);

    // ListParts shows part 1 only
    let r = oss(&t, &tok, "GET", "fhnfile", &obj, &format!("uploadId={upload_id}"), &[], vec![]).await;
    let x = r.text().await.unwrap();
    assert_eq!(x.matches("<Part>").count(), 1);
    assert_eq!(xml_tag(&x, "ETag"), etag1);
    assert_eq!(xml_tag(&x, "Size"), part.to_string());

    let r = oss(
        &t,
        &tok,
        "PUT",
        "fhnfile",
        &obj,
        &format!("partNumber=2&uploadId={upload_id}"),
        &[],
        data[part..2 * part].to_vec(),
    )
    .await;
    let etag2 = r.headers()["etag"].to_str().unwrap().to_string();
    let r = oss(
        &t,
        &tok,
        "PUT",
        "fhnfile",
        &obj,
        &format!("partNumber=3&uploadId={upload_id}"),
        &[],
        data[2 * part..].to_vec(),
    )
    .await;
    let etag3 = r.headers()["etag"].to_str().unwrap().to_string();
    assert!(t.emu.children(t.user, 0).is_empty(), "no file before complete");

    // wrong ETag → InvalidPart; gap → InvalidPart
    let bad =
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"00\"</ETag></Part></CompleteMultipartUpload>"
            .to_string();
    let r = oss(&t, &tok, "POST", "fhnfile", &obj, &format!("uploadId={upload_id}"), &cb_headers(&d), bad.into_bytes())
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("InvalidPart"));

    let xml = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag1}</ETag></Part><Part><PartNumber>2</PartNumber><ETag>{etag2}</ETag></Part><Part><PartNumber>3</PartNumber><ETag>{etag3}</ETag></Part></CompleteMultipartUpload>"
    );
    let r = oss(&t, &tok, "POST", "fhnfile", &obj, &format!("uploadId={upload_id}"), &cb_headers(&d), xml.into_bytes())
        .await;
    assert_eq!(r.status(), 200);
    let cb: Value = r.json().await.unwrap();
    assert_eq!(cb["state"], true, "{cb}");
    let fid: u64 = cb["data"]["file_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(t.emu.file_bytes(fid).unwrap(), data);
    assert_eq!(t.emu.open_multipart_uploads(), 0);
    assert_eq!(t.emu.pending_uploads(), 0);
}

#[tokio::test]
async fn complete_without_callback_creates_nothing_and_small_parts_refused() {
    let t = setup().await;
    let data = vec![5u8; 300 * 1024];
    let d = init(&t, "a.bin", &data, "U_1_0").await["data"].clone();
    let obj = d["object"].as_str().unwrap().to_string();
    let tok = t.get("/open/upload/get_token", &[]).await["data"].clone();
    let r = oss(&t, &tok, "POST", "fhnfile", &obj, "uploads&sequential=1", &[], vec![]).await;
    let id = xml_tag(&r.text().await.unwrap(), "UploadId");
    let mut etags = Vec::new();
    for (i, chunk) in [&data[..50 * 1024], &data[50 * 1024..]].iter().enumerate() {
        let r =
            oss(&t, &tok, "PUT", "fhnfile", &obj, &format!("partNumber={}&uploadId={id}", i + 1), &[], chunk.to_vec())
                .await;
        etags.push(r.headers()["etag"].to_str().unwrap().to_string());
    }
    let xml = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{}</ETag></Part><Part><PartNumber>2</PartNumber><ETag>{}</ETag></Part></CompleteMultipartUpload>",
        etags[0], etags[1]
    );
    let r = oss(&t, &tok, "POST", "fhnfile", &obj, &format!("uploadId={id}"), &[], xml.clone().into_bytes()).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("EntityTooSmall"));
    // one part only, no callback headers: OSS XML result, no file
    let r = oss(&t, &tok, "PUT", "fhnfile", &obj, &format!("partNumber=1&uploadId={id}"), &[], data.clone()).await;
    let e1 = r.headers()["etag"].to_str().unwrap().to_string();
    let xml = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{e1}</ETag></Part></CompleteMultipartUpload>"
    );
    let r = oss(&t, &tok, "POST", "fhnfile", &obj, &format!("uploadId={id}"), &[], xml.into_bytes()).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("<CompleteMultipartUploadResult>"));
    assert!(t.emu.children(t.user, 0).is_empty());
    assert_eq!(t.emu.pending_uploads(), 1);
}

#[tokio::test]
async fn callback_checks() {
    let t = setup().await;
    let data = vec![1u8; 5000];
    let d = init(&t, "a.bin", &data, "U_1_0").await["data"].clone();
    let obj = d["object"].as_str().unwrap().to_string();
    let tok = t.get("/open/upload/get_token", &[]).await["data"].clone();
    // different bytes → sha1 mismatch → state false, no file
    let r = oss(&t, &tok, "PUT", "fhnfile", &obj, "", &cb_headers(&d), vec![2u8; 5000]).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], false);
    // altered callback_var (re-serialised) → refused
    let mut var: Value = serde_json::from_str(d["callback"]["callback_var"].as_str().unwrap()).unwrap();
    var["x:source"] = "1".into();
    let hdrs = vec![
        ("x-oss-callback", b64(d["callback"]["callback"].as_str().unwrap())),
        ("x-oss-callback-var", b64(&var.to_string())),
    ];
    let v: Value = oss(&t, &tok, "PUT", "fhnfile", &obj, "", &hdrs, data.clone()).await.json().await.unwrap();
    assert_eq!(v["state"], false);
    assert!(t.emu.children(t.user, 0).is_empty());
    // bad signature, wrong bucket
    let r = oss_signed(&t, &tok, "PUT", "fhnfile", &obj, "", &cb_headers(&d), data.clone(), Some("nope")).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("SignatureDoesNotMatch"));
    let r = oss(&t, &tok, "PUT", "otherbucket", &obj, "", &cb_headers(&d), data.clone()).await;
    assert_eq!(r.status(), 404);
    // finally the right one
    let v: Value = oss(&t, &tok, "PUT", "fhnfile", &obj, "", &cb_headers(&d), data.clone()).await.json().await.unwrap();
    assert_eq!(v["state"], true);
}

#[tokio::test]
async fn sts_expiry() {
    let t = setup_with(Options { sts_ttl: Duration::from_secs(60), ..Options::default() }).await;
    let data = vec![1u8; 10];
    let d = init(&t, "a.bin", &data, "U_1_0").await["data"].clone();
    let tok = t.get("/open/upload/get_token", &[]).await["data"].clone();
    let exp = tok["Expiration"].as_str().unwrap();
    assert!(exp.ends_with('Z') && exp.len() == 20, "{exp}");
    t.emu.advance(Duration::from_secs(61));
    let r = oss(&t, &tok, "PUT", "fhnfile", d["object"].as_str().unwrap(), "", &cb_headers(&d), data).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("SecurityTokenExpired"));
}
