//! Refresh and state through the vfs layer, with a drive whose credentials expire and
//! rotate the way a cloud driver's do.
//!
//! `Provider` is a tiny in-memory OAuth server: access tokens expire on a manual clock,
//! refresh tokens are single-use (the old one is dead once a refresh succeeds), and it
//! counts everything. Each time it sees a new access token it checks that the drive's
//! state file already holds the refresh token issued with it.
//!
//! `RotDrive` uses the kit's `Credentials` the way a cloud driver should: refresh when
//! expired (and ahead of expiry from the mount's background task), refresh once more on
//! an auth error, and the latch keeps a dead grant from being retried against the provider.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use async_trait::async_trait;
use pandav::state::{StateDir, StateHandle};
use pandav::vfs::credentials::{self, fingerprint, Credentials, Refresh, RefreshError};
use pandav::vfs::{Caps, Drive, DriveError, DriveResult, Entry, Link, LinkRequest, Mount, MountOptions, Policy};
use serde::{Deserialize, Serialize};

/// Access tokens live two hours of manual-clock time.
const ACCESS_TTL: u64 = 2 * 3600 * 1000;
/// The background task refreshes this long before expiry.
const LEAD: u64 = 10 * 60 * 1000;

// ---------------------------------------------------------------------------------------
// The provider
// ---------------------------------------------------------------------------------------

/// Milliseconds that only move when a test moves them.
#[derive(Clone, Default)]
struct Clock(Arc<AtomicU64>);

impl Clock {
    fn now(&self) -> u64 {
        self.0.load(SeqCst)
    }
    fn set(&self, ms: u64) {
        self.0.store(ms, SeqCst)
    }
}

#[derive(Debug)]
enum ProvErr {
    /// 401: unknown, expired or revoked access token.
    Unauthorized,
    /// 400 invalid_grant: dead or revoked refresh token.
    InvalidGrant,
}

struct Grant {
    access: String,
    refresh: String,
    expires_at: u64,
}

#[derive(Default)]
struct ProvState {
    live_refresh: Option<String>,
    /// access token → (expiry, the refresh token issued with it)
    access: HashMap<String, (u64, String)>,
    issued: u64,
    revoked: bool,
    seen: HashSet<String>,
    /// Refresh attempts with a token that was already dead (rotated away).
    dead_refresh: Vec<String>,
    /// API calls with an unknown, expired or revoked access token.
    unauthorized: usize,
    /// New access tokens whose refresh token was not yet in the state file.
    violations: Vec<String>,
    checked: usize,
}

struct Provider {
    clock: Clock,
    st: Mutex<ProvState>,
    refreshes: AtomicUsize,
    api_calls: AtomicUsize,
    state_file: PathBuf,
    /// Real time a refresh takes (widens the window for racing callers).
    refresh_delay: Duration,
}

impl Provider {
    fn new(clock: &Clock, first_refresh: &str, state_file: &Path) -> Arc<Provider> {
        Arc::new(Provider {
            clock: clock.clone(),
            st: Mutex::new(ProvState { live_refresh: Some(first_refresh.into()), ..Default::default() }),
            refreshes: AtomicUsize::new(0),
            api_calls: AtomicUsize::new(0),
            state_file: state_file.into(),
            refresh_delay: Duration::from_millis(25),
        })
    }

    async fn refresh(&self, rt: &str) -> Result<Grant, ProvErr> {
        self.refreshes.fetch_add(1, SeqCst);
        tokio::time::sleep(self.refresh_delay).await;
        let mut st = self.st.lock().unwrap();
        if st.revoked {
            return Err(ProvErr::InvalidGrant);
        }
        if st.live_refresh.as_deref() != Some(rt) {
            st.dead_refresh.push(rt.into());
            return Err(ProvErr::InvalidGrant);
        }
        st.issued += 1;
        let g = Grant {
            access: format!("at-{}", st.issued),
            refresh: format!("rt-{}", st.issued),
            expires_at: self.clock.now() + ACCESS_TTL,
        };
        st.live_refresh = Some(g.refresh.clone());
        st.access.insert(g.access.clone(), (g.expires_at, g.refresh.clone()));
        Ok(g)
    }

