//! A hand-written model of one 115 account for the driver tests: a folder tree and the
//! handful of endpoints the tests drive, answering with the shapes of the reference's
//! examples (ids as strings, sizes as numbers or strings, `t` in both forms). Faults are
//! switched on per test through `Model` fields.
//!
//! Its cryptography (m115, ec115, upload signatures) is the emulator's (`emu115`), written
//! from the reference independently of the driver's: the driver is never its own oracle.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use emu115::{ec115, m115, util::sha1_upper};

use super::fixture::{Req, Resp};

pub const USER_ID: u64 = 123456789;
pub const USERKEY: &str = "0123456789ABCDEF0123456789ABCDEF";
pub const COOKIE: &str = "UID=123456789_A1_1700000000; CID=0f1e2d3c; SEID=9a8b7c6d5e4f; KID=c3d4e5f6;";
/// A test P-224 server scalar (the driver gets its public key as `ec115_server_public_key`).
pub const EC_SCALAR: [u8; 28] = [0x11; 28];

/// The emulator's test RSA key: (modulus hex for the driver's `m115_test_modulus`, key).
pub fn test_rsa() -> (String, m115::RsaKey) {
    (m115::TEST_N_HEX.to_string(), m115::RsaKey::test_key())
}

fn ec_secret() -> p224::SecretKey {
    p224::SecretKey::from_slice(&EC_SCALAR).unwrap()
}

/// X‖Y of the server key, for the driver's `ec115_server_public_key`.
pub fn ec_pub_hex() -> String {
    use p224::elliptic_curve::sec1::ToEncodedPoint;
    hex::encode(&ec_secret().public_key().to_encoded_point(false).as_bytes()[1..])
}

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub parent: String,
    pub is_dir: bool,
    pub data: Vec<u8>,
    pub pc: String,
    pub deleted: bool,
}

#[derive(Default)]
pub struct State {
    pub nodes: BTreeMap<String, Node>,
    pub next: u64,
    /// Content known to "115" (rapid upload), by uppercase SHA-1.
    pub known: BTreeMap<String, Vec<u8>>,
    /// Answer status 7 first for uploads with this many bytes or more.
    pub second_round_from: Option<usize>,
    pub oss_objects: BTreeMap<String, Vec<u8>>,
    pub multipart: BTreeMap<String, Vec<(u32, Vec<u8>)>>,
    /// Part uploads fail with 500 (an upload interrupted midway).
    pub fail_parts: bool,
    pub aborted: Vec<String>,
    pub downurl_f: String,
    pub cookie_dead: bool,
    pub pending: BTreeMap<String, (String, String, String)>,
}

#[derive(Clone)]
pub struct Model {
    pub st: Arc<Mutex<State>>,
    rsa: Arc<m115::RsaKey>,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

impl Model {
    pub fn new() -> Model {
        let mut st = State { next: 2593093001609740000, downurl_f: "1".into(), ..Default::default() };
        st.nodes.insert(
            "0".into(),
            Node {
                name: String::new(),
                parent: "0".into(),
                is_dir: true,
                data: vec![],
                pc: String::new(),
                deleted: false,
            },
        );
        Model { st: Arc::new(Mutex::new(st)), rsa: Arc::new(test_rsa().1) }
    }

    pub fn add(&self, parent: &str, name: &str, dir: bool, data: &[u8]) -> String {
        let mut st = self.st.lock().unwrap();
        st.next += 1;
        let id = st.next.to_string();
        // Pick codes are opaque to the driver: any unique lowercase token will do.
        let pc = format!("{}pc{}x", if dir { "fb" } else { "a" }, st.next);
        st.nodes.insert(
            id.clone(),
            Node { name: name.into(), parent: parent.into(), is_dir: dir, data: data.to_vec(), pc, deleted: false },
        );
        if !dir {
            st.known.insert(sha1_upper(data), data.to_vec());
        }
        id
    }

    pub fn children(&self, parent: &str) -> Vec<(String, Node)> {
        let st = self.st.lock().unwrap();
        st.nodes
            .iter()
            .filter(|(id, n)| *id != "0" && n.parent == parent && !n.deleted)
            .map(|(i, n)| (i.clone(), n.clone()))
            .collect()
    }

