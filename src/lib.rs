//! netsecrets: network secrets distribution for NixOS, in one static binary.
//!
//! Layout: one folder per side, one file per concern; imports go one way, from the commands
//! down to `wire/` and `sys/`.
//! - `main.rs`     — dispatch and exit codes (the binary; this library is everything else).
//! - `cli/`        — flags and environment into plain values (lexopt); help texts.
//! - `config.rs`   — reads the files flags name, derives keys, checks, warns.
//! - `error.rs`    — the error type and its exit codes.
//! - `wire/`       — what travels: `frame.rs` (the 4-byte length frame), `protocol.rs` (the
//!   request/response texts; secret-name rules), `crypto.rs` (AES-256-GCM).
//! - `server/`     — `receive`: `receive.rs` (accept loop and worker pool), `limits.rs`
//!   (admission caps, failure lockout), `cidr.rs` (allowed networks).
//! - `client/`     — `send`: `fetch.rs` (servers, fallbacks, retries with backoff); `initrd.rs`
//!   (`ask-password`, `copy-password` for systemd stage 1).
//! - `sys/`        — the operating system: `net.rs` (deadlines on sockets, timeouts),
//!   `output.rs` (atomic secret files with owner, group and mode), `log.rs`
//!   (single-write log lines), and, compiled into the binary only,
//!   `thread_name.rs` (musl thread names without `printf`) and `unwind.rs` (the
//!   static binary's do-nothing unwinder).

// Unsafe code is held to a rule the compiler checks: every unsafe operation sits in its own
// `unsafe` block (also inside an `unsafe fn`), and every block says why it is sound.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod cli;
pub mod client;
pub mod config;
pub mod error;
pub mod server;
pub mod sys;
pub mod wire;
