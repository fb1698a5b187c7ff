//! The emulated service's state (ref §12 "minimum state"), persisted in the state folder.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::content::{Content, Pattern};
use crate::crypto::b64url;
use emukit::util::{rand_from, rand_hex, ALNUM, UPPER_HEX};

pub const DOMAIN_ID: &str = "bj29";

/// Kind of a token (ref §2.2, §12): consumer web / consumer mobile / open platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Mobile,
    Web,
    Open,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct User {
    pub user_id: String,
    pub name: String,
    pub nick_name: String,
    pub default_drive_id: String,
    pub resource_drive_id: String,
    pub backup_drive_id: String,
    pub sbox_drive_id: String,
    pub total_size: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccessTok {
    pub user_id: String,
    pub kind: TokenKind,
    pub app: Option<String>,
    pub expires_ms: i64,
    pub revoked: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RtState {
    Live,
    Used,
    Revoked,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RefreshTok {
    pub user_id: String,
    pub kind: TokenKind,
    pub app: Option<String>,
    pub state: RtState,
    pub issued_ms: i64,
    pub expires_ms: i64,
    /// Issued by a PKCE exchange (refresh without client secret allowed).
    pub pkce: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeviceSession {
    pub user_id: String,
    pub device_id: String,
    pub pubkey_hex: String,
    pub created_ms: i64,
    pub renewed_ms: i64,
    pub kicked: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Node {
    pub file_id: String,
    pub drive_id: String,
    pub parent: String,
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
    /// Uppercase SHA-1 ("" for folders).
    pub sha1: String,
    pub crc64: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub trashed: bool,
    pub trashed_ms: i64,
    pub hidden: bool,
    pub starred: bool,
    pub revision_id: String,
    pub description: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum BlobStore {
    /// Bytes in `blobs/<SHA1>` of the state folder.
    File,
    /// [`Pattern`] with this seed.
    Pattern(u64),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Blob {
    pub size: u64,
    pub crc64: u64,
    /// Lowercase SHA-1 of the first KiB.
    pub pre_hash: String,
    pub store: BlobStore,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Api {
    Consumer,
    Open,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Upload {
    pub upload_id: String,
    pub file_id: String,
    pub drive_id: String,
    pub parent: String,
    pub name: String,
    pub size: u64,
    pub parts: u32,
    pub check_name_mode: String,
    /// Declared `content_hash` (uppercase), verified at complete.
    pub content_hash: Option<String>,
    pub user_id: String,
    pub api: Api,
    pub created_ms: i64,
    /// Same-name file replaced at complete (`overwrite`).
    pub replaces: Option<String>,
    /// Set once completed (complete is idempotent).
    pub done: bool,
    pub local_created: Option<String>,
    pub local_modified: Option<String>,
    /// Received parts (not persisted: an emulator restart loses unfinished parts).
    #[serde(skip)]
    pub received: BTreeMap<u32, Bytes>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum TaskOp {
    Trash(String),
    Delete(String),
    /// Copy of a folder: source id, id of the new root (announced in the answer), target.
    Copy {
        src: String,
        new_id: String,
        to_drive: String,
        to_parent: String,
        new_name: String,
    },
    Clear(String),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub op: TaskOp,
    pub polls_left: u32,
    pub done: bool,
    pub created_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShareState {
    /// Alive.
    Ok,
    /// `ShareLink.Cancelled`.
    Cancelled,
    /// `ShareLink.Forbidden` (banned content).
    Forbidden,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Share {
    pub share_id: String,
    pub user_id: String,
    pub drive_id: String,
    pub file_ids: Vec<String>,
    pub pwd: String,
    pub created_ms: i64,
    /// `None` = never expires.
    pub expiration_ms: Option<i64>,
    pub state: ShareState,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShareToken {
    pub share_id: String,
    pub expires_ms: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct App {
    pub client_id: String,
    pub secret: String,
    /// Longest `expire_sec` granted on getDownloadUrl (ref §5.2: 900 unless approved for 14400).
    pub max_expire_sec: u64,
    /// getDriveInfo shows these drives only when granted (ref §4.1).
    pub grant_resource: bool,
    pub grant_backup: bool,
    pub redirect_uris: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthCode {
    pub client_id: String,
    pub user_id: String,
    pub expires_ms: i64,
    pub used: bool,
    /// PKCE `(challenge, method)`.
    pub challenge: Option<(String, String)>,
}

/// Open-platform QR (ref §2.5–2.6). Status strings as on the wire.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpenQr {
    pub sid: String,
    pub client_id: String,
    pub status: String,
    pub user_id: Option<String>,
    pub auth_code: Option<String>,
    pub created_ms: i64,
    pub challenge: Option<(String, String)>,
}

/// Passport (consumer) QR (ref §2.6). Status strings as on the wire.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PassportQr {
    pub ck: String,
    pub t: i64,
    pub lg_token: String,
    pub status: String,
    pub user_id: Option<String>,
    pub created_ms: i64,
    /// The issued mobile-kind pair (on CONFIRMED).
    pub tokens: Option<(String, String)>,
    pub confirmed_polls: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ticket {
    pub user_id: String,
    pub refresh_token: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Successful token refreshes per user (consumer and open).
    pub refresh_ok: BTreeMap<String, u64>,
    /// Refresh attempts presenting a dead (used/revoked) token, per user.
    pub refresh_reused: BTreeMap<String, u64>,
}

#[derive(Default, Serialize, Deserialize)]
pub struct State {
    pub url_secret: String,
    pub clock_offset_ms: i64,
    pub next_drive: u64,
    pub users: BTreeMap<String, User>,
    pub access: HashMap<String, AccessTok>,
    pub refresh: HashMap<String, RefreshTok>,
    pub sessions: BTreeMap<String, DeviceSession>,
    pub nodes: BTreeMap<String, Node>,
    pub blobs: BTreeMap<String, Blob>,
    pub uploads: BTreeMap<String, Upload>,
    pub tasks: BTreeMap<String, Task>,
    pub shares: BTreeMap<String, Share>,
    pub share_tokens: HashMap<String, ShareToken>,
    pub apps: BTreeMap<String, App>,
    pub codes: HashMap<String, AuthCode>,
    pub open_qr: BTreeMap<String, OpenQr>,
    pub passport_qr: BTreeMap<String, PassportQr>,
    pub tickets: BTreeMap<String, Ticket>,
    pub counters: Counters,
    /// Content by SHA-1 (loaded from the blob store; not serialized).
    #[serde(skip)]
    pub contents: HashMap<String, Content>,
    /// Token state changed since the last save.
    #[serde(skip)]
    pub tokens_dirty: bool,
    #[serde(skip)]
    pub dir: PathBuf,
}

/// Errors of the tree operations, mapped to API codes by the callers.
#[derive(Debug, PartialEq, Eq)]
pub enum TreeError {
    NotFound,
    ParentNotFound,
    NotAFolder,
    Exists(String),
    Trashed,
    BadName,
    IntoItself,
}

pub fn new_file_id() -> String {
    rand_hex(40)
}

pub fn new_upload_id() -> String {
    rand_from(UPPER_HEX, 32)
}

pub fn new_request_id() -> String {
    rand_hex(30)
}

pub fn uuid() -> String {
    let h = rand_hex(32);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// A JWT-shaped token (`eyJ…`) whose payload carries `claims`; the signature part is random.
pub fn jwt(claims: &Value) -> String {
    let head = b64url(br#"{"alg":"RS256","typ":"JWT"}"#);
    let body = b64url(serde_json::to_string(claims).expect("json").as_bytes());
    let sig = b64url(rand_hex(64).as_bytes());
    format!("{head}.{body}.{sig}")
}

impl State {
    pub fn load_or_new(dir: &Path) -> std::io::Result<State> {
        std::fs::create_dir_all(dir.join("blobs"))?;
        let path = dir.join("state.json");
        let mut st = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice::<State>(&b).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State {
                url_secret: rand_hex(40),
                next_drive: 74_470 + rand::random::<u16>() as u64 * 10,
                ..Default::default()
            },
            Err(e) => return Err(e),
        };
        st.dir = dir.to_path_buf();
        let blobs: Vec<(String, Blob)> = st.blobs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (sha, b) in blobs {
            let c = match b.store {
                BlobStore::File => Content::Bytes(Bytes::from(std::fs::read(dir.join("blobs").join(&sha))?)),
                BlobStore::Pattern(seed) => Content::Pattern(Pattern::new(seed, b.size)),
            };
            st.contents.insert(sha, c);
        }
        Ok(st)
    }

    /// Write `state.json` atomically.
    pub fn save(&mut self) -> std::io::Result<()> {
        let path = self.dir.join("state.json");
        let tmp = self.dir.join("state.json.tmp");
        let data = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, data)?;
        std::fs::rename(&tmp, &path)?;
        self.tokens_dirty = false;
        Ok(())
    }

    // ------------------------------------------------------------------ users and drives

    pub fn add_user(&mut self, name: &str, default_is_backup: bool) -> User {
        let mut drive = || {
            self.next_drive += 1;
            self.next_drive.to_string()
        };
        let default = drive();
        let resource = drive();
        let backup = if default_is_backup { default.clone() } else { drive() };
        let sbox = drive();
        let u = User {
            user_id: rand_hex(32),
            name: name.to_string(),
            nick_name: name.to_string(),
            default_drive_id: default,
            resource_drive_id: resource,
            backup_drive_id: backup,
            sbox_drive_id: sbox,
            total_size: 6 * (1u64 << 40),
        };
        self.users.insert(u.user_id.clone(), u.clone());
        u
    }

    pub fn drive_owner(&self, drive_id: &str) -> Option<&User> {
        self.users.values().find(|u| {
            u.default_drive_id == drive_id
                || u.resource_drive_id == drive_id
                || u.backup_drive_id == drive_id
                || u.sbox_drive_id == drive_id
        })
    }

    pub fn used_size(&self, drive: Option<&str>, user: &User) -> u64 {
        let drives = [&user.default_drive_id, &user.resource_drive_id, &user.backup_drive_id, &user.sbox_drive_id];
        self.nodes
            .values()
            .filter(|n| !n.is_dir && drives.contains(&&n.drive_id) && drive.is_none_or(|d| d == n.drive_id))
            .map(|n| n.size)
            .sum()
    }

    // ------------------------------------------------------------------ tokens

    pub fn issue_access(&mut self, user_id: &str, kind: TokenKind, app: Option<&str>, ttl_ms: i64, now: i64) -> String {
        let exp = now + ttl_ms;
        let mut claims = json!({"userId": user_id, "customJson": "{\"clientId\":\"pJZInNHN2dZWk8qg\"}",
            "exp": exp / 1000, "iat": now / 1000, "jti": rand_hex(32)});
        match kind {
            TokenKind::Web => claims["ref"] = json!("https://www.aliyundrive.com/"),
            TokenKind::Mobile => {}
            TokenKind::Open => {
                claims = json!({"sub": user_id, "aud": app.unwrap_or(""), "exp": exp / 1000, "iat": now / 1000, "jti": rand_hex(32)})
            }
        }
        let t = jwt(&claims);
        self.access.insert(
            t.clone(),
            AccessTok { user_id: user_id.into(), kind, app: app.map(Into::into), expires_ms: exp, revoked: false },
        );
        self.tokens_dirty = true;
        t
    }

    /// Consumer refresh tokens are opaque; open ones are JWTs with `sub` = user id (ref §2.1, §2.3).
    pub fn issue_refresh(
        &mut self,
        user_id: &str,
        kind: TokenKind,
        app: Option<&str>,
        ttl_ms: i64,
        now: i64,
        pkce: bool,
    ) -> String {
        let t = match kind {
            TokenKind::Open => jwt(&json!({"sub": user_id, "aud": app.unwrap_or(""), "exp": (now + ttl_ms) / 1000,
                "iat": now / 1000, "jti": rand_hex(32)})),
            _ => rand_hex(32),
        };
        self.refresh.insert(
            t.clone(),
            RefreshTok {
                user_id: user_id.into(),
                kind,
                app: app.map(Into::into),
                state: RtState::Live,
                issued_ms: now,
                expires_ms: now + ttl_ms,
                pkce,
            },
        );
        self.tokens_dirty = true;
        t
    }

    // ------------------------------------------------------------------ blobs

    /// Register content; returns its uppercase SHA-1. Bytes are written to the blob folder.
    pub fn add_content(&mut self, c: Content, known: Option<(String, u64)>) -> std::io::Result<String> {
        let (sha, crc) = match known {
            Some(k) => k,
            None => c.hashes(),
        };
        if self.blobs.contains_key(&sha) {
            return Ok(sha);
        }
        let store = match &c {
            Content::Bytes(b) => {
                let path = self.dir.join("blobs").join(&sha);
                let tmp = self.dir.join("blobs").join(format!("{sha}.tmp"));
                std::fs::write(&tmp, b)?;
                std::fs::rename(tmp, path)?;
                BlobStore::File
            }
            Content::Pattern(p) => BlobStore::Pattern(p.seed()),
        };
        self.blobs.insert(sha.clone(), Blob { size: c.size(), crc64: crc, pre_hash: c.pre_hash(), store });
        self.contents.insert(sha.clone(), c);
        Ok(sha)
    }

    // ------------------------------------------------------------------ tree

    /// Is `id` (not "root") alive: exists, not trashed, and no ancestor trashed.
    pub fn alive(&self, id: &str) -> bool {
        let mut cur = id;
        let mut guard = 0;
        while cur != "root" {
            match self.nodes.get(cur) {
                Some(n) if !n.trashed => cur = &n.parent,
                _ => return false,
            }
            guard += 1;
            if guard > 10_000 {
                return false;
            }
        }
        true
    }

    /// A live folder of `drive` (or its root).
    pub fn check_folder(&self, drive: &str, id: &str) -> Result<(), TreeError> {
        if id == "root" {
            return Ok(());
        }
        match self.nodes.get(id) {
            Some(n) if n.drive_id == drive && self.alive(id) => {
                if n.is_dir {
                    Ok(())
                } else {
                    Err(TreeError::NotAFolder)
                }
            }
            Some(n) if n.drive_id == drive && n.trashed => Err(TreeError::Trashed),
            _ => Err(TreeError::ParentNotFound),
        }
    }

    /// Live children of a folder.
    pub fn children(&self, drive: &str, parent: &str) -> Vec<&Node> {
        self.nodes.values().filter(|n| n.drive_id == drive && n.parent == parent && !n.trashed).collect()
    }

    pub fn child_named(&self, drive: &str, parent: &str, name: &str) -> Option<&Node> {
        self.nodes.values().find(|n| n.drive_id == drive && n.parent == parent && !n.trashed && n.name == name)
    }

    /// `name(1).ext`, `name(2).ext`, … (ref §6.1, pattern [unconfirmed]).
    pub fn free_name(&self, drive: &str, parent: &str, name: &str) -> String {
        if self.child_named(drive, parent, name).is_none() {
            return name.to_string();
        }
        let (stem, ext) = match name.rfind('.') {
            Some(i) if i > 0 => (&name[..i], &name[i..]),
            _ => (name, ""),
        };
        (1..).map(|i| format!("{stem}({i}){ext}")).find(|n| self.child_named(drive, parent, n).is_none()).expect("free")
    }

    pub fn valid_name(name: &str) -> bool {
        !name.is_empty() && !name.contains('/') && name != "." && name != ".." && name.len() <= 1024
    }

    #[allow(clippy::too_many_arguments)]
    pub fn insert_node(
        &mut self,
        drive: &str,
        parent: &str,
        name: &str,
        is_dir: bool,
        sha1: Option<&str>,
        id: Option<String>,
        now: i64,
    ) -> String {
        let (size, crc) = match sha1.and_then(|s| self.blobs.get(s)) {
            Some(b) => (b.size, b.crc64),
            None => (0, 0),
        };
        let id = id.unwrap_or_else(new_file_id);
        self.nodes.insert(
            id.clone(),
            Node {
                file_id: id.clone(),
                drive_id: drive.into(),
                parent: parent.into(),
                name: name.into(),
                is_dir,
                size,
                sha1: sha1.unwrap_or("").to_string(),
                crc64: crc,
                created_ms: now,
                updated_ms: now,
                trashed: false,
                trashed_ms: 0,
                hidden: false,
                starred: false,
                revision_id: rand_from(ALNUM, 26),
                description: String::new(),
            },
        );
        id
    }

    /// The ids of `id` and everything below it.
    pub fn subtree(&self, id: &str) -> Vec<String> {
        let mut out = vec![id.to_string()];
        let mut i = 0;
        while i < out.len() {
            let cur = out[i].clone();
            out.extend(self.nodes.values().filter(|n| n.parent == cur).map(|n| n.file_id.clone()));
            i += 1;
        }
        out
    }

    pub fn remove_subtree(&mut self, id: &str) {
        for k in self.subtree(id) {
            self.nodes.remove(&k);
        }
    }

    /// Copy `src` (and its subtree) under `to_parent` as `name`; the root gets `new_id`.
    pub fn copy_subtree(&mut self, src: &str, to_drive: &str, to_parent: &str, name: &str, new_id: String, now: i64) {
        let Some(root) = self.nodes.get(src).cloned() else { return };
        let mut stack = vec![(root, to_parent.to_string(), Some(new_id), name.to_string())];
        while let Some((n, parent, id, name)) = stack.pop() {
            let sha = if n.is_dir { None } else { Some(n.sha1.clone()) };
            let nid = self.insert_node(to_drive, &parent, &name, n.is_dir, sha.as_deref(), id, now);
            if n.is_dir {
                let kids: Vec<Node> = self.children(&n.drive_id, &n.file_id).into_iter().cloned().collect();
                for k in kids {
                    let kn = k.name.clone();
                    stack.push((k, nid.clone(), None, kn));
                }
            }
        }
    }

    /// Resolve `/a/b` in a drive (live items; first by id order on duplicates).
    pub fn lookup(&self, drive: &str, path: &str) -> Option<String> {
        let mut cur = "root".to_string();
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            cur = self.child_named(drive, &cur, comp)?.file_id.clone();
        }
        Some(cur)
    }

    pub fn is_ancestor(&self, anc: &str, id: &str) -> bool {
        let mut cur = id.to_string();
        let mut guard = 0;
        while cur != "root" && guard < 10_000 {
            if cur == anc {
                return true;
            }
            match self.nodes.get(&cur) {
                Some(n) => cur = n.parent.clone(),
                None => return false,
            }
            guard += 1;
        }
        false
    }

    pub fn content_of(&self, n: &Node) -> Option<Content> {
        self.contents.get(&n.sha1).cloned()
    }
}
