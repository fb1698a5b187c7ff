//! Token rotation with three replicas sharing a real Redis, against the 115 Open
//! emulator (single-use refresh tokens): kill -9 of replicas while refreshes run, Redis
//! killed and restarted mid-run, and a refresh that waits for an unreachable Redis
//! instead of refreshing without the lock. The emulator's counts are the oracle: every
//! refresh token it issued was sent at most once, and the one Redis holds is live.

use std::time::{Duration, Instant};

use emu115open::{Emu115Open, Options, DEFAULT_APP_ID};
use rand::{Rng, SeedableRng};

use crate::common::crash::listing;
use crate::common::*;
use crate::redis_fixture::Redis;
use crate::util::*;

fn open_mount(cfg: ConfigBuilder, emu: &Emu115Open, path: &str, refresh_token: &str, extra: &str) -> ConfigBuilder {
    open_mount_via(cfg, emu, None, path, refresh_token, extra)
}

/// [`open_mount`], with the passport host (token refreshes) reached through `passport`.
fn open_mount_via(
    cfg: ConfigBuilder,
    emu: &Emu115Open,
    passport: Option<std::net::SocketAddr>,
    path: &str,
    refresh_token: &str,
    extra: &str,
) -> ConfigBuilder {
    let mut eps = String::from("[mounts.options.endpoints]\n");
    for (h, mut b) in emu.endpoint_table() {
        if let (Some(relay), true) = (passport, h == emu115open::PASSPORT_HOST) {
            b = b.replace(&emu.addr().to_string(), &relay.to_string());
        }
        eps.push_str(&format!("{} = {}\n", toml_str(&h), toml_str(&b)));
    }
    let opts = format!(
        "refresh_token = {}\nrate_limit = 0\nclient_id = {}",
        toml_str(refresh_token),
        toml_str(DEFAULT_APP_ID)
    );
    cfg.mount(path, "115_open", &format!("cache_ttl = \"0s\"\n{extra}"), &opts, &eps)
}

/// A TCP relay to `to` that holds each new connection for `delay` before passing its
/// bytes: a refresh then takes that long at the provider, so refreshes started by
/// several replicas overlap (the emulator alone answers in a millisecond, and the
/// helper processes start too far apart to ever race without it).
async fn slow_relay(to: std::net::SocketAddr, delay: Duration) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Ok(mut u) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
                }
            });
        }
    });
    addr
}

struct Fleet {
    t: TestDir,
    text: Vec<String>,
    servers: Vec<Option<Server>>,
}

impl Fleet {
    async fn start(cfg: &ConfigBuilder, redis: &Redis, n: usize) -> Fleet {
        let t = TestDir::new();
        let mut text = vec![];
        for i in 0..n {
            let dir = t.mkdir(&format!("replica-{i}"));
            let state = dir.join("state");
            std::fs::create_dir_all(&state).unwrap();
            text.push(cfg.clone().server(&format!("state = {}", toml_str(&redis.url()))).build(&state));
        }
        let mut f = Fleet { t, text, servers: (0..n).map(|_| None).collect() };
        for i in 0..n {
            f.up(i).await;
        }
        f
    }

    async fn up(&mut self, i: usize) {
        if self.servers[i].is_none() {
            let dir = self.t.join(&format!("replica-{i}"));
            self.servers[i] = Some(serve(&dir, self.text[i].clone()).await);
        }
    }

    fn url(&self, i: usize) -> Option<String> {
        self.servers[i].as_ref().map(|s| s.url().to_string())
    }

    fn kill(&mut self, i: usize) {
        if let Some(s) = self.servers[i].take() {
            s.kill();
        }
    }
}

/// The refresh token the shared state holds for `mount`.
fn saved_refresh(redis: &Redis, mount: &str) -> String {
    let mut con = redis.client();
    let doc: Vec<u8> = redis::cmd("HGET").arg(format!("pandav:cred:{mount}")).arg("doc").query(&mut con).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    v["data"]["refresh_token"].as_str().unwrap().to_string()
}

