//! The client (`netsecrets send`): fetch named secrets from the primary server or its fallbacks,
//! retrying until a deadline, and hand back every value or an error — never a partial result.
//!
//! One connection per secret: connect, send one request frame, read one response frame. Servers
//! are tried in order, the one that answered last first. A server that has not answered within
//! [`HEDGE`] (a hung process, a host that drops SYNs) does not hold the others up: the next
//! server is asked too while the first one's attempt goes on, and the first answer wins (so a
//! server that is merely slow still counts, and the next one is only asked by the clients it
//! kept waiting). When every server failed, the whole list is tried again after a pause that
//! depends on how they failed (see [`Backoff`]): short when nothing listened (connection
//! refused, no route: cheap for the server, and at boot the server often comes up after its
//! clients), doubling for timeouts, and long after a server closed the connection without an
//! answer (a wrong password or key, or a server refusing this address: retrying fast would only
//! earn a lockout). Every pause is drawn at random, so a whole site booting together does not
//! come back in lock-step. `Not found` is final for that secret.

use std::io::{self, Write as _};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::client::config::ClientConfig;
use crate::error::{Error, Result};
use crate::sys::log;
use crate::sys::net::{self, Deadline};
use crate::sys::wipe::Wiped;
use crate::wire::bound::{self, Question};
use crate::wire::crypto::SealError;
use crate::wire::frame::{self, FrameError};
use crate::wire::protocol::SecretName;

/// Longest one attempt (connect + request + response) may take, so that one silent server does
/// not use up the whole deadline and the fallbacks get their turn.
const ATTEMPT: Duration = Duration::from_secs(5);
/// How long a server may take to answer before the next server in the list is asked too. A
/// healthy server answers in milliseconds even in a boot storm; a frozen one never does.
pub const HEDGE: Duration = Duration::from_millis(500);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The pause after a round in which no server listened (refused, no route): drawn from
/// `[REFUSED_PAUSE/2, REFUSED_PAUSE]` every time, without growing. Such a retry costs the server's
/// kernel one SYN and one RST, and a client comes back at most this long after its server does.
pub const REFUSED_PAUSE: Duration = Duration::from_millis(300);
/// The pauses after a round in which a server closed the connection without answering: from
/// `[2 s, 4 s]`, then four times longer, up to `[15 s, 30 s]`: about three tries in `send`'s
/// default 30 s, fewer than the server's `--max-failures` (5) lockout budget.
const FIRST_SILENT: Duration = Duration::from_secs(4);
const MAX_SILENT: Duration = Duration::from_secs(30);

/// How one failed attempt ended, for the pause after a failed round and for callers that need
/// to know whether any server was reached at all ([`Client::reached_no_server`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Nothing listens there, or there is no route: connection refused, network or host
    /// unreachable. No server was reached.
    Refused,
    /// Nothing answered in time: the connection was not set up, or no response came. No server
    /// was reached (a frozen server, a dead host, a network that is not up yet).
    Timeout,
    /// The connection could not be set up for another reason (e.g. the name does not resolve).
    /// No server was reached.
    NoConnection,
    /// The whole request was sent and the server closed the connection without an answer: the
    /// password or key was refused, or this address is (`--authorized-ips`, the lockout).
    Silent,
    /// The server answered something unusable (a response that does not decrypt, too large).
    Unusable,
}

impl Fault {
    /// True when no server was reached (nothing listened, nothing answered in time).
    pub fn unreached(self) -> bool {
        matches!(self, Fault::Refused | Fault::Timeout | Fault::NoConnection)
    }
}

/// The pauses between two rounds over the server list, by how the round failed:
/// - every server refused (or had no route): a short pause from `[REFUSED_PAUSE/2,
///   REFUSED_PAUSE]`, the same every time;
/// - a server closed without answering: the long schedule ([`FIRST_SILENT`] quadrupling to
///   [`MAX_SILENT`]);
/// - otherwise (timeouts, unusable answers): a base of [`FIRST_BACKOFF`] doubling to
///   [`MAX_BACKOFF`].
///
/// Each pause is drawn uniformly from `[base/2, base]` ("equal jitter"): clients that failed
/// together (a rack booting after a power cut, a server that comes up late) come back spread
/// over half the base instead of all at once, while none retries sooner than half of it. Seeded
/// from the operating system's random source, so two clients started in the same instant draw
/// different schedules.
pub(crate) struct Backoff {
    base: Duration,
    silent: Duration,
    rng: u64,
}

