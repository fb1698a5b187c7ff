//! §7 share links: `/share/snap`, downurl (a) app/m115 and (b) web, `/share/receive`.

use serde_json::{json, Value};
use std::sync::Arc;

use crate::api_down::{m115_request, mint_link, new_link_cookie, set_cookie_header};
use crate::api_files::{sid, sort_nodes};
use crate::server::{err, not_logged_99, Reply, Req};
use crate::state::{Node, Share, State};
use crate::util::{ext_of, is_video};
use crate::Inner;

pub async fn webapi(inner: &Arc<Inner>, req: &Req) -> Reply {
    match req.path.as_str() {
        "/share/snap" => snap(inner, req),
        "/share/downurl" => web_downurl(inner, req),
        "/share/receive" => receive(inner, req),
        _ => Reply::not_found(),
    }
}

/// Existence → state → receive code (the owner may omit the code, §7.2).
fn resolve<'a>(st: &'a State, code: &str, receive: &str, viewer: Option<u64>) -> Result<&'a Share, Reply> {
    let e = |c: i64, m: &str| Err(Reply::json(&err("errno", c, m)));
    let Some(s) = st.shares.get(code) else {
        return e(4100026, "该文件分享链接不存在或已被删除");
    };
    let expired = s.expire_time > 0 && st.now() > s.expire_time;
    match s.state {
        _ if expired => return e(4100010, "分享已过期"),
        1 => {}
        4 => return e(4100009, "分享已取消"),
        5 => return e(4100026, "该文件分享链接不存在或已被删除"),
        7 => return e(4100010, "分享已过期"),
        2 | 3 | 6 | 11 => return e(4100018, "分享链接涉及违规内容"),
        0 | 8 => return e(4100033, "分享审核中"),
        _ => return e(4100000, "分享已关闭"),
    }
    if viewer == Some(s.owner) && receive.is_empty() {
        return Ok(s);
    }
    if receive.is_empty() {
        return e(4100012, "请输入访问码");
    }
    if receive != s.receive_code {
        return e(4100008, "访问码错误");
    }
    Ok(s)
}

/// Is `id` inside the share (a shared item or a descendant of a shared folder)?
fn in_share(st: &State, s: &Share, id: u64) -> bool {
    st.alive(id) && st.ancestry(id).iter().any(|a| s.ids.contains(&a.id))
}

fn num_or_str(numeric: bool, v: i64) -> Value {
    if numeric {
        json!(v)
    } else {
        json!(v.to_string())
    }
}

fn share_item(st: &State, s: &Share, n: &Node) -> Value {
    let rel_parent = if s.ids.contains(&n.id) { "0".to_string() } else { n.parent.to_string() };
    if n.is_dir {
        json!({"cid": sid(n.id), "pid": rel_parent, "n": n.name, "t": n.mtime.to_string(), "fc": 0, "uid": n.owner, "fl": []})
    } else {
        let ext = ext_of(&n.name);
        let mut v = json!({"fid": sid(n.id), "cid": rel_parent, "uid": n.owner, "n": n.name, "s": n.size, "sha": n.sha1,
                           "ico": ext, "fc": 1, "t": n.mtime.to_string(), "u": ""});
        if is_video(&ext) {
            v["iv"] = json!(1);
            v["vdi"] = json!(4);
            v["play_long"] = json!(0);
        }
        let _ = st;
        v
    }
}

