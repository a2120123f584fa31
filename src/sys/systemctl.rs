//! Change actions: after a secret (or a rendered file) was written, ask systemd to restart,
//! reload or start the units that use it, through `systemctl --no-block`, so that the jobs are
//! queued and nothing waits for them (a fetch unit that waited for a unit ordered after it
//! would deadlock the boot).
//!
//! What to do follows [`Saved`]: `try-restart` and `try-reload-or-restart` only when the file
//! was written (created or changed; `try-` leaves stopped units stopped), `start` after every
//! successful fetch (the units that were waiting for the secret; a no-op for running ones). A
//! failed action is a warning: the new value is already in place, so it is not an error.
//!
//! systemctl is started with fork + execvp through libc, not `std::process`, which would add
//! tens of KiB to the static binary (measured: see the commit that made the change).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::sys::log;
use crate::sys::output::Saved;

/// The default `systemctl`, found through `PATH`.
pub const SYSTEMCTL: &str = "systemctl";

/// How long one `systemctl --no-block` call may take before it is left running.
const WAIT: Duration = Duration::from_secs(10);

/// The units to act on when a file changes, and the `systemctl` to do it with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actions {
    /// `--systemctl PATH`; `None` is [`SYSTEMCTL`].
    pub systemctl: Option<PathBuf>,
    /// `--restart-unit U`: `try-restart` when the file was written.
    pub restart: Vec<String>,
    /// `--reload-unit U`: `try-reload-or-restart` when the file was written.
    pub reload: Vec<String>,
    /// `--start-unit U`: `start` after every successful fetch.
    pub start: Vec<String>,
}

impl Actions {
    pub fn is_empty(&self) -> bool {
        self.restart.is_empty() && self.reload.is_empty() && self.start.is_empty()
    }

    /// Runs the actions `saved` calls for; `what` names the file in log lines. Returns false
    /// when an action failed (each failure was logged as a warning).
    pub fn after(&self, saved: Saved, what: &str) -> bool {
        let mut ok = true;
        if saved.written() {
            ok &= self.run("try-restart", &self.restart, what);
            ok &= self.run("try-reload-or-restart", &self.reload, what);
        }
        ok &= self.run("start", &self.start, what);
        ok
    }

    /// `systemctl --no-block VERB UNITS...`, waited for at most [`WAIT`].
    fn run(&self, verb: &str, units: &[String], what: &str) -> bool {
        if units.is_empty() {
            return true;
        }
        let exe = self
            .systemctl
            .clone()
            .unwrap_or_else(|| PathBuf::from(SYSTEMCTL));
        let list = units.join(" ");
        log::line(&format!("{what}: systemctl {verb} {list}"));
        let mut argv = vec![exe.as_os_str().as_encoded_bytes().to_vec()];
        argv.extend([
            b"--no-block".to_vec(),
            verb.as_bytes().to_vec(),
            b"--".to_vec(),
        ]);
        argv.extend(units.iter().map(|u| u.as_bytes().to_vec()));
        let status = match spawn(&argv) {
            Ok(pid) => wait(pid),
            Err(e) => {
                log::line(&format!(
                    "warning: {what} is in place, but {} could not be run to {verb} {list}: {e}",
                    exe.display()
                ));
                return false;
            }
        };
        match status {
            Some(0) => true,
            Some(code) => {
                log::line(&format!(
                    "warning: {what} is in place, but `systemctl {verb} {list}` failed (exit status {code})"
                ));
                false
            }
            None => {
                log::line(&format!(
                    "warning: `systemctl {verb} {list}` did not finish within {}s; not waiting for it",
                    WAIT.as_secs()
                ));
                true
            }
        }
    }
}

/// Starts `argv[0]` (looked up in `PATH` when it has no `/`) with `argv`, stdin on
/// `/dev/null`, the same stdout and stderr. fork + execvp through libc: `std::process` would
/// add tens of KiB to the static binary. An exec failure is reported through a close-on-exec
/// pipe, so a missing program is an error here, not an exit status.
fn spawn(argv: &[Vec<u8>]) -> std::io::Result<libc::pid_t> {
    use std::ffi::CString;
    let args: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.clone()))
        .collect::<Result<_, _>>()
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in an argument"))?;
    let mut ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let Some(prog) = ptrs.first().copied() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no program",
        ));
    };
    let mut pipe = [0 as libc::c_int; 2];
    // SAFETY: `pipe` has room for two descriptors.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let [rd, wr] = pipe;
    // SAFETY: opening /dev/null with a NUL-terminated literal path.
    let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    // SAFETY: the child only calls async-signal-safe functions (dup2, execvp, write, _exit) on
    // memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: as above; the child never returns from this block.
        unsafe {
            if null >= 0 {
                libc::dup2(null, 0);
            }
            // Rust starts with SIGPIPE ignored, and exec keeps that; systemctl expects the default.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::execvp(prog, ptrs.as_ptr());
            let err = *libc::__errno_location();
            libc::write(
                wr,
                (&err as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>(),
            );
            libc::_exit(127);
        }
    }
    let fork_err = std::io::Error::last_os_error();
    // SAFETY: closing descriptors this process opened above.
    unsafe {
        libc::close(wr);
        if null >= 0 {
            libc::close(null);
        }
    }
    if pid < 0 {
        // SAFETY: as above.
        unsafe { libc::close(rd) };
        return Err(fork_err);
    }
    let mut err: libc::c_int = 0;
    // SAFETY: reading at most one c_int into `err`; the read end closes after.
    let n = unsafe {
        let n = libc::read(
            rd,
            (&mut err as *mut libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>(),
        );
        libc::close(rd);
        n
    };
    if n > 0 {
        wait(pid);
        return Err(std::io::Error::from_raw_os_error(err));
    }
    Ok(pid)
}

/// The exit status of `pid` within [`WAIT`] (a signal counts as 128 + its number); `None`
/// when it still runs then (it is left running).
fn wait(pid: libc::pid_t) -> Option<i32> {
    let until = Instant::now() + WAIT;
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child; `status` is writable.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Some(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            });
        }
        if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Some(-1);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
