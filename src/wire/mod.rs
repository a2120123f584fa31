//! What travels between client and server: the frame, the request/response texts inside it, and
//! the sealing of those texts. Pure byte handling: nothing here opens a socket or a file, and
//! both sides (and the fuzz targets) use the same code, so the two ends cannot disagree.
//!
//! - `frame.rs`    — the 4-byte length frame: pure decoder, capped reader, in-place builder.
//! - `protocol.rs` — the request/response texts inside a frame; the secret-name rule.
//! - `crypto.rs`   — AES-256-GCM sealing with SHA-256-derived keys; the password check.

pub mod crypto;
pub mod frame;
pub mod protocol;
