//! Protocol 2: every answer bound to its question.
//!
//! In protocol 1 both directions use one key with no associated data, and an answer names
//! neither its request nor its secret: someone on the path, without the key, can send a client
//! its own request back (the client would store `<password> <name>`), or an older answer for
//! another secret or for the same one (a silent rollback). Protocol 2 seals with associated
//! data, so that an answer opens only for the very request it answers:
//!
//! ```text
//! request  = nonce_q(12) || AES-256-GCM(key, nonce_q, "<password> <name>", aad_q)
//! aad_q    = "netsecrets/2 request"
//! answer   = nonce_r(12) || AES-256-GCM(key, nonce_r, status || value, aad_r)
//! aad_r    = "netsecrets/2 response" || nonce_q || name
//! status   = 0x00 (found: the value follows) | 0x01 (not found: nothing follows)
//! ```
//!
//! A request cannot pass for an answer (other associated data), nor an answer for another
//! request (another `nonce_q`) or another name. Protocol 2 needs a key: in plaintext only
//! protocol 1 exists. The server takes both on one port: it tries `aad_q` first and then no
//! associated data, with each key that may apply, one extra tag check per key for a protocol-1
//! request, and answers in the protocol the request came in. A client speaking protocol 1
//! still refuses an answer that is its own request sent back ([`Question::open_answer`]).
//!
//! Nothing here allocates beyond the frame itself: associated data is built on the stack.

use crate::sys::wipe::Wiped;
use crate::wire::crypto::{Codec, OpenError, SealError, NONCE_LEN, OVERHEAD};
use crate::wire::frame::{self, MAX_RESPONSE};
use crate::wire::protocol::{self, MAX_NAME, NOT_FOUND};

/// Associated data of a protocol-2 request.
pub const REQUEST_AAD: &[u8] = b"netsecrets/2 request";
/// First part of the associated data of a protocol-2 answer (then `nonce_q`, then the name).
pub const RESPONSE_AAD: &[u8] = b"netsecrets/2 response";
/// Status byte of a protocol-2 answer: the value follows.
pub const FOUND: u8 = 0x00;
/// Status byte of a protocol-2 answer: no such secret (for this client); nothing follows.
pub const ABSENT: u8 = 0x01;
/// Largest protocol-2 answer a client accepts: the status byte and one more nonce and tag
/// above the protocol-1 cap, so that every value protocol 1 can carry fits in protocol 2.
pub const MAX_RESPONSE_V2: usize = MAX_RESPONSE + 1 + OVERHEAD;

/// The protocol spoken on one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    /// The first protocol: no associated data, answers bound to nothing.
    V1,
    /// Answers bound to their request's nonce and name.
    V2,
}

impl Protocol {
    /// `1` or `2`, as `--protocol` and the log lines write it.
    pub fn number(self) -> u8 {
        match self {
            Protocol::V1 => 1,
            Protocol::V2 => 2,
        }
    }
}

/// How a request arrived, as the server must answer it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    V1,
    /// Protocol 2, with the request's nonce that the answer is bound to.
    V2([u8; NONCE_LEN]),
}

impl Via {
    pub fn protocol(&self) -> Protocol {
        match self {
            Via::V1 => Protocol::V1,
            Via::V2(_) => Protocol::V2,
        }
    }

    /// Bytes of the answer frame [`Codec::answer_frame`] builds for `value` (`None`: not
    /// found) under `codec`.
    pub fn answer_len(&self, codec: &Codec, value: Option<&[u8]>) -> usize {
        let body = match self {
            Via::V1 => value.unwrap_or(NOT_FOUND).len(),
            Via::V2(_) => 1 + value.map_or(0, <[u8]>::len),
        };
        frame::HEADER_LEN + codec.overhead() + body
    }
}

/// The associated data of a protocol-2 answer, on the stack.
struct ResponseAad {
    buf: [u8; RESPONSE_AAD.len() + NONCE_LEN + MAX_NAME],
    len: usize,
}

impl ResponseAad {
    /// `None` for a name longer than any secret name (which no request can carry).
    fn new(nonce_q: &[u8; NONCE_LEN], name: &[u8]) -> Option<ResponseAad> {
        let mut aad = ResponseAad {
            buf: [0; RESPONSE_AAD.len() + NONCE_LEN + MAX_NAME],
            len: RESPONSE_AAD.len() + NONCE_LEN + name.len(),
        };
        let (head, rest) = aad.buf.split_at_mut(RESPONSE_AAD.len());
        head.copy_from_slice(RESPONSE_AAD);
        let (nonce, tail) = rest.split_at_mut(NONCE_LEN);
        nonce.copy_from_slice(nonce_q);
        tail.get_mut(..name.len())?.copy_from_slice(name);
        Some(aad)
    }

    fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl Codec {
    /// Opens a request payload in place: as protocol 2 first, then as protocol 1. On error the
    /// payload is left as it was, for the next key to try. Plaintext is protocol 1 only.
    pub fn open_request(&self, payload: &mut Vec<u8>) -> Result<Via, OpenError> {
        let Codec::Aes(key) = self else {
            return Ok(Via::V1);
        };
        let mut nonce = [0u8; NONCE_LEN];
        if let Some(n) = payload.get(..NONCE_LEN) {
            nonce.copy_from_slice(n);
        }
        if key.open_in_place(payload, REQUEST_AAD).is_ok() {
            return Ok(Via::V2(nonce));
        }
        key.open_in_place(payload, b"")?;
        Ok(Via::V1)
    }

    /// The whole answer frame to a request that came `via`, for request name `name`: the value,
    /// or `None` for not found (`Not found` in protocol 1, status 0x01 in protocol 2).
    pub fn answer_frame(
        &self,
        via: &Via,
        name: &[u8],
        value: Option<&[u8]>,
    ) -> Result<Vec<u8>, SealError> {
        // A plaintext codec never opens a request as protocol 2 (see `open_request`).
        let (Via::V2(nonce_q), Codec::Aes(key)) = (via, self) else {
            return self.seal_frame(value.unwrap_or(NOT_FOUND));
        };
        // A request's name is a valid secret name: never longer than MAX_NAME.
        let aad = ResponseAad::new(nonce_q, name).ok_or(SealError::TooLong)?;
        let (status, value) = match value {
            Some(v) => (FOUND, v),
            None => (ABSENT, &b""[..]),
        };
        let mut out = Vec::with_capacity(via.answer_len(self, Some(value)));
        out.extend_from_slice(&[0; frame::HEADER_LEN]);
        key.seal_parts_into(&mut out, &[&[status], value], aad.as_slice())?;
        frame::finish(&mut out).map_err(|_| SealError::TooLong)?;
        Ok(out)
    }
}

/// What an answer said.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Value(Vec<u8>),
    NotFound,
}

/// Why an answer is not one to this request.
#[derive(Debug, PartialEq, Eq)]
pub enum AnswerError {
    /// It did not open with the key (protocol 1), or not as the answer to this request and
    /// name (protocol 2): another key, a server that speaks only protocol 1, or a request or
    /// answer replayed by someone on the path.
    Unopened,
    /// Protocol 2: an empty plaintext (no status byte).
    Empty,
    /// Protocol 2: a status byte that is neither found nor not found.
    UnknownStatus(u8),
    /// Protocol 2: not found, with bytes after the status.
    TrailingBytes,
    /// Protocol 1: the client's own request sent back.
    Reflected,
}

impl AnswerError {
    /// One line for the client's error, naming what to check.
    pub fn describe(&self, server: &str) -> String {
        match self {
            AnswerError::Unopened => format!(
                "the response from {server} did not decrypt as the answer to this request: the encryption keys differ, the server runs without one (--insecure), it knows only protocol 1 (then use --protocol 1), or someone on the path replayed an answer"
            ),
            AnswerError::Empty => format!("the response from {server} is empty (no status byte): refused"),
            AnswerError::UnknownStatus(s) => {
                format!("the response from {server} has the unknown status byte {s:#04x}: refused")
            }
            AnswerError::TrailingBytes => {
                format!("the response from {server} says not found but carries bytes after it: refused")
            }
            AnswerError::Reflected => format!(
                "the response from {server} is this client's own request sent back (reflected by someone on the path): refused; protocol 2 (the default with a key) prevents this"
            ),
        }
    }
}

/// A request as a client sends it, and what its answer must match.
pub struct Question {
    protocol: Protocol,
    /// The request's nonce (zeros in plaintext).
    nonce: [u8; NONCE_LEN],
    /// The whole request frame, to write.
    frame: Vec<u8>,
}

