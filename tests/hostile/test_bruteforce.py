"""Brute force: repeated wrong passwords from one address lock that address (IPv4 address or
IPv6 address) out -- default 5 failures, then 30 s, doubling on each further failure -- without
affecting other addresses; an IPv6 /64 is locked as a whole after 4 times as many. Only a wrong
password in a well-formed (with a key: decrypted) request is a failure; protocol noise is not
(tests/hostile/test_admission.py)."""
import re
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
        # ... a success forgets nothing: new wrong passwords lock again at once (doubled).
        for i in range(5):
            fetch(srv.port, "db-password", source=bad, password=f"again-{i}")
        check(fetch(srv.port, "db-password", source=bad) is None, "not locked again")
        normal_ok(srv)
        return f"locked after 5 failures ({line.split('outcome=')[1]}), expired after 30 s"


def _locked_for(srv, peer, t_fail, t_check, full):
    """Waits for the lockout line written between t_fail (just before the failure that locked)
    and t_check (just after the refused attempt); checks it says `full` seconds less the time
    that passed between them (the server prints whole seconds left, rounded down)."""
    line = srv.wait_line(peer, r"locked out for \d+s")
    left = int(re.search(r"locked out for (\d+)s", line).group(1))
    lo = max(1, int(full - (t_check - t_fail)) - 1)
    check(lo <= left <= full, f"locked out for {left}s, want {lo}..{full}s: {line}")
    return left


def test_lockout_doubles_without_success():
    with Procs() as procs:
        srv = Server(procs, ["--timeout", "3", "--max-failures", "2"])
        bad = "127.0.0.68"
        fetch(srv.port, "db-password", source=bad, password="g0")
        t_fail = time.time()
        fetch(srv.port, "db-password", source=bad, password="g1")
        # The failure is recorded before the server closes: the lockout ends by t_end.
        t_end = time.time() + 30
        check(fetch(srv.port, "db-password", source=bad) is None, "not locked after --max-failures 2")
        _locked_for(srv, bad, t_fail, time.time(), 30)
        time.sleep(max(0.0, t_end + 0.5 - time.time()))
        n_lines = len(srv.lines_for(bad))
        t_fail = time.time()
        fetch(srv.port, "db-password", source=bad, password="g3")  # one more failure: 60 s
        # The guess after the lockout was evaluated (its line is written after the close).
        srv.wait_line(bad, "wrong-password", after=n_lines)
        check(fetch(srv.port, "db-password", source=bad) is None, "not locked again")
        t_check = time.time()
        later = srv.wait_line(bad, r"locked out for \d+s", after=n_lines)
        left = int(re.search(r"locked out for (\d+)s", later).group(1))
        lo = max(1, int(60 - (t_check - t_fail)) - 1)
        check(lo <= left <= 60, f"second lockout {left}s, want {lo}..60s (doubled): {later}")
        normal_ok(srv, binary=False)
        return f"--max-failures 2: 30 s, then {left}s left of 60 s after one more failure"


def test_max_failures_zero_disables():
    with Procs() as procs:
        srv = Server(procs, ["--timeout", "3", "--max-failures", "0"])
        for i in range(20):
            fetch(srv.port, "db-password", source="127.0.0.72", password=f"x{i}")
        check(fetch(srv.port, "db-password", source="127.0.0.72") == WANT, "--max-failures 0 locked")


def test_lockout_per_ipv6_address_and_64_real_peers():
    """In namespaces: 5 wrong passwords from fd42:213:1::2 lock that address, not its neighbour
    fd42:213:1::3, not c1's IPv4 address, not c2; 20 wrong passwords over ::2 to ::5 lock the
    whole fd42:213:1::/64 (::6 too); 5 wrong from 10.213.1.3 lock only that IPv4 address."""
    net = Netns(2)
    procs = Procs()
    try:
        for i in range(3, 7):
            net.add_addr(1, f"fd42:213:1::{i}/64")
        net.add_addr(1, "10.213.1.3/24")
        time.sleep(0.3)
        srv = Server(procs, ["--timeout", "3"], netns=net.server, host="::")
        c1, c2 = net.clients
        for i in range(5):
            check(ns_fetch(c1, "fd42:213:1::1", srv.port, source="fd42:213:1::2", password=f"w{i}") is None,
                  "wrong password answered")
        check(ns_fetch(c1, "fd42:213:1::1", srv.port, source="fd42:213:1::2") is None,
              "IPv6 address not locked out")
        srv.wait_line("fd42:213:1::2", "locked out")
        check(ns_fetch(c1, "fd42:213:1::1", srv.port, source="fd42:213:1::3") == WANT,
              "neighbour in the same /64 locked by another address's 5 failures")
        for a in ("3", "4", "5"):
            for i in range(5):
                check(ns_fetch(c1, "fd42:213:1::1", srv.port, source=f"fd42:213:1::{a}",
                               password=f"n{a}{i}") is None, "wrong password answered")
        check(ns_fetch(c1, "fd42:213:1::1", srv.port, source="fd42:213:1::6") is None,
              "/64 not locked out after 20 failures")
        srv.wait_line("fd42:213:1::6", "locked out")
        check(ns_fetch(c1, "10.213.1.1", srv.port, source="10.213.1.2") == WANT, "c1 IPv4 locked by v6 failures")
        check(ns_fetch(c2, "fd42:213:2::1", srv.port, source="fd42:213:2::2") == WANT, "c2 v6 locked")
        for i in range(5):
            ns_fetch(c1, "10.213.1.1", srv.port, source="10.213.1.3", password=f"v{i}")
        check(ns_fetch(c1, "10.213.1.1", srv.port, source="10.213.1.3") is None, "IPv4 address not locked")
        check(ns_fetch(c1, "10.213.1.1", srv.port, source="10.213.1.2") == WANT, "neighbour IPv4 locked")
        check(ns_fetch(c2, "10.213.2.1", srv.port, source="10.213.2.2") == WANT, "c2 v4 locked")
        return "IPv6 locked per address, then per /64 after 20; IPv4 per address; others served"
    finally:
        procs.stop_all()
        net.close()
