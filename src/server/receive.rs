//! The server (`netsecrets receive`): a bounded set of worker threads that each accept a
//! connection and serve it (leader/follower): read one frame, decrypt, check, answer, close.
//!
//! Workers block in `accept` on the shared listener; the kernel hands each connection to one of
//! them, so no connection is passed between threads. A small monitor thread watches for stalls:
//! when no worker waits in `accept` and none has taken a connection for a tick (they are all held
//! by slow or idle clients), it starts more workers, doubling per stalled tick, up to
//! `--max-connections`; at that cap it closes the oldest connections that have not yet sent a
//! whole request (idle or dribbling clients), so honest clients, whose request arrives at once,
//! are served while idle ones are pushed out. Fast traffic never grows the pool: the few workers
//! there are keep taking connections.
//!
//! Order of checks per connection: `--authorized-ips` and the admission [`Gate`] right after
//! `accept`, before a byte is read; then one frame under a deadline for the whole exchange;
//! then decryption with the keys of the clients allowed at the address (at most
//! [`MAX_KEYS_PER_ADDRESS`](crate::server::clients::MAX_KEYS_PER_ADDRESS) keys, two tag checks
//! each: protocol 2, then protocol 1, see `wire/bound.rs`) and `--min-protocol`, request
//! parsing, the lockout again (connections opened in advance give no extra guesses), the client
//! found by its password (`server/clients.rs`: a wrong password, the only thing that counts
//! toward a lockout, is counted before the connection closes), the lookup (a name the client
//! may not read is answered as a missing one), and room for the answer among the answer bytes
//! in flight. Any failure closes the connection without a response. Every connection ends in
//! one log line with the peer, the client and the name (only once the password matched), the
//! outcome and the duration, never a value, password or key; lines for refused and
//! unauthenticated connections are rate-limited per [`Kind`], with counts.
//!
//! The secrets and clients live in one `Arc` behind a lock: a connection takes it again once its
//! request has arrived, so a request is judged by the configuration current when it is read.
//! SIGHUP (blocked in every thread, taken by the monitor) has a reload thread read the files
//! again (the monitor keeps working meanwhile) and swap the `Arc`; a failed reload keeps the old
//! one and says why. Once answered, a connection keeps its slot and answer bytes until the
//! client has acknowledged the answer (`server/drain.rs`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::cli::ReceiveArgs;
use crate::error::{Error, Result};
use crate::server::config::{self, Live, ServerConfig, Sources};
use crate::server::drain::Drainer;
use crate::server::limits::MAX_REQUEST_BYTES;
use crate::server::limits::{AnswerBytes, Gate, Pending, Permit, Refusal};
use crate::sys::log::{self, Millis, Printable};
use crate::sys::net::{self, Deadline};
use crate::wire::bound::Protocol;
use crate::wire::cidr::{self, Cidr};
use crate::wire::crypto::SealError;
use crate::wire::frame::{self, FrameError};
use crate::wire::protocol;

/// Stack of each worker thread: the work is a few small buffers on the heap.
const WORKER_STACK: usize = 128 * 1024;
/// Workers started at once and kept alive while idle: one per CPU this process may run on
/// (its affinity mask, which systemd's `CPUAffinity=` and `AllowedCPUs=` set), within these
/// bounds. More runnable workers than CPUs only add context switches and tail latency (p99 at
/// 8 clients on 2 CPUs: 1.0x the floor's with 2 workers, 1.3-1.7x with 4; docs/performance.md);
/// slow clients do not need them, the monitor grows the pool when every worker is held.
const KEEP_WORKERS_MIN: usize = 2;
const KEEP_WORKERS_MAX: usize = 16;
/// How often the monitor looks for a stall.
const TICK: Duration = Duration::from_millis(5);
/// Workers the monitor starts (or connections it evicts) in the first stalled tick; doubles
/// with each further stalled tick, up to [`MAX_BURST`].
const FIRST_BURST: usize = 4;
const MAX_BURST: usize = 64;
/// Queue of connections the kernel completes before `accept` (capped by net.core.somaxconn).
const LISTEN_BACKLOG: i32 = 1024;
/// Lines of one [`Kind`] logged per second at most; the rest are counted in one summary line.
const LINES_PER_SEC: u32 = 10;
/// Lines a second for answers to authenticated clients (served, not-found, denied-secret).
const SERVED_LINES_PER_SEC: u32 = 100;
/// Ticks of the monitor between two writes of the summaries of dropped lines (about 1 s).
const SUMMARY_TICKS: u32 = 200;

