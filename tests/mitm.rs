//! Someone on the path without the key: a proxy on 127.0.0.1 between client and server that
//! records genuine exchanges, then (a) echoes the client's own request back as the answer,
//! (b) replays a genuine answer for another secret, (c) replays an older answer for the same
//! secret after the server's value changed (a rollback). None of these may reach a secret file,
//! a credential or a restart: the client fails that server (exit 1 when it was the only one,
//! the old file left as it was, no systemctl call) and takes the value from the next server.
//! Both protocols are covered: protocol 2 (the default with a key) binds every answer to its
//! request and name; `--protocol 1` still refuses a reflected request.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

const KEY: &str = "path-attacker-has-no-key";

fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut payload)?;
    Ok(payload)
}

fn write_frame(s: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    s.write_all(&framed(payload))
}

/// What the proxy does with each connection.
#[derive(Clone)]
enum Mode {
    /// Passes the exchange through and records the answer.
    Forward(u16),
    /// Sends the client's own request frame back as the answer.
    Reflect,
    /// Answers every request with this recorded answer payload.
    Replay(Vec<u8>),
}

/// A path attacker on 127.0.0.1, stopped (listener closed, thread joined) when dropped.
struct Proxy {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    answers: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    fn start(mode: Mode) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(mode));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, a, st) = (Arc::clone(&mode), Arc::clone(&answers), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                let Ok((mut c, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                c.set_nonblocking(false).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let Ok(request) = read_frame(&mut c) else {
                    continue;
                };
                let mode = m.lock().unwrap().clone();
                let _ = match mode {
                    Mode::Reflect => write_frame(&mut c, &request),
                    Mode::Replay(answer) => write_frame(&mut c, &answer),
                    Mode::Forward(to) => (|| {
                        let mut s = TcpStream::connect(("127.0.0.2", to))?;
                        s.set_read_timeout(Some(Duration::from_secs(5)))?;
                        write_frame(&mut s, &request)?;
                        let answer = read_frame(&mut s)?;
                        a.lock().unwrap().push(answer.clone());
                        write_frame(&mut c, &answer)
                    })(),
                };
            }
        });
        Proxy {
            port,
            mode,
            answers,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// The last genuine answer passed through.
    fn last_answer(&self) -> Vec<u8> {
        self.answers
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("an answer was recorded")
    }
}

impl Proxy {
    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A server on 127.0.0.2 at `port`: the proxy's port on 127.0.0.1, so that the proxy can be the
/// `--server` and the real server the `--fallbacks` of one client (they share `--port`).
fn server(port: u16, secrets: &[&str]) -> Server {
    Server::builder()
        .on("127.0.0.2")
        .port(port)
        .password()
        .secrets(secrets)
        .args(&["--encryption-key", KEY, "--max-failures", "0"])
        .start()
}

/// `send` of `name` through the proxy at `port` into `out` (mode 0600 so that the test can read
/// it back).
fn send_to(port: u16, name: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "--encryption-key",
        KEY,
        "--timeout",
        "1",
        "--file-output",
        out.to_str().unwrap(),
        "--mode",
        "0600",
    ];
    args.extend_from_slice(extra);
    fetch(port, name, &args)
}

/// The three attacks against `send`, with `proto` the client's extra flags.
fn send_attacks(proto: &[&str]) {
    let d = TempDir::new("mitm");
    let out = d.path("db");
    let (systemctl, calls) = fake_systemctl(&d, "systemctl", 0);
    let mut proxy = Proxy::start(Mode::Reflect);
    let s1 = server(proxy.port, &["db=db-value-1", "other=other-value"]);
    proxy.set(Mode::Forward(s1.port));

    // Genuine exchanges through the proxy: it records the answers.
    let o = send_to(proxy.port, "other", &d.path("other"), proto);
    assert_exit(&o, 0);
    let other_answer = proxy.last_answer();
    let o = send_to(proxy.port, "db", &out, proto);
    assert_exit(&o, 0);
    let old_db_answer = proxy.last_answer();
    // The value changes on the server; the client fetches the new one and restarts its unit.
    drop(s1);
    let s2 = server(proxy.port, &["db=db-value-2", "other=other-value"]);
    let mut args = proto.to_vec();
    args.extend_from_slice(&["--restart-unit", "app.service", "--systemctl", &systemctl]);
    let o = send_to(proxy.port, "db", &out, &args);
    assert_exit(&o, 0);
    assert_eq!(std::fs::read(&out).unwrap(), b"db-value-2");
    let restarts = std::fs::read_to_string(&calls).unwrap_or_default();
    assert_eq!(restarts.lines().count(), 1, "{restarts}");

    for (what, mode) in [
        ("the request reflected", Mode::Reflect),
        ("the answer for another secret", Mode::Replay(other_answer)),
        ("an older answer for db", Mode::Replay(old_db_answer)),
    ] {
        proxy.set(mode);
        let o = send_to(proxy.port, "db", &out, &args);
        let err = assert_exit(&o, 1);
        assert_eq!(
            std::fs::read(&out).unwrap(),
            b"db-value-2",
            "{what} reached the secret file ({proto:?}): {err}"
        );
        assert_eq!(
            std::fs::read_to_string(&calls).unwrap_or_default(),
            restarts,
            "{what} restarted a unit ({proto:?})"
        );
        assert!(!err.contains(PW), "the password reached stderr: {err}");
        // The attacked server counts as failed: the next server gives the right value.
        let mut args = vec!["--encryption-key", KEY, "--fallbacks", "127.0.0.2"];
        args.extend_from_slice(proto);
        let o = fetch(proxy.port, "db", &args);
        assert_prints(&o, "db-value-2\n");
    }
    drop(s2);
    proxy.stop();
}

