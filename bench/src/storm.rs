//! The boot storm (`bench/storm`): a whole site's clients booting at once.
//!
//! N clients (default 1 000) fetch K secrets (default 5) each, all started together, from
//! `--addrs` source addresses (default 100): one network namespace per address, joined to the
//! server's namespace by its own veth pair (client i is 10.215.i.2/24, the server's end
//! 10.215.i.1/24; the primary listens on 10.216.0.1 and the fallback on 10.216.0.2, both on the
//! server namespace's loopback, routed through each pair). `--real` of the clients (default 50)
//! are real `netsecrets send` processes; the others are light clients: threads of this process,
//! each moved into its address's namespace (`setns` applies to the calling thread only), each
//! running the library's own client ([`netsecrets::client::Client`]: the same servers, fallbacks,
//! attempt deadline and jittered backoff as `send`), so only the process start and the output
//! file are left out.
//!
//! Variants: `up` (the server is up from the start), `late` (it starts `--late` seconds after the
//! first attempts), `failover` (the primary freezes when half the secrets are served: SIGSTOP,
//! sent by the client whose secret makes the half, so that it happens mid-storm to the
//! millisecond; its kernel still completes handshakes but nothing answers, so its clients wait
//! out their 5 s attempt deadline as for a machine that lost power, then the fallback takes
//! over), `crash` (the same, with SIGKILL: the primary's kernel resets its connections and
//! refuses new ones), `dead` (the same, and at that moment the primary's address is removed
//! from the server's namespace, which then drops its segments without an answer: new SYNs and
//! the open connections' segments vanish, as for a host that lost power), `nat` (every client
//! behind one address). `--late S` sets when the late server starts, `--client-timeout S` every
//! client's deadline (default `send`'s 30 s: a server later than that needs more), `--pin 1`
//! puts the servers on CPU 0 and everything else on CPU 1 (`--steer 1` also steers each
//! side's kernel receive work to its CPU: see [`steer`]), `--up-fallback 1` lists and runs a
//! fallback in variant `up` too (and reports how many requests it served). The real clients
//! write their files to `--out-dir` (`bench/storm`: a RAM file system, as the NixOS units'
//! /run/netsecrets). A light client's thread touches its stack before the start and exits only
//! once every client is done, so that neither a new thread's page faults nor its exit are
//! charged to the clients still fetching. Before
//! the variants, the existing load generator (`nsbench load`) measures the server's throughput
//! in the same namespaces with the same server flags and protocol 2 as the clients (C = 8 and
//! 64; the better is the throughput), and the ideal storm time is N x K / that throughput.
//!
//! Bounded: at most 4 096 clients, one client deadline (30 s) per variant, and a global deadline
//! (`--limit`, 240 s; variants that no longer fit are skipped). Every process it starts is killed
//! by PID when dropped and listed in `--pidfile` while alive; the namespaces (`nsstorm-<pid>-*`)
//! are deleted when dropped, and `bench/storm`'s trap deletes both if this process is killed
//! (`--tag`, its own PID, names them).

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use netsecrets::client::Client;
use netsecrets::client::config::ClientConfig;
use netsecrets::wire::crypto::{Codec, Key};
use netsecrets::wire::protocol::SecretName;

use crate::{die, value_for, Args};

const PASSWORD: &str = "storm-password";
const KEY: &str = "storm-aes-key";
const PORT: u16 = 18090;
const PRIMARY: &str = "10.216.0.1";
const FALLBACK: &str = "10.216.0.2";
/// `send`'s default `--timeout`: every client's deadline (`--client-timeout` changes it, e.g.
/// for a server that starts later than that).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_CLIENTS: usize = 4096;

static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static PIDFILE: Mutex<Option<PathBuf>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn write_pidfile(live: &[u32]) {
    if let Some(p) = lock(&PIDFILE).as_ref() {
        let text: String = live.iter().map(|p| format!("{p}\n")).collect();
        let _ = fs::write(p, text);
    }
}

/// A child process, killed by PID and reaped when dropped.
struct Proc {
    child: Child,
    done: Option<Instant>,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| die(&format!("cannot start {cmd:?}: {e}")));
        let mut live = lock(&LIVE);
        live.push(child.id());
        write_pidfile(&live);
        Proc { child, done: None }
    }

    /// Notes the first moment it was seen exited; true once it has.
    fn poll(&mut self) -> bool {
        if self.done.is_none() && matches!(self.child.try_wait(), Ok(Some(_))) {
            self.done = Some(Instant::now());
        }
        self.done.is_some()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = self.child.id();
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let mut live = lock(&LIVE);
        live.retain(|&p| p != pid);
        write_pidfile(&live);
    }
}

/// Moves the calling thread into the network namespace `ns` (a handle on /run/netns/NAME).
fn enter(ns: &File) -> std::io::Result<()> {
    // SAFETY: setns(2) takes a descriptor, open for the whole call (borrowed from `ns`), and a
    // flag; it changes only the calling thread's network namespace.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Puts the calling thread (and what it spawns from now on) under SCHED_IDLE: it runs only when
/// no normal thread wants the CPU (`--clients-idle`: the server never waits for a CPU behind
/// the simulated clients, as when they are other machines).
fn idle_me() {
    // SAFETY: sched_param is plain data (integers only), so all-zero is a valid value (priority
    // 0, as SCHED_IDLE requires; musl's has more fields than glibc's, hence no literal); it is
    // owned by this frame and only read by the call; pid 0 is the calling thread.
    let r = unsafe {
        let p: libc::sched_param = std::mem::zeroed();
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &p)
    };
    if r != 0 {
        die(&format!("SCHED_IDLE: {}", std::io::Error::last_os_error()));
    }
}

