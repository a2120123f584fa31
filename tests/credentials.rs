//! `netsecrets credentials`: systemd's side of `LoadCredential=ID:SOCKET` is played here the
//! way systemd plays it (systemd.exec(5); exec-credential.c): a stream socket bound to the
//! abstract address `\0<random>/unit/<unit>/<id>` connects, reads to the end. The allowed
//! unit gets the value byte for byte; a unit not listed, a secret the server cannot give, a
//! connection without systemd's address, a peer that is not root, and a root peer outside the
//! control group of the unit its address names (systemd asks from the unit's own forked
//! process, already in that group; the tests do the same from a child) are refused with more
//! than systemd's 1 MiB credential limit (its read fails, the unit does not start; never an
//! empty value). The socket is 0600, a stale one is replaced, and socket activation
//! (`LISTEN_FDS`) works.

mod common;

use std::process::{Command, Stdio};

use common::creds::*;
use common::*;

#[track_caller]
fn assert_refused(r: std::io::Result<Vec<u8>>) {
    match r {
        Err(e) => assert!(e.to_string().contains("E2BIG"), "{e}"),
        Ok(v) => panic!("expected a refusal, got {} bytes", v.len()),
    }
}

/// `netsecrets credentials` at `creds.sock` in `d`, in the clear, 2 s per fetch, and `extra`.
fn start(d: &TempDir, port: u16, extra: &[&str]) -> Credentials {
    let mut args = vec!["--insecure", "--timeout", "2"];
    args.extend_from_slice(extra);
    Credentials::start(d, "creds", port, &args)
}

#[test]
fn allowed_unit_gets_the_value_others_are_refused() {
    let d = TempDir::new("creds");
    let bin = format!("bin={}", d.write("src", b"\x00\xff\nraw"));
    let s = Server::builder()
        .password()
        .secrets(&["db=s3cret"])
        .args(&["--insecure", "--secret-file", &bin])
        .start();
    let c = start(
        &d,
        s.port,
        &[
            "--allow",
            "db=app.service,worker@1.service",
            "--allow",
            "bin=app.service",
            "--allow",
            "gone=app.service",
        ],
    );
    let sock = d.path("creds.sock");
    assert_eq!(mode(&sock), 0o600);

    assert_eq!(ask(&sock, Some(("app.service", "db"))).unwrap(), b"s3cret");
    assert_eq!(
        ask(&sock, Some(("worker@1.service", "db"))).unwrap(),
        b"s3cret"
    );
    assert_eq!(
        ask(&sock, Some(("app.service", "bin"))).unwrap(),
        b"\x00\xff\nraw"
    );
    // Not listed for that secret, or for any.
    assert_refused(ask(&sock, Some(("worker@1.service", "bin"))));
    assert_refused(ask(&sock, Some(("other.service", "db"))));
    // Allowed, but the server does not serve it: reset after the timeout, not an empty value.
    assert_refused(ask(&sock, Some(("app.service", "gone"))));
    // Not systemd's address at all.
    assert_refused(ask(&sock, None));
    let log = c.log();
    assert!(log.contains("sent db to app.service"), "{log}");
    assert!(
        log.contains("refused bin for worker@1.service: not allowed"),
        "{log}"
    );
    assert!(
        log.contains("refused db for other.service: not allowed"),
        "{log}"
    );
    assert!(
        log.contains("gone for app.service could not be fetched"),
        "{log}"
    );
    assert!(!log.contains("s3cret"), "values never reach the log: {log}");
}

#[test]
fn a_peer_that_is_not_root_is_refused() {
    if !root_or_skip("needs root to take another uid") {
        return;
    }
    let d = TempDir::new("creds-uid");
    chmod(&d.0, 0o755);
    let s = Server::serving(&["db=v"], &["--insecure"]);
    let _c = start(&d, s.port, &["--allow", "db=app.service"]);
    let sock = d.path("creds.sock");
    // The 0600 socket keeps others out already; open it up to test the uid check behind it.
    chmod(&sock, 0o666);
    // A child under uid 65534 claims to be systemd asking for app.service.
    // SAFETY: the child only makes plain syscalls (setuid, socket, bind, connect, read) and
    // exits with _exit; everything it uses was prepared before the fork.
    let name = b"\0feedface/unit/app.service/db";
    let (peer, peer_len) = sockaddr(name);
    let (srv, srv_len) = sockaddr(sock.as_os_str().as_encoded_bytes());
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: see above; the child never returns into the test harness.
        unsafe {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                libc::_exit(10);
            }
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            if libc::bind(fd, (&peer as *const libc::sockaddr_un).cast(), peer_len) != 0 {
                libc::_exit(11);
            }
            if libc::connect(fd, (&srv as *const libc::sockaddr_un).cast(), srv_len) != 0 {
                libc::_exit(12);
            }
            // Refused: more than a credential may hold arrives (zeros), never the value.
            let mut buf = [0u8; 4096];
            let mut total = 0usize;
            loop {
                let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                if n <= 0 || buf.iter().any(|&b| b != 0) {
                    break;
                }
                total += n as usize;
                if total > 1024 * 1024 {
                    libc::_exit(0);
                }
            }
            libc::_exit(13);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status));
    assert_eq!(libc::WEXITSTATUS(status), 0, "the child got data or failed");
}

