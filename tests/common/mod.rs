//! Shared helpers for the integration tests (tests/*.rs, one file per topic): the one way to run
//! the built `netsecrets` binary as a server ([`Server::builder`]: flags, bind address and port,
//! waits for its "listening on" line, killed by PID on drop), clients against it ([`send`],
//! [`fetch`]), the repeated assertions on their output ([`assert_exit`], [`assert_prints`]),
//! scratch directories and file modes ([`TempDir`], [`chmod`], [`mode`]), a fake systemctl that
//! logs its calls ([`fake_systemctl`], [`calls`]), wire frames ([`framed`]), and
//! [`creds`]: systemd's side of a credential socket and a running `netsecrets credentials`.
//! Every child process is killed when its handle drops, so a failing test leaves nothing
//! running.

#![allow(dead_code)]

pub mod creds;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_netsecrets");

/// The password most tests give both sides.
pub const PW: &str = "hunter2-correct-horse";

/// A child process, killed by PID and reaped when dropped (on every exit path of a test,
/// a failed assertion included).
pub struct Proc(pub Child);

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        Proc(cmd.spawn().expect("spawn netsecrets"))
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    pub fn is_alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }

    /// Waits for the process at most `limit`, then kills it; returns how it ended.
    pub fn wait_limited(&mut self, limit: Duration) -> std::process::ExitStatus {
        let end = Instant::now() + limit;
        while self.is_alive() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        self.0.wait().expect("reap child")
    }

    fn kill(&mut self) {
        if self.is_alive() {
            // SAFETY: kill(2) takes plain integers; the PID is our own unreaped child, so it
            // cannot have been reused by another process.
            unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGKILL) };
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        let _ = self.0.wait();
    }
}

/// How to start a `netsecrets receive`: bind address and port (127.0.0.1, ephemeral, unless
/// set) and its flags. [`ServerBuilder::start`] waits until it listens.
pub struct ServerBuilder {
    addr: String,
    port: u16,
    args: Vec<String>,
}

impl ServerBuilder {
    /// Binds `addr` (`--server`) instead of 127.0.0.1.
    pub fn on(mut self, addr: &str) -> ServerBuilder {
        addr.clone_into(&mut self.addr);
        self
    }

    /// Binds `port` instead of an ephemeral one.
    pub fn port(mut self, port: u16) -> ServerBuilder {
        self.port = port;
        self
    }

    /// `--password PW`: the password the tests' clients give.
    pub fn password(self) -> ServerBuilder {
        self.args(&["--password", PW])
    }

    /// `-S name=value` for each of `secrets`.
    pub fn secrets(mut self, secrets: &[&str]) -> ServerBuilder {
        for s in secrets {
            self.args.extend(["-S".to_owned(), (*s).to_owned()]);
        }
        self
    }

