//! The file object of listings and gets (ref §4.2 consumer, §4.2 open; the families
//! share the fields pandav needs) and its [`Entry`].

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::json;
use crate::vfs::{Entry, Hashes};

/// One file or folder as a listing, get, get_by_path, create or complete answers it.
/// Unknown fields are ignored; missing ones are empty.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FileItem {
    #[serde(default, deserialize_with = "json::string")]
    pub drive_id: String,
    #[serde(default, deserialize_with = "json::string")]
    pub file_id: String,
    #[serde(default, deserialize_with = "json::string")]
    pub parent_file_id: String,
    /// Listings say `name`…
    #[serde(default, deserialize_with = "json::string")]
    pub name: String,
    /// …create answers say `file_name` (ref §6.2).
    #[serde(default, deserialize_with = "json::string")]
    pub file_name: String,
    /// `"file"` or `"folder"`.
    #[serde(default, rename = "type", deserialize_with = "json::string")]
    pub kind: String,
    #[serde(default, deserialize_with = "json::uint")]
    pub size: u64,
    #[serde(default, deserialize_with = "json::string")]
    pub created_at: String,
    #[serde(default, deserialize_with = "json::string")]
    pub updated_at: String,
    /// SHA-1 of the content, upper-case hex (ref §1.4).
    #[serde(default, deserialize_with = "json::string")]
    pub content_hash: String,
    #[serde(default, deserialize_with = "json::string")]
    pub content_hash_name: String,
    /// `available`, `uploading`.
    #[serde(default, deserialize_with = "json::string")]
    pub status: String,
    #[serde(default, deserialize_with = "json::boolean")]
    pub trashed: bool,
}

impl FileItem {
    pub fn is_dir(&self) -> bool {
        self.kind == "folder"
    }

    /// `name`, else `file_name`.
    pub fn name(&self) -> &str {
        if self.name.is_empty() {
            &self.file_name
        } else {
            &self.name
        }
    }

    /// Whether a listing should show it: not trashed, not an unfinished upload.
    pub fn visible(&self) -> bool {
        !self.trashed && (self.status.is_empty() || self.status == "available") && !self.file_id.is_empty()
    }

    /// The lower-case SHA-1, when the item carries one (`content_hash_name` is `sha1` or
    /// absent and the hash is 40 hex digits).
    pub fn sha1(&self) -> Option<String> {
        let named = self.content_hash_name.is_empty() || self.content_hash_name.eq_ignore_ascii_case("sha1");
        let h = self.content_hash.trim();
        (!self.is_dir() && named && h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| h.to_ascii_lowercase())
    }

    /// The entry a mount sees: `updated_at` is the modification time (ref §4.2).
    pub fn to_entry(&self) -> Entry {
        let modified = json::time(&self.updated_at).or_else(|| json::time(&self.created_at)).unwrap_or(UNIX_EPOCH);
        let size = if self.is_dir() { 0 } else { self.size };
        Entry::new(self.file_id.as_str(), self.name(), self.is_dir(), size, modified)
            .with_created(json::time(&self.created_at))
            .with_hashes(Hashes { sha1: self.sha1(), md5: None })
    }

    /// An item for a file pandav just stored, when the answer lacked the details.
    pub fn stored(file_id: &str, parent_file_id: &str, name: &str, size: u64, sha1: &str) -> FileItem {
        let now = json::rfc3339(SystemTime::now());
        FileItem {
            file_id: file_id.into(),
            parent_file_id: parent_file_id.into(),
            name: name.into(),
            kind: "file".into(),
            size,
            created_at: now.clone(),
            updated_at: now,
            content_hash: sha1.to_ascii_uppercase(),
            content_hash_name: "sha1".into(),
            status: "available".into(),
            ..FileItem::default()
        }
    }
}

/// One page of a listing (ref §4.2, §8.3): items and the marker of the next page (`""`
/// on the last).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListPage {
    #[serde(default)]
    pub items: Vec<FileItem>,
    #[serde(default, deserialize_with = "json::string")]
    pub next_marker: String,
}

