//! The 115 family (reference `shared/reference/115-web.md`, `115-open.md`): one folder
//! per driver and `common` for what they share. No driver folder imports another.
//!
//! - `common/`: web-API client, cookie login, crypto, OSS, option helpers.
//! - `web/`: `driver = "115"` (web API, cookie or QR login).
//! - `share/`: `driver = "115_share"` (a share link, read-only).
//! - `open/`: `driver = "115_open"` (the 115 Open platform, OAuth tokens that rotate).

pub mod common;
pub mod open;
pub mod share;
pub mod web;
