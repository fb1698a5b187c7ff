//! Offline download (云下载, ref §8): add URLs, list tasks, remove a task (reached
//! through `vfs::Offline` by the admin API and `pandav offline`).

use serde_json::Value;

use super::client::{value_bool, value_i64, value_string, value_u64, Req};
use super::Open115;
use crate::vfs::{DriveError, DriveResult, OfflineAdded, OfflineTask};

/// The shared shapes (`vfs::OfflineAdded`, `OfflineTask`) under this module's names.
pub type Added = OfflineAdded;
pub type Task = OfflineTask;

impl Open115 {
    /// Add download tasks for `urls` (HTTP(S), FTP, magnet, ed2k) into folder `dir_id`
    /// (default: the mount's root).
    pub async fn offline_add(&self, urls: &[String], dir_id: Option<&str>) -> DriveResult<Vec<Added>> {
        if urls.is_empty() {
            return Err(DriveError::InvalidInput("no URL to add".into()));
        }
        let dir = dir_id.unwrap_or(&self.options().root_folder_id).to_string();
        let env = self
            .call(Req::post("/open/offline/add_task_urls", vec![("urls", urls.join("\n")), ("wp_path_id", dir)], false))
            .await?;
        let items = env.data.as_array().cloned().unwrap_or_default();
        Ok(items
            .iter()
            .map(|it| Added {
                url: it.get("url").map(value_string).unwrap_or_default(),
                ok: it.get("state").map(value_bool).unwrap_or(false),
                exists: false,
                info_hash: it.get("info_hash").map(value_string).unwrap_or_default(),
                name: String::new(),
                message: it.get("message").map(value_string).unwrap_or_default(),
            })
            .collect())
    }

    /// Every task, all pages.
    pub async fn offline_list(&self) -> DriveResult<Vec<Task>> {
        let mut out = Vec::new();
        let mut page = 1u64;
        loop {
            let env = self.call(Req::get("/open/offline/get_task_list", vec![("page", page.to_string())])).await?;
            let d = env.data;
            let tasks = d.get("tasks").and_then(|t| t.as_array()).cloned().unwrap_or_default();
            for t in &tasks {
                out.push(task_of(t));
            }
            let pages = d.get("page_count").map(value_u64).unwrap_or(1);
            if tasks.is_empty() || page >= pages || page >= 1000 {
                break;
            }
            page += 1;
        }
        Ok(out)
    }

    /// Remove a task; `delete_files` also deletes what it downloaded.
    pub async fn offline_remove(&self, info_hash: &str, delete_files: bool) -> DriveResult<()> {
        self.call(Req::post(
            "/open/offline/del_task",
            vec![
                ("info_hash", info_hash.to_string()),
                ("del_source_file", if delete_files { "1" } else { "0" }.into()),
            ],
            true,
        ))
        .await?;
        Ok(())
    }
}

fn task_of(t: &Value) -> Task {
    let s = |k: &str| t.get(k).map(value_string).unwrap_or_default();
    Task {
        info_hash: s("info_hash"),
        name: s("name"),
        url: s("url"),
        size: t.get("size").map(value_u64).unwrap_or(0),
        percent: t.get("percentDone").and_then(|v| v.as_f64().or_else(|| value_string(v).parse().ok())).unwrap_or(0.0),
        status: crate::vfs::TaskStatus::from_115(t.get("status").map(value_i64).unwrap_or(0)),
    }
}
