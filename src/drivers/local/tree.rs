//! The served folder as an open directory handle.
//!
//! Every open, create, rename, remove, listing and stat is resolved by the kernel
//! relative to that handle, so a folder swapped for a symbolic link between two calls
//! cannot lead anywhere the mount does not allow:
//!
//! - `follow_symlinks = false`: `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`
//!   (Linux 5.6+), else a walk of `openat(…, O_NOFOLLOW)` one component at a time. A
//!   link anywhere on the path is "not found", as links are invisible in this mode.
//! - `follow_symlinks = true`: paths are opened relative to the root and links are
//!   followed (also out of the root, as documented). Changes act on the last name
//!   itself: removing or renaming a link removes or renames the link, and a recursive
//!   removal never descends through one.
//!
//! Everything here blocks; the driver runs it on the blocking pool.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

pub use crate::vfs::spool::TMP_PREFIX;

/// Deepest folder tree a recursive copy or removal walks (one open handle per level).
const MAX_DEPTH: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Link,
    Other,
}

/// What `stat` says about one name.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub kind: Kind,
    pub size: u64,
    pub modified: SystemTime,
    pub created: Option<SystemTime>,
    dev: u64,
    ino: u64,
}

/// Resolution errors that mean "nothing visible at this path": a symbolic link on the
/// way (ELOOP), a component that is not a folder (ENOTDIR), an attempt to leave the root
/// (EXDEV from RESOLVE_BENEATH).
fn unseen(e: io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(n) if n == Errno::LOOP.raw_os_error() || n == Errno::NOTDIR.raw_os_error() => not_found(),
        Some(n) if n == Errno::XDEV.raw_os_error() => not_found(),
        _ => e,
    }
}

fn not_found() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "not found")
}

fn is(e: &io::Error, errno: Errno) -> bool {
    e.raw_os_error() == Some(errno.raw_os_error())
}

/// Flags of a handle used only to reach names inside a folder.
#[cfg(target_os = "linux")]
const SEARCH: OFlags = OFlags::PATH;
#[cfg(not(target_os = "linux"))]
const SEARCH: OFlags = OFlags::RDONLY;

pub struct Tree {
    root: OwnedFd,
    follow: bool,
}

