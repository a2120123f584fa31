//! Allowed client networks: IPv4 and IPv6 CIDRs (or bare addresses) and the membership test the
//! server runs right after `accept`.
//!
//! An IPv4 peer that reaches a `::` listener shows up as `::ffff:a.b.c.d`; it is matched as the
//! IPv4 address it is. Host bits in a network (`10.0.0.7/24`) are ignored, as `ip route` does.

use std::net::IpAddr;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// True when `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask32(self.prefix);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask128(self.prefix);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// True when every address of `other` is inside this network.
    pub fn covers(&self, other: &Cidr) -> bool {
        self.prefix <= other.prefix && self.contains(other.addr)
    }

    /// The network as an exact key: family, prefix length and masked address. Two networks
    /// are equal exactly when their keys are.
    pub fn key(&self) -> NetKey {
        NetKey::of(self.addr, self.prefix)
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The network's address (host bits as written).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// True for a single address (`/32`, `/128`).
    pub fn host(&self) -> Option<IpAddr> {
        let max = if self.addr.is_ipv4() { 32 } else { 128 };
        (self.prefix == max).then_some(self.addr)
    }
}

/// The network of `prefix` bits around an address, as a hashable key (see [`Cidr::key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetKey {
    v6: bool,
    prefix: u8,
    bits: u128,
}

impl NetKey {
    /// `ip` is taken as it is: pass a peer through [`canonical`] first.
    pub fn of(ip: IpAddr, prefix: u8) -> NetKey {
        match ip {
            IpAddr::V4(v4) => NetKey {
                v6: false,
                prefix,
                bits: u128::from(u32::from(v4) & mask32(prefix)),
            },
            IpAddr::V6(v6) => NetKey {
                v6: true,
                prefix,
                bits: u128::from(v6) & mask128(prefix),
            },
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0)
}

/// IPv4-mapped IPv6 addresses become the IPv4 address they carry.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let bad = || {
            format!(
                "invalid network {s:?}: expected an address or CIDR like 10.0.0.0/24 or fd00::/64"
            )
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let raw = IpAddr::from_str(addr).map_err(|_| bad())?;
        let max = if raw.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|&n| n <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        // `::ffff:10.0.0.0/104` is the IPv4 network 10.0.0.0/8.
        match canonical(raw) {
            IpAddr::V4(v4) if raw.is_ipv6() && prefix >= 96 => Ok(Cidr {
                addr: IpAddr::V4(v4),
                prefix: prefix - 96,
            }),
            _ => Ok(Cidr { addr: raw, prefix }),
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Parses a comma-separated list; empty items (trailing commas, spaces) are skipped.
pub fn parse_list(s: &str) -> Result<Vec<Cidr>, String> {
    let mut out = Vec::new();
    for item in s.split(|c: char| c == ',' || c.is_ascii_whitespace()) {
        if !item.is_empty() {
            out.push(Cidr::from_str(item)?);
        }
    }
    Ok(out)
}

/// True when `ip` is allowed: the list is empty (no restriction) or a network contains it.
pub fn allowed(list: &[Cidr], ip: IpAddr) -> bool {
    list.is_empty() || list.iter().any(|c| c.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn v4() {
        assert!(c("10.0.0.0/24").contains(ip("10.0.0.255")));
        assert!(!c("10.0.0.0/24").contains(ip("10.0.1.0")));
        assert!(c("10.0.0.7/24").contains(ip("10.0.0.1")));
        assert!(c("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(c("192.0.2.1").contains(ip("192.0.2.1")));
        assert!(!c("192.0.2.1").contains(ip("192.0.2.2")));
        assert!(c("192.0.2.1/32").contains(ip("192.0.2.1")));
        assert!(c("128.0.0.0/1").contains(ip("200.0.0.1")));
        assert!(!c("128.0.0.0/1").contains(ip("100.0.0.1")));
        assert!(c("10.0.0.0/31").contains(ip("10.0.0.1")));
        assert!(!c("10.0.0.0/31").contains(ip("10.0.0.2")));
    }

    #[test]
    fn v6() {
        assert!(c("fd00::/64").contains(ip("fd00::1")));
        assert!(!c("fd00::/64").contains(ip("fd00:0:0:1::1")));
        assert!(c("::/0").contains(ip("2001:db8::1")));
        assert!(c("::1").contains(ip("::1")));
        assert!(!c("::1/128").contains(ip("::2")));
        assert!(c("2001:db8::/127").contains(ip("2001:db8::1")));
        assert!(!c("2001:db8::/127").contains(ip("2001:db8::2")));
        assert!(!c("::/0").contains(ip("10.0.0.1")), "families never mix");
        assert!(!c("0.0.0.0/0").contains(ip("2001:db8::1")));
    }

    #[test]
    fn mapped() {
        assert!(c("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert!(!c("10.0.0.0/8").contains(ip("::ffff:11.1.2.3")));
        assert!(
            c("::ffff:10.0.0.0/104").contains(ip("10.9.9.9")),
            "mapped network"
        );
        assert!(!c("::ffff:10.0.0.0/104").contains(ip("11.9.9.9")));
        assert!(c("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn bad() {
        for s in [
            "",
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0/24",
            "x",
            "10.0.0.0/2 4",
            "10.0.0.0/+8",
        ] {
            assert!(s.parse::<Cidr>().is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn lists() {
        let l = parse_list("10.0.0.0/24, fd00::/64,,127.0.0.1").unwrap();
        assert_eq!(l.len(), 3);
        assert!(allowed(&l, ip("127.0.0.1")));
        assert!(!allowed(&l, ip("127.0.0.2")));
        assert!(allowed(&[], ip("127.0.0.2")));
        assert!(parse_list("10.0.0.0/24,bogus").is_err());
    }
}
