//! `netsecrets credentials`: serves secrets to systemd's `LoadCredential=ID:SOCKET` over an
//! AF_UNIX stream socket, so that a value exists only in `/run/credentials/<unit>/` of the
//! units allowed to have it.
//!
//! systemd (systemd.exec(5), `LoadCredential=`) connects to the socket from an abstract
//! address `\0<random>/unit/<unit>/<id>`, reads until end of file and stores what it read as
//! the credential `<id>` of `<unit>`. On each connection this reads that address with
//! `getpeername`, checks that the peer is root (only PID 1's side may ask; anyone else could
//! bind an address naming any unit), that the peer process runs in the control group of the
//! unit its address names ([`in_unit_cgroup`]), and that `--allow ID=UNIT,...` lists the unit
//! for that secret, fetches the value from the netsecrets server on demand (nothing is kept between
//! connections, nothing written to disk), writes it and closes. Anything else (a unit not
//! listed, a secret that cannot be fetched, a peer that is not root) is refused with more
//! bytes than systemd accepts for a credential ([`refuse`]): systemd then fails to load the
//! credential and the unit does not start.
//!
//! The socket is the one systemd passes (`LISTEN_FDS`, socket activation) or `--socket PATH`,
//! bound here with mode 0600. Connections are served on their own threads, at most
//! [`MAX_AT_ONCE`] at a time (more are refused).

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::cli::CredentialsArgs;
use crate::client::config::{self, ClientConfig};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::keys;
use crate::sys::{log, notify};
use crate::wire::protocol::SecretName;

/// Connections served at once.
pub const MAX_AT_ONCE: usize = 64;

/// Which units may load which secret: secret name, unit names (`--allow`, in order).
type Allowed = Vec<(SecretName, Vec<String>)>;

pub fn credentials(args: CredentialsArgs) -> Result<()> {
    let password = keys::password(args.fetch.net.password.as_ref(), true)?;
    let cfg = Arc::new(config::client(&args.fetch, password)?);
    let allowed = Arc::new(args.allow);
    let listener = listener(args.socket.as_deref())?;
    log::line(&format!(
        "serving {} credential(s) on {}",
        allowed.len(),
        args.socket.as_deref().map_or_else(
            || "the socket systemd passed".to_owned(),
            |p| p.display().to_string()
        )
    ));
    notify::notify("READY=1");
    let busy = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) => {
                log::line(&format!("credentials: accept failed: {e}"));
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
        };
        if busy.fetch_add(1, Ordering::SeqCst) >= MAX_AT_ONCE {
            busy.fetch_sub(1, Ordering::SeqCst);
            log::line("credentials: too many requests at once; refused");
            refuse(stream);
            continue;
        }
        let (cfg, allowed, done) = (Arc::clone(&cfg), Arc::clone(&allowed), Arc::clone(&busy));
        let spawned = std::thread::Builder::new()
            .name("credential".into())
            .spawn(move || {
                serve(stream, &cfg, &allowed);
                done.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            busy.fetch_sub(1, Ordering::SeqCst);
            log::line(&format!("credentials: cannot start a thread: {e}"));
        }
    }
}

/// The socket systemd passed (`LISTEN_PID` is this process, `LISTEN_FDS` >= 1: descriptor 3),
/// else `path` bound here.
fn listener(path: Option<&Path>) -> Result<UnixListener> {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let fds = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    if ours && fds >= 1 {
        // SAFETY: systemd passed descriptor 3 (SD_LISTEN_FDS_START) open to this process, as
        // LISTEN_PID and LISTEN_FDS say; nothing else in the program owns it.
        let l = unsafe { UnixListener::from_raw_fd(3) };
        // Descriptors 3.. must not leak into children (there are none, but be exact).
        // SAFETY: fcntl on a descriptor this process owns.
        unsafe { libc::fcntl(l.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
        return Ok(l);
    }
    let Some(path) = path else {
        return Err(Error::usage(
            "no socket: give --socket PATH, or start it from a .socket unit (LISTEN_FDS)",
        ));
    };
    // A socket left by an earlier run is replaced; anything else at the path is not.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(Error::config(format!(
                "--socket {}: something other than a socket is there; remove it or choose another path",
                path.display()
            )));
        }
        let _ = std::fs::remove_file(path);
    }
    // Owner-only from the start: only root (systemd) may connect.
    // SAFETY: umask only changes this process's file creation mask.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    bound.map_err(|e| {
        Error::config(format!(
            "--socket {}: cannot listen there (does the directory exist?)",
            path.display()
        ))
        .with_io(e)
    })
}

