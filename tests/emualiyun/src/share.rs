//! Share links (family B, ref §8): anonymous info, share token, listing with `x-share-token`,
//! download with the viewer's token, rate limiting (§8.5).

use emukit::util::rfc3339_millis;
use emukit::Reply;
use serde_json::{json, Value};

use crate::common::{
    check_device, consumer_auth, err, file_json, invalid, opt_str, opt_u64, param_flow, req_str, Call, UrlCtx,
};
use crate::files;
use crate::state::{Api, Node, Share, ShareState, ShareToken, State, TokenKind};
use crate::AliFault;

/// Rate limits and the canary switch (ref §8.5).
fn limited(call: &Call, share_id: &str) -> Option<Reply> {
    if matches!(call.custom, Some(AliFault::ParamFlow)) {
        return Some(param_flow(call));
    }
    if call.opts.share_requires_canary && !call.header("x-canary").is_some_and(|c| c.contains("app=share")) {
        return Some(param_flow(call));
    }
    if let Some((rate, burst)) = call.opts.share_rate {
        if call.inner.limiter.check(&format!("share|{share_id}"), rate, burst, call.now).is_err() {
            return Some(param_flow(call));
        }
    }
    None
}

/// The share, if alive (ref §8.1 errors, all 400).
fn live_share(st: &State, id: &str, now: i64) -> Result<Share, Reply> {
    let s =
        st.shares.get(id).ok_or_else(|| err(400, "NotFound.ShareLink", "The resource share_link cannot be found."))?;
    match s.state {
        ShareState::Cancelled => return Err(err(400, "ShareLink.Cancelled", "share_link is cancelled by the creator")),
        ShareState::Forbidden => return Err(err(400, "ShareLink.Forbidden", "share_link is forbidden")),
        ShareState::Ok => {}
    }
    if s.expiration_ms.is_some_and(|e| e <= now) {
        return Err(err(400, "ShareLink.Expired", "share_link is expired"));
    }
    Ok(s.clone())
}

fn share_id_of(call: &Call) -> Result<String, Reply> {
    match opt_str(&call.body, "share_id")? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => {
            call.req.query_param("share_id").filter(|s| !s.is_empty()).ok_or_else(|| crate::common::missing("share_id"))
        }
    }
}

pub(crate) fn anonymous(call: &mut Call) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let id = share_id_of(call)?;
        if let Some(r) = limited(call, &id) {
            return Err(r);
        }
        let st = call.inner.st();
        let s = live_share(&st, &id, call.now)?;
        let owner = st.users.get(&s.user_id).cloned();
        let infos: Vec<Value> = s
            .file_ids
            .iter()
            .filter_map(|f| st.nodes.get(f))
            .map(|n| json!({"type": if n.is_dir { "folder" } else { "file" }, "file_id": n.file_id, "file_name": n.name}))
            .collect();
        let name = infos.first().and_then(|i| i["file_name"].as_str()).unwrap_or("").to_string();
        Ok(Reply::json(&json!({
            "share_name": name, "share_title": name, "display_name": name,
            "creator_id": s.user_id, "creator_name": owner.as_ref().map(|u| u.nick_name.clone()).unwrap_or_default(),
            "creator_phone": "", "avatar": "",
            "expiration": s.expiration_ms.map(rfc3339_millis).unwrap_or_default(),
            "updated_at": rfc3339_millis(s.created_ms), "vip": "non-vip", "has_pwd": !s.pwd.is_empty(),
            "file_count": infos.len(), "file_infos": infos,
        })))
    };
    run().unwrap_or_else(|r| r)
}

pub(crate) fn token(call: &mut Call) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let id = req_str(&call.body, "share_id")?;
        let pwd = opt_str(&call.body, "share_pwd")?.unwrap_or_default();
        if let Some(r) = limited(call, &id) {
            return Err(r);
        }
        let mut st = call.inner.st();
        let s = live_share(&st, &id, call.now)?;
        if !s.pwd.is_empty() && s.pwd != pwd {
            return Err(err(400, "InvalidResource.SharePwd", "The resource share_pwd is not valid."));
        }
        let ttl = call.opts.share_token_ttl.as_millis() as i64;
        let exp = call.now + ttl;
        let t = crate::state::jwt(&json!({"customJson": format!("{{\"share_id\":\"{id}\"}}"), "exp": exp / 1000}));
        st.share_tokens.insert(t.clone(), ShareToken { share_id: id, expires_ms: exp });
        Ok(Reply::json(&json!({"share_token": t, "expire_time": rfc3339_millis(exp), "expires_in": ttl / 1000})))
    };
    run().unwrap_or_else(|r| r)
}

/// Validate `x-share-token` against the `share_id` of the body; returns the live share.
fn share_auth(call: &Call) -> Result<Share, Reply> {
    let invalid_token = || err(401, "ShareLinkTokenInvalid", "ShareLinkToken is invalid. expired");
    let token = call.header("x-share-token").ok_or_else(invalid_token)?;
    let mut st = call.inner.st();
    if matches!(call.custom, Some(AliFault::ShareTokenInvalid)) {
        st.share_tokens.remove(&token);
    }
    let t = st.share_tokens.get(&token).cloned().ok_or_else(invalid_token)?;
    if t.expires_ms <= call.now {
        return Err(invalid_token());
    }
    let id = req_str(&call.body, "share_id")?;
    if id != t.share_id {
        return Err(invalid_token());
    }
    live_share(&st, &id, call.now)
}

