//! `receive` under systemd `Type=notify`: once it listens it sends `READY=1` to the datagram
//! socket `$NOTIFY_SOCKET` names (a path or an `@abstract` name), and a client started right
//! after that datagram is served.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn ready_then_served(notify_socket: &str, rx: &UnixDatagram) {
    let port = free_port();
    let p = port.to_string();
    let _server = Proc::spawn(
        Command::new(BIN)
            .args(["receive", "--server", "127.0.0.1", "--port", &p])
            .args(["--password", PW, "--insecure", "-S", "db=value"])
            .env("NOTIFY_SOCKET", notify_socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    rx.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 256];
    let n = rx.recv(&mut buf).expect("READY=1 within 20 s");
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means listening: no retry needed.
    let o = fetch(port, "db", &["--insecure", "--timeout", "1"]);
    assert_prints(&o, "value\n");
}

#[test]
fn ready_on_a_path_socket() {
    let d = TempDir::new("notify");
    let path = d.path("notify.sock");
    let rx = UnixDatagram::bind(&path).unwrap();
    ready_then_served(path.to_str().unwrap(), &rx);
}

#[test]
fn ready_on_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("netsecrets-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let rx = UnixDatagram::bind_addr(&addr).unwrap();
    ready_then_served(&format!("@{name}"), &rx);
}

#[test]
fn without_notify_socket_nothing_is_sent_and_a_bad_one_is_only_a_warning() {
    let s = Server::builder()
        .password()
        .secrets(&["db=v"])
        .args(&["--insecure"])
        .start();
    assert!(!s.log().contains("NOTIFY_SOCKET"), "{}", s.log());
    let port = free_port();
    let p = port.to_string();
    let d = TempDir::new("notify-bad");
    let missing = d.path("nobody-listens");
    let log = d.path("log");
    let mut server = Proc::spawn(
        Command::new(BIN)
            .args(["receive", "--server", "127.0.0.1", "--port", &p])
            .args(["--password", PW, "--insecure", "-S", "db=value"])
            .env("NOTIFY_SOCKET", &missing)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    let o = fetch(port, "db", &["--insecure", "--timeout", "10"]);
    assert_prints(&o, "value\n");
    assert!(server.is_alive());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("warning: cannot tell systemd \"READY=1\" through NOTIFY_SOCKET"),
        "{text}"
    );
}
