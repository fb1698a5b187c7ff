//! Copies and moves between mounts as tasks: a copy that outlasts its request keeps
//! going, visible at `GET /-/tasks` and in `pandav tasks`, with its progress logged.
//!
//! The registry's API is storage-free: callers start a task, report progress through
//! its [`Progress`], finish it with an [`Outcome`], and read [`TaskInfo`] snapshots
//! (plain, serialisable data). Where the snapshots live is this module's business: in
//! this process's memory; and with `[server] state = "redis://…"` also in Redis
//! ([`fleet`]), so that every replica lists the whole fleet's tasks, a request repeated
//! on another replica joins the running copy instead of starting a second one, and a
//! task whose replica died shows as interrupted. The live parts (the counters a running
//! copy updates, the wake-up of requests waiting for it) stay with the process that
//! runs the copy; Redis holds `TaskInfo`s.
//!
//! Bounds: at most `max_running` tasks run at once per process (more are refused,
//! 503), and the `keep_finished` most recent finished ones are kept for looking at (in
//! memory, and in Redis for the fleet). Tasks do not survive their process (a copy cut
//! by a restart is not resumed); what does survive is the short list of half-built
//! targets ([`Leftovers`]), so that the hidden entries a killed copy left at the target
//! are removed: by the same server when it comes back (a file in the state dir), or,
//! with Redis, by any live replica once the dead one's heartbeat has expired.

pub mod fleet;

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::mount::Mount;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// What a copy reports while it runs. Shared by the copy and the registry; a copy run
/// without a task uses a default one nobody reads.
#[derive(Debug, Default)]
pub struct Progress {
    bytes_total: AtomicU64,
    files_total: AtomicU64,
    /// Bytes of files finished.
    bytes_finished: AtomicU64,
    /// Bytes read of the file in progress.
    current: AtomicU64,
    files_done: AtomicU64,
    /// Bytes stored by hash (no body sent).
    bytes_by_hash: AtomicU64,
}

impl Progress {
    /// More to do: `bytes` in `files` files.
    pub fn plan(&self, bytes: u64, files: u64) {
        self.bytes_total.fetch_add(bytes, Ordering::Relaxed);
        self.files_total.fetch_add(files, Ordering::Relaxed);
    }

    /// `n` more bytes of the current file went through.
    pub fn moved(&self, n: u64) {
        self.current.fetch_add(n, Ordering::Relaxed);
    }

    /// A file of `size` bytes is complete (`by_hash`: stored without its body).
    pub fn file_done(&self, size: u64, by_hash: bool) {
        self.bytes_finished.fetch_add(size, Ordering::Relaxed);
        self.current.store(0, Ordering::Relaxed);
        self.files_done.fetch_add(1, Ordering::Relaxed);
        if by_hash {
            self.bytes_by_hash.fetch_add(size, Ordering::Relaxed);
        }
    }

    /// The current file failed or was skipped: its bytes no longer count.
    pub fn file_dropped(&self) {
        self.current.store(0, Ordering::Relaxed);
    }

    pub fn bytes_done(&self) -> u64 {
        self.bytes_finished.load(Ordering::Relaxed) + self.current.load(Ordering::Relaxed)
    }

    pub fn bytes_total(&self) -> u64 {
        self.bytes_total.load(Ordering::Relaxed)
    }
}

/// One member of a folder copy that failed (the rest was copied).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The member's path as clients see it (mount path included).
    pub path: String,
    /// The HTTP status that describes the failure.
    pub status: u16,
    pub error: String,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Done (`replaced`: an existing target was replaced), with the members of a folder
    /// copy that failed, if any.
    Done { replaced: bool, failures: Vec<Failure> },
    /// Nothing was changed at the target (and, for a move, the source is intact).
    Failed { status: u16, error: String, retry_after: Option<u64> },
}

