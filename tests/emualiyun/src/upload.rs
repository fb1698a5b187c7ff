//! Upload (ref §7): create with `pre_hash` / `content_hash` + `proof_code` (rapid upload),
//! presigned part URLs on the data host, `get_upload_url`, `complete` — for both families
//! (§7.4 consumer, §7.5 open), following the fake-server model of §7.6.

use bytes::{Bytes, BytesMut};
use emukit::Reply;
use md5::{Digest, Md5};
use serde_json::{json, Value};

use crate::common::{err, file_json, invalid, opt_str, opt_u64, req_str, tree_err, Auth, Call};
use crate::content::Content;
use crate::data::{expired, oss_error, part_url, signature_mismatch};
use crate::files::{self, owns, NameOutcome};
use crate::state::{new_upload_id, Api, State, TreeError, Upload, DOMAIN_ID};
use crate::{crypto, AliFault, Inner, INTERNAL_DATA_HOST};

fn is_hex40(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// `part_info_list` → part count (1 when omitted or empty, ref §7.3).
fn part_count(b: &Value, max: u32) -> Result<u32, Reply> {
    let list = match b.get("part_info_list") {
        None | Some(Value::Null) => return Ok(1),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(invalid("part_info_list")),
    };
    if list.is_empty() {
        return Ok(1);
    }
    if list.len() > max as usize {
        return Err(err(
            400,
            "InvalidParameter.PartInfoList",
            &format!("The input parameter part_info_list is not valid. part count can not over {max}"),
        ));
    }
    for (i, p) in list.iter().enumerate() {
        if p.get("part_number").and_then(Value::as_u64) != Some(i as u64 + 1) {
            return Err(invalid("part_info_list"));
        }
    }
    Ok(list.len() as u32)
}

fn requested_parts(b: &Value, upload: &Upload) -> Result<Vec<u32>, Reply> {
    match b.get("part_info_list") {
        None | Some(Value::Null) => Ok((1..=upload.parts).collect()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|p| match p.get("part_number").and_then(Value::as_u64) {
                Some(n) if n >= 1 && n <= upload.parts as u64 => Ok(n as u32),
                _ => Err(invalid("part_info_list")),
            })
            .collect(),
        Some(_) => Err(invalid("part_info_list")),
    }
}

fn part_list(inner: &Inner, st: &State, u: &Upload, parts: &[u32], expires_ms: i64, api: Api) -> Vec<Value> {
    parts
        .iter()
        .map(|&p| {
            let url = part_url(inner, st, &u.drive_id, &u.file_id, &u.upload_id, p, expires_ms, crate::DATA_HOST);
            match api {
                Api::Consumer => json!({"part_number": p, "upload_url": url,
                    "internal_upload_url": part_url(inner, st, &u.drive_id, &u.file_id, &u.upload_id, p, expires_ms, INTERNAL_DATA_HOST),
                    "content_type": ""}),
                Api::Open => json!({"part_number": p, "upload_url": url}),
            }
        })
        .collect()
}

/// Create a file (consumer `createWithFolders`/`create`, open `openFile/create` with `type: file`).
pub(crate) fn create(call: &Call, auth: &Auth, b: &Value, api: Api) -> Reply {
    run_create(call, auth, b, api).unwrap_or_else(|r| r)
}

fn run_create(call: &Call, auth: &Auth, b: &Value, api: Api) -> Result<Reply, Reply> {
    let o = &call.opts;
    let ok_status = if api == Api::Consumer { 201 } else { 200 };
    let drive = req_str(b, "drive_id")?;
    let parent = req_str(b, "parent_file_id")?;
    let name = req_str(b, "name")?;
    let size = opt_u64(b, "size")?.ok_or_else(|| crate::common::missing("size"))?;
    let parts = part_count(b, o.max_parts)?;
    let mode = opt_str(b, "check_name_mode")?
        .unwrap_or_else(|| if api == Api::Open { "ignore" } else { "auto_rename" }.into());
    if !files::valid_mode(&mode, api) {
        return Err(invalid("check_name_mode"));
    }
    let pre_hash = opt_str(b, "pre_hash")?.filter(|s| !s.is_empty());
    let hash_name = opt_str(b, "content_hash_name")?;
    let content_hash = opt_str(b, "content_hash")?.filter(|s| !s.is_empty());
    let proof = opt_str(b, "proof_code")?.unwrap_or_default();
    let proof_version = opt_str(b, "proof_version")?;
    let local_created = opt_str(b, "local_created_at")?;
    let local_modified = opt_str(b, "local_modified_at")?;
    for t in [&local_created, &local_modified].into_iter().flatten() {
        if emukit::util::parse_rfc3339_millis(t).is_none() {
            return Err(invalid(if Some(t) == local_created.as_ref() {
                "local_created_at"
            } else {
                "local_modified_at"
            }));
        }
    }
    let mut st = call.inner.st();
    if !owns(&st, &auth.user_id, &drive) {
        return Err(files::no_drive(api));
    }
    st.check_folder(&drive, &parent).map_err(|e| tree_err(e, api))?;
    let (name, replaces) = match files::resolve_name(&st, &drive, &parent, &name, &mode, false, api)? {
        NameOutcome::Use(n) => (n, None),
        NameOutcome::Replace(n, old) => (n, Some(old)),
        NameOutcome::Existing(id) => {
            let n = st.nodes[&id].clone();
            let mut v = json!({"parent_file_id": parent, "type": n_type(&n), "file_id": id, "domain_id": DOMAIN_ID,
                "drive_id": drive, "file_name": n.name, "exist": true, "rapid_upload": false});
            if api == Api::Consumer {
                v["encrypt_mode"] = json!("none");
            } else {
                v["status"] = json!("available");
                v["available"] = json!(true);
            }
            return Ok(Reply::json_status(ok_status, &v));
        }
    };
    // §7.6 rule 1: pre-hash probe.
    if let Some(ph) = &pre_hash {
        if !is_hex40(ph) {
            return Err(invalid("pre_hash"));
        }
        if st.blobs.values().any(|bl| bl.size == size && bl.pre_hash.eq_ignore_ascii_case(ph)) {
            return Ok(Reply::json_status(
                409,
                &json!({"code": "PreHashMatched", "message": "Pre hash matched.", "requestId": crate::state::new_request_id(),
                    "file_name": name, "parent_file_id": parent, "pre_hash": ph, "type": "file"}),
            ));
        }
    }
    // §7.6 rule 2: content hash + proof.
    let mut declared = None;
    match hash_name.as_deref() {
        None if content_hash.is_some() => return Err(crate::common::missing("content_hash_name")),
        None | Some("none") => {}
        Some("sha1") => {
            let ch = content_hash.clone().ok_or_else(|| crate::common::missing("content_hash"))?.to_ascii_uppercase();
            if !is_hex40(&ch) {
                return Err(invalid("content_hash"));
            }
            let known = st.blobs.get(&ch).filter(|bl| bl.size == size).is_some();
            if known {
                let content = st.contents.get(&ch).cloned().expect("content");
                if proof_version.as_deref() != Some("v1") || proof != crypto::proof_code(&auth.token, &content) {
                    return Err(err(400, "InvalidRapidProof", "The proof_code is invalid."));
                }
                return Ok(rapid(call, &mut st, auth, api, &drive, &parent, &name, replaces, &ch, size, parts, &mode));
            }
            declared = Some(ch);
        }
        Some(_) => return Err(invalid("content_hash_name")),
    }
    let upload = Upload {
        upload_id: new_upload_id(),
        file_id: crate::state::new_file_id(),
        drive_id: drive.clone(),
        parent: parent.clone(),
        name: name.clone(),
        size,
        parts,
        check_name_mode: mode,
        content_hash: declared,
        user_id: auth.user_id.clone(),
        api,
        created_ms: call.now,
        replaces,
        done: false,
        local_created,
        local_modified,
        received: Default::default(),
    };
    let expires = call.now + o.upload_url_ttl.as_millis() as i64;
    let plist = part_list(call.inner, &st, &upload, &(1..=parts).collect::<Vec<_>>(), expires, api);
    let mut v = json!({"parent_file_id": parent, "part_info_list": plist, "upload_id": upload.upload_id,
        "rapid_upload": false, "type": "file", "file_id": upload.file_id, "domain_id": DOMAIN_ID, "drive_id": drive,
        "file_name": name, "exist": false});
    if api == Api::Consumer {
        v["revision_id"] = json!(emukit::util::rand_from(emukit::util::ALNUM, 26));
        v["encrypt_mode"] = json!("none");
        v["location"] = json!("cn-beijing");
    } else {
        v["status"] = json!("uploading");
        v["available"] = json!(false);
    }
    st.uploads.insert(upload.upload_id.clone(), upload);
    Ok(Reply::json_status(ok_status, &v))
}

fn n_type(n: &crate::state::Node) -> &'static str {
    if n.is_dir {
        "folder"
    } else {
        "file"
    }
}

