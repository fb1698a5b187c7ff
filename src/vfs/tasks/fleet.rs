//! The copy tasks of a fleet of replicas, in Redis (`[server] state = "redis://…"`).
//!
//! Each replica has an id (host name, pid and a random part, logged at start) and a
//! heartbeat key with a TTL ([`HEARTBEAT_TTL`]) it renews every [`BEAT`]. Keys, in the
//! `tasks` room:
//!
//! - `tasks:info` (hash): task id → its last [`TaskInfo`] (JSON, with `replica`), written
//!   when the task starts, every beat while it runs, and when it ends;
//! - `tasks:done` (sorted set): finished task ids by end time; the oldest beyond
//!   `keep_finished` leave both;
//! - `tasks:alive:<replica>`: the heartbeat. A task still `running` whose replica has no
//!   heartbeat is shown (and rewritten, compare-and-set: [`SETTLE`]) as failed,
//!   interrupted;
//! - `tasks:claim:<digest of owner, kind, from, to>`: the id of the task doing exactly
//!   this (`SET NX`, TTL renewed with the heartbeat, released at the end): a request
//!   repeated on another replica joins that task instead of copying again;
//! - `tasks:aside:<replica>` (set): the hidden entries that replica is building
//!   ([`super::Leftovers`]), `tasks:adopted:<replica>` what it took over from dead
//!   replicas, and `tasks:replicas` the replicas that have such lists. A replica whose
//!   heartbeat expired has its lists moved to a live one by one script (so exactly one
//!   takes them), which removes the entries through its own mounts.
//!
//! No secrets go into Redis: user names, paths and sizes only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Script;
use sha2::Digest;

use super::{lock, Task, TaskInfo};
use crate::state::shared::Shared;

/// How often a replica renews its heartbeat and the snapshots of its running tasks.
pub const BEAT: Duration = Duration::from_secs(1);
/// A replica silent this long is taken for dead: its running tasks show as
/// interrupted, its claims lapse and its half-built targets go to another replica.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(10);

const ROOM: &str = "tasks";

/// Record a final snapshot, keep the newest `keep` finished, release the claim. With an
/// old snapshot (ARGV[5] not empty: the task of a silent replica, shown interrupted),
/// only if that replica is still silent and the snapshot is still the one read.
/// KEYS: info, done, claim, the replica's heartbeat. ARGV: id, json, score, keep, old.
const SETTLE: &str = r"
if ARGV[5] ~= '' then
  if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
  if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[5] then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local n = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if n > 0 then
  local old = redis.call('ZRANGE', KEYS[2], 0, n - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - 1)
  for _, id in ipairs(old) do redis.call('HDEL', KEYS[1], id) end
end
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
return 1
";

/// Move a silent replica's lists of half-built entries to ours. KEYS: its heartbeat,
/// its aside list, its adopted list, our adopted list, the replicas set. ARGV: its id.
/// Returns how many entries moved, or -1 when it is alive.
const ADOPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local n = 0
for _, k in ipairs({KEYS[2], KEYS[3]}) do
  for _, e in ipairs(redis.call('SMEMBERS', k)) do
    redis.call('SADD', KEYS[4], e)
    n = n + 1
  end
  redis.call('DEL', k)
end
redis.call('SREM', KEYS[5], ARGV[1])
return n
";

fn scripts() -> &'static (Script, Script) {
    static S: std::sync::OnceLock<(Script, Script)> = std::sync::OnceLock::new();
    S.get_or_init(|| (Script::new(SETTLE), Script::new(ADOPT)))
}

/// This process's id among the replicas: host name, pid, random part.
fn replica_id() -> String {
    let host = hostname();
    let host: String = host.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.').take(48).collect();
    let host = if host.is_empty() { "host".to_string() } else { host };
    format!("{host}-{}-{:06x}", std::process::id(), rand::random::<u32>() & 0xff_ffff)
}

#[cfg(unix)]
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(not(unix))]
fn hostname() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_default()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Logs a Redis failure once per outage (and the recovery).
#[derive(Default)]
struct Outage(AtomicBool);

impl Outage {
    fn failed(&self, what: &str, e: &dyn std::fmt::Display) {
        if !self.0.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "copy tasks: Redis unreachable ({what}: {e}); this replica shows and keeps its own until it is back"
            );
        }
    }

    fn ok(&self) {
        if self.0.swap(false, Ordering::Relaxed) {
            tracing::info!("copy tasks: Redis reachable again");
        }
    }
}

/// What a claim of a copy found.
pub enum Claim {
    /// Ours (or Redis could not tell: the copy runs rather than wait for Redis).
    Ours(Option<String>),
    /// Task `id` holds it.
    Held(String),
}

/// A task published to Redis, until its final snapshot is written.
struct Published {
    task: Arc<Task>,
    claim: Option<String>,
}

/// This replica's view of the fleet's tasks.
pub struct Fleet {
    shared: Arc<Shared>,
    me: String,
    keep_finished: usize,
    published: Mutex<HashMap<String, Published>>,
    /// Woken when a published task ends (its final snapshot goes at once).
    pub(super) wake: Arc<tokio::sync::Notify>,
    outage: Outage,
    /// The heartbeat was written at least once (its absence since means a lapse).
    beaten: AtomicBool,
}

