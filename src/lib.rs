//! netsecrets: network secrets distribution for NixOS, in one static binary.
//!
//! Layout: one folder per side, one file per concern (each folder's `mod.rs` says more).
//! Imports go one way, never back up and never in a circle, also between the files of one
//! folder (`bench/import-cycles` checks it):
//!   `main.rs` → `server/`, `client/`, `sys/keygen.rs` (the commands) → `keys.rs` → `cli/` →
//!   `wire/` → `sys/` → `error.rs`.
//! So `server/` and `client/` never import each other, and what both need sits below them:
//! `keys.rs` (reading the password and the key), `cli/` (the parsed arguments), `wire/cidr.rs`
//! (the networks `--authorized-ips` and the clients file name: `cli/` parses them, `server/`
//! matches peers against them, so they live in `wire/`, below both, which holds pure code the
//! two ends share).
//! - `main.rs`   — dispatch and exit codes (the binary; this library is everything else).
//! - `error.rs`  — the error type and its exit codes.
//! - `keys.rs`   — the password and the encryption key, read and checked the same way on both
//!   sides (a bounded regular file, not empty), the AES key derived, the warnings printed.
//! - `cli/`      — flags and environment into plain values (lexopt); opens nothing:
//!   - `args.rs` (the parsed commands and their defaults), `parse.rs` (each subcommand's flags
//!     and the rules between them), `groups.rs` (the flag groups several subcommands share:
//!     connection flags and the environment, the written file's owner, group, mode and change
//!     actions), `render.rs` and `offline.rs` (`render`'s flags, `send`'s offline-cache flags),
//!     `lex.rs` (the lexing helpers all of them use), `values.rs` (`Port`, `Seconds`, `Mode`,
//!     `Count` as `FromStr`), `help.rs` (the `--help` texts), `suggest.rs` ("did you mean").
//! - `wire/`     — what travels, the same code on both sides:
//!   - `frame.rs` (the 4-byte length frame), `protocol.rs` (the request/response texts; the
//!     secret-name rule and `SecretName`), `crypto.rs` (AES-256-GCM, the password check),
//!     `bound.rs` (protocol 2: every answer bound to its request and name; the client's
//!     checks of an answer in either protocol), `cidr.rs` (networks of peer addresses).
//! - `server/`   — `receive`:
//!   - `config.rs` (the flags into a checked configuration: files read, keys derived, warnings;
//!     the part SIGHUP reloads), `receive.rs` (the command: set up the listener, run),
//!     `pool.rs` (worker pool and its monitor), `serve.rs` (one connection: checks, request,
//!     answer, log line), `signals.rs` (SIGHUP: the configuration reloaded), `log_budget.rs`
//!     (log lines rate-limited per kind), `limits.rs` (admission caps, failure lockout,
//!     eviction), `clients.rs` (the `--clients-file` format and the per-request lookup of keys,
//!     client and access), `drain.rs` (closing: answer bytes held until acknowledged).
//! - `client/`   — `send`, the stage-1 helpers that fetch, and `render`:
//!   - `config.rs` (the connection flags into a checked configuration), `fetch.rs` (servers,
//!     fallbacks hedged after 0.5 s, retries with pauses by kind of failure), `cache.rs` (the
//!     offline cache), `send.rs` (owner and group look-ups, writing or printing), `initrd.rs`
//!     (`ask-password`, `copy-password`), `credentials.rs` (`credentials`: `LoadCredential=`
//!     over an AF_UNIX socket), `template.rs` (placeholders and single-pass rendering, pure),
//!     `render.rs` (`render`: template and secret files into a rendered file).
//! - `sys/`      — what the program asks of the operating system:
//!   - `net.rs` (deadlines on sockets, socket options, timeouts), `input.rs` (every file a flag
//!     names: regular only, bounded, with the caller's error), `output.rs` (atomic secret files
//!     with owner, group and mode, rewritten only when changed), `creds.rs` (`systemd-creds`),
//!     `systemctl.rs` (change actions: `systemctl --no-block try-restart ...`), `spawn.rs`
//!     (starting a program, waiting for it by a deadline), `notify.rs`
//!     (`READY=1` for systemd), `console.rs` (the password prompt, echo off), `wipe.rs`
//!     (zeroing buffers), `keygen.rs` (`keygen`), `log.rs` (single-write log lines), and,
//!     compiled into the static binary only (by `main.rs`), `thread_name.rs` (thread names
//!     without musl's `printf`) and `unwind.rs` (the do-nothing unwinder).

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
