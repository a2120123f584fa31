//! The orchestrator (`nsbench all`): every throughput, latency and memory measurement in one run, printed as
//! Markdown tables (stdout) with progress on stderr.
//!
//! Every process it starts is a [`Proc`] whose `Drop` kills it by PID and reaps it; the PIDs
//! alive at any moment are also written to `--pidfile`, so that `bench/run`'s trap can stop them
//! even if this process is killed. Network namespaces are removed by [`Netns`]'s `Drop`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::proc;
use crate::{die, value_for, Args};

const PASSWORD: &str = "bench-password";
const KEY: &str = "bench-aes-key";

static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static PIDFILE: Mutex<Option<PathBuf>> = Mutex::new(None);

fn write_pidfile(live: &[u32]) {
    if let Some(p) = PIDFILE.lock().unwrap().as_ref() {
        let text: String = live.iter().map(|p| format!("{p}\n")).collect();
        let _ = fs::write(p, text);
    }
}

/// A child process, killed by PID and reaped when dropped.
struct Proc {
    child: Child,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| die(&format!("cannot start {cmd:?}: {e}")));
        let mut live = LIVE.lock().unwrap();
        live.push(child.id());
        write_pidfile(&live);
        Proc { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `limit` for the process to exit by itself; kills it after that.
    fn finish(mut self, limit: Duration) -> String {
        let end = Instant::now() + limit;
        while self.alive() && Instant::now() < end {
            thread::sleep(Duration::from_millis(10));
        }
        let mut out = String::new();
        if let Some(o) = self.child.stdout.as_mut() {
            let _ = o.read_to_string(&mut out);
        }
        out
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = self.child.id();
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let mut live = LIVE.lock().unwrap();
        live.retain(|&p| p != pid);
        write_pidfile(&live);
    }
}

struct Ctx {
    netsecrets: PathBuf,
    candidates: Vec<PathBuf>,
    floor: PathBuf,
    me: PathBuf,
    work: PathBuf,
    tmpfs: PathBuf,
    secs: f64,
    warmup: f64,
    reps: usize,
    /// `--modes plain,aes`: which of plaintext (`false`) and AES (`true`) the floor and
    /// server-vs-floor steps measure (default both).
    modes: Vec<bool>,
}

#[derive(Clone, Copy, PartialEq)]
enum Log {
    Null,
    File,
}

#[derive(Clone)]
enum Srv {
    Floor(&'static str),
    Real { log: Log, secrets: usize },
    /// `--candidate A,B`: other netsecrets binaries (e.g. patched builds), log to /dev/null.
    Candidate(usize),
    /// netsecrets with this many named clients (`--clients-file`), each its own password and
    /// (with AES) its own key, one address each; the load generator is one of them. Log to
    /// /dev/null.
    Clients(usize),
}

impl Srv {
    fn label(&self) -> String {
        match self {
            Srv::Floor(v) => format!("floor ({v})"),
            Srv::Real { log: Log::Null, .. } => "netsecrets, log to /dev/null".into(),
            Srv::Real { log: Log::File, .. } => "netsecrets, log to a file".into(),
            Srv::Candidate(i) => format!("candidate {}, log to /dev/null", i + 1),
            Srv::Clients(n) => format!("netsecrets, {n} named clients, log to /dev/null"),
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| die(&format!("no free port: {e}")))
}

fn in_ns(ns: Option<&str>, prog: &Path) -> Command {
    match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(prog);
            c
        }
        None => Command::new(prog),
    }
}

/// Where a server listens (`bind`, `port`, in namespace `ns`) and where the probe that waits
/// for it connects from (`probe_ns`) and to (`probe_ip`).
struct At<'a> {
    bind: &'a str,
    port: u16,
    ns: Option<&'a str>,
    probe_ns: Option<&'a str>,
    probe_ip: &'a str,
}

impl At<'static> {
    /// 127.0.0.1:`port`, in this namespace.
    fn loopback(port: u16) -> At<'static> {
        At { bind: "127.0.0.1", port, ns: None, probe_ns: None, probe_ip: "127.0.0.1" }
    }
}

