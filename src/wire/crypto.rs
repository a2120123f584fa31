//! Payload encryption: AES-256-GCM with a random 96-bit nonce and no associated data.
//!
//! Sealed payload = `nonce (12 bytes) || ciphertext || tag (16 bytes)`. The key is SHA-256 of the
//! key string, or of the key file with at most one trailing `\n` / `\r\n` removed, so that a key
//! typed into a Nix option and a file written by `echo` agree. Every message gets a fresh nonce
//! from the OS random source; if that source fails, sealing fails: there is no fallback nonce.
//!
//! [`Codec`] is what the rest of the program uses: plaintext or AES, decided once at start.
//! Secret-holding types here have no `Debug`, so a key can't be printed by accident.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use sha2::{Digest, Sha256};

use crate::wire::frame;

pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Bytes that sealing adds to a payload.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Why a payload could not be opened.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than nonce plus tag: cannot be an AES-GCM payload.
    TooShort,
    /// The tag did not verify: wrong key, tampered or not encrypted at all.
    BadTag,
}

/// Why a payload could not be sealed.
#[derive(Debug)]
pub enum SealError {
    /// The OS random source gave no nonce; there is no fallback nonce.
    NoRandom(getrandom::Error),
    /// The payload is too long for AES-GCM (64 GiB) or for a frame header (4 GiB). Every
    /// payload this program seals is capped far below both, so this is a bug, not an input.
    TooLong,
}

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SealError::NoRandom(e) => write!(f, "{e}"),
            SealError::TooLong => f.write_str("payload too long to seal"),
        }
    }
}

/// An AES-256-GCM key. No `Debug`, no `Clone`: it is built once and shared by reference.
pub struct Key {
    cipher: Aes256Gcm,
}

impl Key {
    /// key = SHA-256(bytes of the key string).
    pub fn from_str_key(s: &str) -> Key {
        Key::from_material(s.as_bytes())
    }

    /// key = SHA-256(key bytes), for a key given on the command line as raw bytes.
    pub fn from_str_key_bytes(s: &[u8]) -> Key {
        Key::from_material(s)
    }

    /// key = SHA-256(file contents minus at most one trailing `\n` or `\r\n`).
    pub fn from_file_contents(contents: &[u8]) -> Key {
        Key::from_material(strip_one_newline(contents))
    }

    fn from_material(material: &[u8]) -> Key {
        Key::from_digest(&Sha256::digest(material).into())
    }

    /// The key whose file contents have [`file_digest`] `digest` (so that a server with many
    /// clients can tell equal keys apart without keeping their material).
    pub fn from_digest(digest: &[u8; 32]) -> Key {
        Key {
            cipher: Aes256Gcm::new(digest.into()),
        }
    }

    /// Encrypts `plaintext` under a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
        self.seal_into(&mut out, plaintext)?;
        Ok(out)
    }

    /// Appends `plaintext`, encrypted under a fresh random nonce, to `out` (which may already
    /// hold a frame header). On error, `out` may hold a partial payload.
    pub fn seal_into(&self, out: &mut Vec<u8>, plaintext: &[u8]) -> Result<(), SealError> {
        self.seal_parts_into(out, &[plaintext], b"").map(|_| ())
    }

    /// Appends the concatenation of `parts`, encrypted under a fresh random nonce with the
    /// associated data `aad`, to `out`; returns the nonce. Sealed in place behind what `out`
    /// holds: no buffer besides `out`.
    pub fn seal_parts_into(
        &self,
        out: &mut Vec<u8>,
        parts: &[&[u8]],
        aad: &[u8],
    ) -> Result<[u8; NONCE_LEN], SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).map_err(SealError::NoRandom)?;
        let len: usize = parts.iter().map(|p| p.len()).sum();
        out.reserve(OVERHEAD + len);
        out.extend_from_slice(&nonce);
        let start = out.len();
        for p in parts {
            out.extend_from_slice(p);
        }
        let body = out.get_mut(start..).unwrap_or_default();
        // Encryption fails only for plaintexts over 64 GiB; frames are capped at 16 MiB.
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, body)
            .map_err(|_| SealError::TooLong)?;
        out.extend_from_slice(&tag);
        Ok(nonce)
    }

    /// Decrypts a sealed payload in place and returns the plaintext.
    pub fn open(&self, mut payload: Vec<u8>) -> Result<Vec<u8>, OpenError> {
        self.open_in_place(&mut payload, b"")?;
        Ok(payload)
    }

    /// Checks the tag of the sealed `payload` with the associated data `aad` and, when it
    /// verifies, turns `payload` into its plaintext. When it does not, `payload` is left
    /// exactly as it was (the tag is checked before anything is decrypted), so the same bytes
    /// can be tried again with another key or another `aad` without a copy.
    pub fn open_in_place(&self, payload: &mut Vec<u8>, aad: &[u8]) -> Result<(), OpenError> {
        if payload.len() < OVERHEAD {
            return Err(OpenError::TooShort);
        }
        let tag_at = payload.len() - TAG_LEN;
        let tag = Tag::clone_from_slice(payload.get(tag_at..).unwrap_or_default());
        let body_and_nonce = payload.get_mut(..tag_at).unwrap_or_default();
        let (nonce, body) = body_and_nonce.split_at_mut(NONCE_LEN);
        self.cipher
            .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, body, &tag)
            .map_err(|_| OpenError::BadTag)?;
        payload.truncate(tag_at);
        payload.drain(..NONCE_LEN);
        Ok(())
    }
}

