//! Request parsing: `protocol::parse_request` on arbitrary (decrypted) payloads. Checks: an
//! accepted request has a non-empty password and a valid name (never `/`, `..`, empty or over 255
//! bytes), both taken from the payload, and build_request(parse(x)) parses back to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netsecrets::wire::protocol::{self, MAX_NAME};

fuzz_target!(|data: &[u8]| {
    let Ok(req) = protocol::parse_request(data) else {
        return;
    };
    assert!(!req.password.is_empty());
    assert!(protocol::valid_name(req.name));
    assert!(!req.name.is_empty() && req.name.len() <= MAX_NAME);
    assert!(!req.name.contains(&b'/') && req.name != b".." && req.name != b".");
    assert!(data.starts_with(req.password));
    let name = std::str::from_utf8(req.name).expect("valid names are ASCII");
    let rebuilt = protocol::build_request(req.password, name);
    let again = protocol::parse_request(&rebuilt).expect("a rebuilt request parses");
    assert_eq!(again, req);
});
