//! §5 upload: uploadinfo, initupload 4.0 (ec115), gettoken (STS), the emulated OSS
//! (simple PUT, multipart) and the 115 callback that creates the file.

use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{json, Value};
use std::sync::Arc;

use crate::ec115;
use crate::server::{not_logged_99, Reply, Req};
use crate::state::{Multipart, PendingUpload, State, Sts};
use crate::util::{md5_lower, rand_hex, sha1_upper, Params};
use crate::Inner;

pub fn uploadinfo(inner: &Arc<Inner>, req: &Req) -> Reply {
    let st = inner.st();
    let Some(uid) = st.session_for(&req.cookies()).map(|s| s.user_id) else {
        drop(st);
        return not_logged_99(req, req.host == "proapi.115.com");
    };
    let u = &st.users[&uid];
    Reply::json(&json!({
        "state": true, "error": "", "errno": 0, "user_id": uid, "userkey": u.userkey,
        "app_id": 0, "app_version": 0, "isp_type": 0, "max_dir_level": 25, "max_dir_level_yun": 25,
        "max_file_num": 50000, "max_file_num_yun": 50000, "size_limit": st.opts.size_limit,
        "size_limit_yun": st.opts.size_limit, "type_limit": [], "upload_allowed": true, "upload_allowed_msg": ""
    }))
}

pub fn uplb(inner: &Arc<Inner>, req: &Req) -> Reply {
    match req.path.as_str() {
        "/4.0/initupload.php" => initupload(inner, req),
        "/3.0/gettoken.php" => gettoken(inner),
        "/3.0/getuploadinfo.php" => Reply::json(&json!({
            "endpoint": format!("http://{}", crate::OSS_ENDPOINT_HOST),
            "gettokenurl": "http://uplb.115.com/3.0/gettoken.php"
        })),
        _ => Reply::not_found(),
    }
}

fn gettoken(inner: &Arc<Inner>) -> Reply {
    let mut st = inner.st();
    let akid = format!("STS.{}", rand_hex(12).to_uppercase());
    let secret = rand_hex(16);
    let token = base64::engine::general_purpose::STANDARD.encode(rand_hex(48));
    let expires = st.now() + st.opts.sts_ttl.as_secs() as i64;
    st.sts.insert(akid.clone(), Sts { secret: secret.clone(), token: token.clone(), expires });
    // `StatusCode` is a string (§0.4, §5.5).
    Reply::json(&json!({
        "StatusCode": "200", "AccessKeyId": akid, "AccessKeySecret": secret, "SecurityToken": token,
        "Expiration": crate::util::rfc3339_utc(expires)
    }))
}

fn app_version_lt(a: &str, b: &str) -> bool {
    let pa: Vec<u64> = a.split('.').map(|x| x.parse().unwrap_or(0)).collect();
    let pb: Vec<u64> = b.split('.').map(|x| x.parse().unwrap_or(0)).collect();
    pa < pb
}

fn init_err(code: i64, msg: &str, target: &str) -> Value {
    json!({"request": "", "version": "4.1", "status": 0, "statuscode": code, "statusmsg": msg, "pickcode": "", "target": target})
}

fn initupload(inner: &Arc<Inner>, req: &Req) -> Reply {
    let mut st = inner.st();
    // ---- k_ec + AES body (§5.4)
    let kec = match req.q.get("k_ec").map(ec115::decode_k_ec) {
        Some(Ok(k)) => k,
        Some(Err(e)) => {
            st.upload_log.push(format!("initupload: bad k_ec: {e}"));
            return Reply::json(&init_err(400, "k_ec invalid", ""));
        }
        None => {
            st.upload_log.push("initupload: missing k_ec".into());
            return Reply::json(&init_err(400, "k_ec missing", ""));
        }
    };
    let (key, iv) = if kec.pub30 == ec115::fixed_pub30() {
        ec115::fixed_key_iv()
    } else {
        match st.ec.derive(&kec.pub30) {
            Ok(x) => x,
            Err(e) => {
                st.upload_log.push(format!("initupload: ecdh failed: {e}"));
                return Reply::json(&init_err(400, "k_ec invalid", ""));
            }
        }
    };
    let plain = match ec115::decrypt_request(&key, &iv, &req.body) {
        Ok(p) => p,
        Err(e) => {
            st.upload_log.push(format!("initupload: body decrypt failed: {e}"));
            return Reply::json(&init_err(400, "body invalid", ""));
        }
    };
    let f = Params::parse(&plain);
    let v = handle_init(&mut st, &f);
    st.upload_log.push(format!("initupload: {}", v));
    let body = serde_json::to_vec(&v).unwrap();
    let r: u8 = rand::thread_rng().gen();
    Reply::raw(200, "text/html; charset=UTF-8", ec115::encode_response(&key, &iv, &body, r))
}

