//! File contents: bytes held in memory (and in the state folder), or a deterministic pattern
//! generated on demand so that a 1 GiB "known" file costs no memory.

use std::io::Read;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use sha1::{Digest, Sha1};

use crate::crypto::Crc64;

const BLOCK: usize = 1 << 20;

/// Deterministic pseudo-random content: a 1 MiB block derived from `seed` (splitmix64),
/// repeated and cut at `size`. Tests produce the same bytes with [`Pattern::reader`] (to upload
/// through a driver) that the emulator knows by SHA-1 for rapid upload.
#[derive(Clone, Debug)]
pub struct Pattern {
    seed: u64,
    size: u64,
    block: Arc<Vec<u8>>,
}

impl Pattern {
    pub fn new(seed: u64, size: u64) -> Pattern {
        Pattern { seed, size, block: block_for(seed) }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Fill `buf` with the bytes at `offset` (bytes past the end are left untouched).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) {
        let mut pos = offset;
        let mut done = 0usize;
        let end = self.size.min(offset + buf.len() as u64);
        while pos < end {
            let i = (pos % BLOCK as u64) as usize;
            let n = (BLOCK - i).min((end - pos) as usize);
            buf[done..done + n].copy_from_slice(&self.block[i..i + n]);
            done += n;
            pos += n as u64;
        }
    }

    /// All of it (small sizes only).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.size as usize];
        self.read_at(0, &mut v);
        v
    }

    /// A reader over the content (for streaming it into a driver under test).
    pub fn reader(&self) -> PatternReader {
        PatternReader { p: self.clone(), pos: 0 }
    }

    /// (uppercase SHA-1, CRC-64) of the whole content, streaming.
    pub fn hashes(&self) -> (String, u64) {
        let mut sha = Sha1::new();
        let mut crc = Crc64::new();
        let mut pos = 0u64;
        while pos < self.size {
            let i = (pos % BLOCK as u64) as usize;
            let n = (BLOCK - i).min((self.size - pos) as usize);
            let piece = &self.block[i..i + n];
            sha.update(piece);
            crc.update(piece);
            pos += n as u64;
        }
        (hex::encode_upper(sha.finalize()), crc.finish())
    }
}

/// Recently generated blocks by seed.
type BlockCache = std::sync::Mutex<Vec<(u64, Arc<Vec<u8>>)>>;

fn block_for(seed: u64) -> Arc<Vec<u8>> {
    static CACHE: OnceLock<BlockCache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, b)) = c.iter().find(|(s, _)| *s == seed) {
        return b.clone();
    }
    let mut v = Vec::with_capacity(BLOCK);
    let mut x = seed;
    while v.len() < BLOCK {
        // splitmix64
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        v.extend_from_slice(&z.to_le_bytes());
    }
    let b = Arc::new(v);
    if c.len() > 16 {
        c.remove(0);
    }
    c.push((seed, b.clone()));
    b
}

/// `std::io::Read` over a [`Pattern`].
pub struct PatternReader {
    p: Pattern,
    pos: u64,
}

impl Read for PatternReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.p.size - self.pos).min(buf.len() as u64) as usize;
        self.p.read_at(self.pos, &mut buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

/// Content of a file or of a known blob.
#[derive(Clone, Debug)]
pub enum Content {
    Bytes(Bytes),
    Pattern(Pattern),
}

impl Content {
    pub fn size(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::Pattern(p) => p.size(),
        }
    }

    pub fn read_at(&self, offset: u64, buf: &mut [u8]) {
        match self {
            Content::Bytes(b) => {
                let start = (offset as usize).min(b.len());
                let end = (start + buf.len()).min(b.len());
                buf[..end - start].copy_from_slice(&b[start..end]);
            }
            Content::Pattern(p) => p.read_at(offset, buf),
        }
    }

    /// Lowercase SHA-1 of the first `min(1024, size)` bytes (ref §7.1 `pre_hash`).
    pub fn pre_hash(&self) -> String {
        let n = self.size().min(1024) as usize;
        let mut buf = vec![0u8; n];
        self.read_at(0, &mut buf);
        hex::encode(Sha1::digest(&buf))
    }

    pub fn hashes(&self) -> (String, u64) {
        match self {
            Content::Bytes(b) => {
                let mut crc = Crc64::new();
                crc.update(b);
                (crate::crypto::sha1_upper(b), crc.finish())
            }
            Content::Pattern(p) => p.hashes(),
        }
    }
}

impl emukit::ByteSource for Content {
    fn read_at(&self, offset: u64, buf: &mut [u8]) {
        Content::read_at(self, offset, buf)
    }
}