impl Backoff {
    /// A schedule seeded from `getrandom`; from the clock and the process id if that fails
    /// (a jitter that is not secret only has to differ between machines and processes).
    pub fn new() -> Backoff {
        let mut seed = [0u8; 8];
        let seed = match getrandom::getrandom(&mut seed) {
            Ok(()) => u64::from_le_bytes(seed),
            Err(_) => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0);
                nanos ^ (u64::from(std::process::id()) << 32)
            }
        };
        Backoff::seeded(seed)
    }

    pub fn seeded(seed: u64) -> Backoff {
        Backoff {
            base: FIRST_BACKOFF,
            silent: FIRST_SILENT,
            rng: seed,
        }
    }

    /// The next pause after a round that failed as `how` (see the type).
    pub fn next_pause(&mut self, how: Round) -> Duration {
        let base = match how {
            Round::Refused => REFUSED_PAUSE,
            Round::Slow => {
                let base = self.base;
                self.base = (base * 2).min(MAX_BACKOFF);
                base
            }
            Round::Silent => {
                let base = self.silent;
                self.silent = (base * 4).min(MAX_SILENT);
                base
            }
        };
        let half = base / 2;
        // Nanoseconds of a pause of at most MAX_SILENT always fit in a u64.
        let span = u64::try_from((base - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(self.random() % span.saturating_add(1))
    }

    /// splitmix64: a small generator that is plenty for spreading retries.
    fn random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// How a whole round over the server list failed, for [`Backoff::next_pause`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Round {
    /// Every server refused the connection or had no route.
    Refused,
    /// Timeouts, unusable answers, other connection errors.
    Slow,
    /// A server closed the connection without answering.
    Silent,
}

impl Round {
    fn of(faults: &[Fault]) -> Round {
        if faults.contains(&Fault::Silent) {
            Round::Silent
        } else if !faults.is_empty() && faults.iter().all(|f| *f == Fault::Refused) {
            Round::Refused
        } else {
            Round::Slow
        }
    }
}

/// How one attempt against one server ended, other than with the value.
enum Miss {
    /// Worth trying again later or elsewhere; the text says what to check.
    Retry(Fault, String),
    /// The server answered `Not found`: final.
    NotFound(String),
    /// The whole request was sent and the server closed or reset the connection without an
    /// answer: the password (or the key) was refused, or this client was (`--authorized-ips`,
    /// lockout). Retried like [`Miss::Retry`] by [`Client::fetch`]; final for
    /// [`Client::check`], so that one typed password is compared once.
    Rejected(String),
}

/// Why [`Client::fetch_until`] stopped without a value.
enum Stop {
    Rejected(String),
    NotFound(String),
    Failed(Error),
    /// No server was reached for `offline_after`; the misses were logged.
    Offline(Error),
}

/// Why [`Client::fetch_or_offline`] has no value.
pub enum Missed {
    /// A server answered `Not found`: the secret is revoked or was never there.
    NotFound(Error),
    /// No server could be reached for `offline_after` (and none was during this run).
    Offline(Error),
    /// Anything else: a server was reached and refused, or the deadline passed.
    Failed(Error),
}

/// How [`Client::check`] of a typed password ended.
pub enum Check {
    /// The secret arrived: the password is right.
    Accepted,
    /// The server answered `Not found`: the password is right (the server only says so to a
    /// matching password), the name is not served; the text says so.
    AcceptedNotFound(String),
    /// The request was sent whole and refused without an answer; the text says what to check.
    Rejected(String),
    /// No server could be asked within the deadline.
    Unreachable(Error),
}

pub struct Client<'a> {
    cfg: &'a ClientConfig,
    /// Index into `cfg.servers` of the server to try first.
    preferred: usize,
    /// Exchanges begun so far, over every secret and server (for `--verbose` and benchmarks).
    attempts: u32,
    /// Connections closed without an answer so far, over every secret and server.
    silent: u32,
    /// How the attempts of the last failed fetch failed, every round (empty after a success).
    faults: Vec<Fault>,
    /// With an offline cache: give up after this long without reaching any server.
    offline_after: Option<Duration>,
    /// When this client started; a server was reached since then when `reached`.
    started: Instant,
    reached: bool,
}

