#!/usr/bin/env python3
"""Wire-format interoperability with an independent implementation.

This file speaks the netsecrets protocol from the spec alone (Python's struct, hashlib and the
`cryptography` package's AESGCM), never through the Rust code, in both directions:

  * a Python client against `netsecrets receive` (plaintext and AES, key string and key file);
  * `netsecrets send` against a Python server (plaintext and AES), which also checks the exact
    request bytes the Rust client puts on the wire;
  * protocol 2 (AES-GCM with associated data binding each answer to its request's nonce and
    secret name), written here from the protocol description: Python client -> Rust server and
    Rust client -> Python server, next to protocol 1. The Python server with `protocols={1}` is
    the existing peer that knows only protocol 1: the old client (no associated data) is served
    unchanged by the Rust server, and the Rust client reaches the old server with `--protocol 1`;

and, since it has a pseudo-terminal at hand, `ask-password --verify-secret` against a real server.

Usage: tests/interop.py [path/to/netsecrets]   Last line: "N passed, N failed".
"""
import hashlib
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "pylib"))
from netsecrets_test import DEFAULT_BIN, ServerProcess, stop_pid  # noqa: E402

BIN = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_BIN


def key_of(material: bytes) -> bytes:
    return hashlib.sha256(material).digest()


def seal(key, plaintext: bytes) -> bytes:
    if key is None:
        return plaintext
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, None)


def open_(key, payload: bytes) -> bytes:
    if key is None:
        return payload
    return AESGCM(key).decrypt(payload[:12], payload[12:], None)


# Protocol 2, from its description: the request is sealed with the 20 bytes
# "netsecrets/2 request" as associated data; the answer with "netsecrets/2 response" followed by
# the request's nonce and the secret name; the answer's plaintext is a status byte (0x00 found,
# the value follows; 0x01 not found, nothing follows).
AAD_Q = b"netsecrets/2 request"


def aad_r(nonce_q: bytes, name: bytes) -> bytes:
    return b"netsecrets/2 response" + nonce_q + name


def seal2(key, plaintext: bytes, aad: bytes):
    nonce = os.urandom(12)
    return nonce, nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open2(key, payload: bytes, aad: bytes) -> bytes:
    return AESGCM(key).decrypt(payload[:12], payload[12:], aad)


def py_request2(port, key, password: bytes, name: bytes):
    """A protocol-2 exchange; returns ("found", value) or ("not found", b"")."""
    nonce_q, payload = seal2(key, password + b" " + name, AAD_Q)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(frame(payload))
        plain = open2(key, recv_frame(s), aad_r(nonce_q, name))
    if plain[:1] == b"\x00":
        return ("found", plain[1:])
    if plain == b"\x01":
        return ("not found", b"")
    raise ValueError(f"bad protocol-2 answer {plain!r}")


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def recv_frame(sock):
    (n,) = struct.unpack(">I", recv_exact(sock, 4))
    return recv_exact(sock, n)


def py_request(port, key, password: bytes, name: bytes):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(frame(seal(key, password + b" " + name)))
        return open_(key, recv_frame(s))


def rust_server(*args):
    """`netsecrets receive` on 127.0.0.1 (tests/pylib/netsecrets_test.py): started, its port
    known, and killed by PID when the `with` block ends."""
    return ServerProcess(list(args), bin=BIN)


class PyServer:
    """A one-request-per-connection server written from the spec. `protocols={1}` is the
    existing peer that knows only protocol 1; with 2 in `protocols` (and a key) it opens a
    request as protocol 2 first and answers in the protocol the request came in. `answer2`
    may replace the protocol-2 answer's plaintext (a broken or hostile server)."""

    def __init__(self, key, password: bytes, secrets: dict, protocols=(1,), answer2=None):
        self.key, self.password, self.secrets = key, password, secrets
        self.protocols, self.answer2 = set(protocols), answer2
        self.requests = []
        self.seen = []  # the protocol of each request that opened
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    raw = recv_frame(conn)
                    self.requests.append(raw)
                    proto, text = 1, None
                    if 2 in self.protocols and self.key is not None:
                        try:
                            text, proto = open2(self.key, raw, AAD_Q), 2
                        except Exception:
                            pass
                    if text is None:
                        text = open_(self.key, raw)
                    text = text.rstrip()
                    pw, _, name = text.rpartition(b" ")
                    if pw != self.password:
                        continue  # close without a response
                    self.seen.append(proto)
                    if proto == 1:
                        conn.sendall(frame(seal(self.key, self.secrets.get(name, b"Not found"))))
                    else:
                        value = self.secrets.get(name)
                        plain = b"\x00" + value if value is not None else b"\x01"
                        if self.answer2 is not None:
                            plain = self.answer2
                        conn.sendall(frame(seal2(self.key, plain, aad_r(raw[:12], name))[1]))
                except Exception:
                    pass

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