/// A snapshot of one task, as `GET /-/tasks` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub id: String,
    /// `copy` or `move`.
    pub kind: String,
    /// The user who started it.
    pub owner: String,
    pub from: String,
    pub to: String,
    /// `running`, `done` or `failed` (`done` with `failures` when some members of a
    /// folder copy failed).
    pub state: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub files_done: u64,
    pub files_total: u64,
    /// Bytes stored by hash at the target, without their body.
    pub bytes_by_hash: u64,
    /// Average bytes per second since the start.
    pub rate: u64,
    /// Unix seconds.
    pub started: u64,
    pub finished: Option<u64>,
    pub error: Option<String>,
    /// The HTTP status of the final answer (201, 204, 207, or the failure's).
    pub status: Option<u16>,
    pub failures: Vec<Failure>,
    /// The replica running it (with shared state in Redis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

struct End {
    at: SystemTime,
    elapsed: Duration,
    outcome: Outcome,
}

/// One running or finished task.
pub struct Task {
    pub id: String,
    pub kind: &'static str,
    pub owner: String,
    pub from: String,
    pub to: String,
    started: SystemTime,
    started_at: Instant,
    progress: Arc<Progress>,
    end: Mutex<Option<End>>,
    done: tokio::sync::watch::Sender<bool>,
    /// Told when the task ends (the fleet publishes its final snapshot).
    wake: Option<Arc<tokio::sync::Notify>>,
}

impl Task {
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// The progress, for a copy that reports from tasks of its own.
    pub fn progress_arc(&self) -> &Arc<Progress> {
        &self.progress
    }

    pub fn is_running(&self) -> bool {
        lock(&self.end).is_none()
    }

    /// Record the outcome and wake whoever waits. Only the first call counts.
    pub fn finish(&self, outcome: Outcome) {
        {
            let mut end = lock(&self.end);
            if end.is_some() {
                return;
            }
            *end = Some(End { at: SystemTime::now(), elapsed: self.started_at.elapsed(), outcome });
        }
        self.done.send_replace(true);
        if let Some(w) = &self.wake {
            w.notify_one();
        }
    }

    /// Wait until the task has finished; its outcome.
    pub async fn wait(&self) -> Outcome {
        let mut rx = self.done.subscribe();
        let _ = rx.wait_for(|d| *d).await;
        lock(&self.end).as_ref().map(|e| e.outcome.clone()).unwrap_or(Outcome::Failed {
            status: 500,
            error: "the task ended without an outcome".into(),
            retry_after: None,
        })
    }

    pub fn info(&self) -> TaskInfo {
        let p = &self.progress;
        let end = lock(&self.end);
        let elapsed = end.as_ref().map_or_else(|| self.started_at.elapsed(), |e| e.elapsed);
        let done = p.bytes_done();
        let rate = if elapsed.as_secs_f64() > 0.0 { (done as f64 / elapsed.as_secs_f64()) as u64 } else { 0 };
        let (state, error, status, failures) = match end.as_ref().map(|e| &e.outcome) {
            None => ("running", None, None, vec![]),
            Some(Outcome::Done { replaced, failures }) => {
                let code = if !failures.is_empty() {
                    207
                } else if *replaced {
                    204
                } else {
                    201
                };
                ("done", None, Some(code), failures.clone())
            }
            Some(Outcome::Failed { status, error, .. }) => ("failed", Some(error.clone()), Some(*status), vec![]),
        };
        TaskInfo {
            id: self.id.clone(),
            kind: self.kind.to_string(),
            owner: self.owner.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            state: state.into(),
            bytes_done: done,
            bytes_total: p.bytes_total(),
            files_done: p.files_done.load(Ordering::Relaxed),
            files_total: p.files_total.load(Ordering::Relaxed),
            bytes_by_hash: p.bytes_by_hash.load(Ordering::Relaxed),
            rate,
            started: unix(self.started),
            finished: end.as_ref().map(|e| unix(e.at)),
            error,
            status,
            failures,
            replica: None,
        }
    }
}

/// Why a task was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooMany(pub usize);

/// The task registry.
pub struct Tasks {
    list: Mutex<VecDeque<Arc<Task>>>,
    max_running: usize,
    keep_finished: usize,
    next: AtomicU64,
    leftovers: Leftovers,
    /// The fleet's tasks in Redis, when the state is shared.
    fleet: Option<Arc<fleet::Fleet>>,
}

