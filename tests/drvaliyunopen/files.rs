//! Files through a mount, checked against the emulator's own view.

use emualiyun::Options;
use pandav::vfs::{Drive, DriveError};

use crate::common::*;

#[tokio::test]
async fn probe() {
    let env = env(Options::default()).await;
    let drive = env.drive().to_string();
    let a = env.emu.mkdir(&drive, "root", "a");
    env.emu.put_file(&drive, &a, "hello world.txt", b"hello".to_vec());
    let d = env.driver();
    d.init().await.unwrap();
    let m = env.mount(d.clone());
    m.init().await.unwrap();
    let (_, l) = m.list("a").await.unwrap();
    eprintln!("{l:?}");
    let e = m.resolve("a/hello world.txt").await.unwrap();
    eprintln!("{e:?}");
    eprintln!("{:?}", read_all(&m, "a/hello world.txt", 0, None).await);
    for r in env.emu.log() {
        eprintln!("{} {} {} {}", r.method, r.host, r.path, r.status);
    }
    let _ = DriveError::NotFound;
    let _ = d.quota().await;
}
