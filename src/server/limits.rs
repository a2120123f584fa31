//! Admission control for the server: how many connections at once in all, how many at once from
//! one address, how many answer bytes at once, and a lockout for addresses that keep guessing
//! the password wrong.
//!
//! The accept loop asks [`Gate::admit`] before a connection reaches a worker; a [`Permit`] gives
//! its slot back when dropped. When every slot is taken, [`Pending`] lets the server close the
//! oldest connection that has not yet delivered a whole request, so that many idle connections
//! from many addresses cannot keep an honest client (whose request arrives at once) out.
//!
//! Connections are counted per [`Source`]: one IPv4 address, or one IPv6 /64 (what one attacker
//! controls). Password guesses are counted per [`Account`]: the address itself (IPv4, or the
//! whole IPv6 address) with a budget of `--max-failures`, and for IPv6 also its /64 with a budget
//! [`NET64_FACTOR`] times larger. Only a guess counts: a well-formed request with a wrong password
//! (with a key configured, one that decrypted). [`Gate::may_guess`] is asked before every password
//! comparison, so connections opened in advance give no extra guesses. Every table here is
//! bounded, and a full failure table evicts rather than stops tracking, so an attacker with many
//! addresses costs memory proportional to the bound, not to the attack.

use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::server::cidr::canonical;

/// First lockout after the budget is spent; doubles with each further failure.
const LOCKOUT: Duration = Duration::from_secs(30);
/// Longest lockout.
const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(10 * 60);
/// Most accounts whose failures are remembered at once; when full, the oldest are evicted.
pub const MAX_TRACKED: usize = 16_384;
/// A full failure table evicts the oldest entry and every other entry seen within this span
/// after it: each eviction moves the oldest time forward by at least the span, so a stream of
/// failures from fresh addresses costs one scan of the table (under the gate's lock) per span
/// of time, about, not one per failure.
const EVICT_SPAN: Duration = Duration::from_millis(FORGET_AFTER.as_millis() as u64 / 16);
/// An IPv6 /64 may fail this many times `--max-failures` (over all its addresses) before the
/// whole /64 is locked out.
pub const NET64_FACTOR: u32 = 4;
/// Answer bytes being written at once, over all connections (frames of up to 16 MiB): clients
/// that do not read cannot make the server hold more. One answer is always allowed.
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// The unit of connection accounting: an IPv4 address or an IPv6 /64.
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

/// Who pays for a wrong password: the address, and for IPv6 also its /64.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Account {
    V4(u32),
    V6(u128),
    Net64(u64),
}

impl Account {
    /// The address's own account and, for IPv6, its /64's.
    fn of(ip: IpAddr) -> (Account, Option<Account>) {
        match canonical(ip) {
            IpAddr::V4(v4) => (Account::V4(u32::from(v4)), None),
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                // The top 64 bits of a 128-bit value always fit.
                let net = u64::try_from(bits >> 64).unwrap_or(u64::MAX);
                (Account::V6(bits), Some(Account::Net64(net)))
            }
        }
    }

    /// Failures allowed before a lockout.
    fn budget(self, max_failures: u32) -> u32 {
        match self {
            Account::Net64(_) => max_failures.saturating_mul(NET64_FACTOR),
            _ => max_failures,
        }
    }
}

struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

impl Failures {
    fn blocked(&self, now: Instant) -> Option<Duration> {
        self.blocked_until.filter(|&u| u > now).map(|u| u - now)
    }
}

struct State {
    total: usize,
    per_source: HashMap<Source, usize>,
    failures: HashMap<Account, Failures>,
}

