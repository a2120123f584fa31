//! The client side: fetching secrets (`send`) and the stage-1 password helpers that use it
//! (`ask-password`, `copy-password`), and `credentials`, which listens on an AF_UNIX socket
//! for systemd only.
//!
//! - `fetch.rs`  — servers, fallbacks, retries with backoff; all values or an error.
//! - `send.rs`   — `send`: the output file's owner and group, fetching, writing or printing.
//! - `initrd.rs` — `ask-password` and `copy-password` for systemd stage 1.
//! - `credentials.rs` — `credentials`: secrets for systemd's `LoadCredential=` over a socket,
//!   fetched on demand for the units allowed to have them.

pub mod credentials;
mod fetch;
pub mod initrd;
mod send;

pub use fetch::{Check, Client};
pub use send::send;
