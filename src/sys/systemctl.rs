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
//! systemctl is started by `sys/spawn.rs` (fork + execvp, not `std::process`: size).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::sys::log;
use crate::sys::output::Saved;
use crate::sys::spawn;

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
/// `/dev/null`, the same stdout and stderr.
fn spawn(argv: &[Vec<u8>]) -> std::io::Result<libc::pid_t> {
    // SAFETY: opening /dev/null with a NUL-terminated literal path.
    let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    let started = spawn::spawn(argv, [null, -1, -1], spawn::Lookup::Search);
    if null >= 0 {
        // SAFETY: the descriptor opened above; the child has its own copy.
        unsafe { libc::close(null) };
    }
    started
}

/// The exit status of `pid` within [`WAIT`] (a signal counts as 128 + its number); `None`
/// when it still runs then (it is left running).
fn wait(pid: libc::pid_t) -> Option<i32> {
    match spawn::wait_until(pid, Instant::now() + WAIT) {
        spawn::Ended::Status(code) => Some(code),
        spawn::Ended::Lost => Some(-1),
        spawn::Ended::Running => None,
    }
}
