//! §2 listing & metadata, §4 mutations, §4.6 recycle bin.

use serde_json::{json, Value};
use std::cmp::Ordering;
use std::sync::Arc;

use crate::server::{err, not_logged_99, not_logged_files, Reply, Req};
use crate::state::{Node, State};
use crate::util::{ext_of, is_video, natcmp, shanghai_minute, size_format, type_class};
use crate::Inner;

pub async fn webapi(inner: &Arc<Inner>, req: &Req) -> Reply {
    match req.path.as_str() {
        "/files" => files_list(inner, req, false),
        "/files/get_info" => get_info(inner, req),
        "/files/getid" => getid(inner, req),
        "/category/get" => category_get(inner, req),
        "/files/index_info" => index_info(inner, req),
        "/files/add" => add(inner, req).await,
        "/files/batch_rename" => rename(inner, req).await,
        "/files/move" => move_copy(inner, req, true).await,
        "/files/copy" => move_copy(inner, req, false).await,
        "/rb/delete" => delete(inner, req).await,
        "/rb" => rb_list(inner, req),
        "/rb/revert" => rb_revert(inner, req).await,
        "/rb/clean" => rb_clean(inner, req).await,
        _ => Reply::not_found(),
    }
}

pub fn aps(inner: &Arc<Inner>, req: &Req) -> Reply {
    match req.path.as_str() {
        "/natsort/files.php" => files_list(inner, req, true),
        _ => Reply::not_found(),
    }
}

pub fn sid(id: u64) -> Value {
    Value::String(id.to_string())
}

/// Folder item (§2.1): no `fid`; `cid` is its own id, `pid` the parent; `t` unix-seconds string.
pub fn dir_item(st: &State, n: &Node) -> Value {
    let shared = st.shares.values().any(|s| s.state == 1 && s.ids.contains(&n.id));
    json!({
        "cid": sid(n.id), "pid": sid(n.parent), "aid": "1", "n": n.name, "ns": n.name,
        "t": n.mtime.to_string(), "te": n.mtime.to_string(), "tp": n.ctime.to_string(),
        "pc": n.pc, "m": n.starred as i32, "fl": [], "sh": shared as i32, "e": "", "p": 0, "hdf": 0,
        "issct": 0, "is_top": 0, "fdes": ""
    })
}

/// File item (§2.1): `fid` own id, `cid` the parent; `s` a number; `t` "YYYY-MM-DD HH:MM".
pub fn file_item(st: &State, n: &Node) -> Value {
    let ext = ext_of(&n.name);
    let shared = st.shares.values().any(|s| s.state == 1 && s.ids.contains(&n.id));
    let mut v = json!({
        "fid": sid(n.id), "cid": sid(n.parent), "uid": n.owner, "aid": "1", "n": n.name,
        "s": n.size, "sha": n.sha1, "pc": n.pc, "ico": ext,
        "t": shanghai_minute(n.mtime), "te": n.mtime.to_string(), "tp": n.ctime.to_string(),
        "to": n.atime.to_string(), "m": n.starred as i32, "fl": [], "u": "", "d": 0, "c": 0,
        "sh": shared as i32, "e": "", "p": 0, "sta": 1, "hdf": 0, "issct": 0, "is_top": 0, "fdes": ""
    });
    if is_video(&ext) {
        let o = v.as_object_mut().unwrap();
        o.insert("iv".into(), json!(1));
        o.insert("vdi".into(), json!(4));
        o.insert("play_long".into(), json!(0));
        o.insert("class".into(), json!("AVI"));
    }
    if type_class(&ext) == 2 {
        v["u"] = json!(format!("https://thumb.115.com/thumb/{}_100", n.sha1.to_lowercase()));
    }
    v
}

pub fn item(st: &State, n: &Node) -> Value {
    if n.is_dir {
        dir_item(st, n)
    } else {
        file_item(st, n)
    }
}

const ORDERS: &[&str] = &["file_name", "file_size", "file_type", "user_ptime", "user_utime", "user_otime"];

pub fn sort_nodes(v: &mut [&Node], order: &str, asc: bool, natural: bool, dirs_first: bool) {
    v.sort_by(|a, b| {
        if dirs_first && a.is_dir != b.is_dir {
            return if a.is_dir { Ordering::Less } else { Ordering::Greater };
        }
        let o = match order {
            "file_name" => {
                if natural {
                    natcmp(&a.name, &b.name)
                } else {
                    a.name.cmp(&b.name)
                }
            }
            "file_size" => a.size.cmp(&b.size),
            "file_type" => ext_of(&a.name).cmp(&ext_of(&b.name)),
            "user_utime" => a.mtime.cmp(&b.mtime),
            "user_otime" => a.atime.cmp(&b.atime),
            _ => a.ctime.cmp(&b.ctime),
        };
        let o = if asc { o } else { o.reverse() };
        o.then(a.id.cmp(&b.id))
    });
}