impl Tree {
    pub fn open(root: &Path, follow: bool) -> io::Result<Tree> {
        let root = rustix::fs::open(root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(Tree { root, follow })
    }

    /// Open `rel` (relative to the root, `""` = the root) with `flags`.
    fn resolve(&self, rel: &str, flags: OFlags) -> io::Result<OwnedFd> {
        // (openat2 refuses O_PATH with any flag but O_DIRECTORY, O_NOFOLLOW, O_CLOEXEC.)
        let flags = if flags.contains(SEARCH) && SEARCH != OFlags::RDONLY {
            flags | OFlags::CLOEXEC
        } else {
            flags | OFlags::CLOEXEC | OFlags::NOCTTY
        };
        let rel = if rel.is_empty() { "." } else { rel };
        if self.follow {
            return rustix::fs::openat(&self.root, rel, flags, Mode::empty()).map_err(|e| unseen(e.into()));
        }
        beneath(self.root.as_fd(), rel, flags).map_err(unseen)
    }

    /// A handle on folder `rel` for `*at` calls on names inside it.
    fn dir(&self, rel: &str) -> io::Result<OwnedFd> {
        self.resolve(rel, SEARCH | OFlags::DIRECTORY)
    }

    /// The folder holding `rel`, and `rel`'s last name.
    fn parent_of<'a>(&self, rel: &'a str) -> io::Result<(OwnedFd, &'a str)> {
        let (parent, name) = match rel.rfind('/') {
            Some(i) => (&rel[..i], &rel[i + 1..]),
            None => ("", rel),
        };
        if name.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no name"));
        }
        Ok((self.dir(parent)?, name))
    }

    /// What is at `name` in `dir` as the mount sees it: links are invisible unless
    /// followed (then described by their target; dangling ones are invisible too).
    fn visible_at(&self, dir: BorrowedFd<'_>, name: &str) -> io::Result<Option<Meta>> {
        let m = match stat_at(dir, name, false) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound || is(&e, Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(e),
        };
        if m.kind != Kind::Link {
            return Ok(Some(m));
        }
        if !self.follow {
            return Ok(None);
        }
        match stat_at(dir, name, true) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound || is(&e, Errno::LOOP) || is(&e, Errno::NOTDIR) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The root folder itself.
    pub fn root_meta(&self) -> io::Result<Meta> {
        stat_fd(self.root.as_fd())
    }

    /// The visible file or folder at `rel`.
    pub fn lookup(&self, rel: &str) -> io::Result<Option<Meta>> {
        if rel.is_empty() {
            return self.root_meta().map(Some);
        }
        let (dir, name) = match self.parent_of(rel) {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        self.visible_at(dir.as_fd(), name)
    }

    /// Every visible file and folder in folder `rel` (names that are not UTF-8 and our
    /// temp names are left out). Temp files older than `stale_before` are removed on
    /// the way: an upload that was killed left them.
    /// `make` turns each (name, meta) into the caller's item as it is read, so a big folder
    /// is held once, not once as pairs and again as entries.
    pub fn list<T>(
        &self,
        rel: &str,
        stale_before: SystemTime,
        mut make: impl FnMut(&str, Meta) -> T,
    ) -> io::Result<Vec<T>> {
        let fd = self.resolve(rel, OFlags::RDONLY | OFlags::DIRECTORY)?;
        let at = fd.try_clone()?;
        let mut out = Vec::new();
        for de in rustix::fs::Dir::new(fd)? {
            let de = de?;
            let Ok(name) = de.file_name().to_str() else {
                tracing::debug!("skipping a name that is not UTF-8");
                continue;
            };
            if name == "." || name == ".." {
                continue;
            }
            if name.starts_with(TMP_PREFIX) {
                remove_if_stale(at.as_fd(), name, stale_before);
                continue;
            }
            match self.visible_at(at.as_fd(), name) {
                Ok(Some(m)) if matches!(m.kind, Kind::File | Kind::Dir) => out.push(make(name, m)),
                Ok(_) => {}
                Err(e) => tracing::debug!(name, "skipping: {e}"),
            }
        }
        Ok(out)
    }

    /// Our temp files in the root folder older than `before`; returns how many went.
    pub fn remove_stale_temps(&self, before: SystemTime) -> io::Result<usize> {
        let at = self.root.try_clone()?;
        let mut n = 0;
        for de in rustix::fs::Dir::read_from(&self.root)? {
            let de = de?;
            if let Ok(name) = de.file_name().to_str() {
                if name.starts_with(TMP_PREFIX) && remove_if_stale(at.as_fd(), name, before) {
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// File `rel` opened for reading (never a FIFO or device: it is opened without
    /// blocking and refused unless it is a regular file).
    pub fn open_file(&self, rel: &str) -> io::Result<File> {
        let f = File::from(self.resolve(rel, OFlags::RDONLY | OFlags::NONBLOCK)?);
        if !f.metadata()?.is_file() {
            return Err(not_found());
        }
        Ok(f)
    }

    pub fn mkdir(&self, parent: &str, name: &str, mode: Option<u32>) -> io::Result<Meta> {
        let p = self.dir(parent)?;
        rustix::fs::mkdirat(&p, name, Mode::from_raw_mode(0o777))?;
        if let Some(mode) = mode {
            let d = rustix::fs::openat(&p, name, DIR_NOFOLLOW, Mode::empty())?;
            rustix::fs::fchmod(&d, Mode::from_raw_mode(mode))?;
        }
        stat_at(p.as_fd(), name, false)
    }

    /// Move `from` to `to_parent/to_name`. An existing file (or link) at the target is
    /// replaced atomically by a file; an existing folder is never replaced.
    pub fn rename(&self, from: &str, to_parent: &str, to_name: &str) -> io::Result<Meta> {
        let (fp, fname) = self.parent_of(from)?;
        let src = stat_at(fp.as_fd(), fname, false)?;
        if src.kind == Kind::Link && !self.follow {
            return Err(not_found());
        }
        let tp = self.dir(to_parent)?;
        match rename_noreplace(fp.as_fd(), fname, tp.as_fd(), to_name) {
            Ok(()) => return stat_at(tp.as_fd(), to_name, false),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let dst = stat_at(tp.as_fd(), to_name, false)?;
        if dst.kind == Kind::Dir || src.kind == Kind::Dir {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "the target exists"));
        }
        rustix::fs::renameat(&fp, fname, &tp, to_name)?;
        stat_at(tp.as_fd(), to_name, false)
    }

    /// Copy file `from` to `to_parent/to_name` through a temp file in the target folder
    /// (data and mtime synced first), replacing an existing file there atomically.
    pub fn copy_file(&self, from: &str, to_parent: &str, to_name: &str, mode: u32) -> io::Result<Meta> {
        let src = self.open_file(from)?;
        let modified = src.metadata()?.modified()?;
        let tp = self.dir(to_parent)?;
        refuse_folder_at(tp.as_fd(), to_name)?;
        let (tmp, mut out) = create_temp(tp.as_fd())?;
        let r = (|| {
            io::copy(&mut &src, &mut out)?;
            finish_file(&out, mode, Some(modified))?;
            rustix::fs::renameat(&tp, tmp.as_str(), &tp, to_name)?;
            Ok(())
        })();
        if let Err(e) = r {
            let _ = rustix::fs::unlinkat(&tp, tmp.as_str(), AtFlags::empty());
            return Err(e);
        }
        stat_at(tp.as_fd(), to_name, false)
    }

    /// Copy folder `from` with everything in it to the new folder `to_parent/to_name`.
    pub fn copy_tree(&self, from: &str, to_parent: &str, to_name: &str, modes: Modes) -> io::Result<Meta> {
        let src = self.resolve(from, OFlags::RDONLY | OFlags::DIRECTORY)?;
        let tp = self.dir(to_parent)?;
        rustix::fs::mkdirat(&tp, to_name, Mode::from_raw_mode(0o777))?;
        let dst = rustix::fs::openat(&tp, to_name, DIR_NOFOLLOW, Mode::empty())?;
        if let Some(m) = modes.dir {
            rustix::fs::fchmod(&dst, Mode::from_raw_mode(m))?;
        }
        let top = stat_fd(src.as_fd())?;
        let mut ancestors = vec![(top.dev, top.ino)];
        self.copy_dir(src, dst.as_fd(), modes, &mut ancestors)?;
        stat_at(tp.as_fd(), to_name, false)
    }

    fn copy_dir(
        &self,
        src: OwnedFd,
        dst: BorrowedFd<'_>,
        modes: Modes,
        ancestors: &mut Vec<(u64, u64)>,
    ) -> io::Result<()> {
        if ancestors.len() > MAX_DEPTH {
            return Err(io::Error::other("folder tree too deep to copy"));
        }
        let at = src.try_clone()?;
        let nofollow = if self.follow { OFlags::empty() } else { OFlags::NOFOLLOW };
        for de in rustix::fs::Dir::new(src)? {
            let de = de?;
            let name = de.file_name();
            let bytes = name.to_bytes();
            if bytes == b"." || bytes == b".." || bytes.starts_with(TMP_PREFIX.as_bytes()) {
                continue;
            }
            let Some(m) = self.visible_at_c(at.as_fd(), name)? else {
                continue;
            };
            match m.kind {
                Kind::Dir => {
                    if ancestors.contains(&(m.dev, m.ino)) {
                        tracing::debug!("not copying a link back to a folder above it");
                        continue;
                    }
                    let s =
                        rustix::fs::openat(&at, name, OFlags::RDONLY | OFlags::DIRECTORY | nofollow, Mode::empty())?;
                    rustix::fs::mkdirat(dst, name, Mode::from_raw_mode(0o777))?;
                    let d = rustix::fs::openat(dst, name, DIR_NOFOLLOW, Mode::empty())?;
                    if let Some(mode) = modes.dir {
                        rustix::fs::fchmod(&d, Mode::from_raw_mode(mode))?;
                    }
                    ancestors.push((m.dev, m.ino));
                    self.copy_dir(s, d.as_fd(), modes, ancestors)?;
                    ancestors.pop();
                }
                Kind::File => {
                    let s = File::from(rustix::fs::openat(
                        &at,
                        name,
                        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | nofollow,
                        Mode::empty(),
                    )?);
                    if !s.metadata()?.is_file() {
                        continue;
                    }
                    let mut d = File::from(rustix::fs::openat(
                        dst,
                        name,
                        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o600),
                    )?);
                    io::copy(&mut &s, &mut d)?;
                    finish_file(&d, modes.file, Some(m.modified))?;
                }
                Kind::Link | Kind::Other => {}
            }
        }
        Ok(())
    }

    fn visible_at_c(&self, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Option<Meta>> {
        match name.to_str() {
            Ok(s) => self.visible_at(dir, s),
            // Not UTF-8: not visible to clients, but part of the folder being copied.
            Err(_) => match stat_at_c(dir, name, false) {
                Ok(m) if m.kind != Kind::Link => Ok(Some(m)),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// Remove `rel`: a file, a link (the link itself, never its target) or a folder
    /// with everything in it (never descending through a link).
    pub fn remove(&self, rel: &str) -> io::Result<()> {
        let (p, name) = self.parent_of(rel)?;
        let m = stat_at(p.as_fd(), name, false)?;
        match m.kind {
            Kind::Link if !self.follow => Err(not_found()),
            Kind::Dir => remove_tree(p.as_fd(), name.as_bytes(), 0),
            _ => Ok(rustix::fs::unlinkat(&p, name, AtFlags::empty())?),
        }
    }

    /// Move the spooled upload at `src` (a file this process wrote) into place as
    /// `parent/name`, with `mode` and `mtime`, replacing an existing file atomically.
    pub fn install(
        &self,
        src: &Path,
        parent: &str,
        name: &str,
        mode: u32,
        mtime: Option<SystemTime>,
    ) -> io::Result<Meta> {
        let f = File::from(rustix::fs::open(src, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?);
        finish_file(&f, mode, mtime)?;
        let p = self.dir(parent)?;
        refuse_folder_at(p.as_fd(), name)?;
        match rustix::fs::renameat(rustix::fs::CWD, src, &p, name) {
            Ok(()) => {}
            Err(Errno::XDEV) => {
                // The target folder is on another file system: copy next to it first.
                let (tmp, mut out) = create_temp(p.as_fd())?;
                let r = (|| {
                    io::copy(&mut &f, &mut out)?;
                    finish_file(&out, mode, Some(f.metadata()?.modified()?))?;
                    rustix::fs::renameat(&p, tmp.as_str(), &p, name)?;
                    Ok(())
                })();
                if let Err(e) = r {
                    let _ = rustix::fs::unlinkat(&p, tmp.as_str(), AtFlags::empty());
                    return Err(e);
                }
            }
            Err(e) => return Err(e.into()),
        }
        stat_at(p.as_fd(), name, false)
    }

    /// Set the modification time of file `rel` (folders: nothing to do).
    pub fn set_mtime(&self, rel: &str, t: SystemTime) -> io::Result<()> {
        let (p, name) = self.parent_of(rel)?;
        let m = self.visible_at(p.as_fd(), name)?.ok_or_else(not_found)?;
        if m.kind == Kind::Dir {
            return Ok(());
        }
        let flags = if self.follow { AtFlags::empty() } else { AtFlags::SYMLINK_NOFOLLOW };
        let times = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_OMIT },
            last_modification: timespec(t),
        };
        Ok(rustix::fs::utimensat(&p, name, &times, flags)?)
    }
}

/// Modes of files and folders the driver creates (`None`: the umask decides).
#[derive(Debug, Clone, Copy)]
pub struct Modes {
    pub file: u32,
    pub dir: Option<u32>,
}

const DIR_NOFOLLOW: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

#[cfg(target_os = "linux")]
mod openat2_state {
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Cleared when the kernel (or a seccomp filter) refuses `openat2`.
    static AVAILABLE: AtomicBool = AtomicBool::new(true);

    pub fn available() -> bool {
        AVAILABLE.load(Ordering::Relaxed)
    }

    pub fn unavailable() {
        if AVAILABLE.swap(false, Ordering::Relaxed) {
            tracing::info!("openat2 is not available: resolving local paths one component at a time");
        }
    }

    #[cfg(test)]
    pub fn force(on: bool) {
        AVAILABLE.store(on, Ordering::Relaxed);
    }
}

/// Open `rel` below `root` without ever passing through a symbolic link.
fn beneath(root: BorrowedFd<'_>, rel: &str, flags: OFlags) -> io::Result<OwnedFd> {
    #[cfg(target_os = "linux")]
    if openat2_state::available() {
        use rustix::fs::ResolveFlags;
        let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        // EAGAIN: a rename elsewhere raced with the lookup; the kernel asks to retry.
        for _ in 0..8 {
            match rustix::fs::openat2(root, rel, flags, Mode::empty(), how) {
                Err(Errno::AGAIN) => continue,
                Err(Errno::NOSYS | Errno::PERM) => {
                    openat2_state::unavailable();
                    break;
                }
                r => return Ok(r?),
            }
        }
        if openat2_state::available() {
            return Err(Errno::AGAIN.into());
        }
    }
    walk(root, rel, flags)
}

/// `beneath` for kernels without `openat2`: one `openat(O_NOFOLLOW)` per component.
/// Names never contain `/`, `.` or `..` (the driver checks them), so every step stays
/// below the folder opened before it.
fn walk(root: BorrowedFd<'_>, rel: &str, flags: OFlags) -> io::Result<OwnedFd> {
    if rel == "." {
        return Ok(rustix::fs::openat(root, ".", flags, Mode::empty())?);
    }
    let mut cur: Option<OwnedFd> = None;
    let mut parts = rel.split('/').peekable();
    while let Some(part) = parts.next() {
        if part.is_empty() || part == "." || part == ".." {
            return Err(not_found());
        }
        let dir = cur.as_ref().map(|f| f.as_fd()).unwrap_or(root);
        let fl = if parts.peek().is_none() {
            flags | OFlags::NOFOLLOW
        } else {
            SEARCH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
        };
        let fd = rustix::fs::openat(dir, part, fl, Mode::empty())?;
        // O_PATH with O_NOFOLLOW opens a final link itself rather than failing.
        if parts.peek().is_none()
            && fl.contains(SEARCH)
            && !fl.contains(OFlags::DIRECTORY)
            && stat_fd(fd.as_fd())?.kind == Kind::Link
        {
            return Err(Errno::LOOP.into());
        }
        cur = Some(fd);
    }
    cur.ok_or_else(not_found)
}

/// `renameat2(RENAME_NOREPLACE)`, or a check then `renameat` where the file system
/// cannot do it (the check then races, the no-replace rename does not).
fn rename_noreplace(fp: BorrowedFd<'_>, fname: &str, tp: BorrowedFd<'_>, tname: &str) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    match rustix::fs::renameat_with(fp, fname, tp, tname, rustix::fs::RenameFlags::NOREPLACE) {
        Ok(()) => return Ok(()),
        Err(Errno::INVAL | Errno::NOSYS | Errno::NOTSUP) => {}
        Err(e) => return Err(e.into()),
    }
    match stat_at(tp, tname, false) {
        Ok(_) => Err(io::Error::new(io::ErrorKind::AlreadyExists, "the target exists")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(rustix::fs::renameat(fp, fname, tp, tname)?),
        Err(e) => Err(e),
    }
}

/// A file must not be stored over a folder.
fn refuse_folder_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    match stat_at(dir, name, false) {
        Ok(m) if m.kind == Kind::Dir => Err(io::Error::new(io::ErrorKind::IsADirectory, "a folder has that name")),
        _ => Ok(()),
    }
}

/// A new, empty temp file in `dir`, only readable by us until `finish_file`.
fn create_temp(dir: BorrowedFd<'_>) -> io::Result<(String, File)> {
    use rand::Rng;
    for _ in 0..16 {
        let suffix: String =
            rand::thread_rng().sample_iter(&rand::distributions::Alphanumeric).take(12).map(char::from).collect();
        let name = format!("{TMP_PREFIX}{suffix}");
        match rustix::fs::openat(
            dir,
            name.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => return Ok((name, File::from(fd))),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::other("cannot find a free temp name"))
}

/// Give a written file its final mode and mtime and make it durable.
fn finish_file(f: &File, mode: u32, mtime: Option<SystemTime>) -> io::Result<()> {
    rustix::fs::fchmod(f, Mode::from_raw_mode(mode))?;
    if let Some(t) = mtime {
        f.set_modified(t)?;
    }
    f.sync_data()
}

/// Remove temp file `name` in `dir` if it is a plain file last written before `before`.
fn remove_if_stale(dir: BorrowedFd<'_>, name: &str, before: SystemTime) -> bool {
    match stat_at(dir, name, false) {
        Ok(m) if m.kind == Kind::File && m.modified < before => {
            match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
                Ok(()) => {
                    tracing::info!(name, "removed a temp file left by an interrupted upload");
                    true
                }
                Err(e) => {
                    tracing::debug!(name, "cannot remove a stale temp file: {e}");
                    false
                }
            }
        }
        _ => false,
    }
}

fn remove_tree(parent: BorrowedFd<'_>, name: &[u8], depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other("folder tree too deep to remove"));
    }
    let d = rustix::fs::openat(parent, name, DIR_NOFOLLOW, Mode::empty())?;
    let mut names = Vec::new();
    for de in rustix::fs::Dir::read_from(&d)? {
        let de = de?;
        let n = de.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(de.file_name().to_owned());
        }
    }
    for n in names {
        match stat_at_c(d.as_fd(), &n, false) {
            Ok(m) if m.kind == Kind::Dir => remove_tree(d.as_fd(), n.to_bytes(), depth + 1)?,
            Ok(_) => match rustix::fs::unlinkat(&d, n.as_c_str(), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)?)
}

fn timespec(t: SystemTime) -> rustix::fs::Timespec {
    let (sec, nsec) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let ns = d.subsec_nanos();
            if ns == 0 {
                (-(d.as_secs() as i64), 0)
            } else {
                (-(d.as_secs() as i64) - 1, 1_000_000_000 - ns)
            }
        }
    };
    rustix::fs::Timespec { tv_sec: sec, tv_nsec: nsec.into() }
}

fn system_time(sec: i64, nsec: u32) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::from_nanos(nsec.into())
    }
}

