//! Shared state: users, apps, grants (ref §2.4), files, links, uploads, offline tasks.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::util::{rand_alnum, rand_lower, sha1_hex};
use crate::{Options, Tokens, DEFAULT_APP_ID, DEFAULT_APP_SECRET, DEFAULT_REDIRECT_DOMAIN};

pub(crate) struct Inner {
    pub state: Mutex<State>,
    pub clock_offset_ms: AtomicI64,
    pub qr_notify: Notify,
    /// `http://127.0.0.1:PORT`: every host is served under `/<host>/…` of this base.
    pub base: String,
}

impl Inner {
    pub fn new(opts: Options, base: String) -> Inner {
        let mut st = State::new(opts);
        st.register_app(DEFAULT_APP_ID, DEFAULT_APP_SECRET, Some(DEFAULT_REDIRECT_DOMAIN));
        Inner { state: Mutex::new(st), clock_offset_ms: AtomicI64::new(0), qr_notify: Notify::new(), base }
    }

    /// Base URL standing in for `https://<host>`.
    pub fn endpoint(&self, host: &str) -> String {
        format!("{}/{host}", self.base)
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Emulated unix time, milliseconds.
    pub fn now_ms(&self) -> u64 {
        let real = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        (real + self.clock_offset_ms.load(Ordering::SeqCst)) as u64
    }

    pub fn qr_set(&self, uid: &str, f: impl FnOnce(&mut QrState) -> bool) -> bool {
        let changed = {
            let mut st = self.lock();
            match st.qr.get_mut(uid) {
                Some(q) => {
                    let ok = f(q);
                    if ok {
                        q.version += 1;
                    }
                    ok
                }
                None => false,
            }
        };
        self.qr_notify.notify_waiters();
        changed
    }
}

#[derive(Clone, Debug)]
pub(crate) struct User {
    pub id: u64,
    pub name: String,
    pub offline_quota: u32,
    pub offline_used: u32,
}

#[derive(Clone, Debug)]
pub(crate) struct App {
    #[allow(dead_code)]
    pub id: String,
    pub secret: String,
    pub redirect_domain: Option<String>,
}

/// State of a grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantState {
    Live,
    /// Evicted by a newer grant of the same (user, app) beyond the limit.
    Evicted,
    /// Revoked by the user.
    Revoked,
}

#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub id: u64,
    pub user: u64,
    pub app: String,
    pub issued_ms: u64,
    pub expires_ms: u64,
    pub state: GrantState,
    pub refresh_token: String,
    pub access_token: String,
    pub access_expires_ms: u64,
    /// When tokens were last issued (grant creation or refresh).
    pub last_issue_ms: u64,
    pub refresh_ok: u64,
    pub refresh_attempts: u64,
    pub refresh_too_frequent: u64,
    /// Refresh tokens rotated away, oldest first.
    pub dead_refresh: Vec<String>,
}

/// Public view of a grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantInfo {
    pub id: u64,
    pub user: u64,
    pub app_id: String,
    pub state: GrantState,
    /// Grant past its 1-year lifetime.
    pub expired: bool,
    pub refresh_token: String,
    pub access_token: String,
    pub issued_unix: u64,
    pub expires_unix: u64,
    pub access_expires_unix: u64,
    /// Successful refreshes.
    pub refresh_count: u64,
    /// Refresh attempts with a token of this grant, including rejected ones.
    pub refresh_attempts: u64,
    /// Refreshes rejected with 40140117.
    pub refresh_too_frequent: u64,
    /// Refresh tokens of this grant that were rotated away.
    pub dead_refresh_tokens: Vec<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub id: u64,
    pub user: u64,
    pub parent: u64,
    pub name: String,
    pub is_dir: bool,
    pub sha1: Option<String>,
    pub size: u64,
    pub pick_code: String,
    pub ptime: u64,
    pub utime: u64,
    pub star: bool,
    /// Set on the top-level item moved to the recycle bin: deletion time.
    pub recycled: Option<u64>,
}

/// Public view of a file or folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: u64,
    pub user: u64,
    pub parent: u64,
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
    /// Uppercase hex; `None` for folders.
    pub sha1: Option<String>,
    pub pick_code: String,
    pub ptime: u64,
    pub utime: u64,
    pub starred: bool,
    /// In the recycle bin (itself or an ancestor).
    pub in_recycle_bin: bool,
}

