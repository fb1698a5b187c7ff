//! Uploads as both families do them (ref §7.4 consumer, §7.5 Open): a pre-hash probe,
//! the whole-file hash with a proof for rapid upload, otherwise presigned part URLs
//! filled in order and `complete`. A driver implements [`UploadApi`] (its create,
//! get-upload-URL, complete and discard calls) and calls [`upload`].
//!
//! Part PUTs follow the presign (ref §7.4 step 4): the raw bytes of the part, **no
//! `Content-Type`** and no auth headers, one part after the other. An expired URL answers
//! 403 (`<Code>AccessDenied</Code><Message>Request has expired.</Message>`, step 5): the
//! URLs of the remaining parts are fetched again and the part is sent once more. URLs are
//! also renewed before they get old (OpenList renews after 50 minutes; they live about an
//! hour). A part the service already has answers 409 `PartAlreadyExist`: done.
//!
//! A failed upload leaves nothing behind: the created file is discarded.
//!
//! The bytes come from a [`ByteSource`]: a PUT's spool, or another mount's file for a
//! copy between mounts (`vfs::RapidPut`). The pre-hash and the proof are read from it by
//! range, and nothing else while Aliyun decides, so a copy of content Aliyun knows reads
//! 1 KiB and 8 bytes of the source and sends no body.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::{ApiError, Family};
use super::hash::{self, PartPlan};
use super::item::FileItem;
use super::json;
use crate::drivers::http::{Http, Response, Verdict};
use crate::drivers::source::Feed;
use crate::vfs::{ByteSource, DriveError, DriveResult, Hint, RapidMode};

/// Renew part URLs once they are this old (OpenList: 50 minutes, ref §7.5).
pub const PART_URL_RENEW: Duration = Duration::from_secs(50 * 60);

/// The file being uploaded: its size and SHA-1 known, its bytes readable by range.
#[derive(Clone)]
pub struct Source {
    pub body: Arc<dyn ByteSource>,
    pub size: u64,
    /// SHA-1 of the whole file, any case.
    pub sha1: String,
}

impl Source {
    /// A file on disk (a PUT's spool).
    pub fn file(path: impl Into<std::path::PathBuf>, size: u64, sha1: &str) -> Source {
        let body = Arc::new(crate::vfs::transfer::FileSource::new(path, size));
        Source { body, size, sha1: sha1.to_string() }
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("size", &self.size).field("sha1", &self.sha1).finish_non_exhaustive()
    }
}

/// A `proof_code` read ahead for one access token (ref §7.2: the proof belongs to the
/// token of the request that carries it).
#[derive(Clone)]
pub struct Proof {
    token: String,
    code: String,
}

impl std::fmt::Debug for Proof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret.
        f.debug_struct("Proof").field("code", &self.code).finish_non_exhaustive()
    }
}

impl Proof {
    /// The proof of `src` for `token`: at most 8 bytes read from the source.
    pub async fn read(src: &Source, token: &str) -> DriveResult<Proof> {
        let (a, b) = hash::proof_range(token, src.size);
        let bytes = if b > a { src.body.range(a, b).await? } else { bytes::Bytes::new() };
        Ok(Proof {
            token: token.to_string(),
            code: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes),
        })
    }
}

/// What a create request says about the content (ref §7.4 steps 1–2).
#[derive(Debug, Clone)]
pub enum HashField {
    /// The first-KiB probe: `pre_hash`.
    PreHash(String),
    /// `content_hash` + `proof_code` v1, read for the token the attempt is expected to
    /// carry.
    Content { content_hash: String, proof: Proof },
    /// Rapid upload off: `content_hash_name: "none"` (ref §7.4, AList's non-rapid mode).
    None,
}

/// One create call's content (the family adds `drive_id`, `check_name_mode` and its own
/// extras to [`CreateFile::body`]).
#[derive(Debug, Clone)]
pub struct CreateFile<'a> {
    pub parent_file_id: &'a str,
    pub name: &'a str,
    pub size: u64,
    /// 1-based part numbers (`part_info_list`).
    pub parts: &'a [u64],
    pub hash: &'a HashField,
}