fn kind_of(mode: u32) -> Kind {
    match rustix::fs::FileType::from_raw_mode(mode as rustix::fs::RawMode) {
        rustix::fs::FileType::RegularFile => Kind::File,
        rustix::fs::FileType::Directory => Kind::Dir,
        rustix::fs::FileType::Symlink => Kind::Link,
        _ => Kind::Other,
    }
}

fn stat_at(dir: BorrowedFd<'_>, name: &str, follow: bool) -> io::Result<Meta> {
    stat_raw(dir, name, if follow { AtFlags::empty() } else { AtFlags::SYMLINK_NOFOLLOW })
}

fn stat_at_c(dir: BorrowedFd<'_>, name: &CStr, follow: bool) -> io::Result<Meta> {
    stat_raw(dir, name, if follow { AtFlags::empty() } else { AtFlags::SYMLINK_NOFOLLOW })
}

fn stat_fd(fd: BorrowedFd<'_>) -> io::Result<Meta> {
    stat_raw(fd, c"", AtFlags::EMPTY_PATH)
}

#[cfg(target_os = "linux")]
fn stat_raw<P: rustix::path::Arg>(dir: BorrowedFd<'_>, name: P, flags: AtFlags) -> io::Result<Meta> {
    use rustix::fs::StatxFlags;
    let s = rustix::fs::statx(dir, name, flags, StatxFlags::BASIC_STATS | StatxFlags::BTIME)?;
    let kind = kind_of(s.stx_mode.into());
    Ok(Meta {
        kind,
        size: if kind == Kind::Dir { 0 } else { s.stx_size },
        modified: system_time(s.stx_mtime.tv_sec, s.stx_mtime.tv_nsec),
        created: (s.stx_mask & StatxFlags::BTIME.bits() != 0)
            .then(|| system_time(s.stx_btime.tv_sec, s.stx_btime.tv_nsec)),
        dev: (u64::from(s.stx_dev_major) << 32) | u64::from(s.stx_dev_minor),
        ino: s.stx_ino,
    })
}