fn files_list(inner: &Arc<Inner>, req: &Req, natsort_ep: bool) -> Reply {
    let st = inner.st();
    let Some(uid) = st.session_for(&req.cookies()).map(|s| s.user_id) else {
        drop(st);
        return not_logged_files(req);
    };
    let q = &req.q;
    let aid = q.int("aid").unwrap_or(1);
    let req_cid = q.u64("cid").unwrap_or(0);
    // Quirk §2.1: a missing/deleted cid silently lists the root.
    let cid = if aid == 1 && st.live_dir(uid, req_cid) { req_cid } else { 0 };
    let max = if natsort_ep { st.opts.natsort_max_limit } else { st.opts.files_max_limit };
    let mut order = q.get_or("o", "user_ptime").to_string();
    if natsort_ep {
        order = "file_name".into(); // §2.2: `o` ignored
    }
    let asc = q.int("asc").unwrap_or(1) != 0;
    let fc_mix = q.int("fc_mix").unwrap_or(0);
    let mut offset = q.u64("offset").unwrap_or(0) as usize;
    // STRICT: limits above the documented maximum are clamped (not rejected); the echoed
    // `limit`/`page_size` show the clamped value.
    let limit = match q.u64("limit") {
        Some(0) | None => 20,
        Some(l) => (l as usize).min(max),
    };
    if !ORDERS.contains(&order.as_str()) {
        return Reply::json(&json!({
            "state": false, "error": "不支持的排序", "errNo": 20130827, "errno": 20130827,
            "order": "user_ptime", "is_asc": 1, "request": req.echo()
        }));
    }
    let show_dir = q.int("show_dir").unwrap_or(1) != 0;
    let nf = q.int("nf").unwrap_or(0) != 0;
    let star = q.int("star").unwrap_or(0) != 0;
    let ftype = q.int("type").unwrap_or(0);
    let suffix = q.get("suffix").map(|s| s.trim_start_matches('.').to_ascii_lowercase()).filter(|s| !s.is_empty());
    let natural = natsort_ep || q.int("natsort").unwrap_or(0) != 0;

    let mut nodes: Vec<&Node> = if aid == 7 {
        st.nodes.values().filter(|n| n.owner == uid && n.deleted.is_some()).collect()
    } else if aid == 1 {
        st.children(uid, cid)
    } else {
        Vec::new()
    };
    nodes.retain(|n| {
        if n.is_dir {
            show_dir && ftype == 0 && suffix.is_none() && (!star || n.starred)
        } else {
            let ext = ext_of(&n.name);
            !nf && (!star || n.starred)
                && (ftype == 0 || ftype == 99 || type_class(&ext) as i64 == ftype)
                && suffix.as_ref().is_none_or(|s| *s == ext)
        }
    });
    sort_nodes(&mut nodes, &order, asc, natural, fc_mix == 0);
    let count = nodes.len();
    if natsort_ep {
        // §2.2: only the first ~1200 entries are reachable; deeper offsets restart at 0.
        nodes.truncate(max);
        if offset >= max {
            offset = 0;
        }
    }
    let page: Vec<Value> = nodes.iter().skip(offset).take(limit).map(|n| item(&st, n)).collect();
    let mut path = vec![json!({"name": "根目录", "aid": 1, "cid": 0, "pid": 0})];
    for a in st.ancestry(cid) {
        path.push(json!({"name": a.name, "aid": 1, "cid": sid(a.id), "pid": sid(a.parent)}));
    }
    let cid_v = if cid == 0 { json!(0) } else { sid(cid) };
    Reply::json(&json!({
        "state": true, "error": "", "errNo": 0,
        "aid": aid, "cid": cid_v, "count": count, "order": order, "is_asc": asc as i32,
        "offset": offset, "limit": limit, "page_size": limit, "fc_mix": fc_mix, "sys_count": 0,
        "suffix": "", "star": star as i32, "type": ftype, "natsort": natural as i32,
        "path": path, "data": page
    }))
}

