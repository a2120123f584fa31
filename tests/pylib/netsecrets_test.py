"""The one way Python tests start and stop a `netsecrets receive` server (tests/interop.py and
tests/hostile/*.py both use it).

`ServerProcess` starts the binary (optionally inside a network namespace), sends its stderr to a
temporary file (never a pipe that could fill and stall the server), waits until it prints
`netsecrets: listening on ADDR:PORT` and takes the port from that line. `stop()` kills it by PID
and reaps it; it is safe to call twice, and `with ServerProcess(...) as srv:` calls it on every
exit path. `stop_pid(proc)` does the same for any other process a test starts.
"""

import os
import re
import signal
import subprocess
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_BIN = os.environ.get(
    "NETSECRETS_BIN",
    os.path.join(REPO, "target", "x86_64-unknown-linux-musl", "release", "netsecrets"),
)

LISTENING = re.compile(r"listening on (\S+)")


class ServerDidNotStart(AssertionError):
    pass


def stop_pid(proc, timeout=5.0):
    """Kills `proc` (a Popen) by PID if it still runs, then reaps it."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass


class ServerProcess:
    """A running `netsecrets receive --server HOST --port PORT ARGS...`."""

    def __init__(self, args, bin=None, host="127.0.0.1", port=0, netns=None, env=None, wait=True,
                 timeout=20.0):
        fd, self.log_path = tempfile.mkstemp(prefix="netsecrets-test-srv-", suffix=".log")
        self.logf = os.fdopen(fd, "wb")
        cmd = [bin or DEFAULT_BIN, "receive", "--server", host, "--port", str(port), *args]
        if netns:
            cmd = ["ip", "netns", "exec", netns] + cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.logf, env=env)
        self.pid = self.proc.pid
        self.port = None
        self.stopped = False
        if wait:
            try:
                self.wait_listening(timeout)
            except BaseException:
                self.stop()
                raise

    def wait_listening(self, timeout=20.0):
        """Waits (bounded) for the `listening on` line; returns the port it names."""
        end = time.time() + timeout
        while time.time() < end:
            m = LISTENING.search(self.log())
            if m:
                self.port = int(m.group(1).rsplit(":", 1)[1])
                return self.port
            if self.proc.poll() is not None:
                raise ServerDidNotStart(f"server exited early ({self.proc.returncode}): {self.log()}")
            time.sleep(0.02)
        raise ServerDidNotStart(f"server did not print 'listening on' within {timeout} s: {self.log()}")

    def log(self):
        """Everything the server wrote to stderr so far."""
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        """Kills the server by PID and reaps it; its log stays readable until `stop()`."""
        stop_pid(self.proc)

    def stop(self, keep_log=False):
        """Kills the server by PID and reaps it; removes its log file unless `keep_log`."""
        self.kill()
        if self.stopped:
            return
        self.stopped = True
        try:
            self.logf.close()
        except OSError:
            pass
        if not keep_log:
            try:
                os.unlink(self.log_path)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
