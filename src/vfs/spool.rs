//! Spooling a body to disk in bounded memory while hashing it, so drivers get an
//! [`Upload`] with size and hashes known (rapid upload by hash needs them first).

use std::path::Path;
use std::time::SystemTime;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::error::DriveResult;
use super::types::Upload;

/// Chunks queued for one hash thread before a writer waits (bounds memory: a few MiB).
const HASH_QUEUE: usize = 32;

/// One hash computed on its own thread, fed through a bounded channel, so SHA-1 and MD5
/// run in parallel with each other and with the disk writes. Hashed one after the
/// other on the writer's task, MD5 alone made a 1 GiB rapid upload slower than the disk.
struct HashThread {
    tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
    done: Option<std::thread::JoinHandle<String>>,
}

impl HashThread {
    fn spawn<D: sha1::Digest + Send + 'static>(name: &str) -> std::io::Result<HashThread> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(HASH_QUEUE);
        let done = std::thread::Builder::new().name(format!("pandav-{name}")).spawn(move || {
            let mut d = D::new();
            while let Some(b) = rx.blocking_recv() {
                d.update(&b);
            }
            hex::encode(d.finalize())
        })?;
        Ok(HashThread { tx: Some(tx), done: Some(done) })
    }

    async fn feed(&self, b: Bytes) -> std::io::Result<()> {
        let tx = self.tx.as_ref().ok_or_else(|| std::io::Error::other("hash already finished"))?;
        tx.send(b).await.map_err(|_| std::io::Error::other("hash thread ended"))
    }

    /// Close the feed and wait for the hex digest.
    async fn finish(mut self) -> std::io::Result<String> {
        drop(self.tx.take());
        let handle = self.done.take().expect("joined once");
        tokio::task::spawn_blocking(move || handle.join())
            .await
            .map_err(std::io::Error::other)?
            .map_err(|_| std::io::Error::other("hash thread panicked"))
    }
}

pub struct Spool {
    path: tempfile::TempPath,
    file: tokio::io::BufWriter<tokio::fs::File>,
    sha1: HashThread,
    md5: HashThread,
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
            sha1: HashThread::spawn::<sha1::Sha1>("sha1")?,
            md5: HashThread::spawn::<md5::Md5>("md5")?,
            size: 0,
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub async fn write(&mut self, data: &[u8]) -> DriveResult<()> {
        self.write_bytes(Bytes::copy_from_slice(data)).await
    }

    /// Append a chunk (hashed on the hash threads without a copy).
    pub async fn write_bytes(&mut self, data: Bytes) -> DriveResult<()> {
        self.file.write_all(&data).await?;
        self.size += data.len() as u64;
        self.sha1.feed(data.clone()).await?;
        self.md5.feed(data).await?;
        Ok(())
    }

    /// Flush and fsync, then describe the upload.
    pub async fn finish(mut self, mtime: Option<SystemTime>) -> DriveResult<Spooled> {
        self.file.flush().await?;
        self.file.into_inner().sync_data().await?;
        let upload = Upload {
            path: self.path.to_path_buf(),
            size: self.size,
            sha1: self.sha1.finish().await?,
            md5: self.md5.finish().await?,
            mtime,
        };
        Ok(Spooled { upload, guard: self.path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest as _;

    #[tokio::test]
    async fn hashes_match_one_pass_hashing() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..3_000_017u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let mut sp = Spool::create(dir.path()).await.unwrap();
        for chunk in data.chunks(65_521) {
            sp.write(chunk).await.unwrap();
        }
        let done = sp.finish(None).await.unwrap();
        assert_eq!(done.upload.size, data.len() as u64);
        assert_eq!(done.upload.sha1, hex::encode(sha1::Sha1::digest(&data)));
        assert_eq!(done.upload.md5, hex::encode(md5::Md5::digest(&data)));
        assert_eq!(std::fs::read(&done.upload.path).unwrap(), data);
        let empty = Spool::create(dir.path()).await.unwrap().finish(None).await.unwrap();
        assert_eq!(empty.upload.sha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(empty.upload.md5, "d41d8cd98f00b204e9800998ecf8427e");
    }
}
