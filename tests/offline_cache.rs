//! The offline cache (`send --offline-cache DIR --offline-after SECS`) with the real
//! `systemd-creds`: filled by a fetch, used when the server is down (refused or silent), never
//! when a server was reached and refused the client, emptied by `Not found` and by age, and
//! refusing copies that were changed, sealed on another host or for another secret. The value
//! never appears in DIR or in any output line.
//!
//! Needs `systemd-creds` (systemd 252 or later) and root (the host key in
//! /var/lib/systemd/credential.secret is created on first use). Without them every test says
//! so on stderr and passes, except under `CI=true`, where that is a failure.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

const DB: &str = "correct-horse-db-value";
const API: &str = "api-token-0123456789";

/// True when `systemd-creds encrypt` works here; otherwise says so loudly (a failure in CI).
fn creds_work() -> bool {
    let ok = seal_with(&[], "probe", b"probe").is_some();
    if !ok {
        let msg = "SKIPPED: systemd-creds cannot encrypt here (install systemd >= 252, run as root); the offline cache is untested";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg}");
        }
        eprintln!("\n*** {msg} ***\n");
    }
    ok
}

/// `systemd-creds encrypt --name=NAME` of `plain` with `env` set; None when it fails.
fn seal_with(env: &[(&str, &str)], name: &str, plain: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut c = Command::new("systemd-creds")
        .args([
            "encrypt",
            &format!("--name={name}"),
            "--with-key=auto",
            "-",
            "-",
        ])
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    c.stdin.take()?.write_all(plain).ok()?;
    let o = c.wait_with_output().ok()?;
    o.status.success().then_some(o.stdout)
}

/// A cache entry as `send` writes it, sealed `age_secs` ago (the time is inside the seal).
fn entry(name: &str, value: &str, age_secs: u64) -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let plain = format!("netsecrets-cache 1 {}\n{value}", now - age_secs);
    seal_with(&[], name, plain.as_bytes()).expect("systemd-creds encrypt")
}

/// `send` of `names` with the cache in `dir` and `args`, to `out`.
fn cached(port: u16, names: &str, dir: &Path, out: &Path, args: &[&str]) -> std::process::Output {
    let (dir, out) = (dir.to_str().unwrap(), out.to_str().unwrap());
    let mut all = vec!["--insecure", "--offline-cache", dir, "--file-output", out];
    all.extend_from_slice(args);
    fetch(port, names, &all)
}

/// Asserts that no file of `dir` and no output line holds a secret value.
#[track_caller]
fn no_plaintext(dir: &Path, outputs: &[&std::process::Output]) {
    for e in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        for v in [DB, API, "new-db-value"] {
            assert!(
                !bytes.windows(v.len()).any(|w| w == v.as_bytes()),
                "{v} in the cache"
            );
        }
    }
    for o in outputs {
        let text = format!("{}{}", stderr(o), stdout(o));
        for v in [DB, API, "new-db-value"] {
            assert!(!text.contains(v), "{v} in the output: {text}");
        }
    }
}

