//! The stage-1 (initrd) helpers: `copy-password`, `keygen` (and its key file on both sides of a
//! fetch), and `ask-password` on a pseudo-terminal standing in for /dev/console.

mod common;

use std::time::Duration;

use common::*;

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
    let key_file = ["--encryption-key-file", kf.to_str().unwrap()];
    let s = Server::serving(&["db=k"], &key_file);
    let o = fetch(s.port, "db", &key_file);
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
    let mut child = Proc::spawn(
        std::process::Command::new(BIN)
            .args([
                "ask-password",
                "--tty",
                &pty.path,
                "--output",
                out.to_str().unwrap(),
                "--prompt",
                "PW? ",
            ])
            .stdin(std::process::Stdio::null()),
    );
    pty.wait_for(b"PW? ", 1);
    pty.type_line(b"");
    pty.wait_for(b"PW? ", 2);
    pty.type_line(b"typed pass");
    let status = child.wait_limited(Duration::from_secs(20));
    let shown = pty.shown();
    assert!(status.success(), "ask-password failed: {shown}");
    assert_eq!(std::fs::read(&out).unwrap(), b"typed pass");
    assert_eq!(mode(&out), 0o400);
    assert!(
        !shown.contains("typed"),
        "the password was echoed: {shown:?}"
    );
}
