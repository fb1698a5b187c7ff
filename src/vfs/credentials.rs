//! Credentials of one mount, for every driver: the saved format, the cross-process lock,
//! adoption of a pair another process rotated, single-flight refresh, the dead-login
//! latch, and the one writer of the state file.
//!
//! A refresh token that rotates is dead once used: if the new one is lost, the user is
//! locked out. So a refresh goes:
//!
//! 1. one at a time per mount in this process ([`Credentials::refresh`], single flight;
//!    callers queued behind a failed refresh get its answer instead of trying again);
//! 2. under an exclusive lock on `.<state>.lock` beside the state file ([`StateFile::lock`],
//!    `fs4`), one at a time across processes (a second server, `pandav login`, an
//!    offline command);
//! 3. after re-reading the state file: a pair someone else rotated since is *adopted*
//!    instead of burning the one we hold;
//! 4. the new pair is written durably ([`crate::state::write_atomic`]) by the job that
//!    received it, under the lock, before anyone uses it — and by nobody else: the
//!    in-memory copy is installed only after the job returned, and never written again.
//!
//! In `pandav serve` the job runs in a helper process, `pandav __refresh <mount>`, which
//! rebuilds the driver's refresher through the registry from the mount's options. A
//! SIGKILL of the server between the provider's answer and the write cannot lose the
//! rotated token: the helper finishes the write (it ignores SIGINT/SIGTERM/SIGHUP and
//! runs in its own process group). Without a helper (library use, tests, one-off
//! commands) the job runs in a task of its own, which a departing caller cannot cancel;
//! on SIGTERM the server waits for such jobs ([`barrier`]).
//!
//! A dead grant (revoked, expired, evicted) is *latched*: every call fails fast with
//! `AuthLost` and a `pandav login …` hint, without asking the provider again, until the
//! state file holds a different grant (a new login, another process) — which is then
//! adopted.
//!
//! Where the saved grant lives is the [`Store`]'s business: the state file and an
//! `fs4` lock beside it (the default), or — with `[server] state = "redis://…"`, for
//! several replicas — a Redis hash and a lock key (see [`redis_store`]): the lock is
//! `SET NX PX` with a random token, kept alive while held, and the write is a
//! compare-and-set on the hash's generation, so a holder whose lock expired can never
//! overwrite a pair saved after it read the state. Without Redis a refresh waits (it
//! never refreshes without the lock), and a write is retried until Redis is back.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::error::{DriveError, DriveResult};
use crate::state::StateHandle;

/// Fingerprint of a configured secret (never the secret itself).
pub fn fingerprint(secret: &str) -> String {
    hex::encode(&sha2::Sha256::digest(secret.as_bytes())[..16])
}

/// A short, non-reversible tag for a secret, for logs: `sha256:ab12cd34`.
pub fn redact(secret: &str) -> String {
    if secret.is_empty() {
        return "(empty)".into();
    }
    format!("sha256:{}", &fingerprint(secret)[..8])
}

pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A credential set a driver keeps in its mount's state file.
pub trait Grant: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The part that identifies this grant's generation (a rotating refresh token, a
    /// cookie). A saved grant whose value differs from the one held is newer: it is
    /// adopted. Empty: no usable secret.
    fn rotating(&self) -> &str;

    /// Whether requests can be sent with this grant as it is (an access token of a grant
    /// read from the config may be missing: then it is refreshed first).
    fn usable(&self) -> bool {
        true
    }
}

// ---------------------------------------------------------------------------------------
// The saved format and the lock

/// A mount's state file as credentials see it: `{"seed", "saved_at", "data"}`, where
/// `seed` is the fingerprint of the configured secret the saved grant descends from (a
/// new secret in the config wins over old state) and `data` is the driver's grant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateFile {
    pub path: PathBuf,
    pub seed: String,
    /// The config has no secret: any saved grant is the user's.
    pub accept_any_seed: bool,
    /// The saved grant is in Redis under this key, not in `path` (`[server] state`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<crate::state::SharedKey>,
}

/// What a state file holds, read without judging it.
enum Saved<T> {
    None,
    /// Written for another configured secret.
    OtherSeed,
    Grant(T),
}

impl StateFile {
    pub fn new(path: &Path, config_secret: &str) -> StateFile {
        StateFile {
            path: path.to_path_buf(),
            seed: fingerprint(config_secret),
            accept_any_seed: config_secret.is_empty(),
            shared: None,
        }
    }

    /// The state of a mount's handle: its file, or its Redis key when the state is shared.
    pub fn for_handle(state: &StateHandle, config_secret: &str) -> StateFile {
        StateFile { shared: state.shared().cloned(), ..StateFile::new(state.path(), config_secret) }
    }

    /// Where the grant is kept, for messages.
    pub fn describe(&self) -> String {
        match &self.shared {
            Some(k) => k.describe(),
            None => format!("file {}", self.path.display()),
        }
    }

    /// The saved document's bytes (`None`: nothing saved).
    fn read_bytes(&self) -> anyhow::Result<Option<Vec<u8>>> {
        if let Some(k) = &self.shared {
            return redis_store::read_blocking(k);
        }
        match std::fs::read(&self.path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => anyhow::bail!("cannot read {}: {e}", self.path.display()),
        }
    }