def rust_send(port, *args):
    return subprocess.run([BIN, "send", "--server", "127.0.0.1", "--port", str(port), *args],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=60)


RESULTS = []


def check(name, cond, detail=""):
    RESULTS.append(bool(cond))
    print(("PASS " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))


def ask_password_verify(d):
    """`ask-password --verify-secret` on a pseudo-terminal: a password the server rejects is
    asked again (and never written), the accepted one is written with mode 0400, nothing echoes."""
    import pty
    import select
    with rust_server("--password", "good pw", "-S", "probe=x", "--encryption-key", "k", "--max-failures", "0") as srv:
        ask_password_on_pty(d, srv, pty, select)


def ask_password_on_pty(d, srv, pty, select):
    """The ask-password half of ask_password_verify, against the running `srv`."""
    master, slave = pty.openpty()
    out = os.path.join(d, "asked-pw")
    p = subprocess.Popen([BIN, "ask-password", "--tty", os.ttyname(slave), "--output", out, "--prompt", "PW? ",
                          "--verify-secret", "probe", "--server", "127.0.0.1", "--port", str(srv.port),
                          "--encryption-key", "k", "--timeout", "1", "--tries", "3"],
                         stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shown = b""
    try:
        def wait(n):
            nonlocal shown
            end = time.time() + 20
            while shown.count(b"PW? ") < n and time.time() < end:
                if select.select([master], [], [], 0.2)[0]:
                    shown += os.read(master, 4096)
            return shown.count(b"PW? ") >= n
        check("ask-password: prompt shown", wait(1), shown)
        os.write(master, b"wrong guess\n")
        check("ask-password: rejected password asked again", wait(2), shown)
        check("ask-password: rejected password not written", not os.path.exists(out))
        os.write(master, b"good pw\n")
        p.wait(timeout=20)
        check("ask-password: accepted password written 0400",
              p.returncode == 0 and open(out, "rb").read() == b"good pw" and (os.stat(out).st_mode & 0o777) == 0o400,
              (p.returncode, shown))
        check("ask-password: told why it asked again", b"not accepted" in shown and b"attempt 1 of 3" in shown, shown)
        check("ask-password: nothing typed was echoed", b"wrong guess" not in shown and b"good pw" not in shown, shown)
    finally:
        stop_pid(p)
        os.close(master)
        os.close(slave)


def clients_python_client(d, value, secret_file):
    for name, pw, key in [("alice", b"alice pw", b"alice key"), ("bob", b"bob pw", b"bob key\n")]:
        for suffix, data in [("pw", pw), ("key", key)]:
            with open(os.path.join(d, f"{name}.{suffix}"), "wb") as f:
                f.write(data)
    with open(os.path.join(d, "clients"), "w") as f:
        f.write("alice password=alice.pw key=alice.key from=127.0.0.1 secrets=db\n"
                "bob   password=bob.pw   key=bob.key   from=127.0.0.0/8 secrets=*\n")
    with rust_server("--clients-file", os.path.join(d, "clients"), "--password", "pass word",
                     "--encryption-key", "shared key", "-S", "db=hello", "--secret-file", f"bin={secret_file}",
                     "--max-failures", "0") as srv:
        alice, bob = key_of(b"alice key"), key_of(b"bob key")
        r = py_request(srv.port, alice, b"alice pw", b"db")
        check("python client -> rust server, named client with its own key: value", r == b"hello", r)
        r = py_request(srv.port, bob, b"bob pw", b"bin")
        check("python client -> rust server, second client, second key: binary value", r == value, r)
        r = py_request(srv.port, alice, b"alice pw", b"bin")
        check("python client -> rust server, secret the client may not read: Not found", r == b"Not found", r)
        r = py_request(srv.port, key_of(b"shared key"), b"pass word", b"bin")
        check("python client -> rust server, single-password client beside named ones", r == value, r)
        try:
            r = py_request(srv.port, bob, b"alice pw", b"db")
            check("python client -> rust server, one client's password under another's key closes", False, r)
        except EOFError:
            check("python client -> rust server, one client's password under another's key closes", True)
        # The log line is written just after the connection closes: wait for it (bounded).
        end = time.time() + 10
        while "client=default name=bin" not in srv.log() and time.time() < end:
            time.sleep(0.05)
        log = srv.log()
        check("rust server log names the clients and the denial",
              "client=alice name=bin outcome=denied-secret" in log and "client=bob name=bin outcome=served" in log
              and "client=default name=bin outcome=served" in log, log)


def main():
    value = b"v\x00\xff\nbinary"
    with tempfile.TemporaryDirectory() as d:
        secret_file = os.path.join(d, "bin")
        with open(secret_file, "wb") as f:
            f.write(value)
        keyfile = os.path.join(d, "key")
        with open(keyfile, "wb") as f:
            f.write(b"shared key\n")

        # Python client -> Rust server.
        for label, args, key in [
            ("plaintext", ["--insecure"], None),
            ("AES key string", ["--encryption-key", "shared key"], key_of(b"shared key")),
            ("AES key file", ["--encryption-key-file", keyfile], key_of(b"shared key")),
        ]:
            with rust_server("--password", "pass word", "-S", "db=hello", "--secret-file", f"bin={secret_file}",
                             *args) as srv:
                r = py_request(srv.port, key, b"pass word", b"db")
                check(f"python client -> rust server, {label}: value", r == b"hello", r)
                r = py_request(srv.port, key, b"pass word", b"bin")
                check(f"python client -> rust server, {label}: binary value", r == value, r)
                r = py_request(srv.port, key, b"pass word", b"nope\n")
                check(f"python client -> rust server, {label}: Not found", r == b"Not found", r)
                try:
                    r = py_request(srv.port, key, b"wrong", b"db")
                    check(f"python client -> rust server, {label}: wrong password closes", False, r)
                except EOFError:
                    check(f"python client -> rust server, {label}: wrong password closes", True)
                if key is None:
                    continue
                # Protocol 2 from the same Python client, beside protocol 1 on the same port.
                r = py_request2(srv.port, key, b"pass word", b"db")
                check(f"python client -> rust server, {label}: protocol 2 value", r == ("found", b"hello"), r)
                r = py_request2(srv.port, key, b"pass word", b"bin")
                check(f"python client -> rust server, {label}: protocol 2 binary value", r == ("found", value), r)
                r = py_request2(srv.port, key, b"pass word", b"nope")
                check(f"python client -> rust server, {label}: protocol 2 not found", r == ("not found", b""), r)
                # The answer is bound to the request's nonce and name: opened for another
                # name or another nonce, it does not authenticate.
                nonce_q, payload = seal2(key, b"pass word db", AAD_Q)
                with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
                    c.sendall(frame(payload))
                    answer = recv_frame(c)
                bound = []
                for n, nm in [(nonce_q, b"db"), (nonce_q, b"bin"), (os.urandom(12), b"db")]:
                    try:
                        open2(key, answer, aad_r(n, nm))
                        bound.append(True)
                    except Exception:
                        bound.append(False)
                check(f"python client -> rust server, {label}: protocol 2 answer bound to nonce and name",
                      bound == [True, False, False], bound)
                log = srv.log()
                check(f"python client -> rust server, {label}: log names each protocol",
                      "name=db outcome=served protocol=1" in log and "name=db outcome=served protocol=2" in log, log)

        # Python clients -> Rust server with named clients (--clients-file), each its own
        # password and key, beside the single-password client: the wire is unchanged.
        clients_python_client(d, value, secret_file)

        # Rust client --protocol 1 -> the existing peer (a Python server that knows only
        # protocol 1), and Rust client (protocol 2 by default with a key) -> Python server that
        # speaks protocol 2.
        for label, args, key, protos in [
            ("plaintext", ["--insecure"], None, (1,)),
            ("AES key string, --protocol 1", ["--encryption-key", "shared key", "--protocol", "1"],
             key_of(b"shared key"), (1,)),
            ("AES key file, --protocol 1", ["--encryption-key-file", keyfile, "--protocol", "1"],
             key_of(b"shared key"), (1,)),
            ("AES key string, protocol 2", ["--encryption-key", "shared key"], key_of(b"shared key"), (1, 2)),
            ("AES key file, protocol 2", ["--encryption-key-file", keyfile], key_of(b"shared key"), (1, 2)),
        ]:
            srv = PyServer(key, b"pass word", {b"a": b"alpha", b"bin": value}, protocols=protos)
            try:
                out = os.path.join(d, f"out-{len(RESULTS)}")
                p = rust_send(srv.port, "--password", "pass word", "--request_secrets", "a bin", "--file-output", out, *args)
                got = open(out, "rb").read() if os.path.exists(out) else None
                check(f"rust client -> python server, {label}: values", p.returncode == 0 and got == b"alpha\n" + value,
                      (p.returncode, got, p.stderr))
                want = 2 if 2 in protos else 1
                check(f"rust client -> python server, {label}: spoke protocol {want}", srv.seen == [want, want], srv.seen)
                raw = srv.requests[0] if srv.requests else b""
                req = open2(key, raw, AAD_Q) if want == 2 else open_(key, raw)
                check(f"rust client -> python server, {label}: request bytes", req == b"pass word a", req)
                if key is not None:
                    check(f"rust client -> python server, {label}: nonce+ct+tag layout",
                          len(raw) == 12 + len(b"pass word a") + 16, len(raw))
                    check(f"rust client -> python server, {label}: fresh nonces",
                          len(srv.requests) == 2 and srv.requests[0][:12] != srv.requests[1][:12])
                p = rust_send(srv.port, "--password", "pass word", "--request_secrets", "missing", *args)
                check(f"rust client -> python server, {label}: Not found is an error",
                      p.returncode == 1 and p.stdout == b"" and b"no secret named" in p.stderr, (p.returncode, p.stdout, p.stderr))
            finally:
                srv.close()

        # Rust client in protocol 2 against the existing peer (protocol 1 only): an error that
        # names --protocol 1, nothing written.
        srv = PyServer(key_of(b"k"), b"pw", {b"a": b"alpha"}, protocols=(1,))
        try:
            out = os.path.join(d, "p2-vs-old")
            p = rust_send(srv.port, "--password", "pw", "--request_secrets", "a", "--encryption-key", "k",
                          "--timeout", "1", "--file-output", out)
            check("rust client protocol 2 -> protocol-1-only python server: error naming --protocol 1",
                  p.returncode == 1 and not os.path.exists(out) and b"--protocol 1" in p.stderr, (p.returncode, p.stderr))
        finally:
            srv.close()

        # A protocol-2 server that answers with an empty plaintext or an unknown status byte:
        # an error, nothing written, the old file kept.
        for label, plain in [("empty plaintext", b""), ("unknown status 0x02", b"\x02alpha"),
                             ("not found with bytes after it", b"\x01alpha")]:
            srv = PyServer(key_of(b"k"), b"pw", {b"a": b"alpha"}, protocols=(1, 2), answer2=plain)
            try:
                out = os.path.join(d, "kept")
                with open(out, "wb") as f:
                    f.write(b"old value")
                os.chmod(out, 0o600)
                p = rust_send(srv.port, "--password", "pw", "--request_secrets", "a", "--encryption-key", "k",
                              "--timeout", "1", "--file-output", out, "--mode", "0600")
                check(f"rust client -> python server, protocol 2 {label}: error, old file kept",
                      p.returncode == 1 and open(out, "rb").read() == b"old value", (p.returncode, p.stderr))
            finally:
                srv.close()

        ask_password_verify(d)

    failed = RESULTS.count(False)
    print(f"{len(RESULTS) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
