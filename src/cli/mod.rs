//! Command-line and environment parsing into plain values; nothing here opens a file or a socket.
//!
//! `netsecrets <subcommand> [flags]`. The first positional picks the subcommand and the same
//! `lexopt` parser is handed on. Environment variables fill in what the flags leave out (a flag
//! always beats the environment); the environment is passed in as a function so that tests feed
//! literal argument vectors and never touch the real one. Reading files, deriving keys and binding
//! sockets happen afterwards, in `config.rs`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::Duration;

use lexopt::prelude::*;

use crate::error::{Error, Result};
use crate::server::cidr::{self, Cidr};
use crate::wire::protocol;

/// Default TCP port (keep in sync with nix/modules/*.nix and README.md).
pub const DEFAULT_PORT: u16 = 8080;
/// Where the console prompt writes the password (keep in sync with nix/modules/client.nix, initrd/units).
pub const DEFAULT_PASSWORD_PATH: &str = "/run/netsecrets-password";
/// Where the post-initrd copy goes (keep in sync with nix/modules/client.nix, initrd/units).
pub const DEFAULT_PASSWORD_COPY: &str = "/run/secrets/netsecrets-password";

/// Where a password comes from; remembered so that a literal one on the command line draws a
/// warning (it is visible in the process list).
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordSource {
    Flag(Vec<u8>),
    Env(Vec<u8>),
    File(PathBuf),
}

/// Where the AES key comes from, after `--insecure` and the file-beats-string rule were applied.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// No key and no `--insecure`: plaintext, with a warning.
    None,
    /// `--insecure`: plaintext on purpose (a key given too is ignored, with a note).
    Insecure {
        key_given: bool,
    },
    Str(Vec<u8>),
    File(PathBuf),
}

/// Flags shared by every subcommand that talks to the network.
#[derive(Clone, PartialEq, Eq)]
pub struct Net {
    pub server: Option<String>,
    pub port: u16,
    pub password: Option<PasswordSource>,
    pub key: KeySource,
    pub verbose: bool,
    pub timeout: Option<Duration>,
}

pub struct ReceiveArgs {
    pub net: Net,
    /// `-S NAME=VALUE`, in order.
    pub secrets: Vec<(String, Vec<u8>)>,
    /// `--secret-file NAME=PATH`, in order.
    pub secret_files: Vec<(String, PathBuf)>,
    pub authorized: Vec<Cidr>,
    pub max_connections: usize,
    pub max_per_ip: usize,
    /// Failed authentications from one address before it is locked out (0: never).
    pub max_failures: u32,
}

#[derive(Clone, PartialEq, Eq)]
pub struct SendArgs {
    pub net: Net,
    pub names: Vec<String>,
    pub fallbacks: Vec<String>,
    pub file_output: Option<PathBuf>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: u32,
}

pub struct AskArgs {
    pub tty: PathBuf,
    pub output: PathBuf,
    pub prompt: String,
    /// With `--verify-secret NAME`: the connection used to check the typed password.
    pub verify: Option<SendArgs>,
    pub tries: u32,
}

pub struct CopyArgs {
    pub from: PathBuf,
    pub to: PathBuf,
}

pub struct KeygenArgs {
    pub output: Option<PathBuf>,
}

pub enum Command {
    Receive(ReceiveArgs),
    Send(SendArgs),
    AskPassword(AskArgs),
    CopyPassword(CopyArgs),
    Keygen(KeygenArgs),
    Help(&'static str),
    Version,
}

pub const MAIN_HELP: &str = "\
netsecrets - network secrets distribution for NixOS

Usage: netsecrets <command> [flags]

Commands:
  receive        run the server: serve secrets from memory to allowed networks
  send           run the client: fetch secrets and write them to stdout or a file
  ask-password   prompt for the server password on the console (initrd)
  copy-password  copy the prompted password for the post-initrd service
  keygen         print a new random encryption key

Run `netsecrets <command> --help` for its flags. `netsecrets --version` prints the version.
Exit codes: 0 success, 1 a secret could not be fetched or written, 2 bad usage or configuration.
";

pub const RECEIVE_HELP: &str = "\
Usage: netsecrets receive [flags]

Serve secrets from memory over TCP.

