//! Prometheus metrics: what is counted, and the `/-/metrics` text exposition.
//!
//! Counting is always on (an atomic add per event); the route is served only with
//! `[server] metrics = true`. Labels are bounded by construction: methods from a fixed
//! list, status codes, policy, driver and cache names, and upstream endpoint names that
//! come from the drivers' code (capped at [`MAX_ENDPOINTS`] distinct values). Never a
//! request path, a mount path or a user name: the exposition tells a scraper how the
//! server is doing, not what it serves or to whom.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `pandav_http_requests_total` | method, status | requests answered (counted when the response body ends) |
//! | `pandav_http_request_duration_seconds` | method | time from the request to the end of its response body |
//! | `pandav_downloads_total` | policy | GET/HEAD of files by download policy (`redirect`, `proxy`, `proxy_url`, `signed`) |
//! | `pandav_download_bytes_total` | policy | file bytes streamed by pandav itself |
//! | `pandav_proxy_streams_active` | | file bodies being streamed right now |
//! | `pandav_zero_copy_bytes_total` | | of those bytes, the ones the kernel sent from a local file by `sendfile` |
//! | `pandav_upstream_calls_total` | driver, endpoint, result | provider calls of the kit's call loop, one per attempt: `ok`, `throttled`, `retried`, `failed` |
//! | `pandav_token_refreshes_total` | result | credential refreshes: `rotated`, `adopted`, `dead`, `too_frequent`, `transient` |
//! | `pandav_cache_requests_total` | cache, result | `listing` and `link` cache lookups: `hit`, `miss` |
//! | `pandav_mounts` | driver, healthy | mounts by driver and health, at scrape time |
//! | `pandav_config_reloads_total` | result | SIGHUP reloads: `applied`, `refused` |

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Distinct upstream endpoint names kept; later ones are counted as `other`.
pub const MAX_ENDPOINTS: usize = 128;

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    downloads: IntCounterVec,
    download_bytes: IntCounterVec,
    streams: IntGauge,
    upstream: IntCounterVec,
    refreshes: IntCounterVec,
    cache: IntCounterVec,
    mounts: IntGaugeVec,
    reloads: IntCounterVec,
    zero_copy: prometheus::IntCounter,
    endpoints: Mutex<HashSet<String>>,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric definition");
    r.register(Box::new(c.clone())).expect("metric registered once");
    c
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        let requests = counter(&r, "pandav_http_requests_total", "HTTP requests answered", &["method", "status"]);
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "pandav_http_request_duration_seconds",
                "Time from a request to the end of its response body",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]),
            &["method"],
        )
        .expect("metric definition");
        r.register(Box::new(duration.clone())).expect("metric registered once");
        let downloads = counter(&r, "pandav_downloads_total", "GET/HEAD of files by download policy", &["policy"]);
        let download_bytes =
            counter(&r, "pandav_download_bytes_total", "File bytes streamed by pandav, by policy", &["policy"]);
        let streams = IntGauge::new("pandav_proxy_streams_active", "File bodies being streamed now").expect("metric");
        r.register(Box::new(streams.clone())).expect("metric registered once");
        let upstream = counter(
            &r,
            "pandav_upstream_calls_total",
            "Provider call attempts by outcome (ok, throttled, retried, failed)",
            &["driver", "endpoint", "result"],
        );
        let refreshes = counter(&r, "pandav_token_refreshes_total", "Credential refreshes by outcome", &["result"]);
        let cache = counter(&r, "pandav_cache_requests_total", "Listing and link cache lookups", &["cache", "result"]);
        let mounts =
            IntGaugeVec::new(Opts::new("pandav_mounts", "Mounts by driver and health"), &["driver", "healthy"])
                .expect("metric definition");
        r.register(Box::new(mounts.clone())).expect("metric registered once");
        let reloads = counter(&r, "pandav_config_reloads_total", "Configuration reloads (SIGHUP)", &["result"]);
        let zero_copy = prometheus::IntCounter::new(
            "pandav_zero_copy_bytes_total",
            "File bytes the kernel sent from the page cache to the socket (sendfile)",
        )
        .expect("metric definition");
        r.register(Box::new(zero_copy.clone())).expect("metric registered once");
        Metrics {
            registry: r,
            zero_copy,
            reloads,
            requests,
            duration,
            downloads,
            download_bytes,
            streams,
            upstream,
            refreshes,
            cache,
            mounts,
            endpoints: Mutex::new(HashSet::new()),
        }
    }
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

/// The method as a label: the WebDAV and HTTP methods pandav knows, else `other`.
pub fn method_label(m: &http::Method) -> &'static str {
    const KNOWN: &[&str] = &[
        "GET",
        "HEAD",
        "PUT",
        "POST",
        "DELETE",
        "OPTIONS",
        "MKCOL",
        "COPY",
        "MOVE",
        "PROPFIND",
        "PROPPATCH",
        "LOCK",
        "UNLOCK",
    ];
    KNOWN.iter().find(|k| **k == m.as_str()).copied().unwrap_or("other")
}

