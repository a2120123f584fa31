"""Faults, and nothing lost: servers dying or late, output directories read-only or full, the
client killed while writing, and the output file's permissions at every instant."""
import ctypes
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time

from nslib import BIN, KEY, PASSWORD, Procs, Server, check, free_port, send_bin

VALUES = {f"s{i}": f"value-{i}-{'x' * (i % 7)}".encode() for i in range(300)}


def served(log):
    """Answers served in a server's log: one line each, plus the counts of the summary lines
    for those past the log budget."""
    return log.count("outcome=served") + sum(
        int(n) for n in re.findall(r"(\d+) more 'served' lines not logged", log))


def test_primary_killed_mid_run_fallback_completes():
    """300 secrets, one connection each, from primary 127.0.0.11 with fallback 127.0.0.12 (same
    port). After the primary has served 20, it is SIGKILLed (client paused around the kill so
    the kill lands mid-run); the client completes every secret from the fallback."""
    with Procs() as procs:
        prim = Server(procs, ["--timeout", "3"], host="127.0.0.11", secrets=VALUES)
        fb = Server(procs, ["--timeout", "3"], host="127.0.0.12", port=prim.port, secrets=VALUES)
        names = ",".join(VALUES)
        cli = procs.add(subprocess.Popen(
            [BIN, "send", "--server", "127.0.0.11", "--fallbacks", "127.0.0.12", "--port", str(prim.port),
             "--password", PASSWORD, "--encryption-key", KEY, "--request_secrets", names, "--timeout", "20"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        end = time.time() + 10
        while prim.log().count("outcome=served") < 20 and time.time() < end and cli.poll() is None:
            time.sleep(0.001)
        os.kill(cli.pid, signal.SIGSTOP)
        served_by_primary = prim.log().count("outcome=served")
        prim.stop()
        os.kill(cli.pid, signal.SIGCONT)
        out, err = cli.communicate(timeout=30)
        check(cli.returncode == 0, f"client failed after primary died: {err!r}")
        expect = b"".join(v + b"\n" for v in VALUES.values())
        check(out == expect, "client output differs from the 300 values")
        # Served lines past the server's per-second log budget are counted in a summary line
        # that the server writes about a second later: wait for it.
        end = time.time() + 5
        while (by_fb := served(fb.log())) < 300 - served_by_primary - 1 and time.time() < end:
            time.sleep(0.1)
        check(served_by_primary < 300 and by_fb >= 300 - served_by_primary - 1,
              f"primary {served_by_primary}, fallback {by_fb}")
        return f"primary served {served_by_primary} then died; fallback served {by_fb}; all 300 delivered"


def test_server_started_late_client_retries():
    with Procs() as procs:
        port = free_port()
        t0 = time.time()
        cli = procs.add(subprocess.Popen(
            [BIN, "send", "--server", "127.0.0.1", "--port", str(port), "--password", PASSWORD,
             "--encryption-key", KEY, "--request_secrets", "db-password", "--timeout", "20"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        time.sleep(2.5)
        check(cli.poll() is None, "client gave up before the server started")
        Server(procs, ["--timeout", "3"], port=port)
        out, err = cli.communicate(timeout=30)
        check(cli.returncode == 0 and out == b"s3cr3t-db-VALUE-5a1e\n", f"late server: {err!r}")
        return f"served {time.time() - t0:.1f}s after the client started (server up at 2.5s)"


class Tmpfs:
    def __init__(self, size):
        self.path = tempfile.mkdtemp(prefix="netsecrets-hostile-tmpfs-")
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", self.path], check=True)

    def close(self):
        subprocess.run(["umount", "-l", self.path], capture_output=True)
        os.rmdir(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def failed_overwrite(srv, out, name, why, error_pattern, between=lambda: None):
    """Writes secret `api` to `out`, runs `between()`, then fetches `name` into `out`, which must
    fail (exit 1) with an error naming `out` and matching `error_pattern`, leave the old file as
    it was and nothing beside it. Returns the error's last line."""
    r = send_bin(srv.port, "api", extra=["--file-output", out])
    check(r.returncode == 0, f"first write: {r.stderr!r}")
    between()
    r = send_bin(srv.port, name, extra=["--file-output", out])
    check(r.returncode == 1, f"{why}: exit {r.returncode}")
    msg = r.stderr.decode()
    check(re.search(error_pattern, msg) and out in msg, f"unclear error: {msg!r}")
    check(open(out, "rb").read() == b"api-VALUE-b77d", "old file changed")
    left = os.listdir(os.path.dirname(out))
    check(left == [os.path.basename(out)], f"{why}: temporary file left behind: {left}")
    return msg.strip().splitlines()[-1][:160]


def test_output_dir_read_only():
    with Tmpfs("1m") as fs, Procs() as procs:
        srv = Server(procs, ["--timeout", "3"])
        return failed_overwrite(
            srv, os.path.join(fs.path, "db-password"), "db-password", "read-only dir", "read-only",
            between=lambda: subprocess.run(["mount", "-o", "remount,ro", fs.path], check=True))


def test_output_dir_full():
    big = tempfile.NamedTemporaryFile(prefix="netsecrets-hostile-big-", delete=False)
    try:
        big.write(os.urandom(256 * 1024).hex().encode()[:256 * 1024])
        big.close()
        with Tmpfs("64k") as fs, Procs() as procs:
            srv = Server(procs, ["--timeout", "3", "--secret-file", f"big={big.name}"])
            return failed_overwrite(srv, os.path.join(fs.path, "out"), "big", "full dir", "(?i)no space left")
    finally:
        os.unlink(big.name)


def test_client_killed_during_write():
    """Up to 60 clients (at least 10 killed; bounded to ~45 s) writing a 4 MiB secret over an old value, each SIGKILLed at a random moment,
    while a watcher reads the output path continuously: it only ever sees the whole old value or
    the whole new value, always mode 0400. Temporary files a kill leaves behind are 0400 too."""
    procs = Procs()
    d = tempfile.mkdtemp(prefix="netsecrets-hostile-kill-", dir="/var/tmp")
    big = d + ".big"
    try:
        new = (b"N" * 1023 + b"\n") * 4096
        with open(big, "wb") as f:
            f.write(new)
        srv = Server(procs, ["--timeout", "10", "--secret-file", f"big={big}"])
        out = os.path.join(d, "secret")
        r = send_bin(srv.port, "api", extra=["--file-output", out])
        check(r.returncode == 0, "first write failed")
        old = open(out, "rb").read()
        bad, seen = [], {"old": 0, "new": 0}
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                try:
                    fd = os.open(out, os.O_RDONLY)
                except FileNotFoundError:
                    bad.append("output path missing")
                    continue
                try:
                    mode = os.fstat(fd).st_mode & 0o7777
                    data = b""
                    while True:
                        chunk = os.read(fd, 1 << 20)
                        if not chunk:
                            break
                        data += chunk
                finally:
                    os.close(fd)
                if mode != 0o400:
                    bad.append(f"mode {oct(mode)}")
                if data == old:
                    seen["old"] += 1
                elif data == new:
                    seen["new"] += 1
                else:
                    bad.append(f"partial content ({len(data)} bytes)")

        t = threading.Thread(target=watch)
        t.start()
        rnd = random.Random(7)
        t0 = time.time()
        r = send_bin(srv.port, "big", extra=["--file-output", out])
        full = time.time() - t0
        check(r.returncode == 0, "uninterrupted big write failed")
        # restore the old value, then kill clients at random points of their run
        r = send_bin(srv.port, "api", extra=["--file-output", out])
        kills = runs = 0
        t_end = time.time() + 45  # bounded on a slow machine too
        for i in range(60):
            if time.time() > t_end and kills >= 10:
                break
            runs += 1
            p = subprocess.Popen([BIN, "send", "--server", "127.0.0.1", "--port", str(srv.port),
                                  "--password", PASSWORD, "--encryption-key", KEY,
                                  "--request_secrets", "big", "--file-output", out, "--timeout", "10"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rnd.uniform(0, full * 1.1))
            if p.poll() is None:
                p.kill()
                kills += 1
            p.wait()
            if i % 10 == 9:  # back to the old value now and then
                send_bin(srv.port, "api", extra=["--file-output", out])
        stop.set()
        t.join()
        check(not bad, f"watcher saw: {sorted(set(bad))[:5]}")
        leftovers = [n for n in os.listdir(d) if n != "secret"]
        for n in leftovers:
            m = os.lstat(os.path.join(d, n)).st_mode & 0o7777
            check(m & ~0o400 == 0, f"leftover {n} has mode {oct(m)}")
        # Leftovers older than 10 minutes are removed by the next successful fetch, whether its
        # value changed or not (younger ones may belong to a live writer and are kept).
        for n in leftovers:
            os.utime(os.path.join(d, n), (time.time() - 3600, time.time() - 3600))
        r = send_bin(srv.port, "api", extra=["--file-output", out])
        check(r.returncode == 0, "write after the kills failed")
        remain = [n for n in os.listdir(d) if n != "secret"]
        check(not remain, f"stale temporary files not cleaned: {remain}")
        return (f"{kills} of {runs} clients killed mid-run; {seen['old']} reads saw old, {seen['new']} new, "
                f"0 partial/wrong-mode; {len(leftovers)} owner-only .tmp files left by kills, "
                f"removed by the next fetch once stale")
    finally:
        procs.stop_all()
        shutil.rmtree(d, ignore_errors=True)
        if os.path.exists(big):
            os.unlink(big)


# ---------------------------------------------------------------- permissions at every instant

IN_CREATE, IN_ATTRIB, IN_MOVED_TO, IN_MODIFY = 0x100, 0x4, 0x80, 0x2


def test_never_wider_permissions_inotify():
    """An inotify watcher stats every file the moment it is created, changed or renamed into the
    directory, during 150 writes with --mode 0440 and 150 with the default 0400 (umask 000):
    no file in the directory ever has a permission bit outside the requested mode."""
    libc = ctypes.CDLL(None, use_errno=True)
    procs = Procs()
    d = tempfile.mkdtemp(prefix="netsecrets-hostile-perm-")
    fd = libc.inotify_init1(os.O_NONBLOCK)
    check(fd >= 0, "inotify_init1 failed")
    old_umask = os.umask(0)
    try:
        srv = Server(procs, ["--timeout", "3"])
        check(libc.inotify_add_watch(fd, d.encode(), IN_CREATE | IN_ATTRIB | IN_MOVED_TO | IN_MODIFY) >= 0,
              "inotify_add_watch failed")
        seen, bad = 0, []
        stop = threading.Event()
        current = {"mode": 0o400}

        def watch():
            nonlocal seen
            while not stop.is_set() or True:
                try:
                    buf = os.read(fd, 65536)
                except BlockingIOError:
                    if stop.is_set():
                        return
                    time.sleep(0.0002)
                    continue
                i = 0
                while i < len(buf):
                    _, mask, _, ln = struct.unpack_from("iIII", buf, i)
                    name = buf[i + 16:i + 16 + ln].rstrip(b"\0").decode()
                    i += 16 + ln
                    try:
                        m = os.lstat(os.path.join(d, name)).st_mode & 0o7777
                    except FileNotFoundError:
                        continue
                    seen += 1
                    if m & ~current["mode"]:
                        bad.append(f"{name}: {oct(m)} (requested {oct(current['mode'])})")

        t = threading.Thread(target=watch)
        t.start()
        out = os.path.join(d, "secret")
        for mode in (0o440, 0o400):
            current["mode"] = mode
            for i in range(150):
                # Alternate two values: an unchanged value is not written again (no restart for nothing).
                name = ("db-password", "api")[i % 2]
                r = send_bin(srv.port, name, extra=["--file-output", out, "--mode", f"0{mode:o}"])
                check(r.returncode == 0, f"write failed: {r.stderr!r}")
            time.sleep(0.2)
        stop.set()
        t.join()
        check(seen >= 300, f"watcher saw only {seen} events")
        check(not bad, f"wider permissions seen: {bad[:5]}")
        return f"{seen} inotify events stat'ed during 300 writes, none wider than requested"
    finally:
        os.umask(old_umask)
        os.close(fd)
        procs.stop_all()
        shutil.rmtree(d, ignore_errors=True)


def test_never_wider_permissions_strace():
    """strace of one write with --mode 0440: the temporary file is created with O_CREAT|O_EXCL and
    an owner-only mode (0400), then fchmod'ed to 0440, before the first byte is written; then it
    is fsynced and renamed over the target."""
    if not shutil.which("strace"):
        return "SKIPPED: no strace"
    procs = Procs()
    d = tempfile.mkdtemp(prefix="netsecrets-hostile-strace-")
    try:
        srv = Server(procs, ["--timeout", "3"])
        out = os.path.join(d, "secret")
        trace = os.path.join(d, "trace")
        r = subprocess.run(["strace", "-f", "-o", trace, "-e", "trace=open,openat,fchmod,fchown,write,fsync,rename,renameat,renameat2",
                            BIN, "send", "--server", "127.0.0.1", "--port", str(srv.port), "--password", PASSWORD,
                            "--encryption-key", KEY, "--request_secrets", "db-password",
                            "--file-output", out, "--mode", "0440"], capture_output=True, timeout=30)
        check(r.returncode == 0, f"traced client failed: {r.stderr!r}")
        lines = open(trace).read().splitlines()
        os.unlink(trace)
        create = [l for l in lines if ".secret.tmp-" in l and "O_CREAT" in l]
        check(len(create) == 1, f"no single O_CREAT of the temporary file: {create}")
        c = create[0]
        check("O_EXCL" in c and re.search(r", 0400\)", c), f"created without O_EXCL/0400: {c}")
        tfd = re.search(r"= (\d+)$", c).group(1)
        i = lines.index(c)
        rest = lines[i + 1:]
        chmod = next(k for k, l in enumerate(rest) if re.search(rf"fchmod\({tfd}, 0440\)", l))
        writes = [k for k, l in enumerate(rest) if re.search(rf"write\({tfd},", l)]
        check(writes and chmod < writes[0], "a byte was written before fchmod")
        # rename(tmp, out), or renameat(dirfd, tmp, dirfd, "secret") in the directory handle
        # the writer reached without following symlinks.
        ren = [l for l in rest if "rename" in l and ".secret.tmp-" in l
               and (out in l or l.split(",")[-1].strip().startswith('"secret")'))]
        check(ren, "no rename onto the target")
        return f"{c.split(' ', 1)[1][:90]} ... fchmod({tfd}, 0440) ... rename"
    finally:
        procs.stop_all()
        shutil.rmtree(d, ignore_errors=True)
