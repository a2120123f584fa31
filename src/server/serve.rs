//! Serving one connection: the checks right after `accept`, then one request read, judged and
//! answered, then one log line.
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
//! outcome and the duration, never a value, password or key; the lines are rate-limited per
//! [`Kind`] (answers to authenticated clients with a larger budget), with counts
//! (`server/log_budget.rs`).
//!
//! A request is judged by the configuration current when it has arrived (`server/signals.rs`).
//! Once answered, a connection gives its slot back but keeps its answer bytes until the client
//! has acknowledged the answer (`server/drain.rs`). Which thread serves which connection is
//! `server/pool.rs`'s job.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Live;
use crate::server::cidr::{self, Cidr};
use crate::server::drain::Drainer;
use crate::server::limits::MAX_REQUEST_BYTES;
use crate::server::limits::{AnswerBytes, Gate, Pending, Permit, Refusal};
use crate::server::log_budget::{Kind, LogBudget};
use crate::server::signals::LiveConfig;
use crate::sys::log::{self, Millis, Printable};
use crate::sys::net::Deadline;
use crate::wire::bound::Protocol;
use crate::wire::crypto::SealError;
use crate::wire::frame::{self, FrameError};
use crate::wire::protocol;

/// What serving a connection needs; read-only after start apart from the counters and tables.
pub struct Service {
    pub authorized: Vec<Cidr>,
    /// The secrets and clients, reloaded on SIGHUP.
    pub live: Arc<LiveConfig>,
    pub timeout: Duration,
    pub verbose: bool,
    pub gate: Arc<Gate>,
    pub pending: Arc<Pending>,
    /// Connections whose answer is not yet acknowledged (server/drain.rs).
    pub drainer: Drainer,
    /// The connections' log lines, rate-limited per [`Kind`].
    pub log: LogBudget,
    /// `--min-protocol`: protocol-1 requests are refused below [`Protocol::V2`].
    pub min_protocol: Protocol,
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

/// What the lookup of the name asked for found. The client is answered the same for the last
/// two: a name it may not read is not told apart from one that does not exist.
enum Lookup {
    /// The secret exists and the client may read it: its value is sent.
    Readable,
    /// No secret has that name.
    Missing,
    /// The secret exists, but the client may not read it.
    Withheld,
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
pub struct Job {
    registration: Registration,
    /// Shared with [`Pending`] while registered, so an eviction always shuts down an open
    /// descriptor; the descriptor closes when the last owner drops it.
    stream: Arc<TcpStream>,
    /// The peer, with an IPv4-mapped address shown as the IPv4 address it is.
    peer: SocketAddr,
    accepted: Instant,
    permit: Permit,
}

impl Job {
    /// Its place among the connections that may be evicted.
    pub fn id(&self) -> u64 {
        self.registration.id
    }
}

/// The checks right after `accept`, before a byte is read.
pub fn admit(service: &Service, stream: TcpStream, peer: SocketAddr) -> Option<Job> {
    let now = Instant::now();
    let ip = cidr::canonical(peer.ip());
    let peer = SocketAddr::new(ip, peer.port());
    if !cidr::allowed(&service.authorized, ip) {
        service.log.line(
            Kind::Denied,
            &format!("peer={peer} outcome=denied (not in --authorized-ips)"),
        );
        return None;
    }
    let admitted = match service.gate.admit(ip, now, false) {
        // Full: make room by closing the oldest connection whose request is still incomplete
        // (an idle or dribbling client), not by refusing this one.
        Err(Refusal::Busy) if service.pending.evict_oldest() => service.gate.admit(ip, now, true),
        other => other,
    };
    match admitted {
        Ok(permit) => {
            let pending = Arc::clone(&service.pending);
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
            service.log.line(
                Kind::Refused,
                &format!("peer={peer} outcome={}", refusal.describe()),
            );
            None
        }
    }
}

/// Serves an admitted connection to its end: the request, the answer, the close, the log line.
pub fn handle(service: &Service, mut job: Job) {
    // Taken again once the request has arrived (see `serve`).
    let mut live = service.live.current();
    let mut client = None;
    let mut protocol = None;
    let mut reserved = None;
    let outcome = serve(
        service,
        &mut live,
        &mut job,
        &mut client,
        &mut protocol,
        &mut reserved,
    );
    // End at once, before the bookkeeping and the log line: the socket is corked (see
    // `Server::bind` in server/receive.rs), so the FIN sent here is what sends the answer.
    // Deregistered first, so that the drainer holds the stream's last reference; the slot is
    // given back now, the answer bytes stay taken until the client has acknowledged the answer
    // (server/drain.rs).
    job.registration.finish();
    service.drainer.close(
        job.stream,
        job.permit,
        reserved,
        job.accepted + service.timeout,
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
        Some(kind) => service.log.end_line(kind, text),
    }
}

/// Serves one connection; sets `client` (an index into `live.ids`) once the password matched,
/// `protocol` once the request opened, and `reserved` to the answer bytes of the answer written.
fn serve(
    service: &Service,
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
    let mut io = Deadline::preset(&job.stream, job.accepted + service.timeout, service.timeout);
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
    *live = service.live.current();
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
    if via.protocol() < service.min_protocol {
        return Outcome::OldProtocol;
    }
    let req = match protocol::parse_request(&plain) {
        Ok(r) => r,
        Err(e) => return Outcome::Malformed(e.as_str()),
    };
    // Re-checked here, not only at accept: connections opened in advance give no extra guesses.
    if let Err(r) = service.gate.may_guess(ip, Instant::now()) {
        return Outcome::Refused(r);
    }
    // A password of a client not allowed here, or sent with another client's key, is as wrong
    // as one nobody has.
    let (Some(who), Some(codec)) = (
        live.ids.find(req.password, codec_idx, ip),
        live.ids.codec(codec_idx),
    ) else {
        // Counted before the connection closes, so the next guess already sees it.
        service.gate.failed(ip, req.password, Instant::now());
        return Outcome::WrongPassword;
    };
    *client = Some(who);
    let may_read = live
        .ids
        .client(who)
        .is_some_and(|c| c.access.allows(req.name));
    let name = req.name.to_vec();
    // A name the client may not read gets the very answer of a name that does not exist.
    let (value, lookup) = match live.secrets.get(req.name) {
        Some(v) if may_read => (Some(v.as_slice()), Lookup::Readable),
        Some(_) => (None, Lookup::Withheld),
        None => (None, Lookup::Missing),
    };
    // Reserved before the answer is allocated and held until the client has acknowledged it
    // (server/drain.rs): clients that do not read hold at most MAX_ANSWER_BYTES of answers in
    // all until their deadline (their --max-per-ip slots are given back once it is written).
    match service
        .gate
        .reserve_answer(ip, via.answer_len(codec, value))
    {
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
    if service.verbose {
        log::line(&format!(
            "peer={} client={} sent {} bytes",
            job.peer,
            live.ids.client(who).map_or("?", |c| c.name.as_str()),
            answer.len().saturating_sub(frame::HEADER_LEN)
        ));
    }
    match lookup {
        Lookup::Readable => Outcome::Served(name),
        Lookup::Missing => Outcome::NotFound(name),
        Lookup::Withheld => Outcome::DeniedSecret(name),
    }
}
