//! Frame decoding: `frame::decode` (pure) and `frame::read_frame` (capped reader) on arbitrary
//! bytes, read whole and one byte at a time. Checks, beyond "no panic, no huge allocation":
//! decode and read_frame agree, a frame is never over the cap, and `used` is header + payload.
#![no_main]

use std::io::{self, Read};

use libfuzzer_sys::fuzz_target;
use netsecrets::wire::frame::{self, Decoded, FrameError, HEADER_LEN, MAX_REQUEST, MAX_RESPONSE};

/// Hands out at most `step` bytes per read, like a peer sending tiny TCP segments.
struct Dribble<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        buf[..n].copy_from_slice(head);
        self.data = rest;
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    // First byte picks the cap (small caps reach the TooLarge paths often); the rest is the stream.
    let Some((&sel, stream)) = data.split_first() else {
        return;
    };
    let cap = match sel % 4 {
        0 => MAX_REQUEST,
        1 => MAX_RESPONSE,
        2 => usize::from(sel),
        _ => 0,
    };
    let decoded = frame::decode(stream, cap);
    match &decoded {
        Decoded::Frame { payload, used } => {
            assert!(payload.len() <= cap);
            assert_eq!(*used, HEADER_LEN + payload.len());
            assert!(*used <= stream.len());
            assert_eq!(&stream[HEADER_LEN..*used], *payload);
        }
        Decoded::Incomplete { need } => {
            if let Some(n) = need {
                assert!(*n > stream.len());
                assert!(*n - HEADER_LEN <= cap);
            } else {
                assert!(stream.len() < HEADER_LEN);
            }
        }
        Decoded::TooLarge { len } => assert!(*len > cap as u64),
    }

    let step = usize::from(sel % 7) + 1;
    for result in [
        frame::read_frame(&mut &stream[..], cap),
        frame::read_frame(&mut Dribble { data: stream, step }, cap),
    ] {
        match (&decoded, result) {
            (Decoded::Frame { payload, .. }, Ok(got)) => assert_eq!(&got[..], *payload),
            (Decoded::TooLarge { .. }, Err(FrameError::TooLarge { .. })) => {}
            (Decoded::Incomplete { need: None }, Err(FrameError::Closed)) => {
                assert!(stream.is_empty())
            }
            (Decoded::Incomplete { .. }, Err(FrameError::Truncated { got, want })) => {
                assert!(got < want);
                assert_eq!(got, stream.len());
            }
            (d, r) => panic!("decode and read_frame disagree: {d:?} vs {r:?}"),
        }
    }

    // Encoding a decoded payload gives back the same bytes.
    if let Decoded::Frame { payload, used } = decoded {
        assert_eq!(frame::encode(payload).unwrap(), &stream[..used]);
    }
});
