//! Process figures from /proc: peak and current RSS, thread count, CPU time.

use std::fs;

#[derive(Clone, Copy, Default, Debug)]
pub struct Status {
    pub hwm_kib: u64,
    pub rss_kib: u64,
    pub threads: u64,
}

pub fn status(pid: u32) -> Option<Status> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mut s = Status::default();
    for line in text.lines() {
        let num = |l: &str| -> u64 {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        if line.starts_with("VmHWM:") {
            s.hwm_kib = num(line);
        } else if line.starts_with("VmRSS:") {
            s.rss_kib = num(line);
        } else if line.starts_with("Threads:") {
            s.threads = num(line);
        }
    }
    Some(s)
}

/// User plus system CPU time of the whole process (all threads), in seconds.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf(3) takes an integer and reads no memory of ours.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((utime + stime) as f64 / tck)
}
