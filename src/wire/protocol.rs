//! The request and response texts carried inside frames (after decryption).
//!
//! Request: `"<password> <secret name>"`. The server strips trailing ASCII whitespace and splits at
//! the **last** space, so a password may itself contain spaces. Response: the secret's bytes, or
//! the text `Not found`. Secret names are 1–255 bytes of `[A-Za-z0-9._@+-]`, not `.` or `..`, so
//! that a name is always safe as a file name. Pure functions only; no I/O.

/// The response for a known password and an unknown name.
pub const NOT_FOUND: &[u8] = b"Not found";

/// Longest secret name.
pub const MAX_NAME: usize = 255;

/// A parsed request; borrows from the decrypted payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub password: &'a [u8],
    pub name: &'a [u8],
}

/// Why a request payload is not a request.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum RequestError {
    /// No space between password and name (includes empty and all-space payloads).
    NoSpace,
    /// Nothing before the last space.
    EmptyPassword,
    /// The name part is not a valid secret name.
    BadName,
}

impl RequestError {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestError::NoSpace => "malformed request (no space)",
            RequestError::EmptyPassword => "malformed request (empty password)",
            RequestError::BadName => "malformed request (invalid secret name)",
        }
    }
}

/// Parses a decrypted request payload.
pub fn parse_request(payload: &[u8]) -> Result<Request<'_>, RequestError> {
    let trimmed = payload.trim_ascii_end();
    let space = trimmed
        .iter()
        .rposition(|&b| b == b' ')
        .ok_or(RequestError::NoSpace)?;
    let (password, name) = trimmed.split_at(space);
    let name = name.get(1..).unwrap_or_default();
    if password.is_empty() {
        return Err(RequestError::EmptyPassword);
    }
    if !valid_name(name) {
        return Err(RequestError::BadName);
    }
    Ok(Request { password, name })
}

/// Builds a request payload (before encryption).
pub fn build_request(password: &[u8], name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(password.len() + 1 + name.len());
    out.extend_from_slice(password);
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out
}

/// True for a valid secret name: 1–255 bytes of `[A-Za-z0-9._@+-]`, not `.` or `..`.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name != b"."
        && name != b".."
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b))
}

/// The one-line reason a name is invalid, for error messages.
pub fn name_problem(name: &str) -> String {
    format!(
        "invalid secret name \"{}\": use 1-255 characters of A-Z a-z 0-9 . _ @ + - (not \".\" or \"..\")",
        crate::sys::log::Printable(name.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(p: &'a [u8], n: &'a [u8]) -> Result<Request<'a>, RequestError> {
        Ok(Request {
            password: p,
            name: n,
        })
    }

    #[test]
    fn splits_at_last_space() {
        assert_eq!(parse_request(b"hunter2 db"), req(b"hunter2", b"db"));
        assert_eq!(
            parse_request(b"pass with spaces db-password"),
            req(b"pass with spaces", b"db-password")
        );
        assert_eq!(parse_request(b"pw  db"), req(b"pw ", b"db"));
    }

    #[test]
    fn trailing_whitespace_stripped() {
        assert_eq!(parse_request(b"pw db\n"), req(b"pw", b"db"));
        assert_eq!(parse_request(b"pw db \r\n\t "), req(b"pw", b"db"));
    }

    #[test]
    fn malformed() {
        assert_eq!(parse_request(b""), Err(RequestError::NoSpace));
        assert_eq!(parse_request(b"   "), Err(RequestError::NoSpace));
        assert_eq!(parse_request(b"nospace"), Err(RequestError::NoSpace));
        assert_eq!(parse_request(b" db"), Err(RequestError::EmptyPassword));
        assert_eq!(parse_request(b"pw \x00"), Err(RequestError::BadName));
        assert_eq!(parse_request(b"pw ../etc"), Err(RequestError::BadName));
        assert_eq!(parse_request(b"pw a/b"), Err(RequestError::BadName));
        assert_eq!(parse_request(b"pw .."), Err(RequestError::BadName));
        let long = [b"pw ".to_vec(), vec![b'a'; 1 << 20]].concat();
        assert_eq!(parse_request(&long), Err(RequestError::BadName));
    }

    #[test]
    fn names() {
        assert!(valid_name(b"db-password"));
        assert!(valid_name(b"a.b_c@d+e-f"));
        assert!(valid_name(&[b'x'; 255]));
        assert!(!valid_name(&[b'x'; 256]));
        assert!(!valid_name(b""));
        assert!(!valid_name(b"."));
        assert!(!valid_name(b".."));
        assert!(valid_name(b"..."));
        assert!(!valid_name(b"a b"));
        assert!(!valid_name("é".as_bytes()));
    }

    #[test]
    fn build_then_parse() {
        let r = build_request(b"p w", "name");
        assert_eq!(parse_request(&r), req(b"p w", b"name"));
    }
}