impl<'a> Client<'a> {
    pub fn new(cfg: &'a ClientConfig) -> Client<'a> {
        Client {
            cfg,
            preferred: 0,
            attempts: 0,
            silent: 0,
            faults: Vec::new(),
            offline_after: None,
            started: Instant::now(),
            reached: false,
        }
    }

    /// Makes [`Client::fetch_or_offline`] stop once no server was reached for `after` since
    /// this client was made (a server reached once, whatever it answered, rules this out).
    /// `None` turns it off again.
    pub fn offline_after(&mut self, after: Option<Duration>) {
        self.offline_after = after;
    }

    /// [`Client::fetch`], telling `Not found` and "no server reachable" apart.
    pub fn fetch_or_offline(
        &mut self,
        name: &SecretName,
        deadline: Instant,
    ) -> std::result::Result<Vec<u8>, Missed> {
        self.fetch_until(name, deadline, false)
            .map_err(|stop| match stop {
                Stop::NotFound(msg) => Missed::NotFound(Error::failed(msg)),
                Stop::Offline(e) => Missed::Offline(e),
                Stop::Rejected(msg) => Missed::Failed(Error::failed(msg)),
                Stop::Failed(e) => Missed::Failed(e),
            })
    }

    /// How long no server has been reached, once `offline_after` passed without one.
    fn offline_due(&self) -> Option<Duration> {
        let after = self.offline_after?;
        let waited = self.started.elapsed();
        (!self.reached && waited >= after).then_some(waited)
    }

    /// True when the last fetch failed without reaching any server: every attempt was refused,
    /// had no route, could not connect or timed out (nothing answered, not even with a close).
    pub fn reached_no_server(&self) -> bool {
        !self.faults.is_empty() && self.faults.iter().all(|f| f.unreached())
    }

    /// Exchanges begun so far (one per server tried per round, over every secret fetched): the
    /// retries are this minus the number of secrets.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Fetches every name, in order, within one deadline; all or nothing.
    pub fn fetch_all(&mut self, names: &[SecretName]) -> Result<Vec<Vec<u8>>> {
        let deadline = Instant::now() + self.cfg.timeout;
        let mut values = Vec::with_capacity(names.len());
        for name in names {
            values.push(self.fetch(name, deadline)?);
        }
        Ok(values)
    }

    /// Fetches one secret, retrying the server list with backoff until `deadline`.
    pub fn fetch(&mut self, name: &SecretName, deadline: Instant) -> Result<Vec<u8>> {
        self.fetch_until(name, deadline, false)
            .map_err(|stop| match stop {
                Stop::Rejected(msg) | Stop::NotFound(msg) => Error::failed(msg),
                Stop::Failed(e) | Stop::Offline(e) => e,
            })
    }

    /// Checks a password (`cfg.password`) by fetching `name` once it reaches a server: servers
    /// that cannot be reached are retried with backoff within the timeout, but a request that
    /// was sent whole and refused is not sent again, so one typed password costs at most one
    /// failure on the server.
    pub fn check(&mut self, name: &SecretName) -> Check {
        let deadline = Instant::now() + self.cfg.timeout;
        match self.fetch_until(name, deadline, true) {
            Ok(_) => Check::Accepted,
            Err(Stop::Rejected(msg)) => Check::Rejected(msg),
            Err(Stop::NotFound(msg)) => Check::AcceptedNotFound(msg),
            Err(Stop::Failed(e) | Stop::Offline(e)) => Check::Unreachable(e),
        }
    }

    /// [`Client::fetch`], with a refused request final when `reject_is_final`.
    fn fetch_until(
        &mut self,
        name: &SecretName,
        deadline: Instant,
        reject_is_final: bool,
    ) -> std::result::Result<Vec<u8>, Stop> {
        let n = self.cfg.servers.len();
        // Seeded (a system call) only when a round fails: most fetches never pause.
        let mut backoff: Option<Backoff> = None;
        let mut round = 0u32;
        self.faults.clear();
        loop {
            round += 1;
            let mut misses: Vec<(Fault, String)> = Vec::new();
            // This round's order: the server that answered last first.
            let order: Vec<usize> = (0..n).map(|k| (self.preferred + k) % n).collect();
            // A typed password is checked on one server at a time: each refusal costs a failure.
            let got = if n > 1 && !reject_is_final {
                self.race(&order, name, deadline, round, &mut misses)
            } else {
                self.in_turn(&order, name, deadline, round, reject_is_final, &mut misses)
            };
            // A value, `Not found` or a refusal: some server was reached.
            self.reached |= !matches!(got, Ok(None));
            if let Some(value) = got? {
                self.faults.clear();
                return Ok(value);
            }
            let faults: Vec<Fault> = misses.iter().map(|(f, _)| *f).collect();
            self.reached |= faults.iter().any(|f| !f.unreached());
            self.faults.extend_from_slice(&faults);
            if let Some(waited) = self.offline_due() {
                for (_, m) in &misses {
                    log::line(m);
                }
                return Err(Stop::Offline(Error::failed(format!(
                    "no server of {} could be reached for {}",
                    self.list(),
                    crate::sys::log::secs(waited)
                ))));
            }
            let mut pause = backoff
                .get_or_insert_with(Backoff::new)
                .next_pause(Round::of(&faults));
            if let (Some(after), false) = (self.offline_after, self.reached) {
                // Not past the moment the cache may stand in.
                pause = pause.min(after.saturating_sub(self.started.elapsed()));
            }
            if Instant::now() + pause >= deadline {
                for (_, m) in &misses {
                    log::line(m);
                }
                return Err(Stop::Failed(Error::failed(format!(
                    "could not fetch secret {name:?} from {} within {} (see the lines above; raise --timeout if the network is slow to come up)",
                    self.list(),
                    crate::sys::log::secs(self.cfg.timeout)
                ))));
            }
            std::thread::sleep(pause);
        }
    }

    /// One round, one server after the other (one server, or a typed password to check).
    fn in_turn(
        &mut self,
        order: &[usize],
        name: &SecretName,
        deadline: Instant,
        round: u32,
        reject_is_final: bool,
        misses: &mut Vec<(Fault, String)>,
    ) -> std::result::Result<Option<Vec<u8>>, Stop> {
        for &i in order {
            let Some(host) = self.cfg.servers.get(i) else {
                continue;
            };
            if Instant::now() >= deadline {
                break;
            }
            self.begin(host, name, round);
            let server = self.display(host);
            let at = deadline.min(Instant::now() + ATTEMPT);
            let result = self.seal(name).and_then(|question| {
                let payload = exchange(&server, host, self.cfg.port, &Wire::of(&question), at)?;
                self.open(&server, name, &question, payload)
            });
            match result {
                Ok(value) => return Ok(Some(self.got(i, name, value))),
                Err(Miss::NotFound(msg)) => return Err(Stop::NotFound(msg)),
                Err(Miss::Rejected(msg)) if reject_is_final => return Err(Stop::Rejected(msg)),
                Err(miss) => self.missed(&server, miss, misses),
            }
        }
        Ok(None)
    }

    /// One round over several servers, hedged: the first server is asked; whenever the last
    /// one asked has not answered within [`HEDGE`], or every one asked has failed, the next is
    /// asked too, while the earlier attempts go on (each on its own thread, to its own
    /// [`ATTEMPT`] deadline). The first value wins; the others' answers are dropped.
    fn race(
        &mut self,
        order: &[usize],
        name: &SecretName,
        deadline: Instant,
        round: u32,
        misses: &mut Vec<(Fault, String)>,
    ) -> std::result::Result<Option<Vec<u8>>, Stop> {
        let answers = Arc::new(Answers::default());
        // Each server's request, to check its answer against (indexed like `cfg.servers`).
        let mut questions: Vec<Option<Question>> = self.cfg.servers.iter().map(|_| None).collect();
        let mut next = order.iter();
        let mut left = order.len();
        let mut running = 0usize;
        let mut hedge_at = Instant::now();
        loop {
            let now = Instant::now();
            let more = left > 0 && now < deadline;
            if more && (running == 0 || now >= hedge_at) {
                left -= 1;
                let Some((i, host)) = next
                    .next()
                    .and_then(|&i| self.cfg.servers.get(i).map(|h| (i, h.clone())))
                else {
                    continue;
                };
                self.begin(&host, name, round);
                let server = self.display(&host);
                let question = match self.seal(name) {
                    Ok(question) => question,
                    Err(miss) => {
                        self.missed(&server, miss, misses);
                        continue;
                    }
                };
                let (to, port, at) = (
                    Arc::clone(&answers),
                    self.cfg.port,
                    deadline.min(now + ATTEMPT),
                );
                // The round's first server is asked from this thread, patiently for HEDGE: a
                // server that answers in time (nearly always) costs no thread. Only one that
                // keeps the client waiting goes on in a thread, and the next server is asked.
                let first = left + 1 == order.len();
                let job = if first {
                    let patience = (now + HEDGE).min(at);
                    match first_phase(&server, &host, port, &Wire::of(&question), patience, at) {
                        First::Done(answer) => {
                            match answer
                                .and_then(|payload| self.open(&server, name, &question, payload))
                            {
                                Ok(value) => return Ok(Some(self.got(i, name, value))),
                                Err(Miss::NotFound(msg)) => return Err(Stop::NotFound(msg)),
                                Err(miss) => self.missed(&server, miss, misses),
                            }
                            continue;
                        }
                        First::Waiting(stream) => Some(stream),
                        First::NotConnected => None,
                    }
                } else {
                    None
                };
                let who = server.clone();
                let wire = Wire::of(&question);
                if let Some(slot) = questions.get_mut(i) {
                    *slot = Some(question);
                }
                // Once another server answered, nobody reads this answer: it is dropped with
                // the last reference.
                let spawned =
                    std::thread::Builder::new()
                        .stack_size(ATTEMPT_STACK)
                        .spawn(move || {
                            let answer = match job {
                                Some(stream) => receive(&who, &stream, &wire, at),
                                None => exchange(&who, &host, port, &wire, at),
                            };
                            to.put(i, answer)
                        });
                match spawned {
                    Ok(_) => {
                        running += 1;
                        // The first server has had its HEDGE already.
                        hedge_at = if first { Instant::now() } else { now + HEDGE };
                    }
                    Err(e) => {
                        let why = format!("cannot start a thread to ask server {server}: {e}");
                        self.missed(&server, Miss::Retry(Fault::NoConnection, why), misses);
                    }
                }
                continue;
            }
            if running == 0 {
                return Ok(None);
            }
            // Every attempt ends by its own deadline and then reports; the margin is for a
            // late wake-up.
            let wait = if more {
                hedge_at.saturating_duration_since(now)
            } else {
                ATTEMPT + Duration::from_secs(1)
            };
            match answers.take(wait) {
                Some((i, answer)) => {
                    running -= 1;
                    let host = self.cfg.servers.get(i).map(String::as_str).unwrap_or("?");
                    let server = self.display(host);
                    let question = questions.get_mut(i).and_then(Option::take);
                    match answer.and_then(|payload| match &question {
                        Some(q) => self.open(&server, name, q, payload),
                        // Every attempt put its question here before it started.
                        None => Err(Miss::Retry(
                            Fault::Unusable,
                            format!("server {server}: an answer to no request"),
                        )),
                    }) {
                        Ok(value) => return Ok(Some(self.got(i, name, value))),
                        Err(Miss::NotFound(msg)) => return Err(Stop::NotFound(msg)),
                        Err(miss) => self.missed(&server, miss, misses),
                    }
                }
                None if more => {}
                None => return Ok(None),
            }
        }
    }

    /// Counts and, with `--verbose`, reports an attempt being begun.
    fn begin(&mut self, host: &str, name: &SecretName, round: u32) {
        if self.cfg.verbose {
            log::line(&format!(
                "fetching {name} from {} (round {round})",
                self.display(host)
            ));
        }
        self.attempts = self.attempts.saturating_add(1);
    }

    /// Server `i` gave the value: it is asked first from now on.
    fn got(&mut self, i: usize, name: &SecretName, value: Vec<u8>) -> Vec<u8> {
        self.preferred = i;
        if self.cfg.verbose {
            if let Some(host) = self.cfg.servers.get(i) {
                log::line(&format!(
                    "got {name} from {} ({} bytes)",
                    self.display(host),
                    value.len()
                ));
            }
        }
        value
    }

    /// Records a failed attempt. The second connection closed without an answer (over every
    /// secret) is said once, whatever `--verbose`: the password or key is probably wrong, and
    /// retrying quickly would only get this address locked out.
    fn missed(&mut self, server: &str, miss: Miss, misses: &mut Vec<(Fault, String)>) {
        let (fault, msg) = match miss {
            Miss::Retry(f, msg) => (f, msg),
            Miss::Rejected(msg) | Miss::NotFound(msg) => (Fault::Silent, msg),
        };
        if self.cfg.verbose {
            log::line(&msg);
        }
        if fault == Fault::Silent {
            self.silent = self.silent.saturating_add(1);
            if self.silent == 2 {
                log::line(&format!(
                    "server {server} closed the connection without answering again: the password or the encryption key \
                     is probably wrong for this client (or the server's --authorized-ips does not allow this address), and after \
                     repeated failures the server refuses this address for a while; waiting seconds between tries from now on"
                ));
            }
        }
        misses.push((fault, msg));
    }

    fn display(&self, host: &str) -> String {
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{}", self.cfg.port)
        } else {
            format!("{host}:{}", self.cfg.port)
        }
    }

