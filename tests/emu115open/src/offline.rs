//! Offline download (云下载, ref §8).

use serde_json::{json, Value};

use crate::http::Ctx;
use crate::state::{OfflineTask, State};
use crate::util::{pct_decode, pro_err, pro_ok, Req, Resp};

/// `(info_hash, name, size)` of a supported link, or `None` (→ 10004).
fn parse_link(url: &str) -> Option<(String, String, u64)> {
    let lower = url.to_ascii_lowercase();
    if let Some(q) = lower.strip_prefix("magnet:?").map(|_| &url[8..]) {
        let mut hash = None;
        let mut name = None;
        for kv in q.split('&') {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            match k.to_ascii_lowercase().as_str() {
                "xt" => {
                    let v = v.to_ascii_lowercase();
                    if let Some(h) = v.strip_prefix("urn:btih:") {
                        hash = btih_hex(h);
                    }
                }
                "dn" => name = Some(pct_decode(&v.replace('+', " "))),
                _ => {}
            }
        }
        let hash = hash?;
        let name = name.unwrap_or_else(|| hash.clone());
        return Some((hash, name, 0));
    }
    if lower.starts_with("ed2k://") {
        // ed2k://|file|<name>|<size>|<md4>|/
        let parts: Vec<&str> = url.split('|').collect();
        if parts.len() < 5 || parts[1] != "file" {
            return None;
        }
        let size = parts[3].parse().ok()?;
        if parts[4].len() != 32 || !parts[4].bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        return Some((crate::util::sha1_hex(url.as_bytes()).to_lowercase(), pct_decode(parts[2]), size));
    }
    for scheme in ["http://", "https://", "ftp://"] {
        if let Some(rest) = lower.strip_prefix(scheme) {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            if host.is_empty() {
                return None;
            }
            let raw_rest = &url[scheme.len()..];
            let path = raw_rest.split(['?', '#']).next().unwrap_or("");
            let last = path.rsplit('/').next().filter(|s| !s.is_empty() && path.contains('/'));
            let name = last.map(pct_decode).unwrap_or_else(|| host.to_string());
            return Some((crate::util::sha1_hex(url.as_bytes()).to_lowercase(), name, 0));
        }
    }
    None
}

fn btih_hex(h: &str) -> Option<String> {
    if h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(h.to_string());
    }
    if h.len() == 32 {
        // base32 (RFC 4648, no padding)
        let mut bits: u64 = 0;
        let mut n = 0;
        let mut out = Vec::new();
        for c in h.to_ascii_uppercase().bytes() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'2'..=b'7' => c - b'2' + 26,
                _ => return None,
            } as u64;
            bits = (bits << 5) | v;
            n += 5;
            if n >= 8 {
                out.push((bits >> (n - 8)) as u8);
                n -= 8;
                bits &= (1 << n) - 1;
            }
        }
        return Some(hex::encode(out));
    }
    None
}

pub(crate) fn add(st: &mut State, c: &Ctx, r: &Req) -> Resp {
    let Some(urls) = r.f("urls") else {
        return pro_err(990002, "参数错误。");
    };
    let dir = match r.f("wp_path_id") {
        Some(d) => match d.parse::<u64>() {
            Ok(d) if st.is_dir_of(c.user, d) => d,
            _ => return pro_err(10014, "云端目录不存在"),
        },
        None => 0,
    };
    let now = c.now();
    let mut out = Vec::new();
    for url in urls.split('\n').map(str::trim).filter(|u| !u.is_empty()) {
        let Some((hash, name, size)) = parse_link(url) else {
            out.push(json!({"state": false, "code": 10004, "message": "错误的链接", "url": url}));
            continue;
        };
        if st.offline.iter().any(|t| t.user == c.user && t.info_hash == hash) {
            // Open API: info_hash only on success (ref §8 table).
            out.push(json!({"state": false, "code": 10008, "message": "任务已存在", "url": url}));
            continue;
        }
        let u = st.users.get_mut(&c.user).unwrap();
        if u.offline_used >= u.offline_quota {
            out.push(json!({"state": false, "code": 10010, "message": "云下载配额已用完", "url": url}));
            continue;
        }
        u.offline_used += 1;
        st.offline.push(OfflineTask {
            user: c.user,
            info_hash: hash.clone(),
            name,
            url: url.to_string(),
            size,
            add_time: now,
            last_update: now,
            percent_done: 0.0,
            status: 0,
            wp_path_id: dir,
            file_id: None,
        });
        out.push(json!({"state": true, "code": 0, "message": "", "info_hash": hash, "url": url}));
    }
    pro_ok(Value::Array(out))
}