    fn api(&self, access: &str) -> Result<(), ProvErr> {
        self.api_calls.fetch_add(1, SeqCst);
        let mut st = self.st.lock().unwrap();
        let valid = match st.access.get(access) {
            Some((exp, rt)) if !st.revoked && self.clock.now() < *exp => Some(rt.clone()),
            _ => None,
        };
        let Some(rt) = valid else {
            st.unauthorized += 1;
            return Err(ProvErr::Unauthorized);
        };
        if st.seen.insert(access.to_string()) {
            st.checked += 1;
            let on_disk = saved_refresh(&self.state_file);
            if on_disk.as_deref() != Some(rt.as_str()) {
                st.violations.push(format!("{access} used while the state file held {on_disk:?}, not {rt}"));
            }
        }
        Ok(())
    }

    /// The user logs in again: a new refresh token; the old chain and its access tokens die.
    fn relogin(&self, rt: &str) {
        let mut st = self.st.lock().unwrap();
        st.live_refresh = Some(rt.into());
        st.access.clear();
    }

    /// The user revokes the app: every token dies.
    fn revoke(&self) {
        self.st.lock().unwrap().revoked = true;
    }

    fn expiry_of_latest(&self) -> u64 {
        let st = self.st.lock().unwrap();
        st.access[&format!("at-{}", st.issued)].0
    }

    fn calls(&self) -> (usize, usize) {
        (self.refreshes.load(SeqCst), self.api_calls.load(SeqCst))
    }

    fn with<T>(&self, f: impl FnOnce(&ProvState) -> T) -> T {
        f(&self.st.lock().unwrap())
    }
}

