"""The guest under qemu, its one network path, and the host's netsecrets server at its end.

Owns: reading a child's output in a thread and waiting for patterns in it (Stream), choosing
TCG or KVM, starting qemu with user-mode networking (restrict=on, one guestfwd from
GUEST_SERVER:GUEST_PORT in the guest to a loopback port on the host) and driving its serial
console (Guest, boot), and starting `netsecrets receive` on the host's loopback (Server,
start_receive). Every process goes through harness.spawn, so every exit path stops it by pid.
"""

import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

from harness import BIN, BOOT_TIMEOUT, QEMU, TestError, Unavailable, spawn, stop, write
from machines import GUEST_PORT, GUEST_SERVER, TEST_KEY, TEST_PASSWORD


class Stream:
    """Collects a child's output in a thread; lets the driver wait for patterns."""

    def __init__(self, pipe, logpath, echo_prefix=None):
        self.buf = bytearray()
        self.cond = threading.Condition()
        self.closed = False
        self.logf = open(logpath, "wb")
        self.t = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        self.t.start()

    def _pump(self, pipe):
        while True:
            try:
                chunk = os.read(pipe.fileno(), 65536)
            except OSError:
                chunk = b""
            with self.cond:
                if not chunk:
                    self.closed = True
                    self.cond.notify_all()
                    break
                self.buf += chunk
                self.logf.write(chunk)
                self.logf.flush()
                self.cond.notify_all()
        self.logf.close()

    def wait_for(self, regex, timeout, start=0):
        """Return the first match of regex (bytes) at or after offset start, or None."""
        end = time.monotonic() + timeout
        pat = re.compile(regex)
        with self.cond:
            while True:
                m = pat.search(self.buf, start)
                if m:
                    return m
                left = end - time.monotonic()
                if left <= 0 or self.closed:
                    return None
                self.cond.wait(min(left, 0.5))

    def text(self):
        with self.cond:
            return self.buf.decode(errors="replace").replace("\r", "")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_receive(args, logpath, what="netsecrets receive"):
    """Start a server (args: its command line, listening on 127.0.0.1) and wait for its
    `listening on ADDR:PORT` line; returns (process, its stderr Stream, the port)."""
    p = spawn(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = Stream(p.stderr, logpath)
    m = err.wait_for(rb"netsecrets: listening on (\S+):(\d+)", 20)
    if not m:
        stop(p)
        raise TestError(f"{what} did not report listening:\n{err.text()[-1500:]}")
    return p, err, int(m.group(2))


class Server:
    """`netsecrets receive` with the test password and key, serving `secrets` to the guest
    (every guest connection arrives from qemu's socat on loopback)."""

    def __init__(self, workdir, secrets, port, logpath):
        pwf = workdir / "server-password"
        keyf = workdir / "server-key"
        write(pwf, TEST_PASSWORD + "\n", 0o600)
        write(keyf, TEST_KEY, 0o600)
        args = [str(BIN), "receive", "--server", "127.0.0.1", "--port", str(port),
                "--password-file", str(pwf), "--encryption-key-file", str(keyf),
                "-a", "127.0.0.1/32", "--verbose"]
        for name, value in secrets.items():
            f = workdir / f"secret-{name}"
            write(f, value, 0o600)
            args += ["--secret-file", f"{name}={f}"]
        self.p, self.err, self.port = start_receive(args, logpath)
        if port and self.port != port:
            raise TestError(f"server listens on {self.port}, asked for {port}")

    def close(self):
        stop(self.p)


def accel():
    mods = Path("/sys/module")
    if ((mods / "kvm_intel").exists() or (mods / "kvm_amd").exists()) and os.access("/dev/kvm", os.R_OK | os.W_OK):
        return ["-accel", "kvm", "-cpu", "host"]
    # /dev/kvm alone is not enough: under kvm_pvm (no kvm_intel or kvm_amd, as on these
    # machines) a stock kernel hangs silently after "Probing EDD", with any -cpu and machine.
    return ["-accel", "tcg", "-cpu", "qemu64"]


class Guest:
    """qemu with the kernel, an initrd and `cmdline`; the serial console on its stdin/stdout.
    guestfwd uses `cmd:`, not `tcp:`: one socat per guest connection, with EOF both ways, and
    the server may start after qemu (a `tcp:` forward connects once, when qemu starts). socat
    logs to /dev/null because the guest socket is also its stderr."""

    def __init__(self, vmlinuz, initrd, host_port, cmdline, logdir, name, extra=(), memory="512"):
        fwd = f"guestfwd=tcp:{GUEST_SERVER}:{GUEST_PORT}-cmd:socat -lf /dev/null - TCP:127.0.0.1:{host_port}"
        self.args = [QEMU, "-nodefaults", "-no-user-config", "-nographic", "-machine", "q35",
                     *accel(), "-smp", "1", "-m", memory,
                     "-kernel", str(vmlinuz), "-initrd", str(initrd), "-append", cmdline,
                     "-serial", "stdio", "-monitor", "none", "-no-reboot",
                     "-netdev", f"user,id=n0,ipv6=off,restrict=on,{fwd}",
                     "-device", "virtio-net-pci,netdev=n0,romfile=", *extra]
        self.errlog = open(logdir / f"{name}.qemu-stderr.log", "wb")
        self.t0 = time.monotonic()
        self.p = spawn(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errlog)
        self.serial = Stream(self.p.stdout, logdir / f"{name}.serial.log")

    def type(self, text):
        self.p.stdin.write(text.encode())
        self.p.stdin.flush()

    def wait_exit(self, timeout):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self):
        stop(self.p)
        self.errlog.close()




def boot(ctx, r, initrd, host_port, cmdline, extra=()):
    """Start a guest for scenario r and wait for the kernel's first line. None when it printed
    nothing (r then holds the failure); on the first boot of a run that means qemu cannot run
    here at all: Unavailable."""
    g = Guest(ctx["vmlinuz"], initrd, host_port, cmdline, ctx["logdir"], r.name, extra=extra)
    ctx["guests"].append(g)
    if not g.serial.wait_for(rb"Linux version", min(60, BOOT_TIMEOUT)):
        rc = g.wait_exit(1)
        err = (ctx["logdir"] / f"{r.name}.qemu-stderr.log").read_text(errors="replace")
        if ctx["first_boot"]:
            raise Unavailable(f"qemu did not boot the kernel (rc {rc}): {err.strip()[:800]}")
        r.check(False, f"no kernel output from qemu (rc {rc}): {err.strip()[:300]}")
        return None
    ctx["first_boot"] = False
    return g