/// What the workers share; read-only after start apart from the counters and tables.
struct Shared {
    listener: TcpListener,
    authorized: Vec<Cidr>,
    /// The secrets and clients. A connection takes a clone of the `Arc` once, when it is
    /// accepted, and keeps it to the end; a reload swaps in a new one for the connections after.
    live: RwLock<Arc<Live>>,
    /// Where a reload reads them again.
    sources: Sources,
    timeout: Duration,
    verbose: bool,
    gate: Arc<Gate>,
    pending: Arc<Pending>,
    /// Connections whose answer is not yet acknowledged (server/drain.rs).
    drainer: Drainer,
    /// A reload thread runs; another SIGHUP came since it last read the files.
    reloading: AtomicBool,
    reload_again: AtomicBool,
    /// Workers alive, at most `max_workers`.
    workers: AtomicUsize,
    /// Workers blocked in `accept` right now.
    idle: AtomicUsize,
    /// Connections taken from the listener so far; the monitor's sign of progress.
    taken: AtomicUsize,
    max_workers: usize,
    /// Workers kept alive while idle (see [`KEEP_WORKERS_MIN`]), at most `max_workers`.
    keep_workers: usize,
    /// Lines for refused and unauthenticated connections, rate-limited per [`Kind`].
    limited_log: Mutex<RateLimit>,
    /// `--min-protocol`: protocol-1 requests are refused below [`Protocol::V2`].
    min_protocol: Protocol,
}

