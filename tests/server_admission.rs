//! The server's configuration checks around admission: an empty `from=`, loose file modes,
//! a reload to zero clients, an environment password beside a clients file, a file's contents
//! never quoted in an error; and overlap rotation of passwords and keys (several at once, for
//! the shared identity and for named clients) under steady traffic and reloads.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn an_empty_from_is_an_error_not_every_address() {
    let d = TempDir::new("adm-emptyfrom");
    d.write("a.pw", b"a-password");
    // What `authorizedIps = [ "" ]` renders.
    let clients = d.write("clients", b"a password=a.pw from=, secrets=*\n");
    // Bounded: a server that accepts the file would run on.
    let o = run_bounded(
        &["receive", "--port", "0", "--clients-file", &clients],
        Duration::from_secs(3),
    );
    let err = assert_exit(&o, 2);
    assert!(err.contains("from=, names no network"), "{err}");
}

#[test]
fn a_secret_given_as_the_clients_file_is_not_quoted() {
    let d = TempDir::new("adm-noecho");
    let clients = d.write("clients", b"Tr0ub4dor-and-3\n");
    let o = run(&["receive", "--port", "0", "--clients-file", &clients]);
    let err = assert_exit(&o, 2);
    assert!(
        !err.contains("Tr0ub4dor"),
        "the file's contents reached the log: {err}"
    );
    assert!(err.contains("line 1"), "{err}");
    let clients = d.write("clients", b"s3cret/with+slash here\n");
    let err = assert_exit(
        &run(&["receive", "--port", "0", "--clients-file", &clients]),
        2,
    );
    assert!(!err.contains("s3cret") && !err.contains("here"), "{err}");
}

#[test]
fn loose_modes_and_zero_clients_warn() {
    let d = TempDir::new("adm-loose");
    let pw = d.write("a.pw", b"a-password");
    let key = d.write("a.key", b"a-key");
    let secret = d.write("secret", b"value");
    let clients = d.write("clients", b"a password=a.pw key=a.key secrets=*\n");
    chmod(&pw, 0o644);
    chmod(&key, 0o640);
    chmod(&secret, 0o604);
    chmod(&clients, 0o666);
    let sf = format!("s={secret}");
    let s = Server::start(&["--clients-file", &clients, "--secret-file", &sf]);
    let log = s.log();
    for (file, fix) in [
        (&pw, "chmod go-w,o-rwx"),
        (&secret, "chmod go-w,o-rwx"),
        (&clients, "chmod go-w"),
    ] {
        let line = log
            .lines()
            .find(|l| l.contains("warning:") && l.contains(file.as_str()))
            .unwrap_or_else(|| panic!("no warning for {file}: {log}"));
        assert!(line.contains(&format!("{fix} {file}")), "{line}");
    }
    assert!(
        !log.lines().any(|l| l.contains(key.as_str())),
        "0640 is not loose: {log}"
    );
    // A reload to a file with no client: accepted (a deliberate lock-down) but said loudly.
    std::fs::write(&clients, b"# nobody\n").unwrap();
    s.hup();
    let log = s.wait_log("reloaded:", 1);
    assert!(log.contains("reloaded: 0 clients"), "{log}");
    assert!(
        log.contains("warning: the clients file names no client"),
        "{log}"
    );
}

#[test]
fn an_environment_password_beside_a_clients_file_warns() {
    let d = TempDir::new("adm-envpw");
    d.write("a.pw", b"a-password");
    let clients = d.write("clients", b"a password=a.pw secrets=*\n");
    let child = Command::new(BIN)
        .args(["receive", "--port", "0", "--clients-file", &clients])
        .env("NETSECRETS_PASSWORD", "from-the-environment")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill(2) takes plain integers; the PID is this test's own unreaped child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: NETSECRETS_PASSWORD adds a client \"default\""),
        "{err}"
    );
}

