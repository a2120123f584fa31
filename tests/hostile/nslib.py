"""Shared helpers for the hostile-input tests: an independent implementation of the netsecrets
wire format (4-byte big-endian length + payload; AES-256-GCM with key = SHA-256(key string),
payload = nonce(12) || ciphertext || tag(16)), server/client process management (servers start
through tests/pylib/netsecrets_test.py, the one Python server harness), and network namespaces
with veth pairs.

Every process a test starts is tracked and stopped by PID; every namespace is created with a
unique name (containing our PID) and deleted on every exit path. Traffic goes only to loopback or
to addresses inside namespaces created here (10.213.0.0/16, fd42:213::/32).
"""

import hashlib
import os
import re
import socket
import struct
import subprocess
import sys
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))
from netsecrets_test import DEFAULT_BIN as BIN, REPO, ServerDidNotStart, ServerProcess, stop_pid  # noqa: E402

PASSWORD = "hostile-test-pw-7f3a"
KEY = "hostile-test-key-91c2"
SECRETS = {"db-password": b"s3cr3t-db-VALUE-5a1e", "api": b"api-VALUE-b77d"}


# Resource bounds of a server with the default --max-connections 256: a worker thread per
# connection being served (plus the accept thread); when full, the oldest connection without a
# complete request is shut down to make room, and up to 2 x 256 connections (evicted ones closing
# plus new ones) may hold a descriptor at once, plus the listener and stdio.
THREAD_BOUND = 256 + 2
FD_BOUND = 2 * 256 + 16


class TestFailure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


# ---------------------------------------------------------------- wire format (independent)

def aes_key(key_str):
    return hashlib.sha256(key_str.encode() if isinstance(key_str, str) else key_str).digest()


def seal(key_str, plaintext):
    nonce = os.urandom(12)
    return nonce + AESGCM(aes_key(key_str)).encrypt(nonce, plaintext, None)


def open_sealed(key_str, payload):
    return AESGCM(aes_key(key_str)).decrypt(payload[:12], payload[12:], None)


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def request_payload(name, password=PASSWORD, key=KEY):
    plain = (password.encode() if isinstance(password, str) else password) + b" " + (
        name.encode() if isinstance(name, str) else name)
    return seal(key, plain) if key is not None else plain


def connect(port, host="127.0.0.1", source=None, timeout=5.0):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect((host, port))
    return s


def recv_all(s, limit=32 * 1024 * 1024):
    """Reads until EOF; returns the bytes (b'' if the server closed without a response)."""
    out = b""
    while len(out) < limit:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        out += chunk
    return out


def exchange_raw(port, data, host="127.0.0.1", source=None, timeout=5.0, shut=True):
    """Sends raw bytes, optionally shuts the write side, returns everything the server sent."""
    s = connect(port, host, source, timeout)
    try:
        try:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except OSError:  # the server may close (or reset) before we are done sending: fine
            pass
        return recv_all(s)
    finally:
        s.close()


def fetch(port, name, host="127.0.0.1", source=None, password=PASSWORD, key=KEY, timeout=5.0):
    """One request with the Python client; returns the decrypted value, or None if the server
    closed without a response."""
    resp = exchange_raw(port, frame(request_payload(name, password, key)), host, source, timeout)
    if not resp:
        return None
    check(len(resp) >= 4, f"short response {resp!r}")
    (n,) = struct.unpack(">I", resp[:4])
    check(n == len(resp) - 4, f"response length {n} but {len(resp) - 4} bytes followed")
    body = resp[4:]
    return open_sealed(key, body) if key is not None else body


# ---------------------------------------------------------------- processes

class Procs:
    """Tracks processes and servers started by a test; stop_all() kills each by PID.

    `with Procs() as procs:` calls stop_all() on every exit path."""

    def __init__(self):
        self.procs = []
        self.servers = []  # their log files are removed too (NETSECRETS_HOSTILE_KEEP_LOGS=1 keeps them)

    def add(self, p):
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in self.procs:
            stop_pid(p)
        self.procs = []
        keep = bool(os.environ.get("NETSECRETS_HOSTILE_KEEP_LOGS"))
        for srv in self.servers:
            srv.stop(keep_log=keep)
        self.servers = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_all()
        return False