/// A command that runs `prog` in the network namespace `ns`: the child enters it between fork
/// and exec (no `ip netns exec` in between, so the PID is the program's own).
fn cmd_in(ns: &File, prog: &Path) -> Command {
    let fd = ns.as_raw_fd();
    let mut c = Command::new(prog);
    // SAFETY: the closure runs in the forked child before exec and only calls setns(2), which
    // is async-signal-safe; `fd` stays open in the child until exec (the parent keeps `ns`
    // open while it spawns).
    unsafe {
        c.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c
}

/// The namespaces: the server's and one per client address. Deleted when dropped.
struct Net {
    names: Vec<String>,
    server: File,
    clients: Vec<File>,
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip")
                .args(["netns", "del", n])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs `ip [-n ns] -batch -` with `lines` on stdin.
fn ip_batch(ns: Option<&str>, lines: &str) -> bool {
    let mut c = Command::new("ip");
    if let Some(ns) = ns {
        c.args(["-n", ns]);
    }
    let Ok(mut p) = c
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
    else {
        return false;
    };
    if let Some(mut i) = p.stdin.take() {
        let _ = i.write_all(lines.as_bytes());
    }
    p.wait().map(|s| s.success()).unwrap_or(false)
}

/// `pid` names the namespaces (`bench/storm` passes its own, to find them after a crash).
fn setup(addrs: usize, pid: u32) -> Result<Net, String> {
    if !(1..=250).contains(&addrs) {
        return Err(format!("--addrs {addrs}: 1..250"));
    }
    let tag = pid % 100_000;
    let server = format!("nsstorm-{pid}-s");
    let clients: Vec<String> = (1..=addrs).map(|i| format!("nsstorm-{pid}-c{i}")).collect();
    let mut net = Net {
        names: Vec::new(),
        server: File::open("/dev/null").map_err(|e| e.to_string())?,
        clients: Vec::new(),
    };
    let mut root = String::new();
    for n in std::iter::once(&server).chain(&clients) {
        let _ = writeln!(root, "netns add {n}");
        net.names.push(n.clone());
    }
    let mut srv = String::from("link set lo up\n");
    let _ = writeln!(
        srv,
        "addr add {PRIMARY}/32 dev lo\naddr add {FALLBACK}/32 dev lo"
    );
    for (i, c) in (1..=addrs).zip(&clients) {
        let _ = writeln!(
            root,
            "link add nst{tag}s{i} netns {server} type veth peer name nst{tag}c{i} netns {c}"
        );
        let _ = writeln!(
            srv,
            "addr add 10.215.{i}.1/24 dev nst{tag}s{i}\nlink set nst{tag}s{i} up"
        );
    }
    if !ip_batch(None, &root) || !ip_batch(Some(&server), &srv) {
        return Err("cannot create the namespaces and veth pairs (needs root and `ip`)".into());
    }
    for (i, c) in (1..=addrs).zip(&clients) {
        let lines = format!(
            "link set lo up\naddr add 10.215.{i}.2/24 dev nst{tag}c{i}\nlink set nst{tag}c{i} up\nroute add 10.216.0.0/24 via 10.215.{i}.1\n"
        );
        if !ip_batch(Some(c), &lines) {
            return Err(format!("cannot set up namespace {c}"));
        }
    }
    let open =
        |n: &str| File::open(format!("/run/netns/{n}")).map_err(|e| format!("/run/netns/{n}: {e}"));
    net.server = open(&server)?;
    for c in &clients {
        net.clients.push(open(c)?);
    }
    Ok(net)
}

/// `--steer 1` (with `--pin`): each side's kernel receive work on its own CPU, as on two
/// machines. A packet sent into a veth pair is received (IP, TCP, the listener's handshake,
/// the accepted socket's creation, its data) in the sender's context, on the sender's CPU,
/// unless receive packet steering names other CPUs for that device: so by default the
/// clients' CPU also does the server's kernel receive work (every SYN, ACK, request and FIN the
/// server receives), and the server's CPU the clients' (every answer they receive), for the
/// load generator and the storm alike. Steered here: what the server's ends receive is
/// processed on CPU 0 (the servers'), what the clients' ends receive on CPU 1 (the clients').
/// Off by default: on this kind of VM every packet then costs a cross-CPU interrupt, which
/// doubles the server's CPU per request and lowers the throughput the ideal is measured at
/// (see docs/performance.md). `ip netns exec` mounts the namespace's own /sys for the shell.
fn steer(net: &Net, tag: u32) -> Result<(), String> {
    let tag = tag % 100_000;
    for (i, n) in net.names.iter().enumerate() {
        // The first namespace is the server's (see `setup`).
        let (side, mask) = if i == 0 { ('s', 1) } else { ('c', 2) };
        let script = format!(
            "for f in /sys/class/net/nst{tag}{side}*/queues/rx-*/rps_cpus; do echo {mask} > \"$f\" || exit 1; done"
        );
        let ok = Command::new("ip")
            .args(["netns", "exec", n, "sh", "-c", &script])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return Err(format!("cannot set receive packet steering in {n}"));
        }
    }
    Ok(())
}

struct Cfg {
    netsecrets: PathBuf,
    me: PathBuf,
    work: PathBuf,
    /// Where the real clients write their secrets (`--out-dir`): a RAM file system, as the
    /// NixOS units' /run/netsecrets is (`bench/storm` makes one under /dev/shm).
    out_dir: PathBuf,
    /// `--steer 1`: receive packet steering, see [`steer`] (off by default: slower here).
    steer: bool,
    clients: usize,
    real: usize,
    k: usize,
    late: f64,
    load_secs: f64,
    /// Every client's deadline (`--client-timeout`, default `send`'s 30 s).
    client_timeout: Duration,
    /// `--pin`: the server(s) on CPU 0, everything else (load generator, light and real
    /// clients) on CPU 1, so that the clients' CPU is not the server's (as when they are other
    /// machines).
    pin: bool,
    /// `--up-fallback`: in variant (a), a fallback server is listed and running too (to count
    /// the requests hedging sends it while the primary is healthy).
    up_fallback: bool,
    /// The server namespace's name (for `ip -n`: variant `dead` removes the primary's address).
    server_ns: String,
    limit: Instant,
    /// `--clients-idle`: every client (load generator, light and real) under SCHED_IDLE.
    idle: bool,
}

fn names(k: usize) -> Vec<String> {
    (0..k).map(|i| format!("s{i}")).collect()
}

/// Starts `netsecrets receive` on `bind` in the server namespace (default limits, AES, the log
/// to `log`).
fn server(cfg: &Cfg, net: &Net, bind: &str, log: &Path) -> Proc {
    let mut c = cmd_in(&net.server, &cfg.netsecrets);
    c.args(["receive", "--server", bind, "--port", &PORT.to_string()])
        .arg("--password-file")
        .arg(cfg.work.join("password"))
        .arg("--encryption-key-file")
        .arg(cfg.work.join("key"));
    for n in names(cfg.k) {
        let v = String::from_utf8(value_for(&n)).unwrap_or_default();
        c.arg("-S").arg(format!("{n}={v}"));
    }
    let f = File::create(log).unwrap_or_else(|e| die(&format!("{}: {e}", log.display())));
    c.stderr(f).stdout(Stdio::null()).stdin(Stdio::null());
    if cfg.pin {
        // SAFETY: runs in the forked child before exec; sched_setaffinity is a plain system
        // call on a set owned by this closure's frame.
        unsafe {
            c.pre_exec(|| {
                pin_to(0);
                Ok(())
            });
        }
    }
    Proc::spawn(&mut c)
}

/// Pins the calling thread (and what it starts from now on) to CPU `cpu`.
fn pin_to(cpu: usize) {
    // SAFETY: cpu_set_t is plain data (all-zero is the empty set); CPU_SET writes a bit inside
    // it; sched_setaffinity only reads it; pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Waits (at most 5 s) until `ip`:PORT accepts a connection from the first client namespace.
fn wait_listening(net: &Net, ip: &str) -> bool {
    let Ok(ns) = net.clients[0].try_clone() else {
        return false;
    };
    let addr: SocketAddr = format!("{ip}:{PORT}")
        .parse()
        .unwrap_or_else(|_| die("address"));
    thread::spawn(move || {
        if enter(&ns).is_err() {
            return false;
        }
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if crate::net::dial(addr, Duration::from_millis(500)).is_ok() {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        false
    })
    .join()
    .unwrap_or(false)
}

/// ListenOverflows + ListenDrops of the server namespace so far (SYNs or completed connections
/// the kernel dropped because the accept queue was full: invisible in the server's log).
fn listen_drops(net: &Net) -> u64 {
    let Ok(ns) = net.server.try_clone() else {
        return 0;
    };
    thread::spawn(move || {
        if enter(&ns).is_err() {
            return 0;
        }
        let text = fs::read_to_string("/proc/thread-self/net/netstat").unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("TcpExt:")).collect();
        let (Some(h), Some(v)) = (lines.first(), lines.get(1)) else {
            return 0;
        };
        h.split_whitespace()
            .zip(v.split_whitespace())
            .filter(|(k, _)| *k == "ListenOverflows" || *k == "ListenDrops")
            .map(|(_, v)| v.parse::<u64>().unwrap_or(0))
            .max() // ListenDrops counts the overflows too
            .unwrap_or(0)
    })
    .join()
    .unwrap_or(0)
}

/// True when a child of this process has ended and is not reaped yet (it is left for `Proc`
/// to reap).
fn child_ended() -> bool {
    // SAFETY: siginfo_t is plain data (all-zero is valid) owned by this frame; waitid writes
    // into it; WNOWAIT leaves the child to be reaped by its `Proc`.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        ) == 0
            && info.si_pid() != 0
    }
}

/// User + system CPU seconds of this process's reaped children.
fn children_cpu() -> f64 {
    // SAFETY: `r` is a plain struct owned by this frame; getrusage writes into it.
    let r = unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut r);
        r
    };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(r.ru_utime) + t(r.ru_stime)
}

