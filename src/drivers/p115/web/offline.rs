//! Offline download (离线下载 / 云下载, reference §6): add URLs (magnet, http(s), ftp,
//! ed2k) through the m115 `lixianssp` route, list tasks, remove tasks.

use serde_json::Value;

use super::client::{self, fnum, fstr, get, hosts, Body};
use super::P115Drive;
use crate::drivers::http;
use crate::vfs::*;

/// The shared shapes (`vfs::OfflineAdded`, `OfflineTask`, `OfflineTasks`) under the names
/// this module has always used.
pub type AddResult = OfflineAdded;
pub type Task = OfflineTask;
pub type TaskList = OfflineTasks;

pub fn offline_message(code: i64, msg: &str) -> String {
    let what = match code {
        10004 => "invalid link",
        10008 => "task already exists",
        10010 => "offline download quota used up",
        10014 => "the save folder does not exist",
        990005 => "a similar task is already being processed",
        _ => "",
    };
    match (what.is_empty(), msg.is_empty()) {
        (true, true) => format!("errno {code}"),
        (true, false) => format!("{msg} (errno {code})"),
        (false, true) => format!("{what} (errno {code})"),
        (false, false) => format!("{what}: {msg} (errno {code})"),
    }
}

impl P115Drive {
    /// Add URLs as offline tasks saved in folder `wp_path_id` (None: 115's default).
    pub async fn offline_add(&self, urls: &[String], wp_path_id: Option<&str>) -> DriveResult<Vec<AddResult>> {
        if urls.is_empty() {
            return Ok(vec![]);
        }
        let creds = self.api.creds()?;
        let uid = creds.cookie.user_id().map(|u| u.to_string()).unwrap_or_default();
        let ver = self.api.app_ver().await;
        let mut m = serde_json::Map::new();
        m.insert("ac".into(), "add_task_urls".into());
        if let Some(p) = wp_path_id {
            m.insert("wp_path_id".into(), p.into());
        }
        m.insert("app_ver".into(), ver.clone().into());
        m.insert("uid".into(), uid.into());
        for (i, u) in urls.iter().enumerate() {
            m.insert(format!("url[{i}]"), u.trim().into());
        }
        let plain = Value::Object(m).to_string();
        let ua = client::disk_ua(&ver);
        let (outer, _, key) = self
            .api
            .m115_post_raw(
                "offline add",
                hosts::LIXIAN,
                "/lixianssp/?ac=add_task_urls",
                plain.as_bytes(),
                Some(&ua),
                false,
                &[],
            )
            .await?;
        if let Some(e) = client::envelope_error(&outer) {
            if client::is_auth_code(e.code) {
                return Err(self.api.api_error(&e, "offline add"));
            }
            return Err(DriveError::upstream(format!("115 offline add: {}", offline_message(e.code, &e.msg))));
        }
        let dec = self.api.m115_data("offline add", &outer, key)?;
        let v: Value = serde_json::from_slice(&dec)
            .map_err(|e| DriveError::upstream(format!("115 offline add: bad JSON ({e})")))?;
        let results = match get(&v, "result") {
            Some(Value::Array(a)) => a.clone(),
            _ => {
                // A single-URL style answer, or a whole-request error.
                if let Some(e) = client::envelope_error(&v) {
                    return Err(DriveError::upstream(format!("115 offline add: {}", offline_message(e.code, &e.msg))));
                }
                vec![v.clone()]
            }
        };
        Ok(urls
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let r = results.get(i).cloned().unwrap_or(Value::Null);
                let err = client::envelope_error(&r);
                let exists = err.as_ref().is_some_and(|e| e.code == 10008);
                AddResult {
                    url: fstr(&r, "url").unwrap_or_else(|| u.clone()),
                    ok: err.is_none() && !r.is_null(),
                    exists,
                    info_hash: fstr(&r, "info_hash").unwrap_or_default(),
                    name: fstr(&r, "name").unwrap_or_default(),
                    message: match err {
                        Some(e) => offline_message(e.code, &e.msg),
                        None if r.is_null() => "no answer for this URL".into(),
                        None => String::new(),
                    },
                }
            })
            .collect())
    }

    /// All tasks (every page).
    pub async fn offline_list(&self) -> DriveResult<TaskList> {
        let mut out = TaskList::default();
        let mut page = 1i64;
        loop {
            let pq = format!("/lixian/?ct=lixian&ac=task_lists&page={page}");
            let (v, _) = self
                .api
                .call("offline list", reqwest::Method::POST, hosts::LIXIAN, &pq, Body::Form(String::new()), None, true)
                .await?;
            if page == 1 {
                out.quota_total = fnum(&v, "total");
                out.quota_left = fnum(&v, "quota");
            }
            let tasks = match get(&v, "tasks") {
                Some(Value::Array(a)) => a.clone(),
                _ => vec![],
            };
            for t in &tasks {
                out.tasks.push(Task {
                    info_hash: fstr(t, "info_hash").unwrap_or_default(),
                    name: fstr(t, "name").unwrap_or_default(),
                    size: fnum(t, "size").unwrap_or(0).max(0) as u64,
                    url: fstr(t, "url").unwrap_or_default(),
                    status: TaskStatus::from_115(fnum(t, "status").unwrap_or(0)),
                    percent: get(t, "percentDone")
                        .and_then(|p| p.as_f64().or_else(|| p.as_str().and_then(|s| s.parse().ok())))
                        .unwrap_or(0.0),
                });
            }
            let pages = fnum(&v, "page_count").unwrap_or(1);
            if tasks.is_empty() || page >= pages || page >= 1000 {
                break;
            }
            page += 1;
        }
        Ok(out)
    }

    /// Remove tasks by info hash; `delete_files` also deletes what they downloaded.
    pub async fn offline_remove(&self, hashes: &[String], delete_files: bool) -> DriveResult<()> {
        let keys: Vec<String> = (0..hashes.len()).map(|i| format!("hash[{i}]")).collect();
        let mut pairs: Vec<(&str, &str)> =
            keys.iter().map(String::as_str).zip(hashes.iter().map(String::as_str)).collect();
        pairs.push(("flag", if delete_files { "1" } else { "0" }));
        self.api
            .call(
                "offline remove",
                reqwest::Method::POST,
                hosts::LIXIAN,
                "/lixian/?ct=lixian&ac=task_del",
                Body::Form(http::form(&pairs)),
                None,
                false,
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_plain() {
        assert_eq!(offline_message(10008, "任务已存在"), "task already exists: 任务已存在 (errno 10008)");
        assert_eq!(offline_message(10010, ""), "offline download quota used up (errno 10010)");
        assert_eq!(offline_message(1, "x"), "x (errno 1)");
    }
}
