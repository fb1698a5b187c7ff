//! Upload (ref §7): `upload/init` with rapid upload and second check, `upload/resume`,
//! `upload/get_token`, and the fake OSS with the 115 callback.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use bytes::{Bytes, BytesMut};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use rand::Rng;
use serde_json::{json, Value};
use sha1::Sha1;

use crate::http::Ctx;
use crate::state::{Inner, Multipart, Part, SignSession, State, Sts, UploadSession};
use crate::util::{
    is_hex40, is_upper_hex40, iso_millis, pro_err, pro_ok, rand_alnum, rand_hex, rfc3339, sha1_hex, xml_escape,
    xml_tags, Req, Resp,
};

const CALLBACK_URL: &str = "http://uplb.115.com/3.0/completeupload.php";

fn parse_target(t: &str) -> Option<u64> {
    t.strip_prefix("U_1_")?.parse().ok()
}

fn callback_pair(pick_code: &str, user: u64, target: &str) -> (String, String) {
    // Shape of ref §7.2 (third-party fixture labelled "official callback").
    let cb = json!({
        "callbackUrl": CALLBACK_URL,
        "callbackBody": "bucket=${bucket}&object=${object}&size=${size}&sha1=${sha1}&pick_code=${x:pick_code}&user_id=${x:user_id}&behavior_type=${x:behavior_type}&source=${x:source}&target=${x:target}&task_uid=${x:task_uid}",
    });
    let var = json!({
        "x:pick_code": pick_code,
        "x:user_id": user.to_string(),
        "x:behavior_type": "0",
        "x:source": "100",
        "x:target": target,
        "x:task_uid": user.to_string(),
    });
    (cb.to_string(), var.to_string())
}

/// `POST /open/upload/init` (ref §7.1, §7.2, §7.7).
pub(crate) fn init(st: &mut State, c: &Ctx, r: &Req) -> Resp {
    let (Some(name), Some(size), Some(target), Some(fileid)) =
        (r.f("file_name"), r.f("file_size").and_then(|s| s.parse::<u64>().ok()), r.f("target"), r.f("fileid"))
    else {
        return pro_err(990002, "参数错误。");
    };
    // fileid: uppercase hex SHA-1 (stricter: lowercase refused unless the knob allows it).
    let hex_ok = if st.opts.accept_lowercase_sha1 { is_hex40(&fileid) } else { is_upper_hex40(&fileid) };
    if !hex_ok {
        return pro_err(990002, "参数错误。");
    }
    let fileid = fileid.to_ascii_uppercase();
    // target U_1_<dir>; any other area → parameter error (p115client).
    let Some(cid) = parse_target(&target) else {
        return pro_err(990002, "参数错误。");
    };
    if !st.is_dir_of(c.user, cid) {
        return pro_err(20009, "父目录不存在。");
    }
    if let Err(e) = crate::files::check_name(&name) {
        return e;
    }
    // preid / pre_id are tolerated, even wrong or missing (ref §7.2 [inferred]).
    let _preid = r.f("preid").or_else(|| r.f("pre_id"));

    // Second check answer?
    let mut verified = false;
    if let Some(key) = r.f("sign_key") {
        let val = r.f("sign_val").unwrap_or_default();
        let ok = match st.sign_sessions.get(&key) {
            Some(s) if s.user == c.user && s.sha1 == fileid => match st.blobs.get(&s.sha1) {
                Some(blob) if (s.end as usize) < blob.len() => {
                    let want = sha1_hex(&blob[s.start as usize..=s.end as usize]);
                    if st.opts.accept_lowercase_sha1 {
                        val.eq_ignore_ascii_case(&want)
                    } else {
                        val == want
                    }
                }
                _ => false,
            },
            _ => false,
        };
        if !ok {
            // status 8 / code 702 "签名认证失败", with a fresh challenge.
            return challenge(st, c, &fileid, size, &target, 8, 702);
        }
        st.sign_sessions.remove(&key);
        verified = true;
    }

    let known = st.blobs.get(&fileid).is_some_and(|b| b.len() as u64 == size);
    if known {
        let need_check = st.opts.second_check_min_size.is_some_and(|min| size >= min) && size > 0;
        if need_check && !verified {
            return challenge(st, c, &fileid, size, &target, 7, 701);
        }
        // Rapid upload (秒传): same-name files are kept side by side (ref §7.6).
        let pc = st.mint_pick_code(false);
        let id = st.insert_node(c.user, cid, &name, false, Some(fileid.clone()), size, pc.clone(), c.now());
        return pro_ok(json!({
            "status": 2, "file_id": id.to_string(), "pick_code": pc,
            "bucket": "", "object": "", "target": "", "callback": []
        }));
    }

    // Upload needed (status 1).  Re-sending the task's pick_code reuses the session.
    if let Some(pc) = r.f("pick_code") {
        if let Some(s) = st.uploads.get(&pc).filter(|s| s.user == c.user && s.sha1 == fileid && s.size == size) {
            return upload_needed(&pc, s, &st.opts.oss_bucket);
        }
    }
    let pc = st.mint_pick_code(false);
    let (cb, var) = callback_pair(&pc, c.user, &target);
    let sess = UploadSession {
        user: c.user,
        name,
        size,
        sha1: fileid,
        target,
        cid,
        object: rand_hex(40),
        callback: cb,
        callback_var: var,
    };
    let resp = upload_needed(&pc, &sess, &st.opts.oss_bucket);
    st.uploads.insert(pc, sess);
    resp
}

