"""Helper run inside a client network namespace (`ip netns exec NS python3 nshelper.py ...`).
Prints one JSON object on stdout.

  fetch HOST PORT NAME [SOURCE] [PASSWORD]   one request; {"value": str|null}
  serve-loop HOST PORT NAME SECONDS          sequential requests for SECONDS;
                                             {"ok": n, "failed": n, "max_ms": x}
  flood HOST PORT N SECONDS MODE [SOURCES]   hold N connections (MODE idle|dribble|mixed|idle-once);
                                             when the server closes one, open a new one (not with
                                             idle-once); {"opened": n,
                                             "closed_by_server": n, "max_open": n}
                                             SOURCES: comma-separated source addresses, round robin
"""
import errno
import json
import os
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nslib import PASSWORD, fetch  # noqa: E402


def cmd_fetch(host, port, name, source=None, password=PASSWORD):
    v = fetch(int(port), name, host=host, source=source or None, password=password, timeout=5)
    return {"value": v.decode("latin-1") if v is not None else None}


def cmd_serve_loop(host, port, name, seconds):
    ok = failed = 0
    max_ms = 0.0
    errors = []
    end = time.time() + float(seconds)
    while time.time() < end:
        t0 = time.time()
        try:
            v = fetch(int(port), name, host=host, timeout=5)
        except OSError as e:
            v = None
            errors.append(str(e))
        ms = (time.time() - t0) * 1000
        max_ms = max(max_ms, ms)
        if v is not None:
            ok += 1
        else:
            failed += 1
        time.sleep(0.05)
    return {"ok": ok, "failed": failed, "max_ms": round(max_ms, 1), "errors": errors[:5]}


DRIBBLE = b"\x00\x00\x01\x00" + b"d" * 256


def cmd_flood(host, port, n, seconds, mode, sources=""):
    n, port, seconds = int(n), int(port), float(seconds)
    srcs = [s for s in sources.split(",") if s] or [None]
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    sel = selectors.DefaultSelector()
    opened = closed = 0
    max_open = 0
    k = 0
    socks = {}
    sent = {}
    last_dribble = time.time()

    def open_one():
        nonlocal opened, k
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setblocking(False)
        src = srcs[k % len(srcs)]
        k += 1
        try:
            if src:
                s.bind((src, 0))
            s.connect_ex((host, port))
        except OSError:
            s.close()
            return
        idx = opened
        opened += 1
        socks[s] = idx
        sel.register(s, selectors.EVENT_READ)

    for _ in range(n):
        open_one()
    end = time.time() + seconds
    while time.time() < end:
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                s.close()
                socks.pop(s, None)
                sent.pop(s, None)
                closed += 1
                if time.time() < end and mode != "idle-once":
                    open_one()
        max_open = max(max_open, len(socks))
        if mode in ("dribble", "mixed") and time.time() - last_dribble >= 0.5:
            last_dribble = time.time()
            for s, idx in list(socks.items()):
                if mode == "mixed" and idx % 2:
                    continue
                # A plausible frame header (256-byte payload), then body bytes, one per tick:
                # the server only ever sees an incomplete frame (a timeout, not an auth failure).
                pos = sent.get(s, 0)
                sent[s] = pos + 1
                try:
                    s.send(DRIBBLE[pos % len(DRIBBLE):pos % len(DRIBBLE) + 1])
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.ENOTCONN):
                        sel.unregister(s)
                        s.close()
                        socks.pop(s, None)
                        closed += 1
    for s in list(socks):
        s.close()
    return {"opened": opened, "closed_by_server": closed, "max_open": max_open}


if __name__ == "__main__":
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = {"fetch": cmd_fetch, "serve-loop": cmd_serve_loop, "flood": cmd_flood}[cmd]
    print(json.dumps(fn(*args)), flush=True)
