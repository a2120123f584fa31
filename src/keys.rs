//! The password and the encryption key as both sides read them: from the source the flags name
//! (`cli/` already applied "a flag beats the environment, a file beats a literal, `--insecure`
//! beats any key"), checked (a bounded regular file, not empty), turned into the AES key, with
//! the warning each source deserves. `server/config.rs` and `client/config.rs` build on this;
//! it imports neither side, so the two ends derive a key from a file in the same way.

use std::path::Path;

use crate::cli::{KeySource, PasswordSource};
use crate::error::{Error, Result};
use crate::sys::input;
use crate::sys::log;
use crate::wire::crypto::{self, Codec, Key};

/// Largest password or key file read (a password or key is a line, not a document).
pub const MAX_SMALL_FILE: usize = 64 * 1024;

/// Reads a whole regular file of at most `max` bytes that flag `flag` names; `what` names it in
/// a read error (`cannot read password file PATH (--password-file)`).
pub fn read_named(path: &Path, what: &str, flag: &str, max: usize) -> Result<Vec<u8>> {
    let shown = path.display();
    input::read_file(path, max, &format!("{flag} {shown}"), &|e| {
        Error::config(format!("cannot read {what} {shown} ({flag})")).with_io(e)
    })
}

/// The contents of a password or key file without one trailing newline, or the error `empty`
/// when nothing is left: an empty file is a mistake (not written yet, the wrong path), never a
/// password or a key.
pub fn nonempty_line(contents: &[u8], empty: impl FnOnce() -> Error) -> Result<&[u8]> {
    let line = crypto::strip_one_newline(contents);
    if line.is_empty() {
        return Err(empty());
    }
    Ok(line)
}

/// Resolves the password; with `warn`, a password given on the command line draws a warning
/// (it is visible in the process list).
pub fn password(src: Option<&PasswordSource>, warn: bool) -> Result<Vec<u8>> {
    let pw = match src {
        None => {
            return Err(Error::usage(
                "no password: set --password-file PATH (or --password, NETSECRETS_PASSWORD_FILE, NETSECRETS_PASSWORD)",
            ))
        }
        Some(PasswordSource::File(path)) => crypto::strip_one_newline(&read_named(
            path,
            "password file",
            "--password-file",
            MAX_SMALL_FILE,
        )?)
        .to_vec(),
        Some(PasswordSource::Flag(pw)) => {
            if warn {
                log::line("warning: --password is visible to every user in the process list; use --password-file");
            }
            pw.clone()
        }
        Some(PasswordSource::Env(pw)) => pw.clone(),
    };
    if pw.is_empty() {
        return Err(Error::config(
            "the password is empty: put the shared password in the --password-file",
        ));
    }
    Ok(pw)
}

/// The AES key (its SHA-256 digest) of an `--encryption-key-file`: a bounded regular file that
/// is not empty once one trailing newline is stripped.
pub fn key_file_digest(path: &Path) -> Result<[u8; 32]> {
    let bytes = read_named(
        path,
        "encryption key file",
        "--encryption-key-file",
        MAX_SMALL_FILE,
    )?;
    nonempty_line(&bytes, || {
        Error::config(format!(
            "the encryption key file {} is empty",
            path.display()
        ))
    })?;
    Ok(crypto::file_digest(&bytes))
}

/// Builds the codec and, with `warn`, says on stderr when traffic will be plaintext or the key
/// was given where every user can read it.
pub fn codec(key: &KeySource, warn: bool) -> Result<Codec> {
    Ok(match key {
        KeySource::None => {
            if warn {
                log::line("warning: no encryption key: the password and secrets travel in clear; set --encryption-key-file (or --insecure to mean it)");
            }
            Codec::Plain
        }
        KeySource::Insecure { key_given } => {
            if warn {
                log::line(if *key_given {
                    "warning: --insecure: traffic is plaintext, the encryption key given is ignored"
                } else {
                    "warning: --insecure: traffic is plaintext"
                });
            }
            Codec::Plain
        }
        KeySource::Str(s) => {
            if warn {
                log::line("warning: --encryption-key is visible to every user in the process list; use --encryption-key-file");
            }
            Codec::Aes(Key::from_str_key_bytes(s))
        }
        KeySource::File(path) => Codec::Aes(Key::from_digest(&key_file_digest(path)?)),
    })
}
