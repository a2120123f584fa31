//! Admission control for the server: how many connections at once in all, how many at once from
//! one address, and a lockout for addresses that keep failing authentication.
//!
//! The accept loop asks [`Gate::admit`] before a connection reaches a worker; a [`Permit`] gives
//! its slot back when dropped. When every slot is taken, [`Pending`] lets the server close the
//! oldest connection that has not yet delivered a whole request, so that many idle connections
//! from many addresses cannot keep an honest client (whose request arrives at once) out. Addresses are grouped as the attacker controls them: one IPv4
//! address, or one IPv6 /64. Every table here is bounded, so an attacker with many addresses
//! costs memory proportional to the bound, not to the attack.

use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::server::cidr::canonical;

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
    /// True while `failures` may hold an entry (set under the lock by `failed`).
    any_failures: AtomicBool,
}

/// One admitted connection; dropping it frees the slot.
pub struct Permit {
    gate: Arc<Gate>,
    /// The address's count to give back; `None` once given back early.
    source: Option<Source>,
}

impl Permit {
    /// Gives the per-address slot back early (the request has arrived); the total slot stays
    /// taken until the connection is closed.
    pub fn release_source(&mut self) {
        if let Some(source) = self.source.take() {
            let mut st = self.gate.lock();
            release(&mut st, source);
        }
    }
}

