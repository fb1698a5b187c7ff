//! Upload (ref §7.5): rapid upload by SHA-1 + proof_code first, else the presigned part
//! URLs, then `complete`.

use super::AliyunOpen;
use crate::vfs::{DriveError, DriveResult, Entry, Upload};

impl AliyunOpen {
    /// Store `up` as `parent/name` (a new entry; replacing is the mount's business).
    pub(crate) async fn upload(&self, _parent: &Entry, _name: &str, _up: &Upload) -> DriveResult<Entry> {
        // TODO(common): the create / get_upload_url / complete trait and the part upload.
        Err(DriveError::Unsupported("upload (waiting for common)"))
    }
}
