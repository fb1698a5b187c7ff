//! §5 upload: uploadinfo, initupload (ec115 with the fixed triple and real ECDH), statuses
//! 1/2/7, sig/token checks, gettoken, OSS simple PUT and multipart, callback.

mod common;
use common::*;
use emu115::{Emu115, Opts, OSS_HOST};
use serde_json::{json, Value};

const UID: u64 = 123456789;
const APPVER: &str = "27.0.5.7";
const UA: &str = "Mozilla/5.0 115Browser/27.0.5.7";

struct Keys {
    pub30: Vec<u8>,
    key: Vec<u8>,
    iv: Vec<u8>,
}

fn fixed() -> Keys {
    let (pub30, key, iv) = fixed_triple();
    Keys { pub30, key, iv }
}

fn ecdh_keys(emu: &Emu115) -> Keys {
    use p224::elliptic_curve::sec1::ToEncodedPoint;
    let mut sp = vec![4u8];
    sp.extend(h(&emu.ec_server_public_hex()));
    let server = p224::PublicKey::from_sec1_bytes(&sp).unwrap();
    let sk = p224::SecretKey::random(&mut rand::rngs::OsRng);
    let mut pub30 = vec![0x1d];
    pub30.extend_from_slice(sk.public_key().to_encoded_point(true).as_bytes());
    let ss = p224::ecdh::diffie_hellman(sk.to_nonzero_scalar(), server.as_affine());
    let s = ss.raw_secret_bytes().to_vec();
    Keys { pub30, key: s[..16].to_vec(), iv: s[12..28].to_vec() }
}

struct Ctx {
    emu: Emu115,
    c: reqwest::Client,
    _cookie: String,
    userkey: String,
}

async fn setup(opts: Opts) -> Ctx {
    let emu = Emu115::start(opts).await;
    let cookie = emu.add_user(UID, "alice");
    let c = client();
    let v = get_json(&c, &format!("{}/app/uploadinfo", emu.endpoint("proapi.115.com")), &cookie).await;
    let ex: Value = serde_json::from_str(
        r#"{"state":true,"error":"","errno":0,"user_id":123456789,"userkey":"0123456789ABCDEF0123456789ABCDEF",
 "app_id":0,"app_version":0,"isp_type":0,"max_dir_level":25,"max_dir_level_yun":25,
 "max_file_num":50000,"max_file_num_yun":50000,"size_limit":115964116992,"size_limit_yun":115964116992,
 "type_limit":[],"upload_allowed":true,"upload_allowed_msg":""}"#,
    )
    .unwrap();
    assert_shape(&ex, &v, "", &[]);
    assert_eq!(v["user_id"], json!(UID));
    let userkey = v["userkey"].as_str().unwrap().to_string();
    Ctx { emu, c, _cookie: cookie, userkey }
}

fn form(ctx: &Ctx, name: &str, data: &[u8], target: &str, t: &str, sk: &str, sv: &str) -> Vec<(String, String)> {
    let uid = UID.to_string();
    let fileid = sha1_upper(data);
    let size = data.len().to_string();
    let mut f = vec![
        ("appid".to_string(), "0".to_string()),
        ("appversion".into(), APPVER.into()),
        ("fileid".into(), fileid.clone()),
        ("filename".into(), name.into()),
        ("filesize".into(), size.clone()),
        ("sig".into(), sig(&uid, &ctx.userkey, &fileid, target)),
        ("t".into(), t.into()),
        ("target".into(), target.into()),
        ("token".into(), token(&fileid, &size, sk, sv, &uid, t, APPVER)),
        ("topupload".into(), "true".into()),
        ("userid".into(), uid),
    ];
    if !sk.is_empty() {
        f.push(("sign_key".into(), sk.into()));
        f.push(("sign_val".into(), sv.into()));
    }
    f.sort();
    f
}

