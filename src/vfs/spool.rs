//! Spooling a body to disk in bounded memory while hashing it, so drivers get an
//! [`Upload`] with size and hashes known (rapid upload by hash needs them first).

use std::path::Path;
use std::time::SystemTime;

use md5::Digest as _;
use tokio::io::AsyncWriteExt;

use super::error::DriveResult;
use super::types::Upload;

pub struct Spool {
    path: tempfile::TempPath,
    file: tokio::io::BufWriter<tokio::fs::File>,
    sha1: sha1::Sha1,
    md5: md5::Md5,
    size: u64,
}

/// A finished spool: the upload for the drive, and the temp path that deletes the file
/// when dropped (unless the drive moved it into place).
pub struct Spooled {
    pub upload: Upload,
    pub guard: tempfile::TempPath,
}

impl Spool {
    /// A new spool file in `dir` (hidden name, removed on drop).
    pub async fn create(dir: &Path) -> DriveResult<Spool> {
        tokio::fs::create_dir_all(dir).await?;
        let tmp = tempfile::Builder::new().prefix(".pandav-tmp-").tempfile_in(dir)?;
        let (std_file, path) = tmp.into_parts();
        Ok(Spool {
            path,
            file: tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::from_std(std_file)),
            sha1: Default::default(),
            md5: Default::default(),
            size: 0,
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub async fn write(&mut self, data: &[u8]) -> DriveResult<()> {
        self.file.write_all(data).await?;
        self.sha1.update(data);
        self.md5.update(data);
        self.size += data.len() as u64;
        Ok(())
    }

    /// Flush and fsync, then describe the upload.
    pub async fn finish(mut self, mtime: Option<SystemTime>) -> DriveResult<Spooled> {
        self.file.flush().await?;
        self.file.into_inner().sync_data().await?;
        let upload = Upload {
            path: self.path.to_path_buf(),
            size: self.size,
            sha1: hex::encode(self.sha1.finalize()),
            md5: hex::encode(self.md5.finalize()),
            mtime,
        };
        Ok(Spooled { upload, guard: self.path })
    }
}
