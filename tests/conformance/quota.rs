//! `Mount::quota`: the drive's answer, reused for a short while (PROPFIND asks often).

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use pandav::vfs::{Caps, Drive, DriveResult, Entry, Mount, MountOptions, Policy, Quota};

struct Counting(AtomicUsize);

#[async_trait]
impl Drive for Counting {
    fn kind(&self) -> &'static str {
        "counting"
    }
    fn caps(&self) -> Caps {
        Caps::default()
    }
    async fn root(&self) -> DriveResult<Entry> {
        Ok(Entry::dir("0", "", UNIX_EPOCH))
    }
    async fn list(&self, _dir: &Entry) -> DriveResult<Vec<Entry>> {
        Ok(vec![])
    }
    async fn quota(&self) -> DriveResult<Option<Quota>> {
        let n = self.0.fetch_add(1, SeqCst) as u64;
        Ok(Some(Quota { used: 100 + n, total: Some(1000) }))
    }
}

#[tokio::test]
async fn quota_goes_through_the_mount_and_is_cached() {
    let drive = Arc::new(Counting(AtomicUsize::new(0)));
    let spool = tempfile::tempdir().unwrap();
    let m = Mount::new(
        MountOptions {
            path: "/q".into(),
            policy: Policy::Proxy,
            proxy_url: None,
            read_only: false,
            cache_ttl: Duration::from_secs(60),
            spool_dir: spool.path().into(),
        },
        drive.clone(),
    );
    let q = m.quota().await.unwrap().unwrap();
    assert_eq!((q.used, q.total), (100, Some(1000)));
    for _ in 0..5 {
        assert_eq!(m.quota().await.unwrap().unwrap().used, 100, "answered from the cache");
    }
    assert_eq!(drive.0.load(SeqCst), 1, "one drive call for six questions");
}