pub(crate) struct QrState {
    pub uid: String,
    pub app: String,
    pub time: u64,
    pub sign: String,
    pub challenge: Vec<u8>,
    pub method: String,
    pub created_ms: u64,
    /// 0 waiting, 1 scanned, 2 confirmed, -1 expired, -2 cancelled, 3 = exchanged (internal)
    pub status: i32,
    pub version: u64,
    /// Version last answered by a status poll.
    pub reported: u64,
    pub user: Option<u64>,
}

pub(crate) struct AuthCode {
    pub user: u64,
    pub app: String,
    pub redirect_uri: String,
    pub created_ms: u64,
}

pub(crate) struct Link {
    pub user: u64,
    pub fid: u64,
    pub sha1: String,
    pub name: String,
    /// `None` = not UA-bound (`f=`).
    pub ua: Option<String>,
    pub expires_ms: u64,
    pub t: u64,
    pub sig: String,
}

pub(crate) struct UploadSession {
    pub user: u64,
    pub name: String,
    pub size: u64,
    pub sha1: String,
    pub target: String,
    pub cid: u64,
    pub object: String,
    pub callback: String,
    pub callback_var: String,
}

pub(crate) struct SignSession {
    pub user: u64,
    pub sha1: String,
    pub start: u64,
    pub end: u64,
}

pub(crate) struct Sts {
    pub user: u64,
    pub key_id: String,
    pub secret: String,
    pub expires_ms: u64,
}

pub(crate) struct Part {
    pub data: Bytes,
    pub etag: String,
    pub modified: u64,
}

pub(crate) struct Multipart {
    pub bucket: String,
    pub key: String,
    pub parts: BTreeMap<u32, Part>,
}

/// An offline-download task (ref §8).
#[derive(Clone, Debug, PartialEq)]
pub struct OfflineTask {
    pub user: u64,
    pub info_hash: String,
    pub name: String,
    pub url: String,
    pub size: u64,
    pub add_time: u64,
    pub last_update: u64,
    pub percent_done: f64,
    /// -1 failed, 0 pending, 1 downloading, 2 done
    pub status: i32,
    pub wp_path_id: u64,
    pub file_id: Option<u64>,
}

/// One request as seen by the emulator.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub method: String,
    /// Real hostname (first path segment).
    pub host: String,
    /// Path below the host, e.g. `/open/ufile/files`.
    pub path: String,
    pub query: String,
    pub user_agent: Option<String>,
    pub authorization: Option<String>,
    /// HTTP status sent (0 = connection dropped without a response).
    pub status: u16,
}

pub(crate) struct RateBucket {
    pub tokens: f64,
    pub last: std::time::Instant,
}

pub(crate) struct State {
    pub opts: Options,
    pub users: BTreeMap<u64, User>,
    pub next_user: u64,
    pub apps: HashMap<String, App>,
    pub grants: BTreeMap<u64, Grant>,
    pub next_grant: u64,
    pub refresh_index: HashMap<String, u64>,
    pub access_index: HashMap<String, u64>,
    pub nodes: HashMap<u64, Node>,
    pub next_id: u64,
    pub pick_index: HashMap<String, u64>,
    pub blobs: HashMap<String, Bytes>,
    pub qr: HashMap<String, QrState>,
    pub qr_order: Vec<String>,
    pub auth_codes: HashMap<String, AuthCode>,
    pub browser_user: Option<u64>,
    pub links: HashMap<String, Link>,
    pub uploads: HashMap<String, UploadSession>,
    pub sign_sessions: HashMap<String, SignSession>,
    pub sts: HashMap<String, Sts>,
    pub oss_objects: HashMap<(String, String), Bytes>,
    pub multiparts: HashMap<String, Multipart>,
    pub offline: Vec<OfflineTask>,
    /// Requests 115 saw that did not reach the emulator's ports (the broker's own refresh
    /// call); added to the request log's counts.
    pub counters: BTreeMap<String, u64>,
    pub buckets: HashMap<u64, RateBucket>,
    pub daily: HashMap<(u64, u64), u64>,
}

pub(crate) enum AccessError {
    Malformed,
    Invalid,
}

pub(crate) enum RefreshError {
    Garbage,
    NoAuth,
    Expired,
    TooFrequent,
}