class Server(ServerProcess):
    """A `netsecrets receive` process (tests/pylib/netsecrets_test.py) with this suite's password,
    key and secrets unless told otherwise, tracked by `procs`."""

    def __init__(self, procs, args, netns=None, port=0, host="127.0.0.1", secrets=None,
                 key=KEY, password=PASSWORD, wait=True, extra_env=None):
        cmd = []
        if password is not None:
            cmd += ["--password", password]
        if key is not None:
            cmd += ["--encryption-key", key]
        for n, v in (SECRETS if secrets is None else secrets).items():
            cmd += ["-S", f"{n}={v.decode()}"]
        cmd += args
        env = dict(os.environ)
        if extra_env:
            env.update(extra_env)
        procs.servers.append(self)
        try:
            super().__init__(cmd, bin=BIN, host=host, port=port, netns=netns, env=env, wait=False)
        except BaseException:
            procs.servers.remove(self)
            raise
        if wait:
            self.wait_listening()

    def wait_listening(self, timeout=10.0):
        try:
            return super().wait_listening(timeout)
        except ServerDidNotStart as e:
            raise TestFailure(str(e)) from None

    def lines_for(self, peer_ip):
        if ":" in peer_ip:
            pats = [f"peer=[{peer_ip}]:"]
        else:  # an IPv4 peer of a `::` listener is logged IPv4-mapped
            pats = [f"peer={peer_ip}:", f"peer=[::ffff:{peer_ip}]:"]
        return [l for l in self.log().splitlines() if any(p in l for p in pats)]

    def wait_line(self, peer_ip, pattern, timeout=6.0, after=0):
        """The first log line for `peer_ip` matching `pattern`, skipping the first `after` such
        lines; waits for it, since the server writes a connection's line after closing it."""
        end = time.time() + timeout
        while time.time() < end:
            for l in self.lines_for(peer_ip)[after:]:
                if re.search(pattern, l):
                    return l
            time.sleep(0.05)
        raise TestFailure(f"no log line for {peer_ip} matching {pattern!r}; lines: {self.lines_for(peer_ip)}")

    def stats(self):
        """Threads, open fds, resident and peak memory (KiB) of the server process."""
        st = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Threads", "VmRSS", "VmHWM"):
                    st[k] = int(v.split()[0])
        st["fds"] = len(os.listdir(f"/proc/{self.pid}/fd"))
        return st

    def stop(self, keep_log=True):
        """Kills the server by PID; its log stays until `procs.stop_all()` (which passes
        keep_log=False unless NETSECRETS_HOSTILE_KEEP_LOGS is set)."""
        if keep_log:
            self.kill()
        else:
            super().stop(keep_log=False)


def send_bin(port, names, server="127.0.0.1", extra=(), netns=None, timeout=10, key=KEY,
             password=PASSWORD, env=None):
    """Runs the real `netsecrets send`; returns CompletedProcess (bytes)."""
    cmd = [BIN, "send", "--server", server, "--port", str(port), "--request_secrets", names,
           "--timeout", str(timeout)]
    if password is not None:
        cmd += ["--password", password]
    if key is not None:
        cmd += ["--encryption-key", key]
    cmd += list(extra)
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    return subprocess.run(cmd, capture_output=True, timeout=timeout + 20, env=env)


def free_port(host="127.0.0.1"):
    s = socket.socket()
    s.bind((host, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def normal_ok(srv, port=None, host="127.0.0.1", binary=True):
    """The 'second client' check: a normal request from 127.0.0.1 succeeds, and the server lives."""
    port = port or srv.port
    check(srv.alive(), "server process died")
    v = fetch(port, "db-password", host=host)
    check(v == SECRETS["db-password"], f"normal python client got {v!r}")
    if binary:
        r = send_bin(port, "db-password", server=host, timeout=10)
        check(r.returncode == 0 and r.stdout == SECRETS["db-password"] + b"\n",
              f"normal netsecrets send failed: rc={r.returncode} err={r.stderr!r}")
    check(srv.alive(), "server process died")


# ---------------------------------------------------------------- network namespaces

def sh(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)


class Netns:
    """A server namespace S and client namespaces, each client joined to S by its own veth pair.

    Client i (1-based) has 10.213.i.2/24 and fd42:213:i::2/64 (plus extra addresses on request);
    S's end has 10.213.i.1/24 and fd42:213:i::1/64. Nothing is routed beyond these links.
    """

    def __init__(self, clients=2):
        tag = f"{os.getpid() % 100000}"
        self.server = f"nsh{tag}s"
        self.clients = [f"nsh{tag}c{i}" for i in range(1, clients + 1)]
        self.veths = []
        self.created = []
        try:
            sh("ip", "netns", "add", self.server)
            self.created.append(self.server)
            sh("ip", "netns", "exec", self.server, "ip", "link", "set", "lo", "up")
            for i, c in enumerate(self.clients, 1):
                sh("ip", "netns", "add", c)
                self.created.append(c)
                sh("ip", "netns", "exec", c, "ip", "link", "set", "lo", "up")
                a, b = f"vh{tag}s{i}", f"vh{tag}c{i}"
                sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
                self.veths.append(a)
                sh("ip", "link", "set", a, "netns", self.server)
                sh("ip", "link", "set", b, "netns", c)
                sh("ip", "netns", "exec", self.server, "ip", "addr", "add", f"10.213.{i}.1/24", "dev", a)
                sh("ip", "netns", "exec", self.server, "ip", "addr", "add", f"fd42:213:{i}::1/64", "dev", a, "nodad")
                sh("ip", "netns", "exec", self.server, "ip", "link", "set", a, "up")
                sh("ip", "netns", "exec", c, "ip", "addr", "add", f"10.213.{i}.2/24", "dev", b)
                sh("ip", "netns", "exec", c, "ip", "addr", "add", f"fd42:213:{i}::2/64", "dev", b, "nodad")
                sh("ip", "netns", "exec", c, "ip", "link", "set", b, "up")
        except Exception:
            self.close()
            raise

    def add_addr(self, client_index, addr):
        c = self.clients[client_index - 1]
        dev = f"vh{os.getpid() % 100000}c{client_index}"
        extra = ["nodad"] if ":" in addr else []
        sh("ip", "netns", "exec", c, "ip", "addr", "add", addr, "dev", dev, *extra)

    def close(self):
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.created = []


def ns_python(netns, script, *args, timeout=60):
    """Starts a Python helper script (in tests/hostile) inside a namespace; returns Popen."""
    here = os.path.dirname(os.path.abspath(__file__))
    return subprocess.Popen(["ip", "netns", "exec", netns, "python3", os.path.join(here, script), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