#[allow(clippy::too_many_arguments)]
fn rapid(
    call: &Call,
    st: &mut State,
    auth: &Auth,
    api: Api,
    drive: &str,
    parent: &str,
    name: &str,
    replaces: Option<String>,
    sha: &str,
    size: u64,
    parts: u32,
    mode: &str,
) -> Reply {
    if let Some(old) = &replaces {
        st.remove_subtree(old);
    }
    let id = st.insert_node(drive, parent, name, false, Some(sha), None, call.now);
    let upload_id = new_upload_id();
    st.uploads.insert(
        upload_id.clone(),
        Upload {
            upload_id: upload_id.clone(),
            file_id: id.clone(),
            drive_id: drive.into(),
            parent: parent.into(),
            name: name.into(),
            size,
            parts,
            check_name_mode: mode.into(),
            content_hash: Some(sha.into()),
            user_id: auth.user_id.clone(),
            api,
            created_ms: call.now,
            replaces: None,
            done: true,
            local_created: None,
            local_modified: None,
            received: Default::default(),
        },
    );
    let mut v = json!({"parent_file_id": parent, "upload_id": upload_id, "rapid_upload": true, "type": "file",
        "file_id": id, "domain_id": DOMAIN_ID, "drive_id": drive, "file_name": name, "exist": false});
    if api == Api::Consumer {
        v["revision_id"] = json!(st.nodes[&id].revision_id);
        v["encrypt_mode"] = json!("none");
        v["location"] = json!("cn-beijing");
        Reply::json_status(201, &v)
    } else {
        v["status"] = json!("available");
        v["available"] = json!(true);
        v["part_info_list"] = json!([]);
        Reply::json(&v)
    }
}