fn release(st: &mut State, source: Source) {
    if let Some(n) = st.per_source.get_mut(&source) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            st.per_source.remove(&source);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut st = self.gate.lock();
        st.total = st.total.saturating_sub(1);
        if let Some(source) = self.source.take() {
            release(&mut st, source);
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
            any_failures: AtomicBool::new(false),
        })
    }

    /// A poisoned lock only means another thread panicked while holding it; the counters are
    /// still usable, and the release build aborts on panic anyway.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `ip`, or says why not. With `over_cap`, up to twice
    /// `--max-connections` are admitted: used right after an incomplete connection was evicted,
    /// whose slot frees as soon as its worker sees the shutdown.
    pub fn admit(
        self: &Arc<Gate>,
        ip: IpAddr,
        now: Instant,
        over_cap: bool,
    ) -> Result<Permit, Refusal> {
        let source = Source::of(ip);
        let mut st = self.lock();
        if let Some(until) = st.failures.get(&source).and_then(|f| f.blocked_until) {
            if until > now {
                return Err(Refusal::LockedOut(until - now));
            }
        }
        if st.per_source.get(&source).copied().unwrap_or(0) >= self.max_per_source {
            return Err(Refusal::PerSource);
        }
        let cap = if over_cap {
            self.max_total.saturating_mul(2)
        } else {
            self.max_total
        };
        if st.total >= cap {
            return Err(Refusal::Busy);
        }
        *st.per_source.entry(source).or_insert(0) += 1;
        st.total += 1;
        Ok(Permit {
            gate: Arc::clone(self),
            source: Some(source),
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
        self.any_failures.store(true, Ordering::Relaxed);
        f.last = now;
        if max > 0 && f.count >= max {
            let doublings = (f.count - max).min(16);
            let lock = LOCKOUT.saturating_mul(1 << doublings).min(MAX_LOCKOUT);
            f.blocked_until = Some(now + lock);
        }
    }

    /// Records a successful authentication: the address's failures are forgotten.
    pub fn succeeded(&self, ip: IpAddr) {
        // The common case, nobody has failed lately, costs no lock.
        if !self.any_failures.load(Ordering::Relaxed) {
            return;
        }
        let source = Source::of(ip);
        let mut st = self.lock();
        st.failures.remove(&source);
        self.any_failures
            .store(!st.failures.is_empty(), Ordering::Relaxed);
    }

    /// Connections being served now (for tests and diagnostics).
    pub fn active(&self) -> usize {
        self.lock().total
    }
}

/// Admitted connections whose request has not fully arrived yet, oldest first.
///
/// Each entry shares ownership of its stream (an `Arc`), so the descriptor an eviction shuts
/// down is open by construction: it cannot be closed, or its number reused, while registered,
/// whatever order the worker drops things in. The worker deregisters before it closes (see
/// `server/receive.rs`), so that its close is the last reference and sends the answer at once.
#[derive(Default)]
pub struct Pending {
    /// id (grows with accept order) -> stream. A scan finds the oldest; it runs only when the
    /// server is full, over at most twice `--max-connections` entries.
    map: Mutex<HashMap<u64, Arc<TcpStream>>>,
    next: AtomicU64,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<TcpStream>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection; ids grow with accept order.
    pub fn register(&self, stream: Arc<TcpStream>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, stream);
        id
    }

    /// The connection's request arrived, or the connection is about to be closed.
    pub fn done(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Shuts down the oldest incomplete connection (its worker's read returns at once).
    /// Returns false when there is none.
    pub fn evict_oldest(&self) -> bool {
        self.evict_oldest_except(u64::MAX)
    }

    /// Like [`Pending::evict_oldest`], but never the connection `keep`.
    pub fn evict_oldest_except(&self, keep: u64) -> bool {
        let evicted = {
            let mut map = self.lock();
            let oldest = map.keys().filter(|&&id| id != keep).min().copied();
            oldest.and_then(|id| map.remove(&id))
        };
        match evicted {
            Some(stream) => {
                // Shutting down (not closing) makes the worker's read return at once; its
                // worker closes the descriptor. A peer already gone makes this fail: no matter.
                let _ = stream.shutdown(Shutdown::Both);
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        let a1 = g.admit(ip("10.0.0.1"), now, false).unwrap();
        let _a2 = g.admit(ip("::ffff:10.0.0.1"), now, false).unwrap();
        assert_eq!(
            g.admit(ip("10.0.0.1"), now, false).err(),
            Some(Refusal::PerSource)
        );
        let _b = g.admit(ip("10.0.0.2"), now, false).unwrap();
        assert_eq!(
            g.admit(ip("10.0.0.3"), now, false).err(),
            Some(Refusal::Busy)
        );
        drop(a1);
        assert_eq!(g.active(), 2);
        assert!(g.admit(ip("10.0.0.1"), now, false).is_ok());
    }

    #[test]
    fn over_cap_admits_up_to_twice_the_total() {
        let g = Gate::new(1, 10, 5);
        let now = Instant::now();
        let _a = g.admit(ip("10.0.0.1"), now, false).unwrap();
        assert_eq!(
            g.admit(ip("10.0.0.2"), now, false).err(),
            Some(Refusal::Busy)
        );
        let _b = g.admit(ip("10.0.0.2"), now, true).unwrap();
        assert_eq!(
            g.admit(ip("10.0.0.3"), now, true).err(),
            Some(Refusal::Busy)
        );
    }

    #[test]
    fn pending_evicts_oldest_incomplete_connection() {
        use std::io::Read;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let _c1 = std::net::TcpStream::connect(addr).unwrap();
        let _c2 = std::net::TcpStream::connect(addr).unwrap();
        let s1 = Arc::new(l.accept().unwrap().0);
        let s2 = Arc::new(l.accept().unwrap().0);
        let p = Pending::default();
        let id1 = p.register(Arc::clone(&s1));
        let id2 = p.register(Arc::clone(&s2));
        assert!(id1 < id2);
        assert!(p.evict_oldest());
        // The evicted side reads EOF at once instead of waiting for its deadline.
        let mut b = [0u8; 1];
        assert_eq!((&*s1).read(&mut b).unwrap(), 0);
        p.done(id2);
        assert!(p.is_empty());
        assert!(!p.evict_oldest());
    }

    #[test]
    fn release_source_frees_the_address_not_the_total() {
        let g = Gate::new(2, 1, 5);
        let now = Instant::now();
        let mut a = g.admit(ip("10.0.0.1"), now, false).unwrap();
        assert_eq!(
            g.admit(ip("10.0.0.1"), now, false).err(),
            Some(Refusal::PerSource)
        );
        a.release_source();
        let _b = g.admit(ip("10.0.0.1"), now, false).unwrap();
        assert_eq!(
            g.admit(ip("10.0.0.2"), now, false).err(),
            Some(Refusal::Busy)
        );
        drop(a);
        assert_eq!(g.active(), 1);
    }

    #[test]
    fn ipv6_counts_per_64() {
        let g = Gate::new(10, 1, 5);
        let now = Instant::now();
        let _a = g.admit(ip("2001:db8::1"), now, false).unwrap();
        assert_eq!(
            g.admit(ip("2001:db8::2"), now, false).err(),
            Some(Refusal::PerSource)
        );
        assert!(g.admit(ip("2001:db8:0:1::1"), now, false).is_ok());
    }

    #[test]
    fn lockout_after_failures_only_for_that_address() {
        let g = Gate::new(10, 10, 3);
        let now = Instant::now();
        let bad = ip("10.0.0.9");
        g.failed(bad, now);
        g.failed(bad, now);
        assert!(g.admit(bad, now, false).is_ok());
        g.failed(bad, now);
        assert!(
            matches!(g.admit(bad, now, false).err(), Some(Refusal::LockedOut(d)) if d == LOCKOUT)
        );
        assert!(g.admit(ip("10.0.0.8"), now, false).is_ok());
        // Lockout ends, then doubles on the next failure.
        let later = now + LOCKOUT;
        assert!(g.admit(bad, later, false).is_ok());
        g.failed(bad, later);
        assert!(
            matches!(g.admit(bad, later, false).err(), Some(Refusal::LockedOut(d)) if d == LOCKOUT * 2)
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
        assert!(g.admit(a, now, false).is_ok());
    }

    #[test]
    fn zero_disables_lockout() {
        let g = Gate::new(10, 10, 0);
        let now = Instant::now();
        for _ in 0..100 {
            g.failed(ip("10.0.0.9"), now);
        }
        assert!(g.admit(ip("10.0.0.9"), now, false).is_ok());
    }
}