/// Finished tasks kept when the caller does not say.
pub const KEEP_FINISHED: usize = 100;

/// A task asked for by [`Tasks::begin`].
pub enum Begun {
    /// Started here: the caller runs it.
    Started(Arc<Task>),
    /// The same copy of the same user already runs in this process.
    Here(Arc<Task>),
    /// … or on another replica: task `id` (its snapshot, when it could be read).
    Elsewhere(String, Option<Box<TaskInfo>>),
}

impl Tasks {
    /// A registry; half-built targets are listed in `leftovers` (a file in the state
    /// dir; `None`: not kept).
    pub fn new(max_running: usize, keep_finished: usize, leftovers: Option<PathBuf>) -> Tasks {
        Tasks::build(max_running, keep_finished, leftovers, None)
    }

    /// A registry whose tasks the fleet of replicas sharing `shared` sees; half-built
    /// targets are listed in Redis (spool files, this machine's own, in `leftovers`).
    /// [`spawn_reporter`](Self::spawn_reporter) starts the heartbeat.
    pub fn shared(
        max_running: usize,
        keep_finished: usize,
        leftovers: Option<PathBuf>,
        shared: Arc<crate::state::shared::Shared>,
    ) -> Tasks {
        let f = Arc::new(fleet::Fleet::new(shared, keep_finished));
        Tasks::build(max_running, keep_finished, leftovers, Some(f))
    }

    fn build(
        max_running: usize,
        keep_finished: usize,
        leftovers: Option<PathBuf>,
        fleet: Option<Arc<fleet::Fleet>>,
    ) -> Tasks {
        Tasks {
            list: Mutex::new(VecDeque::new()),
            max_running: max_running.max(1),
            keep_finished,
            // Ids start from the clock, so that ids of a restarted server do not repeat
            // the ones a client may still hold (and, in a fleet, carry a random part
            // so that two replicas' ids do not meet).
            next: AtomicU64::new(unix(SystemTime::now()) % 1_000_000 * 1000),
            leftovers: Leftovers::open(leftovers, fleet.clone()),
            fleet,
        }
    }

    pub fn leftovers(&self) -> &Leftovers {
        &self.leftovers
    }

