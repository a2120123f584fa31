//! Parsing tests: literal argument vectors and environments, never the real ones.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::help::{MAIN_HELP, RECEIVE_HELP, SEND_HELP};
use super::values::Seconds;
use super::*;
use crate::error::Result;
use crate::wire::protocol::SecretName;

fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Command> {
    let env: HashMap<String, OsString> = env
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    let lookup = move |k: &str| env.get(k).cloned();
    parse(
        std::iter::once("netsecrets").chain(args.iter().copied()),
        &lookup,
    )
}

fn name(s: &str) -> SecretName {
    s.parse().unwrap()
}

fn seconds(s: &str) -> std::result::Result<Duration, values::Expected> {
    s.parse::<Seconds>().map(|s| s.0)
}

fn send(args: &[&str], env: &[(&str, &str)]) -> SendArgs {
    match run(args, env) {
        Ok(Command::Send(s)) => s,
        Ok(_) => panic!("not send"),
        Err(e) => panic!("{e}"),
    }
}

fn receive(args: &[&str], env: &[(&str, &str)]) -> ReceiveArgs {
    match run(args, env) {
        Ok(Command::Receive(r)) => r,
        Ok(_) => panic!("not receive"),
        Err(e) => panic!("{e}"),
    }
}

fn err(args: &[&str]) -> String {
    match run(args, &[]) {
        Err(e) => {
            assert_eq!(e.exit_code(), 2);
            e.to_string()
        }
        Ok(_) => panic!("{args:?} should fail"),
    }
}

#[test]
fn send_flags() {
    let s = send(
        &[
            "send",
            "--server",
            "10.0.0.1",
            "--port",
            "8081",
            "--password-file",
            "/pw",
            "--request_secrets",
            "a b,c",
            "--file-output",
            "/out",
            "--fallbacks",
            "10.0.0.2 , 10.0.0.3",
            "--encryption-key",
            "k",
            "--mode",
            "0440",
            "--owner",
            "root",
            "--group",
            "wheel",
            "--timeout",
            "2.5",
            "--verbose",
        ],
        &[],
    );
    assert_eq!(s.fetch.net.server.as_deref(), Some("10.0.0.1"));
    assert_eq!(s.fetch.net.port, 8081);
    assert!(s.fetch.net.password == Some(PasswordSource::File("/pw".into())));
    assert_eq!(s.fetch.names, ["a", "b", "c"]);
    assert_eq!(s.fetch.fallbacks, ["10.0.0.2", "10.0.0.3"]);
    assert_eq!(s.file_output.as_deref(), Some(std::path::Path::new("/out")));
    assert!(s.fetch.net.key == KeySource::Str(b"k".to_vec()));
    assert_eq!(s.file.mode, Mode(0o440));
    assert_eq!(s.file.owner.as_deref(), Some("root"));
    assert_eq!(s.file.group.as_deref(), Some("wheel"));
    assert_eq!(s.fetch.net.timeout, Some(Duration::from_millis(2500)));
    assert_eq!(seconds("0.05").unwrap(), Duration::from_millis(50));
    assert_eq!(seconds("86400").unwrap(), Duration::from_secs(86_400));
    assert_eq!(seconds(" 7 ").unwrap(), Duration::from_secs(7));
    assert!(s.fetch.net.verbose);
}

#[test]
fn send_dash_spelling_and_equals() {
    let s = send(
        &[
            "send",
            "--server=h",
            "--request-secrets=x",
            "--password=p w",
        ],
        &[],
    );
    assert_eq!(s.fetch.names, ["x"]);
    assert!(s.fetch.net.password == Some(PasswordSource::Flag(b"p w".to_vec())));
    assert_eq!(s.fetch.net.port, DEFAULT_PORT);
    assert_eq!(s.file.mode, Mode(0o400));
}

#[test]
fn env_fallbacks() {
    let env = [
        ("NETSECRETS_SERVER", "10.1.1.1"),
        ("NETSECRETS_PORT", "9000"),
        ("NETSECRETS_PASSWORD", "envpw"),
        ("NETSECRETS_REQUEST_SECRETS", "one two"),
        ("NETSECRETS_FALLBACKS", "10.1.1.2,10.1.1.3"),
    ];
    let s = send(&["send"], &env);
    assert_eq!(s.fetch.net.server.as_deref(), Some("10.1.1.1"));
    assert_eq!(s.fetch.net.port, 9000);
    assert!(s.fetch.net.password == Some(PasswordSource::Env(b"envpw".to_vec())));
    assert_eq!(s.fetch.names, ["one", "two"]);
    assert_eq!(s.fetch.fallbacks, ["10.1.1.2", "10.1.1.3"]);
}

