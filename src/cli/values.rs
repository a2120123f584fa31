//! The value types of flags and environment variables, each parsed by its `FromStr` and nothing
//! else: ports, durations, file modes, counts, lists. Secret names are
//! [`SecretName`], whose rule lives with the protocol.
//!
//! A value that does not parse says what was [`Expected`]; the parser adds the flag and the
//! value (`invalid --mode "999": expected octal like 0400 or 0440`). Pure functions, no I/O.

use std::str::FromStr;
use std::time::Duration;

use crate::wire::protocol::{InvalidName, SecretName};

/// What a value should have looked like, for the error message.
#[derive(Debug, PartialEq, Eq)]
pub struct Expected(pub &'static str);

/// A TCP port, 0-65535 (0: any free port, for a server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port(pub u16);

impl FromStr for Port {
    type Err = Expected;

    fn from_str(s: &str) -> Result<Port, Expected> {
        s.trim()
            .parse::<u16>()
            .map(Port)
            .map_err(|_| Expected("a number 0-65535"))
    }
}

/// Seconds with up to three decimals (`30`, `0.5`, `2.25`), from 0.01 to 86400. Parsed as
/// integers: no floating point in the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl FromStr for Seconds {
    type Err = Expected;

    fn from_str(s: &str) -> Result<Seconds, Expected> {
        let bad = Expected("seconds from 0.01 to 86400, e.g. 30 or 0.5");
        let t = s.trim();
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        if whole.is_empty()
            || whole.len() > 5
            || frac.len() > 3
            || !whole
                .bytes()
                .chain(frac.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return Err(bad);
        }
        let Ok(whole) = whole.parse::<u64>() else {
            return Err(bad);
        };
        let Ok(frac_ms) = format!("{frac:0<3}").parse::<u64>() else {
            return Err(bad);
        };
        let ms = whole * 1000 + frac_ms;
        if !(10..=86_400_000).contains(&ms) {
            return Err(bad);
        }
        Ok(Seconds(Duration::from_millis(ms)))
    }
}

/// A file mode in octal, at most four digits (`0400`, `440`, `0o640`), with no setuid, setgid or
/// sticky bit: a secret file is never a program or a shared directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl FromStr for Mode {
    type Err = Expected;

    fn from_str(s: &str) -> Result<Mode, Expected> {
        let digits = s.trim().trim_start_matches("0o");
        if !digits.is_empty()
            && digits.len() <= 4
            && digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
        {
            if let Ok(m) = u32::from_str_radix(digits, 8) {
                if m > 0o777 {
                    return Err(Expected(
                        "a mode up to 0777 like 0400 or 0440: no setuid, setgid or sticky bit",
                    ));
                }
                return Ok(Mode(m));
            }
        }
        Err(Expected("octal like 0400 or 0440"))
    }
}

/// A count of connections, workers or tries: 1 to 65536.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub usize);

impl FromStr for Count {
    type Err = Expected;

    fn from_str(s: &str) -> Result<Count, Expected> {
        s.trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| (1..=65_536).contains(&n))
            .map(Count)
            .ok_or(Expected("a number from 1 to 65536"))
    }
}

/// Splits at commas and whitespace, dropping empty items.
pub fn list(v: &str) -> Vec<String> {
    v.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The warning for an `--authorized-ips` item written with host bits set (`10.0.0.1/0` allows
/// every IPv4 address, which the writer rarely means); `None` for a bare address, a clean
/// network, or an item that does not parse (the parser reports that).
pub fn host_bits(item: &str) -> Option<String> {
    let (addr, prefix) = item.split_once('/')?;
    let prefix: u32 = prefix.parse().ok()?;
    let ip = addr.parse::<std::net::IpAddr>().ok()?;
    let net = match ip {
        std::net::IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32u32.checked_sub(prefix)?)
                .unwrap_or(0);
            std::net::IpAddr::V4((u32::from(a) & mask).into())
        }
        std::net::IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128u32.checked_sub(prefix)?)
                .unwrap_or(0);
            std::net::IpAddr::V6((u128::from(a) & mask).into())
        }
    };
    (net != ip).then(|| {
        format!("warning: --authorized-ips {item} has host bits set: it allows {net}/{prefix}; write that if it is meant")
    })
}

/// Appends a space- or comma-separated list of secret names to `out`, each checked.
pub fn names(v: &str, out: &mut Vec<SecretName>) -> Result<(), InvalidName> {
    for n in list(v) {
        out.push(SecretName::try_from(n)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds() {
        let s = |v: &str| v.parse::<Seconds>().map(|s| s.0);
        assert_eq!(s("0.05"), Ok(Duration::from_millis(50)));
        assert_eq!(s("86400"), Ok(Duration::from_secs(86_400)));
        assert_eq!(s(" 7 "), Ok(Duration::from_secs(7)));
        assert_eq!(s("2.5"), Ok(Duration::from_millis(2500)));
        for bad in ["0", "0.001", "86400.001", "1e3", "-1", ".5", "1.2345", ""] {
            assert!(s(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports_modes_counts() {
        assert_eq!("8080".parse(), Ok(Port(8080)));
        assert!("70000".parse::<Port>().is_err());
        assert_eq!("0440".parse(), Ok(Mode(0o440)));
        assert_eq!("0o640".parse(), Ok(Mode(0o640)));
        assert!("999".parse::<Mode>().is_err());
        assert!("01234".parse::<Mode>().is_err());
        for special in ["6777", "4400", "2440", "1600", "0o7000"] {
            assert!(special.parse::<Mode>().is_err(), "{special}");
        }
        assert_eq!("0777".parse(), Ok(Mode(0o777)));
        assert_eq!("65536".parse(), Ok(Count(65_536)));
        assert!("0".parse::<Count>().is_err());
        assert!("65537".parse::<Count>().is_err());
    }

    #[test]
    fn host_bits_warn() {
        let w = |s: &str| host_bits(s).unwrap_or_default();
        assert!(w("10.0.0.1/0").contains("it allows 0.0.0.0/0"));
        assert!(w("10.1.2.3/8").contains("it allows 10.0.0.0/8"));
        assert!(w("fd00::1/64").contains("it allows fd00::/64"));
        for clean in [
            "10.0.0.0/8",
            "0.0.0.0/0",
            "10.0.0.1",
            "10.0.0.1/32",
            "fd00::/64",
            "x/3",
            "10.0.0.1/40",
            "FD00::/64",
        ] {
            assert_eq!(host_bits(clean), None, "{clean}");
        }
    }

    #[test]
    fn lists_and_names() {
        assert_eq!(list(" a, b ,,c d "), ["a", "b", "c", "d"]);
        let mut out = Vec::new();
        names("x,y", &mut out).unwrap();
        assert_eq!(out, ["x", "y"]);
        assert!(names("x ../y", &mut out).is_err());
    }
}