/// The server's throughput with the existing load generator, from the first client address,
/// in requests/s: the better of C = 8 and C = 64.
fn throughput(cfg: &Cfg, net: &Net, md: &mut String) -> f64 {
    let mut srv = server(cfg, net, PRIMARY, &cfg.work.join("load-server.log"));
    if !wait_listening(net, PRIMARY) {
        die("the server did not start listening");
    }
    let mut best: f64 = 0.0;
    let mut parts = Vec::new();
    for conc in [8, 64] {
        let mut c = cmd_in(&net.clients[0], &cfg.me);
        c.args([
            "load",
            "--addr",
            &format!("{PRIMARY}:{PORT}"),
            "--conc",
            &conc.to_string(),
        ])
        .args(["--secs", &cfg.load_secs.to_string(), "--warmup", "0.5"])
        .args([
            "--names",
            &cfg.k.to_string(),
            "--password",
            PASSWORD,
            "--key",
            KEY,
            // What `send` and the light clients speak (with a key, protocol 2 is the default).
            "--protocol",
            "2",
        ])
        .stdout(Stdio::piped())
        .stdin(Stdio::null());
        let cpu0 = crate::proc::cpu_secs(srv.child.id()).unwrap_or(0.0);
        let children0 = children_cpu();
        let idle = cfg.idle;
        let mut p = thread::spawn(move || {
            if idle {
                idle_me(); // inherited by the child
            }
            Proc::spawn(&mut c)
        })
        .join()
        .unwrap_or_else(|_| die("spawning the load generator failed"));
        let end = Instant::now() + Duration::from_secs_f64(cfg.load_secs + 15.0);
        while !p.poll() && Instant::now() < end {
            thread::sleep(Duration::from_millis(20));
        }
        let mut out = String::new();
        if let Some(o) = p.child.stdout.as_mut() {
            let _ = o.read_to_string(&mut out);
        }
        let line = out.lines().find(|l| l.starts_with("RESULT ")).unwrap_or("");
        let get = |k: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{k}=")))
                .unwrap_or("?")
                .to_string()
        };
        let rps: f64 = get("rps").parse().unwrap_or(0.0);
        let cpu = crate::proc::cpu_secs(srv.child.id()).unwrap_or(0.0) - cpu0;
        let total: f64 = get("total").parse().unwrap_or(0.0);
        let cpu_us = cpu * 1e6 / total.max(1.0);
        // The load generator was reaped by `poll`: its CPU is in this process's children's.
        let load_us = (children_cpu() - children0) * 1e6 / total.max(1.0);
        eprintln!(
            "  load C={conc}: server CPU {cpu_us:.1} us/request, load generator CPU {load_us:.1} us/request"
        );
        eprintln!("  load C={conc}: {rps:.0} req/s, errors {}", get("err"));
        parts.push(format!(
            "C={conc}: {rps:.0} req/s, {} errors, CPU per request {cpu_us:.1} µs in the server and {load_us:.1} µs in the load generator",
            get("err")
        ));
        best = best.max(rps);
    }
    srv.kill();
    let _ = writeln!(
        md,
        "Server throughput (existing load generator, `nsbench load`, from 10.215.1.2, same server flags, AES, log to a file, {} s after 0.5 s warm-up): {}; **{best:.0} req/s** is the throughput the ideal uses.\n",
        cfg.load_secs,
        parts.join("; ")
    );
    if best <= 0.0 {
        die("the load generator measured no throughput");
    }
    best
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Up,
    Late,
    Failover,
    Crash,
    Dead,
    Nat,
}

