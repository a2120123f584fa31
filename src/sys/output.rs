//! Writing secret files so that a reader sees the old content or the whole new content, never a
//! part, and never a file more open than requested.
//!
//! [`write_atomic`]: a temporary file in the same directory is created (`O_EXCL`, owner-only mode)
//! before any byte is written, given its owner, group and final mode, filled, fsynced, renamed
//! over the target, and the directory is fsynced. On any error the temporary file is removed and
//! the target is untouched. Owners and groups are numeric ids or names looked up in `/etc/passwd`
//! and `/etc/group` directly, so no NSS is needed in the initrd.

use std::ffi::{CStr, CString, OsStr};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Mode of directories this program creates (like `/run/secrets`): others may traverse, not list.
pub const DIR_MODE: u32 = 0o751;

/// Ownership and permissions of an output file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perms {
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl Perms {
    pub fn mode(mode: u32) -> Perms {
        Perms {
            mode,
            uid: None,
            gid: None,
        }
    }
}

/// The owner, group and mode of a file `send` or `render` writes: `--owner`/`--group` looked
/// up in `/etc/passwd` and `/etc/group` (no NSS), and a warning for a mode that lets every user
/// change the file (`what` names it, e.g. "the secret file").
pub fn file_perms(
    owner: Option<&str>,
    group: Option<&str>,
    mode: u32,
    what: &str,
) -> Result<Perms> {
    let (uid, gid) = resolve_ids(
        owner,
        group,
        Path::new("/etc/passwd"),
        Path::new("/etc/group"),
    )?;
    if mode & 0o002 != 0 {
        crate::sys::log::line(&format!(
            "warning: --mode {mode:04o} lets every user change {what}; use 0400 or 0440"
        ));
    }
    Ok(Perms { mode, uid, gid })
}

/// Resolves `--owner` / `--group` (names or numbers) using the given passwd and group files.
pub fn resolve_ids(
    owner: Option<&str>,
    group: Option<&str>,
    passwd: &Path,
    groups: &Path,
) -> Result<(Option<u32>, Option<u32>)> {
    let uid = owner
        .map(|o| lookup(o, passwd, "--owner", "user"))
        .transpose()?;
    let gid = group
        .map(|g| lookup(g, groups, "--group", "group"))
        .transpose()?;
    Ok((uid, gid))
}

/// Largest `/etc/passwd` or `/etc/group` read.
const MAX_DB: usize = 16 << 20;

/// A number, or the third field of the `name:` line of a passwd/group-format file. Lines are
/// matched as bytes: a line that is not UTF-8 (a legacy GECOS field) is only another line.
fn lookup(name: &str, db: &Path, flag: &str, what: &str) -> Result<u32> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(id);
    }
    let text = crate::sys::input::read_file(
        db,
        MAX_DB,
        &format!("{flag} {name:?}: {}", db.display()),
        &|e| Error::config(format!("{flag} {name:?}: cannot read {}", db.display())).with_io(e),
    )?;
    text.split(|&b| b == b'\n')
        .filter_map(|line| {
            let mut f = line.split(|&b| b == b':');
            let n = f.next()?;
            let id = std::str::from_utf8(f.nth(1)?).ok()?.parse::<u32>().ok()?;
            (n == name.as_bytes()).then_some(id)
        })
        .next()
        .ok_or_else(|| {
            Error::config(format!(
                "{flag} {name:?}: no such {what} in {} (use a name from there or a number)",
                db.display()
            ))
        })
}

/// The directory an output file goes into, opened by walking its path from `/` (or the
/// current directory) one component at a time without following symlinks (`O_NOFOLLOW`),
/// so that nobody who owns a directory on the way can point the write elsewhere by putting
/// a symlink where a directory was. A symlink on the way is followed only when the directory
/// holding it can be changed by root (or this program's own user) alone: then nobody else
/// can have planted it (`/run/secrets` of sops-nix is such a link). Every later step works
/// relative to this handle (`openat`, `renameat`, `linkat`), never by path again.
struct Dir {
    /// `O_PATH` handle of the directory.
    fd: OwnedFd,
}

/// Symlinks followed in one path at most (the kernel's own bound is 40).
const MAX_LINKS: u32 = 40;

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the path holds a NUL byte"))
}

fn last_err() -> io::Error {
    io::Error::last_os_error()
}

