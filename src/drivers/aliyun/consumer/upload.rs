//! Upload through the consumer API (ref §7.4): the common flow
//! (`common::upload::upload`) over `createWithFolders`, `get_upload_url`, `complete` and
//! `delete` (to discard a failed upload). Names are refused, never auto-renamed; a
//! replaced file is swapped in by the mount only once the new one is complete.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use super::client::CREATE_ACCEPTS;
use super::AliyunDrive;
use crate::drivers::aliyun::common::auth::ApiReq;
use crate::drivers::aliyun::common::error::{classify, ApiError, Class, Family};
use crate::drivers::aliyun::common::hosts;
use crate::drivers::aliyun::common::item::FileItem;
use crate::drivers::aliyun::common::upload::{
    self, CreateFile, CreateReply, Created, PartUrl, Source, UploadApi, UploadOptions,
};
use crate::drivers::http::Http;
use crate::vfs::{DriveError, DriveResult, Entry, Hashed, RapidMode, RapidPut, Upload};

#[derive(Deserialize)]
struct UrlsAnswer {
    #[serde(default)]
    part_info_list: Vec<PartUrl>,
}

#[async_trait]
impl UploadApi for AliyunDrive {
    async fn create(&self, req: &CreateFile<'_>) -> DriveResult<CreateReply> {
        let drive = self.drive_id();
        let api = ApiReq::new("/adrive/v2/file/createWithFolders", "create", false).accept(CREATE_ACCEPTS);
        let r = self
            .auth
            .post_with(&self.http, &api, |t| {
                let mut body = req.body(&t.access_token);
                body.insert("drive_id".into(), json!(drive));
                body.insert("check_name_mode".into(), json!("refuse"));
                Value::Object(body)
            })
            .await?;
        if !(200..300).contains(&r.status) {
            return Ok(match classify(Family::Consumer, &ApiError::parse(r.status, &r.body)) {
                Class::PreHashMatched => CreateReply::PreHashMatched,
                _ => CreateReply::InvalidRapidProof,
            });
        }
        let c: Created = serde_json::from_slice(&r.body)
            .map_err(|e| DriveError::upstream(format!("Aliyun create: unexpected answer: {e}")))?;
        Ok(CreateReply::Created(c))
    }

    async fn upload_urls(&self, file_id: &str, upload_id: &str, parts: &[u64]) -> DriveResult<Vec<PartUrl>> {
        let list: Vec<Value> = parts.iter().map(|n| json!({"part_number": n})).collect();
        let body =
            json!({"drive_id": self.drive_id(), "file_id": file_id, "upload_id": upload_id, "part_info_list": list});
        let (_, v) = self.call(ApiReq::new("/v2/file/get_upload_url", "get_upload_url", true), body).await?;
        let a: UrlsAnswer = serde_json::from_value(v)
            .map_err(|e| DriveError::upstream(format!("Aliyun get_upload_url: unexpected answer: {e}")))?;
        Ok(a.part_info_list)
    }

    async fn complete(&self, file_id: &str, upload_id: &str) -> DriveResult<FileItem> {
        let body = json!({"drive_id": self.drive_id(), "file_id": file_id, "upload_id": upload_id});
        let (_, v) = self.call(ApiReq::new("/v2/file/complete", "complete", true), body).await?;
        serde_json::from_value(v).map_err(|e| DriveError::upstream(format!("Aliyun complete: unexpected answer: {e}")))
    }

    async fn discard(&self, file_id: &str) {
        if let Err(e) = self.remove_id(file_id, true).await {
            tracing::warn!(mount = %self.mount, "could not discard a failed upload: {e}");
        }
    }

    fn part_http(&self) -> &Http {
        &self.parts
    }

    fn part_url(&self, p: &PartUrl) -> String {
        if !self.opts.internal_upload {
            return self.auth.ep.rewrite(&p.upload_url);
        }
        if !p.internal_upload_url.is_empty() {
            return self.auth.ep.rewrite(&p.internal_upload_url);
        }
        // OpenList's rewrite of the data host to the internal one (ref §1.1).
        let internal = self
            .auth
            .ep
            .get(hosts::INTERNAL_DATA)
            .map(str::to_string)
            .unwrap_or_else(|| format!("http://{}", hosts::INTERNAL_DATA));
        for data in [hosts::DATA, hosts::DATA_OLD] {
            let bases = [format!("https://{data}"), format!("http://{data}"), self.auth.ep.base(data)];
            for b in bases {
                if let Some(rest) = p.upload_url.strip_prefix(&b) {
                    if rest.starts_with('/') || rest.starts_with('?') {
                        return format!("{internal}{rest}");
                    }
                }
            }
        }
        self.auth.ep.rewrite(&p.upload_url)
    }

    fn complete_after_rapid(&self) -> bool {
        false
    }

    fn access_token(&self) -> String {
        self.auth.tokens().access_token.clone()
    }
}

impl AliyunDrive {
    fn upload_options(&self) -> UploadOptions {
        UploadOptions {
            rapid: self.opts.rapid_upload,
            part_size: self.opts.part_size.unwrap_or(0),
            ..UploadOptions::default()
        }
    }

    /// Store a spooled upload in `parent` as `name` (ref §7.4).
    pub(crate) async fn upload(&self, parent: &Entry, name: &str, up: &Upload) -> DriveResult<FileItem> {
        let src = Source::file(up.path.clone(), up.size, &up.sha1);
        upload::upload(self, parent.id(), name, &src, &self.upload_options()).await
    }
}

/// A copy from another mount: by hash first, the pre-hash and proof read from the
/// source by range (ref §7.4); the body streamed from it only when Aliyun does not know
/// the content and `mode` allows.
#[async_trait]
impl RapidPut for AliyunDrive {
    async fn put_hashed(
        &self,
        parent: &Entry,
        name: &str,
        src: &Hashed,
        mode: RapidMode,
    ) -> DriveResult<Option<Entry>> {
        crate::vfs::mount::check_name(name)?;
        let source = Source { body: std::sync::Arc::clone(&src.body), size: src.size, sha1: src.sha1.clone() };
        let Some(item) = upload::upload_hashed(self, parent.id(), name, &source, &self.upload_options(), mode).await?
        else {
            return Ok(None);
        };
        let e = item.to_entry();
        self.seen(parent.id(), &e);
        Ok(Some(e))
    }
}
