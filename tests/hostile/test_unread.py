"""Answers nobody reads: the kernel memory they hold on the server's sockets (`ss -tm`, the
skmem of every socket on the server's port, not the process's RSS) stays within the server's
answer-byte cap (33 MiB: two of the largest answers); a client that does not read by --timeout is reset and its queued bytes
freed; and one such client does not keep an honest request for the same large secret out."""
import os
import re
import socket
import subprocess
import tempfile
import time

from nslib import (KEY, PASSWORD, Procs, Server, check, connect, fetch, frame, request_payload)

CAP = 33 * 1024 * 1024


def _server_kernel_bytes(port):
    """Send-side kernel memory (skmem wmem_queued `w`, plus `t` for bytes handed to the device)
    of every TCP socket whose local port is `port`, orphans included."""
    out = subprocess.run(["ss", "-tmnH", "state", "all", f"sport = :{port}"],
                         capture_output=True, text=True, check=True).stdout
    total = 0
    for m in re.finditer(r"skmem:\(([^)]*)\)", out):
        fields = dict(re.findall(r"([a-z]+)(\d+)", m.group(1)))
        total += int(fields.get("w", 0)) + int(fields.get("t", 0))
    return total


def _non_readers(port, sources, n, name):
    """`n` connections spread over `sources` that send a valid request and never read."""
    socks = []
    req = frame(request_payload(name))
    for i in range(n):
        s = connect(port, source=sources[i % len(sources)], timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(req)
        socks.append(s)
    return socks


def test_unread_answers_stay_within_the_answer_cap():
    with tempfile.TemporaryDirectory() as d, Procs() as procs:
        path = os.path.join(d, "big")
        with open(path, "wb") as f:
            f.write(os.urandom(1024 * 1024))
        srv = Server(procs, ["--timeout", "6", "--max-connections", "1024", "--max-per-ip", "1024",
                             "--secret-file", f"big={path}"])
        socks = []
        try:
            socks = _non_readers(srv.port, ["127.0.0.80", "127.0.0.81"], 300, "big")
            peak = 0
            for _ in range(20):
                time.sleep(0.1)
                peak = max(peak, _server_kernel_bytes(srv.port))
            check(peak <= CAP * 1.25,
                  f"{peak / 2**20:.0f} MiB of kernel memory for unread answers (cap {CAP >> 20} MiB)")
            # Past --timeout the non-readers are reset: their queued bytes are freed.
            time.sleep(6.5)
            left = _server_kernel_bytes(srv.port)
            check(left < 1024 * 1024, f"{left} bytes still queued after --timeout")
            return (f"300 non-readers of 1 MiB from 2 addresses: peak {peak / 2**20:.1f} MiB on the "
                    f"server's sockets, {left} bytes after --timeout")
        finally:
            for s in socks:
                s.close()


def test_one_non_reader_does_not_block_a_large_secret():
    with tempfile.TemporaryDirectory() as d, Procs() as procs:
        path = os.path.join(d, "big")
        value = os.urandom(16 * 1024 * 1024 - 28)  # the largest secret a response can carry
        with open(path, "wb") as f:
            f.write(value)
        srv = Server(procs, ["--timeout", "8", "--secret-file", f"big={path}"])
        socks = []
        try:
            socks = _non_readers(srv.port, ["127.0.0.82"], 1, "big")
            time.sleep(0.5)
            got = fetch(srv.port, "big", source="127.0.0.83", timeout=8)
            check(got == value, "an honest request for the large secret was refused while one "
                  "client does not read its copy")
            return "served 16 MiB - 28 bytes while another client sat on its copy"
        finally:
            for s in socks:
                s.close()