impl CreateFile<'_> {
    /// The fields both families send, for the attempt authorized by `access_token`:
    /// `parent_file_id, name, type, size, part_info_list` and the hash fields. The proof
    /// must be that token's (ref §7.2: the token of *this* request); if the token changed
    /// since it was read, the proof is sent empty, Aliyun refuses it and [`upload`] reads
    /// it again for the new token.
    pub fn body(&self, access_token: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("parent_file_id".into(), json!(self.parent_file_id));
        m.insert("name".into(), json!(self.name));
        m.insert("type".into(), json!("file"));
        m.insert("size".into(), json!(self.size));
        let parts: Vec<Value> = self.parts.iter().map(|n| json!({"part_number": n})).collect();
        m.insert("part_info_list".into(), Value::Array(parts));
        match self.hash {
            HashField::PreHash(h) => {
                m.insert("pre_hash".into(), json!(h));
            }
            HashField::Content { content_hash, proof } => {
                let proof = if proof.token == access_token {
                    proof.code.clone()
                } else {
                    tracing::debug!("the access token changed since the proof was read: sending none");
                    String::new()
                };
                m.insert("content_hash".into(), json!(content_hash.to_ascii_uppercase()));
                m.insert("content_hash_name".into(), json!("sha1"));
                m.insert("proof_code".into(), json!(proof));
                m.insert("proof_version".into(), json!("v1"));
            }
            HashField::None => {
                m.insert("content_hash_name".into(), json!("none"));
                m.insert("proof_version".into(), json!("v1"));
            }
        }
        m
    }
}

/// A presigned part URL (`part_info_list` item of create / get_upload_url answers).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PartUrl {
    #[serde(default, deserialize_with = "json::uint")]
    pub part_number: u64,
    #[serde(default, deserialize_with = "json::string")]
    pub upload_url: String,
    /// The Beijing-internal variant (consumer create answers, ref §7.4 step 3).
    #[serde(default, deserialize_with = "json::string")]
    pub internal_upload_url: String,
}

/// A create answer (ref §7.4 step 3, §7.5).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Created {
    #[serde(default, deserialize_with = "json::string")]
    pub file_id: String,
    #[serde(default, deserialize_with = "json::string")]
    pub file_name: String,
    #[serde(default, deserialize_with = "json::string")]
    pub parent_file_id: String,
    #[serde(default, deserialize_with = "json::string")]
    pub upload_id: String,
    #[serde(default, deserialize_with = "json::boolean")]
    pub rapid_upload: bool,
    /// `check_name_mode: refuse` found the name taken: nothing was created (ref §6.1).
    #[serde(default, deserialize_with = "json::boolean")]
    pub exist: bool,
    #[serde(default)]
    pub part_info_list: Vec<PartUrl>,
}

/// What one create call came to.
#[derive(Debug, Clone)]
pub enum CreateReply {
    /// 409 `PreHashMatched`: send the whole-file hash and proof.
    PreHashMatched,
    /// `InvalidRapidProof`: the proof was refused.
    InvalidRapidProof,
    Created(Created),
}

/// The calls of one family an upload needs.
#[async_trait]
pub trait UploadApi: Send + Sync {
    /// One create call (consumer `createWithFolders`, Open `openFile/create`) with
    /// `req.body(token)` plus the family's fields, `PreHashMatched` and
    /// `InvalidRapidProof` answered as such rather than as errors.
    async fn create(&self, req: &CreateFile<'_>) -> DriveResult<CreateReply>;
    /// Fresh URLs for `parts` (consumer `get_upload_url`, Open `getUploadUrl`).
    async fn upload_urls(&self, file_id: &str, upload_id: &str, parts: &[u64]) -> DriveResult<Vec<PartUrl>>;
    /// Finish the upload; the stored file.
    async fn complete(&self, file_id: &str, upload_id: &str) -> DriveResult<FileItem>;
    /// Remove a created file whose upload failed (best effort; errors are logged).
    async fn discard(&self, file_id: &str);
    /// The loop part PUTs go through (unpaced: parts are not API calls).
    fn part_http(&self) -> &Http;
    /// The URL to PUT a part to (endpoint overrides, the internal host…).
    fn part_url(&self, part: &PartUrl) -> String;
    /// Call `complete` after a rapid upload too (Open: yes, ref §7.5; consumer: no, §7.4).
    fn complete_after_rapid(&self) -> bool;
    /// The access token the next create call will carry (for its proof).
    fn access_token(&self) -> String;
}

/// Knobs of one upload.
#[derive(Debug, Clone, Copy)]
pub struct UploadOptions {
    /// Try rapid upload (the `rapid_upload` option).
    pub rapid: bool,
    /// Preferred part size (0: 10 MiB), see [`PartPlan`].
    pub part_size: u64,
    /// Probe with the pre-hash only above this size; smaller files are sent by their
    /// whole hash at once (their pre-hash *is* the whole hash; aligo: 1 KiB).
    pub pre_hash_above: u64,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions { rapid: true, part_size: 0, pre_hash_above: hash::PRE_HASH_BYTES }
    }
}

