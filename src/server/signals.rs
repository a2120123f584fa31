//! Signals: SIGHUP reloads the configuration; every other signal keeps its default action.
//!
//! Owns the configuration the server serves now ([`LiveConfig`]) and its reload. SIGHUP is
//! blocked in every thread of the server, so it never interrupts anything or runs a handler;
//! the monitor (`server/pool.rs`) collects it with `sigtimedwait` during its tick's sleep and
//! has a reload thread read the files again (the monitor keeps working meanwhile) and swap the
//! configuration's `Arc`; a failed reload keeps the old one and says why. SIGTERM (systemd
//! stopping the unit) and SIGINT end the process at once, by their default action: the server
//! writes no files and every log line is a single write, so nothing is left half done.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;

use crate::config::{self, Live, Sources};
use crate::sys::log;

/// Stack of the reload thread, the size of a worker's: the files are read into heap buffers.
const RELOAD_STACK: usize = 128 * 1024;

/// The secrets and clients, and where a reload reads them again.
pub struct LiveConfig {
    /// A connection takes a clone of the `Arc` when it is accepted, and again once its request
    /// has arrived; a reload swaps in a new one for the connections after.
    live: RwLock<Arc<Live>>,
    sources: Sources,
    /// A reload thread runs; another SIGHUP came since it last read the files.
    reloading: AtomicBool,
    reload_again: AtomicBool,
}

impl LiveConfig {
    /// `live` as first loaded from `sources`.
    pub fn new(live: Live, sources: Sources) -> LiveConfig {
        LiveConfig {
            live: RwLock::new(Arc::new(live)),
            sources,
            reloading: AtomicBool::new(false),
            reload_again: AtomicBool::new(false),
        }
    }

    /// The configuration current now.
    pub fn current(&self) -> Arc<Live> {
        Arc::clone(&self.live.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Runs [`LiveConfig::reload`] on a thread of its own, so that the monitor keeps growing
    /// the pool and evicting while thousands of client files are read; a SIGHUP during a
    /// reload runs another one right after it.
    pub fn reload_aside(self: &Arc<Self>) {
        self.reload_again.store(true, Ordering::SeqCst);
        if self.reloading.swap(true, Ordering::SeqCst) {
            return; // the running reload thread reads the files once more
        }
        let me = Arc::clone(self);
        let spawned = thread::Builder::new()
            .name("reload".into())
            .stack_size(RELOAD_STACK)
            .spawn(move || loop {
                while me.reload_again.swap(false, Ordering::SeqCst) {
                    me.reload();
                }
                me.reloading.store(false, Ordering::SeqCst);
                // A SIGHUP between the last check and the store above found `reloading` set and
                // left its request here: take it, unless a new thread already did.
                if !me.reload_again.load(Ordering::SeqCst)
                    || me.reloading.swap(true, Ordering::SeqCst)
                {
                    return;
                }
            });
        if spawned.is_err() {
            self.reloading.store(false, Ordering::SeqCst);
            self.reload_again.store(false, Ordering::SeqCst);
            self.reload();
        }
    }

    /// Reads the configuration's files again and, when they are all good, makes requests read
    /// from now on use them.
    fn reload(&self) {
        match config::load(&self.sources, false) {
            Ok(live) => {
                let (clients, secrets) = (live.ids.len(), live.secrets.len());
                *self.live.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(live);
                log::line(&format!(
                    "reloaded: {clients} clients, {secrets} secrets (new connections use them)"
                ));
            }
            Err(e) => log::line(&format!(
                "reload failed, still serving the previous configuration: {e}"
            )),
        }
    }
}

/// SIGHUP, taken synchronously: blocked in every thread of the server (so it never interrupts
/// anything or runs a handler), and collected by the monitor with `sigtimedwait`.
pub mod sighup {
    use std::time::Duration;

    fn set() -> libc::sigset_t {
        // SAFETY: sigemptyset and sigaddset only write the set, a local value owned here, and
        // cannot fail for a valid pointer and signal number.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGHUP);
            set
        }
    }

    /// Blocks SIGHUP in the calling thread (and so in the threads it starts afterwards).
    pub fn block() -> std::io::Result<()> {
        let set = set();
        // SAFETY: `set` is a valid, initialised set; the old mask is not asked for (null).
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::from_raw_os_error(rc))
        }
    }

    /// Waits at most `limit` for a SIGHUP; true when one arrived (and was consumed).
    pub fn wait(limit: Duration) -> bool {
        let set = set();
        let timeout = libc::timespec {
            tv_sec: 0,
            // The tick is a few milliseconds: it fits.
            tv_nsec: limit.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `set` and `timeout` are valid for the call; no siginfo is asked for (null).
        let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout) };
        sig == libc::SIGHUP
    }
}
