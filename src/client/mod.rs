//! The client side: fetching secrets (`send`) and the stage-1 password helpers that use it
//! (`ask-password`, `copy-password`). Nothing here listens on a socket.
//!
//! - `fetch.rs`  — servers, fallbacks, retries with backoff; all values or an error.
//! - `send.rs`   — `send`: the output file's owner and group, fetching, writing or printing.
//! - `initrd.rs` — `ask-password` and `copy-password` for systemd stage 1.

mod fetch;
pub mod initrd;
mod send;

pub use fetch::{Check, Client};
pub use send::send;
