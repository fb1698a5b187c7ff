//! Content hashes of local files, kept on disk so that a file is read once: copies to a
//! drive with rapid upload need a file's SHA-1 before its bytes, and reading a 50 GB
//! film for it again on every copy would be most of the copy's cost.
//!
//! An entry is keyed by the file's identity (device, inode) and valid while its
//! [`Stamp`] (size, modification and change times, in nanoseconds) is unchanged: any
//! write changes the modification and change times, a `touch -d` back to the old time
//! still changes the change time, and a file replaced by a rename is another inode.
//! A file modified within [`RACY`] of being hashed is hashed but not remembered: the
//! kernel takes file times from a coarse clock, so a second write in the same tick
//! could leave the times as they were (git calls these entries "racily clean").
//!
//! On disk: an append-only log of one line per entry, each line ending in a CRC-32 of
//! the rest, so a line torn by a crash is recognised and dropped (its file is simply
//! hashed again). When the log has grown well past the live entries, or held damaged
//! lines, it is rewritten atomically (`state::write_atomic`). At most `max` entries are
//! kept; beyond that the least recently used tenth goes.
//!
//! Everything here blocks (file I/O under a mutex); callers run it on the blocking pool.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::types::Hashes;

/// Files modified this close to the moment they were hashed are not remembered.
pub const RACY: Duration = Duration::from_secs(2);

/// Entries kept when the caller does not say (about 100 bytes each in memory).
pub const DEFAULT_MAX: usize = 32_768;

/// A file's identity on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub dev: u64,
    pub ino: u64,
}

/// What must be unchanged for a remembered hash to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    /// Modification time, nanoseconds since the epoch (negative before it).
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i64,
}

#[cfg(unix)]
impl Stamp {
    /// The key and stamp of an open file's metadata.
    pub fn of(m: &std::fs::Metadata) -> (Key, Stamp) {
        use std::os::unix::fs::MetadataExt;
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        (
            Key { dev: m.dev(), ino: m.ino() },
            Stamp { size: m.size(), mtime_ns: ns(m.mtime(), m.mtime_nsec()), ctime_ns: ns(m.ctime(), m.ctime_nsec()) },
        )
    }
}

impl Stamp {
    /// Whether a file with this stamp, hashed from `hashed_at` on, may have been written
    /// again without its times changing.
    pub fn racy(&self, hashed_at: SystemTime) -> bool {
        let at = match hashed_at.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos().min(i64::MAX as u128) as i64,
            Err(_) => return true,
        };
        let margin = RACY.as_nanos() as i64;
        self.mtime_ns >= at.saturating_sub(margin) || self.ctime_ns >= at.saturating_sub(margin)
    }
}

struct Item {
    stamp: Stamp,
    sha1: String,
    md5: Option<String>,
    /// Last use, for eviction.
    used: u64,
}

#[derive(Default)]
struct Inner {
    loaded: bool,
    map: HashMap<Key, Item>,
    log: Option<std::fs::File>,
    /// Lines in the log file (live or not).
    lines: usize,
    clock: u64,
}

pub struct HashCache {
    path: PathBuf,
    max: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for HashCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashCache").field("path", &self.path).finish_non_exhaustive()
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// One log line without its newline: the fields, then the CRC-32 of everything before it.
fn line(key: Key, it: &Item) -> String {
    let body = format!(
        "1 {} {} {} {} {} {} {}",
        key.dev,
        key.ino,
        it.stamp.size,
        it.stamp.mtime_ns,
        it.stamp.ctime_ns,
        it.sha1,
        it.md5.as_deref().unwrap_or("-")
    );
    let crc = crc32fast::hash(body.as_bytes());
    format!("{body} {crc:08x}")
}

fn parse(l: &str) -> Option<(Key, Stamp, String, Option<String>)> {
    let (body, crc) = l.rsplit_once(' ')?;
    if u32::from_str_radix(crc, 16).ok()? != crc32fast::hash(body.as_bytes()) || crc.len() != 8 {
        return None;
    }
    let f: Vec<&str> = body.split(' ').collect();
    if f.len() != 8 || f[0] != "1" || !is_hex(f[6], 40) || !(f[7] == "-" || is_hex(f[7], 32)) {
        return None;
    }
    let key = Key { dev: f[1].parse().ok()?, ino: f[2].parse().ok()? };
    let stamp = Stamp { size: f[3].parse().ok()?, mtime_ns: f[4].parse().ok()?, ctime_ns: f[5].parse().ok()? };
    Some((key, stamp, f[6].to_string(), (f[7] != "-").then(|| f[7].to_string())))
}

impl HashCache {
    /// A cache kept in the file at `path` (read on first use), with at most `max` entries.
    pub fn new(path: PathBuf, max: usize) -> HashCache {
        HashCache { path, max: max.max(16), inner: Mutex::new(Inner::default()) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        let mut g = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !g.loaded {
            g.loaded = true;
            self.load(&mut g);
        }
        g
    }

    fn load(&self, g: &mut Inner) {
        let text = match std::fs::read(&self.path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                tracing::warn!(file = %self.path.display(), "cannot read the hash cache, starting empty: {e}");
                String::new()
            }
        };
        let mut bad = 0;
        for l in text.split('\n').filter(|l| !l.is_empty()) {
            g.lines += 1;
            match parse(l) {
                Some((key, stamp, sha1, md5)) => {
                    g.clock += 1;
                    let used = g.clock;
                    g.map.insert(key, Item { stamp, sha1, md5, used });
                }
                None => bad += 1,
            }
        }
        // A torn last line (no newline) would swallow the next append: rewrite.
        let torn = !text.is_empty() && !text.ends_with('\n');
        if bad > 0 || torn {
            tracing::info!(file = %self.path.display(), "hash cache: dropped {bad} damaged line(s)");
            self.compact(g);
        }
        if g.map.len() > self.max {
            self.evict(g);
        }
    }