fn get_info(inner: &Arc<Inner>, req: &Req) -> Reply {
    let st = inner.st();
    let Some(uid) = st.session_for(&req.cookies()).map(|s| s.user_id) else {
        drop(st);
        return not_logged_99(req, false);
    };
    let node = if let Some(id) = req.q.u64("file_id") {
        st.node_of(uid, id)
    } else if let Some(pc) = req.q.get("pick_code") {
        st.nodes.values().find(|n| n.owner == uid && n.pc == pc)
    } else {
        None
    };
    match node {
        Some(n) if st.alive(n.id) => {
            let mut v = item(&st, n);
            if !n.is_dir {
                v["s"] = json!(n.size.to_string()); // string here, number in /files (§2.3 example)
                v["m"] = json!((n.starred as i32).to_string());
            }
            Reply::json(&json!({"state": true, "code": 0, "message": "", "data": [v]}))
        }
        Some(n) if n.is_dir => Reply::json(&err("errno", 20013, "目录不存在或已删除。")),
        _ => Reply::json(&err("errno", 20018, "文件不存在或已删除。")),
    }
}

fn getid(inner: &Arc<Inner>, req: &Req) -> Reply {
    let st = inner.st();
    let Some(uid) = st.session_for(&req.cookies()).map(|s| s.user_id) else {
        drop(st);
        return not_logged_files(req);
    };
    let path = req.q.get_or("path", "");
    let mut cur = 0u64;
    let mut found = true;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let mut kids: Vec<&Node> = st.children(uid, cur).into_iter().filter(|n| n.is_dir).collect();
        kids.sort_by_key(|n| n.id);
        match kids.iter().find(|n| n.name == part) {
            Some(n) => cur = n.id,
            None => {
                found = false;
                break;
            }
        }
    }
    // §2.5: a missing directory is `id` 0 with state true (the root is 0 too).
    let id = if found && cur != 0 { sid(cur) } else { json!(0) };
    Reply::json(&json!({"state": true, "id": id, "is_private": "0", "error": "", "errno": 0}))
}

fn category_get(inner: &Arc<Inner>, req: &Req) -> Reply {
    let st = inner.st();
    let Some(uid) = st.session_for(&req.cookies()).map(|s| s.user_id) else {
        drop(st);
        return not_logged_99(req, false);
    };
    let id = req.q.u64("cid").or_else(|| req.q.u64("fid")).unwrap_or(0);
    // STRICT: fails for the root and for missing items; the error shape is unknown (§2.4,
    // §10.8), so a plain state:false/errno body is used.
    let Some(n) = st.live_node(uid, id) else {
        return Reply::json(&err("errno", 20013, "目录不存在或已删除。"));
    };
    let (mut files, mut folders, mut size) = (0u64, 0u64, 0u64);
    if n.is_dir {
        for d in st.descendants(n.id) {
            if let Some(c) = st.nodes.get(&d) {
                if !st.alive(c.id) {
                    continue;
                }
                if c.is_dir {
                    folders += 1;
                } else {
                    files += 1;
                    size += c.size;
                }
            }
        }
    } else {
        files = 1;
        size = n.size;
    }
    let mut paths = vec![json!({"file_id": 0, "file_name": "根目录"})];
    for a in st.ancestry(n.id) {
        if a.id == n.id && !n.is_dir {
            continue;
        }
        paths.push(json!({"file_id": a.id, "file_name": a.name})); // int here (§2.4)
    }
    Reply::json(&json!({
        "count": files.to_string(), "size": size_format(size), "folder_count": folders.to_string(),
        "ptime": n.ctime.to_string(), "utime": n.mtime.to_string(), "is_share": "0",
        "file_name": n.name, "pick_code": n.pc, "sha1": n.sha1, "is_mark": (n.starred as i32).to_string(),
        "open_time": n.atime, "file_category": if n.is_dir { "0" } else { "1" }, "paths": paths
    }))
}

