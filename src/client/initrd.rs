//! Helpers for systemd stage 1, where there is no shell and no coreutils: the console password
//! prompt (`ask-password`), the hand-over copy for the service after the initrd
//! (`copy-password`), and a key generator (`keygen`).
//!
//! The prompt turns echo off on the terminal *before* it prints the prompt (with `TCSAFLUSH`, so
//! anything typed ahead is dropped rather than echoed), reads with `rpassword`, re-asks on empty
//! input, restores the terminal, and writes the password atomically with mode 0400.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::cli::{AskArgs, CopyArgs, KeygenArgs};
use crate::client::Client;
use crate::config;
use crate::error::{Error, Result};
use crate::sys::output::{self, Perms};

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
fn ask(tty_path: &Path, prompt: &str) -> Result<String> {
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

fn say(tty_path: &Path, msg: &str) {
    if let Ok(mut tty) = OpenOptions::new().write(true).open(tty_path) {
        let _ = writeln!(tty, "{msg}");
    }
}

pub fn ask_password(args: AskArgs) -> Result<()> {
    let tries = args.tries.max(1);
    let mut verify = match &args.verify {
        Some(send) => Some((send.names.clone(), config::client(send, Vec::new())?)),
        None => None,
    };
    for attempt in 1..=tries {
        let pw = ask(&args.tty, &args.prompt)?;
        if let Some((names, cfg)) = &mut verify {
            cfg.password = pw.clone().into_bytes();
            if let Err(e) = Client::new(cfg).fetch_all(names) {
                say(&args.tty, &format!("netsecrets: the password was not accepted ({e}); attempt {attempt} of {tries}"));
                continue;
            }
        }
        if let Some(dir) = args.output.parent() {
            output::ensure_dir(dir).map_err(|e| output::write_error(&args.output, e))?;
        }
        output::write_atomic(&args.output, pw.as_bytes(), Perms::mode(0o400))
            .map_err(|e| output::write_error(&args.output, e))?;
        return Ok(());
    }
    Err(Error::failed(format!(
        "the server did not accept the password {tries} times; giving up"
    )))
}

pub fn copy_password(args: CopyArgs) -> Result<()> {
    let data = std::fs::read(&args.from).map_err(|e| {
        let why = if e.kind() == io::ErrorKind::NotFound {
            " (did netsecrets-ask-password.service run and succeed?)"
        } else {
            ""
        };
        Error::failed(format!(
            "cannot read the password at {}{why}",
            args.from.display()
        ))
        .with_io(e)
    })?;
    if let Some(dir) = args.to.parent() {
        output::ensure_dir(dir).map_err(|e| output::write_error(&args.to, e))?;
    }
    output::write_atomic(&args.to, &data, Perms::mode(0o400))
        .map_err(|e| output::write_error(&args.to, e))
}

pub fn keygen(args: KeygenArgs) -> Result<()> {
    let mut raw = [0u8; 32];
    getrandom::getrandom(&mut raw)
        .map_err(|e| Error::failed(format!("no random bytes available: {e}")))?;
    let mut text: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    text.push('\n');
    match args.output {
        None => io::stdout()
            .write_all(text.as_bytes())
            .map_err(|e| Error::failed("cannot write the key to stdout").with_io(e)),
        Some(path) => output::write_new(&path, text.as_bytes(), Perms::mode(0o400)).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Error::failed(format!(
                    "{} exists already; keygen never overwrites a key",
                    path.display()
                ))
            } else {
                output::write_error(&path, e)
            }
        }),
    }
}
