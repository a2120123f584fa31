//! The server's configuration: `receive`'s flags turned into a checked [`ServerConfig`], after
//! reading every file they name and printing the warnings the configuration deserves. The part
//! a reload (SIGHUP) replaces, the secrets and the clients ([`Live`]), is built by [`load`] from
//! the same [`Sources`] each time.
//!
//! A configuration that cannot work is an error here, before any socket exists: a missing
//! password, an unreadable file, a duplicate or oversized secret, two clients with one password.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{KeySource, Net, PasswordSource, ReceiveArgs};
use crate::error::{Error, Result};
use crate::keys::{self, read_named, MAX_SMALL_FILE};
use crate::server::clients::{self, Access, Entry, Identities, Spec, DEFAULT_CLIENT};
use crate::server::limits::MAX_PASSWORD;
use crate::sys::input;
use crate::sys::log;
use crate::wire::bound::Protocol;
use crate::wire::cidr::Cidr;
use crate::wire::crypto::{self, Codec, Key, OVERHEAD};
use crate::wire::frame::MAX_RESPONSE;
use crate::wire::protocol::{SecretName, NOT_FOUND};

/// Default per-connection deadline on the server.
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(5);
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

/// Reads every file of `src` and checks them together; with `warn`, prints the warnings the
/// configuration deserves (at start; a reload only says whether it worked). The steps run in
/// this order, and so do their warnings: the secrets, the shared password (client "default"),
/// the clients file, then each client's password and key files.
pub fn load(src: &Sources, warn: bool) -> Result<Live> {
    let secrets = secrets(src, warn)?;
    let default = shared_passwords(src, warn)?;
    let entries = clients_file(src)?;
    let mut codecs = Codecs::default();
    let mut server_keys = ServerKeys {
        src,
        warn,
        digests: None,
    };
    let mut specs = Vec::with_capacity(entries.len() + 1);
    if let Some(passwords) = default {
        specs.push(Spec {
            name: DEFAULT_CLIENT.to_owned(),
            passwords,
            codecs: codecs.indexes(server_keys.get()?),
            from: Vec::new(),
            access: Access::All,
        });
    }
    let base = relative_base(src);
    for e in entries {
        specs.push(client_spec(e, src, &base, &mut codecs, &mut server_keys)?);
    }
    let ids = identities(src, codecs.list, specs)?;
    Ok(Live { secrets, ids })
}

/// The passwords of client "default", which may read every secret: the `--password-file`s
/// (or the literal password), or `None` when only the clients file names clients.
fn shared_passwords(src: &Sources, warn: bool) -> Result<Option<Vec<Vec<u8>>>> {
    let pw = match (&src.password, &src.clients_file) {
        (None, Some(_)) => return Ok(None),
        (pw, _) => pw,
    };
    if let (Some(PasswordSource::Env(_)), Some(_)) = (pw, &src.clients_file) {
        log::line("warning: NETSECRETS_PASSWORD adds a client \"default\" that may read every secret, beside --clients-file; unset it unless that is meant");
    }
    let shared = || "shared password".to_owned();
    let mut all = vec![server_password(
        keys::password(pw.as_ref(), warn)?,
        &shared,
    )?];
    if let Some(PasswordSource::File(path)) = pw {
        loose(path, "password file", true);
    }
    for path in &src.more_passwords {
        loose(path, "password file", true);
        let pw = keys::password(Some(&PasswordSource::File(path.clone())), warn)?;
        all.push(server_password(pw, &shared)?);
    }
    Ok(Some(all))
}

/// The lines of `--clients-file`, parsed (none without one).
fn clients_file(src: &Sources) -> Result<Vec<Entry>> {
    let Some(path) = &src.clients_file else {
        return Ok(Vec::new());
    };
    let text = read_named(path, "clients file", "--clients-file", MAX_VALUE)?;
    // The clients file holds no secret (it may live in the Nix store): only a writable one is
    // loose.
    loose(path, "clients file", false);
    let text = std::str::from_utf8(&text)
        .map_err(|_| Error::config(format!("clients file {} is not UTF-8 text", path.display())))?;
    clients::parse(text).map_err(|e| Error::config(format!("clients file {} {e}", path.display())))
}

/// Where relative paths in the clients file are taken: systemd's credentials first, else
/// beside the file.
fn relative_base(src: &Sources) -> PathBuf {
    match std::env::var_os("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => src
            .clients_file
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    }
}

/// The codecs of every client, each distinct key once (clients name them by index).
#[derive(Default)]
struct Codecs {
    list: Vec<Codec>,
    // Keyed by the digest alone, plaintext apart: a map of the same type as the clients' index
    // (`clients.rs`, `by_tag`) shares its code in the binary.
    by_key: HashMap<[u8; 32], usize>,
    plain: Option<usize>,
}