async fn init(ctx: &Ctx, keys: &Keys, f: &[(String, String)], pad: Pad, ts: u32) -> Value {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(f.iter()).finish();
    let enc_body = aes_encrypt(&keys.key, &keys.iv, body.as_bytes(), pad);
    let kec = k_ec(&keys.pub30, ts, rand::random(), rand::random());
    let r = ctx
        .c
        .post(format!("{}/4.0/initupload.php?k_ec={}", ctx.emu.endpoint("uplb.115.com"), enc(&kec)))
        .header("user-agent", UA)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(enc_body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap();
    serde_json::from_slice(&ec_decode_response(&keys.key, &keys.iv, &bytes)).unwrap()
}

struct Sts {
    id: String,
    secret: String,
    token: String,
}

async fn sts(ctx: &Ctx) -> Sts {
    let v: Value = ctx
        .c
        .get(format!("{}/3.0/gettoken.php", ctx.emu.endpoint("uplb.115.com")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_shape(
        &json!({"StatusCode":"200","AccessKeyId":"STS.xxxx","AccessKeySecret":"yyyy","SecurityToken":"zzzz","Expiration":"2023-11-14T23:13:20Z"}),
        &v,
        "",
        &[],
    );
    Sts {
        id: v["AccessKeyId"].as_str().unwrap().into(),
        secret: v["AccessKeySecret"].as_str().unwrap().into(),
        token: v["SecurityToken"].as_str().unwrap().into(),
    }
}

const DATE: &str = "Wed, 15 Nov 2023 06:13:20 GMT";

#[allow(clippy::too_many_arguments)]
/// Signed OSS request (V1). `sub` is the canonical sub-resource string ("" or "?a&b=c").
async fn oss(
    ctx: &Ctx,
    s: &Sts,
    verb: &str,
    object: &str,
    query: &str,
    sub: &str,
    ctype: &str,
    cb: Option<&Value>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut x: Vec<(String, String)> = vec![("x-oss-security-token".into(), s.token.clone())];
    if let Some(cb) = cb {
        x.push(("x-oss-callback".into(), B64.encode(cb["callback"].as_str().unwrap())));
        x.push(("x-oss-callback-var".into(), B64.encode(cb["callback_var"].as_str().unwrap())));
    }
    let xr: Vec<(&str, &str)> = x.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let signature = oss_sign(&s.secret, verb, "", ctype, DATE, &xr, &format!("/fhnfile/{object}{sub}"));
    let url = format!("{}/{object}{query}", ctx.emu.endpoint(OSS_HOST));
    let mut rb = ctx
        .c
        .request(verb.parse().unwrap(), url)
        .header("date", DATE)
        .header("authorization", format!("OSS {}:{signature}", s.id))
        .header("user-agent", "aliyun-sdk-android/2.9.1");
    if !ctype.is_empty() {
        rb = rb.header("content-type", ctype);
    }
    for (k, v) in &x {
        rb = rb.header(k.as_str(), v.as_str());
    }
    rb.body(body).send().await.unwrap()
}

use base64::Engine as _;

fn det(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + 11) as u8).collect()
}

const INIT1_EXAMPLE: &str = r#"{"request":"","version":"4.1","status":1,"statuscode":0,"statusmsg":"",
 "pickcode":"a87dby98esb5xhgqn","target":"U_1_0","fileid":0,"fileinfo":"",
 "bucket":"fhnfile","object":"u1/…/abcdef…",
 "callback":{"callback":"{}","callback_var":"{}"}}"#;

const CALLBACK_EXAMPLE: &str = r#"{"state":true,"message":"","code":0,"data":{"aid":1,"cid":"2593093001609739968","file_id":"2593093001609741000","file_name":"hello.txt","file_size":11,"pick_code":"a87dby98esb5xhgqn","sha1":"2AAE6C35C94FCFB415DBE95F408B9CE91EE846ED","thumb_url":"","is_video":0}}"#;

