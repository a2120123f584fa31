//! Change actions: after a secret (or a rendered file) was written, ask systemd to restart,
//! reload or start the units that use it, through `systemctl --no-block`, so that the jobs are
//! queued and nothing waits for them (a fetch unit that waited for a unit ordered after it
//! would deadlock the boot).
//!
//! What to do follows [`Saved`]: `try-restart` and `try-reload-or-restart` only when the file
//! was written (created or changed; `try-` leaves stopped units stopped), `start` after every
//! successful fetch (the units that were waiting for the secret; a no-op for running ones). A
//! failed action is a warning: the new value is already in place, so it is not an error.

use std::path::PathBuf;
use std::process::{Command, Stdio};
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
        let child = Command::new(&exe)
            .arg("--no-block")
            .arg(verb)
            .arg("--")
            .args(units)
            .stdin(Stdio::null())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                log::line(&format!(
                    "warning: {what} is in place, but {} could not be run to {verb} {list}: {e}",
                    exe.display()
                ));
                return false;
            }
        };
        let until = Instant::now() + WAIT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return true,
                Ok(Some(status)) => {
                    log::line(&format!(
                        "warning: {what} is in place, but `systemctl {verb} {list}` failed ({status})"
                    ));
                    return false;
                }
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
                Ok(None) => {
                    log::line(&format!(
                        "warning: `systemctl {verb} {list}` still runs after {}s; not waiting for it",
                        WAIT.as_secs()
                    ));
                    return true;
                }
                Err(e) => {
                    log::line(&format!(
                        "warning: `systemctl {verb} {list}`: cannot wait for it: {e}"
                    ));
                    return false;
                }
            }
        }
    }
}
