//! Socket helpers: a blocking IPv4 dial with timeouts set *before* connect (so even a SYN into a
//! full backlog is bounded) and an optional source address; reading one whole frame.

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::FromRawFd;
use std::time::Duration;

/// Raises the soft open-file limit to the hard one (1 000 held connections need it).
pub fn raise_nofile() {
    // SAFETY: `r` is a plain-data struct owned by this frame; getrlimit writes into it and
    // setrlimit only reads it. A failure leaves the limit as it was (the holds then open fewer).
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn v4(addr: SocketAddr) -> io::Result<SocketAddrV4> {
    match addr {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(_) => Err(io::Error::new(io::ErrorKind::Unsupported, "IPv4 only")),
    }
}

pub fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain integers, for which all-zero bytes are a valid value.
    let mut s: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    s.sin_family = libc::AF_INET as libc::sa_family_t;
    s.sin_port = a.port().to_be();
    s.sin_addr.s_addr = u32::from(*a.ip()).to_be();
    s
}

/// Closes a descriptor this program opened and owns, and no longer uses.
pub fn close(fd: libc::c_int) {
    // SAFETY: close(2) takes an integer; every caller passes a descriptor it owns and drops
    // from its bookkeeping at once, so it is never closed twice or used afterwards.
    unsafe { libc::close(fd) };
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A new IPv4 TCP socket, optionally bound to `src` (port 0), optionally non-blocking.
pub fn socket(src: Option<Ipv4Addr>, nonblock: bool) -> io::Result<libc::c_int> {
    let flags = libc::SOCK_STREAM | libc::SOCK_CLOEXEC | if nonblock { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: socket(2) takes only integers.
    let fd = cvt(unsafe { libc::socket(libc::AF_INET, flags, 0) })?;
    if let Some(ip) = src {
        let sa = sockaddr(SocketAddrV4::new(ip, 0));
        // SAFETY: `sa` lives across the call and the length passed is its size; `fd` is the
        // socket just created.
        let r = unsafe {
            libc::bind(
                fd,
                &sa as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            close(fd);
            return Err(e);
        }
    }
    Ok(fd)
}

/// Connects (blocking) with send/receive timeouts already armed; connect itself obeys the send
/// timeout, so every step of an exchange is bounded.
pub fn dial(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let a = v4(addr)?;
    let fd = socket(None, false)?;
    // SAFETY: `fd` is the open socket just created, owned by nobody else; the stream takes
    // ownership and closes it on every path from here.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let sa = sockaddr(a);
    // SAFETY: `sa` lives across the call and the length passed is its size; `fd` stays open
    // (owned by `stream`) for the call.
    cvt(unsafe {
        libc::connect(
            fd,
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })?;
    Ok(stream)
}

/// Reads one frame (header and payload) of at most `cap` payload bytes into `buf`; returns the
/// payload range. Errors with `UnexpectedEof` when the peer closes early.
pub fn read_frame_into(s: &mut impl Read, buf: &mut Vec<u8>, cap: usize) -> io::Result<std::ops::Range<usize>> {
    buf.clear();
    let mut chunk = [0u8; 2048];
    loop {
        if buf.len() >= 4 {
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if len > cap {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "frame over cap"));
            }
            if buf.len() >= 4 + len {
                return Ok(4..4 + len);
            }
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

pub fn parse_ip4(s: &str) -> Ipv4Addr {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(v)) => v,
        _ => crate::die(&format!("not an IPv4 address: {s:?}")),
    }
}