fn upload_needed(pc: &str, s: &UploadSession, bucket: &str) -> Resp {
    pro_ok(json!({
        "status": 1,
        "pick_code": pc,
        "target": s.target,
        "bucket": bucket,
        "object": s.object,
        "file_id": "",
        "sign_key": "",
        "sign_check": "",
        "callback": {"callback": s.callback, "callback_var": s.callback_var},
    }))
}

fn challenge(st: &mut State, c: &Ctx, sha1: &str, size: u64, target: &str, status: i64, code: i64) -> Resp {
    // A random inclusive range of up to 128 bytes (the docs' sample is "1048000-1048127").
    let len = size.min(128);
    let start = if size > len { rand::thread_rng().gen_range(0..=size - len) } else { 0 };
    let end = start + len - 1;
    let key = rand_hex(40);
    st.sign_sessions.insert(key.clone(), SignSession { user: c.user, sha1: sha1.to_string(), start, end });
    Resp::json(json!({
        "state": true, "code": code, "message": "",
        "data": {
            "status": status, "sign_key": key, "sign_check": format!("{start}-{end}"),
            "pick_code": "", "file_id": "", "target": target, "bucket": "", "object": "", "callback": []
        }
    }))
}

/// `POST /open/upload/resume` (ref §7.5).  `fileid`/`file_size` are not checked ("can be
/// any value", p115client); `pick_code` must name a pending upload of this user.
pub(crate) fn resume(st: &mut State, c: &Ctx, r: &Req) -> Resp {
    let Some(pc) = r.f("pick_code") else {
        return pro_err(990002, "参数错误。");
    };
    let Some(s) = st.uploads.get(&pc).filter(|s| s.user == c.user) else {
        return pro_err(990002, "参数错误。");
    };
    pro_ok(json!({
        "pick_code": pc,
        "target": s.target,
        "version": "1",
        "bucket": st.opts.oss_bucket,
        "object": s.object,
        "callback": {"callback": s.callback, "callback_var": s.callback_var},
    }))
}

