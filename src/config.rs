//! Second step after parsing: read the files the flags name, derive the key, check everything,
//! and print the warnings that the configuration deserves. The result is what `server/` and
//! `client/` run on.
//!
//! A configuration that cannot work is an error here, before any socket exists: a missing
//! password, an unreadable file, a duplicate or oversized secret.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{FetchArgs, KeySource, Net, PasswordSource, ReceiveArgs};
use crate::error::{Error, Result};
use crate::server::clients::{self, Access, Identities, Spec, DEFAULT_CLIENT};
use crate::server::limits::MAX_PASSWORD;
use crate::sys::input::{read_bounded, unfit_error, Unfit};
use crate::sys::log;
use crate::wire::bound::Protocol;
use crate::wire::cidr::Cidr;
use crate::wire::crypto::{self, Codec, Key, OVERHEAD};
use crate::wire::frame::MAX_RESPONSE;
use crate::wire::protocol::{SecretName, NOT_FOUND};

/// Default per-connection deadline on the server.
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(5);
/// Default total deadline of the client, retries included.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest secret value that fits in a response frame.
pub const MAX_VALUE: usize = MAX_RESPONSE - OVERHEAD;

/// Everything the server needs, checked.
pub struct ServerConfig {
    pub bind: SocketAddr,
    /// Where the reloadable part comes from; read again on SIGHUP.
    pub sources: Sources,
    /// The reloadable part, as first loaded.
    pub live: Live,
    pub authorized: Vec<Cidr>,
    pub timeout: Duration,
    pub max_connections: usize,
    pub max_per_ip: usize,
    pub max_failures: u32,
    pub verbose: bool,
    /// Protocol-1 requests are refused below [`Protocol::V2`].
    pub min_protocol: Protocol,
}