    fn judge<T: Grant>(&self, bytes: &[u8]) -> anyhow::Result<Saved<T>> {
        let v: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|_| anyhow::anyhow!("state {} is not valid JSON", self.describe()))?;
        if v.get("seed").and_then(|s| s.as_str()) != Some(self.seed.as_str()) && !self.accept_any_seed {
            return Ok(Saved::OtherSeed);
        }
        let data = v.get("data").cloned().unwrap_or_default();
        serde_json::from_value::<T>(data)
            .map(Saved::Grant)
            .map_err(|e| anyhow::anyhow!("state {} has unusable credentials: {e}", self.describe()))
    }

    /// The document a write saves.
    fn document<T: Grant>(&self, t: &T) -> std::io::Result<Vec<u8>> {
        let doc = serde_json::json!({
            "seed": self.seed,
            "saved_at": now_unix(),
            "data": serde_json::to_value(t).map_err(std::io::Error::other)?,
        });
        serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)
    }

    /// The lock file beside the state file (`.<name>.lock`).
    pub fn lock_path(&self) -> PathBuf {
        let name = self.path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
        self.path.with_file_name(format!(".{name}.lock"))
    }

    fn read_raw<T: Grant>(&self) -> anyhow::Result<Saved<T>> {
        match self.read_bytes()? {
            None => Ok(Saved::None),
            Some(bytes) => self.judge(&bytes),
        }
    }

    /// The saved grant when it descends from the configured secret; `None` when there is
    /// none (or it belongs to another secret, or cannot be read).
    pub fn read<T: Grant>(&self) -> Option<T> {
        match self.read_raw() {
            Ok(Saved::Grant(t)) => Some(t),
            _ => None,
        }
    }

    /// Take the cross-process lock: the lock file (waiting in a blocking thread), or the
    /// Redis lock (waiting while Redis is unreachable, up to a bound).
    pub async fn lock(&self) -> std::io::Result<Locked> {
        let held: Box<dyn Store> = match &self.shared {
            Some(k) => Box::new(redis_store::lock(k).await?),
            None => {
                let p = self.lock_path();
                let file =
                    tokio::task::spawn_blocking(move || lock_file(&p)).await.map_err(std::io::Error::other)??;
                Box::new(FileStore { _file: file, path: self.path.clone() })
            }
        };
        Ok(Locked { held, file_state: self.clone() })
    }
}

/// The saved grant under the cross-process lock: what a [`Locked`] reads and writes
/// through. Released when dropped ([`Store::release`] first, where it can be awaited).
#[async_trait]
trait Store: Send + Sync {
    /// The saved document now (`None`: nothing saved).
    fn read(&self) -> anyhow::Result<Option<Vec<u8>>>;
    /// Save `doc` durably; refused when someone saved another one since this lock read
    /// the state.
    async fn write(&self, doc: &[u8]) -> std::io::Result<()>;
    /// Whether the lock is still ours (a Redis lock can expire).
    fn held(&self) -> bool {
        true
    }
    /// Mark that a refresh of the saved grant starts now, while the lock is ours (for
    /// Redis: checked and marked in one step); refused when the lock is not ours.
    async fn begin(&self) -> std::io::Result<()> {
        Ok(())
    }
    async fn release(self: Box<Self>) {}
}

/// The state file and its `fs4` lock (the lock ends with the file handle).
struct FileStore {
    _file: std::fs::File,
    path: PathBuf,
}

#[async_trait]
impl Store for FileStore {
    fn read(&self) -> anyhow::Result<Option<Vec<u8>>> {
        match std::fs::read(&self.path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => anyhow::bail!("cannot read {}: {e}", self.path.display()),
        }
    }

    async fn write(&self, data: &[u8]) -> std::io::Result<()> {
        let mut last = None;
        for i in 0..5u64 {
            let (p, d) = (self.path.clone(), data.to_vec());
            match tokio::task::spawn_blocking(move || crate::state::write_atomic(&p, &d)).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => last = Some(e),
                Err(e) => last = Some(std::io::Error::other(e)),
            }
            tokio::time::sleep(Duration::from_millis(100 * (i + 1))).await;
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("write failed")))
    }
}

fn lock_file(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    fs4::FileExt::lock(&file)?;
    Ok(file)
}

/// The saved grant, locked against other processes until dropped. The only way to
/// write credentials into a mount's state.
pub struct Locked {
    held: Box<dyn Store>,
    file_state: StateFile,
}

impl Locked {
    pub fn read<T: Grant>(&self) -> Option<T> {
        match self.held.read() {
            Ok(Some(b)) => match self.file_state.judge(&b) {
                Ok(Saved::Grant(t)) => Some(t),
                _ => None,
            },
            _ => None,
        }
    }

    /// Write `t` durably: for a file atomically (temp file, fsync, rename, fsync
    /// folder), tried a few times; in Redis by compare-and-set, retried while Redis is
    /// unreachable — a grant the provider just issued has no other copy.
    pub async fn write<T: Grant>(&self, t: &T) -> std::io::Result<()> {
        let data = self.file_state.document(t)?;
        self.held.write(&data).await
    }

    /// Whether the lock is still ours (a Redis lock whose keeper could not reach Redis
    /// for the lock's lifetime is not).
    pub fn held(&self) -> bool {
        self.held.held()
    }

    /// Mark that a refresh of the saved grant starts now, under this lock. With Redis,
    /// refused when the lock is no longer ours; until this holder writes or releases,
    /// the next holder waits (even after this lock expired), since the old refresh
    /// token may be spent already. For a state file, a no-op.
    pub async fn begin_refresh(&self) -> std::io::Result<()> {
        self.held.begin().await
    }

    /// Let go of the lock now (also done, less promptly, when dropped).
    pub async fn release(self) {
        self.held.release().await
    }
}

// ---------------------------------------------------------------------------------------
// Refreshers

/// Why a refresh failed. Serializable: the helper process sends it back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum RefreshError {
    /// The grant is dead (revoked, expired, already used): the user must log in again.
    /// The message says what happened and which `pandav login …` to run.
    Dead(String),
    /// The provider says "too often": wait before the next try.
    TooFrequent,
    /// Network, 5xx, a busy provider: try again soon.
    Transient(String),
}

impl RefreshError {
    pub fn into_drive(self) -> DriveError {
        match self {
            RefreshError::Dead(m) => DriveError::AuthLost(m),
            RefreshError::TooFrequent => DriveError::RateLimited { retry_after: Some(Duration::from_secs(60)) },
            RefreshError::Transient(m) => DriveError::upstream(format!("token refresh failed: {m}")),
        }
    }
}