fn index_info(inner: &Arc<Inner>, req: &Req) -> Reply {
    let st = inner.st();
    let Some(sess) = st.session_for(&req.cookies()).cloned() else {
        drop(st);
        return not_logged_99(req, false);
    };
    let total = st.users.get(&sess.user_id).map(|u| u.space_total).unwrap_or(0);
    let used = st.used_space(sess.user_id);
    let remain = total.saturating_sub(used);
    let devices: Vec<Value> = st
        .sessions
        .iter()
        .filter(|s| s.user_id == sess.user_id && s.alive)
        .map(|s| json!({"is_current": (s.uid == sess.uid) as i32, "ssoent": s.ssoent, "utime": s.login_time,
                        "device": s.app, "name": s.app, "icon": "", "desc": "", "ip": "127.0.0.1", "city": "", "is_unusual": 0}))
        .collect();
    Reply::json(&json!({"state": true, "error": "", "errno": 0, "data": {
        "space_info": {
            "all_total": {"size": total, "size_format": size_format(total)},
            "all_remain": {"size": remain, "size_format": size_format(remain)},
            "all_use": {"size": used, "size_format": size_format(used)}
        },
        "login_devices_info": {"last": {"ip": "127.0.0.1", "device": sess.app, "device_id": "", "network": "", "os": "", "city": "", "utime": sess.login_time},
                               "list": devices},
        "imei_info": false
    }}))
}

// ------------------------------------------------------------------ mutations

/// §4/§8: "don't run these concurrently". With `Opts::mutation_latency` > 0 a batch keeps
/// the account busy for that long; a second move gets 990019, delete/copy 990009.
fn try_busy(st: &mut State, uid: u64, kind: &'static str) -> Result<(), Reply> {
    let lat = st.opts.mutation_latency;
    if lat.is_zero() {
        return Ok(());
    }
    let now = st.now_ms();
    if let Some((_, until, k)) = st.busy.get(&uid) {
        if *until > now {
            let (code, verb) = if *k == "move" || kind == "move" {
                (990019, "移动")
            } else {
                (990009, if kind == "delete" { "删除" } else { "复制" })
            };
            return Err(Reply::json(&err("errno", code, &format!("{verb}[...]操作尚未执行完成，请稍后再试！"))));
        }
    }
    st.busy.insert(uid, (0, now + lat.as_millis(), kind));
    Ok(())
}

async fn finish_busy(inner: &Arc<Inner>, uid: u64) {
    let lat = inner.st().opts.mutation_latency;
    if !lat.is_zero() {
        tokio::time::sleep(lat).await;
        inner.st().busy.remove(&uid);
    }
}

fn folder_name_error(name: &str) -> Option<(i64, &'static str)> {
    if name.trim().is_empty() {
        return Some((20001, "请输入文件夹名称"));
    }
    if name.chars().count() > 255 {
        return Some((20002, "目录名称不能超出20个字。"));
    }
    if name.contains(['"', '<', '>']) {
        return Some((20003, "名称不能包含特殊字符\" < >"));
    }
    None
}

async fn add(inner: &Arc<Inner>, req: &Req) -> Reply {
    let mut st = inner.st();
    let Some(uid) = st.session_for(&req.cookies()).map(|s| s.user_id) else {
        drop(st);
        return not_logged_99(req, false);
    };
    let pid = req.param("pid").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let name = req.param("cname").unwrap_or("").to_string();
    if let Some((c, m)) = folder_name_error(&name) {
        return Reply::json(&err("errno", c, m));
    }
    if !st.live_dir(uid, pid) {
        return Reply::json(&err("errno", 20009, "父目录不存在。"));
    }
    let kids = st.children(uid, pid);
    if kids.iter().any(|n| n.is_dir && n.name == name) {
        return Reply::json(&err("errno", 20004, "该目录名称已存在。"));
    }
    if kids.len() >= 50_000 {
        return Reply::json(&err("errno", 2, "网盘单个文件夹限5万个文件，请清理后再添加！"));
    }
    let id = st.insert_node(uid, pid, &name, true, None);
    Reply::json(&json!({"state": true, "error": "", "errno": 0, "aid": 1, "cid": sid(id), "cname": name,
                        "file_id": sid(id), "file_name": name}))
}