impl Question {
    /// The request frame for `name` with `password`, in `protocol` (protocol 1 whatever was
    /// asked when `codec` is plaintext).
    pub fn new(
        codec: &Codec,
        protocol: Protocol,
        password: &[u8],
        name: &str,
    ) -> Result<Question, SealError> {
        // Holds the password in the clear: wiped when dropped, on every path.
        let request = Wiped(protocol::build_request(password, name));
        let request = &request.0;
        let (protocol, aad) = match (protocol, codec) {
            (Protocol::V2, Codec::Aes(_)) => (Protocol::V2, REQUEST_AAD),
            _ => (Protocol::V1, &b""[..]),
        };
        let mut frame = Vec::with_capacity(frame::HEADER_LEN + codec.overhead() + request.len());
        frame.extend_from_slice(&[0; frame::HEADER_LEN]);
        let nonce = match codec {
            Codec::Plain => {
                frame.extend_from_slice(request);
                [0; NONCE_LEN]
            }
            Codec::Aes(key) => key.seal_parts_into(&mut frame, &[request], aad)?,
        };
        frame::finish(&mut frame).map_err(|_| SealError::TooLong)?;
        Ok(Question {
            protocol,
            nonce,
            frame,
        })
    }

    pub fn frame(&self) -> &[u8] {
        &self.frame
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Added to the client's message for a server that closed without answering: a server
    /// that knows only protocol 1 does that to every protocol-2 request.
    pub fn closed_hint(&self) -> &'static str {
        match self.protocol {
            Protocol::V1 => "",
            Protocol::V2 => " (a server that knows only protocol 1 closes protocol-2 requests too: until it is updated, give this client --protocol 1)",
        }
    }

    /// Largest answer payload to accept.
    pub fn response_cap(&self) -> usize {
        match self.protocol {
            Protocol::V1 => MAX_RESPONSE,
            Protocol::V2 => MAX_RESPONSE_V2,
        }
    }

