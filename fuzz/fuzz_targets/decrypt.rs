//! Decryption of received payloads: `crypto::Key::open` (and `Codec::open`) on arbitrary bytes,
//! as the server does with every request and the client with every response. Checks: no panic;
//! bytes not sealed with the key never authenticate (the seed is sealed with another key); a payload sealed with the key opens to the same plaintext and
//! stops opening when any single bit is flipped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netsecrets::wire::crypto::{Codec, Key, OpenError, OVERHEAD};

fuzz_target!(|data: &[u8]| {
    let key = Key::from_str_key("fuzz-key");
    match key.open(data.to_vec()) {
        Ok(_) => panic!("arbitrary bytes authenticated under a fixed key"),
        Err(OpenError::TooShort) => assert!(data.len() < OVERHEAD),
        Err(OpenError::BadTag) => assert!(data.len() >= OVERHEAD),
    }
    let codec = Codec::Aes(Key::from_file_contents(b"fuzz-key\n"));
    assert!(codec.open(data.to_vec()).is_err());

    // Round trip of the input as a plaintext, and a one-bit flip chosen by the input.
    let sealed = key.seal(data).expect("random nonce");
    assert_eq!(sealed.len(), data.len() + OVERHEAD);
    assert_eq!(key.open(sealed.clone()).expect("own seal opens"), data);
    let mut flipped = sealed;
    let bit = data.iter().fold(0usize, |a, &b| a.wrapping_mul(31).wrapping_add(usize::from(b)));
    let at = bit % (flipped.len() * 8);
    flipped[at / 8] ^= 1 << (at % 8);
    assert!(key.open(flipped).is_err(), "a flipped bit must not authenticate");
});