fn find_upload(st: &State, user: &str, b: &Value) -> Result<Upload, Reply> {
    let drive = req_str(b, "drive_id")?;
    let file_id = req_str(b, "file_id")?;
    let upload_id = req_str(b, "upload_id")?;
    match st.uploads.get(&upload_id) {
        Some(u) if u.file_id == file_id && u.drive_id == drive && u.user_id == user => Ok(u.clone()),
        _ => Err(err(400, "NotFound.UploadId", "The resource upload_id cannot be found.")),
    }
}

/// Fresh part URLs (ref §7.4 step 5, §7.5).
pub(crate) fn get_upload_url(call: &Call, auth: &Auth, b: &Value, api: Api) -> Reply {
    let st = call.inner.st();
    let u = match find_upload(&st, &auth.user_id, b) {
        Ok(u) => u,
        Err(r) => return r,
    };
    if u.done {
        return err(400, "NotFound.UploadId", "The resource upload_id cannot be found.");
    }
    let parts = match requested_parts(b, &u) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let expires = call.now + call.opts.upload_url_ttl.as_millis() as i64;
    let plist = part_list(call.inner, &st, &u, &parts, expires, api);
    let created = emukit::util::rfc3339_millis(u.created_ms);
    match api {
        Api::Consumer => Reply::json(&json!({"domain_id": DOMAIN_ID, "drive_id": u.drive_id, "file_id": u.file_id,
            "upload_id": u.upload_id, "create_at": created, "part_info_list": plist})),
        Api::Open => Reply::json(&json!({"drive_id": u.drive_id, "file_id": u.file_id, "upload_id": u.upload_id,
            "created_at": created, "part_info_list": plist})),
    }
}

