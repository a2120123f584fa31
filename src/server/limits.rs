//! Admission control for the server: how many connections at once in all, how many at once from
//! one address, how many answer bytes at once, and a lockout for addresses that keep guessing
//! the password wrong.
//!
//! A worker asks [`Gate::admit`] right after `accept`, before it reads a byte
//! (`server/serve.rs`); a [`Permit`] gives its slot back when dropped. When every slot is taken,
//! [`Pending`] lets the server close the oldest connection that has not yet delivered a whole
//! request, so that many idle connections from many addresses cannot keep an honest client
//! (whose request arrives at once) out.
//!
//! Connections are counted per [`Source`]: one IPv4 address, or one IPv6 /64 (what one attacker
//! controls). Password guesses are counted per [`Account`]: the address itself (IPv4, or the
//! whole IPv6 address) with a budget of `--max-failures`, and for IPv6 also its /64 with a budget
//! [`NET64_FACTOR`] times larger. Only a guess counts: a well-formed request with a wrong password
//! (with a key configured, one that decrypted). [`Gate::may_guess`] is asked before every password
//! comparison, so connections opened in advance give no extra guesses. Every table here is
//! bounded, and a full failure table evicts rather than stops tracking, so an attacker with many
//! addresses costs memory proportional to the bound, not to the attack.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::server::cidr::canonical;

/// First lockout after the budget is spent; doubles with each further failure.
const LOCKOUT: Duration = Duration::from_secs(30);
/// Longest lockout.
const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(10 * 60);
/// Most accounts whose failures are remembered at once; when full, the entry whose record is
/// worth least (the one that would expire first) is evicted, in O(log n).
pub const MAX_TRACKED: usize = 16_384;
/// Wrong passwords remembered per account (as short salted digests, never the password): the
/// same wrong password sent again costs nothing, so a client with a stale password file retrying
/// does not lock its address out, while distinct guesses still count.
const RECENT_WRONG: usize = 32;
/// An IPv6 /64 may fail this many times `--max-failures` (over all its addresses) before the
/// whole /64 is locked out.
pub const NET64_FACTOR: u32 = 4;
/// Answer bytes queued at once, over all connections, until each client has acknowledged them
/// (frames of up to 16 MiB): clients that do not read cannot make the server, or its kernel,
/// hold more. Two of the largest answers fit, so that one client sitting on its copy of the
/// largest secret does not keep it from another. One answer is always allowed.
pub const MAX_ANSWER_BYTES: usize = 33 * 1024 * 1024;
/// Most answer bytes one [`Source`] may have queued at once (its first answer is always
/// allowed): one address that does not read cannot hold up the answers of others.
pub const MAX_ANSWER_BYTES_PER_SOURCE: usize = MAX_ANSWER_BYTES / 2;

/// Longest password the server accepts in its files: generous for any human or generated
/// password, and what [`MAX_REQUEST_BYTES`] is sized for.
pub const MAX_PASSWORD: usize = 4096;
/// Largest request frame the server reads: a password of [`MAX_PASSWORD`] bytes, a space, a
/// secret name of 255 bytes and the encryption's nonce and tag fit with room to spare. Anything
/// larger is no real request, and each byte read costs a tag check per candidate key.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

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
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
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

/// A short salted digest of a wrong password (the salt is drawn per process, so the digest
/// means nothing outside it).
type WrongDigest = u64;

struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Option<Instant>,
    /// The last [`RECENT_WRONG`] distinct wrong passwords, as digests; oldest first.
    recent: Vec<WrongDigest>,
}

impl Failures {
    fn blocked(&self, now: Instant) -> Option<Duration> {
        self.blocked_until.filter(|&u| u > now).map(|u| u - now)
    }

    /// When this record stops mattering: its failures forgotten and its lockout over.
    fn expiry(&self) -> Instant {
        let forget = self.last + FORGET_AFTER;
        self.blocked_until.map_or(forget, |b| b.max(forget))
    }
}

struct Use {
    conns: usize,
    answer_bytes: usize,
}

struct State {
    total: usize,
    per_source: HashMap<Source, Use>,
    failures: HashMap<Account, Failures>,
    /// The failure records by [`Failures::expiry`], soonest on top: forgotten first, and
    /// evicted first when the table is full. The attacker who fills the table gains nothing
    /// against a recent guesser: its record expires after theirs. A record's expiry only grows;
    /// each change pushes the new one, and entries whose time no longer matches their record
    /// are stale and skipped when popped (the heap is rebuilt when stale ones pile up).
    by_expiry: BinaryHeap<Reverse<(Instant, Account)>>,
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

