//! Rapid-upload hashes (ref §7.1–7.2) and part sizing (§7.3), for both families.
//!
//! - `pre_hash`: SHA-1 of the first `min(1024, size)` bytes, lower-case hex;
//! - `content_hash`: SHA-1 of the whole file, upper-case hex (`content_hash_name: "sha1"`);
//! - `proof_code` v1: 8 bytes of the file at an offset derived from the MD5 of the access
//!   token that authorizes *this* request, standard base64 (empty for an empty file).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use base64::Engine;
use md5::Digest as _;

/// Bytes the pre-hash covers (ref §7.1).
pub const PRE_HASH_BYTES: u64 = 1024;

/// Most parts one upload may have (ref §7.3: "part count can not over 10000").
pub const MAX_PARTS: u64 = 10_000;

/// Part size the consumer clients use (AList, aligo: 10 MiB, ref §7.3).
pub const DEFAULT_PART_SIZE: u64 = 10 * 1024 * 1024;

/// Smallest part the service takes (all parts but the last, ref §7.3: 100 KB).
pub const MIN_PART_SIZE: u64 = 100 * 1024;

/// The `proof_code` offset: the first 16 hex digits of MD5(token) as an unsigned
/// 64-bit number, modulo `size` (0 for an empty file). Often ≥ 2⁶³: unsigned, not i64.
pub fn proof_offset(access_token: &str, size: u64) -> u64 {
    if size == 0 {
        return 0;
    }
    let md5 = md5::Md5::digest(access_token.as_bytes());
    let v = u64::from_be_bytes(md5[..8].try_into().expect("8 bytes"));
    v % size
}

/// The range `[offset, min(offset + 8, size))` the proof covers.
pub fn proof_range(access_token: &str, size: u64) -> (u64, u64) {
    let start = proof_offset(access_token, size);
    (start, (start + 8).min(size))
}

/// `proof_code` v1 of content held in memory.
pub fn proof_code(access_token: &str, data: &[u8]) -> String {
    let (a, b) = proof_range(access_token, data.len() as u64);
    base64::engine::general_purpose::STANDARD.encode(&data[a as usize..b as usize])
}

/// `proof_code` v1 of the first `size` bytes of a file (at most 8 bytes are read, with
/// blocking I/O: the call is tiny and runs per request attempt, with that attempt's
/// token).
pub fn proof_code_file(path: &Path, size: u64, access_token: &str) -> std::io::Result<String> {
    let (a, b) = proof_range(access_token, size);
    let mut buf = vec![0u8; (b - a) as usize];
    if !buf.is_empty() {
        let mut f = std::fs::File::open(path)?;
        f.seek(SeekFrom::Start(a))?;
        f.read_exact(&mut buf)?;
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(&buf))
}

/// `pre_hash` of content held in memory (lower-case hex).
pub fn pre_hash(data: &[u8]) -> String {
    let n = data.len().min(PRE_HASH_BYTES as usize);
    hex::encode(sha1::Sha1::digest(&data[..n]))
}

/// `pre_hash` of a file of `size` bytes.
pub async fn pre_hash_file(path: &Path, size: u64) -> std::io::Result<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; size.min(PRE_HASH_BYTES) as usize];
    let mut f = tokio::fs::File::open(path).await?;
    f.read_exact(&mut buf).await?;
    Ok(pre_hash(&buf))
}

/// How a file is cut into parts: all of `part_size` bytes except the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlan {
    pub part_size: u64,
    /// At least 1: an empty file still gets one part (ref §7.3), which is never sent.
    pub count: u64,
}

impl PartPlan {
    /// `preferred` bytes per part (10 MiB if 0), grown in whole MiB until the file fits in
    /// 10 000 parts; never below 100 KB.
    pub fn new(size: u64, preferred: u64) -> PartPlan {
        const MIB: u64 = 1024 * 1024;
        let mut part_size = if preferred == 0 { DEFAULT_PART_SIZE } else { preferred.max(MIN_PART_SIZE) };
        if size.div_ceil(part_size) > MAX_PARTS {
            part_size = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
        }
        PartPlan { part_size, count: size.div_ceil(part_size).max(1) }
    }

