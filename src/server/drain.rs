//! Closing a connection without leaving its answer in kernel memory nobody accounts for.
//!
//! Once an answer is written it sits in the socket's send queue until the client acknowledges
//! it. Closing the descriptor then would hand the queued bytes to the kernel as an orphan,
//! outside every limit of the server: clients that never read could pin hundreds of MiB of
//! kernel memory. So the connection keeps its answer-byte reservation ([`AnswerBytes`]) until
//! the send queue is empty (`SIOCOUTQ` is 0: every byte acknowledged); a client that has not
//! read its answer by the connection's deadline gets a reset (`SO_LINGER` 0), which frees the
//! queued bytes at once. Its `--max-per-ip` slot (its [`Permit`]) is given back when the answer
//! is written, as before: holding it until the client has read made honest clients behind one
//! address (NAT) refused while their answers were merely in flight. The descriptors held here are
//! bounded instead: at most as many connections as `--max-connections`; past that, the one
//! waiting longest (a client that does not read, in practice) is reset.
//!
//! The worker sends the FIN itself (`shutdown(SHUT_WR)`, which also pushes out the corked
//! answer), so the server stays the side that closes first. When the queue is not empty yet, the
//! connection goes to the [`Drainer`], one thread that looks at every connection it holds each
//! [`POLL`] and never blocks a worker.

use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::server::limits::{AnswerBytes, Permit};
use crate::sys::net;

/// How often the drainer looks at the connections it holds.
const POLL: Duration = Duration::from_millis(1);

/// A connection whose answer is not yet acknowledged.
struct Draining {
    stream: Arc<TcpStream>,
    deadline: Instant,
    _reserved: Option<AnswerBytes>,
}

/// The connections waiting for their answer to be acknowledged (at most `max`).
pub struct Drainer {
    list: Mutex<Vec<Draining>>,
    wake: Condvar,
    max: usize,
}

/// Bytes in the socket's send queue not yet acknowledged by the peer; 0 when it cannot be read.
pub fn unacknowledged(stream: &TcpStream) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: the descriptor belongs to `stream`, borrowed (so open) for the call; TIOCOUTQ
    // (SIOCOUTQ) writes one int to the pointer given.
    let r = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    if r == 0 {
        usize::try_from(n).unwrap_or(0)
    } else {
        0
    }
}

/// Makes the close of `stream` reset the connection, dropping whatever is queued.
fn reset(stream: &TcpStream) {
    let abort = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // A failure leaves an ordinary close: the kernel frees the bytes later, no worse.
    let _ = net::set_option(stream, libc::SOL_SOCKET, libc::SO_LINGER, &abort);
}

impl Drainer {
    /// A drainer holding at most `max` connections (at least one).
    pub fn new(max: usize) -> Drainer {
        Drainer {
            list: Mutex::new(Vec::new()),
            wake: Condvar::new(),
            max: max.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Draining>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends a connection: sends the FIN (and the corked answer) now and gives the slot back;
    /// the descriptor and the reservation go when the peer has acknowledged everything, or at
    /// `deadline` with a reset. `stream` must be the connection's last owner but for the drainer.
    pub fn close(
        &self,
        stream: Arc<TcpStream>,
        permit: Permit,
        reserved: Option<AnswerBytes>,
        deadline: Instant,
    ) {
        // A peer already gone makes this fail: the queue is then dropped by the kernel anyway.
        let _ = stream.shutdown(Shutdown::Write);
        drop(permit);
        if unacknowledged(&stream) == 0 {
            return;
        }
        if Instant::now() >= deadline {
            reset(&stream);
            return;
        }
        let mut list = self.lock();
        if list.len() >= self.max {
            // Full: the connection that has waited longest goes (earliest deadline).
            let oldest = (0..list.len()).min_by_key(|&i| list.get(i).map(|d| d.deadline));
            if let Some(i) = oldest {
                let d = list.swap_remove(i);
                reset(&d.stream);
            }
        }
        list.push(Draining {
            stream,
            deadline,
            _reserved: reserved,
        });
        drop(list);
        self.wake.notify_one();
    }

    /// The drainer's thread: forever, closes the connections whose answer was acknowledged,
    /// and resets those past their deadline.
    pub fn run(&self) {
        let mut list = self.lock();
        loop {
            while list.is_empty() {
                list = self.wake.wait(list).unwrap_or_else(|p| p.into_inner());
            }
            let now = Instant::now();
            // Dropping an entry closes its descriptor and frees its slot and reservation.
            list.retain(|d| {
                if unacknowledged(&d.stream) == 0 {
                    return false;
                }
                if now >= d.deadline {
                    reset(&d.stream);
                    return false;
                }
                true
            });
            drop(list);
            std::thread::sleep(POLL);
            list = self.lock();
        }
    }
}
