//! `pandav login aliyundrive`: the consumer QR login (ref §2.6) for an `aliyundrive` or
//! `aliyundrive_share` mount; the flow lives in `common::passport`.

pub use crate::drivers::aliyun::common::passport::login_entry;
