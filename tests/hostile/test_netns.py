"""Tests with real distinct client addresses: network namespaces joined by veth pairs.

Server namespace S (listening on `::`, so IPv4 peers arrive IPv4-mapped); client namespace c1 has
10.213.1.2 and fd42:213:1::2, c2 has 10.213.2.2 and fd42:213:2::2. No traffic leaves them.
"""
import json
import time

from nslib import FD_BOUND, THREAD_BOUND, SECRETS, Netns, Procs, Server, check, ns_python, send_bin


def ns_fetch(ns, host, port, name="db-password", source="", password=None):
    args = ["fetch", host, str(port), name, source]
    if password:
        args.append(password)
    p = ns_python(ns, "nshelper.py", *args)
    out, err = p.communicate(timeout=30)
    check(p.returncode == 0, f"helper failed: {err.decode()[-400:]}")
    v = json.loads(out)["value"]
    return v.encode("latin-1") if v is not None else None


def test_slow_clients_do_not_stall_other_address():
    """1000 connections from c1 (10.213.1.2), half idle and half dribbling a frame at 2 bytes/s,
    reopened as soon as the server closes them, for 15 s. Meanwhile c2 (10.213.2.2) sends requests
    back to back: every one must be served. The server's threads, fds and memory are sampled."""
    net = Netns(2)
    procs = Procs()
    try:
        srv = Server(procs, ["--timeout", "3"], netns=net.server, host="::")
        flood = procs.add(ns_python(net.clients[0], "nshelper.py", "flood", "10.213.1.1",
                                    str(srv.port), "1000", "15", "mixed"))
        time.sleep(1.0)
        served = procs.add(ns_python(net.clients[1], "nshelper.py", "serve-loop", "10.213.2.1",
                                     str(srv.port), "db-password", "12"))
        peak = {"Threads": 0, "fds": 0, "VmRSS": 0, "VmHWM": 0}
        while served.poll() is None:
            st = srv.stats()
            for k in peak:
                peak[k] = max(peak[k], st[k])
            time.sleep(0.2)
        # The real client from the other address, during the flood, too (v4 and v6).
        for host in ("10.213.2.1", "fd42:213:2::1"):
            r = send_bin(srv.port, "db-password", server=host, netns=net.clients[1], timeout=5)
            check(r.returncode == 0 and r.stdout == SECRETS["db-password"] + b"\n",
                  f"netsecrets send via {host} during flood: rc={r.returncode} {r.stderr!r}")
        res = json.loads(served.communicate(timeout=30)[0])
        fl_out, fl_err = flood.communicate(timeout=30)
        check(flood.returncode == 0, f"flood helper failed: {fl_err.decode()[-300:]}")
        fl = json.loads(fl_out)
        check(fl["max_open"] >= 1000, f"flood held only {fl['max_open']} connections")
        check(res["failed"] == 0 and res["ok"] >= 20,
              f"other address not served every time: {res}")
        check(res["max_ms"] < 3000, f"a request from the other address took {res['max_ms']} ms")
        check(srv.alive(), "server died")
        check(peak["Threads"] <= THREAD_BOUND, f"threads {peak['Threads']} over the bound")
        check(peak["fds"] <= FD_BOUND, f"fds {peak['fds']} over the bound")
        check(peak["VmHWM"] < 64 * 1024, f"peak RSS {peak['VmHWM']} KiB")
        return (f"flood {fl['max_open']} conns held ({fl['opened']} opened, {fl['closed_by_server']} "
                f"closed by server); other address: {res['ok']}/{res['ok'] + res['failed']} served, "
                f"max {res['max_ms']} ms; server peak threads={peak['Threads']} fds={peak['fds']} "
                f"RSS={peak['VmHWM']} KiB")
    finally:
        procs.stop_all()
        net.close()


def test_authorized_ips_real_addresses():
    """--authorized-ips with real allowed and denied IPv4 and IPv6 peers, CIDR and bare forms."""
    net = Netns(2)
    procs = Procs()
    try:
        net.add_addr(1, "10.213.1.3/24")
        net.add_addr(1, "fd42:213:1::3/64")
        net.add_addr(2, "10.213.2.3/24")
        net.add_addr(2, "fd42:213:2::3/64")
        time.sleep(0.3)
        want = SECRETS["db-password"]
        # 1. Networks: c1's /24 and /64 allowed, c2 denied.
        srv = Server(procs, ["--timeout", "3", "-a", "10.213.1.0/24,fd42:213:1::/64"],
                     netns=net.server, host="::")
        for host, src in (("10.213.1.1", "10.213.1.2"), ("10.213.1.1", "10.213.1.3"),
                          ("fd42:213:1::1", "fd42:213:1::2"), ("fd42:213:1::1", "fd42:213:1::3")):
            v = ns_fetch(net.clients[0], host, srv.port, source=src)
            check(v == want, f"allowed {src} got {v!r}")
        for host, src in (("10.213.2.1", "10.213.2.2"), ("fd42:213:2::1", "fd42:213:2::2")):
            v = ns_fetch(net.clients[1], host, srv.port, source=src)
            check(v is None, f"denied {src} was answered")
            srv.wait_line(src, r"denied \(not in --authorized-ips\)")
        r = send_bin(srv.port, "db-password", server="10.213.2.1", netns=net.clients[1], timeout=2)
        check(r.returncode == 1 and r.stdout == b"", f"denied binary client rc={r.returncode}")
        for host in ("10.213.1.1", "fd42:213:1::1"):
            r = send_bin(srv.port, "db-password", server=host, netns=net.clients[0], timeout=5)
            check(r.returncode == 0 and r.stdout == want + b"\n", f"allowed binary client via {host}: {r.stderr!r}")
        srv.stop()
        # 2. Bare addresses: only 10.213.2.2 and fd42:213:2::2; their neighbours are denied.
        srv = Server(procs, ["--timeout", "3", "-a", "10.213.2.2", "-a", "fd42:213:2::2"],
                     netns=net.server, host="::")
        for host, src in (("10.213.2.1", "10.213.2.2"), ("fd42:213:2::1", "fd42:213:2::2")):
            check(ns_fetch(net.clients[1], host, srv.port, source=src) == want, f"bare {src} denied")
        for ns, host, src in ((1, "10.213.2.1", "10.213.2.3"), (1, "fd42:213:2::1", "fd42:213:2::3"),
                              (0, "10.213.1.1", "10.213.1.2"), (0, "fd42:213:1::1", "fd42:213:1::2")):
            check(ns_fetch(net.clients[ns], host, srv.port, source=src) is None, f"{src} allowed")
            srv.wait_line(src, "denied")
        srv.stop()
        # 3. IPv4-only listener (0.0.0.0) with an IPv4 network.
        srv = Server(procs, ["--timeout", "3", "-a", "10.213.1.0/24"], netns=net.server, host="0.0.0.0")
        check(ns_fetch(net.clients[0], "10.213.1.1", srv.port) == want, "v4 listener denied c1")
        check(ns_fetch(net.clients[1], "10.213.2.1", srv.port) is None, "v4 listener allowed c2")
        return "v4/v6 CIDR and bare-IP allow/deny verified with 12 real peers"
    finally:
        procs.stop_all()
        net.close()
