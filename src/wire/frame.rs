//! The wire frame: a 4-byte big-endian length followed by that many payload bytes.
//!
//! This module is the frame format and nothing else: [`decode`] is a pure function over bytes
//! (tested with hostile input and fuzzed), [`read_frame`] reads one frame from
//! any `Read`, and [`encode`] or [`finish`] build one to write. A length over the caller's cap is rejected before a single payload byte is
//! allocated or read. Timeouts are the stream's business (see `sys/net.rs`), not this module's.

use std::io::{self, Read};

use crate::sys::net::is_timeout;

/// Largest request payload the server accepts. A request is a password, a space and a name of at
/// most 255 bytes, plus 28 bytes of AES-GCM overhead: 64 KiB is far more than any honest client
/// sends.
pub const MAX_REQUEST: usize = 64 * 1024;

/// Largest response payload the client accepts (a secret plus AES-GCM overhead).
pub const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// Length of the frame header.
pub const HEADER_LEN: usize = 4;

/// Why a frame could not be read.
#[derive(Debug)]
pub enum FrameError {
    /// The peer closed the connection before sending any byte of the frame.
    Closed,
    /// The peer closed the connection in the middle of the frame.
    Truncated { got: usize, want: usize },
    /// The announced length is over the cap; nothing was allocated for it.
    TooLarge { len: u64, cap: usize },
    /// A read failed (including a timeout: `WouldBlock`/`TimedOut`).
    Io(io::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Closed => f.write_str("connection closed before a frame"),
            FrameError::Truncated { got, want } => {
                write!(f, "connection closed mid-frame ({got} of {want} bytes)")
            }
            FrameError::TooLarge { len, cap } => {
                write!(f, "frame length {len} is over the limit of {cap} bytes")
            }
            FrameError::Io(e) if is_timeout(e) => f.write_str("timed out"),
            FrameError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Result of looking at a buffer that may hold a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole frame: its payload and the number of bytes it took from the buffer.
    Frame { payload: &'a [u8], used: usize },
    /// More bytes are needed; `need` is the total the frame will take, when known.
    Incomplete { need: Option<usize> },
    /// The length is over the cap: the frame is invalid, whatever follows.
    TooLarge { len: u64 },
}

/// Decodes one frame from the start of `buf` without copying. Pure; never panics.
pub fn decode(buf: &[u8], cap: usize) -> Decoded<'_> {
    let Some((header, rest)) = buf.split_first_chunk::<HEADER_LEN>() else {
        return Decoded::Incomplete { need: None };
    };
    let len = u32::from_be_bytes(*header);
    let len_usize = len as usize;
    if len_usize > cap {
        return Decoded::TooLarge {
            len: u64::from(len),
        };
    }
    match rest.get(..len_usize) {
        Some(payload) => Decoded::Frame {
            payload,
            used: HEADER_LEN + len_usize,
        },
        None => Decoded::Incomplete {
            need: Some(HEADER_LEN + len_usize),
        },
    }
}

/// Builds the header for a payload of `len` bytes.
pub fn header(len: usize) -> io::Result<[u8; HEADER_LEN]> {
    u32::try_from(len)
        .map(u32::to_be_bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "payload over 4 GiB"))
}

/// Encodes a whole frame (header and payload) into one buffer, so that it leaves in one write.
pub fn encode(payload: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&header(payload.len())?);
    out.extend_from_slice(payload);
    Ok(out)
}

/// Fills in the header of a frame built in place: `buf` starts with [`HEADER_LEN`] bytes
/// reserved for it, followed by the payload.
pub fn finish(buf: &mut [u8]) -> io::Result<()> {
    let len = buf.len().saturating_sub(HEADER_LEN);
    let header = header(len)?;
    match buf.get_mut(..HEADER_LEN) {
        Some(h) => {
            h.copy_from_slice(&header);
            Ok(())
        }
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no room for the frame header",
        )),
    }
}

/// Reads one frame whose payload may be at most `cap` bytes. The payload buffer is allocated only
/// after the length has been checked against the cap, and grows as bytes really arrive, so a peer
/// that announces a large frame and sends little costs little.
pub fn read_frame<R: Read>(r: &mut R, cap: usize) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_full(r, &mut header).map_err(FrameError::Io)?;
    if got == 0 {
        return Err(FrameError::Closed);
    }
    if got < HEADER_LEN {
        return Err(FrameError::Truncated {
            got,
            want: HEADER_LEN,
        });
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > cap {
        return Err(FrameError::TooLarge {
            len: len as u64,
            cap,
        });
    }
    let mut payload = Vec::with_capacity(len.min(64 * 1024));
    let read = r
        .take(len as u64)
        .read_to_end(&mut payload)
        .map_err(FrameError::Io)?;
    if read < len {
        return Err(FrameError::Truncated {
            got: HEADER_LEN + read,
            want: HEADER_LEN + len,
        });
    }
    Ok(payload)
}

/// A reader with a small buffer inside it, on the stack: [`read_frame`] through it takes one
/// `read` for a whole small frame, as through a `BufReader`, without allocating the buffer.
pub struct InlineBuf<R> {
    inner: R,
    buf: [u8; 512],
    pos: usize,
    end: usize,
}

impl<R: Read> InlineBuf<R> {
    pub fn new(inner: R) -> InlineBuf<R> {
        InlineBuf {
            inner,
            buf: [0; 512],
            pos: 0,
            end: 0,
        }
    }
}

