//! Helpers for systemd stage 1: `ask-password` (the console prompt, optionally checked by
//! fetching a secret with it) and `copy-password` (the hand-over copy for the service after the
//! initrd). Both write the password atomically with mode 0400. The terminal itself is
//! `sys/console.rs`; `keygen` is `sys/keygen.rs`.

use std::io;

use crate::cli::{AskArgs, CopyArgs};
use crate::client::Client;
use crate::config;
use crate::error::{Error, Result};
use crate::sys::console::{ask, say};
use crate::sys::output::{self, Perms};

pub fn ask_password(args: AskArgs) -> Result<()> {
    let tries = args.tries.max(1);
    let mut verify = match &args.verify {
        Some(fetch) => Some((fetch.names.clone(), config::client(fetch, Vec::new())?)),
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
        return output::save(&args.output, pw.as_bytes(), Perms::mode(0o400));
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
    output::save(&args.to, &data, Perms::mode(0o400))
}