#[test]
fn filled_by_a_fetch_used_when_the_server_is_down_replaced_when_it_is_back() {
    if !creds_work() {
        return;
    }
    let d = TempDir::new("cache-fill");
    let (cache, out) = (d.path("cache"), d.path("out"));
    let secrets = [&*format!("db={DB}"), &*format!("api={API}")];
    let s = Server::serving(&secrets, &["--insecure"]);
    let port = s.port;
    let o1 = cached(port, "db api", &cache, &out, &["--offline-after", "1"]);
    assert_exit(&o1, 0);
    assert_eq!(mode(&cache), 0o700);
    assert_eq!(d.entries(), ["cache", "out"]);
    let entries: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(entries, ["api.cred", "db.cred"]);
    let db_cred = cache.join("db.cred");
    assert_eq!(mode(&db_cred), 0o600);
    assert_eq!(std::fs::metadata(&db_cred).unwrap().uid(), 0);
    // A second fetch of the same values leaves the sealed copies alone (same inode and mtime).
    let before = std::fs::metadata(&db_cred).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let o2 = cached(port, "db api", &cache, &out, &["--offline-after", "1"]);
    assert_exit(&o2, 0);
    let after = std::fs::metadata(&db_cred).unwrap();
    assert_eq!(
        (before.ino(), before.mtime_nsec()),
        (after.ino(), after.mtime_nsec())
    );

    // The server goes away: refused connections for 1 s, then the cached copies.
    drop(s);
    std::fs::remove_file(&out).unwrap();
    let o3 = cached(port, "db api", &cache, &out, &["--offline-after", "1"]);
    let err = assert_exit(&o3, 0);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        format!("{DB}\n{API}").as_bytes()
    );
    assert!(err.contains("refused the connection"), "{err}");
    for name in ["db", "api"] {
        let head = format!("{name}: no server of 127.0.0.1:{port} could be reached for");
        let line = err.lines().find(|l| l.contains(&head)).unwrap_or_default();
        assert!(
            line.contains("using the offline cache's copy, ") && line.contains("s old"),
            "{name}: {err}"
        );
    }
    // Without --offline-after the cache is only filled, never read: the fetch fails.
    let o4 = cached(port, "db", &cache, &out, &["--timeout", "1"]);
    assert_exit(&o4, 1);

    // Back with a new value: fetched, written, and the cache follows.
    let s = Server::builder()
        .port(port)
        .password()
        .secrets(&["db=new-db-value"])
        .args(&["--insecure"])
        .start();
    // The refresh that finds the server again writes its value and runs the change actions.
    let (ctl, ctl_log) = fake_systemctl(&d, "systemctl", 0);
    let actions = [
        "--offline-after",
        "1",
        "--restart-unit",
        "app.service",
        "--systemctl",
        &ctl,
    ];
    let o5 = cached(port, "db", &cache, &out, &actions);
    assert_exit(&o5, 0);
    assert_eq!(std::fs::read(&out).unwrap(), b"new-db-value");
    assert_eq!(
        std::fs::read_to_string(&ctl_log).unwrap(),
        "--no-block try-restart -- app.service\n"
    );
    drop(s);
    // Down again: the cache holds the new value; the file is unchanged, nothing restarts.
    let o6 = cached(port, "db", &cache, &out, &actions);
    assert_exit(&o6, 0);
    assert_eq!(std::fs::read(&out).unwrap(), b"new-db-value");
    assert_eq!(
        std::fs::read_to_string(&ctl_log).unwrap().lines().count(),
        1
    );
    no_plaintext(&cache, &[&o1, &o2, &o3, &o4, &o5, &o6]);
}

