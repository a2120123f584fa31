//! Command-line and environment parsing into plain values; nothing here opens a file or a socket.
//!
//! `netsecrets <subcommand> [flags]`. The first positional picks the subcommand and the same
//! `lexopt` parser is handed on. Environment variables fill in what the flags leave out (a flag
//! always beats the environment); the environment is passed in as a function so that tests feed
//! literal argument vectors and never touch the real one. Reading files, deriving keys and binding
//! sockets happen afterwards, in `config.rs`.
//!
//! - `mod.rs`    — what parsing produces: [`Command`] and each subcommand's arguments.
//! - `parse.rs`  — [`parse`]: the subcommand, then its own flags.
//! - `conn.rs`   — the connection flags the networked subcommands share, and the environment.
//! - `values.rs` — value types (`Port`, `Seconds`, `Mode`, `Count`, lists) with `FromStr`.
//! - `render.rs` — `render`'s flags ([`RenderArgs`]).
//! - `help.rs`   — the `--help` texts.
//! - `suggest.rs` — the command list, "did you mean" for typos, `placeholder`.

use std::path::PathBuf;
use std::time::Duration;

use crate::wire::cidr::Cidr;
use crate::wire::protocol::SecretName;

mod conn;
pub mod help;
pub mod offline;
mod parse;
mod render;
pub mod suggest;
#[cfg(test)]
mod tests;
pub mod values;

pub use parse::parse;
pub use render::RenderArgs;
pub use values::Mode;

/// Default TCP port (keep in sync with nix/modules/*.nix and README.md).
pub const DEFAULT_PORT: u16 = 8080;
/// Where the console prompt writes the password (keep in sync with nix/modules/common.nix,
/// consolePasswordFile, which the stage-2 fetch units load).
pub const DEFAULT_PASSWORD_PATH: &str = "/run/netsecrets-password";
/// `copy-password`'s default target: where the NixOS module's stage-2 units read the password
/// typed in stage 1 (the same path as [`DEFAULT_PASSWORD_PATH`]). Not under /run/secrets:
/// sops-nix replaces that path (a symlink) at every activation (docs/nixos.md).
pub const DEFAULT_PASSWORD_COPY: &str = DEFAULT_PASSWORD_PATH;

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
    /// by `config.rs`.
    pub authorized_warnings: Vec<String>,
    pub max_connections: usize,
    pub max_per_ip: usize,
    /// Failed authentications from one address before it is locked out (0: never).
    pub max_failures: u32,
    /// `--min-protocol`: 2 refuses protocol-1 requests.
    pub min_protocol: crate::wire::bound::Protocol,
}

/// What to fetch and from where: `send`'s connection half, which `ask-password --verify-secret`
/// shares.
#[derive(Clone, PartialEq, Eq)]
pub struct FetchArgs {
    pub net: Net,
    pub names: Vec<SecretName>,
    pub fallbacks: Vec<String>,
    /// `--protocol`; `None`: 2 with a key, 1 in plaintext.
    pub protocol: Option<crate::wire::bound::Protocol>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct SendArgs {
    pub fetch: FetchArgs,
    pub file_output: Option<PathBuf>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Mode,
    /// `--restart-unit`, `--reload-unit`, `--start-unit`, `--systemctl`: what to tell systemd
    /// after the file was written (needs `--file-output`).
    pub actions: crate::sys::systemctl::Actions,
    /// `--offline-cache DIR` and its flags: sealed copies for a boot without the server.
    pub offline: offline::OfflineArgs,
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