    fn list(&self) -> String {
        self.cfg
            .servers
            .iter()
            .map(|h| self.display(h))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The request for `name`, sealed afresh (a new nonce per attempt), in the configured
    /// protocol.
    fn seal(&self, name: &SecretName) -> std::result::Result<Question, Miss> {
        Question::new(
            &self.cfg.codec,
            self.cfg.protocol,
            &self.cfg.password,
            name.as_str(),
        )
        .map_err(|e| {
            Miss::Retry(
                Fault::NoConnection,
                match e {
                    SealError::NoRandom(e) => {
                        format!("no random nonce available for the request: {e}")
                    }
                    SealError::TooLong => "cannot seal the request: it is too long".to_owned(),
                },
            )
        })
    }

    /// The value in a response `payload` from `server` to `question`. An answer that is not to
    /// this very request (another key, or replayed or reflected on the path) fails this server
    /// like one that did not decrypt: the next is tried.
    fn open(
        &self,
        server: &str,
        name: &SecretName,
        question: &Question,
        payload: Vec<u8>,
    ) -> std::result::Result<Vec<u8>, Miss> {
        let answer = question
            .open_answer(
                &self.cfg.codec,
                &self.cfg.password,
                name.as_str().as_bytes(),
                payload,
            )
            .map_err(|e| Miss::Retry(Fault::Unusable, e.describe(server)))?;
        match answer {
            bound::Answer::Value(value) => Ok(value),
            bound::Answer::NotFound => Err(Miss::NotFound(format!(
                "server {server} has no secret named {name:?}: check the name against the server's -S/--secret-file list"
            ))),
        }
    }
}

/// What an attempt's thread needs of its request: the frame to send, the largest answer to
/// accept, and what to add when the server closes without answering.
struct Wire {
    /// Holds the password in the clear without a key: wiped when dropped.
    frame: Wiped,
    cap: usize,
    hint: &'static str,
}

impl Wire {
    fn of(question: &Question) -> Wire {
        Wire {
            frame: Wiped(question.frame().to_vec()),
            cap: question.response_cap(),
            hint: question.closed_hint(),
        }
    }
}

/// Which server (an index into the list) answered what.
type Answer = (usize, std::result::Result<Vec<u8>, Miss>);

/// The answers of a hedged round's attempts, each put by its thread, taken in order of
/// arrival. (A mutex and a condition variable: std's channels would add several KiB of code.)
#[derive(Default)]
struct Answers {
    queue: Mutex<Vec<Answer>>,
    ready: Condvar,
}

impl Answers {
    fn put(&self, server: usize, answer: std::result::Result<Vec<u8>, Miss>) {
        // A poisoned lock means a panic, which aborts this program first: nothing to handle.
        if let Ok(mut q) = self.queue.lock() {
            q.push((server, answer));
            self.ready.notify_one();
        }
    }