impl Fleet {
    pub fn new(shared: Arc<Shared>, keep_finished: usize) -> Fleet {
        let me = replica_id();
        tracing::info!(replica = %me, "copy tasks shared in Redis at {} as replica {me}", shared.shown());
        Fleet {
            shared,
            me,
            keep_finished,
            published: Mutex::default(),
            wake: Arc::default(),
            outage: Outage::default(),
            beaten: AtomicBool::new(false),
        }
    }

    pub fn me(&self) -> &str {
        &self.me
    }

    pub(super) fn key(&self, name: &str) -> String {
        self.shared.key(ROOM, name)
    }

    fn alive_key(&self, replica: &str) -> String {
        self.key(&format!("alive:{replica}"))
    }

    pub(super) fn aside_key(&self, replica: &str) -> String {
        self.key(&format!("aside:{replica}"))
    }

    pub(super) fn adopted_key(&self, replica: &str) -> String {
        self.key(&format!("adopted:{replica}"))
    }

    fn claim_key(&self, t: &Task) -> String {
        let mut h = sha2::Sha256::new();
        for part in [t.owner.as_str(), t.kind, &t.from, &t.to] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        self.key(&format!("claim:{}", &hex::encode(h.finalize())[..32]))
    }

    pub(super) fn shared(&self) -> &Shared {
        &self.shared
    }

    fn ttl_ms(&self) -> u64 {
        HEARTBEAT_TTL.as_millis() as u64
    }

    /// Claim the copy `t` does for the fleet.
    pub async fn claim(&self, t: &Task) -> Claim {
        let key = self.claim_key(t);
        for _ in 0..3 {
            let set: redis::RedisResult<Option<String>> =
                self.shared.query(redis::cmd("SET").arg(&key).arg(&t.id).arg("NX").arg("PX").arg(self.ttl_ms())).await;
            match set {
                Ok(Some(_)) => return Claim::Ours(Some(key)),
                Ok(None) => {}
                Err(e) => {
                    self.outage.failed("claiming a copy", &e);
                    return Claim::Ours(None);
                }
            }
            match self.shared.query::<Option<String>>(redis::cmd("GET").arg(&key)).await {
                Ok(Some(holder)) => return Claim::Held(holder),
                // Released in between: try again.
                Ok(None) => {}
                Err(e) => {
                    self.outage.failed("claiming a copy", &e);
                    return Claim::Ours(None);
                }
            }
        }
        Claim::Ours(None)
    }

    /// Publish `t` (started here; `claim`: its claim key) and keep it published.
    pub async fn track(&self, t: Arc<Task>, claim: Option<String>) {
        let _ = self.write_running(&t).await;
        lock(&self.published).insert(t.id.clone(), Published { task: t, claim });
    }

    fn snapshot(&self, t: &Task) -> String {
        let mut i = t.info();
        i.replica = Some(self.me.clone());
        serde_json::to_string(&i).unwrap_or_default()
    }

    async fn write_running(&self, t: &Task) -> redis::RedisResult<()> {
        let json = self.snapshot(t);
        self.shared.query::<()>(redis::cmd("HSET").arg(self.key("info")).arg(&t.id).arg(json)).await
    }

    /// One beat: the heartbeat, running tasks' snapshots and claims, final snapshots.
    async fn beat(&self) -> redis::RedisResult<()> {
        let ttl = self.ttl_ms();
        let alive = self.alive_key(&self.me);
        if self.beaten.load(Ordering::Relaxed) && !self.shared.query::<bool>(redis::cmd("EXISTS").arg(&alive)).await? {
            tracing::warn!(
                "copy tasks: this replica's heartbeat lapsed (Redis out of reach for over {} s): the other replicas \
                 took its running tasks for interrupted and may remove what they are building",
                HEARTBEAT_TTL.as_secs()
            );
        }
        self.shared.query::<()>(redis::cmd("SET").arg(&alive).arg(1).arg("PX").arg(ttl)).await?;
        self.beaten.store(true, Ordering::Relaxed);
        let list: Vec<(String, Arc<Task>, Option<String>)> =
            lock(&self.published).iter().map(|(id, p)| (id.clone(), Arc::clone(&p.task), p.claim.clone())).collect();
        for (id, t, claim) in list {
            if t.is_running() {
                self.write_running(&t).await?;
                if let Some(c) = &claim {
                    self.shared.query::<()>(redis::cmd("PEXPIRE").arg(c).arg(ttl)).await?;
                }
                continue;
            }
            let claim = claim.unwrap_or_else(|| self.key("claim:none"));
            let _: i64 = self.settle(&id, &self.snapshot(&t), &claim, &self.me, "").await?;
            lock(&self.published).remove(&id);
        }
        Ok(())
    }

