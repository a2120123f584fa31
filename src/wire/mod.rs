//! What travels between client and server: the frame, the request/response texts inside it, and
//! the sealing of those texts. Pure byte handling: nothing here opens a socket or a file, and
//! both sides (and the fuzz targets) use the same code, so the two ends cannot disagree.
//!
//! - `frame.rs`    — the 4-byte length frame: pure decoder, capped reader, in-place builder.
//! - `protocol.rs` — the request/response texts inside a frame; the secret-name rule.
//! - `crypto.rs`   — AES-256-GCM sealing with SHA-256-derived keys; the password check.
//! - `bound.rs`    — protocol 2: answers bound to their request and name (associated data),
//!   beside protocol 1 on the same port; the client's checks of an answer.
//! - `cidr.rs`     — networks of peer addresses (IPv4/IPv6, IPv4-mapped peers): the value of
//!   `--authorized-ips` and of the clients file's `from=`, and the test each connection's peer
//!   address is put to. It lives here, below both `cli/` (which parses the flag) and `server/`
//!   (which matches peers), so that neither reaches into the other.

pub mod bound;
pub mod cidr;
pub mod crypto;
pub mod frame;
pub mod protocol;
