//! Named clients (`--clients-file`): each its own password, key, networks and secrets; a secret
//! a client may not read answered exactly like one that does not exist; the single-password
//! setup beside them; and reloads (SIGHUP): revocation while clients fetch, a bad file keeping
//! the previous configuration, changed secret files picked up.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// A scratch directory with two clients: `laptop` (its own key, may read `wifi`) and `builder`
/// (another key, may read everything), and the secret files `wifi` and `disk`.
struct Fleet {
    d: TempDir,
}

const LAPTOP_PW: &str = "laptop-pw-3f9a";
const BUILDER_PW: &str = "builder-pw-8c21";

impl Fleet {
    fn new(tag: &str) -> Fleet {
        let d = TempDir::new(tag);
        d.write("laptop.pw", format!("{LAPTOP_PW}\n").as_bytes());
        d.write("laptop.key", b"laptop-key-material\n");
        d.write("builder.pw", BUILDER_PW.as_bytes());
        d.write("builder.key", b"builder-key-material");
        d.write("wifi", b"wifi-value");
        d.write("disk", b"disk-value");
        let f = Fleet { d };
        f.clients(
            "# two clients, relative paths beside this file\n\
             laptop  password=laptop.pw  key=laptop.key  from=127.0.0.1 secrets=wifi\n\
             builder password=builder.pw key=builder.key from=127.0.0.0/8 secrets=*\n",
        );
        f
    }

