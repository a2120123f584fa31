//! `systemd-creds encrypt` / `decrypt`, run as a program (not reimplemented): the value goes
//! in through a pipe and comes out through one, so no plaintext ever touches a file.
//!
//! The program is started by `sys/spawn.rs` (fork + execv, not `std::process`: size); one
//! `poll` loop feeds its stdin and drains its stdout and stderr, so neither side can block on
//! a full pipe.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sys::spawn;

/// How long one `systemd-creds` call may take (a TPM2 can need seconds) before it is killed.
const WAIT: Duration = Duration::from_secs(60);
/// Largest output read from one call: systemd refuses credentials over 1 MiB plaintext
/// (`CREDENTIAL_SIZE_MAX`) plus 128 KiB of headers; base64 makes that 4/3 bigger.
pub const MAX_OUTPUT: usize = 2 << 20;
/// Largest plaintext `systemd-creds encrypt` takes.
pub const MAX_PLAIN: usize = 1 << 20;

/// The `null` key type in a credential's header: "sealed" with an empty key, so it proves
/// nothing about where it was made. Newer systemd versions decrypt such credentials when the
/// machine has no TPM2; a cache must never accept one (anybody could have written it).
const NULL_KEY: [u8; 16] = [
    0x05, 0x84, 0x69, 0xda, 0xf6, 0xf5, 0x43, 0x24, 0x80, 0x05, 0x49, 0xda, 0x0f, 0x8e, 0xa2, 0xfb,
];

/// A `systemd-creds` found on the machine.
pub struct Creds {
    exe: PathBuf,
}

impl Creds {
    /// `path` (from `--systemd-creds`), or `systemd-creds` looked up in `PATH`; an error that
    /// says what to install or pass when there is none.
    pub fn find(path: Option<&Path>) -> Result<Creds> {
        let exe = match path {
            Some(p) => p.to_path_buf(),
            None => std::env::var_os("PATH")
                .unwrap_or_default()
                .as_bytes()
                .split(|&b| b == b':')
                .filter(|d| !d.is_empty())
                .map(|d| Path::new(std::ffi::OsStr::from_bytes(d)).join("systemd-creds"))
                .find(|p| executable(p))
                .ok_or_else(|| {
                    Error::config(
                        "--offline-cache needs systemd-creds, and there is none on PATH: install systemd (252 or later) or name it with --systemd-creds PATH",
                    )
                })?,
        };
        if !executable(&exe) {
            return Err(Error::config(format!(
                "--systemd-creds {}: no such executable (--offline-cache seals with systemd-creds; give the path of systemd's systemd-creds)",
                exe.display()
            )));
        }
        Ok(Creds { exe })
    }

    /// Seals `plain` for this host under the credential name `name` (`--with-key=auto`: the
    /// TPM2 and the host key when there is a TPM2, the host key otherwise).
    pub fn encrypt(&self, name: &str, plain: &[u8]) -> std::result::Result<Vec<u8>, String> {
        self.call(
            &[
                "encrypt",
                &format!("--name={name}"),
                "--with-key=auto",
                "-",
                "-",
            ],
            plain,
        )
    }

    /// Opens what [`Creds::encrypt`] sealed; fails unless it was sealed on this host, with a
    /// real key, under the name `name`, and is unchanged.
    pub fn decrypt(&self, name: &str, sealed: &[u8]) -> std::result::Result<Vec<u8>, String> {
        if header_id(sealed).is_some_and(|id| id == NULL_KEY) {
            return Err(
                "it is sealed with the null key (no key at all): anybody could have written it"
                    .into(),
            );
        }
        self.call(&["decrypt", &format!("--name={name}"), "-", "-"], sealed)
    }

