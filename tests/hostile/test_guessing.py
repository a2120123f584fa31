"""Password guessing against the lockout, the ways a review found around it: valid requests
between guesses, a failure table filled with locked-out addresses, and the honest client with a
stale password file (whose repeats must cost its address one failure, not five)."""
import threading
import time

from nslib import SECRETS, Procs, Server, check, fetch

WANT = SECRETS["db-password"]


def _lines(srv, peer, what):
    return [l for l in srv.lines_for(peer) if what in l]


def test_valid_requests_between_guesses_do_not_reset_the_budget():
    """4 wrong guesses then one request with the address's own valid password, 12 times over:
    at most 5 (the budget) wrong passwords are evaluated, then the address is locked out."""
    with Procs() as procs:
        srv = Server(procs, ["--timeout", "3"])  # default --max-failures 5
        peer = "127.0.0.70"
        n = 0
        for round_ in range(12):
            for _ in range(4):
                fetch(srv.port, "db-password", source=peer, password=f"guess-{n}")
                n += 1
            fetch(srv.port, "db-password", source=peer)
        time.sleep(0.3)
        wrong = len(_lines(srv, peer, "outcome=wrong-password"))
        locked = len(_lines(srv, peer, "locked out"))
        check(locked > 0, f"{n} wrong guesses mixed with valid requests, never locked out")
        check(wrong <= 5, f"{wrong} wrong passwords evaluated, budget 5")
        return f"{n} guesses sent, {wrong} evaluated, {locked} refused as locked out"


def _fill(port, addrs, failures, threads=8):
    """Sends `failures` distinct wrong passwords from each address, in parallel."""
    todo = list(addrs)
    lock = threading.Lock()

    def run():
        while True:
            with lock:
                if not todo:
                    return
                a = todo.pop()
            for i in range(failures):
                fetch(port, "db-password", source=a, password=f"fill-{a}-{i}", timeout=3)

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def test_table_full_of_lockouts_gives_two_guessers_no_more():
    """16 383 locked-out addresses fill the failure table (all but one entry); then two fresh
    addresses take turns guessing. Each must be locked out after its own budget (2 here), and a
    guess must cost about what it costs on an empty table."""
    with Procs() as procs:
        srv = Server(procs, ["--timeout", "3", "--max-failures", "2"])
        a, b = "127.0.0.71", "127.0.0.72"

        def timed_guess(server, src, i):
            t0 = time.perf_counter()
            fetch(server.port, "db-password", source=src, password=f"turn-{src}-{i}")
            return time.perf_counter() - t0

        t0 = time.time()
        fill = [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(16_383)]
        _fill(srv.port, fill, 2)
        took = time.time() - t0
        check(took < 28, f"filling took {took:.0f}s: the fill's lockouts (30 s) would expire")
        times = []
        for i in range(10):
            for src in (a, b):
                times.append(timed_guess(srv, src, i))
        for src in (a, b):
            check(fetch(srv.port, "db-password", source=src) is None,
                  f"{src} still served after 10 guesses against a full table")
            wrong = len(_lines(srv, src, "outcome=wrong-password"))
            check(wrong <= 2, f"{src}: {wrong} wrong passwords evaluated, budget 2")
        times.sort()
        med = times[len(times) // 2] * 1e6
        empty = Server(procs, ["--timeout", "3", "--max-failures", "2"])
        base = sorted(timed_guess(empty, f"127.0.0.{75 + i % 2}", i) for i in range(4))
        return (f"table filled in {took:.1f}s; two guessers locked after 2 each; median guess "
                f"{med:.0f} us against the full table (empty table: {base[0] * 1e6:.0f} us)")


def test_same_wrong_password_repeated_costs_the_budget_once():
    """A client with a stale password file retries the same wrong password: its address is never
    locked out, so the right password (once fixed) is served at once; distinct guesses from the
    same address still lock it."""
    with Procs() as procs:
        srv = Server(procs, ["--timeout", "3"])  # default --max-failures 5
        peer = "127.0.0.74"
        for _ in range(20):
            check(fetch(srv.port, "db-password", source=peer, password="stale-password") is None,
                  "wrong password answered")
        check(fetch(srv.port, "db-password", source=peer) == WANT,
              "20 repeats of one wrong password locked the address out")
        for i in range(4):
            fetch(srv.port, "db-password", source=peer, password=f"distinct-{i}")
        check(fetch(srv.port, "db-password", source=peer) is None,
              "5 distinct wrong passwords did not lock the address out")
        srv.wait_line(peer, "locked out")
        return "20 repeats of one stale password: served after; 5 distinct: locked out"
