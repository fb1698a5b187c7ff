//! The `aliyundrive` and `aliyundrive_share` drivers against the `emualiyun` emulator
//! (written from the reference, not from the drivers): in-process driver tests with
//! faults and token rotation, and the real `pandav` binary end to end. Their file
//! scenarios live in tests/conformance.

#[path = "drvaliyun/binary.rs"]
mod binary;
#[path = "drvaliyun/common.rs"]
mod common;
#[path = "drvaliyun/driver.rs"]
mod driver;
#[path = "common/mod.rs"]
mod fixture;
#[path = "drvaliyun/share.rs"]
mod share;
#[path = "drvaliyun/tokens.rs"]
mod tokens;