/// Store `src` as `parent/name`: the whole §7.4 / §7.5 flow. `Exists` when the name is
/// taken (`refuse`); on any other failure after the create, the file is discarded.
pub async fn upload(
    api: &dyn UploadApi,
    parent: &str,
    name: &str,
    src: &Source,
    opts: &UploadOptions,
) -> DriveResult<FileItem> {
    upload_hashed(api, parent, name, src, opts, RapidMode::OrUpload)
        .await?
        .ok_or_else(|| DriveError::upstream(format!("Aliyun upload of {name:?}: no file was made")))
}

/// [`upload`], or with `RapidMode::HashOnly` only by hash: `None` (and nothing left at
/// Aliyun) when Aliyun does not know the content.
pub async fn upload_hashed(
    api: &dyn UploadApi,
    parent: &str,
    name: &str,
    src: &Source,
    opts: &UploadOptions,
    mode: RapidMode,
) -> DriveResult<Option<FileItem>> {
    if !opts.rapid && mode == RapidMode::HashOnly {
        return Ok(None);
    }
    let plan = PartPlan::new(src.size, opts.part_size);
    let numbers = plan.numbers();
    let content = || async {
        let proof = Proof::read(src, &api.access_token()).await?;
        Ok::<_, DriveError>(HashField::Content { content_hash: src.sha1.to_ascii_uppercase(), proof })
    };
    let first = if !opts.rapid {
        HashField::None
    } else if src.size > opts.pre_hash_above {
        let head = src.body.range(0, src.size.min(hash::PRE_HASH_BYTES)).await?;
        HashField::PreHash(hash::pre_hash(&head))
    } else {
        content().await?
    };
    fn make<'a>(parent: &'a str, name: &'a str, size: u64, parts: &'a [u64], hash: &'a HashField) -> CreateFile<'a> {
        CreateFile { parent_file_id: parent, name, size, parts, hash }
    }
    let mut reply = api.create(&make(parent, name, src.size, &numbers, &first)).await?;
    if matches!(reply, CreateReply::PreHashMatched) {
        tracing::debug!(file = %name, "pre-hash matched: trying rapid upload");
        let c = content().await?;
        reply = api.create(&make(parent, name, src.size, &numbers, &c)).await?;
    }
    if matches!(reply, CreateReply::InvalidRapidProof) {
        // Read for the token of that very request; once more, then without rapid
        // upload (aligo recomputes and retries once, ref §7.2).
        tracing::info!(file = %name, "rapid-upload proof refused; trying once more");
        let c = content().await?;
        reply = api.create(&make(parent, name, src.size, &numbers, &c)).await?;
        if matches!(reply, CreateReply::InvalidRapidProof) {
            if mode == RapidMode::HashOnly {
                return Ok(None);
            }
            reply = api.create(&make(parent, name, src.size, &numbers, &HashField::None)).await?;
        }
    }
    let created = match reply {
        CreateReply::Created(c) => c,
        CreateReply::PreHashMatched | CreateReply::InvalidRapidProof => {
            return Err(DriveError::upstream(format!("Aliyun create of {name:?}: unexpected answer {reply:?}")))
        }
    };
    if created.exist {
        return Err(DriveError::Exists);
    }
    if created.file_id.is_empty() {
        return Err(DriveError::upstream(format!("Aliyun create of {name:?} answered without a file_id")));
    }
    let stored = |c: &Created| FileItem::stored(&c.file_id, parent, name, src.size, &src.sha1);
    if created.rapid_upload {
        tracing::info!(file = %name, size = src.size, "rapid upload: stored without sending the content");
        if !api.complete_after_rapid() {
            return Ok(Some(stored(&created)));
        }
        let item = api.complete(&created.file_id, &created.upload_id).await?;
        return Ok(Some(if item.file_id.is_empty() { stored(&created) } else { item }));
    }
    if mode == RapidMode::HashOnly {
        tracing::debug!(file = %name, "Aliyun does not know the content: nothing sent");
        api.discard(&created.file_id).await;
        return Ok(None);
    }
    match send_parts(api, &created, &plan, src).await {
        Ok(()) => {}
        Err(e) => {
            api.discard(&created.file_id).await;
            return Err(e);
        }
    }
    match api.complete(&created.file_id, &created.upload_id).await {
        Ok(item) if item.file_id.is_empty() || item.file_id == created.file_id => {
            let mut item = if item.file_id.is_empty() { stored(&created) } else { item };
            if item.content_hash.is_empty() {
                item.content_hash = src.sha1.to_ascii_uppercase();
                item.content_hash_name = "sha1".into();
            }
            Ok(Some(item))
        }
        Ok(item) => {
            api.discard(&created.file_id).await;
            Err(DriveError::upstream(format!(
                "Aliyun complete of {name:?} answered file {}, not the created {}",
                item.file_id, created.file_id
            )))
        }
        Err(e) => {
            api.discard(&created.file_id).await;
            Err(e)
        }
    }
}

