//! The worker pool and its monitor: which thread serves which connection, and how many threads
//! there are.
//!
//! A bounded set of worker threads each accept a connection and serve it (leader/follower):
//! workers block in `accept` on the pool listener; the kernel hands each connection to one of
//! them, so no connection is passed between threads. A small monitor thread watches for stalls:
//! when no worker waits in `accept` and none has taken a connection for a tick (they are all held
//! by slow or idle clients), it starts more workers, doubling per stalled tick, up to
//! `--max-connections`; at that cap it closes the oldest connections that have not yet sent a
//! whole request (idle or dribbling clients), so honest clients, whose request arrives at once,
//! are served while idle ones are pushed out. Fast traffic never grows the pool: the few workers
//! there are keep taking connections. The monitor's tick is also when it takes a SIGHUP
//! (`server/signals.rs`) and, about once a second, writes the counts of log lines dropped
//! (`server/log_budget.rs`). What a worker does with a connection is `server/serve.rs`.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::server::log_budget::Kind;
use crate::server::serve::{self, Service};
use crate::server::signals::sighup;
use crate::sys::net;

/// Stack of each worker thread: the work is a few small buffers on the heap.
pub const WORKER_STACK: usize = 128 * 1024;
/// Workers started at once and kept alive while idle: one per CPU this process may run on
/// (its affinity mask, which systemd's `CPUAffinity=` and `AllowedCPUs=` set), within these
/// bounds. More runnable workers than CPUs only add context switches and tail latency (p99 at
/// 8 clients on 2 CPUs: 1.0x the floor's with 2 workers, 1.3-1.7x with 4; docs/performance.md);
/// slow clients do not need them, the monitor grows the pool when every worker is held.
const KEEP_WORKERS_MIN: usize = 2;
const KEEP_WORKERS_MAX: usize = 16;
/// How often the monitor looks for a stall.
const TICK: Duration = Duration::from_millis(5);
/// Workers the monitor starts (or connections it evicts) in the first stalled tick; doubles
/// with each further stalled tick, up to [`MAX_BURST`].
const FIRST_BURST: usize = 4;
const MAX_BURST: usize = 64;
/// Ticks of the monitor between two writes of the summaries of dropped lines (about 1 s).
const SUMMARY_TICKS: u32 = 200;

/// The listener, the workers' counters, and what serving needs.
pub struct Pool {
    pub listener: TcpListener,
    pub service: Service,
    /// Workers alive, at most `max_workers`.
    workers: AtomicUsize,
    /// Workers blocked in `accept` right now.
    idle: AtomicUsize,
    /// Connections taken from the listener so far; the monitor's sign of progress.
    taken: AtomicUsize,
    max_workers: usize,
    /// Workers kept alive while idle (see [`KEEP_WORKERS_MIN`]), at most `max_workers`.
    keep_workers: usize,
}

impl Pool {
    /// A pool of at most `max_workers` workers (`--max-connections`), none started yet.
    pub fn new(listener: TcpListener, service: Service, max_workers: usize) -> Pool {
        Pool {
            listener,
            service,
            workers: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
            max_workers,
            keep_workers: cpus()
                .clamp(KEEP_WORKERS_MIN, KEEP_WORKERS_MAX)
                .min(max_workers),
        }
    }
}

/// Starts the workers kept alive, and makes the calling thread one of them: the one that never
/// retires. Never returns.
pub fn serve_forever(pool: &Arc<Pool>) {
    for _ in 1..pool.keep_workers {
        grow(pool);
    }
    // This thread is a worker too, the one that never retires: if it returned, the process
    // would exit.
    pool.workers.fetch_add(1, Ordering::SeqCst);
    work(pool, false);
}

/// Grows the pool, or evicts, when every worker is held and none has taken a connection for a
/// whole tick.
pub fn monitor(pool: &Arc<Pool>) {
    let mut last = pool.taken.load(Ordering::SeqCst);
    let mut burst = FIRST_BURST;
    let mut ticks = 0u32;
    loop {
        // The tick's sleep, cut short by a SIGHUP.
        if sighup::wait(TICK) {
            pool.service.live.reload_aside();
        }
        ticks += 1;
        if ticks >= SUMMARY_TICKS {
            ticks = 0;
            pool.service.log.summarize();
        }
        let taken = pool.taken.load(Ordering::SeqCst);
        let stalled = taken == last && pool.idle.load(Ordering::SeqCst) == 0;
        last = taken;
        if !stalled {
            burst = FIRST_BURST;
            continue;
        }
        for _ in 0..burst {
            if !grow(pool) && !pool.service.pending.evict_oldest() {
                break;
            }
        }
        burst = (burst * 2).min(MAX_BURST);
    }
}

/// Starts one more worker unless `--max-connections` workers exist. Returns false when none
/// could be started.
fn grow(pool: &Arc<Pool>) -> bool {
    let reserved = pool
        .workers
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < pool.max_workers).then_some(n + 1)
        })
        .is_ok();
    if !reserved {
        return false;
    }
    let me = Arc::clone(pool);
    let spawned = thread::Builder::new()
        .name("worker".into())
        .stack_size(WORKER_STACK)
        .spawn(move || work(&me, true));
    if let Err(e) = spawned {
        pool.workers.fetch_sub(1, Ordering::SeqCst);
        pool.service
            .log
            .line(Kind::Trouble, &format!("cannot start a worker thread: {e}"));
        return false;
    }
    true
}

/// CPUs this process may run on, from its affinity mask; 1 if that cannot be read. (std's
/// `available_parallelism` also reads cgroup quotas, and costs 20 KB of binary for it.)
fn cpus() -> usize {
    // SAFETY: `set` is a zeroed cpu_set_t owned by this frame, and the kernel writes at most
    // the size it is given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            libc::CPU_COUNT(&set).max(1) as usize
        } else {
            1
        }
    }
}

/// One worker: accept, admit, serve, repeat. With `may_retire`, returns when idle for a whole
/// `--timeout` while more than `keep_workers` exist; without, never returns.
fn work(pool: &Arc<Pool>, may_retire: bool) {
    loop {
        pool.idle.fetch_add(1, Ordering::SeqCst);
        let accepted = pool.listener.accept();
        pool.idle.fetch_sub(1, Ordering::SeqCst);
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) if net::is_timeout(&e) => {
                // Idle for a whole --timeout: leave, unless this worker is one kept alive.
                let retire = may_retire
                    && pool
                        .workers
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                            (n > pool.keep_workers).then(|| n - 1)
                        })
                        .is_ok();
                if retire {
                    return;
                }
                continue;
            }
            Err(e) => {
                // Out of file descriptors or a connection reset before accept: keep serving.
                pool.service
                    .log
                    .line(Kind::Trouble, &format!("accept failed: {e}"));
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let others_waiting = pool.idle.load(Ordering::SeqCst) > 0;
        pool.taken.fetch_add(1, Ordering::SeqCst);
        let Some(job) = serve::admit(&pool.service, stream, peer) else {
            continue; // refused at once: back to accept
        };
        // Every worker is now held and no more may start: make one come back to accept() at
        // once by closing the oldest connection whose request is still incomplete.
        if !others_waiting && pool.workers.load(Ordering::SeqCst) >= pool.max_workers {
            pool.service.pending.evict_oldest_except(job.id());
        }
        serve::handle(&pool.service, job);
    }
}