#[test]
fn flags_beat_env() {
    let env = [
        ("NETSECRETS_SERVER", "10.1.1.1"),
        ("NETSECRETS_PORT", "9000"),
        ("NETSECRETS_PASSWORD_FILE", "/env/pw"),
        ("NETSECRETS_REQUEST_SECRETS", "one"),
        ("NETSECRETS_FALLBACKS", "10.1.1.2"),
    ];
    let s = send(
        &[
            "send",
            "--server",
            "h",
            "--port",
            "1",
            "--password",
            "x",
            "--request_secrets",
            "two",
            "--fallbacks",
            "f",
        ],
        &env,
    );
    assert_eq!(s.fetch.net.server.as_deref(), Some("h"));
    assert_eq!(s.fetch.net.port, 1);
    assert!(s.fetch.net.password == Some(PasswordSource::Flag(b"x".to_vec())));
    assert_eq!(s.fetch.names, ["two"]);
    assert_eq!(s.fetch.fallbacks, ["f"]);
}

#[test]
fn password_priorities() {
    // A file beats a literal; the env file beats the env literal.
    let s = send(
        &[
            "send",
            "--server",
            "h",
            "--request_secrets",
            "a",
            "--password",
            "x",
            "--password-file",
            "/f",
        ],
        &[],
    );
    assert!(s.fetch.net.password == Some(PasswordSource::File("/f".into())));
    let s = send(
        &["send", "--server", "h", "--request_secrets", "a"],
        &[
            ("NETSECRETS_PASSWORD", "p"),
            ("NETSECRETS_PASSWORD_FILE", "/e"),
        ],
    );
    assert!(s.fetch.net.password == Some(PasswordSource::File("/e".into())));
}

#[test]
fn key_priorities() {
    let base = ["send", "--server", "h", "--request_secrets", "a"];
    let with = |extra: &[&str]| send(&[&base[..], extra].concat(), &[]).fetch.net.key;
    assert!(with(&[]) == KeySource::None);
    assert!(with(&["--encryption-key", "k"]) == KeySource::Str(b"k".to_vec()));
    assert!(
        with(&["--encryption-key", "k", "--encryption-key-file", "/kf"])
            == KeySource::File("/kf".into())
    );
    assert!(
        with(&["--encryption-key-file", "/kf", "--encryption-key", "k"])
            == KeySource::File("/kf".into())
    );
    assert!(
        with(&["--encryption-key", "k", "--insecure"]) == KeySource::Insecure { key_given: true }
    );
    assert!(with(&["--insecure"]) == KeySource::Insecure { key_given: false });
}

#[test]
fn receive_flags() {
    let r = receive(
        &[
            "receive",
            "--server",
            "::",
            "--port",
            "0",
            "--password",
            "pw",
            "-S",
            "a=1=2",
            "-S",
            "b=",
            "--secret-file",
            "c=/etc/c",
            "-a",
            "10.0.0.0/24,fd00::/64",
            "--authorized-ips",
            "127.0.0.1",
            "--encryption-key-file",
            "/k",
            "--max-connections",
            "8",
            "--max-per-ip",
            "2",
            "--timeout",
            "1",
        ],
        &[],
    );
    assert_eq!(r.net.server.as_deref(), Some("::"));
    assert_eq!(r.net.port, 0);
    assert_eq!(
        r.secrets,
        [(name("a"), b"1=2".to_vec()), (name("b"), vec![])]
    );
    assert_eq!(r.secret_files, [(name("c"), PathBuf::from("/etc/c"))]);
    assert_eq!(r.authorized.len(), 3);
    assert_eq!((r.max_connections, r.max_per_ip), (8, 2));
    assert!(r.net.key == KeySource::File("/k".into()));
}

