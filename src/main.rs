use pandav::cli::{self, Cmd};

fn main() {
    limit_malloc_arenas();
    let cli = cli::parse();
    let code = match cli.cmd {
        Cmd::Check { config } => cli::check(config),
        Cmd::Healthcheck { config, url } => cli::healthcheck(config, url),
        Cmd::HashPassword => report(cli::hash_password()),
        Cmd::Login { provider, args } => report(cli::login(provider, args)),
        Cmd::Refresh { .. } => pandav::vfs::credentials::helper_main(pandav::drivers::build_refresher),
        Cmd::Serve { config, listen, log_format } => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
            report(rt.block_on(cli::serve(config, listen, log_format)))
        }
        Cmd::Tasks(args) => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            match rt.block_on(cli::tasks(args)) {
                Ok(code) => code,
                Err(e) => report(Err(e)),
            }
        }
        Cmd::Offline { cmd } => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
            match rt.block_on(cli::offline(cmd)) {
                Ok(code) => code,
                Err(e) => report(Err(e)),
            }
        }
    };
    std::process::exit(code);
}

fn report(r: anyhow::Result<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
}

/// glibc gives each thread that allocates its own arena and keeps freed memory there:
/// after a large PROPFIND the daemon kept ~20 MiB it no longer used. Two arenas are
/// plenty for a 2-thread-per-core tokio runtime doing I/O (docs/benchmarks.md).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called once before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