    /// Opens the answer `payload` to this request for `name`, sent with `password`.
    pub fn open_answer(
        &self,
        codec: &Codec,
        password: &[u8],
        name: &[u8],
        mut payload: Vec<u8>,
    ) -> Result<Answer, AnswerError> {
        match (self.protocol, codec) {
            (Protocol::V2, Codec::Aes(key)) => {
                let aad = ResponseAad::new(&self.nonce, name).ok_or(AnswerError::Unopened)?;
                key.open_in_place(&mut payload, aad.as_slice())
                    .map_err(|_| AnswerError::Unopened)?;
                match payload.first() {
                    None => Err(AnswerError::Empty),
                    Some(&FOUND) => {
                        // `first()` was Some: index 0 exists.
                        payload.remove(0);
                        Ok(Answer::Value(payload))
                    }
                    Some(&ABSENT) if payload.len() == 1 => Ok(Answer::NotFound),
                    Some(&ABSENT) => Err(AnswerError::TrailingBytes),
                    Some(&s) => Err(AnswerError::UnknownStatus(s)),
                }
            }
            _ => {
                let echoed_nonce = matches!(codec, Codec::Aes(_))
                    && payload.get(..NONCE_LEN) == Some(&self.nonce[..]);
                let value = codec.open(payload).map_err(|_| AnswerError::Unopened)?;
                // The request is "<password> <name>": an answer that begins with the password
                // and a space is the request itself, or made from it.
                let own = value.strip_prefix(password).and_then(|v| v.first()) == Some(&b' ');
                if echoed_nonce || own {
                    return Err(AnswerError::Reflected);
                }
                if value == NOT_FOUND {
                    return Ok(Answer::NotFound);
                }
                Ok(Answer::Value(value))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::crypto::Key;
    use crate::wire::frame::{decode, Decoded};

    fn aes(k: &str) -> Codec {
        Codec::Aes(Key::from_str_key(k))
    }

    /// The payload of a whole frame.
    fn payload(f: &[u8]) -> Vec<u8> {
        match decode(f, MAX_RESPONSE_V2) {
            Decoded::Frame { payload, used } => {
                assert_eq!(used, f.len());
                payload.to_vec()
            }
            _ => panic!("not one whole frame"),
        }
    }

    /// The server's side of one exchange: the request opened, then answered with `value`.
    fn serve(codec: &Codec, request: &[u8], name: &[u8], value: Option<&[u8]>) -> (Via, Vec<u8>) {
        let mut p = payload(request);
        let via = codec.open_request(&mut p).unwrap();
        assert_eq!(protocol::parse_request(&p).unwrap().name, name);
        let f = codec.answer_frame(&via, name, value).unwrap();
        assert_eq!(f.len(), via.answer_len(codec, value));
        (via, payload(&f))
    }

    #[test]
    fn both_protocols_round_trip_and_are_answered_in_kind() {
        let c = aes("k");
        for proto in [Protocol::V1, Protocol::V2] {
            let q = Question::new(&c, proto, b"pass word", "db").unwrap();
            assert_eq!(q.protocol(), proto);
            let (via, answer) = serve(&c, q.frame(), b"db", Some(b"value"));
            assert_eq!(via.protocol(), proto);
            let got = q.open_answer(&c, b"pass word", b"db", answer).unwrap();
            assert_eq!(got, Answer::Value(b"value".to_vec()));
            let (_, answer) = serve(&c, q.frame(), b"db", None);
            let got = q.open_answer(&c, b"pass word", b"db", answer).unwrap();
            assert_eq!(got, Answer::NotFound);
        }
        // Protocol 1 answers are exactly the first protocol's bytes: a value, or `Not found`.
        let q = Question::new(&c, Protocol::V1, b"pw", "db").unwrap();
        let (_, answer) = serve(&c, q.frame(), b"db", None);
        assert_eq!(c.open(answer).unwrap(), b"Not found");
        // In protocol 2 a value that reads `Not found` is a value.
        let q = Question::new(&c, Protocol::V2, b"pw", "db").unwrap();
        let (_, answer) = serve(&c, q.frame(), b"db", Some(b"Not found"));
        assert_eq!(
            q.open_answer(&c, b"pw", b"db", answer).unwrap(),
            Answer::Value(b"Not found".to_vec())
        );
    }

    #[test]
    fn plaintext_is_protocol_1_only() {
        let q = Question::new(&Codec::Plain, Protocol::V2, b"pw", "db").unwrap();
        assert_eq!(q.protocol(), Protocol::V1);
        assert_eq!(payload(q.frame()), b"pw db");
        let (via, answer) = serve(&Codec::Plain, q.frame(), b"db", Some(b"v"));
        assert_eq!(via, Via::V1);
        assert_eq!(answer, b"v");
    }

    #[test]
    fn the_wire_format_is_the_documented_one() {
        // Opened here with the bare key and the associated data spelled out, not through the
        // code under test.
        let key = Key::from_str_key("k");
        let c = aes("k");
        let q = Question::new(&c, Protocol::V2, b"pw", "db").unwrap();
        let mut req = payload(q.frame());
        let nonce_q = req[..NONCE_LEN].to_vec();
        assert_eq!(req.len(), NONCE_LEN + 5 + 16);
        key.open_in_place(&mut req, b"netsecrets/2 request")
            .unwrap();
        assert_eq!(req, b"pw db");
        let (_, mut answer) = serve(&c, q.frame(), b"db", Some(b"v"));
        let mut aad = b"netsecrets/2 response".to_vec();
        aad.extend_from_slice(&nonce_q);
        aad.extend_from_slice(b"db");
        key.open_in_place(&mut answer, &aad).unwrap();
        assert_eq!(answer, b"\x00v");
        let (_, mut answer) = serve(&c, q.frame(), b"db", None);
        key.open_in_place(&mut answer, &aad).unwrap();
        assert_eq!(answer, b"\x01");
    }

    /// An answer to `q` sealed by hand: `plaintext` under `aad`.
    fn forged(key: &Key, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        key.seal_parts_into(&mut out, &[plaintext], aad).unwrap();
        out
    }

    #[test]
    fn protocol_2_framing_edge_cases() {
        let key = Key::from_str_key("k");
        let c = aes("k");
        let q = Question::new(&c, Protocol::V2, b"pw", "db").unwrap();
        let nonce_q = payload(q.frame())[..NONCE_LEN].to_vec();
        let aad = |name: &[u8]| [RESPONSE_AAD, &nonce_q, name].concat();
        let open = |p: Vec<u8>| q.open_answer(&c, b"pw", b"db", p);
        assert_eq!(
            open(forged(&key, b"", &aad(b"db"))),
            Err(AnswerError::Empty)
        );
        for s in [0x02u8, 0x7f, 0xff] {
            assert_eq!(
                open(forged(&key, &[s, b'v'], &aad(b"db"))),
                Err(AnswerError::UnknownStatus(s))
            );
        }
        // Not found carries nothing after its status.
        assert_eq!(
            open(forged(&key, b"\x01", &aad(b"db"))),
            Ok(Answer::NotFound)
        );
        assert_eq!(
            open(forged(&key, b"\x01x", &aad(b"db"))),
            Err(AnswerError::TrailingBytes)
        );
        assert_eq!(
            open(forged(&key, b"\x00", &aad(b"db"))),
            Ok(Answer::Value(Vec::new()))
        );
        // Another name, another request's nonce, no associated data, the request's.
        let other_nonce = [RESPONSE_AAD, &[0u8; NONCE_LEN][..], b"db"].concat();
        for bad in [
            aad(b"dbx"),
            aad(b"d"),
            aad(b"other"),
            other_nonce,
            Vec::new(),
            REQUEST_AAD.to_vec(),
        ] {
            assert_eq!(
                open(forged(&key, b"\x00v", &bad)),
                Err(AnswerError::Unopened)
            );
        }
        // A truncated tag, a flipped bit, another key, too short to hold nonce and tag.
        let good = forged(&key, b"\x00v", &aad(b"db"));
        assert!(open(good.clone()).is_ok());
        for cut in 1..=16 {
            assert_eq!(
                open(good[..good.len() - cut].to_vec()),
                Err(AnswerError::Unopened)
            );
        }
        let mut flipped = good.clone();
        flipped[NONCE_LEN] ^= 1;
        assert_eq!(open(flipped), Err(AnswerError::Unopened));
        let other = Key::from_str_key("k2");
        assert_eq!(
            open(forged(&other, b"\x00v", &aad(b"db"))),
            Err(AnswerError::Unopened)
        );
        assert_eq!(open(Vec::new()), Err(AnswerError::Unopened));
        // The request sent back.
        assert_eq!(open(payload(q.frame())), Err(AnswerError::Unopened));
    }

    #[test]
    fn protocol_1_refuses_its_own_request_sent_back() {
        let key = Key::from_str_key("k");
        let c = aes("k");
        let q = Question::new(&c, Protocol::V1, b"my pw", "db").unwrap();
        let open = |p: Vec<u8>| q.open_answer(&c, b"my pw", b"db", p);
        // The request itself, re-sealed under a fresh nonce, or anything that begins with the
        // password and a space.
        assert_eq!(open(payload(q.frame())), Err(AnswerError::Reflected));
        for p in [&b"my pw db"[..], b"my pw other", b"my pw "] {
            assert_eq!(open(key.seal(p).unwrap()), Err(AnswerError::Reflected));
        }
        // The request's nonce with another body does not authenticate at all.
        let mut same_nonce = payload(q.frame())[..NONCE_LEN].to_vec();
        same_nonce.extend_from_slice(&key.seal(b"value").unwrap()[NONCE_LEN..]);
        assert_eq!(open(same_nonce), Err(AnswerError::Unopened));
        // Values that merely contain the password are values.
        for v in [&b"my pwx"[..], b"my pw", b"xmy pw db"] {
            assert_eq!(open(key.seal(v).unwrap()), Ok(Answer::Value(v.to_vec())));
        }
        assert_eq!(open(key.seal(b"Not found").unwrap()), Ok(Answer::NotFound));
        // Plaintext: the same rule.
        let q = Question::new(&Codec::Plain, Protocol::V1, b"pw", "db").unwrap();
        let got = q.open_answer(&Codec::Plain, b"pw", b"db", b"pw db".to_vec());
        assert_eq!(got, Err(AnswerError::Reflected));
    }

    #[test]
    fn a_request_opens_as_what_it_is_and_a_failed_try_leaves_it_intact() {
        let (a, b) = (aes("a"), aes("b"));
        for proto in [Protocol::V1, Protocol::V2] {
            let q = Question::new(&a, proto, b"pw", "db").unwrap();
            let mut p = payload(q.frame());
            let before = p.clone();
            assert_eq!(b.open_request(&mut p), Err(OpenError::BadTag));
            assert_eq!(p, before, "a failed open must not change the payload");
            let via = a.open_request(&mut p).unwrap();
            assert_eq!(via.protocol(), proto);
            assert_eq!(p, b"pw db");
            if let Via::V2(n) = via {
                assert_eq!(n[..], before[..NONCE_LEN]);
            }
        }
        // An answer is not a request.
        let q = Question::new(&a, Protocol::V2, b"pw", "db").unwrap();
        let (_, mut answer) = serve(&a, q.frame(), b"db", Some(b"v"));
        assert!(a.open_request(&mut answer).is_err());
        let mut short = vec![0u8; OVERHEAD - 1];
        assert_eq!(a.open_request(&mut short), Err(OpenError::TooShort));
    }

    #[test]
    fn the_largest_value_fits_in_protocol_2() {
        // The largest value a keyed protocol-1 answer can carry fills the protocol-1 cap; in
        // protocol 2 it fits under the protocol-2 cap.
        let c = aes("k");
        let q = Question::new(&c, Protocol::V2, b"pw", "db").unwrap();
        let value = vec![7u8; MAX_RESPONSE - OVERHEAD];
        let (via, answer) = serve(&c, q.frame(), b"db", Some(&value));
        assert_eq!(answer.len(), MAX_RESPONSE + 1);
        assert!(answer.len() <= q.response_cap());
        assert!(via.answer_len(&c, Some(&value)) <= frame::HEADER_LEN + MAX_RESPONSE_V2);
        // (Opening it is the small round trip's work above: sealing 16 MiB once is enough
        // for an unoptimised test build.)
    }
}