impl State {
    /// The longer lockout of the address and its /64, if any.
    fn locked_out(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let (addr, net) = Account::of(ip);
        let of = |a: Account| self.failures.get(&a).and_then(|f| f.blocked(now));
        match (of(addr), net.and_then(of)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Makes room for one more account in a full failure table: forgets expired entries, and if
    /// none are, evicts the entries not locked out that were seen within [`EVICT_SPAN`] of the
    /// one seen longest ago (when every entry is locked out: those whose lockout ends within the
    /// span of the first to end). Tracking never stops.
    fn make_room(&mut self, now: Instant) {
        if self.failures.len() < MAX_TRACKED {
            return;
        }
        self.failures.retain(|_, f| {
            now.saturating_duration_since(f.last) < FORGET_AFTER || f.blocked(now).is_some()
        });
        if self.failures.len() < MAX_TRACKED {
            return;
        }
        // Not locked out before locked out; then by the time seen last, or the lockout's end.
        let order = |f: &Failures| match f.blocked_until.filter(|&u| u > now) {
            None => (false, f.last),
            Some(until) => (true, until),
        };
        let Some((locked, oldest)) = self.failures.values().map(order).min() else {
            return;
        };
        let cutoff = oldest + EVICT_SPAN;
        self.failures.retain(|_, f| {
            let (l, t) = order(f);
            l != locked || t > cutoff
        });
    }

    /// Charges one failure to `account`, locking it out once its budget is spent.
    fn charge(&mut self, account: Account, max_failures: u32, now: Instant) {
        if !self.failures.contains_key(&account) {
            self.make_room(now);
        }
        let f = self.failures.entry(account).or_insert(Failures {
            count: 0,
            last: now,
            blocked_until: None,
        });
        if now.saturating_duration_since(f.last) >= FORGET_AFTER {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
        let budget = account.budget(max_failures);
        if budget > 0 && f.count >= budget {
            let doublings = (f.count - budget).min(16);
            let lock = LOCKOUT.saturating_mul(1 << doublings).min(MAX_LOCKOUT);
            f.blocked_until = Some(now + lock);
        }
    }
}

/// Why a connection was turned away, or its request not evaluated.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `--max-connections` are being served already.
    Busy,
    /// `--max-per-ip` connections from this address are being served already.
    PerSource,
    /// This address guessed the password wrong too often; locked out for this long.
    LockedOut(Duration),
    /// [`MAX_ANSWER_BYTES`] are being written to clients already.
    AnswerBytes,
}

impl Refusal {
    pub fn describe(&self) -> String {
        match self {
            Refusal::Busy => "refused (server busy: --max-connections reached)".into(),
            Refusal::PerSource => {
                "refused (too many connections from this address: --max-per-ip)".into()
            }
            Refusal::LockedOut(d) => format!(
                "refused (locked out for {}s after repeated wrong passwords)",
                d.as_secs().max(1)
            ),
            Refusal::AnswerBytes => {
                "refused (server busy: too many answer bytes in flight to clients not reading)"
                    .into()
            }
        }
    }
}

pub struct Gate {
    state: Mutex<State>,
    max_total: usize,
    max_per_source: usize,
    max_failures: u32,
    /// True while `failures` may hold an entry (set under the lock by `failed`): while false,
    /// [`Gate::may_guess`] and [`Gate::succeeded`] take no lock.
    any_failures: AtomicBool,
    /// Answer bytes reserved by [`Gate::reserve_answer`] and not yet given back.
    answer_bytes: AtomicUsize,
}

/// One admitted connection; dropping it frees the slot.
pub struct Permit {
    gate: Arc<Gate>,
    /// The address's count to give back; `None` once given back early.
    source: Option<Source>,
}

impl Permit {
    /// Gives the per-address slot back early (the answer is written); the total slot stays
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

/// Answer bytes reserved with [`Gate::reserve_answer`]; given back when dropped.
pub struct AnswerBytes<'a> {
    gate: &'a Gate,
    bytes: usize,
}

impl Drop for AnswerBytes<'_> {
    fn drop(&mut self) {
        self.gate
            .answer_bytes
            .fetch_sub(self.bytes, Ordering::AcqRel);
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
            answer_bytes: AtomicUsize::new(0),
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
        if let Some(d) = st.locked_out(ip, now) {
            return Err(Refusal::LockedOut(d));
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

    /// Asked right before a password comparison: whether `ip` (or its /64) is locked out now.
    /// Costs no lock while nobody has failed lately.
    pub fn may_guess(&self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        if !self.any_failures.load(Ordering::Acquire) {
            return Ok(());
        }
        match self.lock().locked_out(ip, now) {
            Some(d) => Err(Refusal::LockedOut(d)),
            None => Ok(()),
        }
    }

    /// Records a wrong password from `ip` (the only thing that counts toward a lockout): charged
    /// to the address and, for IPv6, to its /64.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let (addr, net) = Account::of(ip);
        let mut st = self.lock();
        st.charge(addr, self.max_failures, now);
        if let Some(net) = net {
            st.charge(net, self.max_failures, now);
        }
        self.any_failures.store(true, Ordering::Release);
    }

    /// Records a successful authentication: the address's own failures are forgotten (its
    /// /64's are not: one honest host must not reset its neighbours' budget).
    pub fn succeeded(&self, ip: IpAddr) {
        // The common case, nobody has failed lately, costs no lock.
        if !self.any_failures.load(Ordering::Acquire) {
            return;
        }
        let (addr, _) = Account::of(ip);
        let mut st = self.lock();
        st.failures.remove(&addr);
        self.any_failures
            .store(!st.failures.is_empty(), Ordering::Release);
    }

    /// Reserves `bytes` of answer to write, or refuses when [`MAX_ANSWER_BYTES`] are being
    /// written already (one answer alone is always allowed). No lock: one atomic add.
    pub fn reserve_answer(&self, bytes: usize) -> Result<AnswerBytes<'_>, Refusal> {
        let before = self.answer_bytes.fetch_add(bytes, Ordering::AcqRel);
        let reserved = AnswerBytes { gate: self, bytes };
        if before != 0 && before.saturating_add(bytes) > MAX_ANSWER_BYTES {
            return Err(Refusal::AnswerBytes); // `reserved` gives the bytes back
        }
        Ok(reserved)
    }

    /// Connections being served now (for tests and diagnostics).
    pub fn active(&self) -> usize {
        self.lock().total
    }

    /// Accounts in the failure table (for tests).
    pub fn tracked(&self) -> usize {
        self.lock().failures.len()
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

    fn locked(g: &Gate, a: &str, now: Instant) -> bool {
        matches!(g.may_guess(ip(a), now), Err(Refusal::LockedOut(_)))
    }

    #[test]
    fn ipv6_locks_per_address_then_per_64() {
        let g = Gate::new(10, 10, 2);
        let now = Instant::now();
        g.failed(ip("2001:db8::1"), now);
        g.failed(ip("2001:db8::1"), now);
        assert!(locked(&g, "2001:db8::1", now));
        // The neighbour has its own budget, until the /64's (4 x 2) is spent.
        assert!(!locked(&g, "2001:db8::2", now));
        for a in ["2001:db8::2", "2001:db8::3", "2001:db8::4"] {
            assert!(!locked(&g, a, now));
            g.failed(ip(a), now);
            assert!(!locked(&g, "2001:db8::5", now));
            g.failed(ip(a), now);
        }
        assert!(locked(&g, "2001:db8::5", now));
        assert!(g.admit(ip("2001:db8::5"), now, false).is_err());
        assert!(!locked(&g, "2001:db8:0:1::5", now));
        // A success forgets the address's failures, not its /64's.
        g.succeeded(ip("2001:db8::1"));
        assert!(locked(&g, "2001:db8::1", now));
    }

    #[test]
    fn full_failure_table_keeps_tracking() {
        let g = Gate::new(10, 10, 5);
        let now = Instant::now();
        for i in 0..MAX_TRACKED as u32 {
            g.failed(IpAddr::V4((0x0a00_0000 + i).into()), now);
        }
        assert_eq!(g.tracked(), MAX_TRACKED);
        let fresh = ip("192.0.2.1");
        let later = now + Duration::from_secs(1);
        for _ in 0..4 {
            g.failed(fresh, later);
        }
        assert!(g.may_guess(fresh, later).is_ok());
        g.failed(fresh, later);
        assert!(locked(&g, "192.0.2.1", later));
        // The fill happened within one EVICT_SPAN: all of it was evicted at once.
        assert_eq!(g.tracked(), 1);
    }

    #[test]
    fn full_table_evicts_the_oldest_not_locked_out() {
        let g = Gate::new(10, 10, 2);
        let t0 = Instant::now();
        // The oldest entry is locked out (8 minutes, after 6 failures); it must survive.
        for _ in 0..6 {
            g.failed(ip("192.0.2.1"), t0);
        }
        // Half the table seen at t1, the other half (less one) a minute later.
        let t1 = t0 + Duration::from_secs(1);
        let half = (MAX_TRACKED / 2) as u32;
        for i in 0..half {
            g.failed(IpAddr::V4((0x0a00_0000 + i).into()), t1);
        }
        let t2 = t1 + Duration::from_secs(60);
        for i in half..(MAX_TRACKED - 1) as u32 {
            g.failed(IpAddr::V4((0x0a00_0000 + i).into()), t2);
        }
        assert_eq!(g.tracked(), MAX_TRACKED);
        let t3 = t2 + Duration::from_secs(1);
        g.failed(ip("192.0.2.2"), t3);
        // The t1 half went; the locked-out entry, the t2 half and the new one stay.
        assert!(locked(&g, "192.0.2.1", t3));
        assert_eq!(g.tracked(), 1 + (MAX_TRACKED / 2 - 1) + 1);
    }

    #[test]
    fn lockout_is_checked_before_each_guess() {
        let g = Gate::new(10, 10, 2);
        let now = Instant::now();
        let a = ip("10.0.0.9");
        // Admitted before any failure, as a connection opened in advance is.
        let _p = g.admit(a, now, false).unwrap();
        assert!(g.may_guess(a, now).is_ok());
        g.failed(a, now);
        g.failed(a, now);
        assert_eq!(g.may_guess(a, now), Err(Refusal::LockedOut(LOCKOUT)));
        assert!(g.may_guess(ip("10.0.0.8"), now).is_ok());
    }

    #[test]
    fn answer_bytes_are_capped_but_one_answer_always_fits() {
        let g = Gate::new(10, 10, 2);
        let big = g.reserve_answer(MAX_ANSWER_BYTES + 1).unwrap();
        assert!(g.reserve_answer(1).is_err());
        drop(big);
        let a = g.reserve_answer(MAX_ANSWER_BYTES / 2).unwrap();
        let b = g.reserve_answer(MAX_ANSWER_BYTES / 2).unwrap();
        assert_eq!(g.reserve_answer(1).err(), Some(Refusal::AnswerBytes));
        drop(a);
        assert!(g.reserve_answer(1).is_ok());
        drop(b);
        assert_eq!(g.answer_bytes.load(Ordering::Relaxed), 0);
    }
}
