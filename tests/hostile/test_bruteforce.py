"""Brute force: repeated wrong passwords from one address lock that address (IPv4 address or
IPv6 /64) out -- default 5 failures, then 30 s, doubling on each further failure -- without
affecting other addresses. Failures are: wrong password, undecryptable or malformed request, an
oversized length. Timeouts and closes without a request are not failures."""
import time

from nslib import (SECRETS, Netns, Procs, Server, check, fetch, normal_ok)
from test_netns import ns_fetch

WANT = SECRETS["db-password"]


def test_lockout_after_wrong_passwords_then_expiry():
    with Procs() as procs:
        srv = Server(procs, ["--timeout", "3"])  # default --max-failures 5
        bad = "127.0.0.66"
        for i in range(5):
            check(fetch(srv.port, "db-password", source=bad, password=f"guess-{i}") is None,
                  "wrong password answered")
        t_locked = time.time()
        srv.wait_line(bad, "wrong-password")
        # Now even the right password is refused from that address, before a byte is read.
        check(fetch(srv.port, "db-password", source=bad) is None, "locked-out address served")
        line = srv.wait_line(bad, r"locked out for (29|30)s")
        # Other addresses are not affected, including one that failed fewer times.
        normal_ok(srv)
        check(fetch(srv.port, "db-password", source="127.0.0.67", password="typo") is None, "typo answered")
        check(fetch(srv.port, "db-password", source="127.0.0.67") == WANT, "other address locked")
        # The lockout ends after 30 s ...
        time.sleep(max(0.0, t_locked + 30.5 - time.time()))
        check(fetch(srv.port, "db-password", source=bad) == WANT, "lockout did not end after 30 s")
        # ... a success forgets the count; 5 new failures lock again for 30 s.
        for i in range(5):
            fetch(srv.port, "db-password", source=bad, password=f"again-{i}")
        check(fetch(srv.port, "db-password", source=bad) is None, "not locked again")
        normal_ok(srv)
        return f"locked after 5 failures ({line.split('outcome=')[1]}), expired after 30 s"


def test_lockout_doubles_without_success():
    with Procs() as procs:
        srv = Server(procs, ["--timeout", "3", "--max-failures", "2"])
        bad = "127.0.0.68"
        for i in range(2):
            fetch(srv.port, "db-password", source=bad, password=f"g{i}")
        t0 = time.time()
        check(fetch(srv.port, "db-password", source=bad) is None, "not locked after --max-failures 2")
        srv.wait_line(bad, r"locked out for (29|30)s")
        time.sleep(max(0.0, t0 + 30.5 - time.time()))
        fetch(srv.port, "db-password", source=bad, password="g3")  # one more failure: 60 s
        check(fetch(srv.port, "db-password", source=bad) is None, "not locked again")
        srv.wait_line(bad, r"locked out for (59|60)s")
        normal_ok(srv, binary=False)
        return "--max-failures 2: 30 s, then 60 s after one more failure"


def test_hostile_frames_count_as_failures():
    with Procs() as procs:
        srv = Server(procs, ["--timeout", "3"])
        from nslib import exchange_raw
        src = "127.0.0.69"
        for _ in range(5):
            exchange_raw(srv.port, b"\xff\xff\xff\xff", source=src)
        check(fetch(srv.port, "db-password", source=src) is None, "oversized frames did not count")
        srv.wait_line(src, "locked out")
        # Closing without a request does not count (a port scan or a health check is no guess).
        src2 = "127.0.0.71"
        for _ in range(10):
            exchange_raw(srv.port, b"", source=src2)
        check(fetch(srv.port, "db-password", source=src2) == WANT, "empty connections locked an address")
        normal_ok(srv, binary=False)


def test_max_failures_zero_disables():
    with Procs() as procs:
        srv = Server(procs, ["--timeout", "3", "--max-failures", "0"])
        for i in range(20):
            fetch(srv.port, "db-password", source="127.0.0.72", password=f"x{i}")
        check(fetch(srv.port, "db-password", source="127.0.0.72") == WANT, "--max-failures 0 locked")


def test_lockout_per_ipv6_64_and_ipv4_address_real_peers():
    """In namespaces: 5 wrong passwords from fd42:213:1::2 lock the whole fd42:213:1::/64
    (fd42:213:1::3 too), not c1's IPv4 address, not c2."""
    net = Netns(2)
    procs = Procs()
    try:
        net.add_addr(1, "fd42:213:1::3/64")
        net.add_addr(1, "10.213.1.3/24")
        time.sleep(0.3)
        srv = Server(procs, ["--timeout", "3"], netns=net.server, host="::")
        c1, c2 = net.clients
        for i in range(5):
            check(ns_fetch(c1, "fd42:213:1::1", srv.port, source="fd42:213:1::2", password=f"w{i}") is None,
                  "wrong password answered")
        check(ns_fetch(c1, "fd42:213:1::1", srv.port, source="fd42:213:1::3") is None,
              "same /64 not locked out")
        srv.wait_line("fd42:213:1::3", "locked out")
        check(ns_fetch(c1, "10.213.1.1", srv.port, source="10.213.1.2") == WANT, "c1 IPv4 locked by v6 failures")
        check(ns_fetch(c2, "fd42:213:2::1", srv.port, source="fd42:213:2::2") == WANT, "c2 v6 locked")
        for i in range(5):
            ns_fetch(c1, "10.213.1.1", srv.port, source="10.213.1.3", password=f"v{i}")
        check(ns_fetch(c1, "10.213.1.1", srv.port, source="10.213.1.3") is None, "IPv4 address not locked")
        check(ns_fetch(c1, "10.213.1.1", srv.port, source="10.213.1.2") == WANT, "neighbour IPv4 locked")
        check(ns_fetch(c2, "10.213.2.1", srv.port, source="10.213.2.2") == WANT, "c2 v4 locked")
        return "IPv6 locked per /64, IPv4 per address, others served"
    finally:
        procs.stop_all()
        net.close()
