//! 115 and 115 Share drivers against hand-written fixtures taken from
//! `shared/reference/115-web.md` (example bodies, verbatim error bodies, the TEST RSA key
//! and a test P-224 key), with every quirk the reference lists.

#[path = "common/mod.rs"]
mod common;
#[path = "drv115/emu.rs"]
mod emu;
#[path = "drv115/fixture.rs"]
mod fixture;
#[path = "drv115/model.rs"]
mod model;

use std::sync::Arc;
use std::time::Duration;

use fixture::{Fixture, Req, Resp};
use model::Model;
use pandav::drivers::p115::web::{self as p115, P115Drive};
use pandav::drivers::DriverCtx;
use pandav::state::StateHandle;
use pandav::vfs::*;
use serde_json::json;

struct Env {
    fx: Fixture,
    dir: tempfile::TempDir,
}

impl Env {
    async fn new(h: impl Fn(&Req) -> Resp + Send + Sync + 'static) -> Env {
        Env { fx: Fixture::start(h).await, dir: tempfile::tempdir().unwrap() }
    }

    async fn model(m: &Model) -> Env {
        let m = m.clone();
        Env::new(move |r| m.handle(r)).await
    }

    fn ctx(&self) -> DriverCtx {
        DriverCtx {
            mount_path: "/115".into(),
            state: StateHandle::at(self.dir.path().join("mount-_115.json")),
            base_dir: self.dir.path().to_path_buf(),
            source: None,
        }
    }

    fn options(&self, extra: &str) -> toml::Table {
        let mut t: toml::Table = toml::from_str(&format!(
            "cookie = {:?}\nrate_limit = 0\nretry_base_ms = 5\nthrottle_cooldown_secs = 2\napp_version = \"35.6.0.3\"\nm115_test_modulus = {:?}\nec115_server_public_key = {:?}\n{extra}",
            model::COOKIE,
            model::test_rsa().0,
            model::ec_pub_hex()
        ))
        .unwrap();
        t.insert("endpoints".into(), toml::Value::Table(self.fx.endpoints_toml()));
        t
    }

    fn drive(&self, extra: &str) -> P115Drive {
        p115::build(self.options(extra), &self.ctx()).unwrap()
    }
}

async fn spool(dir: &std::path::Path, data: &[u8]) -> spool::Spooled {
    let mut s = spool::Spool::create(dir).await.unwrap();
    for c in data.chunks(64 * 1024) {
        s.write(c).await.unwrap();
    }
    s.finish(None).await.unwrap()
}

fn root() -> Entry {
    Entry::dir("0", "", std::time::UNIX_EPOCH)
}

fn gen(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + 11) & 0xff) as u8).collect()
}

// ---------------------------------------------------------------------------------
// Options

#[test]
fn options_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = DriverCtx {
        mount_path: "/115".into(),
        state: StateHandle::at(dir.path().join("s.json")),
        base_dir: dir.path().into(),
        source: None,
    };
    let bad = |s: &str| {
        let t: toml::Table = toml::from_str(s).unwrap();
        match p115::build(t, &ctx) {
            Ok(_) => panic!("accepted {s}"),
            Err(e) => format!("{e:#}"),
        }
    };
    assert!(bad("page_size = 1151").contains("1150"));
    assert!(bad("order = \"random\"").contains("order"));
    assert!(bad("cookee = \"x\"").contains("cookee"));
    assert!(bad("delete = \"shred\"").contains("shred") || bad("delete = \"shred\"").contains("variant"));
    let e = bad("cookie = \"UID=1_A1_2; SEID=topsecret\"");
    assert!(e.contains("CID") && !e.contains("topsecret"), "{e}");
    assert!(bad("[endpoints]\n\"webapi.115.com\" = \"ftp://x\"").contains("http"));
    // A trailing ';' and spaces are fine; root id may be an integer.
    let ok: toml::Table =
        toml::from_str("cookie = \"UID=1_A1_2; CID=a; SEID=b; KID=c; \"\nroot_folder_id = 0\ndelete = \"permanent\"")
            .unwrap();
    let d = p115::build(ok, &ctx).unwrap();
    assert!(!format!("{:?}", d.caps()).is_empty());
    // Registry: 115 redirects by default, 115_share too, both offer the three policies.
    let i = pandav::drivers::info("115").unwrap();
    assert_eq!(i.default_policy, pandav::vfs::PolicyKind::Redirect);
    assert_eq!(pandav::drivers::info("115_share").unwrap().policies.len(), 3);
}

// ---------------------------------------------------------------------------------
// Listing

