//! The `115_open` driver in the conformance suite, against the emu115open emulator
//! (written from the reference, not from the driver). Every mount is a fresh emulated
//! user with a fresh grant; `spec.seed` is created in the emulator's store behind the
//! driver's back. Changes "from outside" go through the emulator's store (writes) or
//! through proapi with a second grant of another app (deletes), like another client.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use emu115open::{Emu115Open, Options, DEFAULT_APP_ID};
use pandav::drivers::p115::open::{client::Backoff, Open115};
use pandav::drivers::DriverCtx;
use pandav::state::StateHandle;

use crate::suite::*;

/// A second app, so the "outside" client's grant never evicts the driver's.
const OUTSIDE_APP_ID: &str = "100195999";

fn parent_and_name(p: &str) -> (String, &str) {
    match p.rfind('/') {
        Some(i) => (format!("/{}", &p[..i]), &p[i + 1..]),
        None => ("/".to_string(), p),
    }
}

fn lookup(emu: &Emu115Open, user: u64, path: &str) -> anyhow::Result<u64> {
    emu.lookup(user, path).ok_or_else(|| anyhow::anyhow!("{path} missing in the emulator"))
}

fn seed_emu(emu: &Emu115Open, user: u64, seed: &[Seed]) -> anyhow::Result<()> {
    for s in seed {
        match s {
            Seed::Dir(p) => {
                let (parent, name) = parent_and_name(p);
                emu.mkdir(user, lookup(emu, user, &parent)?, name);
            }
            Seed::File(p, data) => {
                let (parent, name) = parent_and_name(p);
                emu.put_file(user, lookup(emu, user, &parent)?, name, data);
            }
        }
    }
    Ok(())
}

fn endpoints(emu: &Emu115Open) -> toml::Table {
    emu.endpoint_table().into_iter().map(|(h, b)| (h, toml::Value::String(b))).collect()
}

/// Retries kept short: a fault-free emulator should never need them, but if one fires
/// the scenario should not sit out the 120 s timeout.
fn fast_backoff() -> Backoff {
    Backoff {
        throttle_first: Duration::from_millis(200),
        throttle_tries: 3,
        too_frequent_first: Duration::from_millis(1500),
        too_frequent_max: Duration::from_secs(5),
    }
}

pub struct P115OpenFixture {
    emu: Arc<Emu115Open>,
    ttl: Duration,
}

impl P115OpenFixture {
    pub async fn new(ttl: Duration) -> P115OpenFixture {
        let emu = Emu115Open::start(Options::default()).await;
        emu.register_app(OUTSIDE_APP_ID, "outsidesecret", None);
        P115OpenFixture { emu: Arc::new(emu), ttl }
    }
}

#[async_trait]
impl Fixture for P115OpenFixture {
    fn name(&self) -> String {
        format!("115_open(ttl={:?})", self.ttl)
    }

    fn profile(&self) -> Profile {
        Profile { writable: true, mtime_precision: Duration::from_secs(1) }
    }

    async fn mount(&self, spec: &Spec) -> anyhow::Result<TestMount> {
        let user = self.emu.add_user();
        seed_emu(&self.emu, user, &spec.seed)?;
        let tok = self.emu.authorize(user, DEFAULT_APP_ID);
        let work = tempfile::tempdir()?;
        let mut o: toml::Table = toml::from_str(&format!("refresh_token = {:?}\nrate_limit = 0", tok.refresh_token))?;
        o.insert("endpoints".into(), toml::Value::Table(endpoints(&self.emu)));
        let opts = pandav::drivers::parse_options(o)?;
        let ctx = DriverCtx {
            mount_path: "/115open".into(),
            state: StateHandle::at(work.path().join("state.json")),
            base_dir: work.path().to_path_buf(),
            source: None,
        };
        let mut drive = Open115::new(opts, &ctx)?;
        drive.set_backoff(fast_backoff());
        let opts = mount_options("/115open", spec, self.ttl, work.path().join("spool"));
        let mut tm = TestMount::start(opts, Arc::new(drive), vec![Box::new(work)]).await?;
        let access_token = self.emu.authorize(user, OUTSIDE_APP_ID).access_token;
        tm.outside = Some(Box::new(EmuOutside { emu: Arc::clone(&self.emu), user, access_token }));
        Ok(tm)
    }
}

/// Another client of the same account.
struct EmuOutside {
    emu: Arc<Emu115Open>,
    user: u64,
    access_token: String,
}

#[async_trait]
impl Outside for EmuOutside {
    async fn write_file(&self, rel: &str, data: &[u8]) -> anyhow::Result<()> {
        let (parent, name) = parent_and_name(rel);
        let pid = lookup(&self.emu, self.user, &parent)?;
        // Like an upload by another client: a same-named file is replaced.
        if let Some(old) = self.emu.children(self.user, pid).into_iter().find(|e| e.name == name) {
            self.delete(old.id).await?;
        }
        self.emu.put_file(self.user, pid, name, data);
        Ok(())
    }

    async fn remove(&self, rel: &str) -> anyhow::Result<()> {
        let id = lookup(&self.emu, self.user, &format!("/{rel}"))?;
        self.delete(id).await
    }
}

impl EmuOutside {
    async fn delete(&self, id: u64) -> anyhow::Result<()> {
        let r = reqwest::Client::new()
            .post(format!("{}/open/ufile/delete", self.emu.endpoint(emu115open::PROAPI_HOST)))
            .bearer_auth(&self.access_token)
            .form(&[("file_ids", id.to_string())])
            .send()
            .await?
            .text()
            .await?;
        anyhow::ensure!(r.contains("\"state\":true"), "outside delete: {r}");
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_115_open_ttl0() {
    run_all(&P115OpenFixture::new(Duration::ZERO).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_115_open_long_ttl() {
    run_all(&P115OpenFixture::new(Duration::from_secs(3600)).await).await;
}