fn snap(inner: &Arc<Inner>, req: &Req) -> Reply {
    let st = inner.st();
    let viewer = st.session_for(&req.cookies()).map(|s| s.user_id);
    let code = req.q.get_or("share_code", "");
    let s = match resolve(&st, code, req.q.get_or("receive_code", ""), viewer) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let cid = req.q.u64("cid").unwrap_or(0);
    let mut nodes: Vec<&Node> = if cid == 0 {
        s.ids.iter().filter_map(|i| st.nodes.get(i)).filter(|n| st.alive(n.id)).collect()
    } else {
        match st.nodes.get(&cid) {
            Some(d) if d.is_dir && in_share(&st, s, cid) => st.children(d.owner, cid),
            _ => return Reply::json(&err("errno", 4100026, "该文件分享链接不存在或已被删除")),
        }
    };
    let order = match req.q.get_or("o", "file_name") {
        "file_size" => "file_size",
        "user_ptime" => "user_ptime",
        _ => "file_name",
    };
    sort_nodes(&mut nodes, order, req.q.int("asc").unwrap_or(1) != 0, true, true);
    let offset = req.q.u64("offset").unwrap_or(0) as usize;
    let limit = req.q.u64("limit").filter(|l| *l > 0).unwrap_or(20) as usize;
    let list: Vec<Value> = nodes.iter().skip(offset).take(limit).map(|n| share_item(&st, s, n)).collect();
    let numeric = st.share_state_numeric;
    let total: u64 = s
        .ids
        .iter()
        .flat_map(|i| {
            let mut v = st.descendants(*i);
            v.push(*i);
            v
        })
        .filter_map(|i| st.nodes.get(&i))
        .map(|n| n.size)
        .sum();
    let owner_name = st.users.get(&s.owner).map(|u| u.name.clone()).unwrap_or_default();
    Reply::json(&json!({"state": true, "error": "", "errno": 0, "data": {
        "userinfo": {"user_id": s.owner.to_string(), "user_name": owner_name, "face": "https://face.115.com/m.jpg"},
        "shareinfo": {
            "snap_id": s.snap_id.to_string(), "file_size": total.to_string(), "share_title": s.title,
            "share_state": num_or_str(numeric, s.state as i64), "forbid_reason": "", "create_time": s.create_time.to_string(),
            "receive_code": s.receive_code, "receive_count": num_or_str(numeric, s.receive_count as i64),
            "expire_time": s.expire_time, "file_category": 1, "auto_renewal": num_or_str(numeric, 0),
            "auto_fill_recvcode": num_or_str(numeric, 0), "can_report": 1, "can_notice": 1, "have_vio_file": 0
        },
        "count": nodes.len(), "share_state": num_or_str(numeric, s.state as i64), "list": list,
        "user_appeal": {"can_appeal": 0, "can_share_appeal": 0, "popup_appeal_page": 0, "can_global_appeal": 0}
    }}))
}

fn is_115_ua(ua: &str) -> bool {
    ["115Browser/", "115disk/", "115Desktop/", "UDown/", "115wangpan_android/"].iter().any(|t| ua.contains(t))
}

const VERSION_GATE: &str = "当前版本过低，请升级到最新版本下载。";

/// Look up a shared file; returns the node or an error reply.
fn shared_file(st: &State, s: &Share, file_id: &str) -> Result<Node, Reply> {
    let Some(n) = file_id.parse::<u64>().ok().and_then(|id| st.nodes.get(&id)).filter(|n| in_share(st, s, n.id)) else {
        return Err(Reply::json(&err("errno", 4100026, "该文件分享链接不存在或已被删除")));
    };
    Ok(n.clone())
}

/// (a) `POST proapi/app/share/downurl` with m115 (§7.3 a).
pub fn app_downurl(inner: &Arc<Inner>, req: &Req) -> Reply {
    let mut st = inner.st();
    let Some(uid) = st.session_for(&req.cookies()).map(|s| s.user_id) else {
        return Reply::json(&json!({"state": false, "error": "请重新登录", "errno": 99, "data": []}));
    };
    // STRICT: a non-115 UA is refused (115driver replaces it with a 115Browser UA, §7.3 a).
    if !req.ua().map(|u| is_115_ua(&u)).unwrap_or(false) {
        return Reply::json(&json!({"state": false, "error": VERSION_GATE}));
    }
    let (v, k) = match m115_request(&st, req) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let g = |key: &str| {
        v.get(key).map(|x| x.as_str().map(|s| s.to_string()).unwrap_or_else(|| x.to_string())).unwrap_or_default()
    };
    let (code, recv, fid) = (g("share_code"), g("receive_code"), g("file_id"));
    let s = match resolve(&st, &code, &recv, Some(uid)) {
        Ok(s) => s.clone(),
        Err(r) => return r,
    };
    let n = match shared_file(&st, &s, &fid) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let cookie = new_link_cookie();
    let decoded = if n.is_dir {
        json!({"fid": sid(n.id), "fn": n.name, "fs": "-1", "url": false})
    } else {
        let url = mint_link(&mut st, &inner.base, uid, &n, req.ua(), &cookie);
        json!({"fid": sid(n.id), "fn": n.name, "fs": n.size.to_string(),
               "url": {"url": url, "client": 1, "desc": null, "isp": null, "oss_id": format!("fhnfile/{}", n.sha1.to_lowercase()), "ooid": ""}})
    };
    let data = crate::m115::server_encode(&st.rsa, &serde_json::to_vec(&decoded).unwrap(), &k);
    Reply::json(&json!({"state": true, "data": data})).header("set-cookie", &set_cookie_header(&cookie))
}