/// A request whose response body ended (or was dropped).
pub fn request_done(method: &http::Method, status: u16, took: Duration) {
    let m = get();
    let method = method_label(method);
    let mut buf = itoa_buf();
    m.requests.with_label_values(&[method, fmt_status(status, &mut buf)]).inc();
    m.duration.with_label_values(&[method]).observe(took.as_secs_f64());
}

fn itoa_buf() -> [u8; 3] {
    [b'0'; 3]
}

/// A status code as three ASCII digits (any u16 outside 100..=999 is `000`).
fn fmt_status(status: u16, buf: &mut [u8; 3]) -> &str {
    if (100..=999).contains(&status) {
        buf[0] = b'0' + (status / 100) as u8;
        buf[1] = b'0' + (status / 10 % 10) as u8;
        buf[2] = b'0' + (status % 10) as u8;
    }
    std::str::from_utf8(buf).unwrap_or("000")
}

/// A GET/HEAD of a file answered with `policy` (`redirect`, `proxy`, `proxy_url`, `signed`).
pub fn download(policy: &'static str) {
    get().downloads.with_label_values(&[policy]).inc();
}

/// Counts the bytes of one streamed file body and keeps it in the active-streams gauge
/// until dropped.
pub struct StreamGuard {
    bytes: prometheus::IntCounter,
}

impl StreamGuard {
    pub fn new(policy: &'static str) -> StreamGuard {
        let m = get();
        m.streams.inc();
        StreamGuard { bytes: m.download_bytes.with_label_values(&[policy]) }
    }

    pub fn sent(&self, n: usize) {
        self.bytes.inc_by(n as u64);
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        get().streams.dec();
    }
}

/// `n` file bytes sent by `sendfile` (also counted in `pandav_download_bytes_total`).
pub fn zero_copy(n: usize) {
    get().zero_copy.inc_by(n as u64);
}

/// What became of one attempt of the call loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer handed to the caller.
    Ok,
    /// The provider is pacing us.
    Throttled,
    /// Transient trouble (or a refused credential) and another attempt follows.
    Retried,
    /// The call ends with an error.
    Failed,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Throttled => "throttled",
            Outcome::Retried => "retried",
            Outcome::Failed => "failed",
        }
    }
}

/// The endpoint as a label: what the driver calls the call, without a query string,
/// at most 64 bytes, and one of at most [`MAX_ENDPOINTS`] names.
fn endpoint_label(what: &str) -> String {
    let mut w = what.split('?').next().unwrap_or("").trim();
    if w.len() > 64 {
        let mut end = 64;
        while !w.is_char_boundary(end) {
            end -= 1;
        }
        w = &w[..end];
    }
    if w.is_empty() {
        return "other".into();
    }
    let mut seen = get().endpoints.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if seen.contains(w) {
        return w.to_string();
    }
    if seen.len() >= MAX_ENDPOINTS {
        return "other".into();
    }
    seen.insert(w.to_string());
    w.to_string()
}

/// One attempt of a provider call (`driver`: the kit's provider name, `what`: the call).
pub fn upstream(driver: &str, what: &str, outcome: Outcome) {
    let ep = endpoint_label(what);
    get().upstream.with_label_values(&[driver, &ep, outcome.label()]).inc();
}

/// How a credential refresh ended.
pub fn refresh(result: &'static str) {
    get().refreshes.with_label_values(&[result]).inc();
}

/// A configuration reload: applied, or refused (the running one stays).
pub fn reload(applied: bool) {
    get().reloads.with_label_values(&[if applied { "applied" } else { "refused" }]).inc();
}

/// A listing or link cache lookup.
pub fn cache(which: &'static str, hit: bool) {
    get().cache.with_label_values(&[which, if hit { "hit" } else { "miss" }]).inc();
}

/// The text exposition, with the mount gauges taken from `mounts` now
/// (`(driver, healthy)` of each mount).
pub fn render(mounts: impl Iterator<Item = (&'static str, bool)>) -> String {
    let m = get();
    m.mounts.reset();
    for (driver, ok) in mounts {
        m.mounts.with_label_values(&[driver, if ok { "true" } else { "false" }]).inc();
    }
    let mut out = vec![];
    let enc = prometheus::TextEncoder::new();
    if let Err(e) = enc.encode(&m.registry.gather(), &mut out) {
        tracing::warn!("metrics: cannot encode: {e}");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Content-Type of the text exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(method_label(&http::Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(method_label(&http::Method::from_bytes(b"PROPFIND").unwrap()), "PROPFIND");
        let mut b = itoa_buf();
        assert_eq!(fmt_status(207, &mut b), "207");
        let mut b = itoa_buf();
        assert_eq!(fmt_status(7, &mut b), "000");
        assert_eq!(endpoint_label("/files?cid=1&secret=x"), "/files");
        for i in 0..(MAX_ENDPOINTS * 2) {
            endpoint_label(&format!("ep-{i}"));
        }
        assert_eq!(endpoint_label("one too many"), "other");
        assert!(get().endpoints.lock().unwrap().len() <= MAX_ENDPOINTS);
    }
}