fn handle_init(st: &mut State, f: &Params) -> Value {
    let target = f.get_or("target", "").to_string();
    let userid_s = f.get_or("userid", "").to_string();
    let Some(user) = userid_s.parse::<u64>().ok().and_then(|u| st.users.get(&u)) else {
        return init_err(402, "userid invalid", &target);
    };
    let uid = user.id;
    let userkey = user.userkey.clone();
    let appversion = f.get_or("appversion", "").to_string();
    if appversion.is_empty() {
        return init_err(402, "appversion invalid", &target);
    }
    if let Some(min) = &st.opts.min_app_version {
        if app_version_lt(&appversion, min) {
            return init_err(402, "请升级到最新版本", &target);
        }
    }
    let filesize_s = f.get_or("filesize", "").to_string();
    let Ok(filesize) = filesize_s.parse::<u64>() else {
        return init_err(402, "filesize invalid", &target);
    };
    let fileid = f.get_or("fileid", "").to_string();
    // STRICT: fileid must be the 40-char UPPERCASE SHA-1 (§5.3).
    if fileid.len() != 40 || !fileid.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)) {
        return init_err(402, "fileid invalid", &target);
    }
    let filename = f.get_or("filename", "").to_string();
    if filename.is_empty() {
        return init_err(402, "filename invalid", &target);
    }
    let Some(pid) = target.strip_prefix("U_1_").and_then(|p| p.parse::<u64>().ok()) else {
        return init_err(402, "target invalid", &target);
    };
    if f.get_or("sig", "") != ec115::upload_sig(&userid_s, &userkey, &fileid, &target) {
        return init_err(400, "sig invalid", &target);
    }
    let t = f.get_or("t", "").to_string();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return init_err(400, "sig invalid", &target);
    }
    let sign_key = f.get_or("sign_key", "").to_string();
    let sign_val = f.get_or("sign_val", "").to_string();
    let token = ec115::upload_token(&fileid, &filesize_s, &sign_key, &sign_val, &userid_s, &t, &appversion);
    // STRICT: a wrong token is reported like a wrong sig (statuscode 400).
    if f.get_or("token", "") != token {
        return init_err(400, "token invalid", &target);
    }
    if filesize > st.opts.size_limit {
        return init_err(402, "filesize invalid", &target);
    }
    if !st.live_dir(uid, pid) {
        return init_err(10014, "云端目录不存在，请恢复后重新上传", &target);
    }
    let now = st.now();
    let known = st.content.get(&fileid).cloned();
    if !sign_key.is_empty() {
        // second round (status 7 answered)
        let Some(chk) = st.sign_checks.get(&sign_key) else {
            return init_err(400, "sig invalid", &target);
        };
        if chk.user_id != uid || chk.fileid != fileid {
            return init_err(400, "sig invalid", &target);
        }
        // §5.3: a slow second round gets "sig invalid" even with correct hashes.
        if now - chk.issued > st.opts.sign_check_window.as_secs() as i64 {
            st.sign_checks.remove(&sign_key);
            return init_err(400, "sig invalid", &target);
        }
        let (a, b) = (chk.start as usize, chk.end as usize);
        let Some(data) = known else {
            return init_err(400, "sig invalid", &target);
        };
        let expect = sha1_upper(&data[a..=b]);
        // STRICT: sign_val compared as uppercase hex, exactly.
        if sign_val != expect {
            return init_err(400, "sign_val invalid", &target);
        }
        st.sign_checks.remove(&sign_key);
        return rapid_done(st, uid, pid, &filename, &data, &target);
    }
    if let Some(data) = known {
        if data.len() as u64 != filesize {
            return init_err(402, "filesize invalid", &target);
        }
        // STRICT: the reference says status 7 happens "optionally" for files >= 1 MiB; the
        // emulator always asks for the second round from `sign_check_min_size` up.
        if filesize >= st.opts.sign_check_min_size && filesize > 0 {
            let mut rng = rand::thread_rng();
            let start = rng.gen_range(0..filesize);
            let maxlen = (filesize - start).min(128 * 1024);
            let end = start + rng.gen_range(1..=maxlen) - 1;
            let sk = rand_hex(6);
            st.sign_checks.insert(
                sk.clone(),
                crate::state::SignCheck { user_id: uid, fileid: fileid.clone(), start, end, issued: now },
            );
            return json!({"request": "", "status": 7, "statuscode": 701, "statusmsg": "", "pickcode": "", "target": target,
                          "version": "4.1", "sign_key": sk, "sign_check": format!("{start}-{end}")});
        }
        return rapid_done(st, uid, pid, &filename, &data, &target);
    }
    // status 1: real upload to OSS
    let id = st.alloc_id();
    let pc = st.mint_pc(uid, id, false);
    let object = format!("u1/{uid}/{}", rand_hex(16));
    st.pending.insert(
        object.clone(),
        PendingUpload {
            user_id: uid,
            parent: pid,
            name: filename,
            size: filesize,
            sha1: fileid,
            file_id: id,
            pc: pc.clone(),
            target: target.clone(),
            done: false,
        },
    );
    let callback = json!({
        "callbackUrl": "http://uplb.115.com/3.0/completeupload.php",
        "callbackBody": "bucket=${bucket}&object=${object}&size=${size}&sha1=${sha1}&pick_code=${x:pick_code}&user_id=${x:user_id}&behavior_type=${x:behavior_type}&source=${x:source}&target=${x:target}&task_uid=${x:task_uid}"
    });
    let callback_var = json!({
        "x:pick_code": pc, "x:user_id": uid.to_string(), "x:behavior_type": "0", "x:source": "100",
        "x:target": target, "x:task_uid": uid.to_string()
    });
    json!({"request": "", "version": "4.1", "status": 1, "statuscode": 0, "statusmsg": "", "pickcode": pc,
           "target": target, "fileid": 0, "fileinfo": "", "bucket": crate::OSS_BUCKET, "object": object,
           "callback": {"callback": callback.to_string(), "callback_var": callback_var.to_string()}})
}