#[tokio::test]
async fn reference_listing_example_parses() {
    // The example body of §2.1, verbatim, for folder 2593093001609739968.
    let env = Env::new(|r| {
        if r.is("my.115.com", "/") {
            return Resp::json(json!({"state":true}));
        }
        assert!(r.is("webapi.115.com", "/files"));
        Resp::raw(200, "application/json", r##"{"state":true,"error":"","errNo":0,
 "aid":1,"cid":"2593093001609739968","count":3,"order":"user_ptime","is_asc":1,
 "offset":0,"limit":1150,"page_size":1150,"fc_mix":0,"sys_count":0,
 "path":[{"name":"根目录","aid":1,"cid":0,"pid":0},{"name":"Movies","aid":1,"cid":"2593093001609739968","pid":"0"}],
 "data":[
  {"cid":"2593093001609740001","pid":"2593093001609739968","aid":"1","n":"Season 1",
   "t":"1700000000","te":"1700000000","tp":"1699990000","pc":"fbndxbf3njpb2sw7he","m":0,"fl":[],"ns":"Season 1"},
  {"fid":"2593093001609740123","cid":"2593093001609739968","uid":123456789,"aid":"1",
   "n":"movie.mkv","s":1073741824,"sha":"0123456789ABCDEF0123456789ABCDEF01234567",
   "pc":"a87dby98esbg8hgqn","ico":"mkv","class":"AVI","iv":1,"vdi":4,"play_long":5400,
   "t":"2023-11-15 06:13","te":"1700000000","tp":"1699990000","to":"1700000500",
   "m":0,"fl":[{"id":"3","name":"movie","color":"#2670FC","sort":"0","create_time":1690000000,"update_time":1690000000}],
   "u":"https://thumb.115.com/...","d":0,"c":0,"sh":0,"e":"","p":0,"sta":1,"hdf":0}
 ]}"##)
    })
    .await;
    let d = env.drive("root_folder_id = \"2593093001609739968\"\npage_size = 1150");
    d.init().await.unwrap();
    let r = d.root().await.unwrap();
    assert_eq!((r.id(), r.name()), ("2593093001609739968", "Movies"));
    let l = d.list(&r).await.unwrap();
    assert_eq!(l.len(), 2);
    assert!(l[0].is_dir && l[0].name() == "Season 1" && l[0].id() == "2593093001609740001");
    let f = &l[1];
    assert_eq!((f.id(), f.size), ("2593093001609740123", 1073741824));
    assert_eq!(f.hashes().sha1.as_deref(), Some("0123456789abcdef0123456789abcdef01234567"));
    assert_eq!(f.extra(), Some("a87dby98esbg8hgqn"));
    // count 3 but only 2 items: stop, do not loop.
    let reqs = env.fx.requests();
    let lists: Vec<&Req> = reqs.iter().filter(|r| r.is("webapi.115.com", "/files")).collect();
    let q = lists.last().unwrap();
    assert_eq!(q.q("limit").as_deref(), Some("1150"));
    for (k, v) in [
        ("aid", "1"),
        ("o", "user_ptime"),
        ("asc", "1"),
        ("show_dir", "1"),
        ("snap", "0"),
        ("natsort", "0"),
        ("record_open_time", "1"),
        ("format", "json"),
        ("fc_mix", "0"),
    ] {
        assert_eq!(q.q(k).as_deref(), Some(v), "{k}");
    }
}

#[tokio::test]
async fn listing_pages_through_everything_with_the_cookie() {
    let m = Model::new();
    for i in 0..5 {
        m.add("0", &format!("f{i}.bin"), false, &gen(i + 1));
    }
    let sub = m.add("0", "sub", true, b"");
    let env = Env::model(&m).await;
    let d = env.drive("page_size = 2");
    d.init().await.unwrap();
    let l = d.list(&root()).await.unwrap();
    assert_eq!(l.len(), 6);
    assert!(l.iter().any(|e| e.is_dir && e.id() == sub));
    let offs: Vec<String> =
        env.fx.requests().iter().filter(|r| r.is("webapi.115.com", "/files")).map(|r| r.q("offset").unwrap()).collect();
    assert_eq!(offs, ["0", "2", "4"]);
    let cookie = env.fx.requests()[0].header("cookie").unwrap();
    assert_eq!(cookie, "UID=123456789_A1_1700000000;CID=0f1e2d3c;SEID=9a8b7c6d5e4f;KID=c3d4e5f6");
    assert!(env.fx.requests()[1].header("user-agent").unwrap().starts_with("Mozilla/5.0 115Browser/"));
}

#[tokio::test]
async fn a_missing_folder_is_not_found_not_the_root() {
    let m = Model::new();
    m.add("0", "a.txt", false, b"a");
    let env = Env::model(&m).await;
    let d = env.drive("");
    let ghost = Entry::dir("2593093001609749999", "ghost", std::time::UNIX_EPOCH);
    assert!(matches!(d.list(&ghost).await, Err(DriveError::NotFound)));
}

#[tokio::test]
async fn unsupported_order_falls_back_to_the_one_offered() {
    let env = Env::new(|r| {
        if r.q("o").as_deref() == Some("file_size") {
            return Resp::json(json!({"state":false,"error":"","errNo":20130827,"order":"user_ptime","is_asc":"0","cid":"0"}));
        }
        assert_eq!(r.q("asc").as_deref(), Some("0"));
        Resp::json(json!({"state":true,"cid":0,"count":1,"offset":0,"data":[{"fid":"5","cid":"0","n":"x","s":"3","sha":"A9993E364706816ABA3E25717850C26C9CD0D89D","pc":"abc"}]}))
    })
    .await;
    let d = env.drive("order = \"file_size\"");
    let l = d.list(&root()).await.unwrap();
    assert_eq!(l[0].size, 3);
    assert_eq!(l[0].hashes().sha1.as_deref(), Some("a9993e364706816aba3e25717850c26c9cd0d89d"));
}

// ---------------------------------------------------------------------------------
// Throttle and expired cookie

#[tokio::test]
async fn the_405_page_backs_off_then_is_rate_limited_and_cools_down() {
    let env = Env::new(|_| Resp::throttle()).await;
    let d = env.drive("retries = 2");
    let t = std::time::Instant::now();
    let e = d.list(&root()).await.unwrap_err();
    match &e {
        DriveError::RateLimited { retry_after: Some(ra) } => assert!(*ra >= Duration::from_secs(1)),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.status(), 503);
    assert!(e.retry_after().is_some());
    assert_eq!(env.fx.count("webapi.115.com", "/files"), 3, "1 try + 2 retries");
    assert!(t.elapsed() >= Duration::from_millis(7), "backed off between tries");
    // Cooling down: no more calls to 115 for a while.
    assert!(matches!(d.list(&root()).await, Err(DriveError::RateLimited { .. })));
    assert_eq!(env.fx.count("webapi.115.com", "/files"), 3);
    // Event order: while cooling down every call fails fast without reaching 115; the
    // first call after the cool-down asks again (3 more tries against the throttle).
    let t = std::time::Instant::now();
    while env.fx.count("webapi.115.com", "/files") == 3 {
        assert!(matches!(d.list(&root()).await, Err(DriveError::RateLimited { .. })));
        assert!(t.elapsed() < Duration::from_secs(30), "the cool-down never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(env.fx.count("webapi.115.com", "/files"), 6, "asks again after the cool-down");
}

#[tokio::test]
async fn an_expired_cookie_is_auth_lost_once_and_then_quiet_until_a_new_login() {
    let m = Model::new();
    m.add("0", "a.txt", false, b"a");
    m.st.lock().unwrap().cookie_dead = true;
    let env = Env::model(&m).await;
    let d = env.drive("");
    let e = d.list(&root()).await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DriveError::AuthLost(_)));
    assert!(msg.contains("115 cookie expired") && msg.contains("pandav login 115"), "{msg}");
    assert!(!msg.contains("SEID") && !msg.contains("9a8b7c6d5e4f"), "{msg}");
    let n = env.fx.requests().len();
    for _ in 0..5 {
        assert!(matches!(d.list(&root()).await, Err(DriveError::AuthLost(_))));
        let _ = d.link(&root().with_extra(Some("x".into())), &LinkRequest::default()).await;
    }
    assert_eq!(env.fx.requests().len(), n, "no calls with a dead cookie");
    // `pandav login` saves a new cookie in the mount's state: the next call uses it.
    m.st.lock().unwrap().cookie_dead = false;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let saved =
        p115::login::SavedLogin { cookie: model::COOKIE.replace("KID=c3d4e5f6", "KID=new"), app: Some("tv".into()) };
    pandav::drivers::p115::common::auth_login(&env.ctx().state, model::COOKIE)
        .unwrap()
        .save_login(saved)
        .await
        .unwrap();
    let l = d.list(&root()).await.unwrap();
    assert_eq!(l.len(), 1);
    assert!(env.fx.requests().last().unwrap().header("cookie").unwrap().contains("KID=new"));
}