#[tokio::test]
async fn status1_simple_put_with_callback_creates_file() {
    let ctx = setup(Opts::default()).await;
    let dir = ctx.emu.mkdir(UID, 0, "up");
    let data = b"hello world".to_vec();
    let target = format!("U_1_{dir}");
    let t = "1700000000";
    let v = init(&ctx, &fixed(), &form(&ctx, "hello.txt", &data, &target, t, "", ""), Pad::Pkcs7, 1_700_000_000).await;
    assert_shape(&serde_json::from_str(INIT1_EXAMPLE).unwrap(), &v, "", &[]);
    assert_eq!(v["status"], json!(1));
    let cb: Value = serde_json::from_str(v["callback"]["callback"].as_str().unwrap()).unwrap();
    assert!(cb["callbackBody"].as_str().unwrap().contains("pick_code=${x:pick_code}"));
    let vars: Value = serde_json::from_str(v["callback"]["callback_var"].as_str().unwrap()).unwrap();
    assert_eq!(vars["x:pick_code"], v["pickcode"]);
    assert_eq!(vars["x:target"], json!(target));
    let object = v["object"].as_str().unwrap().to_string();
    assert!(ctx.emu.list_children(UID, dir).is_empty(), "nothing before the upload completes");

    let s = sts(&ctx).await;
    // a wrong signature is refused and creates nothing
    let bad = Sts { id: s.id.clone(), secret: "wrong".into(), token: s.token.clone() };
    let r =
        oss(&ctx, &bad, "PUT", &object, "", "", "application/octet-stream", Some(&v["callback"]), data.clone()).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("SignatureDoesNotMatch"));
    // a PUT without callback stores the object but creates no file
    let r = oss(&ctx, &s, "PUT", &object, "", "", "application/octet-stream", None, data.clone()).await;
    assert_eq!(r.status(), 200);
    assert!(ctx.emu.list_children(UID, dir).is_empty());
    // the real one
    let r = oss(&ctx, &s, "PUT", &object, "", "", "application/octet-stream", Some(&v["callback"]), data.clone()).await;
    assert_eq!(r.status(), 200);
    let res: Value = r.json().await.unwrap();
    assert_shape(&serde_json::from_str(CALLBACK_EXAMPLE).unwrap(), &res, "", &[]);
    assert_eq!(res["data"]["pick_code"], v["pickcode"]);
    assert_eq!(res["data"]["sha1"], json!("2AAE6C35C94FCFB415DBE95F408B9CE91EE846ED"));
    let kids = ctx.emu.list_children(UID, dir);
    assert_eq!(kids.len(), 1);
    assert_eq!(kids[0].name, "hello.txt");
    assert_eq!(kids[0].id.to_string(), res["data"]["file_id"].as_str().unwrap());
    assert_eq!(ctx.emu.file_bytes(kids[0].id).unwrap().to_vec(), data);
    // the callback cannot be replayed
    let r = oss(&ctx, &s, "PUT", &object, "", "", "application/octet-stream", Some(&v["callback"]), data.clone()).await;
    assert_eq!(r.status(), 203);
    assert_eq!(ctx.emu.list_children(UID, dir).len(), 1);
}

