//! §6 offline download: lixianssp add (m115), task_lists, task_del, task_clear.

use serde_json::{json, Value};
use std::sync::Arc;

use crate::api_down::m115_request;
use crate::server::{not_logged_99, Reply, Req};
use crate::state::{State, Task};
use crate::util::sha1_lower;
use crate::Inner;

pub fn route(inner: &Arc<Inner>, req: &Req) -> Reply {
    let path = req.path.trim_end_matches('/');
    let ac = req.q.get_or("ac", "").to_string();
    match (path, ac.as_str()) {
        ("/lixianssp", "add_task_urls" | "add_task_url") => add(inner, req),
        ("/lixian", "task_lists") | ("/web", "task_lists") => list(inner, req),
        ("/lixian", "task_del") | ("/web", "task_del") => del(inner, req),
        ("/lixian", "task_clear") | ("/web", "task_clear") => clear(inner, req),
        ("", "get_quota_info") => {
            let st = inner.st();
            let Some(uid) = st.session_for(&req.cookies()).map(|s| s.user_id) else {
                drop(st);
                return not_logged_99(req, true);
            };
            let u = &st.users[&uid];
            Reply::json(
                &json!({"state": true, "errno": 0, "error": "", "count": u.offline_quota_total, "surplus": u.offline_quota_left,
                                "used": u.offline_quota_total - u.offline_quota_left}),
            )
        }
        _ => Reply::not_found(),
    }
}

fn base32_to_hex(s: &str) -> Option<String> {
    let mut bits: u64 = 0;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.chars() {
        let v = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u64 - 'A' as u64,
            c @ '2'..='7' => c as u64 - '2' as u64 + 26,
            _ => return None,
        };
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    Some(hex::encode(out))
}

/// (info_hash, name, size) or None for an invalid link (10004).
fn parse_link(url: &str) -> Option<(String, String, u64)> {
    let u = url.trim();
    let lower = u.to_ascii_lowercase();
    if lower.starts_with("magnet:?") {
        let q = crate::util::Params::parse(&u.as_bytes()[8..]);
        let xt =
            q.0.iter()
                .find(|(k, v)| k == "xt" && v.to_ascii_lowercase().starts_with("urn:btih:"))
                .map(|(_, v)| v[9..].to_string())?;
        let hash = if xt.len() == 40 && xt.bytes().all(|b| b.is_ascii_hexdigit()) {
            xt.to_ascii_lowercase()
        } else if xt.len() == 32 {
            base32_to_hex(&xt)?
        } else {
            return None;
        };
        let name = q.get("dn").map(|s| s.to_string()).unwrap_or_else(|| hash.clone());
        return Some((hash, name, 0));
    }
    if lower.starts_with("ed2k://|file|") {
        let parts: Vec<&str> = u.split('|').collect();
        if parts.len() < 5 || parts[2].is_empty() {
            return None;
        }
        let size = parts[3].parse::<u64>().ok()?;
        if parts[4].len() != 32 || !parts[4].bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        return Some((sha1_lower(u.as_bytes()), parts[2].to_string(), size));
    }
    for scheme in ["http://", "https://", "ftp://"] {
        if lower.starts_with(scheme) {
            let rest = &u[scheme.len()..];
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            if host.is_empty() {
                return None;
            }
            let path = rest[host.len()..].split(['?', '#']).next().unwrap_or("");
            let last = path.rsplit('/').find(|s| !s.is_empty()).unwrap_or(host);
            let name = percent_encoding::percent_decode_str(last).decode_utf8_lossy().to_string();
            return Some((sha1_lower(u.as_bytes()), name, 0));
        }
    }
    None
}

fn default_dir(st: &mut State, uid: u64) -> u64 {
    if let Some(n) = st.children(uid, 0).iter().find(|n| n.is_dir && n.name == "云下载") {
        return n.id;
    }
    st.insert_node(uid, 0, "云下载", true, None)
}

