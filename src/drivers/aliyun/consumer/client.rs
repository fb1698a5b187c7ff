//! Consumer API calls (ref §4–§6) over the kit's loop (`ConsumerAuth::post`): listing
//! with marker paging, get / get_by_path, download URLs, folders, rename, move, copy,
//! trash / delete with async tasks, quota.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use super::AliyunDrive;
use crate::drivers::aliyun::common::auth::{self, ApiReq};
use crate::drivers::aliyun::common::error::Class;
use crate::drivers::aliyun::common::item::{self, FileItem};
use crate::drivers::aliyun::common::{self as common, json};
use crate::vfs::{DriveError, DriveResult, Entry, Link, Quota};

/// Listing page size: the documented maximum (ref §4.2: above 200 → 400
/// `InvalidParameter.Limit`).
pub const PAGE: u64 = 200;

/// Links are asked for with the longest lifetime the service grants (ref §5.1).
pub const LINK_EXPIRE_SEC: u64 = 14_400;

/// Above this many entries (more than one page), a folder's children are looked up by
/// path rather than by listing it again.
const BIG_FOLDER: usize = PAGE as usize;

/// Longest wait for an async task (a big folder's trash or copy, ref §6.5).
const TASK_DEADLINE: Duration = Duration::from_secs(600);

#[derive(Deserialize)]
struct UrlAnswer {
    #[serde(default, deserialize_with = "json::string")]
    url: String,
    #[serde(default, deserialize_with = "json::string")]
    expiration: String,
}

#[derive(Deserialize, Default)]
struct TaskRef {
    #[serde(default, deserialize_with = "json::string")]
    async_task_id: String,
    #[serde(default, deserialize_with = "json::string")]
    file_id: String,
}