/// `GET /open/upload/get_token` (ref §7.3): an object, `AccessKeySecret` spelled right.
pub(crate) fn get_token(st: &mut State, c: &Ctx) -> Resp {
    let key_id = format!("STS.{}", rand_alnum(24));
    let secret = rand_alnum(40);
    let token = rand_alnum(120);
    let expires_ms = c.now_ms + st.opts.sts_ttl.as_millis() as u64;
    st.sts.insert(token.clone(), Sts { user: c.user, key_id: key_id.clone(), secret: secret.clone(), expires_ms });
    pro_ok(json!({
        "endpoint": format!("https://{}", st.opts.oss_endpoint_host),
        "AccessKeyId": key_id,
        "AccessKeySecret": secret,
        "SecurityToken": token,
        "Expiration": rfc3339(expires_ms / 1000),
    }))
}

// ------------------------------------------------------------------------ fake OSS (§7.4)

pub(crate) fn oss_error(status: u16, code: &str, msg: &str, extra: &str) -> Resp {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>{}</Code>\n  <Message>{}</Message>\n  <RequestId>{}</RequestId>\n  <HostId>oss-cn-shenzhen.aliyuncs.com</HostId>{extra}\n</Error>\n",
        xml_escape(code),
        xml_escape(msg),
        rand_hex(24).to_uppercase()
    );
    Resp::xml(status, body)
}

/// Sub-resources that take part in the V1 signature.
const SIGNED_SUBRESOURCES: &[&str] = &[
    "acl",
    "append",
    "bucketInfo",
    "callback",
    "callback-var",
    "cname",
    "comp",
    "continuation-token",
    "cors",
    "delete",
    "endTime",
    "img",
    "lifecycle",
    "live",
    "location",
    "logging",
    "objectMeta",
    "partNumber",
    "position",
    "qos",
    "referer",
    "replication",
    "replicationLocation",
    "replicationProgress",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "security-token",
    "sequential",
    "startTime",
    "status",
    "style",
    "styleName",
    "symlink",
    "tagging",
    "udf",
    "udfApplication",
    "udfApplicationLog",
    "udfId",
    "udfImage",
    "udfImageDesc",
    "udfName",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "vod",
    "website",
    "x-oss-process",
];

fn string_to_sign(r: &Req, bucket: &str, key: &str) -> String {
    let h = |n: &str| r.header(n).unwrap_or_default();
    let mut oss: Vec<(String, String)> = r
        .headers
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-oss-"))
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).trim().to_string()))
        .collect();
    oss.sort();
    let mut s = format!("{}\n{}\n{}\n{}\n", r.method, h("content-md5"), h("content-type"), h("date"));
    for (k, v) in oss {
        s.push_str(&format!("{k}:{v}\n"));
    }
    s.push_str(&format!("/{bucket}/{key}"));
    let mut sub: Vec<(String, String)> =
        r.query.iter().filter(|(k, _)| SIGNED_SUBRESOURCES.contains(&k.as_str())).cloned().collect();
    sub.sort();
    if !sub.is_empty() {
        let parts: Vec<String> =
            sub.iter().map(|(k, v)| if v.is_empty() { k.clone() } else { format!("{k}={v}") }).collect();
        s.push('?');
        s.push_str(&parts.join("&"));
    }
    s
}

fn etag_of(b: &[u8]) -> String {
    format!("\"{}\"", hex::encode_upper(Md5::digest(b)))
}