/// `openat(dir, name, flags)` as an owned descriptor.
fn open_at(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: i32,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    // SAFETY: `dir` is an open descriptor and `name` a NUL-terminated string, both valid for
    // the call; a non-negative result is a new descriptor that nobody else owns.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            libc::c_uint::from(mode),
        )
    };
    if fd < 0 {
        return Err(last_err());
    }
    // SAFETY: `fd` was just returned by openat and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn stat_fd(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: `st` is plain data that fstat fills completely on success; `fd` is open.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd.as_raw_fd(), &mut st) != 0 {
            return Err(last_err());
        }
        Ok(st)
    }
}

fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: as `stat_fd`; AT_SYMLINK_NOFOLLOW describes a symlink itself.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        ) != 0
        {
            return Err(last_err());
        }
        Ok(st)
    }
}

/// True when only root, or the user this program runs as, can change the directory.
fn trusted(st: &libc::stat) -> bool {
    // SAFETY: geteuid only reads the calling process's credentials.
    let euid = unsafe { libc::geteuid() };
    (st.st_uid == 0 || st.st_uid == euid) && st.st_mode & 0o022 == 0
}

impl Dir {
    /// Opens the directory `dir` as described at [`Dir`]. With `create`, missing directories
    /// are made with [`DIR_MODE`] and each one is said on stderr. A file or an untrusted
    /// symlink where a directory should be is an error naming it.
    fn open(dir: &Path, create: bool) -> io::Result<Dir> {
        let mut links = 0;
        let start = if dir.is_absolute() { "/" } else { "." };
        let root = open_at(
            at_cwd(),
            &c_name(OsStr::new(start))?,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )?;
        let fd = walk(root, dir, &mut PathBuf::from(start), create, &mut links)?;
        Ok(Dir { fd })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `AT_FDCWD` as a descriptor for `openat`'s first argument (the current directory).
fn at_cwd() -> BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is not a descriptor but the constant the *at calls read as "the current
    // directory"; it is only ever passed to them, never closed.
    unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}

/// Walks `rel` from `fd` (whose path, for messages, is `shown`), one component at a time.
fn walk(
    mut fd: OwnedFd,
    rel: &Path,
    shown: &mut PathBuf,
    create: bool,
    links: &mut u32,
) -> io::Result<OwnedFd> {
    use std::path::Component;
    for comp in rel.components() {
        let name: &OsStr = match comp {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => continue,
            Component::ParentDir => OsStr::new(".."),
            Component::Normal(n) => n,
        };
        shown.push(name);
        let c = c_name(name)?;
        fd = loop {
            match open_at(
                fd.as_fd(),
                &c,
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            ) {
                Ok(next) => break next,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {
                    match make_dir(fd.as_fd(), &c) {
                        Ok(made) => {
                            crate::sys::log::line(&format!(
                                "created the directory {} (mode {DIR_MODE:04o})",
                                shown.display()
                            ));
                            break made;
                        }
                        // Made by someone else meanwhile: open it as any other.
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(e)
                    if e.raw_os_error() == Some(libc::ENOTDIR)
                        || e.raw_os_error() == Some(libc::ELOOP) =>
                {
                    let st = stat_at(fd.as_fd(), &c)?;
                    if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
                        return Err(io::Error::other(format!(
                            "{} is not a directory (a file is in the way: remove it or choose another path)",
                            shown.display()
                        )));
                    }
                    if !trusted(&stat_fd(fd.as_fd())?) {
                        return Err(io::Error::other(format!(
                            "{} is a symlink in a directory that users other than root may change; refusing to follow it (another user could point it anywhere): use a path without it",
                            shown.display()
                        )));
                    }
                    *links += 1;
                    if *links > MAX_LINKS {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    let target = read_link_at(fd.as_fd(), &c)?;
                    let from = if target.is_absolute() {
                        open_at(
                            at_cwd(),
                            &c_name(OsStr::new("/"))?,
                            libc::O_PATH | libc::O_DIRECTORY,
                            0,
                        )?
                    } else {
                        fd
                    };
                    break walk(from, &target, shown, create, links)?;
                }
                Err(e) => return Err(e),
            }
        };
    }
    Ok(fd)
}

/// Makes the directory `name` in `dir` with [`DIR_MODE`] (whatever the umask) and opens it.
fn make_dir(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: an open descriptor and a NUL-terminated name, valid for the call.
    if unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o700) } != 0 {
        return Err(last_err());
    }
    let made = open_at(
        dir,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )?;
    // SAFETY: fchmod on a descriptor owned here.
    if unsafe { libc::fchmod(made.as_raw_fd(), DIR_MODE) } != 0 {
        return Err(last_err());
    }
    Ok(made)
}

fn read_link_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<PathBuf> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: `buf` is writable for its whole length, which is what is passed.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).map_err(|_| last_err())?;
    buf.truncate(n);
    Ok(PathBuf::from(std::ffi::OsString::from_vec(buf)))
}