impl State {
    fn new(opts: Options) -> State {
        State {
            opts,
            users: BTreeMap::new(),
            next_user: 123_456_789,
            apps: HashMap::new(),
            grants: BTreeMap::new(),
            next_grant: 1,
            refresh_index: HashMap::new(),
            access_index: HashMap::new(),
            nodes: HashMap::new(),
            next_id: 3_216_547_890_123_456_001,
            pick_index: HashMap::new(),
            blobs: HashMap::new(),
            qr: HashMap::new(),
            qr_order: Vec::new(),
            auth_codes: HashMap::new(),
            browser_user: None,
            links: HashMap::new(),
            uploads: HashMap::new(),
            sign_sessions: HashMap::new(),
            sts: HashMap::new(),
            oss_objects: HashMap::new(),
            multiparts: HashMap::new(),
            offline: Vec::new(),
            counters: BTreeMap::new(),
            buckets: HashMap::new(),
            daily: HashMap::new(),
        }
    }

    // ------------------------------------------------------------------ users / apps

    pub fn add_user(&mut self, name: Option<&str>) -> u64 {
        let id = self.next_user;
        self.next_user += 1;
        let quota = self.opts.offline_quota;
        self.users.insert(
            id,
            User {
                id,
                name: name.map(str::to_string).unwrap_or_else(|| format!("user{id}")),
                offline_quota: quota,
                offline_used: 0,
            },
        );
        id
    }

    pub fn register_app(&mut self, id: &str, secret: &str, redirect_domain: Option<&str>) {
        self.apps.insert(
            id.to_string(),
            App { id: id.into(), secret: secret.into(), redirect_domain: redirect_domain.map(Into::into) },
        );
    }

    // ------------------------------------------------------------------ grants (ref §2.4)

    /// Create a grant for (user, app); evicts the oldest live grants beyond the limit.
    /// `Err(40140122)` if the user already authorized too many apps.
    pub fn new_grant(&mut self, user: u64, app: &str, now: u64) -> Result<Tokens, i64> {
        assert!(self.users.contains_key(&user), "unknown user {user}");
        if let Some(max) = self.opts.max_apps_per_user {
            let mut apps: Vec<&str> = self
                .grants
                .values()
                .filter(|g| g.user == user && g.state == GrantState::Live && g.expires_ms > now)
                .map(|g| g.app.as_str())
                .collect();
            apps.sort();
            apps.dedup();
            if !apps.contains(&app) && apps.len() >= max {
                return Err(40140122);
            }
        }
        let id = self.next_grant;
        self.next_grant += 1;
        let refresh = mint_token("r");
        let access = mint_token("a");
        let ttl = self.opts.access_token_ttl.as_millis() as u64;
        self.grants.insert(
            id,
            Grant {
                id,
                user,
                app: app.to_string(),
                issued_ms: now,
                expires_ms: now + self.opts.grant_ttl.as_millis() as u64,
                state: GrantState::Live,
                refresh_token: refresh.clone(),
                access_token: access.clone(),
                access_expires_ms: now + ttl,
                last_issue_ms: now,
                refresh_ok: 0,
                refresh_attempts: 0,
                refresh_too_frequent: 0,
                dead_refresh: Vec::new(),
            },
        );
        self.refresh_index.insert(refresh.clone(), id);
        self.access_index.insert(access.clone(), id);
        // Grant limit: keep at most N live grants per (user, app); the oldest goes first.
        // Expired grants do not count (they are dead anyway).
        let limit = self.opts.grant_limit.max(1);
        let mut live: Vec<u64> = self
            .grants
            .values()
            .filter(|g| g.user == user && g.app == app && g.state == GrantState::Live && g.expires_ms > now)
            .map(|g| g.id)
            .collect();
        live.sort();
        while live.len() > limit {
            let oldest = live.remove(0);
            self.grants.get_mut(&oldest).unwrap().state = GrantState::Evicted;
        }
        Ok(Tokens { access_token: access, refresh_token: refresh, expires_in: ttl / 1000, grant: id })
    }

    pub fn set_grant_state(&mut self, grant: u64, s: GrantState) {
        if let Some(g) = self.grants.get_mut(&grant) {
            g.state = s;
        }
    }

    pub fn grant_info(&self, id: u64, now: u64) -> Option<GrantInfo> {
        let g = self.grants.get(&id)?;
        Some(GrantInfo {
            id,
            user: g.user,
            app_id: g.app.clone(),
            state: g.state,
            expired: now >= g.expires_ms,
            refresh_token: g.refresh_token.clone(),
            access_token: g.access_token.clone(),
            issued_unix: g.issued_ms / 1000,
            expires_unix: g.expires_ms / 1000,
            access_expires_unix: g.access_expires_ms / 1000,
            refresh_count: g.refresh_ok,
            refresh_attempts: g.refresh_attempts,
            refresh_too_frequent: g.refresh_too_frequent,
            dead_refresh_tokens: g.dead_refresh.clone(),
        })
    }