fn saved_state(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn saved_refresh(path: &Path) -> Option<String> {
    saved_state(path)?["data"]["refresh"].as_str().map(String::from)
}

// ---------------------------------------------------------------------------------------
// The drive
// ---------------------------------------------------------------------------------------

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Creds {
    access: String,
    refresh: String,
    expires_at: u64,
}

impl credentials::Grant for Creds {
    fn rotating(&self) -> &str {
        &self.refresh
    }
}

/// The provider's refresh as the kit's refresher.
struct ProvRefresh(Arc<Provider>);

#[async_trait]
impl Refresh<Creds> for ProvRefresh {
    async fn refresh(&self, held: &Creds) -> Result<Creds, RefreshError> {
        match self.0.refresh(&held.refresh).await {
            Ok(g) => Ok(Creds { access: g.access, refresh: g.refresh, expires_at: g.expires_at }),
            Err(e) => Err(RefreshError::Dead(format!("refresh refused: {e:?}"))),
        }
    }
}

struct RotDrive {
    provider: Arc<Provider>,
    clock: Clock,
    cell: Credentials<Creds>,
}

impl RotDrive {
    fn new(
        provider: &Arc<Provider>,
        clock: &Clock,
        state: StateHandle,
        config_refresh: &str,
    ) -> anyhow::Result<RotDrive> {
        let from_config = Creds { access: String::new(), refresh: config_refresh.into(), expires_at: 0 };
        Ok(RotDrive {
            provider: Arc::clone(provider),
            clock: clock.clone(),
            cell: Credentials::restore(&state, config_refresh, from_config)?
                .with_refresher(Arc::new(ProvRefresh(Arc::clone(provider))), None),
        })
    }

    fn check_lost(&self) -> DriveResult<()> {
        match self.cell.latched() {
            Some(msg) => Err(DriveError::AuthLost(msg)),
            None => Ok(()),
        }
    }

    /// Single-flight refresh from generation `seen`; the latch is checked inside the
    /// flight, so callers queued behind a failed refresh do not call the provider again.
    async fn refresh_from(&self, seen: u64) -> DriveResult<Arc<Creds>> {
        self.cell.refresh(seen).await.map(|r| r.grant)
    }

    /// One provider API call with valid credentials.
    async fn call(&self) -> DriveResult<()> {
        for attempt in 0..2 {
            self.check_lost()?;
            let (mut cur, gen) = self.cell.get();
            if self.clock.now() >= cur.expires_at {
                cur = self.refresh_from(gen).await?;
            }
            match self.provider.api(&cur.access) {
                Ok(()) => return Ok(()),
                Err(ProvErr::Unauthorized) if attempt == 0 => {
                    // Refresh once on an auth error (unless someone already did), retry.
                    let (now, g) = self.cell.get();
                    if now.access == cur.access {
                        self.refresh_from(g).await?;
                    }
                }
                Err(e) => return Err(DriveError::upstream(format!("{e:?}"))),
            }
        }
        unreachable!()
    }
}

#[async_trait]
impl Drive for RotDrive {
    fn kind(&self) -> &'static str {
        "rotating"
    }

    fn caps(&self) -> Caps {
        Caps {
            refresh: true,
            links: true,
            // Lookups skip the mount's per-folder listing lock, so requests for
            // different paths reach the drive concurrently.
            fast_lookup: true,
            ..Caps::default()
        }
    }

    async fn lookup(&self, _parent: &Entry, name: &str) -> DriveResult<Option<Entry>> {
        self.call().await?;
        Ok(Some(Entry::dir(name, name, UNIX_EPOCH)))
    }

    async fn link(&self, file: &Entry, _req: &LinkRequest) -> DriveResult<Link> {
        self.call().await?;
        Ok(Link { url: format!("https://cdn.example/{}", file.id()), headers: vec![], expires_at: None })
    }

    async fn root(&self) -> DriveResult<Entry> {
        self.call().await?;
        Ok(Entry::dir("0", "", UNIX_EPOCH))
    }

    async fn list(&self, _dir: &Entry) -> DriveResult<Vec<Entry>> {
        self.call().await?;
        let mut f = Entry::dir("1", "hello.txt", UNIX_EPOCH);
        f.is_dir = false;
        f.size = 5;
        Ok(vec![f])
    }

    async fn refresh(&self) -> DriveResult<Duration> {
        self.check_lost()?;
        let (cur, gen) = self.cell.get();
        if self.clock.now() + LEAD >= cur.expires_at {
            self.refresh_from(gen).await?;
        }
        // The clock is manual: look again soon (the mount waits at least 200 ms).
        Ok(Duration::from_millis(20))
    }
}

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