async fn healthy(base: &str) {
    let ms = settled(base, None).await;
    assert!(ms.iter().all(|m| m["ok"] == true), "{ms:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_replicas_and_a_redis_restart_lose_no_token() {
    let mut redis = Redis::start();
    let emu = Emu115Open::start(Options { access_token_ttl: Duration::from_secs(6), ..Default::default() }).await;
    let user = emu.add_user_named("alice");
    let tok = emu.authorize(user, DEFAULT_APP_ID);
    emu.put_file(user, 0, "hello.txt", b"hi");
    let relay = slow_relay(emu.addr(), Duration::from_millis(150)).await;
    let cfg = open_mount_via(ConfigBuilder::new(), &emu, Some(relay), "/o", &tok.refresh_token, "");
    let mut fleet = Fleet::start(&cfg, &redis, 3).await;
    let rounds: usize = std::env::var("PANDAV_CRASH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(50);
    let seed: u64 = std::env::var("PANDAV_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("replica crash test: {rounds} rounds, seed {seed} (PANDAV_CRASH_SEED to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let grant = tok.grant;
    let redis_restarts = [rounds / 3, 2 * rounds / 3];
    for round in 0..rounds {
        for i in 0..3 {
            fleet.up(i).await;
        }
        for i in 0..3 {
            let base = fleet.url(i).unwrap();
            let (st, body) = listing(&base, "/o/").await;
            assert!(st == 207 && body.contains("hello.txt"), "round {round}: replica {i} cannot list: {st} {body}");
        }
        // Refreshes everywhere: the access token keeps expiring while requests go to
        // every replica; one replica is killed at a random moment.
        let victim = rng.gen_range(0..3);
        let kill_at = Instant::now() + Duration::from_millis(rng.gen_range(0..700));
        let mut inflight = vec![];
        while Instant::now() < kill_at {
            // A burst on every replica at once: three refreshes of one token race for
            // the lock (without it the emulator sees the spent token again).
            emu.expire_access_token(grant);
            for i in 0..3 {
                for _ in 0..rng.gen_range(1..3) {
                    let base = fleet.url(i).unwrap();
                    inflight.push(tokio::spawn(async move { listing(&base, "/o/").await }));
                }
            }
            tokio::time::sleep(Duration::from_millis(rng.gen_range(1..40))).await;
        }
        if rng.gen_bool(0.3) {
            emu.expire_access_token(grant);
            let base = fleet.url(victim).unwrap();
            inflight.push(tokio::spawn(async move { listing(&base, "/o/").await }));
            tokio::time::sleep(Duration::from_micros(rng.gen_range(0..3000))).await;
        }
        fleet.kill(victim);
        if redis_restarts.contains(&round) {
            // SIGKILL of Redis with refreshes in flight; it comes back from its AOF.
            eprintln!("round {round}: restarting Redis");
            redis.restart();
        }
        for t in inflight {
            let _ = t.await;
        }
        if std::env::var_os("PANDAV_CRASH_VERBOSE").is_some() {
            eprintln!("round {round}: killed {victim}; refreshes {}", emu.refresh_count(grant));
        }
    }
    for i in 0..3 {
        fleet.up(i).await;
        let base = fleet.url(i).unwrap();
        healthy(&base).await;
        let (st, body) = listing(&base, "/o/").await;
        assert!(st == 207 && body.contains("hello.txt"), "replica {i} after the run: {st}");
    }
    let info = emu.grant_info(grant).unwrap();
    eprintln!("replica crash test: {} refreshes over {rounds} kills", info.refresh_count);
    assert!(info.refresh_count as usize >= rounds, "refreshes were exercised: {}", info.refresh_count);
    assert_eq!(
        info.refresh_attempts, info.refresh_count,
        "a refresh token was sent twice (two replicas refreshed one grant)"
    );
    // Helpers of killed replicas may still be writing.
    let t = Instant::now();
    loop {
        let saved = saved_refresh(&redis, "/o");
        if saved == emu.grant_info(grant).unwrap().refresh_token {
            assert!(emu.is_refresh_token_live(&saved));
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "Redis holds a dead refresh token");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// While Redis is down: cached data still serves, and a refresh waits for Redis (it
/// never refreshes without the shared lock); once Redis is back, exactly one refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_cached_reads_work_and_refreshes_wait() {
    let mut redis = Redis::start();
    let emu = Emu115Open::start(Options::default()).await;
    let user = emu.add_user_named("alice");
    let tok = emu.authorize(user, DEFAULT_APP_ID);
    emu.put_file(user, 0, "hello.txt", b"hi");
    let t = TestDir::new();
    let data = t.mkdir("data");
    std::fs::write(data.join("local.txt"), b"local").unwrap();
    let cfg = open_mount(ConfigBuilder::new(), &emu, "/o", &tok.refresh_token, "").local("/d", &data);
    let mut fleet = Fleet::start(&cfg, &redis, 2).await;
    let (a, b) = (fleet.url(0).unwrap(), fleet.url(1).unwrap());
    healthy(&a).await;
    healthy(&b).await;
    let get = |base: String| async move {
        http()
            .get(format!("{base}/o/hello.txt"))
            .header("User-Agent", "player/1")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(get(a.clone()).await, 302);
    let refreshes = emu.refresh_count(tok.grant);

    redis.kill();
    // Cached: the link A holds, a local folder.
    assert_eq!(get(a.clone()).await, 302, "a cached link without Redis");
    let (st, body) = listing(&a, "/d/").await;
    assert!(st == 207 && body.contains("local.txt"), "{st}");
    // A refresh now has to wait for the lock.
    emu.expire_access_token(tok.grant);
    let waiting = tokio::spawn({
        let b = b.clone();
        async move { listing(&b, "/o/").await }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!waiting.is_finished(), "the listing did not wait for the refresh lock");
    assert_eq!(emu.refresh_count(tok.grant), refreshes, "refreshed without the shared lock");
    assert_eq!(emu.refresh_attempts(tok.grant), refreshes);
    redis.start_again();
    let (st, body) = waiting.await.unwrap();
    assert!(st == 207 && body.contains("hello.txt"), "{st} {body}");
    assert_eq!(emu.refresh_count(tok.grant), refreshes + 1, "exactly one refresh");
    // The other replica adopts the pair instead of refreshing again.
    let (st, body) = listing(&a, "/o/").await;
    assert!(st == 207 && body.contains("hello.txt"), "{st}");
    assert_eq!(emu.refresh_count(tok.grant), refreshes + 1);
    let info = emu.grant_info(tok.grant).unwrap();
    assert_eq!(info.refresh_attempts, info.refresh_count);
    assert_eq!(saved_refresh(&redis, "/o"), info.refresh_token);
    fleet.kill(0);
    fleet.kill(1);
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
struct Pair {
    refresh: String,
}

impl pandav::vfs::credentials::Grant for Pair {
    fn rotating(&self) -> &str {
        &self.refresh
    }
}

/// A mount's credentials kept in `redis` under `key` (its state dir unused).
fn shared_state(redis: &Redis, key: &str) -> (pandav::vfs::credentials::StateFile, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut file = pandav::vfs::credentials::StateFile::new(&dir.path().join("unused.json"), "");
    file.shared = Some(pandav::state::SharedKey { url: redis.url(), key: key.into() });
    (file, dir)
}

/// The fence: a holder whose lock expired (here: was deleted, as after a pause longer
/// than its lifetime) cannot overwrite the pair the next holder saved; and nobody takes
/// a lock that is held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_lock_expired_cannot_overwrite_a_newer_pair() {
    let redis = Redis::start();
    let (file, _dir) = shared_state(&redis, "pandav:cred:/fence");
    let a = file.lock().await.unwrap();
    assert!(a.read::<Pair>().is_none());
    // While A holds the lock, B waits.
    let f2 = file.clone();
    let b = tokio::spawn(async move { f2.lock().await.map(|l| (l, Instant::now())) });
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!b.is_finished(), "B took a held lock");
    // A's lock expires (gone from Redis); B gets it and saves a pair.
    let mut con = redis.client();
    let _: i64 = redis::cmd("DEL").arg("pandav:cred:/fence:lock").query(&mut con).unwrap();
    let (b, _) = b.await.unwrap().unwrap();
    b.write(&Pair { refresh: "from-b".into() }).await.unwrap();
    b.release().await;
    // A comes back and tries to save what it got: refused, B's pair stays.
    let e = a.write(&Pair { refresh: "from-a".into() }).await.unwrap_err();
    assert!(e.to_string().contains("not overwritten"), "{e}");
    let c = file.lock().await.unwrap();
    assert_eq!(c.read::<Pair>(), Some(Pair { refresh: "from-b".into() }));
    // A holder that read the current generation writes fine, twice in a row.
    c.write(&Pair { refresh: "from-c".into() }).await.unwrap();
    c.write(&Pair { refresh: "from-c2".into() }).await.unwrap();
    c.release().await;
    assert_eq!(file.read::<Pair>(), Some(Pair { refresh: "from-c2".into() }));
}

/// A refresh whose lock expired before it saved (Redis away longer than the lock's
/// lifetime while it waited for the provider or retried its write) is waited for: the
/// next holder does not refresh the old, possibly spent, token but adopts what the first
/// one saves. A refresh that ends without a write lets go of its mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_whose_lock_expired_is_waited_for_not_repeated() {
    let redis = Redis::start();
    let (file, _dir) = shared_state(&redis, "pandav:cred:/pending");
    let mut con = redis.client();
    let l = file.lock().await.unwrap();
    l.write(&Pair { refresh: "old".into() }).await.unwrap();
    l.release().await;

    let a = file.lock().await.unwrap();
    a.begin_refresh().await.unwrap();
    let _: i64 = redis::cmd("DEL").arg("pandav:cred:/pending:lock").query(&mut con).unwrap();
    let f2 = file.clone();
    let b = tokio::spawn(async move { f2.lock().await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!b.is_finished(), "B took the lock while A's refresh may still be saving");
    a.write(&Pair { refresh: "new".into() }).await.unwrap();
    a.release().await;
    let b = b.await.unwrap().unwrap();
    assert_eq!(b.read::<Pair>(), Some(Pair { refresh: "new".into() }), "B adopts A's pair");
    // A holder whose lock is gone cannot start a refresh.
    let _: i64 = redis::cmd("DEL").arg("pandav:cred:/pending:lock").query(&mut con).unwrap();
    assert!(b.begin_refresh().await.is_err());
    b.release().await;

    // A refresh that failed (no write) clears its mark when it lets go.
    let c = file.lock().await.unwrap();
    c.begin_refresh().await.unwrap();
    let mark: Option<String> = redis::cmd("HGET").arg("pandav:cred:/pending").arg("pending").query(&mut con).unwrap();
    assert!(mark.is_some());
    c.release().await;
    let mark: Option<String> = redis::cmd("HGET").arg("pandav:cred:/pending").arg("pending").query(&mut con).unwrap();
    assert_eq!(mark, None);
    let d = file.lock().await.unwrap();
    assert_eq!(d.read::<Pair>(), Some(Pair { refresh: "new".into() }));
    d.release().await;
}
