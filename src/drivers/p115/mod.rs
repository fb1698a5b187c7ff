//! `driver = "115"` (web API, cookie login). The driver itself is not built yet; the
//! crypto it needs is, checked against third-party vectors.

pub mod crypto;
