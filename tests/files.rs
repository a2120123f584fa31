//! `send --file-output`: several secrets in one file, mode and owner, atomic replacement by
//! rename, binary values, created directories, and an old file left intact (with no leftovers)
//! by every kind of failure.

mod common;

use std::os::unix::fs::MetadataExt;

use common::*;

#[test]
fn multi_secret_output_stdout_and_file() {
    let d = TempDir::new("multi");
    let s = Server::serving(&["a=first", "b=second", "c=third value"], &[]);
    let o = fetch(s.port, "a b,c", &[]);
    assert_eq!(stdout(&o), "first\nsecond\nthird value\n");
    let out = d.path("all");
    let o = send(
        s.port,
        &[
            "--password",
            PW,
            "--request-secrets",
            "a,c",
            "--file-output",
            out.to_str().unwrap(),
        ],
    );
    assert_exit(&o, 0);
    assert_eq!(std::fs::read(&out).unwrap(), b"first\nthird value");
    assert_eq!(mode(&out), 0o400);
}

#[test]
fn file_output_mode_atomic_replacement_and_no_leftovers() {
    let d = TempDir::new("atomic");
    let src = format!("bin={}", d.write("src", b"\x00\xff\nraw"));
    let s = Server::serving(&["db=new-value"], &["--secret-file", &src]);
    let out = d.path("db");
    std::fs::write(&out, "old").unwrap();
    let ino = std::fs::metadata(&out).unwrap().ino();
    let o = fetch(
        s.port,
        "db",
        &[
            "--file-output",
            out.to_str().unwrap(),
            "--mode",
            "0440",
            "--owner",
            "0",
            "--group",
            "root",
        ],
    );
    assert_exit(&o, 0);
    assert_eq!(std::fs::read(&out).unwrap(), b"new-value");
    assert_eq!(mode(&out), 0o440);
    assert_ne!(
        std::fs::metadata(&out).unwrap().ino(),
        ino,
        "replaced by rename, not rewritten in place"
    );
    assert_eq!(d.entries(), ["db", "src"]);
    // Binary values from --secret-file arrive byte for byte; a missing output directory is
    // created.
    for (name, path, want) in [
        ("bin", d.path("bin"), &b"\x00\xff\nraw"[..]),
        ("db", d.path("sub/dir/x"), &b"new-value"[..]),
    ] {
        let o = fetch(s.port, name, &["--file-output", path.to_str().unwrap()]);
        assert_exit(&o, 0);
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }
}