    /// Any other flags, in order.
    pub fn args(mut self, args: &[&str]) -> ServerBuilder {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Starts the server and waits (20 s at most) for its "listening on ADDR:PORT" line.
    pub fn start(self) -> Server {
        let port = self.port.to_string();
        let mut proc = Proc::spawn(
            Command::new(BIN)
                .args(["receive", "--server", &self.addr, "--port", &port])
                .args(&self.args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let stderr = proc.0.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("netsecrets: listening on ") {
                    let _ = tx.send(addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()));
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
            let _ = tx.send(None);
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(port)) => Server { proc, port, log },
            _ => {
                drop(proc);
                panic!("server did not start: {}", log.lock().unwrap());
            }
        }
    }
}

/// A running `netsecrets receive`, killed by PID when dropped.
pub struct Server {
    proc: Proc,
    pub port: u16,
    log: Arc<Mutex<String>>,
}

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            addr: "127.0.0.1".to_owned(),
            port: 0,
            args: Vec::new(),
        }
    }

    /// Starts a server on 127.0.0.1 with an ephemeral port and the given flags.
    pub fn start(args: &[&str]) -> Server {
        Server::builder().args(args).start()
    }

    /// Starts a server with `--password PW`, the `secrets` (`name=value`) and `args`.
    pub fn serving(secrets: &[&str], args: &[&str]) -> Server {
        Server::builder()
            .password()
            .secrets(secrets)
            .args(args)
            .start()
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log holds `n` lines containing `needle`.
    pub fn wait_log(&self, needle: &str, n: usize) -> String {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let l = self.log();
            if l.matches(needle).count() >= n || Instant::now() > end {
                return l;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_alive(&mut self) -> bool {
        self.proc.is_alive()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Sends the server SIGHUP: it reads its files again (a reload).
    pub fn hup(&self) {
        // SAFETY: kill(2) takes plain integers; the PID is the test's own unreaped child.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGHUP) };
        assert_eq!(rc, 0);
    }
}

/// Runs the binary with `args` and returns its output.
pub fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .env_remove("NETSECRETS_PASSWORD")
        .output()
        .expect("run netsecrets")
}

/// Runs `netsecrets send` against `port` on 127.0.0.1 with extra flags.
pub fn send(port: u16, args: &[&str]) -> Output {
    let p = port.to_string();
    let mut all = vec!["send", "--server", "127.0.0.1", "--port", &p];
    all.extend_from_slice(args);
    run(&all)
}

/// Runs `netsecrets send` against `port` on 127.0.0.1 with `--password PW --request_secrets
/// names` and `args`.
pub fn fetch(port: u16, names: &str, args: &[&str]) -> Output {
    fetch_from("127.0.0.1", port, names, args)
}

/// [`fetch`] from `--server server` (a name or address, `[v6]` allowed).
pub fn fetch_from(server: &str, port: u16, names: &str, args: &[&str]) -> Output {
    let port = port.to_string();
    let mut all = vec![
        "send",
        "--server",
        server,
        "--port",
        &port,
        "--password",
        PW,
        "--request_secrets",
        names,
    ];
    all.extend_from_slice(args);
    run(&all)
}

/// Asserts the exit code (the message shows stderr); returns stderr.
#[track_caller]
pub fn assert_exit(o: &Output, code: i32) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{err}");
    err
}

/// Asserts exit code 0 and exactly `want` on stdout (the message shows stderr).
#[track_caller]
pub fn assert_prints(o: &Output, want: &str) {
    assert_eq!(
        (o.status.code(), stdout(o).as_str()),
        (Some(0), want),
        "{}",
        stderr(o)
    );
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A port that was free a moment ago (for "nothing listens here" and "server starts late").
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let mut r = [0u8; 6];
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut r)
            .unwrap();
        let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let d = std::env::temp_dir().join(format!("netsecrets-test-{tag}-{hex}"));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, data: &[u8]) -> String {
        let p = self.path(name);
        std::fs::write(&p, data).unwrap();
        p.to_str().unwrap().to_owned()
    }

    pub fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sets the permission bits of `path` to `mode`.
pub fn chmod(path: impl AsRef<Path>, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Whether the test runs as root; when not, prints that it is skipped and why (`why`).
pub fn root_or_skip(why: &str) -> bool {
    // SAFETY: geteuid only reads this process's credentials.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: {why}");
    }
    root
}

/// `payload` behind its length (4 bytes, big-endian): one frame as the wire carries it.
pub fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// A fake systemctl, `name` in `d`, that appends its arguments (one call per line) to
/// `d/systemctl.log` and exits with `code`; returns its path and the log's.
pub fn fake_systemctl(d: &TempDir, name: &str, code: i32) -> (String, PathBuf) {
    let log = d.path("systemctl.log");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> '{}'\nexit {code}\n",
        log.display()
    );
    let path = d.write(name, script.as_bytes());
    chmod(&path, 0o755);
    (path, log)
}

/// The calls a fake systemctl logged, one per line (none when it never ran).
pub fn calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().mode() & 0o7777
}

