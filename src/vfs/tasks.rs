//! Copies and moves between mounts as tasks: a copy that outlasts its request keeps
//! going, visible at `GET /-/tasks` and in `pandav tasks`, with its progress logged.
//!
//! The registry's API is storage-free: callers start a task, report progress through
//! its [`Progress`], finish it with an [`Outcome`], and read [`TaskInfo`] snapshots
//! (plain, serialisable data). Where the snapshots live is this module's business —
//! memory today; a shared store (Redis) would keep the same calls and store
//! `TaskInfo`s, while the live parts (the counters a running copy updates, the wake-up
//! of requests waiting for it) stay with the process that runs the copy.
//!
//! Bounds: at most `max_running` tasks run at once (more are refused, 503), and the
//! `keep_finished` most recent finished ones are kept for looking at. Tasks do not
//! survive a restart (a copy cut by one is not resumed); what does survive is the
//! short list of half-built targets ([`Leftovers`]), so that the hidden entries a killed
//! copy left at the target are removed when the server comes back.

use std::collections::VecDeque;
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
}

/// Finished tasks kept when the caller does not say.
pub const KEEP_FINISHED: usize = 100;

impl Tasks {
    /// A registry; half-built targets are listed in `leftovers` (a file in the state
    /// dir; `None`: not kept).
    pub fn new(max_running: usize, keep_finished: usize, leftovers: Option<PathBuf>) -> Tasks {
        Tasks {
            list: Mutex::new(VecDeque::new()),
            max_running: max_running.max(1),
            keep_finished,
            // Ids start from the clock, so that ids of a restarted server do not repeat
            // the ones a client may still hold.
            next: AtomicU64::new(unix(SystemTime::now()) % 1_000_000 * 1000),
            leftovers: Leftovers::open(leftovers),
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
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let t = Arc::new(Task {
            id: id.to_string(),
            kind,
            owner: owner.into(),
            from: from.into(),
            to: to.into(),
            started: SystemTime::now(),
            started_at: Instant::now(),
            progress: Arc::default(),
            end: Mutex::new(None),
            done: tokio::sync::watch::channel(false).0,
        });
        list.push_back(Arc::clone(&t));
        self.prune(&mut list);
        Ok(t)
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

    /// The tasks `viewer` may see (their own; every task for an admin), oldest first.
    pub fn list(&self, viewer: &str, admin: bool) -> Vec<TaskInfo> {
        let mut list = lock(&self.list);
        self.prune(&mut list);
        list.iter().filter(|t| admin || t.owner == viewer).map(|t| t.info()).collect()
    }

    /// One task, if `viewer` may see it.
    pub fn get(&self, id: &str, viewer: &str, admin: bool) -> Option<TaskInfo> {
        lock(&self.list).iter().find(|t| t.id == id && (admin || t.owner == viewer)).map(|t| t.info())
    }

    /// Running tasks (for the progress log).
    pub fn running(&self) -> Vec<Arc<Task>> {
        lock(&self.list).iter().filter(|t| t.is_running()).cloned().collect()
    }

    /// Log the progress of running tasks every `every`, until the registry is dropped.
    pub fn spawn_reporter(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
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
/// their bytes pass through, listed in a small file while they are built. A copy
/// killed with the server leaves them listed: [`clean`](Leftovers::clean) removes the
/// entries when their mount is back, and the spools go when the list is opened at the
/// next start (a spool's own staleness test, by mtime, misses a server restarted within
/// a second of being killed).
#[derive(Clone)]
pub struct Leftovers {
    inner: Arc<LeftoverList>,
}

struct LeftoverList {
    path: Option<PathBuf>,
    lock: Mutex<()>,
}

#[derive(Default, Serialize, Deserialize)]
struct LeftoverFile {
    entries: Vec<Leftover>,
    #[serde(default)]
    spools: Vec<PathBuf>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Leftover {
    mount: String,
    rel: String,
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
    /// The list at `path`, with the spool files an earlier run left removed (before
    /// this run makes any).
    fn open(path: Option<PathBuf>) -> Leftovers {
        let inner = LeftoverList { path, lock: Mutex::new(()) };
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

    /// `rel` on `mount` is being built (written durably before the build starts).
    pub async fn add(&self, mount: &str, rel: &str) {
        let e = Leftover { mount: mount.into(), rel: rel.into() };
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
        let (mount, rel) = (mount.to_string(), rel.to_string());
        self.change(move |f| f.entries.retain(|e| !(e.mount == mount && e.rel == rel))).await;
    }

    /// Remove what earlier runs left half-built on mount `m`; returns how many went.
    /// Only hidden swap names are ever removed.
    pub async fn clean(&self, m: &Mount) -> usize {
        let mine: Vec<Leftover> = self.read().entries.into_iter().filter(|e| e.mount == m.path()).collect();
        let mut n = 0;
        for e in mine {
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
            if gone {
                self.remove(m.path(), &e.rel).await;
            }
        }
        if n > 0 {
            tracing::info!(mount = %m.path(), "removed {n} half-built copy target(s) left by an earlier run");
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
        assert_eq!(tasks.list("alice", false).iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), [a.id.as_str()]);
        assert_eq!(tasks.list("carol", true).len(), 2);
        assert!(tasks.get(&b.id, "alice", false).is_none());
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
        assert_eq!(tasks.get(&b.id, "bob", false).unwrap().state, "failed");
        for _ in 0..3 {
            tasks
                .start("alice", "copy", "/a/q", "/b/q")
                .unwrap()
                .finish(Outcome::Done { replaced: false, failures: vec![] });
        }
        assert_eq!(tasks.list("x", true).len(), 2);
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
