//! # emukit — shared scaffolding of pandav's cloud-drive emulators
//!
//! An emulator stands in for a set of real hosts (`api.alipan.com`, `proapi.115.com`, …).
//! emukit gives each host **its own TCP port** on 127.0.0.1, so the driver under test talks to
//! it exactly as to the real host (same paths, same queries), after mapping the host to the
//! base URL of [`Server::endpoints`] (pandav's `endpoints` table).
//!
//! Around the emulator's handler it provides:
//! * the HTTP plumbing (hyper 1, HTTP/1.1, keep-alive, HEAD, streamed bodies) — [`Request`],
//!   [`Reply`], [`Body`];
//! * a **request log** of every request: method, host, path, query, headers, body size,
//!   response status, injected fault — [`Server::log`], [`Server::calls`];
//! * **fault injection** by `host/path` pattern, N times or until removed: canned replies
//!   (5xx, 429 with `Retry-After`, …), connection reset, delay, slow body, body cut after N
//!   bytes, and emulator-specific faults ([`Action::Custom`]) that the handler interprets
//!   (expired token, expired link, …) — [`Server::inject`];
//! * small helpers every emulator needs: an adjustable [`Clock`], [`RateLimiter`] token
//!   buckets, time formatting, random ids, urlencoded/JSON parsing ([`util`]).
//!
//! ```ignore
//! let bound = emukit::Bound::bind(&["api.example.com", "data.example.com"], &Default::default()).await?;
//! let endpoints = bound.endpoints();           // host -> "http://127.0.0.1:PORT"
//! let state = Arc::new(MyState::new(endpoints));
//! let server = bound.serve(move |req: emukit::Request, custom: Option<MyFault>| {
//!     let state = state.clone();
//!     async move { state.handle(req, custom).await }
//! });
//! server.inject("api.example.com/v1/list", emukit::Fault::reply(emukit::Reply::text(503, "busy")).times(2));
//! assert_eq!(server.calls("api.example.com/v1/list"), 0);
//! server.stop().await;                         // closes listeners and open connections
//! ```
//!
//! Fault selection per request: the faults whose pattern matches `host/path` are visited in
//! insertion order; the first one that is not a body fault ([`Action::Reply`],
//! [`Action::Reset`], [`Action::Delay`], [`Action::Custom`]) fires, and every matching body
//! fault ([`Action::SlowBody`], [`Action::DropAfter`]) shapes the response body. Only faults
//! that fire are counted down.

mod clock;
mod fault;
mod http;
mod log;
mod server;
pub mod util;

pub use clock::{Clock, RateLimiter};
pub use fault::{Action, Fault, FaultId};
pub use http::{Body, ByteSource, Reply, Request};
pub use log::LoggedRequest;
pub use server::{BindOptions, Bound, Layout, Server};
