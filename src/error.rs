//! The one error type of the program, and how it maps to exit codes.
//!
//! Every error carries a human sentence saying what was being done and what to check, plus the
//! underlying I/O error where there is one. `main` prints it as a single `netsecrets: ...` line and
//! exits with [`Error::exit_code`]. Errors never contain a secret value, a password or a key: the
//! code that builds them only ever puts names, paths and peer addresses into the text.

use std::fmt;
use std::io;

/// Exit code for success.
pub const EXIT_OK: i32 = 0;
/// Exit code when a secret could not be fetched or written.
pub const EXIT_FAILED: i32 = 1;
/// Exit code for bad usage or bad configuration.
pub const EXIT_USAGE: i32 = 2;

/// What kind of failure this is; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A flag is wrong, missing or malformed (exit 2).
    Usage,
    /// The configuration cannot work: unreadable file, bad CIDR, bind error (exit 2).
    Config,
    /// A secret could not be fetched or written (exit 1).
    Failed,
}

/// Boxed: one pointer wide, so every `?` and every `Result` moves 8 bytes instead of about 50;
/// that keeps the static binary about 12 KiB smaller (errors are rare, the allocation is not
/// felt).
#[derive(Debug)]
pub struct Error(Box<Inner>);

#[derive(Debug)]
struct Inner {
    kind: Kind,
    /// The sentence shown to the operator: what failed and what to check.
    msg: String,
    /// The I/O error underneath, shown after the sentence by `Display` (and therefore not
    /// offered again as `source()`).
    source: Option<io::Error>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn usage(msg: impl Into<String>) -> Error {
        Error::new(Kind::Usage, msg.into())
    }

    pub fn config(msg: impl Into<String>) -> Error {
        Error::new(Kind::Config, msg.into())
    }

    pub fn failed(msg: impl Into<String>) -> Error {
        Error::new(Kind::Failed, msg.into())
    }

    /// Not generic: one copy in the binary.
    fn new(kind: Kind, msg: String) -> Error {
        Error(Box::new(Inner {
            kind,
            msg,
            source: None,
        }))
    }

    /// Attaches the I/O error that caused this one.
    pub fn with_io(mut self, err: io::Error) -> Error {
        self.0.source = Some(err);
        self
    }

    pub fn exit_code(&self) -> i32 {
        match self.0.kind {
            Kind::Usage | Kind::Config => EXIT_USAGE,
            Kind::Failed => EXIT_FAILED,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.msg)?;
        if let Some(err) = &self.0.source {
            write!(f, ": {err}")?;
        }
        Ok(())
    }
}

/// `source()` stays `None`: [`Display`](fmt::Display) already ends with the cause, so a caller
/// that prints the chain (as `anyhow` and friends do) shows it once, not twice.
impl std::error::Error for Error {}

impl From<lexopt::Error> for Error {
    fn from(err: lexopt::Error) -> Error {
        Error::usage(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn the_cause_is_printed_once() {
        let e = Error::failed("cannot write /x").with_io(io::Error::other("disk on fire"));
        assert_eq!(e.to_string(), "cannot write /x: disk on fire");
        assert!(e.source().is_none());
        assert_eq!(e.exit_code(), EXIT_FAILED);
    }
}
