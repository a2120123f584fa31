//! `send --file-output`: several secrets in one file, mode and owner, atomic replacement by
//! rename, binary values, created directories, and an old file left intact (with no leftovers)
//! by every kind of failure.

mod common;

use std::os::unix::fs::MetadataExt;

use common::*;

#[test]
fn multi_secret_output_stdout_and_file() {
    let d = TempDir::new("multi");
    let s = Server::serving(&["a=first", "b=second", "c=third value"], &[]);
    let o = fetch(s.port, "a b,c", &[]);
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
    assert_exit(&o, 0);
    assert_eq!(std::fs::read(&out).unwrap(), b"first\nthird value");
    assert_eq!(mode(&out), 0o400);
}

#[test]
fn file_output_mode_atomic_replacement_and_no_leftovers() {
    let d = TempDir::new("atomic");
    let src = format!("bin={}", d.write("src", b"\x00\xff\nraw"));
    let s = Server::serving(&["db=new-value"], &["--secret-file", &src]);
    let out = d.path("db");
    std::fs::write(&out, "old").unwrap();
    let ino = std::fs::metadata(&out).unwrap().ino();
    let o = fetch(
        s.port,
        "db",
        &[
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
    assert_exit(&o, 0);
    assert_eq!(std::fs::read(&out).unwrap(), b"new-value");
    assert_eq!(mode(&out), 0o440);
    assert_ne!(
        std::fs::metadata(&out).unwrap().ino(),
        ino,
        "replaced by rename, not rewritten in place"
    );
    assert_eq!(d.entries(), ["db", "src"]);
    // Binary values from --secret-file arrive byte for byte; a missing output directory is
    // created.
    for (name, path, want) in [
        ("bin", d.path("bin"), &b"\x00\xff\nraw"[..]),
        ("db", d.path("sub/dir/x"), &b"new-value"[..]),
    ] {
        let o = fetch(s.port, name, &["--file-output", path.to_str().unwrap()]);
        assert_exit(&o, 0);
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }
}

#[test]
fn old_file_intact_after_every_failure_kind() {
    let d = TempDir::new("intact");
    let s = Server::serving(&["db=v"], &["--encryption-key", "k", "--max-failures", "0"]);
    let out = d.path("db");
    std::fs::write(&out, "precious").unwrap();
    let o_s = out.to_str().unwrap();
    let port = s.port.to_string();
    let down = free_port().to_string();
    let send_to = |port: &str, password: &str, key: &str, names: &str, extra: &[&str]| {
        let mut a = vec![
            "send",
            "--server",
            "127.0.0.1",
            "--port",
            port,
            "--password",
            password,
            "--encryption-key",
            key,
            "--request_secrets",
            names,
            "--file-output",
            o_s,
        ];
        a.extend_from_slice(extra);
        run(&a)
    };
    // A wrong password, a wrong key, no server.
    for (port, password, key) in [
        (&port, "wrong", "k"),
        (&port, PW, "other"),
        (&down, PW, "k"),
    ] {
        let o = send_to(port, password, key, "db", &["--timeout", "1"]);
        let c = (port, password, key);
        assert_eq!(o.status.code(), Some(1), "{c:?}: {}", stderr(&o));
        assert_eq!(std::fs::read(&out).unwrap(), b"precious", "{c:?}");
    }
    // One of two names missing: nothing is written.
    let o = send_to(&port, PW, "k", "db missing", &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    // An unknown owner is a usage error before anything is fetched.
    let o = send_to(&port, PW, "k", "db", &["--owner", "no-such-user-xyz"]);
    let err = assert_exit(&o, 2);
    assert!(err.contains("no such user"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    assert_eq!(d.entries(), ["db"], "no temporary files left");
}