/// How payloads travel: in clear, or sealed with a key.
// The cipher state makes `Aes` much larger than `Plain`; boxing it would only add a pointer
// chase: a process holds a handful of codecs (one per configured key), never a collection.
#[allow(clippy::large_enum_variant)]
pub enum Codec {
    Plain,
    Aes(Key),
}

impl Codec {
    /// Prepares a payload for sending.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        match self {
            Codec::Plain => Ok(plaintext.to_vec()),
            Codec::Aes(key) => key.seal(plaintext),
        }
    }

    /// Appends the payload for `plaintext` to `out` (which may already hold a frame header).
    pub fn seal_into(&self, out: &mut Vec<u8>, plaintext: &[u8]) -> Result<(), SealError> {
        match self {
            Codec::Plain => {
                out.extend_from_slice(plaintext);
                Ok(())
            }
            Codec::Aes(key) => key.seal_into(out, plaintext),
        }
    }

    /// The whole frame for `plaintext`, in one buffer for one write: the length header, then
    /// the payload sealed in place behind it (not sealed, then copied behind a header). Every
    /// payload is capped far below the header's 4 GiB ([`crate::wire::frame::MAX_RESPONSE`],
    /// [`crate::wire::frame::MAX_REQUEST`]), so the error to expect is a failed nonce.
    pub fn seal_frame(&self, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut out = Vec::with_capacity(frame::HEADER_LEN + self.overhead() + plaintext.len());
        out.extend_from_slice(&[0; frame::HEADER_LEN]);
        self.seal_into(&mut out, plaintext)?;
        frame::finish(&mut out).map_err(|_| SealError::TooLong)?;
        Ok(out)
    }

    /// Bytes a payload gains in sealing.
    pub fn overhead(&self) -> usize {
        match self {
            Codec::Plain => 0,
            Codec::Aes(_) => OVERHEAD,
        }
    }

    /// Recovers a received payload.
    pub fn open(&self, payload: Vec<u8>) -> Result<Vec<u8>, OpenError> {
        match self {
            Codec::Plain => Ok(payload),
            Codec::Aes(key) => key.open(payload),
        }
    }
}

/// The AES key of a key given as a string: SHA-256 of its bytes.
pub fn str_digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

/// The AES key of a key file: SHA-256 of its contents minus at most one trailing newline.
pub fn file_digest(contents: &[u8]) -> [u8; 32] {
    Sha256::digest(strip_one_newline(contents)).into()
}

/// Removes at most one trailing `\n` or `\r\n` (how password and key files are read).
pub fn strip_one_newline(bytes: &[u8]) -> &[u8] {
    let bytes = bytes
        .strip_suffix(b"\n")
        .map_or(bytes, |b| b.strip_suffix(b"\r").unwrap_or(b));
    bytes
}

/// A password kept as its SHA-256 digest and compared in constant time: the candidate is hashed
/// to 32 bytes too, so neither the position of the first difference nor the length leaks.
pub struct PasswordCheck([u8; 32]);

impl PasswordCheck {
    pub fn new(password: &[u8]) -> PasswordCheck {
        PasswordCheck(Sha256::digest(password).into())
    }

