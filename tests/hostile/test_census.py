"""Hostile input census against one encrypted server on loopback (--timeout 3, default lockout).

Each hostile case comes from its own loopback source address (127.0.0.x, all of 127/8 is
loopback), so that the lockout of one case does not hide the next, and is followed by a normal
request from 127.0.0.1 (the Python client and the real `netsecrets send`) that must succeed, and a
check that the server process is alive. The server's log line for the hostile peer is checked
too: it says what the server did.
"""
import os
import random
import socket
import struct
import time

from nslib import (KEY, PASSWORD, SECRETS, Procs, Server, check, connect, exchange_raw, fetch,
                   frame, normal_ok, recv_all, request_payload, seal, send_bin)

_srv = {}


def server(procs, key=KEY, extra=()):
    return Server(procs, ["--timeout", "3", *extra], key=key)


def no_response(port, data, source, shut=True, max_wait=5.0):
    """Sends data from `source`; the server must close without sending a byte. Returns seconds
    until the close."""
    t0 = time.time()
    got = exchange_raw(port, data, source=source, timeout=max_wait, shut=shut)
    check(got == b"", f"server answered hostile input from {source}: {got[:80]!r}")
    return time.time() - t0


def run_case(data, src, pattern, shut=True, key=KEY):
    with Procs() as procs:
        srv = server(procs, key=key)
        dt = no_response(srv.port, data, src, shut=shut)
        line = srv.wait_line(src, pattern)
        normal_ok(srv)
        return f"closed in {dt:.2f}s; log: {line.split('outcome=')[1]}"


def test_connect_close_without_byte():
    with Procs() as procs:
        srv = server(procs)
        s = connect(srv.port, source="127.0.0.10")
        s.close()
        line = srv.wait_line("127.0.0.10", "closed without a request")
        normal_ok(srv)
        return line.split("outcome=")[1]


def test_connect_and_reset():
    with Procs() as procs:
        srv = server(procs)
        for src, data in (("127.0.0.11", b""), ("127.0.0.12", b"\x00\x00")):
            s = connect(srv.port, source=src)
            if data:
                s.sendall(data)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()  # RST
        srv.wait_line("127.0.0.11", "outcome=")
        srv.wait_line("127.0.0.12", "outcome=")
        normal_ok(srv)


def test_length_zero():
    return run_case(frame(b""), "127.0.0.13", "undecryptable")


def test_length_one():
    return run_case(b"\x00\x00\x00\x01x", "127.0.0.14", "undecryptable")


def test_length_2_31():
    with Procs() as procs:
        srv = server(procs)
        # Not shut: the server must close at once on the length alone, not wait for the body.
        dt = no_response(srv.port, b"\x80\x00\x00\x00", "127.0.0.15", shut=False)
        check(dt < 1.5, f"server took {dt:.2f}s to refuse a 2^31 length (should not wait)")
        line = srv.wait_line("127.0.0.15", "over the limit")
        normal_ok(srv)
        return f"closed in {dt:.2f}s: {line.split('outcome=')[1]}"


def test_length_ffffffff():
    with Procs() as procs:
        srv = server(procs)
        dt = no_response(srv.port, b"\xff\xff\xff\xff" + b"A" * 1000, "127.0.0.16", shut=False)
        check(dt < 1.5, f"server took {dt:.2f}s to refuse a 0xFFFFFFFF length")
        line = srv.wait_line("127.0.0.16", "over the limit")
        normal_ok(srv)
        return f"closed in {dt:.2f}s: {line.split('outcome=')[1]}"


def test_length_larger_than_body_then_close():
    return run_case(b"\x00\x00\x01\x00" + b"abc", "127.0.0.17", r"closed mid-frame \(7 of 260")


def test_length_larger_than_body_kept_open():
    with Procs() as procs:
        srv = server(procs)
        dt = no_response(srv.port, b"\x00\x00\x01\x00abc", "127.0.0.18", shut=False, max_wait=10)
        check(2.5 < dt < 4.5, f"server closed after {dt:.2f}s, expected its 3 s deadline")
        line = srv.wait_line("127.0.0.18", "timed out")
        normal_ok(srv)
        return f"closed by the 3 s deadline after {dt:.2f}s"


