//! TCP plumbing shared by server and client: a stream wrapper that enforces one deadline over a
//! whole exchange, and connecting to `host:port` within a deadline.
//!
//! A per-read timeout alone lets a peer that sends one byte every few seconds hold a connection
//! forever; [`Deadline`] re-arms the socket timeout before a read or write with the time that is
//! *left*, so the exchange as a whole ends on time. Re-arming costs a system call, so it is
//! skipped while the timeout already set on the socket cannot carry the operation more than
//! [`SLACK`] past the deadline (the server's accepted sockets inherit the whole deadline from
//! the listener, so a quick exchange needs no re-arming at all).

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// How far past its deadline an operation may end rather than paying for a re-arm.
pub const SLACK: Duration = Duration::from_millis(50);

/// A borrowed stream whose reads and writes all end by `at` (give or take [`SLACK`]).
pub struct Deadline<'a> {
    stream: &'a TcpStream,
    at: Instant,
    /// The read and write timeouts currently set on the socket, when known.
    read_armed: Option<Duration>,
    write_armed: Option<Duration>,
}

impl<'a> Deadline<'a> {
    /// A stream whose socket timeouts are unknown: every operation arms them.
    pub fn new(stream: &'a TcpStream, at: Instant) -> Deadline<'a> {
        Deadline {
            stream,
            at,
            read_armed: None,
            write_armed: None,
        }
    }

    /// A stream whose read and write timeouts are already `preset` (inherited from the
    /// listener on accept).
    pub fn preset(stream: &'a TcpStream, at: Instant, preset: Duration) -> Deadline<'a> {
        Deadline {
            stream,
            at,
            read_armed: Some(preset),
            write_armed: Some(preset),
        }
    }

    /// The timeout to set before an operation, or `None` when the one set is good enough.
    fn arm(&self, armed: Option<Duration>) -> io::Result<Option<Duration>> {
        let now = Instant::now();
        let left = self.at.saturating_duration_since(now);
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        match armed {
            Some(t) if now + t <= self.at + SLACK => Ok(None),
            _ => Ok(Some(left)),
        }
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(t) = self.arm(self.read_armed)? {
            self.stream.set_read_timeout(Some(t))?;
            self.read_armed = Some(t);
        }
        (&mut &*self.stream).read(buf)
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(t) = self.arm(self.write_armed)? {
            self.stream.set_write_timeout(Some(t))?;
            self.write_armed = Some(t);
        }
        (&mut &*self.stream).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sets a socket option to a plain C value (an `int`, a `timeval`).
pub fn set_option<T: Copy>(
    sock: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // Options are a few bytes: the size always fits a socklen_t.
    let len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: the descriptor belongs to `sock`, which is borrowed (so open) for the call, and
    // `value` points to a live `T` of `len` bytes that the kernel only reads.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            len,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets a listening socket's backlog (Linux lets `listen` change it in place).
pub fn listen(listener: &TcpListener, backlog: libc::c_int) -> io::Result<()> {
    // SAFETY: the descriptor belongs to `listener`, which is borrowed (so open) for the call.
    let r = unsafe { libc::listen(listener.as_raw_fd(), backlog) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets `SO_RCVTIMEO` and `SO_SNDTIMEO` to `timeout` (at most 86 400 s, which `--timeout`
/// guarantees). On a listener, accepted sockets inherit both; std offers this only on streams.
pub fn set_timeouts(sock: &impl AsRawFd, timeout: Duration) -> io::Result<()> {
    // The field types differ between libc targets (and musl's are deprecated aliases);
    // --timeout is at most 86 400 s, so the casts cannot truncate.
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as _,
        tv_usec: timeout.subsec_micros() as _,
    };
    set_option(sock, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)?;
    set_option(sock, libc::SOL_SOCKET, libc::SO_SNDTIMEO, &tv)
}

/// True for the error kinds a socket timeout produces (`SO_RCVTIMEO`/`SO_SNDTIMEO` expiring
/// gives `WouldBlock`; a passed [`Deadline`] gives `TimedOut`).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Resolves `host` (an IP literal, `[v6]`, or a name) with `port`.
pub fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = (bare, port).to_socket_addrs()?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "name resolved to no address",
        ));
    }
    Ok(addrs)
}

/// Connects to the first address of `host:port` that answers before `at`.
pub fn connect(host: &str, port: u16, at: Instant) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::TimedOut, "deadline passed");
    for addr in resolve(host, port)? {
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        (l.accept().unwrap().0, c)
    }

    #[test]
    fn a_dribbling_peer_is_cut_off_at_the_deadline_not_per_read() {
        let (s, mut c) = pair();
        let start = Instant::now();
        let dribbler = std::thread::spawn(move || {
            for _ in 0..20 {
                if c.write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let mut d = Deadline::new(&s, start + Duration::from_millis(500));
        let mut buf = [0u8; 1];
        let err = loop {
            match d.read(&mut buf) {
                Ok(n) => assert_eq!(n, 1, "the writer closed before the deadline"),
                Err(e) => break e,
            }
        };
        assert!(is_timeout(&err), "{err}");
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(500) + SLACK + Duration::from_millis(150),
            "{took:?}"
        );
        drop(s);
        dribbler.join().unwrap();
    }

    #[test]
    fn accepted_sockets_inherit_the_listeners_timeouts() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        set_timeouts(&l, Duration::from_millis(1500)).unwrap();
        listen(&l, 16).unwrap();
        let _c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_millis(1500)));
        assert_eq!(
            s.write_timeout().unwrap(),
            Some(Duration::from_millis(1500))
        );
        // A failed option is an error, not silence: SO_RCVTIMEO wants a timeval, not an int.
        assert!(set_option(&l, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &0u8).is_err());
    }

    #[test]
    fn preset_timeout_is_not_rearmed_while_it_fits() {
        let (s, _c) = pair();
        let at = Instant::now() + Duration::from_secs(5);
        let d = Deadline::preset(&s, at, Duration::from_secs(5));
        assert!(d.arm(d.read_armed).unwrap().is_none());
        let late = Deadline::preset(
            &s,
            Instant::now() + Duration::from_secs(1),
            Duration::from_secs(5),
        );
        assert!(late.arm(late.read_armed).unwrap().is_some());
        let fresh = Deadline::new(&s, at);
        assert!(fresh.arm(fresh.read_armed).unwrap().is_some());
    }
}