    /// 1-based part numbers.
    pub fn numbers(&self) -> Vec<u64> {
        (1..=self.count).collect()
    }

    /// Byte range `(offset, len)` of part `n` (1-based) of a `size`-byte file.
    pub fn range(&self, n: u64, size: u64) -> (u64, u64) {
        let start = (n - 1) * self.part_size;
        (start, self.part_size.min(size.saturating_sub(start)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn vectors() -> Value {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/aliyundrive_proof_code_vectors.json");
        serde_json::from_slice(&std::fs::read(p).expect("proof_code vectors")).unwrap()
    }

    fn content(file: &Value) -> Vec<u8> {
        let size = file["size"].as_u64().unwrap() as usize;
        match file["generator"].as_str().unwrap() {
            "pattern31x7" => (0..size).map(|i| ((i * 31 + 7) % 256) as u8).collect(),
            "literal" => hex::decode(file["hex"].as_str().unwrap()).unwrap(),
            g => panic!("unknown generator {g}"),
        }
    }

    #[test]
    fn proof_code_pre_hash_and_content_hash_match_every_vector() {
        let v = vectors();
        let cases = v["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 50);
        let dir = tempfile::tempdir().unwrap();
        for (i, c) in cases.iter().enumerate() {
            let token = c["access_token"].as_str().unwrap();
            let data = content(&c["file"]);
            let size = data.len() as u64;
            assert_eq!(proof_offset(token, size), c["offset"].as_u64().unwrap(), "case {i} offset");
            let want = c["proof_code"].as_str().unwrap();
            assert_eq!(proof_code(token, &data), want, "case {i} proof_code");
            let path = dir.path().join(format!("f{i}"));
            std::fs::write(&path, &data).unwrap();
            assert_eq!(proof_code_file(&path, size, token).unwrap(), want, "case {i} proof_code from a file");
            assert_eq!(pre_hash(&data), c["pre_hash_sha1_first1024_lower"].as_str().unwrap(), "case {i} pre_hash");
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            assert_eq!(rt.block_on(pre_hash_file(&path, size)).unwrap(), pre_hash(&data));
            assert_eq!(
                hex::encode_upper(sha1::Sha1::digest(&data)),
                c["content_hash_sha1_upper"].as_str().unwrap(),
                "case {i} content_hash"
            );
            let parts = c["part_count_at_10MiB"].as_u64().unwrap();
            assert_eq!(PartPlan::new(size, 0).count, parts.max(1), "case {i} part count");
        }
    }

    #[test]
    fn part_plans_stay_within_the_limits() {
        let p = PartPlan::new(50 * 1024 * 1024, 0);
        assert_eq!((p.part_size, p.count), (DEFAULT_PART_SIZE, 5));
        assert_eq!(p.range(5, 50 * 1024 * 1024), (40 * 1024 * 1024, 10 * 1024 * 1024));
        let p = PartPlan::new(21 * 1024 * 1024 + 77, 0);
        assert_eq!(p.count, 3);
        assert_eq!(p.range(3, 21 * 1024 * 1024 + 77), (20 * 1024 * 1024, 1024 * 1024 + 77));
        let big = 200 * 1024 * 1024 * 1024u64; // 200 GiB
        let p = PartPlan::new(big, 0);
        assert!(p.count <= MAX_PARTS && p.part_size % (1024 * 1024) == 0, "{p:?}");
        assert_eq!(p.count, big.div_ceil(p.part_size));
        assert_eq!(PartPlan::new(0, 0).count, 1);
        assert_eq!(PartPlan::new(10, 1).part_size, MIN_PART_SIZE);
    }
}