#[tokio::test]
async fn init_reports_a_dead_cookie_and_a_missing_one() {
    let m = Model::new();
    m.st.lock().unwrap().cookie_dead = true;
    let env = Env::model(&m).await;
    let d = env.drive("");
    assert!(matches!(d.init().await, Err(DriveError::AuthLost(m)) if m.contains("pandav login")));
    // No cookie at all: a clear message, no call.
    let mut o = env.options("");
    o.remove("cookie");
    let d = p115::build(o, &env.ctx()).unwrap();
    env.fx.clear();
    match d.init().await {
        Err(DriveError::AuthLost(m)) => assert!(m.contains("no 115 cookie"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(env.fx.requests().is_empty());
}

// ---------------------------------------------------------------------------------
// Links

#[tokio::test]
async fn links_are_asked_with_the_clients_ua_through_m115() {
    let m = Model::new();
    let id = m.add("0", "movie.mkv", false, &gen(1000));
    let env = Env::model(&m).await;
    let d = env.drive("");
    let f = d.list(&root()).await.unwrap().into_iter().find(|e| e.id() == id).unwrap();
    let req = LinkRequest { user_agent: "VLC/3.0.20 LibVLC/3.0.20".into(), ip: None };
    let l = d.link(&f, &req).await.unwrap();
    assert!(l.url.starts_with("https://cdnfhnfile.115cdn.net/") && l.url.contains("movie.mkv"), "{}", l.url);
    // f=1: only the same UA is needed, so a 302 works.
    assert_eq!(l.headers, vec![("User-Agent".to_string(), req.user_agent.clone())]);
    let exp = l.expires_at.unwrap().duration_since(std::time::SystemTime::now()).unwrap();
    assert!(exp <= Duration::from_secs(15 * 60) && exp > Duration::from_secs(60));
    let r = env.fx.requests().into_iter().find(|r| r.is("proapi.115.com", "/app/chrome/downurl")).unwrap();
    assert_eq!(r.method, "POST");
    assert_eq!(r.header("user-agent").as_deref(), Some(req.user_agent.as_str()));
    assert_eq!(r.q("t").unwrap().len(), 10, "t is unix seconds");
    assert_eq!(r.header("content-type").as_deref(), Some("application/x-www-form-urlencoded"));
    // f=3: the downurl cookie must travel with the fetch, so the link declares it.
    m.st.lock().unwrap().downurl_f = "3".into();
    let l = d.link(&f, &req).await.unwrap();
    assert!(l
        .headers
        .iter()
        .any(|(k, v)| k == "Cookie" && v == "0123456789abcdef0123456789abcdef=fedcba9876543210fedcba9876543210"));
    // No UA from the client: none is sent, none is required.
    env.fx.clear();
    m.st.lock().unwrap().downurl_f = "1".into();
    let l = d.link(&f, &LinkRequest::default()).await.unwrap();
    assert!(l.headers.is_empty());
    let r = env.fx.requests().into_iter().find(|r| r.is("proapi.115.com", "/app/chrome/downurl")).unwrap();
    assert!(r.header("user-agent").is_none(), "an empty UA is omitted on the wire");
    // A folder has no URL; a vanished pick code is not found.
    let dir = Entry::dir("1", "d", std::time::UNIX_EPOCH).with_extra(Some("fbx".into()));
    assert!(matches!(d.link(&dir, &req).await, Err(DriveError::IsADirectory)));
    let gone = f.clone().with_extra(Some("zzzz".into()));
    assert!(matches!(d.link(&gone, &req).await, Err(DriveError::NotFound)));
}

// ---------------------------------------------------------------------------------
// Mutations

#[tokio::test]
async fn mkdir_rename_move_copy_remove() {
    let m = Model::new();
    let a = m.add("0", "a.txt", false, b"hello");
    let env = Env::model(&m).await;
    let d = env.drive("");
    let dir = d.mkdir(&root(), "Docs").await.unwrap();
    assert!(dir.is_dir && dir.name() == "Docs");
    assert!(matches!(d.mkdir(&root(), "Docs").await, Err(DriveError::Exists)));
    assert!(matches!(d.mkdir(&root(), "a<b").await, Err(DriveError::InvalidInput(_))));
    let add = env.fx.requests().into_iter().find(|r| r.is("webapi.115.com", "/files/add")).unwrap();
    assert_eq!((add.f("pid").as_deref(), add.f("cname").as_deref()), (Some("0"), Some("Docs")));
    let file = d.info(&a).await.unwrap();
    // Rename in place.
    let r = d.move_to(&file, &root(), "b.txt").await.unwrap();
    assert_eq!(r.name(), "b.txt");
    let ren = env.fx.requests().into_iter().find(|r| r.is("webapi.115.com", "/files/batch_rename")).unwrap();
    assert_eq!(ren.f(&format!("files_new_name[{a}]")).as_deref(), Some("b.txt"));
    assert_eq!(env.fx.count("webapi.115.com", "/files/move"), 0);
    // Move and rename.
    let r = d.move_to(&r, &dir, "c.txt").await.unwrap();
    assert_eq!(r.name(), "c.txt");
    assert_eq!(m.children(dir.id()).len(), 1);
    let mv = env.fx.requests().into_iter().find(|r| r.is("webapi.115.com", "/files/move")).unwrap();
    assert_eq!((mv.f("pid").unwrap(), mv.f("fid[0]").unwrap()), (dir.id().to_string(), a.clone()));
    // Copy back to the root under a new name: a new id, the original stays.
    let c = d.copy_to(&r, &root(), "copy.txt").await.unwrap();
    assert_ne!(c.id(), a);
    assert_eq!(c.name(), "copy.txt");
    assert_eq!(c.size, 5);
    assert_eq!(m.children(dir.id()).len(), 1);
    // Remove to the recycle bin; a second time it is gone.
    d.remove(&c).await.unwrap();
    let del = env.fx.requests().into_iter().filter(|r| r.is("webapi.115.com", "/rb/delete")).last().unwrap();
    assert_eq!(del.f("fid[0]").as_deref(), Some(c.id()));
    assert!(matches!(d.remove(&c).await, Err(DriveError::NotFound)));
    assert!(matches!(d.remove(&root()).await, Err(DriveError::Forbidden(_))));
}

#[tokio::test]
async fn errno_variants_map_to_webdav_statuses() {
    let env = Env::new(|r| match r.path.as_str() {
        "/files/copy" => Resp::json(json!({"state":false,"errno":"91002","error":"不能将文件复制到自身或其子目录下。"})),
        "/files/move" => Resp::json(json!({"state":false,"errNo":91005,"msg":"空间不足，复制失败。"})),
        "/files/get_info" => Resp::json(json!({"state":true,"data":[{"fid":"5","cid":"1","n":"x","s":1,"sha":"A9993E364706816ABA3E25717850C26C9CD0D89D"}]})),
        "/files" => Resp::json(json!({"state":true,"cid":"9","count":0,"data":[]})),
        _ => Resp::json(json!({"state":false,"errno":990009,"error":"删除[...]操作尚未执行完成"})),
    })
    .await;
    let d = env.drive("retries = 1");
    let f = Entry::file("5", "x", 0, std::time::UNIX_EPOCH);
    let target = Entry::dir("9", "t", std::time::UNIX_EPOCH);
    assert!(matches!(d.copy_to(&f, &target, "x").await, Err(DriveError::Forbidden(_))));
    assert!(matches!(d.move_to(&f, &target, "x").await, Err(DriveError::NoSpace)));
    // "still running" is retried, then surfaces as 503.
    let e = d.remove(&f).await.unwrap_err();
    assert_eq!(e.status(), 503, "{e:?}");
    assert_eq!(env.fx.count("webapi.115.com", "/rb/delete"), 2);
}

// ---------------------------------------------------------------------------------
// Upload

#[tokio::test]
async fn rapid_upload_sends_no_body() {
    let m = Model::new();
    let data = gen(300_000);
    m.add("0", "elsewhere.bin", false, &data); // 115 knows this content
    let env = Env::model(&m).await;
    let d = env.drive("");
    let sp = spool(env.dir.path(), &data).await;
    let e = d.put(&root(), "new.bin", sp.upload).await.unwrap();
    assert_eq!((e.name(), e.size), ("new.bin", 300_000));
    assert_eq!(e.hashes().sha1.as_deref(), Some(emu115::util::sha1_upper(&data).to_lowercase().as_str()));
    assert!(env.fx.requests().iter().all(|r| !r.host.starts_with("oss")), "no OSS traffic on a rapid upload");
    assert_eq!(env.fx.count("uplb.115.com", "/3.0/gettoken.php"), 0);
    let init = env.fx.requests().into_iter().find(|r| r.is("uplb.115.com", "/4.0/initupload.php")).unwrap();
    assert!(init.header("user-agent").unwrap().starts_with("Mozilla/5.0 115Browser/35.6.0.3"));
    assert_eq!(init.header("content-type").as_deref(), Some("application/x-www-form-urlencoded"));
    // The k_ec timestamp is the form's t, in seconds.
    let tok = emu115::ec115::decode_k_ec(&init.q("k_ec").unwrap()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!((now as i64 - tok.timestamp as i64).abs() < 60);
}

#[tokio::test]
async fn second_round_check_hashes_the_asked_range() {
    let m = Model::new();
    let data = gen(2 << 20);
    m.add("0", "known.bin", false, &data);
    m.st.lock().unwrap().second_round_from = Some(1 << 20);
    let env = Env::model(&m).await;
    let d = env.drive("");
    let sp = spool(env.dir.path(), &data).await;
    let e = d.put(&root(), "two-rounds.bin", sp.upload).await.unwrap();
    assert_eq!(e.size, 2 << 20);
    assert_eq!(env.fx.count("uplb.115.com", "/4.0/initupload.php"), 2);
    assert!(env.fx.requests().iter().all(|r| !r.host.starts_with("oss")));
}

#[tokio::test]
async fn unknown_content_goes_to_oss_in_one_put_with_the_callback() {
    let m = Model::new();
    let env = Env::model(&m).await;
    let d = env.drive("");
    let data = b"hello world".to_vec();
    let sp = spool(env.dir.path(), &data).await;
    let e = d.put(&root(), "hello.txt", sp.upload).await.unwrap();
    assert_eq!((e.name(), e.size), ("hello.txt", 11));
    let put = env.fx.requests().into_iter().find(|r| r.host.starts_with("oss") && r.method == "PUT").unwrap();
    assert_eq!(put.body, data);
    assert_eq!(put.header("user-agent").as_deref(), Some("aliyun-sdk-android/2.9.1"));
    use base64::Engine;
    let cb = base64::engine::general_purpose::STANDARD.decode(put.header("x-oss-callback").unwrap()).unwrap();
    assert!(String::from_utf8(cb).unwrap().contains("completeupload.php"));
    assert!(put.header("x-oss-callback-var").is_some());
    assert!(put.header("date").is_some() && put.header("content-md5").is_some());
    assert_eq!(m.children("0").len(), 1);
}

#[tokio::test]
async fn big_uploads_go_in_sequential_parts() {
    let m = Model::new();
    let env = Env::model(&m).await;
    let d = env.drive("multipart_threshold = 102400");
    let data = gen(250_000);
    let sp = spool(env.dir.path(), &data).await;
    let e = d.put(&root(), "big.bin", sp.upload).await.unwrap();
    assert_eq!(e.size, 250_000);
    let parts: Vec<Req> =
        env.fx.requests().into_iter().filter(|r| r.host.starts_with("oss") && r.q("partNumber").is_some()).collect();
    assert_eq!(parts.len(), 3, "100 KiB parts");
    assert_eq!(parts.iter().map(|p| p.body.len()).sum::<usize>(), 250_000);
    assert!(parts.iter().all(|p| p.body.len() <= 102_400));
    let stored = m.children("0");
    assert_eq!(stored[0].1.data, data);
}

#[tokio::test]
async fn an_interrupted_upload_leaves_no_file_and_aborts_the_parts() {
    let m = Model::new();
    let old = m.add("0", "keep.bin", false, b"old content");
    m.st.lock().unwrap().fail_parts = true;
    let env = Env::model(&m).await;
    let d = env.drive("multipart_threshold = 102400\nretries = 1");
    let sp = spool(env.dir.path(), &gen(250_000)).await;
    assert!(d.put(&root(), "keep.bin", sp.upload).await.is_err());
    let kids = m.children("0");
    assert_eq!(kids.len(), 1, "nothing new is visible");
    assert_eq!(kids[0].0, old, "the old file is intact");
    assert_eq!(m.st.lock().unwrap().aborted.len(), 1, "the multipart upload was aborted");
}

#[tokio::test]
async fn an_upload_replaces_the_file_of_the_same_name_afterwards() {
    let m = Model::new();
    let old = m.add("0", "doc.txt", false, b"version 1");
    let env = Env::model(&m).await;
    let d = env.drive("");
    let sp = spool(env.dir.path(), b"version 2").await;
    let e = d.put(&root(), "doc.txt", sp.upload).await.unwrap();
    assert_ne!(e.id(), old);
    let kids = m.children("0");
    assert_eq!(kids.len(), 1);
    assert_eq!(kids[0].1.data, b"version 2");
    // A folder of that name is not overwritten.
    let dir = d.mkdir(&root(), "folder").await.unwrap().id().to_string();
    let sp = spool(env.dir.path(), b"x").await;
    assert!(matches!(d.put(&root(), "folder", sp.upload).await, Err(DriveError::IsADirectory)));
    assert!(m.children("0").iter().any(|(i, _)| *i == dir));
}

// ---------------------------------------------------------------------------------
// Offline download

#[tokio::test]
async fn offline_add_list_remove() {
    let (_, key) = model::test_rsa();
    let key = Arc::new(key);
    let k2 = Arc::clone(&key);
    let env = Env::new(move |r| {
        use emu115::m115;
        match (r.host.as_str(), r.path.as_str()) {
            ("lixian.115.com", "/lixianssp/") => {
                assert_eq!(r.q("ac").as_deref(), Some("add_task_urls"));
                assert!(r.q("t").is_some());
                assert!(r.header("user-agent").unwrap().contains("115wangpan_android"));
                let (plain, k) = m115::server_decode(&k2, &r.f("data").unwrap()).unwrap();
                let ask: serde_json::Value = serde_json::from_slice(&plain).unwrap();
                assert_eq!(ask["ac"], "add_task_urls");
                assert_eq!(ask["uid"], "123456789");
                assert_eq!(ask["wp_path_id"], "2593093001609739968");
                assert!(ask["url[1]"].as_str().unwrap().starts_with("magnet:"));
                let inner = json!({"state":true,"errno":0,"errcode":0,"result":[
                    {"state":true,"errno":0,"errcode":0,"errtype":"","info_hash":"a1b2c3","name":"ubuntu.iso","url":ask["url[0]"]},
                    {"state":false,"errno":10008,"errcode":10008,"errtype":"war","info_hash":"d4e5","name":"x","url":ask["url[1]"],"error_msg":"任务已存在"},
                    {"state":false,"errno":10004,"errcode":10004,"url":ask["url[2]"],"error_msg":"错误的链接"}]});
                let enc = m115::server_encode_with(&k2, inner.to_string().as_bytes(), &k, &[1; 16]);
                Resp::json(json!({"state":true,"errno":0,"error":"","data":enc}))
            }
            ("lixian.115.com", "/lixian/") if r.q("ac").as_deref() == Some("task_lists") => {
                let page = r.q("page").unwrap();
                let task = |h: &str, st: i64| json!({"info_hash":h,"name":format!("{h}.iso"),"size":4700000000u64,"url":"https://x","add_time":1700000000,
                    "last_update":1700000300,"left_time":0,"peers":0,"rateDownload":0,"status":st,"percentDone":if st == 2 {100.0} else {42.5},
                    "file_id":"2593093001609742000","delete_file_id":"2593093001609742000","wp_path_id":"2593093001609739968","move":1});
                let tasks = if page == "1" { vec![task("a1", 2)] } else { vec![task("b2", 1)] };
                Resp::json(json!({"state":true,"errno":0,"error":"","page":page.parse::<i64>().unwrap(),"page_count":2,"page_row":30,"count":2,"total":1500,"quota":1498,"tasks":tasks}))
            }
            ("lixian.115.com", "/lixian/") => {
                assert_eq!(r.q("ac").as_deref(), Some("task_del"));
                assert_eq!(r.f("hash[0]").as_deref(), Some("a1"));
                assert_eq!(r.f("flag").as_deref(), Some("1"));
                Resp::json(json!({"state":true,"errno":0,"error":""}))
            }
            _ => Resp::json(json!({"state":true})),
        }
    })
    .await;
    let d = env.drive("");
    let urls = vec!["https://example.com/ubuntu.iso".to_string(), "magnet:?xt=urn:btih:abc".into(), "nonsense".into()];
    let res = d.offline_add(&urls, Some("2593093001609739968")).await.unwrap();
    assert!(res[0].ok && res[0].info_hash == "a1b2c3");
    assert!(!res[1].ok && res[1].exists && res[1].message.contains("task already exists"));
    assert!(!res[2].ok && res[2].message.contains("invalid link"));
    let l = d.offline_list().await.unwrap();
    assert_eq!(l.tasks.len(), 2);
    assert_eq!((l.tasks[0].status_text(), l.tasks[1].percent), ("done", 42.5));
    assert_eq!((l.quota_total, l.quota_left), (Some(1500), Some(1498)));
    d.offline_remove(&["a1".into()], true).await.unwrap();
}

#[tokio::test]
async fn offline_quota_is_said_plainly() {
    let env = Env::new(|_| Resp::json(json!({"state":false,"errno":10010,"error":"离线下载配额不足","data":[]}))).await;
    let d = env.drive("");
    let e = d.offline_add(&["https://x/y".into()], None).await.unwrap_err().to_string();
    assert!(e.contains("offline download quota used up"), "{e}");
}

// ---------------------------------------------------------------------------------
// QR login

#[tokio::test]
async fn qr_login_polls_until_confirmed_and_returns_the_cookie() {
    let polls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let p2 = Arc::clone(&polls);
    let env = Env::new(move |r| match (r.host.as_str(), r.path.as_str()) {
        ("qrcodeapi.115.com", "/api/1.0/web/1.0/token/") => Resp::json(json!({"state":1,"code":0,"message":"","errno":0,"error":"",
            "data":{"uid":"6ae86b118792f0152699613b728dea650afdd40b","time":1700000000,"sign":"2c1b7f6e",
                    "qrcode":"https://115.com/scan/dg-6ae86b118792f0152699613b728dea650afdd40b"}})),
        ("qrcodeapi.115.com", "/get/status/") => {
            assert_eq!(r.q("uid").as_deref(), Some("6ae86b118792f0152699613b728dea650afdd40b"));
            assert_eq!(r.q("sign").as_deref(), Some("2c1b7f6e"));
            let n = p2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let st = [0, 1, 1, 2][n.min(3)];
            Resp::json(json!({"state":1,"code":0,"message":"","data":{"msg":"","status":st,"version":""}}))
        }
        ("passportapi.115.com", "/app/1.0/tv/1.0/login/qrcode") => {
            assert_eq!(r.f("account").as_deref(), Some("6ae86b118792f0152699613b728dea650afdd40b"));
            assert_eq!(r.f("app").as_deref(), Some("tv"));
            Resp::json(json!({"state":1,"code":0,"message":"","errno":0,"error":"","data":{"user_id":123456789,"user_name":"alice",
                "cookie":{"UID":"123456789_I1_1700000100","CID":"0f1e","SEID":"9a8b","KID":"c3d4"}}}))
        }
        _ => Resp::raw(404, "text/plain", ""),
    })
    .await;
    let http = pandav::drivers::p115::common::build_http(env.fx.endpoints(), 0.0, Some(1), Some(5), Some(0)).unwrap();
    let mut said = vec![];
    let mut shown = String::new();
    let c = p115::login::qr_login(
        &http,
        "tv",
        |t| {
            shown = t.qrcode.clone();
            Ok(())
        },
        |s| said.push(s.clone()),
    )
    .await
    .unwrap();
    assert_eq!(c.header(), "UID=123456789_I1_1700000100;CID=0f1e;SEID=9a8b;KID=c3d4");
    assert_eq!(c.ssoent(), Some("I1"));
    assert!(shown.starts_with("https://115.com/scan/dg-"));
    use p115::login::QrStatus::*;
    assert_eq!(said, vec![Waiting, Scanned, Confirmed]);
}

#[tokio::test]
async fn qr_login_expired_and_canceled_are_said_plainly() {
    for (status, want) in [(-1, "expired"), (-2, "canceled")] {
        let env = Env::new(move |r| match r.path.as_str() {
            "/api/1.0/web/1.0/token/" => Resp::json(json!({"state":1,"data":{"uid":"u","time":1,"sign":"s"}})),
            _ => Resp::json(json!({"state":1,"code":0,"data":{"status":status}})),
        })
        .await;
        let http =
            pandav::drivers::p115::common::build_http(env.fx.endpoints(), 0.0, Some(1), Some(5), Some(0)).unwrap();
        let e = p115::login::qr_login(
            &http,
            "tv",
            |t| {
                assert_eq!(t.qrcode, "https://115.com/scan/dg-u");
                Ok(())
            },
            |_| {},
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
    }
}

// ---------------------------------------------------------------------------------
// 115 Share

fn share_opts(env: &Env, extra: &str) -> toml::Table {
    let mut t: toml::Table = toml::from_str(&format!(
        "url = \"https://115cdn.com/s/sw6pw793wfp?password=w816\"\nrate_limit = 0\nretry_base_ms = 5\nm115_test_modulus = {:?}\n{extra}",
        model::test_rsa().0
    ))
    .unwrap();
    t.insert("endpoints".into(), toml::Value::Table(env.fx.endpoints_toml()));
    t
}

fn snap_body(state: serde_json::Value, cid: &str) -> Resp {
    let list = if cid == "0" {
        json!([{"cid":"2593093001609750000","pid":"0","n":"Folder A","t":"1699990000","fc":0,"uid":123456789,"fl":[]},
               {"fid":"2593093001609750001","cid":"0","uid":123456789,"n":"video.mp4","s":1048576,"sha":"ABCDEF0123456789ABCDEF0123456789ABCDEF01",
                "ico":"mp4","fc":1,"t":"1699990000","iv":1,"vdi":4,"play_long":300,"u":"https://…"}])
    } else {
        json!([{"fid":"2593093001609750002","cid":cid,"n":"inner.txt","s":"12","sha":"ABCDEF0123456789ABCDEF0123456789ABCDEF02","fc":"1","t":"1699990000"}])
    };
    let count = list.as_array().unwrap().len();
    Resp::json(
        json!({"state":true,"error":"","errno":0,"data":{"userinfo":{"user_id":"123456789","user_name":"alice","face":""},
        "shareinfo":{"snap_id":"1234567","file_size":"2147483648","share_title":"My share","share_state":state,"forbid_reason":"",
            "create_time":"1699990000","receive_code":"w816","receive_count":"3","expire_time":1702582000,"file_category":1,
            "auto_renewal":"0","auto_fill_recvcode":"0","can_report":1,"can_notice":1,"have_vio_file":0},
        "count":count,"share_state":state,"list":list,
        "user_appeal":{"can_appeal":0,"can_share_appeal":0,"popup_appeal_page":0,"can_global_appeal":0}}}),
    )
}

#[tokio::test]
async fn share_lists_read_only_with_share_state_as_string_or_number() {
    for state in [json!("1"), json!(1)] {
        let st = state.clone();
        let env = Env::new(move |r| {
            assert!(r.is("webapi.115.com", "/share/snap"));
            assert_eq!(r.q("share_code").as_deref(), Some("sw6pw793wfp"));
            assert_eq!(r.q("receive_code").as_deref(), Some("w816"));
            assert_eq!(r.header("referer").as_deref(), Some("https://115cdn.com/s/sw6pw793wfp?password=w816&"));
            snap_body(st.clone(), &r.q("cid").unwrap())
        })
        .await;
        let d = pandav::drivers::build("115_share", share_opts(&env, ""), env.ctx()).unwrap();
        d.init().await.unwrap();
        assert!(d.caps().read_only);
        let l = d.list(&d.root().await.unwrap()).await.unwrap();
        assert_eq!(l.len(), 2);
        assert!(l[0].is_dir && l[0].id() == "2593093001609750000");
        assert!(!l[1].is_dir && l[1].id() == "2593093001609750001" && l[1].size == 1048576);
        let inner = d.list(&l[0]).await.unwrap();
        assert_eq!(inner[0].size, 12);
        assert!(matches!(d.mkdir(&l[0], "x").await, Err(DriveError::ReadOnly)));
    }
}

#[tokio::test]
async fn broken_shares_fail_init_with_a_clear_message() {
    for (body, want) in [
        (json!({"state":false,"error":"","errno":4100008}), "wrong receive code"),
        (json!({"state":false,"error":"该文件分享链接不存在或已被删除","errno":"4100026"}), "does not exist"),
        (json!({"state":false,"errno":4100009}), "canceled"),
    ] {
        let b = body.clone();
        let env = Env::new(move |_| Resp::json(b.clone())).await;
        let d = pandav::drivers::build("115_share", share_opts(&env, ""), env.ctx()).unwrap();
        match d.init().await {
            Err(DriveError::AuthLost(m)) => assert!(m.contains(want) && m.contains("sw6pw793wfp"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    for (state, want) in [(json!(7), "expired"), (json!("4"), "canceled")] {
        let env = Env::new(move |r| snap_body(state.clone(), &r.q("cid").unwrap())).await;
        let d = pandav::drivers::build("115_share", share_opts(&env, ""), env.ctx()).unwrap();
        match d.init().await {
            Err(DriveError::AuthLost(m)) => assert!(m.contains(want), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn share_links_app_first_then_web() {
    let (_, key) = model::test_rsa();
    let key = Arc::new(key);
    let k2 = Arc::clone(&key);
    let env = Env::new(move |r| {
        use emu115::m115;
        match (r.host.as_str(), r.path.as_str()) {
            ("webapi.115.com", "/share/snap") => snap_body(json!(1), &r.q("cid").unwrap()),
            ("proapi.115.com", "/app/share/downurl") => {
                assert!(r.header("user-agent").unwrap().contains("115Browser"), "app endpoint wants a 115 UA");
                assert!(r.header("referer").is_none());
                assert_eq!(r.header("accept").as_deref(), Some("application/json;charset=UTF-8"));
                assert!(r.header("cookie").is_some());
                let (plain, k) = m115::server_decode(&k2, &r.f("data").unwrap()).unwrap();
                let ask: serde_json::Value = serde_json::from_slice(&plain).unwrap();
                assert_eq!((ask["share_code"].as_str(), ask["receive_code"].as_str(), ask["file_id"].as_str()),
                    (Some("sw6pw793wfp"), Some("w816"), Some("2593093001609750001")));
                let inner = json!({"fid":"2593093001609750001","fn":"video.mp4","fs":"1048576","url":{"url":"https://cdn.115cdn.net/app/video.mp4?t=9999999999&f=1","client":1,"desc":null,"isp":null,"oss_id":"x","ooid":"y"}});
                Resp::json(json!({"state":true,"data":m115::server_encode_with(&k2, inner.to_string().as_bytes(), &k, &[2; 16])}))
            }
            ("webapi.115.com", "/share/downurl") => {
                assert_eq!(r.q("dl").as_deref(), Some("1"));
                assert_eq!(r.header("user-agent").as_deref(), Some("Kodi/20"));
                Resp::json(json!({"state":true,"data":{"fid":"2593093001609750001","fn":"video.mp4","fs":1048576,"url":{"url":"https://cdn.115cdn.net/web/video.mp4?t=9999999999&f=1"}}}))
            }
            _ => Resp::json(json!({"state":true})),
        }
    })
    .await;
    let req = LinkRequest { user_agent: "Kodi/20".into(), ip: None };
    // Logged in: the app endpoint, asked with a 115 UA that the link then declares.
    let d = pandav::drivers::build("115_share", share_opts(&env, &format!("cookie = {:?}", model::COOKIE)), env.ctx())
        .unwrap();
    let l = d.list(&d.root().await.unwrap()).await.unwrap();
    let link = d.link(&l[1], &req).await.unwrap();
    assert!(link.url.contains("/app/"), "{}", link.url);
    assert_eq!(link.headers, vec![("User-Agent".to_string(), "Mozilla/5.0 115Browser/27.0.5.7".to_string())]);
    // Not logged in: the web endpoint with the player's own UA (redirectable).
    let dir2 = tempfile::tempdir().unwrap();
    let ctx2 = DriverCtx { state: StateHandle::at(dir2.path().join("s.json")), ..env.ctx() };
    let d = pandav::drivers::build("115_share", share_opts(&env, ""), ctx2).unwrap();
    let link = d.link(&l[1], &req).await.unwrap();
    assert!(link.url.contains("/web/"), "{}", link.url);
    assert_eq!(link.headers, vec![("User-Agent".to_string(), "Kodi/20".to_string())]);
    assert_eq!(env.fx.count("proapi.115.com", "/app/share/downurl"), 1);
}

// ---------------------------------------------------------------------------------
// The binary: `pandav login 115` and `pandav offline`

/// Run the pandav binary off the runtime thread (the fixture server keeps serving).
async fn run_bin(args: impl FnOnce(&mut std::process::Command) + Send + 'static) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_pandav"));
        args(&mut c);
        c.output().unwrap()
    })
    .await
    .unwrap()
}

fn write_config(env: &Env, extra_opts: &str) -> std::path::PathBuf {
    let mut eps = String::new();
    for (h, b) in env.fx.endpoints() {
        eps.push_str(&format!("{h:?} = {b:?}\n"));
    }
    let cfg = format!(
        "[server]\nstate_dir = {:?}\n[[mounts]]\npath = \"/115\"\ndriver = \"115\"\n[mounts.options]\nrate_limit = 0\napp_version = \"35.6.0.3\"\nm115_test_modulus = {:?}\n{extra_opts}\n[mounts.options.endpoints]\n{eps}",
        env.dir.path().join("state"),
        model::test_rsa().0
    );
    let p = env.dir.path().join("pandav.toml");
    std::fs::write(&p, cfg).unwrap();
    p
}

#[tokio::test]
async fn login_subcommand_saves_the_cookie_for_serve() {
    let m = Model::new();
    let m2 = m.clone();
    let env = Env::new(move |r| match (r.host.as_str(), r.path.as_str()) {
        ("qrcodeapi.115.com", "/api/1.0/web/1.0/token/") => Resp::json(json!({"state":1,"data":{"uid":"abc","time":1700000000,"sign":"s"}})),
        ("qrcodeapi.115.com", "/get/status/") => Resp::json(json!({"state":1,"code":0,"data":{"status":2}})),
        ("passportapi.115.com", p) => {
            assert_eq!(p, "/app/1.0/alipaymini/1.0/login/qrcode");
            Resp::json(json!({"state":1,"code":0,"data":{"cookie":{"UID":"123456789_R2_1700000100","CID":"0f1e2d3c","SEID":"9a8b7c6d5e4f","KID":"k"}}}))
        }
        _ => m2.handle(r),
    })
    .await;
    let cfg = write_config(&env, "");
    let png = env.dir.path().join("qr.png");
    let (p2, c2) = (png.clone(), cfg.clone());
    let out = run_bin(move |c| {
        c.args(["login", "115", "--app", "alipaymini", "--png"])
            .arg(&p2)
            .arg("--config")
            .arg(&c2)
            .args(["--mount", "/115"]);
    })
    .await;
    let (so, se) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{so}\n{se}");
    assert!(se.contains("signs out") && se.contains("confirmed"), "{se}");
    assert!(so.contains("user 123456789"), "{so}");
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    let state = std::fs::read_to_string(env.dir.path().join("state/mount-_115.json")).unwrap();
    assert!(state.contains("SEID=9a8b7c6d5e4f") && state.contains("alipaymini"), "{state}");
    // The config has no cookie: the driver uses the saved one.
    let ctx = DriverCtx { state: StateHandle::at(env.dir.path().join("state/mount-_115.json")), ..env.ctx() };
    let mut o = env.options("");
    o.remove("cookie");
    let d = p115::build(o, &ctx).unwrap();
    d.init().await.unwrap();
    // Unknown app names are refused before any call.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pandav"))
        .args(["login", "115", "--app", "toaster", "--config"])
        .arg(&cfg)
        .args(["--mount", "/115"])
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("toaster"));
}

#[tokio::test]
async fn offline_subcommand_lists_tasks() {
    let m = Model::new();
    let m2 = m.clone();
    let env = Env::new(move |r| match (r.host.as_str(), r.path.as_str()) {
        ("lixian.115.com", "/lixian/") => Resp::json(json!({"state":true,"errno":0,"page":1,"page_count":1,"count":1,"total":1500,"quota":1498,
            "tasks":[{"info_hash":"a1b2","name":"ubuntu.iso","size":"4700000000","status":1,"percentDone":12.5,"url":"https://x"}]})),
        _ => m2.handle(r),
    })
    .await;
    let cfg = write_config(&env, &format!("cookie = {:?}", model::COOKIE));
    let out = run_bin(move |c| {
        c.args(["offline", "list", "--config"]).arg(&cfg).arg("/115");
    })
    .await;
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{so}{}", String::from_utf8_lossy(&out.stderr));
    assert!(so.contains("downloading") && so.contains("ubuntu.iso") && so.contains("1498 left of 1500"), "{so}");
}

#[tokio::test]
async fn an_unreachable_cookie_check_is_not_an_expired_cookie() {
    let env = Env::new(|r| match r.host.as_str() {
        "my.115.com" => Resp::raw(502, "text/plain", "bad gateway"),
        _ => Resp::json(json!({"state":true,"cid":0,"count":0,"data":[]})),
    })
    .await;
    let d = env.drive("retries = 1");
    assert!(matches!(d.init().await, Err(DriveError::Upstream(_))));
    assert!(d.list(&root()).await.is_ok(), "the login is not given up");
    // A login page instead of JSON: logged out.
    let env = Env::new(|r| match r.host.as_str() {
        "my.115.com" => Resp::raw(200, "text/html", "<html>login</html>"),
        _ => Resp::json(json!({"state":true,"cid":0,"count":0,"data":[]})),
    })
    .await;
    assert!(matches!(env.drive("").init().await, Err(DriveError::AuthLost(_))));
}

#[tokio::test]
async fn a_burst_of_uploads_into_a_big_folder_lists_it_once() {
    let m = Model::new();
    for i in 0..2500 {
        m.add("0", &format!("old{i}"), false, b"");
    }
    let env = Env::model(&m).await;
    let d = env.drive("");
    for i in 0..5 {
        let sp = spool(env.dir.path(), format!("new file {i}").as_bytes()).await;
        d.put(&root(), &format!("new{i}.txt"), sp.upload).await.unwrap();
    }
    let sp = spool(env.dir.path(), b"again").await;
    d.put(&root(), "new0.txt", sp.upload).await.unwrap();
    assert_eq!(env.fx.count("webapi.115.com", "/files"), 3, "one listing of three pages");
    assert_eq!(m.children("0").iter().filter(|(_, n)| n.name == "new0.txt").count(), 1, "replaced, not duplicated");
}