pub(crate) fn oss(inner: &Arc<Inner>, r: &Req, bucket: &str) -> Resp {
    let now_ms = inner.now_ms();
    let mut st = inner.lock();
    if bucket != st.opts.oss_bucket {
        return oss_error(404, "NoSuchBucket", "The specified bucket does not exist.", "");
    }
    let key = r.path.trim_start_matches('/').to_string();
    // --- credentials: STS security token + OSS V1 signature
    let Some(token) = r.header("x-oss-security-token") else {
        return oss_error(
            403,
            "InvalidAccessKeyId",
            "The OSS Access Key Id you provided does not exist in our records.",
            "",
        );
    };
    let Some(sts) = st.sts.get(&token) else {
        return oss_error(403, "InvalidAccessKeyId", "The security token you provided is invalid.", "");
    };
    if now_ms >= sts.expires_ms {
        return oss_error(403, "SecurityTokenExpired", "The security token you provided has expired.", "");
    }
    let auth = r.header("authorization").unwrap_or_default();
    let Some((kid, sig)) = auth.strip_prefix("OSS ").and_then(|a| a.split_once(':')) else {
        return oss_error(403, "AccessDenied", "Authorization header is missing or malformed.", "");
    };
    let sts_user = sts.user;
    if kid != sts.key_id {
        return oss_error(
            403,
            "InvalidAccessKeyId",
            "The OSS Access Key Id you provided does not exist in our records.",
            "",
        );
    }
    if st.opts.oss_verify_signature {
        if r.header("date").is_none() {
            return oss_error(403, "AccessDenied", "Date header is required.", "");
        }
        let sts_str = string_to_sign(r, bucket, &key);
        let mut mac = Hmac::<Sha1>::new_from_slice(sts.secret.as_bytes()).unwrap();
        mac.update(sts_str.as_bytes());
        let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        if want != sig {
            let extra = format!("\n  <StringToSign>{}</StringToSign>", xml_escape(&sts_str));
            return oss_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
                &extra,
            );
        }
    }
    if key.is_empty() {
        return oss_error(400, "InvalidObjectName", "The specified object is not valid.", "");
    }
    if let Some(md5) = r.header("content-md5") {
        let got = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&r.body));
        if md5.trim() != got {
            return oss_error(
                400,
                "InvalidDigest",
                "The Content-MD5 you specified did not match what we received.",
                "",
            );
        }
    }
    let upload_id = r.q("uploadId");
    let m = r.method.as_str();
    let has_uploads = r.has_query_key("uploads");
    match (m, upload_id, has_uploads) {
        ("POST", None, true) => {
            // InitiateMultipartUpload.  All known 115 clients pass `sequential`; 115-web §5.5
            // says it is required, so it is enforced (stricter).
            if !r.has_query_key("sequential") {
                return oss_error(400, "InvalidArgument", "sequential is required for this bucket.", "");
            }
            let id = rand_hex(32).to_uppercase();
            st.multiparts
                .insert(id.clone(), Multipart { bucket: bucket.into(), key: key.clone(), parts: BTreeMap::new() });
            Resp::xml(
                200,
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult>\n  <Bucket>{}</Bucket>\n  <Key>{}</Key>\n  <UploadId>{id}</UploadId>\n</InitiateMultipartUploadResult>\n",
                    xml_escape(bucket),
                    xml_escape(&key)
                ),
            )
        }
        ("PUT", Some(id), false) => {
            let Some(pn) = r.q("partNumber").and_then(|p| p.parse::<u32>().ok()).filter(|p| (1..=10_000).contains(p))
            else {
                return oss_error(
                    400,
                    "InvalidArgument",
                    "Part number must be an integer between 1 and 10000, inclusive.",
                    "",
                );
            };
            let Some(mp) = st.multiparts.get_mut(&id).filter(|mp| mp.key == key) else {
                return no_such_upload();
            };
            let etag = etag_of(&r.body);
            mp.parts.insert(pn, Part { data: r.body.clone(), etag: etag.clone(), modified: now_ms / 1000 });
            Resp::empty(200).header("etag", etag)
        }
        ("GET", Some(id), false) => list_parts(&st, &id, &key, r),
        ("DELETE", Some(id), false) => {
            if st.multiparts.remove(&id).is_none() {
                return no_such_upload();
            }
            Resp::empty(204)
        }
        ("POST", Some(id), false) => {
            let Some(mp) = st.multiparts.get(&id).filter(|mp| mp.key == key) else {
                return no_such_upload();
            };
            let doc = String::from_utf8_lossy(&r.body).into_owned();
            let nums = xml_tags(&doc, "PartNumber");
            let tags = xml_tags(&doc, "ETag");
            if nums.is_empty() || nums.len() != tags.len() {
                return oss_error(400, "MalformedXML", "The XML you provided was not well-formed.", "");
            }
            let mut prev = 0u32;
            let mut chosen = Vec::new();
            for (n, e) in nums.iter().zip(tags.iter()) {
                let Ok(n) = n.trim().parse::<u32>() else {
                    return oss_error(400, "MalformedXML", "The XML you provided was not well-formed.", "");
                };
                if n <= prev {
                    return oss_error(400, "InvalidPartOrder", "The list of parts was not in ascending order.", "");
                }
                // With `sequential` the parts must be 1..N without gaps [inferred].
                if n != prev + 1 {
                    return oss_error(400, "InvalidPart", "One or more of the specified parts could not be found.", "");
                }
                prev = n;
                let e = e.trim().replace("&quot;", "\"");
                let e = e.trim_matches('"');
                match mp.parts.get(&n) {
                    Some(p) if p.etag.trim_matches('"').eq_ignore_ascii_case(e) => chosen.push(n),
                    _ => {
                        return oss_error(
                            400,
                            "InvalidPart",
                            "One or more of the specified parts could not be found.",
                            "",
                        )
                    }
                }
            }
            for (i, n) in chosen.iter().enumerate() {
                if i + 1 < chosen.len() && mp.parts[n].data.len() < 100 * 1024 {
                    return oss_error(
                        400,
                        "EntityTooSmall",
                        "Your proposed upload is smaller than the minimum allowed object size.",
                        "",
                    );
                }
            }
            let mut all = BytesMut::new();
            let mut md5s = Vec::new();
            for n in &chosen {
                all.extend_from_slice(&mp.parts[n].data);
                md5s.extend_from_slice(&Md5::digest(&mp.parts[n].data));
            }
            let all = all.freeze();
            let etag = format!("\"{}-{}\"", hex::encode_upper(Md5::digest(&md5s)), chosen.len());
            st.multiparts.remove(&id);
            st.oss_objects.insert((bucket.to_string(), key.clone()), all.clone());
            if r.header("x-oss-callback").is_some() {
                return callback(&mut st, r, bucket, &key, all, now_ms / 1000, sts_user).header("etag", etag);
            }
            Resp::xml(
                200,
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult>\n  <Location>https://{bucket}.{}/{}</Location>\n  <Bucket>{}</Bucket>\n  <Key>{}</Key>\n  <ETag>{}</ETag>\n</CompleteMultipartUploadResult>\n",
                    st.opts.oss_endpoint_host,
                    xml_escape(&key),
                    xml_escape(bucket),
                    xml_escape(&key),
                    xml_escape(&etag)
                ),
            )
        }
        ("PUT", None, false) => {
            // PutObject (simple upload).
            let etag = etag_of(&r.body);
            st.oss_objects.insert((bucket.to_string(), key.clone()), r.body.clone());
            if r.header("x-oss-callback").is_some() {
                return callback(&mut st, r, bucket, &key, r.body.clone(), now_ms / 1000, sts_user)
                    .header("etag", etag);
            }
            Resp::empty(200).header("etag", etag)
        }
        _ => oss_error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.", ""),
    }
}

