//! Listeners: accepting connections and serving HTTP/1 and HTTP/2 on them.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use super::App;

/// Serve on the given listeners until `shutdown` resolves.
pub async fn serve(
    app: Arc<App>,
    listeners: Vec<TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for l in listeners {
        let app = Arc::clone(&app);
        let tls = tls.clone();
        tasks.spawn(accept_loop(app, l, tls));
    }
    shutdown.await;
    tracing::info!("shutting down");
    tasks.abort_all();
}

async fn accept_loop(app: Arc<App>, listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = Arc::clone(&app);
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let app = Arc::clone(&app);
                async move { Ok::<_, Infallible>(app.handle(req, peer).await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .max_buf_size(256 * 1024)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30));
            let r = match tls {
                Some(acc) => match acc.accept(stream).await {
                    Ok(s) => builder.serve_connection(TokioIo::new(s), svc).await,
                    Err(e) => {
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                        return;
                    }
                },
                None => builder.serve_connection(TokioIo::new(stream), svc).await,
            };
            if let Err(e) = r {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
}
