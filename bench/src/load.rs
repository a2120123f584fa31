//! The load generator: C threads, each a client speaking the wire protocol in a loop (one
//! connection per request, as netsecrets peers do): connect, send one request frame, read one
//! response frame, check the value, close. `--protocol 2` (with `--key`) sends protocol-2
//! requests and checks each answer as the real client does (bound to its request's nonce and
//! name, `Question::open_answer`); protocol 1, the default, is the first protocol (the library's
//! `Question` too, so a reflected request is refused as the client refuses it). Runs for warm-up + T seconds; only requests that
//! complete inside the T-second window are counted. Every step has a 5 s timeout.
//!
//! Prints one line: `RESULT ok=.. err=.. total=.. secs=.. rps=.. p50_us=.. p99_us=.. max_us=.. errs=kind:n,..`

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use netsecrets::wire::bound::{Answer, Protocol, Question};
use netsecrets::wire::crypto::{Codec, Key};

use crate::net::{dial, read_frame_into};
use crate::{die, value_for, Args};

const STEP_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Tally {
    lat_us: Vec<u32>,
    total: u64,
    errs: std::collections::BTreeMap<&'static str, u64>,
}

pub fn run(args: &Args) {
    let addr: SocketAddr = args
        .need("addr")
        .parse()
        .unwrap_or_else(|_| die("--addr IP:PORT"));
    let conc: usize = args.num("conc", 8);
    let secs: f64 = args.num("secs", 3.0);
    let warmup: f64 = args.num("warmup", 0.5);
    let names: usize = args.num("names", 1);
    let password = args.str("password", "bench-password").into_bytes();
    let key = args.get("key").map(str::to_string);
    let protocol = match args.str("protocol", "1").as_str() {
        "1" => Protocol::V1,
        "2" if key.is_some() => Protocol::V2,
        "2" => die("load: --protocol 2 needs --key (plaintext is protocol 1 only)"),
        p => die(&format!("load: --protocol must be 1 or 2, not {p:?}")),
    };
    if !(0.1..=600.0).contains(&secs) || conc == 0 || conc > 4096 {
        die("load: --secs must be 0.1..600, --conc 1..4096");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let from = start + Duration::from_secs_f64(warmup);
    let until = from + Duration::from_secs_f64(secs);
    let mut handles = Vec::new();
    for t in 0..conc {
        let stop = Arc::clone(&stop);
        let password = password.clone();
        let key = key.clone();
        handles.push(
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let codec = match key {
                        Some(k) => Codec::Aes(Key::from_str_key(&k)),
                        None => Codec::Plain,
                    };
                    client(
                        addr, &codec, protocol, &password, names, t, from, until, &stop,
                    )
                })
                .unwrap_or_else(|e| die(&format!("spawn: {e}"))),
        );
    }
    let now = Instant::now();
    if until > now {
        thread::sleep(until - now);
    }
    stop.store(true, Ordering::Relaxed);
    let mut all = Tally::default();
    for h in handles {
        let t = h.join().unwrap_or_else(|_| die("a client thread panicked"));
        all.lat_us.extend_from_slice(&t.lat_us);
        all.total += t.total;
        for (k, n) in t.errs {
            *all.errs.entry(k).or_default() += n;
        }
    }
    all.lat_us.sort_unstable();
    let ok = all.lat_us.len();
    let err: u64 = all.errs.values().sum();
    let pct = |q: f64| -> u32 {
        if ok == 0 {
            return 0;
        }
        let i = ((q * ok as f64).ceil() as usize).clamp(1, ok) - 1;
        all.lat_us[i]
    };
    let errs: Vec<String> = all.errs.iter().map(|(k, n)| format!("{k}:{n}")).collect();
    println!(
        "RESULT ok={ok} err={err} total={} secs={secs} rps={:.1} p50_us={} p99_us={} max_us={} errs={}",
        all.total,
        ok as f64 / secs,
        pct(0.50),
        pct(0.99),
        all.lat_us.last().copied().unwrap_or(0),
        if errs.is_empty() { "-".to_string() } else { errs.join(",") }
    );
    let _ = io::stdout().flush();
}

#[allow(clippy::too_many_arguments)]
fn client(
    addr: SocketAddr,
    codec: &Codec,
    protocol: Protocol,
    password: &[u8],
    names: usize,
    t: usize,
    from: Instant,
    until: Instant,
    stop: &AtomicBool,
) -> Tally {
    let mut tally = Tally::default();
    let mut buf = Vec::with_capacity(4096);
    let mut i = t;
    while !stop.load(Ordering::Relaxed) {
        let name = format!("s{}", i % names);
        i += 1;
        let t0 = Instant::now();
        let r = exchange(addr, codec, protocol, password, &name, &mut buf);
        let t1 = Instant::now();
        tally.total += 1;
        if t1 < from || t1 > until {
            continue;
        }
        match r {
            Ok(()) => tally
                .lat_us
                .push(u32::try_from((t1 - t0).as_micros()).unwrap_or(u32::MAX)),
            Err(kind) => {
                *tally.errs.entry(kind).or_default() += 1;
                // A refused or reset connection returns at once: do not spin on a dead server.
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
    tally
}

fn exchange(
    addr: SocketAddr,
    codec: &Codec,
    protocol: Protocol,
    password: &[u8],
    name: &str,
    buf: &mut Vec<u8>,
) -> Result<(), &'static str> {
    let mut s = dial(addr, STEP_TIMEOUT).map_err(|e| kind("connect", &e))?;
    let q = Question::new(codec, protocol, password, name).map_err(|_| "random")?;
    s.write_all(q.frame()).map_err(|e| kind("write", &e))?;
    let range = read_frame_into(&mut s, buf, q.response_cap()).map_err(|e| kind("read", &e))?;
    let payload = buf[range].to_vec();
    match q.open_answer(codec, password, name.as_bytes(), payload) {
        Ok(Answer::Value(v)) if v == value_for(name) => Ok(()),
        Ok(Answer::Value(_)) => Err("wrong-value"),
        Ok(Answer::NotFound) => Err("not-found"),
        Err(_) => Err("undecryptable"),
    }
}

fn kind(step: &'static str, e: &io::Error) -> &'static str {
    use io::ErrorKind::*;
    match (step, e.kind()) {
        ("connect", ConnectionRefused) => "connect-refused",
        ("connect", WouldBlock | TimedOut) => "connect-timeout",
        ("connect", _) => "connect-other",
        ("read", UnexpectedEof) => "closed-without-response",
        (_, ConnectionReset | BrokenPipe) => "reset",
        (_, WouldBlock | TimedOut) => "timeout",
        ("write", _) => "write-other",
        _ => "read-other",
    }
}

/// `probe --addr IP:PORT`: exits 0 once a connection succeeds, 1 after 5 s of trying.
pub fn probe(args: &Args) {
    let addr: SocketAddr = args
        .need("addr")
        .parse()
        .unwrap_or_else(|_| die("--addr IP:PORT"));
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if dial(addr, Duration::from_millis(500)).is_ok() {
            std::process::exit(0);
        }
        thread::sleep(Duration::from_millis(10));
    }
    std::process::exit(1);
}
