//! In-memory model of the 115 world: users, sessions, file trees, content store, links,
//! uploads, QR tokens, offline tasks, shares.

use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use crate::ec115::ServerKey;
use crate::m115::RsaKey;
use crate::util::pickcode;
use crate::{EntryInfo, Opts};

/// First id handed out; > 2^53 so that JSON doubles would lose precision (§0.4).
pub const FIRST_ID: u64 = 2_593_093_001_609_740_000;
pub const ID_STEP: u64 = 97;

pub struct User {
    pub id: u64,
    pub name: String,
    pub userkey: String,
    pub stable_point: String,
    pub offline_quota_total: u32,
    pub offline_quota_left: u32,
    pub space_total: u64,
}

#[derive(Clone)]
pub struct Session {
    pub user_id: u64,
    pub app: String,
    pub ssoent: String,
    pub uid: String,
    pub cid: String,
    pub seid: String,
    pub kid: String,
    pub alive: bool,
    pub login_time: i64,
}

impl Session {
    pub fn cookie(&self) -> String {
        format!("UID={};CID={};SEID={};KID={}", self.uid, self.cid, self.seid, self.kid)
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    pub id: u64,
    pub parent: u64,
    pub owner: u64,
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
    pub sha1: String,
    pub pc: String,
    pub ctime: i64,
    pub mtime: i64,
    pub atime: i64,
    /// Set on the top-level item moved to the recycle bin (aid 7).
    pub deleted: Option<i64>,
    pub starred: bool,
}

#[derive(Clone)]
#[allow(dead_code)]
pub struct Link {
    pub user_id: u64,
    pub file_id: u64,
    pub sha1: String,
    pub size: u64,
    pub name: String,
    /// `None` = the downurl request carried no (or an empty) User-Agent.
    pub ua: Option<String>,
    pub expires: i64,
    pub cookie: (String, String),
    pub require_cookie: bool,
}

pub struct PendingUpload {
    pub user_id: u64,
    pub parent: u64,
    pub name: String,
    pub size: u64,
    pub sha1: String,
    pub file_id: u64,
    pub pc: String,
    pub target: String,
    pub done: bool,
}

pub struct SignCheck {
    pub user_id: u64,
    pub fileid: String,
    pub start: u64,
    pub end: u64,
    pub issued: i64,
}

pub struct Multipart {
    pub bucket: String,
    pub object: String,
    pub parts: BTreeMap<u32, (Bytes, String)>,
}

pub struct Sts {
    pub secret: String,
    pub token: String,
    pub expires: i64,
}

#[allow(dead_code)]
pub struct Qr {
    pub app: String,
    pub time: i64,
    pub sign: String,
    pub status: i32,
    pub user: Option<u64>,
    pub consumed: bool,
    pub force_expired: bool,
}

#[derive(Clone, Debug)]
pub struct Task {
    pub user_id: u64,
    pub info_hash: String,
    pub name: String,
    pub url: String,
    pub size: u64,
    pub add_time: i64,
    pub last_update: i64,
    pub status: i32,
    pub percent: f64,
    pub file_id: Option<u64>,
    pub wp_path_id: u64,
}

#[derive(Clone, Debug)]
#[allow(dead_code)]
pub struct Share {
    pub code: String,
    pub owner: u64,
    pub receive_code: String,
    pub ids: Vec<u64>,
    pub state: i32,
    pub title: String,
    pub create_time: i64,
    pub expire_time: i64,
    pub receive_count: u64,
    pub snap_id: u64,
}

pub struct State {
    pub opts: Opts,
    pub clock_offset: i64,
    pub next_id: u64,
    pub users: BTreeMap<u64, User>,
    pub sessions: Vec<Session>,
    pub nodes: BTreeMap<u64, Node>,
    pub content: HashMap<String, Bytes>,
    pub links: HashMap<String, Link>,
    pub pending: HashMap<String, PendingUpload>,
    pub sign_checks: HashMap<String, SignCheck>,
    pub multiparts: HashMap<String, Multipart>,
    pub sts: HashMap<String, Sts>,
    pub oss_objects: HashMap<String, Bytes>,
    pub qr: HashMap<String, Qr>,
    pub tasks: Vec<Task>,
    pub shares: BTreeMap<String, Share>,
    pub share_state_numeric: bool,
    pub buckets: HashMap<String, (f64, Instant)>,
    pub busy: HashMap<u64, (i64, u128, &'static str)>,
    pub rsa: RsaKey,
    pub ec: ServerKey,
    pub upload_log: Vec<String>,
}

pub fn ssoent_of(app: &str) -> Option<&'static str> {
    Some(match app {
        "web" | "desktop" => "A1",
        "ios" => "D1",
        "bios" => "D2",
        "115ios" => "D3",
        "android" => "F1",
        "bandroid" => "F2",
        "115android" => "F3",
        "ipad" => "H1",
        "bipad" => "H2",
        "115ipad" => "H3",
        "tv" => "I1",
        "apple_tv" => "I2",
        "qandroid" => "M1",
        "qios" => "N1",
        "qipad" => "O1",
        "os_windows" => "P1",
        "os_mac" => "P2",
        "os_linux" => "P3",
        "wechatmini" => "R1",
        "alipaymini" => "R2",
        "harmony" => "S1",
        _ => return None,
    })
}

impl State {
    pub fn new(opts: Opts, ec: ServerKey) -> State {
        State {
            share_state_numeric: opts.share_state_numeric,
            opts,
            clock_offset: 0,
            next_id: FIRST_ID,
            users: BTreeMap::new(),
            sessions: Vec::new(),
            nodes: BTreeMap::new(),
            content: HashMap::new(),
            links: HashMap::new(),
            pending: HashMap::new(),
            sign_checks: HashMap::new(),
            multiparts: HashMap::new(),
            sts: HashMap::new(),
            oss_objects: HashMap::new(),
            qr: HashMap::new(),
            tasks: Vec::new(),
            shares: BTreeMap::new(),
            buckets: HashMap::new(),
            busy: HashMap::new(),
            rsa: RsaKey::test_key(),
            ec,
            upload_log: Vec::new(),
        }
    }