    /// Forgets every record expired by `now`, oldest first: each is removed once, so the cost
    /// is O(log n) per record over its life.
    fn forget_expired(&mut self, now: Instant) {
        while let Some(&Reverse((at, _))) = self.by_expiry.peek() {
            if at > now {
                break;
            }
            self.pop_soonest();
        }
    }

    /// Removes the top of the heap, and its record unless the entry is stale.
    fn pop_soonest(&mut self) -> bool {
        let Some(Reverse((at, account))) = self.by_expiry.pop() else {
            return false;
        };
        if self.failures.get(&account).map(Failures::expiry) == Some(at) {
            self.failures.remove(&account);
        }
        true
    }

    /// Makes room for one more account in a full failure table: the record that expires first
    /// goes (O(log n) amortized). Tracking never stops.
    fn make_room(&mut self) {
        while self.failures.len() >= MAX_TRACKED {
            if !self.pop_soonest() {
                return;
            }
        }
    }

    /// Charges one wrong password to `account`, locking it out once its budget is spent. The
    /// same wrong password as one of its recent ones costs nothing.
    fn charge(&mut self, account: Account, wrong: WrongDigest, max_failures: u32, now: Instant) {
        self.forget_expired(now);
        if !self.failures.contains_key(&account) {
            self.make_room();
        }
        let f = self.failures.entry(account).or_insert(Failures {
            count: 0,
            last: now,
            blocked_until: None,
            recent: Vec::new(),
        });
        if f.recent.contains(&wrong) {
            return;
        }
        if f.recent.len() >= RECENT_WRONG {
            f.recent.remove(0);
        }
        f.recent.push(wrong);
        f.count = f.count.saturating_add(1);
        f.last = now;
        let budget = account.budget(max_failures);
        if budget > 0 && f.count >= budget {
            let doublings = (f.count - budget).min(16);
            let lock = LOCKOUT.saturating_mul(1 << doublings).min(MAX_LOCKOUT);
            f.blocked_until = Some(now + lock);
        }
        let after = f.expiry();
        self.by_expiry.push(Reverse((after, account)));
        if self.by_expiry.len() > 2 * MAX_TRACKED {
            // Mostly stale entries: rebuild from the records (O(n), once per n changes).
            self.by_expiry = self
                .failures
                .iter()
                .map(|(a, f)| Reverse((f.expiry(), *a)))
                .collect();
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
    /// Salt of the digests of wrong passwords, drawn at start.
    salt: [u8; 16],
    /// True while `failures` may hold an entry (set under the lock by `failed`): while false,
    /// [`Gate::may_guess`] takes no lock.
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

fn release(st: &mut State, source: Source, conns: usize, bytes: usize) {
    if let Some(u) = st.per_source.get_mut(&source) {
        u.conns = u.conns.saturating_sub(conns);
        u.answer_bytes = u.answer_bytes.saturating_sub(bytes);
        if u.conns == 0 && u.answer_bytes == 0 {
            st.per_source.remove(&source);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut st = self.gate.lock();
        st.total = st.total.saturating_sub(1);
        if let Some(source) = self.source.take() {
            release(&mut st, source, 1, 0);
        }
    }
}

/// Answer bytes reserved with [`Gate::reserve_answer`]; given back when dropped (once the
/// client has acknowledged them, or its connection was reset).
pub struct AnswerBytes {
    gate: Arc<Gate>,
    source: Source,
    bytes: usize,
}

impl Drop for AnswerBytes {
    fn drop(&mut self) {
        self.gate
            .answer_bytes
            .fetch_sub(self.bytes, Ordering::AcqRel);
        let mut st = self.gate.lock();
        release(&mut st, self.source, 0, self.bytes);
    }
}

impl Gate {
    pub fn new(max_total: usize, max_per_source: usize, max_failures: u32) -> Arc<Gate> {
        let mut salt = [0u8; 16];
        // Without a random source the digests are still distinct per password; only their
        // meaning outside this process (none: they never leave it) would change.
        let _ = getrandom::getrandom(&mut salt);
        Arc::new(Gate {
            state: Mutex::new(State {
                total: 0,
                per_source: HashMap::new(),
                failures: HashMap::new(),
                by_expiry: BinaryHeap::new(),
            }),
            max_total,
            max_per_source,
            max_failures,
            salt,
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
        if st.per_source.get(&source).map_or(0, |u| u.conns) >= self.max_per_source {
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
        st.per_source
            .entry(source)
            .or_insert(Use {
                conns: 0,
                answer_bytes: 0,
            })
            .conns += 1;
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
    /// to the address and, for IPv6, to its /64, unless it is one of the recent wrong passwords
    /// of that account. A success forgets nothing: the budget is of distinct wrong passwords
    /// within [`FORGET_AFTER`], whatever valid requests come in between.
    pub fn failed(&self, ip: IpAddr, password: &[u8], now: Instant) {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(password);
        let full: [u8; 32] = h.finalize().into();
        let mut short = [0u8; 8];
        short.copy_from_slice(full.get(..8).unwrap_or(&[0; 8]));
        let wrong = u64::from_le_bytes(short);
        let (addr, net) = Account::of(ip);
        let mut st = self.lock();
        st.charge(addr, wrong, self.max_failures, now);
        if let Some(net) = net {
            st.charge(net, wrong, self.max_failures, now);
        }
        self.any_failures
            .store(!st.failures.is_empty(), Ordering::Release);
    }

    /// Reserves `bytes` of answer for a client at `ip`, or refuses when [`MAX_ANSWER_BYTES`]
    /// are queued already, or [`MAX_ANSWER_BYTES_PER_SOURCE`] for its address (a first answer
    /// alone is always allowed, in all and per address).
    pub fn reserve_answer(
        self: &Arc<Gate>,
        ip: IpAddr,
        bytes: usize,
    ) -> Result<AnswerBytes, Refusal> {
        let source = Source::of(ip);
        let mut st = self.lock();
        let before = self.answer_bytes.load(Ordering::Acquire);
        let mine = st.per_source.get(&source).map_or(0, |u| u.answer_bytes);
        let over_all = before != 0 && before.saturating_add(bytes) > MAX_ANSWER_BYTES;
        let over_mine = mine != 0 && mine.saturating_add(bytes) > MAX_ANSWER_BYTES_PER_SOURCE;
        if over_all || over_mine {
            return Err(Refusal::AnswerBytes);
        }
        self.answer_bytes.fetch_add(bytes, Ordering::AcqRel);
        st.per_source
            .entry(source)
            .or_insert(Use {
                conns: 0,
                answer_bytes: 0,
            })
            .answer_bytes += bytes;
        drop(st);
        Ok(AnswerBytes {
            gate: Arc::clone(self),
            source,
            bytes,
        })
    }

    /// Answer bytes reserved now (for tests and diagnostics).
    pub fn answer_bytes(&self) -> usize {
        self.answer_bytes.load(Ordering::Acquire)
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
/// `server/serve.rs`), so that its close is the last reference and sends the answer at once.
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

    /// A wrong password never sent before.
    fn fail(g: &Gate, ip: IpAddr, now: Instant) {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        g.failed(ip, format!("guess-{n}").as_bytes(), now);
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
        fail(&g, bad, now);
        fail(&g, bad, now);
        assert!(g.admit(bad, now, false).is_ok());
        fail(&g, bad, now);
        assert!(
            matches!(g.admit(bad, now, false).err(), Some(Refusal::LockedOut(d)) if d == LOCKOUT)
        );
        assert!(g.admit(ip("10.0.0.8"), now, false).is_ok());
        // Lockout ends, then doubles on the next failure.
        let later = now + LOCKOUT;
        assert!(g.admit(bad, later, false).is_ok());
        fail(&g, bad, later);
        assert!(
            matches!(g.admit(bad, later, false).err(), Some(Refusal::LockedOut(d)) if d == LOCKOUT * 2)
        );
    }

    #[test]
    fn success_forgets_nothing_and_repeats_cost_once() {
        let g = Gate::new(10, 10, 3);
        let now = Instant::now();
        let a = ip("10.0.0.9");
        // A client retrying one stale password: one failure, however often.
        for _ in 0..50 {
            g.failed(a, b"stale", now);
        }
        assert!(g.may_guess(a, now).is_ok());
        fail(&g, a, now);
        assert!(g.may_guess(a, now).is_ok());
        // The third distinct wrong password locks, whatever successes came between.
        fail(&g, a, now);
        assert!(locked(&g, "10.0.0.9", now));
    }

    #[test]
    fn zero_disables_lockout() {
        let g = Gate::new(10, 10, 0);
        let now = Instant::now();
        for _ in 0..100 {
            fail(&g, ip("10.0.0.9"), now);
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
        fail(&g, ip("2001:db8::1"), now);
        fail(&g, ip("2001:db8::1"), now);
        assert!(locked(&g, "2001:db8::1", now));
        // The neighbour has its own budget, until the /64's (4 x 2) is spent.
        assert!(!locked(&g, "2001:db8::2", now));
        for a in ["2001:db8::2", "2001:db8::3", "2001:db8::4"] {
            assert!(!locked(&g, a, now));
            fail(&g, ip(a), now);
            assert!(!locked(&g, "2001:db8::5", now));
            fail(&g, ip(a), now);
        }
        assert!(locked(&g, "2001:db8::5", now));
        assert!(g.admit(ip("2001:db8::5"), now, false).is_err());
        assert!(!locked(&g, "2001:db8:0:1::5", now));
    }

    #[test]
    fn full_table_of_lockouts_gives_no_guesser_more() {
        let g = Gate::new(10, 10, 5);
        let now = Instant::now();
        // Fill the table (less one) with locked-out addresses.
        for i in 0..(MAX_TRACKED - 1) as u32 {
            for _ in 0..5 {
                fail(&g, IpAddr::V4((0x0a00_0000 + i).into()), now);
            }
        }
        assert_eq!(g.tracked(), MAX_TRACKED - 1);
        // Two fresh addresses take turns: each is locked after its own 5 guesses.
        let later = now + Duration::from_secs(1);
        for round in 0..5 {
            for a in ["192.0.2.1", "192.0.2.2"] {
                assert!(!locked(&g, a, later), "locked early, round {round}");
                fail(&g, ip(a), later);
            }
        }
        assert!(locked(&g, "192.0.2.1", later));
        assert!(locked(&g, "192.0.2.2", later));
        assert_eq!(g.tracked(), MAX_TRACKED);
    }

    #[test]
    fn stale_heap_entries_are_skipped_and_rebuilt() {
        let g = Gate::new(10, 10, 0);
        let now = Instant::now();
        let a = ip("10.0.0.9");
        for i in 0..(2 * MAX_TRACKED + 10) {
            fail(&g, a, now + Duration::from_millis(i as u64));
        }
        assert_eq!(g.tracked(), 1);
        assert!(g.lock().by_expiry.len() <= 2 * MAX_TRACKED);
        // Its stale entries expire before its record does: the record stays until its own time.
        let last = now + Duration::from_millis(2 * MAX_TRACKED as u64 + 9);
        fail(
            &g,
            ip("10.0.0.8"),
            last + FORGET_AFTER - Duration::from_millis(1),
        );
        assert_eq!(g.tracked(), 2);
        fail(&g, ip("10.0.0.8"), last + FORGET_AFTER);
        assert_eq!(g.tracked(), 1);
    }

    #[test]
    fn full_table_evicts_what_expires_first() {
        let g = Gate::new(10, 10, 2);
        let t0 = Instant::now();
        // The oldest entry is locked out for 15 minutes (8 failures): it expires last.
        for _ in 0..8 {
            fail(&g, ip("192.0.2.1"), t0);
        }
        let t1 = t0 + Duration::from_secs(1);
        for i in 0..(MAX_TRACKED - 1) as u32 {
            fail(&g, IpAddr::V4((0x0a00_0000 + i).into()), t1);
        }
        assert_eq!(g.tracked(), MAX_TRACKED);
        let t2 = t1 + Duration::from_secs(1);
        fail(&g, ip("192.0.2.2"), t2);
        fail(&g, ip("192.0.2.2"), t2);
        assert!(locked(&g, "192.0.2.1", t2));
        assert!(locked(&g, "192.0.2.2", t2));
        assert_eq!(g.tracked(), MAX_TRACKED);
        // Records are forgotten when they expire.
        fail(
            &g,
            ip("192.0.2.3"),
            t1 + FORGET_AFTER + Duration::from_millis(500),
        );
        assert_eq!(g.tracked(), 3);
    }

    #[test]
    fn lockout_is_checked_before_each_guess() {
        let g = Gate::new(10, 10, 2);
        let now = Instant::now();
        let a = ip("10.0.0.9");
        // Admitted before any failure, as a connection opened in advance is.
        let _p = g.admit(a, now, false).unwrap();
        assert!(g.may_guess(a, now).is_ok());
        fail(&g, a, now);
        fail(&g, a, now);
        assert_eq!(g.may_guess(a, now), Err(Refusal::LockedOut(LOCKOUT)));
        assert!(g.may_guess(ip("10.0.0.8"), now).is_ok());
    }

    #[test]
    fn answer_bytes_are_capped_but_one_answer_always_fits() {
        let g = Gate::new(10, 10, 2);
        let (x, y, z) = (ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"));
        let big = g.reserve_answer(x, MAX_ANSWER_BYTES + 1).unwrap();
        assert!(g.reserve_answer(y, 1).is_err());
        drop(big);
        // One address holds at most its share; others still get theirs.
        let a = g.reserve_answer(x, MAX_ANSWER_BYTES_PER_SOURCE).unwrap();
        assert_eq!(g.reserve_answer(x, 1).err(), Some(Refusal::AnswerBytes));
        let b = g.reserve_answer(y, MAX_ANSWER_BYTES / 2).unwrap();
        assert_eq!(g.reserve_answer(z, 1).err(), Some(Refusal::AnswerBytes));
        drop(a);
        assert!(g.reserve_answer(z, 1).is_ok());
        drop(b);
        assert_eq!(g.answer_bytes(), 0);
        assert!(g.lock().per_source.is_empty());
    }
}
