//! User info (ref §3), listing and metadata (§4), download (§5), mutations (§6).

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::http::Ctx;
use crate::state::{Inner, Link, Node, State};
use crate::util::{
    extension, is_video_ext, pct, pro_err, pro_ok, rand_hex, sha1_hex, size_format, type_of_ext, Req, Resp,
};
use crate::{NotFoundStyle, UnknownPickCodeStyle};

const ROOT_NAME: &str = "根目录";

fn parse_ids(s: &str) -> Option<Vec<u64>> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(|x| x.parse().ok()).collect()
}

// ------------------------------------------------------------------------ user info

pub(crate) fn user_info(st: &State, c: &Ctx) -> Resp {
    let u = &st.users[&c.user];
    let total = st.opts.total_space;
    let used = st.used_space(c.user);
    let remain = total.saturating_sub(used);
    pro_ok(json!({
        "user_id": u.id,
        "user_name": u.name,
        "user_face_s": "https://avatars.115.com/s.jpg",
        "user_face_m": "https://avatars.115.com/m.jpg",
        "user_face_l": "https://avatars.115.com/l.jpg",
        "rt_space_info": {
            "all_total": {"size": total, "size_format": size_format(total)},
            "all_remain": {"size": remain, "size_format": size_format(remain)},
            "all_use": {"size": used, "size_format": size_format(used)},
        },
        "vip_info": {"level_name": "年费VIP", "expire": c.now() + 365 * 86400},
    }))
}

// ------------------------------------------------------------------------ listing (§4.1)

fn item_json(n: &Node) -> Value {
    let ext = if n.is_dir { String::new() } else { extension(&n.name) };
    let isv = !n.is_dir && is_video_ext(&ext);
    json!({
        "fid": n.id.to_string(),
        "aid": "1",
        "pid": n.parent.to_string(),
        "fc": if n.is_dir { "0" } else { "1" },
        "fn": n.name,
        "fco": "",
        "ism": if n.star { "1" } else { "0" },
        "isp": 0,
        "pc": n.pick_code,
        "upt": n.utime,
        "uet": n.utime,
        "uppt": n.ptime,
        "cm": 0,
        "fdesc": "",
        "ispl": 0,
        "fl": [],
        "sha1": n.sha1.clone().unwrap_or_default(),
        "fs": n.size,
        "fta": "1",
        "ico": ext,
        "fatr": "",
        "isv": if isv { 1 } else { 0 },
        "def": 0,
        "def2": 0,
        "play_long": 0,
        "v_img": "",
        "thumb": "",
        "uo": "",
    })
}

fn path_json(st: &State, cid: u64) -> Value {
    let mut v = vec![json!({"name": ROOT_NAME, "aid": 1, "cid": 0, "pid": 0, "isp": 0, "p_cid": "", "fv": ""})];
    if cid != 0 {
        let mut chain = st.ancestors(cid);
        chain.push(cid);
        for id in chain {
            let n = &st.nodes[&id];
            v.push(json!({
                "name": n.name, "aid": 1, "cid": n.id, "pid": n.parent, "isp": 0,
                "p_cid": n.parent.to_string(), "fv": ""
            }));
        }
    }
    Value::Array(v)
}

fn sort_nodes(nodes: &mut [&Node], o: &str, asc: bool, folders_first: bool) {
    nodes.sort_by(|a, b| {
        let f = if folders_first { b.is_dir.cmp(&a.is_dir) } else { std::cmp::Ordering::Equal };
        let k = match o {
            "file_name" => a.name.cmp(&b.name),
            "file_size" => a.size.cmp(&b.size),
            "file_type" => extension(&a.name).cmp(&extension(&b.name)),
            "user_ptime" => a.ptime.cmp(&b.ptime),
            _ => a.utime.cmp(&b.utime),
        };
        let k = k.then(a.id.cmp(&b.id));
        f.then(if asc { k } else { k.reverse() })
    });
}