    pub fn now(&self) -> i64 {
        let real = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        real + self.clock_offset
    }

    pub fn now_ms(&self) -> u128 {
        let real = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
        (real as i128 + self.clock_offset as i128 * 1000) as u128
    }

    pub fn alloc_id(&mut self) -> u64 {
        self.next_id += ID_STEP;
        self.next_id
    }

    pub fn add_user(&mut self, id: u64, name: &str) {
        let sp = pickcode::base36(id.wrapping_mul(7919) % (36 * 36 * 36));
        let stable_point = format!("0{:0>3}", sp);
        let mut key = [0u8; 16];
        for (i, b) in key.iter_mut().enumerate() {
            *b = (id.wrapping_mul(2654435761).rotate_left(i as u32 * 5) & 0xff) as u8 ^ (i as u8 * 17);
        }
        self.users.insert(
            id,
            User {
                id,
                name: name.to_string(),
                userkey: hex::encode_upper(key),
                stable_point,
                offline_quota_total: self.opts.offline_quota,
                offline_quota_left: self.opts.offline_quota,
                space_total: self.opts.space_total,
            },
        );
    }

    /// New login for `app`: invalidates the previous session of the same ssoent (§1.1).
    pub fn login(&mut self, user_id: u64, app: &str) -> Option<Session> {
        let ssoent = ssoent_of(app)?;
        let now = self.now();
        for s in self.sessions.iter_mut() {
            if s.user_id == user_id && s.ssoent == ssoent {
                s.alive = false;
            }
        }
        let s = Session {
            user_id,
            app: app.to_string(),
            ssoent: ssoent.to_string(),
            uid: format!("{user_id}_{ssoent}_{now}"),
            cid: crate::util::rand_hex(16),
            seid: crate::util::rand_hex(48),
            kid: crate::util::rand_hex(16),
            alive: true,
            login_time: now,
        };
        self.sessions.push(s.clone());
        Some(s)
    }

    /// Cookie header → live session (UID, CID, SEID and KID must all match).
    pub fn session_for(&self, cookie_headers: &[String]) -> Option<&Session> {
        let mut m: HashMap<String, String> = HashMap::new();
        for h in cookie_headers {
            for item in h.split(';') {
                let item = item.trim();
                if item.is_empty() {
                    continue;
                }
                if let Some((k, v)) = item.split_once('=') {
                    m.insert(k.trim().to_ascii_uppercase(), v.trim().to_string());
                }
            }
        }
        let uid = m.get("UID")?;
        self.sessions.iter().find(|s| {
            s.alive
                && &s.uid == uid
                && m.get("CID") == Some(&s.cid)
                && m.get("SEID") == Some(&s.seid)
                && m.get("KID") == Some(&s.kid)
        })
    }

    pub fn mint_pc(&self, owner: u64, id: u64, is_dir: bool) -> String {
        let sp = self.users.get(&owner).map(|u| u.stable_point.clone()).unwrap_or_else(|| "0000".into());
        let p = ["a", "b", "c", "d", "e"][(id % 5) as usize];
        let prefix = if is_dir { format!("f{p}") } else { p.to_string() };
        pickcode::encode(id, &sp, &prefix)
    }