struct Running {
    mount: Arc<Mount>,
    task: tokio::task::JoinHandle<()>,
    _spool: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn state_of(dir: &Path) -> StateHandle {
    StateDir::open(dir).unwrap().mount("/rot")
}

/// Build the drive over `state_dir` with `config_refresh`, init the mount (which calls
/// the provider for the root) and start its background refresh.
async fn start(p: &Arc<Provider>, clock: &Clock, state_dir: &Path, config_refresh: &str) -> DriveResult<Running> {
    let drive = RotDrive::new(p, clock, state_of(state_dir), config_refresh)
        .map_err(|e| DriveError::upstream(format!("{e:#}")))?;
    let spool = tempfile::tempdir()?;
    let mount = Arc::new(Mount::new(
        MountOptions {
            path: "/rot".into(),
            policy: Policy::Redirect,
            proxy_url: None,
            read_only: false,
            cache_ttl: Duration::ZERO, // every list reaches the drive
            spool_dir: spool.path().into(),
        },
        Arc::new(drive),
    ));
    mount.init().await?;
    let task = mount.spawn_refresh().expect("caps().refresh = true starts a task");
    Ok(Running { mount, task, _spool: spool })
}

/// One request that reaches the provider: a listing (lookup + list) of folder `i`, or a
/// download link. Distinct paths, so the mount's per-folder lock does not serialise them.
async fn request(m: &Mount, i: usize) -> DriveResult<()> {
    if i % 2 == 0 {
        m.list(&format!("d{i}")).await.map(|_| ())
    } else {
        let mut f = Entry::dir(format!("f{i}"), format!("f{i}"), UNIX_EPOCH);
        f.is_dir = false;
        m.link(&f, &LinkRequest::default()).await.map(|_| ())
    }
}

/// `n` concurrent requests.
async fn burst(m: &Arc<Mount>, n: usize) -> Vec<DriveResult<()>> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let m = Arc::clone(m);
            tokio::spawn(async move { request(&m, i).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(5), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn setup(first: &str) -> (Clock, tempfile::TempDir, Arc<Provider>) {
    let clock = Clock::default();
    clock.set(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let p = Provider::new(&clock, first, state_of(dir.path()).path());
    (clock, dir, p)
}

fn assert_clean(p: &Provider) {
    p.with(|st| {
        assert!(st.violations.is_empty(), "used before persisted: {:?}", st.violations);
        assert!(st.dead_refresh.is_empty(), "dead refresh tokens tried: {:?}", st.dead_refresh);
    });
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f).await.expect("test timed out")
}

// ---------------------------------------------------------------------------------------
// (a) many concurrent requests across expiries: one refresh per expiry, no failures
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_across_expiries_refresh_once_each() {
    within(async {
        let (clock, dir, p) = setup("cfg-rt");
        let r = start(&p, &clock, dir.path(), "cfg-rt").await.unwrap();
        assert_eq!(p.calls().0, 1, "init refreshes once (config holds no access token)");
        let mut want = 1;
        for phase in 1..=6 {
            let exp = p.expiry_of_latest();
            if phase % 2 == 0 {
                // Inside the lead window: the background task refreshes ahead of expiry.
                clock.set(exp - LEAD / 2);
                wait_for("the background refresh", || p.with(|s| s.issued) as usize > want).await;
            } else {
                // Past expiry: requests find out themselves, all at once.
                clock.set(exp + 1);
            }
            let results = burst(&r.mount, 64).await;
            want += 1;
            for (i, res) in results.iter().enumerate() {
                assert!(res.is_ok(), "phase {phase}: request {i} failed: {res:?}");
            }
            assert_eq!(p.calls().0, want, "phase {phase}: refreshes");
            // Every request of the burst reached the provider with a live token.
            assert_eq!(p.with(|s| s.unauthorized), 0, "phase {phase}: stale tokens used");
            // Before moving the clock again, let the drive install the newest token (a
            // background refresh may still be saving it).
            let latest = p.with(|s| format!("at-{}", s.issued));
            while !p.with(|s| s.seen.contains(&latest)) {
                r.mount.list("").await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        assert_clean(&p);
        assert!(r.mount.health().ok, "{:?}", r.mount.health());
    })
    .await
}

// ---------------------------------------------------------------------------------------
// (b) the rotated refresh token is on disk before the new access token is used
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotated_token_is_persisted_before_use() {
    within(async {
        let (clock, dir, p) = setup("cfg-rt");
        let r = start(&p, &clock, dir.path(), "cfg-rt").await.unwrap();
        // Requests keep flowing while tokens rotate, so a token handed out before it is
        // saved would be seen by the provider.
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..6)
            .map(|_| {
                let (m, stop) = (Arc::clone(&r.mount), Arc::clone(&stop));
                tokio::spawn(async move {
                    let mut n = 0usize;
                    while !stop.load(SeqCst) {
                        request(&m, n).await.unwrap();
                        n += 1;
                        tokio::task::yield_now().await;
                    }
                    n
                })
            })
            .collect();
        for round in 0..8 {
            let before = p.calls().0;
            let exp = p.expiry_of_latest();
            // Mostly ahead of expiry (background task), sometimes past it (requests).
            clock.set(if round % 4 == 3 { exp + 1 } else { exp - LEAD / 2 });
            wait_for("a refresh", || p.calls().0 > before).await;
            wait_for("the new token in use", || p.with(|s| s.checked) > round + 1).await;
        }
        stop.store(true, SeqCst);
        for w in workers {
            assert!(w.await.unwrap() > 0);
        }
        assert_eq!(p.calls().0, 9, "one refresh at start and one per round");
        assert_eq!(p.with(|s| s.checked), 9, "each new access token was checked once");
        assert_clean(&p);
        // The file holds the live refresh token and is private to its owner.
        let live = p.with(|s| s.live_refresh.clone());
        let state_file = state_of(dir.path()).path().to_path_buf();
        assert_eq!(saved_refresh(&state_file), live);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "state file readable by others: {mode:o}");
    })
    .await
}

// ---------------------------------------------------------------------------------------
// (c) restart with the original config token uses the saved, rotated one
// (d) a new token in the config wins over old state
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_prefers_saved_rotated_token_and_new_config_wins() {
    within(async {
        let (clock, dir, p) = setup("cfg-rt");
        {
            let r = start(&p, &clock, dir.path(), "cfg-rt").await.unwrap();
            clock.set(p.expiry_of_latest() + 1);
            r.mount.list("").await.unwrap();
            assert_eq!(p.calls().0, 2);
        } // process stops; "cfg-rt" and "rt-1" are dead at the provider
        let saved = saved_refresh(state_of(dir.path()).path());
        assert_eq!(saved.as_deref(), Some("rt-2"));

        // (c) Same config as before: the saved access token is used as is…
        let r = start(&p, &clock, dir.path(), "cfg-rt").await.unwrap();
        r.mount.list("").await.unwrap();
        assert_eq!(p.calls().0, 2, "restart refreshed although the saved token is valid");
        assert_eq!(p.with(|s| s.unauthorized), 0);
        // …and the saved refresh token (not the dead configured one) when it expires.
        clock.set(p.expiry_of_latest() + 1);
        r.mount.list("").await.unwrap();
        assert_eq!(p.calls().0, 3);
        assert!(r.mount.health().ok);
        assert_clean(&p);
        drop(r);

        // (d) The user logged in again and put the new token in the config.
        p.relogin("cfg-new");
        let r = start(&p, &clock, dir.path(), "cfg-new").await.unwrap();
        r.mount.list("").await.unwrap();
        assert_eq!(p.calls().0, 4, "the new config token was refreshed once");
        assert_eq!(p.with(|s| s.unauthorized), 0, "the old saved access token was tried");
        assert_clean(&p); // the old saved refresh token was not tried either
        let doc = saved_state(state_of(dir.path()).path()).unwrap();
        assert_eq!(doc["seed"].as_str(), Some(fingerprint("cfg-new").as_str()));
        assert_eq!(doc["data"]["refresh"].as_str(), Some("rt-4"));
        drop(r);
        // And from now on the state descending from the new config is preferred again.
        let r = start(&p, &clock, dir.path(), "cfg-new").await.unwrap();
        r.mount.list("").await.unwrap();
        assert_eq!(p.calls().0, 4);
        assert_clean(&p);
    })
    .await
}

// ---------------------------------------------------------------------------------------
// (e) a revoked grant: AuthLost, unhealthy mount, bounded provider calls; others unharmed
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoked_grant_is_auth_lost_and_stops_calling_provider() {
    within(async {
        let (clock, dir_a, pa) = setup("a-rt");
        let dir_b = tempfile::tempdir().unwrap();
        let pb = Provider::new(&clock, "b-rt", state_of(dir_b.path()).path());
        let a = start(&pa, &clock, dir_a.path(), "a-rt").await.unwrap();
        let b = start(&pb, &clock, dir_b.path(), "b-rt").await.unwrap();
        assert!(a.mount.health().ok && b.mount.health().ok);

        pa.revoke();
        let (r0, c0) = pa.calls();
        let results = burst(&a.mount, 32).await;
        for res in &results {
            assert!(matches!(res, Err(DriveError::AuthLost(_))), "{res:?}");
        }
        let h = a.mount.health();
        assert!(!h.ok, "mount still healthy after AuthLost: {h:?}");
        let (r1, c1) = pa.calls();
        assert_eq!(r1 - r0, 1, "refresh attempts after the revocation");
        assert!(c1 - c0 <= 32, "{} API calls for 32 requests", c1 - c0);

        // Latched: neither requests nor the background task reach the provider again,
        // also past expiry.
        clock.set(pa.expiry_of_latest() + 1);
        for res in burst(&a.mount, 16).await {
            assert!(matches!(res, Err(DriveError::AuthLost(_))), "{res:?}");
        }
        tokio::time::sleep(Duration::from_millis(700)).await; // > 3 background rounds
        assert_eq!(pa.calls(), (r1, c1), "provider called after AuthLost");
        assert!(!a.mount.health().ok);

        // The other mount refreshed (its token expired too) and keeps working.
        for res in burst(&b.mount, 16).await {
            res.unwrap();
        }
        assert!(b.mount.health().ok, "{:?}", b.mount.health());
        assert_eq!(pb.calls().0, 2);
        assert_clean(&pb);
    })
    .await
}

/// The same, found by the background task alone: no request needed to notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_grant_found_by_background_refresh() {
    within(async {
        let (clock, dir, p) = setup("cfg-rt");
        let r = start(&p, &clock, dir.path(), "cfg-rt").await.unwrap();
        assert!(r.mount.health().ok);
        p.revoke();
        clock.set(p.expiry_of_latest() - LEAD / 2);
        wait_for("the mount to turn unhealthy", || !r.mount.health().ok).await;
        let after = p.calls();
        assert_eq!(after.0, 2, "one refresh at start, one refused");
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(p.calls(), after, "background task kept calling the provider");
        assert!(matches!(r.mount.list("").await, Err(DriveError::AuthLost(_))));
        assert_eq!(p.calls(), after);
    })
    .await
}

/// `Credentials` itself: callers queued behind a refresh that fails (for a passing
/// reason, so that the dead-grant latch is not what stops them) get its error rather than
/// each running their own refresh against the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_refresh_is_shared_with_queued_callers() {
    struct Failing(Arc<AtomicUsize>);
    #[async_trait]
    impl Refresh<Creds> for Failing {
        async fn refresh(&self, _held: &Creds) -> Result<Creds, RefreshError> {
            self.0.fetch_add(1, SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err(RefreshError::Transient("invalid_grant".into()))
        }
    }
    within(async {
        let dir = tempfile::tempdir().unwrap();
        let from_config = Creds { access: String::new(), refresh: "cfg-rt".into(), expires_at: 0 };
        let calls = Arc::new(AtomicUsize::new(0));
        let cell = Arc::new(
            Credentials::restore(&state_of(dir.path()), "cfg-rt", from_config)
                .unwrap()
                .with_refresher(Arc::new(Failing(Arc::clone(&calls))), None),
        );
        let (_, seen) = cell.get();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let cell = Arc::clone(&cell);
                tokio::spawn(async move { cell.refresh(seen).await.map(|_| ()) })
            })
            .collect();
        for t in tasks {
            assert!(matches!(t.await.unwrap(), Err(DriveError::Upstream(_))));
        }
        assert_eq!(
            calls.load(SeqCst),
            1,
            "one failed refresh, then every queued caller refreshed again with the same dead token"
        );
        assert!(cell.latched().is_none(), "a passing failure does not latch the login");
    })
    .await
}