/// (b) `GET webapi/share/downurl` plain JSON (§7.3 b).
fn web_downurl(inner: &Arc<Inner>, req: &Req) -> Reply {
    let mut st = inner.st();
    if st.opts.share_web_downurl_version_gate {
        return Reply::json(&json!({"state": false, "error": VERSION_GATE}));
    }
    // STRICT [unconfirmed]: the downloader must be logged in, as for (a).
    let Some(uid) = st.session_for(&req.cookies()).map(|s| s.user_id) else {
        drop(st);
        return not_logged_99(req, false);
    };
    let code = req.q.get_or("share_code", "").to_string();
    let recv = req.q.get_or("receive_code", "").to_string();
    // STRICT: the share referer of §7.3 b is required.
    let want_ref = format!("https://115cdn.com/s/{code}");
    if !req.header("referer").map(|r| r.starts_with(&want_ref)).unwrap_or(false) {
        return Reply::json(&err("errno", 990002, "参数错误"));
    }
    let s = match resolve(&st, &code, &recv, Some(uid)) {
        Ok(s) => s.clone(),
        Err(r) => return r,
    };
    let n = match shared_file(&st, &s, req.q.get_or("file_id", "")) {
        Ok(n) => n,
        Err(r) => return r,
    };
    if n.is_dir {
        return Reply::json(
            &json!({"state": true, "data": {"fid": sid(n.id), "fn": n.name, "fs": "-1", "url": false}}),
        );
    }
    if n.size > st.opts.share_web_downurl_max {
        return Reply::json(&err("errno", 50028, "文件大小超出限制，请使用115电脑端下载"));
    }
    let cookie = new_link_cookie();
    let url = mint_link(&mut st, &inner.base, uid, &n, req.ua(), &cookie);
    Reply::json(&json!({"state": true, "data": {"fid": sid(n.id), "fn": n.name, "fs": n.size.to_string(),
        "url": {"url": url, "client": 1, "desc": null, "isp": null, "oss_id": format!("fhnfile/{}", n.sha1.to_lowercase()), "ooid": ""}}}))
    .header("set-cookie", &set_cookie_header(&cookie))
}

/// §7.4 receive (转存).
fn receive(inner: &Arc<Inner>, req: &Req) -> Reply {
    let mut st = inner.st();
    let Some(uid) = st.session_for(&req.cookies()).map(|s| s.user_id) else {
        drop(st);
        return not_logged_99(req, false);
    };
    let code = req.param("share_code").unwrap_or("").to_string();
    let recv = req.param("receive_code").unwrap_or("").to_string();
    let s = match resolve(&st, &code, &recv, Some(uid)) {
        Ok(s) => s.clone(),
        Err(r) => return r,
    };
    let mut ids: Vec<u64> = req.form.array("file_id").iter().filter_map(|x| x.parse().ok()).collect();
    if ids.is_empty() {
        ids = s.ids.clone();
    }
    let cid = req.param("cid").and_then(|c| c.parse::<u64>().ok()).unwrap_or(0);
    if !st.live_dir(uid, cid) {
        return Reply::json(&err("errno", 20009, "父目录不存在。"));
    }
    let mut total = 0usize;
    for id in &ids {
        if !in_share(&st, &s, *id) {
            return Reply::json(&err("errno", 4100026, "该文件分享链接不存在或已被删除"));
        }
        let n = &st.nodes[id];
        if n.is_dir && st.children(n.owner, n.id).is_empty() {
            return Reply::json(&err("errno", 51011, "不允许转存空文件夹"));
        }
        total += st.descendants(*id).len() + 1;
    }
    if total > 50_000 {
        return Reply::json(&err("errno", 4100030, "接收文件过多"));
    }
    for id in ids {
        st.copy_subtree(id, cid, uid);
    }
    if let Some(sh) = st.shares.get_mut(&code) {
        sh.receive_count += 1;
    }
    Reply::json(&json!({"state": true, "error": "", "errno": 0, "data": []}))
}
