//! The local-filesystem, connection and resource half of issue 9, driven through the
//! real `pandav serve`: each test shows a way a client (or a process sharing the
//! served folders) could wipe, leak, pin or wedge something, and that it no longer can.
//! Trees are compared before and after where data is at stake, the process must be
//! alive afterwards, and its log free of panics.
//!
//! One file per class: `symlinks.rs`, `connections.rs`, `auth.rs`, `uploads.rs`,
//! `install.rs` (systemd unit), `replace.rs` (the driver's atomic replace, through the
//! `Drive` API). `helpers.rs` has what tests/common does not.

#[path = "hostile_local/auth.rs"]
mod auth;
mod common;
#[path = "hostile_local/connections.rs"]
mod connections;
#[path = "hostile_local/helpers.rs"]
mod helpers;
#[path = "hostile_local/install.rs"]
mod install;
#[path = "hostile_local/replace.rs"]
mod replace;
#[path = "hostile_local/symlinks.rs"]
mod symlinks;
#[path = "hostile_local/uploads.rs"]
mod uploads;
