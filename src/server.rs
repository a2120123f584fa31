//! The server (`netsecrets receive`): an accept loop plus a bounded pool of worker threads, each
//! serving one connection at a time: read one frame, decrypt, check, answer, close.
//!
//! Order of checks per connection: `--authorized-ips` and the admission [`Gate`] right after
//! `accept`, before a byte is read; then one frame under a deadline for the whole exchange;
//! then decryption, request parsing, a constant-time password check, the lookup. Any failure
//! closes the connection without a response. Every connection ends in exactly one log line with
//! the peer, the name (only once the password matched), the outcome and the duration, never a
//! value, password or key.

use std::collections::{HashMap, VecDeque};
use std::io::BufReader;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::cidr::{self, Cidr};
use crate::config::ServerConfig;
use crate::crypto::{Codec, PasswordCheck};
use crate::error::{Error, Result};
use crate::frame::{self, FrameError, MAX_REQUEST};
use crate::limits::{Gate, Pending, Permit, Refusal};
use crate::log;
use crate::net::Deadline;
use crate::protocol::{self, NOT_FOUND};

/// Stack of each worker thread: the work is a few small buffers on the heap.
const WORKER_STACK: usize = 128 * 1024;
/// An idle worker beyond the first few exits after this long.
const IDLE_EXIT: Duration = Duration::from_secs(30);
/// Workers kept alive while idle.
const KEEP_WORKERS: usize = 4;
/// Queue of connections the kernel completes before `accept` (capped by net.core.somaxconn).
const LISTEN_BACKLOG: i32 = 1024;
/// Refusal lines logged per second at most; the rest are counted in one summary line.
const REFUSAL_LINES_PER_SEC: u32 = 10;

/// What the workers share; read-only after start apart from the gate.
struct Shared {
    /// The password, as a digest compared in constant time.
    password: PasswordCheck,
    secrets: HashMap<Vec<u8>, Vec<u8>>,
    codec: Codec,
    timeout: Duration,
    verbose: bool,
    gate: Arc<Gate>,
    pending: Arc<Pending>,
}

/// How one connection ended.
enum Outcome {
    Served(Vec<u8>),
    NotFound(Vec<u8>),
    WrongPassword,
    Undecryptable,
    Malformed(&'static str),
    Frame(FrameError),
    WriteFailed(std::io::Error),
    NoRandom,
}

impl Outcome {
    /// Counts against the address's failure budget (brute-force lockout).
    fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            Outcome::WrongPassword | Outcome::Undecryptable | Outcome::Malformed(_)
        ) || matches!(self, Outcome::Frame(FrameError::TooLarge { .. }))
    }
}

/// A connection accepted and admitted, waiting for a worker.
struct Job {
    stream: TcpStream,
    /// The peer, with an IPv4-mapped address shown as the IPv4 address it is.
    peer: SocketAddr,
    accepted: Instant,
    /// Registration in [`Pending`] until the request has arrived.
    pending_id: u64,
    pending: Arc<Pending>,
    _permit: Permit,
}

impl Drop for Job {
    /// Deregisters before the stream closes (the invariant `Pending::evict_oldest` relies on).
    fn drop(&mut self) {
        self.pending.done(self.pending_id);
    }
}

/// Worker threads, started on demand up to the connection cap.
struct Pool {
    state: Mutex<PoolState>,
    ready: Condvar,
    max: usize,
    shared: Arc<Shared>,
}

struct PoolState {
    queue: VecDeque<Job>,
    idle: usize,
    threads: usize,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn submit(self: &Arc<Pool>, job: Job) {
        let mut st = self.lock();
        st.queue.push_back(job);
        if st.idle > 0 {
            drop(st);
            self.ready.notify_one();
            return;
        }
        if st.threads < self.max {
            st.threads += 1;
            drop(st);
            let pool = Arc::clone(self);
            let spawned = thread::Builder::new()
                .name("worker".into())
                .stack_size(WORKER_STACK)
                .spawn(move || pool.work());
            if let Err(e) = spawned {
                log::line(&format!("cannot start a worker thread: {e}"));
                let mut st = self.lock();
                st.threads -= 1;
                if st.threads == 0 {
                    // Nobody would ever serve them: close them now, freeing their slots.
                    st.queue.clear();
                }
            }
        }
    }

