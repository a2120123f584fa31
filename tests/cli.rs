//! The command line: the server refuses bad configuration with one clear line and exit code 2;
//! help, version, unknown flags and missing values give the documented exit codes.

mod common;

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
