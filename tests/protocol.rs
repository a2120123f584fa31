//! Protocol 2 beside protocol 1 on one server: a client with a key speaks protocol 2 unless
//! told `--protocol 1` (or `NETSECRETS_PROTOCOL=1`); the server answers each in its own
//! protocol and says which in its log line; `--min-protocol 2` refuses protocol-1 requests
//! without an answer and without counting them as password guesses; plaintext is protocol 1
//! only.

mod common;

use std::process::Command;

use common::*;

const KEY: &str = "protocol-test-key";

#[test]
fn one_server_answers_both_protocols_in_kind() {
    let s = Server::serving(&["db=value"], &["--encryption-key", KEY]);
    assert_prints(&fetch(s.port, "db", &["--encryption-key", KEY]), "value\n");
    s.wait_log("protocol=2", 1);
    assert_prints(
        &fetch(s.port, "db", &["--encryption-key", KEY, "--protocol", "1"]),
        "value\n",
    );
    s.wait_log("protocol=1", 1);
    let o = Command::new(BIN)
        .args([
            "send",
            "--server",
            "127.0.0.1",
            "--port",
            &s.port.to_string(),
        ])
        .args([
            "--password",
            PW,
            "--request_secrets",
            "db",
            "--encryption-key",
            KEY,
        ])
        .env("NETSECRETS_PROTOCOL", "1")
        .output()
        .unwrap();
    assert_prints(&o, "value\n");
    let log = s.wait_log("protocol=1", 2);
    assert_eq!(log.matches("outcome=served protocol=1").count(), 2, "{log}");
    assert_eq!(log.matches("outcome=served protocol=2").count(), 1, "{log}");
    // Not found is reported the same way in both protocols.
    for proto in ["1", "2"] {
        let o = fetch(
            s.port,
            "gone",
            &["--encryption-key", KEY, "--protocol", proto],
        );
        let err = assert_exit(&o, 1);
        assert!(err.contains("no secret named \"gone\""), "{err}");
        assert_eq!(stdout(&o), "");
    }
}

#[test]
fn min_protocol_2_refuses_protocol_1_without_counting_a_guess() {
    let s = Server::serving(
        &["db=value"],
        &[
            "--encryption-key",
            KEY,
            "--min-protocol",
            "2",
            "--max-failures",
            "1",
        ],
    );
    for _ in 0..3 {
        let o = fetch(
            s.port,
            "db",
            &["--encryption-key", KEY, "--protocol", "1", "--timeout", "1"],
        );
        assert_exit(&o, 1);
        assert_eq!(stdout(&o), "");
    }
    let log = s.wait_log("refused protocol 1", 3);
    assert!(
        log.contains("outcome=refused protocol 1 (--min-protocol 2"),
        "{log}"
    );
    assert!(!log.contains("wrong-password"), "{log}");
    assert!(!log.contains("locked out"), "{log}");
    // Not locked out: protocol 2 from the same address is served.
    assert_prints(&fetch(s.port, "db", &["--encryption-key", KEY]), "value\n");
}

#[test]
fn plaintext_is_protocol_1_only() {
    let s = Server::serving(&["db=value"], &["--insecure"]);
    let o = fetch(s.port, "db", &["--insecure"]);
    assert_prints(&o, "value\n");
    s.wait_log("protocol=1", 1);
    let o = fetch(s.port, "db", &["--insecure", "--protocol", "2"]);
    let err = assert_exit(&o, 2);
    assert!(
        err.contains("--protocol 2 needs an encryption key"),
        "{err}"
    );
}
