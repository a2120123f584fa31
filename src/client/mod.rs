//! The client side: fetching secrets (`send`) and the stage-1 password helpers that use it
//! (`ask-password`, `copy-password`), and `credentials`, which listens on an AF_UNIX socket
//! for systemd only.
//!
//! - `config.rs` — the connection flags into a checked configuration (servers, codec, protocol).
//! - `fetch.rs`  — servers, fallbacks, retries with backoff; all values or an error.
//! - `cache.rs`  — the offline cache: values sealed with `systemd-creds`, used when no server
//!   can be reached, deleted on `Not found` or when too old.
//! - `send.rs`   — `send`: the output file's owner and group, fetching, writing or printing.
//! - `initrd.rs` — `ask-password` and `copy-password` for systemd stage 1.
//! - `template.rs` — placeholders and rendering a template (pure, no I/O).
//! - `render.rs` — `render`: a template and secret files into a rendered file.
//! - `credentials.rs` — `credentials`: secrets for systemd's `LoadCredential=` over a socket,
//!   fetched on demand for the units allowed to have them.

mod cache;
pub mod config;
pub mod credentials;
mod fetch;
pub mod initrd;
mod render;
mod send;
pub mod template;

pub use fetch::{Check, Client};
pub use render::render;
pub use send::send;
