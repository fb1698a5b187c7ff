//! The `115_open` driver against the `emu115open` emulator: file operations (conformance
//! equivalents), the token lifecycle in-process, and the real `pandav` binary (crash
//! safety under SIGKILL, dead grants in `/-/health`, login, rclone end to end).

#[path = "drv115open/binary.rs"]
mod binary;
#[path = "drv115open/common.rs"]
mod common;
#[path = "drv115open/conformance.rs"]
mod conformance;
#[path = "drv115open/tokens.rs"]
mod tokens;
