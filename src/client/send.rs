//! `netsecrets send`: the glue between the parsed flags and the [`Client`]: resolve the output
//! file's owner and group (in `/etc/passwd` and `/etc/group`, no NSS), read the password, fetch
//! every secret, then write them all to the file or to stdout. Nothing is written unless every
//! secret arrived, and a file that already holds the same bytes, owner, group and mode is not
//! rewritten; a written one is followed by the change actions (`sys/systemctl.rs`). How secrets
//! are fetched is `fetch.rs`'s business, how a file is written `sys/output.rs`'s.

use std::io::Write;
use std::path::Path;

use crate::cli::SendArgs;
use crate::client::cache::Cache;
use crate::client::config;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::keys;
use crate::sys::log;
use crate::sys::output::{self, Perms};

pub fn send(args: SendArgs) -> Result<()> {
    let target = file_target(&args)?;
    let password = keys::password(args.fetch.net.password.as_ref(), true)?;
    let cfg = config::client(&args.fetch, password)?;
    let values = match Cache::open(&args.offline, cfg.verbose)? {
        None => Client::new(&cfg).fetch_all(&args.fetch.names)?,
        Some(cache) => cache.fetch_all(&mut Client::new(&cfg), &args.fetch.names, cfg.timeout)?,
    };
    match target {
        Some((path, perms)) => {
            let saved = output::save_if_changed(path, &values.join(&b'\n'), perms)?;
            if cfg.verbose {
                let (n, p) = (values.len(), path.display());
                log::line(&if saved.written() {
                    format!("wrote {n} secret(s) to {p}")
                } else {
                    format!("{p} already holds these {n} secret(s); left untouched")
                });
            }
            args.file.actions.after(saved, &path.display().to_string());
            Ok(())
        }
        None => {
            let mut out = Vec::new();
            for v in &values {
                out.extend_from_slice(v);
                out.push(b'\n');
            }
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&out)
                .and_then(|_| stdout.flush())
                .map_err(|e| Error::failed("cannot write to stdout").with_io(e))
        }
    }
}

/// `--file-output` with its mode, owner and group, checked before anything is fetched; `None`:
/// the secrets go to stdout (the parser refused `--owner`/`--group` without `--file-output`).
fn file_target(args: &SendArgs) -> Result<Option<(&Path, Perms)>> {
    let Some(path) = &args.file_output else {
        return Ok(None);
    };
    let f = &args.file;
    let perms = output::file_perms(
        f.owner.as_deref(),
        f.group.as_deref(),
        f.mode.0,
        "the secret file",
    )?;
    Ok(Some((path, perms)))
}
