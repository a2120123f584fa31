//! The server side (`netsecrets receive`): who may connect, how many at once, and serving them.
//! Nothing here prompts, writes files or fetches secrets.
//!
//! - `config.rs`  — `receive`'s flags into a checked configuration: the files read, the keys
//!   derived, the warnings printed; the part a reload (SIGHUP) reads again.
//! - `receive.rs` — accept loop, bounded worker pool, one request per connection.
//! - `limits.rs`  — admission: connection caps per server and per address, answer bytes in
//!   flight, wrong-password lockout (per address and IPv6 /64), eviction of incomplete
//!   connections.
//! - `clients.rs` — named clients: the `--clients-file` format, keys to try per address,
//!   the client a password belongs to, what it may read.
//! - `drain.rs`   — closing: a connection keeps its slot and answer bytes until the client has
//!   acknowledged the answer, and is reset at its deadline.

pub mod clients;
pub mod config;
mod drain;
pub mod limits;
mod receive;

pub use receive::{receive, Server};
