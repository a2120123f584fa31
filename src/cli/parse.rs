//! [`parse`]: the first positional picks the subcommand, whose parser takes the rest. Each
//! subcommand's flags are collected into locals and its arguments built once, at the end; the
//! shared connection flags are `conn.rs`'s, the value types `values.rs`'s.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::str::FromStr;

use lexopt::prelude::*;

use super::conn::{protocol, FetchFlags, NetFlags};
use super::help::{
    ASK_HELP, COPY_HELP, CREDENTIALS_HELP, KEYGEN_HELP, MAIN_HELP, RECEIVE_HELP, SEND_HELP,
};
use super::values::{self, Count, Expected, Mode};
use super::{
    AskArgs, Command, CopyArgs, CredentialsArgs, KeygenArgs, ReceiveArgs, SendArgs,
    DEFAULT_PASSWORD_COPY, DEFAULT_PASSWORD_PATH,
};
use crate::error::{Error, Result};
use crate::sys::systemctl::Actions;
use crate::wire::bound::Protocol;
use crate::wire::cidr;
use crate::wire::protocol::SecretName;

/// The environment: a lookup standing in for the process's, so tests never touch the real one.
pub(super) type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// Parses `args` (program name first) with `env` standing in for the process environment.
pub fn parse<I>(args: I, env: Env) -> Result<Command>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut p = lexopt::Parser::from_iter(args);
    match p.next()? {
        Some(Value(cmd)) => match cmd.to_str() {
            // An unknown flag of a known command gets the nearest known flag (suggest.rs).
            Some(c) if super::suggest::help_of(c).is_some() => {
                parse_command(c, &mut p, env).map_err(|e| super::suggest::amend(e, c))
            }
            Some("help") => Ok(Command::Help(MAIN_HELP)),
            _ => Err(super::suggest::unknown_command(&cmd.to_string_lossy())),
        },
        Some(Short('h') | Long("help")) => Ok(Command::Help(MAIN_HELP)),
        Some(Short('V') | Long("version")) => Ok(Command::Version),
        Some(arg) => Err(arg.unexpected().into()),
        None => Err(Error::usage(format!(
            "missing command: use {} (see --help)",
            super::suggest::command_list()
        ))),
    }
}

/// The parser of command `cmd` (one of `suggest::COMMANDS`).
fn parse_command(cmd: &str, p: &mut lexopt::Parser, env: Env) -> Result<Command> {
    match cmd {
        "receive" => parse_receive(p, env),
        "send" => parse_send(p, env),
        "credentials" => parse_credentials(p, env),
        "ask-password" => parse_ask(p, env),
        "copy-password" => parse_copy(p),
        "keygen" => parse_keygen(p),
        "render" => super::render::parse_render(p),
        "placeholder" => super::suggest::parse_placeholder(p),
        _ => Err(super::suggest::unknown_command(cmd)),
    }
}