/// The directory and the file name of an output path.
fn split(path: &Path) -> io::Result<(PathBuf, &OsStr)> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name))
}

/// A temporary file next to the target; removed on drop unless kept.
struct Temp<'a> {
    dir: BorrowedFd<'a>,
    name: CString,
    keep: bool,
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        if !self.keep {
            // SAFETY: an open descriptor and a NUL-terminated name.
            unsafe { libc::unlinkat(self.dir.as_raw_fd(), self.name.as_ptr(), 0) };
        }
    }
}

/// Creates the temporary file in `dir`, fully written, synced and with its final owner and mode.
fn write_temp<'a>(dir: &'a Dir, name: &OsStr, data: &[u8], perms: Perms) -> io::Result<Temp<'a>> {
    let mut suffix = [0u8; 8];
    getrandom::getrandom(&mut suffix).map_err(|e| io::Error::other(e.to_string()))?;
    let hex: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{hex}"));
    let tmp = c_name(&tmp_name)?;
    // Owner-only bits at creation: never wider than the final mode, whatever the umask.
    let fd = open_at(
        dir.fd(),
        &tmp,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
        (perms.mode & 0o700) as libc::mode_t,
    )?;
    let temp = Temp {
        dir: dir.fd(),
        name: tmp,
        keep: false,
    };
    let mut file = File::from(fd);
    if perms.uid.is_some() || perms.gid.is_some() {
        std::os::unix::fs::fchown(&file, perms.uid, perms.gid)?;
    }
    file.set_permissions(fs::Permissions::from_mode(perms.mode))?;
    file.write_all(data)?;
    file.sync_all()?;
    Ok(temp)
}

fn sync_dir(dir: &Dir) -> io::Result<()> {
    let fd = open_at(dir.fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    File::from(fd).sync_all()
}

/// Replaces `path` atomically with `data`. The old file, if any, is untouched on error. Once
/// the rename is done the new value is in place whatever follows: a failure to sync the
/// directory then is not an error but the returned [`Unsynced`] (the new value may not survive
/// a crash). The directory must exist; it is reached as [`Dir`] says.
pub fn write_atomic(path: &Path, data: &[u8], perms: Perms) -> io::Result<Option<Unsynced>> {
    let (dir, name) = split(path)?;
    let dir = Dir::open(&dir, false)?;
    replace_in(&dir, name, data, perms)
}

fn replace_in(dir: &Dir, name: &OsStr, data: &[u8], perms: Perms) -> io::Result<Option<Unsynced>> {
    let mut temp = write_temp(dir, name, data, perms)?;
    let target = c_name(name)?;
    // SAFETY: open descriptors and NUL-terminated names, valid for the call.
    let r = unsafe {
        libc::renameat(
            dir.fd().as_raw_fd(),
            temp.name.as_ptr(),
            dir.fd().as_raw_fd(),
            target.as_ptr(),
        )
    };
    if r != 0 {
        return Err(last_err());
    }
    temp.keep = true;
    let unsynced = sync_dir(dir).err().map(Unsynced);
    remove_stale_temps(dir, name);
    Ok(unsynced)
}

/// The directory sync that failed after a rename: the new file is in place, but a crash may
/// bring the old one back.
#[derive(Debug)]
pub struct Unsynced(pub io::Error);

/// A writer killed between creating its temporary file and the rename leaves the file behind
/// (owner-only, never at the output path). Remove such leftovers of this output once they are
/// old enough that no live writer can own them.
fn remove_stale_temps(dir: &Dir, name: &OsStr) {
    const STALE: std::time::Duration = std::time::Duration::from_secs(600);
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".tmp-");
    let prefix = prefix.as_encoded_bytes();
    // The directory listed through its handle (never by path again).
    let Ok(entries) = fs::read_dir(format!("/proc/self/fd/{}", dir.fd().as_raw_fd())) else {
        return;
    };
    let now = std::time::SystemTime::now();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let bytes = file_name.as_encoded_bytes();
        if !(bytes.len() == prefix.len() + 16 && bytes.starts_with(prefix)) {
            continue;
        }
        let Ok(c) = c_name(&file_name) else { continue };
        let Ok(st) = stat_at(dir.fd(), &c) else {
            continue;
        };
        let modified = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(u64::try_from(st.st_mtime).unwrap_or(0));
        if now.duration_since(modified).is_ok_and(|age| age >= STALE) {
            // SAFETY: an open descriptor and a NUL-terminated name.
            unsafe { libc::unlinkat(dir.fd().as_raw_fd(), c.as_ptr(), 0) };
        }
    }
}

