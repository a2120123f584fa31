//! Who the server answers and what it tells: no secret, password or key in any log line of
//! either side, `--authorized-ips` checked before a byte is read, and IPv4 peers of a
//! dual-stack listener matched against IPv4 networks.

mod common;

use common::*;

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
    let send_verbose = |password: &[&str], name: &str, extra: &[&str]| {
        let mut args = password.to_vec();
        args.extend([
            "--request_secrets",
            name,
            "--encryption-key",
            key,
            "--verbose",
        ]);
        args.extend_from_slice(extra);
        send(s.port, &args)
    };
    let o_path = d.path("o");
    let ok = send_verbose(
        &["--password-file", &pwf],
        "db",
        &["--file-output", o_path.to_str().unwrap()],
    );
    assert_exit(&ok, 0);
    // The password contains a space: a wrong one must not leak its tail as a "name".
    let bad = send_verbose(
        &["--password", "PASSWORD-9c2e4b wrongtail"],
        "db",
        &["--timeout", "1"],
    );
    let nf = send_verbose(&["--password-file", &pwf], "nope", &[]);
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
    let s = Server::serving(&["db=v"], &["-a", "10.0.0.0/8,fd00::/8"]);
    let o = fetch(s.port, "db", &["--timeout", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(s
        .wait_log("outcome=denied", 1)
        .contains("outcome=denied (not in --authorized-ips)"));
    assert!(
        !s.log().contains("wrong-password"),
        "the request was never read"
    );
    let s = Server::serving(
        &["db=v"],
        &["-a", "10.0.0.0/8", "--authorized-ips", "127.0.0.1"],
    );
    let o = fetch(s.port, "db", &[]);
    assert_exit(&o, 0);
}

#[test]
fn ipv4_mapped_peer_on_dual_stack_listener_matches_ipv4_network() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIP: no IPv6 on this machine's loopback");
        return;
    }
    let v6 = |on: &str, net: &str| {
        Server::builder()
            .on(on)
            .password()
            .secrets(&["db=v6"])
            .args(&["-a", net])
            .start()
    };
    let s = v6("::", "127.0.0.0/8");
    let o = fetch(s.port, "db", &[]);
    assert_prints(&o, "v6\n");
    // ::1 is not in 127.0.0.0/8.
    let o = fetch_from("::1", s.port, "db", &["--timeout", "1"]);
    assert_eq!(o.status.code(), Some(1));
    let s6 = v6("::1", "::1/128");
    let o = fetch_from("[::1]", s6.port, "db", &[]);
    assert_exit(&o, 0);
}
