//! pandav: one WebDAV tree over cloud drives and local folders.
//!
//! Rooms (see DESIGN.md): `server → dav → vfs ← drivers`; `config` and `state` are leaves.

pub mod cli;
pub mod config;
pub mod dav;
pub mod drivers;
pub mod metrics;
pub mod server;
pub mod state;
pub mod vfs;