    /// The oldest answer not taken yet, waiting at most `wait` for one.
    fn take(&self, wait: Duration) -> Option<Answer> {
        let q = self.queue.lock().ok()?;
        let (mut q, _) = self
            .ready
            .wait_timeout_while(q, wait, |q| q.is_empty())
            .ok()?;
        (!q.is_empty()).then(|| q.remove(0))
    }
}

/// Stack of an attempt's thread: a connect (with the C library's name resolution), one write,
/// one frame read into the heap.
const ATTEMPT_STACK: usize = 128 * 1024;

/// One exchange with one server, by `at`: connect, send the sealed request, read the response
/// frame (still sealed).
fn exchange(
    server: &str,
    host: &str,
    port: u16,
    wire: &Wire,
    at: Instant,
) -> std::result::Result<Vec<u8>, Miss> {
    let stream = send_request(server, host, port, &wire.frame.0, at, at)?;
    receive(server, &stream, wire, at)
}

/// How the first, patient phase of a hedged round's first attempt ended.
enum First {
    /// An answer, a refusal or a failure, within the patience.
    Done(std::result::Result<Vec<u8>, Miss>),
    /// The request was sent and nothing has come back yet.
    Waiting(TcpStream),
    /// The connection was not set up within the patience (it may still be, later).
    NotConnected,
}

/// The first `patience` of an attempt that may last until `at`: connect, send, and wait for the
/// response to begin.
fn first_phase(
    server: &str,
    host: &str,
    port: u16,
    wire: &Wire,
    patience: Instant,
    at: Instant,
) -> First {
    match send_request(server, host, port, &wire.frame.0, patience, at) {
        Err(Miss::Retry(Fault::Timeout, _)) if patience < at => First::NotConnected,
        Err(miss) => First::Done(Err(miss)),
        Ok(stream) if readable(&stream, patience) => {
            First::Done(receive(server, &stream, wire, at))
        }
        Ok(stream) => First::Waiting(stream),
    }
}

/// True once `stream` has something to read (or an end or an error to report), false when
/// `until` passed first.
fn readable(stream: &TcpStream, until: Instant) -> bool {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        // At most HEDGE in practice; rounded up so that a poll never ends early.
        let ms = libc::c_int::try_from(left.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX);
        let mut pfd = libc::pollfd {
            fd: stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd owned by this frame, and the count says one; the
        // descriptor belongs to `stream`, which is borrowed (so open) for the call.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r > 0 {
            return true;
        }
        if r == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return false;
        }
    }
}