/// Starts a server and waits until it accepts connections.
/// With `p2` (AES only), the floor answers protocol 2 (netsecrets takes both on one port).
fn start(ctx: &Ctx, srv: &Srv, aes: bool, p2: bool, at: &At) -> Proc {
    let At { bind, port, ns, probe_ns, probe_ip } = *at;
    let mut cmd;
    match srv {
        Srv::Floor(variant) => {
            cmd = in_ns(ns, &ctx.floor);
            cmd.args(["floor", "--bind", bind, "--port", &port.to_string(), "--variant", variant]);
            if aes {
                cmd.args(["--key", KEY]);
            }
            if p2 {
                cmd.args(["--protocol", "2"]);
            }
            cmd.stderr(Stdio::null());
        }
        Srv::Real { .. } | Srv::Candidate(_) | Srv::Clients(_) => {
            let (log, secrets, bin) = match srv {
                Srv::Real { log, secrets } => (log, secrets, &ctx.netsecrets),
                Srv::Candidate(i) => (&Log::Null, &1, &ctx.candidates[*i]),
                Srv::Clients(_) => (&Log::Null, &1, &ctx.netsecrets),
                Srv::Floor(_) => unreachable!(),
            };
            cmd = in_ns(ns, bin);
            cmd.args(["receive", "--server", bind, "--port", &port.to_string()]);
            if let Srv::Clients(n) = srv {
                cmd.arg("--clients-file").arg(clients_file(ctx, *n, aes, probe_ip));
            } else {
                cmd.arg("--password-file").arg(ctx.work.join("password"));
            }
            if aes {
                cmd.arg("--encryption-key-file").arg(ctx.work.join("key"));
            } else {
                cmd.arg("--insecure");
            }
            for i in 0..*secrets {
                let name = format!("s{i}");
                let mut kv = name.clone().into_bytes();
                kv.push(b'=');
                kv.extend_from_slice(&value_for(&name));
                cmd.arg("-S").arg(String::from_utf8(kv).unwrap());
            }
            match log {
                Log::Null => {
                    cmd.stderr(Stdio::null());
                }
                Log::File => {
                    let f = fs::File::create(ctx.work.join("server.log"))
                        .unwrap_or_else(|e| die(&format!("log file: {e}")));
                    cmd.stderr(f);
                }
            }
        }
    }
    cmd.stdout(Stdio::null()).stdin(Stdio::null());
    let mut p = Proc::spawn(&mut cmd);
    // Probe until it accepts (bounded: 5 s).
    let mut probe = in_ns(probe_ns, &ctx.me);
    probe.args(["probe", "--addr", &format!("{probe_ip}:{port}")]);
    let ok = probe
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok || !p.alive() {
        die(&format!("{} did not start listening on {probe_ip}:{port}", srv.label()));
    }
    p
}

/// Writes (once per mode) a clients file naming `n` clients: the load generator's (the bench
/// password and key, from `from`, may read everything) and `n - 1` others, each its own
/// password file, own key file with `aes`, one address of 10.0.0.0/8, and one secret.
fn clients_file(ctx: &Ctx, n: usize, aes: bool, from: &str) -> PathBuf {
    let dir = ctx.work.join(if aes { "clients-aes" } else { "clients-plain" });
    let file = dir.join("clients");
    if file.exists() {
        return file;
    }
    fs::create_dir_all(&dir).unwrap_or_else(|e| die(&format!("{}: {e}", dir.display())));
    let mut text = String::new();
    let key = if aes { format!(" key={}", ctx.work.join("key").display()) } else { String::new() };
    let _ = writeln!(text, "bench password={}{key} from={from} secrets=*", ctx.work.join("password").display());
    for i in 1..n {
        fs::write(dir.join(format!("c{i}.pw")), format!("client {i} password\n")).unwrap();
        let key = if aes {
            fs::write(dir.join(format!("c{i}.key")), format!("client {i} key\n")).unwrap();
            format!(" key=c{i}.key")
        } else {
            String::new()
        };
        let _ = writeln!(text, "c{i} password=c{i}.pw{key} from=10.{}.{}.{} secrets=s0", i >> 16, (i >> 8) & 255, i & 255);
    }
    fs::write(&file, text).unwrap_or_else(|e| die(&format!("{}: {e}", file.display())));
    file
}

#[derive(Default, Clone)]
struct Run {
    rps: f64,
    ok: u64,
    err: u64,
    errs: String,
    p50: f64,
    p99: f64,
    max: f64,
    hwm_kib: u64,
    threads: u64,
    cpu_us_per_req: f64,
    cpu_pct: f64,
}