/// The error for a `send` with a server and a name, plus `extra`.
fn send_err(extra: &[&str]) -> String {
    err(&[
        &["send", "--server", "h", "--request_secrets", "a"][..],
        extra,
    ]
    .concat())
}

#[test]
fn usage_errors_name_the_flag() {
    assert!(err(&["send", "--bogus"]).contains("--bogus"));
    assert!(err(&["send", "--server", "h"]).contains("--request_secrets"));
    assert!(err(&["send", "--request_secrets", "a"]).contains("--server"));
    assert!(err(&["send", "--server", "h", "--request_secrets", "../x"])
        .contains("invalid secret name"));
    assert!(send_err(&["--port", "70000"]).contains("invalid port"));
    assert!(send_err(&["--mode", "999"]).contains("--mode"));
    assert!(send_err(&["--timeout", "0"]).contains("--timeout"));
    assert!(err(&["send", "--server"]).contains("--server"));
    assert!(err(&["receive", "-S", "novalue"]).contains("-S"));
    assert!(err(&["receive", "-S", "a/b=1"]).contains("invalid secret name"));
    assert!(err(&["receive", "-a", "10.0.0.0/33"]).contains("--authorized-ips"));
    assert!(err(&["frobnicate"]).contains("unknown command"));
    assert!(err(&[]).contains("missing command"));
}

#[test]
fn help_and_version() {
    assert!(matches!(
        run(&["--help"], &[]),
        Ok(Command::Help(MAIN_HELP))
    ));
    assert!(matches!(
        run(&["send", "--help"], &[]),
        Ok(Command::Help(SEND_HELP))
    ));
    assert!(matches!(
        run(&["receive", "-h"], &[]),
        Ok(Command::Help(RECEIVE_HELP))
    ));
    assert!(matches!(run(&["--version"], &[]), Ok(Command::Version)));
}

#[test]
fn ask_password_verify_ignores_password_env() {
    let c = run(
        &[
            "ask-password",
            "--tty",
            "/dev/ttyS0",
            "--verify-secret",
            "db",
            "--server",
            "10.0.2.100",
            "--tries",
            "5",
        ],
        &[("NETSECRETS_PASSWORD", "leak")],
    );
    let Ok(Command::AskPassword(a)) = c else {
        panic!("not ask-password")
    };
    assert_eq!(a.tty, PathBuf::from("/dev/ttyS0"));
    assert_eq!(a.tries, 5);
    let v = a.verify.unwrap();
    assert_eq!(v.names, ["db"]);
    assert!(v.net.password.is_none());
}

#[test]
fn value_errors_read_word_for_word_as_they_always_have() {
    assert_eq!(
        send_err(&["--port", "70000"]),
        "invalid port \"70000\": expected a number 0-65535"
    );
    assert_eq!(
        send_err(&["--mode", "999"]),
        "invalid --mode \"999\": expected octal like 0400 or 0440"
    );
    assert_eq!(
        send_err(&["--timeout", "0"]),
        "invalid --timeout \"0\": expected seconds from 0.01 to 86400, e.g. 30 or 0.5"
    );
    assert_eq!(
        err(&["receive", "--max-per-ip", "0"]),
        "invalid --max-per-ip \"0\": expected a number from 1 to 65536"
    );
    let env_port = run(
        &["send", "--server", "h", "--request_secrets", "a"],
        &[("NETSECRETS_PORT", "x")],
    );
    assert_eq!(
        env_port.err().map(|e| e.to_string()).as_deref(),
        Some("NETSECRETS_PORT: invalid port \"x\": expected a number 0-65535")
    );
    let bad_name = "invalid secret name \"a/b\": use 1-255 characters of A-Z a-z 0-9 . _ @ + - (not \".\" or \"..\")";
    assert_eq!(
        err(&["receive", "-S", "a/b=1"]),
        format!("-S NAME=VALUE: {bad_name}")
    );
    assert_eq!(
        send_err(&["--request_secrets", "a/b"]),
        format!("--request_secrets: {bad_name}")
    );
    let env_names = run(
        &["send", "--server", "h"],
        &[("NETSECRETS_REQUEST_SECRETS", "a/b")],
    );
    assert_eq!(
        env_names.err().map(|e| e.to_string()),
        Some(format!(
            "NETSECRETS_REQUEST_SECRETS: --request_secrets: {bad_name}"
        ))
    );
    assert_eq!(
        err(&["ask-password", "--verify-secret", "a/b"]),
        format!("--verify-secret: {bad_name}")
    );
}

