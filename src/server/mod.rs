//! The server side (`netsecrets receive`): who may connect, how many at once, and serving them.
//! Nothing here prompts, writes files or fetches secrets; the configuration arrives checked
//! from `config.rs`.
//!
//! - `receive.rs`   — the command: set up (the listener and what accepted sockets inherit),
//!   run, and how it ends.
//! - `pool.rs`      — the bounded worker pool (each worker accepts and serves) and the monitor
//!   that grows it or evicts when every worker is held.
//! - `serve.rs`     — one connection: the checks after `accept`, the request read, judged and
//!   answered, the log line.
//! - `signals.rs`   — SIGHUP: the configuration reloaded on a thread of its own; the other
//!   signals keep their default action.
//! - `log_budget.rs` — log lines rate-limited per kind, the dropped ones counted once a second.
//! - `limits.rs`    — admission: connection caps per server and per address, answer bytes in
//!   flight, wrong-password lockout (per address and IPv6 /64), eviction of incomplete
//!   connections.
//! - `clients.rs`   — named clients: the `--clients-file` format, keys to try per address,
//!   the client a password belongs to, what it may read.
//! - `drain.rs`     — closing: a connection keeps its answer bytes until the client has
//!   acknowledged the answer, and is reset at its deadline.
//! - `cidr.rs`      — allowed networks, IPv4/IPv6 and IPv4-mapped peers.

pub mod cidr;
pub mod clients;
mod drain;
pub mod limits;
mod log_budget;
mod pool;
mod receive;
mod serve;
mod signals;

pub use receive::{receive, Server};