impl Variant {
    fn parse(s: &str) -> Variant {
        match s {
            "up" | "a" => Variant::Up,
            "late" | "b" => Variant::Late,
            "failover" | "c" => Variant::Failover,
            "crash" | "c2" => Variant::Crash,
            "dead" | "c3" => Variant::Dead,
            "nat" | "d" => Variant::Nat,
            _ => die(&format!(
                "unknown variant {s:?} (up, late, failover, crash, dead, nat)"
            )),
        }
    }

    fn label(self, late: f64) -> String {
        match self {
            Variant::Up => "(a) server up from the start".into(),
            Variant::Late => format!("(b) server starts {late} s after the first attempts"),
            Variant::Failover => "(c) primary freezes mid-storm, fallback takes over".into(),
            Variant::Crash => "(c2) primary crashes mid-storm, fallback takes over".into(),
            Variant::Dead => {
                "(c3) primary's host dies mid-storm (SYNs and segments dropped), fallback takes over"
                    .into()
            }
            Variant::Nat => "(d) every client behind one address (NAT)".into(),
        }
    }
}

/// One client's result.
struct Done {
    real: bool,
    start: Instant,
    done: Instant,
    attempts: u32,
    ok: bool,
    why: String,
}

/// When the primary freezes (`failover`): the light client whose secret makes `progress` reach
/// `at` stops it with SIGSTOP at once (`crash`: kills it with SIGKILL; its kernel then resets
/// its connections and refuses new ones, so its clients move on at once). A frozen server answers nothing while its kernel still
/// completes handshakes, so its clients wait out their 5 s attempt deadline, as for a machine
/// that lost power, then move on to the fallback.
struct Freeze {
    at: usize,
    signal: libc::c_int,
    pid: u32,
    /// `dead`: the server namespace in which the primary's address is removed at the same
    /// moment. Its segments are then dropped without an answer (a namespace does not forward,
    /// and sends no ICMP error for what it does not forward): new SYNs and the open
    /// connections' segments vanish, as for a host that lost power.
    drop_in: Option<String>,
    when: Mutex<Option<Instant>>,
}

/// Touches 128 KiB of the calling thread's stack (of 256 KiB), so that its pages are mapped
/// before the start rather than on first use during the storm.
#[inline(never)]
fn touch_stack() {
    let mut pages = [0u8; 128 * 1024];
    for p in pages.iter_mut().step_by(4096) {
        // SAFETY: `p` is a valid, aligned, exclusive reference into `pages`, a local array.
        unsafe { std::ptr::write_volatile(p, 1) };
    }
    std::hint::black_box(&pages);
}

/// A light client: the library's `Client`, the same schedule as `send`, one deadline for all K
/// secrets (as `fetch_all`), counting each secret fetched in `progress`.
fn light(
    servers: Vec<String>,
    k: usize,
    timeout: Duration,
    progress: &AtomicUsize,
    freeze: &Freeze,
) -> (bool, u32, String) {
    let cfg = ClientConfig {
        servers,
        port: PORT,
        password: PASSWORD.as_bytes().to_vec(),
        codec: Codec::Aes(Key::from_str_key(KEY)),
        protocol: netsecrets::wire::bound::Protocol::V2,
        timeout,
        verbose: false,
    };
    let mut c = Client::new(&cfg);
    let deadline = Instant::now() + cfg.timeout;
    for n in names(k) {
        let Ok(name) = n.parse::<SecretName>() else {
            return (false, c.attempts(), format!("bad name {n}"));
        };
        match c.fetch(&name, deadline) {
            Ok(v) if v == value_for(&n) => {
                if progress.fetch_add(1, Ordering::Relaxed) + 1 == freeze.at && freeze.pid > 0 {
                    // SAFETY: kill(2) takes two integers; the pid is the primary's, a child of
                    // this process not yet reaped (it is reaped after every client is done).
                    unsafe { libc::kill(freeze.pid as libc::pid_t, freeze.signal) };
                    if let Some(ns) = &freeze.drop_in {
                        let _ = Command::new("ip")
                            .args([
                                "-n",
                                ns,
                                "addr",
                                "del",
                                &format!("{PRIMARY}/32"),
                                "dev",
                                "lo",
                            ])
                            .status();
                    }
                    *lock(&freeze.when) = Some(Instant::now());
                }
            }
            Ok(_) => return (false, c.attempts(), format!("wrong value for {n}")),
            Err(e) => return (false, c.attempts(), e.to_string()),
        }
    }
    (true, c.attempts(), String::new())
}

/// What the server's log says about one variant.
#[derive(Default)]
struct Log {
    served: u64,
    lockout: u64,
    per_ip: u64,
    busy: u64,
    answer_bytes: u64,
    /// Refusals whose lines the rate limit dropped (counted in summary lines, kind unknown).
    refused_unlogged: u64,
    /// Closed without a request (evicted, or the client gave up), and bad frames.
    closed: u64,
    wrong_password: u64,
}

fn parse_log(text: &str, into: &mut Log) {
    for l in text.lines() {
        let more = |kind: &str| -> Option<u64> {
            let rest = l.split("netsecrets: ").nth(1).unwrap_or(l);
            rest.contains(&format!("more '{kind}' lines not logged"))
                .then(|| rest.split_whitespace().next().and_then(|n| n.parse().ok()))
                .flatten()
        };
        if l.contains("outcome=served") {
            into.served += 1;
        } else if let Some(n) = more("served") {
            into.served += n;
        } else if l.contains("outcome=refused (locked out") {
            into.lockout += 1;
        } else if l.contains("--max-per-ip") {
            into.per_ip += 1;
        } else if l.contains("--max-connections reached") {
            into.busy += 1;
        } else if l.contains("too many answer bytes") {
            into.answer_bytes += 1;
        } else if let Some(n) = more("refused") {
            into.refused_unlogged += n;
        } else if l.contains("outcome=closed without a request") || l.contains("outcome=bad frame")
        {
            into.closed += 1;
        } else if let Some(n) = more("closed without a request").or_else(|| more("bad frame")) {
            into.closed += n;
        } else if l.contains("outcome=wrong-password") {
            into.wrong_password += 1;
        } else if let Some(n) = more("wrong-password") {
            into.wrong_password += n;
        }
    }
}