/// PUT every part in order, renewing URLs that expired or got old.
async fn send_parts(api: &dyn UploadApi, c: &Created, plan: &PartPlan, src: &Source) -> DriveResult<()> {
    if src.size == 0 {
        return Ok(()); // an empty file completes without a part (ref §7.6 rule 5)
    }
    let mut urls: HashMap<u64, String> = c
        .part_info_list
        .iter()
        .filter(|p| !p.upload_url.is_empty())
        .map(|p| (p.part_number, api.part_url(p)))
        .collect();
    let mut issued = Instant::now();
    let numbers = plan.numbers();
    // One read of the source for all the parts (a retried part reads its bytes again).
    let feed = Feed::new(Arc::clone(&src.body));
    for (i, &n) in numbers.iter().enumerate() {
        if !urls.contains_key(&n) || issued.elapsed() >= PART_URL_RENEW {
            renew(api, c, &numbers[i..], &mut urls).await?;
            issued = Instant::now();
        }
        let (offset, len) = plan.range(n, src.size);
        let mut renewed = false;
        loop {
            let url = urls.get(&n).cloned().unwrap_or_default();
            match put_part(api.part_http(), &url, &feed, offset, len, n).await {
                Ok(()) => break,
                Err(e) if e.hint() == Hint::CredentialsExpired && !renewed => {
                    tracing::info!(part = n, "part URL expired; fetching fresh ones");
                    renewed = true;
                    renew(api, c, &numbers[i..], &mut urls).await?;
                    issued = Instant::now();
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

async fn renew(api: &dyn UploadApi, c: &Created, parts: &[u64], urls: &mut HashMap<u64, String>) -> DriveResult<()> {
    for p in api.upload_urls(&c.file_id, &c.upload_id, parts).await? {
        if !p.upload_url.is_empty() {
            urls.insert(p.part_number, api.part_url(&p));
        }
    }
    match parts.iter().find(|n| !urls.contains_key(n)) {
        Some(n) => Err(DriveError::upstream(format!("Aliyun gave no upload URL for part {n}"))),
        None => Ok(()),
    }
}

/// PUT one part: no Content-Type, an explicit length, a timeout that grows with the size.
/// 200 and 409 `PartAlreadyExist` are done; 403 is an expired (or refused) presign.
pub async fn put_part(http: &Http, url: &str, feed: &Feed, offset: u64, len: u64, n: u64) -> DriveResult<()> {
    let timeout = Duration::from_secs(120).max(Duration::from_secs(len / (64 * 1024)));
    let what = format!("part {n} upload");
    let r = http
        .send(
            &what,
            true,
            |c| {
                c.put(url)
                    .header(reqwest::header::CONTENT_LENGTH, len)
                    .timeout(timeout)
                    .body(feed.lazy_body(offset, len))
            },
            |r| part_verdict(&what, r),
        )
        .await?;
    if (200..300).contains(&r.status) || r.status == 409 {
        return Ok(());
    }
    Err(DriveError::transient(ApiError::parse(r.status, &r.body).describe(&what)))
}

fn part_verdict(what: &str, r: &Response) -> Verdict {
    match r.status {
        200..=299 | 409 => Verdict::Done,
        403 => Verdict::Fatal(
            DriveError::upstream(ApiError::parse(r.status, &r.body).describe(what)).with_hint(Hint::CredentialsExpired),
        ),
        429 => Verdict::Throttled { why: format!("{what}: HTTP 429"), after: r.retry_after() },
        500..=599 | 408 => Verdict::Retry(format!("{what}: HTTP {}", r.status)),
        _ => Verdict::Fatal(super::error::error_of(Family::Consumer, what, r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A fake family: records creates, answers from a script.
    struct Fake {
        http: Http,
        script: Mutex<Vec<CreateReply>>,
        sent: Mutex<Vec<Map<String, Value>>>,
        discarded: Mutex<Vec<String>>,
        completed: Mutex<u32>,
        after_rapid: bool,
    }

    #[async_trait]
    impl UploadApi for Fake {
        async fn create(&self, req: &CreateFile<'_>) -> DriveResult<CreateReply> {
            self.sent.lock().unwrap().push(req.body("test-access-token"));
            Ok(self.script.lock().unwrap().remove(0))
        }
        async fn upload_urls(&self, _: &str, _: &str, _: &[u64]) -> DriveResult<Vec<PartUrl>> {
            Ok(vec![])
        }
        async fn complete(&self, file_id: &str, _: &str) -> DriveResult<FileItem> {
            *self.completed.lock().unwrap() += 1;
            Ok(FileItem { file_id: file_id.into(), name: "n".into(), kind: "file".into(), ..Default::default() })
        }
        async fn discard(&self, file_id: &str) {
            self.discarded.lock().unwrap().push(file_id.into());
        }
        fn part_http(&self) -> &Http {
            &self.http
        }
        fn part_url(&self, p: &PartUrl) -> String {
            p.upload_url.clone()
        }
        fn complete_after_rapid(&self) -> bool {
            self.after_rapid
        }
        fn access_token(&self) -> String {
            "test-access-token".into()
        }
    }

    fn fake(script: Vec<CreateReply>, after_rapid: bool) -> Fake {
        Fake {
            http: Http::new("test", Default::default(), 0.0, Default::default()).unwrap(),
            script: Mutex::new(script),
            sent: Mutex::new(vec![]),
            discarded: Mutex::new(vec![]),
            completed: Mutex::new(0),
            after_rapid,
        }
    }

    fn rapid() -> CreateReply {
        CreateReply::Created(Created {
            file_id: "f1".into(),
            rapid_upload: true,
            upload_id: "U".into(),
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn pre_hash_then_proof_then_rapid() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..4096u32).map(|i| ((i * 31 + 7) % 256) as u8).collect();
        let path = dir.path().join("f");
        std::fs::write(&path, &data).unwrap();
        use sha1::Digest;
        let sha1 = hex::encode(sha1::Sha1::digest(&data));
        let src = Source::file(path, 4096, &sha1);
        let f = fake(vec![CreateReply::PreHashMatched, rapid()], false);
        let item = upload(&f, "root", "a.bin", &src, &UploadOptions::default()).await.unwrap();
        assert_eq!((item.file_id.as_str(), item.size), ("f1", 4096));
        let sent = f.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0]["pre_hash"], json!(hash::pre_hash(&data)));
        assert!(sent[0].get("content_hash").is_none());
        assert_eq!(sent[1]["content_hash"], json!(sha1.to_ascii_uppercase()));
        assert_eq!(sent[1]["proof_code"], json!(hash::proof_code("test-access-token", &data)));
        assert_eq!(sent[1]["proof_version"], json!("v1"));
        assert!(sent[1].get("pre_hash").is_none());
        assert_eq!(*f.completed.lock().unwrap(), 0, "consumer: no complete after a rapid upload");
        // The Open family completes after a rapid upload too.
        let f = fake(vec![CreateReply::PreHashMatched, rapid()], true);
        upload(&f, "root", "a.bin", &src, &UploadOptions::default()).await.unwrap();
        assert_eq!(*f.completed.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn small_files_skip_the_probe_refused_proofs_fall_back_and_taken_names_are_exists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello").unwrap();
        let src = Source::file(path, 5, "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
        let f = fake(vec![CreateReply::InvalidRapidProof, CreateReply::InvalidRapidProof, rapid()], false);
        upload(&f, "root", "s", &src, &UploadOptions::default()).await.unwrap();
        let sent = f.sent.lock().unwrap().clone();
        assert!(sent[0].get("pre_hash").is_none() && sent[0].get("proof_code").is_some());
        assert_eq!(sent[2]["content_hash_name"], json!("none"), "third try without rapid upload");
        let exists = CreateReply::Created(Created { file_id: "old".into(), exist: true, ..Default::default() });
        let f = fake(vec![exists], false);
        let off = UploadOptions { rapid: false, ..Default::default() };
        assert!(matches!(upload(&f, "root", "s", &src, &off).await, Err(DriveError::Exists)));
        assert_eq!(f.sent.lock().unwrap()[0]["content_hash_name"], json!("none"));
        assert!(f.discarded.lock().unwrap().is_empty(), "an existing file is not ours to discard");
        // A session whose parts cannot be sent (no URL): discarded.
        let session =
            CreateReply::Created(Created { file_id: "new".into(), upload_id: "U".into(), ..Default::default() });
        let f = fake(vec![session], false);
        assert!(upload(&f, "root", "s", &src, &off).await.is_err());
        assert_eq!(*f.discarded.lock().unwrap(), vec!["new".to_string()]);
    }
}