    /// The remembered hashes of the file `key`, if its stamp is still `stamp`.
    pub fn get(&self, key: Key, stamp: Stamp) -> Option<Hashes> {
        let mut g = self.lock();
        g.clock += 1;
        let now = g.clock;
        let hit = match g.map.get_mut(&key) {
            Some(it) if it.stamp == stamp => {
                it.used = now;
                Some(Hashes { sha1: Some(it.sha1.clone()), md5: it.md5.clone() })
            }
            Some(_) => None,
            None => return None,
        };
        if hit.is_none() {
            // Changed since: forget it (the log keeps the old line until compaction).
            g.map.remove(&key);
        }
        hit
    }

    /// Remember the hashes (lowercase hex) of the file `key` as it is at `stamp`.
    pub fn put(&self, key: Key, stamp: Stamp, sha1: &str, md5: Option<&str>) {
        let (sha1, md5) = (sha1.to_ascii_lowercase(), md5.map(|m| m.to_ascii_lowercase()));
        if !is_hex(&sha1, 40) || md5.as_deref().is_some_and(|m| !is_hex(m, 32)) {
            return;
        }
        let mut g = self.lock();
        g.clock += 1;
        let item = Item { stamp, sha1, md5, used: g.clock };
        let text = line(key, &item);
        g.map.insert(key, item);
        if g.map.len() > self.max {
            self.evict(&mut g);
            return;
        }
        if g.lines > 2 * g.map.len() + 1024 {
            self.compact(&mut g);
            return;
        }
        self.append(&mut g, &text);
    }

    fn append(&self, g: &mut Inner, text: &str) {
        if g.log.is_none() {
            if let Some(dir) = self.path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let mut o = std::fs::OpenOptions::new();
            o.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
            match o.open(&self.path) {
                Ok(f) => g.log = Some(f),
                Err(e) => {
                    tracing::warn!(file = %self.path.display(), "cannot write the hash cache: {e}");
                    return;
                }
            }
        }
        // One write per line: appends of whole lines do not interleave.
        let r = g.log.as_mut().map(|f| f.write_all(format!("{text}\n").as_bytes()));
        match r {
            Some(Ok(())) => g.lines += 1,
            Some(Err(e)) => {
                tracing::warn!(file = %self.path.display(), "cannot write the hash cache: {e}");
                g.log = None;
            }
            None => {}
        }
    }

    /// Drop the least recently used tenth (and more, down to 90% of `max`), then rewrite.
    fn evict(&self, g: &mut Inner) {
        let keep = self.max - self.max / 10;
        if g.map.len() > keep {
            let mut uses: Vec<u64> = g.map.values().map(|i| i.used).collect();
            uses.sort_unstable();
            let cut = uses[g.map.len() - keep];
            g.map.retain(|_, i| i.used >= cut);
        }
        self.compact(g);
    }

    /// Rewrite the log with the live entries only, atomically.
    fn compact(&self, g: &mut Inner) {
        let mut items: Vec<(&Key, &Item)> = g.map.iter().collect();
        items.sort_by_key(|(_, i)| i.used);
        let mut out = String::with_capacity(items.len() * 120);
        for (k, i) in &items {
            out.push_str(&line(**k, i));
            out.push('\n');
        }
        g.log = None;
        match crate::state::write_atomic(&self.path, out.as_bytes()) {
            Ok(()) => g.lines = items.len(),
            Err(e) => tracing::warn!(file = %self.path.display(), "cannot rewrite the hash cache: {e}"),
        }
    }