struct Report {
    makespan: f64,
    /// For `late`: the server's start; for `failover`: the primary's end (after T0, s).
    event: Option<f64>,
    start_spread_ms: f64,
    times: Vec<f64>,
    real_times: Vec<f64>,
    retries: Vec<u32>,
    failed: Vec<String>,
    log: Log,
    listen_drops: u64,
    /// Requests the fallback served (variants with a fallback).
    fallback_served: u64,
    /// Most threads a server had (workers + the monitor): connections served at once + 1.
    peak_threads: u64,
    /// CPU seconds of the server(s) and of this process (the light clients) during the variant.
    server_cpu: f64,
    bench_cpu: f64,
    /// CPU seconds of the real clients (`netsecrets send` and the shell that held it).
    reals_cpu: f64,
}

impl Report {
    fn without_probes(mut self, probes: u64) -> Report {
        self.log.closed = self.log.closed.saturating_sub(probes);
        self
    }
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn storm(cfg: &Cfg, net: &Net, v: Variant) -> Report {
    let out = cfg.out_dir.clone();
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).unwrap_or_else(|e| die(&format!("{}: {e}", out.display())));
    let two = matches!(v, Variant::Failover | Variant::Crash | Variant::Dead)
        || (v == Variant::Up && cfg.up_fallback);
    let servers: Vec<String> = if two {
        vec![PRIMARY.into(), FALLBACK.into()]
    } else {
        vec![PRIMARY.into()]
    };
    let n_addrs = if v == Variant::Nat {
        1
    } else {
        net.clients.len()
    };
    let stride = (cfg.clients / cfg.real.max(1)).max(1);
    let is_real = |j: usize| cfg.real > 0 && j.is_multiple_of(stride) && j / stride < cfg.real;
    let drops0 = listen_drops(net);
    let logs = [cfg.work.join("primary.log"), cfg.work.join("fallback.log")];
    let mut primary = None;
    let mut fallback = None;
    if v != Variant::Late {
        primary = Some(server(cfg, net, PRIMARY, &logs[0]));
        if !wait_listening(net, PRIMARY) {
            die("the primary did not start listening");
        }
    }
    if two {
        fallback = Some(server(cfg, net, FALLBACK, &logs[1]));
        if !wait_listening(net, FALLBACK) {
            die("the fallback did not start listening");
        }
    }
    let progress = Arc::new(AtomicUsize::new(0));
    let n_light = (0..cfg.clients).filter(|&j| !is_real(j)).count();
    let freeze = Arc::new(Freeze {
        signal: if v == Variant::Crash {
            libc::SIGKILL
        } else {
            libc::SIGSTOP
        },
        at: if matches!(v, Variant::Failover | Variant::Crash | Variant::Dead) {
            n_light * cfg.k / 2
        } else {
            usize::MAX
        },
        pid: primary.as_ref().map_or(0, |p| p.child.id()),
        drop_in: (v == Variant::Dead).then(|| cfg.server_ns.clone()),
        when: Mutex::new(None),
    });
    // Start time: after every light thread is created and has entered its namespace, and every
    // real client is spawned and waiting.
    let t0 =
        Instant::now() + Duration::from_millis(500 + n_light as u64 / 2 + 10 * cfg.real as u64);
    // A light client's thread outlives its client: it waits for `release` (given once every
    // client is done or the variant's time is up) before it exits, so that its exit (unmapping
    // its stack) is not charged to the clients still fetching on the same CPU; and it touches
    // its stack before the start, so that the page faults of a new stack are not either. Both
    // are costs of simulating a machine with a thread, which a real client does not pay
    // during its boot.
    let release = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let mut threads = Vec::new();
    for j in (0..cfg.clients).filter(|&j| !is_real(j)) {
        let ns = net.clients[j % n_addrs]
            .try_clone()
            .unwrap_or_else(|e| die(&format!("namespace handle: {e}")));
        let servers = servers.clone();
        let progress = Arc::clone(&progress);
        let freeze = Arc::clone(&freeze);
        let k = cfg.k;
        let timeout = cfg.client_timeout;
        let idle = cfg.idle;
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (fin, release) = (Arc::clone(&finished), Arc::clone(&release));
        let spawned = thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let r = (|| {
                    if let Err(e) = enter(&ns) {
                        let now = Instant::now();
                        return (now, now, false, 0, format!("setns: {e}"));
                    }
                    drop(ns);
                    if idle {
                        idle_me();
                    }
                    touch_stack();
                    let now = Instant::now();
                    if t0 > now {
                        thread::sleep(t0 - now);
                    }
                    let start = Instant::now();
                    let (ok, attempts, why) = light(servers, k, timeout, &progress, &freeze);
                    (start, Instant::now(), ok, attempts, why)
                })();
                fin.store(true, Ordering::Release);
                let (gate, cv) = &*release;
                let mut open = lock(gate);
                while !*open {
                    open = cv.wait(open).unwrap_or_else(|p| p.into_inner());
                }
                r
            });
        threads.push((
            spawned.unwrap_or_else(|e| die(&format!("cannot start a client thread: {e}"))),
            finished,
        ));
    }
    // The real clients: spawned before the start, each held by a shell waiting for one line on
    // its stdin before it execs `netsecrets send`, and released at the start with one write
    // each (spawned at the start instead, on 2 CPUs under the storm's load, their starts spread
    // over 300 ms). Spawned from a thread that enters each client's namespace in turn: the
    // child inherits the thread's namespace, and std can use posix_spawn.
    let names_csv = names(cfg.k).join(",");
    let mut cmds: Vec<(usize, File, Command)> = Vec::new();
    for j in (0..cfg.clients).filter(|&j| is_real(j)) {
        let mut c = Command::new("sh");
        c.args(["-c", "read -r go && exec \"$0\" \"$@\""])
            .arg(&cfg.netsecrets)
            .args(["send", "--server", PRIMARY, "--port", &PORT.to_string()]);
        if two {
            c.args(["--fallbacks", FALLBACK]);
        }
        c.arg("--password-file")
            .arg(cfg.work.join("password"))
            .arg("--encryption-key-file")
            .arg(cfg.work.join("key"))
            .args([
                "--request-secrets",
                &names_csv,
                "--timeout",
                &cfg.client_timeout.as_secs_f64().to_string(),
                "--verbose",
            ])
            .arg("--file-output")
            .arg(out.join(format!("c{j}")));
        let err = File::create(out.join(format!("c{j}.err")))
            .unwrap_or_else(|e| die(&format!("stderr file: {e}")));
        c.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(err);
        let ns = net.clients[j % n_addrs]
            .try_clone()
            .unwrap_or_else(|e| die(&format!("namespace handle: {e}")));
        cmds.push((j, ns, c));
    }
    let idle = cfg.idle;
    let spawner = thread::spawn(move || {
        if idle {
            idle_me(); // inherited by the children
        }
        let mut started = Vec::new();
        for (j, ns, mut c) in cmds {
            if let Err(e) = enter(&ns) {
                die(&format!("setns: {e}"));
            }
            started.push((j, Proc::spawn(&mut c)));
        }
        started
    });
    let held: Vec<(usize, Proc)> = spawner
        .join()
        .unwrap_or_else(|_| die("the spawner thread panicked"));
    let now = Instant::now();
    if now < t0 {
        thread::sleep(t0 - now);
    } else {
        eprintln!(
            "  (clients took longer to start than planned: {:?} late)",
            now - t0
        );
    }
    let mut reals: Vec<(usize, Instant, Proc)> = Vec::new();
    for (j, mut p) in held {
        if let Some(mut i) = p.child.stdin.take() {
            let _ = i.write_all(b"go\n");
        }
        reals.push((j, Instant::now(), p));
    }
    // Watch: the late start, the failover, the real clients; bounded by the client deadline
    // and the global limit.
    let end = (t0 + cfg.client_timeout + Duration::from_secs(10)).min(cfg.limit);
    let mut event = None;
    let mut peak_threads = 0;
    let server_cpu = |p: &Option<Proc>| {
        p.as_ref()
            .and_then(|p| crate::proc::cpu_secs(p.child.id()))
            .unwrap_or(0.0)
    };
    let cpu0 = server_cpu(&primary) + server_cpu(&fallback);
    let me0 = crate::proc::cpu_secs(std::process::id()).unwrap_or(0.0);
    let children0 = children_cpu();
    let mut over = false;
    let mut reals_done = reals.is_empty();
    let mut next_sample = Instant::now();
    loop {
        let now = Instant::now();
        if v == Variant::Late && primary.is_none() && now >= t0 + Duration::from_secs_f64(cfg.late)
        {
            primary = Some(server(cfg, net, PRIMARY, &logs[0]));
            event = Some(now);
        }
        // Every 5 ms (a read of /proc costs about 20 µs of the clients' CPU): an idle worker
        // retires only after seconds, so the peak lasts far longer than that.
        if now >= next_sample {
            next_sample = now + Duration::from_millis(5);
            for p in [primary.as_ref(), fallback.as_ref()].into_iter().flatten() {
                if let Some(st) = crate::proc::status(p.child.id()) {
                    peak_threads = peak_threads.max(st.threads);
                }
            }
        }
        // One system call to learn whether any child ended, rather than one per real client
        // every millisecond (this loop shares the clients' CPU).
        if !reals_done && child_ended() {
            reals_done = reals
                .iter_mut()
                .fold(true, |all, (_, _, p)| p.poll() && all);
        }
        if reals_done && threads.iter().all(|(_, f)| f.load(Ordering::Acquire)) {
            break;
        }
        if now >= end {
            over = true;
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    // Up to the last client's end (the threads' exits come after).
    let me = crate::proc::cpu_secs(std::process::id()).unwrap_or(0.0) - me0;
    // The real clients, reaped by `poll` (with their shells' start, before the start).
    let reals_cpu = children_cpu() - children0;
    if over {
        eprintln!("  the variant ran out of time: clients still running are counted as failed");
    }
    *lock(&release.0) = true;
    release.1.notify_all();
    let mut done: Vec<Done> = Vec::new();
    for (t, finished) in threads {
        if over && !finished.load(Ordering::Acquire) {
            done.push(Done {
                real: false,
                start: t0,
                done: Instant::now(),
                attempts: 0,
                ok: false,
                why: "still running at the limit".into(),
            });
            continue; // its thread is left to its own 30 s deadline
        }
        let (start, end, ok, attempts, why) =
            t.join().unwrap_or_else(|_| die("a client thread panicked"));
        done.push(Done {
            real: false,
            start,
            done: end,
            attempts,
            ok,
            why,
        });
    }
    let want: Vec<u8> = names(cfg.k)
        .iter()
        .map(|n| value_for(n))
        .collect::<Vec<_>>()
        .join(&b'\n');
    for (j, start, mut p) in reals {
        let finished = p.poll();
        if !finished {
            p.kill();
        }
        let status_ok = finished && matches!(p.child.try_wait(), Ok(Some(s)) if s.success());
        let file_ok = fs::read(out.join(format!("c{j}"))).ok().as_deref() == Some(&want[..]);
        let err = fs::read_to_string(out.join(format!("c{j}.err"))).unwrap_or_default();
        let attempts = err.lines().filter(|l| l.contains(": fetching ")).count() as u32;
        let why = if status_ok && file_ok {
            String::new()
        } else {
            format!(
                "send c{j}: {}",
                err.lines().last().unwrap_or("killed at the limit")
            )
        };
        done.push(Done {
            real: true,
            start,
            done: p.done.unwrap_or_else(Instant::now),
            attempts,
            ok: status_ok && file_ok,
            why,
        });
    }
    if matches!(v, Variant::Failover | Variant::Crash | Variant::Dead) {
        event = *lock(&freeze.when);
        if event.is_none() {
            eprintln!("  the primary was never frozen (the clients finished first?)");
        }
    }
    let cpu = server_cpu(&primary) + server_cpu(&fallback) - cpu0;
    // The server logs at most 100 'served' lines a second and says how many it left out once
    // that second is over, within a second more: the count is read from those lines, so the
    // servers are left running that long (the clients are done; nothing is measured).
    let settle = t0.max(event.unwrap_or(t0)) + Duration::from_millis(2100);
    let now = Instant::now();
    if now < settle {
        thread::sleep(settle - now);
    }
    drop(primary); // a frozen process is killed all the same
    drop(fallback);
    if v == Variant::Dead {
        // The primary's address back, for the variants after this one.
        let _ = Command::new("ip")
            .args([
                "-n",
                &cfg.server_ns,
                "addr",
                "add",
                &format!("{PRIMARY}/32"),
                "dev",
                "lo",
            ])
            .status();
    }
    let mut log = Log::default();
    // The readiness probes (one per server started before the clients) closed without a request.
    let probes = match v {
        Variant::Late => 0,
        Variant::Failover | Variant::Crash | Variant::Dead => 2,
        Variant::Up if two => 2,
        _ => 1,
    };
    let mut fallback_served = 0;
    for (i, l) in logs.iter().enumerate() {
        let text = fs::read_to_string(l).unwrap_or_default();
        let before = log.served;
        parse_log(&text, &mut log);
        if i == 1 {
            fallback_served = log.served - before;
        }
        let _ = fs::remove_file(l);
    }
    let secs = |t: Instant| t.saturating_duration_since(t0).as_secs_f64();
    let mut times: Vec<f64> = done.iter().filter(|d| d.ok).map(|d| secs(d.done)).collect();
    times.sort_by(|a, b| a.total_cmp(b));
    let mut real_times: Vec<f64> = done
        .iter()
        .filter(|d| d.ok && d.real)
        .map(|d| secs(d.done))
        .collect();
    real_times.sort_by(|a, b| a.total_cmp(b));
    let first = done.iter().map(|d| d.start).min().unwrap_or(t0);
    let last = done.iter().map(|d| d.start).max().unwrap_or(t0);
    for real in [false, true] {
        let st = done.iter().filter(|d| d.real == real).map(|d| d.start);
        let (a, b) = (st.clone().min().unwrap_or(t0), st.max().unwrap_or(t0));
        eprintln!(
            "  {} clients started {:.1} to {:.1} ms after the start",
            if real { "real" } else { "light" },
            a.saturating_duration_since(t0).as_secs_f64() * 1000.0,
            b.saturating_duration_since(t0).as_secs_f64() * 1000.0
        );
    }
    Report {
        makespan: done.iter().map(|d| secs(d.done)).fold(0.0, f64::max),
        event: event.map(secs),
        start_spread_ms: last.saturating_duration_since(first).as_secs_f64() * 1000.0,
        times,
        real_times,
        retries: done
            .iter()
            .map(|d| d.attempts.saturating_sub(cfg.k as u32))
            .collect(),
        failed: done
            .iter()
            .filter(|d| !d.ok)
            .map(|d| d.why.clone())
            .collect(),
        log,
        listen_drops: listen_drops(net).saturating_sub(drops0),
        fallback_served,
        peak_threads,
        server_cpu: cpu,
        bench_cpu: me,
        reals_cpu,
    }
    .without_probes(probes)
}

/// `nsbench storm`: see the module comment.
pub fn run(args: &Args) {
    let smoke = args.has("smoke");
    let started = Instant::now();
    let clients: usize = args.num("clients", if smoke { 100 } else { 1000 });
    let addrs: usize = args.num("addrs", if smoke { 10 } else { 100 });
    let real: usize = args.num("real", if smoke { 10 } else { 50 });
    let limit: f64 = args.num("limit", if smoke { 60.0 } else { 240.0 });
    if clients == 0 || clients > MAX_CLIENTS || real > clients || !(1.0..=900.0).contains(&limit) {
        die("storm: --clients 1..4096, --real at most --clients, --limit 1..900 s");
    }
    if let Some(p) = args.get("pidfile") {
        *lock(&PIDFILE) = Some(PathBuf::from(p));
    }
    let work = PathBuf::from(args.need("dir"));
    fs::create_dir_all(&work).unwrap_or_else(|e| die(&format!("{}: {e}", work.display())));
    fs::write(work.join("password"), format!("{PASSWORD}\n"))
        .unwrap_or_else(|e| die(&e.to_string()));
    fs::write(work.join("key"), format!("{KEY}\n")).unwrap_or_else(|e| die(&e.to_string()));
    let pin = args.get("pin").is_some_and(|v| v != "0");
    let cfg = Cfg {
        netsecrets: PathBuf::from(args.need("netsecrets")),
        me: std::env::current_exe().unwrap_or_else(|e| die(&format!("own path: {e}"))),
        out_dir: args
            .get("out-dir")
            .map_or_else(|| work.join("out"), |d| PathBuf::from(d).join("out")),
        work,
        clients,
        real,
        k: args.num("k", 5),
        late: args.num("late", if smoke { 1.5 } else { 3.0 }),
        client_timeout: Duration::from_secs_f64(
            args.num("client-timeout", CLIENT_TIMEOUT.as_secs_f64()),
        ),
        pin,
        up_fallback: args.get("up-fallback").is_some_and(|v| v != "0"),
        server_ns: format!("nsstorm-{}-s", args.num("tag", std::process::id())),
        load_secs: args.num("load-secs", if smoke { 1.0 } else { 2.0 }),
        idle: args.get("clients-idle").is_some_and(|v| v != "0"),
        steer: args.get("steer").is_some_and(|v| v != "0"),
        limit: started + Duration::from_secs_f64(limit),
    };
    if cfg.k == 0 || cfg.k > 64 {
        die("storm: --k 1..64");
    }
    if !(1.0..=600.0).contains(&cfg.client_timeout.as_secs_f64()) {
        die("storm: --client-timeout 1..600 s");
    }
    if cfg.pin {
        // Inherited by every thread and process started from here on; servers move to CPU 0.
        pin_to(1);
        eprintln!("  pinned: servers on CPU 0, load generator and clients on CPU 1");
    }
    let default_variants = if smoke {
        "up,late,nat"
    } else {
        "up,late,failover,crash,nat"
    };
    let reps: usize = args.num("reps", 1);
    if !(1..=5).contains(&reps) {
        die("storm: --reps 1..5");
    }
    let variants: Vec<Variant> = args
        .str("variants", default_variants)
        .split(',')
        .map(Variant::parse)
        .collect();

    eprintln!("== boot storm: namespaces ({addrs} client addresses)");
    let t = Instant::now();
    let tag = args.num("tag", std::process::id());
    let net = setup(addrs, tag).unwrap_or_else(|e| die(&e));
    if cfg.steer {
        steer(&net, tag).unwrap_or_else(|e| die(&e));
        eprintln!("  receive packet steering: server ends on CPU 0, client ends on CPU 1");
    }
    eprintln!("  set up in {:.1} s", t.elapsed().as_secs_f64());
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### Boot storm: {clients} clients x {} secrets, {addrs} source addresses\n",
        cfg.k
    );
    let _ = writeln!(
        md,
        "{clients} clients ({real} real `netsecrets send` processes, the rest light clients running the library's `Client` in threads of the bench), each fetching {} secrets over one 30 s deadline, all started together; one network namespace per source address (veth pair to the server's namespace); server: `netsecrets receive` with its default limits (`--max-connections 256 --max-per-ip 64 --max-failures 5`), AES, log to a file.\n",
        cfg.k
    );
    let mut table = String::from("| variant | last client done (s after the start) | ratio to ideal | completion p50 / p90 / p99 / max (s) | real `send`s p50 / max (s) | start spread (ms) | retries per client mean / max | failed | served | refused: lockout / per-ip / busy / answer bytes / unlogged | closed without a request | listen-queue drops | server peak threads |\n");
    table.push_str("|---|---:|---:|---|---|---:|---|---:|---:|---|---:|---:|---:|\n");
    let mut ratios: Vec<(String, Vec<f64>)> = Vec::new();
    let mut bad = false;
    let mut notes = Vec::new();
    for rep in 1..=reps {
        eprintln!("== server throughput (load generator)");
        let rps = throughput(&cfg, &net, &mut md);
        let ideal = (clients * cfg.k) as f64 / rps;
        let _ = writeln!(
            md,
            "Ideal: N x K / throughput = {} / {rps:.0} = {:.3} s.\n",
            clients * cfg.k,
            ideal
        );
        for &v in &variants {
            let need = cfg.client_timeout.as_secs_f64() + 15.0;
            if Instant::now() + Duration::from_secs_f64(need.min(if smoke { 15.0 } else { need }))
                > cfg.limit
            {
                let _ = writeln!(
                    table,
                    "| {} | skipped: the global limit ({limit} s) is near | | | | | | | | | | | |",
                    v.label(cfg.late)
                );
                continue;
            }
            eprintln!("== storm: {}", v.label(cfg.late));
            let r = storm(&cfg, &net, v);
            let n_ok = r.times.len();
            let mean = r.retries.iter().map(|&x| f64::from(x)).sum::<f64>()
                / r.retries.len().max(1) as f64;
            let max_retries = r.retries.iter().max().copied().unwrap_or(0);
            // With a late server, the clock that matters starts when the server does.
            let (ratio, ratio_note) = match (v, r.event) {
                (Variant::Late, Some(up)) => {
                    // Every failed attempt happened while the server was down (none fail
                    // once it listens, or the failures column says so).
                    let retries: u64 = r.retries.iter().map(|&x| u64::from(x)).sum();
                    (
                        (r.makespan - up) / ideal,
                        format!(
                            " (from the server's start at {up:.2} s; last client done {:.3} s after it; {retries} connection attempts while it was down, {:.0} per second)",
                            r.makespan - up,
                            retries as f64 / up.max(1e-3)
                        ),
                    )
                }
                (Variant::Failover | Variant::Crash | Variant::Dead, Some(gone)) => (
                    r.makespan / ideal,
                    format!(
                        " (primary stopped at {gone:.2} s; last client done {:.3} s after)",
                        r.makespan - gone
                    ),
                ),
                _ => (r.makespan / ideal, String::new()),
            };
            let l = &r.log;
            let label = v.label(cfg.late);
            if v == Variant::Up && cfg.up_fallback {
                notes.push(format!(
                    "run {rep}: {label} with a fallback listed and running: the fallback served {} of {} requests",
                    r.fallback_served, l.served
                ));
            }
            match ratios.iter_mut().find(|(k, _)| *k == label) {
                Some((_, rs)) => rs.push(ratio),
                None => ratios.push((label.clone(), vec![ratio])),
            }
            let _ = writeln!(
            table,
            "| {}{} | {:.3} | {:.1}{ratio_note} | {:.3} / {:.3} / {:.3} / {:.3} | {:.3} / {:.3} | {:.0} | {mean:.2} / {max_retries} | {} | {} | {} / {} / {} / {} / {} | {} | {} | {} |",
            if reps > 1 { format!("run {rep}: ") } else { String::new() },
            label,
            r.makespan,
            ratio,
            pct(&r.times, 0.5),
            pct(&r.times, 0.9),
            pct(&r.times, 0.99),
            r.times.last().copied().unwrap_or(0.0),
            pct(&r.real_times, 0.5),
            r.real_times.last().copied().unwrap_or(0.0),
            r.start_spread_ms,
            r.failed.len(),
            l.served,
            l.lockout,
            l.per_ip,
            l.busy,
            l.answer_bytes,
            l.refused_unlogged,
            l.closed,
            r.listen_drops,
            r.peak_threads,
        );
            eprintln!(
            "  server CPU {:.3} s ({:.1} us/request served, {:.0} % of one CPU over the storm), light clients' CPU {:.3} s (the bench's, {:.0} us per light request), real clients' CPU {:.3} s",
            r.server_cpu,
            r.server_cpu * 1e6 / (l.served.max(1) as f64),
            100.0 * r.server_cpu / r.makespan.max(1e-3),
            r.bench_cpu,
            r.bench_cpu * 1e6 / ((clients - real) * cfg.k).max(1) as f64,
            r.reals_cpu
        );
            eprintln!(
            "  last done {:.3} s (ratio {ratio:.2}), ok {n_ok}/{clients}, retries mean {mean:.2} max {max_retries}, refused lockout {} per-ip {} busy {} unlogged {}",
            r.makespan, l.lockout, l.per_ip, l.busy, l.refused_unlogged
        );
            if !r.failed.is_empty() {
                bad = true;
                notes.push(format!(
                    "{}: {} failed, e.g. {}",
                    v.label(cfg.late),
                    r.failed.len(),
                    r.failed[0]
                ));
            }
            if l.lockout > 0 || l.per_ip > 0 || l.wrong_password > 0 {
                bad = true;
                notes.push(format!(
                "{}: honest clients refused by the lockout ({}) or --max-per-ip ({}), or wrong passwords logged ({})",
                v.label(cfg.late),
                l.lockout,
                l.per_ip,
                l.wrong_password
            ));
            }
        }
    }
    md.push_str(&table);
    let _ = writeln!(md);
    if reps > 1 {
        for (label, mut rs) in ratios {
            rs.sort_by(|a, b| a.total_cmp(b));
            let shown: Vec<String> = rs.iter().map(|r| format!("{r:.2}")).collect();
            let _ = writeln!(
                md,
                "- {label}: ratio to ideal, median of {reps} runs **{:.2}** ({})",
                rs[rs.len() / 2],
                shown.join(", ")
            );
        }
    }
    for n in &notes {
        let _ = writeln!(md, "- {n}");
    }
    drop(net);
    print!("{md}");
    if let Some(o) = args.get("out") {
        let _ = fs::write(o, &md);
    }
    eprintln!("storm: {:.0} s in all", started.elapsed().as_secs_f64());
    if bad {
        std::process::exit(1);
    }
}