/// Like [`write_atomic`] but fails with `AlreadyExists` instead of replacing an existing file.
/// Once the link is made the file is in place: a failed directory sync is the returned
/// [`Unsynced`], not an error.
pub fn write_new(path: &Path, data: &[u8], perms: Perms) -> io::Result<Option<Unsynced>> {
    let (dir, name) = split(path)?;
    let dir = Dir::open(&dir, false)?;
    let temp = write_temp(&dir, name, data, perms)?;
    let target = c_name(name)?;
    // SAFETY: open descriptors and NUL-terminated names; flags 0 does not follow a symlink.
    let r = unsafe {
        libc::linkat(
            dir.fd().as_raw_fd(),
            temp.name.as_ptr(),
            dir.fd().as_raw_fd(),
            target.as_ptr(),
            0,
        )
    };
    if r != 0 {
        return Err(last_err());
    }
    drop(temp);
    Ok(sync_dir(&dir).err().map(Unsynced))
}

/// Writes a secret file the one way every command does: walks to its directory as [`Dir`]
/// says (creating missing ones with [`DIR_MODE`], each said on stderr), replaces the file
/// atomically ([`write_atomic`]), and turns a failure into the error that names the path and
/// what to check. The old file, if any, is left as it was.
///
/// When only the directory sync after the rename fails, the new value is in place: that is
/// said in a warning, and the result is `Ok` (an error always means the old file is untouched).
pub fn save(path: &Path, data: &[u8], perms: Perms) -> Result<()> {
    save_if_changed(path, data, perms).map(|_| ())
}

/// What [`save_if_changed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// The file already held these bytes with this owner, group and mode: not touched (its
    /// timestamps and inode are the old ones).
    Unchanged,
    /// There was no file (or no regular file): it was written.
    Created,
    /// The bytes, owner, group or mode differed: the file was replaced atomically.
    Changed,
}

impl Saved {
    /// True when the file was written (created or changed).
    pub fn written(self) -> bool {
        self != Saved::Unchanged
    }
}

/// [`save`], unless `path` already is a regular file with exactly `data` and `perms` (owner
/// and group compared with the caller's ids when `perms` leaves them out): then nothing is
/// written and the file keeps its timestamps (stale temporary files of killed writers are
/// still removed, as [`write_atomic`] does). The one place "write only if changed" is
/// decided; change actions (`sys/systemctl.rs`) follow what it returns.
pub fn save_if_changed(path: &Path, data: &[u8], perms: Perms) -> Result<Saved> {
    let (dir, name) = split(path).map_err(|e| write_error(path, e))?;
    let dir = Dir::open(&dir, true).map_err(|e| write_error(path, e))?;
    let existed = match same_file(&dir, name, data, perms) {
        Some(true) => {
            // Nothing to write, but leftovers of killed writers go as they would on a write.
            remove_stale_temps(&dir, name);
            return Ok(Saved::Unchanged);
        }
        Some(false) => true,
        None => false,
    };
    let unsynced = replace_in(&dir, name, data, perms).map_err(|e| write_error(path, e))?;
    warn_unsynced(path, unsynced);
    Ok(if existed {
        Saved::Changed
    } else {
        Saved::Created
    })
}

