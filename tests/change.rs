//! `send --file-output` as a refresh: a value that did not change leaves the file (inode,
//! timestamps) untouched and triggers nothing; a new or changed value is written and followed
//! by `systemctl --no-block try-restart` / `try-reload-or-restart` of the listed units;
//! `--start-unit` units are started after every successful fetch; a failed fetch triggers
//! nothing; a failing systemctl is a warning, not an error. systemctl is a script here that
//! records its arguments.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;

fn refresh(port: u16, out: &Path, systemctl: &str) -> std::process::Output {
    fetch(
        port,
        "db",
        &[
            "--file-output",
            out.to_str().unwrap(),
            "--mode",
            "0440",
            "--restart-unit",
            "app.service",
            "--restart-unit",
            "worker@1.service",
            "--reload-unit",
            "nginx.service",
            "--start-unit",
            "waiting.service",
            "--systemctl",
            systemctl,
            "--verbose",
        ],
    )
}

#[test]
fn unchanged_value_untouched_changed_value_restarts() {
    let d = TempDir::new("change");
    let (ctl, log) = fake_systemctl(&d, "systemctl-0", 0);
    let out = d.path("db");
    let restart = "--no-block try-restart -- app.service worker@1.service";
    let reload = "--no-block try-reload-or-restart -- nginx.service";
    let start = "--no-block start -- waiting.service";

    // First value: created, every action runs.
    let s1 = Server::serving(&["db=one"], &[]);
    let err = assert_exit(&refresh(s1.port, &out, &ctl), 0);
    assert!(err.contains("wrote 1 secret(s)"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"one");
    assert_eq!(calls(&log), [restart, reload, start]);

    // Same value again: file untouched, only the start (a no-op for running units).
    let before = std::fs::metadata(&out).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let err = assert_exit(&refresh(s1.port, &out, &ctl), 0);
    assert!(err.contains("left untouched"), "{err}");
    let after = std::fs::metadata(&out).unwrap();
    assert_eq!(
        (
            before.ino(),
            before.mtime(),
            before.mtime_nsec(),
            before.ctime_nsec()
        ),
        (
            after.ino(),
            after.mtime(),
            after.mtime_nsec(),
            after.ctime_nsec()
        )
    );
    assert_eq!(calls(&log), [restart, reload, start, start]);

    // The mode changed on disk (someone chmod'ed it): rewritten, actions run.
    chmod(&out, 0o400);
    assert_exit(&refresh(s1.port, &out, &ctl), 0);
    assert_eq!(mode(&out), 0o440);
    assert_eq!(calls(&log).len(), 7);
    drop(s1);

    // A new value on the server: replaced atomically, restart and reload follow. Compared with
    // the file it replaces, which still exists while the new one is created: an inode freed
    // earlier (by the rewrite above) may be handed out again.
    let replaced = std::fs::metadata(&out).unwrap().ino();
    let s2 = Server::serving(&["db=two"], &[]);
    assert_exit(&refresh(s2.port, &out, &ctl), 0);
    assert_eq!(std::fs::read(&out).unwrap(), b"two");
    assert_ne!(std::fs::metadata(&out).unwrap().ino(), replaced);
    assert_eq!(
        calls(&log)[7..],
        [restart.to_owned(), reload.to_owned(), start.to_owned()]
    );

    // A fetch that fails (name not served) writes nothing and runs nothing.
    let o = fetch(
        s2.port,
        "nope",
        &[
            "--file-output",
            out.to_str().unwrap(),
            "--restart-unit",
            "app.service",
            "--start-unit",
            "waiting.service",
            "--systemctl",
            &ctl,
            "--timeout",
            "2",
        ],
    );
    assert_exit(&o, 1);
    assert_eq!(std::fs::read(&out).unwrap(), b"two");
    assert_eq!(calls(&log).len(), 10);
}

#[test]
fn failing_or_missing_systemctl_is_a_warning() {
    let d = TempDir::new("ctlfail");
    let (ctl, log) = fake_systemctl(&d, "systemctl-3", 3);
    let s = Server::serving(&["db=v"], &[]);
    let out = d.path("db");
    let err = assert_exit(&refresh(s.port, &out, &ctl), 0);
    assert!(
        err.contains("warning:") && err.contains("try-restart"),
        "{err}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"v");
    assert_eq!(calls(&log).len(), 3, "every action is tried");

    std::fs::remove_file(&out).unwrap();
    let missing = d.path("no-such-systemctl");
    let err = assert_exit(&refresh(s.port, &out, missing.to_str().unwrap()), 0);
    assert!(err.contains("could not be run"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"v");
}

#[test]
fn change_actions_need_a_file_and_unit_names() {
    let o = run(&[
        "send",
        "--server",
        "127.0.0.1",
        "--request_secrets",
        "a",
        "--restart-unit",
        "app.service",
    ]);
    let err = assert_exit(&o, 2);
    assert!(err.contains("need --file-output"), "{err}");
    for bad in ["", "-x.service", "app", "a b.service"] {
        let o = run(&[
            "send",
            "--server",
            "127.0.0.1",
            "--request_secrets",
            "a",
            "--file-output",
            "/nonexistent/x",
            "--reload-unit",
            bad,
        ]);
        let err = assert_exit(&o, 2);
        assert!(err.contains("not a unit name"), "{bad:?}: {err}");
    }
}