/// One provider's token refresh: exchange `held` for a new grant. Called under the
/// cross-process lock, after the state file was found to hold nothing newer.
#[async_trait]
pub trait Refresh<T: Grant>: Send + Sync + 'static {
    async fn refresh(&self, held: &T) -> Result<T, RefreshError>;
}

/// What a refresh job gives back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Refreshed<T> {
    pub grant: T,
    /// Taken from the state file (another process rotated), not issued just now: its
    /// access token may have expired since, so a refusal of it is worth a real refresh.
    pub adopted: bool,
}

/// The job: lock, adopt a newer saved grant, else refresh and write the new grant
/// durably before returning it. The one writer of rotated credentials.
pub async fn run_job<T: Grant>(file: &StateFile, held: &T, r: &dyn Refresh<T>) -> Result<Refreshed<T>, RefreshError> {
    let lock = file.lock().await.map_err(|e| RefreshError::Transient(format!("cannot lock the state: {e}")))?;
    if let Some(saved) = lock.read::<T>() {
        if !saved.rotating().is_empty() && saved.rotating() != held.rotating() {
            tracing::info!(file = %file.describe(), "adopting credentials rotated by another pandav process");
            lock.release().await;
            return Ok(Refreshed { grant: saved, adopted: true });
        }
    }
    if !lock.held() {
        // Someone else may hold it now and be refreshing this very grant.
        lock.release().await;
        return Err(RefreshError::Transient("the refresh lock expired before the refresh".into()));
    }
    if let Err(e) = lock.begin_refresh().await {
        lock.release().await;
        return Err(RefreshError::Transient(format!("the refresh could not be started under the lock: {e}")));
    }
    let new = match r.refresh(held).await {
        Ok(n) => n,
        Err(e) => {
            lock.release().await;
            return Err(e);
        }
    };
    if let Err(e) = lock.write(&new).await {
        // The old grant is void at the provider: keep the new one in memory at least.
        tracing::error!(file = %file.describe(), "could not save rotated credentials: {e}");
        if file.shared.is_some() {
            rescue(file, &new);
        }
    }
    lock.release().await;
    Ok(Refreshed { grant: new, adopted: false })
}

/// The last resort for a rotated grant Redis would not take: the state file path on
/// this machine (`pandav login` can restore from it by hand), with an error saying so.
fn rescue<T: Grant>(file: &StateFile, t: &T) {
    let rescue = file.path.with_extension("rescued.json");
    match file.document(t).and_then(|d| crate::state::write_atomic(&rescue, &d)) {
        Ok(()) => tracing::error!(
            "the rotated credentials of {} are saved in {} only: put them back into Redis \
             (or delete the Redis key and restart with them as the state file)",
            file.describe(),
            rescue.display()
        ),
        Err(e) => tracing::error!("could not rescue the rotated credentials of {}: {e}", file.describe()),
    }
}

/// A mount's refresher with its grant type erased, for the helper process (which knows
/// only the driver's name and options).
#[async_trait]
pub trait ErasedRefresh: Send + Sync {
    async fn run(
        &self,
        file: &StateFile,
        held: serde_json::Value,
    ) -> Result<Refreshed<serde_json::Value>, RefreshError>;
}

struct Typed<T: Grant>(Arc<dyn Refresh<T>>);

#[async_trait]
impl<T: Grant> ErasedRefresh for Typed<T> {
    async fn run(
        &self,
        file: &StateFile,
        held: serde_json::Value,
    ) -> Result<Refreshed<serde_json::Value>, RefreshError> {
        let held: T = serde_json::from_value(held).map_err(|e| RefreshError::Transient(format!("bad job: {e}")))?;
        let r = run_job(file, &held, &*self.0).await?;
        let grant = serde_json::to_value(&r.grant).map_err(|e| RefreshError::Transient(e.to_string()))?;
        Ok(Refreshed { grant, adopted: r.adopted })
    }
}

/// Erase a typed refresher (the registry's `refresher` entry returns this).
pub fn erase<T: Grant>(r: Arc<dyn Refresh<T>>) -> Box<dyn ErasedRefresh> {
    Box::new(Typed(r))
}

// ---------------------------------------------------------------------------------------
// The helper process and the shutdown barrier

/// How a mount was configured, so that a helper process can rebuild its refresher
/// through the registry: the driver's name and its `[mounts.options]` as TOML.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountSource {
    pub driver: String,
    pub mount: String,
    pub base_dir: PathBuf,
    pub options: String,
}

/// Everything the helper reads on stdin.
#[derive(Serialize, Deserialize)]
pub struct HelperJob {
    pub source: MountSource,
    pub file: StateFile,
    pub held: serde_json::Value,
}

/// Hidden subcommand of the helper: `pandav __refresh <mount>`.
pub const HELPER_CMD: &str = "__refresh";

static HELPER: OnceLock<PathBuf> = OnceLock::new();

/// Run refresh jobs in helper processes started from `exe` (the `pandav` binary). Set
/// once by `serve`.
pub fn use_helper(exe: PathBuf) {
    let _ = HELPER.set(exe);
}

async fn run_in_helper(exe: &Path, job: &HelperJob) -> Result<Refreshed<serde_json::Value>, RefreshError> {
    let input = serde_json::to_vec(job).map_err(|e| RefreshError::Transient(e.to_string()))?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg(HELPER_CMD)
        .arg(&job.source.mount)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        // The helper must outlive us if we are killed mid-refresh.
        .kill_on_drop(false);
    #[cfg(unix)]
    {
        // Own process group: a Ctrl-C or a group signal to the server does not stop a
        // refresh half way.
        cmd.process_group(0);
    }
    let mut child =
        cmd.spawn().map_err(|e| RefreshError::Transient(format!("cannot start the refresh helper: {e}")))?;
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(&input).await.map_err(|e| RefreshError::Transient(format!("refresh helper: {e}")))?;
    }
    let out = child.wait_with_output().await.map_err(|e| RefreshError::Transient(format!("refresh helper: {e}")))?;
    match serde_json::from_slice::<Result<Refreshed<serde_json::Value>, RefreshError>>(&out.stdout) {
        Ok(r) => r,
        Err(_) => Err(RefreshError::Transient(format!("refresh helper failed ({})", out.status))),
    }
}

