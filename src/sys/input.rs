//! Reading the files flags name (secrets, passwords, keys, `/etc/passwd`): regular files only,
//! with a size bound, opened so that a FIFO cannot block and checked on the open descriptor
//! before a byte is read. What the bound is, what the flag is called and the error for a file
//! that cannot be read are the caller's.

use std::path::Path;

use crate::error::Error;

/// Why a file given as a secret, password or key was not read.
pub enum Unfit {
    /// Opening or reading failed.
    Io(std::io::Error),
    /// Not a regular file: what it is instead (`a FIFO`, `a directory`, ...).
    Special(&'static str),
    /// Longer than the bound.
    TooLarge,
}

/// Reads a whole regular file of at most `max` bytes. The file is opened non-blocking (opening
/// a FIFO does not wait for a writer) and checked on the open descriptor before a byte is
/// read, so a FIFO, a device such as `/dev/zero` or a directory is refused at once, and a
/// regular file is read no further than `max + 1` bytes.
pub fn read_bounded(path: &Path, max: usize) -> std::result::Result<Vec<u8>, Unfit> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(Unfit::Io)?;
    let meta = file.metadata().map_err(Unfit::Io)?;
    let t = meta.file_type();
    if !t.is_file() {
        return Err(Unfit::Special(if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_char_device() {
            "a character device"
        } else if t.is_block_device() {
            "a block device"
        } else {
            "a socket"
        }));
    }
    let cap = max.saturating_add(1);
    let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(cap).min(cap));
    file.take(cap as u64)
        .read_to_end(&mut data)
        .map_err(Unfit::Io)?;
    if data.len() > max {
        return Err(Unfit::TooLarge);
    }
    Ok(data)
}

/// Reads a whole regular file of at most `max` bytes ([`read_bounded`]) with the caller's errors:
/// `io_error` when opening or reading fails; for a file that is not a regular file or is too
/// long, an exit-2 error led by `label`, the flag and its value as given (`--password-file
/// /run/pw`). Every file a flag names is read through here, so each refusal reads the same.
pub fn read_file(
    path: &Path,
    max: usize,
    label: &str,
    io_error: &dyn Fn(std::io::Error) -> Error,
) -> Result<Vec<u8>, Error> {
    read_bounded(path, max).map_err(|why| match why {
        Unfit::Io(e) => io_error(e),
        Unfit::Special(kind) => Error::config(format!(
            "{label}: not a regular file ({kind}); give the path of a regular file"
        )),
        Unfit::TooLarge => Error::config(format!("{label}: over the {max}-byte limit")),
    })
}
