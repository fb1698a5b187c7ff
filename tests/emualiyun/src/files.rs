//! File operations shared by the consumer and open families: listing with markers (ref §4.2),
//! folder creation and name modes (§6.1–6.2), rename (§6.3), move/copy (§6.4), trash/delete and
//! async tasks (§6.5).

use std::cmp::Ordering;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use emukit::Reply;
use serde_json::{json, Value};

use crate::common::{err, invalid, tree_err};
use crate::state::{Api, Node, State, Task, TaskOp, TreeError};

pub(crate) fn owns(st: &State, user: &str, drive: &str) -> bool {
    st.drive_owner(drive).is_some_and(|u| u.user_id == user)
}

pub(crate) fn no_drive(api: Api) -> Reply {
    match api {
        Api::Consumer => err(403, "ForbiddenNoPermission.File", "User not authorized to act on the file."),
        Api::Open => err(403, "ForbiddenDriveNotValid", "The drive is not valid."),
    }
}

// ---------------------------------------------------------------------- listing

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderBy {
    Name,
    NameEnhanced,
    Created,
    Updated,
    Size,
}

pub(crate) struct ListSpec {
    pub order: OrderBy,
    pub desc: bool,
    pub limit: usize,
    pub marker: String,
    pub kind: Option<bool>,
    pub categories: Vec<String>,
}

/// `limit` of a consumer listing (ref §4.2): the default when absent; 0 or above the maximum →
/// 400 `InvalidParameter.Limit` with the service's message.
pub(crate) fn consumer_limit(b: &Value, o: &crate::Options) -> Result<u64, Reply> {
    match crate::common::opt_u64(b, "limit")? {
        None => Ok(o.consumer_list_default),
        Some(l) if l == 0 || l > o.consumer_list_max => Err(err(
            400,
            "InvalidParameter.Limit",
            &format!("The input parameter limit is not valid. limit should be less than {}", o.consumer_list_max),
        )),
        Some(l) => Ok(l),
    }
}

