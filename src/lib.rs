//! netsecrets: network secrets distribution for NixOS, in one static binary.
//!
//! Layout (one file per concern):
//! - `main.rs`     — dispatch and exit codes (the binary; this library is everything else).
//! - `unwind.rs`   — the binary's do-nothing unwinder for the static release build (size).
//! - `cli.rs`      — flags and environment into plain values (lexopt); help texts.
//! - `config.rs`   — reads the files flags name, derives keys, checks, warns.
//! - `error.rs`    — the error type and its exit codes.
//! - `frame.rs`    — the 4-byte length frame: pure decoder, capped reader/writer.
//! - `protocol.rs` — the request/response texts inside a frame; secret-name rules.
//! - `crypto.rs`   — AES-256-GCM sealing with SHA-256-derived keys.
//! - `cidr.rs`     — allowed networks, IPv4/IPv6 and IPv4-mapped peers.
//! - `limits.rs`   — admission: connection caps per server and per address, failure lockout.
//! - `net.rs`      — whole-exchange deadlines on sockets; connecting within a deadline.
//! - `server.rs`   — `receive`: accept loop and bounded worker pool.
//! - `client.rs`   — `send`: servers, fallbacks, retries with backoff.
//! - `output.rs`   — atomic secret files with owner, group and mode.
//! - `initrd.rs`   — `ask-password`, `copy-password`, `keygen` for systemd stage 1.
//! - `log.rs`      — single-write log lines on stderr.

pub mod cidr;
pub mod cli;
pub mod client;
pub mod config;
pub mod crypto;
pub mod error;
pub mod frame;
pub mod initrd;
pub mod limits;
pub mod log;
pub mod net;
pub mod output;
pub mod protocol;
pub mod server;
