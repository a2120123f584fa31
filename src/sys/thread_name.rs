//! `pthread_setname_np` for the static musl binary, without musl's `printf`.
//!
//! std names each thread it starts (here "worker" and "monitor", shown by `top -H`, `ps -L`
//! and in /proc/PID/task/*/comm) by calling `pthread_setname_np(pthread_self(), name)` from
//! the new thread. musl's version handles a thread naming *another* thread too, by formatting
//! "/proc/self/task/%d/comm" with `snprintf`, and that one call links musl's whole `printf`
//! (about 12 KB with its floating-point formatting) into a program that prints nothing with it.
//! This definition does what musl does for the calling thread (`prctl(PR_SET_NAME)`, names of
//! at most 15 bytes) and refuses the other case, which neither std nor this program uses.
//! Because it is defined here, the linker never takes musl's from `libc.a`; if something else
//! from that object were ever needed, the link would fail with "multiple definition", not
//! silently. tests/run-all checks that the static binary's threads carry their names.
//!
//! Compiled only for the static musl target; other builds use their C library's.

use std::ffi::{c_char, c_int};

/// Names the calling thread; `ENOTSUP` for any other thread, `ERANGE` over 15 bytes.
///
/// # Safety
/// `name` must point to a NUL-terminated string (std passes a `CStr`).
#[no_mangle]
unsafe extern "C" fn pthread_setname_np(thread: libc::pthread_t, name: *const c_char) -> c_int {
    // SAFETY: pthread_self has no preconditions.
    if thread != unsafe { libc::pthread_self() } {
        return libc::ENOTSUP;
    }
    // SAFETY: the caller passes a NUL-terminated string (this function's contract), and
    // strnlen reads at most 16 bytes of it, stopping at the NUL.
    if unsafe { libc::strnlen(name, 16) } > 15 {
        return libc::ERANGE;
    }
    // SAFETY: `name` is NUL-terminated within 16 bytes (checked above), which is what
    // PR_SET_NAME reads; it names the calling thread only.
    if unsafe { libc::prctl(libc::PR_SET_NAME, name as libc::c_ulong, 0, 0, 0) } != 0 {
        return std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL);
    }
    0
}