pub(crate) fn list(st: &State, c: &Ctx, r: &Req) -> Resp {
    let requested = r.q("cid").unwrap_or_else(|| "0".into());
    let cid = match requested.parse::<u64>() {
        Ok(id) if st.is_dir_of(c.user, id) => id,
        _ if st.opts.missing_cid_lists_root => 0,
        _ => return pro_err(20009, "父目录不存在。"),
    };
    let max = st.opts.page_size_max.max(1);
    let limit = r
        .q("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|&l| l > 0)
        .unwrap_or(st.opts.default_list_limit)
        .min(max);
    let offset = r.q("offset").and_then(|o| o.parse::<usize>().ok()).unwrap_or(0);
    let show_dir = r.q("show_dir").as_deref() == Some("1");
    let custom_order: u32 = r.q("custom_order").and_then(|x| x.parse().ok()).unwrap_or(0);
    let suffix = r.q("suffix").map(|s| s.trim_start_matches('.').to_ascii_lowercase());
    let ftype: u32 = r.q("type").and_then(|x| x.parse().ok()).unwrap_or(0);
    let star = r.q("star").as_deref() == Some("1");
    let stdir = r.q("stdir").as_deref() == Some("1");
    let filtering = suffix.is_some() || ftype != 0;

    let mut items: Vec<&Node> = st
        .visible_children(c.user, cid)
        .into_iter()
        .map(|id| &st.nodes[&id])
        .filter(|n| {
            if n.is_dir {
                show_dir && (!filtering || stdir)
            } else {
                let ext = extension(&n.name);
                suffix.as_ref().is_none_or(|s| &ext == s)
                    && (suffix.is_some() || ftype == 0 || type_of_ext(&ext) == ftype)
            }
        })
        .filter(|n| !star || n.star)
        .collect();

    // Order: o/asc are honoured with custom_order 1/2 (p115client) or when the knob says
    // so; otherwise the "remembered" order, here user_ptime descending (ref §14.5).
    let honour = custom_order == 1 || custom_order == 2 || st.opts.sort_without_custom_order;
    let (o, asc) = if honour {
        (r.q("o").unwrap_or_else(|| "user_ptime".into()), r.q("asc").as_deref() != Some("0"))
    } else {
        ("user_ptime".to_string(), false)
    };
    sort_nodes(&mut items, &o, asc, custom_order != 2);
    let count = items.len();
    let page: Vec<Value> = items.iter().skip(offset).take(limit).map(|n| item_json(n)).collect();
    Resp::json(json!({
        "state": true, "code": 0, "message": "",
        "data": page,
        "count": count,
        "sys_count": 0,
        "offset": offset,
        "limit": if st.opts.list_limit_as_string { json!(limit.to_string()) } else { json!(limit) },
        "aid": 1,
        "cid": cid,
        "is_asc": if asc { 1 } else { 0 },
        "min_size": 0,
        "max_size": 0,
        "sys_dir": "",
        "hide_data": "",
        "record_open_time": "1",
        "star": if star { 1 } else { 0 },
        "type": ftype,
        "suffix": suffix.unwrap_or_default(),
        "path": path_json(st, cid),
        "cur": r.q("cur").and_then(|x| x.parse::<u32>().ok()).unwrap_or(0),
        "stdir": if stdir { 1 } else { 0 },
        "fields": "",
        "order": o,
    }))
}

// ------------------------------------------------------------------------ get_info (§4.2)

fn not_found(st: &State) -> Resp {
    match st.opts.get_info_not_found {
        NotFoundStyle::EmptyArray => pro_ok(json!([])),
        NotFoundStyle::Code430004 => pro_err(430004, "文件（夹）不存在或已删除。"),
    }
}

/// Resolve `/a/b` or `>a>b` (must start with a separator; root not queryable).
fn resolve_path(st: &State, user: u64, path: &str) -> Option<u64> {
    let sep = path.chars().next().filter(|c| *c == '/' || *c == '>')?;
    let trimmed = path.trim_end_matches(sep);
    let comps: Vec<&str> = trimmed[sep.len_utf8().min(trimmed.len())..].split(sep).collect();
    if trimmed.len() <= sep.len_utf8() || comps.iter().any(|c| c.is_empty()) {
        return None;
    }
    let mut cur = 0;
    for comp in comps {
        cur = st.child_named(user, cur, comp)?;
    }
    Some(cur)
}

pub(crate) fn get_info(st: &State, c: &Ctx, r: &Req) -> Resp {
    // GET: query `file_id` or `path`; POST: form `path` or `file_id` (ref §4.2).
    let (fid, path) = if r.method == "GET" { (r.q("file_id"), r.q("path")) } else { (r.f("file_id"), r.f("path")) };
    let id = if let Some(f) = fid {
        // file_id 0 (the root) is treated as not found (stricter; OpenList never asks).
        f.parse::<u64>().ok().filter(|&i| i != 0).filter(|&i| st.visible_node(c.user, i).is_some())
    } else if let Some(p) = path {
        resolve_path(st, c.user, &p)
    } else {
        return pro_err(990002, "参数错误。");
    };
    let Some(id) = id else { return not_found(st) };
    let n = &st.nodes[&id];
    let (mut files, mut folders, mut bytes) = (0u64, 0u64, n.size);
    if n.is_dir {
        bytes = 0;
        for d in st.descendants(id) {
            let m = &st.nodes[&d];
            if !st.visible(m) {
                continue;
            }
            if m.is_dir {
                folders += 1;
            } else {
                files += 1;
                bytes += m.size;
            }
        }
    }
    let mut paths = vec![json!({"file_id": "0", "file_name": ROOT_NAME})];
    for a in st.ancestors(id) {
        paths.push(json!({"file_id": a.to_string(), "file_name": st.nodes[&a].name}));
    }
    pro_ok(json!({
        "count": files,
        "size": size_format(bytes),
        "size_byte": bytes,
        "folder_count": folders,
        "play_long": 0,
        "show_play_long": 0,
        "ptime": n.ptime.to_string(),
        "utime": n.utime.to_string(),
        "file_name": n.name,
        "pick_code": n.pick_code,
        "sha1": n.sha1.clone().unwrap_or_default(),
        "file_id": n.id.to_string(),
        "is_mark": if n.star { "1" } else { "0" },
        "open_time": 0,
        "file_category": if n.is_dir { "0" } else { "1" },
        "paths": paths,
    }))
}

// ------------------------------------------------------------------------ search (§4.3)

pub(crate) fn search(st: &State, c: &Ctx, r: &Req) -> Resp {
    let Some(value) = r.q("search_value") else {
        return pro_err(990002, "参数错误。");
    };
    let limit =
        r.q("limit").and_then(|l| l.parse::<usize>().ok()).filter(|&l| l > 0).unwrap_or(20).min(st.opts.page_size_max);
    let offset = r.q("offset").and_then(|o| o.parse::<usize>().ok()).unwrap_or(0);
    if offset + limit > 10_000 {
        return pro_err(990002, "参数错误。");
    }
    let cid: i64 = r.q("cid").and_then(|x| x.parse().ok()).unwrap_or(0);
    let fc: u32 = r.q("fc").and_then(|x| x.parse().ok()).unwrap_or(0);
    let suffix = r.q("suffix").map(|s| s.trim_start_matches('.').to_ascii_lowercase());
    let by_sha = crate::util::is_hex40(&value);
    let needle = value.to_lowercase();
    let mut hits: Vec<&Node> = if cid < 0 {
        Vec::new()
    } else {
        st.nodes
            .values()
            .filter(|n| n.user == c.user && st.visible(n))
            .filter(|n| cid == 0 || st.ancestors(n.id).contains(&(cid as u64)))
            .filter(|n| {
                if by_sha {
                    n.sha1.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(&value))
                } else {
                    n.name.to_lowercase().contains(&needle)
                }
            })
            .filter(|n| match fc {
                1 => n.is_dir,
                2 => !n.is_dir,
                _ => true,
            })
            .filter(|n| suffix.as_ref().is_none_or(|s| !n.is_dir && &extension(&n.name) == s))
            .collect()
    };
    hits.sort_by(|a, b| b.ptime.cmp(&a.ptime).then(b.id.cmp(&a.id)));
    let count = hits.len();
    let data: Vec<Value> = hits
        .iter()
        .skip(offset)
        .take(limit)
        .map(|n| {
            json!({
                "file_id": n.id.to_string(),
                "user_id": n.user.to_string(),
                "sha1": n.sha1.clone().unwrap_or_default(),
                "file_name": n.name,
                "file_size": n.size.to_string(),
                "user_ptime": n.ptime.to_string(),
                "user_utime": n.utime.to_string(),
                "pick_code": n.pick_code,
                "parent_id": n.parent.to_string(),
                "area_id": "1",
                "is_private": 0,
                "file_category": if n.is_dir { "0" } else { "1" },
                "ico": if n.is_dir { String::new() } else { extension(&n.name) },
            })
        })
        .collect();
    Resp::json(
        json!({"state": true, "code": 0, "message": "", "data": data, "count": count, "limit": limit, "offset": offset}),
    )
}