    fn item(id: &str, n: &Node) -> Value {
        if n.is_dir {
            json!({"cid": id, "pid": n.parent, "aid": "1", "n": n.name, "t": "1700000000", "te": "1700000000",
                   "tp": "1699990000", "pc": n.pc, "m": 0, "fl": [], "ns": n.name})
        } else {
            json!({"fid": id, "cid": n.parent, "uid": USER_ID, "aid": "1", "n": n.name, "s": n.data.len(),
                   "sha": sha1_upper(&n.data), "pc": n.pc, "ico": "bin", "t": "2023-11-15 06:13",
                   "te": "1700000000", "tp": "1699990000", "m": 0, "fl": []})
        }
    }

    fn not_logged_in(r: &Req) -> Resp {
        let q = if r.query.is_empty() { String::new() } else { format!("?{}", r.query) };
        Resp::json(
            json!({"state":false,"error":"登录超时，请重新登录。","errNo":990001,"request": format!("{}{q}", r.path)}),
        )
    }

    pub fn handle(&self, r: &Req) -> Resp {
        let cookie_ok =
            r.header("cookie").is_some_and(|c| c.contains("SEID=9a8b7c6d5e4f")) && !self.st.lock().unwrap().cookie_dead;
        match (r.host.as_str(), r.path.as_str()) {
            ("my.115.com", "/") => Resp::json(json!({"state": cookie_ok})),
            ("appversion.115.com", _) => Resp::json(json!({"data":{"win":{"version_code":"35.6.0.3"}}})),
            _ if !cookie_ok
                && !r.host.starts_with("oss")
                && r.host != "qrcodeapi.115.com"
                && r.host != "passportapi.115.com" =>
            {
                if r.path == "/files" {
                    Self::not_logged_in(r)
                } else {
                    Resp::json(json!({"state":false,"errno":99,"error":"请重新登录"}))
                }
            }
            ("webapi.115.com", "/files") => self.files(r),
            ("webapi.115.com", "/files/get_info") => self.get_info(r),
            ("webapi.115.com", "/files/add") => self.mkdir(r),
            ("webapi.115.com", "/files/move") => self.mv(r),
            ("webapi.115.com", "/files/batch_rename") => self.rename(r),
            ("webapi.115.com", "/files/copy") => self.copy(r),
            ("webapi.115.com", "/rb/delete") => self.delete(r),
            ("proapi.115.com", "/app/chrome/downurl") => self.downurl(r),
            ("proapi.115.com", "/app/uploadinfo") => {
                Resp::json(json!({"state":true,"error":"","errno":0,"user_id":USER_ID,
                "userkey":USERKEY,"app_id":0,"app_version":0,"isp_type":0,"max_dir_level":25,"max_dir_level_yun":25,
                "max_file_num":50000,"max_file_num_yun":50000,"size_limit":115964116992u64,"size_limit_yun":115964116992u64,
                "type_limit":[],"upload_allowed":true,"upload_allowed_msg":""}))
            }
            ("uplb.115.com", "/4.0/initupload.php") => self.initupload(r),
            ("uplb.115.com", "/3.0/gettoken.php") => Resp::json(json!({"StatusCode":"200","AccessKeyId":"STS.xxxx",
                "AccessKeySecret":"yyyy","SecurityToken":"zzzz","Expiration":"2099-11-14T23:13:20Z"})),
            (h, _) if h.starts_with("oss") => self.oss(r),
            _ => Resp::raw(404, "text/plain", "no such endpoint in the test model"),
        }
    }

