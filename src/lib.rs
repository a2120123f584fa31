//! netsecrets: network secrets distribution for NixOS, in one static binary.
//!
//! Layout: one folder per side, one file per concern (each folder's `mod.rs` says more).
//! Imports go one way: from the commands (`server/`, `client/`, `sys/keygen.rs`) through
//! `config.rs` and `cli/` down to `wire/`, `sys/` and `server/cidr.rs` (the value type of
//! `--authorized-ips`), which import nothing above them but `error.rs`.
//! - `main.rs`   — dispatch and exit codes (the binary; this library is everything else).
//! - `error.rs`  — the error type and its exit codes.
//! - `config.rs` — reads the files flags name, derives keys, checks, warns.
//! - `cli/`      — flags and environment into plain values (lexopt):
//!   - `mod.rs` (the parsed commands), `parse.rs` (the subcommands' flags), `conn.rs` (the
//!     shared connection flags and the environment), `values.rs` (`Port`, `Seconds`, `Mode`,
//!     `Count` as `FromStr`), `render.rs` (`render`'s flags), `help.rs` (the `--help` texts).
//! - `wire/`     — what travels, the same code on both sides:
//!   - `frame.rs` (the 4-byte length frame), `protocol.rs` (the request/response texts; the
//!     secret-name rule and `SecretName`), `crypto.rs` (AES-256-GCM, the password check),
//!     `bound.rs` (protocol 2: every answer bound to its request and name; the client's
//!     checks of an answer in either protocol).
//! - `server/`   — `receive`:
//!   - `receive.rs` (accept loop, worker pool, SIGHUP reload), `limits.rs` (admission caps,
//!     failure lockout, eviction), `clients.rs` (the `--clients-file` format and the
//!     per-request lookup of keys, client and access), `cidr.rs` (allowed networks).
//! - `client/`   — `send`, the stage-1 helpers that fetch, and `render`:
//!   - `fetch.rs` (servers, fallbacks hedged after 0.5 s, retries with pauses by kind of
//!     failure), `send.rs` (owner and group look-ups,
//!     writing or printing), `initrd.rs` (`ask-password`, `copy-password`),
//!     `credentials.rs` (`credentials`: `LoadCredential=` over an AF_UNIX socket), `template.rs`
//!     (placeholders and single-pass rendering, pure), `render.rs` (`render`: template and
//!     secret files into a rendered file).
//! - `sys/`      — what the program asks of the operating system:
//!   - `net.rs` (deadlines on sockets, socket options, timeouts), `input.rs` (secret, password
//!     and key files: regular only, bounded), `output.rs` (atomic secret files with owner,
//!     group and mode, rewritten only when changed), `systemctl.rs` (change actions:
//!     `systemctl --no-block try-restart ...`), `notify.rs` (`READY=1` for systemd),
//!     `console.rs` (the password prompt, echo off),
//!     `keygen.rs` (`keygen`), `log.rs` (single-write log lines), and, compiled into the
//!     static binary only (by `main.rs`), `thread_name.rs` (thread names without musl's
//!     `printf`) and `unwind.rs` (the do-nothing unwinder).

// Unsafe code is held to a rule the compiler checks: every unsafe operation sits in its own
// `unsafe` block (also inside an `unsafe fn`), and every block says why it is sound.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod cli;
pub mod client;
pub mod error;
pub mod keys;
pub mod server;
pub mod sys;
pub mod wire;