/// Connects to `host:port` by `connect_by` and sends the sealed request by `at`.
fn send_request(
    server: &str,
    host: &str,
    port: u16,
    sealed: &[u8],
    connect_by: Instant,
    at: Instant,
) -> std::result::Result<TcpStream, Miss> {
    let stream = net::connect(host, port, connect_by).map_err(|e| connect_problem(server, &e))?;
    Deadline::new(&stream, at).write_all(sealed).map_err(|e| {
        let fault = if net::is_timeout(&e) {
            Fault::Timeout
        } else {
            Fault::Unusable
        };
        Miss::Retry(
            fault,
            format!("server {server}: sending the request failed: {e}"),
        )
    })?;
    Ok(stream)
}

/// Reads the response frame (still sealed) from `stream` by `at`.
fn receive(
    server: &str,
    stream: &TcpStream,
    wire: &Wire,
    at: Instant,
) -> std::result::Result<Vec<u8>, Miss> {
    let mut io = Deadline::new(stream, at);
    frame::read_frame(&mut frame::InlineBuf::new(&mut io), wire.cap).map_err(|e| {
        let closed = match &e {
            FrameError::Closed | FrameError::Truncated { .. } => true,
            FrameError::Io(io) => matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
            ),
            FrameError::TooLarge { .. } => false,
        };
        if closed {
            Miss::Rejected(read_problem(server, &e) + wire.hint)
        } else if matches!(&e, FrameError::Io(io) if net::is_timeout(io)) {
            Miss::Retry(Fault::Timeout, read_problem(server, &e))
        } else {
            Miss::Retry(Fault::Unusable, read_problem(server, &e))
        }
    })
}

