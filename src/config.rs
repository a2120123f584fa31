//! Second step after parsing: read the files the flags name, derive the key, check everything,
//! and print the warnings that the configuration deserves. The result is what `server/` and
//! `client/` run on.
//!
//! A configuration that cannot work is an error here, before any socket exists: a missing
//! password, an unreadable file, a duplicate or oversized secret.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use crate::cli::{FetchArgs, KeySource, Net, PasswordSource, ReceiveArgs};
use crate::error::{Error, Result};
use crate::server::cidr::Cidr;
use crate::sys::input::{read_bounded, unfit_error, Unfit};
use crate::sys::log;
use crate::wire::crypto::{self, Codec, Key, OVERHEAD};
use crate::wire::frame::MAX_RESPONSE;
use crate::wire::protocol::NOT_FOUND;

/// Default per-connection deadline on the server.
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(5);
/// Default total deadline of the client, retries included.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest secret value that fits in a response frame.
pub const MAX_VALUE: usize = MAX_RESPONSE - OVERHEAD;

/// Everything the server needs, checked.
pub struct ServerConfig {
    pub bind: SocketAddr,
    pub password: Vec<u8>,
    pub secrets: HashMap<Vec<u8>, Vec<u8>>,
    pub codec: Codec,
    pub authorized: Vec<Cidr>,
    pub timeout: Duration,
    pub max_connections: usize,
    pub max_per_ip: usize,
    pub max_failures: u32,
    pub verbose: bool,
}

/// Everything the client needs to talk to the servers, checked.
pub struct ClientConfig {
    /// Primary first, then the fallbacks, all on `port`.
    pub servers: Vec<String>,
    pub port: u16,
    pub password: Vec<u8>,
    pub codec: Codec,
    pub timeout: Duration,
    pub verbose: bool,
}

/// Largest password or key file read (a password or key is a line, not a document).
pub const MAX_SMALL_FILE: usize = 64 * 1024;

/// Reads a whole regular file of at most `max` bytes ([`read_bounded`]); `what` names it in a
/// read error (`cannot read password file PATH`), `flag` in the others.
pub fn read_file(path: &Path, what: &str, flag: &str, max: usize) -> Result<Vec<u8>> {
    read_bounded(path, max).map_err(|why| match why {
        Unfit::Io(e) => {
            Error::config(format!("cannot read {what} {} ({flag})", path.display())).with_io(e)
        }
        _ => unfit_error(&format!("{flag} {}", path.display()), max, &why),
    })
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
        Some(PasswordSource::File(path)) => crypto::strip_one_newline(&read_file(
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

/// Builds the codec and says on stderr when traffic will be plaintext.
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
        KeySource::File(path) => {
            let bytes = read_file(
                path,
                "encryption key file",
                "--encryption-key-file",
                MAX_SMALL_FILE,
            )?;
            if crypto::strip_one_newline(&bytes).is_empty() {
                return Err(Error::config(format!(
                    "the encryption key file {} is empty",
                    path.display()
                )));
            }
            Codec::Aes(Key::from_file_contents(&bytes))
        }
    })
}

fn bind_addr(net: &Net) -> Result<SocketAddr> {
    let host = net.server.as_deref().unwrap_or("0.0.0.0");
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = bare.parse().map_err(|_| {
        Error::usage(format!(
            "--server {host:?}: the server binds to an IP address, like 0.0.0.0 or ::"
        ))
    })?;
    Ok(SocketAddr::new(ip, net.port))
}

pub fn server(args: ReceiveArgs) -> Result<ServerConfig> {
    let bind = bind_addr(&args.net)?;
    let password = password(args.net.password.as_ref(), true)?;
    let mut secrets: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    if !args.secrets.is_empty() {
        log::line("warning: -S NAME=VALUE is visible to every user in the process list; use --secret-file NAME=PATH");
    }
    for net in &args.authorized_warnings {
        log::line(net);
    }
    let mut all = args.secrets;
    for (name, path) in &args.secret_files {
        let data = read_bounded(path, MAX_VALUE).map_err(|why| match why {
            Unfit::Io(e) => Error::config(format!(
                "cannot read secret file for {name:?}: {} (--secret-file)",
                path.display()
            ))
            .with_io(e),
            _ => unfit_error(
                &format!("--secret-file {name}={}", path.display()),
                MAX_VALUE,
                &why,
            ),
        })?;
        all.push((name.clone(), data));
    }
    for (name, value) in all {
        if value == NOT_FOUND {
            return Err(Error::config(format!("secret {name:?} has the value \"Not found\", which clients read as a missing secret")));
        }
        if value.len() > MAX_VALUE {
            return Err(Error::config(format!(
                "secret {name:?} is over the {MAX_VALUE}-byte limit"
            )));
        }
        if secrets.insert(name.clone().into_bytes(), value).is_some() {
            return Err(Error::usage(format!(
                "secret {name:?} is given twice (-S / --secret-file)"
            )));
        }
    }
    if secrets.is_empty() {
        log::line("warning: no secrets configured (-S NAME=VALUE or --secret-file NAME=PATH): every request gets \"Not found\"");
    }
    let codec = codec(&args.net.key, true)?;
    Ok(ServerConfig {
        bind,
        password,
        secrets,
        codec,
        authorized: args.authorized,
        timeout: args.net.timeout.unwrap_or(SERVER_TIMEOUT),
        max_connections: args.max_connections,
        max_per_ip: args.max_per_ip,
        max_failures: args.max_failures,
        verbose: args.net.verbose,
    })
}

/// The connection half of a client configuration (used by `send` and `ask-password --verify-secret`).
pub fn client(args: &FetchArgs, password: Vec<u8>) -> Result<ClientConfig> {
    let servers: Vec<String> = args
        .net
        .server
        .iter()
        .chain(args.fallbacks.iter())
        .cloned()
        .collect();
    Ok(ClientConfig {
        servers,
        port: args.net.port,
        password,
        codec: codec(&args.net.key, true)?,
        timeout: args.net.timeout.unwrap_or(CLIENT_TIMEOUT),
        verbose: args.net.verbose,
    })
}
