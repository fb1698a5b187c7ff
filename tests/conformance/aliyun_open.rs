//! The `aliyundrive_open` driver in the conformance suite, against the emualiyun emulator
//! (written from the reference, not from the driver). Every mount is a fresh emulated
//! user with a fresh grant; `spec.seed` is created in the emulator's store behind the
//! driver's back. Changes "from outside" go through the emulator's store (writes) or
//! through the Open API with a second app's grant (deletes), like another client.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use emualiyun::{AppSpec, EmuAliyun, Options};
use pandav::drivers::aliyun::open::AliyunOpen;
use pandav::drivers::DriverCtx;
use pandav::state::StateHandle;

use crate::aliyun_open_env::{fast_retry, CLIENT_ID, CLIENT_SECRET};
use crate::suite::*;

/// A second app, the "outside" client.
const OUTSIDE_ID: &str = "pandavoutsideapp";

fn parent_and_name(p: &str) -> (String, &str) {
    match p.rfind('/') {
        Some(i) => (format!("/{}", &p[..i]), &p[i + 1..]),
        None => ("/".to_string(), p),
    }
}

fn lookup(emu: &EmuAliyun, drive: &str, path: &str) -> anyhow::Result<String> {
    emu.lookup(drive, path).ok_or_else(|| anyhow::anyhow!("{path} missing in the emulator"))
}

fn seed_emu(emu: &EmuAliyun, drive: &str, seed: &[Seed]) -> anyhow::Result<()> {
    for s in seed {
        match s {
            Seed::Dir(p) => {
                let (parent, name) = parent_and_name(p);
                emu.mkdir(drive, &lookup(emu, drive, &parent)?, name);
            }
            Seed::File(p, data) => {
                let (parent, name) = parent_and_name(p);
                emu.put_file(drive, &lookup(emu, drive, &parent)?, name, data.clone());
            }
        }
    }
    Ok(())
}

pub struct AliyunOpenFixture {
    emu: Arc<EmuAliyun>,
    ttl: Duration,
}

impl AliyunOpenFixture {
    pub async fn new(ttl: Duration) -> AliyunOpenFixture {
        // Pacing and the emulator's rate limits are the driver tests' business
        // (tests/drvaliyunopen); here they would only make every scenario slow.
        let emu = EmuAliyun::start_temp(Options { open_rates: None, ..Options::default() }).await;
        emu.register_app(AppSpec::new(CLIENT_ID, CLIENT_SECRET));
        emu.register_app(AppSpec::new(OUTSIDE_ID, "outside-secret"));
        AliyunOpenFixture { emu: Arc::new(emu), ttl }
    }
}

#[async_trait]
impl Fixture for AliyunOpenFixture {
    fn name(&self) -> String {
        format!("aliyundrive_open(ttl={:?})", self.ttl)
    }

    fn profile(&self) -> Profile {
        Profile { writable: true, mtime_precision: Duration::from_secs(1) }
    }

    async fn mount(&self, spec: &Spec) -> anyhow::Result<TestMount> {
        let user = self.emu.add_user(&format!("u{}", rand::random::<u32>()));
        let drive = user.resource_drive_id.clone();
        seed_emu(&self.emu, &drive, &spec.seed)?;
        let tok = self.emu.open_authorize(&user.user_id, CLIENT_ID);
        let work = tempfile::tempdir()?;
        let mut o: toml::Table = toml::from_str(&format!(
            "client_id = {CLIENT_ID:?}\nclient_secret = {CLIENT_SECRET:?}\nrefresh_token = {:?}\nrate_limit = 0",
            tok.refresh_token
        ))?;
        let ep: toml::Table = self.emu.endpoints().into_iter().map(|(h, b)| (h, toml::Value::String(b))).collect();
        o.insert("endpoints".into(), toml::Value::Table(ep));
        let opts = pandav::drivers::parse_options(o)?;
        let ctx = DriverCtx {
            mount_path: "/aliopen".into(),
            state: StateHandle::at(work.path().join("state.json")),
            base_dir: work.path().to_path_buf(),
            source: None,
        };
        let mut d = AliyunOpen::new(opts, &ctx)?;
        d.set_retry(fast_retry());
        let opts = mount_options("/aliopen", spec, self.ttl, work.path().join("spool"));
        let mut tm = TestMount::start(opts, Arc::new(d), vec![Box::new(work)]).await?;
        let access_token = self.emu.open_authorize(&user.user_id, OUTSIDE_ID).access_token;
        tm.outside = Some(Box::new(EmuOutside { emu: Arc::clone(&self.emu), drive, access_token }));
        Ok(tm)
    }
}

/// Another client of the same account.
struct EmuOutside {
    emu: Arc<EmuAliyun>,
    drive: String,
    access_token: String,
}

#[async_trait]
impl Outside for EmuOutside {
    async fn write_file(&self, rel: &str, data: &[u8]) -> anyhow::Result<()> {
        let (parent, name) = parent_and_name(rel);
        let pid = lookup(&self.emu, &self.drive, &parent)?;
        // Like an upload by another client: a same-named file is replaced.
        if let Some(old) = self.emu.children(&self.drive, &pid).into_iter().find(|e| e.name == name) {
            self.trash(&old.file_id).await?;
        }
        self.emu.put_file(&self.drive, &pid, name, data.to_vec());
        Ok(())
    }

    async fn remove(&self, rel: &str) -> anyhow::Result<()> {
        let id = lookup(&self.emu, &self.drive, &format!("/{rel}"))?;
        self.trash(&id).await
    }
}

impl EmuOutside {
    async fn trash(&self, id: &str) -> anyhow::Result<()> {
        let r = reqwest::Client::new()
            .post(format!("{}/adrive/v1.0/openFile/recyclebin/trash", self.emu.endpoint("openapi.alipan.com")))
            .bearer_auth(&self.access_token)
            .json(&serde_json::json!({"drive_id": self.drive, "file_id": id}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "outside trash: {} {}", r.status(), r.text().await?);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_aliyundrive_open_ttl0() {
    run_all(&AliyunOpenFixture::new(Duration::ZERO).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_aliyundrive_open_long_ttl() {
    run_all(&AliyunOpenFixture::new(Duration::from_secs(3600)).await).await;
}