impl AliyunDrive {
    /// One consumer call; the answer's JSON (`Null` for an empty body).
    pub(crate) async fn call(&self, req: ApiReq<'_>, body: Value) -> DriveResult<(u16, Value)> {
        let r = self.auth.post(&self.http, &req, &body).await?;
        let v = if r.body.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&r.body).map_err(|_| {
                DriveError::upstream(format!("Aliyun {}: HTTP {}, the answer is not JSON", req.what, r.status))
            })?
        };
        Ok((r.status, v))
    }

    fn drive(&self) -> String {
        self.drive_id()
    }

    /// Remember where an entry is (for moves and get_by_path).
    pub(crate) fn seen(&self, parent_id: &str, e: &Entry) {
        self.parents.insert(e.id().to_string(), parent_id.to_string());
        if let Some(p) = self.paths.get(parent_id).map(|p| p.clone()) {
            self.paths.insert(e.id().to_string(), format!("{p}/{}", e.name()));
        }
    }

    /// Every visible child of folder `id`, all pages (ref §4.2).
    pub async fn list_id(&self, id: &str) -> DriveResult<Vec<Entry>> {
        let items = item::all_pages("list", |marker| async move {
            let body = json!({
                "drive_id": self.drive(),
                "parent_file_id": id,
                "limit": PAGE,
                "marker": marker,
                "all": false,
                "fields": "*",
                "order_by": self.opts.order_by,
                "order_direction": self.opts.order_direction,
            });
            Ok(self.call(ApiReq::new("/adrive/v3/file/list", "list", true), body).await?.1)
        })
        .await?;
        let out: Vec<Entry> = items.iter().filter(|i| i.visible()).map(FileItem::to_entry).collect();
        for e in &out {
            self.seen(id, e);
        }
        self.sizes.insert(id.to_string(), out.len());
        Ok(out)
    }

    /// One file by id (ref §4.3).
    pub async fn get_file(&self, id: &str) -> DriveResult<FileItem> {
        let body = json!({"drive_id": self.drive(), "file_id": id, "fields": "*"});
        let (_, v) = self.call(ApiReq::new("/v2/file/get", "get", true), body).await?;
        let it: FileItem = serde_json::from_value(v)
            .map_err(|e| DriveError::upstream(format!("Aliyun get: unexpected answer: {e}")))?;
        if !it.visible() {
            return Err(DriveError::NotFound);
        }
        Ok(it)
    }

    /// The path of a folder from the drive's root, by walking its parents (ref §4.3).
    pub(crate) async fn path_of_folder(&self, item: &FileItem) -> Option<String> {
        let mut names = vec![item.name().to_string()];
        let mut parent = item.parent_file_id.clone();
        for _ in 0..64 {
            if parent == "root" || parent.is_empty() {
                names.reverse();
                return Some(format!("/{}", names.join("/")));
            }
            let p = self.get_file(&parent).await.ok()?;
            names.push(p.name().to_string());
            parent = p.parent_file_id.clone();
        }
        None
    }

    /// `get_by_path` (ref §4.4): the item, `None` when the service says 404 (confirmed
    /// for missing paths), an error otherwise.
    async fn get_by_path(&self, path: &str) -> DriveResult<Option<FileItem>> {
        let body = json!({"drive_id": self.drive(), "file_path": path});
        let req = ApiReq::new("/v2/file/get_by_path", "get_by_path", true);
        match self.call(req, body).await {
            Ok((_, v)) => Ok(serde_json::from_value::<FileItem>(v).ok().filter(|i| i.visible())),
            Err(DriveError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A child by name through `get_by_path`, where that saves calls: in a folder whose
    /// last listing took more than one page (an upload into a big folder checks its name
    /// with one call instead of relisting it). Elsewhere, and for paths get_by_path
    /// cannot take (whitespace in a name, ref §4.4: clients fall back to listing), and on
    /// any error but a 404, `Unsupported`: the mount lists the folder and caches that.
    pub async fn lookup_child(&self, parent: &Entry, name: &str) -> DriveResult<Option<Entry>> {
        let unsupported = Err(DriveError::Unsupported("a lookup here (listing instead)"));
        let big = self.sizes.get(parent.id()).is_some_and(|n| *n > BIG_FOLDER);
        let Some(path) = self.paths.get(parent.id()).map(|p| format!("{}/{name}", p.as_str())) else {
            return unsupported;
        };
        if !big || path.chars().any(char::is_whitespace) {
            return unsupported;
        }
        match self.get_by_path(&path).await {
            Ok(None) => Ok(None),
            // The service's idea of the parent and name must agree with ours.
            Ok(Some(it)) if it.parent_file_id == parent.id() && it.name() == name => {
                let e = it.to_entry();
                self.seen(parent.id(), &e);
                Ok(Some(e))
            }
            Ok(Some(_)) => unsupported,
            Err(e @ DriveError::AuthLost(_)) => Err(e),
            Err(e) => {
                tracing::debug!(mount = %self.mount, "get_by_path failed ({e}); listing instead");
                unsupported
            }
        }
    }

    /// A download link (ref §5.1), with the Referer when the URL is bound to it (§2.2).
    pub async fn download_link(&self, id: &str) -> DriveResult<Link> {
        let body = json!({"drive_id": self.drive(), "file_id": id, "expire_sec": LINK_EXPIRE_SEC});
        let (_, v) = self.call(ApiReq::new("/v2/file/get_download_url", "get_download_url", true), body).await?;
        let a: UrlAnswer =
            serde_json::from_value(v).unwrap_or(UrlAnswer { url: String::new(), expiration: String::new() });
        if a.url.is_empty() {
            // Live photos (.livp) answer streams instead of one URL (ref §5.1).
            return Err(DriveError::Unsupported("files without a single download URL (live photos)"));
        }
        // No later than our own clock says (a service clock ahead of ours would keep a
        // dead link in the cache).
        let ours = std::time::SystemTime::now() + Duration::from_secs(LINK_EXPIRE_SEC);
        let expires =
            json::time(&a.expiration).or_else(|| common::url_expiry(&a.url)).map(|t| t.min(ours)).or(Some(ours));
        Ok(common::link(self.auth.ep.rewrite(&a.url), expires))
    }

    /// `createWithFolders` a folder, refusing a taken name (ref §6.2, §6.1).
    pub async fn create_folder(&self, parent: &Entry, name: &str) -> DriveResult<Entry> {
        let body = json!({
            "drive_id": self.drive(), "parent_file_id": parent.id(), "name": name,
            "type": "folder", "check_name_mode": "refuse",
        });
        let (_, v) = self.call(ApiReq::new("/adrive/v2/file/createWithFolders", "mkdir", false), body).await?;
        if v.get("exist").map(json::bool_of).unwrap_or(false) {
            return Err(DriveError::Exists);
        }
        let id = v.get("file_id").map(json::string_of).unwrap_or_default();
        if id.is_empty() {
            return Err(DriveError::upstream("Aliyun mkdir answered without a file_id"));
        }
        let now = super::now();
        let mut e = Entry::dir(id, name, now);
        e.created = Some(now);
        self.seen(parent.id(), &e);
        self.sizes.insert(e.id().to_string(), 0);
        Ok(e)
    }

    /// The parent of an entry: from listings, else `/v2/file/get`.
    async fn parent_of(&self, id: &str) -> DriveResult<String> {
        if let Some(p) = self.parents.get(id) {
            return Ok(p.clone());
        }
        Ok(self.get_file(id).await?.parent_file_id)
    }

    async fn rename(&self, id: &str, name: &str) -> DriveResult<()> {
        let body = json!({"drive_id": self.drive(), "file_id": id, "name": name, "check_name_mode": "refuse"});
        self.call(ApiReq::new("/v3/file/update", "rename", false), body).await?;
        Ok(())
    }

    /// Rename and/or move (ref §6.3, §6.4): a rename in place is `update`; a move takes
    /// the new name along (`new_name`). A taken name is `Exists` (409 AlreadyExist.File).
    pub async fn move_entry(&self, entry: &Entry, to: &Entry, name: &str) -> DriveResult<Entry> {
        let from = self.parent_of(entry.id()).await?;
        if from == to.id() {
            if name != entry.name() {
                self.rename(entry.id(), name).await?;
            }
        } else {
            let drive = self.drive();
            let mut body = json!({
                "drive_id": drive, "file_id": entry.id(), "to_drive_id": drive,
                "to_parent_file_id": to.id(), "check_name_mode": "refuse",
            });
            if name != entry.name() {
                body["new_name"] = json!(name);
            }
            let (_, v) = self.call(ApiReq::new("/v2/file/move", "move", false), body).await?;
            let t: TaskRef = serde_json::from_value(v).unwrap_or_default();
            self.wait_task(&t.async_task_id, "move").await?;
        }
        let mut e = entry.clone();
        e.set_name(name);
        if entry.is_dir {
            // Paths below it changed.
            self.forget_below(entry.id());
        }
        self.seen(to.id(), &e);
        Ok(e)
    }

    /// Forget the remembered paths of everything (they are rebuilt by listings).
    fn forget_below(&self, _id: &str) {
        let root = self.opts.root_folder_id.clone();
        self.paths.retain(|k, _| *k == root || k == "root");
    }

    /// Copy into `to` as `name` (ref §6.4): the name must be free; files copy at once
    /// (201), folders through an async task (202).
    pub async fn copy_entry(&self, entry: &Entry, to: &Entry, name: &str) -> DriveResult<Entry> {
        let taken = match self.lookup_child(to, name).await {
            Err(DriveError::Unsupported(_)) => self.list_id(to.id()).await?.iter().any(|e| e.name() == name),
            r => r?.is_some(),
        };
        if taken {
            return Err(DriveError::Exists);
        }
        let drive = self.drive();
        let body = json!({
            "drive_id": drive, "file_id": entry.id(), "to_drive_id": drive,
            "to_parent_file_id": to.id(), "new_name": name, "auto_rename": false,
        });
        let (_, v) = self.call(ApiReq::new("/v2/file/copy", "copy", false), body).await?;
        let t: TaskRef = serde_json::from_value(v).unwrap_or_default();
        self.wait_task(&t.async_task_id, "copy").await?;
        if !t.file_id.is_empty() && t.file_id != entry.id() {
            if let Ok(it) = self.get_file(&t.file_id).await {
                let e = it.to_entry();
                self.seen(to.id(), &e);
                return Ok(e);
            }
        }
        self.list_id(to.id())
            .await?
            .into_iter()
            .find(|e| e.name() == name)
            .ok_or_else(|| DriveError::upstream("Aliyun copy: the copy did not show up in the target folder"))
    }

    /// Trash or delete (ref §6.5); waits for the task of a folder. Already gone is done.
    pub async fn remove_id(&self, id: &str, permanent: bool) -> DriveResult<()> {
        let (path, what) = if permanent { ("/v2/file/delete", "delete") } else { ("/v2/recyclebin/trash", "trash") };
        let body = json!({"drive_id": self.drive(), "file_id": id});
        match self.call(ApiReq::new(path, what, true), body).await {
            Ok((_, v)) => {
                let t: TaskRef = serde_json::from_value(v).unwrap_or_default();
                self.wait_task(&t.async_task_id, what).await?;
            }
            Err(DriveError::NotFound) => {}
            Err(e) => return Err(e),
        }
        self.parents.remove(id);
        self.paths.remove(id);
        self.sizes.remove(id);
        Ok(())
    }

    /// Poll `/v2/async_task/get` until the task succeeded (ref §6.5). No task: done.
    pub(crate) async fn wait_task(&self, task: &str, what: &str) -> DriveResult<()> {
        if task.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        for n in 0u32.. {
            let body = json!({"async_task_id": task});
            let (_, v) = self.call(ApiReq::new("/v2/async_task/get", "async_task/get", true), body).await?;
            let state = ["state", "status"]
                .iter()
                .map(|k| v.get(*k).map(json::string_of).unwrap_or_default())
                .find(|s| !s.is_empty())
                .unwrap_or_default();
            match state.as_str() {
                "Succeed" | "Success" | "Finished" => return Ok(()),
                "Failed" | "Fail" | "Error" => {
                    return Err(DriveError::upstream(format!("Aliyun {what}: the task failed")));
                }
                _ => {}
            }
            if started.elapsed() > TASK_DEADLINE {
                return Err(DriveError::upstream(format!("Aliyun {what}: the task is still running after 10 minutes")));
            }
            tokio::time::sleep(auth::task_poll_wait(n)).await;
        }
        unreachable!()
    }

    /// `driveCapacityDetails` (ref §4.1).
    pub async fn capacity(&self) -> DriveResult<Quota> {
        let (_, v) = self
            .call(ApiReq::new("/adrive/v1/user/driveCapacityDetails", "driveCapacityDetails", true), json!({}))
            .await?;
        let n = |k: &str| v.get(k).map(json::u64_of);
        let total = n("drive_total_size").filter(|t| *t > 0);
        Ok(Quota { used: n("drive_used_size").unwrap_or(0), total })
    }
}

/// Classes a create call hands back (ref §7.4).
pub const CREATE_ACCEPTS: &[Class] = &[Class::PreHashMatched, Class::InvalidRapidProof];