#[tokio::test]
async fn status2_rapid_upload_sends_no_body() {
    let ctx = setup(Opts::default()).await;
    ctx.emu.add_user(UID + 1, "bob");
    let data = det(5000);
    ctx.emu.put_file(UID + 1, 0, "theirs.bin", data.clone());
    let v = init(
        &ctx,
        &fixed(),
        &form(&ctx, "mine.bin", &data, "U_1_0", "1700000000123", "", ""),
        Pad::P115cipher,
        3_487_918_203,
    )
    .await;
    assert_shape(&serde_json::from_str(r#"{"request":"","status":2,"statuscode":0,"statusmsg":"","pickcode":"a87dby98esbg8hgqn","target":"U_1_0","version":"4.1"}"#).unwrap(), &v, "", &[]);
    assert_eq!(v["status"], json!(2));
    let kids = ctx.emu.list_children(UID, 0);
    assert_eq!(kids.len(), 1);
    assert_eq!(kids[0].pick_code, v["pickcode"].as_str().unwrap());
    assert_eq!(ctx.emu.calls_prefix(OSS_HOST), 0);
}

#[tokio::test]
async fn status7_second_round_range_sha1() {
    let ctx = setup(Opts::default()).await;
    let data = det(3 * 1024 * 1024);
    ctx.emu.add_known_content(data.clone());
    let v =
        init(&ctx, &fixed(), &form(&ctx, "big.bin", &data, "U_1_0", "1700000000", "", ""), Pad::Pkcs7, 1_700_000_000)
            .await;
    assert_shape(&serde_json::from_str(r#"{"request":"","status":7,"statuscode":701,"statusmsg":"","pickcode":"","target":"U_1_0","version":"4.1","sign_key":"0a1b2c3d4e5f","sign_check":"2392148-2392298"}"#).unwrap(), &v, "", &[]);
    let sk = v["sign_key"].as_str().unwrap().to_string();
    let (a, b) = v["sign_check"].as_str().unwrap().split_once('-').unwrap();
    let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
    assert!(a <= b && b < data.len());
    let sv = sha1_upper(&data[a..=b]);
    // wrong value first
    let w = init(
        &ctx,
        &fixed(),
        &form(&ctx, "big.bin", &data, "U_1_0", "1700000001", &sk, &sha1_upper(b"nope")),
        Pad::Pkcs7,
        1_700_000_001,
    )
    .await;
    assert_eq!(w["statuscode"], json!(400));
    assert!(ctx.emu.list_children(UID, 0).is_empty());
    let v2 =
        init(&ctx, &fixed(), &form(&ctx, "big.bin", &data, "U_1_0", "1700000002", &sk, &sv), Pad::Pkcs7, 1_700_000_002)
            .await;
    assert_eq!(v2["status"], json!(2), "{v2}");
    assert_eq!(ctx.emu.list_children(UID, 0).len(), 1);
    // a sign_key is single-use
    let v3 =
        init(&ctx, &fixed(), &form(&ctx, "big.bin", &data, "U_1_0", "1700000003", &sk, &sv), Pad::Pkcs7, 1_700_000_003)
            .await;
    assert_eq!(v3["statuscode"], json!(400));
}

#[tokio::test]
async fn status7_time_window() {
    let ctx = setup(Opts::default()).await;
    let data = det(1024 * 1024);
    ctx.emu.add_known_content(data.clone());
    let v = init(&ctx, &fixed(), &form(&ctx, "x", &data, "U_1_0", "1", "", ""), Pad::Pkcs7, 1).await;
    assert_eq!(v["status"], json!(7));
    let (a, b) = v["sign_check"].as_str().unwrap().split_once('-').unwrap();
    let sv = sha1_upper(&data[a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap()]);
    ctx.emu.advance_time(std::time::Duration::from_secs(600));
    let v2 = init(
        &ctx,
        &fixed(),
        &form(&ctx, "x", &data, "U_1_0", "2", v["sign_key"].as_str().unwrap(), &sv),
        Pad::Pkcs7,
        2,
    )
    .await;
    assert_eq!((v2["statuscode"].clone(), v2["statusmsg"].clone()), (json!(400), json!("sig invalid")));
}

#[tokio::test]
async fn sig_token_target_validation() {
    let ctx = setup(Opts::default()).await;
    let data = b"abc".to_vec();
    let mut f = form(&ctx, "a", &data, "U_1_0", "1700000000", "", "");
    for (k, v) in f.iter_mut() {
        if k == "sig" {
            *v = "0".repeat(40);
        }
    }
    let v = init(&ctx, &fixed(), &f, Pad::Pkcs7, 0).await;
    assert_eq!((v["statuscode"].clone(), v["statusmsg"].clone()), (json!(400), json!("sig invalid")));
    let mut f = form(&ctx, "a", &data, "U_1_0", "1700000000", "", "");
    for (k, v) in f.iter_mut() {
        if k == "token" {
            *v = "0".repeat(32);
        }
    }
    assert_eq!(init(&ctx, &fixed(), &f, Pad::Pkcs7, 0).await["statuscode"], json!(400));
    let v = init(&ctx, &fixed(), &form(&ctx, "a", &data, "U_1_999", "1700000000", "", ""), Pad::Pkcs7, 0).await;
    assert_eq!(v["statuscode"], json!(10014));
    let v = init(&ctx, &fixed(), &form(&ctx, "a", &data, "X_1", "1700000000", "", ""), Pad::Pkcs7, 0).await;
    assert_eq!(v["statuscode"], json!(402));
}

#[tokio::test]
async fn real_ecdh_with_test_server_scalar_and_zero_padding() {
    let ctx = setup(Opts::default()).await;
    let keys = ecdh_keys(&ctx.emu);
    let data = det(2048);
    let v =
        init(&ctx, &keys, &form(&ctx, "e.bin", &data, "U_1_0", "1700000000", "", ""), Pad::Zero, 1_700_000_000).await;
    assert_eq!(v["status"], json!(1));
    // a key agreed with 115's real public key cannot be decrypted by the emulator
    use p224::elliptic_curve::sec1::ToEncodedPoint;
    let sk = p224::SecretKey::random(&mut rand::rngs::OsRng);
    let mut pub30 = vec![0x1d];
    pub30.extend_from_slice(sk.public_key().to_encoded_point(true).as_bytes());
    let f = form(&ctx, "e.bin", &data, "U_1_0", "1700000000", "", "");
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(f.iter()).finish();
    let r = ctx
        .c
        .post(format!("{}/4.0/initupload.php?k_ec={}", ctx.emu.endpoint("uplb.115.com"), enc(&k_ec(&pub30, 1, 0, 0))))
        .body(aes_encrypt(&[1; 16], &[2; 16], body.as_bytes(), Pad::Pkcs7))
        .send()
        .await
        .unwrap();
    let bytes = r.bytes().await.unwrap();
    assert!(serde_json::from_slice::<Value>(&bytes).is_err(), "answered, but with a key the client cannot know");
    assert!(ctx.emu.upload_log().last().unwrap().contains("statuscode\":402"), "{:?}", ctx.emu.upload_log());
}

#[tokio::test]
async fn multipart_upload_with_callback() {
    let ctx = setup(Opts::default()).await;
    let data = det(350 * 1024);
    let v = init(&ctx, &fixed(), &form(&ctx, "m.bin", &data, "U_1_0", "1700000000", "", ""), Pad::Pkcs7, 0).await;
    assert_eq!(v["status"], json!(1));
    let object = v["object"].as_str().unwrap().to_string();
    let s = sts(&ctx).await;
    let r = oss(&ctx, &s, "POST", &object, "?uploads&sequential=1", "?sequential=1&uploads", "", None, vec![]).await;
    let st = r.status();
    let x = r.text().await.unwrap();
    assert_eq!(st, 200, "{x}");
    let upload_id = x.split("<UploadId>").nth(1).unwrap().split("</UploadId>").next().unwrap().to_string();
    let mut etags = Vec::new();
    let parts: Vec<&[u8]> = data.chunks(150 * 1024).collect();
    for (i, p) in parts.iter().enumerate() {
        let n = i + 1;
        let r = oss(
            &ctx,
            &s,
            "PUT",
            &object,
            &format!("?partNumber={n}&uploadId={upload_id}"),
            &format!("?partNumber={n}&uploadId={upload_id}"),
            "",
            None,
            p.to_vec(),
        )
        .await;
        assert_eq!(r.status(), 200);
        etags.push(r.headers()["etag"].to_str().unwrap().to_string());
    }
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (i, e) in etags.iter().enumerate() {
        xml.push_str(&format!("<Part><PartNumber>{}</PartNumber><ETag>{e}</ETag></Part>", i + 1));
    }
    xml.push_str("</CompleteMultipartUpload>");
    let r = oss(
        &ctx,
        &s,
        "POST",
        &object,
        &format!("?uploadId={upload_id}"),
        &format!("?uploadId={upload_id}"),
        "text/xml",
        Some(&v["callback"]),
        xml.into_bytes(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let res: Value = r.json().await.unwrap();
    assert_eq!(res["state"], true);
    let kids = ctx.emu.list_children(UID, 0);
    assert_eq!(kids.len(), 1);
    assert_eq!(ctx.emu.file_bytes(kids[0].id).unwrap().to_vec(), data);

    // parts below 100 KiB (except the last) are refused at complete time
    let data2 = det(120 * 1024).into_iter().map(|b| b ^ 0x55).collect::<Vec<u8>>();
    let v = init(&ctx, &fixed(), &form(&ctx, "m2.bin", &data2, "U_1_0", "1700000000", "", ""), Pad::Pkcs7, 0).await;
    let object = v["object"].as_str().unwrap().to_string();
    let r = oss(&ctx, &s, "POST", &object, "?uploads&sequential=1", "?sequential=1&uploads", "", None, vec![]).await;
    let x = r.text().await.unwrap();
    let upload_id = x.split("<UploadId>").nth(1).unwrap().split("</UploadId>").next().unwrap().to_string();
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (i, p) in data2.chunks(60 * 1024).enumerate() {
        let n = i + 1;
        let r = oss(
            &ctx,
            &s,
            "PUT",
            &object,
            &format!("?partNumber={n}&uploadId={upload_id}"),
            &format!("?partNumber={n}&uploadId={upload_id}"),
            "",
            None,
            p.to_vec(),
        )
        .await;
        xml.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag></Part>",
            r.headers()["etag"].to_str().unwrap()
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    let r = oss(
        &ctx,
        &s,
        "POST",
        &object,
        &format!("?uploadId={upload_id}"),
        &format!("?uploadId={upload_id}"),
        "text/xml",
        Some(&v["callback"]),
        xml.into_bytes(),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("EntityTooSmall"));
    assert_eq!(ctx.emu.list_children(UID, 0).len(), 1);
}