fn kv(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn result_line(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .find(|l| l.starts_with("RESULT "))
        .map(kv)
        .unwrap_or_else(|| die(&format!("no RESULT line in {out:?}")))
}

fn f(m: &BTreeMap<String, String>, k: &str) -> f64 {
    m.get(k).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

/// Runs one load against a running server and samples the server meanwhile; with `p2` (AES
/// only) the load speaks protocol 2.
#[allow(clippy::too_many_arguments)]
fn drive(ctx: &Ctx, server: &mut Proc, addr: &str, conc: usize, aes: bool, p2: bool, names: usize, ns: Option<&str>) -> Run {
    let pid = server.pid();
    let cpu0 = proc::cpu_secs(pid).unwrap_or(0.0);
    let t0 = Instant::now();
    let mut cmd = in_ns(ns, &ctx.me);
    cmd.args(["load", "--addr", addr, "--conc", &conc.to_string()])
        .args(["--secs", &ctx.secs.to_string(), "--warmup", &ctx.warmup.to_string()])
        .args(["--names", &names.to_string(), "--password", PASSWORD]);
    if aes {
        cmd.args(["--key", KEY]);
    }
    if p2 {
        cmd.args(["--protocol", "2"]);
    }
    let mut load = Proc::spawn(cmd.stdout(Stdio::piped()).stdin(Stdio::null()));
    let mut threads = 0;
    let limit = Instant::now() + Duration::from_secs_f64(ctx.secs + ctx.warmup + 15.0);
    while load.alive() && Instant::now() < limit {
        if let Some(s) = proc::status(pid) {
            threads = threads.max(s.threads);
        }
        thread::sleep(Duration::from_millis(25));
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = proc::cpu_secs(pid).unwrap_or(0.0) - cpu0;
    let st = proc::status(pid).unwrap_or_default();
    if !server.alive() {
        die("the server died during the load");
    }
    let m = result_line(&load.finish(Duration::from_secs(1)));
    let total = f(&m, "total").max(1.0);
    Run {
        rps: f(&m, "rps"),
        ok: f(&m, "ok") as u64,
        err: f(&m, "err") as u64,
        errs: m.get("errs").cloned().unwrap_or_default(),
        p50: f(&m, "p50_us"),
        p99: f(&m, "p99_us"),
        max: f(&m, "max_us"),
        hwm_kib: st.hwm_kib,
        threads,
        cpu_us_per_req: cpu * 1e6 / total,
        cpu_pct: 100.0 * cpu / wall,
    }
}

fn once(ctx: &Ctx, srv: &Srv, aes: bool, p2: bool, conc: usize, names: usize) -> Run {
    let port = free_port();
    let mut s = start(ctx, srv, aes, p2, &At::loopback(port));
    let r = drive(ctx, &mut s, &format!("127.0.0.1:{port}"), conc, aes, p2, names, None);
    eprintln!(
        "  {:<32} {} C={conc:<3} {:>9.0} req/s p50 {:>6.0} us p99 {:>6.0} us err {} rss {} KiB thr {}",
        srv.label(),
        match (aes, p2) {
            (true, true) => "aes p2",
            (true, false) => "aes p1",
            _ => "plain ",
        },
        r.rps, r.p50, r.p99, r.err, r.hwm_kib, r.threads
    );
    r
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return 0.0;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Per-field medians over repetitions; errors summed; RSS and threads the maximum.
fn combine(runs: &[Run]) -> Run {
    let med = |g: fn(&Run) -> f64| median(runs.iter().map(g).collect());
    Run {
        rps: med(|r| r.rps),
        ok: runs.iter().map(|r| r.ok).sum(),
        err: runs.iter().map(|r| r.err).sum(),
        errs: runs.iter().map(|r| r.errs.clone()).filter(|e| e != "-").collect::<Vec<_>>().join(";"),
        p50: med(|r| r.p50),
        p99: med(|r| r.p99),
        max: runs.iter().map(|r| r.max).fold(0.0, f64::max),
        hwm_kib: runs.iter().map(|r| r.hwm_kib).max().unwrap_or(0),
        threads: runs.iter().map(|r| r.threads).max().unwrap_or(0),
        cpu_us_per_req: med(|r| r.cpu_us_per_req),
        cpu_pct: med(|r| r.cpu_pct),
    }
}

fn ms(us: f64) -> String {
    format!("{:.2}", us / 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.2}", kib as f64 / 1024.0)
}

/// `nsbench all`: sets up the work directory, runs each step `--only` asks for (all by default)
/// and prints the Markdown report (also written to `--out`).
pub fn run(args: &Args) {
    let quick = args.has("quick");
    let (ctx, _tmpfs_guard) = setup(args, quick);
    let concs: Vec<usize> = args
        .str("conc", "8,64")
        .split(',')
        .map(|c| c.parse().unwrap_or_else(|_| die("--conc")))
        .collect();
    let client_runs: usize = args.num("client-runs", if quick { 30 } else { 200 });
    let only = args.str("only", "floor,compare,ablation,memory,idle,netns,client");
    let want = |p: &str| only.split(',').any(|o| o == p);

    let mut md = String::new();
    let _ = writeln!(md, "{}", args.str("header", ""));
    let _ = writeln!(
        md,
        "Load: {} s measured after {} s warm-up, median of {} repetition(s) run alternately (floor, netsecrets, netsecrets logging to a file, netsecrets with 1 000 named clients; with AES, each in protocol 1 and then protocol 2); one connection per request, as netsecrets peers do. AES without a protocol named is protocol 1, as in runs before protocol 2.\n",
        ctx.secs, ctx.warmup, ctx.reps
    );
    // 1. Which floor thread model is fastest, per configuration.
    let best = if want("floor") || want("compare") || want("ablation") {
        floor_models(&ctx, &mut md, quick, &concs)
    } else {
        BTreeMap::new()
    };
    // 2. netsecrets against the floor, side by side.
    if want("compare") {
        let protocols: Vec<u8> = args
            .str("protocols", "1,2")
            .split(',')
            .map(|p| match p {
                "1" => 1,
                "2" => 2,
                _ => die("--protocols: 1, 2 or 1,2"),
            })
            .collect();
        compare(&ctx, &mut md, &concs, &best, &protocols);
    }
    // 2b. Attribution: the floor rebuilt with one piece of the product's design at a time.
    if want("ablation") {
        ablation(&ctx, &mut md, &concs, &best);
    }
    // 3. Memory with 1 000 secrets and 64 clients, and under 1 000 idle connections.
    if want("memory") || want("idle") {
        memory(&ctx, &mut md, want("memory"), want("idle"));
    }
    // 4. Slow connections from one address, throughput from another (network namespaces).
    if want("netns") {
        netns(&ctx, &mut md, &args.str("netns-conc", "8"));
    }
    // 5. The client, whole process.
    if want("client") {
        client(&ctx, &mut md, client_runs);
    }

    println!("{md}");
    if let Some(out) = args.get("out") {
        let _ = fs::write(out, &md);
    }
}

/// A fresh work directory (`--dir`/work) with the password and key files, a scratch directory
/// on tmpfs (removed when the returned guard drops), the `--pidfile`, and the run's settings.
fn setup(args: &Args, quick: bool) -> (Ctx, RmDir) {
    let work = PathBuf::from(args.need("dir")).join("work");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).unwrap_or_else(|e| die(&format!("{}: {e}", work.display())));
    let tmpfs = PathBuf::from(format!("/dev/shm/nsbench-{}", std::process::id()));
    fs::create_dir_all(&tmpfs).unwrap_or_else(|e| die(&format!("{}: {e}", tmpfs.display())));
    let guard = RmDir(tmpfs.clone());
    fs::write(work.join("password"), format!("{PASSWORD}\n")).unwrap();
    fs::write(work.join("key"), format!("{KEY}\n")).unwrap();
    if let Some(p) = args.get("pidfile") {
        *PIDFILE.lock().unwrap() = Some(PathBuf::from(p));
    }
    let ctx = Ctx {
        netsecrets: PathBuf::from(args.need("netsecrets")),
        candidates: args.get("candidate").map(|c| c.split(',').map(PathBuf::from).collect()).unwrap_or_default(),
        floor: PathBuf::from(args.need("floor")),
        me: std::env::current_exe().unwrap_or_else(|e| die(&e.to_string())),
        work,
        tmpfs,
        secs: args.num("secs", if quick { 1.0 } else { 3.0 }),
        warmup: args.num("warmup", 0.5),
        reps: args.num("reps", if quick { 1 } else { 3 }),
        modes: args
            .str("modes", "plain,aes")
            .split(',')
            .map(|m| match m {
                "plain" => false,
                "aes" => true,
                _ => die("--modes: plain, aes or plain,aes"),
            })
            .collect(),
    };
    (ctx, guard)
}

/// A Markdown table's start: the `### title` line, a blank line, the header row and its
/// separator row.
fn table_start(md: &mut String, title: &str, header: &str, sep: &str) {
    let _ = writeln!(md, "### {title}\n");
    let _ = writeln!(md, "{header}");
    let _ = writeln!(md, "{sep}");
}

fn mode_label(aes: bool) -> &'static str {
    if aes {
        "AES"
    } else {
        "plain"
    }
}

/// Step 1: every floor thread model at every concurrency, plaintext and AES; returns the
/// fastest error-free model per (AES, concurrency) — the floor the later steps compare with.
fn floor_models(ctx: &Ctx, md: &mut String, quick: bool, concs: &[usize]) -> BTreeMap<(bool, usize), &'static str> {
    let variants: Vec<&'static str> = if quick {
        vec!["single", "pool:2", "pool:2+cork"]
    } else {
        vec!["single", "pool:2", "pool:4", "tpc", "single+cork", "pool:2+cork", "pool:4+cork"]
    };
    eprintln!("== floor thread models");
    let mut header = "| floor variant |".to_string();
    let mut sep = "|---|".to_string();
    for &aes in &ctx.modes {
        for &c in concs {
            let _ = write!(header, " {} C={c} |", mode_label(aes));
            sep.push_str("---:|");
        }
    }
    table_start(md, "Floor thread models (req/s; the fastest per column is the floor)", &header, &sep);
    let mut best = BTreeMap::new();
    let mut table: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for &aes in &ctx.modes {
        for &c in concs {
            let mut top = ("", -1.0);
            for &v in &variants {
                let r = once(ctx, &Srv::Floor(v), aes, false, c, 1);
                table.entry(v).or_default().push(r.rps);
                if r.err == 0 && r.rps > top.1 {
                    top = (v, r.rps);
                }
            }
            best.insert((aes, c), if top.0.is_empty() { "pool:2" } else { top.0 });
        }
    }
    for &v in &variants {
        let cells: Vec<String> = table[v].iter().map(|x| format!("{x:.0}")).collect();
        let _ = writeln!(md, "| {v} | {} |", cells.join(" | "));
    }
    let _ = writeln!(md);
    best
}

