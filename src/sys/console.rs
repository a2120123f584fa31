//! The console prompt for a password, where there is no shell and no coreutils (systemd stage 1).
//!
//! Echo is turned off on the terminal *before* the prompt is printed (with `TCSAFLUSH`, so
//! anything typed ahead is dropped rather than echoed); the answer is read with `rpassword`,
//! empty answers are asked again, and the terminal's settings are restored. Nothing here
//! checks or stores the password: that is `client/initrd.rs`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::{Error, Result};

/// Consecutive empty answers after which the prompt gives up: a closed console reads as an
/// endless stream of empty lines.
const MAX_EMPTY: u32 = 100;

/// Restores the terminal's settings when dropped.
struct EchoOff {
    fd: i32,
    saved: libc::termios,
}

impl EchoOff {
    /// Turns echo off on `tty`; `None` when it is not a terminal (tests feed a pipe or file).
    fn new(tty: &File) -> Option<EchoOff> {
        let fd = tty.as_raw_fd();
        // SAFETY: `fd` is an open descriptor owned by `tty` for the duration of these calls, and
        // `termios` is a plain C struct that tcgetattr fills completely before it is read.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return None;
            }
            let saved = t;
            t.c_lflag &= !(libc::ECHO | libc::ECHONL);
            if libc::tcsetattr(fd, libc::TCSAFLUSH, &t) != 0 {
                return None;
            }
            Some(EchoOff { fd, saved })
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the settings read from the same descriptor, which outlives this guard.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved);
        }
    }
}

/// Asks once (re-asking on empty input) and returns the password. The terminal is opened once,
/// so input typed after an empty answer is not lost.
pub fn ask(tty_path: &Path, prompt: &str) -> Result<String> {
    let open_err =
        |e| Error::failed(format!("cannot use the terminal {}", tty_path.display())).with_io(e);
    let tty = OpenOptions::new()
        .read(true)
        .write(true)
        .open(tty_path)
        .map_err(open_err)?;
    for _ in 0..MAX_EMPTY {
        let guard = EchoOff::new(&tty);
        (&tty).write_all(prompt.as_bytes()).map_err(open_err)?;
        let cfg = rpassword::ConfigBuilder::new()
            .input_reader(tty.try_clone().map_err(open_err)?)
            .output_writer(tty.try_clone().map_err(open_err)?)
            .build();
        let read = rpassword::read_password_with_config(cfg);
        drop(guard);
        let _ = (&tty).write_all(b"\n");
        match read {
            Ok(pw) if !pw.is_empty() => return Ok(pw),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => continue,
            Err(e) => {
                return Err(Error::failed(format!(
                    "reading the password from {} failed",
                    tty_path.display()
                ))
                .with_io(e))
            }
        }
    }
    Err(Error::failed(format!(
        "no password entered on {} (empty input {MAX_EMPTY} times)",
        tty_path.display()
    )))
}

/// Writes one line to the terminal; a terminal that cannot be opened is not an error here.
pub fn say(tty_path: &Path, msg: &str) {
    if let Ok(mut tty) = OpenOptions::new().write(true).open(tty_path) {
        let _ = writeln!(tty, "{msg}");
    }
}
