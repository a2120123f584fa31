//! What parsing produces: [`Command`] and every subcommand's arguments, plain values that the
//! sides run on (`server/config.rs`, `client/config.rs` and the commands read the files they
//! name), and the defaults the flags start from.

use std::path::PathBuf;
use std::time::Duration;

use super::values::Mode;
use crate::sys::systemctl::Actions;
use crate::wire::bound::Protocol;
use crate::wire::cidr::Cidr;
use crate::wire::protocol::SecretName;

/// Default TCP port (keep in sync with nix/modules/common.nix and README.md).
pub const DEFAULT_PORT: u16 = 8080;
/// Where the console prompt writes the password (keep in sync with nix/modules/common.nix,
/// consolePasswordFile, which the stage-2 fetch units load).
pub const DEFAULT_PASSWORD_PATH: &str = "/run/netsecrets-password";
/// `copy-password`'s default target: the same path as [`DEFAULT_PASSWORD_PATH`], so that with
/// both defaults nothing is copied (a custom initrd names its own `--to`). Not under
/// /run/secrets: sops-nix replaces that path (a symlink) at every activation (docs/nixos.md).
pub const DEFAULT_PASSWORD_COPY: &str = DEFAULT_PASSWORD_PATH;
/// Default `--offline-max-age`: a week (keep in sync with nix/modules/client/options.nix).
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

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
    /// `--password-file` given more than once: the earlier ones (the last is `password`).
    /// `receive` accepts every one of them (overlap rotation); `send` uses the last.
    pub more_password_files: Vec<PathBuf>,
    pub key: KeySource,
    /// `--encryption-key-file` given more than once: the earlier ones, as above.
    pub more_key_files: Vec<PathBuf>,
    pub verbose: bool,
    pub timeout: Option<Duration>,
}

pub struct ReceiveArgs {
    pub net: Net,
    /// `-S NAME=VALUE`, in order.
    pub secrets: Vec<(SecretName, Vec<u8>)>,
    /// `--secret-file NAME=PATH`, in order.
    pub secret_files: Vec<(SecretName, PathBuf)>,
    /// `--clients-file PATH`: named clients, each with its own password, key, networks and
    /// secrets (`server/clients.rs`).
    pub clients_file: Option<PathBuf>,
    pub authorized: Vec<Cidr>,
    /// Warnings for `--authorized-ips` networks written with host bits (`10.0.0.1/0`), printed
    /// by `server/config.rs`.
    pub authorized_warnings: Vec<String>,
    pub max_connections: usize,
    pub max_per_ip: usize,
    /// Failed authentications from one address before it is locked out (0: never).
    pub max_failures: u32,
    /// `--min-protocol`: 2 refuses protocol-1 requests.
    pub min_protocol: Protocol,
}

/// What to fetch and from where: `send`'s connection half, which `ask-password --verify-secret`
/// shares.
#[derive(Clone, PartialEq, Eq)]
pub struct FetchArgs {
    pub net: Net,
    pub names: Vec<SecretName>,
    pub fallbacks: Vec<String>,
    /// `--protocol`; `None`: 2 with a key, 1 in plaintext.
    pub protocol: Option<Protocol>,
}

/// The file `send` or `render` writes: `--owner`, `--group`, `--mode`, and the change actions
/// (`--restart-unit`, `--reload-unit`, `--start-unit`, `--systemctl`: what to tell systemd once
/// the file was written).
#[derive(Clone, PartialEq, Eq)]
pub struct FileArgs {
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Mode,
    pub actions: Actions,
}

impl Default for FileArgs {
    /// Readable by the owner alone until `--mode` says otherwise.
    fn default() -> FileArgs {
        FileArgs {
            owner: None,
            group: None,
            mode: Mode(0o400),
            actions: Actions::default(),
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct SendArgs {
    pub fetch: FetchArgs,
    pub file_output: Option<PathBuf>,
    /// The owner, group, mode and change actions of `--file-output` (each needs it).
    pub file: FileArgs,
    /// `--offline-cache DIR` and its flags: sealed copies for a boot without the server.
    pub offline: OfflineArgs,
}

/// The offline cache as asked for; `dir: None` means none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OfflineArgs {
    pub dir: Option<PathBuf>,
    /// Use the cache once no server could be reached for this long.
    pub after: Option<Duration>,
    pub max_age: Option<Duration>,
    /// `None`: `systemd-creds` from `PATH`.
    pub systemd_creds: Option<PathBuf>,
}

/// `netsecrets credentials`: serve secrets to systemd's `LoadCredential=` over a socket.
pub struct CredentialsArgs {
    /// The connection to the netsecrets server (no names: those are in `allow`).
    pub fetch: FetchArgs,
    /// `--socket PATH`; `None`: the socket systemd passes (`LISTEN_FDS`).
    pub socket: Option<PathBuf>,
    /// `--allow NAME=UNIT,...`: the units that may load each secret.
    pub allow: Vec<(SecretName, Vec<String>)>,
}

pub struct AskArgs {
    pub tty: PathBuf,
    pub output: PathBuf,
    pub prompt: String,
    /// With `--verify-secret NAME`: the connection used to check the typed password.
    pub verify: Option<FetchArgs>,
    pub tries: u32,
}

pub struct CopyArgs {
    pub from: PathBuf,
    pub to: PathBuf,
}

pub struct RenderArgs {
    /// `--template PATH`: the text with placeholders (e.g. a file in the Nix store).
    pub template: PathBuf,
    /// `--output PATH`: the rendered file.
    pub output: PathBuf,
    /// `--secret NAME=PATH`, in order: where the value of each secret is (its exact bytes).
    pub secrets: Vec<(SecretName, PathBuf)>,
    /// The rendered file's owner, group and mode, and the change actions after it was written.
    pub file: FileArgs,
    pub verbose: bool,
}

pub struct KeygenArgs {
    pub output: Option<PathBuf>,
    /// `--password`: a password (128 random bits) instead of a key.
    pub password: bool,
}

pub enum Command {
    Receive(ReceiveArgs),
    Send(SendArgs),
    Credentials(CredentialsArgs),
    AskPassword(AskArgs),
    CopyPassword(CopyArgs),
    Keygen(KeygenArgs),
    Render(RenderArgs),
    /// `placeholder NAME`: print the template placeholder of secret NAME.
    Placeholder(SecretName),
    Help(&'static str),
    Version,
}
