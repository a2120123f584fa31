//! The floor: the cheapest server for this protocol. Accept, read one frame, answer a fixed value,
//! close. No address check, no admission, no deadline, no password, no lookup, no log.
//! With `--key`, the request is decrypted (a server must, to learn the name; the result is
//! ignored) and the fixed value is sealed with a fresh nonce, exactly as the product does it.
//! `--protocol 2` (with `--key`): the request is opened as protocol 2 and the answer bound to
//! its nonce and name (the library's `open_request` and `answer_frame`); the name is the
//! request's last word, no other check. The default, protocol 1, opens with no associated data
//! only, so the floor never pays the product's trial opening.
//!
//! Thread models (`--variant`), so the orchestrator can use the fastest as the floor:
//! - `single`  — one thread: accept, serve, repeat.
//! - `pool:N`  — N threads, each blocking in `accept` on the same socket and serving inline.
//! - `tpc`     — an accept loop that starts one thread per connection.
//!
//! Diagnostic variants (not candidates for the floor; they rebuild one piece of the product's
//! design at a time, to attribute the gap between netsecrets and the floor):
//! - `handoff` — netsecrets' thread model: one accept thread hands each connection to a pool of
//!   workers through a `Mutex<VecDeque>` + `Condvar`, workers started on demand (as server.rs).
//! - `+timeouts` suffix — re-arm SO_RCVTIMEO before the read and SO_SNDTIMEO before the write
//!   (as net.rs `Deadline` does), e.g. `handoff+timeouts`.
//! - `+log` suffix — format one log line per connection and write it to stderr (as log.rs).
//!
//! A floor candidate as well as a piece of the product's design:
//! - `+cork` suffix — TCP_CORK on the listener, inherited by every accepted socket, so the answer
//!   leaves with the FIN in one segment when the socket is closed (as server.rs does).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use netsecrets::wire::bound::Via;
use netsecrets::wire::crypto::{Codec, Key};
use netsecrets::wire::frame;

use crate::{die, value_for, Args};

struct Ctx {
    timeouts: bool,
    log: bool,
    codec: Codec,
    /// Protocol 2: open as protocol 2, answer bound to the request.
    v2: bool,
    value: Vec<u8>,
    /// The whole plaintext response frame, built once.
    plain_frame: Vec<u8>,
}

pub fn run(args: &Args) {
    let bind = args.str("bind", "127.0.0.1");
    let port: u16 = args.num("port", 0);
    let variant = args.str("variant", "pool:2");
    let value = value_for(&args.str("name", "s0"));
    let codec = match args.get("key") {
        Some(k) => Codec::Aes(Key::from_str_key(k)),
        None => Codec::Plain,
    };
    let v2 = match args.str("protocol", "1").as_str() {
        "1" => false,
        "2" if matches!(codec, Codec::Aes(_)) => true,
        _ => die("floor: --protocol is 1 or 2, and 2 needs --key"),
    };
    let plain_frame = frame::encode(&value).unwrap_or_else(|_| die("encode"));
    let mut parts = variant.split('+');
    let model = parts.next().unwrap_or("pool:2").to_string();
    let extras: Vec<&str> = parts.collect();
    let ctx = Arc::new(Ctx {
        timeouts: extras.contains(&"timeouts"),
        log: extras.contains(&"log"),
        codec,
        v2,
        value,
        plain_frame,
    });
    let listener = TcpListener::bind((bind.as_str(), port))
        .unwrap_or_else(|e| die(&format!("floor: bind {bind}:{port}: {e}")));
    if extras.contains(&"cork") {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: `on` lives across the call and the length passed is its size; the listener's
        // descriptor is open for the call.
        let r = unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_CORK,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            die(&format!("floor: TCP_CORK: {}", std::io::Error::last_os_error()));
        }
    }
    eprintln!(
        "floor: listening on {} ({variant})",
        listener.local_addr().map(|a| a.to_string()).unwrap_or_default()
    );
    match model.as_str() {
        "single" => accept_loop(&listener, &ctx),
        "handoff" => handoff(&listener, &ctx),
        "tpc" => loop {
            if let Ok((s, _)) = listener.accept() {
                let ctx = Arc::clone(&ctx);
                let _ = thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn(move || serve(&ctx, s));
            }
        },
        v => {
            let n: usize = v
                .strip_prefix("pool:")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| die(&format!("floor: unknown variant {v:?}")));
            let mut handles = Vec::new();
            for _ in 0..n {
                let l = listener.try_clone().unwrap_or_else(|e| die(&e.to_string()));
                let ctx = Arc::clone(&ctx);
                handles.push(
                    thread::Builder::new()
                        .stack_size(64 * 1024)
                        .spawn(move || accept_loop(&l, &ctx))
                        .unwrap_or_else(|e| die(&e.to_string())),
                );
            }
            for h in handles {
                let _ = h.join();
            }
        }
    }
}

