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

/// `copy-password --from` a special file used to read `/dev/zero` until memory ran out and
/// block forever on a FIFO; now it is a one-line exit-2 error at once, and `--to` is untouched.
#[test]
fn copy_password_from_a_special_file_is_an_error_at_once() {
    let d = TempDir::new("copyspecial");
    let fifo = d.path("fifo");
    mkfifo(&fifo);
    let to = d.write("to", b"kept");
    let sub = d.path("sub");
    std::fs::create_dir(&sub).unwrap();
    for from in ["/dev/zero", fifo.to_str().unwrap(), sub.to_str().unwrap()] {
        let t = std::time::Instant::now();
        let o = run_bounded(
            &["copy-password", "--from", from, "--to", &to],
            Duration::from_secs(10),
        );
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{from}: {err}");
        assert!(
            err.contains(&format!("--from {from}: not a regular file")),
            "{from}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(t.elapsed() < Duration::from_secs(5), "{from}: at once");
        assert_eq!(std::fs::read(&to).unwrap(), b"kept");
    }
}

/// Starts `ask-password --verify-secret db` on a fresh pty against 127.0.0.1:`port`.
fn ask_verified(pty: &Pty, out: &std::path::Path, port: u16, extra: &[&str]) -> Proc {
    Proc::spawn(
        std::process::Command::new(BIN)
            .args(["ask-password", "--tty", &pty.path, "--prompt", "PW? "])
            .args(["--output", out.to_str().unwrap(), "--verify-secret", "db"])
            .args(["--server", "127.0.0.1", "--port", &port.to_string()])
            .args(["--insecure"])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    )
}

/// A typo at the console costs exactly one failure on the server and the prompt comes back at
/// once; the right password then boots normally. It used to be retried for the whole
/// `--timeout`: two typos locked the address out and the right password was refused.
#[test]
fn ask_password_typo_costs_one_failure_then_right_password_works() {
    let d = TempDir::new("asktypo");
    let s = Server::serving(&["db=v"], &["--insecure"]);
    let mut pty = Pty::open();
    let out = d.path("pw");
    let mut child = ask_verified(&pty, &out, s.port, &["--timeout", "10"]);
    for (n, typo) in [&b"hunter2-typo"[..], b"hunter3-correct-horse"]
        .into_iter()
        .enumerate()
    {
        pty.wait_for(b"PW? ", n + 1);
        pty.type_line(typo);
        let t = std::time::Instant::now();
        pty.wait_for(b"not accepted", n + 1);
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "asked again at once, not after retrying"
        );
    }
    pty.wait_for(b"PW? ", 3);
    pty.type_line(PW.as_bytes());
    let status = child.wait_limited(Duration::from_secs(20));
    let shown = pty.shown();
    assert!(status.success(), "ask-password failed: {shown}");
    assert_eq!(std::fs::read(&out).unwrap(), PW.as_bytes());
    let log = s.wait_log("outcome=served", 1);
    assert_eq!(log.matches("outcome=wrong-password").count(), 2, "{log}");
    assert_eq!(log.matches("outcome=served").count(), 1, "{log}");
    assert!(!log.contains("locked"), "{log}");
}

/// A server that cannot be reached yet is retried within `--timeout` with the one typed
/// password (no new prompt): at boot the network often comes up after the prompt.
#[test]
fn ask_password_retries_an_unreachable_server_without_asking_again() {
    let d = TempDir::new("asklate");
    let port = free_port();
    let mut pty = Pty::open();
    let out = d.path("pw");
    let mut child = ask_verified(&pty, &out, port, &["--timeout", "15"]);
    pty.wait_for(b"PW? ", 1);
    pty.type_line(PW.as_bytes());
    std::thread::sleep(Duration::from_millis(1500));
    let s = Server::builder()
        .port(port)
        .password()
        .secrets(&["db=v"])
        .args(&["--insecure"])
        .start();
    let status = child.wait_limited(Duration::from_secs(20));
    let shown = pty.shown();
    assert!(status.success(), "ask-password failed: {shown}");
    assert_eq!(shown.matches("PW? ").count(), 1, "{shown}");
    assert_eq!(std::fs::read(&out).unwrap(), PW.as_bytes());
    assert_eq!(s.log().matches("outcome=wrong-password").count(), 0);
}

/// `Not found` for the `--verify-secret` name means the password matched (the server says it
/// only then): the password is stored at once. It used to be treated as a refusal: the right
/// password was asked again `--tries` times and never stored.
#[test]
fn ask_password_not_found_still_means_the_password_matched() {
    let d = TempDir::new("asknf");
    let s = Server::serving(&["other=v"], &["--insecure"]);
    let mut pty = Pty::open();
    let out = d.path("pw");
    let mut child = ask_verified(&pty, &out, s.port, &["--timeout", "10"]);
    pty.wait_for(b"PW? ", 1);
    pty.type_line(PW.as_bytes());
    let status = child.wait_limited(Duration::from_secs(20));
    let shown = pty.shown();
    assert!(status.success(), "ask-password failed: {shown}");
    assert_eq!(shown.matches("PW? ").count(), 1, "{shown}");
    assert_eq!(std::fs::read(&out).unwrap(), PW.as_bytes());
    let log = s.wait_log("outcome=not-found", 1);
    assert_eq!(log.matches("outcome=not-found").count(), 1, "{log}");
}