/// `None` when `name` in `dir` is no regular file (missing, a symlink, ...), else whether it
/// holds exactly `data` with `perms`. Read errors count as "different": the file is then
/// rewritten.
fn same_file(dir: &Dir, name: &OsStr, data: &[u8], perms: Perms) -> Option<bool> {
    use std::io::Read;
    let c = c_name(name).ok()?;
    let st = stat_at(dir.fd(), &c).ok()?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return None;
    }
    // SAFETY: geteuid and getegid only read the calling process's credentials.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let same_meta = st.st_mode & 0o7777 == perms.mode
        && st.st_uid == perms.uid.unwrap_or(euid)
        && st.st_gid == perms.gid.unwrap_or(egid)
        && u64::try_from(st.st_size).ok() == Some(data.len() as u64);
    if !same_meta {
        return Some(false);
    }
    let Ok(fd) = open_at(
        dir.fd(),
        &c,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
        0,
    ) else {
        return Some(false);
    };
    let mut old = Vec::with_capacity(data.len());
    let read = File::from(fd)
        .take(data.len() as u64 + 1)
        .read_to_end(&mut old);
    let same = read.is_ok() && old == data;
    crate::sys::wipe::wipe(&mut old);
    Some(same)
}

/// The warning for a write whose directory sync failed after the file was put in place.
pub fn warn_unsynced(path: &Path, unsynced: Option<Unsynced>) {
    if let Some(Unsynced(e)) = unsynced {
        crate::sys::log::line(&format!(
            "warning: wrote {} (the new value is in place), but syncing its directory failed: {e}; after a crash the old value may come back",
            path.display()
        ));
    }
}