    /// Start a task, unless `max_running` run already.
    pub fn start(&self, owner: &str, kind: &'static str, from: &str, to: &str) -> Result<Arc<Task>, TooMany> {
        let mut list = lock(&self.list);
        let running = list.iter().filter(|t| t.is_running()).count();
        if running >= self.max_running {
            return Err(TooMany(self.max_running));
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let id = match &self.fleet {
            Some(_) => format!("{n}-{:04x}", rand::random::<u16>()),
            None => n.to_string(),
        };
        let t = Arc::new(Task {
            id,
            kind,
            owner: owner.into(),
            from: from.into(),
            to: to.into(),
            started: SystemTime::now(),
            started_at: Instant::now(),
            progress: Arc::default(),
            end: Mutex::new(None),
            done: tokio::sync::watch::channel(false).0,
            wake: self.fleet.as_ref().map(|f| Arc::clone(&f.wake)),
        });
        list.push_back(Arc::clone(&t));
        self.prune(&mut list);
        Ok(t)
    }

    /// Start the task of `owner` doing `kind` from `from` to `to`, or join the one
    /// doing exactly this already, in this process or (with Redis) on another replica:
    /// a client repeating its request, perhaps through another replica behind a load
    /// balancer, never starts a second copy into the same target.
    pub async fn begin(&self, owner: &str, kind: &'static str, from: &str, to: &str) -> Result<Begun, TooMany> {
        if let Some(t) = self.running_same(owner, kind, from, to) {
            return Ok(Begun::Here(t));
        }
        let t = self.start(owner, kind, from, to)?;
        let Some(f) = &self.fleet else { return Ok(Begun::Started(t)) };
        match f.claim(&t).await {
            fleet::Claim::Ours(claim) => {
                f.track(Arc::clone(&t), claim).await;
                Ok(Begun::Started(t))
            }
            fleet::Claim::Held(id) => {
                lock(&self.list).retain(|x| !Arc::ptr_eq(x, &t));
                if let Some(here) = lock(&self.list).iter().find(|x| x.id == id && x.is_running()) {
                    return Ok(Begun::Here(Arc::clone(here)));
                }
                let info = f.get(&id).await.map(Box::new);
                Ok(Begun::Elsewhere(id, info))
            }
        }
    }

    /// Wait until task `id` of another replica has ended; its outcome (an interrupted
    /// one answers 503 with Retry-After: repeating the request copies again).
    pub async fn wait_elsewhere(&self, id: &str) -> Outcome {
        let Some(f) = &self.fleet else {
            return Outcome::Failed { status: 500, error: "no shared task list".into(), retry_after: None };
        };
        loop {
            if let Some(i) = f.get(id).await {
                match i.state.as_str() {
                    "done" => return Outcome::Done { replaced: i.status == Some(204), failures: i.failures },
                    "failed" => {
                        let status = i.status.unwrap_or(502);
                        return Outcome::Failed {
                            status,
                            error: i.error.unwrap_or_default(),
                            retry_after: (status == 503).then_some(2),
                        };
                    }
                    _ => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Drop the oldest finished tasks beyond the bound.
    fn prune(&self, list: &mut VecDeque<Arc<Task>>) {
        let mut finished = list.iter().filter(|t| !t.is_running()).count();
        while finished > self.keep_finished {
            match list.iter().position(|t| !t.is_running()) {
                Some(i) => {
                    list.remove(i);
                    finished -= 1;
                }
                None => break,
            }
        }
    }

    /// The running task of `owner` doing exactly this (a client repeating its request
    /// joins it instead of starting the copy again).
    pub fn running_same(&self, owner: &str, kind: &str, from: &str, to: &str) -> Option<Arc<Task>> {
        lock(&self.list)
            .iter()
            .find(|t| t.is_running() && t.owner == owner && t.kind == kind && t.from == from && t.to == to)
            .cloned()
    }

    fn local(&self, viewer: &str, admin: bool) -> Vec<TaskInfo> {
        let mut list = lock(&self.list);
        self.prune(&mut list);
        let me = self.fleet.as_ref().map(|f| f.me().to_string());
        list.iter()
            .filter(|t| admin || t.owner == viewer)
            .map(|t| TaskInfo { replica: me.clone(), ..t.info() })
            .collect()
    }

    /// The tasks `viewer` may see (their own; every task for an admin), oldest first:
    /// this process's, and with Redis the other replicas' (when Redis cannot be read,
    /// this process's only).
    pub async fn list(&self, viewer: &str, admin: bool) -> Vec<TaskInfo> {
        let mut out = self.local(viewer, admin);
        let Some(f) = &self.fleet else { return out };
        let Some(all) = f.all().await else { return out };
        let here: HashSet<String> = lock(&self.list).iter().map(|t| t.id.clone()).collect();
        out.extend(all.into_iter().filter(|i| !here.contains(&i.id) && (admin || i.owner == viewer)));
        out.sort_by(|a, b| (a.started, &a.id).cmp(&(b.started, &b.id)));
        out
    }

    /// One task, if `viewer` may see it.
    pub async fn get(&self, id: &str, viewer: &str, admin: bool) -> Option<TaskInfo> {
        let me = self.fleet.as_ref().map(|f| f.me().to_string());
        let here = lock(&self.list).iter().find(|t| t.id == id).map(|t| TaskInfo { replica: me, ..t.info() });
        let info = match (here, &self.fleet) {
            (Some(i), _) => Some(i),
            (None, Some(f)) => f.get(id).await,
            (None, None) => None,
        };
        info.filter(|i| admin || i.owner == viewer)
    }

    /// Running tasks (for the progress log).
    pub fn running(&self) -> Vec<Arc<Task>> {
        lock(&self.list).iter().filter(|t| t.is_running()).cloned().collect()
    }

    /// Log the progress of running tasks every `every`, until the registry is dropped;
    /// with Redis, beat the heartbeat and publish the tasks' snapshots too.
    pub fn spawn_reporter(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        if let Some(f) = &self.fleet {
            f.spawn();
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(tasks) = weak.upgrade() else { break };
                for t in tasks.running() {
                    let i = t.info();
                    tracing::info!(
                        task = %i.id,
                        from = %i.from,
                        to = %i.to,
                        "{} running: {} of {} bytes, {} of {} files, {} by hash, {}/s",
                        i.kind,
                        i.bytes_done,
                        i.bytes_total,
                        i.files_done,
                        i.files_total,
                        i.bytes_by_hash,
                        i.rate
                    );
                }
            }
        })
    }
}

/// Hidden entries being built at a target (`Mount::build_aside`), and the spool files
/// their bytes pass through, listed while they are built: in a small file in the state
/// dir, or, with Redis, the entries in this replica's list there (the spool files, this
/// machine's own, stay in the file). A copy killed with the server leaves them listed:
/// [`clean`](Leftovers::clean) removes the entries when their mount is (back) up — an
/// earlier run's from the file, and with Redis those [`adopt`](Leftovers::adopt) took
/// over from replicas whose heartbeat expired — and the spools go when the list is
/// opened at the next start (a spool's own staleness test, by mtime, misses a server
/// restarted within a second of being killed). Entries this process is building are
/// never cleaned.
#[derive(Clone)]
pub struct Leftovers {
    inner: Arc<LeftoverList>,
}

struct LeftoverList {
    path: Option<PathBuf>,
    lock: Mutex<()>,
    fleet: Option<Arc<fleet::Fleet>>,
    /// Entries this process is building.
    live: Mutex<HashSet<Leftover>>,
}

#[derive(Default, Serialize, Deserialize)]
struct LeftoverFile {
    entries: Vec<Leftover>,
    #[serde(default)]
    spools: Vec<PathBuf>,
}

#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Leftover {
    mount: String,
    rel: String,
}

impl Leftover {
    fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl LeftoverList {
    fn read(&self) -> LeftoverFile {
        let Some(p) = &self.path else { return LeftoverFile::default() };
        match std::fs::read(p) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!(file = %p.display(), "unreadable list of half-built copies, ignored: {e}");
                LeftoverFile::default()
            }),
            Err(_) => LeftoverFile::default(),
        }
    }

