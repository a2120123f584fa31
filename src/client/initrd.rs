//! Helpers for systemd stage 1: `ask-password` (the console prompt, optionally checked by
//! fetching a secret with it) and `copy-password` (a copy of the typed password at another
//! path, for custom initrds; the NixOS module's units read it where `ask-password` wrote it).
//! Both write the password atomically with mode 0400. The terminal itself is
//! `sys/console.rs`; `keygen` is `sys/keygen.rs`.

use std::io;

use crate::cli::{AskArgs, CopyArgs};
use crate::client::config;
use crate::client::{Check, Client};
use crate::error::{Error, Result};
use crate::keys;
use crate::sys::console::{ask, say};
use crate::sys::input::read_file;
use crate::sys::log;
use crate::sys::output::{self, Perms};
use crate::sys::wipe::{wipe, Wiped};

/// Asks for the password and, with `--verify-secret`, checks it against the server: each typed
/// password is sent until it reaches a server (an unreachable one is retried within
/// `--timeout`), and a refused one is asked again at once, never sent again, so a typo costs
/// exactly one failure on the server.
pub fn ask_password(args: AskArgs) -> Result<()> {
    let tries = args.tries.max(1);
    let mut verify = match &args.verify {
        Some(fetch) => {
            let Some(name) = fetch.names.first() else {
                return Err(Error::usage("--verify-secret needs a secret name"));
            };
            Some((name.clone(), config::client(fetch, Vec::new())?))
        }
        None => None,
    };
    for attempt in 1..=tries {
        // One copy of the typed password: moved (not cloned) into the check's configuration and
        // back, written from there, and wiped on every way out of this iteration.
        let mut pw = Wiped(ask(&args.tty, &args.prompt)?.into_bytes());
        if let Some((name, cfg)) = &mut verify {
            std::mem::swap(&mut cfg.password, &mut pw.0);
            let checked = Client::new(cfg).check(name);
            std::mem::swap(&mut cfg.password, &mut pw.0);
            wipe(&mut cfg.password);
            match checked {
                Check::Accepted => {}
                Check::AcceptedNotFound(msg) => {
                    log::line(&format!(
                        "warning: the password was accepted, but {msg} (--verify-secret)"
                    ));
                }
                Check::Rejected(msg) => {
                    log::line(&msg);
                    say(&args.tty, &format!("netsecrets: the password was not accepted (attempt {attempt} of {tries}); type it again"));
                    continue;
                }
                Check::Unreachable(e) => {
                    say(&args.tty, &format!("netsecrets: the password could not be checked ({e}); attempt {attempt} of {tries}"));
                    continue;
                }
            }
        }
        return output::save(&args.output, &pw.0, Perms::mode(0o400));
    }
    Err(Error::failed(format!(
        "the password was not accepted or could not be checked {tries} times (--tries); giving up"
    )))
}

pub fn copy_password(args: CopyArgs) -> Result<()> {
    let from = args.from.display();
    let data = read_file(
        &args.from,
        keys::MAX_SMALL_FILE,
        &format!("--from {from}"),
        &|e| {
            let why = if e.kind() == io::ErrorKind::NotFound {
                " (did netsecrets-ask-password.service run and succeed?)"
            } else {
                ""
            };
            Error::failed(format!("cannot read the password at {from}{why}")).with_io(e)
        },
    )?;
    let same = match (std::fs::metadata(&args.from), std::fs::metadata(&args.to)) {
        (Ok(a), Ok(b)) => {
            use std::os::unix::fs::MetadataExt;
            (a.dev(), a.ino()) == (b.dev(), b.ino())
        }
        _ => false,
    };
    let data = Wiped(data);
    if same {
        log::line(&format!(
            "the password is already at {} (--from and --to are the same file); nothing to copy",
            args.to.display()
        ));
        Ok(())
    } else {
        output::save(&args.to, &data.0, Perms::mode(0o400))
    }
}