fn no_such_upload() -> Resp {
    oss_error(404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.", "")
}

fn list_parts(st: &State, id: &str, key: &str, r: &Req) -> Resp {
    let Some(mp) = st.multiparts.get(id).filter(|mp| mp.key == key) else {
        return no_such_upload();
    };
    let marker: u32 = r.q("part-number-marker").and_then(|x| x.parse().ok()).unwrap_or(0);
    let max: usize = r.q("max-parts").and_then(|x| x.parse().ok()).unwrap_or(1000).clamp(1, 1000);
    let parts: Vec<(&u32, &Part)> = mp.parts.range(marker + 1..).collect();
    let truncated = parts.len() > max;
    let shown = &parts[..parts.len().min(max)];
    let next = shown.last().map(|(n, _)| **n).unwrap_or(marker);
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListPartsResult>\n  <Bucket>{}</Bucket>\n  <Key>{}</Key>\n  <UploadId>{id}</UploadId>\n  <PartNumberMarker>{marker}</PartNumberMarker>\n  <NextPartNumberMarker>{next}</NextPartNumberMarker>\n  <MaxParts>{max}</MaxParts>\n  <IsTruncated>{truncated}</IsTruncated>\n",
        xml_escape(&mp.bucket),
        xml_escape(key)
    );
    for (n, p) in shown {
        x.push_str(&format!(
            "  <Part>\n    <PartNumber>{n}</PartNumber>\n    <LastModified>{}</LastModified>\n    <ETag>{}</ETag>\n    <Size>{}</Size>\n  </Part>\n",
            iso_millis(p.modified),
            xml_escape(&p.etag),
            p.data.len()
        ));
    }
    x.push_str("</ListPartsResult>\n");
    Resp::xml(200, x)
}