    fn call(&self, args: &[&str], input: &[u8]) -> std::result::Result<Vec<u8>, String> {
        let mut argv = vec![self.exe.as_os_str().as_bytes().to_vec()];
        argv.extend(args.iter().map(|a| a.as_bytes().to_vec()));
        let verb = args.first().copied().unwrap_or_default();
        let what = format!("{} {verb}", self.exe.display());
        match run(&argv, input) {
            Err(e) => Err(format!("{what} could not be run: {e}")),
            Ok(r) if r.status == Some(0) => Ok(r.stdout),
            Ok(r) => {
                // Its last stderr line says why (it never holds the value).
                let text = String::from_utf8_lossy(&r.stderr);
                let why = text
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("no message");
                Err(match r.status {
                    None => format!("{what} did not finish within {}s", WAIT.as_secs()),
                    Some(code) => format!("{what} failed (exit status {code}): {why}"),
                })
            }
        }
    }
}

fn executable(p: &Path) -> bool {
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a NUL-terminated path that lives for the call.
    let ok = unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0;
    ok && p.is_file()
}

/// The 16-byte key-type id that starts a credential (base64, maybe wrapped); `None` when the
/// text is too short or not base64 (then `systemd-creds` refuses it anyway).
fn header_id(sealed: &[u8]) -> Option<[u8; 16]> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = [0u8; 18];
    let mut len = 0;
    for &c in sealed.iter().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            *out.get_mut(len)? = (bits >> n) as u8;
            len += 1;
            if len == out.len() {
                break;
            }
        }
    }
    out.get(..16)?.try_into().ok().filter(|_| len >= 16)
}