impl Codecs {
    /// The index of each key (`None`: plaintext), added when new.
    fn indexes(&mut self, digests: Vec<Option<[u8; 32]>>) -> Vec<usize> {
        digests.into_iter().map(|d| self.index(d)).collect()
    }

    fn index(&mut self, digest: Option<[u8; 32]>) -> usize {
        let list = &mut self.list;
        match digest {
            None => *self.plain.get_or_insert_with(|| {
                list.push(Codec::Plain);
                list.len() - 1
            }),
            Some(d) => *self.by_key.entry(d).or_insert_with(|| {
                list.push(Codec::Aes(Key::from_digest(&d)));
                list.len() - 1
            }),
        }
    }
}

/// The server's own keys (`None`: plaintext), read only when some client uses them, then kept.
struct ServerKeys<'a> {
    src: &'a Sources,
    warn: bool,
    digests: Option<Vec<Option<[u8; 32]>>>,
}

impl ServerKeys<'_> {
    fn get(&mut self) -> Result<Vec<Option<[u8; 32]>>> {
        if let Some(g) = &self.digests {
            return Ok(g.clone());
        }
        let src = self.src;
        let mut g = vec![key_digest(&src.key, self.warn)?];
        if let KeySource::File(path) = &src.key {
            loose(path, "encryption key file", true);
            for path in &src.more_keys {
                loose(path, "encryption key file", true);
                g.push(Some(keys::key_file_digest(path)?));
            }
        }
        self.digests = Some(g.clone());
        Ok(g)
    }
}

/// One line of the clients file as a client: its password and key files read (relative to
/// `base`) and checked; errors name the clients file and the line as well as the file that
/// failed.
fn client_spec(
    e: Entry,
    src: &Sources,
    base: &Path,
    codecs: &mut Codecs,
    server_keys: &mut ServerKeys,
) -> Result<Spec> {
    let clients_file = src.clients_file.as_deref().unwrap_or(Path::new(""));
    let line = e.line;
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
        let pw = read_named(&at(p), &what, "password=", MAX_SMALL_FILE).map_err(here)?;
        loose(&at(p), &what, true);
        let pw = keys::nonempty_line(&pw, || {
            here(Error::config(format!(
                "the {what} ({}) is empty",
                at(p).display()
            )))
        })?;
        passwords.push(server_password(pw.to_vec(), &|| what.clone()).map_err(here)?);
    }
    let digests = if e.keys.is_empty() {
        server_keys.get()?
    } else {
        let what = format!("key file of client {:?}", e.name);
        let mut digests = Vec::with_capacity(e.keys.len());
        for k in &e.keys {
            let bytes = read_named(&at(k), &what, "key=", MAX_SMALL_FILE).map_err(here)?;
            loose(&at(k), &what, true);
            keys::nonempty_line(&bytes, || {
                here(Error::config(format!(
                    "the {what} ({}) is empty",
                    at(k).display()
                )))
            })?;
            digests.push(Some(crypto::file_digest(&bytes)));
        }
        digests
    };
    Ok(Spec {
        name: e.name,
        passwords,
        codecs: codecs.indexes(digests),
        from: e.from,
        access: e.access,
    })
}

/// Indexes the clients under a fresh random salt (see `clients.rs`).
fn identities(src: &Sources, codecs: Vec<Codec>, specs: Vec<Spec>) -> Result<Identities> {
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
    Ok(ids)
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

/// Warns (one line naming the file and the fix) when `path` may be written by other users
/// than its owner, or, with `secret`, read by every user.
fn loose(path: &Path, what: &str, secret: bool) {
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
            keys::codec(key, warn)?; // its warning
            Some(crypto::str_digest(s))
        }
        KeySource::File(path) => Some(keys::key_file_digest(path)?),
        KeySource::None | KeySource::Insecure { .. } => {
            keys::codec(key, warn)?;
            None
        }
    })
}

/// The secrets, `-S` values first, then the `--secret-file`s, each checked.
fn secrets(src: &Sources, warn: bool) -> Result<HashMap<Vec<u8>, Vec<u8>>> {
    let mut secrets: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut all = src.literal.clone();
    for (name, path) in &src.secret_files {
        let shown = path.display();
        let data = input::read_file(
            path,
            MAX_VALUE,
            &format!("--secret-file {name}={shown}"),
            &|e| {
                Error::config(format!(
                    "cannot read secret file for {name:?}: {shown} (--secret-file)"
                ))
                .with_io(e)
            },
        )?;
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