/// What systemd's address says: `(unit, credential id)`.
pub fn parse_peer(addr: &[u8]) -> Option<(&str, &str)> {
    let addr = std::str::from_utf8(addr).ok()?;
    let (_random, rest) = addr.split_once('/')?;
    let rest = rest.strip_prefix("unit/")?;
    let (unit, id) = rest.rsplit_once('/')?;
    (!unit.is_empty() && !id.is_empty() && !unit.contains('/')).then_some((unit, id))
}

fn serve(stream: UnixStream, cfg: &ClientConfig, allowed: &Allowed) {
    let peer = stream.peer_addr().ok();
    let abstract_name = peer.as_ref().and_then(|a| {
        use std::os::linux::net::SocketAddrExt;
        a.as_abstract_name().map(<[u8]>::to_vec)
    });
    let Some((unit_raw, id_raw)) = abstract_name.as_deref().and_then(parse_peer) else {
        log::line("credentials: refused a connection without systemd's unit/credential address");
        return refuse(stream);
    };
    // Names from the peer are logged escaped: a newline in them must not start a new line.
    let (unit, id) = (escape(unit_raw), escape(id_raw));
    let cred = peer_cred(&stream);
    let uid = cred.map(|c| c.uid);
    if uid != Some(0) {
        log::line(&format!(
            "credentials: refused {id} for {unit}: the peer is not root (uid {uid:?}), not systemd"
        ));
        return refuse(stream);
    }
    let pid = cred.map_or(0, |c| c.pid);
    if let Err(why) = in_unit_cgroup(pid, unit_raw) {
        log::line(&format!(
            "credentials: refused {id} for {unit}: the peer (pid {pid}) {why}, so it is not systemd loading that unit's credentials"
        ));
        return refuse(stream);
    }
    let allowed_here = allowed
        .iter()
        .find(|(name, units)| name.as_str() == id_raw && units.iter().any(|u| u == unit_raw));
    let Some((name, _)) = allowed_here else {
        log::line(&format!(
            "credentials: refused {id} for {unit}: not allowed (--allow {id}=... does not list it)"
        ));
        return refuse(stream);
    };
    let started = Instant::now();
    match Client::new(cfg).fetch(name, started + cfg.timeout) {
        Ok(value) => {
            let mut s = &stream;
            match s.write_all(&value).and_then(|()| s.flush()) {
                Ok(()) => log::line(&format!("credentials: sent {id} to {unit}")),
                Err(e) => log::line(&format!("credentials: sending {id} to {unit} failed: {e}")),
            }
        }
        Err(e) => {
            log::line(&format!(
                "credentials: {id} for {unit} could not be fetched, refused: {e}"
            ));
            refuse(stream);
        }
    }
}

/// `s` for a log line: printable ASCII as it is, anything else (a newline, a quote, bytes
/// beyond ASCII) as `\xNN`, so that a peer cannot forge or split log lines.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_graphic() && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Whether process `pid` runs in the control group of `unit`. systemd loads a unit's
/// credentials in the process it forked for the unit, after moving it into the unit's control
/// group and before anything of the unit runs (exec-invoke.c: `cg_attach_everywhere`, then
/// `exec_setup_credentials`); a process elsewhere that binds the same kind of address (any
/// root process can) is refused. The unit's group is the first component of the path (in the
/// `name=systemd` hierarchy when there is one, else cgroup v2's) after the slices, so that
/// subgroups of the unit (`Delegate=`, `.control`) count as the unit. What this cannot tell
/// apart: a process that may move itself into that group (root with write access to the
/// cgroup file system) and the unit's own processes once they run.
pub fn in_unit_cgroup(pid: i32, unit: &str) -> std::result::Result<(), String> {
    use std::io::Read;
    if pid <= 0 {
        return Err("has no process id".to_owned());
    }
    let mut text = String::new();
    std::fs::File::open(format!("/proc/{pid}/cgroup"))
        .and_then(|f| f.take(64 << 10).read_to_string(&mut text))
        .map_err(|e| format!("cannot be looked up in /proc/{pid}/cgroup ({e})"))?;
    let path = cgroup_path(&text).ok_or("has no control group in /proc/PID/cgroup".to_owned())?;
    match unit_of_cgroup(path) {
        Some(u) if u == unit => Ok(()),
        _ => Err(format!("runs in the control group {}", escape(path))),
    }
}