/// Every item of a listing, page after page: `page(marker)` fetches one (`""` first)
/// until the service answers an empty `next_marker`. A marker seen twice is an error
/// rather than an endless loop.
pub async fn all_pages<F, Fut>(what: &str, mut page: F) -> crate::vfs::DriveResult<Vec<FileItem>>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = crate::vfs::DriveResult<serde_json::Value>>,
{
    let mut out = Vec::new();
    let mut marker = String::new();
    let mut seen = std::collections::HashSet::new();
    loop {
        let p: ListPage = serde_json::from_value(page(marker).await?)
            .map_err(|e| crate::vfs::DriveError::upstream(format!("Aliyun {what}: unexpected answer: {e}")))?;
        out.extend(p.items);
        if p.next_marker.is_empty() {
            return Ok(out);
        }
        if !seen.insert(p.next_marker.clone()) {
            return Err(crate::vfs::DriveError::upstream(format!("Aliyun {what}: the service repeated a page marker")));
        }
        marker = p.next_marker;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_listed_file_and_folder() {
        let f: FileItem = serde_json::from_value(serde_json::json!({
            "drive_id": "74470", "domain_id": "bj29", "file_id": "606f010752c5091c6d674d4fae4664c1f6eef8ad",
            "parent_file_id": "root", "name": "a.mkv", "type": "file", "size": 80806,
            "created_at": "2023-02-17T07:45:43.511Z", "updated_at": "2023-02-18T01:02:03.004Z",
            "content_hash": "090A21896CC276EA75ECAE78AF863A34CB135E1E", "content_hash_name": "sha1",
            "category": "video", "status": "available", "trashed": false, "punish_flag": 0
        }))
        .unwrap();
        let e = f.to_entry();
        assert_eq!((e.name(), e.is_dir, e.size), ("a.mkv", false, 80806));
        assert_eq!(e.hashes().sha1.as_deref(), Some("090a21896cc276ea75ecae78af863a34cb135e1e"));
        assert_eq!(e.modified.duration_since(UNIX_EPOCH).unwrap(), Duration::from_millis(1_676_682_123_004));
        assert_eq!(e.created.unwrap().duration_since(UNIX_EPOCH).unwrap(), Duration::from_millis(1_676_619_943_511));
        assert!(f.visible());
        let d: FileItem = serde_json::from_value(serde_json::json!({
            "drive_id": 74470, "file_id": "aa", "parent_file_id": "root", "name": "dir", "type": "folder",
            "updated_at": "2023-02-17T07:45:43.511Z"
        }))
        .unwrap();
        let e = d.to_entry();
        assert!(e.is_dir && e.size == 0 && e.hashes().sha1.is_none());
        assert_eq!(d.drive_id, "74470");
        let created: FileItem = serde_json::from_value(
            serde_json::json!({"file_id": "bb", "file_name": "new dir", "type": "folder", "exist": true}),
        )
        .unwrap();
        assert_eq!(created.name(), "new dir");
        let uploading: FileItem = serde_json::from_value(
            serde_json::json!({"file_id": "cc", "name": "x", "type": "file", "status": "uploading"}),
        )
        .unwrap();
        assert!(!uploading.visible());
    }

    #[tokio::test]
    async fn pages_follow_the_marker_and_a_repeated_marker_stops() {
        let pages = [
            serde_json::json!({"items": [{"file_id": "a", "name": "a", "type": "file"}], "next_marker": "m1"}),
            serde_json::json!({"items": [{"file_id": "b", "name": "b", "type": "file"}], "next_marker": ""}),
        ];
        let asked = std::sync::Mutex::new(vec![]);
        let items = all_pages("t", |m| {
            asked.lock().unwrap().push(m.clone());
            let p = pages[if m.is_empty() { 0 } else { 1 }].clone();
            async move { Ok(p) }
        })
        .await
        .unwrap();
        assert_eq!(items.iter().map(|i| i.file_id.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(*asked.lock().unwrap(), vec!["".to_string(), "m1".to_string()]);
        let looping = all_pages("t", |_| async { Ok(serde_json::json!({"items": [], "next_marker": "same"})) }).await;
        assert!(looping.is_err());
    }
}