    fn change(&self, f: impl FnOnce(&mut LeftoverFile)) {
        let Some(p) = &self.path else { return };
        let _g = lock(&self.lock);
        let mut file = self.read();
        f(&mut file);
        let data = serde_json::to_vec(&file).unwrap_or_default();
        if let Err(e) = crate::state::write_atomic(p, &data) {
            tracing::warn!(file = %p.display(), "cannot write the list of half-built copies: {e}");
        }
    }
}

impl Leftovers {
    /// The list at `path` (and in Redis with `fleet`), with the spool files an earlier
    /// run left removed (before this run makes any).
    fn open(path: Option<PathBuf>, fleet: Option<Arc<fleet::Fleet>>) -> Leftovers {
        let inner = LeftoverList { path, lock: Mutex::new(()), fleet, live: Mutex::default() };
        let mut n = 0;
        if inner.read().spools.is_empty() {
            return Leftovers { inner: Arc::new(inner) };
        }
        inner.change(|file| {
            for p in std::mem::take(&mut file.spools) {
                let ours =
                    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(super::spool::TMP_PREFIX));
                // symlink_metadata: a link by that name is not followed, and not removed.
                if ours && std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) && std::fs::remove_file(&p).is_ok()
                {
                    n += 1;
                }
            }
        });
        if n > 0 {
            tracing::info!("removed {n} spool file(s) of copies an earlier run left unfinished");
        }
        Leftovers { inner: Arc::new(inner) }
    }

    fn read(&self) -> LeftoverFile {
        self.inner.read()
    }

    async fn change(&self, f: impl FnOnce(&mut LeftoverFile) + Send + 'static) {
        if self.inner.path.is_none() {
            return;
        }
        let inner = Arc::clone(&self.inner);
        let _ = tokio::task::spawn_blocking(move || inner.change(f)).await;
    }

    /// `rel` on `mount` is being built (written durably before the build starts: in
    /// Redis with a fleet, else — or when Redis cannot take it — in the file).
    pub async fn add(&self, mount: &str, rel: &str) {
        let e = Leftover { mount: mount.into(), rel: rel.into() };
        lock(&self.inner.live).insert(e.clone());
        if let Some(f) = &self.inner.fleet {
            let s = f.shared();
            let r = async {
                s.query::<()>(redis::cmd("SADD").arg(f.aside_key(f.me())).arg(e.json())).await?;
                s.query::<()>(redis::cmd("SADD").arg(f.key("replicas")).arg(f.me())).await
            }
            .await;
            match r {
                Ok(()) => return,
                Err(err) => f.outage_failed("listing a half-built copy (kept in the state dir instead)", &err),
            }
        }
        self.change(|f| f.entries.push(e)).await;
    }

    /// A spool file for a copy's bytes (removed at the next start unless unlisted).
    pub async fn add_spool(&self, path: &std::path::Path) {
        let p = path.to_path_buf();
        self.change(|f| f.spools.push(p)).await;
    }

    /// The spool file at `path` is gone (moved into place, or removed).
    pub async fn remove_spool(&self, path: &std::path::Path) {
        let p = path.to_path_buf();
        self.change(move |f| f.spools.retain(|s| *s != p)).await;
    }

    /// `rel` on `mount` is finished with (in place, or removed).
    pub async fn remove(&self, mount: &str, rel: &str) {
        let e = Leftover { mount: mount.into(), rel: rel.into() };
        lock(&self.inner.live).remove(&e);
        if let Some(f) = &self.inner.fleet {
            let _: redis::RedisResult<()> =
                f.shared().query(redis::cmd("SREM").arg(f.aside_key(f.me())).arg(e.json())).await;
            if !self.read().entries.contains(&e) {
                return;
            }
        }
        self.change(move |f| f.entries.retain(|x| *x != e)).await;
    }

    /// Take over the lists of replicas whose heartbeat expired (with Redis; one
    /// replica gets each list); [`clean`](Self::clean) then removes their entries.
    pub async fn adopt(&self) -> usize {
        match &self.inner.fleet {
            Some(f) => f.adopt().await,
            None => 0,
        }
    }

    /// Entries taken over from dead replicas wait to be cleaned (with Redis).
    pub async fn has_adopted(&self) -> bool {
        let Some(f) = &self.inner.fleet else { return false };
        f.shared().query::<u64>(redis::cmd("SCARD").arg(f.adopted_key(f.me()))).await.is_ok_and(|n| n > 0)
    }

    /// The entries to clean on mount `path`: an earlier run's (the file) and those
    /// taken over from dead replicas; none this process is building.
    async fn stale(&self, path: &str) -> Vec<(Leftover, bool)> {
        let mut out: Vec<(Leftover, bool)> =
            self.read().entries.into_iter().filter(|e| e.mount == path).map(|e| (e, false)).collect();
        if let Some(f) = &self.inner.fleet {
            match f.shared().query::<Vec<String>>(redis::cmd("SMEMBERS").arg(f.adopted_key(f.me()))).await {
                Ok(list) => out.extend(
                    list.iter()
                        .filter_map(|j| serde_json::from_str::<Leftover>(j).ok())
                        .filter(|e| e.mount == path)
                        .map(|e| (e, true)),
                ),
                Err(e) => f.outage_failed("reading half-built copies taken over", &e),
            }
        }
        let live = lock(&self.inner.live);
        out.retain(|(e, _)| !live.contains(e));
        out
    }

    /// Remove what earlier runs (or dead replicas) left half-built on mount `m`;
    /// returns how many went. Only hidden swap names are ever removed.
    pub async fn clean(&self, m: &Mount) -> usize {
        let mut n = 0;
        for (e, adopted) in self.stale(m.path()).await {
            let name = super::mount::split_parent(&e.rel).1;
            let gone = if !name.starts_with(super::mount::SWAP_PREFIX) {
                true
            } else {
                match m.resolve(&e.rel).await {
                    Ok(_) => match m.remove(&e.rel).await {
                        Ok(()) => {
                            n += 1;
                            true
                        }
                        Err(err) => {
                            tracing::warn!(mount = %m.path(), "cannot remove the half-built copy {:?}: {err}", e.rel);
                            false
                        }
                    },
                    Err(super::DriveError::NotFound) => true,
                    Err(_) => false,
                }
            };
            if !gone {
                continue;
            }
            match (adopted, &self.inner.fleet) {
                (true, Some(f)) => {
                    let _: redis::RedisResult<()> =
                        f.shared().query(redis::cmd("SREM").arg(f.adopted_key(f.me())).arg(e.json())).await;
                }
                _ => {
                    let e = e.clone();
                    self.change(move |f| f.entries.retain(|x| *x != e)).await;
                }
            }
        }
        if n > 0 {
            tracing::info!(mount = %m.path(), "removed {n} half-built copy target(s) left by an earlier run or a stopped replica");
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_visible_to_owner_and_waited_for() {
        let tasks = Tasks::new(2, 2, None);
        let a = tasks.start("alice", "copy", "/a/x", "/b/x").unwrap();
        let b = tasks.start("bob", "move", "/a/y", "/b/y").unwrap();
        assert_eq!(tasks.start("alice", "copy", "/a/z", "/b/z").err(), Some(TooMany(2)));
        assert_eq!(tasks.list("alice", false).await.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), [a.id.as_str()]);
        assert_eq!(tasks.list("carol", true).await.len(), 2);
        assert!(tasks.get(&b.id, "alice", false).await.is_none());
        assert!(tasks.running_same("alice", "copy", "/a/x", "/b/x").is_some());
        assert!(tasks.running_same("bob", "copy", "/a/x", "/b/x").is_none());

        a.progress().plan(100, 2);
        a.progress().moved(30);
        assert_eq!(a.info().bytes_done, 30);
        a.progress().file_done(60, true);
        assert_eq!((a.info().bytes_done, a.info().files_done, a.info().bytes_by_hash), (60, 1, 60));
        let waiter = {
            let a = Arc::clone(&a);
            tokio::spawn(async move { a.wait().await })
        };
        a.finish(Outcome::Done { replaced: true, failures: vec![] });
        assert_eq!(waiter.await.unwrap(), Outcome::Done { replaced: true, failures: vec![] });
        let i = a.info();
        assert_eq!((i.state.as_str(), i.status), ("done", Some(204)));
        // A finished task frees its slot; at most two finished ones are kept.
        b.finish(Outcome::Failed { status: 507, error: "full".into(), retry_after: None });
        assert_eq!(tasks.get(&b.id, "bob", false).await.unwrap().state, "failed");
        for _ in 0..3 {
            tasks
                .start("alice", "copy", "/a/q", "/b/q")
                .unwrap()
                .finish(Outcome::Done { replaced: false, failures: vec![] });
        }
        assert_eq!(tasks.list("x", true).await.len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn leftovers_are_listed_durably() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("aside.json");
        let l = Tasks::new(1, 1, Some(p.clone()));
        l.leftovers().add("/m", "d/.pandav-swap-1").await;
        l.leftovers().add("/m", "d/.pandav-swap-2").await;
        l.leftovers().remove("/m", "d/.pandav-swap-1").await;
        let again = Tasks::new(1, 1, Some(p));
        let left: Vec<String> = again.leftovers().read().entries.into_iter().map(|e| e.rel).collect();
        assert_eq!(left, ["d/.pandav-swap-2"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listed_spools_are_removed_at_the_next_start_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("aside.json");
        let (done, left, other) =
            (dir.path().join(".pandav-tmp-done"), dir.path().join(".pandav-tmp-left"), dir.path().join("keep.txt"));
        for f in [&done, &left, &other] {
            std::fs::write(f, "x").unwrap();
        }
        let l = Tasks::new(1, 1, Some(p.clone()));
        for f in [&done, &left, &other] {
            l.leftovers().add_spool(f).await;
        }
        l.leftovers().remove_spool(&done).await;
        assert!(left.exists(), "not while this run may use it");
        let again = Tasks::new(1, 1, Some(p));
        assert!(!left.exists(), "a listed spool goes at the next start");
        assert!(done.exists() && other.exists(), "unlisted ones and other names stay");
        assert!(again.leftovers().read().spools.is_empty());
    }
}
