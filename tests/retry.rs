//! How `netsecrets send` retries (the built binary against real servers on loopback): a server
//! that comes up late is found within the short pause after a refused connection, a server that
//! closes without answering is retried seldom and explained once, and a primary that accepts
//! connections but never answers costs about the hedge delay, not the whole attempt deadline.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_late_server_is_found_soon_after_it_listens() {
    let port = free_port();
    let client = std::thread::spawn(move || {
        let o = fetch(port, "a,b", &["--timeout", "20"]);
        (o, Instant::now())
    });
    // After 3 s of refused connections the old doubling schedule paused 1-2 s, then 2-4 s.
    std::thread::sleep(Duration::from_millis(3000));
    let s = Server::builder()
        .port(port)
        .password()
        .secrets(&["a=1", "b=2"])
        .start();
    let up = Instant::now();
    let (o, done) = client.join().unwrap();
    assert_prints(&o, "1\n2\n");
    // Refused rounds pause 0.15-0.3 s; the margin is for a loaded machine.
    let late = done.saturating_duration_since(up);
    assert!(
        late < Duration::from_millis(700),
        "done {late:?} after the server listened"
    );
    drop(s);
}

#[test]
fn silent_closes_are_retried_seldom_and_explained_once() {
    // A wrong password: the server closes every connection without an answer.
    let s = Server::serving(&["db=v"], &["--max-failures", "100"]);
    let t = Instant::now();
    let o = send(
        s.port,
        &[
            "--password",
            "stale",
            "--request_secrets",
            "db",
            "--timeout",
            "7",
        ],
    );
    let err = assert_exit(&o, 1);
    assert!(t.elapsed() < Duration::from_secs(12));
    // The server logs a refusal after closing the connection: wait for the lines.
    s.wait_log("outcome=wrong-password", 2);
    std::thread::sleep(Duration::from_millis(300));
    let tries = s.log().matches("outcome=wrong-password").count();
    // Pauses of 2-4 s, then 8-16 s: two tries in 7 s (the old schedule made six).
    assert!((2..=3).contains(&tries), "{tries} tries: {}", s.log());
    assert_eq!(
        err.matches("is probably wrong for this client").count(),
        1,
        "{err}"
    );
    assert!(err.contains("refuses this address for a while"), "{err}");
}

#[test]
fn a_hung_primary_costs_about_the_hedge_delay() {
    // The primary's kernel completes the handshakes (a listening socket nobody accepts on,
    // like a frozen server) and nothing ever answers; the fallback serves.
    let s = Server::serving(&["a=1", "b=2", "c=3"], &[]);
    let hung = TcpListener::bind(("127.0.0.2", s.port)).expect("bind 127.0.0.2");
    let t = Instant::now();
    let o = fetch_from(
        "127.0.0.2",
        s.port,
        "a,b,c",
        &["--fallbacks", "127.0.0.1", "--verbose"],
    );
    let took = t.elapsed();
    assert_prints(&o, "1\n2\n3\n");
    // One hedge delay (0.5 s) instead of the 5 s attempt deadline; the rest is margin.
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    let err = stderr(&o);
    // The primary was asked once; after the fallback answered, it is asked first.
    assert_eq!(err.matches("fetching a from 127.0.0.2").count(), 1, "{err}");
    assert_eq!(err.matches("from 127.0.0.2").count(), 1, "{err}");
    assert_eq!(s.log().matches("outcome=served").count(), 3);
    drop(hung);
}

#[test]
fn a_healthy_primary_is_not_hedged() {
    // Both servers up: every secret comes from the primary, the fallback sees no request.
    let primary = Server::builder()
        .on("127.0.0.2")
        .password()
        .secrets(&["a=1", "b=2", "c=3"])
        .start();
    let fallback = Server::builder()
        .port(primary.port)
        .password()
        .secrets(&["a=1", "b=2", "c=3"])
        .start();
    let o = fetch_from(
        "127.0.0.2",
        primary.port,
        "a,b,c",
        &["--fallbacks", "127.0.0.1"],
    );
    assert_prints(&o, "1\n2\n3\n");
    assert_eq!(
        primary
            .wait_log("outcome=served", 3)
            .matches("outcome=served")
            .count(),
        3
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        fallback.log().matches("outcome=").count(),
        0,
        "{}",
        fallback.log()
    );
}