impl<R: Read> Read for InlineBuf<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.end {
            if out.len() >= self.buf.len() {
                return self.inner.read(out);
            }
            self.end = self.inner.read(&mut self.buf)?.min(self.buf.len());
            self.pos = 0;
        }
        let have = self.buf.get(self.pos..self.end).unwrap_or_default();
        let n = have.len().min(out.len());
        if let (Some(to), Some(from)) = (out.get_mut(..n), have.get(..n)) {
            to.copy_from_slice(from);
        }
        self.pos += n;
        Ok(n)
    }
}

/// Fills `buf` unless EOF comes first; returns how many bytes were read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let Some(rest) = buf.get_mut(filled..) else {
            break;
        };
        match r.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode() {
        let f = encode(b"pw name").unwrap();
        assert_eq!(&f[..4], &[0, 0, 0, 7]);
        assert_eq!(
            decode(&f, 100),
            Decoded::Frame {
                payload: b"pw name",
                used: 11
            }
        );
    }

    #[test]
    fn decode_incomplete_and_too_large() {
        assert_eq!(decode(&[], 10), Decoded::Incomplete { need: None });
        assert_eq!(decode(&[0, 0, 0], 10), Decoded::Incomplete { need: None });
        assert_eq!(
            decode(&[0, 0, 0, 5, 1], 10),
            Decoded::Incomplete { need: Some(9) }
        );
        assert_eq!(decode(&[0, 0, 0, 11], 10), Decoded::TooLarge { len: 11 });
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff], 10),
            Decoded::TooLarge { len: 0xffff_ffff }
        );
        assert_eq!(
            decode(&[0x80, 0, 0, 0], MAX_REQUEST),
            Decoded::TooLarge { len: 1 << 31 }
        );
    }

    #[test]
    fn decode_zero_length_and_trailing_bytes() {
        assert_eq!(
            decode(&[0, 0, 0, 0], 10),
            Decoded::Frame {
                payload: b"",
                used: 4
            }
        );
        assert_eq!(
            decode(&[0, 0, 0, 1, 9, 8, 7], 10),
            Decoded::Frame {
                payload: &[9],
                used: 5
            }
        );
    }

    #[test]
    fn read_frame_cases() {
        let mut r: &[u8] = &[0, 0, 0, 2, b'h', b'i'];
        assert_eq!(read_frame(&mut r, 10).unwrap(), b"hi");
        let mut r: &[u8] = &[];
        assert!(matches!(read_frame(&mut r, 10), Err(FrameError::Closed)));
        let mut r: &[u8] = &[0, 0];
        assert!(matches!(
            read_frame(&mut r, 10),
            Err(FrameError::Truncated { got: 2, want: 4 })
        ));
        let mut r: &[u8] = &[0, 0, 0, 5, 1, 2];
        assert!(matches!(
            read_frame(&mut r, 10),
            Err(FrameError::Truncated { got: 6, want: 9 })
        ));
        let mut r: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut r, MAX_REQUEST),
            Err(FrameError::TooLarge { .. })
        ));
    }

    /// A reader that hands out one byte per call, like a peer sending tiny TCP segments.
    struct Dribble<'a>(&'a [u8]);
    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((b, rest)), Some(slot)) => {
                    *slot = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn read_frame_in_pieces() {
        let f = encode(b"password db").unwrap();
        assert_eq!(read_frame(&mut Dribble(&f), 100).unwrap(), b"password db");
    }

    /// Counts the reads it is asked for.
    struct Counting<'a>(&'a [u8], usize);
    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 += 1;
            self.0.read(buf)
        }
    }

    #[test]
    fn inline_buf_reads_a_small_frame_at_once_and_any_frame_whole() {
        let small = encode(b"password db").unwrap();
        let mut two = small.clone();
        two.extend_from_slice(&encode(b"second").unwrap());
        let mut src = Counting(&two, 0);
        let mut r = InlineBuf::new(&mut src);
        assert_eq!(read_frame(&mut r, 100).unwrap(), b"password db");
        assert_eq!(read_frame(&mut r, 100).unwrap(), b"second");
        assert!(matches!(read_frame(&mut r, 100), Err(FrameError::Closed)));
        assert_eq!(src.1, 2, "one read for both frames, one for the end");
        // Payloads around and over the inner buffer's size, whole or one byte at a time.
        for len in [0, 1, 507, 508, 509, 511, 512, 513, 1000, 5000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let f = encode(&payload).unwrap();
            let mut whole: &[u8] = &f;
            assert_eq!(
                read_frame(&mut InlineBuf::new(&mut whole), 1 << 20).unwrap(),
                payload
            );
            let mut r = InlineBuf::new(Dribble(&f));
            assert_eq!(read_frame(&mut r, 1 << 20).unwrap(), payload, "len {len}");
            let cut = f.get(..f.len() - 1).unwrap_or_default();
            let mut r = InlineBuf::new(cut);
            assert!(matches!(
                read_frame(&mut r, 1 << 20),
                Err(FrameError::Truncated { .. })
            ));
        }
    }

    #[test]
    fn finish_writes_the_header_of_a_frame_built_in_place() {
        let mut f = vec![0; HEADER_LEN];
        f.extend_from_slice(b"value");
        finish(&mut f).unwrap();
        assert_eq!(f, encode(b"value").unwrap());
        let mut empty = vec![9; HEADER_LEN];
        finish(&mut empty).unwrap();
        assert_eq!(empty, [0, 0, 0, 0]);
        assert!(finish(&mut [0, 0]).is_err());
    }
}
