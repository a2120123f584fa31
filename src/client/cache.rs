//! The offline cache (`send --offline-cache DIR`): every value fetched is also kept in
//! `DIR/<name>.cred`, sealed by `systemd-creds encrypt --with-key=auto --name=<name>` (the
//! TPM2 and the host key when the machine has a TPM2, the host key otherwise), so that a boot
//! with every server unreachable can still start its services (`--offline-after`).
//!
//! - Sealed content: `netsecrets-cache 1 <unix seconds>\n<value>`. The time is inside the seal,
//!   so the age of a copy cannot be changed without the key (a file's mtime could be).
//! - The value goes through pipes only (`sys/creds.rs`): never a plaintext file, never a log.
//! - "Unchanged" is decided by decrypting the copy and comparing, not by a digest kept beside
//!   it: a plain or salted hash of a low-entropy secret (a short password) lets whoever has the
//!   disk test guesses offline, and a keyed hash needs a key that would itself have to be sealed.
//!   The price is one `systemd-creds decrypt` per secret and fetch. An unchanged copy is
//!   re-sealed only when its time is older than a quarter of `--offline-max-age`, so that it
//!   stays usable for at least three quarters of that after the last server contact.
//! - Revocation beats the cache: `Not found` from a server deletes the copy; a server that was
//!   reached and answered nothing (wrong password or key, locked out) never lets the cache be
//!   used (`fetch.rs` only reports "offline" when no server was reached at all); a copy as old
//!   as `--offline-max-age` or older is deleted instead of used.
//! - A copy that does not decrypt (changed, sealed on another host or under another name, or
//!   with systemd's null key) is refused with a clear error and left for inspection.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cli::{OfflineArgs, DEFAULT_MAX_AGE};
use crate::client::fetch::Missed;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::sys::creds::{Creds, MAX_OUTPUT, MAX_PLAIN};
use crate::sys::log;
use crate::sys::output::{self, Perms};
use crate::wire::protocol::SecretName;

const MAGIC: &[u8] = b"netsecrets-cache 1 ";

pub struct Cache {
    dir: PathBuf,
    creds: Creds,
    after: Option<Duration>,
    max_age: Duration,
    verbose: bool,
}