/// `type` (`file` / `folder`, open also `all`) and `category` (comma list) filters.
pub(crate) fn parse_filters(b: &Value, api: Api) -> Result<(Option<bool>, Vec<String>), Reply> {
    let kind = match crate::common::opt_str(b, "type")?.as_deref() {
        None | Some("") => None,
        Some("all") if api == Api::Open => None,
        Some("file") => Some(false),
        Some("folder") => Some(true),
        Some(_) => return Err(invalid("type")),
    };
    let categories = crate::common::opt_str(b, "category")?
        .map(|c| c.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    Ok((kind, categories))
}

pub(crate) fn parse_order(b: &Value, api: Api) -> Result<(OrderBy, bool), Reply> {
    let order = match b.get("order_by").and_then(Value::as_str) {
        None | Some("name") => OrderBy::Name,
        Some("name_enhanced") if api == Api::Open => OrderBy::NameEnhanced,
        Some("created_at") => OrderBy::Created,
        Some("updated_at") => OrderBy::Updated,
        Some("size") => OrderBy::Size,
        Some(_) => return Err(invalid("order_by")),
    };
    if b.get("order_by").is_some_and(|v| !v.is_string() && !v.is_null()) {
        return Err(invalid("order_by"));
    }
    let desc = match b.get("order_direction").and_then(Value::as_str) {
        None | Some("ASC") => false,
        Some("DESC") => true,
        Some(_) => return Err(invalid("order_direction")),
    };
    Ok((order, desc))
}

fn natural(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let (si, sj) = (i, j);
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let na = std::str::from_utf8(&a[si..i]).unwrap_or("").trim_start_matches('0');
            let nb = std::str::from_utf8(&b[sj..j]).unwrap_or("").trim_start_matches('0');
            let o = na.len().cmp(&nb.len()).then(na.cmp(nb));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            let o = a[i].cmp(&b[j]);
            if o != Ordering::Equal {
                return o;
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

/// Sort key of an entry, as carried in markers.
fn key_of(n: &Node, o: OrderBy) -> Value {
    match o {
        OrderBy::Name | OrderBy::NameEnhanced => json!(n.name),
        OrderBy::Created => json!(n.created_ms),
        OrderBy::Updated => json!(n.updated_ms),
        OrderBy::Size => json!(n.size),
    }
}

fn cmp_keys(a: &(Value, String), b: &(Value, String), o: OrderBy) -> Ordering {
    let k = match (&a.0, &b.0) {
        (Value::String(x), Value::String(y)) if o == OrderBy::NameEnhanced => natural(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (x, y) => x.as_i64().unwrap_or(0).cmp(&y.as_i64().unwrap_or(0)),
    };
    k.then_with(|| a.1.cmp(&b.1))
}

/// One page of `nodes` after `spec.marker`; returns the page and the next marker (`""` = last).
pub(crate) fn page<'a>(mut nodes: Vec<&'a Node>, spec: &ListSpec) -> Result<(Vec<&'a Node>, String), Reply> {
    nodes.retain(|n| spec.kind.is_none_or(|d| d == n.is_dir));
    if !spec.categories.is_empty() {
        nodes.retain(|n| !n.is_dir && spec.categories.iter().any(|c| c == crate::common::category_mime(&n.name).0));
    }
    let o = spec.order;
    let mut keyed: Vec<((Value, String), &Node)> =
        nodes.into_iter().map(|n| ((key_of(n, o), n.file_id.clone()), n)).collect();
    keyed.sort_by(|a, b| {
        let c = cmp_keys(&a.0, &b.0, o);
        if spec.desc {
            c.reverse()
        } else {
            c
        }
    });
    let start = if spec.marker.is_empty() {
        0
    } else {
        let raw = URL_SAFE_NO_PAD.decode(spec.marker.as_bytes()).map_err(|_| invalid("marker"))?;
        let m: (Value, String) = serde_json::from_slice(&raw).map_err(|_| invalid("marker"))?;
        keyed
            .iter()
            .position(|(k, _)| {
                let c = cmp_keys(k, &m, o);
                if spec.desc {
                    c == Ordering::Less
                } else {
                    c == Ordering::Greater
                }
            })
            .unwrap_or(keyed.len())
    };
    let end = (start + spec.limit).min(keyed.len());
    let next = if end < keyed.len() && end > start {
        let last = &keyed[end - 1].0;
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json!([last.0, last.1])).expect("json"))
    } else {
        String::new()
    };
    Ok((keyed[start..end].iter().map(|(_, n)| *n).collect(), next))
}

// ---------------------------------------------------------------------- name modes

/// What to do with a same-name entry at the target (ref §6.1).
pub(crate) enum NameOutcome {
    /// Use this name.
    Use(String),
    /// `refuse` on create: answer with the existing entry (`exist: true`).
    Existing(String),
    /// `overwrite`: this entry is replaced.
    Replace(String, String),
}

pub(crate) fn resolve_name(
    st: &State,
    drive: &str,
    parent: &str,
    name: &str,
    mode: &str,
    is_dir: bool,
    api: Api,
) -> Result<NameOutcome, Reply> {
    if !State::valid_name(name) {
        return Err(tree_err(TreeError::BadName, api));
    }
    let existing = st.child_named(drive, parent, name);
    match (mode, existing) {
        (_, None) => Ok(NameOutcome::Use(name.into())),
        ("ignore", Some(_)) => Ok(NameOutcome::Use(name.into())),
        ("auto_rename", Some(_)) => Ok(NameOutcome::Use(st.free_name(drive, parent, name))),
        ("refuse", Some(e)) => Ok(NameOutcome::Existing(e.file_id.clone())),
        ("overwrite", Some(e)) if api == Api::Consumer && !is_dir && !e.is_dir => {
            Ok(NameOutcome::Replace(name.into(), e.file_id.clone()))
        }
        ("overwrite", Some(e)) if api == Api::Consumer => Ok(NameOutcome::Existing(e.file_id.clone())),
        _ => Err(invalid("check_name_mode")),
    }
}

/// `check_name_mode` of a rename or move: `refuse` (the default), `auto_rename` or `ignore`.
pub(crate) fn rename_mode(b: &Value) -> Result<String, Reply> {
    let mode = crate::common::opt_str(b, "check_name_mode")?.unwrap_or_else(|| "refuse".into());
    if matches!(mode.as_str(), "refuse" | "auto_rename" | "ignore") {
        Ok(mode)
    } else {
        Err(invalid("check_name_mode"))
    }
}

pub(crate) fn valid_mode(mode: &str, api: Api) -> bool {
    matches!(mode, "refuse" | "auto_rename" | "ignore") || (mode == "overwrite" && api == Api::Consumer)
}

// ---------------------------------------------------------------------- mutations

pub(crate) fn rename(st: &mut State, id: &str, name: &str, mode: &str, api: Api, now: i64) -> Result<(), Reply> {
    let n = st.nodes.get(id).cloned().ok_or_else(|| tree_err(TreeError::NotFound, api))?;
    if n.trashed || !st.alive(id) {
        return Err(tree_err(TreeError::Trashed, api));
    }
    if n.name == name {
        return Ok(());
    }
    if !State::valid_name(name) {
        return Err(tree_err(TreeError::BadName, api));
    }
    let new_name = match (mode, st.child_named(&n.drive_id, &n.parent, name)) {
        (_, None) | ("ignore", Some(_)) => name.to_string(),
        ("auto_rename", Some(_)) => st.free_name(&n.drive_id, &n.parent, name),
        ("refuse", Some(e)) => return Err(tree_err(TreeError::Exists(e.file_id.clone()), api)),
        _ => return Err(invalid("check_name_mode")),
    };
    let e = st.nodes.get_mut(id).expect("node");
    e.name = new_name;
    e.updated_ms = now;
    Ok(())
}

/// Checks shared by move and copy: the source is live, the target a live folder of its drive
/// and not inside the source, the name valid. Returns the source and the name wanted.
fn check_transfer(
    st: &State,
    id: &str,
    to_parent: &str,
    new_name: Option<&str>,
    api: Api,
) -> Result<(Node, String), Reply> {
    let n = st.nodes.get(id).cloned().ok_or_else(|| tree_err(TreeError::NotFound, api))?;
    if n.trashed || !st.alive(id) {
        return Err(tree_err(TreeError::Trashed, api));
    }
    st.check_folder(&n.drive_id, to_parent).map_err(|e| tree_err(e, api))?;
    if n.is_dir && (to_parent == id || st.is_ancestor(id, to_parent)) {
        return Err(tree_err(TreeError::IntoItself, api));
    }
    let name = new_name.unwrap_or(&n.name).to_string();
    if !State::valid_name(&name) {
        return Err(tree_err(TreeError::BadName, api));
    }
    Ok((n, name))
}

/// Move `id` under `to_parent` (same drive), optionally renamed. Conflicts: refuse (409),
/// auto_rename, or overwrite (a same-name file is deleted).
pub(crate) fn move_node(
    st: &mut State,
    id: &str,
    to_parent: &str,
    new_name: Option<&str>,
    mode: &str,
    api: Api,
    now: i64,
) -> Result<(), Reply> {
    let (n, name) = check_transfer(st, id, to_parent, new_name, api)?;
    let clash = st.child_named(&n.drive_id, to_parent, &name).filter(|e| e.file_id != id).cloned();
    let final_name = match (mode, clash) {
        (_, None) | ("ignore", Some(_)) => name,
        ("auto_rename", Some(_)) => st.free_name(&n.drive_id, to_parent, &name),
        ("overwrite", Some(e)) if !e.is_dir && !n.is_dir => {
            st.remove_subtree(&e.file_id);
            name
        }
        (_, Some(e)) => return Err(tree_err(TreeError::Exists(e.file_id), api)),
    };
    let e = st.nodes.get_mut(id).expect("node");
    e.parent = to_parent.into();
    e.name = final_name;
    e.updated_ms = now;
    Ok(())
}

/// Validate a copy and pick the name; returns (name, new id).
pub(crate) fn prepare_copy(
    st: &State,
    id: &str,
    to_parent: &str,
    new_name: Option<&str>,
    auto_rename: bool,
    api: Api,
) -> Result<(String, String), Reply> {
    let (n, name) = check_transfer(st, id, to_parent, new_name, api)?;
    let name = match st.child_named(&n.drive_id, to_parent, &name) {
        None => name,
        Some(_) if auto_rename => st.free_name(&n.drive_id, to_parent, &name),
        Some(e) => return Err(tree_err(TreeError::Exists(e.file_id.clone()), api)),
    };
    Ok((name, crate::state::new_file_id()))
}

pub(crate) fn new_task(st: &mut State, op: TaskOp, polls: u32, now: i64) -> String {
    let id = crate::state::uuid();
    st.tasks.insert(id.clone(), Task { id: id.clone(), op, polls_left: polls, done: false, created_ms: now });
    id
}

pub(crate) fn apply_op(st: &mut State, op: &TaskOp, now: i64) {
    match op {
        TaskOp::Trash(id) => {
            if let Some(n) = st.nodes.get_mut(id) {
                n.trashed = true;
                n.trashed_ms = now;
            }
        }
        TaskOp::Delete(id) => st.remove_subtree(id),
        TaskOp::Copy { src, new_id, to_drive, to_parent, new_name } => {
            st.copy_subtree(src, to_drive, to_parent, new_name, new_id.clone(), now)
        }
        TaskOp::Clear(drive) => {
            let ids: Vec<String> =
                st.nodes.values().filter(|n| &n.drive_id == drive && n.trashed).map(|n| n.file_id.clone()).collect();
            for id in ids {
                st.remove_subtree(&id);
            }
        }
    }
}

/// Complete every task older than `settle_ms` (the service finishes them without polling).
pub(crate) fn settle_tasks(st: &mut State, now: i64, settle_ms: i64) {
    let due: Vec<String> =
        st.tasks.values().filter(|t| !t.done && now - t.created_ms >= settle_ms).map(|t| t.id.clone()).collect();
    for id in due {
        let op = st.tasks[&id].op.clone();
        apply_op(st, &op, now);
        st.tasks.get_mut(&id).expect("task").done = true;
    }
}

/// `async_task/get`: `Running` for the configured number of polls, then the operation is applied
/// and `Succeed`.
pub(crate) fn poll_task(st: &mut State, id: &str, now: i64) -> Option<&'static str> {
    let t = st.tasks.get_mut(id)?;
    if t.done {
        return Some("Succeed");
    }
    if t.polls_left > 0 {
        t.polls_left -= 1;
        return Some("Running");
    }
    let op = t.op.clone();
    t.done = true;
    apply_op(st, &op, now);
    Some("Succeed")
}