/// Is `id` one of the shared entries or below one?
fn in_share(st: &State, s: &Share, id: &str) -> bool {
    s.file_ids.iter().any(|f| f == id || st.is_ancestor(f, id)) && st.alive(id)
}

fn item(call: &Call, st: &State, s: &Share, n: &Node, urls: Option<&UrlCtx>) -> Value {
    let mut v = file_json(call.inner, st, n, Api::Consumer, urls, call.now);
    let o = v.as_object_mut().expect("object");
    o.insert("share_id".into(), json!(s.share_id));
    o.insert("action_list".into(), json!(["preview", "save", "download"]));
    if s.file_ids.contains(&n.file_id) {
        o.insert("parent_file_id".into(), json!("root"));
    }
    for k in ["download_url", "trashed", "crc64_hash", "user_meta", "labels", "sync_flag"] {
        o.remove(k);
    }
    v
}

/// `/adrive/v3/file/list`, `/v2/file/list`, `/adrive/v2/file/list_by_share`, `/v2/file/get`,
/// `/adrive/v2/file/get_by_share` with `x-share-token` (ref §8.3).
pub(crate) fn route(call: &mut Call) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let s = share_auth(call)?;
        if let Some(r) = limited(call, &s.share_id) {
            return Err(r);
        }
        if call.header("authorization").is_some() && call.opts.share_calls_require_signature {
            let auth = consumer_auth(call)?;
            check_device(call, &auth)?;
        }
        let b = &call.body;
        let st = call.inner.st();
        let not_found = || err(404, "NotFound.File", "The resource file cannot be found. file not exist");
        if call.req.path.ends_with("/get") || call.req.path.ends_with("/get_by_share") {
            let id = req_str(b, "file_id")?;
            if !in_share(&st, &s, &id) {
                return Err(not_found());
            }
            return Ok(Reply::json(&item(call, &st, &s, &st.nodes[&id], None)));
        }
        let parent = req_str(b, "parent_file_id")?;
        let limit = files::consumer_limit(b, &call.opts)?;
        let (order, desc) = files::parse_order(b, Api::Consumer)?;
        let marker = opt_str(b, "marker")?.unwrap_or_default();
        let nodes: Vec<&Node> = if parent == "root" {
            s.file_ids.iter().filter_map(|f| st.nodes.get(f)).filter(|n| st.alive(&n.file_id)).collect()
        } else {
            if !in_share(&st, &s, &parent) || !st.nodes[&parent].is_dir {
                return Err(not_found());
            }
            st.children(&s.drive_id, &parent)
        };
        let spec = files::ListSpec { order, desc, limit: limit as usize, marker, kind: None, categories: vec![] };
        let (page, next) = files::page(nodes, &spec)?;
        let items: Vec<Value> = page.into_iter().map(|n| item(call, &st, &s, n, None)).collect();
        Ok(Reply::json(&json!({"items": items, "next_marker": next, "punished_file_count": 0})))
    };
    run().unwrap_or_else(|r| r)
}

/// `/v2/file/get_share_link_download_url` (ref §8.4): the viewer's own token + share token.
pub(crate) fn download_url(call: &mut Call) -> Reply {
    let run = || -> Result<Reply, Reply> {
        let auth = consumer_auth(call)?;
        let s = share_auth(call)?;
        if let Some(r) = limited(call, &s.share_id) {
            return Err(r);
        }
        if call.opts.share_calls_require_signature {
            check_device(call, &auth)?;
        }
        let b = &call.body;
        let id = req_str(b, "file_id")?;
        let drive = req_str(b, "drive_id")?;
        let expire = match opt_u64(b, "expire_sec")? {
            None => call.opts.share_expire_max,
            Some(0) => return Err(invalid("expire_sec")),
            Some(e) if e > call.opts.share_expire_max => {
                return Err(err(
                    400,
                    "InvalidParameter.ExpireSec",
                    &format!("expire_sec should be less or equal than {}", call.opts.share_expire_max),
                ))
            }
            Some(e) => e,
        };
        let st = call.inner.st();
        if drive != s.drive_id || !in_share(&st, &s, &id) {
            return Err(err(404, "NotFound.File", "The resource file cannot be found. file not exist"));
        }
        let n = &st.nodes[&id];
        if n.is_dir {
            return Err(err(400, "InvalidResource.FileTypeFolder", "The resource file type is folder."));
        }
        let bound = call.opts.share_links_referer_bound || auth.kind == TokenKind::Web;
        let u = UrlCtx { user_id: &auth.user_id, referer_bound: bound, expire_sec: expire };
        let (url, _) = crate::data::download_url(call.inner, &st, n, &u, call.now, false, crate::DATA_HOST);
        let (thumb, _) = crate::data::download_url(call.inner, &st, n, &u, call.now, true, crate::DATA_HOST);
        Ok(Reply::json(&json!({"download_url": url, "url": url, "thumbnail": thumb,
            "video_template_list": [], "audio_template_list": []})))
    };
    run().unwrap_or_else(|r| r)
}