fn rapid_done(st: &mut State, uid: u64, pid: u64, name: &str, data: &Bytes, target: &str) -> Value {
    let id = st.insert_node(uid, pid, name, false, Some(data));
    let pc = st.nodes[&id].pc.clone();
    json!({"request": "", "status": 2, "statuscode": 0, "statusmsg": "", "pickcode": pc, "target": target, "version": "4.1"})
}

// ------------------------------------------------------------------ OSS

fn oss_error(status: u16, code: &str, msg: &str) -> Reply {
    Reply::raw(
        status,
        "application/xml",
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>{code}</Code>\n  <Message>{msg}</Message>\n  <RequestId>{}</RequestId>\n  <HostId>{}</HostId>\n</Error>\n", rand_hex(12).to_uppercase(), crate::OSS_HOST),
    )
}

const SUB_RESOURCES: &[&str] = &[
    "acl",
    "uploads",
    "location",
    "cors",
    "logging",
    "website",
    "referer",
    "lifecycle",
    "delete",
    "append",
    "tagging",
    "objectMeta",
    "uploadId",
    "partNumber",
    "security-token",
    "position",
    "img",
    "style",
    "styleName",
    "replication",
    "replicationProgress",
    "replicationLocation",
    "cname",
    "bucketInfo",
    "comp",
    "qos",
    "live",
    "status",
    "vod",
    "startTime",
    "endTime",
    "symlink",
    "x-oss-process",
    "response-content-type",
    "response-content-language",
    "response-expires",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "restore",
    "callback",
    "callback-var",
    "sequential",
];