/// How one connection ended.
enum Outcome {
    Served(Vec<u8>),
    NotFound(Vec<u8>),
    /// The client may not read that name: answered exactly as [`Outcome::NotFound`].
    DeniedSecret(Vec<u8>),
    /// No configured client may connect from this address.
    NoClient,
    WrongPassword,
    /// Refused after the request arrived: locked out (re-checked before the password
    /// comparison) or the answer-bytes cap.
    Refused(Refusal),
    Undecryptable,
    /// A protocol-1 request to a server with `--min-protocol 2`: refused like a wrong key,
    /// not counted as a password guess.
    OldProtocol,
    Malformed(&'static str),
    Frame(FrameError),
    WriteFailed(std::io::Error),
    SealFailed(SealError),
}

impl Outcome {
    /// The rate-limited kind of its log line; `None` for outcomes after the password matched,
    /// which are always logged.
    fn kind(&self) -> Option<Kind> {
        Some(match self {
            Outcome::WriteFailed(_) | Outcome::SealFailed(_) => return None,
            // Rate-limited too (with a larger budget): a client hammering the server with its
            // own valid password must not flood the log either; the counts still reach it.
            Outcome::Served(_) => Kind::Served,
            Outcome::NotFound(_) => Kind::NotFound,
            Outcome::DeniedSecret(_) => Kind::DeniedSecret,
            Outcome::WrongPassword => Kind::WrongPassword,
            Outcome::NoClient => Kind::Denied,
            Outcome::Refused(_) => Kind::Refused,
            Outcome::Undecryptable | Outcome::OldProtocol => Kind::Undecryptable,
            Outcome::Malformed(_) => Kind::Malformed,
            Outcome::Frame(FrameError::Closed) => Kind::Closed,
            Outcome::Frame(_) => Kind::BadFrame,
        })
    }
}

/// A connection's place in [`Pending`] (the candidates for eviction), given up when the request
/// has arrived or, at the latest, when dropped.
struct Registration {
    id: u64,
    pending: Arc<Pending>,
    /// Set once deregistered.
    done: bool,
}

impl Registration {
    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            self.pending.done(self.id);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A connection accepted and admitted.
struct Job {
    registration: Registration,
    /// Shared with [`Pending`] while registered, so an eviction always shuts down an open
    /// descriptor; the descriptor closes when the last owner drops it.
    stream: Arc<TcpStream>,
    /// The peer, with an IPv4-mapped address shown as the IPv4 address it is.
    peer: SocketAddr,
    accepted: Instant,
    permit: Permit,
}

/// `netsecrets receive`: checks the configuration, binds, says where, and serves forever.
pub fn receive(args: ReceiveArgs) -> Result<()> {
    // Before anything else, so that a reload asked for during the start is kept pending for the
    // monitor rather than ending the process (SIGHUP's default action).
    sighup::block().map_err(|e| Error::config("cannot block SIGHUP for the reload").with_io(e))?;
    let server = Server::bind(config::server(args)?)?;
    log::line(&format!("listening on {}", server.local_addr()?));
    crate::sys::notify::notify("READY=1");
    server.run()
}

/// A bound server, ready to run.
pub struct Server {
    shared: Arc<Shared>,
}

impl Server {
    pub fn bind(cfg: ServerConfig) -> Result<Server> {
        let listener = TcpListener::bind(cfg.bind).map_err(|e| {
            Error::config(format!(
                "cannot listen on {} (check --server and --port)",
                cfg.bind
            ))
            .with_io(e)
        })?;
        // std listens with a backlog of 128; a burst of clients rebooting at once overflows it
        // and their SYNs are retried a second later. Linux lets listen() raise it in place.
        let prepared = net::listen(&listener, LISTEN_BACKLOG)
            .map_err(|e| ("raise the listen backlog", e))
            // Accepted sockets inherit these: a connection starts with its whole deadline set,
            // and a quick exchange needs no setsockopt (see net::Deadline). On the listener, the
            // receive timeout also makes an idle accept() return, so idle workers can exit.
            // Without them a connection would have no deadline at all: a failure fails the start.
            .and_then(|()| {
                net::set_timeouts(&listener, cfg.timeout)
                    .map_err(|e| ("set the connection deadline (--timeout)", e))
            })
            // Inherited too: a corked socket holds the response until close(), which then sends
            // it with the FIN in one segment. The client sees the answer and the end together,
            // so the server is always the side that closes first and keeps the TIME_WAIT; a
            // client that read the answer and closed before the server's FIN (the server thread
            // preempted between write and close) would keep it instead, and a client host making
            // many connections to one server (a load test, a NAT in front of a fleet) then
            // spends ever longer looking for a free port in connect(). One segment fewer, too.
            .and_then(|()| {
                let on: libc::c_int = 1;
                net::set_option(&listener, libc::IPPROTO_TCP, libc::TCP_CORK, &on)
                    .map_err(|e| ("set TCP_CORK", e))
            });
        if let Err((what, e)) = prepared {
            return Err(
                Error::config(format!("cannot {what} on the listener {}", cfg.bind)).with_io(e),
            );
        }
        let shared = Arc::new(Shared {
            listener,
            authorized: cfg.authorized,
            live: RwLock::new(Arc::new(cfg.live)),
            sources: cfg.sources,
            timeout: cfg.timeout,
            verbose: cfg.verbose,
            gate: Gate::new(cfg.max_connections, cfg.max_per_ip, cfg.max_failures),
            pending: Arc::new(Pending::default()),
            drainer: Drainer::new(cfg.max_connections),
            reloading: AtomicBool::new(false),
            reload_again: AtomicBool::new(false),
            workers: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
            max_workers: cfg.max_connections,
            keep_workers: cpus()
                .clamp(KEEP_WORKERS_MIN, KEEP_WORKERS_MAX)
                .min(cfg.max_connections),
            limited_log: Mutex::new(RateLimit::default()),
            min_protocol: cfg.min_protocol,
        });
        Ok(Server { shared })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.shared
            .listener
            .local_addr()
            .map_err(|e| Error::config("cannot read the bound address").with_io(e))
    }