fn parse_receive(p: &mut lexopt::Parser, env: Env) -> Result<Command> {
    let mut net = NetFlags::default();
    let mut secrets = Vec::new();
    let mut secret_files = Vec::new();
    let mut clients_file = None;
    let mut authorized = Vec::new();
    let mut authorized_warnings = Vec::new();
    let mut max_connections = 256;
    let mut max_per_ip = 64;
    let mut max_failures = 5;
    let mut min_protocol = None;
    while let Some(arg) = p.next()? {
        let arg = flag(arg)?;
        if net.take(&arg, p)? {
            continue;
        }
        match arg.as_str() {
            "-S" | "--secret" => {
                secrets.push(name_eq(p.value()?, "-S NAME=VALUE")?);
            }
            "--secret-file" => {
                let (name, path) = name_eq(p.value()?, "--secret-file NAME=PATH")?;
                secret_files.push((name, PathBuf::from(OsString::from_vec(path))));
            }
            "--clients-file" => clients_file = Some(PathBuf::from(p.value()?)),
            "-a" | "--authorized-ips" | "--authorized_ips" => {
                let list = string(p, "--authorized-ips")?;
                let nets = cidr::parse_list(&list)
                    .map_err(|e| Error::usage(format!("--authorized-ips: {e}")))?;
                if nets.is_empty() {
                    return Err(Error::usage(format!(
                        "--authorized-ips {list:?}: no address or network given, and an empty list would allow every address; give CIDRs like 10.0.0.0/24, or leave the flag out"
                    )));
                }
                authorized_warnings.extend(
                    values::list(&list)
                        .iter()
                        .filter_map(|n| values::host_bits(n)),
                );
                authorized.extend(nets);
            }
            "--max-connections" => max_connections = count(p, "--max-connections")?,
            "--max-per-ip" => max_per_ip = count(p, "--max-per-ip")?,
            "--max-failures" => {
                let v = string(p, "--max-failures")?;
                max_failures = if v.trim() == "0" {
                    0
                } else {
                    // At most 65 536: the cast cannot truncate.
                    parse_as::<Count>(&v, "--max-failures")?.0 as u32
                };
            }
            "--min-protocol" => {
                min_protocol = Some(protocol(&string(p, "--min-protocol")?, "--min-protocol")?)
            }
            "-h" | "--help" => return Ok(Command::Help(RECEIVE_HELP)),
            _ => return Err(unknown(&arg)),
        }
    }
    let min_protocol = match min_protocol {
        Some(v) => v,
        None => match env_string(env, "NETSECRETS_MIN_PROTOCOL")? {
            Some(v) => protocol(&v, "NETSECRETS_MIN_PROTOCOL")?,
            None => Protocol::V1,
        },
    };
    Ok(Command::Receive(ReceiveArgs {
        net: net.finish(env)?,
        secrets,
        secret_files,
        clients_file,
        authorized,
        authorized_warnings,
        max_connections,
        max_per_ip,
        max_failures,
        min_protocol,
    }))
}

fn parse_send(p: &mut lexopt::Parser, env: Env) -> Result<Command> {
    let mut f = FetchFlags::default();
    let mut file_output = None;
    let mut owner = None;
    let mut group = None;
    let mut mode = Mode(0o400);
    let mut actions = Actions::default();
    let mut offline = super::offline::OfflineArgs::default();
    while let Some(arg) = p.next()? {
        let arg = flag(arg)?;
        if f.take(&arg, p)? || offline.take(&arg, p)? {
            continue;
        }
        match arg.as_str() {
            "--file-output" | "--file_output" => file_output = Some(PathBuf::from(p.value()?)),
            "--restart-unit" => actions.restart.push(unit(p, "--restart-unit")?),
            "--reload-unit" => actions.reload.push(unit(p, "--reload-unit")?),
            "--start-unit" => actions.start.push(unit(p, "--start-unit")?),
            "--systemctl" => actions.systemctl = Some(PathBuf::from(p.value()?)),
            "--owner" => owner = Some(string(p, "--owner")?),
            "--group" => group = Some(string(p, "--group")?),
            "--mode" => mode = value(p, "--mode", "--mode")?,
            "-h" | "--help" => return Ok(Command::Help(SEND_HELP)),
            _ => return Err(unknown(&arg)),
        }
    }
    let fetch = f.finish(env)?;
    if fetch.names.is_empty() {
        return Err(Error::usage(
            "no secrets requested: give --request_secrets NAMES (or NETSECRETS_REQUEST_SECRETS)",
        ));
    }
    if file_output.is_none() && !actions.is_empty() {
        return Err(Error::usage(
            "--restart-unit/--reload-unit/--start-unit need --file-output (they follow a change of that file)",
        ));
    }
    offline.check()?;
    Ok(Command::Send(SendArgs {
        fetch,
        file_output,
        owner,
        group,
        mode,
        actions,
        offline,
    }))
}

