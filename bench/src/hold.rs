//! Slow connections: keeps `--conns` connections open to `--addr`, each having sent only the
//! first 2 bytes of a frame header and then nothing (a slowloris client). When the server closes
//! one (refusal, or its deadline), that slot reconnects after `--reconnect-ms`. Source addresses
//! are taken round-robin from `--src` (e.g. several 127.0.0.x), or left to the kernel.
//! One thread, non-blocking sockets, `poll`. Runs `--secs` seconds, then closes everything.
//!
//! Prints: `RESULT connects=.. closed_by_server=.. failed=.. open_avg=.. open_min=.. open_max=..`

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::net::{close, parse_ip4, sockaddr, socket};
use crate::{die, Args};

enum State {
    Idle { retry_at: Instant },
    Connecting { fd: libc::c_int, since: Instant },
    Open { fd: libc::c_int },
}

pub fn run(args: &Args) {
    let addr: SocketAddr = args
        .need("addr")
        .parse()
        .unwrap_or_else(|_| die("--addr IP:PORT"));
    let SocketAddr::V4(addr) = addr else {
        die("hold: IPv4 only")
    };
    let conns: usize = args.num("conns", 1000);
    let secs: f64 = args.num("secs", 5.0);
    let reconnect = Duration::from_millis(args.num("reconnect-ms", 1000));
    let srcs: Vec<Option<Ipv4Addr>> = match args.get("src") {
        Some(list) => list.split(',').map(|s| Some(parse_ip4(s))).collect(),
        None => vec![None],
    };
    if conns > 20_000 || !(0.1..=600.0).contains(&secs) {
        die("hold: --conns at most 20000, --secs 0.1..600");
    }
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut slots: Vec<State> = (0..conns).map(|_| State::Idle { retry_at: start }).collect();
    let (mut connects, mut closed, mut failed) = (0u64, 0u64, 0u64);
    let (mut open_sum, mut open_n, mut open_min, mut open_max) = (0u64, 0u64, usize::MAX, 0usize);
    let sa = sockaddr(addr);
    let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(conns);
    let mut idx: Vec<usize> = Vec::with_capacity(conns);
    let mut junk = [0u8; 256];

    while Instant::now() < end {
        let now = Instant::now();
        // Start connections for idle slots that are due.
        for (i, s) in slots.iter_mut().enumerate() {
            if let State::Idle { retry_at } = *s {
                if now >= retry_at {
                    match start_connect(srcs[i % srcs.len()], &sa) {
                        Ok(fd) => *s = State::Connecting { fd, since: now },
                        Err(_) => {
                            failed += 1;
                            *s = State::Idle { retry_at: now + reconnect };
                        }
                    }
                }
            }
        }
        pfds.clear();
        idx.clear();
        let mut open = 0;
        for (i, s) in slots.iter().enumerate() {
            match *s {
                State::Connecting { fd, .. } => {
                    pfds.push(libc::pollfd { fd, events: libc::POLLOUT, revents: 0 });
                    idx.push(i);
                }
                State::Open { fd } => {
                    open += 1;
                    pfds.push(libc::pollfd { fd, events: libc::POLLIN, revents: 0 });
                    idx.push(i);
                }
                State::Idle { .. } => {}
            }
        }
        open_sum += open as u64;
        open_n += 1;
        if now > start + Duration::from_millis(500) {
            open_min = open_min.min(open);
        }
        open_max = open_max.max(open);
        // SAFETY: `pfds` is a live Vec of pollfd and its exact length is passed; poll writes
        // only the `revents` fields within it.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 50) };
        if n < 0 {
            continue;
        }
        let now = Instant::now();
        for (p, &i) in pfds.iter().zip(idx.iter()) {
            let s = &mut slots[i];
            match *s {
                State::Connecting { fd, since } => {
                    if p.revents != 0 {
                        let mut err: libc::c_int = 0;
                        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                        // SAFETY: `err` and `len` live across the call and `len` holds the size
                        // of `err`; `fd` is an open socket of this slot.
                        unsafe {
                            libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, &mut err as *mut _ as *mut libc::c_void, &mut len)
                        };
                        if err == 0 {
                            connects += 1;
                            // Two of the four header bytes, then silence.
                            // SAFETY: the two-byte array lives across the call and 2 is its
                            // length; `fd` is this slot's connected socket.
                            unsafe { libc::send(fd, [0u8, 0].as_ptr() as *const libc::c_void, 2, libc::MSG_NOSIGNAL) };
                            *s = State::Open { fd };
                        } else {
                            failed += 1;
                            close(fd);
                            *s = State::Idle { retry_at: now + reconnect };
                        }
                    } else if now - since > Duration::from_secs(3) {
                        failed += 1;
                        close(fd);
                        *s = State::Idle { retry_at: now + reconnect };
                    }
                }
                State::Open { fd } => {
                    if p.revents != 0 {
                        // SAFETY: `junk` is a live buffer and its exact length is passed; `fd` is
                        // this slot's open socket.
                        let r = unsafe { libc::recv(fd, junk.as_mut_ptr() as *mut libc::c_void, junk.len(), 0) };
                        if r <= 0 {
                            closed += 1;
                            close(fd);
                            *s = State::Idle { retry_at: now + reconnect };
                        }
                    }
                }
                State::Idle { .. } => {}
            }
        }
    }
    for s in &slots {
        match *s {
            State::Connecting { fd, .. } | State::Open { fd } => close(fd),
            State::Idle { .. } => {}
        }
    }
    println!(
        "RESULT connects={connects} closed_by_server={closed} failed={failed} open_avg={:.0} open_min={} open_max={open_max}",
        open_sum as f64 / open_n.max(1) as f64,
        if open_min == usize::MAX { 0 } else { open_min }
    );
}

fn start_connect(src: Option<Ipv4Addr>, sa: &libc::sockaddr_in) -> std::io::Result<libc::c_int> {
    let fd = socket(src, true)?;
    // SAFETY: `sa` is a live sockaddr_in and the length passed is its size; `fd` is the socket
    // just created.
    let r = unsafe {
        libc::connect(
            fd,
            sa as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            close(fd);
            return Err(e);
        }
    }
    Ok(fd)
}

#[allow(dead_code)]
fn _unused(_: SocketAddrV4) {}
