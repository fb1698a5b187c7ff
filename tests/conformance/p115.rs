//! The `115` and `115_share` drivers in the conformance suite, against the emu115
//! emulator (written from the reference, not from the drivers). Every mount is a fresh
//! emulated account; the share fixture shares a fresh account's seeded root and reads it
//! as another logged-in account.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use emu115::{Emu115, Opts};
use pandav::drivers::DriverCtx;
use pandav::state::StateHandle;

use crate::suite::*;

fn parent_and_name(p: &str) -> (String, &str) {
    match p.rfind('/') {
        Some(i) => (format!("/{}", &p[..i]), &p[i + 1..]),
        None => ("/".to_string(), p),
    }
}

fn seed_emu(emu: &Emu115, uid: u64, seed: &[Seed]) -> anyhow::Result<()> {
    for s in seed {
        let (p, data) = match s {
            Seed::Dir(p) => (p, None),
            Seed::File(p, d) => (p, Some(d)),
        };
        let (parent, name) = parent_and_name(p);
        let pid = emu.find_path(uid, &parent).ok_or_else(|| anyhow::anyhow!("seed parent {parent} missing"))?;
        match data {
            None => {
                emu.mkdir(uid, pid, name);
            }
            Some(d) => {
                emu.put_file(uid, pid, name, d.clone());
            }
        }
    }
    Ok(())
}

fn endpoints(emu: &Emu115) -> toml::Table {
    emu.endpoints().into_iter().map(|(h, b)| (h, toml::Value::String(b))).collect()
}

pub struct P115Fixture {
    emu: Arc<Emu115>,
    next: AtomicU64,
    ttl: Duration,
}

impl P115Fixture {
    pub async fn new(ttl: Duration) -> P115Fixture {
        P115Fixture { emu: Arc::new(Emu115::start(Opts::default()).await), next: AtomicU64::new(100_000_001), ttl }
    }
}

#[async_trait]
impl Fixture for P115Fixture {
    fn name(&self) -> String {
        format!("115(ttl={:?})", self.ttl)
    }

    fn profile(&self) -> Profile {
        Profile { writable: true, mtime_precision: Duration::from_secs(1) }
    }

    async fn mount(&self, spec: &Spec) -> anyhow::Result<TestMount> {
        let uid = self.next.fetch_add(1, Ordering::SeqCst);
        let cookie = self.emu.add_user(uid, &format!("user{uid}"));
        seed_emu(&self.emu, uid, &spec.seed)?;
        let work = tempfile::tempdir()?;
        let mut o: toml::Table = toml::from_str(&format!(
            "cookie = {cookie:?}\nrate_limit = 0\nretry_base_ms = 50\nm115_test_modulus = {:?}\nec115_server_public_key = {:?}",
            self.emu.m115_modulus_hex(),
            self.emu.ec_server_public_hex()
        ))?;
        o.insert("endpoints".into(), toml::Value::Table(endpoints(&self.emu)));
        let ctx = DriverCtx {
            mount_path: "/115".into(),
            state: StateHandle::at(work.path().join("state.json")),
            base_dir: work.path().to_path_buf(),
            source: None,
        };
        let drive = pandav::drivers::build("115", o, ctx)?;
        let opts = mount_options("/115", spec, self.ttl, work.path().join("spool"));
        let mut tm = TestMount::start(opts, drive, vec![Box::new(work)]).await?;
        tm.outside = Some(Box::new(EmuOutside { emu: Arc::clone(&self.emu), uid, cookie }));
        Ok(tm)
    }
}

/// Another client of the same account.
struct EmuOutside {
    emu: Arc<Emu115>,
    uid: u64,
    cookie: String,
}

#[async_trait]
impl Outside for EmuOutside {
    async fn write_file(&self, rel: &str, data: &[u8]) -> anyhow::Result<()> {
        let (parent, name) = parent_and_name(rel);
        let pid = self.emu.find_path(self.uid, &parent).ok_or_else(|| anyhow::anyhow!("{parent} missing"))?;
        self.emu.put_file(self.uid, pid, name, data.to_vec());
        Ok(())
    }

    async fn remove(&self, rel: &str) -> anyhow::Result<()> {
        let id = self.emu.find_path(self.uid, &format!("/{rel}")).ok_or_else(|| anyhow::anyhow!("{rel} missing"))?;
        let r = reqwest::Client::new()
            .post(format!("{}/rb/delete", self.emu.endpoint("webapi.115.com")))
            .header("Cookie", &self.cookie)
            .form(&[("fid[0]", id.to_string())])
            .send()
            .await?
            .text()
            .await?;
        anyhow::ensure!(r.contains("\"state\":true"), "outside delete: {r}");
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_115_ttl0() {
    run_all(&P115Fixture::new(Duration::ZERO).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_115_long_ttl() {
    run_all(&P115Fixture::new(Duration::from_secs(3600)).await).await;
}

pub struct ShareFixture {
    emu: Arc<Emu115>,
    next: AtomicU64,
    numeric: bool,
}

#[async_trait]
impl Fixture for ShareFixture {
    fn name(&self) -> String {
        format!("115_share(share_state {})", if self.numeric { "number" } else { "string" })
    }

    fn profile(&self) -> Profile {
        Profile { writable: false, mtime_precision: Duration::from_secs(1) }
    }

    async fn mount(&self, spec: &Spec) -> anyhow::Result<TestMount> {
        let owner = self.next.fetch_add(2, Ordering::SeqCst);
        self.emu.add_user(owner, &format!("owner{owner}"));
        let viewer = self.emu.add_user(owner + 1, &format!("viewer{owner}"));
        seed_emu(&self.emu, owner, &spec.seed)?;
        let ids: Vec<u64> = self.emu.list_children(owner, 0).iter().map(|e| e.id).collect();
        let share = self.emu.create_share(owner, &ids);
        self.emu.set_share_state_numeric(self.numeric);
        let work = tempfile::tempdir()?;
        let mut o: toml::Table = toml::from_str(&format!(
            "share_code = {:?}\nreceive_code = {:?}\ncookie = {viewer:?}\nrate_limit = 0\nretry_base_ms = 50\nm115_test_modulus = {:?}",
            share.share_code,
            share.receive_code,
            self.emu.m115_modulus_hex()
        ))?;
        o.insert("endpoints".into(), toml::Value::Table(endpoints(&self.emu)));
        let ctx = DriverCtx {
            mount_path: "/share".into(),
            state: StateHandle::at(work.path().join("state.json")),
            base_dir: work.path().to_path_buf(),
            source: None,
        };
        let drive = pandav::drivers::build("115_share", o, ctx)?;
        let opts = mount_options("/share", spec, Duration::from_secs(60), work.path().join("spool"));
        TestMount::start(opts, drive, vec![Box::new(work)]).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_115_share() {
    for numeric in [true, false] {
        let fx = ShareFixture {
            emu: Arc::new(Emu115::start(Opts::default()).await),
            next: AtomicU64::new(300_000_001),
            numeric,
        };
        run_all(&fx).await;
    }
}
