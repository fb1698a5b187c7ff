//! The `115_open` driver against the `emu115open` emulator: the token lifecycle
//! in-process, and the real `pandav` binary (crash safety under SIGKILL, dead grants in
//! `/-/health`, login, rclone end to end). Its file scenarios live in tests/conformance.

#[path = "drv115open/binary.rs"]
mod binary;
#[path = "drv115open/common.rs"]
mod common;
#[path = "common/mod.rs"]
mod fixture;
#[path = "drv115open/tokens.rs"]
mod tokens;
