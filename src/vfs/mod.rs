//! The virtual file system: the `Drive` trait, mounts and the mount table.

pub mod credentials;
pub mod drive;
pub mod error;
pub mod hashcache;
pub mod mount;
pub mod shared_links;
pub mod spool;
pub mod table;
pub mod tasks;
pub mod transfer;
pub mod types;

pub use drive::{ByteSource, Drive, Offline, RapidPut};
pub use error::{DriveError, DriveResult, Hint, ProviderCode};
pub use mount::{Health, Mount, MountOptions, Policy};
pub use table::{MountTable, Resolved};
pub use types::*;