    pub fn refresh_token_live(&self, token: &str, now: u64) -> bool {
        match self.refresh_index.get(token).and_then(|id| self.grants.get(id)) {
            Some(g) => g.state == GrantState::Live && g.refresh_token == token && now < g.expires_ms,
            None => false,
        }
    }

    /// Refresh (ref §2.3/§2.4).  Order of checks:
    /// unknown token → garbage; grant evicted/revoked or token rotated away → 40140116;
    /// grant past its lifetime → 40140119; too soon after the last issuance → 40140117
    /// (token stays valid: the docs say "back off, then retry").
    pub fn refresh(&mut self, token: &str, now: u64) -> Result<Tokens, RefreshError> {
        let Some(&gid) = self.refresh_index.get(token) else {
            return Err(RefreshError::Garbage);
        };
        let min_iv = self.opts.min_refresh_interval.as_millis() as u64;
        let ttl = self.opts.access_token_ttl.as_millis() as u64;
        let g = self.grants.get_mut(&gid).unwrap();
        g.refresh_attempts += 1;
        if g.state != GrantState::Live || g.refresh_token != token {
            return Err(RefreshError::NoAuth);
        }
        if now >= g.expires_ms {
            return Err(RefreshError::Expired);
        }
        // Stricter reading: the interval counts from the last issuance, including the
        // grant itself (ref §2.4 only says "too frequent"; p115client: "cannot refresh
        // again within a short time").
        if now < g.last_issue_ms + min_iv {
            g.refresh_too_frequent += 1;
            return Err(RefreshError::TooFrequent);
        }
        let new_r = mint_token("r");
        let new_a = mint_token("a");
        let old_r = std::mem::replace(&mut g.refresh_token, new_r.clone());
        g.dead_refresh.push(old_r);
        // The old access token dies with the rotation ("a grant holds exactly one valid
        // refresh token and one current access token", ref §2.4).
        g.access_token = new_a.clone();
        g.access_expires_ms = now + ttl;
        g.last_issue_ms = now;
        g.refresh_ok += 1;
        self.refresh_index.insert(new_r.clone(), gid);
        self.access_index.insert(new_a.clone(), gid);
        Ok(Tokens { access_token: new_a, refresh_token: new_r, expires_in: ttl / 1000, grant: gid })
    }

    /// Bearer check (ref §13.2): unknown → 40140123; expired, rotated away, evicted or
    /// revoked → 40140125.
    pub fn check_access(&self, token: &str, now: u64) -> Result<(u64, u64), AccessError> {
        let Some(&gid) = self.access_index.get(token) else {
            return Err(AccessError::Malformed);
        };
        let g = &self.grants[&gid];
        if g.state != GrantState::Live || g.access_token != token || now >= g.access_expires_ms || now >= g.expires_ms {
            return Err(AccessError::Invalid);
        }
        Ok((g.user, gid))
    }

    // ------------------------------------------------------------------ files

    pub fn add_blob(&mut self, b: Bytes) -> String {
        let sha = sha1_hex(&b);
        self.blobs.entry(sha.clone()).or_insert(b);
        sha
    }

    pub fn mint_pick_code(&mut self, is_dir: bool) -> String {
        // Pick codes are opaque lowercase alphanumerics of ~17-18 chars (ref §1.2); folders
        // start with "f" as in the real scheme (115-web §2.7).
        loop {
            let pc = if is_dir { format!("f{}", rand_lower(17)) } else { rand_lower(17) };
            let pc = if !is_dir && pc.starts_with('f') { format!("a{}", &pc[1..]) } else { pc };
            if !self.pick_index.contains_key(&pc) && !self.uploads.contains_key(&pc) {
                return pc;
            }
        }
    }

    /// Is `dir` an existing visible folder of `user` (0 = root)?
    pub fn is_dir_of(&self, user: u64, dir: u64) -> bool {
        dir == 0 || self.nodes.get(&dir).is_some_and(|n| n.user == user && n.is_dir && self.visible(n))
    }

    /// Not in the recycle bin, neither itself nor an ancestor.
    pub fn visible(&self, n: &Node) -> bool {
        let mut cur = n;
        loop {
            if cur.recycled.is_some() {
                return false;
            }
            if cur.parent == 0 {
                return true;
            }
            match self.nodes.get(&cur.parent) {
                Some(p) => cur = p,
                None => return false,
            }
        }
    }