    /// Serves forever: starts the monitor and the first workers, and becomes one of them.
    /// SIGHUP is blocked in this thread first, so every thread started here inherits the mask
    /// and the monitor alone takes the signal, as a reload (see `mod sighup`).
    pub fn run(self) -> Result<()> {
        sighup::block()
            .map_err(|e| Error::config("cannot block SIGHUP for the reload").with_io(e))?;
        let me = Arc::clone(&self.shared);
        thread::Builder::new()
            .name("monitor".into())
            .stack_size(WORKER_STACK)
            .spawn(move || monitor(&me))
            .map_err(|e| Error::config("cannot start the monitor thread").with_io(e))?;
        let me = Arc::clone(&self.shared);
        thread::Builder::new()
            .name("drainer".into())
            .stack_size(WORKER_STACK)
            .spawn(move || me.drainer.run())
            .map_err(|e| Error::config("cannot start the drainer thread").with_io(e))?;
        for _ in 1..self.shared.keep_workers {
            grow(&self.shared);
        }
        // This thread is a worker too, the one that never retires: if it returned, the process
        // would exit.
        self.shared.workers.fetch_add(1, Ordering::SeqCst);
        work(&self.shared, false);
        Ok(())
    }
}

/// Grows the pool, or evicts, when every worker is held and none has taken a connection for a
/// whole tick.
fn monitor(shared: &Arc<Shared>) {
    let mut last = shared.taken.load(Ordering::SeqCst);
    let mut burst = FIRST_BURST;
    let mut ticks = 0u32;
    loop {
        // The tick's sleep, cut short by a SIGHUP.
        if sighup::wait(TICK) {
            reload_aside(shared);
        }
        ticks += 1;
        if ticks >= SUMMARY_TICKS {
            ticks = 0;
            limited(shared).summarize(Instant::now());
        }
        let taken = shared.taken.load(Ordering::SeqCst);
        let stalled = taken == last && shared.idle.load(Ordering::SeqCst) == 0;
        last = taken;
        if !stalled {
            burst = FIRST_BURST;
            continue;
        }
        for _ in 0..burst {
            if !grow(shared) && !shared.pending.evict_oldest() {
                break;
            }
        }
        burst = (burst * 2).min(MAX_BURST);
    }
}

/// Runs [`reload`] on a thread of its own, so that the monitor keeps growing the pool and
/// evicting while thousands of client files are read; a SIGHUP during a reload runs another
/// one right after it.
fn reload_aside(shared: &Arc<Shared>) {
    shared.reload_again.store(true, Ordering::SeqCst);
    if shared.reloading.swap(true, Ordering::SeqCst) {
        return; // the running reload thread reads the files once more
    }
    let me = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name("reload".into())
        .stack_size(WORKER_STACK)
        .spawn(move || loop {
            while me.reload_again.swap(false, Ordering::SeqCst) {
                reload(&me);
            }
            me.reloading.store(false, Ordering::SeqCst);
            // A SIGHUP between the last check and the store above found `reloading` set and
            // left its request here: take it, unless a new thread already did.
            if !me.reload_again.load(Ordering::SeqCst) || me.reloading.swap(true, Ordering::SeqCst)
            {
                return;
            }
        });
    if spawned.is_err() {
        shared.reloading.store(false, Ordering::SeqCst);
        shared.reload_again.store(false, Ordering::SeqCst);
        reload(shared);
    }
}

/// Reads the configuration's files again and, when they are all good, makes requests read from
/// now on use them.
fn reload(shared: &Shared) {
    match config::load(&shared.sources, false) {
        Ok(live) => {
            let (clients, secrets) = (live.ids.len(), live.secrets.len());
            *shared.live.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(live);
            log::line(&format!(
                "reloaded: {clients} clients, {secrets} secrets (new connections use them)"
            ));
        }
        Err(e) => log::line(&format!(
            "reload failed, still serving the previous configuration: {e}"
        )),
    }
}

/// SIGHUP, taken synchronously: blocked in every thread of the server (so it never interrupts
/// anything or runs a handler), and collected by the monitor with `sigtimedwait`.
mod sighup {
    use std::time::Duration;