    pub fn matches(&self, candidate: &[u8]) -> bool {
        let given: [u8; 32] = Sha256::digest(candidate).into();
        let diff = given
            .iter()
            .zip(self.0.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y));
        std::hint::black_box(diff) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fresh_nonces() {
        let k = Key::from_str_key("k");
        let a = k.seal(b"secret").unwrap();
        let b = k.seal(b"secret").unwrap();
        assert_eq!(a.len(), 6 + OVERHEAD);
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN], "nonces must differ");
        assert_eq!(k.open(a).unwrap(), b"secret");
        assert_eq!(k.open(k.seal(b"").unwrap()).unwrap(), b"");
    }

    #[test]
    fn seal_into_appends_after_what_is_there() {
        let k = Key::from_str_key("k");
        for codec in [Codec::Plain, Codec::Aes(Key::from_str_key("k"))] {
            let mut out = b"head".to_vec();
            codec.seal_into(&mut out, b"secret").unwrap();
            assert_eq!(&out[..4], b"head");
            assert_eq!(out.len(), 4 + 6 + codec.overhead());
            assert_eq!(codec.open(out[4..].to_vec()).unwrap(), b"secret");
            let f = codec.seal_frame(b"secret").unwrap();
            let crate::wire::frame::Decoded::Frame { payload, used } =
                crate::wire::frame::decode(&f, 100)
            else {
                panic!("seal_frame built no whole frame");
            };
            assert_eq!(used, f.len());
            assert_eq!(codec.open(payload.to_vec()).unwrap(), b"secret");
        }
        let mut out = b"head".to_vec();
        k.seal_into(&mut out, b"secret").unwrap();
        assert_eq!(k.open(out[4..].to_vec()).unwrap(), b"secret");
    }

    #[test]
    fn key_file_matches_key_string() {
        let s = Key::from_str_key("my-aes-key");
        for file in [&b"my-aes-key"[..], b"my-aes-key\n", b"my-aes-key\r\n"] {
            let f = Key::from_file_contents(file);
            assert_eq!(f.open(s.seal(b"x").unwrap()).unwrap(), b"x");
        }
        // Only one newline is stripped.
        let two = Key::from_file_contents(b"my-aes-key\n\n");
        assert_eq!(two.open(s.seal(b"x").unwrap()), Err(OpenError::BadTag));
    }

    #[test]
    fn wrong_key_truncated_tampered() {
        let k = Key::from_str_key("a");
        let sealed = k.seal(b"value").unwrap();
        assert_eq!(
            Key::from_str_key("b").open(sealed.clone()),
            Err(OpenError::BadTag)
        );
        for n in 0..OVERHEAD {
            assert_eq!(k.open(sealed[..n].to_vec()), Err(OpenError::TooShort));
        }
        assert_eq!(
            k.open(sealed[..sealed.len() - 1].to_vec()),
            Err(OpenError::BadTag)
        );
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(k.open(flipped), Err(OpenError::BadTag));
        let mut flipped = sealed;
        flipped[0] ^= 0x80;
        assert_eq!(k.open(flipped), Err(OpenError::BadTag));
        assert_eq!(
            k.open(b"hunter2 db-password, sent in plaintext".to_vec()),
            Err(OpenError::BadTag)
        );
        assert_eq!(k.open(b"hunter2 db".to_vec()), Err(OpenError::TooShort));
    }

    #[test]
    fn known_vector_sha256_key() {
        // SHA-256("k") computed independently (python3 hashlib): the key derivation is the spec's.
        let d = Sha256::digest(b"k");
        assert_eq!(
            d.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a"
        );
    }

    #[test]
    fn newline_stripping() {
        assert_eq!(strip_one_newline(b"a\n"), b"a");
        assert_eq!(strip_one_newline(b"a\r\n"), b"a");
        assert_eq!(strip_one_newline(b"a\n\n"), b"a\n");
        assert_eq!(strip_one_newline(b"a\r"), b"a\r");
        assert_eq!(strip_one_newline(b""), b"");
    }

    #[test]
    fn constant_time_eq() {
        assert!(PasswordCheck::new(b"hunter2").matches(b"hunter2"));
        assert!(!PasswordCheck::new(b"hunter2").matches(b"hunter3"));
        assert!(!PasswordCheck::new(b"hunter2").matches(b"hunter22"));
        assert!(!PasswordCheck::new(b"").matches(b"x"));
    }
}
