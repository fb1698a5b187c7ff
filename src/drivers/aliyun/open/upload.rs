//! Upload (ref §7.5) through common's flow (`common::upload`): `openFile/create` with the
//! pre-hash, then the whole SHA-1 + `proof_code` v1 (computed with each attempt's own
//! access token, §7.2) for rapid upload — 0 body bytes when Aliyun knows the content —
//! else the presigned part URLs (`getUploadUrl` when they expire), then
//! `openFile/complete`, also after a rapid upload (§7.5). A failed upload deletes what it
//! created, for good (not into the recycle bin).

use async_trait::async_trait;
use serde_json::{json, Value};

use super::client::Class;
use super::{entry_of_item, text, AliyunOpen};
use crate::drivers::aliyun::common::error::Class as ErrClass;
use crate::drivers::aliyun::common::error::{classify, ApiError, Family};
use crate::drivers::aliyun::common::item::FileItem;
use crate::drivers::aliyun::common::json;
use crate::drivers::aliyun::common::upload::{
    self, CreateFile, CreateReply, Created, PartUrl, Source, UploadApi, UploadOptions,
};
use crate::drivers::http::Http;
use crate::vfs::{DriveError, DriveResult, Entry, Hashed, RapidMode, RapidPut, Upload};

/// One upload's view of the driver: the Open API's create / getUploadUrl / complete.
struct OpenUpload<'a> {
    d: &'a AliyunOpen,
    drive_id: String,
    /// `local_modified_at` (§7.5), when the client said.
    modified: Option<String>,
}

#[async_trait]
impl UploadApi for OpenUpload<'_> {
    async fn create(&self, req: &CreateFile<'_>) -> DriveResult<CreateReply> {
        let accept = [ErrClass::PreHashMatched, ErrClass::InvalidRapidProof];
        let r = self
            .d
            .api
            .send(
                Class::Other,
                "/adrive/v1.0/openFile/create",
                |tok| {
                    // The proof inside is computed with this attempt's token (§7.2).
                    let mut m = req.body(&tok.access_token);
                    m.insert("drive_id".into(), json!(self.drive_id));
                    // A taken name is an error, not a second file or "name(1)" (§6.1).
                    m.insert("check_name_mode".into(), json!("refuse"));
                    if let Some(t) = &self.modified {
                        m.insert("local_modified_at".into(), json!(t));
                    }
                    Value::Object(m)
                },
                false,
                &accept,
            )
            .await?;
        if (200..300).contains(&r.status) {
            let c: Created = serde_json::from_slice(&r.body)
                .map_err(|_| DriveError::upstream("Aliyun Drive Open openFile/create: the answer is not JSON"))?;
            return Ok(CreateReply::Created(c));
        }
        Ok(match classify(Family::Open, &ApiError::parse(r.status, &r.body)) {
            ErrClass::PreHashMatched => CreateReply::PreHashMatched,
            _ => CreateReply::InvalidRapidProof,
        })
    }

    async fn upload_urls(&self, file_id: &str, upload_id: &str, parts: &[u64]) -> DriveResult<Vec<PartUrl>> {
        let list: Vec<Value> = parts.iter().map(|n| json!({"part_number": n})).collect();
        let body =
            json!({"drive_id": self.drive_id, "file_id": file_id, "upload_id": upload_id, "part_info_list": list});
        let v = self.d.api.post(Class::Other, "/adrive/v1.0/openFile/getUploadUrl", &body, true).await?;
        let parts = v.get("part_info_list").cloned().unwrap_or(Value::Array(vec![]));
        serde_json::from_value(parts)
            .map_err(|_| DriveError::upstream("Aliyun Drive Open openFile/getUploadUrl: unreadable part_info_list"))
    }

    async fn complete(&self, file_id: &str, upload_id: &str) -> DriveResult<FileItem> {
        let body = json!({"drive_id": self.drive_id, "file_id": file_id, "upload_id": upload_id});
        // Complete is idempotent (§7.6 rule 4): a retry after a lost answer is safe.
        let v = self.d.api.post(Class::Other, "/adrive/v1.0/openFile/complete", &body, true).await?;
        serde_json::from_value(v)
            .map_err(|_| DriveError::upstream("Aliyun Drive Open openFile/complete: unreadable file object"))
    }

    async fn discard(&self, file_id: &str) {
        let body = json!({"drive_id": self.drive_id, "file_id": file_id});
        let r = async {
            let v = self.d.api.post(Class::Other, "/adrive/v1.0/openFile/delete", &body, true).await?;
            self.d.wait_task(&text(v.get("async_task_id"))).await
        }
        .await;
        match r {
            Ok(()) | Err(DriveError::NotFound) => {}
            Err(e) => tracing::warn!("Aliyun Drive Open: could not remove a failed upload ({file_id}): {e}"),
        }
    }

    fn part_http(&self) -> &Http {
        &self.d.parts
    }

    fn part_url(&self, part: &PartUrl) -> String {
        self.d.api.ep.rewrite(&part.upload_url)
    }

    fn complete_after_rapid(&self) -> bool {
        true
    }

    fn access_token(&self) -> String {
        self.d.tokens().access_token.clone()
    }
}

impl AliyunOpen {
    /// Store `up` as `parent/name` (a new entry; replacing is the mount's business).
    pub(crate) async fn upload(&self, parent: &Entry, name: &str, up: &Upload) -> DriveResult<Entry> {
        let src = Source::file(up.path.clone(), up.size, &up.sha1);
        self.store(parent, name, &src, up.mtime, RapidMode::OrUpload)
            .await?
            .ok_or_else(|| DriveError::upstream("Aliyun Drive Open upload: no file was made"))
    }

    /// Store `src` as `parent/name`: by hash first, the body only when Aliyun does not
    /// know the content and `mode` allows (`None` otherwise, nothing left behind).
    async fn store(
        &self,
        parent: &Entry,
        name: &str,
        src: &Source,
        mtime: Option<std::time::SystemTime>,
        mode: RapidMode,
    ) -> DriveResult<Option<Entry>> {
        let api = OpenUpload { d: self, drive_id: self.drive_id().await?, modified: mtime.map(json::rfc3339) };
        let opts = UploadOptions { rapid: self.opts.rapid_upload, ..UploadOptions::default() };
        let Some(item) = upload::upload_hashed(&api, parent.id(), name, src, &opts, mode).await? else {
            return Ok(None);
        };
        let mut e = entry_of_item(&item, parent.extra());
        // The name asked for (a complete answer may spell it `file_name` or not at all).
        e.set_name(name);
        e.set_extra(parent.extra().map(|p| format!("{p}/{name}")));
        if e.size == 0 && src.size > 0 {
            e.size = src.size;
        }
        if e.hashes().sha1.is_none() && !src.sha1.is_empty() {
            e.hashes_mut().sha1 = Some(src.sha1.to_ascii_lowercase());
        }
        Ok(Some(e))
    }
}

/// A copy from another mount: by hash first, the pre-hash and proof read from the
/// source by range (§7.5); the body streamed from it only when Aliyun does not know
/// the content and `mode` allows.
#[async_trait]
impl RapidPut for AliyunOpen {
    async fn put_hashed(
        &self,
        parent: &Entry,
        name: &str,
        src: &Hashed,
        mode: RapidMode,
    ) -> DriveResult<Option<Entry>> {
        crate::vfs::mount::check_name(name)?;
        let source = Source { body: std::sync::Arc::clone(&src.body), size: src.size, sha1: src.sha1.clone() };
        self.store(parent, name, &source, src.mtime, mode).await
    }
}