    fn set() -> libc::sigset_t {
        // SAFETY: sigemptyset and sigaddset only write the set, a local value owned here, and
        // cannot fail for a valid pointer and signal number.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGHUP);
            set
        }
    }

    /// Blocks SIGHUP in the calling thread (and so in the threads it starts afterwards).
    pub fn block() -> std::io::Result<()> {
        let set = set();
        // SAFETY: `set` is a valid, initialised set; the old mask is not asked for (null).
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::from_raw_os_error(rc))
        }
    }

    /// Waits at most `limit` for a SIGHUP; true when one arrived (and was consumed).
    pub fn wait(limit: Duration) -> bool {
        let set = set();
        let timeout = libc::timespec {
            tv_sec: 0,
            // The tick is a few milliseconds: it fits.
            tv_nsec: limit.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `set` and `timeout` are valid for the call; no siginfo is asked for (null).
        let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout) };
        sig == libc::SIGHUP
    }
}

/// Starts one more worker unless `--max-connections` workers exist. Returns false when none
/// could be started.
fn grow(shared: &Arc<Shared>) -> bool {
    let reserved = shared
        .workers
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < shared.max_workers).then_some(n + 1)
        })
        .is_ok();
    if !reserved {
        return false;
    }
    let me = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name("worker".into())
        .stack_size(WORKER_STACK)
        .spawn(move || work(&me, true));
    if let Err(e) = spawned {
        shared.workers.fetch_sub(1, Ordering::SeqCst);
        limited_line(
            shared,
            Kind::Trouble,
            &format!("cannot start a worker thread: {e}"),
        );
        return false;
    }
    true
}

fn limited(shared: &Shared) -> std::sync::MutexGuard<'_, RateLimit> {
    shared.limited_log.lock().unwrap_or_else(|p| p.into_inner())
}

/// Logs a line of a rate-limited kind.
fn limited_line(shared: &Shared, kind: Kind, msg: &str) {
    let mut text = log::start_line(msg.len());
    text.push_str(msg);
    limited(shared).line(kind, text);
}

/// CPUs this process may run on, from its affinity mask; 1 if that cannot be read. (std's
/// `available_parallelism` also reads cgroup quotas, and costs 20 KB of binary for it.)
fn cpus() -> usize {
    // SAFETY: `set` is a zeroed cpu_set_t owned by this frame, and the kernel writes at most
    // the size it is given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            libc::CPU_COUNT(&set).max(1) as usize
        } else {
            1
        }
    }
}

/// One worker: accept, admit, serve, repeat. With `may_retire`, returns when idle for a whole
/// `--timeout` while more than `keep_workers` exist; without, never returns.
fn work(shared: &Arc<Shared>, may_retire: bool) {
    loop {
        shared.idle.fetch_add(1, Ordering::SeqCst);
        let accepted = shared.listener.accept();
        shared.idle.fetch_sub(1, Ordering::SeqCst);
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) if net::is_timeout(&e) => {
                // Idle for a whole --timeout: leave, unless this worker is one kept alive.
                let retire = may_retire
                    && shared
                        .workers
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                            (n > shared.keep_workers).then(|| n - 1)
                        })
                        .is_ok();
                if retire {
                    return;
                }
                continue;
            }
            Err(e) => {
                // Out of file descriptors or a connection reset before accept: keep serving.
                limited_line(shared, Kind::Trouble, &format!("accept failed: {e}"));
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let others_waiting = shared.idle.load(Ordering::SeqCst) > 0;
        shared.taken.fetch_add(1, Ordering::SeqCst);
        let Some(job) = admit(shared, stream, peer) else {
            continue; // refused at once: back to accept
        };
        // Every worker is now held and no more may start: make one come back to accept() at
        // once by closing the oldest connection whose request is still incomplete.
        if !others_waiting && shared.workers.load(Ordering::SeqCst) >= shared.max_workers {
            shared.pending.evict_oldest_except(job.registration.id);
        }
        handle(shared, job);
    }
}