/// Step 2: the best floor, netsecrets logging to /dev/null and to a file (and any candidates),
/// side by side at every concurrency, plaintext and AES. With AES, `protocols` (`--protocols`,
/// default 1,2) says which protocols to measure: protocol 1 is the AES of earlier runs (the
/// floor opens with no associated data only; netsecrets tries protocol 2 first, one extra tag
/// check), protocol 2 runs against a floor that answers protocol 2 (same thread model). Both
/// take turns in one alternation, and a second table puts them next to each other. Candidates
/// (`--candidate`, e.g. a binary from before protocol 2) are measured in protocol 1 only.
fn compare(ctx: &Ctx, md: &mut String, concs: &[usize], best: &BTreeMap<(bool, usize), &'static str>, protocols: &[u8]) {
    eprintln!("== netsecrets vs floor");
    table_start(
        md,
        "Server throughput and latency against the floor",
        "| mode | C | server | req/s | ratio to floor | p50 ms | p99 ms | p99 / floor p99 | max ms | errors | peak RSS MiB | threads | server CPU µs/req | server CPU % |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    );
    // (C, server label, protocol-1 run and its floor, protocol-2 run and its floor), for the
    // side-by-side table.
    type Side = (usize, String, Option<(Run, Run)>, Option<(Run, Run)>);
    let mut side: Vec<Side> = Vec::new();
    for &aes in &ctx.modes {
        for &c in concs {
            let base = [
                Srv::Floor(best[&(aes, c)]),
                Srv::Real { log: Log::Null, secrets: 1 },
                Srv::Real { log: Log::File, secrets: 1 },
                Srv::Clients(1000),
            ];
            let mut servers: Vec<(Srv, bool)> = Vec::new();
            let p1 = !aes || protocols.contains(&1);
            let p2 = aes && protocols.contains(&2);
            if p1 {
                servers.extend(base.iter().map(|s| (s.clone(), false)));
                servers.extend((0..ctx.candidates.len()).map(|i| (Srv::Candidate(i), false)));
            }
            if p2 {
                servers.extend(base.iter().map(|s| (s.clone(), true)));
            }
            let rs = alternated(ctx, &servers, aes, c);
            // Each protocol's rows compare with that protocol's floor (the first of its group).
            let floor_of = |p2: bool| {
                servers
                    .iter()
                    .zip(&rs)
                    .find(|((s, q), _)| *q == p2 && matches!(s, Srv::Floor(_)))
                    .map(|(_, r)| r.clone())
            };
            for ((s, q), r) in servers.iter().zip(&rs) {
                let Some(fl) = floor_of(*q) else { continue };
                let _ = writeln!(
                    md,
                    "| {} | {c} | {} | {:.0} | {:.2} | {} | {} | {:.2} | {} | {}{} | {} | {} | {:.1} | {:.0} |",
                    match (aes, q) {
                        (true, true) => "AES, protocol 2",
                        _ => mode_label(aes),
                    },
                    s.label(),
                    r.rps,
                    r.rps / fl.rps.max(1.0),
                    ms(r.p50),
                    ms(r.p99),
                    r.p99 / fl.p99.max(1.0),
                    ms(r.max),
                    r.err,
                    if r.errs.is_empty() { String::new() } else { format!(" ({})", r.errs) },
                    mib(r.hwm_kib),
                    r.threads,
                    r.cpu_us_per_req,
                    r.cpu_pct
                );
                if aes {
                    let label = s.label();
                    let i = match side.iter().position(|e| e.0 == c && e.1 == label) {
                        Some(i) => i,
                        None => {
                            side.push((c, label, None, None));
                            side.len() - 1
                        }
                    };
                    let cell = Some((r.clone(), fl));
                    if *q {
                        side[i].3 = cell;
                    } else {
                        side[i].2 = cell;
                    }
                }
            }
        }
    }
    let _ = writeln!(md);
    if side.is_empty() {
        return;
    }
    table_start(
        md,
        "AES: protocol 1 and protocol 2 side by side (same alternation; each ratio to that protocol's floor, the last one to the protocol-1 floor)",
        "| C | server | P1 req/s | P1 ratio to floor | P2 req/s | P2 ratio to floor | P1 CPU µs/req | P2 CPU µs/req | P2 / P1 CPU | P2 ratio to P1 floor |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    );
    let dash = || "—".to_string();
    for (c, label, one, two) in &side {
        let rps = |x: &Option<(Run, Run)>| x.as_ref().map_or_else(dash, |(r, _)| format!("{:.0}", r.rps));
        let ratio = |x: &Option<(Run, Run)>| x.as_ref().map_or_else(dash, |(r, f)| format!("{:.2}", r.rps / f.rps.max(1.0)));
        let cpu = |x: &Option<(Run, Run)>| x.as_ref().map_or_else(dash, |(r, _)| format!("{:.1}", r.cpu_us_per_req));
        let (cpu_ratio, cross) = match (one, two) {
            (Some((a, fa)), Some((b, _))) => (
                format!("{:.2}", b.cpu_us_per_req / a.cpu_us_per_req.max(1e-9)),
                format!("{:.2}", b.rps / fa.rps.max(1.0)),
            ),
            _ => (dash(), dash()),
        };
        let _ = writeln!(
            md,
            "| {c} | {label} | {} | {} | {} | {} | {} | {} | {cpu_ratio} | {cross} |",
            rps(one),
            ratio(one),
            rps(two),
            ratio(two),
            cpu(one),
            cpu(two)
        );
    }
    let _ = writeln!(md);
}

/// Step 2b: where the gap to the floor goes — floor variants that add one piece of netsecrets'
/// design at a time (plaintext), then netsecrets itself.
fn ablation(ctx: &Ctx, md: &mut String, concs: &[usize], best: &BTreeMap<(bool, usize), &'static str>) {
    eprintln!("== attribution (plaintext)");
    table_start(
        md,
        "Where the gap to the floor goes (plaintext; floor variants that add one piece of netsecrets' design at a time)",
        "| C | server | req/s | ratio to floor | p99 ms | server CPU µs/req | threads |",
        "|---:|---|---:|---:|---:|---:|---:|",
    );
    for &c in concs {
        let floor_v = best.get(&(false, c)).copied().unwrap_or("pool:2");
        let mut servers = vec![
            Srv::Floor(floor_v),
            Srv::Floor("handoff+cork"),
            Srv::Floor("handoff+cork+timeouts"),
            Srv::Floor("handoff+cork+timeouts+log"),
            Srv::Real { log: Log::Null, secrets: 1 },
        ];
        servers.extend((0..ctx.candidates.len()).map(Srv::Candidate));
        let paired: Vec<(Srv, bool)> = servers.iter().map(|s| (s.clone(), false)).collect();
        let rs = alternated(ctx, &paired, false, c);
        for (s, r) in servers.iter().zip(&rs) {
            let _ = writeln!(
                md,
                "| {c} | {} | {:.0} | {:.2} | {} | {:.1} | {} |",
                s.label(), r.rps, r.rps / rs[0].rps.max(1.0), ms(r.p99), r.cpu_us_per_req, r.threads
            );
        }
    }
    let _ = writeln!(md, "\n(log lines of the `+log` variant go to /dev/null, like the netsecrets row.)\n");
}

/// Step 3: server memory — 1 000 secrets fetched by 64 clients (`loaded`), and 1 000 idle
/// connections (`idle_conns`), in one table.
fn memory(ctx: &Ctx, md: &mut String, loaded: bool, idle_conns: bool) {
    if loaded {
        eprintln!("== memory: 1000 secrets, 64 clients");
        table_start(
            md,
            "Server memory",
            "| load | req/s | errors | peak RSS (VmHWM) MiB | peak threads |",
            "|---|---:|---:|---:|---:|",
        );
        for aes in [false, true] {
            let r = once(ctx, &Srv::Real { log: Log::Null, secrets: 1000 }, aes, false, 64, 1000);
            let _ = writeln!(
                md,
                "| 1 000 secrets loaded, 64 clients fetching all of them in turn, {} | {:.0} | {} | {} | {} |",
                mode_label(aes),
                r.rps, r.err, mib(r.hwm_kib), r.threads
            );
        }
    } else {
        table_start(md, "Server memory", "| load | | | peak RSS (VmHWM) MiB | peak threads |", "|---|---:|---:|---:|---:|");
    }
    if idle_conns {
        idle(ctx, md);
    }
    let _ = writeln!(md);
}

struct RmDir(PathBuf);
impl Drop for RmDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// 1 000 idle (slowloris) connections: from one address, and spread over 16 loopback addresses so
/// that the global --max-connections (256), not --max-per-ip, is what binds.
fn idle(ctx: &Ctx, md: &mut String) {
    eprintln!("== memory: 1000 idle connections");
    let hold_secs = 7.0; // longer than the server's 5 s deadline: refusals, timeouts and reconnects
    for (label, src) in [
        ("1 000 idle connections from one address (127.0.0.1)", None),
        (
            "1 000 idle connections from 16 addresses (127.0.0.2-17), --max-connections reached",
            Some((2..18).map(|i| format!("127.0.0.{i}")).collect::<Vec<_>>().join(",")),
        ),
    ] {
        let port = free_port();
        let mut s = start(ctx, &Srv::Real { log: Log::Null, secrets: 1000 }, false, false, &At::loopback(port));
        let pid = s.pid();
        let mut cmd = Command::new(&ctx.me);
        cmd.args(["hold", "--addr", &format!("127.0.0.1:{port}"), "--conns", "1000", "--secs", &hold_secs.to_string()]);
        if let Some(src) = &src {
            cmd.args(["--src", src]);
        }
        let mut h = Proc::spawn(cmd.stdout(Stdio::piped()).stdin(Stdio::null()));
        let (mut threads, mut rss) = (0, 0);
        let limit = Instant::now() + Duration::from_secs_f64(hold_secs + 10.0);
        while h.alive() && Instant::now() < limit {
            if let Some(st) = proc::status(pid) {
                threads = threads.max(st.threads);
                rss = rss.max(st.rss_kib);
            }
            thread::sleep(Duration::from_millis(25));
        }
        let st = proc::status(pid).unwrap_or_default();
        if !s.alive() {
            die("the server died under idle connections");
        }
        let m = result_line(&h.finish(Duration::from_secs(1)));
        eprintln!("  {label}: hwm {} KiB, threads {threads}, hold {m:?}", st.hwm_kib);
        let _ = writeln!(
            md,
            "| {label}, {hold_secs} s (held open on average: {}; closed by the server: {}) | | | {} | {} |",
            m.get("open_avg").map(String::as_str).unwrap_or("?"),
            m.get("closed_by_server").map(String::as_str).unwrap_or("?"),
            mib(st.hwm_kib.max(rss)),
            threads
        );
    }
}

/// Network namespaces: the server in one, the slow address in a second, the measured address in
/// a third, each client namespace joined to the server's by a veth pair.
struct Netns {
    names: Vec<String>,
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).stderr(Stdio::null()).status();
        }
    }
}