    pub fn visible_node(&self, user: u64, id: u64) -> Option<&Node> {
        self.nodes.get(&id).filter(|n| n.user == user && self.visible(n))
    }

    pub fn visible_children(&self, user: u64, dir: u64) -> Vec<u64> {
        self.nodes
            .values()
            .filter(|n| n.user == user && n.parent == dir && n.recycled.is_none())
            .map(|n| n.id)
            .collect()
    }

    /// First (lowest id) visible child with this name.
    pub fn child_named(&self, user: u64, dir: u64, name: &str) -> Option<u64> {
        if dir != 0 && !self.is_dir_of(user, dir) {
            return None;
        }
        self.nodes
            .values()
            .filter(|n| n.user == user && n.parent == dir && n.recycled.is_none() && n.name == name)
            .map(|n| n.id)
            .min()
    }

    pub fn create_node(
        &mut self,
        user: u64,
        parent: u64,
        name: &str,
        is_dir: bool,
        sha1: Option<String>,
        now: u64,
    ) -> Result<u64, i64> {
        if !self.is_dir_of(user, parent) {
            return Err(20009);
        }
        let size = sha1.as_ref().and_then(|s| self.blobs.get(s)).map(|b| b.len() as u64).unwrap_or(0);
        let pc = self.mint_pick_code(is_dir);
        Ok(self.insert_node(user, parent, name, is_dir, sha1, size, pc, now))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn insert_node(
        &mut self,
        user: u64,
        parent: u64,
        name: &str,
        is_dir: bool,
        sha1: Option<String>,
        size: u64,
        pick_code: String,
        now: u64,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1 + (rand::random::<u8>() % 7) as u64;
        self.pick_index.insert(pick_code.clone(), id);
        self.nodes.insert(
            id,
            Node {
                id,
                user,
                parent,
                name: name.to_string(),
                is_dir,
                sha1,
                size,
                pick_code,
                ptime: now,
                utime: now,
                star: false,
                recycled: None,
            },
        );
        if parent != 0 {
            if let Some(p) = self.nodes.get_mut(&parent) {
                p.utime = now;
            }
        }
        id
    }

    pub fn entry_of(&self, n: &Node) -> Entry {
        Entry {
            id: n.id,
            user: n.user,
            parent: n.parent,
            name: n.name.clone(),
            is_dir: n.is_dir,
            size: n.size,
            sha1: n.sha1.clone(),
            pick_code: n.pick_code.clone(),
            ptime: n.ptime,
            utime: n.utime,
            starred: n.star,
            in_recycle_bin: !self.visible(n),
        }
    }

    /// Ancestors from the root (excluded) down to the direct parent of `id`.
    pub fn ancestors(&self, id: u64) -> Vec<u64> {
        let mut v = Vec::new();
        let mut cur = self.nodes.get(&id).map(|n| n.parent).unwrap_or(0);
        while cur != 0 {
            v.push(cur);
            cur = self.nodes.get(&cur).map(|n| n.parent).unwrap_or(0);
        }
        v.reverse();
        v
    }

    /// All descendants (any depth, including recycled ones below).
    pub fn descendants(&self, id: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut stack = vec![id];
        while let Some(d) = stack.pop() {
            for n in self.nodes.values().filter(|n| n.parent == d) {
                out.push(n.id);
                if n.is_dir {
                    stack.push(n.id);
                }
            }
        }
        out
    }

    pub fn used_space(&self, user: u64) -> u64 {
        self.nodes.values().filter(|n| n.user == user && !n.is_dir).map(|n| n.size).sum()
    }

    pub fn offline_complete(&mut self, info_hash: &str, content: &[u8], now: u64) -> Option<u64> {
        let idx = self.offline.iter().position(|t| t.info_hash == info_hash)?;
        let (user, dir, name) = {
            let t = &self.offline[idx];
            (t.user, t.wp_path_id, t.name.clone())
        };
        let sha = self.add_blob(Bytes::copy_from_slice(content));
        let dir = if self.is_dir_of(user, dir) { dir } else { 0 };
        let fid = self.create_node(user, dir, &name, false, Some(sha), now).ok()?;
        let t = &mut self.offline[idx];
        t.status = 2;
        t.percent_done = 100.0;
        t.size = content.len() as u64;
        t.file_id = Some(fid);
        t.last_update = now;
        Some(fid)
    }
}

fn mint_token(_kind: &str) -> String {
    // Opaque; real tokens are long random strings.
    rand_alnum(64)
}