/// The checks right after `accept`, before a byte is read.
fn admit(shared: &Shared, stream: TcpStream, peer: SocketAddr) -> Option<Job> {
    let now = Instant::now();
    let ip = cidr::canonical(peer.ip());
    let peer = SocketAddr::new(ip, peer.port());
    if !cidr::allowed(&shared.authorized, ip) {
        limited_line(
            shared,
            Kind::Denied,
            &format!("peer={peer} outcome=denied (not in --authorized-ips)"),
        );
        return None;
    }
    let admitted = match shared.gate.admit(ip, now, false) {
        // Full: make room by closing the oldest connection whose request is still incomplete
        // (an idle or dribbling client), not by refusing this one.
        Err(Refusal::Busy) if shared.pending.evict_oldest() => shared.gate.admit(ip, now, true),
        other => other,
    };
    match admitted {
        Ok(permit) => {
            let pending = Arc::clone(&shared.pending);
            let stream = Arc::new(stream);
            let id = pending.register(Arc::clone(&stream));
            Some(Job {
                registration: Registration {
                    id,
                    pending,
                    done: false,
                },
                stream,
                peer,
                accepted: now,
                permit,
            })
        }
        Err(refusal) => {
            limited_line(
                shared,
                Kind::Refused,
                &format!("peer={peer} outcome={}", refusal.describe()),
            );
            None
        }
    }
}

/// What a rate-limited log line is about; each kind has its own budget, so that a flood of one
/// (empty connections, say) cannot crowd out another (wrong passwords: brute-force evidence).
#[derive(Clone, Copy)]
enum Kind {
    Denied,
    Refused,
    Closed,
    BadFrame,
    Undecryptable,
    Malformed,
    WrongPassword,
    Trouble,
    Served,
    NotFound,
    DeniedSecret,
}

impl Kind {
    /// Every kind, in declaration order (so `kind as usize` indexes this).
    const ALL: [Kind; 11] = [
        Kind::Denied,
        Kind::Refused,
        Kind::Closed,
        Kind::BadFrame,
        Kind::Undecryptable,
        Kind::Malformed,
        Kind::WrongPassword,
        Kind::Trouble,
        Kind::Served,
        Kind::NotFound,
        Kind::DeniedSecret,
    ];

    /// Lines of this kind logged per second at most: more for the answers to clients that
    /// authenticated (a fleet booting at once), [`LINES_PER_SEC`] for the rest.
    fn per_sec(self) -> u32 {
        match self {
            Kind::Served | Kind::NotFound | Kind::DeniedSecret => SERVED_LINES_PER_SEC,
            _ => LINES_PER_SEC,
        }
    }

    /// As the summary line names it.
    fn name(self) -> &'static str {
        match self {
            Kind::Denied => "denied",
            Kind::Refused => "refused",
            Kind::Closed => "closed without a request",
            Kind::BadFrame => "bad frame",
            Kind::Undecryptable => "undecryptable",
            Kind::Malformed => "malformed request",
            Kind::WrongPassword => "wrong-password",
            Kind::Trouble => "server trouble",
            Kind::Served => "served",
            Kind::NotFound => "not-found",
            Kind::DeniedSecret => "denied-secret",
        }
    }
}

/// Logs at most [`LINES_PER_SEC`] lines of each [`Kind`] a second, and counts the rest; the
/// monitor writes one line per kind with the count about once a second, so that a flood cannot
/// turn into a flood of log writes and the count still reaches the log.
#[derive(Default)]
struct RateLimit {
    kinds: [KindBudget; Kind::ALL.len()],
}

#[derive(Default, Clone, Copy)]
struct KindBudget {
    second: Option<Instant>,
    lines: u32,
    dropped: u64,
}

impl RateLimit {
    /// `text` is begun with [`log::start_line`].
    fn line(&mut self, kind: Kind, text: String) {
        let now = Instant::now();
        self.summarize(now);
        let Some(k) = self.kinds.get_mut(kind as usize) else {
            return; // cannot happen: `kinds` has a budget for every kind
        };
        if k.second.is_none() {
            k.second = Some(now);
        }
        if k.lines < kind.per_sec() {
            k.lines += 1;
            log::end_line(text);
        } else {
            k.dropped += 1;
        }
    }