  --server IP                 bind address, IPv4 or IPv6 (env NETSECRETS_SERVER) [0.0.0.0]
  --port PORT                 TCP port (env NETSECRETS_PORT) [8080]
  --password PW               shared password (env NETSECRETS_PASSWORD); visible in ps, prefer:
  --password-file PATH        read the password from a file, one trailing newline stripped
                              (env NETSECRETS_PASSWORD_FILE)
  -S NAME=VALUE               a secret to serve; repeatable
  --secret-file NAME=PATH     a secret whose value is the file's exact bytes; repeatable
  -a, --authorized-ips CIDR,...  allowed client networks (IPv4/IPv6 CIDRs or addresses);
                              repeatable; default: any address
  --encryption-key STR        AES-256-GCM key = SHA-256(STR)
  --encryption-key-file PATH  AES-256-GCM key = SHA-256(file minus one trailing newline);
                              beats --encryption-key
  --insecure                  plaintext even if a key is given
  --timeout SECS              per-connection deadline [5]
  --max-connections N         connections served at once (= worker threads) [256]
  --max-per-ip N              connections at once from one address [64]
  --max-failures N            failed logins from one address before it is locked out for 30 s,
                              doubling on each further failure; 0 disables [5]
  --verbose                   more detail on stderr (never values, passwords or keys)
  -h, --help
";

pub const SEND_HELP: &str = "\
Usage: netsecrets send [flags]

Fetch secrets; write them to stdout (one per line) or atomically to a file.