async fn rename(inner: &Arc<Inner>, req: &Req) -> Reply {
    let mut st = inner.st();
    let Some(uid) = st.session_for(&req.cookies()).map(|s| s.user_id) else {
        drop(st);
        return not_logged_99(req, false);
    };
    let mut items = req.form.map("files_new_name");
    if items.is_empty() {
        if let (Some(f), Some(n)) = (req.param("fid"), req.param("file_name")) {
            items.push((f.to_string(), n.to_string()));
        }
    }
    // Error codes arrive as numeric strings on this endpoint (§0.4 quirk).
    let e = |code: i64, msg: &str| {
        Reply::json(&json!({"state": false, "error": msg, "errno": code.to_string(), "errtype": "war"}))
    };
    if items.is_empty() {
        return e(1001, "参数错误");
    }
    let mut plan: Vec<(u64, String)> = Vec::new();
    for (id, name) in &items {
        let Some(n) = id.parse::<u64>().ok().and_then(|id| st.live_node(uid, id)) else {
            return e(20018, "文件不存在或已删除。");
        };
        if name.trim().is_empty() {
            return e(20001, "文件名称不能为空");
        }
        if n.is_dir {
            if let Some((c, m)) = folder_name_error(name) {
                return e(c, m);
            }
            let clash = st.children(uid, n.parent).iter().any(|s| s.is_dir && s.id != n.id && &s.name == name)
                || plan.iter().any(|(pid, pn)| {
                    pn == name && st.nodes.get(pid).map(|p| p.is_dir && p.parent == n.parent).unwrap_or(false)
                });
            if clash {
                return e(20004, "该目录名称已存在。");
            }
        }
        plan.push((n.id, name.clone()));
    }
    // STRICT: renaming to the unchanged name answers "更新的数据为空" with state false
    // (p115client treats it as success, §4.2 [unconfirmed]).
    if plan.iter().all(|(id, name)| st.nodes.get(id).map(|n| &n.name == name).unwrap_or(false)) {
        return Reply::json(&json!({"state": false, "error": "更新的数据为空", "errno": "", "errtype": "war"}));
    }
    let now = st.now();
    for (id, name) in plan {
        if let Some(n) = st.nodes.get_mut(&id) {
            n.name = name;
            n.mtime = now;
        }
    }
    Reply::json(&json!({"state": true, "error": "", "errno": 0, "data": []}))
}

async fn move_copy(inner: &Arc<Inner>, req: &Req, is_move: bool) -> Reply {
    let uid;
    {
        let mut st = inner.st();
        let Some(u) = st.session_for(&req.cookies()).map(|s| s.user_id) else {
            drop(st);
            return not_logged_99(req, false);
        };
        uid = u;
        let pid = req.param("pid").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let fids: Vec<u64> =
            req.form.array("fid").iter().chain(req.q.array("fid").iter()).filter_map(|s| s.parse().ok()).collect();
        if fids.is_empty() {
            return Reply::json(&err("errno", 990002, "参数错误"));
        }
        if fids.len() > 50_000 {
            return Reply::json(&err("errno", if is_move { 990023 } else { 91004 }, "操作的文件(夹)数量超过5万个"));
        }
        for f in &fids {
            if st.live_node(uid, *f).is_none() {
                return Reply::json(&err("errno", 90008, "文件(夹)不存在或已经删除。"));
            }
        }
        // Cycle check: target is a moved folder or one of its descendants.
        let target_chain: Vec<u64> = st.ancestry(pid).iter().map(|n| n.id).collect();
        if fids.iter().any(|f| target_chain.contains(f)) {
            return if is_move {
                Reply::json(&err("errno", 800006, "不能移动到自身或其子目录下"))
            } else {
                Reply::json(&err("errno", 91002, "不能将文件复制到自身或其子目录下。"))
            };
        }
        if !is_move && !st.live_dir(uid, pid) {
            return Reply::json(&err("errno", 800001, "目标目录不存在。"));
        }
        if let Err(r) = try_busy(&mut st, uid, if is_move { "move" } else { "copy" }) {
            return r;
        }
        if is_move {
            // §4.3 caution reproduced: a non-existent pid is accepted and leaves dangling nodes.
            let now = st.now();
            for f in &fids {
                if let Some(n) = st.nodes.get_mut(f) {
                    n.parent = pid;
                }
            }
            if let Some(p) = st.nodes.get_mut(&pid) {
                p.mtime = now;
            }
        } else {
            let mut need = 0u64;
            for f in &fids {
                let mut ids = st.descendants(*f);
                ids.push(*f);
                need +=
                    ids.iter().filter(|i| st.alive(**i)).filter_map(|i| st.nodes.get(i)).map(|n| n.size).sum::<u64>();
            }
            let total = st.users.get(&uid).map(|u| u.space_total).unwrap_or(0);
            if st.used_space(uid) + need > total {
                st.busy.remove(&uid);
                return Reply::json(&err("errno", 91005, "空间不足，复制失败。"));
            }
            for f in &fids {
                st.copy_subtree(*f, pid, uid);
            }
        }
    }
    finish_busy(inner, uid).await;
    Reply::json(&json!({"state": true, "error": "", "errno": 0}))
}

