"""What both boot tests (run: stage 1, stage2.py: switch-root) share to run at all.

Owns: the settings read from the environment that both use, the three ways a run can go wrong
(Unavailable, TestError, Deadline), log lines, running commands and starting/stopping the
processes a test spawns (by pid, on every exit path), writing files, a scenario's Result, the
cache lock, and `drive`: the one loop that prepares a run, runs the chosen scenarios, prints
PASS/FAIL with notes, and ends with the `N passed, N failed` line (or a SKIP when the machine
cannot run qemu or has no nixpkgs).
"""

import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import nixeval

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BIN = Path(os.environ.get("NETSECRETS_BIN") or (REPO / "target/x86_64-unknown-linux-musl/release/netsecrets"))
CI = os.environ.get("CI", "").lower() == "true"
BOOT_TIMEOUT = float(os.environ.get("NETSECRETS_BOOT_TIMEOUT", "300"))  # per boot
QEMU = os.environ.get("NETSECRETS_BOOT_QEMU", "qemu-system-x86_64")  # for testing the SKIP path too

CHILDREN = []  # every process we start, killed by pid on every exit path


class Unavailable(Exception):
    """The machine cannot run the boot test at all (no qemu, no packages, qemu dies)."""


class TestError(Exception):
    """Something the test itself needs failed (build, binary missing)."""


class Deadline(Exception):
    """The whole run took longer than its deadline."""


def log(msg):
    print(f"boot-test: {msg}", flush=True)


def loud(msg):
    bar = "!" * 78
    print(f"{bar}\n!!! {msg}\n{bar}", flush=True)


def run(args, timeout=600, check=True, **kw):
    """Run a command to completion under a timeout; raise with its output on failure."""
    try:
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        raise TestError(f"timed out after {timeout}s: {' '.join(map(str, args))}") from e
    out = p.stdout.decode(errors="replace")
    if check and p.returncode != 0:
        raise TestError(f"failed (rc {p.returncode}): {' '.join(map(str, args))}\n{out[-3000:]}")
    return p.returncode, out


def spawn(args, **kw):
    p = subprocess.Popen(args, start_new_session=True, **kw)
    CHILDREN.append(p)
    return p


def stop(p, grace=3.0):
    """End a process we started (and its process group: qemu's socat helpers), by id."""
    if p.returncode is None:
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(p.pid, sig)  # group id == pid: start_new_session=True
            except ProcessLookupError:
                pass
            try:
                p.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
    if p in CHILDREN:
        CHILDREN.remove(p)


def stop_all():
    for p in list(CHILDREN):
        stop(p, grace=1.0)


def write(path, data, mode=0o644):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    os.chmod(path, mode)


class Result:
    """One scenario: its name, the checks that failed, notes for the PASS/FAIL line."""

    def __init__(self, name):
        self.name = name
        self.failures = []
        self.notes = []

    def check(self, ok, what):
        if not ok:
            self.failures.append(what)
        return ok


def selected(scenarios, env):
    """The scenarios named (by number or short name) in the comma-separated variable env."""
    only = os.environ.get(env, "").replace(",", " ").split()
    return [s for s in scenarios if not only or s[0] in only or s[1] in only]


def lock_cache(cache, deadline):
    """One boot test at a time per cache directory (two runs would rebuild each other's files)."""
    f = open(cache / ".lock", "w")
    t0 = time.monotonic()
    said = False
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            if not said:
                log(f"another boot test uses {cache}; waiting for it (set NETSECRETS_BOOT_CACHE to run in parallel)")
                said = True
            if time.monotonic() - t0 > deadline:
                raise Deadline(f"{cache} stayed locked by another boot test")
            time.sleep(2)


def print_result(r, logdir):
    print(f"{'PASS' if not r.failures else 'FAIL'} {r.name}", flush=True)
    for n in r.notes:
        print(f"    {n}", flush=True)
    for f in r.failures:
        print(f"    FAILED: {f}", flush=True)
    journal = getattr(r, "journal", None)
    if journal:
        print("    --- the guest's journal lines for the failed checks ---", flush=True)
        for line in journal[-80:]:
            print(f"    | {line.strip()}", flush=True)
    elif r.failures:
        serial = logdir / f"{r.name}.serial.log"
        if serial.exists():
            lines = serial.read_bytes().decode(errors="replace").replace("\r", "").splitlines()
            print("    --- last serial lines ---", flush=True)
            for line in lines[-25:]:
                print(f"    | {line}", flush=True)


def drive(title, scen, cache, deadline, prepare, run_one, summary):
    """Run scenarios `scen` ((number, short name, ...) tuples) under the whole-run deadline.

    prepare(ctx) builds what every scenario needs (ctx has the cache lock, "logdir" and a private
    "work" directory by then); run_one(ctx, s) returns a Result; summary(ctx, results, t_start)
    logs the timings. Every guest and server a scenario leaves in ctx["guests"]/ctx["servers"]
    is stopped after it, every process on every exit path. Returns the exit code."""

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)

    def on_alarm(signum, frame):
        raise Deadline(f"whole run exceeded {deadline:.0f}s")

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(deadline))
    results = []
    t_start = time.monotonic()
    ctx = {"guests": [], "servers": [], "first_boot": True, "boot_times": [], "initrds": {}}
    try:
        cache.mkdir(parents=True, exist_ok=True)
        ctx["lock"] = lock_cache(cache, deadline)
        ctx["logdir"] = cache / "logs"
        shutil.rmtree(ctx["logdir"], ignore_errors=True)
        ctx["logdir"].mkdir()
        ctx["work"] = Path(tempfile.mkdtemp(prefix="run-", dir=cache))
        os.chmod(ctx["work"], 0o700)
        prepare(ctx)
        for s in scen:
            log(f"scenario {s[0]} ({s[1]}) ...")
            try:
                r = run_one(ctx, s)
            except TestError as e:
                r = Result(f"{s[0]}-{s[1]}")
                r.check(False, str(e))
            finally:
                for p in ctx["guests"] + ctx["servers"]:
                    p.close()
                ctx["guests"].clear()
                ctx["servers"].clear()
            results.append(r)
            print_result(r, ctx["logdir"])
    except (Unavailable, nixeval.NoNixpkgs) as e:
        stop_all()
        what = "qemu/packages" if isinstance(e, Unavailable) else "nixpkgs"
        loud(f"{title.upper()} CANNOT RUN ON THIS MACHINE: {e}")
        if CI:
            print(f"0 passed, {len(scen)} failed", flush=True)
            return 1
        print(f"SKIP: {title} skipped ({what} unavailable; CI=true makes this a failure)", flush=True)
        print("0 passed, 0 failed", flush=True)
        return 0
    except (TestError, Deadline, OSError, subprocess.TimeoutExpired, ValueError) as e:
        stop_all()
        loud(f"{title.upper()} ERROR: {e}")
        passed = sum(1 for r in results if not r.failures)
        print(f"{passed} passed, {len(scen) - passed} failed", flush=True)
        return 1
    finally:
        signal.alarm(0)
        stop_all()
        if "work" in ctx:
            shutil.rmtree(ctx["work"], ignore_errors=True)
    summary(ctx, results, t_start)
    passed = sum(1 for r in results if not r.failures)
    print(f"{passed} passed, {len(results) - passed} failed", flush=True)
    return 0 if passed == len(results) else 1