/// `openFile/listUploadedParts` (ref §7.5).
pub(crate) fn list_uploaded_parts(call: &Call, auth: &Auth, b: &Value) -> Reply {
    let st = call.inner.st();
    let drive = req_str(b, "drive_id").unwrap_or_default();
    let upload_id = req_str(b, "upload_id").unwrap_or_default();
    let Some(u) = st.uploads.get(&upload_id).filter(|u| u.drive_id == drive && u.user_id == auth.user_id) else {
        return err(400, "NotFound.UploadId", "The resource upload_id cannot be found.");
    };
    let parts: Vec<Value> =
        u.received.iter().map(|(n, b)| json!({"etag": etag(b), "part_number": n, "part_size": b.len()})).collect();
    Reply::json(&json!({"drive_id": drive, "upload_id": upload_id, "parallelUpload": false,
        "uploaded_parts": parts, "next_part_number_marker": ""}))
}

fn etag(b: &[u8]) -> String {
    format!("\"{}\"", hex::encode_upper(Md5::digest(b)))
}

/// `complete` (ref §7.4 step 6, §7.6 rule 4): idempotent.
pub(crate) fn complete(call: &Call, auth: &Auth, b: &Value, api: Api) -> Reply {
    let o = &call.opts;
    let mut st = call.inner.st();
    let u = match find_upload(&st, &auth.user_id, b) {
        Ok(u) => u,
        Err(r) => return r,
    };
    if !u.done {
        let bad = |code: &str, msg: &str| err(400, code, msg);
        let mut data = BytesMut::with_capacity(u.size as usize);
        if u.size > 0 {
            for p in 1..=u.parts {
                let Some(chunk) = u.received.get(&p) else {
                    return bad("InvalidPart", &format!("part {p} has not been uploaded"));
                };
                let last = p == u.parts;
                if !last && (chunk.len() as u64) < o.min_part_size {
                    return bad("EntityTooSmall", &format!("part {p} is smaller than the minimum part size"));
                }
                if !last && p > 1 && chunk.len() != u.received[&1].len() {
                    return bad("InvalidPart", "all parts but the last must have the same size");
                }
                if last && u.parts > 1 && chunk.len() > u.received[&1].len() {
                    return bad("InvalidPart", "the last part is larger than the others");
                }
                data.extend_from_slice(chunk);
            }
        }
        if data.len() as u64 != u.size {
            return bad("InvalidParameter.Size", &format!("uploaded {} bytes, declared size {}", data.len(), u.size));
        }
        let content = Content::Bytes(data.freeze());
        let (sha, crc) = content.hashes();
        if u.content_hash.as_ref().is_some_and(|h| *h != sha) {
            return bad("InvalidParameter.ContentHash", "content_hash does not match the uploaded content");
        }
        if st.add_content(content, Some((sha.clone(), crc))).is_err() {
            return err(500, "InternalError", "blob store failed");
        }
        if !st.alive_or_root(&u.parent) {
            return tree_err(TreeError::ParentNotFound, api);
        }
        if let Some(old) = &u.replaces {
            st.remove_subtree(old);
        }
        let id = st.insert_node(&u.drive_id, &u.parent, &u.name, false, Some(&sha), Some(u.file_id.clone()), call.now);
        if let Some(n) = st.nodes.get_mut(&id) {
            if let Some(t) = u.local_modified.as_deref().and_then(emukit::util::parse_rfc3339_millis) {
                n.updated_ms = t;
            }
            if let Some(t) = u.local_created.as_deref().and_then(emukit::util::parse_rfc3339_millis) {
                n.created_ms = t;
            }
        }
        let e = st.uploads.get_mut(&u.upload_id).expect("upload");
        e.done = true;
        e.received.clear();
    }
    match st.nodes.get(&u.file_id) {
        Some(n) => {
            let n = n.clone();
            Reply::json(&file_json(call.inner, &st, &n, api, None, call.now))
        }
        None => tree_err(TreeError::NotFound, api),
    }
}