// ------------------------------------------------------------------------ download (§5)

pub(crate) fn downurl(st: &mut State, c: &Ctx, r: &Req) -> Resp {
    let Some(pcs) = r.f("pick_code") else {
        return pro_err(990002, "参数错误。");
    };
    let ua = r.header("user-agent").unwrap_or_default();
    let ttl = st.opts.link_ttl.as_millis() as u64;
    let mut data = Map::new();
    for pc in pcs.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some(&id) = st.pick_index.get(pc) else { continue };
        let Some(n) = st.visible_node(c.user, id).cloned() else { continue };
        if n.is_dir {
            // "For a folder, the entry exists but url is falsy" (p115client).
            data.insert(
                n.id.to_string(),
                json!({"file_name": n.name, "file_size": 0, "pick_code": n.pick_code, "sha1": "", "url": false}),
            );
            continue;
        }
        let sha1 = n.sha1.clone().unwrap_or_default();
        let token = rand_hex(32);
        let expires_ms = c.now_ms + ttl;
        let t = expires_ms / 1000;
        // An empty UA is bound to "no UA" unless the knob says f= (ref §5 [unconfirmed]).
        let bound = !(ua.is_empty() && st.opts.empty_ua_unbound);
        let f = if bound { "1" } else { "" };
        let sig = sha1_hex(format!("{token}|{}|{ua}|{t}", n.id).as_bytes())[..32].to_lowercase();
        let base = if st.opts.cdn_urls_use_real_host {
            format!("https://{}", st.opts.cdn_host)
        } else {
            format!("{}/{}", c.inner.base, st.opts.cdn_host)
        };
        let url = format!("{base}/{token}/{}?t={t}&u={}&c=0&f={f}&s={sig}", pct(&n.name), c.user);
        st.links.insert(
            token,
            Link {
                user: c.user,
                fid: n.id,
                sha1: sha1.clone(),
                name: n.name.clone(),
                ua: bound.then(|| ua.clone()),
                expires_ms,
                t,
                sig,
            },
        );
        data.insert(
            n.id.to_string(),
            json!({"file_name": n.name, "file_size": n.size, "pick_code": n.pick_code, "sha1": sha1, "url": {"url": url}}),
        );
    }
    if data.is_empty() && st.opts.downurl_unknown_pick_code == UnknownPickCodeStyle::Code50003 {
        return pro_err(50003, "很抱歉，该文件提取码不存在。");
    }
    pro_ok(Value::Object(data))
}

