//! One conformance suite for every driver (like rclone's fstests or OpenDAL's behavior
//! tests), plus the refresh/state tests of the vfs layer with rotating credentials.
//!
//! - `suite.rs`: the `Fixture` trait a driver's test implements, `run_all`, helpers.
//! - `scenarios.rs`: the scenarios, all through the `Mount` API.
//! - `aliyun.rs`: the `aliyundrive` driver's fixture (emualiyun).
//! - `aliyun_open.rs`: the `aliyundrive_open` fixture (environment shared with tests/drvaliyunopen).
//! - `local.rs`: the local driver's fixture and its symlink/escape tests.
//! - `p115open_driver.rs`: 115 Open's own scenarios (helpers shared with tests/drv115open).
//! - `rotating.rs`: an in-test drive with expiring, rotating credentials (the kit's `Credentials`).
//!
//! A new driver adds one module here with a `Fixture` and a `#[tokio::test]` calling
//! `suite::run_all`. Select scenarios with `CONFORMANCE_ONLY=name,name` (substrings).

mod aliyun;
mod aliyun_open;
#[path = "../drvaliyunopen/common.rs"]
mod aliyun_open_env;
#[path = "../drvaliyun/outside.rs"]
mod aliyun_outside;
#[path = "../common/mod.rs"]
mod fixture;
mod local;
#[path = "../drv115open/common.rs"]
mod open_env;
mod p115;
mod p115open;
mod p115open_driver;
mod quota;
mod rotating;
mod scenarios;
mod suite;