async fn delete(inner: &Arc<Inner>, req: &Req) -> Reply {
    let uid;
    {
        let mut st = inner.st();
        let Some(u) = st.session_for(&req.cookies()).map(|s| s.user_id) else {
            drop(st);
            return not_logged_99(req, false);
        };
        uid = u;
        let fids: Vec<u64> = req.form.array("fid").iter().filter_map(|s| s.parse().ok()).collect();
        if fids.is_empty() {
            return Reply::json(&err("errno", 990002, "参数错误"));
        }
        for f in &fids {
            if st.live_node(uid, *f).is_none() {
                return Reply::json(&err("errno", 231011, "文件已删除，请勿重复操作"));
            }
        }
        if let Err(r) = try_busy(&mut st, uid, "delete") {
            return r;
        }
        let now = st.now();
        for f in &fids {
            if let Some(n) = st.nodes.get_mut(f) {
                n.deleted = Some(now);
            }
        }
        st.links.retain(|_, l| !fids.contains(&l.file_id));
    }
    finish_busy(inner, uid).await;
    Reply::json(&json!({"state": true, "error": "", "errno": 0, "data": []}))
}

fn rb_list(inner: &Arc<Inner>, req: &Req) -> Reply {
    let st = inner.st();
    let Some(uid) = st.session_for(&req.cookies()).map(|s| s.user_id) else {
        drop(st);
        return not_logged_99(req, false);
    };
    let mut v: Vec<&Node> = st.nodes.values().filter(|n| n.owner == uid && n.deleted.is_some()).collect();
    v.sort_by_key(|n| (std::cmp::Reverse(n.deleted), n.id));
    let offset = req.q.u64("offset").unwrap_or(0) as usize;
    let limit = req.q.u64("limit").filter(|l| *l > 0).unwrap_or(40).min(1150) as usize;
    let data: Vec<Value> = v
        .iter()
        .skip(offset)
        .take(limit)
        .map(|n| {
            let pname = if n.parent == 0 { "根目录".to_string() } else { st.nodes.get(&n.parent).map(|p| p.name.clone()).unwrap_or_default() };
            json!({"id": sid(n.id), "file_name": n.name, "file_size": n.size.to_string(), "cid": sid(n.parent),
                   "parent_name": pname, "dtime": n.deleted.unwrap_or(0).to_string(), "type": if n.is_dir { "2" } else { "1" },
                   "pick_code": n.pc, "sha1": n.sha1})
        })
        .collect();
    Reply::json(
        &json!({"state": true, "error": "", "errno": 0, "count": v.len(), "offset": offset, "page_size": limit, "data": data}),
    )
}

async fn rb_revert(inner: &Arc<Inner>, req: &Req) -> Reply {
    let mut st = inner.st();
    let Some(uid) = st.session_for(&req.cookies()).map(|s| s.user_id) else {
        drop(st);
        return not_logged_99(req, false);
    };
    let rids: Vec<u64> = req.form.array("rid").iter().filter_map(|s| s.parse().ok()).collect();
    for r in &rids {
        match st.node_of(uid, *r) {
            Some(n) if n.deleted.is_some() => {}
            _ => return Reply::json(&err("errno", 90008, "文件(夹)不存在或已经删除。")),
        }
    }
    for r in rids {
        let parent_alive = {
            let p = st.nodes[&r].parent;
            st.live_dir(uid, p)
        };
        let n = st.nodes.get_mut(&r).unwrap();
        n.deleted = None;
        if !parent_alive {
            n.parent = 0; // [inferred] restore into the root when the old parent is gone
        }
    }
    Reply::json(&json!({"state": true, "error": "", "errno": 0, "data": []}))
}

async fn rb_clean(inner: &Arc<Inner>, req: &Req) -> Reply {
    let mut st = inner.st();
    let Some(uid) = st.session_for(&req.cookies()).map(|s| s.user_id) else {
        drop(st);
        return not_logged_99(req, false);
    };
    let mut rids: Vec<u64> = req.form.array("rid").iter().filter_map(|s| s.parse().ok()).collect();
    if rids.is_empty() {
        rids = st.nodes.values().filter(|n| n.owner == uid && n.deleted.is_some()).map(|n| n.id).collect();
    }
    for r in rids {
        if st.node_of(uid, r).map(|n| n.deleted.is_some()) != Some(true) {
            continue;
        }
        let mut all = st.descendants(r);
        all.push(r);
        for id in all {
            st.nodes.remove(&id);
        }
    }
    Reply::json(&json!({"state": true, "error": "", "errno": 0}))
}
