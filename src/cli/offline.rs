//! `send`'s offline-cache flags: `--offline-cache DIR`, `--offline-after SECS`,
//! `--offline-max-age SECS`, `--systemd-creds PATH` (what they do: `client/cache.rs`).

use std::path::PathBuf;
use std::time::Duration;

use super::parse::string;
use crate::error::{Error, Result};

/// Default `--offline-max-age`: a week (keep in sync with nix/modules/client/options.nix).
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest `--offline-max-age`: ten years (a longer one is a mistake, not a policy).
const MAX_MAX_AGE: u64 = 10 * 366 * 24 * 3600;

/// The offline cache as asked for; `dir: None` means none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OfflineArgs {
    pub dir: Option<PathBuf>,
    /// Use the cache once no server could be reached for this long.
    pub after: Option<Duration>,
    pub max_age: Option<Duration>,
    /// `None`: `systemd-creds` from `PATH`.
    pub systemd_creds: Option<PathBuf>,
}

impl OfflineArgs {
    /// Takes one of the flags above; `Ok(false)` for any other.
    pub(super) fn take(&mut self, arg: &str, p: &mut lexopt::Parser) -> Result<bool> {
        match arg {
            "--offline-cache" => self.dir = Some(PathBuf::from(p.value()?)),
            "--offline-after" => self.after = Some(secs(p, arg, 1, 86_400)?),
            "--offline-max-age" => self.max_age = Some(secs(p, arg, 60, MAX_MAX_AGE)?),
            "--systemd-creds" => self.systemd_creds = Some(PathBuf::from(p.value()?)),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The rules between the flags, once all are read.
    pub(super) fn check(&self) -> Result<()> {
        if self.dir.is_none()
            && (self.after.is_some() || self.max_age.is_some() || self.systemd_creds.is_some())
        {
            return Err(Error::usage(
                "--offline-after, --offline-max-age and --systemd-creds need --offline-cache DIR",
            ));
        }
        Ok(())
    }
}

/// Whole seconds from `lo` to `hi`.
fn secs(p: &mut lexopt::Parser, flag: &str, lo: u64, hi: u64) -> Result<Duration> {
    let v = string(p, flag)?;
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (lo..=hi).contains(n))
        .map(Duration::from_secs)
        .ok_or_else(|| {
            Error::usage(format!(
                "invalid {flag} {v:?}: expected whole seconds from {lo} to {hi}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse, Command};

    fn send(args: &[&str]) -> Result<OfflineArgs> {
        let base = [
            "netsecrets",
            "send",
            "--server",
            "h",
            "--request_secrets",
            "a",
        ];
        match parse(base.iter().chain(args), &|_| None)? {
            Command::Send(s) => Ok(s.offline),
            _ => Err(Error::usage("not send")),
        }
    }

    #[test]
    fn flags_ranges_and_dependencies() {
        let o = send(&["--offline-cache", "/c", "--offline-after", "10"]).unwrap();
        assert_eq!(o.dir, Some(PathBuf::from("/c")));
        assert_eq!(o.after, Some(Duration::from_secs(10)));
        assert_eq!((o.max_age, o.systemd_creds), (None, None));
        let o = send(&[
            "--offline-cache",
            "/c",
            "--offline-max-age",
            "604800",
            "--systemd-creds",
            "/s/systemd-creds",
        ])
        .unwrap();
        assert_eq!(o.max_age, Some(DEFAULT_MAX_AGE));
        assert_eq!(o.systemd_creds, Some(PathBuf::from("/s/systemd-creds")));
        assert_eq!(send(&[]).unwrap(), OfflineArgs::default());
        for (bad, why) in [
            (
                &["--offline-cache", "/c", "--offline-after", "0"][..],
                "from 1 to 86400",
            ),
            (
                &["--offline-cache", "/c", "--offline-after", "1.5"],
                "whole seconds",
            ),
            (
                &["--offline-cache", "/c", "--offline-max-age", "59"],
                "from 60",
            ),
            (&["--offline-after", "5"], "need --offline-cache DIR"),
            (&["--systemd-creds", "/x"], "need --offline-cache DIR"),
        ] {
            let e = send(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
