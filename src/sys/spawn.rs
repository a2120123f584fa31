//! Starting a program and waiting for it, for the two programs netsecrets runs (`systemctl` for
//! change actions, `systemd-creds` for the offline cache).
//!
//! fork + exec through libc, not `std::process`, which would add tens of KiB to the static
//! binary. The child gets the standard descriptors its caller chose and SIGPIPE back at its
//! default (Rust starts with it ignored, and exec would keep that); an exec failure travels back
//! through a close-on-exec pipe, so a missing program is an error here, not an exit status.

use std::ffi::CString;
use std::io;
use std::time::{Duration, Instant};

/// How argv[0] is found.
#[derive(Clone, Copy)]
pub enum Lookup {
    /// As given (execv).
    Path,
    /// In `PATH` when it has no `/` (execvp).
    Search,
}

/// Starts argv[0] with `argv`. The child's descriptor 0, 1 and 2 become `stdio`'s where that is
/// not negative, and stay this process's otherwise; `stdio`'s descriptors remain the caller's
/// to close (they should be close-on-exec, as everything else this process opens is).
pub fn spawn(argv: &[Vec<u8>], stdio: [libc::c_int; 3], lookup: Lookup) -> io::Result<libc::pid_t> {
    let args: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.clone()))
        .collect::<Result<_, _>>()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in an argument"))?;
    let mut ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let Some(prog) = ptrs.first().copied() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no program"));
    };
    let mut pipe = [-1 as libc::c_int; 2];
    // SAFETY: `pipe` has room for two descriptors.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let [rd, wr] = pipe;
    // SAFETY: the child only calls async-signal-safe functions (dup2, signal, execv(p), write,
    // _exit) on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: as above; the child never returns from this block. dup2 clears close-on-exec
        // on the new descriptors 0-2; everything else closes at exec.
        unsafe {
            for (target, fd) in (0..).zip(stdio) {
                if fd >= 0 {
                    libc::dup2(fd, target);
                }
            }
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            match lookup {
                Lookup::Path => libc::execv(prog, ptrs.as_ptr()),
                Lookup::Search => libc::execvp(prog, ptrs.as_ptr()),
            };
            let err = *libc::__errno_location();
            libc::write(
                wr,
                (&err as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>(),
            );
            libc::_exit(127);
        }
    }
    let fork_err = io::Error::last_os_error();
    // SAFETY: the child's end of the pipe, opened above.
    unsafe { libc::close(wr) };
    if pid < 0 {
        // SAFETY: our end of the pipe, opened above.
        unsafe { libc::close(rd) };
        return Err(fork_err);
    }
    let mut err: libc::c_int = 0;
    // SAFETY: reading at most one c_int into `err`; the read end closes after.
    let n = unsafe {
        let n = libc::read(
            rd,
            (&mut err as *mut libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>(),
        );
        libc::close(rd);
        n
    };
    if n > 0 {
        // The child wrote why exec failed and is at its `_exit`: reap it now.
        let mut status = 0;
        // SAFETY: waiting for our own child, which is exiting.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        return Err(io::Error::from_raw_os_error(err));
    }
    Ok(pid)
}

/// What became of a child by a deadline.
pub enum Ended {
    /// Its exit status; a signal counts as 128 + its number.
    Status(i32),
    /// It still runs (it is left running).
    Running,
    /// It could not be waited for.
    Lost,
}

/// Waits for the child `pid` until `until`.
pub fn wait_until(pid: libc::pid_t, until: Instant) -> Ended {
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child; `status` is writable.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Ended::Status(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            });
        }
        if r < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return Ended::Lost;
        }
        if Instant::now() >= until {
            return Ended::Running;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn a_missing_program_is_an_error_not_an_exit_status() {
        let e = spawn(
            &argv(&["/nonexistent/netsecrets-test"]),
            [-1; 3],
            Lookup::Path,
        )
        .err()
        .map(|e| e.kind());
        assert_eq!(e, Some(io::ErrorKind::NotFound));
        let e = spawn(
            &argv(&["netsecrets-no-such-program"]),
            [-1; 3],
            Lookup::Search,
        )
        .err()
        .map(|e| e.kind());
        assert_eq!(e, Some(io::ErrorKind::NotFound));
        assert!(spawn(&[], [-1; 3], Lookup::Path).is_err());
        assert!(spawn(&argv(&["/bin/sh", "a\0b"]), [-1; 3], Lookup::Path).is_err());
    }

    #[test]
    fn exit_status_signal_and_deadline() {
        let soon = || Instant::now() + Duration::from_secs(10);
        let pid = spawn(&argv(&["/bin/sh", "-c", "exit 3"]), [-1; 3], Lookup::Path).unwrap();
        assert!(matches!(wait_until(pid, soon()), Ended::Status(3)));
        let pid = spawn(&argv(&["sh", "-c", "kill -9 $$"]), [-1; 3], Lookup::Search).unwrap();
        assert!(matches!(wait_until(pid, soon()), Ended::Status(137)));
        let pid = spawn(&argv(&["/bin/sh", "-c", "sleep 5"]), [-1; 3], Lookup::Path).unwrap();
        assert!(matches!(
            wait_until(pid, Instant::now() + Duration::from_millis(50)),
            Ended::Running
        ));
        // SAFETY: our own child, still running.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        assert!(matches!(wait_until(pid, soon()), Ended::Status(137)));
        assert!(matches!(wait_until(pid, soon()), Ended::Lost));
    }

    #[test]
    fn the_child_gets_the_chosen_stdin() {
        let mut p = [-1; 2];
        // SAFETY: `p` has room for two descriptors.
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: writing a short literal into the pipe just made, then closing its write end.
        unsafe {
            libc::write(p[1], b"7".as_ptr().cast(), 1);
            libc::close(p[1]);
        }
        let cmd = "read x; exit $x";
        let pid = spawn(&argv(&["/bin/sh", "-c", cmd]), [p[0], -1, -1], Lookup::Path).unwrap();
        // SAFETY: the read end, now the child's copy only.
        unsafe { libc::close(p[0]) };
        let until = Instant::now() + Duration::from_secs(10);
        assert!(matches!(wait_until(pid, until), Ended::Status(7)));
    }
}
