//! The container files: what can be checked without a container engine (the
//! Dockerfile's sources, user, volumes and healthcheck; the compose file), and the image
//! built and run where an engine answers (skipped, with a message, where none does).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Dockerfile's instructions: (keyword, arguments), continuation lines joined,
/// comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            cur.push_str(body);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let (k, rest) = cur.split_once(char::is_whitespace).unwrap_or((&cur, ""));
        out.push((k.to_ascii_uppercase(), rest.trim().to_string()));
        cur.clear();
    }
    assert!(cur.is_empty(), "the Dockerfile ends in a continuation line");
    out
}

/// Whether `.dockerignore` keeps `rel` (a path relative to the context) out.
fn ignored(patterns: &[String], rel: &str) -> bool {
    let parts: Vec<&str> = rel.trim_start_matches("./").split('/').collect();
    patterns.iter().any(|p| match p.strip_prefix("**/") {
        Some(name) => parts.contains(&name),
        None => parts.first() == Some(&p.as_str()) || rel.trim_start_matches("./") == p,
    })
}

#[test]
fn the_dockerfile_is_consistent_with_the_tree() {
    let root = repo();
    let text = std::fs::read_to_string(root.join("Dockerfile")).expect("a Dockerfile at the root");
    let ins = instructions(&text);
    let ignore: Vec<String> = std::fs::read_to_string(root.join(".dockerignore"))
        .expect(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();

    let froms: Vec<&String> = ins.iter().filter(|(k, _)| k == "FROM").map(|(_, a)| a).collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(froms[0].starts_with("rust:") && froms[0].to_lowercase().ends_with(" as build"), "{froms:?}");
    let runtime = froms.last().unwrap();
    assert!(runtime.contains("distroless/cc") || runtime.contains("-slim"), "small runtime image: {runtime}");
    // Everything after the last FROM is the runtime stage.
    let last_from = ins.iter().rposition(|(k, _)| k == "FROM").unwrap();
    let runtime_ins = &ins[last_from..];

    let mut copied = 0;
    for (k, args) in &ins {
        if k != "COPY" || args.contains("--from=") {
            continue;
        }
        let words: Vec<&str> = args.split_whitespace().filter(|w| !w.starts_with("--")).collect();
        let (srcs, _dst) = words.split_at(words.len() - 1);
        for s in srcs {
            assert!(root.join(s).exists(), "COPY {s}: not in the tree");
            assert!(!ignored(&ignore, s), "COPY {s}: excluded by .dockerignore");
            copied += 1;
        }
    }
    assert!(copied >= 4, "the Dockerfile copies the sources");
    // Workspace members and declared benches must reach the build, or cargo refuses
    // the manifest.
    let manifest: toml::Table = toml::from_str(&std::fs::read_to_string(root.join("Cargo.toml")).unwrap()).unwrap();
    let copied_dirs: Vec<String> = ins
        .iter()
        .filter(|(k, a)| k == "COPY" && !a.contains("--from="))
        .flat_map(|(_, a)| {
            a.split_whitespace().filter(|w| !w.starts_with("--")).map(str::to_string).collect::<Vec<_>>()
        })
        .collect();
    let reaches =
        |p: &str| copied_dirs.iter().any(|c| p == c || p.starts_with(&format!("{}/", c.trim_end_matches('/'))));
    for m in manifest["workspace"]["members"].as_array().unwrap() {
        let m = m.as_str().unwrap();
        assert!(m == "." || reaches(m), "workspace member {m} is not copied");
    }
    for b in manifest["bench"].as_array().unwrap() {
        let p = format!("benches/{}.rs", b["name"].as_str().unwrap());
        assert!(reaches(&p), "bench {p} is not copied");
    }

    let user = runtime_ins.iter().filter(|(k, _)| k == "USER").map(|(_, a)| a.as_str()).next_back().expect("a USER");
    let uid = user.split(':').next().unwrap();
    assert!(uid != "0" && uid != "root", "runs as root: {user}");
    let env: String =
        runtime_ins.iter().filter(|(k, _)| k == "ENV").map(|(_, a)| a.as_str()).collect::<Vec<_>>().join(" ");
    assert!(env.contains("PANDAV_CONFIG=/config/pandav.toml"), "{env}");
    assert!(env.contains("STATE_DIRECTORY=/state"), "{env}");
    let vols: String = runtime_ins.iter().filter(|(k, _)| k == "VOLUME").map(|(_, a)| a.as_str()).collect();
    assert!(vols.contains("\"/config\"") && vols.contains("\"/state\""), "{vols}");
    let hc = runtime_ins.iter().find(|(k, _)| k == "HEALTHCHECK").map(|(_, a)| a.clone()).expect("a HEALTHCHECK");
    assert!(hc.contains("CMD [\"/usr/local/bin/pandav\", \"healthcheck\"]"), "{hc}");
    let entry = runtime_ins.iter().find(|(k, _)| k == "ENTRYPOINT").map(|(_, a)| a.clone()).unwrap();
    assert_eq!(entry, "[\"/usr/local/bin/pandav\"]");
    assert!(
        text.contains("cp target/release/pandav /out/usr/local/bin/pandav"),
        "the binary lands where HEALTHCHECK runs it"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn healthcheck(config: &Path) -> Out {
    // PANDAV_CONFIG, as in the image.
    run(Command::new(BIN).arg("healthcheck").env("PANDAV_CONFIG", config), Duration::from_secs(30))
}

/// What the image's HEALTHCHECK runs, against the real server: the config's wildcard
/// listen address is asked on loopback, below the URL prefix, at the real route.
#[test]
fn the_healthcheck_asks_the_real_health_route() {
    let t = TestDir::new();
    let data = t.mkdir("data");
    let port = free_port();
    let cfg = ConfigBuilder::new().user("alice", "pw", &[], false).local("/d", &data).build(&t.mkdir("state"));
    let cfg = cfg.replace("listen = \"127.0.0.1:0\"", &format!("listen = \"0.0.0.0:{port}\"\nprefix = \"/dav\""));
    let config = t.write("pandav.toml", &cfg);
    let srv = Server::start_file(&config, t.path());
    let out = healthcheck(&config);
    assert!(out.ok(), "{out:?}\n{}", srv.log());
    assert!(out.stdout.starts_with("200") && out.stdout.contains("\"ok\":true"), "{}", out.stdout);
    wait_for("the health request in the access log", Duration::from_secs(10), || {
        srv.log().contains("path=/dav/-/health status=200").then_some(())
    });
    srv.kill();
    let out = healthcheck(&config);
    assert_eq!(out.status.code(), Some(1), "nothing listens: {out:?}");
    let bad = t.write("bad.toml", "[server]\nlisten = 3\n");
    assert_eq!(healthcheck(&bad).status.code(), Some(2));
}

#[test]
fn the_compose_example_is_yaml_and_uses_the_image_layout() {
    let root = repo();
    let text = std::fs::read_to_string(root.join("examples/compose.yaml")).unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("compose.yaml is YAML");
    assert_eq!(docs.len(), 1);
    let svc = &docs[0]["services"]["pandav"];
    assert!(!svc.is_badvalue(), "a pandav service");
    let ctx = svc["build"]["context"].as_str().expect("build.context");
    let ctx = root.join("examples").join(ctx);
    assert!(ctx.join(svc["build"]["dockerfile"].as_str().unwrap()).is_file(), "the Dockerfile is at the context");
    let vols: Vec<&str> = svc["volumes"].as_vec().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(vols.iter().any(|v| v.split(':').nth(1) == Some("/config/pandav.toml")), "{vols:?}");
    assert!(vols.iter().any(|v| v.split(':').nth(1) == Some("/state")), "{vols:?}");
    let ports: Vec<&str> = svc["ports"].as_vec().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(ports.iter().any(|p| p.ends_with(":8080")), "{ports:?}");
    assert!(!docs[0]["volumes"]["pandav-state"].is_badvalue());
}

/// A container engine whose daemon answers: `docker` or `podman`, by `info`. A CLI
/// without a reachable engine (as on this project's machines) is not one.
fn engine() -> Result<&'static str, String> {
    let mut why = vec![];
    for cli in ["docker", "podman"] {
        match Command::new(cli).args(["info", "--format", "{{json .}}"]).output() {
            Err(e) => why.push(format!("{cli}: {e}")),
            Ok(o) if o.status.success() => return Ok(cli),
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr);
                why.push(format!("{cli}: {}", err.lines().find(|l| !l.trim().is_empty()).unwrap_or("info failed")));
            }
        }
    }
    Err(why.join("; "))
}