impl State {
    fn alive_or_root(&self, id: &str) -> bool {
        id == "root" || self.alive(id)
    }
}

/// `PUT` of one part to a presigned URL on the data host (ref §7.4 step 4, §7.6 rule 3).
pub(crate) fn put_part(call: &mut Call) -> Reply {
    let req = call.req;
    let host = req.host.as_str();
    let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let [_, _, upload_id] = segs.as_slice() else {
        return oss_error(404, "NoSuchKey", "The specified key does not exist.", host);
    };
    let q = |k: &str| req.query_param(k);
    let (Some(part), Some(expires), Some(sig)) = (q("partNumber"), q("x-oss-expires"), q("x-oss-signature")) else {
        return oss_error(403, "AccessDenied", "AccessDenied", host);
    };
    if q("uploadId").as_deref() != Some(upload_id) {
        return signature_mismatch(host);
    }
    let o = &call.opts;
    let mut st = call.inner.st();
    let expect = crate::crypto::hmac_sha1_b64(
        st.url_secret.as_bytes(),
        &format!("PUT\n{}\n{part}\n{upload_id}\n{expires}", req.path),
    );
    if sig != expect {
        return signature_mismatch(host);
    }
    if expires.parse::<i64>().unwrap_or(0) * 1000 <= call.now || matches!(call.custom, Some(AliFault::ExpireLink)) {
        return expired(host);
    }
    if o.reject_part_content_type && req.header("content-type").is_some_and(|c| !c.is_empty()) {
        // The presign does not cover a Content-Type (ref §7.4, official SDK).
        return signature_mismatch(host);
    }
    let part: u32 = part.parse().unwrap_or(0);
    let Some(u) = st.uploads.get_mut(*upload_id) else {
        return oss_error(404, "NoSuchUpload", "The specified upload does not exist.", host);
    };
    if u.done {
        return oss_error(404, "NoSuchUpload", "The specified upload does not exist.", host);
    }
    if part == 0 || part > u.parts {
        return oss_error(
            400,
            "InvalidArgument",
            "Part number must be an integer between 1 and the declared count.",
            host,
        );
    }
    if u.received.contains_key(&part) {
        return oss_error(409, "PartAlreadyExist", "The part has already been uploaded.", host);
    }
    if o.require_sequential_parts && (1..part).any(|p| !u.received.contains_key(&p)) {
        return oss_error(400, "InvalidPartOrder", "Parts must be uploaded in sequence.", host);
    }
    if req.body.len() as u64 > o.max_part_size {
        return oss_error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.", host);
    }
    let body: Bytes = req.body.clone();
    let tag = etag(&body);
    let mut crc = crypto::Crc64::new();
    crc.update(&body);
    u.received.insert(part, body);
    Reply::empty(200)
        .header("etag", tag)
        .header("x-oss-hash-crc64ecma", crc.finish().to_string())
        .header("x-oss-request-id", crate::state::new_request_id().to_ascii_uppercase())
        .header("content-length", "0")
}
