//! TCP plumbing shared by server and client: a stream wrapper that enforces one deadline over a
//! whole exchange, and connecting to `host:port` within a deadline.
//!
//! A per-read timeout alone lets a peer that sends one byte every few seconds hold a connection
//! forever; [`Deadline`] re-arms the socket timeout before every read and write with the time
//! that is *left*, so the exchange as a whole ends on time.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// A borrowed stream whose reads and writes all end by `at`.
pub struct Deadline<'a> {
    pub stream: &'a TcpStream,
    pub at: Instant,
}

impl Deadline<'_> {
    fn left(&self) -> io::Result<Duration> {
        let left = self.at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
        } else {
            Ok(left)
        }
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.left()?))?;
        (&mut &*self.stream).read(buf)
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.left()?))?;
        (&mut &*self.stream).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
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