#[test]
fn the_image_builds_and_serves_where_an_engine_exists() {
    let cli = match engine() {
        Ok(c) => c,
        Err(why) => {
            eprintln!(
                "SKIPPED the_image_builds_and_serves_where_an_engine_exists: no container engine reachable ({why})"
            );
            return;
        }
    };
    let tag = format!("pandav-test:{}", std::process::id());
    let out = run(Command::new(cli).args(["build", "-t", &tag, "."]).current_dir(repo()), Duration::from_secs(3600));
    let out = out.expect_ok("image build");
    drop(out);
    let t = TestDir::new();
    let port = free_port();
    std::fs::write(
        t.join("pandav.toml"),
        "[server]\nlisten = \"0.0.0.0:8080\"\nshutdown_grace = \"5s\"\n[[users]]\nname = \"u\"\npassword = \"p\"\n[[mounts]]\npath = \"/d\"\ndriver = \"local\"\n[mounts.options]\nroot = \"/state/data\"\ncreate = true\n",
    )
    .unwrap();
    let name = format!("pandav-test-{}", std::process::id());
    let out = run(
        Command::new(cli)
            .args(["run", "-d", "--name", &name, "-p", &format!("127.0.0.1:{port}:8080"), "-v"])
            .arg(format!("{}:/config/pandav.toml:ro", t.join("pandav.toml").display()))
            .arg(&tag),
        Duration::from_secs(120),
    )
    .expect_ok("docker run");
    drop(out);
    let cleanup = || {
        let _ = Command::new(cli).args(["rm", "-f", &name]).output();
        let _ = Command::new(cli).args(["rmi", "-f", &tag]).output();
    };
    let health = wait_for("the container to be healthy", Duration::from_secs(180), || {
        let o = Command::new(cli).args(["inspect", "--format", "{{.State.Health.Status}}", &name]).output().ok()?;
        let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
        (s == "healthy" || s == "unhealthy").then_some(s)
    });
    let user = Command::new(cli).args(["exec", &name, "/usr/local/bin/pandav", "--version"]).output();
    let propfind = curl(&["-X", "PROPFIND", "-u", "u:p", "-H", "Depth: 1", &format!("http://127.0.0.1:{port}/d/")]);
    let stop = Command::new(cli).args(["stop", "-t", "20", &name]).output();
    let code = Command::new(cli).args(["inspect", "--format", "{{.State.ExitCode}}", &name]).output();
    cleanup();
    assert_eq!(health, "healthy");
    assert!(user.map(|o| o.status.success()).unwrap_or(false));
    assert_eq!(propfind.status, 207, "{}", propfind.text());
    assert!(stop.map(|o| o.status.success()).unwrap_or(false));
    assert_eq!(
        code.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default(),
        "0",
        "SIGTERM exits 0"
    );
}