/// `pandav __refresh <mount>`: read a [`HelperJob`] on stdin, rebuild the refresher with
/// `build` (the registry), run the job (lock, adopt or refresh, write), answer on stdout.
/// Ignores SIGINT/SIGTERM/SIGHUP: it is short and must finish its write.
pub fn helper_main(build: impl FnOnce(&MountSource) -> anyhow::Result<Box<dyn ErasedRefresh>>) -> i32 {
    #[cfg(unix)]
    // SAFETY: setting signal dispositions to SIG_IGN before any thread exists.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let mut input = Vec::new();
    if std::io::stdin().read_to_end(&mut input).is_err() {
        return 2;
    }
    let Ok(job) = serde_json::from_slice::<HelperJob>(&input) else {
        return 2;
    };
    let answer: Result<Refreshed<serde_json::Value>, RefreshError> = match build(&job.source) {
        Err(e) => Err(RefreshError::Transient(format!("refresh helper: {e:#}"))),
        Ok(r) => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            match rt
                // Long enough for a write that waits for Redis to come back.
                .block_on(async { tokio::time::timeout(HELPER_TIMEOUT, r.run(&job.file, job.held)).await })
            {
                Ok(a) => a,
                Err(_) => Err(RefreshError::Transient("refresh timed out".into())),
            }
        }
    };
    let out = serde_json::to_vec(&answer).unwrap_or_default();
    let _ = std::io::stdout().write_all(&out);
    let _ = std::io::stdout().flush();
    0
}

/// How long one helper job may take: the provider's answer (two minutes at most) and a
/// write that may wait for Redis to come back ([`redis_store::WRITE_PATIENCE`]).
const HELPER_TIMEOUT: Duration = Duration::from_secs(600);

/// Refresh jobs running in this process, and whether shutdown has begun.
struct Barrier {
    inflight: AtomicUsize,
    closed: std::sync::atomic::AtomicBool,
    idle: tokio::sync::Notify,
}

fn jobs() -> &'static Barrier {
    static B: OnceLock<Barrier> = OnceLock::new();
    B.get_or_init(|| Barrier {
        inflight: AtomicUsize::new(0),
        closed: std::sync::atomic::AtomicBool::new(false),
        idle: tokio::sync::Notify::new(),
    })
}

struct JobGuard;

impl JobGuard {
    fn enter() -> Option<JobGuard> {
        let b = jobs();
        b.inflight.fetch_add(1, Ordering::SeqCst);
        if b.closed.load(Ordering::SeqCst) {
            drop(JobGuard);
            return None;
        }
        Some(JobGuard)
    }
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        if jobs().inflight.fetch_sub(1, Ordering::SeqCst) == 1 {
            jobs().idle.notify_waiters();
        }
    }
}