fn sh(args: &[&str]) -> bool {
    Command::new("ip").args(args).status().map(|s| s.success()).unwrap_or(false)
}

fn netns(ctx: &Ctx, md: &mut String, concs: &str) {
    eprintln!("== slow connections from another address (network namespaces)");
    let _ = writeln!(md, "### 1 000 slow connections from one address, throughput of another\n");
    let id = std::process::id();
    let (s, a, b) = (format!("nsbench-{id}-s"), format!("nsbench-{id}-a"), format!("nsbench-{id}-b"));
    let guard = Netns { names: vec![s.clone(), a.clone(), b.clone()] };
    let mut ok = true;
    for n in &guard.names {
        ok &= sh(&["netns", "add", n]);
        ok &= sh(&["-n", n, "link", "set", "lo", "up"]);
    }
    for (peer, net) in [(&a, "1"), (&b, "2")] {
        let (vs, vp) = (format!("nsb{id}s{net}"), format!("nsb{id}p{net}"));
        ok &= sh(&["link", "add", &vs, "type", "veth", "peer", "name", &vp]);
        ok &= sh(&["link", "set", &vs, "netns", &s]);
        ok &= sh(&["link", "set", &vp, "netns", peer]);
        ok &= sh(&["-n", &s, "addr", "add", &format!("10.214.{net}.1/24"), "dev", &vs]);
        ok &= sh(&["-n", peer, "addr", "add", &format!("10.214.{net}.2/24"), "dev", &vp]);
        ok &= sh(&["-n", &s, "link", "set", &vs, "up"]);
        ok &= sh(&["-n", peer, "link", "set", &vp, "up"]);
    }
    if !ok {
        let _ = writeln!(md, "Skipped: network namespaces could not be set up (needs root and `ip`).\n");
        return;
    }
    let port = 18080;
    let _ = writeln!(md, "Server in its own namespace (10.214.1.1 and 10.214.2.1, default limits, log to /dev/null, plaintext); address A = 10.214.1.2 holds 1 000 slow connections (2 header bytes, then silence; reconnect 1 s after the server closes one); address B = 10.214.2.2 runs the load. Median of {} alternating repetitions.\n", ctx.reps);
    let _ = writeln!(md, "| C from B | req/s from B alone | req/s from B with A's 1 000 slow connections | ratio | p99 ms alone | p99 ms with | errors (alone / with) | A's connections held open (avg) |");
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|");
    for c in concs.split(',').map(|c| c.parse::<usize>().unwrap_or_else(|_| die("--netns-conc"))) {
        let (mut alone, mut with, mut held) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ctx.reps {
            for slow in [false, true] {
                let at = At { bind: "0.0.0.0", port, ns: Some(&s), probe_ns: Some(&b), probe_ip: "10.214.2.1" };
                let mut srv = start(ctx, &Srv::Real { log: Log::Null, secrets: 1 }, false, false, &at);
                let hold = slow.then(|| {
                    let mut cmd = in_ns(Some(&a), &ctx.me);
                    cmd.args(["hold", "--addr", &format!("10.214.1.1:{port}"), "--conns", "1000"])
                        .args(["--secs", &(ctx.secs + ctx.warmup + 2.0).to_string()]);
                    Proc::spawn(cmd.stdout(Stdio::piped()).stdin(Stdio::null()))
                });
                if slow {
                    thread::sleep(Duration::from_secs(1));
                }
                let r = drive(ctx, &mut srv, &format!("10.214.2.1:{port}"), c, false, false, 1, Some(&b));
                eprintln!("  B C={c} {} {:.0} req/s p99 {:.0} us err {}", if slow { "with 1000 slow from A" } else { "alone" }, r.rps, r.p99, r.err);
                if let Some(h) = hold {
                    let m = result_line(&h.finish(Duration::from_secs(5)));
                    held.push(f(&m, "open_avg"));
                    with.push(r);
                } else {
                    alone.push(r);
                }
                drop(srv);
            }
        }
        let (x, y) = (combine(&alone), combine(&with));
        let _ = writeln!(
            md,
            "| {c} | {:.0} | {:.0} | {:.2} | {} | {} | {} / {} | {:.0} |",
            x.rps, y.rps, y.rps / x.rps.max(1.0), ms(x.p99), ms(y.p99), x.err, y.err, median(held)
        );
    }
    let _ = writeln!(md);
    drop(guard);
}