    pub fn insert_node(&mut self, owner: u64, parent: u64, name: &str, is_dir: bool, data: Option<&Bytes>) -> u64 {
        let id = self.alloc_id();
        self.insert_node_with_id(id, owner, parent, name, is_dir, data);
        id
    }

    pub fn insert_node_with_id(
        &mut self,
        id: u64,
        owner: u64,
        parent: u64,
        name: &str,
        is_dir: bool,
        data: Option<&Bytes>,
    ) {
        let now = self.now();
        let (size, sha1) = match data {
            Some(b) => {
                let sha = crate::util::sha1_upper(b);
                self.content.entry(sha.clone()).or_insert_with(|| b.clone());
                (b.len() as u64, sha)
            }
            None => (0, String::new()),
        };
        let pc = self.mint_pc(owner, id, is_dir);
        self.nodes.insert(
            id,
            Node {
                id,
                parent,
                owner,
                name: name.to_string(),
                is_dir,
                size,
                sha1,
                pc,
                ctime: now,
                mtime: now,
                atime: now,
                deleted: None,
                starred: false,
            },
        );
        if parent != 0 {
            if let Some(p) = self.nodes.get_mut(&parent) {
                p.mtime = now;
            }
        }
    }

    /// A node is alive when neither it nor an ancestor is in the recycle bin. A chain ending
    /// at a missing parent (dangling node after a move to a bogus pid, §4.3) still counts as
    /// alive, though it is unreachable from the root.
    pub fn alive(&self, id: u64) -> bool {
        if id == 0 {
            return true;
        }
        let mut cur = id;
        for _ in 0..1000 {
            match self.nodes.get(&cur) {
                None => return cur != id,
                Some(n) => {
                    if n.deleted.is_some() {
                        return false;
                    }
                    if n.parent == 0 {
                        return true;
                    }
                    cur = n.parent;
                }
            }
        }
        false
    }

    pub fn node_of(&self, owner: u64, id: u64) -> Option<&Node> {
        self.nodes.get(&id).filter(|n| n.owner == owner)
    }

    pub fn live_node(&self, owner: u64, id: u64) -> Option<&Node> {
        self.node_of(owner, id).filter(|n| self.alive(n.id))
    }

    pub fn live_dir(&self, owner: u64, id: u64) -> bool {
        id == 0 || self.live_node(owner, id).map(|n| n.is_dir).unwrap_or(false)
    }

    pub fn children(&self, owner: u64, parent: u64) -> Vec<&Node> {
        self.nodes.values().filter(|n| n.owner == owner && n.parent == parent && n.deleted.is_none()).collect()
    }

    pub fn descendants(&self, id: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut stack = vec![id];
        while let Some(c) = stack.pop() {
            for n in self.nodes.values().filter(|n| n.parent == c) {
                out.push(n.id);
                stack.push(n.id);
            }
        }
        out
    }

    /// Ancestors from the root (exclusive) down to `id` (inclusive).
    pub fn ancestry(&self, id: u64) -> Vec<&Node> {
        let mut v = Vec::new();
        let mut cur = id;
        for _ in 0..1000 {
            if cur == 0 {
                break;
            }
            match self.nodes.get(&cur) {
                Some(n) => {
                    v.push(n);
                    cur = n.parent;
                }
                None => break,
            }
        }
        v.reverse();
        v
    }

    pub fn used_space(&self, owner: u64) -> u64 {
        self.nodes.values().filter(|n| n.owner == owner).map(|n| n.size).sum()
    }

    pub fn entry_info(&self, n: &Node) -> EntryInfo {
        EntryInfo {
            id: n.id,
            parent_id: n.parent,
            name: n.name.clone(),
            is_dir: n.is_dir,
            size: n.size,
            sha1: n.sha1.clone(),
            pick_code: n.pc.clone(),
            ctime: n.ctime,
            mtime: n.mtime,
            in_recycle_bin: n.deleted.is_some(),
        }
    }

    /// Deep copy of `src` under `dst_parent` (same owner or another one, for share receive).
    pub fn copy_subtree(&mut self, src: u64, dst_parent: u64, new_owner: u64) -> u64 {
        let n = self.nodes.get(&src).cloned().expect("copy source");
        let id = self.alloc_id();
        let now = self.now();
        let pc = self.mint_pc(new_owner, id, n.is_dir);
        self.nodes.insert(
            id,
            Node {
                id,
                parent: dst_parent,
                owner: new_owner,
                pc,
                ctime: now,
                mtime: now,
                atime: now,
                deleted: None,
                starred: false,
                ..n.clone()
            },
        );
        if n.is_dir {
            let kids: Vec<u64> =
                self.nodes.values().filter(|c| c.parent == src && c.deleted.is_none()).map(|c| c.id).collect();
            for k in kids {
                self.copy_subtree(k, id, new_owner);
            }
        }
        id
    }
}