/// Parse a single `bytes=` range against `len`.  `Ok(None)` = ignore the header (serve
/// everything), `Err(())` = unsatisfiable.
fn parse_range(h: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = h.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return Ok(None) };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else { return Ok(None) };
        if n == 0 || len == 0 {
            return Err(());
        }
        return Ok(Some((len.saturating_sub(n), len - 1)));
    }
    let Ok(start) = a.parse::<u64>() else { return Ok(None) };
    let end = if b.is_empty() {
        len.saturating_sub(1)
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e.min(len.saturating_sub(1)),
            _ => return Ok(None),
        }
    };
    if start >= len {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// The CDN: `/<token>/<name>?t=…&u=…&c=0&f=…&s=…` (ref §5 "Fake server").
pub(crate) fn cdn(inner: &Arc<Inner>, r: &Req, force_expired: bool) -> Resp {
    if r.method != "GET" && r.method != "HEAD" {
        return Resp::text(405, "method not allowed");
    }
    let now_ms = inner.now_ms();
    let st = inner.lock();
    let token = r.path.trim_start_matches('/').split('/').next().unwrap_or("");
    let Some(link) = st.links.get(token) else {
        return Resp::text(403, "Forbidden");
    };
    let t_ok = r.q("t").and_then(|t| t.parse::<u64>().ok()) == Some(link.t);
    let s_ok = r.q("s").as_deref() == Some(link.sig.as_str());
    if !t_ok || !s_ok {
        return Resp::text(403, "Forbidden: bad signature");
    }
    if force_expired || now_ms >= link.expires_ms {
        return Resp::text(403, "Forbidden: link expired");
    }
    if let Some(ua) = &link.ua {
        // Same UA as the downurl request, else 403 (ref §5; 115-web §3.5).
        if r.header("user-agent").unwrap_or_default() != *ua {
            return Resp::text(403, "Forbidden: user agent mismatch");
        }
    }
    let _ = (link.user, link.fid, &link.name);
    let Some(data) = st.blobs.get(&link.sha1).cloned() else {
        return Resp::text(404, "Not Found");
    };
    drop(st);
    let len = data.len() as u64;
    let range = match r.header("range") {
        Some(h) => parse_range(&h, len),
        None => Ok(None),
    };
    let mut resp = match range {
        Err(()) => {
            return Resp::empty(416).header("content-range", format!("bytes */{len}")).header("accept-ranges", "bytes");
        }
        Ok(Some((a, b))) => Resp::new(206, "application/octet-stream", data.slice(a as usize..=b as usize))
            .header("content-range", format!("bytes {a}-{b}/{len}")),
        Ok(None) => Resp::new(200, "application/octet-stream", data),
    };
    resp = resp.header("accept-ranges", "bytes").header("etag", format!("\"{}\"", token));
    if r.method == "HEAD" {
        resp.head_len = Some(resp.body.len() as u64);
    }
    resp
}

// ------------------------------------------------------------------------ mutations (§6)

/// Name checks shared by mkdir and rename: empty → 20001, `" < >` (and `/`, which would
/// make paths ambiguous) → 20003, more than 255 chars → 990002.
pub(crate) fn check_name(name: &str) -> Result<(), Resp> {
    if name.trim().is_empty() {
        return Err(pro_err(20001, "请输入文件名称"));
    }
    if name.contains(['"', '<', '>', '/']) {
        return Err(pro_err(20003, "名称不能包含以下字符：\" < >"));
    }
    if name.chars().count() > 255 {
        return Err(pro_err(990002, "参数错误。"));
    }
    Ok(())
}

pub(crate) fn mkdir(st: &mut State, c: &Ctx, r: &Req) -> Resp {
    let Some(pid) = r.f("pid").and_then(|p| p.parse::<u64>().ok()) else {
        return pro_err(990002, "参数错误。");
    };
    let Some(name) = r.f("file_name") else {
        return pro_err(20001, "请输入文件夹名称");
    };
    if let Err(e) = check_name(&name) {
        return e;
    }
    if !st.is_dir_of(c.user, pid) {
        return pro_err(20009, "父目录不存在。");
    }
    // Any visible sibling of that name counts as "exists" (stricter reading).
    if st.child_named(c.user, pid, &name).is_some() {
        return pro_err(20004, "该目录名称已存在。");
    }
    match st.create_node(c.user, pid, &name, true, None, c.now()) {
        Ok(id) => pro_ok(json!({"file_name": name, "file_id": id.to_string()})),
        Err(code) => pro_err(code, "父目录不存在。"),
    }
}

pub(crate) fn update(st: &mut State, c: &Ctx, r: &Req) -> Resp {
    let Some(id) = r.f("file_id").and_then(|p| p.parse::<u64>().ok()) else {
        return pro_err(990002, "参数错误。");
    };
    let name = r.f("file_name");
    let star = r.f("star");
    if let Some(n) = &name {
        if let Err(e) = check_name(n) {
            return e;
        }
        if n.len() > 255 {
            return pro_err(990002, "参数错误。");
        }
    }
    // Updating a missing/deleted id still "succeeds" (p115client, ref §6.2).
    let Some(node) = st.visible_node(c.user, id).cloned() else {
        return pro_ok(json!({"file_name": name.unwrap_or_default(), "star": star.unwrap_or_else(|| "0".into())}));
    };
    if let Some(n) = &name {
        if node.is_dir && *n != node.name {
            let clash = st.child_named(c.user, node.parent, n).is_some_and(|o| o != id && st.nodes[&o].is_dir);
            if clash {
                return pro_err(20004, "该目录名称已存在。");
            }
        }
    }
    let now = c.now();
    let n = st.nodes.get_mut(&id).unwrap();
    if let Some(newname) = name {
        n.name = newname;
        n.utime = now;
    }
    if let Some(s) = star.as_deref() {
        n.star = s == "1";
    }
    pro_ok(json!({"file_name": n.name, "star": if n.star { "1" } else { "0" }}))
}

/// Is `target` equal to `id` or inside it?
fn inside(st: &State, target: u64, id: u64) -> bool {
    target == id || st.ancestors(target).contains(&id)
}

pub(crate) fn mv(st: &mut State, c: &Ctx, r: &Req) -> Resp {
    let (Some(ids), Some(to)) =
        (r.f("file_ids").and_then(|s| parse_ids(&s)), r.f("to_cid").and_then(|s| s.parse::<u64>().ok()))
    else {
        return pro_err(990002, "参数错误。");
    };
    if ids.is_empty() {
        return pro_err(990002, "参数错误。");
    }
    if !st.is_dir_of(c.user, to) {
        return pro_err(20009, "父目录不存在。");
    }
    for &id in &ids {
        if st.visible_node(c.user, id).is_none() {
            return pro_err(430004, "文件（夹）不存在或已删除。");
        }
        if inside(st, to, id) {
            return pro_err(91002, "不能将文件移动到自身或其子目录下。");
        }
    }
    let now = c.now();
    for id in ids {
        let n = st.nodes.get_mut(&id).unwrap();
        if n.parent != to {
            n.parent = to;
            n.utime = now;
        }
    }
    pro_ok(json!([]))
}

fn copy_tree(st: &mut State, user: u64, id: u64, to: u64, now: u64) {
    let n = st.nodes[&id].clone();
    let pc = st.mint_pick_code(n.is_dir);
    let new_id = st.insert_node(user, to, &n.name, n.is_dir, n.sha1.clone(), n.size, pc, now);
    if n.is_dir {
        let kids: Vec<u64> = st.visible_children(user, id);
        for k in kids {
            copy_tree(st, user, k, new_id, now);
        }
    }
}

pub(crate) fn copy(st: &mut State, c: &Ctx, r: &Req) -> Resp {
    let (Some(ids), Some(to)) =
        (r.f("file_id").and_then(|s| parse_ids(&s)), r.f("pid").and_then(|s| s.parse::<u64>().ok()))
    else {
        return pro_err(990002, "参数错误。");
    };
    if ids.is_empty() {
        return pro_err(990002, "参数错误。");
    }
    // Official key `nodupli`; the sdk's `no_dupli` only behind the knob (ref §6.4).
    let nodupli = r.f("nodupli").or_else(|| if st.opts.accept_no_dupli_alias { r.f("no_dupli") } else { None });
    let nodupli = nodupli.as_deref() == Some("1");
    if !st.is_dir_of(c.user, to) {
        return pro_err(20009, "父目录不存在。");
    }
    let mut total = 0u64;
    for &id in &ids {
        let Some(n) = st.visible_node(c.user, id) else {
            return pro_err(430004, "文件（夹）不存在或已删除。");
        };
        if inside(st, to, id) {
            return pro_err(91002, "不能将文件复制到自身或其子目录下。");
        }
        if nodupli && st.child_named(c.user, to, &n.name).is_some() {
            // Duplicate refused; code not documented [inferred].
            return pro_err(20004, "该文件名称已存在。");
        }
        total += n.size + st.descendants(id).iter().map(|d| st.nodes[d].size).sum::<u64>();
    }
    if st.used_space(c.user) + total > st.opts.total_space {
        return pro_err(91005, "空间不足，复制失败。");
    }
    let now = c.now();
    for id in ids {
        copy_tree(st, c.user, id, to, now);
    }
    pro_ok(json!([]))
}

pub(crate) fn delete(st: &mut State, c: &Ctx, r: &Req) -> Resp {
    let Some(ids) = r.f("file_ids").and_then(|s| parse_ids(&s)).filter(|v| !v.is_empty()) else {
        return pro_err(990002, "参数错误。");
    };
    for &id in &ids {
        match st.nodes.get(&id).filter(|n| n.user == c.user) {
            None => return pro_err(430004, "文件（夹）不存在或已删除。"),
            Some(n) if !st.visible(n) => return pro_err(231011, "文件已删除，请勿重复操作"),
            _ => {}
        }
    }
    let now = c.now();
    for id in ids {
        st.nodes.get_mut(&id).unwrap().recycled = Some(now);
    }
    // data is an array of strings, typically [] (ref §6.5).
    pro_ok(json!([]))
}

// ------------------------------------------------------------------------ recycle bin (§6.6)

pub(crate) fn rb_list(st: &State, c: &Ctx, r: &Req) -> Resp {
    let limit = r.q("limit").and_then(|l| l.parse::<usize>().ok()).filter(|&l| l > 0).unwrap_or(30).min(200);
    let offset = r.q("offset").and_then(|o| o.parse::<usize>().ok()).unwrap_or(0);
    let mut items: Vec<&Node> = st.nodes.values().filter(|n| n.user == c.user && n.recycled.is_some()).collect();
    items.sort_by(|a, b| b.recycled.cmp(&a.recycled).then(b.id.cmp(&a.id)));
    let mut data = Map::new();
    data.insert("offset".into(), json!(offset));
    data.insert("limit".into(), json!(limit));
    data.insert("count".into(), json!(items.len().to_string()));
    data.insert("rb_pass".into(), json!(0));
    for n in items.iter().skip(offset).take(limit) {
        let parent_name = if n.parent == 0 {
            ROOT_NAME.to_string()
        } else {
            st.nodes.get(&n.parent).map(|p| p.name.clone()).unwrap_or_default()
        };
        data.insert(
            n.id.to_string(),
            json!({
                "id": n.id.to_string(),
                "file_name": n.name,
                "type": if n.is_dir { "2" } else { "1" },
                "file_size": n.size.to_string(),
                "dtime": n.recycled.unwrap_or(0).to_string(),
                "thumb_url": "",
                "status": "0",
                "cid": n.parent.to_string(),
                "parent_name": parent_name,
                "pick_code": n.pick_code,
                "isv": 0,
                "ico": if n.is_dir { String::new() } else { extension(&n.name) },
                "sha1": n.sha1.clone().unwrap_or_default(),
            }),
        );
    }
    pro_ok(Value::Object(data))
}

pub(crate) fn rb_revert(st: &mut State, c: &Ctx, r: &Req) -> Resp {
    let Some(ids) = r.f("tid").and_then(|s| parse_ids(&s)).filter(|v| !v.is_empty()) else {
        return pro_err(990002, "参数错误。");
    };
    let mut data = Map::new();
    for id in ids {
        let ok = st.nodes.get(&id).is_some_and(|n| n.user == c.user && n.recycled.is_some());
        if ok {
            let parent = st.nodes[&id].parent;
            let parent_ok = st.is_dir_of(c.user, parent);
            let n = st.nodes.get_mut(&id).unwrap();
            n.recycled = None;
            if !parent_ok {
                n.parent = 0;
            }
            data.insert(id.to_string(), json!({"state": true, "error": "", "errno": 0}));
        } else {
            data.insert(
                id.to_string(),
                json!({"state": false, "error": "文件（夹）不存在或已删除。", "errno": 430004}),
            );
        }
    }
    pro_ok(Value::Object(data))
}

pub(crate) fn rb_del(st: &mut State, c: &Ctx, r: &Req) -> Resp {
    // Omitting tid empties the whole bin (ref §6.6).
    let ids: Vec<u64> = match r.f("tid") {
        Some(s) => match parse_ids(&s) {
            Some(v) => v,
            None => return pro_err(990002, "参数错误。"),
        },
        None => st.nodes.values().filter(|n| n.user == c.user && n.recycled.is_some()).map(|n| n.id).collect(),
    };
    for id in ids {
        if !st.nodes.get(&id).is_some_and(|n| n.user == c.user && n.recycled.is_some()) {
            continue;
        }
        let mut all = st.descendants(id);
        all.push(id);
        for d in all {
            if let Some(n) = st.nodes.remove(&d) {
                st.pick_index.remove(&n.pick_code);
            }
        }
    }
    pro_ok(json!([]))
}
