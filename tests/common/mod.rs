//! Shared helpers for the integration tests: run the built `netsecrets` binary as a server on an
//! ephemeral loopback port, run clients against it, and make scratch directories. Every child
//! process is killed when its handle drops, so a failing test leaves nothing running.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_netsecrets");

/// A running `netsecrets receive`.
pub struct Server {
    child: Child,
    pub port: u16,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts a server on 127.0.0.1 with an ephemeral port and the given extra flags.
    pub fn start(args: &[&str]) -> Server {
        Server::start_on("127.0.0.1", "0", args)
    }

    pub fn start_on(addr: &str, port: &str, args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["receive", "--server", addr, "--port", port])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn server");
        let stderr = child.stderr.take().expect("stderr");
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
        let port = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(p)) => p,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server did not start: {}", log.lock().unwrap());
            }
        };
        Server { child, port, log }
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
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// Runs the binary and kills it if it has not finished within `limit`.
pub fn run_limited(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run netsecrets");
    let end = Instant::now() + limit;
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait_with_output().expect("collect output")
}

/// Runs `netsecrets send` against `port` on 127.0.0.1 with extra flags.
pub fn send(port: u16, args: &[&str]) -> Output {
    let p = port.to_string();
    let mut all = vec!["send", "--server", "127.0.0.1", "--port", &p];
    all.extend_from_slice(args);
    run(&all)
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

pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().mode() & 0o7777
}

/// A pseudo-terminal standing in for /dev/console: the test side (`master`) types and reads
/// what the program shows; `path` is the terminal the program opens with `--tty`.
pub struct Pty {
    pub master: std::fs::File,
    pub path: String,
    shown: std::sync::mpsc::Receiver<Vec<u8>>,
    pub seen: Vec<u8>,
}

impl Pty {
    pub fn open() -> Pty {
        use std::os::fd::FromRawFd;
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

/// Waits for a child for at most `limit`, then kills it.
pub fn wait_limited(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + limit;
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().unwrap()
}