/// Everything the client needs to talk to the servers, checked.
pub struct ClientConfig {
    /// Primary first, then the fallbacks, all on `port`.
    pub servers: Vec<String>,
    pub port: u16,
    pub password: Vec<u8>,
    pub codec: Codec,
    /// Protocol 2 whenever there is a key, unless `--protocol 1`; protocol 1 in plaintext.
    pub protocol: Protocol,
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

/// Refuses a server password longer than a request may carry (every request with it would be
/// refused unread).
fn server_password(pw: Vec<u8>, what: &dyn Fn() -> String) -> Result<Vec<u8>> {
    if pw.len() > MAX_PASSWORD {
        return Err(Error::config(format!(
            "the {} is {} bytes long: at most {MAX_PASSWORD} (a request must stay small)",
            what(),
            pw.len()
        )));
    }
    Ok(pw)
}

/// The contents of `--encryption-key-file`: a bounded regular file that is not empty once one
/// trailing newline is stripped.
fn key_file(path: &Path) -> Result<Vec<u8>> {
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
    Ok(bytes)
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
        KeySource::File(path) => Codec::Aes(Key::from_file_contents(&key_file(path)?)),
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

/// What the server reads again on reload (SIGHUP): every file it was given. Literal `-S`
/// values stay as given.
pub struct Sources {
    pub password: Option<PasswordSource>,
    /// More `--password-file`s: all accepted beside `password` (overlap rotation).
    pub more_passwords: Vec<PathBuf>,
    pub key: KeySource,
    /// More `--encryption-key-file`s: all accepted beside `key`.
    pub more_keys: Vec<PathBuf>,
    pub literal: Vec<(SecretName, Vec<u8>)>,
    pub secret_files: Vec<(SecretName, PathBuf)>,
    pub clients_file: Option<PathBuf>,
}

/// The part of the server's configuration that a reload replaces: the secrets and the clients.
pub struct Live {
    pub secrets: HashMap<Vec<u8>, Vec<u8>>,
    pub ids: Identities,
}

/// Reads every file of `src` and checks them together; with `warn`, prints the warnings the
/// configuration deserves (at start; a reload only says whether it worked).
pub fn load(src: &Sources, warn: bool) -> Result<Live> {
    let secrets = secrets(src, warn)?;
    let default = match (&src.password, &src.clients_file) {
        (None, Some(_)) => None,
        (pw, _) => {
            if let (Some(PasswordSource::Env(_)), Some(_)) = (pw, &src.clients_file) {
                log::line("warning: NETSECRETS_PASSWORD adds a client \"default\" that may read every secret, beside --clients-file; unset it unless that is meant");
            }
            let shared = || "shared password".to_owned();
            let mut all = vec![server_password(password(pw.as_ref(), warn)?, &shared)?];
            if let Some(PasswordSource::File(path)) = pw {
                loose(path, "password file", true);
            }
            for path in &src.more_passwords {
                loose(path, "password file", true);
                let pw = password(Some(&PasswordSource::File(path.clone())), warn)?;
                all.push(server_password(pw, &shared)?);
            }
            Some(all)
        }
    };
    let entries = match &src.clients_file {
        None => Vec::new(),
        Some(path) => {
            let text = read_file(path, "clients file", "--clients-file", MAX_VALUE)?;
            // The clients file holds no secret (it may live in the Nix store): only a writable
            // one is loose.
            loose(path, "clients file", false);
            let text = std::str::from_utf8(&text).map_err(|_| {
                Error::config(format!("clients file {} is not UTF-8 text", path.display()))
            })?;
            clients::parse(text)
                .map_err(|e| Error::config(format!("clients file {} {e}", path.display())))?
        }
    };
    // Relative paths in the clients file: systemd's credentials first, else beside the file.
    let base = match std::env::var_os("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => src
            .clients_file
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    let mut codecs: Vec<Codec> = Vec::new();
    // Keyed by the digest alone, plaintext apart: a map of the same type as the clients' index
    // (`clients.rs`, `by_tag`) shares its code in the binary.
    let mut by_key: HashMap<[u8; 32], usize> = HashMap::new();
    let mut plain: Option<usize> = None;
    let mut add_codec = |digest: Option<[u8; 32]>| match digest {
        None => *plain.get_or_insert_with(|| {
            codecs.push(Codec::Plain);
            codecs.len() - 1
        }),
        Some(d) => *by_key.entry(d).or_insert_with(|| {
            codecs.push(Codec::Aes(Key::from_digest(&d)));
            codecs.len() - 1
        }),
    };
    // The server's own keys (or plaintext), read only when some client uses them.
    let mut global: Option<Vec<Option<[u8; 32]>>> = None;
    let mut global_keys = || -> Result<Vec<Option<[u8; 32]>>> {
        if let Some(g) = &global {
            return Ok(g.clone());
        }
        let mut g = vec![key_digest(&src.key, warn)?];
        if let KeySource::File(path) = &src.key {
            loose(path, "encryption key file", true);
            for path in &src.more_keys {
                loose(path, "encryption key file", true);
                g.push(Some(crypto::file_digest(&key_file(path)?)));
            }
        }
        global = Some(g.clone());
        Ok(g)
    };
    let mut specs = Vec::with_capacity(entries.len() + 1);
    if let Some(passwords) = default {
        specs.push(Spec {
            name: DEFAULT_CLIENT.to_owned(),
            passwords,
            codecs: global_keys()?.into_iter().map(&mut add_codec).collect(),
            from: Vec::new(),
            access: Access::All,
        });
    }
    let clients_file = src.clients_file.as_deref().unwrap_or(Path::new(""));
    for e in entries {
        let line = e.line;
        // Errors name the clients file and the line as well as the file that failed.
        let here = |err: Error| {
            Error::config(format!(
                "clients file {} line {line}: {err}",
                clients_file.display()
            ))
        };
        let at = |p: &Path| base.join(p);
        let what = format!("password file of client {:?}", e.name);
        let mut passwords = Vec::with_capacity(e.passwords.len());
        for p in &e.passwords {
            let pw = read_file(&at(p), &what, "password=", MAX_SMALL_FILE).map_err(here)?;
            loose(&at(p), &what, true);
            let pw = crypto::strip_one_newline(&pw);
            if pw.is_empty() {
                return Err(here(Error::config(format!(
                    "the {what} ({}) is empty",
                    at(p).display()
                ))));
            }
            passwords.push(server_password(pw.to_vec(), &|| what.clone()).map_err(here)?);
        }
        let digests = if e.keys.is_empty() {
            global_keys()?
        } else {
            let mut digests = Vec::with_capacity(e.keys.len());
            for k in &e.keys {
                let what = format!("key file of client {:?}", e.name);
                let bytes = read_file(&at(k), &what, "key=", MAX_SMALL_FILE).map_err(here)?;
                loose(&at(k), &what, true);
                if crypto::strip_one_newline(&bytes).is_empty() {
                    return Err(here(Error::config(format!(
                        "the {what} ({}) is empty",
                        at(k).display()
                    ))));
                }
                digests.push(Some(crypto::file_digest(&bytes)));
            }
            digests
        };
        specs.push(Spec {
            name: e.name,
            passwords,
            codecs: digests.into_iter().map(&mut add_codec).collect(),
            from: e.from,
            access: e.access,
        });
    }
    let mut salt = [0u8; 32];
    getrandom::getrandom(&mut salt)
        .map_err(|e| Error::config(format!("cannot read the OS random source: {e}")))?;
    let ids = Identities::new(salt, codecs, specs).map_err(|e| match &src.clients_file {
        Some(path) => Error::config(format!("clients file {}: {e}", path.display())),
        None => Error::config(e),
    })?;
    if ids.is_empty() {
        log::line("warning: the clients file names no client: every request is refused");
    }
    Ok(Live { secrets, ids })
}

/// Warns (one line naming the file and the fix) when `path` may be written by other users
/// than its owner, or, with `secret`, read by every user.
pub fn loose(path: &Path, what: &str, secret: bool) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode();
    let writable = mode & 0o022 != 0;
    let readable = secret && mode & 0o004 != 0;
    if writable || readable {
        let how = match (writable, readable) {
            (true, true) => "writable by others and readable by every user",
            (true, false) => "writable by others",
            _ => "readable by every user",
        };
        let fix = if secret { "go-w,o-rwx" } else { "go-w" };
        log::line(&format!(
            "warning: {what} {} is {how} (mode {:o}): chmod {fix} {}",
            path.display(),
            mode & 0o7777,
            path.display()
        ));
    }
}

/// The AES key `key` stands for (SHA-256 of it), or `None` for plaintext, with the warnings
/// that plaintext deserves.
fn key_digest(key: &KeySource, warn: bool) -> Result<Option<[u8; 32]>> {
    Ok(match key {
        KeySource::Str(s) => {
            codec(key, warn)?; // its warning
            Some(crypto::str_digest(s))
        }
        KeySource::File(path) => Some(crypto::file_digest(&key_file(path)?)),
        KeySource::None | KeySource::Insecure { .. } => {
            codec(key, warn)?;
            None
        }
    })
}

fn secrets(src: &Sources, warn: bool) -> Result<HashMap<Vec<u8>, Vec<u8>>> {
    let mut secrets: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut all = src.literal.clone();
    for (name, path) in &src.secret_files {
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
        loose(path, &format!("secret file for {name:?}"), true);
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
    if warn && secrets.is_empty() {
        log::line("warning: no secrets configured (-S NAME=VALUE or --secret-file NAME=PATH): every request gets \"Not found\"");
    }
    Ok(secrets)
}

pub fn server(args: ReceiveArgs) -> Result<ServerConfig> {
    let bind = bind_addr(&args.net)?;
    if !args.secrets.is_empty() {
        log::line("warning: -S NAME=VALUE is visible to every user in the process list; use --secret-file NAME=PATH");
    }
    for net in &args.authorized_warnings {
        log::line(net);
    }
    let sources = Sources {
        password: args.net.password,
        more_passwords: args.net.more_password_files,
        key: args.net.key,
        more_keys: args.net.more_key_files,
        literal: args.secrets,
        secret_files: args.secret_files,
        clients_file: args.clients_file,
    };
    let live = load(&sources, true)?;
    if args.min_protocol == Protocol::V2
        && matches!(sources.key, KeySource::None | KeySource::Insecure { .. })
    {
        log::line("warning: --min-protocol 2 without an encryption key: every request without a client key is refused (protocol 2 needs a key)");
    }
    Ok(ServerConfig {
        bind,
        sources,
        live,
        authorized: args.authorized,
        timeout: args.net.timeout.unwrap_or(SERVER_TIMEOUT),
        max_connections: args.max_connections,
        max_per_ip: args.max_per_ip,
        max_failures: args.max_failures,
        verbose: args.net.verbose,
        min_protocol: args.min_protocol,
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
    let codec = codec(&args.net.key, true)?;
    let protocol = match (args.protocol, &codec) {
        (Some(Protocol::V2), Codec::Plain) => {
            return Err(Error::usage(
                "--protocol 2 needs an encryption key (--encryption-key-file); in plaintext only protocol 1 exists",
            ))
        }
        (_, Codec::Plain) | (Some(Protocol::V1), _) => Protocol::V1,
        (_, Codec::Aes(_)) => Protocol::V2,
    };
    Ok(ClientConfig {
        servers,
        port: args.net.port,
        password,
        codec,
        protocol,
        timeout: args.net.timeout.unwrap_or(CLIENT_TIMEOUT),
        verbose: args.net.verbose,
    })
}
