//! `--log-format json` / `[server] log_format = "json"`: every log line is one JSON
//! object with the text line's fields, and client-supplied strings stay escaped.

use crate::common::*;
use crate::util::*;

/// The server's stderr (its log), line by line; stdout has only the URL line.
fn log_lines(srv: &Server) -> Vec<String> {
    srv.log().lines().filter(|l| !l.starts_with("pandav serving WebDAV")).map(str::to_string).collect()
}

fn json_lines(srv: &Server) -> Vec<serde_json::Value> {
    log_lines(srv)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect()
}

/// Requests whose log lines the test looks at: a health check, a 404 with an encoded
/// newline and quote in its path, a login whose user name has a control character.
async fn traffic(base: &str) {
    assert_eq!(http().get(format!("{base}/-/health")).send().await.unwrap().status(), 200);
    let r = http()
        .get(format!("{base}/d/no%0Asuch%22file"))
        .header("Authorization", basic("alice", "pw-a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r =
        http().get(format!("{base}/d/")).header("Authorization", basic("ev\u{1b}il\"name", "pw")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

async fn wait_lines(srv: &Server, n: usize, needle: &str) {
    let t = std::time::Instant::now();
    while log_lines(srv).iter().filter(|l| l.contains(needle)).count() < n {
        assert!(t.elapsed() < std::time::Duration::from_secs(30), "no {needle:?} lines:\n{}", srv.log());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_carry_the_access_fields() {
    let t = TestDir::new();
    let data = t.mkdir("data");
    let cfg = ConfigBuilder::new().server("log_format = \"json\"").user("alice", "pw-a", &[], false).local("/d", &data);
    let srv = serve(t.path(), cfg.build(&t.mkdir("state"))).await;
    traffic(srv.url()).await;
    wait_lines(&srv, 3, "pandav::access").await;
    let lines = json_lines(&srv);
    assert!(lines.len() >= 4, "{lines:?}");
    for l in &lines {
        for k in ["timestamp", "level", "target", "message"] {
            assert!(l.get(k).is_some(), "{k} missing in {l}");
        }
    }
    let access: Vec<&serde_json::Value> = lines.iter().filter(|l| l["target"] == "pandav::access").collect();
    let health = access.iter().find(|l| l["path"] == "/-/health").expect("health access line");
    assert_eq!(health["message"], "request");
    assert_eq!(health["method"], "GET");
    assert_eq!(health["status"], 200);
    assert!(health["bytes"].as_u64().unwrap() > 0);
    assert!(health["ms"].as_str().unwrap().parse::<f64>().is_ok(), "{health}");
    assert_eq!(health["user"], "-");
    assert_eq!(health["complete"], true);
    // The path as the client sent it (still percent-encoded), never a raw newline.
    let nf = access.iter().find(|l| l["status"] == 404).expect("404 access line");
    assert_eq!(nf["path"], "/d/no%0Asuch%22file");
    assert_eq!(nf["user"], "alice");
    // A control character in a user name is escaped before it is encoded.
    let refused = lines
        .iter()
        .find(|l| l["message"].as_str().unwrap_or("").contains("control characters"))
        .expect("the refused login is logged");
    assert_eq!(refused["user"], "ev\\u{1b}il\"name", "{refused}");
    assert!(!srv.log().contains('\u{1b}'), "a raw control character reached the log");
    assert!(!srv.log().contains("pw-a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_wins_over_the_config() {
    let t = TestDir::new();
    let data = t.mkdir("data");
    let cfg = ConfigBuilder::new().server("log_format = \"text\"").user("alice", "pw-a", &[], false).local("/d", &data);
    // PANDAV_LOG_FORMAT is --log-format's environment variable.
    let srv = serve_env(t.path(), cfg.build(&t.mkdir("state")), vec![("PANDAV_LOG_FORMAT", "json".into())]).await;
    traffic(srv.url()).await;
    wait_lines(&srv, 2, "pandav::access").await;
    assert!(json_lines(&srv).iter().any(|l| l["path"] == "/-/health" && l["status"] == 200));
    drop(srv);
    // Without either: text, as before.
    let cfg = ConfigBuilder::new().user("alice", "pw-a", &[], false).local("/d", &data);
    let srv = serve(t.path(), cfg.build(&t.mkdir("state"))).await;
    traffic(srv.url()).await;
    wait_lines(&srv, 1, "path=/-/health status=200").await;
    assert!(log_lines(&srv).iter().all(|l| serde_json::from_str::<serde_json::Value>(l).is_err()));
    // A format that does not exist is refused, naming the key.
    let bad = t.write("bad.toml", "[server]\nlog_format = \"xml\"\n[[mounts]]\npath = \"/d\"\ndriver = \"local\"\n[mounts.options]\nroot = \".\"\n");
    let out =
        run(std::process::Command::new(BIN).args(["check", "--config"]).arg(&bad), std::time::Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("log_format") && out.stderr.contains("xml"), "{}", out.stderr);
}