fn add(inner: &Arc<Inner>, req: &Req) -> Reply {
    let mut st = inner.st();
    let Some(uid) = st.session_for(&req.cookies()).map(|s| s.user_id) else {
        drop(st);
        return not_logged_99(req, true);
    };
    let (v, k) = match m115_request(&st, req) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let s = |key: &str| -> Option<String> {
        v.get(key).and_then(|x| match x {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let ac = s("ac").unwrap_or_else(|| req.q.get_or("ac", "").to_string());
    let single = ac == "add_task_url";
    let urls: Vec<String> = if single {
        s("url").into_iter().collect()
    } else {
        let mut idx: Vec<(u64, String)> = v
            .as_object()
            .map(|o| {
                o.iter()
                    .filter_map(|(key, val)| {
                        let i = key.strip_prefix("url[")?.strip_suffix(']')?.parse::<u64>().ok()?;
                        Some((i, val.as_str()?.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        idx.sort();
        idx.into_iter().map(|(_, u)| u).collect()
    };
    let outer_err =
        |code: i64, msg: &str| Reply::json(&json!({"state": false, "errno": code, "error": msg, "errcode": code}));
    if urls.is_empty() {
        return outer_err(10004, "错误的链接");
    }
    let wp = match s("wp_path_id").filter(|w| !w.is_empty()) {
        Some(w) => match w.parse::<u64>() {
            Ok(id) if st.live_dir(uid, id) => id,
            _ => return outer_err(10014, "云端目录不存在，请恢复后重新上传"),
        },
        None => default_dir(&mut st, uid),
    };
    let now = st.now();
    let mut results = Vec::new();
    for url in &urls {
        let r = match parse_link(url) {
            None => {
                json!({"state": false, "errno": 10004, "errcode": 10004, "errtype": "war", "info_hash": "", "name": "", "url": url, "error_msg": "错误的链接"})
            }
            Some((hash, name, size)) => {
                if st.tasks.iter().any(|t| t.user_id == uid && t.info_hash == hash) {
                    json!({"state": false, "errno": 10008, "errcode": 10008, "errtype": "war", "info_hash": hash, "name": name, "url": url, "error_msg": "任务已存在"})
                } else if st.users[&uid].offline_quota_left == 0 {
                    json!({"state": false, "errno": 10010, "errcode": 10010, "errtype": "war", "info_hash": hash, "name": name, "url": url, "error_msg": "离线下载配额已用完"})
                } else {
                    st.users.get_mut(&uid).unwrap().offline_quota_left -= 1;
                    st.tasks.push(Task {
                        user_id: uid,
                        info_hash: hash.clone(),
                        name: name.clone(),
                        url: url.clone(),
                        size,
                        add_time: now,
                        last_update: now,
                        status: 1,
                        percent: 0.0,
                        file_id: None,
                        wp_path_id: wp,
                    });
                    json!({"state": true, "errno": 0, "errcode": 0, "errtype": "", "info_hash": hash, "name": name, "url": url})
                }
            }
        };
        results.push(r);
    }
    let decoded =
        if single { results.remove(0) } else { json!({"state": true, "errno": 0, "errcode": 0, "result": results}) };
    let data = crate::m115::server_encode(&st.rsa, &serde_json::to_vec(&decoded).unwrap(), &k);
    Reply::json(&json!({"state": true, "errno": 0, "error": "", "data": data}))
}

fn list(inner: &Arc<Inner>, req: &Req) -> Reply {
    let st = inner.st();
    let Some(uid) = st.session_for(&req.cookies()).map(|s| s.user_id) else {
        drop(st);
        return not_logged_99(req, true);
    };
    let page = req.param("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
    let row = req.param("page_size").and_then(|p| p.parse::<usize>().ok()).filter(|r| *r > 0).unwrap_or(30);
    let stat = req.param("stat").and_then(|p| p.parse::<i64>().ok()).unwrap_or(0);
    let mut tasks: Vec<&Task> = st
        .tasks
        .iter()
        .filter(|t| t.user_id == uid)
        .filter(|t| match stat {
            s if s <= 0 => true,
            1..=9 => t.status == -1,
            10 | 11 => t.status == 2,
            _ => t.status == 0 || t.status == 1,
        })
        .collect();
    tasks.reverse(); // newest first
    let count = tasks.len();
    let page_count = count.div_ceil(row).max(1);
    let items: Vec<Value> = tasks
        .iter()
        .skip((page - 1) * row)
        .take(row)
        .map(|t| {
            let fid = t.file_id.map(|f| f.to_string()).unwrap_or_default();
            json!({"info_hash": t.info_hash, "name": t.name, "size": t.size, "url": t.url, "add_time": t.add_time,
                   "last_update": t.last_update, "left_time": 0, "peers": 0, "rateDownload": 0, "status": t.status,
                   "percentDone": t.percent, "file_id": fid, "delete_file_id": fid, "wp_path_id": t.wp_path_id.to_string(),
                   "move": if t.status == 2 { 1 } else { 0 }})
        })
        .collect();
    let u = &st.users[&uid];
    Reply::json(
        &json!({"state": true, "errno": 0, "error": "", "page": page, "page_count": page_count, "page_row": row,
                        "count": count, "total": u.offline_quota_total, "quota": u.offline_quota_left, "tasks": items}),
    )
}

fn remove_tasks(st: &mut State, uid: u64, pred: impl Fn(&Task) -> bool, delete_files: bool) {
    let now = st.now();
    let files: Vec<u64> = st.tasks.iter().filter(|t| t.user_id == uid && pred(t)).filter_map(|t| t.file_id).collect();
    st.tasks.retain(|t| !(t.user_id == uid && pred(t)));
    if delete_files {
        for f in files {
            if st.live_node(uid, f).is_some() {
                st.nodes.get_mut(&f).unwrap().deleted = Some(now);
            }
        }
    }
}

fn del(inner: &Arc<Inner>, req: &Req) -> Reply {
    let mut st = inner.st();
    let Some(uid) = st.session_for(&req.cookies()).map(|s| s.user_id) else {
        drop(st);
        return not_logged_99(req, true);
    };
    let mut hashes = req.form.array("hash");
    hashes.extend(req.q.array("hash"));
    let flag = req.param("flag").unwrap_or("0") == "1";
    remove_tasks(&mut st, uid, |t| hashes.contains(&t.info_hash), flag);
    Reply::json(&json!({"state": true, "errno": 0, "error": ""}))
}

fn clear(inner: &Arc<Inner>, req: &Req) -> Reply {
    let mut st = inner.st();
    let Some(uid) = st.session_for(&req.cookies()).map(|s| s.user_id) else {
        drop(st);
        return not_logged_99(req, true);
    };
    let flag = req.param("flag").and_then(|f| f.parse::<i64>().ok()).unwrap_or(0);
    let delete_files = flag == 4 || flag == 5;
    match flag {
        0 | 4 => remove_tasks(&mut st, uid, |t| t.status == 2, delete_files),
        1 | 5 => remove_tasks(&mut st, uid, |_| true, delete_files),
        2 => remove_tasks(&mut st, uid, |t| t.status == -1, false),
        3 => remove_tasks(&mut st, uid, |t| t.status == 0 || t.status == 1, false),
        _ => return Reply::json(&json!({"state": false, "errno": 990002, "error": "参数错误"})),
    }
    Reply::json(&json!({"state": true, "errno": 0, "error": ""}))
}
