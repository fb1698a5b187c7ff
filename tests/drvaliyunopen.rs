//! The `aliyundrive_open` driver against the `emualiyun` emulator (written from the
//! reference, not from the driver): files and faults in-process, the token lifecycle,
//! and the real `pandav` binary. Its shared file scenarios live in tests/conformance.

#[path = "drvaliyunopen/binary.rs"]
mod binary;
#[path = "drvaliyunopen/common.rs"]
mod common;
#[path = "drvaliyunopen/e2e.rs"]
mod e2e;
#[path = "drvaliyunopen/files.rs"]
mod files;
#[path = "common/mod.rs"]
mod fixture;
#[path = "drvaliyunopen/tokens.rs"]
mod tokens;
