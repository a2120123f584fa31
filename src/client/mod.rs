//! The client side: fetching secrets (`send`) and the stage-1 password helpers that use it
//! (`ask-password`, `copy-password`). Nothing here listens on a socket.
//!
//! - `fetch.rs`  — servers, fallbacks, retries with backoff; all values or an error.
//! - `initrd.rs` — `ask-password` and `copy-password` for systemd stage 1.

mod fetch;
pub mod initrd;

pub use fetch::Client;