/// The error for a failed write, naming the path and what to check.
pub fn write_error(path: &Path, err: io::Error) -> Error {
    let hint = match err.kind() {
        io::ErrorKind::NotFound => " (does the directory exist?)",
        io::ErrorKind::PermissionDenied => {
            " (permission denied: check the directory's owner and mode, or --owner/--group)"
        }
        _ if err.raw_os_error() == Some(28) => " (no space left on the device)",
        _ if err.raw_os_error() == Some(30) => " (the file system is read-only)",
        _ => "",
    };
    Error::failed(format!(
        "cannot write {}{hint}; the old file, if any, is left as it was",
        path.display()
    ))
    .with_io(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn tmpdir(tag: &str) -> PathBuf {
        let mut r = [0u8; 6];
        getrandom::getrandom(&mut r).unwrap();
        let d = std::env::temp_dir().join(format!(
            "netsecrets-{tag}-{}",
            r.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn writes_replaces_and_sets_mode() {
        let d = tmpdir("out");
        let p = d.join("s");
        assert!(write_atomic(&p, b"one", Perms::mode(0o400))
            .unwrap()
            .is_none());
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o400);
        write_atomic(&p, b"two", Perms::mode(0o440)).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o440);
        // No temporary files left behind.
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn stale_temporary_files_are_removed_fresh_ones_kept() {
        let d = tmpdir("stale");
        let p = d.join("s");
        let stale = d.join(".s.tmp-0123456789abcdef");
        let fresh = d.join(".s.tmp-fedcba9876543210");
        let other = d.join(".t.tmp-0123456789abcdef");
        for f in [&stale, &fresh, &other] {
            fs::write(f, "x").unwrap();
        }
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for f in [&stale, &other] {
            fs::File::options()
                .write(true)
                .open(f)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        write_atomic(&p, b"v", Perms::mode(0o400)).unwrap();
        assert!(!stale.exists());
        assert!(fresh.exists(), "a live writer may own it");
        assert!(other.exists(), "another output's file");
        // An unchanged value is not written again, but a stale leftover still goes.
        fs::write(&stale, "x").unwrap();
        fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let saved = save_if_changed(&p, b"v", Perms::mode(0o400)).unwrap();
        assert_eq!(saved, Saved::Unchanged);
        assert!(!stale.exists(), "left by an unchanged fetch");
        assert!(fresh.exists());
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn write_new_refuses_to_overwrite() {
        let d = tmpdir("new");
        let p = d.join("k");
        assert!(write_new(&p, b"a", Perms::mode(0o400)).unwrap().is_none());
        assert_eq!(
            write_new(&p, b"b", Perms::mode(0o400)).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(fs::read(&p).unwrap(), b"a");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn missing_directory_leaves_nothing() {
        let d = tmpdir("missing");
        let p = d.join("nope").join("s");
        assert!(write_atomic(&p, b"x", Perms::mode(0o400)).is_err());
        fs::remove_dir_all(d).unwrap();
    }

    /// A line that is not UTF-8 elsewhere in the file (a legacy GECOS field) used to make every
    /// look-up fail; names are matched as bytes, and a non-UTF-8 name is found too.
    #[test]
    fn id_lookup_with_non_utf8_lines() {
        let d = tmpdir("ids8");
        let pw = d.join("passwd");
        let gr = d.join("group");
        fs::write(
            &pw,
            b"root:x:0:0:root:/root:/bin/sh\nj\xf6rg:x:1000:100:J\xf6rg M\xfcller:/home/j:/bin/sh\nsvc:x:990:991::/var/empty:/bin/false\n",
        )
        .unwrap();
        fs::write(&gr, b"caf\xe9:x:42:\nkeys:x:996:svc\n").unwrap();
        assert_eq!(
            resolve_ids(Some("svc"), Some("keys"), &pw, &gr).unwrap(),
            (Some(990), Some(996))
        );
        let e = resolve_ids(Some("j\u{f6}rg"), None, &pw, &gr).unwrap_err();
        assert!(e.to_string().contains("no such user"), "{e}");
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn id_lookup() {
        let d = tmpdir("ids");
        let pw = d.join("passwd");
        let gr = d.join("group");
        fs::write(
            &pw,
            "root:x:0:0:root:/root:/bin/sh\nsvc:x:990:991::/var/empty:/bin/false\n",
        )
        .unwrap();
        fs::write(&gr, "root:x:0:\nkeys:x:996:svc\n").unwrap();
        assert_eq!(
            resolve_ids(Some("svc"), Some("keys"), &pw, &gr).unwrap(),
            (Some(990), Some(996))
        );
        assert_eq!(
            resolve_ids(Some("1234"), None, &pw, &gr).unwrap(),
            (Some(1234), None)
        );
        let e = resolve_ids(Some("nobody-here"), None, &pw, &gr).unwrap_err();
        assert!(e.to_string().contains("no such user"), "{e}");
        let e = resolve_ids(None, Some("svc"), &pw, &gr).unwrap_err();
        assert!(e.to_string().contains("no such group"), "{e}");
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn save_if_changed_leaves_same_bytes_untouched() {
        let d = tmpdir("same");
        let p = d.join("s");
        let perms = Perms::mode(0o440);
        assert_eq!(save_if_changed(&p, b"v1", perms).unwrap(), Saved::Created);
        let before = fs::metadata(&p).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(save_if_changed(&p, b"v1", perms).unwrap(), Saved::Unchanged);
        let after = fs::metadata(&p).unwrap();
        assert_eq!(before.ino(), after.ino());
        assert_eq!(before.mtime_nsec(), after.mtime_nsec());
        assert_eq!(before.ctime_nsec(), after.ctime_nsec());
        // Other bytes (same length, longer, shorter), or another mode: replaced.
        for (data, mode) in [
            (&b"v2"[..], 0o440),
            (b"v22", 0o440),
            (b"v", 0o440),
            (b"v", 0o400),
        ] {
            let ino = fs::metadata(&p).unwrap().ino();
            assert_eq!(
                save_if_changed(&p, data, Perms::mode(mode)).unwrap(),
                Saved::Changed
            );
            assert_eq!(fs::read(&p).unwrap(), data);
            assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, mode);
            assert_ne!(fs::metadata(&p).unwrap().ino(), ino);
        }
        // A symlink in the file's place is no file with these bytes: replaced by one.
        let target = d.join("target");
        fs::write(&target, b"v").unwrap();
        fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(&target, &p).unwrap();
        assert_eq!(
            save_if_changed(&p, b"v", Perms::mode(0o400)).unwrap(),
            Saved::Created
        );
        assert!(fs::symlink_metadata(&p).unwrap().file_type().is_file());
        // The owner asked for explicitly is compared too.
        let uid = fs::metadata(&p).unwrap().uid();
        let other = Perms {
            mode: 0o400,
            uid: Some(uid),
            gid: None,
        };
        assert_eq!(save_if_changed(&p, b"v", other).unwrap(), Saved::Unchanged);
        fs::remove_dir_all(d).unwrap();
    }
}