fn accept_loop(listener: &TcpListener, ctx: &Ctx) -> ! {
    loop {
        if let Ok((s, _)) = listener.accept() {
            serve(ctx, s);
        }
    }
}

/// The product's model: an accept thread and a condvar-fed pool, workers started on demand.
fn handoff(listener: &TcpListener, ctx: &Arc<Ctx>) -> ! {
    struct Q {
        queue: VecDeque<(TcpStream, Instant)>,
        idle: usize,
        threads: usize,
    }
    let shared = Arc::new((
        Mutex::new(Q {
            queue: VecDeque::new(),
            idle: 0,
            threads: 0,
        }),
        Condvar::new(),
    ));
    loop {
        let Ok((s, _)) = listener.accept() else {
            continue;
        };
        let (lock, cv) = &*shared;
        let mut q = lock.lock().unwrap();
        q.queue.push_back((s, Instant::now()));
        if q.idle > 0 {
            drop(q);
            cv.notify_one();
        } else if q.threads < 256 {
            q.threads += 1;
            drop(q);
            let shared = Arc::clone(&shared);
            let ctx = Arc::clone(ctx);
            let _ = thread::Builder::new().stack_size(128 * 1024).spawn(move || loop {
                let (lock, cv) = &*shared;
                let mut q = lock.lock().unwrap();
                let job = loop {
                    if let Some(j) = q.queue.pop_front() {
                        break j;
                    }
                    q.idle += 1;
                    q = cv.wait(q).unwrap();
                    q.idle -= 1;
                };
                drop(q);
                serve_at(&ctx, job.0, job.1);
            });
        }
    }
}

fn serve(ctx: &Ctx, s: TcpStream) {
    serve_at(ctx, s, Instant::now())
}

fn serve_at(ctx: &Ctx, mut s: TcpStream, accepted: Instant) {
    let deadline = accepted + Duration::from_secs(5);
    serve_inner(ctx, &mut s, deadline);
    if ctx.log {
        let peer = s.peer_addr().map(|p| p.to_string()).unwrap_or_default();
        let ms = accepted.elapsed().as_secs_f64() * 1000.0;
        let line = format!("netsecrets: peer={peer} name=s0 outcome=served ms={ms:.1}\n");
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

fn serve_inner(ctx: &Ctx, s: &mut TcpStream, deadline: Instant) {
    let mut buf = [0u8; 1024];
    let mut have = 0;
    let len = loop {
        if ctx.timeouts {
            let _ = s.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))));
        }
        match s.read(&mut buf[have..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
        if have >= 4 {
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if len > buf.len() - 4 {
                return;
            }
            if have >= 4 + len {
                break len;
            }
        }
    };
    if ctx.timeouts {
        let _ = s.set_write_timeout(Some(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))));
    }
    match &ctx.codec {
        Codec::Plain => {
            let _ = s.write_all(&ctx.plain_frame);
        }
        codec @ Codec::Aes(_) if ctx.v2 => {
            let mut req = buf[4..4 + len].to_vec();
            let Ok(via @ Via::V2(_)) = codec.open_request(&mut req) else {
                return;
            };
            let name = req.rsplit(|&b| b == b' ').next().unwrap_or_default();
            if let Ok(f) = codec.answer_frame(&via, name, Some(&ctx.value)) {
                let _ = s.write_all(&f);
            }
        }
        Codec::Aes(key) => {
            let _ = key.open(buf[4..4 + len].to_vec());
            if let Ok(sealed) = key.seal(&ctx.value) {
                if let Ok(f) = frame::encode(&sealed) {
                    let _ = s.write_all(&f);
                }
            }
        }
    }
}