fn task_json(t: &OfflineTask) -> Value {
    let fid = t.file_id.map(|f| f.to_string()).unwrap_or_default();
    json!({
        "info_hash": t.info_hash,
        "add_time": t.add_time,
        "percentDone": t.percent_done,
        "size": t.size,
        "name": t.name,
        "last_update": t.last_update,
        "file_id": fid,
        "delete_file_id": fid,
        "status": t.status,
        "url": t.url,
        "wp_path_id": t.wp_path_id.to_string(),
        "def2": 0,
        "play_long": 0,
        "can_appeal": 0,
    })
}

/// `get_task_list`: `page` (1-based) from the query **or** the body, default 1 (the sdk
/// sends it as a form body on a GET, ref §8).
pub(crate) fn list(st: &State, c: &Ctx, r: &Req) -> Resp {
    let page: usize = r
        .q("page")
        .or_else(|| {
            crate::util::parse_urlencoded(&r.body)
                .into_iter()
                .find(|(k, v)| k == "page" && !v.is_empty())
                .map(|(_, v)| v)
        })
        .and_then(|p| p.parse().ok())
        .filter(|&p| p >= 1)
        .unwrap_or(1);
    let size = st.opts.offline_page_size.max(1);
    let mut tasks: Vec<(usize, &OfflineTask)> =
        st.offline.iter().enumerate().filter(|(_, t)| t.user == c.user).collect();
    tasks.sort_by(|a, b| b.1.add_time.cmp(&a.1.add_time).then(b.0.cmp(&a.0)));
    let count = tasks.len();
    let page_count = count.div_ceil(size).max(1);
    let shown: Vec<Value> = tasks.iter().skip((page - 1) * size).take(size).map(|(_, t)| task_json(t)).collect();
    pro_ok(json!({"page": page, "page_count": page_count, "count": count, "tasks": shown}))
}

fn recycle_file(st: &mut State, user: u64, fid: Option<u64>, now: u64) {
    if let Some(f) = fid {
        if let Some(n) = st.nodes.get_mut(&f).filter(|n| n.user == user) {
            n.recycled.get_or_insert(now);
        }
    }
}

pub(crate) fn del(st: &mut State, c: &Ctx, r: &Req) -> Resp {
    let Some(hash) = r.f("info_hash") else {
        return pro_err(990002, "参数错误。");
    };
    let del_source = r.f("del_source_file").as_deref() == Some("1");
    let now = c.now();
    // Unknown hashes are ignored (idempotent).
    let mut removed = Vec::new();
    st.offline.retain(|t| {
        if t.user == c.user && t.info_hash == hash {
            removed.push(t.file_id);
            false
        } else {
            true
        }
    });
    if del_source {
        for f in removed {
            recycle_file(st, c.user, f, now);
        }
    }
    pro_ok(json!([]))
}

pub(crate) fn clear(st: &mut State, c: &Ctx, r: &Req) -> Resp {
    let flag: u32 = r.f("flag").and_then(|f| f.parse().ok()).unwrap_or(0);
    if flag > 5 {
        return pro_err(990002, "参数错误。");
    }
    let now = c.now();
    let mut removed = Vec::new();
    st.offline.retain(|t| {
        if t.user != c.user {
            return true;
        }
        let hit = match flag {
            0 | 4 => t.status == 2,
            1 | 5 => true,
            2 => t.status == -1,
            _ => t.status == 0 || t.status == 1,
        };
        if hit {
            removed.push(t.file_id);
        }
        !hit
    });
    if flag == 4 || flag == 5 {
        for f in removed {
            recycle_file(st, c.user, f, now);
        }
    }
    pro_ok(json!([]))
}

pub(crate) fn quota(st: &State, c: &Ctx) -> Resp {
    let u = &st.users[&c.user];
    let surplus = u.offline_quota.saturating_sub(u.offline_used);
    pro_ok(json!({
        "package": [{
            "surplus": surplus, "used": u.offline_used, "count": u.offline_quota, "name": "云下载配额",
            "expire_info": [{"surplus": surplus, "expire_time": c.now() + 30 * 86400}]
        }],
        "count": u.offline_quota,
        "surplus": surplus,
        "used": u.offline_used,
    }))
}
