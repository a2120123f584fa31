//! The client (`netsecrets send`): fetch named secrets from the primary server or its fallbacks,
//! retrying until a deadline, and hand back every value or an error — never a partial result.
//!
//! One connection per secret: connect, send one request frame, read one response frame. Servers
//! are tried in order, the one that answered last first. A refused or timed-out connection, or one
//! closed without a response, moves on to the next server; when every server failed, the whole
//! list is tried again after a backoff (0.25 s doubling to 5 s, each pause drawn at random from
//! its upper half, see [`Backoff`]) until the deadline — at boot the network often comes up after
//! the client starts, and a whole site's clients boot together: the jitter spreads their retries
//! instead of bringing them back in lock-step. `Not found` is final for that secret.

use std::io::{self, Write as _};
use std::time::{Duration, Instant};

use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::sys::log;
use crate::sys::net::{self, Deadline};
use crate::sys::wipe::Wiped;
use crate::wire::crypto::{OpenError, SealError};
use crate::wire::frame::{self, FrameError, MAX_RESPONSE};
use crate::wire::protocol::{self, SecretName, NOT_FOUND};

/// Longest one attempt (connect + request + response) may take, so that one silent server does
/// not use up the whole deadline and the fallbacks get their turn.
const ATTEMPT: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The pauses between two rounds over the server list: a base of [`FIRST_BACKOFF`] doubling to
/// [`MAX_BACKOFF`], each pause drawn uniformly from `[base/2, base]` ("equal jitter"). Clients
/// that failed together (a rack booting after a power cut, a server that comes up late) then
/// come back spread over half the base instead of all at once, while none retries sooner than
/// half the plain schedule. Seeded from the operating system's random source, so two clients
/// started in the same instant draw different schedules.
pub(crate) struct Backoff {
    base: Duration,
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
            rng: seed,
        }
    }

    /// The next pause; the base doubles (up to [`MAX_BACKOFF`]) for the one after.
    pub fn next_pause(&mut self) -> Duration {
        let base = self.base;
        self.base = (base * 2).min(MAX_BACKOFF);
        let half = base / 2;
        // Nanoseconds of a pause of at most MAX_BACKOFF always fit in a u64.
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

/// How one attempt against one server ended, other than with the value.
enum Miss {
    /// Worth trying again later or elsewhere; the text says what to check.
    Retry(String),
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
}

impl<'a> Client<'a> {
    pub fn new(cfg: &'a ClientConfig) -> Client<'a> {
        Client {
            cfg,
            preferred: 0,
            attempts: 0,
        }
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
                Stop::Failed(e) => e,
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
            Err(Stop::Failed(e)) => Check::Unreachable(e),
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
        let mut backoff = Backoff::new();
        let mut round = 0u32;
        loop {
            round += 1;
            let mut misses: Vec<String> = Vec::new();
            for k in 0..n {
                let i = (self.preferred + k) % n;
                let Some(host) = self.cfg.servers.get(i) else {
                    continue;
                };
                if Instant::now() >= deadline {
                    break;
                }
                if self.cfg.verbose {
                    log::line(&format!(
                        "fetching {name} from {} (round {round})",
                        self.display(host)
                    ));
                }
                self.attempts = self.attempts.saturating_add(1);
                match self.attempt(host, name, deadline) {
                    Ok(value) => {
                        self.preferred = i;
                        if self.cfg.verbose {
                            log::line(&format!(
                                "got {name} from {} ({} bytes)",
                                self.display(host),
                                value.len()
                            ));
                        }
                        return Ok(value);
                    }
                    Err(Miss::NotFound(msg)) => return Err(Stop::NotFound(msg)),
                    Err(Miss::Rejected(msg)) if reject_is_final => return Err(Stop::Rejected(msg)),
                    Err(Miss::Retry(msg) | Miss::Rejected(msg)) => {
                        if self.cfg.verbose {
                            log::line(&msg);
                        }
                        misses.push(msg);
                    }
                }
            }
            let pause = backoff.next_pause();
            if Instant::now() + pause >= deadline {
                for m in &misses {
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

    /// One exchange with one server.
    fn attempt(
        &self,
        host: &str,
        name: &SecretName,
        deadline: Instant,
    ) -> std::result::Result<Vec<u8>, Miss> {
        let at = deadline.min(Instant::now() + ATTEMPT);
        let server = self.display(host);
        let stream = net::connect(host, self.cfg.port, at)
            .map_err(|e| Miss::Retry(connect_problem(&server, &e)))?;
        let mut io = Deadline::new(&stream, at);
        // The request holds the password in the clear (and so does `sealed` without a key):
        // both are wiped when dropped.
        let request = Wiped(protocol::build_request(&self.cfg.password, name.as_str()));
        let sealed = self.cfg.codec.seal_frame(&request.0).map_err(|e| {
            Miss::Retry(match e {
                SealError::NoRandom(e) => {
                    format!("no random nonce available for the request: {e}")
                }
                SealError::TooLong => "cannot seal the request: it is too long".to_owned(),
            })
        })?;
        let sealed = Wiped(sealed);
        io.write_all(&sealed.0).map_err(|e| {
            Miss::Retry(format!("server {server}: sending the request failed: {e}"))
        })?;
        let payload = frame::read_frame(&mut frame::InlineBuf::new(&mut io), MAX_RESPONSE)
            .map_err(|e| {
                let closed = match &e {
                    FrameError::Closed | FrameError::Truncated { .. } => true,
                    FrameError::Io(io) => matches!(
                        io.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                    ),
                    FrameError::TooLarge { .. } => false,
                };
                if closed {
                    Miss::Rejected(read_problem(&server, &e))
                } else {
                    Miss::Retry(read_problem(&server, &e))
                }
            })?;
        let value = self.cfg.codec.open(payload).map_err(|e| {
            Miss::Retry(match e {
                OpenError::TooShort | OpenError::BadTag => format!(
                    "the response from {server} did not decrypt: the encryption keys differ, or the server runs without one (--insecure)"
                ),
            })
        })?;
        if value == NOT_FOUND {
            return Err(Miss::NotFound(format!(
                "server {server} has no secret named {name:?}: check the name against the server's -S/--secret-file list"
            )));
        }
        Ok(value)
    }
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

fn connect_problem(server: &str, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            format!("server {server} refused the connection: is `netsecrets receive` running there on this --port?")
        }
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            format!("server {server} did not answer in time: check the address, the route and firewalls")
        }
        _ if e.raw_os_error() == Some(101) || e.raw_os_error() == Some(113) => {
            format!("server {server} is unreachable ({e}): is the network up?")
        }
        _ => format!("cannot connect to server {server}: {e} (check --server/--fallbacks)"),
    }
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
                let p = b.next_pause();
                assert!(
                    p >= base(i) / 2 && p <= base(i),
                    "seed {seed}, pause {i}: {p:?}"
                );
            }
        }
        // The cap is reached and kept.
        let mut b = Backoff::seeded(7);
        let last: Vec<Duration> = (0..20).map(|_| b.next_pause()).skip(10).collect();
        assert!(last
            .iter()
            .all(|p| *p >= MAX_BACKOFF / 2 && *p <= MAX_BACKOFF));
    }

    #[test]
    fn two_clients_draw_different_schedules() {
        // Seeded from the operating system, as every client is: two schedules started in the
        // same instant differ (a collision of all 8 pauses is a 2^-200 event, not a flake).
        let (mut a, mut b) = (Backoff::new(), Backoff::new());
        let sa: Vec<Duration> = (0..8).map(|_| a.next_pause()).collect();
        let sb: Vec<Duration> = (0..8).map(|_| b.next_pause()).collect();
        assert_ne!(sa, sb);
        // And they spread: 1 000 clients' first pauses cover the whole [0.125 s, 0.25 s].
        let firsts: Vec<Duration> = (0..1000).map(|_| Backoff::new().next_pause()).collect();
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
        // Nothing listens on this port: every round fails at once; the deadline (0.6 s) falls
        // inside the third pause at the latest (0.125-0.25 + 0.25-0.5 + 0.5-1 s).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let cfg = ClientConfig {
            servers: vec!["127.0.0.1".into()],
            port,
            password: b"pw".to_vec(),
            codec: Codec::Plain,
            timeout: Duration::from_millis(600),
            verbose: false,
        };
        let mut c = Client::new(&cfg);
        let t = Instant::now();
        let name: SecretName = "a".parse().unwrap();
        assert!(c.fetch_all(std::slice::from_ref(&name)).is_err());
        // Sleeping the third pause would end at 0.875 s at the earliest; the margin above the
        // 0.6 s deadline is for a late wake-up on a loaded machine.
        let took = t.elapsed();
        assert!(took < Duration::from_millis(850), "gave up after {took:?}");
        assert!((2..=3).contains(&c.attempts()), "{} attempts", c.attempts());
    }
}
