//! [`parse`]: the first positional picks the subcommand, whose parser takes the rest. Each
//! subcommand's flags are collected into locals and its arguments built once, at the end, after
//! the rules between its flags were checked (a flag that needs another is refused here, before
//! anything runs); the shared flag groups are `groups.rs`'s, the lexing helpers `lex.rs`'s.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use lexopt::prelude::*;

use super::args::{
    AskArgs, Command, CopyArgs, CredentialsArgs, FileArgs, KeygenArgs, OfflineArgs, ReceiveArgs,
    SendArgs, DEFAULT_PASSWORD_COPY, DEFAULT_PASSWORD_PATH,
};
use super::groups::{FetchFlags, NetFlags};
use super::help::{
    ASK_HELP, COPY_HELP, CREDENTIALS_HELP, KEYGEN_HELP, MAIN_HELP, RECEIVE_HELP, SEND_HELP,
};
use super::lex::{
    check_unit, count, env_string, flag, name_eq, parse_as, protocol, string, unknown, Env,
};
use super::values::{self, Count};
use crate::error::{Error, Result};
use crate::wire::bound::Protocol;
use crate::wire::cidr;
use crate::wire::protocol::SecretName;

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
    let mut file = FileArgs::default();
    let mut offline = OfflineArgs::default();
    while let Some(arg) = p.next()? {
        let arg = flag(arg)?;
        if f.take(&arg, p)? || file.take(&arg, p)? || offline.take(&arg, p)? {
            continue;
        }
        match arg.as_str() {
            "--file-output" | "--file_output" => file_output = Some(PathBuf::from(p.value()?)),
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
    if file_output.is_none() && !file.actions.is_empty() {
        return Err(Error::usage(
            "--restart-unit/--reload-unit/--start-unit need --file-output (they follow a change of that file)",
        ));
    }
    offline.check()?;
    if file_output.is_none() && (file.owner.is_some() || file.group.is_some()) {
        return Err(Error::usage("--owner/--group need --file-output"));
    }
    Ok(Command::Send(SendArgs {
        fetch,
        file_output,
        file,
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