/// The shutdown barrier: refuse new refresh jobs and wait (at most `limit`) for the
/// running ones, so that a SIGTERM never cuts a refresh between the provider's answer
/// and the write. Returns how many were still running when it gave up.
pub async fn barrier(limit: Duration) -> usize {
    let b = jobs();
    b.closed.store(true, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let idle = b.idle.notified();
        let n = b.inflight.load(Ordering::SeqCst);
        if n == 0 {
            return 0;
        }
        tracing::info!("waiting for {n} credential refresh(es) to finish before exiting");
        if tokio::time::timeout_at(deadline, idle).await.is_err() {
            return b.inflight.load(Ordering::SeqCst);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Credentials

/// Knobs of the "refreshed too often" back-off (shortened in tests).
#[derive(Debug, Clone, Copy)]
pub struct Cooldown {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Cooldown {
    fn default() -> Self {
        Cooldown { first: Duration::from_secs(60), max: Duration::from_secs(1800) }
    }
}

/// The dead-login latch.
struct Latch {
    message: String,
    /// The rotating secret that died; a saved grant with another one revives the mount.
    dead: String,
    /// State file mtime when last looked at, and when.
    mtime: Option<SystemTime>,
    checked: Instant,
}

/// How often a latched mount re-reads its state file even when the mtime did not move.
const LATCH_RECHECK: Duration = Duration::from_secs(5);

/// One mount's credentials: the grant in force, its refresher, and the latch.
pub struct Credentials<T: Grant> {
    current: RwLock<Arc<T>>,
    generation: AtomicU64,
    flight: tokio::sync::Mutex<()>,
    /// The last failed refresh: (generation it started from, when it failed, why).
    failed: Mutex<Option<(u64, Instant, DriveError)>>,
    file: StateFile,
    refresher: Option<Arc<dyn Refresh<T>>>,
    source: Option<MountSource>,
    latch: Mutex<Option<Latch>>,
    /// After "too often": no refresh before this instant; and the next wait.
    cooldown_until: Mutex<(Option<Instant>, Duration)>,
    cooldown: Cooldown,
    refreshes: AtomicU64,
}

impl<T: Grant> Credentials<T> {
    /// Start from the saved grant when it descends from the configured secret
    /// (`config_secret`; it then holds newer, rotated credentials); from `from_config`
    /// when there is none or the user configured a new secret. A state file that cannot
    /// be read is an error: it may hold the only live token.
    pub fn restore(state: &StateHandle, config_secret: &str, from_config: T) -> anyhow::Result<Credentials<T>> {
        let file = StateFile::for_handle(state, config_secret);
        let value = match file.read_raw::<T>()? {
            Saved::Grant(t) => {
                tracing::info!(file = %file.describe(), "using saved credentials (newer than config)");
                t
            }
            Saved::None | Saved::OtherSeed => from_config,
        };
        Ok(Credentials {
            current: RwLock::new(Arc::new(value)),
            generation: AtomicU64::new(0),
            flight: tokio::sync::Mutex::new(()),
            failed: Mutex::new(None),
            file,
            refresher: None,
            source: None,
            latch: Mutex::new(None),
            cooldown_until: Mutex::new((None, Cooldown::default().first)),
            cooldown: Cooldown::default(),
            refreshes: AtomicU64::new(0),
        })
    }

    /// Refresh with `r`; in a helper process rebuilt from `source` when `serve` set one up.
    pub fn with_refresher(mut self, r: Arc<dyn Refresh<T>>, source: Option<MountSource>) -> Self {
        self.refresher = Some(r);
        self.source = source;
        self
    }

    pub fn with_cooldown(mut self, c: Cooldown) -> Self {
        self.cooldown = c;
        self.cooldown_until = Mutex::new((None, c.first));
        self
    }

    pub fn set_cooldown(&mut self, c: Cooldown) {
        self.cooldown = c;
        *self.cooldown_until.get_mut().unwrap() = (None, c.first);
    }

    pub fn file(&self) -> &StateFile {
        &self.file
    }

    /// The grant in force and its generation (pass it back to [`refresh`](Self::refresh)).
    pub fn get(&self) -> (Arc<T>, u64) {
        let g = self.generation.load(Ordering::SeqCst);
        (Arc::clone(&self.current.read().unwrap()), g)
    }

    /// Successful refreshes (rotations and adoptions) made by this process.
    pub fn refresh_count(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    fn install(&self, t: T) -> Arc<T> {
        let t = Arc::new(t);
        *self.current.write().unwrap() = Arc::clone(&t);
        self.generation.fetch_add(1, Ordering::SeqCst);
        t
    }

    fn state_mtime(&self) -> Option<SystemTime> {
        if self.file.shared.is_some() {
            // No mtime in Redis: a latched mount looks again every LATCH_RECHECK.
            return None;
        }
        std::fs::metadata(&self.file.path).and_then(|m| m.modified()).ok()
    }

    /// Latch the login as lost with `message` (logged once); returns the `AuthLost` to
    /// hand back. Calls fail fast until the state file holds another grant.
    pub fn lose(&self, message: String) -> DriveError {
        let dead = self.get().0.rotating().to_string();
        self.latch_with(message.clone(), dead);
        DriveError::AuthLost(message)
    }

    fn latch_with(&self, message: String, dead: String) {
        tracing::error!(file = %self.file.describe(), "{message}");
        *self.latch.lock().unwrap() = Some(Latch { message, dead, mtime: self.state_mtime(), checked: Instant::now() });
    }

    /// `Some(message)` while the login is known lost. When the state file changed (or
    /// every few seconds) it is read again, without the network: a grant other than the
    /// dead one (a `pandav login`, another process) is adopted and the latch released.
    pub fn latched(&self) -> Option<String> {
        let mtime = self.state_mtime();
        let (msg, dead) = {
            let mut g = self.latch.lock().unwrap();
            let l = g.as_mut()?;
            if l.mtime == mtime && l.checked.elapsed() < LATCH_RECHECK {
                return Some(l.message.clone());
            }
            l.mtime = mtime;
            l.checked = Instant::now();
            (l.message.clone(), l.dead.clone())
        };
        match self.file.read::<T>() {
            Some(saved) if !saved.rotating().is_empty() && saved.rotating() != dead => {
                tracing::info!(file = %self.file.describe(), "new credentials in the state file: resuming");
                self.install(saved);
                *self.latch.lock().unwrap() = None;
                *self.failed.lock().unwrap() = None;
                None
            }
            _ => Some(msg),
        }
    }

    pub fn is_latched(&self) -> bool {
        self.latch.lock().unwrap().is_some()
    }

    /// Refresh unless another caller already did since generation `seen`. The job (in a
    /// helper process or a task of its own) saves the new grant before it returns; this
    /// only installs it in memory. A dead grant latches; "too often" starts a cool-down.
    pub async fn refresh(&self, seen: u64) -> DriveResult<Refreshed<Arc<T>>> {
        if let Some(m) = self.latched() {
            return Err(DriveError::AuthLost(m));
        }
        let arrived = Instant::now();
        let _flight = self.flight.lock().await;
        let (cur, gen) = self.get();
        if gen != seen {
            return Ok(Refreshed { grant: cur, adopted: false });
        }
        if let Some(m) = self.latched() {
            return Err(DriveError::AuthLost(m));
        }
        if let Some((g, at, e)) = self.failed.lock().unwrap().as_ref() {
            if *g == gen && *at >= arrived {
                return Err(e.duplicate());
            }
        }
        if let (Some(until), _) = *self.cooldown_until.lock().unwrap() {
            if Instant::now() < until {
                return Err(DriveError::RateLimited { retry_after: Some(until - Instant::now()) });
            }
        }
        let Some(r) = self.refresher.clone() else {
            return Err(DriveError::Unsupported("credential refresh"));
        };
        let outcome = self.run(r, &cur).await;
        match outcome {
            Ok(Refreshed { grant, adopted }) => {
                *self.failed.lock().unwrap() = None;
                *self.cooldown_until.lock().unwrap() = (None, self.cooldown.first);
                self.refreshes.fetch_add(1, Ordering::Relaxed);
                crate::metrics::refresh(if adopted { "adopted" } else { "rotated" });
                Ok(Refreshed { grant: self.install(grant), adopted })
            }
            Err(e) => {
                let de = match e {
                    RefreshError::Dead(m) => {
                        crate::metrics::refresh("dead");
                        self.latch_with(m.clone(), cur.rotating().to_string());
                        DriveError::AuthLost(m)
                    }
                    RefreshError::TooFrequent => {
                        crate::metrics::refresh("too_frequent");
                        let mut cd = self.cooldown_until.lock().unwrap();
                        let wait = cd.1;
                        *cd = (Some(Instant::now() + wait), (wait * 2).min(self.cooldown.max));
                        tracing::warn!(file = %self.file.describe(), "refreshed too often; waiting {wait:?}");
                        DriveError::RateLimited { retry_after: Some(wait) }
                    }
                    RefreshError::Transient(m) => {
                        crate::metrics::refresh("transient");
                        tracing::warn!(file = %self.file.describe(), "credential refresh failed: {m}");
                        DriveError::upstream(format!("token refresh failed: {m}"))
                    }
                };
                *self.failed.lock().unwrap() = Some((gen, Instant::now(), de.duplicate()));
                Err(de)
            }
        }
    }

    /// Run one job: in the helper when there is one (and the mount's source is known),
    /// else in a task of its own, counted by the shutdown barrier.
    async fn run(&self, r: Arc<dyn Refresh<T>>, held: &Arc<T>) -> Result<Refreshed<T>, RefreshError> {
        let Some(_guard) = JobGuard::enter() else {
            return Err(RefreshError::Transient("shutting down".into()));
        };
        if let (Some(exe), Some(source)) = (HELPER.get(), &self.source) {
            let job = HelperJob {
                source: source.clone(),
                file: self.file.clone(),
                held: serde_json::to_value(&**held).map_err(|e| RefreshError::Transient(e.to_string()))?,
            };
            let r = run_in_helper(exe, &job).await?;
            let grant = serde_json::from_value(r.grant).map_err(|e| RefreshError::Transient(e.to_string()))?;
            return Ok(Refreshed { grant, adopted: r.adopted });
        }
        // A task of its own: a caller that goes away (a client hung up mid-listing) must
        // not cancel a refresh between the provider's answer and the write.
        let (file, held) = (self.file.clone(), T::clone(held));
        tokio::spawn(async move {
            let _guard = JobGuard::enter();
            run_job(&file, &held, &*r).await
        })
        .await
        .unwrap_or_else(|e| Err(RefreshError::Transient(format!("refresh task: {e}"))))
    }

    /// Save a grant from a login (`pandav login …`) under the lock, and use it.
    pub async fn save_login(&self, t: T) -> std::io::Result<()> {
        let lock = self.file.lock().await?;
        let written = lock.write(&t).await;
        lock.release().await;
        written?;
        self.install(t);
        *self.latch.lock().unwrap() = None;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The Redis store

/// Credentials in Redis (`[server] state = "redis://…"`), for replicas that share them.
///
/// - the grant: a hash `<ns>:cred:<mount>` with `doc` (the same document as the state
///   file) and `gen`, bumped by every write;
/// - the lock: `<ns>:cred:<mount>:lock`, `SET NX PX` with a random token; its holder
///   extends it every third of its lifetime and deletes it (if still its own) when done;
/// - a write is a compare-and-set on `gen` against what the lock read: a holder whose
///   lock expired (a pause, a partition) and under which someone else saved a newer pair
///   is refused, so it can never put back a pair that was rotated away.
///
/// Unreachable Redis: taking the lock waits (up to [`LOCK_PATIENCE`]), so no refresh runs
/// without it; a write is retried (up to [`WRITE_PATIENCE`]), then rescued to a file.
pub mod redis_store {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use async_trait::async_trait;

    use crate::state::shared::Shared;
    use crate::state::SharedKey;

    /// A held lock lives this long without being extended.
    pub const LOCK_TTL: Duration = Duration::from_secs(30);
    /// How long taking the lock may wait (for another holder, or for Redis).
    pub const LOCK_PATIENCE: Duration = Duration::from_secs(120);
    /// How long a write of a rotated grant is retried while Redis is unreachable.
    pub const WRITE_PATIENCE: Duration = Duration::from_secs(300);
    /// How long a refresh marked as started may still end in a write: its job's bound
    /// ([`super::HELPER_TIMEOUT`]) and a margin. Until then nobody refreshes the grant
    /// again, even when the lock of the one that started it expired (Redis was away
    /// longer than [`LOCK_TTL`] while it waited for the provider or retried its write):
    /// the old refresh token may already be spent.
    pub const PENDING_MAX: Duration = Duration::from_secs(660);

    const EXTEND: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
    /// KEYS: lock, grant. Let go of the lock and of a refresh mark, where they are ours.
    const RELEASE: &str = r"
if redis.call('HGET', KEYS[2], 'pending') == ARGV[1] then redis.call('HDEL', KEYS[2], 'pending', 'pending_at') end
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
    /// KEYS: lock. Let go of the lock only (a lock dropped unreleased: whether its
    /// refresh reached the provider is unknown, so its mark stays).
    const RELEASE_LOCK: &str =
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
    /// The write clears any refresh mark: the saved grant is the newest.
    const WRITE: &str = r"
local g = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
if g ~= tonumber(ARGV[1]) then return -1 end
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'gen', g + 1)
redis.call('HDEL', KEYS[1], 'pending', 'pending_at')
return g + 1";
    /// KEYS: lock, grant. Mark a refresh as started, only while the lock is ours.
    const BEGIN: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], 'pending', ARGV[1], 'pending_at', ARGV[2])
return 1";

    struct Scripts {
        extend: redis::Script,
        release: redis::Script,
        release_lock: redis::Script,
        write: redis::Script,
        begin: redis::Script,
    }

    fn scripts() -> &'static Scripts {
        static S: std::sync::OnceLock<Scripts> = std::sync::OnceLock::new();
        S.get_or_init(|| Scripts {
            extend: redis::Script::new(EXTEND),
            release: redis::Script::new(RELEASE),
            release_lock: redis::Script::new(RELEASE_LOCK),
            write: redis::Script::new(WRITE),
            begin: redis::Script::new(BEGIN),
        })
    }

    fn now_ms() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }

    fn store(k: &SharedKey) -> std::io::Result<Arc<Shared>> {
        Shared::get_or_open(&k.url).map_err(|e| std::io::Error::other(format!("{e:#}")))
    }

    fn lock_key(k: &SharedKey) -> String {
        format!("{}:lock", k.key)
    }

    /// The saved document, read on a blocking connection (a mount being built, the
    /// dead-login latch). A Redis that does not answer is tried for a few seconds.
    pub fn read_blocking(k: &SharedKey) -> anyhow::Result<Option<Vec<u8>>> {
        let s = Shared::get_or_open(&k.url)?;
        let mut last = None;
        for i in 0..5u64 {
            match s.query_blocking::<Option<Vec<u8>>>(redis::cmd("HGET").arg(&k.key).arg("doc")) {
                Ok(v) => return Ok(v),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(200 * (i + 1)));
        }
        Err(s.err(last.expect("an error")))
    }

    /// The lock, held: what it read, and the keeper that extends it.
    pub struct RedisLock {
        s: Arc<Shared>,
        key: String,
        lock: String,
        token: String,
        doc: Option<Vec<u8>>,
        gen: AtomicU64,
        held: Arc<AtomicBool>,
        keeper: tokio::task::JoinHandle<()>,
        released: AtomicBool,
    }

    /// Take the lock of `k` and read the grant under it.
    pub async fn lock(k: &SharedKey) -> std::io::Result<RedisLock> {
        let s = store(k)?;
        let lock = lock_key(k);
        let token = hex::encode(rand::random::<[u8; 16]>());
        let ttl_ms = LOCK_TTL.as_millis() as u64;
        let started = Instant::now();
        let (mut warned, mut warned_pending) = (false, false);
        let (doc, gen) = loop {
            if started.elapsed() > LOCK_PATIENCE {
                return Err(std::io::Error::other(format!(
                    "the refresh lock {lock} in {} could not be taken within {LOCK_PATIENCE:?}",
                    s.shown()
                )));
            }
            let wait = Duration::from_millis(50 + rand::random::<u64>() % 150);
            let r: redis::RedisResult<Option<String>> =
                s.query(redis::cmd("SET").arg(&lock).arg(&token).arg("NX").arg("PX").arg(ttl_ms)).await;
            match r {
                Ok(Some(_)) => {}
                Ok(None) => {
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!("cannot take the refresh lock {lock}: {} (waiting)", s.err(e));
                        warned = true;
                    }
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            // Read under the lock (retried: we hold it, Redis may blink).
            let mut tries = 0;
            let (doc, gen, pending_at) = loop {
                // (the grant document, its generation, when a refresh was marked)
                type Row = (Option<Vec<u8>>, Option<u64>, Option<u64>);
                let r: redis::RedisResult<Row> =
                    s.query(redis::cmd("HMGET").arg(&k.key).arg("doc").arg("gen").arg("pending_at")).await;
                match r {
                    Ok((d, g, p)) => break (d, g.unwrap_or(0), p),
                    Err(e) if tries < 20 => {
                        tries += 1;
                        tracing::debug!("reading {} under the lock: {}", k.key, s.err(e));
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(e) => {
                        let _: redis::RedisResult<i64> =
                            s.script(&scripts().release, &[&lock, &k.key], &[&token]).await;
                        return Err(std::io::Error::other(format!("{:#}", s.err(e))));
                    }
                }
            };
            match pending_at {
                // A holder before us started a refresh and has not saved its result
                // (its lock expired while Redis was away): its write may still come.
                Some(at) if now_ms().saturating_sub(at) < PENDING_MAX.as_millis() as u64 => {
                    if !warned_pending {
                        tracing::warn!(
                            "{}: a refresh started by another process has not saved its result yet; waiting for it",
                            k.key
                        );
                        warned_pending = true;
                    }
                    let _: redis::RedisResult<i64> = s.script(&scripts().release, &[&lock, &k.key], &[&token]).await;
                    tokio::time::sleep(wait * 2).await;
                }
                Some(_) => {
                    tracing::error!(
                        "{}: a refresh started over {PENDING_MAX:?} ago never saved its result; \
                         going on with the saved grant (if it was spent, log in again)",
                        k.key
                    );
                    break (doc, gen);
                }
                None => break (doc, gen),
            }
        };
        let held = Arc::new(AtomicBool::new(true));
        let keeper = {
            let (s, lock, token, held) = (Arc::clone(&s), lock.clone(), token.clone(), Arc::clone(&held));
            tokio::spawn(async move {
                let mut last_ok = Instant::now();
                loop {
                    tokio::time::sleep(LOCK_TTL / 3).await;
                    let r: redis::RedisResult<i64> =
                        s.script(&scripts().extend, &[&lock], &[&token, &(ttl_ms as i64)]).await;
                    match r {
                        Ok(1) => last_ok = Instant::now(),
                        Ok(_) => {
                            held.store(false, Ordering::SeqCst);
                            tracing::warn!("the refresh lock {lock} was lost");
                            return;
                        }
                        Err(_) if last_ok.elapsed() >= LOCK_TTL => {
                            held.store(false, Ordering::SeqCst);
                            return;
                        }
                        Err(_) => {}
                    }
                }
            })
        };
        Ok(RedisLock {
            s,
            key: k.key.clone(),
            lock,
            token,
            doc,
            gen: AtomicU64::new(gen),
            held,
            keeper,
            released: AtomicBool::new(false),
        })
    }

    #[async_trait]
    impl super::Store for RedisLock {
        fn read(&self) -> anyhow::Result<Option<Vec<u8>>> {
            Ok(self.doc.clone())
        }

        async fn write(&self, doc: &[u8]) -> std::io::Result<()> {
            let started = Instant::now();
            let expect = self.gen.load(Ordering::SeqCst);
            loop {
                let r: redis::RedisResult<i64> =
                    self.s.script(&scripts().write, &[&self.key], &[&(expect as i64), &doc]).await;
                match r {
                    Ok(n) if n > 0 => {
                        self.gen.store(n as u64, Ordering::SeqCst);
                        return Ok(());
                    }
                    Ok(_) => {
                        return Err(std::io::Error::other(format!(
                            "{} was saved by another process since this lock read it (generation {expect}): not overwritten",
                            self.key
                        )))
                    }
                    Err(e) if started.elapsed() < WRITE_PATIENCE => {
                        tracing::warn!("saving {}: {} (retrying)", self.key, self.s.err(e));
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(e) => return Err(std::io::Error::other(format!("{:#}", self.s.err(e)))),
                }
            }
        }

        fn held(&self) -> bool {
            self.held.load(Ordering::SeqCst)
        }

        async fn begin(&self) -> std::io::Result<()> {
            let mut tries = 0;
            loop {
                let r: redis::RedisResult<i64> =
                    self.s.script(&scripts().begin, &[&self.lock, &self.key], &[&self.token, &(now_ms() as i64)]).await;
                match r {
                    Ok(1) => return Ok(()),
                    Ok(_) => {
                        self.held.store(false, Ordering::SeqCst);
                        return Err(std::io::Error::other(format!("the refresh lock {} is no longer ours", self.lock)));
                    }
                    Err(e) if tries < 20 => {
                        tries += 1;
                        tracing::debug!("marking the refresh of {}: {}", self.key, self.s.err(e));
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(e) => return Err(std::io::Error::other(format!("{:#}", self.s.err(e)))),
                }
            }
        }

        async fn release(self: Box<Self>) {
            self.keeper.abort();
            self.released.store(true, Ordering::SeqCst);
            let r: redis::RedisResult<i64> =
                self.s.script(&scripts().release, &[&self.lock, &self.key], &[&self.token]).await;
            if let Err(e) = r {
                tracing::debug!("releasing {}: {} (it expires by itself)", self.lock, self.s.err(e));
            }
        }
    }

    impl Drop for RedisLock {
        fn drop(&mut self) {
            self.keeper.abort();
            if self.released.load(Ordering::SeqCst) {
                return;
            }
            // Not released by the owner (an early return): let go in the background; it
            // expires by itself otherwise.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let (s, lock, token) = (Arc::clone(&self.s), self.lock.clone(), self.token.clone());
                rt.spawn(async move {
                    let _: redis::RedisResult<i64> = s.script(&scripts().release_lock, &[&lock], &[&token]).await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
    struct Tok {
        refresh: String,
        n: u32,
    }

    impl Grant for Tok {
        fn rotating(&self) -> &str {
            &self.refresh
        }
    }

    struct Plus(Arc<AtomicUsize>, Duration);

    #[async_trait]
    impl Refresh<Tok> for Plus {
        async fn refresh(&self, held: &Tok) -> Result<Tok, RefreshError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.1).await;
            Ok(Tok { refresh: format!("{}+", held.refresh), n: held.n + 1 })
        }
    }

    struct Refuse;

    #[async_trait]
    impl Refresh<Tok> for Refuse {
        async fn refresh(&self, _: &Tok) -> Result<Tok, RefreshError> {
            Err(RefreshError::Dead("revoked".into()))
        }
    }

    fn creds(dir: &Path, cfg: &str, r: Arc<dyn Refresh<Tok>>) -> Credentials<Tok> {
        let h = StateHandle::at(dir.join("m.json"));
        Credentials::restore(&h, cfg, Tok { refresh: cfg.into(), n: 0 }).unwrap().with_refresher(r, None)
    }

    #[tokio::test]
    async fn concurrent_refreshes_are_single_flight_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::new(creds(dir.path(), "r0", Arc::new(Plus(Arc::clone(&calls), Duration::from_millis(20)))));
        let (_, seen) = c.get();
        let mut tasks = vec![];
        for _ in 0..20 {
            let c = Arc::clone(&c);
            tasks.push(tokio::spawn(async move { c.refresh(seen).await.unwrap().grant }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().n, 1);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A restart with the same configured secret picks up the rotated token.
        let again = creds(dir.path(), "r0", Arc::new(Refuse));
        assert_eq!(again.get().0.refresh, "r0+");
        // A new secret in the config wins over the old state.
        let fresh = creds(dir.path(), "other", Arc::new(Refuse));
        assert_eq!(fresh.get().0.refresh, "other");
    }

    #[tokio::test]
    async fn a_dead_grant_latches_until_the_state_file_holds_another() {
        let dir = tempfile::tempdir().unwrap();
        let c = creds(dir.path(), "r0", Arc::new(Refuse));
        let r = c.refresh(0).await;
        assert!(matches!(r, Err(DriveError::AuthLost(_))));
        assert_eq!(c.get().0.refresh, "r0");
        assert!(c.latched().is_some());
        // Another process (a login) saves a new grant: adopted without a refresh.
        let other = creds(dir.path(), "r0", Arc::new(Refuse));
        other.save_login(Tok { refresh: "fresh".into(), n: 7 }).await.unwrap();
        assert_eq!(c.latched(), None);
        assert_eq!(c.get().0.refresh, "fresh");
    }

    #[tokio::test]
    async fn a_pair_rotated_elsewhere_is_adopted_not_refreshed() {
        let dir = tempfile::tempdir().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let a = creds(dir.path(), "r0", Arc::new(Plus(Arc::clone(&calls), Duration::ZERO)));
        let b = creds(dir.path(), "r0", Arc::new(Plus(Arc::clone(&calls), Duration::ZERO)));
        a.refresh(0).await.unwrap();
        let r = b.refresh(0).await.unwrap();
        assert!(r.adopted);
        assert_eq!(r.grant.refresh, "r0+");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "b did not burn the token a rotated");
    }
}