/// 115's callback failure body (shape of a fork's tests, ref §7.4).
fn cb_fail(msg: &str) -> Resp {
    Resp::json(json!({"state": false, "code": 500, "message": msg, "data": {}}))
}

/// Run the 115 callback after a PutObject / CompleteMultipartUpload that carried
/// `x-oss-callback`: the file is created only here (ref §7.4, §7.7).
fn callback(st: &mut State, r: &Req, bucket: &str, key: &str, data: Bytes, now: u64, sts_user: u64) -> Resp {
    let dec = |h: &str| {
        r.header(h)
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v.trim()).ok())
            .and_then(|b| String::from_utf8(b).ok())
    };
    let Some(cb) = dec("x-oss-callback") else {
        return oss_error(400, "InvalidArgument", "The callback configuration is not base64 encoded.", "");
    };
    if serde_json::from_str::<Value>(&cb).is_err() {
        return oss_error(400, "InvalidArgument", "The callback configuration is not json format.", "");
    }
    let var = match r.header("x-oss-callback-var") {
        Some(_) => match dec("x-oss-callback-var") {
            Some(v) if serde_json::from_str::<Value>(&v).is_ok() => v,
            _ => return oss_error(400, "InvalidArgument", "The callback var is not json format.", ""),
        },
        None => String::new(),
    };
    let vars: Value = serde_json::from_str(&var).unwrap_or(Value::Null);
    let Some(pc) = vars["x:pick_code"].as_str().map(str::to_string) else {
        return cb_fail("缺少 pick_code");
    };
    let Some(sess) = st.uploads.get(&pc) else {
        return cb_fail("上传任务不存在");
    };
    // The strings must come back exactly as issued (clients base64 them unchanged).
    if sess.callback != cb || sess.callback_var != var {
        return cb_fail("回调参数校验失败");
    }
    // The STS credentials must belong to the uploading user.
    if sess.user != sts_user {
        return cb_fail("上传任务不存在");
    }
    if bucket != st.opts.oss_bucket || key != sess.object {
        return cb_fail("object 不匹配");
    }
    let sha = sha1_hex(&data);
    if data.len() as u64 != sess.size || sha != sess.sha1 {
        return cb_fail("文件校验失败");
    }
    let sess = st.uploads.remove(&pc).unwrap();
    st.blobs.entry(sha.clone()).or_insert(data);
    let cid = if st.is_dir_of(sess.user, sess.cid) { sess.cid } else { 0 };
    let id = st.insert_node(sess.user, cid, &sess.name, false, Some(sha.clone()), sess.size, pc.clone(), now);
    Resp::json(json!({
        "state": true, "code": 0, "message": "",
        "data": {
            "pick_code": pc, "file_name": sess.name, "file_size": sess.size, "file_id": id.to_string(),
            "thumb_url": "", "sha1": sha, "aid": 1, "cid": cid.to_string()
        }
    }))
}