def test_body_one_byte_per_second():
    """A valid encrypted request dribbled at 1 byte/s: the whole-exchange deadline (3 s) ends it,
    however steadily bytes keep coming; meanwhile a normal client is served."""
    with Procs() as procs:
        srv = server(procs)
        data = frame(request_payload("db-password"))
        s = connect(srv.port, source="127.0.0.19", timeout=10)
        t0 = time.time()
        closed_at = None
        try:
            for i, b in enumerate(data):
                s.sendall(bytes([b]))
                if i == 1:
                    normal_ok(srv, binary=False)  # served while the dribbler holds a connection
                time.sleep(1.0)
                if time.time() - t0 > 8:
                    break
        except (BrokenPipeError, ConnectionResetError):
            closed_at = time.time() - t0
        if closed_at is None:
            s.settimeout(5)
            check(recv_all(s) == b"", "dribbled request got a response")
            closed_at = time.time() - t0
        s.close()
        check(closed_at < 8.5, f"dribbler held its connection {closed_at:.1f}s (deadline 3 s)")
        line = srv.wait_line("127.0.0.19", "timed out|closed|mid-frame")
        normal_ok(srv)
        return f"dribbler cut off by the server: {line.split('outcome=')[1]}"


def test_random_garbage():
    """300 random byte strings (random lengths 0..4096, and some with a plausible length header),
    each from its own source address 127.0.2.x / 127.0.3.x."""
    rnd = random.Random(0x5EC2E7)
    with Procs() as procs:
        srv = server(procs)
        for i in range(300):
            n = rnd.choice([0, 1, 3, 4, 5, 16, 27, 28, 29, 100, 4096])
            data = bytes(rnd.getrandbits(8) for _ in range(n))
            if i % 3 == 0:
                data = struct.pack(">I", len(data)) + data
            src = f"127.0.{2 + i // 250}.{1 + i % 250}"
            got = exchange_raw(srv.port, data, source=src, timeout=6)
            check(got == b"", f"garbage #{i} got a response {got[:40]!r}")
            if i % 100 == 99:
                normal_ok(srv, binary=False)
        normal_ok(srv)
        return "300 inputs, no response, server alive"


def test_plaintext_to_encrypted_server():
    with Procs() as procs:
        srv = server(procs)
        # The right password and name, in clear: the server cannot open it.
        no_response(srv.port, frame(f"{PASSWORD} db-password".encode()), "127.0.0.20")
        srv.wait_line("127.0.0.20", "undecryptable")
        # The real client with --insecure against it: exit 1 with a hint, nothing on stdout.
        r = send_bin(srv.port, "db-password", server="127.0.0.1", key=None, timeout=2,
                     extra=["--insecure"])
        check(r.returncode == 1 and r.stdout == b"", f"insecure client: rc={r.returncode} out={r.stdout!r}")
        check(b"encryption key" in r.stderr, f"no hint about the key in {r.stderr!r}")
        normal_ok(srv)


def test_encrypted_to_plaintext_server():
    with Procs() as procs:
        srv = Server(procs, ["--timeout", "3", "--insecure"], key=None)
        no_response(srv.port, frame(request_payload("db-password")), "127.0.0.21")
        srv.wait_line("127.0.0.21", "malformed|wrong-password")
        r = send_bin(srv.port, "db-password", server="127.0.0.21", timeout=2)
        check(r.returncode == 1 and r.stdout == b"", f"encrypted client: rc={r.returncode}")
        check(srv.alive(), "server died")
        v = fetch(srv.port, "db-password", key=None)
        check(v == SECRETS["db-password"], f"plaintext normal client got {v!r}")
        r = send_bin(srv.port, "db-password", key=None, extra=["--insecure"])
        check(r.returncode == 0 and r.stdout == SECRETS["db-password"] + b"\n", "plaintext binary client failed")


def test_truncated_nonce():
    with Procs() as procs:
        srv = server(procs)
        sealed = request_payload("db-password")
        for i, n in enumerate((5, 11, 12, 27)):
            src = f"127.0.0.{30 + i}"
            no_response(srv.port, frame(sealed[:n]), src)
            srv.wait_line(src, "undecryptable")
        normal_ok(srv)


