//! Admission control for the server: how many connections at once in all, how many at once from
//! one address, and a lockout for addresses that keep failing authentication.
//!
//! The accept loop asks [`Gate::admit`] before a connection reaches a worker; a [`Permit`] gives
//! its slot back when dropped. Addresses are grouped as the attacker controls them: one IPv4
//! address, or one IPv6 /64. Every table here is bounded, so an attacker with many addresses
//! costs memory proportional to the bound, not to the attack.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::cidr::canonical;

/// First lockout after `max_failures` failures; doubles with each further failure.
const LOCKOUT: Duration = Duration::from_secs(30);
/// Longest lockout.
const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(10 * 60);
/// Most addresses whose failures are remembered at once.
const MAX_TRACKED: usize = 16_384;

/// The unit of accounting: an IPv4 address or an IPv6 /64.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Source(u128, bool);

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match canonical(ip) {
            IpAddr::V4(v4) => Source(u128::from(u32::from(v4)), false),
            IpAddr::V6(v6) => Source(u128::from(v6) >> 64, true),
        }
    }
}

struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

struct State {
    total: usize,
    per_source: HashMap<Source, usize>,
    failures: HashMap<Source, Failures>,
}

/// Why a connection was turned away before a byte was read.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `--max-connections` are being served already.
    Busy,
    /// `--max-per-ip` connections from this address are being served already.
    PerSource,
    /// This address failed authentication too often; locked out for this long.
    LockedOut(Duration),
}

impl Refusal {
    pub fn describe(&self) -> String {
        match self {
            Refusal::Busy => "refused (server busy: --max-connections reached)".into(),
            Refusal::PerSource => {
                "refused (too many connections from this address: --max-per-ip)".into()
            }
            Refusal::LockedOut(d) => format!(
                "refused (locked out for {}s after repeated failures)",
                d.as_secs().max(1)
            ),
        }
    }
}

pub struct Gate {
    state: Mutex<State>,
    max_total: usize,
    max_per_source: usize,
    max_failures: u32,
}

/// One admitted connection; dropping it frees the slot.
pub struct Permit {
    gate: Arc<Gate>,
    source: Source,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut st = self.gate.lock();
        st.total = st.total.saturating_sub(1);
        if let Some(n) = st.per_source.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.per_source.remove(&self.source);
            }
        }
    }
}

impl Gate {
    pub fn new(max_total: usize, max_per_source: usize, max_failures: u32) -> Arc<Gate> {
        Arc::new(Gate {
            state: Mutex::new(State {
                total: 0,
                per_source: HashMap::new(),
                failures: HashMap::new(),
            }),
            max_total,
            max_per_source,
            max_failures,
        })
    }

    /// A poisoned lock only means another thread panicked while holding it; the counters are
    /// still usable, and the release build aborts on panic anyway.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `ip`, or says why not.
    pub fn admit(self: &Arc<Gate>, ip: IpAddr, now: Instant) -> Result<Permit, Refusal> {
        let source = Source::of(ip);
        let mut st = self.lock();
        if let Some(f) = st.failures.get(&source) {
            if let Some(until) = f.blocked_until {
                if until > now {
                    return Err(Refusal::LockedOut(until - now));
                }
            }
        }
        if st.total >= self.max_total {
            return Err(Refusal::Busy);
        }
        let n = st.per_source.entry(source).or_insert(0);
        if *n >= self.max_per_source {
            return Err(Refusal::PerSource);
        }
        *n += 1;
        st.total += 1;
        Ok(Permit {
            gate: Arc::clone(self),
            source,
        })
    }

    /// Records a failed authentication (wrong password, undecryptable or malformed request).
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let source = Source::of(ip);
        let max = self.max_failures;
        let mut st = self.lock();
        if st.failures.len() >= MAX_TRACKED && !st.failures.contains_key(&source) {
            st.failures.retain(|_, f| {
                now.saturating_duration_since(f.last) < FORGET_AFTER
                    || f.blocked_until.is_some_and(|u| u > now)
            });
            if st.failures.len() >= MAX_TRACKED {
                return;
            }
        }
        let f = st.failures.entry(source).or_insert(Failures {
            count: 0,
            last: now,
            blocked_until: None,
        });
        if now.saturating_duration_since(f.last) >= FORGET_AFTER {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
        if max > 0 && f.count >= max {
            let doublings = (f.count - max).min(16);
            let lock = LOCKOUT.saturating_mul(1 << doublings).min(MAX_LOCKOUT);
            f.blocked_until = Some(now + lock);
        }
    }

    /// Records a successful authentication: the address's failures are forgotten.
    pub fn succeeded(&self, ip: IpAddr) {
        let source = Source::of(ip);
        let mut st = self.lock();
        if !st.failures.is_empty() {
            st.failures.remove(&source);
        }
    }

    /// Connections being served now (for tests and diagnostics).
    pub fn active(&self) -> usize {
        self.lock().total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_source_and_total_caps() {
        let g = Gate::new(3, 2, 5);
        let now = Instant::now();
        let a1 = g.admit(ip("10.0.0.1"), now).unwrap();
        let _a2 = g.admit(ip("::ffff:10.0.0.1"), now).unwrap();
        assert_eq!(g.admit(ip("10.0.0.1"), now).err(), Some(Refusal::PerSource));
        let _b = g.admit(ip("10.0.0.2"), now).unwrap();
        assert_eq!(g.admit(ip("10.0.0.3"), now).err(), Some(Refusal::Busy));
        drop(a1);
        assert_eq!(g.active(), 2);
        assert!(g.admit(ip("10.0.0.1"), now).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64() {
        let g = Gate::new(10, 1, 5);
        let now = Instant::now();
        let _a = g.admit(ip("2001:db8::1"), now).unwrap();
        assert_eq!(
            g.admit(ip("2001:db8::2"), now).err(),
            Some(Refusal::PerSource)
        );
        assert!(g.admit(ip("2001:db8:0:1::1"), now).is_ok());
    }

    #[test]
    fn lockout_after_failures_only_for_that_address() {
        let g = Gate::new(10, 10, 3);
        let now = Instant::now();
        let bad = ip("10.0.0.9");
        g.failed(bad, now);
        g.failed(bad, now);
        assert!(g.admit(bad, now).is_ok());
        g.failed(bad, now);
        assert!(matches!(g.admit(bad, now).err(), Some(Refusal::LockedOut(d)) if d == LOCKOUT));
        assert!(g.admit(ip("10.0.0.8"), now).is_ok());
        // Lockout ends, then doubles on the next failure.
        let later = now + LOCKOUT;
        assert!(g.admit(bad, later).is_ok());
        g.failed(bad, later);
        assert!(
            matches!(g.admit(bad, later).err(), Some(Refusal::LockedOut(d)) if d == LOCKOUT * 2)
        );
    }

    #[test]
    fn success_forgets_failures() {
        let g = Gate::new(10, 10, 2);
        let now = Instant::now();
        let a = ip("10.0.0.9");
        g.failed(a, now);
        g.succeeded(a);
        g.failed(a, now);
        assert!(g.admit(a, now).is_ok());
    }

    #[test]
    fn zero_disables_lockout() {
        let g = Gate::new(10, 10, 0);
        let now = Instant::now();
        for _ in 0..100 {
            g.failed(ip("10.0.0.9"), now);
        }
        assert!(g.admit(ip("10.0.0.9"), now).is_ok());
    }
}
