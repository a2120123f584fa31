//! systemd's side of `LoadCredential=ID:SOCKET`, played as systemd plays it: from a process
//! forked into the unit's control group, a stream socket bound to the abstract address
//! `\0<random>/unit/<unit>/<id>` connects and reads to the end (tests/credentials.rs,
//! tests/mitm.rs); and the other side, a running `netsecrets credentials` ([`Credentials`]).

use std::io::Read;
use std::os::fd::FromRawFd;
use std::path::Path;

/// A `sockaddr_un` for `path` (abstract when it starts with NUL) and its length.
pub fn sockaddr(path: &[u8]) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    assert!(path.len() < a.sun_path.len());
    for (d, s) in a.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + path.len();
    (a, len as libc::socklen_t)
}

/// Connects to `socket` as systemd does for `unit`'s credential `id` (None: no bind, an
/// unnamed peer) and reads to the end: from a child process in the unit's control group, as
/// systemd loads credentials in the process it forked for the unit (exec-invoke.c).
pub fn ask(socket: &Path, who: Option<(&str, &str)>) -> std::io::Result<Vec<u8>> {
    ask_from(socket, who, who.map(|(unit, _)| unit))
}

/// The control group hierarchy systemd tracks units in: `name=systemd` (cgroup v1, legacy or
/// hybrid) when mounted, else the cgroup v2 root.
pub fn cgroup_root() -> std::path::PathBuf {
    let v1 = Path::new("/sys/fs/cgroup/systemd");
    if v1.join("cgroup.procs").exists() {
        v1.to_path_buf()
    } else {
        Path::new("/sys/fs/cgroup").to_path_buf()
    }
}

/// As [`ask`], from a child process in the control group
/// `netsecrets-test-<pid>.slice/ask-<n>.slice/<unit>`
/// (`cgroup`), or in this test's own group (None).
pub fn ask_from(
    socket: &Path,
    who: Option<(&str, &str)>,
    cgroup: Option<&str>,
) -> std::io::Result<Vec<u8>> {
    use std::ffi::CString;
    // Everything the child uses is prepared before the fork: it only makes plain syscalls.
    // A slice of its own per call: tests run in parallel and ask for the same unit, and one
    // call removing its emptied group must not pull it away from another call's child.
    static GROUP_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let group = cgroup.map(|unit| {
        let seq = GROUP_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = cgroup_root()
            .join(format!("netsecrets-test-{}.slice", std::process::id()))
            .join(format!("ask-{seq}.slice"))
            .join(unit);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    });
    let procs = group.as_ref().map(|d| {
        CString::new(d.join("cgroup.procs").into_os_string().into_encoded_bytes()).unwrap()
    });
    let name = who.map(|(unit, id)| {
        // Unique per connection, as systemd's random_u64(): an earlier connection of this
        // process may still hold its name while the server finishes with it.
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        sockaddr(format!("\0{:08x}{seq:08x}/unit/{unit}/{id}", std::process::id()).as_bytes())
    });
    let (srv, srv_len) = sockaddr(socket.as_os_str().as_encoded_bytes());
    let timeout = libc::timeval {
        tv_sec: 20,
        tv_usec: 0,
    };
    let mut buf = vec![0u8; 65536];
    let mut pipe = [0i32; 2];
    // SAFETY: a fresh pipe owned by this function.
    assert_eq!(
        unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) },
        0
    );
    // SAFETY: the child makes only async-signal-safe syscalls on data prepared above and ends
    // with _exit; it never returns into the test harness.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            // Other tests' pipes, inherited through fork, would keep their readers waiting.
            for fd in 3..1024 {
                if fd != pipe[1] {
                    libc::close(fd);
                }
            }
            if let Some(procs) = &procs {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    libc::_exit(10);
                }
                libc::close(fd);
            }
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            if let Some((a, len)) = &name {
                if libc::bind(fd, (a as *const libc::sockaddr_un).cast(), *len) != 0 {
                    libc::_exit(11);
                }
            }
            if libc::connect(fd, (&srv as *const libc::sockaddr_un).cast(), srv_len) != 0 {
                libc::_exit(12);
            }
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
            libc::shutdown(fd, libc::SHUT_WR);
            loop {
                let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                if n == 0 {
                    libc::_exit(0);
                }
                if n < 0 || libc::write(pipe[1], buf.as_ptr().cast(), n as usize) != n {
                    libc::_exit(13);
                }
            }
        }
    }
    // SAFETY: the parent's copy of the write end; the read end is wrapped and owned here.
    let reader = unsafe {
        libc::close(pipe[1]);
        std::fs::File::from_raw_fd(pipe[0])
    };
    // As systemd reads: at most CREDENTIAL_SIZE_MAX, failing when there is more.
    let mut out = Vec::new();
    // Dropping the reader closes the pipe: a child still forwarding a refusal then stops.
    let read = reader.take(LIMIT + 1).read_to_end(&mut out);
    let mut status = 0;
    // SAFETY: waiting for the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if let Some(d) = &group {
        // Empty again once the child is gone; another test's child may still be in it.
        let _ = std::fs::remove_dir(d);
        for slice in d.ancestors().skip(1).take(2) {
            let _ = std::fs::remove_dir(slice);
        }
    }
    read?;
    if out.len() as u64 > LIMIT {
        return Err(std::io::Error::other(
            "larger than a credential may be (E2BIG)",
        ));
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(std::io::Error::other(format!(
            "the asking process failed (status {status:#x})"
        )));
    }
    Ok(out)
}

/// systemd 255's CREDENTIAL_SIZE_MAX.
pub const LIMIT: u64 = 1024 * 1024;

/// A running `netsecrets credentials` (the socket systemd's `LoadCredential=` asks), killed by
/// PID on drop.
pub struct Credentials {
    pub proc: super::Proc,
    /// The socket it serves: `<tag>.sock` in the directory given.
    pub socket: std::path::PathBuf,
    /// Its stderr: `<tag>.log` in the directory given.
    pub log: std::path::PathBuf,
}

impl Credentials {
    /// Starts `netsecrets credentials` against the server at 127.0.0.1:`port` with the password
    /// [`super::PW`] and `args`, and waits until it says it is serving.
    pub fn start(d: &super::TempDir, tag: &str, port: u16, args: &[&str]) -> Credentials {
        use std::process::{Command, Stdio};
        use std::time::{Duration, Instant};
        let socket = d.path(&format!("{tag}.sock"));
        let log = d.path(&format!("{tag}.log"));
        let p = port.to_string();
        let proc = super::Proc::spawn(
            Command::new(super::BIN)
                .args(["credentials", "--server", "127.0.0.1", "--port", &p])
                .args(["--password", super::PW])
                .args(["--socket", socket.to_str().unwrap()])
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap()),
        );
        let c = Credentials { proc, socket, log };
        let until = Instant::now() + Duration::from_secs(20);
        while !c.log().contains("serving") {
            assert!(
                Instant::now() < until,
                "netsecrets credentials did not start: {}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        c
    }

    /// Everything it wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
