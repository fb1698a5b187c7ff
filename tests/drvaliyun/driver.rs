//! The consumer driver in-process against the emulator.

use pandav::vfs::Drive;

use crate::common::*;

#[tokio::test]
async fn smoke() {
    let env = env(Default::default()).await;
    let dir = env.emu.mkdir(env.drive(), "root", "docs");
    env.emu.put_file(env.drive(), &dir, "a.txt", b"hello".to_vec());
    let d = env.driver();
    d.init().await.unwrap();
    let m = env.mount(d.clone());
    m.init().await.unwrap();
    let (_, l) = m.list("docs").await.unwrap();
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(read_all(&m, "docs/a.txt", 0, None).await, b"hello");
    let e = put(&m, env.dir.path(), "docs/b.bin", &random_bytes(300_000, 1)).await;
    eprintln!("{e:?}");
    for r in env.emu.log() {
        eprintln!("{} {}{} {} -> {} {:?}", r.method, r.host, r.path, r.body_len, r.status, r.fault);
    }
}

#[tokio::test]
async fn probe_get_by_path() {
    let env = env(Default::default()).await;
    let dir = env.emu.mkdir(env.drive(), "root", "docs");
    env.emu.put_file(env.drive(), &dir, "a.txt", b"hello".to_vec());
    let d = env.driver();
    d.init().await.unwrap();
    let tok = d.tokens();
    let dev = d.auth().device(&tok.user_id).unwrap();
    let c = reqwest::Client::new();
    for p in ["/docs", "/docs/a.txt", "/nope", "/docs/nope"] {
        let r = c
            .post(format!("{}/v2/file/get_by_path", env.emu.endpoint("api.alipan.com")))
            .bearer_auth(&tok.access_token)
            .header("x-device-id", &dev.device_id)
            .header("x-signature", dev.signature())
            .json(&serde_json::json!({"drive_id": env.drive(), "file_path": p}))
            .send()
            .await
            .unwrap();
        eprintln!("{p}: {} {}", r.status(), r.text().await.unwrap());
    }
}
