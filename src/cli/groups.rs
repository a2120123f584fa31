//! The flag groups several subcommands share, each parsed here once:
//! - the connection flags every networked subcommand takes (`--server`, `--port`, the
//!   password, the key, `--timeout`, `--verbose`), with the rules that turn them into one
//!   [`Net`]: a flag beats the environment, a file beats a literal, `--insecure` beats any key;
//! - the ones `send` shares with `credentials` and `ask-password --verify-secret` (the names,
//!   the fallbacks, the protocol), into [`FetchArgs`];
//! - the written file's `--owner`, `--group`, `--mode` and change actions, which `send` and
//!   `render` share, into [`FileArgs`].
//!
//! Each collector's `take` returns `Ok(false)` for a flag that is not its own, so a
//! subcommand's parser offers every flag here first and handles the rest itself.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::Duration;

use super::args::{FetchArgs, FileArgs, KeySource, Net, PasswordSource, DEFAULT_PORT};
use super::lex::{env_string, parse_as, protocol, string, unit, value, Env};
use super::values::{self, Port, Seconds};
use crate::error::{Error, Result};
use crate::wire::bound::Protocol;
use crate::wire::protocol::SecretName;

/// The flags of [`Net`], as given.
#[derive(Default)]
pub(super) struct NetFlags {
    server: Option<String>,
    port: Option<u16>,
    password: Option<Vec<u8>>,
    password_file: Option<PathBuf>,
    /// Earlier `--password-file`s when it is repeated (`receive` accepts them all).
    more_password_files: Vec<PathBuf>,
    key: Option<Vec<u8>>,
    key_file: Option<PathBuf>,
    /// Earlier `--encryption-key-file`s when it is repeated.
    more_key_files: Vec<PathBuf>,
    insecure: bool,
    verbose: bool,
    timeout: Option<Duration>,
}

impl NetFlags {
    pub(super) fn take(&mut self, arg: &str, p: &mut lexopt::Parser) -> Result<bool> {
        match arg {
            "--server" => self.server = Some(string(p, "--server")?),
            "--port" => self.port = Some(value::<Port>(p, "--port", "port")?.0),
            "--password" => self.password = Some(p.value()?.into_vec()),
            "--password-file" => {
                let path = p.value()?.into();
                if let Some(old) = self.password_file.replace(path) {
                    self.more_password_files.push(old);
                }
            }
            "--encryption-key" => self.key = Some(p.value()?.into_vec()),
            "--encryption-key-file" => {
                let path = p.value()?.into();
                if let Some(old) = self.key_file.replace(path) {
                    self.more_key_files.push(old);
                }
            }
            "--insecure" => self.insecure = true,
            "--verbose" | "-v" => self.verbose = true,
            "--timeout" => self.timeout = Some(value::<Seconds>(p, "--timeout", "--timeout")?.0),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// True when `--password` or `--password-file` was given.
    pub(super) fn has_password(&self) -> bool {
        self.password.is_some() || self.password_file.is_some()
    }

    /// Applies the environment and the priority rules.
    pub(super) fn finish(self, env: Env) -> Result<Net> {
        let server = match self.server {
            Some(s) => Some(s),
            None => env_string(env, "NETSECRETS_SERVER")?,
        };
        let port = match self.port {
            Some(p) => p,
            None => match env_string(env, "NETSECRETS_PORT")? {
                Some(s) => {
                    parse_as::<Port>(&s, "port")
                        .map_err(|e| Error::usage(format!("NETSECRETS_PORT: {e}")))?
                        .0
                }
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
        let more_key_files = match (&self.insecure, &self.key_file) {
            (false, Some(_)) => self.more_key_files,
            _ => Vec::new(),
        };
        let more_password_files = match &password {
            Some(PasswordSource::File(_)) => self.more_password_files,
            _ => Vec::new(),
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
            more_password_files,
            key,
            more_key_files,
            verbose: self.verbose,
            timeout: self.timeout,
        })
    }
}

/// The flags of [`FetchArgs`], as given.
#[derive(Default)]
pub(super) struct FetchFlags {
    pub(super) net: NetFlags,
    names: Option<Vec<SecretName>>,
    fallbacks: Option<Vec<String>>,
    protocol: Option<Protocol>,
}

impl FetchFlags {
    pub(super) fn take(&mut self, arg: &str, p: &mut lexopt::Parser) -> Result<bool> {
        if self.net.take(arg, p)? {
            return Ok(true);
        }
        match arg {
            "--request_secrets" | "--request-secrets" => {
                let v = string(p, "--request_secrets")?;
                names(&v, self.names.get_or_insert_with(Vec::new))?;
            }
            "--fallbacks" => {
                let v = string(p, "--fallbacks")?;
                self.fallbacks
                    .get_or_insert_with(Vec::new)
                    .extend(values::list(&v));
            }
            "--protocol" => {
                self.protocol = Some(protocol(&string(p, "--protocol")?, "--protocol")?)
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `--verify-secret NAME`: the one name to fetch, whatever `--request_secrets` said.
    pub(super) fn only(&mut self, name: SecretName) {
        self.names = Some(vec![name]);
    }

    /// Applies the environment; a server (or a fallback) is required.
    pub(super) fn finish(self, env: Env) -> Result<FetchArgs> {
        let names = match self.names {
            Some(n) => n,
            None => {
                let mut n = Vec::new();
                if let Some(v) = env_string(env, "NETSECRETS_REQUEST_SECRETS")? {
                    names(&v, &mut n)
                        .map_err(|e| Error::usage(format!("NETSECRETS_REQUEST_SECRETS: {e}")))?;
                }
                n
            }
        };
        let fallbacks = match self.fallbacks {
            Some(fb) => fb,
            None => env_string(env, "NETSECRETS_FALLBACKS")?
                .map(|v| values::list(&v))
                .unwrap_or_default(),
        };
        let protocol = match self.protocol {
            Some(v) => Some(v),
            None => env_string(env, "NETSECRETS_PROTOCOL")?
                .map(|v| protocol(&v, "NETSECRETS_PROTOCOL"))
                .transpose()?,
        };
        let net = self.net.finish(env)?;
        if net.server.is_none() && fallbacks.is_empty() {
            return Err(Error::usage(
                "no server given: set --server IP|HOST (or NETSECRETS_SERVER)",
            ));
        }
        Ok(FetchArgs {
            net,
            names,
            fallbacks,
            protocol,
        })
    }
}

impl FileArgs {
    /// Takes `--owner`, `--group`, `--mode` or a change action; `Ok(false)` for any other flag.
    pub(super) fn take(&mut self, arg: &str, p: &mut lexopt::Parser) -> Result<bool> {
        match arg {
            "--owner" => self.owner = Some(string(p, "--owner")?),
            "--group" => self.group = Some(string(p, "--group")?),
            "--mode" => self.mode = value(p, "--mode", "--mode")?,
            "--restart-unit" => self.actions.restart.push(unit(p, "--restart-unit")?),
            "--reload-unit" => self.actions.reload.push(unit(p, "--reload-unit")?),
            "--start-unit" => self.actions.start.push(unit(p, "--start-unit")?),
            "--systemctl" => self.actions.systemctl = Some(PathBuf::from(p.value()?)),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Appends `--request_secrets` names to `out`, each checked.
fn names(v: &str, out: &mut Vec<SecretName>) -> Result<()> {
    values::names(v, out).map_err(|e| Error::usage(format!("--request_secrets: {e}")))
}