/// The unit part of a `/proc/PID/cgroup` text: the `name=systemd` line's path (systemd's own
/// hierarchy in a legacy or hybrid set-up), else the cgroup v2 (`0::`) line's.
pub fn cgroup_path(text: &str) -> Option<&str> {
    let line = |want: &dyn Fn(&str) -> bool| {
        text.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            want(ctrl).then_some(path)
        })
    };
    line(&|c| c == "name=systemd").or_else(|| line(&|c| c.is_empty()))
}

/// The unit a control group path belongs to: its first component that is not a slice.
pub fn unit_of_cgroup(path: &str) -> Option<&str> {
    path.split('/')
        .filter(|c| !c.is_empty())
        .find(|c| !c.ends_with(".slice"))
}

/// The peer's credentials (`SO_PEERCRED`: uid and pid as they were at `connect`).
fn peer_cred(stream: &UnixStream) -> Option<libc::ucred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a writable ucred and `len` its size, as SO_PEERCRED expects.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(cred)
}

/// More than systemd reads for one credential (1 MiB in systemd 255: `CREDENTIAL_SIZE_MAX`,
/// read with `READ_FULL_FILE_FAIL_WHEN_LARGER`), with a wide margin.
pub const REFUSAL_BYTES: usize = 16 << 20;

/// Refuses a request so that systemd cannot load the credential and the unit does not start.
/// An AF_UNIX stream has no reset (`SO_LINGER` 0 does nothing there) and a plain close would
/// give the unit an empty credential; so the answer is zeros, more than systemd accepts for one
/// credential: its read fails (`E2BIG`), it closes, and the writes here stop (`EPIPE`).
fn refuse(stream: UnixStream) {
    // On the stack: a zeroed `static` would sit in the binary's read-only data (64 KiB once).
    let zeros = [0u8; 8192];
    let _ = stream.set_write_timeout(Some(std::time::Duration::from_secs(10)));
    let mut s = &stream;
    let mut sent = 0;
    while sent <= REFUSAL_BYTES {
        match s.write(&zeros) {
            Ok(n) if n > 0 => sent += n,
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{cgroup_path, escape, parse_peer, unit_of_cgroup};

    #[test]
    fn the_unit_of_a_control_group() {
        let v2 = "0::/system.slice/app.service\n";
        assert_eq!(cgroup_path(v2), Some("/system.slice/app.service"));
        let hybrid = "12:memory:/x\n1:name=systemd:/system.slice/system-app.slice/app@1.service\n0::/other\n";
        assert_eq!(
            cgroup_path(hybrid),
            Some("/system.slice/system-app.slice/app@1.service")
        );
        assert_eq!(cgroup_path("3:cpu:/\n"), None);
        for (path, unit) in [
            ("/system.slice/app.service", Some("app.service")),
            (
                "/system.slice/system-app.slice/app@1.service",
                Some("app@1.service"),
            ),
            ("/system.slice/app.service/.control", Some("app.service")),
            ("/init.scope", Some("init.scope")),
            (
                "/user.slice/user-0.slice/session-1.scope",
                Some("session-1.scope"),
            ),
            ("/", None),
        ] {
            assert_eq!(unit_of_cgroup(path), unit, "{path}");
        }
    }

    #[test]
    fn peer_names_are_escaped_for_the_log() {
        assert_eq!(escape("app.service"), "app.service");
        assert_eq!(escape("a\nb c\\"), "a\\x0ab\\x20c\\x5c");
    }

    #[test]
    fn systemd_peer_addresses() {
        assert_eq!(
            parse_peer(b"8f3a1c2b9d0e4f51/unit/postgresql.service/db-password"),
            Some(("postgresql.service", "db-password"))
        );
        assert_eq!(
            parse_peer(b"1/unit/app@x.service/k"),
            Some(("app@x.service", "k"))
        );
        for bad in [
            &b"1/unit/only"[..],
            b"1/units/a.service/k",
            b"no-slash",
            b"1/unit//k",
            b"1/unit/a.service/",
            b"1/unit/a/b/k",
            b"\xff/unit/a.service/k",
        ] {
            assert_eq!(parse_peer(bad), None, "{bad:?}");
        }
    }
}