#[test]
fn socket_activation_and_socket_path_rules() {
    let d = TempDir::new("creds-act");
    let s = Server::serving(&["db=v"], &["--insecure"]);
    let sock = d.path("act.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let port = s.port.to_string();
    // LISTEN_PID must be the server's own pid: sh's $$ is the pid exec keeps.
    let script = format!(
        "exec 3<&{fd}; LISTEN_PID=$$ LISTEN_FDS=1 exec {BIN} credentials --server 127.0.0.1 --port {port} --password {PW} --insecure --allow db=app.service",
        fd = std::os::fd::AsRawFd::as_raw_fd(&listener)
    );
    // The listener's descriptor is close-on-exec in this process; hand a copy without it.
    // SAFETY: dup of a descriptor this test owns; the copy is closed when sh is done with it.
    let inheritable = unsafe { libc::dup(std::os::fd::AsRawFd::as_raw_fd(&listener)) };
    let script = script.replacen(
        &format!("3<&{}", std::os::fd::AsRawFd::as_raw_fd(&listener)),
        &format!("3<&{inheritable}"),
        1,
    );
    let _c = Proc::spawn(
        Command::new("/bin/sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    // SAFETY: the child has its own copy now.
    unsafe { libc::close(inheritable) };
    assert_eq!(ask(&sock, Some(("app.service", "db"))).unwrap(), b"v");
    assert_refused(ask(&sock, Some(("other.service", "db"))));

    // A regular file where the socket should go is not replaced.
    let file = d.path("not-a-socket");
    std::fs::write(&file, "keep").unwrap();
    let o = run(&[
        "credentials",
        "--server",
        "127.0.0.1",
        "--password",
        PW,
        "--insecure",
        "--allow",
        "db=app.service",
        "--socket",
        file.to_str().unwrap(),
    ]);
    let err = assert_exit(&o, 2);
    assert!(err.contains("something other than a socket"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep");
    // Usage errors.
    for (args, want) in [
        (
            &["--server", "127.0.0.1", "--password", PW][..],
            "no --allow",
        ),
        (
            &["--server", "127.0.0.1", "--password", PW, "--allow", "db="][..],
            "no unit given",
        ),
        (
            &[
                "--server",
                "127.0.0.1",
                "--password",
                PW,
                "--allow",
                "db=app",
            ][..],
            "not a unit name",
        ),
        (
            &[
                "--server",
                "127.0.0.1",
                "--password",
                PW,
                "--allow",
                "db=a.service",
            ][..],
            "no socket",
        ),
    ] {
        let mut all = vec!["credentials"];
        all.extend_from_slice(args);
        let err = assert_exit(&run(&all), 2);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn a_stale_socket_is_replaced() {
    let d = TempDir::new("creds-stale");
    let s = Server::serving(&["db=v"], &["--insecure"]);
    let sock = d.path("creds.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let _c = start(&d, s.port, &["--allow", "db=app.service"]);
    assert_eq!(ask(&sock, Some(("app.service", "db"))).unwrap(), b"v");
}

/// Any root process can bind systemd's kind of address: one with no capabilities at all
/// forged `\0x/unit/app.service/db` and got the value. Now the peer must run in the control
/// group of the unit its address names (systemd loads credentials in the unit's own process,
/// already in that group): from this test's group, or from another unit's, it is refused,
/// and the names the peer chose are logged escaped (a newline in them cannot split the line).
#[test]
fn a_root_peer_outside_the_units_control_group_is_refused() {
    if !root_or_skip("needs root to make control groups") {
        return;
    }
    let d = TempDir::new("creds-cgroup");
    let s = Server::serving(&["db=s3cret"], &["--insecure"]);
    let c = start(&d, s.port, &["--allow", "db=app.service"]);
    let sock = d.path("creds.sock");
    assert_eq!(ask(&sock, Some(("app.service", "db"))).unwrap(), b"s3cret");
    // Forged from outside any unit's group (this test's own), and from another unit's.
    assert_refused(ask_from(&sock, Some(("app.service", "db")), None));
    assert_refused(ask_from(
        &sock,
        Some(("app.service", "db")),
        Some("other.service"),
    ));
    // A name with a line break (the cgroup file system refuses such a group name: asked from
    // app.service's group).
    assert_refused(ask_from(
        &sock,
        Some(("x\nnetsecrets: sent db to app.service", "db")),
        Some("app.service"),
    ));
    let log = c.log();
    assert_eq!(log.matches("sent db to app.service").count(), 1, "{log}");
    assert!(
        log.contains("refused db for app.service: the peer (pid"),
        "{log}"
    );
    assert!(log.contains("runs in the control group"), "{log}");
    assert!(log.contains("/other.service"), "{log}");
    assert!(
        log.contains("refused db for x\\x0anetsecrets:\\x20sent"),
        "{log}"
    );
    assert!(!log.contains("s3cret"), "{log}");
}
