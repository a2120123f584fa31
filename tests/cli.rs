//! The command line: the server refuses bad configuration with one clear line and exit code 2;
//! help, version, unknown flags and missing values give the documented exit codes.

mod common;

use std::time::{Duration, Instant};

use common::*;

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

/// Asserts a bounded run ended with exit 2 and one `netsecrets: ` line (warnings aside) holding
/// every one of `want`; returns stderr.
#[track_caller]
fn assert_usage(o: &std::process::Output, case: &str, want: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{case}: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.contains("warning")).collect();
    assert_eq!(lines.len(), 1, "{case}: one line: {err}");
    assert!(lines[0].starts_with("netsecrets: "), "{case}: {err}");
    for w in want {
        assert!(lines[0].contains(w), "{case}: want {w:?} in {err}");
    }
    err
}

/// Secret, password and key files must be regular files: `/dev/zero` used to be read until
/// memory ran out, a FIFO blocked forever, a directory gave an OS error. Each is now a one-line
/// exit-2 error naming the flag and the path, at once (the runs are bounded, so a regression
/// fails instead of hanging). A regular password or key file over 64 KiB is refused too.
#[test]
fn special_and_oversized_files_are_exit_2_errors_at_once() {
    let d = TempDir::new("special");
    let fifo = d.path("fifo");
    mkfifo(&fifo);
    let fifo = fifo.to_str().unwrap().to_owned();
    let dir = d.0.to_str().unwrap().to_owned();
    let big = d.write("big", &vec![b'x'; 65 * 1024]);
    let port = free_port().to_string();
    for path in ["/dev/zero", &fifo, &dir] {
        let secret = format!("z={path}");
        for (flag, value) in [
            ("--secret-file", secret.as_str()),
            ("--password-file", path),
            ("--encryption-key-file", path),
        ] {
            let mut a = vec!["receive", "--server", "127.0.0.1", "--port", &port];
            if flag != "--password-file" {
                a.extend(["--password", "p"]);
            }
            a.extend([flag, value]);
            let t = Instant::now();
            let o = run_bounded(&a, Duration::from_secs(10));
            let case = format!("{flag} {value}");
            assert_usage(&o, &case, &[flag, path, "not a regular file"]);
            assert!(t.elapsed() < Duration::from_secs(5), "{case}: at once");
        }
        // The client's files too.
        for flag in ["--password-file", "--encryption-key-file"] {
            let mut a = vec!["send", "--server", "127.0.0.1", "--port", &port];
            a.extend(["--request_secrets", "db"]);
            if flag != "--password-file" {
                a.extend(["--password", "p"]);
            }
            a.extend([flag, path]);
            let o = run_bounded(&a, Duration::from_secs(10));
            assert_usage(
                &o,
                &format!("send {flag} {path}"),
                &[flag, path, "not a regular file"],
            );
        }
    }
    for flag in ["--password-file", "--encryption-key-file"] {
        let mut a = vec!["receive", "--server", "127.0.0.1", "--port", &port];
        if flag != "--password-file" {
            a.extend(["--password", "p"]);
        }
        a.extend([flag, &big]);
        let o = run_bounded(&a, Duration::from_secs(10));
        assert_usage(&o, flag, &[flag, &big, "over the 65536-byte limit"]);
    }
}

/// An empty or blank `--authorized-ips` used to allow every address without a word; now it is
/// an error. A network written with host bits (`10.0.0.1/0`) draws a warning saying what it
/// allows.
#[test]
fn blank_authorized_ips_is_an_error_host_bits_warn() {
    let port = free_port().to_string();
    for blank in ["", ",", " ", " , "] {
        let o = run_bounded(
            &[
                "receive",
                "--server",
                "127.0.0.1",
                "--port",
                &port,
                "--password",
                "p",
                "-a",
                blank,
            ],
            Duration::from_secs(5),
        );
        assert_usage(
            &o,
            &format!("-a {blank:?}"),
            &["--authorized-ips", "no address"],
        );
    }
    let s = Server::builder()
        .password()
        .args(&["-a", "10.0.0.1/0", "-a", "127.0.0.0/8,fd00::1/64"])
        .start();
    let log = s.log();
    assert!(
        log.contains("warning: --authorized-ips 10.0.0.1/0 has host bits set: it allows 0.0.0.0/0"),
        "{log}"
    );
    assert!(
        log.contains("warning: --authorized-ips fd00::1/64 has host bits set: it allows fd00::/64"),
        "{log}"
    );
    assert!(!log.contains("127.0.0.0/8 has"), "{log}");
}

/// Every secret given on the command line is visible in the process list and draws the
/// warning `--password` draws: `-S NAME=VALUE` and `--encryption-key STR`, on both sides.
#[test]
fn secrets_on_the_command_line_warn() {
    let s = Server::serving(&["db=v"], &["--encryption-key", "k"]);
    let log = s.log();
    for w in [
        "warning: --password is visible",
        "warning: -S NAME=VALUE is visible",
        "warning: --encryption-key is visible",
    ] {
        assert!(log.contains(w), "want {w:?} in {log}");
    }
    let o = fetch(s.port, "db", &["--encryption-key", "k"]);
    assert_prints(&o, "v\n");
    assert!(
        stderr(&o).contains("warning: --encryption-key is visible to every user in the process list; use --encryption-key-file"),
        "{}",
        stderr(&o)
    );
}
