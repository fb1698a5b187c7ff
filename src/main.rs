use clap::Parser;
use pandav::cli::{self, Cli, Cmd};

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Check { config } => cli::check(config),
        Cmd::HashPassword => report(cli::hash_password()),
        Cmd::Login { provider } => report(cli::login(provider)),
        Cmd::Refresh115OpenHelper => pandav::drivers::p115_open::helper_main(),
        Cmd::Serve { config, listen } => {
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
            report(rt.block_on(cli::serve(config, listen)))
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