#[test]
fn protocol_flags_and_environment() {
    use crate::wire::bound::Protocol;
    let base = [
        "send",
        "--server",
        "s",
        "--password",
        "p",
        "--request_secrets",
        "a",
    ];
    assert_eq!(send(&base, &[]).fetch.protocol, None);
    let with = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        send(&args, env).fetch.protocol
    };
    assert_eq!(with(&["--protocol", "1"], &[]), Some(Protocol::V1));
    assert_eq!(with(&["--protocol", "2"], &[]), Some(Protocol::V2));
    assert_eq!(
        with(&[], &[("NETSECRETS_PROTOCOL", "1")]),
        Some(Protocol::V1)
    );
    // The flag beats the environment.
    assert_eq!(
        with(&["--protocol", "2"], &[("NETSECRETS_PROTOCOL", "1")]),
        Some(Protocol::V2)
    );
    assert!(err(&[&base[..], &["--protocol", "3"]].concat()).contains("expected 1 or 2"));
    let r = receive(&["receive", "--password", "p"], &[]);
    assert_eq!(r.min_protocol, Protocol::V1);
    let r = receive(&["receive", "--password", "p", "--min-protocol", "2"], &[]);
    assert_eq!(r.min_protocol, Protocol::V2);
    let r = receive(
        &["receive", "--password", "p"],
        &[("NETSECRETS_MIN_PROTOCOL", "2")],
    );
    assert_eq!(r.min_protocol, Protocol::V2);
    let r = receive(
        &["receive", "--password", "p", "--min-protocol", "1"],
        &[("NETSECRETS_MIN_PROTOCOL", "2")],
    );
    assert_eq!(r.min_protocol, Protocol::V1);
    assert!(err(&["receive", "--min-protocol", "0"]).contains("--min-protocol"));
}

/// `copy-password`'s default target is the path `ask-password` writes (where the NixOS module's
/// stage-2 units read it, nix/modules/common.nix: consolePasswordFile), never under
/// /run/secrets (sops-nix's).
#[test]
fn copy_password_defaults_to_the_prompted_password_path() {
    match run(&["copy-password"], &[]) {
        Ok(Command::CopyPassword(c)) => {
            assert_eq!(c.to, PathBuf::from("/run/netsecrets-password"));
            assert_eq!(c.from, PathBuf::from(DEFAULT_PASSWORD_PATH));
        }
        _ => panic!("not copy-password"),
    }
    match run(&["copy-password", "--help"], &[]) {
        Ok(Command::Help(h)) => assert!(!h.contains("/run/secrets"), "{h}"),
        _ => panic!("no help"),
    }
}

/// The written file's flags need `--file-output`, checked by the parser (the message and the
/// order of the rules are what `send` printed when part of this was checked at run time).
#[test]
fn file_flags_need_file_output() {
    let base = ["send", "--server", "s", "--request_secrets", "a"];
    let with = |extra: &[&'static str]| [&base[..], extra].concat();
    let owner_group = "--owner/--group need --file-output";
    assert_eq!(err(&with(&["--owner", "root"])), owner_group);
    assert_eq!(err(&with(&["--group", "wheel"])), owner_group);
    // The change actions' rule first, then the offline cache's, then the owner's.
    assert!(
        err(&with(&["--owner", "root", "--restart-unit", "a.service"]))
            .starts_with("--restart-unit/--reload-unit/--start-unit need --file-output")
    );
    assert!(err(&with(&["--group", "wheel", "--offline-after", "5"]))
        .contains("need --offline-cache DIR"));
    // A missing name is reported before any of them.
    assert!(err(&["send", "--server", "s", "--owner", "root"]).starts_with("no secrets requested"));
    let s = send(&with(&["--owner", "root", "--file-output", "/f"]), &[]);
    assert_eq!(s.file.owner.as_deref(), Some("root"));
    assert_eq!(s.file_output, Some(PathBuf::from("/f")));
    // Without the file, the secrets go to stdout with nothing else given.
    assert!(send(&base, &[]).file == FileArgs::default());
}