fn read_problem(server: &str, e: &FrameError) -> String {
    match e {
        FrameError::Closed | FrameError::Truncated { .. } => format!(
            "server {server} closed the connection without answering: the password, the encryption key \
             (or --insecure on one side only) or the server's --authorized-ips is wrong for this client, or the server is starting"
        ),
        FrameError::Io(io) if matches!(io.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted) => format!(
            "server {server} reset the connection without answering: the password, the encryption key or --authorized-ips \
             is wrong for this client, or the server is busy"
        ),
        FrameError::Io(io) if net::is_timeout(io) => format!("server {server} accepted the connection but sent no response in time"),
        FrameError::TooLarge { len, cap } => {
            format!("server {server} announced a {len}-byte response, over the {cap}-byte limit: refused")
        }
        FrameError::Io(io) => format!("server {server}: reading the response failed: {io}"),
    }
}

fn connect_problem(server: &str, e: &io::Error) -> Miss {
    let (fault, msg) = match e.kind() {
        io::ErrorKind::ConnectionRefused => (
            Fault::Refused,
            format!("server {server} refused the connection: is `netsecrets receive` running there on this --port?"),
        ),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => (
            Fault::Timeout,
            format!("server {server} did not answer in time: check the address, the route and firewalls"),
        ),
        _ if e.raw_os_error() == Some(libc::ENETUNREACH) || e.raw_os_error() == Some(libc::EHOSTUNREACH) => (
            Fault::Refused,
            format!("server {server} is unreachable ({e}): is the network up?"),
        ),
        _ => (
            Fault::NoConnection,
            format!("cannot connect to server {server}: {e} (check --server/--fallbacks)"),
        ),
    };
    Miss::Retry(fault, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The base of pause `i` (0-based): 0.25 s doubling to 5 s.
    fn base(i: u32) -> Duration {
        (FIRST_BACKOFF * 2u32.saturating_pow(i.min(8))).min(MAX_BACKOFF)
    }

    #[test]
    fn pauses_stay_in_the_upper_half_of_the_doubling_base() {
        for seed in [0, 1, 42, u64::MAX] {
            let mut b = Backoff::seeded(seed);
            for i in 0..12 {
                let p = b.next_pause(Round::Slow);
                assert!(
                    p >= base(i) / 2 && p <= base(i),
                    "seed {seed}, pause {i}: {p:?}"
                );
            }
        }
        // The cap is reached and kept.
        let mut b = Backoff::seeded(7);
        let last: Vec<Duration> = (0..20)
            .map(|_| b.next_pause(Round::Slow))
            .skip(10)
            .collect();
        assert!(last
            .iter()
            .all(|p| *p >= MAX_BACKOFF / 2 && *p <= MAX_BACKOFF));
    }

    #[test]
    fn refused_rounds_pause_briefly_and_silent_ones_long() {
        let mut b = Backoff::seeded(3);
        // Timeouts first grow the doubling base; refusals keep their short pause regardless.
        for _ in 0..6 {
            b.next_pause(Round::Slow);
        }
        for _ in 0..50 {
            let p = b.next_pause(Round::Refused);
            assert!(p >= REFUSED_PAUSE / 2 && p <= REFUSED_PAUSE, "{p:?}");
        }
        // Silent closes: [2 s, 4 s], [8 s, 16 s], then [15 s, 30 s] for good: three tries
        // in send's default 30 s, not five in three seconds.
        let mut b = Backoff::seeded(9);
        let want = [(2, 4), (8, 16), (15, 30), (15, 30), (15, 30)];
        for (lo, hi) in want {
            let p = b.next_pause(Round::Silent);
            assert!(
                p >= Duration::from_secs(lo) && p <= Duration::from_secs(hi),
                "{p:?} not in [{lo}, {hi}] s"
            );
        }
        // And the doubling schedule was not advanced by the others.
        let p = b.next_pause(Round::Slow);
        assert!(p <= FIRST_BACKOFF, "{p:?}");
    }

    #[test]
    fn a_round_is_classified_by_its_worst_failure() {
        use Fault::*;
        assert_eq!(Round::of(&[Refused, Refused]), Round::Refused);
        assert_eq!(Round::of(&[Refused, Timeout]), Round::Slow);
        assert_eq!(Round::of(&[Refused, Silent]), Round::Silent);
        assert_eq!(Round::of(&[Unusable]), Round::Slow);
        assert_eq!(Round::of(&[]), Round::Slow);
        assert!(Refused.unreached() && Timeout.unreached() && NoConnection.unreached());
        assert!(!Silent.unreached() && !Unusable.unreached());
    }

    #[test]
    fn two_clients_draw_different_schedules() {
        // Seeded from the operating system, as every client is: two schedules started in the
        // same instant differ (a collision of all 8 pauses is a 2^-200 event, not a flake).
        let (mut a, mut b) = (Backoff::new(), Backoff::new());
        let sa: Vec<Duration> = (0..8).map(|_| a.next_pause(Round::Slow)).collect();
        let sb: Vec<Duration> = (0..8).map(|_| b.next_pause(Round::Slow)).collect();
        assert_ne!(sa, sb);
        // And they spread: 1 000 clients' first pauses cover the whole [0.125 s, 0.25 s].
        let firsts: Vec<Duration> = (0..1000)
            .map(|_| Backoff::new().next_pause(Round::Slow))
            .collect();
        let lo = firsts.iter().min().copied().unwrap_or_default();
        let hi = firsts.iter().max().copied().unwrap_or_default();
        assert!(lo < Duration::from_millis(135), "lowest first pause {lo:?}");
        assert!(
            hi > Duration::from_millis(240),
            "highest first pause {hi:?}"
        );
    }

    #[test]
    fn a_client_gives_up_before_a_pause_would_pass_the_deadline() {
        use crate::wire::crypto::Codec;
        // Nothing listens on this port: every round is refused at once and followed by a pause
        // of 0.15-0.3 s; the deadline (0.6 s) falls inside the second to fourth pause.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let cfg = ClientConfig {
            servers: vec!["127.0.0.1".into()],
            port,
            password: b"pw".to_vec(),
            codec: Codec::Plain,
            protocol: crate::wire::bound::Protocol::V1,
            timeout: Duration::from_millis(600),
            verbose: false,
        };
        let mut c = Client::new(&cfg);
        let t = Instant::now();
        let name: SecretName = "a".parse().unwrap();
        assert!(c.fetch_all(std::slice::from_ref(&name)).is_err());
        // A pause that would pass the 0.6 s deadline is not slept; the margin is for a late
        // wake-up on a loaded machine.
        let took = t.elapsed();
        assert!(took < Duration::from_millis(850), "gave up after {took:?}");
        assert!((2..=4).contains(&c.attempts()), "{} attempts", c.attempts());
        // Nothing listened: no server was reached (what an offline fallback needs to know).
        assert!(c.reached_no_server());
    }
}
