//! The log budget: lines for refused and unauthenticated connections, and for answers, are
//! rate-limited per [`Kind`], so that a flood of connections cannot become a flood of log
//! writes; what is dropped is counted, and the count reaches the log once a second.
//!
//! Owns the kinds, their budgets and the summary line. The monitor (`server/pool.rs`) calls
//! [`LogBudget::summarize`] about once a second, so a count is written even when no further
//! line of its kind comes.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::sys::log;

/// Lines of one [`Kind`] logged per second at most; the rest are counted in one summary line.
const LINES_PER_SEC: u32 = 10;
/// Lines a second for answers to authenticated clients (served, not-found, denied-secret).
const SERVED_LINES_PER_SEC: u32 = 100;

/// What a rate-limited log line is about; each kind has its own budget, so that a flood of one
/// (empty connections, say) cannot crowd out another (wrong passwords: brute-force evidence).
#[derive(Clone, Copy)]
pub enum Kind {
    Denied,
    Refused,
    Closed,
    BadFrame,
    Undecryptable,
    Malformed,
    WrongPassword,
    Trouble,
    Served,
    NotFound,
    DeniedSecret,
}

impl Kind {
    /// Every kind, in declaration order (so `kind as usize` indexes this).
    const ALL: [Kind; 11] = [
        Kind::Denied,
        Kind::Refused,
        Kind::Closed,
        Kind::BadFrame,
        Kind::Undecryptable,
        Kind::Malformed,
        Kind::WrongPassword,
        Kind::Trouble,
        Kind::Served,
        Kind::NotFound,
        Kind::DeniedSecret,
    ];

    /// Lines of this kind logged per second at most: more for the answers to clients that
    /// authenticated (a fleet booting at once), [`LINES_PER_SEC`] for the rest.
    fn per_sec(self) -> u32 {
        match self {
            Kind::Served | Kind::NotFound | Kind::DeniedSecret => SERVED_LINES_PER_SEC,
            _ => LINES_PER_SEC,
        }
    }

    /// As the summary line names it.
    fn name(self) -> &'static str {
        match self {
            Kind::Denied => "denied",
            Kind::Refused => "refused",
            Kind::Closed => "closed without a request",
            Kind::BadFrame => "bad frame",
            Kind::Undecryptable => "undecryptable",
            Kind::Malformed => "malformed request",
            Kind::WrongPassword => "wrong-password",
            Kind::Trouble => "server trouble",
            Kind::Served => "served",
            Kind::NotFound => "not-found",
            Kind::DeniedSecret => "denied-secret",
        }
    }
}

/// Logs at most [`Kind::per_sec`] lines of each [`Kind`] a second, and counts the rest; the
/// monitor writes one line per kind with the count about once a second, so that a flood cannot
/// turn into a flood of log writes and the count still reaches the log. Shared by every thread
/// of the server (one lock).
#[derive(Default)]
pub struct LogBudget {
    budgets: Mutex<Budgets>,
}

#[derive(Default)]
struct Budgets {
    kinds: [KindBudget; Kind::ALL.len()],
}

#[derive(Default, Clone, Copy)]
struct KindBudget {
    second: Option<Instant>,
    lines: u32,
    dropped: u64,
}

impl LogBudget {
    fn lock(&self) -> MutexGuard<'_, Budgets> {
        self.budgets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs `text`, begun with [`log::start_line`], if the budget of `kind` allows.
    pub fn end_line(&self, kind: Kind, text: String) {
        self.lock().line(kind, text);
    }

    /// Logs the one-line message `msg` if the budget of `kind` allows.
    pub fn line(&self, kind: Kind, msg: &str) {
        let mut text = log::start_line(msg.len());
        text.push_str(msg);
        self.end_line(kind, text);
    }

    /// Writes the counts of the kinds whose second is over.
    pub fn summarize(&self) {
        self.lock().summarize(Instant::now());
    }
}

impl Budgets {
    /// `text` is begun with [`log::start_line`].
    fn line(&mut self, kind: Kind, text: String) {
        let now = Instant::now();
        self.summarize(now);
        let Some(k) = self.kinds.get_mut(kind as usize) else {
            return; // cannot happen: `kinds` has a budget for every kind
        };
        if k.second.is_none() {
            k.second = Some(now);
        }
        if k.lines < kind.per_sec() {
            k.lines += 1;
            log::end_line(text);
        } else {
            k.dropped += 1;
        }
    }

    /// Ends the second of every kind whose second is over: writes its count of dropped lines.
    fn summarize(&mut self, now: Instant) {
        for (kind, k) in Kind::ALL.iter().zip(self.kinds.iter_mut()) {
            if k.second
                .is_some_and(|s| now.duration_since(s) >= Duration::from_secs(1))
            {
                if k.dropped > 0 {
                    log::line(&format!(
                        "{} more '{}' lines not logged (at most {} a second)",
                        k.dropped,
                        kind.name(),
                        kind.per_sec()
                    ));
                }
                *k = KindBudget::default();
            }
        }
    }
}