    fn work(&self) {
        loop {
            let mut st = self.lock();
            let job = loop {
                if let Some(job) = st.queue.pop_front() {
                    break job;
                }
                st.idle += 1;
                let (guard, timeout) = self
                    .ready
                    .wait_timeout(st, IDLE_EXIT)
                    .unwrap_or_else(|p| p.into_inner());
                st = guard;
                st.idle -= 1;
                if timeout.timed_out() && st.queue.is_empty() && st.threads > KEEP_WORKERS {
                    st.threads -= 1;
                    return;
                }
            };
            drop(st);
            handle(&self.shared, job);
        }
    }
}

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    authorized: Vec<Cidr>,
    pool: Arc<Pool>,
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
        // SAFETY: the descriptor is the listener's own, open for the listener's lifetime.
        unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) };
        let gate = Gate::new(cfg.max_connections, cfg.max_per_ip, cfg.max_failures);
        let shared = Arc::new(Shared {
            password: PasswordCheck::new(&cfg.password),
            secrets: cfg.secrets,
            codec: cfg.codec,
            timeout: cfg.timeout,
            verbose: cfg.verbose,
            gate,
            pending: Arc::new(Pending::default()),
        });
        let pool = Arc::new(Pool {
            state: Mutex::new(PoolState {
                queue: VecDeque::new(),
                idle: 0,
                threads: 0,
            }),
            ready: Condvar::new(),
            max: cfg.max_connections,
            shared,
        });
        Ok(Server {
            listener,
            authorized: cfg.authorized,
            pool,
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|e| Error::config("cannot read the bound address").with_io(e))
    }

    /// Accepts connections forever.
    pub fn run(self) -> Result<()> {
        let shared = Arc::clone(&self.pool.shared);
        let mut refusals = RateLimit::default();
        loop {
            let (stream, peer) = match self.listener.accept() {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: keep serving.
                    refusals.line(&format!("accept failed: {e}"));
                    thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            let now = Instant::now();
            let ip = cidr::canonical(peer.ip());
            let peer = SocketAddr::new(ip, peer.port());
            if !cidr::allowed(&self.authorized, ip) {
                refusals.line(&format!(
                    "peer={peer} outcome=denied (not in --authorized-ips)"
                ));
                continue;
            }
            let admitted = match shared.gate.admit(ip, now, false) {
                // Full: make room by closing the oldest connection whose request is still
                // incomplete (an idle or dribbling client), not by refusing this one.
                Err(Refusal::Busy) if shared.pending.evict_oldest() => {
                    shared.gate.admit(ip, now, true)
                }
                other => other,
            };
            match admitted {
                Ok(permit) => {
                    let pending = Arc::clone(&shared.pending);
                    let pending_id = pending.register(stream.as_raw_fd());
                    self.pool.submit(Job {
                        stream,
                        peer,
                        accepted: now,
                        pending_id,
                        pending,
                        _permit: permit,
                    });
                }
                Err(refusal) => {
                    refusals.line(&format!("peer={peer} outcome={}", refusal.describe()))
                }
            }
        }
    }
}

/// Logs at most [`REFUSAL_LINES_PER_SEC`] lines a second, then one line counting the rest, so
/// that a flood of refused connections cannot turn into a flood of log writes.
#[derive(Default)]
struct RateLimit {
    second: Option<Instant>,
    lines: u32,
    dropped: u64,
}

impl RateLimit {
    fn line(&mut self, text: &str) {
        let now = Instant::now();
        if self
            .second
            .is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1))
        {
            if self.dropped > 0 {
                log::line(&format!(
                    "{} more refused connections not logged",
                    self.dropped
                ));
            }
            *self = RateLimit {
                second: Some(now),
                lines: 0,
                dropped: 0,
            };
        }
        if self.lines < REFUSAL_LINES_PER_SEC {
            self.lines += 1;
            log::line(text);
        } else {
            self.dropped += 1;
        }
    }
}

fn handle(shared: &Shared, job: Job) {
    let outcome = serve(shared, &job);
    let ip = cidr::canonical(job.peer.ip());
    if outcome.is_auth_failure() {
        shared.gate.failed(ip, Instant::now());
    } else if matches!(outcome, Outcome::Served(_) | Outcome::NotFound(_)) {
        shared.gate.succeeded(ip);
    }
    let took = log::millis(job.accepted.elapsed());
    let peer = job.peer;
    let text = match &outcome {
        Outcome::Served(name) => {
            format!("peer={peer} name={} outcome=served", log::printable(name))
        }
        Outcome::NotFound(name) => format!(
            "peer={peer} name={} outcome=not-found",
            log::printable(name)
        ),
        Outcome::WrongPassword => format!("peer={peer} outcome=wrong-password"),
        Outcome::Undecryptable => {
            format!("peer={peer} outcome=undecryptable (encryption key or --insecure differs)")
        }
        Outcome::Malformed(why) => format!("peer={peer} outcome={why}"),
        Outcome::Frame(FrameError::Closed) => {
            format!("peer={peer} outcome=closed without a request")
        }
        Outcome::Frame(e) => format!("peer={peer} outcome=bad frame ({e})"),
        Outcome::WriteFailed(e) => format!("peer={peer} outcome=write failed ({e})"),
        Outcome::NoRandom => format!("peer={peer} outcome=no random nonce available"),
    };
    log::line(&format!("{text} took={took}"));
}

fn serve(shared: &Shared, job: &Job) -> Outcome {
    let mut io = Deadline {
        stream: &job.stream,
        at: job.accepted + shared.timeout,
    };
    let payload = {
        // One read usually brings the whole request.
        let mut reader = BufReader::with_capacity(512, &mut io);
        match frame::read_frame(&mut reader, MAX_REQUEST) {
            Ok(p) => p,
            Err(e) => return Outcome::Frame(e),
        }
    };
    // The request is complete: this connection is no longer a candidate for eviction.
    job.pending.done(job.pending_id);
    let Ok(plain) = shared.codec.open(payload) else {
        return Outcome::Undecryptable;
    };
    let req = match protocol::parse_request(&plain) {
        Ok(r) => r,
        Err(e) => return Outcome::Malformed(e.as_str()),
    };
    if !shared.password.matches(req.password) {
        return Outcome::WrongPassword;
    }
    let name = req.name.to_vec();
    let (value, found) = match shared.secrets.get(req.name) {
        Some(v) => (v.as_slice(), true),
        None => (NOT_FOUND, false),
    };
    let Ok(sealed) = shared.codec.seal(value) else {
        return Outcome::NoRandom;
    };
    if let Err(e) = frame::write_frame(&mut io, &sealed) {
        return Outcome::WriteFailed(e);
    }
    if shared.verbose {
        log::line(&format!("peer={} sent {} bytes", job.peer, sealed.len()));
    }
    if found {
        Outcome::Served(name)
    } else {
        Outcome::NotFound(name)
    }
}
