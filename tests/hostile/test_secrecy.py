"""No secret value, password or key in any stdout/stderr line at any verbosity (except a
secret fetched to stdout on purpose), nor in the server's /proc/<pid>/cmdline or environ when the
secrets come from files."""
import os
import shutil
import subprocess
import tempfile

from nslib import BIN, Procs, Server, check, exchange_raw, frame, seal

PW = "pw-SENTINEL-q8w7e6"
KEYSTR = "key-SENTINEL-z1x2c3"
VALS = {"db": b"value-SENTINEL-db-55aa", "tls": b"value-SENTINEL-tls-66bb\nline2"}
GUESS = "guess-SENTINEL-wrong"


def forbidden(text, allow=()):
    hits = []
    for s in [PW, KEYSTR, GUESS, *[v.decode() for v in VALS.values()], "value-SENTINEL"]:
        if s in text and s not in allow:
            hits.append(s)
    return hits


def test_no_secret_in_logs_or_cmdline():
    procs = Procs()
    d = tempfile.mkdtemp(prefix="netsecrets-hostile-secrecy-")
    try:
        def w(name, data):
            p = os.path.join(d, name)
            with open(p, "wb") as f:
                f.write(data)
            os.chmod(p, 0o400)
            return p
        pwf, keyf = w("pw", PW.encode() + b"\n"), w("key", KEYSTR.encode() + b"\n")
        wrongpw, wrongkey = w("wrongpw", GUESS.encode()), w("wrongkey", b"other-key")
        args = ["--password-file", pwf, "--encryption-key-file", keyf, "--verbose", "--timeout", "3",
                "--max-failures", "0"]
        for n, v in VALS.items():
            args += ["--secret-file", f"{n}={w('v-' + n, v)}"]
        srv = Server(procs, args, password=None, key=None, secrets={})
        for what in ("cmdline", "environ"):
            raw = open(f"/proc/{srv.pid}/{what}", "rb").read().decode("latin-1")
            check(not forbidden(raw), f"server /proc/pid/{what} holds {forbidden(raw)}")

        def send(*extra, pw=pwf, key=keyf, names="db,tls"):
            cmd = [BIN, "send", "--server", "127.0.0.1", "--port", str(srv.port), "--password-file", pw,
                   "--request_secrets", names, "--timeout", "2", *extra]
            if key:
                cmd += ["--encryption-key-file", key]
            return subprocess.run(cmd, capture_output=True, timeout=30)

        out = os.path.join(d, "out", "s")
        runs = [
            ("verbose to file", send("--verbose", "--file-output", out), True, 0),
            ("verbose to stdout", send("--verbose"), False, 0),
            ("quiet to stdout", send(), False, 0),
            ("wrong password", send("--verbose", pw=wrongpw), True, 1),
            ("wrong key", send("--verbose", key=wrongkey), True, 1),
            ("no key (plaintext)", send("--verbose", key=None), True, 1),
            ("not found", send("--verbose", names="db,nope"), True, 1),
            ("insecure + key", send("--verbose", "--insecure"), True, 1),
        ]
        for label, r, stdout_must_be_clean, rc in runs:
            check(r.returncode == rc, f"{label}: exit {r.returncode}, expected {rc}: {r.stderr!r}")
            err = r.stderr.decode("latin-1")
            check(not forbidden(err), f"{label}: stderr shows {forbidden(err)}: {err!r}")
            if stdout_must_be_clean:
                check(r.stdout == b"", f"{label}: stdout not empty")
        check(open(out, "rb").read() == VALS["db"] + b"\n" + VALS["tls"], "file content wrong")
        # Raw hostile requests carrying the right password in clear, and a wrong guess, encrypted.
        exchange_raw(srv.port, frame(f"{PW} db".encode()), source="127.0.0.90")
        exchange_raw(srv.port, frame(seal(KEYSTR, f"{GUESS} db".encode())), source="127.0.0.91")
        exchange_raw(srv.port, frame(seal(KEYSTR, f"{PW} db".encode())), source="127.0.0.92")
        srv.wait_line("127.0.0.92", "outcome=served")
        log = srv.log()
        check(not forbidden(log), f"server log shows {forbidden(log)}")
        lines = len(log.splitlines())
        return f"{len(runs)} client runs and {lines} server log lines at --verbose: no value, password or key"
    finally:
        procs.stop_all()
        shutil.rmtree(d, ignore_errors=True)