#[test]
fn send_refuses_reflected_and_replayed_answers_protocol_2() {
    send_attacks(&[]);
}

#[test]
fn send_refuses_a_reflected_request_protocol_1() {
    let d = TempDir::new("mitm1");
    let out = d.path("db");
    let proxy = Proxy::start(Mode::Reflect);
    let s = server(proxy.port, &["db=db-value"]);
    proxy.set(Mode::Forward(s.port));
    let o = send_to(proxy.port, "db", &out, &["--protocol", "1"]);
    assert_exit(&o, 0);
    assert_eq!(std::fs::read(&out).unwrap(), b"db-value");
    proxy.set(Mode::Reflect);
    let o = send_to(proxy.port, "db", &out, &["--protocol", "1"]);
    let err = assert_exit(&o, 1);
    assert!(err.contains("reflect"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"db-value");
    assert!(!err.contains(PW), "the password reached stderr: {err}");
}

/// Loads credential `id` of `unit` from `socket` as systemd does (from the unit's control
/// group, bound to systemd's abstract address, read to the end); `None` when refused.
fn load_credential(socket: &Path, unit: &str, id: &str) -> Option<Vec<u8>> {
    creds::ask(socket, Some((unit, id))).ok()
}

/// A running `netsecrets credentials` through the proxy at `port`, killed on drop.
fn credentials(d: &TempDir, tag: &str, port: u16, extra: &[&str]) -> (Proc, std::path::PathBuf) {
    let mut args = vec![
        "--encryption-key",
        KEY,
        "--timeout",
        "1",
        "--allow",
        "db=app.service",
    ];
    args.extend_from_slice(extra);
    let c = creds::Credentials::start(d, tag, port, &args);
    (c.proc, c.socket)
}

fn credentials_attacks(proto: &[&str]) {
    let d = TempDir::new("mitm-creds");
    let mut proxy = Proxy::start(Mode::Reflect);
    let s1 = server(proxy.port, &["db=db-value-1", "other=other-value"]);
    proxy.set(Mode::Forward(s1.port));
    let (_p, sock) = credentials(&d, "only", proxy.port, proto);
    let mut fb = vec!["--fallbacks", "127.0.0.2"];
    fb.extend_from_slice(proto);
    let (_q, sock_fb) = credentials(&d, "fb", proxy.port, &fb);
    // A genuine answer for another secret, recorded on its way.
    let o = fetch(
        proxy.port,
        "other",
        &[&["--encryption-key", KEY][..], proto].concat(),
    );
    assert_exit(&o, 0);
    let other_answer = proxy.last_answer();
    assert_eq!(
        load_credential(&sock, "app.service", "db").as_deref(),
        Some(&b"db-value-1"[..])
    );
    let old_db_answer = proxy.last_answer();
    drop(s1);
    let s2 = server(proxy.port, &["db=db-value-2", "other=other-value"]);
    assert_eq!(
        load_credential(&sock, "app.service", "db").as_deref(),
        Some(&b"db-value-2"[..])
    );
    for (what, mode) in [
        ("the request reflected", Mode::Reflect),
        ("the answer for another secret", Mode::Replay(other_answer)),
        ("an older answer for db", Mode::Replay(old_db_answer)),
    ] {
        proxy.set(mode);
        let got = load_credential(&sock, "app.service", "db");
        assert!(
            got.is_none(),
            "{what} became the credential ({proto:?}): {:?}",
            got.map(|v| String::from_utf8_lossy(&v).into_owned())
        );
        assert_eq!(
            load_credential(&sock_fb, "app.service", "db").as_deref(),
            Some(&b"db-value-2"[..]),
            "{what}: the next server was not asked ({proto:?})"
        );
    }
    drop(s2);
    proxy.stop();
}

#[test]
fn credentials_refuse_reflected_and_replayed_answers_protocol_2() {
    credentials_attacks(&[]);
}