#[test]
fn old_file_intact_after_every_failure_kind() {
    let d = TempDir::new("intact");
    let s = Server::serving(&["db=v"], &["--encryption-key", "k", "--max-failures", "0"]);
    let out = d.path("db");
    std::fs::write(&out, "precious").unwrap();
    let o_s = out.to_str().unwrap();
    let port = s.port.to_string();
    let down = free_port().to_string();
    let send_to = |port: &str, password: &str, key: &str, names: &str, extra: &[&str]| {
        let mut a = vec![
            "send",
            "--server",
            "127.0.0.1",
            "--port",
            port,
            "--password",
            password,
            "--encryption-key",
            key,
            "--request_secrets",
            names,
            "--file-output",
            o_s,
        ];
        a.extend_from_slice(extra);
        run(&a)
    };
    // A wrong password, a wrong key, no server.
    for (port, password, key) in [
        (&port, "wrong", "k"),
        (&port, PW, "other"),
        (&down, PW, "k"),
    ] {
        let o = send_to(port, password, key, "db", &["--timeout", "1"]);
        let c = (port, password, key);
        assert_eq!(o.status.code(), Some(1), "{c:?}: {}", stderr(&o));
        assert_eq!(std::fs::read(&out).unwrap(), b"precious", "{c:?}");
    }
    // One of two names missing: nothing is written.
    let o = send_to(&port, PW, "k", "db missing", &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    // An unknown owner is a usage error before anything is fetched.
    let o = send_to(&port, PW, "k", "db", &["--owner", "no-such-user-xyz"]);
    let err = assert_exit(&o, 2);
    assert!(err.contains("no such user"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    assert_eq!(d.entries(), ["db"], "no temporary files left");
}

/// `--mode` with setuid, setgid or sticky bits used to write e.g. a setuid, world-writable
/// secret file (6777); now it is a usage error before anything is fetched, and the old file is
/// untouched. A world-writable mode is written as asked, with a warning.
#[test]
fn mode_refuses_special_bits_and_warns_on_world_writable() {
    let d = TempDir::new("mode");
    let s = Server::serving(&["db=v"], &[]);
    let out = d.path("db");
    std::fs::write(&out, "precious").unwrap();
    let o_s = out.to_str().unwrap();
    for m in ["6777", "4400", "2440", "1600", "7000"] {
        let o = fetch(s.port, "db", &["--file-output", o_s, "--mode", m]);
        let err = assert_exit(&o, 2);
        assert!(
            err.contains(&format!("invalid --mode \"{m}\"")) && err.contains("setuid"),
            "{m}: {err}"
        );
        assert_eq!(std::fs::read(&out).unwrap(), b"precious", "{m}");
    }
    assert_eq!(
        s.log().matches("outcome=").count(),
        0,
        "nothing was fetched"
    );
    let o = fetch(s.port, "db", &["--file-output", o_s, "--mode", "0666"]);
    let err = assert_exit(&o, 0);
    assert!(
        err.contains("warning: --mode 0666 lets every user change the secret file"),
        "{err}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"v");
    assert_eq!(mode(&out), 0o666);
    let o = fetch(s.port, "db", &["--file-output", o_s, "--mode", "0644"]);
    assert!(!stderr(&o).contains("--mode"), "{}", stderr(&o));
}

/// When syncing the directory fails *after* the rename, the new value is already in place:
/// `send` used to exit 1 saying the old file was left as it was. Now it says the new value is
/// in place, warns that it may not survive a crash, and exits 0 (an exit other than 0 keeps
/// meaning "the old file is untouched"). The directory is write-and-search only (0300) for the
/// user that runs `send` (nobody, when the test runs as root), so the rename works and opening
/// the directory to sync it does not.
#[test]
fn directory_sync_failure_after_rename_tells_the_truth() {
    use std::os::unix::process::CommandExt;
    let d = TempDir::new("dirsync");
    let s = Server::serving(&["db=new-value"], &[]);
    let dir = d.path("wx");
    std::fs::create_dir(&dir).unwrap();
    let out = dir.join("db");
    std::fs::write(&out, "old").unwrap();
    // SAFETY: getuid has no preconditions.
    let root = unsafe { libc::getuid() } == 0;
    if root {
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        std::os::unix::fs::chown(&out, Some(65534), Some(65534)).unwrap();
    }
    chmod(&dir, 0o300);
    let port = s.port.to_string();
    let mut cmd = std::process::Command::new(BIN);
    cmd.args([
        "send",
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--password",
        PW,
    ])
    .args([
        "--request_secrets",
        "db",
        "--file-output",
        out.to_str().unwrap(),
    ])
    .stdin(std::process::Stdio::null());
    if root {
        cmd.uid(65534).gid(65534);
    }
    let o = cmd.output().unwrap();
    chmod(&dir, 0o700);
    let err = assert_exit(&o, 0);
    assert_eq!(std::fs::read(&out).unwrap(), b"new-value");
    assert!(!err.contains("left as it was"), "{err}");
    assert!(
        err.contains(&format!(
            "warning: wrote {} (the new value is in place), but syncing its directory failed",
            out.display()
        )),
        "{err}"
    );
}

/// The attack on `--file-output` through a directory: a user who owns a directory on the
/// path (here `home`, owned by nobody) replaces the subdirectory the secret went into with a
/// symlink to a directory of root's (`victim`) between two fetches. `send` (root) used to
/// follow it and create the secret file there, owned by whoever `--owner` names; now it
/// refuses, naming the symlink, and writes nothing anywhere. A symlink in a directory only
/// root can change is still followed.
#[test]
fn symlink_swapped_in_for_a_directory_is_not_followed() {
    if !root_or_skip("needs root (the attack needs a directory owned by another user)") {
        return;
    }
    let d = TempDir::new("swap");
    let s = Server::serving(&["db=value"], &[]);
    let home = d.path("home");
    let victim = d.path("victim");
    std::fs::create_dir_all(home.join("app")).unwrap();
    std::fs::create_dir(&victim).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let out = home.join("app/db");
    let args = |p: &std::path::Path| {
        vec![
            "--file-output".to_owned(),
            p.to_str().unwrap().to_owned(),
            "--owner".into(),
            "65534".into(),
        ]
    };
    let a = args(&out);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    assert_exit(&fetch(s.port, "db", &a), 0);
    assert_eq!(std::fs::read(&out).unwrap(), b"value");
    // The user swaps the directory for a symlink (they own `home`, so they may).
    std::fs::rename(home.join("app"), home.join("old")).unwrap();
    std::os::unix::fs::symlink(&victim, home.join("app")).unwrap();
    let o = fetch(s.port, "db", &a);
    let err = assert_exit(&o, 1);
    assert!(
        err.contains(&format!(
            "{} is a symlink in a directory that users other than root may change",
            home.join("app").display()
        )),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&victim).unwrap().count(),
        0,
        "a file was created where the user's symlink points"
    );
    // A symlink root placed in root's own directory (mode 0755) is followed.
    let link = d.path("link");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let a = args(&link.join("db"));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    assert_exit(&fetch(s.port, "db", &a), 0);
    assert_eq!(std::fs::read(victim.join("db")).unwrap(), b"value");
}

/// `send` says on stderr which directories it created (mode 0751), and a file where a
/// directory should be is an error naming that file (it used to be `File exists (os error 17)`).
#[test]
fn created_directories_are_said_and_a_file_in_the_way_is_named() {
    let d = TempDir::new("mkdirs");
    let s = Server::serving(&["db=value"], &[]);
    let out = d.path("a/b/db");
    let o = fetch(s.port, "db", &["--file-output", out.to_str().unwrap()]);
    let err = assert_exit(&o, 0);
    for dir in [d.path("a"), d.path("a/b")] {
        assert!(
            err.contains(&format!(
                "created the directory {} (mode 0751)",
                dir.display()
            )),
            "{err}"
        );
        assert_eq!(mode(&dir), 0o751);
    }
    assert_eq!(std::fs::read(&out).unwrap(), b"value");
    std::fs::write(d.path("file"), "x").unwrap();
    let o = fetch(
        s.port,
        "db",
        &["--file-output", d.path("file/sub/db").to_str().unwrap()],
    );
    let err = assert_exit(&o, 1);
    assert!(
        err.contains(&format!(
            "{} is not a directory (a file is in the way",
            d.path("file").display()
        )),
        "{err}"
    );
    assert!(!err.contains("os error 17"), "{err}");
}
