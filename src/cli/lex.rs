//! The lexing helpers every flag parser here uses: a flag as a string, a flag's value as UTF-8,
//! as a value type (`values.rs`), as a unit name or as `NAME=VALUE`, an environment variable's
//! value, and the errors for each. Nothing here knows a subcommand; every other parser imports
//! this file, and it imports none of them (only the value types).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::str::FromStr;

use lexopt::prelude::*;

use super::values::{Count, Expected};
use crate::error::{Error, Result};
use crate::wire::bound::Protocol;
use crate::wire::protocol::SecretName;

/// The environment: a lookup standing in for the process's, so tests never touch the real one.
pub(super) type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// A flag as an owned string (`--name` or `-c`), so that the parser can be used again while it
/// is being matched; a positional argument becomes an error right away.
pub(super) fn flag(arg: lexopt::Arg<'_>) -> Result<String> {
    match arg {
        Long(l) => Ok(format!("--{l}")),
        Short(c) => Ok(format!("-{c}")),
        Value(v) => Err(Error::usage(format!(
            "unexpected argument {:?} (see --help)",
            v.to_string_lossy()
        ))),
    }
}

/// The error for a flag the subcommand does not take (`suggest.rs` adds the nearest one).
pub(super) fn unknown(flag: &str) -> Error {
    Error::usage(format!("unknown flag {flag} (see --help)"))
}

/// The flag's value, which must be UTF-8.
pub(super) fn string(p: &mut lexopt::Parser, flag: &str) -> Result<String> {
    p.value()?
        .into_string()
        .map_err(|_| Error::usage(format!("{flag}: the value is not valid UTF-8")))
}

/// The flag's value parsed as `T`; `label` names it in the error: `invalid LABEL "v": expected ...`.
pub(super) fn value<T: FromStr<Err = Expected>>(
    p: &mut lexopt::Parser,
    flag: &str,
    label: &str,
) -> Result<T> {
    parse_as(&string(p, flag)?, label)
}

/// `s` parsed as `T`, with the error [`value`] gives.
pub(super) fn parse_as<T: FromStr<Err = Expected>>(s: &str, label: &str) -> Result<T> {
    s.parse().map_err(|e| invalid(s, label, e))
}

/// The one error for a value that does not parse (not generic: one copy in the binary).
fn invalid(s: &str, label: &str, Expected(what): Expected) -> Error {
    Error::usage(format!("invalid {label} {s:?}: expected {what}"))
}

/// A systemd unit name for a change action: printable, no spaces, not starting with '-' (it
/// would be read as a flag), with a type suffix.
pub(super) fn unit(p: &mut lexopt::Parser, flag: &str) -> Result<String> {
    let u = string(p, flag)?;
    check_unit(&u, flag)?;
    Ok(u)
}

/// [`unit`]'s check, for a unit name that came in another flag's value (`--allow`).
pub(super) fn check_unit(u: &str, flag: &str) -> Result<()> {
    let printable = u.bytes().all(|b| b.is_ascii_graphic());
    if u.is_empty() || u.len() > 255 || u.starts_with('-') || !printable || !u.contains('.') {
        return Err(Error::usage(format!(
            "{flag} {u:?}: not a unit name; give one like foo.service"
        )));
    }
    Ok(())
}

/// A count flag's value (`Count`: 1 to 65 536).
pub(super) fn count(p: &mut lexopt::Parser, flag: &str) -> Result<usize> {
    Ok(value::<Count>(p, flag, flag)?.0)
}

/// A variable's value, `None` when unset or empty.
pub(super) fn env_string(env: Env, key: &str) -> Result<Option<String>> {
    match env(key) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v
            .into_string()
            .map(Some)
            .map_err(|_| Error::usage(format!("{key}: the value is not valid UTF-8"))),
    }
}

/// Splits `NAME=VALUE` at the first `=` and checks the name; `what` names the flag.
pub(super) fn name_eq(arg: OsString, what: &str) -> Result<(SecretName, Vec<u8>)> {
    let bytes = arg.into_vec();
    let Some(eq) = bytes.iter().position(|&b| b == b'=') else {
        return Err(Error::usage(format!("{what}: missing '=' in the value")));
    };
    let (name, value) = bytes.split_at(eq);
    // A name that is not UTF-8 is shown as "" in the error: it is not a name either way.
    let name = String::from_utf8(name.to_vec()).unwrap_or_default();
    let name = SecretName::try_from(name).map_err(|e| Error::usage(format!("{what}: {e}")))?;
    Ok((name, value.get(1..).unwrap_or_default().to_vec()))
}

/// `--protocol` / `--min-protocol`: 1 (no associated data) or 2 (answers bound to requests).
pub(super) fn protocol(v: &str, label: &str) -> Result<Protocol> {
    match v.trim() {
        "1" => Ok(Protocol::V1),
        "2" => Ok(Protocol::V2),
        _ => Err(Error::usage(format!(
            "invalid {label} {v:?}: expected 1 or 2"
        ))),
    }
}