/// Each server measured `ctx.reps` times, the servers taking turns (so a noisy moment on the
/// machine hits them alike), then each server's runs combined.
/// Each server is paired with its protocol (`true`: protocol 2, AES only).
fn alternated(ctx: &Ctx, servers: &[(Srv, bool)], aes: bool, c: usize) -> Vec<Run> {
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); servers.len()];
    for _ in 0..ctx.reps {
        for (i, (s, p2)) in servers.iter().enumerate() {
            runs[i].push(once(ctx, s, aes, *p2, c, 1));
        }
    }
    runs.iter().map(|r| combine(r)).collect()
}

/// `netsecrets send`, whole process (fork, exec, connect, fetch, atomic write with fsync, exit).
fn client(ctx: &Ctx, md: &mut String, n: usize) {
    eprintln!("== client, whole process, {n} runs each");
    let port = free_port();
    let mut srv_plain = start(ctx, &Srv::Real { log: Log::Null, secrets: 10 }, false, false, &At::loopback(port));
    let port_aes = free_port();
    let mut srv_aes = start(ctx, &Srv::Real { log: Log::Null, secrets: 10 }, true, false, &At::loopback(port_aes));
    let disk = ctx.work.join("out-disk");
    fs::create_dir_all(&disk).unwrap();
    let names10 = (0..10).map(|i| format!("s{i}")).collect::<Vec<_>>().join(",");
    let cases: Vec<(String, Vec<String>, Option<PathBuf>)> = {
        let send = |p: u16, aes: bool, names: &str, dir: &Path| -> (Vec<String>, Option<PathBuf>) {
            let out = dir.join("secret");
            let mut a: Vec<String> = vec!["send".into(), "--server".into(), "127.0.0.1".into(), "--port".into(), p.to_string()];
            a.push("--password-file".into());
            a.push(ctx.work.join("password").display().to_string());
            a.push("--request-secrets".into());
            a.push(names.into());
            a.push("--file-output".into());
            a.push(out.display().to_string());
            if aes {
                a.push("--encryption-key-file".into());
                a.push(ctx.work.join("key").display().to_string());
            } else {
                a.push("--insecure".into());
            }
            (a, Some(out))
        };
        let mut v = vec![("`netsecrets --version` (process start and exit only)".to_string(), vec!["--version".to_string()], None)];
        let (a, o) = send(port, false, "s0", &ctx.tmpfs);
        v.push(("1 secret, plaintext, to a file on tmpfs".into(), a, o));
        let (a, o) = send(port_aes, true, "s0", &ctx.tmpfs);
        v.push(("1 secret, AES, to a file on tmpfs".into(), a, o));
        let (a, o) = send(port_aes, true, &names10, &ctx.tmpfs);
        v.push(("10 secrets, AES, to a file on tmpfs".into(), a, o));
        let (a, o) = send(port_aes, true, "s0", &disk);
        v.push(("1 secret, AES, to a file on ext4 (fsync reaches the disk)".into(), a, o));
        v
    };
    table_start(
        md,
        &format!("Client: `netsecrets send`, whole process, {n} runs each"),
        "| case | median ms | p90 ms | min ms | failures |",
        "|---|---:|---:|---:|---:|",
    );
    for (label, argv, out) in cases {
        let mut times = Vec::with_capacity(n);
        let mut fails = 0;
        for i in 0..n {
            let t0 = Instant::now();
            let st = Command::new(&ctx.netsecrets)
                .args(&argv)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let dt = t0.elapsed().as_secs_f64() * 1000.0;
            if !matches!(st, Ok(s) if s.success()) {
                fails += 1;
            }
            if i == 0 {
                if let Some(o) = &out {
                    let want = if argv.iter().any(|a| a.contains("s9")) {
                        (0..10).map(|k| value_for(&format!("s{k}"))).collect::<Vec<_>>().join(&b'\n')
                    } else {
                        value_for("s0")
                    };
                    if fs::read(o).ok().as_deref() != Some(&want[..]) {
                        fails += 1;
                    }
                }
            }
            times.push(dt);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let p90 = times[((0.9 * n as f64).ceil() as usize).clamp(1, n) - 1];
        eprintln!("  {label}: median {:.3} ms", median(times.clone()));
        let _ = writeln!(md, "| {label} | {:.3} | {:.3} | {:.3} | {fails} |", median(times.clone()), p90, times[0]);
    }
    let _ = writeln!(md);
    let _ = (srv_plain.alive(), srv_aes.alive());
}
