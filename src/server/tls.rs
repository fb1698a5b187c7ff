//! TLS for the listener, from PEM certificate and key files.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use tokio_rustls::rustls;

pub fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor> {
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert).with_context(|| format!("cannot open tls_cert {}", cert.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .with_context(|| format!("tls_cert {} is not PEM", cert.display()))?;
    if certs.is_empty() {
        return Err(anyhow!("tls_cert {} holds no certificate", cert.display()));
    }
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key).with_context(|| format!("cannot open tls_key {}", key.display()))?,
    ))
    .with_context(|| format!("tls_key {} is not PEM", key.display()))?
    .ok_or_else(|| anyhow!("tls_key {} holds no private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key do not match")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}
