//! The Aliyun Drive family (阿里云盘 / alipan; reference `shared/reference/aliyundrive.md`):
//! one folder per driver and `common` for what they share. No driver folder imports
//! another.
//!
//! - `common/`: error envelope and codes, lenient JSON, the file item, rapid-upload
//!   hashes, the part-URL upload, the consumer login (tokens, device signature, QR).
//! - `consumer/`: `driver = "aliyundrive"` (the consumer API, a rotating refresh token).
//! - `share/`: `driver = "aliyundrive_share"` (a share link, read-only).

pub mod common;
pub mod consumer;
pub mod open;
pub mod share;
