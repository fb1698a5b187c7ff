//! `pandav login 115`: the QR-code login (reference §1.2) of a `115` or `115_share`
//! mount; the cookie goes into the mount's state through the kit's credentials.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use clap::Parser;

use super::auth;
use crate::drivers::{LoginCommon, LoginFuture, LoginHost};

#[derive(Parser, Debug)]
#[command(
    name = "pandav login 115",
    about = "115 Cloud (cookie): QR code login; the cookie goes into the mount's state"
)]
struct Args {
    /// 115 app slot to occupy (tv, android, ios, alipaymini, wechatmini, qandroid, web, …).
    /// Logging in signs out any other session of the same app type.
    #[arg(long, default_value = "tv")]
    app: String,
    #[command(flatten)]
    common: LoginCommon,
}

/// The registry's login entry.
pub fn run(args: Vec<String>, host: &dyn LoginHost) -> LoginFuture<'_> {
    Box::pin(async move {
        let a = Args::parse_from(std::iter::once("pandav login 115".to_string()).chain(args));
        login(a, host).await
    })
}

async fn login(a: Args, host: &dyn LoginHost) -> Result<()> {
    let app = a.app;
    if !auth::QR_APPS.iter().any(|(x, _)| *x == app) {
        let names: Vec<&str> = auth::QR_APPS.iter().map(|(x, _)| *x).collect();
        return Err(anyhow!("--app {app:?} is not a 115 app type (one of: {})", names.join(", ")));
    }
    let m = host.mount(&a.common)?;
    if m.driver != "115" && m.driver != "115_share" {
        return Err(anyhow!("mount {} uses driver {:?}; 115 login is for 115 and 115_share mounts", m.path, m.driver));
    }
    let config_cookie = m.options.get("cookie").and_then(|c| c.as_str()).unwrap_or("").trim().to_string();
    let endpoints: BTreeMap<String, String> = match m.options.get("endpoints") {
        Some(e) => e.clone().try_into().map_err(|e| anyhow!("mount {}: endpoints: {e}", m.path))?,
        None => Default::default(),
    };
    let http = super::build_http(endpoints, 0.0, Some(2), None, Some(0))?;
    let slot = auth::QR_APPS.iter().find(|(x, _)| *x == app).map(|(_, d)| *d).unwrap_or("");
    host.say(&format!(
        "Logging in as app type {app:?} ({slot}). 115 allows one session per app type: this signs out\n\
         any other {app:?} session of the account (browsers stay logged in unless you use --app web)."
    ));
    let png = a.common.png.clone();
    let cookie = auth::qr_login(
        &http,
        &app,
        |tok| {
            host.show_qr(&tok.qrcode, png.as_deref())?;
            host.say(&format!("Scan this QR code with the 115 app (or open {} on the phone).", tok.qrcode));
            Ok(())
        },
        |st| host.say(&st.message()),
    )
    .await?;
    let saved = auth::SavedLogin { cookie: cookie.header(), app: Some(app.clone()) };
    super::auth_login(&m.ctx.state, &config_cookie)?
        .save_login(saved)
        .await
        .map_err(|e| anyhow!("saving the login: {e}"))?;
    let who = cookie.user_id().map(|u| format!("user {u}")).unwrap_or_else(|| "the account".into());
    println!("Logged in as {who} (app {app}); saved to {}.", m.ctx.state.path().display());
    println!("`pandav serve` with this config uses it for {} (a running server picks it up on its next call).", m.path);
    Ok(())
}