    /// Ends the second of every kind whose second is over: writes its count of dropped lines.
    fn summarize(&mut self, now: Instant) {
        for (kind, k) in Kind::ALL.iter().zip(self.kinds.iter_mut()) {
            if k.second
                .is_some_and(|s| now.duration_since(s) >= Duration::from_secs(1))
            {
                if k.dropped > 0 {
                    log::line(&format!(
                        "{} more '{}' lines not logged (at most {} a second)",
                        k.dropped,
                        kind.name(),
                        kind.per_sec()
                    ));
                }
                *k = KindBudget::default();
            }
        }
    }
}

/// The configuration current now.
fn current(shared: &Shared) -> Arc<Live> {
    Arc::clone(&shared.live.read().unwrap_or_else(|p| p.into_inner()))
}

fn handle(shared: &Shared, mut job: Job) {
    // Taken again once the request has arrived (see `serve`).
    let mut live = current(shared);
    let mut client = None;
    let mut protocol = None;
    let mut reserved = None;
    let outcome = serve(
        shared,
        &mut live,
        &mut job,
        &mut client,
        &mut protocol,
        &mut reserved,
    );
    // End at once, before the bookkeeping and the log line: the socket is corked (see
    // `Server::bind`), so the FIN sent here is what sends the answer. Deregistered first, so
    // that the drainer holds the stream's last reference; the slot is given back now, the
    // answer bytes stay taken until the client has acknowledged the answer (server/drain.rs).
    job.registration.finish();
    shared.drainer.close(
        job.stream,
        job.permit,
        reserved,
        job.accepted + shared.timeout,
    );
    // One line, built in one buffer: this runs once per connection.
    let mut text = log::start_line(128);
    let _ = write!(text, "peer={}", job.peer);
    if let Some(c) = client.and_then(|i| live.ids.client(i)) {
        let _ = write!(text, " client={}", c.name);
    }
    let _ = match &outcome {
        Outcome::Served(name) => write!(text, " name={} outcome=served", Printable(name)),
        Outcome::NotFound(name) => write!(text, " name={} outcome=not-found", Printable(name)),
        Outcome::DeniedSecret(name) => {
            write!(text, " name={} outcome=denied-secret", Printable(name))
        }
        Outcome::NoClient => write!(text, " outcome=denied (no client may connect from here)"),
        Outcome::WrongPassword => write!(text, " outcome=wrong-password"),
        Outcome::Refused(r) => write!(text, " outcome={}", r.describe()),
        Outcome::Undecryptable => {
            write!(
                text,
                " outcome=undecryptable (encryption key or --insecure differs)"
            )
        }
        Outcome::OldProtocol => write!(
            text,
            " outcome=refused protocol 1 (--min-protocol 2; update the client or give it a key)"
        ),
        Outcome::Malformed(why) => write!(text, " outcome={why}"),
        Outcome::Frame(FrameError::Closed) => write!(text, " outcome=closed without a request"),
        Outcome::Frame(e) => write!(text, " outcome=bad frame ({e})"),
        Outcome::WriteFailed(e) => write!(text, " outcome=write failed ({e})"),
        Outcome::SealFailed(SealError::NoRandom(_)) => {
            write!(text, " outcome=no random nonce available")
        }
        Outcome::SealFailed(SealError::TooLong) => {
            write!(text, " outcome=cannot seal the answer (too long)")
        }
    };
    if let Some(p) = protocol {
        let _ = write!(text, " protocol={}", p.number());
    }
    let _ = write!(text, " took={}", Millis(job.accepted.elapsed()));
    match outcome.kind() {
        None => log::end_line(text),
        Some(kind) => limited(shared).line(kind, text),
    }
}