def test_flipped_tag_bit():
    with Procs() as procs:
        srv = server(procs)
        for i, pos in enumerate((-1, -16, 0, 13)):  # tag last/first byte, nonce, ciphertext
            sealed = bytearray(request_payload("db-password"))
            sealed[pos] ^= 0x01
            src = f"127.0.0.{40 + i}"
            no_response(srv.port, frame(bytes(sealed)), src)
            srv.wait_line(src, "undecryptable")
        normal_ok(srv)


def test_malformed_requests():
    """Correctly encrypted, right password, bad request text: no space, only spaces, empty name,
    names with / and .., a 6 KiB name (under the server's 8 KiB request cap), a 60 KiB one and a
    1 MiB one (over it: refused on the length)."""
    cases = [
        (b"nospace", "no space"),
        (b"     ", "no space"),
        (b"", "no space"),
        (PASSWORD.encode() + b" ", "no space|invalid secret name|empty"),
        (PASSWORD.encode() + b" a/b", "invalid secret name"),
        (PASSWORD.encode() + b" ../db-password", "invalid secret name"),
        (PASSWORD.encode() + b" ..", "invalid secret name"),
        (PASSWORD.encode() + b" " + b"a" * (6 * 1024), "invalid secret name"),
        (PASSWORD.encode() + b" " + b"a" * (60 * 1024), "over the limit of 8192 bytes"),
        (PASSWORD.encode() + b" db-password\x00", "invalid secret name"),
        (b" db-password", "empty password"),
    ]
    with Procs() as procs:
        srv = server(procs)
        for i, (plain, pat) in enumerate(cases):
            src = f"127.0.0.{50 + i}"
            no_response(srv.port, frame(seal(KEY, plain)), src)
            srv.wait_line(src, pat)
        # 1 MiB name: refused on the length, before the body is read or allocated.
        big = frame(seal(KEY, PASSWORD.encode() + b" " + b"n" * (1 << 20)))
        s = connect(srv.port, source="127.0.0.70", timeout=5)
        try:
            s.sendall(big[:4])
            s.settimeout(2)
            check(recv_all(s) == b"", "1 MiB name got a response")
        finally:
            s.close()
        srv.wait_line("127.0.0.70", "over the limit")
        normal_ok(srv)
        return f"{len(cases) + 1} malformed requests refused without a response"


def test_replayed_encrypted_request():
    """A captured encrypted request replayed from another address is served again: the replayer
    gets the same ciphertext-encrypted response it cannot open without the key (fresh nonce, so it
    does not even equal the first response). What it learns: the secret exists and its length."""
    with Procs() as procs:
        srv = server(procs)
        captured = frame(request_payload("db-password"))
        first = exchange_raw(srv.port, captured, source="127.0.0.1")
        replay = exchange_raw(srv.port, captured, source="127.0.0.80")
        check(len(first) > 4 and len(replay) == len(first), "replay not answered as documented")
        check(first != replay, "two responses identical: nonce reuse")
        from nslib import open_sealed
        check(open_sealed(KEY, replay[4:]) == SECRETS["db-password"], "replayed response wrong")
        # Without the key the response is opaque: a wrong key fails the tag.
        try:
            open_sealed("attacker-guess", replay[4:])
            check(False, "response opened with a wrong key")
        except Exception as e:  # InvalidTag
            check(type(e).__name__ == "InvalidTag", f"unexpected {e!r}")
        # Replay from an address outside --authorized-ips is refused before a byte is read.
        with Procs() as procs2:
            s2 = Server(procs2, ["--timeout", "3", "-a", "127.0.0.1/32"])
            cap2 = frame(request_payload("db-password"))
            check(exchange_raw(s2.port, cap2, source="127.0.0.81") == b"", "denied replay answered")
            s2.wait_line("127.0.0.81", "denied")
            normal_ok(s2)
        normal_ok(srv)
        return f"replay served ({len(replay)} bytes, opaque without the key; length leaks)"
