//! Command-line and environment parsing into plain values; nothing here opens a file or a socket.
//!
//! `netsecrets <subcommand> [flags]`. The first positional picks the subcommand and the same
//! `lexopt` parser is handed on. Environment variables fill in what the flags leave out (a flag
//! always beats the environment); the environment is passed in as a function so that tests feed
//! literal argument vectors and never touch the real one. Reading files, deriving keys and binding
//! sockets happen afterwards, in `server/config.rs`, `client/config.rs` and the commands.
//!
//! - `args.rs`    — what parsing produces: [`Command`], each subcommand's arguments, defaults.
//! - `parse.rs`   — [`parse`]: the subcommand, then its own flags, and the rules between them.
//! - `groups.rs`  — the flag groups several subcommands share, each parsed in one place: the
//!   connection flags and the environment (`send`, `receive`, `credentials`, `ask-password`),
//!   and the written file's owner, group, mode and change actions (`send`, `render`).
//! - `render.rs`  — `render`'s flags; `offline.rs` — `send`'s offline-cache flags.
//! - `lex.rs`     — the lexing helpers (a flag, its value as text, a value type, a unit name,
//!   `NAME=VALUE`, a variable) and their errors.
//! - `values.rs`  — value types (`Port`, `Seconds`, `Mode`, `Count`, lists) with `FromStr`.
//! - `help.rs`    — the `--help` texts.
//! - `suggest.rs` — the command list, "did you mean" for typos, `placeholder`.
//!
//! Imports go one way: `parse.rs` → `render.rs`, `offline.rs`, `suggest.rs` → `groups.rs` →
//! `args.rs`, `lex.rs` → `values.rs`, `help.rs`; `mod.rs` only names the files and re-exports.

mod args;
mod groups;
pub mod help;
mod lex;
mod offline;
mod parse;
mod render;
pub mod suggest;
#[cfg(test)]
mod tests;
pub mod values;

pub use args::{
    AskArgs, Command, CopyArgs, CredentialsArgs, FetchArgs, FileArgs, KeySource, KeygenArgs, Net,
    OfflineArgs, PasswordSource, ReceiveArgs, RenderArgs, SendArgs, DEFAULT_MAX_AGE,
    DEFAULT_PASSWORD_COPY, DEFAULT_PASSWORD_PATH, DEFAULT_PORT,
};
pub use parse::parse;
pub use values::Mode;
