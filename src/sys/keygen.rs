//! `netsecrets keygen`: a new random encryption key, 32 bytes from the OS random source as 64
//! hex characters and a newline (`--password`: a password, 16 bytes as 32 hex characters), on
//! stdout or in a new file (mode 0400). An existing file is
//! never replaced: a key that servers and clients already share must not change by accident.

use std::io::{self, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::sys::output::{self as out, Perms};

/// Prints a new key (or with `password`, a password), or writes it to `output` unless that
/// exists.
pub fn keygen(output: Option<&Path>, password: bool) -> Result<()> {
    let mut raw = [0u8; 32];
    getrandom::getrandom(&mut raw)
        .map_err(|e| Error::failed(format!("no random bytes available: {e}")))?;
    // A password: 128 bits, hex (no character a shell, a Nix string or a file format quotes).
    let len = if password { 16 } else { 32 };
    let what = if password { "password" } else { "key" };
    let mut text: String = raw.iter().take(len).map(|b| format!("{b:02x}")).collect();
    text.push('\n');
    match output {
        None => io::stdout()
            .write_all(text.as_bytes())
            .map_err(|e| Error::failed(format!("cannot write the {what} to stdout")).with_io(e)),
        Some(path) => out::write_new(path, text.as_bytes(), Perms::mode(0o400))
            .map(|unsynced| out::warn_unsynced(path, unsynced))
            .map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    Error::failed(format!(
                        "{} exists already; keygen never overwrites a {what}",
                        path.display()
                    ))
                } else {
                    out::write_error(path, e)
                }
            }),
    }
}
