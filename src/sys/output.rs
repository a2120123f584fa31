//! Writing secret files so that a reader sees the old content or the whole new content, never a
//! part, and never a file more open than requested.
//!
//! [`write_atomic`]: a temporary file in the same directory is created (`O_EXCL`, owner-only mode)
//! before any byte is written, given its owner, group and final mode, filled, fsynced, renamed
//! over the target, and the directory is fsynced. On any error the temporary file is removed and
//! the target is untouched. Owners and groups are numeric ids or names looked up in `/etc/passwd`
//! and `/etc/group` directly, so no NSS is needed in the initrd.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
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
    let text = crate::sys::input::read_bounded(db, MAX_DB).map_err(|why| {
        let label = format!("{flag} {name:?}: {}", db.display());
        match why {
            crate::sys::input::Unfit::Io(e) => {
                Error::config(format!("{flag} {name:?}: cannot read {}", db.display())).with_io(e)
            }
            _ => crate::sys::input::unfit_error(&label, MAX_DB, &why),
        }
    })?;
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

/// Creates `dir` (and missing parents) with [`DIR_MODE`] if it does not exist.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

fn split(path: &Path) -> io::Result<(PathBuf, &std::ffi::OsStr)> {
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
struct Temp {
    path: PathBuf,
    keep: bool,
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Creates the temporary file, fully written, synced and with its final owner and mode.
fn write_temp(dir: &Path, name: &std::ffi::OsStr, data: &[u8], perms: Perms) -> io::Result<Temp> {
    let mut suffix = [0u8; 8];
    getrandom::getrandom(&mut suffix).map_err(|e| io::Error::other(e.to_string()))?;
    let hex: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{hex}"));
    let path = dir.join(tmp_name);
    // Owner-only bits at creation: never wider than the final mode, whatever the umask.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(perms.mode & 0o700)
        .open(&path)?;
    let temp = Temp { path, keep: false };
    if perms.uid.is_some() || perms.gid.is_some() {
        std::os::unix::fs::fchown(&file, perms.uid, perms.gid)?;
    }
    file.set_permissions(fs::Permissions::from_mode(perms.mode))?;
    file.write_all(data)?;
    file.sync_all()?;
    Ok(temp)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` atomically with `data`. The old file, if any, is untouched on error. Once
/// the rename is done the new value is in place whatever follows: a failure to sync the
/// directory then is not an error but the returned [`Unsynced`] (the new value may not survive
/// a crash).
pub fn write_atomic(path: &Path, data: &[u8], perms: Perms) -> io::Result<Option<Unsynced>> {
    let (dir, name) = split(path)?;
    let mut temp = write_temp(&dir, name, data, perms)?;
    fs::rename(&temp.path, path)?;
    temp.keep = true;
    let unsynced = sync_dir(&dir).err().map(Unsynced);
    remove_stale_temps(&dir, name);
    Ok(unsynced)
}

/// The directory sync that failed after a rename: the new file is in place, but a crash may
/// bring the old one back.
#[derive(Debug)]
pub struct Unsynced(pub io::Error);

/// A writer killed between creating its temporary file and the rename leaves the file behind
/// (owner-only, never at the output path). Remove such leftovers of this output once they are
/// old enough that no live writer can own them.
fn remove_stale_temps(dir: &Path, name: &std::ffi::OsStr) {
    const STALE: std::time::Duration = std::time::Duration::from_secs(600);
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".tmp-");
    let prefix = prefix.as_encoded_bytes();
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let bytes = file_name.as_encoded_bytes();
        let ours = bytes.len() == prefix.len() + 16 && bytes.starts_with(prefix);
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= STALE));
        if ours && old {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Like [`write_atomic`] but fails with `AlreadyExists` instead of replacing an existing file.
/// Once the link is made the file is in place: a failed directory sync is the returned
/// [`Unsynced`], not an error.
pub fn write_new(path: &Path, data: &[u8], perms: Perms) -> io::Result<Option<Unsynced>> {
    let (dir, name) = split(path)?;
    let temp = write_temp(&dir, name, data, perms)?;
    fs::hard_link(&temp.path, path)?;
    drop(temp);
    Ok(sync_dir(&dir).err().map(Unsynced))
}

/// Writes a secret file the one way every command does: creates a missing directory with
/// [`DIR_MODE`], replaces `path` atomically ([`write_atomic`]), and turns a failure into the
/// error that names the path and what to check. The old file, if any, is left as it was.
///
/// When only the directory sync after the rename fails, the new value is in place: that is
/// said in a warning, and the result is `Ok` (an error always means the old file is untouched).
pub fn save(path: &Path, data: &[u8], perms: Perms) -> Result<()> {
    let unsynced = path
        .parent()
        .map_or(Ok(()), ensure_dir)
        .and_then(|()| write_atomic(path, data, perms))
        .map_err(|e| write_error(path, e))?;
    warn_unsynced(path, unsynced);
    Ok(())
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
    let existed = match same_file(path, data, perms) {
        Some(true) => {
            // Nothing to write, but leftovers of killed writers go as they would on a write.
            if let Ok((dir, name)) = split(path) {
                remove_stale_temps(&dir, name);
            }
            return Ok(Saved::Unchanged);
        }
        Some(false) => true,
        None => false,
    };
    save(path, data, perms)?;
    Ok(if existed {
        Saved::Changed
    } else {
        Saved::Created
    })
}

/// `None` when `path` is no regular file (missing, a symlink, ...), else whether it holds
/// exactly `data` with `perms`. Read errors count as "different": the file is then rewritten.
fn same_file(path: &Path, data: &[u8], perms: Perms) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(path).ok()?;
    if !meta.file_type().is_file() {
        return None;
    }
    // SAFETY: geteuid and getegid only read the calling process's credentials.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let same_meta = meta.mode() & 0o7777 == perms.mode
        && meta.uid() == perms.uid.unwrap_or(euid)
        && meta.gid() == perms.gid.unwrap_or(egid)
        && meta.len() == data.len() as u64;
    if !same_meta {
        return Some(false);
    }
    let old = crate::sys::input::read_bounded(path, data.len()).ok();
    Some(old.as_deref() == Some(data))
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