/// `keygen --output` into a directory that cannot be synced after the link (mode 0300 for the
/// user that runs it: nobody, when the test runs as root): the key is in place, so keygen says
/// so and exits 0. It used to exit 1 saying the old file was left as it was, with the new key
/// file already there.
#[test]
fn keygen_directory_sync_failure_after_link_tells_the_truth() {
    use std::os::unix::process::CommandExt;
    let d = TempDir::new("keysync");
    let dir = d.path("wx");
    std::fs::create_dir(&dir).unwrap();
    // SAFETY: getuid has no preconditions.
    let root = unsafe { libc::getuid() } == 0;
    if root {
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    }
    chmod(&dir, 0o300);
    let key = dir.join("key");
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["keygen", "--output", key.to_str().unwrap()])
        .stdin(std::process::Stdio::null());
    if root {
        cmd.uid(65534).gid(65534);
    }
    let o = cmd.output().unwrap();
    chmod(&dir, 0o700);
    let err = assert_exit(&o, 0);
    assert_eq!(std::fs::read(&key).unwrap().len(), 65);
    assert!(
        err.contains(&format!(
            "warning: wrote {} (the new value is in place), but syncing its directory failed",
            key.display()
        )),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "no temporary file left"
    );
}

/// With `--from` and `--to` naming the same file (the default: both are the module's
/// hand-over path), nothing is rewritten: same inode, a line saying so.
#[test]
fn copy_password_onto_itself_changes_nothing() {
    use std::os::unix::fs::MetadataExt;
    let d = TempDir::new("copy-same");
    let pw = d.write("pw", b"typed");
    let ino = std::fs::metadata(&pw).unwrap().ino();
    let o = run(&["copy-password", "--from", &pw, "--to", &pw]);
    let err = assert_exit(&o, 0);
    assert!(err.contains("nothing to copy"), "{err}");
    assert_eq!(std::fs::metadata(&pw).unwrap().ino(), ino);
    assert_eq!(std::fs::read(&pw).unwrap(), b"typed");
}

/// The terminal's settings (`c_lflag`) of the pty at `path`.
fn lflag(path: &str) -> libc::tcflag_t {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .unwrap();
    // SAFETY: termios is plain data that tcgetattr fills; the descriptor is open.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(f.as_raw_fd(), &mut t), 0);
        t.c_lflag
    }
}

/// `ask-password` stopped while the prompt is up (systemd stopping the unit: SIGTERM; the
/// console hanging up: SIGHUP; Ctrl-C: SIGINT) used to leave the console without echo (and,
/// through rpassword, without line editing): whatever was typed next at that console, a LUKS
/// passphrase say, was read raw. Now every one of them restores the settings before the
/// process dies of the signal.
#[test]
fn ask_password_restores_the_console_when_killed() {
    let d = TempDir::new("asksig");
    // 0: Ctrl-C typed at the prompt (rpassword raises SIGINT itself).
    for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT, 0] {
        let mut pty = Pty::open();
        let before = lflag(&pty.path);
        assert_ne!(before & libc::ECHO, 0, "a fresh pty echoes");
        let out = d.path("pw");
        // As systemd runs the unit (StandardInput=tty-force): in a session of its own, with the
        // console as its controlling terminal, so that Ctrl-C there is SIGINT for it.
        let tty = std::ffi::CString::new(pty.path.clone()).unwrap();
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["ask-password", "--tty", &pty.path, "--prompt", "PW? "])
            .args(["--output", out.to_str().unwrap()])
            .stdin(std::process::Stdio::null());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || {
                libc::setsid();
                let fd = libc::open(tty.as_ptr(), libc::O_RDWR);
                if fd < 0 || libc::ioctl(fd, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                Ok(())
            });
        }
        let mut child = Proc::spawn(&mut cmd);
        pty.wait_for(b"PW? ", 1);
        assert_eq!(lflag(&pty.path) & libc::ECHO, 0, "echo is off while asking");
        {
            use std::io::Write;
            pty.master.write_all(b"half-typed").unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
        if sig == 0 {
            use std::io::Write;
            pty.master.write_all(b"\x03").unwrap();
        } else {
            // SAFETY: kill on the PID of a child this test started and has not reaped.
            assert_eq!(unsafe { libc::kill(child.pid() as i32, sig) }, 0);
        }
        let sig = if sig == 0 { libc::SIGINT } else { sig };
        let status = child.wait_limited(Duration::from_secs(10));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(sig), "dies of the signal as before");
        let after = lflag(&pty.path);
        let mask = libc::ECHO | libc::ICANON | libc::ISIG | libc::ECHONL;
        assert_eq!(
            after & mask,
            before & mask,
            "signal {sig}: the console was left changed"
        );
        assert!(!out.exists(), "nothing written");
    }
}
