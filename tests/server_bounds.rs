//! The server's bounds on the wire and in resources: a request in pieces and a half-closed
//! socket, the answer and the end of stream in one segment, the oldest idle connection evicted
//! for a new client when every slot is taken, and extra workers retiring once idle.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Hand-built bytes, independent of the crate's encoder: header and body in separate segments
/// with pauses, then the client closes its write side before reading.
#[test]
fn request_in_pieces_and_half_close() {
    let s = Server::serving(&["db=pieces"], &[]);
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_nodelay(true).unwrap();
    let body = format!("{PW} db\n");
    let len = (body.len() as u32).to_be_bytes();
    c.write_all(&len[..2]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(&len[2..]).unwrap();
    for chunk in body.as_bytes().chunks(5) {
        std::thread::sleep(Duration::from_millis(30));
        c.write_all(chunk).unwrap();
    }
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut resp = Vec::new();
    c.read_to_end(&mut resp).unwrap();
    assert_eq!(resp, b"\x00\x00\x00\x06pieces");
}

/// The answer and the server's FIN arrive together (the server corks its sockets and closes at
/// once): as soon as the whole answer can be read, the end of the stream can be read too, so a
/// client that closes right after reading is never the first to close and never keeps the
/// connection in TIME_WAIT. Without the cork the FIN follows the answer in a later segment,
/// sent only when the server thread gets to close(); a client reading in between finds no end.
#[test]
fn answer_and_end_of_stream_arrive_together() {
    let s = Server::serving(&["db=together"], &[]);
    let body = format!("{PW} db\n");
    let request = framed(body.as_bytes());
    let want = b"\x00\x00\x00\x08together";
    for i in 0..200 {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(&request).unwrap();
        let mut resp = [0u8; 12];
        c.read_exact(&mut resp).unwrap();
        assert_eq!(&resp, want);
        c.set_nonblocking(true).unwrap();
        let mut more = [0u8; 1];
        match c.read(&mut more) {
            Ok(0) => {}
            other => panic!("exchange {i}: answer read, but no end of stream with it: {other:?}"),
        }
    }
}

/// With every slot taken by connections that never send a request, a new client is still
/// served: the oldest incomplete connection is closed to make room.
#[test]
fn full_server_evicts_oldest_idle_connection_for_a_new_client() {
    let s = Server::serving(&["db=v"], &["--max-connections", "4", "--timeout", "60"]);
    let mut idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", s.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    assert_fetches_db(s.port, "v\n");
    assert!(t.elapsed() < Duration::from_secs(3));
    // The first idle connection was closed by the server (EOF), long before its 60 s deadline.
    idle[0]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut b = [0u8; 1];
    assert_eq!(idle[0].read(&mut b).unwrap(), 0);
}

/// CPUs in this process's affinity mask (the server started from here inherits it).
fn affinity_cpus() -> usize {
    // SAFETY: a zeroed cpu_set_t owned by this frame, written by the kernel up to its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
            0
        );
        libc::CPU_COUNT(&set) as usize
    }
}

/// The process's thread count, from /proc.
fn threads(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The process's thread count, once it equals `want` or after `limit`.
fn threads_settle(pid: u32, want: usize, limit: Duration) -> usize {
    let end = Instant::now() + limit;
    loop {
        let n = threads(pid);
        if n == want || Instant::now() > end {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `send` fetches secret `db` with a 3 s timeout and prints `want`.
fn assert_fetches_db(port: u16, want: &str) {
    assert_prints(&fetch(port, "db", &["--timeout", "3"]), want);
}

/// Workers started for a burst of idle connections retire once idle, down to the one per CPU
/// (2 to 16) kept alive; the server itself never does (a worker returning on the main thread
/// would end the process).
#[test]
fn server_keeps_serving_after_extra_workers_retire() {
    let mut s = Server::serving(&["db=v"], &["--timeout", "0.3"]);
    let kept = affinity_cpus().clamp(2, 16) + 2; // the kept workers, the monitor, the drainer
    assert_eq!(threads_settle(s.pid(), kept, Duration::from_secs(3)), kept);
    // Hold more connections than the most workers ever kept alive (16, one per CPU), so the
    // pool grows on any machine.
    let idle: Vec<TcpStream> = (0..24)
        .map(|_| TcpStream::connect(("127.0.0.1", s.port)).unwrap())
        .collect();
    // The monitor grows the pool within a few 5 ms ticks; the connections are closed at their
    // 0.3 s deadline, and the extra workers retire a 0.3 s idle timeout later.
    std::thread::sleep(Duration::from_millis(150));
    let grown = threads(s.pid());
    assert!(grown > kept, "the pool did not grow: {grown} threads");
    drop(idle);
    // Several idle timeouts pass: the extra workers retire.
    assert_eq!(threads_settle(s.pid(), kept, Duration::from_secs(5)), kept);
    assert!(s.is_alive(), "the server exited: {}", s.log());
    assert_fetches_db(s.port, "v\n");
}
