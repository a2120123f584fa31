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

/// A secret name that passed [`valid_name`]: parsing (`"db".parse::<SecretName>()`) is the only
/// way to make one, so code that holds one never checks again. Shown (`{}`, `{:?}`) as the
/// string it is.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretName(String);

impl SecretName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0.into_bytes()
    }
}

impl TryFrom<String> for SecretName {
    type Error = InvalidName;

    fn try_from(s: String) -> Result<SecretName, InvalidName> {
        if valid_name(s.as_bytes()) {
            Ok(SecretName(s))
        } else {
            Err(InvalidName(s))
        }
    }
}

impl std::str::FromStr for SecretName {
    type Err = InvalidName;

    fn from_str(s: &str) -> Result<SecretName, InvalidName> {
        SecretName::try_from(s.to_owned())
    }
}

impl std::fmt::Display for SecretName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for SecretName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

impl PartialEq<&str> for SecretName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A name that is not a [`SecretName`]; displays the one-line reason, for error messages.
#[derive(Debug)]
pub struct InvalidName(String);

impl std::fmt::Display for InvalidName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid secret name \"{}\": use 1-255 characters of A-Z a-z 0-9 . _ @ + - (not \".\" or \"..\")",
            crate::sys::log::Printable(self.0.as_bytes())
        )
    }
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
    fn secret_name_type_follows_the_rule() {
        assert_eq!("db".parse::<SecretName>().unwrap(), "db");
        assert_eq!(
            format!("{:?}", "db".parse::<SecretName>().unwrap()),
            "\"db\""
        );
        for bad in ["", ".", "..", "a/b", "a b", "é"] {
            let e = bad.parse::<SecretName>().unwrap_err().to_string();
            assert!(e.starts_with("invalid secret name"), "{e}");
        }
    }

    #[test]
    fn build_then_parse() {
        let r = build_request(b"p w", "name");
        assert_eq!(parse_request(&r), req(b"p w", b"name"));
    }
}
