//! End-to-end tests: the built binary as server and client on 127.0.0.1 with ephemeral ports.
//! Each test asserts exit codes, output bytes and files exactly, and what the logs must not hold.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const PW: &str = "hunter2-correct-horse";

#[test]
fn plaintext_fetch_to_stdout_warns_about_cleartext() {
    let s = Server::start(&["--password", PW, "-S", "db=s3cr3t-value"]);
    let o = send(s.port, &["--password", PW, "--request_secrets", "db"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "s3cr3t-value\n");
    assert!(stderr(&o).contains("travel in clear"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--password is visible"),
        "{}",
        stderr(&o)
    );
    assert!(s
        .wait_log("outcome=served", 1)
        .contains("name=db outcome=served"));
}

#[test]
fn encrypted_fetch_and_key_string_file_interop() {
    let d = TempDir::new("keys");
    let key_lf = d.write("k1", b"my-aes-key\n");
    let key_crlf = d.write("k2", b"my-aes-key\r\n");
    let pw = d.write("pw", format!("{PW}\n").as_bytes());
    // Server with the key string, clients with key files (and the reverse).
    let s = Server::start(&[
        "--password-file",
        &pw,
        "-S",
        "db=v1",
        "--encryption-key",
        "my-aes-key",
    ]);
    for key in [&key_lf, &key_crlf] {
        let o = send(
            s.port,
            &[
                "--password-file",
                &pw,
                "--request_secrets",
                "db",
                "--encryption-key-file",
                key,
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(stdout(&o), "v1\n");
        assert!(
            !stderr(&o).contains("warning"),
            "no warning expected: {}",
            stderr(&o)
        );
    }
    let s2 = Server::start(&[
        "--password-file",
        &pw,
        "-S",
        "db=v2",
        "--encryption-key-file",
        &key_lf,
    ]);
    let o = send(
        s2.port,
        &[
            "--password-file",
            &pw,
            "--request_secrets",
            "db",
            "--encryption-key",
            "my-aes-key",
        ],
    );
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(0), "v2\n"),
        "{}",
        stderr(&o)
    );
    // The file beats the string on the client.
    let o = send(
        s2.port,
        &[
            "--password-file",
            &pw,
            "--request_secrets",
            "db",
            "--encryption-key",
            "wrong",
            "--encryption-key-file",
            &key_crlf,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn mismatched_keys_and_mixed_modes_fail_loudly() {
    let d = TempDir::new("mismatch");
    let out = d.path("db");
    std::fs::write(&out, "old").unwrap();
    let out_s = out.to_str().unwrap();
    let s = Server::start(&[
        "--password",
        PW,
        "-S",
        "db=v",
        "--encryption-key",
        "server-key",
    ]);
    let cases: [&[&str]; 3] = [&["--encryption-key", "client-key"], &["--insecure"], &[]];
    for extra in cases {
        let mut args = vec![
            "--password",
            PW,
            "--request_secrets",
            "db",
            "--timeout",
            "1",
            "--file-output",
            out_s,
        ];
        args.extend_from_slice(extra);
        let o = send(s.port, &args);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("encryption key"), "{}", stderr(&o));
        assert_eq!(std::fs::read(&out).unwrap(), b"old");
    }
    assert!(
        s.wait_log("outcome=undecryptable", 3)
            .matches("outcome=undecryptable")
            .count()
            >= 3
    );
    // Client encrypts, server plaintext.
    let p = Server::start(&[
        "--password",
        PW,
        "-S",
        "db=v",
        "--insecure",
        "--max-failures",
        "0",
    ]);
    let o = send(
        p.port,
        &[
            "--password",
            PW,
            "--request_secrets",
            "db",
            "--timeout",
            "1",
            "--encryption-key",
            "k",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        p.wait_log("outcome=", 1).contains("outcome=malformed"),
        "{}",
        p.log()
    );
    assert_eq!(d.entries(), ["db"]);
}

#[test]
fn wrong_password_and_not_found() {
    let s = Server::start(&["--password", PW, "-S", "db=v", "--encryption-key", "k"]);
    let o = send(
        s.port,
        &[
            "--password",
            "nope",
            "--request_secrets",
            "db",
            "--encryption-key",
            "k",
            "--timeout",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("password"), "{}", stderr(&o));
    assert!(s
        .wait_log("outcome=wrong-password", 1)
        .contains("outcome=wrong-password"));
    let o = send(
        s.port,
        &[
            "--password",
            PW,
            "--request_secrets",
            "other",
            "--encryption-key",
            "k",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no secret named \"other\""),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "", "Not found is never output as a value");
    assert!(s
        .wait_log("outcome=not-found", 1)
        .contains("name=other outcome=not-found"));
}

#[test]
fn fallback_used_when_primary_down_and_preferred_afterwards() {
    // The server listens on 127.0.0.1 only, so 127.0.0.2 on the same port refuses.
    let s = Server::start(&[
        "--password",
        PW,
        "-S",
        "a=1",
        "-S",
        "b=2",
        "--encryption-key",
        "k",
    ]);
    let port = s.port.to_string();
    let o = run(&[
        "send",
        "--server",
        "127.0.0.2",
        "--fallbacks",
        "127.0.0.3, 127.0.0.1",
        "--port",
        &port,
        "--password",
        PW,
        "--request_secrets",
        "a,b",
        "--encryption-key",
        "k",
        "--verbose",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "1\n2\n");
    let err = stderr(&o);
    assert_eq!(err.matches("fetching a from 127.0.0.2").count(), 1, "{err}");
    assert_eq!(
        err.matches("fetching b from 127.0.0.2").count(),
        0,
        "answered server first: {err}"
    );
    assert_eq!(err.matches("fetching b from 127.0.0.1").count(), 1, "{err}");
}

#[test]
fn retries_until_a_late_server_comes_up() {
    let port = free_port();
    let p = port.to_string();
    let client = std::thread::spawn(move || {
        let t = Instant::now();
        let o = run(&[
            "send",
            "--server",
            "127.0.0.1",
            "--port",
            &p,
            "--password",
            PW,
            "--request_secrets",
            "db",
            "--timeout",
            "20",
        ]);
        (o, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(1500));
    let _s = Server::start_on(
        "127.0.0.1",
        &port.to_string(),
        &["--password", PW, "-S", "db=late"],
    );
    let (o, took) = client.join().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "late\n");
    assert!(
        took >= Duration::from_millis(1400),
        "it really waited: {took:?}"
    );
}

#[test]
fn all_servers_down_gives_one_line_per_failure_and_exit_1() {
    let port = free_port().to_string();
    let t = Instant::now();
    let o = run(&[
        "send",
        "--server",
        "127.0.0.1",
        "--fallbacks",
        "127.0.0.2",
        "--port",
        &port,
        "--password",
        PW,
        "--request_secrets",
        "db",
        "--timeout",
        "1.5",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(t.elapsed() < Duration::from_secs(10));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("server 127.0.0.1:{port} refused the connection")),
        "{err}"
    );
    assert!(
        err.contains(&format!("server 127.0.0.2:{port} refused the connection")),
        "{err}"
    );
    assert!(err.contains("could not fetch secret \"db\""), "{err}");
}

#[test]
fn multi_secret_output_stdout_and_file() {
    let d = TempDir::new("multi");
    let s = Server::start(&[
        "--password",
        PW,
        "-S",
        "a=first",
        "-S",
        "b=second",
        "-S",
        "c=third value",
    ]);
    let o = send(s.port, &["--password", PW, "--request_secrets", "a b,c"]);
    assert_eq!(stdout(&o), "first\nsecond\nthird value\n");
    let out = d.path("all");
    let o = send(
        s.port,
        &[
            "--password",
            PW,
            "--request-secrets",
            "a,c",
            "--file-output",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), b"first\nthird value");
    assert_eq!(mode(&out), 0o400);
}

#[test]
fn file_output_mode_atomic_replacement_and_no_leftovers() {
    use std::os::unix::fs::MetadataExt;
    let d = TempDir::new("atomic");
    let s = Server::start(&[
        "--password",
        PW,
        "-S",
        "db=new-value",
        "--secret-file",
        &format!("bin={}", d.write("src", b"\x00\xff\nraw")),
    ]);
    let out = d.path("db");
    std::fs::write(&out, "old").unwrap();
    let ino = std::fs::metadata(&out).unwrap().ino();
    let o = send(
        s.port,
        &[
            "--password",
            PW,
            "--request_secrets",
            "db",
            "--file-output",
            out.to_str().unwrap(),
            "--mode",
            "0440",
            "--owner",
            "0",
            "--group",
            "root",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), b"new-value");
    assert_eq!(mode(&out), 0o440);
    assert_ne!(
        std::fs::metadata(&out).unwrap().ino(),
        ino,
        "replaced by rename, not rewritten in place"
    );
    assert_eq!(d.entries(), ["db", "src"]);
    // Binary values from --secret-file arrive byte for byte.
    let bin = d.path("bin");
    let o = send(
        s.port,
        &[
            "--password",
            PW,
            "--request_secrets",
            "bin",
            "--file-output",
            bin.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read(&bin).unwrap(), b"\x00\xff\nraw");
    // A missing output directory is created.
    let nested = d.path("sub/dir/x");
    let o = send(
        s.port,
        &[
            "--password",
            PW,
            "--request_secrets",
            "db",
            "--file-output",
            nested.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read(&nested).unwrap(), b"new-value");
}

#[test]
fn old_file_intact_after_every_failure_kind() {
    let d = TempDir::new("intact");
    let s = Server::start(&[
        "--password",
        PW,
        "-S",
        "db=v",
        "--encryption-key",
        "k",
        "--max-failures",
        "0",
    ]);
    let out = d.path("db");
    std::fs::write(&out, "precious").unwrap();
    let o_s = out.to_str().unwrap();
    let port = s.port.to_string();
    let down = free_port().to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            "--password",
            "wrong",
            "--encryption-key",
            "k",
        ],
        vec![
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            "--password",
            PW,
            "--encryption-key",
            "other",
        ],
        vec![
            "--server",
            "127.0.0.1",
            "--port",
            &down,
            "--password",
            PW,
            "--encryption-key",
            "k",
        ],
    ];
    for c in &cases {
        let mut a = vec![
            "send",
            "--request_secrets",
            "db",
            "--timeout",
            "1",
            "--file-output",
            o_s,
        ];
        a.extend_from_slice(c);
        let o = run(&a);
        assert_eq!(o.status.code(), Some(1), "{c:?}: {}", stderr(&o));
        assert_eq!(std::fs::read(&out).unwrap(), b"precious", "{c:?}");
    }
    // One of two names missing: nothing is written.
    let o = run(&[
        "send",
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--password",
        PW,
        "--encryption-key",
        "k",
        "--request_secrets",
        "db missing",
        "--file-output",
        o_s,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    // An unknown owner is a usage error before anything is fetched.
    let o = run(&[
        "send",
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--password",
        PW,
        "--encryption-key",
        "k",
        "--request_secrets",
        "db",
        "--file-output",
        o_s,
        "--owner",
        "no-such-user-xyz",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no such user"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    assert_eq!(d.entries(), ["db"], "no temporary files left");
}

#[test]
fn no_secret_password_or_key_in_any_log_line() {
    let value = "VALUE-7d1f3a";
    let pw = "PASSWORD-9c2e4b with space";
    let key = "KEY-5a8b6c";
    let d = TempDir::new("logs");
    let pwf = d.write("pw", pw.as_bytes());
    let s = Server::start(&[
        "--password-file",
        &pwf,
        "-S",
        &format!("db={value}"),
        "--encryption-key",
        key,
        "--verbose",
    ]);
    let ok = send(
        s.port,
        &[
            "--password-file",
            &pwf,
            "--request_secrets",
            "db",
            "--encryption-key",
            key,
            "--verbose",
            "--file-output",
            d.path("o").to_str().unwrap(),
        ],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    // The password contains a space: a wrong one must not leak its tail as a "name".
    let bad = send(
        s.port,
        &[
            "--password",
            "PASSWORD-9c2e4b wrongtail",
            "--request_secrets",
            "db",
            "--encryption-key",
            key,
            "--verbose",
            "--timeout",
            "1",
        ],
    );
    let nf = send(
        s.port,
        &[
            "--password-file",
            &pwf,
            "--request_secrets",
            "nope",
            "--encryption-key",
            key,
            "--verbose",
        ],
    );
    let log = s.wait_log("peer=", 3);
    for text in [
        log.as_str(),
        &stderr(&ok),
        &stdout(&ok),
        &stderr(&bad),
        &stderr(&nf),
    ] {
        for needle in [value, "PASSWORD-9c2e4b", "with space", "wrongtail", key] {
            assert!(!text.contains(needle), "{needle:?} leaked into: {text}");
        }
    }
}

#[test]
fn authorized_ips_checked_before_reading() {
    let s = Server::start(&["--password", PW, "-S", "db=v", "-a", "10.0.0.0/8,fd00::/8"]);
    let o = send(
        s.port,
        &[
            "--password",
            PW,
            "--request_secrets",
            "db",
            "--timeout",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(s
        .wait_log("outcome=denied", 1)
        .contains("outcome=denied (not in --authorized-ips)"));
    assert!(
        !s.log().contains("wrong-password"),
        "the request was never read"
    );
    let s = Server::start(&[
        "--password",
        PW,
        "-S",
        "db=v",
        "-a",
        "10.0.0.0/8",
        "--authorized-ips",
        "127.0.0.1",
    ]);
    let o = send(s.port, &["--password", PW, "--request_secrets", "db"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn ipv4_mapped_peer_on_dual_stack_listener_matches_ipv4_network() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIP: no IPv6 on this machine's loopback");
        return;
    }
    let s = Server::start_on(
        "::",
        "0",
        &["--password", PW, "-S", "db=v6", "-a", "127.0.0.0/8"],
    );
    let o = send(s.port, &["--password", PW, "--request_secrets", "db"]);
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(0), "v6\n"),
        "{}",
        stderr(&o)
    );
    // ::1 is not in 127.0.0.0/8.
    let port = s.port.to_string();
    let o = run(&[
        "send",
        "--server",
        "::1",
        "--port",
        &port,
        "--password",
        PW,
        "--request_secrets",
        "db",
        "--timeout",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let s6 = Server::start_on(
        "::1",
        "0",
        &["--password", PW, "-S", "db=v6", "-a", "::1/128"],
    );
    let port = s6.port.to_string();
    let o = run(&[
        "send",
        "--server",
        "[::1]",
        "--port",
        &port,
        "--password",
        PW,
        "--request_secrets",
        "db",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Hand-built bytes, independent of the crate's encoder: header and body in separate segments
/// with pauses, then the client closes its write side before reading.
#[test]
fn request_in_pieces_and_half_close() {
    let s = Server::start(&["--password", PW, "-S", "db=pieces"]);
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_nodelay(true).unwrap();
    let body = format!("{PW} db\n");
    let len = (body.len() as u32).to_be_bytes();
    c.write_all(&len[..2]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(&len[2..]).unwrap();
    for chunk in body.as_bytes().chunks(5) {
        std::thread::sleep(Duration::from_millis(30));
        c.write_all(chunk).unwrap();
    }
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut resp = Vec::new();
    c.read_to_end(&mut resp).unwrap();
    assert_eq!(resp, b"\x00\x00\x00\x06pieces");
}

/// The answer and the server's FIN arrive together (the server corks its sockets and closes at
/// once): as soon as the whole answer can be read, the end of the stream can be read too, so a
/// client that closes right after reading is never the first to close and never keeps the
/// connection in TIME_WAIT. Without the cork the FIN follows the answer in a later segment,
/// sent only when the server thread gets to close(); a client reading in between finds no end.
#[test]
fn answer_and_end_of_stream_arrive_together() {
    let s = Server::start(&["--password", PW, "-S", "db=together"]);
    let body = format!("{PW} db\n");
    let mut request = (body.len() as u32).to_be_bytes().to_vec();
    request.extend_from_slice(body.as_bytes());
    let want = b"\x00\x00\x00\x08together";
    for i in 0..200 {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(&request).unwrap();
        let mut resp = [0u8; 12];
        c.read_exact(&mut resp).unwrap();
        assert_eq!(&resp, want);
        c.set_nonblocking(true).unwrap();
        let mut more = [0u8; 1];
        match c.read(&mut more) {
            Ok(0) => {}
            other => panic!("exchange {i}: answer read, but no end of stream with it: {other:?}"),
        }
    }
}

#[test]
fn server_refuses_bad_configuration_with_exit_2() {
    let d = TempDir::new("badcfg");
    let port = free_port().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![], "no password"),
        (
            vec![
                "--password-file".into(),
                d.path("missing").to_str().unwrap().into(),
            ],
            "cannot read password file",
        ),
        (
            vec![
                "--password".into(),
                "p".into(),
                "--secret-file".into(),
                format!("x={}", d.path("nope").display()),
            ],
            "secret file",
        ),
        (
            vec![
                "--password".into(),
                "p".into(),
                "-a".into(),
                "10.0.0.0/99".into(),
            ],
            "--authorized-ips",
        ),
        (
            vec![
                "--password".into(),
                "p".into(),
                "-S".into(),
                "../x=1".into(),
            ],
            "invalid secret name",
        ),
        (
            vec![
                "--password".into(),
                "p".into(),
                "-S".into(),
                "a=1".into(),
                "-S".into(),
                "a=2".into(),
            ],
            "given twice",
        ),
        (
            vec![
                "--password".into(),
                "p".into(),
                "-S".into(),
                "a=Not found".into(),
            ],
            "Not found",
        ),
        (
            vec![
                "--password".into(),
                "p".into(),
                "--encryption-key-file".into(),
                d.path("nokey").to_str().unwrap().into(),
            ],
            "encryption key file",
        ),
        (
            vec!["--password".into(), "p".into(), "--bogus".into()],
            "unknown flag --bogus",
        ),
    ];
    for (extra, want) in cases {
        let mut a: Vec<&str> = vec!["receive", "--server", "127.0.0.1", "--port", &port];
        a.extend(extra.iter().map(String::as_str));
        let o = run(&a);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(want), "{extra:?}: want {want:?} in {err}");
        assert_eq!(
            err.lines().filter(|l| !l.contains("warning")).count(),
            1,
            "one line: {err}"
        );
    }
    // Bind error: the port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tp = taken.local_addr().unwrap().port().to_string();
    let o = run(&[
        "receive",
        "--server",
        "127.0.0.1",
        "--port",
        &tp,
        "--password",
        "p",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot listen on"), "{}", stderr(&o));
}

#[test]
fn usage_help_version_exit_codes() {
    let o = run(&["send", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("--request_secrets"));
    for sub in ["receive", "ask-password", "copy-password", "keygen"] {
        assert_eq!(run(&[sub, "--help"]).status.code(), Some(0), "{sub}");
    }
    let o = run(&["--version"]);
    assert_eq!(
        stdout(&o),
        format!("netsecrets {}\n", env!("CARGO_PKG_VERSION"))
    );
    let o = run(&[
        "send",
        "--server",
        "h",
        "--request_secrets",
        "a",
        "--frobnicate",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "netsecrets: unknown flag --frobnicate (see --help)\n"
    );
    let o = run(&["send", "--server", "127.0.0.1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--request_secrets"));
    assert_eq!(run(&[]).status.code(), Some(2));
}

#[test]
fn environment_variables_configure_the_client() {
    let s = Server::start(&["--password", PW, "-S", "a=1", "-S", "b=2"]);
    let d = TempDir::new("env");
    let pwf = d.write("pw", format!("{PW}\n").as_bytes());
    let o = std::process::Command::new(BIN)
        .arg("send")
        .env("NETSECRETS_SERVER", "127.0.0.2")
        .env("NETSECRETS_FALLBACKS", "127.0.0.1")
        .env("NETSECRETS_PORT", s.port.to_string())
        .env("NETSECRETS_PASSWORD_FILE", &pwf)
        .env("NETSECRETS_REQUEST_SECRETS", "a b")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "1\n2\n");
    assert!(
        !stderr(&o).contains("visible"),
        "a password file draws no process-list warning"
    );
}

#[test]
fn copy_password_and_keygen() {
    let d = TempDir::new("initrd");
    let from = d.write("pw", b"typed-password");
    let to = d.path("secrets/netsecrets-password");
    let o = run(&[
        "copy-password",
        "--from",
        &from,
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read(&to).unwrap(), b"typed-password");
    assert_eq!(mode(&to), 0o400);
    assert_eq!(mode(&d.path("secrets")), 0o751);
    let o = run(&[
        "copy-password",
        "--from",
        d.path("absent").to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("did netsecrets-ask-password.service run"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&to).unwrap(), b"typed-password");

    let o = run(&["keygen"]);
    let k = stdout(&o);
    assert_eq!(k.len(), 65);
    assert!(k[..64].bytes().all(|b| b.is_ascii_hexdigit()) && k.ends_with('\n'));
    assert_ne!(k, stdout(&run(&["keygen"])));
    let kf = d.path("key");
    assert_eq!(
        run(&["keygen", "--output", kf.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(mode(&kf), 0o400);
    let first = std::fs::read(&kf).unwrap();
    let o = run(&["keygen", "--output", kf.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("never overwrites"));
    assert_eq!(std::fs::read(&kf).unwrap(), first);
    // The generated key file works on both sides.
    let s = Server::start(&[
        "--password",
        PW,
        "-S",
        "db=k",
        "--encryption-key-file",
        kf.to_str().unwrap(),
    ]);
    let o = send(
        s.port,
        &[
            "--password",
            PW,
            "--request_secrets",
            "db",
            "--encryption-key-file",
            kf.to_str().unwrap(),
        ],
    );
    assert_eq!(stdout(&o), "k\n", "{}", stderr(&o));
}

/// A pseudo-terminal stands in for /dev/console: the prompt must appear with echo already off
/// (the typed password never comes back on the terminal), an empty answer re-asks, and the
/// password lands atomically with mode 0400.
#[test]
fn ask_password_on_a_pty_without_echo() {
    let d = TempDir::new("ask");
    let mut pty = Pty::open();
    let out = d.path("run/netsecrets-password");
    let mut child = std::process::Command::new(BIN)
        .args([
            "ask-password",
            "--tty",
            &pty.path,
            "--output",
            out.to_str().unwrap(),
            "--prompt",
            "PW? ",
        ])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    pty.wait_for(b"PW? ", 1);
    pty.type_line(b"");
    pty.wait_for(b"PW? ", 2);
    pty.type_line(b"typed pass");
    let status = wait_limited(&mut child, Duration::from_secs(20));
    let shown = pty.shown();
    assert!(status.success(), "ask-password failed: {shown}");
    assert_eq!(std::fs::read(&out).unwrap(), b"typed pass");
    assert_eq!(mode(&out), 0o400);
    assert!(
        !shown.contains("typed"),
        "the password was echoed: {shown:?}"
    );
}

/// With every slot taken by connections that never send a request, a new client is still
/// served: the oldest incomplete connection is closed to make room.
#[test]
fn full_server_evicts_oldest_idle_connection_for_a_new_client() {
    let s = Server::start(&[
        "--password",
        PW,
        "-S",
        "db=v",
        "--max-connections",
        "4",
        "--timeout",
        "60",
    ]);
    let mut idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", s.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    assert_fetches_db(s.port, "v\n");
    assert!(t.elapsed() < Duration::from_secs(3));
    // The first idle connection was closed by the server (EOF), long before its 60 s deadline.
    idle[0]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut b = [0u8; 1];
    assert_eq!(idle[0].read(&mut b).unwrap(), 0);
}

/// CPUs in this process's affinity mask (the server started from here inherits it).
fn affinity_cpus() -> usize {
    // SAFETY: a zeroed cpu_set_t owned by this frame, written by the kernel up to its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
            0
        );
        libc::CPU_COUNT(&set) as usize
    }
}

/// The process's thread count, from /proc.
fn threads(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The process's thread count, once it equals `want` or after `limit`.
fn threads_settle(pid: u32, want: usize, limit: Duration) -> usize {
    let end = Instant::now() + limit;
    loop {
        let n = threads(pid);
        if n == want || Instant::now() > end {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `send` fetches secret `db` with a 3 s timeout and prints `want`.
fn assert_fetches_db(port: u16, want: &str) {
    let o = send(
        port,
        &[
            "--password",
            PW,
            "--request_secrets",
            "db",
            "--timeout",
            "3",
        ],
    );
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(0), want),
        "{}",
        stderr(&o)
    );
}

/// Workers started for a burst of idle connections retire once idle, down to the one per CPU
/// (2 to 16) kept alive; the server itself never does (a worker returning on the main thread
/// would end the process).
#[test]
fn server_keeps_serving_after_extra_workers_retire() {
    let mut s = Server::start(&["--password", PW, "-S", "db=v", "--timeout", "0.3"]);
    let kept = affinity_cpus().clamp(2, 16) + 1; // the kept workers and the monitor
    assert_eq!(threads_settle(s.pid(), kept, Duration::from_secs(3)), kept);
    // Hold more connections than the most workers ever kept alive (16, one per CPU), so the
    // pool grows on any machine.
    let idle: Vec<TcpStream> = (0..24)
        .map(|_| TcpStream::connect(("127.0.0.1", s.port)).unwrap())
        .collect();
    // The monitor grows the pool within a few 5 ms ticks; the connections are closed at their
    // 0.3 s deadline, and the extra workers retire a 0.3 s idle timeout later.
    std::thread::sleep(Duration::from_millis(150));
    let grown = threads(s.pid());
    assert!(grown > kept, "the pool did not grow: {grown} threads");
    drop(idle);
    // Several idle timeouts pass: the extra workers retire.
    assert_eq!(threads_settle(s.pid(), kept, Duration::from_secs(5)), kept);
    assert!(s.is_alive(), "the server exited: {}", s.log());
    assert_fetches_db(s.port, "v\n");
}