/// OSS V1 string-to-sign (§5.5).
pub fn oss_string_to_sign(req: &Req, bucket: &str, object: &str) -> String {
    let h = |n: &str| req.header(n).unwrap_or("").to_string();
    let mut xs: Vec<(String, String)> = req
        .headers
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-oss-"))
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").trim().to_string()))
        .collect();
    xs.sort();
    let mut s = format!("{}\n{}\n{}\n{}\n", req.method, h("content-md5"), h("content-type"), h("date"));
    for (k, v) in xs {
        s.push_str(&format!("{k}:{v}\n"));
    }
    s.push_str(&format!("/{bucket}/{object}"));
    let mut subs: Vec<String> = req
        .q
        .0
        .iter()
        .filter(|(k, _)| SUB_RESOURCES.contains(&k.as_str()))
        .map(|(k, v)| if v.is_empty() { k.clone() } else { format!("{k}={v}") })
        .collect();
    subs.sort();
    if !subs.is_empty() {
        s.push('?');
        s.push_str(&subs.join("&"));
    }
    s
}

fn check_oss_auth(st: &State, req: &Req, bucket: &str, object: &str) -> Result<(), Reply> {
    if !st.opts.oss_check_signature {
        return Ok(());
    }
    let Some(auth) = req.header("authorization") else {
        return Err(oss_error(403, "AccessDenied", "Anonymous access is forbidden for this operation."));
    };
    let Some((akid, sig)) = auth.strip_prefix("OSS ").and_then(|r| r.split_once(':')) else {
        return Err(oss_error(400, "InvalidArgument", "Authorization header is invalid."));
    };
    let Some(sts) = st.sts.get(akid.trim()) else {
        return Err(oss_error(
            403,
            "InvalidAccessKeyId",
            "The OSS Access Key Id you provided does not exist in our records.",
        ));
    };
    if st.now() > sts.expires {
        return Err(oss_error(403, "SecurityTokenExpired", "The security token you provided has expired."));
    }
    if req.header("x-oss-security-token") != Some(sts.token.as_str()) {
        return Err(oss_error(403, "InvalidSecurityToken", "The security token you provided is invalid."));
    }
    let sts_str = oss_string_to_sign(req, bucket, object);
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(sts.secret.as_bytes()).unwrap();
    mac.update(sts_str.as_bytes());
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    if want != sig.trim() {
        return Err(oss_error(
            403,
            "SignatureDoesNotMatch",
            &format!(
                "The request signature we calculated does not match the signature you provided. StringToSign: {}",
                sts_str.replace('\n', "\\n")
            ),
        ));
    }
    Ok(())
}

fn md5_b64(b: &[u8]) -> String {
    use md5::{Digest, Md5};
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(b))
}