    fn clients(&self, text: &str) {
        // Written whole and renamed in place, as a configuration manager would.
        let tmp = self.d.path("clients.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.d.path("clients")).unwrap();
    }

    fn path(&self, name: &str) -> String {
        self.d.path(name).to_str().unwrap().to_owned()
    }

    fn server(&self, extra: &[&str]) -> Server {
        let clients = self.path("clients");
        let wifi = format!("wifi={}", self.path("wifi"));
        let disk = format!("disk={}", self.path("disk"));
        let mut args = vec![
            "--clients-file",
            &clients,
            "--secret-file",
            &wifi,
            "--secret-file",
            &disk,
        ];
        args.extend_from_slice(extra);
        Server::start(&args)
    }

    /// `send` as `who` (its password file and key file), asking for `names`.
    fn fetch(&self, port: u16, who: &str, names: &str) -> std::process::Output {
        let pw = self.path(&format!("{who}.pw"));
        let key = self.path(&format!("{who}.key"));
        send(
            port,
            &[
                "--password-file",
                &pw,
                "--encryption-key-file",
                &key,
                "--request_secrets",
                names,
                "--timeout",
                "2",
            ],
        )
    }
}

#[test]
fn each_client_reads_what_it_may_and_nothing_else() {
    let f = Fleet::new("clients-access");
    let s = f.server(&[]);
    // Allowed.
    assert_prints(&f.fetch(s.port, "laptop", "wifi"), "wifi-value\n");
    assert_prints(
        &f.fetch(s.port, "builder", "wifi disk"),
        "wifi-value\ndisk-value\n",
    );
    // Denied: the laptop may not read `disk`; it gets exactly what a missing name gets.
    let denied = f.fetch(s.port, "laptop", "disk");
    let missing = f.fetch(s.port, "laptop", "nope");
    assert_eq!(denied.status.code(), missing.status.code());
    assert_ne!(denied.status.code(), Some(0), "{}", stderr(&denied));
    assert_eq!(
        stderr(&denied).replace("disk", "NAME"),
        stderr(&missing).replace("nope", "NAME"),
        "a denied secret must look like a missing one"
    );
    assert!(!stdout(&denied).contains("disk-value"));
    // Unknown client: a password nobody has, with a key a client has.
    let d = TempDir::new("clients-stranger");
    let pw = d.write("pw", b"stranger-pw");
    let key = f.path("laptop.key");
    let stranger = send(
        s.port,
        &[
            "--password-file",
            &pw,
            "--encryption-key-file",
            &key,
            "--request_secrets",
            "wifi",
            "--timeout",
            "1",
        ],
    );
    assert_ne!(stranger.status.code(), Some(0));
    assert!(!stdout(&stranger).contains("wifi-value"));
    let log = s.wait_log("outcome=", 6);
    assert!(
        log.contains("client=laptop name=wifi outcome=served"),
        "{log}"
    );
    assert!(
        log.contains("client=builder name=disk outcome=served"),
        "{log}"
    );
    assert!(
        log.contains("client=laptop name=disk outcome=denied-secret"),
        "{log}"
    );
    assert!(
        log.contains("client=laptop name=nope outcome=not-found"),
        "{log}"
    );
    assert!(log.contains("outcome=wrong-password"), "{log}");
    // Every line of an authenticated request names its client; no password, key or value.
    for line in log.lines().filter(|l| l.contains("name=")) {
        assert!(line.contains(" client="), "{line}");
    }
    for needle in [
        LAPTOP_PW,
        BUILDER_PW,
        "key-material",
        "wifi-value",
        "disk-value",
        "stranger-pw",
    ] {
        assert!(!log.contains(needle), "{needle:?} leaked into: {log}");
    }
}

#[test]
fn a_client_cannot_use_another_clients_key_or_network() {
    let f = Fleet::new("clients-keys");
    // The laptop is allowed from 127.0.0.1 only, the builder from all of 127.0.0.0/8.
    let srv1 = f.server(&["--max-failures", "0"]);
    let s = srv1.port;
    // The laptop's password sealed with the builder's key: not accepted.
    let pw = f.path("laptop.pw");
    let bkey = f.path("builder.key");
    let crossed = send(
        s,
        &[
            "--password-file",
            &pw,
            "--encryption-key-file",
            &bkey,
            "--request_secrets",
            "wifi",
            "--timeout",
            "1",
        ],
    );
    assert_ne!(crossed.status.code(), Some(0), "{}", stderr(&crossed));
    // Both keys work for their own client, from the same address.
    assert_prints(&f.fetch(s, "laptop", "wifi"), "wifi-value\n");
    assert_prints(&f.fetch(s, "builder", "disk"), "disk-value\n");
    drop(srv1);
    // A client outside its own networks is refused even with its right password and key; an
    // address no client may come from is closed before anything is decrypted.
    f.clients(
        "laptop  password=laptop.pw  key=laptop.key  from=127.0.0.2 secrets=wifi\n\
         builder password=builder.pw key=builder.key from=127.0.0.0/8 secrets=*\n",
    );
    let s2 = f.server(&[]);
    let laptop = f.fetch(s2.port, "laptop", "wifi");
    assert_ne!(laptop.status.code(), Some(0), "{}", stderr(&laptop));
    assert_prints(&f.fetch(s2.port, "builder", "wifi"), "wifi-value\n");
    // Its key is not even tried from here: only the builder's is.
    let log = s2.wait_log("outcome=undecryptable", 1);
    assert!(log.contains("outcome=undecryptable"), "{log}");
    drop(s2);
    f.clients("laptop password=laptop.pw key=laptop.key from=10.0.0.0/8 secrets=wifi\n");
    let s3 = f.server(&[]);
    let far = f.fetch(s3.port, "laptop", "wifi");
    assert_ne!(far.status.code(), Some(0), "{}", stderr(&far));
    let log = s3.wait_log("no client may connect", 1);
    assert!(
        log.contains("outcome=denied (no client may connect from here)"),
        "{log}"
    );
}

#[test]
fn the_single_password_client_is_served_beside_named_ones() {
    let f = Fleet::new("clients-default");
    let s = f.server(&["--password", PW, "--encryption-key", "shared-key"]);
    assert_prints(
        &fetch(s.port, "disk", &["--encryption-key", "shared-key"]),
        "disk-value\n",
    );
    assert_prints(&f.fetch(s.port, "laptop", "wifi"), "wifi-value\n");
    let log = s.wait_log("outcome=served", 2);
    assert!(
        log.contains("client=default name=disk outcome=served"),
        "{log}"
    );
}

#[test]
fn bad_clients_files_are_refused_at_start_with_the_line() {
    let f = Fleet::new("clients-bad");
    let clients = f.path("clients");
    for (text, want) in [
        (
            "a password=laptop.pw secrets=x\na password=builder.pw secrets=y\n",
            "line 2: this client name is already defined on line 1",
        ),
        (
            "a password=missing.pw secrets=x\n",
            "cannot read password file of client \"a\"",
        ),
        (
            "a password=laptop.pw secrets=x\nb password=laptop.pw secrets=y\n",
            "clients \"a\" and \"b\" have the same password",
        ),
    ] {
        f.clients(text);
        let o = run(&["receive", "--port", "0", "--clients-file", &clients]);
        let err = assert_exit(&o, 2);
        assert!(err.contains(want), "{text:?}: {err}");
        assert!(err.contains(&clients), "the file is named: {err}");
    }
    // Nine clients with distinct keys at one address: over the bound.
    let mut text = String::new();
    for i in 0..9 {
        f.d.write(&format!("k{i}"), format!("key {i}").as_bytes());
        f.d.write(&format!("p{i}"), format!("pw {i}").as_bytes());
        text.push_str(&format!("c{i} password=p{i} key=k{i} secrets=*\n"));
    }
    f.clients(&text);
    let err = assert_exit(
        &run(&["receive", "--port", "0", "--clients-file", &clients]),
        2,
    );
    assert!(
        err.contains("more than 8 distinct keys may be used from any address"),
        "{err}"
    );
}

#[test]
fn revocation_by_reload_while_clients_fetch() {
    let f = Fleet::new("clients-revoke");
    let s = f.server(&[]);
    let port = s.port;
    assert_prints(&f.fetch(port, "laptop", "wifi"), "wifi-value\n");
    // The builder fetches in a loop on its own thread through the reload: not one may fail.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let looper = {
        let stop = std::sync::Arc::clone(&stop);
        let pw = f.path("builder.pw");
        let key = f.path("builder.key");
        std::thread::spawn(move || {
            let mut n = 0;
            let end = Instant::now() + Duration::from_secs(30);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < end {
                let o = send(
                    port,
                    &[
                        "--password-file",
                        &pw,
                        "--encryption-key-file",
                        &key,
                        "--request_secrets",
                        "disk",
                    ],
                );
                assert_prints(&o, "disk-value\n");
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // The laptop was lost: its line goes, and the server reloads.
    f.clients("builder password=builder.pw key=builder.key from=127.0.0.0/8 secrets=*\n");
    s.hup();
    let log = s.wait_log("reloaded: 1 clients", 1);
    assert!(log.contains("reloaded: 1 clients, 2 secrets"), "{log}");
    let lost = f.fetch(port, "laptop", "wifi");
    assert_ne!(lost.status.code(), Some(0), "{}", stderr(&lost));
    assert!(!stdout(&lost).contains("wifi-value"));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let n = looper.join().expect("no honest fetch failed");
    assert!(n >= 3, "the loop ran {n} times");
    // Added back with a new password: served again at once.
    f.d.write("laptop.pw", b"new-laptop-pw");
    f.clients(
        "laptop  password=laptop.pw  key=laptop.key  from=127.0.0.1 secrets=wifi\n\
         builder password=builder.pw key=builder.key from=127.0.0.0/8 secrets=*\n",
    );
    s.hup();
    s.wait_log("reloaded: 2 clients", 1);
    assert_prints(&f.fetch(port, "laptop", "wifi"), "wifi-value\n");
}

#[test]
fn a_bad_reload_keeps_the_previous_configuration() {
    let f = Fleet::new("clients-badreload");
    let mut s = f.server(&[]);
    f.clients("laptop password=laptop.pw secrets=wifi from=nonsense\n");
    s.hup();
    let log = s.wait_log("reload failed", 1);
    assert!(
        log.contains("reload failed, still serving the previous configuration: clients file")
            && log.contains("line 1: from=: invalid network \"nonsense\""),
        "{log}"
    );
    assert!(s.is_alive());
    assert_prints(&f.fetch(s.port, "laptop", "wifi"), "wifi-value\n");
    assert_prints(&f.fetch(s.port, "builder", "disk"), "disk-value\n");
    // An unreadable secret file: also kept, also said.
    f.clients(
        "laptop  password=laptop.pw  key=laptop.key  from=127.0.0.1 secrets=wifi\n\
         builder password=builder.pw key=builder.key from=127.0.0.0/8 secrets=*\n",
    );
    std::fs::remove_file(f.path("disk")).unwrap();
    s.hup();
    let log = s.wait_log("reload failed", 2);
    assert!(
        log.contains("cannot read secret file for \"disk\""),
        "{log}"
    );
    assert_prints(&f.fetch(s.port, "builder", "disk"), "disk-value\n");
    // Fixed, with a new value: picked up by the next reload.
    f.d.write("disk", b"disk-value-2");
    s.hup();
    s.wait_log("reloaded:", 1);
    assert_prints(&f.fetch(s.port, "builder", "disk"), "disk-value-2\n");
}

#[test]
fn the_single_password_server_reloads_its_password_file() {
    let d = TempDir::new("reload-pw");
    let pw = d.write("pw", b"old-pw");
    let s = Server::start(&["--password-file", &pw, "-S", "a=1", "--insecure"]);
    let get = |p: &str| {
        send(
            s.port,
            &[
                "--password",
                p,
                "--request_secrets",
                "a",
                "--insecure",
                "--timeout",
                "1",
            ],
        )
    };
    assert_prints(&get("old-pw"), "1\n");
    d.write("pw", b"new-pw");
    s.hup();
    s.wait_log("reloaded: 1 clients, 1 secrets", 1);
    assert_prints(&get("new-pw"), "1\n");
    assert_ne!(get("old-pw").status.code(), Some(0));
    // An empty password file is refused; the new password stays.
    d.write("pw", b"");
    s.hup();
    let log = s.wait_log("reload failed", 1);
    assert!(log.contains("the password is empty"), "{log}");
    assert_prints(&get("new-pw"), "1\n");
}

/// A request for `name` sealed with the key file `key` (its contents) and `password`, framed.
fn sealed_request(key: &[u8], password: &str, name: &str) -> Vec<u8> {
    let key = netsecrets::wire::crypto::Key::from_file_contents(key);
    let payload = key.seal(format!("{password} {name}").as_bytes()).unwrap();
    framed(&payload)
}

/// A connection opened before a reload that revokes its client is judged when its request
/// arrives, by the configuration current then: the revoked client gets nothing.
#[test]
fn a_connection_opened_before_revocation_is_judged_after_it() {
    use std::io::{Read, Write};
    let f = Fleet::new("clients-revoke-open");
    let s = f.server(&["--timeout", "10"]);
    let request = sealed_request(b"laptop-key-material\n", LAPTOP_PW, "wifi");
    // Still served before the reload, on a connection opened in advance.
    let mut early = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    early.write_all(&request).unwrap();
    let mut answer = Vec::new();
    early.read_to_end(&mut answer).unwrap();
    assert!(!answer.is_empty(), "not served before the revocation");
    // Opened now, written after the laptop's line is gone and the server has reloaded.
    let mut held = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    f.clients("builder password=builder.pw key=builder.key from=127.0.0.0/8 secrets=*\n");
    s.hup();
    s.wait_log("reloaded: 1 clients", 1);
    held.write_all(&request).unwrap();
    held.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = Vec::new();
    let _ = held.read_to_end(&mut answer);
    assert!(
        answer.is_empty(),
        "a revoked client was served ({} bytes)",
        answer.len()
    );
    let log = s.wait_log("outcome=", 2);
    assert_eq!(
        log.matches("client=laptop name=wifi outcome=served")
            .count(),
        1,
        "{log}"
    );
}