/// A pseudo-terminal standing in for /dev/console: the test side (`master`) types and reads
/// what the program shows; `path` is the terminal the program opens with `--tty`.
pub struct Pty {
    pub master: std::fs::File,
    _slave: std::fs::File,
    pub path: String,
    shown: std::sync::mpsc::Receiver<Vec<u8>>,
    pub seen: Vec<u8>,
}

impl Pty {
    pub fn open() -> Pty {
        use std::os::fd::FromRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        // SAFETY: plain libc calls on a descriptor this test owns; ptsname_r writes into `buf`.
        let (master, path) = unsafe {
            let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
            assert!(fd >= 0);
            assert_eq!(libc::grantpt(fd), 0);
            assert_eq!(libc::unlockpt(fd), 0);
            let mut buf = [0 as libc::c_char; 64];
            assert_eq!(libc::ptsname_r(fd, buf.as_mut_ptr(), buf.len()), 0);
            let name = std::ffi::CStr::from_ptr(buf.as_ptr())
                .to_str()
                .unwrap()
                .to_owned();
            (std::fs::File::from_raw_fd(fd), name)
        };
        // Held open for the life of the pty, as a real console always is: without it, the
        // master reads EIO (and the reader below stops) whenever the program closes the
        // terminal between two prompts.
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&path)
            .unwrap();
        let (tx, shown) = std::sync::mpsc::channel::<Vec<u8>>();
        let mut reader = master.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Pty {
            master,
            _slave: slave,
            path,
            shown,
            seen: Vec::new(),
        }
    }

    /// Waits until `needle` has been shown `n` times in all (20 s at most).
    pub fn wait_for(&mut self, needle: &[u8], n: usize) {
        let end = Instant::now() + Duration::from_secs(20);
        while self
            .seen
            .windows(needle.len())
            .filter(|w| *w == needle)
            .count()
            < n
        {
            match self.shown.recv_timeout(Duration::from_millis(100)) {
                Ok(b) => self.seen.extend(b),
                Err(_) if Instant::now() > end => {
                    panic!(
                        "{:?} not shown {n} times: {:?}",
                        String::from_utf8_lossy(needle),
                        String::from_utf8_lossy(&self.seen)
                    )
                }
                Err(_) => {}
            }
        }
    }

    pub fn type_line(&mut self, text: &[u8]) {
        use std::io::Write;
        self.master.write_all(text).unwrap();
        self.master.write_all(b"\n").unwrap();
    }

    /// Everything shown so far, after a short wait for stragglers.
    pub fn shown(&mut self) -> String {
        while let Ok(b) = self.shown.recv_timeout(Duration::from_millis(200)) {
            self.seen.extend(b);
        }
        String::from_utf8_lossy(&self.seen).into_owned()
    }
}

/// Runs the binary with `args`, its stdin from /dev/null, under a 512 MiB address-space limit,
/// and kills it by PID after `limit`: for inputs that used to read forever or block (a FIFO,
/// `/dev/zero`), so that a regression fails the test instead of hanging the suite or eating
/// the machine's memory. `status.code()` is `None` when it had to be killed.
pub fn run_bounded(args: &[&str], limit: Duration) -> Output {
    use std::os::unix::process::CommandExt;
    let d = TempDir::new("bounded");
    let out = std::fs::File::create(d.path("stdout")).unwrap();
    let err = std::fs::File::create(d.path("stderr")).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .env_remove("NETSECRETS_PASSWORD");
    // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 512 << 20,
                rlim_max: 512 << 20,
            };
            libc::setrlimit(libc::RLIMIT_AS, &lim);
            Ok(())
        });
    }
    let status = Proc::spawn(&mut cmd).wait_limited(limit);
    Output {
        status,
        stdout: std::fs::read(d.path("stdout")).unwrap(),
        stderr: std::fs::read(d.path("stderr")).unwrap(),
    }
}

/// A FIFO (named pipe) at `path`: opening it for reading blocks until a writer comes.
pub fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}
