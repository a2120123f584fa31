//! The console prompt for a password, where there is no shell and no coreutils (systemd stage 1).
//!
//! Echo is turned off on the terminal *before* the prompt is printed (with `TCSAFLUSH`, so
//! anything typed ahead is dropped rather than echoed); the answer is read with `rpassword`,
//! empty answers are asked again, and the terminal's settings are restored on every way out:
//! a return, an error, and SIGTERM, SIGHUP, SIGINT or SIGQUIT (systemd stopping the unit, the
//! console hanging up, Ctrl-C, which rpassword turns into SIGINT): a handler puts the saved
//! settings back and the process then dies of the signal as before. Nothing here checks or
//! stores the password: that is `client/initrd.rs`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use crate::error::{Error, Result};

/// Consecutive empty answers after which the prompt gives up: a closed console reads as an
/// endless stream of empty lines.
const MAX_EMPTY: u32 = 100;

/// The settings a signal handler restores: written before [`ARMED`] is set, read only while it
/// is set (one prompt at a time in this program).
struct Saved(std::cell::UnsafeCell<std::mem::MaybeUninit<libc::termios>>);
// SAFETY: written only while ARMED is false (no handler reads it then) by the one thread that
// prompts; the handler only reads it after an Acquire load of ARMED saw true.
unsafe impl Sync for Saved {}
static SAVED: Saved = Saved(std::cell::UnsafeCell::new(std::mem::MaybeUninit::uninit()));
static SAVED_FD: AtomicI32 = AtomicI32::new(-1);
static ARMED: AtomicBool = AtomicBool::new(false);

/// The signals that end the prompt from outside.
const FATAL: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGHUP, libc::SIGINT, libc::SIGQUIT];

/// Restores the saved settings, then lets the signal do what it did before (end the process):
/// only async-signal-safe calls (tcsetattr, write, signal, raise).
extern "C" fn restore_and_die(sig: libc::c_int) {
    if ARMED.load(Ordering::Acquire) {
        let fd = SAVED_FD.load(Ordering::Relaxed);
        // SAFETY: ARMED says SAVED holds the settings read from `fd`, which is still open (the
        // guard that owns them disarms before its terminal is closed).
        unsafe {
            libc::tcsetattr(fd, libc::TCSANOW, (*SAVED.0.get()).as_ptr());
            libc::write(fd, b"\n".as_ptr().cast(), 1);
        }
    }
    // SAFETY: back to the default action, then the same signal again: it is blocked while
    // this handler runs and is delivered (ending the process) when it returns.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Installs [`restore_and_die`] for [`FATAL`] (once; it does nothing while not armed).
fn install_handlers() {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::SeqCst) {
        return;
    }
    for sig in FATAL {
        // SAFETY: a zeroed sigaction with a handler of the right type and an empty mask; the
        // handler only makes async-signal-safe calls.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = restore_and_die as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Restores the terminal's settings when dropped, and on a fatal signal while it lives.
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
            install_handlers();
            (*SAVED.0.get()).write(saved);
            SAVED_FD.store(fd, Ordering::Relaxed);
            ARMED.store(true, Ordering::Release);
            t.c_lflag &= !(libc::ECHO | libc::ECHONL);
            if libc::tcsetattr(fd, libc::TCSAFLUSH, &t) != 0 {
                ARMED.store(false, Ordering::Release);
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
        ARMED.store(false, Ordering::Release);
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