#[test]
fn the_shared_identity_accepts_every_password_and_key_given() {
    let d = TempDir::new("adm-shared-rot");
    let (p1, p2) = (d.write("old.pw", b"old-pw"), d.write("new.pw", b"new-pw"));
    let (k1, k2) = (
        d.write("old.key", b"old-key"),
        d.write("new.key", b"new-key"),
    );
    let s = Server::start(&[
        "--password-file",
        &p1,
        "--password-file",
        &p2,
        "--encryption-key-file",
        &k1,
        "--encryption-key-file",
        &k2,
        "-S",
        "db=v",
    ]);
    for pw in [&p1, &p2] {
        for key in [&k1, &k2] {
            let o = send(
                s.port,
                &[
                    "--password-file",
                    pw,
                    "--encryption-key-file",
                    key,
                    "--request_secrets",
                    "db",
                ],
            );
            assert_prints(&o, "v\n");
        }
    }
    let wrong = d.write("wrong.key", b"wrong-key");
    let o = send(
        s.port,
        &[
            "--password-file",
            &p1,
            "--encryption-key-file",
            &wrong,
            "--request_secrets",
            "db",
            "--timeout",
            "1",
        ],
    );
    assert_ne!(o.status.code(), Some(0));
}

/// The rotation procedure for a named client, in the middle of steady traffic with reloads:
/// the server accepts old and new, reload; the client switches; the server drops the old,
/// reload. Not one request fails, and nothing is locked out.
#[test]
fn overlap_rotation_under_traffic_loses_nothing() {
    let d = TempDir::new("adm-rotation");
    d.write("old.pw", b"nas-old-password");
    d.write("old.key", b"nas-old-key");
    d.write("new.pw", b"nas-new-password");
    d.write("new.key", b"nas-new-key");
    // What the client reads: replaced by rename when it switches.
    d.write("client.pw", b"nas-old-password");
    d.write("client.key", b"nas-old-key");
    let secret = d.write("backup", b"backup-value");
    let write_clients = |text: &str| {
        let tmp = d.path("clients.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, d.path("clients")).unwrap();
    };
    write_clients("nas password=old.pw key=old.key from=127.0.0.0/8 secrets=backup\n");
    let clients = d.path("clients").to_str().unwrap().to_owned();
    let sf = format!("backup={secret}");
    let s = Server::start(&["--clients-file", &clients, "--secret-file", &sf]);
    let port = s.port;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let traffic: Vec<_> = (0..2)
        .map(|_| {
            let (stop, ok, failed) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed));
            let pw = d.path("client.pw").to_str().unwrap().to_owned();
            let key = d.path("client.key").to_str().unwrap().to_owned();
            std::thread::spawn(move || {
                let end = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                    let o = send(
                        port,
                        &[
                            "--password-file",
                            &pw,
                            "--encryption-key-file",
                            &key,
                            "--request_secrets",
                            "backup",
                            "--timeout",
                            "3",
                        ],
                    );
                    if o.status.success() && stdout(&o) == "backup-value\n" {
                        ok.fetch_add(1, Ordering::SeqCst);
                    } else {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    let mut reloads = 0;
    let mut reload = |s: &Server| {
        s.hup();
        reloads += 1;
        s.wait_log("reloaded:", reloads);
    };
    let steady = |s: &Server, reload: &mut dyn FnMut(&Server)| {
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(100));
            reload(s);
        }
    };
    steady(&s, &mut reload);
    // 1. The server accepts old and new.
    write_clients(
        "nas password=old.pw password=new.pw key=old.key key=new.key from=127.0.0.0/8 secrets=backup\n",
    );
    reload(&s);
    steady(&s, &mut reload);
    // 2. The client switches (each file replaced whole; between the two renames it sends the
    // new password with the old key, which the server accepts too).
    std::fs::copy(d.path("new.pw"), d.path("client.pw.tmp")).unwrap();
    std::fs::rename(d.path("client.pw.tmp"), d.path("client.pw")).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    std::fs::copy(d.path("new.key"), d.path("client.key.tmp")).unwrap();
    std::fs::rename(d.path("client.key.tmp"), d.path("client.key")).unwrap();
    steady(&s, &mut reload);
    // 3. The server drops the old ones. A client still sending them would now fail: none does.
    // (Requests already read keep the configuration they were judged by.)
    std::thread::sleep(Duration::from_millis(300));
    write_clients("nas password=new.pw key=new.key from=127.0.0.0/8 secrets=backup\n");
    reload(&s);
    steady(&s, &mut reload);
    stop.store(true, Ordering::SeqCst);
    for t in traffic {
        t.join().unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    let log = s.log();
    println!("rotation: {ok} requests served, {failed} failed, {reloads} reloads");
    assert_eq!(failed, 0, "{log}");
    assert!(ok >= 10, "only {ok} requests ran");
    assert!(!log.contains("locked out"), "{log}");
    assert!(!log.contains("wrong-password"), "{log}");
    // The old credentials are refused now.
    let old = send(
        port,
        &[
            "--password-file",
            d.path("old.pw").to_str().unwrap(),
            "--encryption-key-file",
            d.path("old.key").to_str().unwrap(),
            "--request_secrets",
            "backup",
            "--timeout",
            "1",
        ],
    );
    assert_ne!(old.status.code(), Some(0));
}

/// One raw exchange: writes `data`, reads to the end.
fn exchange(port: u16, data: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(data);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// Served lines are rate-limited like every other kind, and the counts of those not written
/// reach the log exactly: lines written plus counted equal the requests served.
#[test]
fn served_lines_are_rate_limited_with_exact_counts() {
    let s = Server::start(&[
        "--password",
        "pw-1",
        "--encryption-key",
        "k-1",
        "-S",
        "db=v",
    ]);
    let key = netsecrets::wire::crypto::Key::from_str_key("k-1");
    let n = 1500;
    for _ in 0..n {
        let req = framed(&key.seal(b"pw-1 db").unwrap());
        assert!(!exchange(s.port, &req).is_empty());
    }
    std::thread::sleep(Duration::from_millis(2500));
    let log = s.log();
    let written = log.matches("outcome=served").count();
    let counted: usize = log
        .lines()
        .filter_map(|l| l.split_once(" more 'served' lines not logged"))
        .map(|(head, _)| head.rsplit(' ').next().unwrap().parse::<usize>().unwrap())
        .sum();
    println!("{n} served: {written} lines written, {counted} counted in summaries");
    assert_eq!(written + counted, n, "{log}");
    assert!(written < n, "every served line was written");
}

/// A request frame far over what a real request needs is refused before any decryption.
#[test]
fn an_oversized_request_is_refused_unread() {
    let s = Server::start(&[
        "--password",
        "pw-1",
        "--encryption-key",
        "k-1",
        "-S",
        "db=v",
    ]);
    let big = framed(&vec![0x41; 60_000]);
    assert!(exchange(s.port, &big).is_empty());
    let log = s.wait_log("outcome=", 1);
    assert!(
        log.contains("frame length 60000 is over the limit of 8192 bytes"),
        "{log}"
    );
    // A request with a long (4 KiB) password and a 255-byte name still fits.
    let d = TempDir::new("adm-bigreq");
    let pw = "p".repeat(4096);
    let pwf = d.write("pw", pw.as_bytes());
    let name = "n".repeat(255);
    let secret = format!("{name}=v");
    let s = Server::start(&[
        "--password-file",
        &pwf,
        "--encryption-key",
        "k-1",
        "-S",
        &secret,
    ]);
    let key = netsecrets::wire::crypto::Key::from_str_key("k-1");
    let req = framed(&key.seal(format!("{pw} {name}").as_bytes()).unwrap());
    assert!(!exchange(s.port, &req).is_empty(), "{}", s.log());
}