fn parse_credentials(p: &mut lexopt::Parser, env: Env) -> Result<Command> {
    let mut f = FetchFlags::default();
    let mut socket = None;
    let mut allow = Vec::new();
    while let Some(arg) = p.next()? {
        let arg = flag(arg)?;
        if f.take(&arg, p)? {
            continue;
        }
        match arg.as_str() {
            "--socket" => socket = Some(PathBuf::from(p.value()?)),
            "--allow" => {
                let (name, units) = name_eq(p.value()?, "--allow NAME=UNIT,...")?;
                let units = String::from_utf8(units).unwrap_or_default();
                let units: Vec<String> = values::list(&units);
                if units.is_empty() {
                    return Err(Error::usage(format!(
                        "--allow {name}=: no unit given; list the units that may load {name}, like {name}=app.service"
                    )));
                }
                for u in &units {
                    check_unit(u, "--allow")?;
                }
                allow.push((name, units));
            }
            "-h" | "--help" => return Ok(Command::Help(CREDENTIALS_HELP)),
            _ => return Err(unknown(&arg)),
        }
    }
    if allow.is_empty() {
        return Err(Error::usage(
            "no --allow NAME=UNIT,... given: nothing would ever be served",
        ));
    }
    Ok(Command::Credentials(CredentialsArgs {
        fetch: f.finish(env)?,
        socket,
        allow,
    }))
}

fn parse_ask(p: &mut lexopt::Parser, env: Env) -> Result<Command> {
    let mut f = FetchFlags::default();
    let mut tty = PathBuf::from("/dev/console");
    let mut output = PathBuf::from(DEFAULT_PASSWORD_PATH);
    let mut prompt = String::from("netsecrets password: ");
    let mut verify = None;
    let mut tries = 3;
    while let Some(arg) = p.next()? {
        let arg = flag(arg)?;
        if f.take(&arg, p)? {
            continue;
        }
        match arg.as_str() {
            "--tty" => tty = p.value()?.into(),
            "--output" => output = p.value()?.into(),
            "--prompt" => prompt = string(p, "--prompt")?,
            "--verify-secret" => {
                let name = SecretName::try_from(string(p, "--verify-secret")?)
                    .map_err(|e| Error::usage(format!("--verify-secret: {e}")))?;
                verify = Some(name);
            }
            // At most 1 000: the cast cannot truncate.
            "--tries" => tries = count(p, "--tries")?.min(1000) as u32,
            "-h" | "--help" => return Ok(Command::Help(ASK_HELP)),
            _ => return Err(unknown(&arg)),
        }
    }
    if f.net.has_password() {
        return Err(Error::usage(
            "ask-password takes no --password/--password-file: it asks for it",
        ));
    }
    let verify = match verify {
        None => None,
        Some(name) => {
            f.only(name);
            // The password comes from the prompt, never from the environment.
            let no_pw_env = |k: &str| {
                if k.starts_with("NETSECRETS_PASSWORD") {
                    None
                } else {
                    env(k)
                }
            };
            Some(f.finish(&no_pw_env)?)
        }
    };
    Ok(Command::AskPassword(AskArgs {
        tty,
        output,
        prompt,
        verify,
        tries,
    }))
}

fn parse_copy(p: &mut lexopt::Parser) -> Result<Command> {
    let mut from = PathBuf::from(DEFAULT_PASSWORD_PATH);
    let mut to = PathBuf::from(DEFAULT_PASSWORD_COPY);
    while let Some(arg) = p.next()? {
        let arg = flag(arg)?;
        match arg.as_str() {
            "--from" => from = p.value()?.into(),
            "--to" => to = p.value()?.into(),
            "-h" | "--help" => return Ok(Command::Help(COPY_HELP)),
            _ => return Err(unknown(&arg)),
        }
    }
    Ok(Command::CopyPassword(CopyArgs { from, to }))
}

fn parse_keygen(p: &mut lexopt::Parser) -> Result<Command> {
    let mut output = None;
    let mut password = false;
    while let Some(arg) = p.next()? {
        let arg = flag(arg)?;
        match arg.as_str() {
            "--output" => output = Some(p.value()?.into()),
            "--password" => password = true,
            "-h" | "--help" => return Ok(Command::Help(KEYGEN_HELP)),
            _ => return Err(unknown(&arg)),
        }
    }
    Ok(Command::Keygen(KeygenArgs { output, password }))
}

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

fn check_unit(u: &str, flag: &str) -> Result<()> {
    let printable = u.bytes().all(|b| b.is_ascii_graphic());
    if u.is_empty() || u.len() > 255 || u.starts_with('-') || !printable || !u.contains('.') {
        return Err(Error::usage(format!(
            "{flag} {u:?}: not a unit name; give one like foo.service"
        )));
    }
    Ok(())
}

fn count(p: &mut lexopt::Parser, flag: &str) -> Result<usize> {
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