#[test]
fn a_silent_server_counts_as_unreachable_one_that_closes_does_not() {
    if !creds_work() {
        return;
    }
    let d = TempDir::new("cache-silent");
    let (cache, out) = (d.path("cache"), d.path("out"));
    std::fs::create_dir(&cache).unwrap();
    chmod(&cache, 0o700);
    std::fs::write(cache.join("db.cred"), entry("db", DB, 0)).unwrap();
    // Accepts and never answers: the answer times out (5 s per attempt), then the cache.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let h = std::sync::Arc::clone(&held);
    let silent = std::thread::spawn(move || {
        for c in l.incoming().take(1) {
            h.lock().unwrap().push(c.unwrap());
        }
    });
    let o = cached(port, "db", &cache, &out, &["--offline-after", "1"]);
    let err = assert_exit(&o, 0);
    assert!(err.contains("sent no response in time"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), DB.as_bytes());
    silent.join().unwrap();
    drop(held);

    // Accepts and closes at once (a wrong password looks like this): never the cache.
    std::fs::remove_file(&out).unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let closer = std::thread::spawn(move || {
        l.set_nonblocking(true).unwrap();
        let end = std::time::Instant::now() + Duration::from_secs(4);
        while std::time::Instant::now() < end {
            if let Ok((c, _)) = l.accept() {
                drop(c);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let o = cached(
        port,
        "db",
        &cache,
        &out,
        &["--offline-after", "1", "--timeout", "3"],
    );
    let err = assert_exit(&o, 1);
    assert!(err.contains("without answering"), "{err}");
    assert!(!err.contains("offline cache"), "{err}");
    assert!(!out.exists());
    closer.join().unwrap();
    no_plaintext(&cache, &[&o]);
}

#[test]
fn a_wrong_password_never_falls_back_to_the_cache() {
    if !creds_work() {
        return;
    }
    let d = TempDir::new("cache-pw");
    let (cache, out) = (d.path("cache"), d.path("out"));
    let s = Server::serving(&[&format!("db={DB}")], &["--insecure"]);
    assert_exit(
        &cached(s.port, "db", &cache, &out, &["--offline-after", "1"]),
        0,
    );
    let port = s.port;
    drop(s);
    std::fs::remove_file(&out).unwrap();
    // The server is back, with another password: reached, refused, and the cache stays unused
    // however long the refusals go on.
    let _s = Server::builder()
        .port(port)
        .args(&["--password", "another-password", "--insecure", "-S", "db=x"])
        .start();
    let o = cached(
        port,
        "db",
        &cache,
        &out,
        &["--offline-after", "1", "--timeout", "3"],
    );
    let err = assert_exit(&o, 1);
    assert!(
        err.contains("closed the connection without answering"),
        "{err}"
    );
    assert!(!err.contains("offline cache"), "{err}");
    assert!(!out.exists());
    assert!(cache.join("db.cred").exists(), "a refusal is no revocation");
    no_plaintext(&cache, &[&o]);
}

#[test]
fn not_found_deletes_the_copy() {
    if !creds_work() {
        return;
    }
    let d = TempDir::new("cache-gone");
    let (cache, out) = (d.path("cache"), d.path("out"));
    let s = Server::serving(
        &[&format!("db={DB}"), &format!("api={API}")],
        &["--insecure"],
    );
    let port = s.port;
    assert_exit(
        &cached(port, "db api", &cache, &out, &["--offline-after", "1"]),
        0,
    );
    drop(s);
    // The server no longer has db: its copy goes, api's stays.
    let s = Server::builder()
        .port(port)
        .password()
        .secrets(&[&format!("api={API}")])
        .args(&["--insecure"])
        .start();
    let o = cached(port, "db", &cache, &out, &["--offline-after", "1"]);
    let err = assert_exit(&o, 1);
    assert!(err.contains("removed the cached copy of db"), "{err}");
    assert!(!cache.join("db.cred").exists());
    assert!(cache.join("api.cred").exists());
    drop(s);
    // And with the server down, db is no longer there to fall back on: the fetch keeps trying
    // the servers until its timeout, as without a cache ...
    let args = ["--offline-after", "1", "--timeout", "3"];
    let o2 = cached(port, "db", &cache, &out, &args);
    let err = assert_exit(&o2, 1);
    assert!(
        err.contains("the offline cache has no usable copy: there is none")
            && err.contains("trying the servers until the timeout")
            && err.contains("could not fetch secret \"db\""),
        "{err}"
    );
    // ... and gets the value from a server that comes up late.
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(2500));
        Server::builder()
            .port(port)
            .password()
            .secrets(&[&format!("db={DB}")])
            .args(&["--insecure"])
            .start()
    });
    let o3 = cached(
        port,
        "db",
        &cache,
        &out,
        &["--offline-after", "1", "--timeout", "15"],
    );
    let _s = late.join().unwrap();
    assert_exit(&o3, 0);
    assert_eq!(std::fs::read(&out).unwrap(), DB.as_bytes());
    assert!(cache.join("db.cred").exists(), "kept once fetched");
    no_plaintext(&cache, &[&o, &o2, &o3]);
}

#[test]
fn an_expired_copy_is_removed_a_fresh_one_used_an_aging_one_resealed() {
    if !creds_work() {
        return;
    }
    let d = TempDir::new("cache-age");
    let (cache, out) = (d.path("cache"), d.path("out"));
    std::fs::create_dir(&cache).unwrap();
    chmod(&cache, 0o700);
    let down = free_port();
    let max = [
        "--offline-after",
        "1",
        "--offline-max-age",
        "60",
        "--timeout",
        "3",
    ];
    // Sealed 61 s ago, 60 s allowed: not used, deleted.
    std::fs::write(cache.join("db.cred"), entry("db", DB, 61)).unwrap();
    let o = cached(down, "db", &cache, &out, &max);
    let err = assert_exit(&o, 1);
    assert!(
        err.contains("old, over --offline-max-age 1m 0s; it was deleted"),
        "{err}"
    );
    assert!(!cache.join("db.cred").exists());
    assert!(!out.exists());
    // Sealed 50 s ago: used, and its age is said.
    std::fs::write(cache.join("db.cred"), entry("db", DB, 50)).unwrap();
    let o2 = cached(down, "db", &cache, &out, &max);
    let err = assert_exit(&o2, 0);
    assert!(err.contains("using the offline cache's copy, 5"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), DB.as_bytes());
    // With the server up and the same value: a copy younger than a quarter of the maximum
    // age is left alone; an older one is sealed again with the new time.
    let s = Server::serving(&[&format!("db={DB}")], &["--insecure"]);
    std::fs::write(cache.join("db.cred"), entry("db", DB, 5)).unwrap();
    let ino = std::fs::metadata(cache.join("db.cred")).unwrap().ino();
    assert_exit(&cached(s.port, "db", &cache, &out, &max), 0);
    assert_eq!(std::fs::metadata(cache.join("db.cred")).unwrap().ino(), ino);
    std::fs::write(cache.join("db.cred"), entry("db", DB, 50)).unwrap();
    let ino = std::fs::metadata(cache.join("db.cred")).unwrap().ino();
    assert_exit(&cached(s.port, "db", &cache, &out, &max), 0);
    assert_ne!(std::fs::metadata(cache.join("db.cred")).unwrap().ino(), ino);
    drop(s);
    let o3 = cached(down, "db", &cache, &out, &max);
    let err = assert_exit(&o3, 0);
    assert!(
        ["0s", "1s", "2s"]
            .iter()
            .any(|a| err.contains(&format!("copy, {a} old"))),
        "{err}"
    );
    no_plaintext(&cache, &[&o, &o2, &o3]);
}

#[test]
fn tampered_foreign_and_misnamed_copies_are_refused() {
    if !creds_work() {
        return;
    }
    let d = TempDir::new("cache-tamper");
    let (cache, out) = (d.path("cache"), d.path("out"));
    let s = Server::serving(
        &[&format!("db={DB}"), &format!("api={API}")],
        &["--insecure"],
    );
    let port = s.port;
    assert_exit(
        &cached(port, "db api", &cache, &out, &["--offline-after", "1"]),
        0,
    );
    drop(s);
    let good = std::fs::read(cache.join("db.cred")).unwrap();
    let refused = |what: &str, bytes: &[u8], needle: &str| {
        std::fs::write(cache.join("db.cred"), bytes).unwrap();
        let _ = std::fs::remove_file(&out);
        let o = cached(
            port,
            "db",
            &cache,
            &out,
            &["--offline-after", "1", "--timeout", "3"],
        );
        let err = assert_exit(&o, 1);
        assert!(
            err.contains("db.cred does not open on this host under the name \"db\"")
                && err.contains(needle),
            "{what}: {err}"
        );
        assert!(!out.exists(), "{what}");
        no_plaintext(&cache, &[&o]);
    };
    // One character of the ciphertext changed.
    let mut flipped = good.clone();
    let i = flipped.len() - 10;
    flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
    refused("changed", &flipped, "systemd-creds decrypt failed");
    // api's copy in db's place: the sealed name differs.
    let api = std::fs::read(cache.join("api.cred")).unwrap();
    refused("api's copy", &api, "systemd-creds decrypt failed");
    // Sealed on another host (another host key).
    let k = d.path("other-host.secret");
    let foreign = seal_with(
        &[("SYSTEMD_CREDENTIAL_SECRET", k.to_str().unwrap())],
        "db",
        format!(
            "netsecrets-cache 1 {}\n{DB}",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs()
        )
        .as_bytes(),
    )
    .unwrap();
    refused("another host", &foreign, "systemd-creds decrypt failed");
    // Sealed properly, but not by netsecrets: no cache header.
    refused(
        "foreign content",
        &seal_with(&[], "db", DB.as_bytes()).unwrap(),
        "not a netsecrets cache entry",
    );
    // systemd's null key (no key at all): refused before systemd-creds is asked. The header's
    // key type is the first 16 bytes; base64 keeps whole groups of 3 bytes, so 18 bytes (24
    // characters) of "null" type and the rest of a real credential.
    let null = b"BYRp2vb1QySABUnaD46i+wAA";
    let mut forged = null.to_vec();
    forged.extend_from_slice(&good[24..]);
    refused("null key", &forged, "null key");
    // The real copy still works.
    std::fs::write(cache.join("db.cred"), &good).unwrap();
    assert_exit(
        &cached(port, "db", &cache, &out, &["--offline-after", "1"]),
        0,
    );
}

#[test]
fn missing_systemd_creds_and_a_loose_cache_directory_are_clear_errors() {
    let d = TempDir::new("cache-flags");
    let (cache, out) = (d.path("cache"), d.path("out"));
    let port = free_port();
    let o = cached(
        port,
        "db",
        &cache,
        &out,
        &["--systemd-creds", "/nonexistent/systemd-creds"],
    );
    let err = assert_exit(&o, 2);
    assert!(
        err.contains("--systemd-creds /nonexistent/systemd-creds: no such executable"),
        "{err}"
    );
    let o = Command::new(BIN)
        .args([
            "send",
            "--server",
            "127.0.0.1",
            "--insecure",
            "--password",
            PW,
        ])
        .args([
            "--request_secrets",
            "db",
            "--offline-cache",
            cache.to_str().unwrap(),
        ])
        .env("PATH", d.0.to_str().unwrap())
        .output()
        .unwrap();
    let err = assert_exit(&o, 2);
    assert!(err.contains("there is none on PATH"), "{err}");
    let o = fetch(port, "db", &["--offline-after", "5"]);
    let err = assert_exit(&o, 2);
    assert!(err.contains("need --offline-cache DIR"), "{err}");
    if !creds_work() {
        return;
    }
    std::fs::create_dir(&cache).unwrap();
    chmod(&cache, 0o755);
    let o = cached(port, "db", &cache, &out, &[]);
    let err = assert_exit(&o, 2);
    assert!(err.contains("mode 0755"), "{err}");
}