#[cfg(not(target_os = "linux"))]
fn stat_raw<P: rustix::path::Arg>(dir: BorrowedFd<'_>, name: P, flags: AtFlags) -> io::Result<Meta> {
    let s = rustix::fs::statat(dir, name, flags)?;
    let kind = kind_of(s.st_mode as u32);
    Ok(Meta {
        kind,
        size: if kind == Kind::Dir { 0 } else { s.st_size as u64 },
        modified: system_time(s.st_mtime as i64, s.st_mtime_nsec as u32),
        created: None,
        dev: s.st_dev as u64,
        ino: s.st_ino as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("root");
        let outside = base.path().join("outside");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(root.join("a/b/f.txt"), "inside").unwrap();
        std::fs::write(outside.join("f.txt"), "OUTSIDE").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("a/link")).unwrap();
        (base, root, outside)
    }

    fn read(t: &Tree, rel: &str) -> io::Result<String> {
        let mut s = String::new();
        io::Read::read_to_string(&mut t.open_file(rel)?, &mut s)?;
        Ok(s)
    }

    /// Both ways of resolving refuse a link anywhere on the path, and reach the rest.
    #[test]
    fn no_symlink_anywhere_on_the_path() {
        let (_base, root, _outside) = tree();
        let t = Tree::open(&root, false).unwrap();
        #[cfg(target_os = "linux")]
        let modes = [true, false];
        #[cfg(not(target_os = "linux"))]
        let modes = [false];
        for use_openat2 in modes {
            #[cfg(target_os = "linux")]
            openat2_state::force(use_openat2);
            assert_eq!(read(&t, "a/b/f.txt").unwrap(), "inside", "openat2={use_openat2}");
            for rel in ["a/link/f.txt", "a/link"] {
                let e = read(&t, rel).unwrap_err();
                assert_eq!(e.kind(), io::ErrorKind::NotFound, "{rel} openat2={use_openat2}: {e}");
                assert!(t.lookup(rel).unwrap().is_none(), "{rel} openat2={use_openat2}");
            }
            assert!(t.remove("a/link/f.txt").is_err());
            assert!(t.mkdir("a/link", "new", None).is_err());
        }
        #[cfg(target_os = "linux")]
        openat2_state::force(true);
        assert!(_outside.join("f.txt").exists());
        assert!(!_outside.join("new").exists());
    }

    #[test]
    fn following_links_removes_the_link_not_the_target() {
        let (_base, root, outside) = tree();
        let t = Tree::open(&root, true).unwrap();
        assert_eq!(read(&t, "a/link/f.txt").unwrap(), "OUTSIDE");
        assert_eq!(t.lookup("a/link").unwrap().unwrap().kind, Kind::Dir);
        t.remove("a/link").unwrap();
        assert!(outside.join("f.txt").exists(), "the link's target was emptied");
        assert!(std::fs::symlink_metadata(root.join("a/link")).is_err(), "the link is still there");
    }

    #[test]
    fn removing_a_folder_never_descends_through_a_link() {
        let (_base, root, outside) = tree();
        let t = Tree::open(&root, true).unwrap();
        t.remove("a").unwrap();
        assert!(!root.join("a").exists());
        assert_eq!(std::fs::read_to_string(outside.join("f.txt")).unwrap(), "OUTSIDE");
    }

    #[test]
    fn timespecs_round_trip_before_and_after_1970() {
        for t in [UNIX_EPOCH + Duration::new(5, 7), UNIX_EPOCH - Duration::new(5, 7), UNIX_EPOCH] {
            let ts = timespec(t);
            assert_eq!(system_time(ts.tv_sec, ts.tv_nsec as u32), t);
        }
    }
}
