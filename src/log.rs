//! Diagnostics on stderr: one whole line per call, written with a single `write` so that lines
//! from concurrent connections never interleave.
//!
//! Nothing here knows about secrets; callers pass only names, peers, paths and outcomes. Values,
//! passwords and keys never reach this module.

use std::io::Write;

/// Writes `netsecrets: <msg>` and a newline to stderr. Errors writing stderr are ignored: a closed
/// log must not take the server down.
pub fn line(msg: &str) {
    let mut buf = Vec::with_capacity(msg.len() + 13);
    buf.extend_from_slice(b"netsecrets: ");
    buf.extend_from_slice(msg.as_bytes());
    buf.push(b'\n');
    let _ = std::io::stderr().lock().write_all(&buf);
}

/// Renders untrusted bytes (a requested name) for a log line: printable ASCII kept, anything else
/// escaped, at most 64 bytes shown.
pub fn printable(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(64) {
        if b.is_ascii_graphic() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if bytes.len() > 64 {
        out.push_str("...");
    }
    out
}