    /// Entries held (for tests and logs).
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "a9993e364706816aba3e25717850c26c9cd0d89d";
    const B: &str = "84983e441c3bd26ebaae4aa1f95129e5e54670f1";

    fn st(size: u64, m: i64) -> Stamp {
        Stamp { size, mtime_ns: m, ctime_ns: m + 1 }
    }

    #[test]
    fn kept_across_reopen_and_invalidated_by_any_change() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h");
        let k = Key { dev: 1, ino: 2 };
        let c = HashCache::new(p.clone(), 100);
        assert!(c.get(k, st(3, 10)).is_none());
        c.put(k, st(3, 10), A, None);
        c.put(Key { dev: 1, ino: 3 }, st(4, 10), B, Some("900150983cd24fb0d6963f7d28e17f72"));
        drop(c);
        let c = HashCache::new(p.clone(), 100);
        assert_eq!(c.get(k, st(3, 10)).unwrap().sha1.as_deref(), Some(A));
        let h = c.get(Key { dev: 1, ino: 3 }, st(4, 10)).unwrap();
        assert_eq!(h.md5.as_deref(), Some("900150983cd24fb0d6963f7d28e17f72"));
        // Another size, mtime or ctime: not this content any more, and forgotten.
        assert!(c.get(k, Stamp { ctime_ns: 99, ..st(3, 10) }).is_none());
        assert!(c.get(k, st(3, 10)).is_none(), "a changed file's entry is dropped");
        assert!(c.get(Key { dev: 1, ino: 3 }, st(5, 10)).is_none());
    }

    #[test]
    fn a_torn_or_damaged_log_loses_only_its_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h");
        let c = HashCache::new(p.clone(), 100);
        for i in 0..5 {
            c.put(Key { dev: 1, ino: i }, st(i, 1), A, None);
        }
        drop(c);
        let mut text = std::fs::read_to_string(&p).unwrap();
        // Flip a digit of the third line's sha1, and tear the last line in half.
        let third = text.split('\n').nth(2).unwrap().to_string();
        text = text.replace(&third, &third.replacen("a9993", "a9994", 1));
        text.truncate(text.len() - 20);
        std::fs::write(&p, &text).unwrap();
        let c = HashCache::new(p.clone(), 100);
        let alive: Vec<u64> = (0..5).filter(|&i| c.get(Key { dev: 1, ino: i }, st(i, 1)).is_some()).collect();
        assert_eq!(alive, [0, 1, 3]);
        // Rewritten whole: a later append is a line of its own.
        c.put(Key { dev: 1, ino: 9 }, st(9, 1), B, None);
        drop(c);
        let c = HashCache::new(p, 100);
        assert_eq!(c.get(Key { dev: 1, ino: 9 }, st(9, 1)).unwrap().sha1.as_deref(), Some(B));
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn bounded_by_least_recent_use() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h");
        let c = HashCache::new(p.clone(), 20);
        for i in 0..20 {
            c.put(Key { dev: 0, ino: i }, st(i, 1), A, None);
        }
        // Entry 0 is used again, so it outlives 1, 2….
        assert!(c.get(Key { dev: 0, ino: 0 }, st(0, 1)).is_some());
        c.put(Key { dev: 0, ino: 100 }, st(100, 1), B, None);
        assert!(c.len() <= 20 && c.len() >= 16, "{}", c.len());
        assert!(c.get(Key { dev: 0, ino: 0 }, st(0, 1)).is_some());
        assert!(c.get(Key { dev: 0, ino: 1 }, st(1, 1)).is_none());
        assert!(c.get(Key { dev: 0, ino: 100 }, st(100, 1)).is_some());
        // The file holds what the memory holds.
        let n = c.len();
        drop(c);
        let lines = std::fs::read_to_string(&p).unwrap().lines().count();
        assert_eq!(lines, n);
        // Many rewrites of one entry do not grow the file without bound.
        let c = HashCache::new(p.clone(), 20);
        for i in 0..3000 {
            c.put(Key { dev: 0, ino: 0 }, st(0, i), A, None);
        }
        assert!(std::fs::read_to_string(&p).unwrap().lines().count() < 1100);
    }

    #[test]
    fn racy_stamps() {
        let now = SystemTime::now();
        let ns = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64;
        let old = ns(now - Duration::from_secs(3600));
        assert!(!Stamp { size: 1, mtime_ns: old, ctime_ns: old }.racy(now));
        assert!(Stamp { size: 1, mtime_ns: ns(now), ctime_ns: old }.racy(now));
        assert!(Stamp { size: 1, mtime_ns: old, ctime_ns: ns(now) - 1_000_000 }.racy(now));
    }
}