pub fn oss(inner: &Arc<Inner>, req: &Req) -> Reply {
    let raw = req.path.trim_start_matches('/');
    let (bucket, object_enc) = if req.host == crate::OSS_HOST {
        (crate::OSS_BUCKET.to_string(), raw.to_string())
    } else {
        match raw.split_once('/') {
            Some((b, o)) => (b.to_string(), o.to_string()),
            None => (raw.to_string(), String::new()),
        }
    };
    let object = percent_encoding::percent_decode_str(&object_enc).decode_utf8_lossy().to_string();
    if object.is_empty() {
        return oss_error(400, "InvalidObjectName", "The specified object is not valid.");
    }
    let mut st = inner.st();
    if let Err(r) = check_oss_auth(&st, req, &bucket, &object) {
        st.upload_log.push(format!("oss: auth rejected for {} {}", req.method, object));
        return r;
    }
    if let Some(md5h) = req.header("content-md5") {
        if md5h != md5_b64(&req.body) {
            return oss_error(400, "InvalidDigest", "The Content-MD5 you specified was invalid.");
        }
    }
    let etag = format!("\"{}\"", md5_lower(&req.body).to_uppercase());
    let q = &req.q;
    match (req.method.as_str(), q.has("uploads"), q.get("uploadId")) {
        ("PUT", _, None) => {
            st.oss_objects.insert(format!("{bucket}/{object}"), req.body.clone());
            let r = maybe_callback(&mut st, req, &bucket, &object, req.body.clone());
            r.header("etag", &etag)
        }
        ("POST", true, _) => {
            // STRICT: 115 uploads require `sequential` (§5.5).
            if !q.has("sequential") {
                return oss_error(400, "InvalidArgument", "sequential is required");
            }
            let id = rand_hex(16).to_uppercase();
            st.multiparts.insert(
                id.clone(),
                Multipart { bucket: bucket.clone(), object: object.clone(), parts: Default::default() },
            );
            Reply::raw(200, "application/xml", format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult>\n  <Bucket>{bucket}</Bucket>\n  <Key>{object}</Key>\n  <UploadId>{id}</UploadId>\n</InitiateMultipartUploadResult>\n"))
        }
        ("PUT", false, Some(upload_id)) => {
            let Some(n) = q.get("partNumber").and_then(|p| p.parse::<u32>().ok()).filter(|n| (1..=10_000).contains(n))
            else {
                return oss_error(
                    400,
                    "InvalidArgument",
                    "Part number must be an integer between 1 and 10000, inclusive.",
                );
            };
            let Some(mp) = st.multiparts.get_mut(upload_id).filter(|m| m.object == object) else {
                return oss_error(404, "NoSuchUpload", "The specified upload does not exist.");
            };
            // sequential: parts must come in order
            if let Some((&last, _)) = mp.parts.iter().next_back() {
                if n < last {
                    return oss_error(400, "InvalidPartOrder", "parts must be uploaded sequentially");
                }
            }
            mp.parts.insert(n, (req.body.clone(), etag.clone()));
            Reply::raw(200, "application/xml", "").header("etag", &etag)
        }
        ("GET", false, Some(upload_id)) => {
            let Some(mp) = st.multiparts.get(upload_id) else {
                return oss_error(404, "NoSuchUpload", "The specified upload does not exist.");
            };
            let mut x = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListPartsResult>\n  <Bucket>{}</Bucket>\n  <Key>{}</Key>\n  <UploadId>{upload_id}</UploadId>\n", mp.bucket, mp.object);
            for (n, (b, e)) in &mp.parts {
                x.push_str(&format!(
                    "  <Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag><Size>{}</Size></Part>\n",
                    b.len()
                ));
            }
            x.push_str("</ListPartsResult>\n");
            Reply::raw(200, "application/xml", x)
        }
        ("DELETE", false, Some(upload_id)) => {
            st.multiparts.remove(upload_id);
            Reply::raw(204, "application/xml", "")
        }
        ("POST", false, Some(upload_id)) => {
            let upload_id = upload_id.to_string();
            let Some(mp) = st.multiparts.get(&upload_id).filter(|m| m.object == object) else {
                return oss_error(404, "NoSuchUpload", "The specified upload does not exist.");
            };
            let listed = parse_complete_xml(&String::from_utf8_lossy(&req.body));
            if listed.is_empty() {
                return oss_error(400, "MalformedXML", "The XML you provided was not well-formed.");
            }
            let mut data = Vec::new();
            let mut prev = 0u32;
            for (i, (n, e)) in listed.iter().enumerate() {
                if *n <= prev {
                    return oss_error(400, "InvalidPartOrder", "The list of parts was not in ascending order.");
                }
                prev = *n;
                let Some((b, et)) = mp.parts.get(n) else {
                    return oss_error(400, "InvalidPart", "One or more of the specified parts could not be found.");
                };
                if et.trim_matches('"') != e.trim_matches('"') {
                    return oss_error(400, "InvalidPart", "ETag mismatch.");
                }
                if i + 1 < listed.len() && (b.len() as u64) < st.opts.oss_min_part_size {
                    return oss_error(
                        400,
                        "EntityTooSmall",
                        "Your proposed upload is smaller than the minimum allowed size.",
                    );
                }
                data.extend_from_slice(b);
            }
            st.multiparts.remove(&upload_id);
            let data = Bytes::from(data);
            st.oss_objects.insert(format!("{bucket}/{object}"), data.clone());
            let cetag = format!("\"{}-{}\"", md5_lower(&data).to_uppercase(), listed.len());
            if req.header("x-oss-callback").is_some() {
                maybe_callback(&mut st, req, &bucket, &object, data).header("etag", &cetag)
            } else {
                Reply::raw(200, "application/xml", format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult>\n  <Bucket>{bucket}</Bucket>\n  <Key>{object}</Key>\n  <ETag>{cetag}</ETag>\n</CompleteMultipartUploadResult>\n"))
            }
        }
        _ => oss_error(405, "MethodNotAllowed", "The specified method is not allowed against this resource."),
    }
}

fn parse_complete_xml(x: &str) -> Vec<(u32, String)> {
    let tag = |s: &str, t: &str| -> Option<String> {
        let a = s.find(&format!("<{t}>"))? + t.len() + 2;
        let b = s[a..].find(&format!("</{t}>"))? + a;
        Some(s[a..b].trim().replace("&quot;", "\"").replace("&#34;", "\""))
    };
    let mut out = Vec::new();
    let mut rest = x;
    while let Some(i) = rest.find("<Part>") {
        let Some(j) = rest[i..].find("</Part>") else { break };
        let part = &rest[i..i + j];
        if let (Some(n), Some(e)) = (tag(part, "PartNumber").and_then(|n| n.parse().ok()), tag(part, "ETag")) {
            out.push((n, e));
        }
        rest = &rest[i + j + 7..];
    }
    out
}

/// The 115 callback (completeupload.php) reached through OSS: creates the file only when
/// the upload is complete and matches what initupload announced.
fn maybe_callback(st: &mut State, req: &Req, bucket: &str, object: &str, data: Bytes) -> Reply {
    let Some(cb_b64) = req.header("x-oss-callback") else {
        st.upload_log.push(format!("oss: {object} stored without callback (no file created)"));
        return Reply::raw(200, "application/xml", "");
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let cb: Option<Value> = b64.decode(cb_b64.trim()).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let vars: Value = req
        .header("x-oss-callback-var")
        .and_then(|v| b64.decode(v.trim()).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(json!({}));
    let Some(cb) = cb else {
        return oss_error(400, "InvalidArgument", "The callback configuration is not json format.");
    };
    let body_tpl = cb.get("callbackBody").and_then(|v| v.as_str()).unwrap_or("").to_string();
    let sha = sha1_upper(&data);
    let mut body = body_tpl
        .replace("${bucket}", bucket)
        .replace("${object}", object)
        .replace("${size}", &data.len().to_string())
        .replace("${sha1}", &sha);
    if let Some(m) = vars.as_object() {
        for (k, v) in m {
            body = body.replace(&format!("${{{k}}}"), v.as_str().unwrap_or(""));
        }
    }
    let form = Params::parse(body.as_bytes());
    let fail = |st: &mut State, why: &str| {
        st.upload_log.push(format!("callback failed for {object}: {why}"));
        oss_error(203, "CallbackFailed", &format!("Error status : 200. {why}"))
    };
    let pick_code = form.get_or("pick_code", "").to_string();
    let Some(p) = st.pending.get(object) else {
        return fail(st, "unknown object");
    };
    if p.done
        || p.pc != pick_code
        || form.get_or("user_id", "") != p.user_id.to_string()
        || form.get_or("target", "") != p.target
    {
        return fail(st, "callback vars do not match initupload");
    }
    // STRICT: the stored object must match what initupload announced (size and SHA-1),
    // otherwise the callback fails (OSS answers 203 CallbackFailed) and no file appears.
    if data.len() as u64 != p.size {
        return fail(st, "size mismatch");
    }
    if sha != p.sha1 {
        return fail(st, "sha1 mismatch");
    }
    let (uid, pid, name, id) = (p.user_id, p.parent, p.name.clone(), p.file_id);
    if !st.live_dir(uid, pid) {
        return fail(st, "target dir missing");
    }
    st.insert_node_with_id(id, uid, pid, &name, false, Some(&data));
    st.pending.get_mut(object).unwrap().done = true;
    let n = st.nodes[&id].clone();
    st.upload_log.push(format!("callback: created {} ({})", n.name, n.id));
    Reply::json(&json!({"state": true, "message": "", "code": 0, "data": {
        "aid": 1, "cid": pid.to_string(), "file_id": id.to_string(), "file_name": n.name, "file_size": n.size,
        "pick_code": n.pc, "sha1": n.sha1, "thumb_url": "", "is_video": crate::util::is_video(&crate::util::ext_of(&n.name)) as i32
    }}))
}