    /// Run [`SETTLE`] for task `id` of `replica`.
    async fn settle(&self, id: &str, json: &str, claim: &str, replica: &str, old: &str) -> redis::RedisResult<i64> {
        let keys = [self.key("info"), self.key("done"), claim.to_string(), self.alive_key(replica)];
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (score, keep) = (now_ms() as i64, self.keep_finished as i64);
        self.shared.script(&scripts().0, &keys, &[&id, &json, &score, &keep, &old]).await
    }

    /// Beat every [`BEAT`] (and at once when a task ends), for the life of the process.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let f = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                match f.beat().await {
                    Ok(()) => f.outage.ok(),
                    Err(e) => f.outage.failed("heartbeat", &e),
                }
                tokio::select! {
                    _ = tokio::time::sleep(BEAT) => {}
                    _ = f.wake.notified() => {}
                }
            }
        })
    }

    /// Every task in Redis, a running one of a silent replica shown (and stored) as
    /// interrupted. `None` when Redis cannot be read.
    pub async fn all(&self) -> Option<Vec<TaskInfo>> {
        let raw: HashMap<String, String> = match self.shared.query(redis::cmd("HGETALL").arg(self.key("info"))).await {
            Ok(m) => m,
            Err(e) => {
                self.outage.failed("listing tasks", &e);
                return None;
            }
        };
        let mut out = vec![];
        let mut alive: HashMap<String, bool> = HashMap::new();
        for (id, json) in raw {
            let Ok(mut info) = serde_json::from_str::<TaskInfo>(&json) else {
                tracing::warn!(task = %id, "copy tasks: an unreadable record in Redis, ignored");
                continue;
            };
            if info.state == "running" {
                let replica = info.replica.clone().unwrap_or_default();
                let live = match alive.get(&replica) {
                    Some(l) => *l,
                    None => {
                        let l = replica == self.me
                            || self
                                .shared
                                .query::<bool>(redis::cmd("EXISTS").arg(self.alive_key(&replica)))
                                .await
                                .unwrap_or(true);
                        alive.insert(replica.clone(), l);
                        l
                    }
                };
                if !live {
                    info = self.bury(&id, info, &json, &replica).await;
                }
            }
            out.push(info);
        }
        self.outage.ok();
        Some(out)
    }

    /// The task of a silent replica as interrupted (stored so when nobody else did).
    async fn bury(&self, id: &str, mut info: TaskInfo, old: &str, replica: &str) -> TaskInfo {
        info.state = "failed".into();
        info.status = Some(503);
        info.error = Some(format!(
            "interrupted: replica {replica}, which ran it, stopped (no heartbeat for {} s); nothing was \
             put in place at the target; repeat the request to copy again",
            HEARTBEAT_TTL.as_secs()
        ));
        info.finished = Some(now_ms() / 1000);
        let json = serde_json::to_string(&info).unwrap_or_default();
        if let Ok(1) = self.settle(id, &json, &self.key("claim:none"), replica, old).await {
            tracing::warn!(task = %id, replica = %replica, "copy task interrupted: its replica stopped");
        }
        info
    }

    /// One task from Redis (with the interruption rule of [`all`](Self::all)).
    pub async fn get(&self, id: &str) -> Option<TaskInfo> {
        let json: Option<String> = match self.shared.query(redis::cmd("HGET").arg(self.key("info")).arg(id)).await {
            Ok(j) => j,
            Err(e) => {
                self.outage.failed("reading a task", &e);
                return None;
            }
        };
        let json = json?;
        let info: TaskInfo = serde_json::from_str(&json).ok()?;
        if info.state != "running" {
            return Some(info);
        }
        let replica = info.replica.clone().unwrap_or_default();
        let live = replica == self.me
            || self.shared.query::<bool>(redis::cmd("EXISTS").arg(self.alive_key(&replica))).await.unwrap_or(true);
        if live {
            Some(info)
        } else {
            Some(self.bury(id, info, &json, &replica).await)
        }
    }

    /// Take over the half-built lists of silent replicas; how many entries came.
    pub async fn adopt(&self) -> usize {
        let replicas: Vec<String> = match self.shared.query(redis::cmd("SMEMBERS").arg(self.key("replicas"))).await {
            Ok(r) => r,
            Err(e) => {
                self.outage.failed("looking for dead replicas", &e);
                return 0;
            }
        };
        let mut n = 0;
        for r in replicas.iter().filter(|r| **r != self.me) {
            let keys = [
                self.alive_key(r),
                self.aside_key(r),
                self.adopted_key(r),
                self.adopted_key(&self.me),
                self.key("replicas"),
            ];
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            match self.shared.script::<i64>(&scripts().1, &keys, &[r]).await {
                Ok(m) if m >= 0 => {
                    tracing::info!(replica = %r, "took over {m} half-built copy target(s) of a replica that stopped");
                    n += m as usize;
                }
                Ok(_) => {}
                Err(e) => {
                    self.outage.failed("taking over a dead replica's copies", &e);
                    break;
                }
            }
        }
        n
    }

    pub(super) fn outage_failed(&self, what: &str, e: &dyn std::fmt::Display) {
        self.outage.failed(what, e);
    }
}