  --server IP|HOST            the server (env NETSECRETS_SERVER)
  --port PORT                 TCP port (env NETSECRETS_PORT) [8080]
  --password PW               shared password (env NETSECRETS_PASSWORD); visible in ps, prefer:
  --password-file PATH        one trailing newline stripped (env NETSECRETS_PASSWORD_FILE)
  --request_secrets NAMES     names, space- or comma-separated; also --request-secrets
                              (env NETSECRETS_REQUEST_SECRETS)
  --file-output PATH          write here (atomically) instead of stdout; values joined by newlines
  --owner USER|UID            owner of the output file [the caller]
  --group GROUP|GID           group of the output file [the caller's]
  --mode OCTAL                mode of the output file [0400]
  --fallbacks IP,...          more servers, same port, tried in order (env NETSECRETS_FALLBACKS)
  --encryption-key STR        AES-256-GCM key = SHA-256(STR)
  --encryption-key-file PATH  key = SHA-256(file minus one trailing newline); beats --encryption-key
  --insecure                  plaintext even if a key is given
  --timeout SECS              total deadline, retries with backoff included [30]
  --verbose                   progress on stderr (never values, passwords or keys)
  -h, --help

Nothing is written unless every secret arrived; an existing file is left intact on failure.
";

pub const ASK_HELP: &str = "\
Usage: netsecrets ask-password [flags]

Ask for the server password on a terminal (no echo) and store it for `send --password-file`.

  --tty PATH                  terminal to ask on [/dev/console]
  --output PATH               where to write the password (atomically, mode 0400)
                              [/run/netsecrets-password]
  --prompt TEXT               [netsecrets password: ]
  --verify-secret NAME        check the password by fetching NAME (value discarded); asks again
                              when the server does not answer. Takes send's connection flags:
                              --server --port --fallbacks --encryption-key[-file] --insecure --timeout
  --tries N                   attempts with --verify-secret before giving up [3]
  -h, --help
";

pub const COPY_HELP: &str = "\
Usage: netsecrets copy-password [--from PATH] [--to PATH]

Copy the prompted password for the service after the initrd: atomic, mode 0400, the directory
is created with mode 0751 when missing.

  --from PATH                 [/run/netsecrets-password]
  --to PATH                   [/run/secrets/netsecrets-password]
  -h, --help
";

pub const KEYGEN_HELP: &str = "\
Usage: netsecrets keygen [--output PATH]

Print a new key: 32 random bytes as 64 hex characters and a newline, usable as
--encryption-key-file. With --output, write it atomically with mode 0400 (never overwrites).
";

/// A flag as an owned string (`--name` or `-c`), so that the parser can be used again while it
/// is being matched; a positional argument becomes an error right away.
fn flag(arg: lexopt::Arg<'_>) -> Result<String> {
    match arg {
        Long(l) => Ok(format!("--{l}")),
        Short(c) => Ok(format!("-{c}")),
        Value(v) => Err(Error::usage(format!(
            "unexpected argument {:?} (see --help)",
            v.to_string_lossy()
        ))),
    }
}

fn unknown(flag: &str) -> Error {
    Error::usage(format!("unknown flag {flag} (see --help)"))
}

/// Parses `args` (program name first) with `env` standing in for the process environment.
pub fn parse<I>(args: I, env: &dyn Fn(&str) -> Option<OsString>) -> Result<Command>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut p = lexopt::Parser::from_iter(args);
    match p.next()? {
        Some(Value(cmd)) => match cmd.to_str() {
            Some("receive") => parse_receive(&mut p, env),
            Some("send") => parse_send(&mut p, env),
            Some("ask-password") => parse_ask(&mut p, env),
            Some("copy-password") => parse_copy(&mut p),
            Some("keygen") => parse_keygen(&mut p),
            Some("help") => Ok(Command::Help(MAIN_HELP)),
            _ => Err(Error::usage(format!(
                "unknown command {:?}: use receive, send, ask-password, copy-password or keygen",
                cmd.to_string_lossy()
            ))),
        },
        Some(Short('h') | Long("help")) => Ok(Command::Help(MAIN_HELP)),
        Some(Short('V') | Long("version")) => Ok(Command::Version),
        Some(arg) => Err(arg.unexpected().into()),
        None => Err(Error::usage(
            "missing command: use receive or send (see --help)",
        )),
    }
}

/// Collects the flags every networked subcommand shares. Returns `Ok(false)` when `arg` is not
/// one of them.
#[derive(Default)]
struct NetFlags {
    server: Option<String>,
    port: Option<u16>,
    password: Option<Vec<u8>>,
    password_file: Option<PathBuf>,
    key: Option<Vec<u8>>,
    key_file: Option<PathBuf>,
    insecure: bool,
    verbose: bool,
    timeout: Option<Duration>,
}

impl NetFlags {
    fn take(&mut self, arg: &str, p: &mut lexopt::Parser) -> Result<bool> {
        match arg {
            "--server" => self.server = Some(string(p, "--server")?),
            "--port" => self.port = Some(port(&string(p, "--port")?)?),
            "--password" => self.password = Some(p.value()?.into_vec()),
            "--password-file" => self.password_file = Some(p.value()?.into()),
            "--encryption-key" => self.key = Some(p.value()?.into_vec()),
            "--encryption-key-file" => self.key_file = Some(p.value()?.into()),
            "--insecure" => self.insecure = true,
            "--verbose" | "-v" => self.verbose = true,
            "--timeout" => self.timeout = Some(seconds(&string(p, "--timeout")?)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Applies the environment and the priority rules.
    fn finish(self, env: &dyn Fn(&str) -> Option<OsString>) -> Result<Net> {
        let server = match self.server {
            Some(s) => Some(s),
            None => env_string(env, "NETSECRETS_SERVER")?,
        };
        let port = match self.port {
            Some(p) => p,
            None => match env_string(env, "NETSECRETS_PORT")? {
                Some(s) => port(&s).map_err(|e| Error::usage(format!("NETSECRETS_PORT: {e}")))?,
                None => DEFAULT_PORT,
            },
        };
        let nonempty = |v: OsString| if v.is_empty() { None } else { Some(v) };
        let password = if let Some(path) = self.password_file {
            Some(PasswordSource::File(path))
        } else if let Some(pw) = self.password {
            Some(PasswordSource::Flag(pw))
        } else if let Some(path) = env("NETSECRETS_PASSWORD_FILE").and_then(nonempty) {
            Some(PasswordSource::File(path.into()))
        } else {
            env("NETSECRETS_PASSWORD")
                .and_then(nonempty)
                .map(|v| PasswordSource::Env(v.into_vec()))
        };
        let key = match (self.insecure, self.key_file, self.key) {
            (true, file, key) => KeySource::Insecure {
                key_given: file.is_some() || key.is_some(),
            },
            (false, Some(path), _) => KeySource::File(path),
            (false, None, Some(key)) => KeySource::Str(key),
            (false, None, None) => KeySource::None,
        };
        Ok(Net {
            server,
            port,
            password,
            key,
            verbose: self.verbose,
            timeout: self.timeout,
        })
    }
}

fn parse_receive(
    p: &mut lexopt::Parser,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Command> {
    let mut net = NetFlags::default();
    let mut secrets = Vec::new();
    let mut secret_files = Vec::new();
    let mut authorized = Vec::new();
    let mut max_connections = 256;
    let mut max_per_ip = 64;
    let mut max_failures = 5;
    while let Some(arg) = p.next()? {
        let arg = flag(arg)?;
        if net.take(&arg, p)? {
            continue;
        }
        match arg.as_str() {
            "-S" | "--secret" => {
                let (name, value) = name_eq(p.value()?, "-S NAME=VALUE")?;
                secrets.push((name, value));
            }
            "--secret-file" => {
                let (name, path) = name_eq(p.value()?, "--secret-file NAME=PATH")?;
                secret_files.push((name, PathBuf::from(OsString::from_vec(path))));
            }
            "-a" | "--authorized-ips" | "--authorized_ips" => {
                let list = string(p, "--authorized-ips")?;
                authorized.extend(
                    cidr::parse_list(&list)
                        .map_err(|e| Error::usage(format!("--authorized-ips: {e}")))?,
                );
            }
            "--max-connections" => {
                max_connections = count(&string(p, "--max-connections")?, "--max-connections")?
            }
            "--max-per-ip" => max_per_ip = count(&string(p, "--max-per-ip")?, "--max-per-ip")?,
            "--max-failures" => {
                let v = string(p, "--max-failures")?;
                max_failures = if v.trim() == "0" {
                    0
                } else {
                    count(&v, "--max-failures")?.min(1_000_000) as u32
                };
            }
            "-h" | "--help" => return Ok(Command::Help(RECEIVE_HELP)),
            _ => return Err(unknown(&arg)),
        }
    }
    let net = net.finish(env)?;
    Ok(Command::Receive(ReceiveArgs {
        net,
        secrets,
        secret_files,
        authorized,
        max_connections,
        max_per_ip,
        max_failures,
    }))
}

/// Flags of `send` that `ask-password --verify-secret` shares.
#[derive(Default)]
struct SendFlags {
    net: NetFlags,
    names: Option<Vec<String>>,
    fallbacks: Option<Vec<String>>,
}

impl SendFlags {
    fn take(&mut self, arg: &str, p: &mut lexopt::Parser) -> Result<bool> {
        if self.net.take(arg, p)? {
            return Ok(true);
        }
        match arg {
            "--request_secrets" | "--request-secrets" => {
                let v = string(p, "--request_secrets")?;
                self.names.get_or_insert_with(Vec::new).extend(names(&v)?);
            }
            "--fallbacks" => {
                let v = string(p, "--fallbacks")?;
                self.fallbacks.get_or_insert_with(Vec::new).extend(list(&v));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn parse_send(p: &mut lexopt::Parser, env: &dyn Fn(&str) -> Option<OsString>) -> Result<Command> {
    let mut f = SendFlags::default();
    let mut file_output = None;
    let mut owner = None;
    let mut group = None;
    let mut mode = 0o400;
    while let Some(arg) = p.next()? {
        let arg = flag(arg)?;
        if f.take(&arg, p)? {
            continue;
        }
        match arg.as_str() {
            "--file-output" | "--file_output" => file_output = Some(PathBuf::from(p.value()?)),
            "--owner" => owner = Some(string(p, "--owner")?),
            "--group" => group = Some(string(p, "--group")?),
            "--mode" => mode = file_mode(&string(p, "--mode")?)?,
            "-h" | "--help" => return Ok(Command::Help(SEND_HELP)),
            _ => return Err(unknown(&arg)),
        }
    }
    let mut args = finish_send(f, env)?;
    args.file_output = file_output;
    args.owner = owner;
    args.group = group;
    args.mode = mode;
    if args.names.is_empty() {
        return Err(Error::usage(
            "no secrets requested: give --request_secrets NAMES (or NETSECRETS_REQUEST_SECRETS)",
        ));
    }
    Ok(Command::Send(args))
}

fn finish_send(f: SendFlags, env: &dyn Fn(&str) -> Option<OsString>) -> Result<SendArgs> {
    let names = match f.names {
        Some(n) => n,
        None => match env_string(env, "NETSECRETS_REQUEST_SECRETS")? {
            Some(v) => {
                names(&v).map_err(|e| Error::usage(format!("NETSECRETS_REQUEST_SECRETS: {e}")))?
            }
            None => Vec::new(),
        },
    };
    let fallbacks = match f.fallbacks {
        Some(fb) => fb,
        None => env_string(env, "NETSECRETS_FALLBACKS")?
            .map(|v| list(&v))
            .unwrap_or_default(),
    };
    let net = f.net.finish(env)?;
    if net.server.is_none() && fallbacks.is_empty() {
        return Err(Error::usage(
            "no server given: set --server IP|HOST (or NETSECRETS_SERVER)",
        ));
    }
    Ok(SendArgs {
        net,
        names,
        fallbacks,
        file_output: None,
        owner: None,
        group: None,
        mode: 0o400,
    })
}

fn parse_ask(p: &mut lexopt::Parser, env: &dyn Fn(&str) -> Option<OsString>) -> Result<Command> {
    let mut f = SendFlags::default();
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
                let name = string(p, "--verify-secret")?;
                if !protocol::valid_name(name.as_bytes()) {
                    return Err(Error::usage(format!(
                        "--verify-secret: {}",
                        protocol::name_problem(&name)
                    )));
                }
                verify = Some(name);
            }
            "--tries" => tries = count(&string(p, "--tries")?, "--tries")?.min(1000) as u32,
            "-h" | "--help" => return Ok(Command::Help(ASK_HELP)),
            _ => return Err(unknown(&arg)),
        }
    }
    if f.net.password.is_some() || f.net.password_file.is_some() {
        return Err(Error::usage(
            "ask-password takes no --password/--password-file: it asks for it",
        ));
    }
    let verify = match verify {
        None => None,
        Some(name) => {
            f.names = Some(vec![name]);
            // The password comes from the prompt, never from the environment.
            let no_pw_env = |k: &str| {
                if k.starts_with("NETSECRETS_PASSWORD") {
                    None
                } else {
                    env(k)
                }
            };
            Some(finish_send(f, &no_pw_env)?)
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
    while let Some(arg) = p.next()? {
        let arg = flag(arg)?;
        match arg.as_str() {
            "--output" => output = Some(p.value()?.into()),
            "-h" | "--help" => return Ok(Command::Help(KEYGEN_HELP)),
            _ => return Err(unknown(&arg)),
        }
    }
    Ok(Command::Keygen(KeygenArgs { output }))
}

fn string(p: &mut lexopt::Parser, flag: &str) -> Result<String> {
    p.value()?
        .into_string()
        .map_err(|_| Error::usage(format!("{flag}: the value is not valid UTF-8")))
}

fn env_string(env: &dyn Fn(&str) -> Option<OsString>, key: &str) -> Result<Option<String>> {
    match env(key) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v
            .into_string()
            .map(Some)
            .map_err(|_| Error::usage(format!("{key}: the value is not valid UTF-8"))),
    }
}

/// Splits `NAME=VALUE` at the first `=` and checks the name.
fn name_eq(arg: OsString, what: &str) -> Result<(String, Vec<u8>)> {
    let bytes = arg.into_vec();
    let Some(eq) = bytes.iter().position(|&b| b == b'=') else {
        return Err(Error::usage(format!("{what}: missing '=' in the value")));
    };
    let (name, value) = bytes.split_at(eq);
    let name = String::from_utf8(name.to_vec()).unwrap_or_default();
    if !protocol::valid_name(name.as_bytes()) {
        return Err(Error::usage(format!(
            "{what}: {}",
            protocol::name_problem(&name)
        )));
    }
    Ok((name, value.get(1..).unwrap_or_default().to_vec()))
}

/// Splits a space- or comma-separated list of secret names and checks each.
pub fn names(v: &str) -> Result<Vec<String>> {
    let out: Vec<String> = list(v);
    for n in &out {
        if !protocol::valid_name(n.as_bytes()) {
            return Err(Error::usage(format!(
                "--request_secrets: {}",
                protocol::name_problem(n)
            )));
        }
    }
    Ok(out)
}

/// Splits at commas and whitespace, dropping empty items.
fn list(v: &str) -> Vec<String> {
    v.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub fn port(s: &str) -> Result<u16> {
    s.trim()
        .parse::<u16>()
        .map_err(|_| Error::usage(format!("invalid port {s:?}: expected a number 0-65535")))
}

/// Seconds with up to three decimals (`30`, `0.5`, `2.25`), from 0.01 to 86400. Parsed as
/// integers: no floating point in the binary.
fn seconds(s: &str) -> Result<Duration> {
    let bad = || {
        Error::usage(format!(
            "invalid --timeout {s:?}: expected seconds from 0.01 to 86400, e.g. 30 or 0.5"
        ))
    };
    let t = s.trim();
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 5 || frac.len() > 3 || !digits(whole) || !digits(frac) {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let frac_ms: u64 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
    let ms = whole * 1000 + frac_ms;
    if !(10..=86_400_000).contains(&ms) {
        return Err(bad());
    }
    Ok(Duration::from_millis(ms))
}

fn count(s: &str, flag: &str) -> Result<usize> {
    s.trim()
        .parse::<usize>()
        .ok()
        .filter(|&n| (1..=65_536).contains(&n))
        .ok_or_else(|| {
            Error::usage(format!(
                "invalid {flag} {s:?}: expected a number from 1 to 65536"
            ))
        })
}

fn file_mode(s: &str) -> Result<u32> {
    let digits = s.trim().trim_start_matches("0o");
    if !digits.is_empty() && digits.len() <= 4 && digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        if let Ok(m) = u32::from_str_radix(digits, 8) {
            return Ok(m);
        }
    }
    Err(Error::usage(format!(
        "invalid --mode {s:?}: expected octal like 0400 or 0440"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Command> {
        let env: HashMap<String, OsString> = env
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        let lookup = move |k: &str| env.get(k).cloned();
        parse(
            std::iter::once("netsecrets").chain(args.iter().copied()),
            &lookup,
        )
    }

    fn send(args: &[&str], env: &[(&str, &str)]) -> SendArgs {
        match run(args, env) {
            Ok(Command::Send(s)) => s,
            Ok(_) => panic!("not send"),
            Err(e) => panic!("{e}"),
        }
    }

    fn receive(args: &[&str], env: &[(&str, &str)]) -> ReceiveArgs {
        match run(args, env) {
            Ok(Command::Receive(r)) => r,
            Ok(_) => panic!("not receive"),
            Err(e) => panic!("{e}"),
        }
    }

    fn err(args: &[&str]) -> String {
        match run(args, &[]) {
            Err(e) => {
                assert_eq!(e.exit_code(), 2);
                e.to_string()
            }
            Ok(_) => panic!("{args:?} should fail"),
        }
    }

    #[test]
    fn send_flags() {
        let s = send(
            &[
                "send",
                "--server",
                "10.0.0.1",
                "--port",
                "8081",
                "--password-file",
                "/pw",
                "--request_secrets",
                "a b,c",
                "--file-output",
                "/out",
                "--fallbacks",
                "10.0.0.2 , 10.0.0.3",
                "--encryption-key",
                "k",
                "--mode",
                "0440",
                "--owner",
                "root",
                "--group",
                "wheel",
                "--timeout",
                "2.5",
                "--verbose",
            ],
            &[],
        );
        assert_eq!(s.net.server.as_deref(), Some("10.0.0.1"));
        assert_eq!(s.net.port, 8081);
        assert!(s.net.password == Some(PasswordSource::File("/pw".into())));
        assert_eq!(s.names, ["a", "b", "c"]);
        assert_eq!(s.fallbacks, ["10.0.0.2", "10.0.0.3"]);
        assert_eq!(s.file_output.as_deref(), Some(std::path::Path::new("/out")));
        assert!(s.net.key == KeySource::Str(b"k".to_vec()));
        assert_eq!(s.mode, 0o440);
        assert_eq!(s.owner.as_deref(), Some("root"));
        assert_eq!(s.group.as_deref(), Some("wheel"));
        assert_eq!(s.net.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(seconds("0.05").unwrap(), Duration::from_millis(50));
        assert_eq!(seconds("86400").unwrap(), Duration::from_secs(86_400));
        assert_eq!(seconds(" 7 ").unwrap(), Duration::from_secs(7));
        assert!(s.net.verbose);
    }

    #[test]
    fn send_dash_spelling_and_equals() {
        let s = send(
            &[
                "send",
                "--server=h",
                "--request-secrets=x",
                "--password=p w",
            ],
            &[],
        );
        assert_eq!(s.names, ["x"]);
        assert!(s.net.password == Some(PasswordSource::Flag(b"p w".to_vec())));
        assert_eq!(s.net.port, DEFAULT_PORT);
        assert_eq!(s.mode, 0o400);
    }

    #[test]
    fn env_fallbacks() {
        let env = [
            ("NETSECRETS_SERVER", "10.1.1.1"),
            ("NETSECRETS_PORT", "9000"),
            ("NETSECRETS_PASSWORD", "envpw"),
            ("NETSECRETS_REQUEST_SECRETS", "one two"),
            ("NETSECRETS_FALLBACKS", "10.1.1.2,10.1.1.3"),
        ];
        let s = send(&["send"], &env);
        assert_eq!(s.net.server.as_deref(), Some("10.1.1.1"));
        assert_eq!(s.net.port, 9000);
        assert!(s.net.password == Some(PasswordSource::Env(b"envpw".to_vec())));
        assert_eq!(s.names, ["one", "two"]);
        assert_eq!(s.fallbacks, ["10.1.1.2", "10.1.1.3"]);
    }

    #[test]
    fn flags_beat_env() {
        let env = [
            ("NETSECRETS_SERVER", "10.1.1.1"),
            ("NETSECRETS_PORT", "9000"),
            ("NETSECRETS_PASSWORD_FILE", "/env/pw"),
            ("NETSECRETS_REQUEST_SECRETS", "one"),
            ("NETSECRETS_FALLBACKS", "10.1.1.2"),
        ];
        let s = send(
            &[
                "send",
                "--server",
                "h",
                "--port",
                "1",
                "--password",
                "x",
                "--request_secrets",
                "two",
                "--fallbacks",
                "f",
            ],
            &env,
        );
        assert_eq!(s.net.server.as_deref(), Some("h"));
        assert_eq!(s.net.port, 1);
        assert!(s.net.password == Some(PasswordSource::Flag(b"x".to_vec())));
        assert_eq!(s.names, ["two"]);
        assert_eq!(s.fallbacks, ["f"]);
    }

    #[test]
    fn password_priorities() {
        // A file beats a literal; the env file beats the env literal.
        let s = send(
            &[
                "send",
                "--server",
                "h",
                "--request_secrets",
                "a",
                "--password",
                "x",
                "--password-file",
                "/f",
            ],
            &[],
        );
        assert!(s.net.password == Some(PasswordSource::File("/f".into())));
        let s = send(
            &["send", "--server", "h", "--request_secrets", "a"],
            &[
                ("NETSECRETS_PASSWORD", "p"),
                ("NETSECRETS_PASSWORD_FILE", "/e"),
            ],
        );
        assert!(s.net.password == Some(PasswordSource::File("/e".into())));
    }

    #[test]
    fn key_priorities() {
        let base = ["send", "--server", "h", "--request_secrets", "a"];
        let with = |extra: &[&str]| send(&[&base[..], extra].concat(), &[]).net.key;
        assert!(with(&[]) == KeySource::None);
        assert!(with(&["--encryption-key", "k"]) == KeySource::Str(b"k".to_vec()));
        assert!(
            with(&["--encryption-key", "k", "--encryption-key-file", "/kf"])
                == KeySource::File("/kf".into())
        );
        assert!(
            with(&["--encryption-key-file", "/kf", "--encryption-key", "k"])
                == KeySource::File("/kf".into())
        );
        assert!(
            with(&["--encryption-key", "k", "--insecure"])
                == KeySource::Insecure { key_given: true }
        );
        assert!(with(&["--insecure"]) == KeySource::Insecure { key_given: false });
    }

    #[test]
    fn receive_flags() {
        let r = receive(
            &[
                "receive",
                "--server",
                "::",
                "--port",
                "0",
                "--password",
                "pw",
                "-S",
                "a=1=2",
                "-S",
                "b=",
                "--secret-file",
                "c=/etc/c",
                "-a",
                "10.0.0.0/24,fd00::/64",
                "--authorized-ips",
                "127.0.0.1",
                "--encryption-key-file",
                "/k",
                "--max-connections",
                "8",
                "--max-per-ip",
                "2",
                "--timeout",
                "1",
            ],
            &[],
        );
        assert_eq!(r.net.server.as_deref(), Some("::"));
        assert_eq!(r.net.port, 0);
        assert_eq!(
            r.secrets,
            [
                ("a".to_string(), b"1=2".to_vec()),
                ("b".to_string(), vec![])
            ]
        );
        assert_eq!(r.secret_files, [("c".to_string(), PathBuf::from("/etc/c"))]);
        assert_eq!(r.authorized.len(), 3);
        assert_eq!((r.max_connections, r.max_per_ip), (8, 2));
        assert!(r.net.key == KeySource::File("/k".into()));
    }

    #[test]
    fn usage_errors_name_the_flag() {
        assert!(err(&["send", "--bogus"]).contains("--bogus"));
        assert!(err(&["send", "--server", "h"]).contains("--request_secrets"));
        assert!(err(&["send", "--request_secrets", "a"]).contains("--server"));
        assert!(err(&["send", "--server", "h", "--request_secrets", "../x"])
            .contains("invalid secret name"));
        assert!(err(&[
            "send",
            "--server",
            "h",
            "--request_secrets",
            "a",
            "--port",
            "70000"
        ])
        .contains("invalid port"));
        assert!(err(&[
            "send",
            "--server",
            "h",
            "--request_secrets",
            "a",
            "--mode",
            "999"
        ])
        .contains("--mode"));
        assert!(err(&[
            "send",
            "--server",
            "h",
            "--request_secrets",
            "a",
            "--timeout",
            "0"
        ])
        .contains("--timeout"));
        assert!(err(&["send", "--server"]).contains("--server"));
        assert!(err(&["receive", "-S", "novalue"]).contains("-S"));
        assert!(err(&["receive", "-S", "a/b=1"]).contains("invalid secret name"));
        assert!(err(&["receive", "-a", "10.0.0.0/33"]).contains("--authorized-ips"));
        assert!(err(&["frobnicate"]).contains("unknown command"));
        assert!(err(&[]).contains("missing command"));
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(
            run(&["--help"], &[]),
            Ok(Command::Help(MAIN_HELP))
        ));
        assert!(matches!(
            run(&["send", "--help"], &[]),
            Ok(Command::Help(SEND_HELP))
        ));
        assert!(matches!(
            run(&["receive", "-h"], &[]),
            Ok(Command::Help(RECEIVE_HELP))
        ));
        assert!(matches!(run(&["--version"], &[]), Ok(Command::Version)));
    }

    #[test]
    fn ask_password_verify_ignores_password_env() {
        let c = run(
            &[
                "ask-password",
                "--tty",
                "/dev/ttyS0",
                "--verify-secret",
                "db",
                "--server",
                "10.0.2.100",
                "--tries",
                "5",
            ],
            &[("NETSECRETS_PASSWORD", "leak")],
        );
        let Ok(Command::AskPassword(a)) = c else {
            panic!("not ask-password")
        };
        assert_eq!(a.tty, PathBuf::from("/dev/ttyS0"));
        assert_eq!(a.tries, 5);
        let v = a.verify.unwrap();
        assert_eq!(v.names, ["db"]);
        assert!(v.net.password.is_none());
    }
}
