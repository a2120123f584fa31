//! CLI parsing: `cli::parse` with an arbitrary argument vector and an arbitrary environment.
//! Input layout: the bytes up to the first 0xFF are the environment (`KEY=VALUE` entries separated
//! by NUL); the rest is argv after the program name, arguments separated by NUL. Arguments may be
//! any bytes (not UTF-8 either), as on a real command line. Nothing here may panic; the parser
//! opens no file or socket, so any argv is safe to try.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;
use netsecrets::cli;

fuzz_target!(|data: &[u8]| {
    let (env_part, argv_part) = match data.iter().position(|&b| b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let env: Vec<(Vec<u8>, Vec<u8>)> = env_part
        .split(|&b| b == 0)
        .filter_map(|kv| {
            let eq = kv.iter().position(|&b| b == b'=')?;
            Some((kv[..eq].to_vec(), kv[eq + 1..].to_vec()))
        })
        .collect();
    let lookup = |key: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| OsString::from_vec(v.clone()))
    };
    let mut argv: Vec<OsString> = vec![OsString::from("netsecrets")];
    if !argv_part.is_empty() {
        argv.extend(argv_part.split(|&b| b == 0).map(|a| OsString::from_vec(a.to_vec())));
    }
    let _ = cli::parse(argv, &lookup);
});
