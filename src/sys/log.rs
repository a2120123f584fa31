//! Diagnostics on stderr: one whole line per call, written with a single `write` so that lines
//! from concurrent connections never interleave.
//!
//! Nothing here knows about secrets; callers pass only names, peers, paths and outcomes. Values,
//! passwords and keys never reach this module.

/// Writes `netsecrets: <msg>` and a newline to stderr. Errors writing stderr are ignored: a closed
/// log must not take the server down.
///
/// One `write(2)` on descriptor 2, without std's stderr lock: the line is already whole, so the
/// lock would only serialise the workers (and put them to sleep on a futex under load).
pub fn line(msg: &str) {
    let mut text = start_line(msg.len());
    text.push_str(msg);
    end_line(text);
}

/// A line for [`end_line`], already holding the `netsecrets: ` prefix, with room for
/// `capacity` more bytes: a caller that formats its message straight into it saves a copy.
pub fn start_line(capacity: usize) -> String {
    let mut text = String::with_capacity(PREFIX.len() + capacity + 1);
    text.push_str(PREFIX);
    text
}

/// Adds the newline to a line begun with [`start_line`] and writes it, as [`line()`] does.
pub fn end_line(mut text: String) {
    text.push('\n');
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        // SAFETY: `rest` is a valid buffer of that length; descriptor 2 is only written here.
        let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        match usize::try_from(n) {
            Ok(written) if written > 0 => rest = rest.get(written..).unwrap_or_default(),
            _ if n < 0
                && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => break,
        }
    }
}

const PREFIX: &str = "netsecrets: ";

/// A duration as milliseconds with one decimal, `12.3ms` (integer arithmetic only).
pub struct Millis(pub std::time::Duration);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // u64, not as_micros's u128: u128 formatting would add 1 KiB to the binary for
        // durations that never come near 2^64 microseconds (saturated if one ever did).
        let tenths = u64::try_from(self.0.as_micros()).unwrap_or(u64::MAX) / 100;
        write!(f, "{}.{}ms", tenths / 10, tenths % 10)
    }
}

/// A duration as seconds, `1.5s` or `30s` (millisecond precision, integer arithmetic only).
pub fn secs(d: std::time::Duration) -> String {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX); // u64: as in Millis

    let frac = format!("{:03}", ms % 1000);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{frac}s", ms / 1000)
    }
}

/// Untrusted bytes (a requested name) for a log line: printable ASCII kept, anything else
/// escaped, at most 64 bytes shown.
pub struct Printable<'a>(pub &'a [u8]);

impl std::fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for &b in self.0.iter().take(64) {
            if b.is_ascii_graphic() {
                std::fmt::Write::write_char(f, char::from(b))?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        if self.0.len() > 64 {
            f.write_str("...")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn millis_and_printable() {
        assert_eq!(Millis(Duration::from_micros(12_345)).to_string(), "12.3ms");
        assert_eq!(Millis(Duration::from_secs(30)).to_string(), "30000.0ms");
        assert_eq!(secs(Duration::from_secs(30)), "30s");
        assert_eq!(secs(Duration::from_millis(1500)), "1.5s");
        assert_eq!(secs(Duration::from_millis(10)), "0.01s");
        assert_eq!(Printable(b"db\n\x00").to_string(), "db\\x0a\\x00");
        assert_eq!(Printable(&[b'a'; 70]).to_string().len(), 67);
    }
}
