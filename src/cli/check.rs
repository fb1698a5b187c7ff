//! `pandav check`: validate a config and print the mount table.

use std::path::PathBuf;

use super::build_table;
use crate::config::Config;
use crate::state::StateDir;
use crate::vfs::MountTable;

pub fn check(config: PathBuf) -> i32 {
    let cfg = match Config::load(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    // Build drivers against a scratch state dir: check must not touch live state.
    let state = match StateDir::open(dir.path()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 2;
        }
    };
    match build_table(&cfg, &state) {
        Ok(t) => {
            print_table(&cfg, &t);
            0
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
}

pub fn print_table(cfg: &Config, table: &MountTable) {
    println!("{}: ok", cfg.source_name);
    println!("listen: {}", cfg.raw.server.listen.get_ref().to_vec().join(", "));
    println!("{:<24} {:<12} {:<10} {:<6} cache", "mount", "driver", "policy", "mode");
    for m in table.mounts() {
        println!(
            "{:<24} {:<12} {:<10} {:<6} {}s",
            m.path(),
            m.drive.kind(),
            m.opts.policy.name(),
            if m.read_only() { "ro" } else { "rw" },
            m.opts.cache_ttl.as_secs()
        );
    }
    if cfg.raw.users.is_empty() {
        println!("users: none (anonymous access)");
    } else {
        for u in &cfg.raw.users {
            let mounts = u.mounts.as_ref().map(|v| v.join(", ")).unwrap_or_else(|| "all mounts".into());
            println!("user {}: {}{}", u.name.get_ref(), mounts, if u.read_only { " (read-only)" } else { "" });
        }
    }
}