    fn files(&self, r: &Req) -> Resp {
        let cid = r.q("cid").unwrap_or_else(|| "0".into());
        let exists = self.st.lock().unwrap().nodes.get(&cid).is_some_and(|n| n.is_dir && !n.deleted);
        // §2.1: a missing cid silently lists the root.
        let cid = if exists { cid } else { "0".into() };
        let offset: usize = r.q("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
        let limit: usize = r.q("limit").and_then(|o| o.parse().ok()).unwrap_or(56);
        let mut kids = self.children(&cid);
        kids.sort_by(|a, b| (!a.1.is_dir, &a.1.name).cmp(&(!b.1.is_dir, &b.1.name)));
        let count = kids.len();
        let data: Vec<Value> = kids.iter().skip(offset).take(limit).map(|(i, n)| Self::item(i, n)).collect();
        let cid_v: Value = if cid == "0" { json!(0) } else { json!(cid) };
        Resp::json(json!({"state":true,"error":"","errNo":0,"aid":1,"cid":cid_v,"count":count,"order":"user_ptime",
            "is_asc":1,"offset":offset,"limit":limit,"page_size":limit,"fc_mix":0,"sys_count":0,
            "path":[{"name":"根目录","aid":1,"cid":0,"pid":0}],"data":data}))
    }

    fn get_info(&self, r: &Req) -> Resp {
        let st = self.st.lock().unwrap();
        let found = if let Some(id) = r.q("file_id") {
            st.nodes.get(&id).filter(|n| !n.deleted).map(|n| (id.clone(), n.clone()))
        } else if let Some(pc) = r.q("pick_code") {
            st.nodes.iter().find(|(_, n)| n.pc == pc && !n.deleted).map(|(i, n)| (i.clone(), n.clone()))
        } else {
            None
        };
        match found {
            Some((id, n)) => Resp::json(json!({"state":true,"code":0,"message":"","data":[Self::item(&id, &n)]})),
            None => Resp::json(json!({"state":false,"errno":20018,"error":"文件不存在或已删除。"})),
        }
    }

    fn mkdir(&self, r: &Req) -> Resp {
        let (pid, name) = (r.f("pid").unwrap_or_default(), r.f("cname").unwrap_or_default());
        if self.children(&pid).iter().any(|(_, n)| n.is_dir && n.name == name) {
            return Resp::json(json!({"state":false,"error":"该目录名称已存在。","errno":20004}));
        }
        let id = self.add(&pid, &name, true, b"");
        Resp::json(
            json!({"state":true,"error":"","errno":0,"aid":1,"cid":id,"cname":name,"file_id":id,"file_name":name}),
        )
    }

    fn ids(r: &Req) -> Vec<String> {
        r.form().into_iter().filter(|(k, _)| k.starts_with("fid[")).map(|(_, v)| v).collect()
    }

    fn mv(&self, r: &Req) -> Resp {
        let pid = r.f("pid").unwrap_or_default();
        let mut st = self.st.lock().unwrap();
        for id in Self::ids(r) {
            if let Some(n) = st.nodes.get_mut(&id) {
                n.parent = pid.clone();
            }
        }
        Resp::json(json!({"state":true,"error":"","errno":0}))
    }

    fn rename(&self, r: &Req) -> Resp {
        let mut st = self.st.lock().unwrap();
        for (k, v) in r.form() {
            if let Some(id) = k.strip_prefix("files_new_name[").and_then(|x| x.strip_suffix(']')) {
                if let Some(n) = st.nodes.get_mut(id) {
                    n.name = v;
                }
            }
        }
        Resp::json(json!({"state":true,"error":"","errno":0}))
    }

    fn copy(&self, r: &Req) -> Resp {
        let pid = r.f("pid").unwrap_or_default();
        for id in Self::ids(r) {
            let n = self.st.lock().unwrap().nodes.get(&id).cloned();
            if let Some(n) = n {
                self.copy_tree(&id, &n, &pid);
            }
        }
        Resp::json(json!({"state":true,"error":"","errno":0}))
    }

    fn copy_tree(&self, id: &str, n: &Node, to: &str) {
        let new = self.add(to, &n.name, n.is_dir, &n.data);
        if n.is_dir {
            for (cid, c) in self.children(id) {
                self.copy_tree(&cid, &c, &new);
            }
        }
    }

    fn delete(&self, r: &Req) -> Resp {
        let mut st = self.st.lock().unwrap();
        for id in Self::ids(r) {
            match st.nodes.get_mut(&id) {
                Some(n) if !n.deleted => n.deleted = true,
                _ => return Resp::json(json!({"state":false,"errno":231011,"error":"文件已删除，请勿重复操作"})),
            }
        }
        Resp::json(json!({"state":true,"error":"","errno":0}))
    }

    fn downurl(&self, r: &Req) -> Resp {
        let data = r.f("data").unwrap_or_default();
        let (plain, k) = m115::server_decode(&self.rsa, &data).unwrap();
        let ask: Value = serde_json::from_slice(&plain).unwrap();
        let pc = ask["pickcode"].as_str().unwrap_or("").to_string();
        let st = self.st.lock().unwrap();
        let Some((id, n)) = st.nodes.iter().find(|(_, n)| n.pc == pc && !n.deleted) else {
            return Resp::json(json!({"state":false,"msg":"","errno":50003,"error":"很抱歉，该文件提取码不存在。"}));
        };
        let url = if n.is_dir {
            json!(false)
        } else {
            json!({"client":1,"oss_id":"fhnfile/x","url":format!("https://cdnfhnfile.115cdn.net/{id}/{}?t={}&u={USER_ID}&c=0&f={}", n.name, now() + 3600, st.downurl_f)})
        };
        let inner = json!({ id.clone(): {"file_name": n.name, "file_size": n.data.len().to_string(), "pick_code": n.pc,
            "sha1": sha1_upper(&n.data), "url": url}});
        let enc = m115::server_encode_with(&self.rsa, inner.to_string().as_bytes(), &k, &[7u8; 16]);
        Resp::json(json!({"state":true,"msg":"","errno":0,"error":"","data":enc})).with_header(
            "set-cookie",
            "0123456789abcdef0123456789abcdef=fedcba9876543210fedcba9876543210; path=/; domain=115.com",
        )
    }

    fn initupload(&self, r: &Req) -> Resp {
        let tok = ec115::decode_k_ec(&r.q("k_ec").unwrap()).unwrap();
        let secret = ec115::shared_secret_x(&ec_secret(), &tok.pub30).unwrap();
        let (aes_key, aes_iv) = ec115::key_iv_from_secret(&secret);
        let form_bytes = ec115::decrypt_request(&aes_key, &aes_iv, &r.body).unwrap();
        let form: BTreeMap<String, String> = form_urlencoded::parse(&form_bytes).into_owned().collect();
        let g = |k: &str| form.get(k).cloned().unwrap_or_default();
        let (fileid, size, target, t, ver) = (g("fileid"), g("filesize"), g("target"), g("t"), g("appversion"));
        let reply = |v: Value| {
            Resp::raw(
                200,
                "application/octet-stream",
                ec115::encode_response(&aes_key, &aes_iv, v.to_string().as_bytes(), 0x5a),
            )
        };
        if g("sig") != ec115::upload_sig(&USER_ID.to_string(), USERKEY, &fileid, &target) {
            return reply(json!({"status":false,"statuscode":400,"statusmsg":"sig invalid"}));
        }
        if g("token")
            != ec115::upload_token(&fileid, &size, &g("sign_key"), &g("sign_val"), &USER_ID.to_string(), &t, &ver)
        {
            return reply(json!({"status":false,"statuscode":402,"statusmsg":"token invalid"}));
        }
        let pid = target.strip_prefix("U_1_").unwrap().to_string();
        let name = g("filename");
        let mut st = self.st.lock().unwrap();
        if let Some(data) = st.known.get(&fileid).cloned() {
            if st.second_round_from.is_some_and(|m| data.len() >= m) && g("sign_key").is_empty() {
                return reply(
                    json!({"status":7,"statuscode":701,"statusmsg":"","sign_key":"k1","sign_check":"2-9","request":"","version":"4.1"}),
                );
            }
            if !g("sign_key").is_empty() && g("sign_val") != sha1_upper(&data[2..=9]) {
                return reply(json!({"status":false,"statuscode":402,"statusmsg":"sign_val wrong"}));
            }
            drop(st);
            let id = self.add(&pid, &name, false, &data);
            let pc = self.st.lock().unwrap().nodes[&id].pc.clone();
            return reply(
                json!({"request":"","version":"4.1","status":2,"statuscode":0,"statusmsg":"","pickcode":pc,"target":target,"fileid":fileid}),
            );
        }
        let object = format!("u1/{}", fileid.to_lowercase());
        st.pending.insert(object.clone(), (pid, name, fileid.clone()));
        let cb = json!({"callbackUrl":"http://uplb.115.com/3.0/completeupload.php","callbackBody":"bucket=${bucket}&object=${object}&size=${size}&sha1=${sha1}&pick_code=${x:pick_code}&user_id=${x:user_id}&behavior_type=${x:behavior_type}&source=${x:source}&target=${x:target}&task_uid=${x:task_uid}"}).to_string();
        let var = json!({"x:pick_code":"a87dby98esb5xhgqn","x:user_id":USER_ID.to_string(),"x:behavior_type":"0","x:source":"100","x:target":target,"x:task_uid":USER_ID.to_string()}).to_string();
        reply(
            json!({"request":"","version":"4.1","status":1,"statuscode":0,"statusmsg":"","pickcode":"a87dby98esb5xhgqn",
            "target":target,"fileid":0,"fileinfo":"","bucket":"fhnfile","object":object,"callback":{"callback":cb,"callback_var":var}}),
        )
    }

    fn complete(&self, object: &str, data: Vec<u8>) -> Resp {
        let Some((pid, name, fileid)) = self.st.lock().unwrap().pending.remove(object) else {
            return Resp::raw(404, "application/xml", "<Error><Code>NoSuchUpload</Code></Error>");
        };
        assert_eq!(sha1_upper(&data), fileid, "OSS got other bytes than announced");
        let id = self.add(&pid, &name, false, &data);
        let pc = self.st.lock().unwrap().nodes[&id].pc.clone();
        Resp::json(json!({"state":true,"message":"","code":0,"data":{"aid":1,"cid":pid,"file_id":id,"file_name":name,
            "file_size":data.len(),"pick_code":pc,"sha1":fileid,"thumb_url":"","is_video":0}}))
    }

    fn oss(&self, r: &Req) -> Resp {
        assert!(r.header("authorization").is_some_and(|a| a.starts_with("OSS STS.xxxx:")), "unsigned OSS call");
        assert_eq!(r.header("x-oss-security-token").as_deref(), Some("zzzz"));
        // Path style: /fhnfile/<object>
        let object = r.path.trim_start_matches('/').strip_prefix("fhnfile/").unwrap().to_string();
        let q = r.query.clone();
        match r.method.as_str() {
            "PUT" if q.is_empty() => {
                self.st.lock().unwrap().oss_objects.insert(object.clone(), r.body.clone());
                self.complete(&object, r.body.clone())
            }
            "POST" if q.contains("uploads") => {
                assert!(q.contains("sequential=1"));
                let id = format!("UP{}", object.len());
                self.st.lock().unwrap().multipart.insert(id.clone(), vec![]);
                Resp::raw(200, "application/xml", format!("<InitiateMultipartUploadResult><Bucket>fhnfile</Bucket><Key>{object}</Key><UploadId>{id}</UploadId></InitiateMultipartUploadResult>"))
            }
            "PUT" => {
                if self.st.lock().unwrap().fail_parts {
                    return Resp::raw(500, "application/xml", "<Error><Code>InternalError</Code></Error>");
                }
                let n: u32 = r.q("partNumber").unwrap().parse().unwrap();
                let id = r.q("uploadId").unwrap();
                self.st.lock().unwrap().multipart.get_mut(&id).unwrap().push((n, r.body.clone()));
                Resp::raw(200, "text/plain", "").with_header("etag", &format!("\"E{n}\""))
            }
            "POST" => {
                let id = r.q("uploadId").unwrap();
                assert!(r.header("x-oss-callback").is_some());
                let xml = String::from_utf8(r.body.clone()).unwrap();
                let mut parts = self.st.lock().unwrap().multipart.remove(&id).unwrap();
                parts.sort_by_key(|p| p.0);
                for (n, _) in &parts {
                    assert!(xml.contains(&format!("<PartNumber>{n}</PartNumber><ETag>\"E{n}\"</ETag>")), "{xml}");
                }
                let data: Vec<u8> = parts.into_iter().flat_map(|p| p.1).collect();
                self.complete(&object, data)
            }
            "DELETE" => {
                let id = r.q("uploadId").unwrap();
                let mut st = self.st.lock().unwrap();
                st.multipart.remove(&id);
                st.aborted.push(id);
                Resp::raw(204, "text/plain", "")
            }
            _ => Resp::raw(400, "text/plain", "?"),
        }
    }
}