impl Cache {
    /// The cache the flags ask for, if any: its directory made (0700) or checked (a directory
    /// of ours that no one else may open), and `systemd-creds` found.
    pub fn open(args: &OfflineArgs, verbose: bool) -> Result<Option<Cache>> {
        let Some(dir) = &args.dir else {
            return Ok(None);
        };
        let creds = Creds::find(args.systemd_creds.as_deref())?;
        let flag = |e: std::io::Error| {
            Error::config(format!("--offline-cache {}", dir.display())).with_io(e)
        };
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(flag)?;
        }
        let meta = fs::symlink_metadata(dir).map_err(flag)?;
        // SAFETY: geteuid only reads the calling process's credentials.
        let euid = unsafe { libc::geteuid() };
        if !meta.is_dir() || meta.uid() != euid || meta.permissions().mode() & 0o077 != 0 {
            return Err(Error::config(format!(
                "--offline-cache {}: must be a directory owned by uid {euid} with mode 0700 (it is {}, uid {}, mode {:04o}); fix it or name another",
                dir.display(),
                if meta.is_dir() { "a directory" } else { "no directory" },
                meta.uid(),
                meta.permissions().mode() & 0o7777
            )));
        }
        Ok(Some(Cache {
            dir: dir.clone(),
            creds,
            after: args.after,
            max_age: args.max_age.unwrap_or(DEFAULT_MAX_AGE),
            verbose,
        }))
    }

    /// Fetches every name like [`Client::fetch_all`], keeping each value in the cache, and —
    /// with `--offline-after` — taking a secret from the cache when no server was reached.
    pub fn fetch_all(
        &self,
        client: &mut Client,
        names: &[SecretName],
        timeout: Duration,
    ) -> Result<Vec<Vec<u8>>> {
        client.offline_after(self.after);
        let deadline = Instant::now() + timeout;
        let mut values = Vec::with_capacity(names.len());
        for name in names {
            let value = loop {
                match client.fetch_or_offline(name, deadline) {
                    Ok(v) => {
                        self.store(name, &v);
                        break v;
                    }
                    Err(Missed::NotFound(e)) => {
                        self.remove(name, "a server says it does not exist");
                        return Err(e);
                    }
                    Err(Missed::Failed(e)) => return Err(e),
                    Err(Missed::Offline(e)) => match self.load(name, &e) {
                        Ok(v) => break v,
                        // No worse than without a cache: keep trying until the deadline.
                        Err(why) => {
                            log::line(&format!(
                                "{name}: {e}, and the offline cache has no usable copy: {why}; trying the servers until the timeout"
                            ));
                            client.offline_after(None);
                        }
                    },
                }
            };
            client.offline_after(self.after);
            values.push(value);
        }
        Ok(values)
    }

    fn path(&self, name: &SecretName) -> PathBuf {
        self.dir.join(format!("{name}.cred"))
    }

    /// Keeps `value` (just fetched) unless the copy already holds it and is fresh enough.
    /// A failure is a warning: the value itself arrived.
    fn store(&self, name: &SecretName, value: &[u8]) {
        let path = self.path(name);
        let not_kept = |why: &str| {
            log::line(&format!(
                "warning: {name} is not kept in the offline cache: {why}"
            ));
        };
        if value.len() + 64 > MAX_PLAIN {
            not_kept("systemd-creds seals at most 1 MiB");
            self.remove(name, "its value is too large to seal");
            return;
        }
        if path.exists() {
            match self.open_copy(name, &path) {
                Ok((old, age)) if old == value && age < self.max_age / 4 => return,
                Ok(_) => {}
                Err(why) => log::line(&format!(
                    "warning: the cached copy of {name} is replaced: {why}"
                )),
            }
        }
        let mut plain = MAGIC.to_vec();
        plain.extend_from_slice(format!("{}\n", now_secs()).as_bytes());
        plain.extend_from_slice(value);
        let sealed = match self.creds.encrypt(name.as_str(), &plain) {
            Ok(s) => s,
            Err(why) => return not_kept(&why),
        };
        match output::write_atomic(&path, &sealed, Perms::mode(0o600)) {
            Ok(unsynced) => {
                output::warn_unsynced(&path, unsynced);
                if self.verbose {
                    log::line(&format!(
                        "kept {name} in the offline cache ({})",
                        path.display()
                    ));
                }
            }
            Err(e) => not_kept(&format!("cannot write {}: {e}", path.display())),
        }
    }

    fn remove(&self, name: &SecretName, why: &str) {
        let path = self.path(name);
        match fs::remove_file(&path) {
            Ok(()) => log::line(&format!(
                "removed the cached copy of {name} ({}): {why}",
                path.display()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::line(&format!(
                "warning: cannot remove the cached copy of {name} ({}): {e}",
                path.display()
            )),
        }
    }

    /// The cached value of `name` when it is younger than `--offline-max-age`; an older copy
    /// is deleted. Logs the age of the copy it returns.
    fn load(&self, name: &SecretName, offline: &Error) -> std::result::Result<Vec<u8>, String> {
        let path = self.path(name);
        if !path.exists() {
            return Err(format!("there is none ({})", path.display()));
        }
        let (value, age) = self.open_copy(name, &path)?;
        if age >= self.max_age {
            self.remove(name, "it is older than --offline-max-age");
            return Err(format!(
                "the copy is {} old, over --offline-max-age {}; it was deleted",
                span(age),
                span(self.max_age)
            ));
        }
        log::line(&format!(
            "{name}: {offline}; using the offline cache's copy, {} old ({})",
            span(age),
            path.display()
        ));
        Ok(value)
    }

    /// Decrypts a copy: its value and age.
    fn open_copy(
        &self,
        name: &SecretName,
        path: &Path,
    ) -> std::result::Result<(Vec<u8>, Duration), String> {
        let sealed = crate::sys::input::read_bounded(path, MAX_OUTPUT).map_err(|_| {
            format!(
                "{} cannot be read, or is not a regular file of at most {MAX_OUTPUT} bytes",
                path.display()
            )
        })?;
        let refused = |why: String| {
            format!(
                "{} does not open on this host under the name {name:?} (changed, sealed on another machine or for another secret): {why}",
                path.display()
            )
        };
        let plain = self
            .creds
            .decrypt(name.as_str(), &sealed)
            .map_err(refused)?;
        let bad = || refused("not a netsecrets cache entry".into());
        let rest = plain.strip_prefix(MAGIC).ok_or_else(bad)?;
        let nl = rest.iter().position(|&b| b == b'\n').ok_or_else(bad)?;
        let (stamp, value) = rest.split_at(nl);
        let stamp: u64 = std::str::from_utf8(stamp)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        let now = now_secs();
        if stamp > now + 300 {
            log::line(&format!(
                "warning: the cached copy of {name} was sealed {} in the future: is the clock right?",
                span(Duration::from_secs(stamp - now))
            ));
        }
        let value = value.get(1..).unwrap_or_default().to_vec();
        Ok((value, Duration::from_secs(now.saturating_sub(stamp))))
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A duration for a log line: `42s`, `17m 3s`, `5h 2m`, `3d 4h`.
fn span(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::span;
    use std::time::Duration;

    #[test]
    fn spans() {
        let s = |n| span(Duration::from_secs(n));
        assert_eq!(s(42), "42s");
        assert_eq!(s(17 * 60 + 3), "17m 3s");
        assert_eq!(s(5 * 3600 + 120), "5h 2m");
        assert_eq!(s(3 * 86_400 + 4 * 3600), "3d 4h");
    }
}