/// Serves one connection; sets `client` (an index into `live.ids`) once the password matched,
/// `protocol` once the request opened, and `reserved` to the answer bytes of the answer written.
fn serve(
    shared: &Shared,
    live: &mut Arc<Live>,
    job: &mut Job,
    client: &mut Option<usize>,
    protocol: &mut Option<Protocol>,
    reserved: &mut Option<AnswerBytes>,
) -> Outcome {
    let ip = job.peer.ip();
    let candidates = live.ids.candidates(ip);
    if candidates.is_empty() {
        return Outcome::NoClient;
    }
    // Accepted sockets inherit the listener's timeouts, which are the connection deadline.
    let mut io = Deadline::preset(&job.stream, job.accepted + shared.timeout, shared.timeout);
    let payload = {
        // One read usually brings the whole request.
        let mut reader = frame::InlineBuf::new(&mut io);
        match frame::read_frame(&mut reader, MAX_REQUEST_BYTES) {
            Ok(p) => p,
            Err(e) => return Outcome::Frame(e),
        }
    };
    // The request is complete: this connection is no longer a candidate for eviction. It still
    // counts against its address until its answer is written (a client that does not read
    // holds its slot).
    job.registration.finish();
    // Judged by the configuration current now, not the one at accept: a client revoked by a
    // reload while its connection was open gets nothing.
    *live = current(shared);
    let candidates = live.ids.candidates(ip);
    if candidates.is_empty() {
        return Outcome::NoClient;
    }
    // Per key of the clients allowed here (a bounded number): a tag check as protocol 2, then
    // one as protocol 1; plaintext last.
    let Ok((plain, codec_idx, via)) = live.ids.open(&candidates, payload) else {
        return Outcome::Undecryptable;
    };
    *protocol = Some(via.protocol());
    if via.protocol() < shared.min_protocol {
        return Outcome::OldProtocol;
    }
    let req = match protocol::parse_request(&plain) {
        Ok(r) => r,
        Err(e) => return Outcome::Malformed(e.as_str()),
    };
    // Re-checked here, not only at accept: connections opened in advance give no extra guesses.
    if let Err(r) = shared.gate.may_guess(ip, Instant::now()) {
        return Outcome::Refused(r);
    }
    // A password of a client not allowed here, or sent with another client's key, is as wrong
    // as one nobody has.
    let (Some(who), Some(codec)) = (
        live.ids.find(req.password, codec_idx, ip),
        live.ids.codec(codec_idx),
    ) else {
        // Counted before the connection closes, so the next guess already sees it.
        shared.gate.failed(ip, req.password, Instant::now());
        return Outcome::WrongPassword;
    };
    *client = Some(who);
    let may_read = live
        .ids
        .client(who)
        .is_some_and(|c| c.access.allows(req.name));
    let name = req.name.to_vec();
    // A name the client may not read gets the very answer of a name that does not exist.
    let (value, found) = match live.secrets.get(req.name) {
        Some(v) if may_read => (Some(v.as_slice()), Some(true)),
        Some(_) => (None, None),
        None => (None, Some(false)),
    };
    // Reserved before the answer is allocated and held until the client has acknowledged it
    // (server/drain.rs): clients that do not read hold at most MAX_ANSWER_BYTES of answers in
    // all (and their --max-per-ip slots) until their deadline.
    match shared.gate.reserve_answer(ip, via.answer_len(codec, value)) {
        Ok(r) => *reserved = Some(r),
        Err(r) => return Outcome::Refused(r),
    }
    // In the protocol the request came in: protocol 2 binds it to this request and name.
    let answer = match codec.answer_frame(&via, &name, value) {
        Ok(a) => a,
        Err(e) => return Outcome::SealFailed(e),
    };
    if let Err(e) = io.write_all(&answer) {
        return Outcome::WriteFailed(e);
    }
    if shared.verbose {
        log::line(&format!(
            "peer={} client={} sent {} bytes",
            job.peer,
            live.ids.client(who).map_or("?", |c| c.name.as_str()),
            answer.len().saturating_sub(frame::HEADER_LEN)
        ));
    }
    match found {
        Some(true) => Outcome::Served(name),
        Some(false) => Outcome::NotFound(name),
        None => Outcome::DeniedSecret(name),
    }
}
