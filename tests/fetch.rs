//! Fetching secrets end to end: the built binary as server and client on 127.0.0.1 with
//! ephemeral ports; plaintext and AES (key strings and key files), wrong keys and passwords,
//! fallbacks, retries, and configuration from the environment. Each test asserts exit codes,
//! output bytes and the server's log lines.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn plaintext_fetch_to_stdout_warns_about_cleartext() {
    let s = Server::serving(&["db=s3cr3t-value"], &[]);
    let o = fetch(s.port, "db", &[]);
    assert_prints(&o, "s3cr3t-value\n");
    let err = stderr(&o);
    assert!(err.contains("travel in clear"), "{err}");
    assert!(err.contains("--password is visible"), "{err}");
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
    let fetch_db = |port: u16, key: &[&str]| {
        let mut args = vec!["--password-file", &pw, "--request_secrets", "db"];
        args.extend_from_slice(key);
        send(port, &args)
    };
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
        let o = fetch_db(s.port, &["--encryption-key-file", key]);
        assert_prints(&o, "v1\n");
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
    let o = fetch_db(s2.port, &["--encryption-key", "my-aes-key"]);
    assert_prints(&o, "v2\n");
    // The file beats the string on the client.
    let o = fetch_db(
        s2.port,
        &[
            "--encryption-key",
            "wrong",
            "--encryption-key-file",
            &key_crlf,
        ],
    );
    assert_exit(&o, 0);
}

#[test]
fn mismatched_keys_and_mixed_modes_fail_loudly() {
    let d = TempDir::new("mismatch");
    let out = d.path("db");
    std::fs::write(&out, "old").unwrap();
    let out_s = out.to_str().unwrap();
    let s = Server::serving(&["db=v"], &["--encryption-key", "server-key"]);
    let cases: [&[&str]; 3] = [&["--encryption-key", "client-key"], &["--insecure"], &[]];
    for extra in cases {
        let mut args = vec!["--timeout", "1", "--file-output", out_s];
        args.extend_from_slice(extra);
        let o = fetch(s.port, "db", &args);
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
    let p = Server::serving(&["db=v"], &["--insecure", "--max-failures", "0"]);
    let o = fetch(p.port, "db", &["--timeout", "1", "--encryption-key", "k"]);
    assert_exit(&o, 1);
    assert!(
        p.wait_log("outcome=", 1).contains("outcome=malformed"),
        "{}",
        p.log()
    );
    assert_eq!(d.entries(), ["db"]);
}

#[test]
fn wrong_password_and_not_found() {
    let s = Server::serving(&["db=v"], &["--encryption-key", "k"]);
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
    let err = assert_exit(&o, 1);
    assert!(err.contains("password"), "{err}");
    assert!(s
        .wait_log("outcome=wrong-password", 1)
        .contains("outcome=wrong-password"));
    let o = fetch(s.port, "other", &["--encryption-key", "k"]);
    let err = assert_exit(&o, 1);
    assert!(err.contains("no secret named \"other\""), "{err}");
    assert_eq!(stdout(&o), "", "Not found is never output as a value");
    assert!(s
        .wait_log("outcome=not-found", 1)
        .contains("name=other outcome=not-found"));
}

#[test]
fn fallback_used_when_primary_down_and_preferred_afterwards() {
    // The server listens on 127.0.0.1 only, so 127.0.0.2 on the same port refuses.
    let s = Server::serving(&["a=1", "b=2"], &["--encryption-key", "k"]);
    let o = fetch_from(
        "127.0.0.2",
        s.port,
        "a,b",
        &[
            "--fallbacks",
            "127.0.0.3, 127.0.0.1",
            "--encryption-key",
            "k",
            "--verbose",
        ],
    );
    assert_prints(&o, "1\n2\n");
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
    let client = std::thread::spawn(move || {
        let t = Instant::now();
        let o = fetch(port, "db", &["--timeout", "20"]);
        (o, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(1500));
    let _s = Server::builder()
        .port(port)
        .password()
        .secrets(&["db=late"])
        .start();
    let (o, took) = client.join().unwrap();
    assert_prints(&o, "late\n");
    assert!(
        took >= Duration::from_millis(1400),
        "it really waited: {took:?}"
    );
}

#[test]
fn all_servers_down_gives_one_line_per_failure_and_exit_1() {
    let port = free_port();
    let t = Instant::now();
    let o = fetch_from(
        "127.0.0.1",
        port,
        "db",
        &["--fallbacks", "127.0.0.2", "--timeout", "1.5"],
    );
    let err = assert_exit(&o, 1);
    assert!(t.elapsed() < Duration::from_secs(10));
    for server in ["127.0.0.1", "127.0.0.2"] {
        assert!(
            err.contains(&format!("server {server}:{port} refused the connection")),
            "{err}"
        );
    }
    assert!(err.contains("could not fetch secret \"db\""), "{err}");
}

#[test]
fn environment_variables_configure_the_client() {
    let s = Server::serving(&["a=1", "b=2"], &[]);
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
    assert_prints(&o, "1\n2\n");
    assert!(
        !stderr(&o).contains("visible"),
        "a password file draws no process-list warning"
    );
}
