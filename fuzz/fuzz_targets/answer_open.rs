//! The client's reading of an answer: `bound::Question::open_answer` on arbitrary bytes, in
//! protocol 2 and protocol 1, as `send` does with every response. Checks: no panic; bytes not
//! sealed for this request never give a value; the input sealed as a protocol-2 answer's
//! plaintext with this request's associated data is classified exactly as the protocol says
//! (empty: error; 0x00: the value that follows; 0x01 alone: not found; 0x01 with more: error;
//! any other status: error), and the same plaintext bound to another name or another request
//! never opens; in protocol 1, an answer that begins with the password and a space is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netsecrets::wire::bound::{Answer, AnswerError, Protocol, Question, RESPONSE_AAD};
use netsecrets::wire::crypto::{Codec, Key, NONCE_LEN};

const PW: &[u8] = b"fuzz pw";

fuzz_target!(|data: &[u8]| {
    let codec = Codec::Aes(Key::from_str_key("fuzz-key"));
    let key = Key::from_str_key("fuzz-key");
    let q = Question::new(&codec, Protocol::V2, PW, "db").expect("random nonce");
    // Arbitrary bytes: never an answer.
    assert!(q.open_answer(&codec, PW, b"db", data.to_vec()).is_err());
    let q1 = Question::new(&codec, Protocol::V1, PW, "db").expect("random nonce");
    assert!(q1.open_answer(&codec, PW, b"db", data.to_vec()).is_err());

    // The input as the plaintext of a genuine protocol-2 answer to `q`.
    let nonce_q = &q.frame()[4..4 + NONCE_LEN];
    let aad = [RESPONSE_AAD, nonce_q, b"db"].concat();
    let mut sealed = Vec::new();
    key.seal_parts_into(&mut sealed, &[data], &aad).expect("random nonce");
    let got = q.open_answer(&codec, PW, b"db", sealed.clone());
    let want = match data.split_first() {
        None => Err(AnswerError::Empty),
        Some((0x00, rest)) => Ok(Answer::Value(rest.to_vec())),
        Some((0x01, [])) => Ok(Answer::NotFound),
        Some((0x01, _)) => Err(AnswerError::TrailingBytes),
        Some((&s, _)) => Err(AnswerError::UnknownStatus(s)),
    };
    assert_eq!(got, want);
    // Bound to this name and this request only.
    assert_eq!(
        q.open_answer(&codec, PW, b"dc", sealed.clone()),
        Err(AnswerError::Unopened)
    );
    let other = Question::new(&codec, Protocol::V2, PW, "db").expect("random nonce");
    assert_eq!(
        other.open_answer(&codec, PW, b"db", sealed),
        Err(AnswerError::Unopened)
    );

    // Protocol 1: the input sealed without associated data is a value unless it is `Not found`
    // or begins with the password and a space.
    let sealed = key.seal(data).expect("random nonce");
    let got = q1.open_answer(&codec, PW, b"db", sealed);
    if data.len() > PW.len() && data.starts_with(PW) && data[PW.len()] == b' ' {
        assert_eq!(got, Err(AnswerError::Reflected));
    } else if data == b"Not found" {
        assert_eq!(got, Ok(Answer::NotFound));
    } else {
        assert_eq!(got, Ok(Answer::Value(data.to_vec())));
    }
});