/// How a program ended: its exit status (`None`: killed after [`WAIT`]), stdout, stderr.
struct Ran {
    status: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs `argv` (argv[0] a path) with `input` on its stdin, collecting stdout (at most
/// [`MAX_OUTPUT`]) and stderr (at most 64 KiB), killing it after [`WAIT`].
fn run(argv: &[Vec<u8>], input: &[u8]) -> io::Result<Ran> {
    // [read, write] pairs: stdin, stdout, stderr.
    let mut fds = [[-1 as libc::c_int; 2]; 3];
    for pair in fds.iter_mut() {
        // SAFETY: `pair` has room for two descriptors.
        if unsafe { libc::pipe2(pair.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            let e = io::Error::last_os_error();
            close_all(&fds);
            return Err(e);
        }
    }
    let [[in_r, in_w], [out_r, out_w], [err_r, err_w]] = fds;
    let started = spawn::spawn(argv, [in_r, out_w, err_w], spawn::Lookup::Path);
    close_all(&[[in_r, out_w], [err_w, -1]]);
    let pid = match started {
        Ok(pid) => pid,
        Err(e) => {
            close_all(&[[in_w, out_r], [err_r, -1]]);
            return Err(e);
        }
    };
    let until = Instant::now() + WAIT;
    let (stdout, stderr, done) = pump(in_w, out_r, err_r, input, until);
    if !done {
        // SAFETY: `pid` is our own child, not yet reaped, so the number is still its own.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let status = reap(pid, if done { until } else { Instant::now() + WAIT });
    Ok(Ran {
        status: status.filter(|_| done),
        stdout,
        stderr,
    })
}

fn close_all(fds: &[[libc::c_int; 2]]) {
    for &fd in fds.iter().flatten() {
        if fd >= 0 {
            // SAFETY: closing a descriptor this process opened.
            unsafe { libc::close(fd) };
        }
    }
}

/// Writes `input` to `w` and reads `out` and `err` until both end (closing all three); false
/// when `until` came first or the output grew over its cap.
fn pump(
    w: libc::c_int,
    out: libc::c_int,
    err: libc::c_int,
    input: &[u8],
    until: Instant,
) -> (Vec<u8>, Vec<u8>, bool) {
    let mut fds = [w, out, err];
    for &fd in &fds {
        // SAFETY: setting O_NONBLOCK on our own pipe ends.
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
    let mut bufs = [Vec::new(), Vec::new()];
    let mut written = 0;
    let mut ok = true;
    if input.is_empty() {
        close_all(&[[fds[0], -1]]);
        fds[0] = -1;
    }
    let mut chunk = [0u8; 16384];
    while fds[1] >= 0 || fds[2] >= 0 {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            ok = false;
            break;
        }
        let pollfd = |fd, events| libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        let [w, out, err] = fds;
        let mut pfd = [
            pollfd(w, libc::POLLOUT),
            pollfd(out, libc::POLLIN),
            pollfd(err, libc::POLLIN),
        ];
        let ms = left.as_millis().min(1000) as libc::c_int;
        // SAFETY: `pfd` holds `pfd.len()` initialised entries; negative fds are ignored.
        if unsafe { libc::poll(pfd.as_mut_ptr(), pfd.len() as libc::nfds_t, ms) } < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            ok = false;
            break;
        }
        for (i, p) in pfd.iter().enumerate() {
            if p.fd < 0 || p.revents == 0 {
                continue;
            }
            if i == 0 {
                let rest = input.get(written..).unwrap_or_default();
                // SAFETY: writing from a live slice of `rest.len()` bytes.
                let n = unsafe { libc::write(p.fd, rest.as_ptr().cast(), rest.len()) };
                if n > 0 {
                    written += n as usize;
                }
                let again = n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock;
                if written >= input.len() || (n <= 0 && !again) {
                    close_all(&[[p.fd, -1]]);
                    fds[0] = -1;
                }
                continue;
            }
            // SAFETY: reading into a live buffer of `chunk.len()` bytes.
            let n = unsafe { libc::read(p.fd, chunk.as_mut_ptr().cast(), chunk.len()) };
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock {
                continue;
            }
            let (buf, cap) = match i {
                1 => (&mut bufs[0], MAX_OUTPUT),
                _ => (&mut bufs[1], 64 << 10),
            };
            if n <= 0 {
                close_all(&[[p.fd, -1]]);
                fds[i] = -1;
                continue;
            }
            buf.extend_from_slice(chunk.get(..n as usize).unwrap_or_default());
            if buf.len() > cap {
                ok = false;
            }
        }
        if !ok {
            break;
        }
    }
    close_all(&[[fds[0], fds[1]], [fds[2], -1]]);
    let [o, e] = bufs;
    (o, e, ok)
}

/// Waits for `pid` until `until` (then kills it and waits once more); its exit status, a
/// signal as 128 + its number; `None` if it could not be reaped in time.
fn reap(pid: libc::pid_t, until: Instant) -> Option<i32> {
    match spawn::wait_until(pid, until) {
        spawn::Ended::Status(code) => Some(code),
        spawn::Ended::Lost => None,
        spawn::Ended::Running => {
            let mut status = 0;
            // SAFETY: our own unreaped child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_ids_are_read_from_wrapped_base64() {
        // The first 16 bytes of a credential sealed with the host key (systemd 252).
        let host = b"Whxqht+dQJax1aZeCGLxmiAAAAABAAAADAAAABAAAAAr";
        assert_eq!(
            header_id(host),
            Some([
                0x5a, 0x1c, 0x6a, 0x86, 0xdf, 0x9d, 0x40, 0x96, 0xb1, 0xd5, 0xa6, 0x5e, 0x08, 0x62,
                0xf1, 0x9a
            ])
        );
        assert_eq!(header_id(b"Whxqht+dQJ\nax1aZeCGLxmiAA"), header_id(host));
        assert_eq!(header_id(b"BYRp2vb1QySABUnaD46i+wAA"), Some(NULL_KEY));
        assert_eq!(header_id(b"short"), None);
        assert_eq!(header_id(b"!!!!"), None);
    }

    #[test]
    fn runs_a_program_with_big_input_and_output_through_pipes() {
        // cat echoes 3 MiB... capped at MAX_OUTPUT: more than the cap is a failure, not a hang.
        let cat = b"/bin/cat".to_vec();
        let small = vec![7u8; 300_000];
        let r = run(std::slice::from_ref(&cat), &small).unwrap();
        assert_eq!((r.status, r.stdout.len()), (Some(0), small.len()));
        let big = vec![1u8; MAX_OUTPUT + 100_000];
        let r = run(std::slice::from_ref(&cat), &big).unwrap();
        assert_eq!(r.status, None);
        let e = run(&[b"/nonexistent/systemd-creds".to_vec()], b"")
            .err()
            .unwrap();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
