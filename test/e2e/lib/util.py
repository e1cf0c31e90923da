"""Paths, free loopback ports, bounded waits and child processes.

Every process the suite starts goes through Proc, which remembers it until it
is stopped by its own PID (terminate, then kill); an atexit hook stops any
left over if pytest dies between a start and its finalizer.
"""
import atexit
import errno
import hashlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def build_dir():
    """$CATENA_BUILD (set by test/run.sh; a separate dir under ASan), else <repo>/build."""
    b = os.environ.get("CATENA_BUILD")
    return Path(b) if b else REPO_ROOT / "build"


def catena_bin():
    return build_dir() / "catena"


def catenactl_bin():
    return build_dir() / "catenactl"


def require_binary(path, what):
    """Fails the current test with a clear message when a built program is missing."""
    import pytest
    if not os.access(str(path), os.X_OK):
        pytest.fail("%s not found or not executable at %s (build it with `make`, or set "
                    "CATENA_BUILD to the build directory)" % (what, path), pytrace=False)


# --- ports --------------------------------------------------------------------

class PortReservation:
    """A loopback port held by a bound (not listening) socket until release().

    While held, other processes' bind(port 0) and connect() auto-binding skip the
    port, so the window in which someone else can take it shrinks to the moment
    between release() and the server's own bind. With udp=True the same port is
    held for UDP too (DNS).
    """

    def __init__(self, host="127.0.0.1", udp=False):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _ in range(50):
            t = socket.socket(family, socket.SOCK_STREAM)
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            t.bind((host, 0))
            port = t.getsockname()[1]
            u = None
            if udp:
                u = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    u.bind((host, port))
                except OSError:
                    u.close()
                    t.close()
                    continue
            self.host, self.port, self._tcp, self._udp = host, port, t, u
            return
        raise RuntimeError("no free port with TCP and UDP both free on %s" % host)

    def release(self):
        for s in (self._tcp, self._udp):
            if s is not None:
                s.close()
        self._tcp = self._udp = None
        return self.port

    def __repr__(self):
        return "PortReservation(%s:%d)" % (self.host, self.port)


def free_port(host="127.0.0.1"):
    """A port that was free a moment ago (prefer PortReservation when you can)."""
    return PortReservation(host).release()


def _proc_net_listening(port):
    """True if some TCP socket in this network namespace listens on port (state 0A)."""
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) > 3 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except FileNotFoundError:
            continue
    return False


def is_listening(port):
    """Listening check that opens no connection (so it leaves no trace in a proxy's logs)."""
    return _proc_net_listening(port)


def can_connect(port, host="127.0.0.1", timeout=1.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --- waiting ------------------------------------------------------------------

class WaitTimeout(AssertionError):
    pass


def wait_until(pred, timeout, what, interval=0.02):
    """Polls pred() until it returns a true value (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise WaitTimeout("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def tail(path, n=40):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return "(no %s)" % path
    return "\n".join(lines[-n:])


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


# --- processes ----------------------------------------------------------------

_live = {}


class Proc:
    """A child process with stdout/stderr in files; stopped by PID, never by name."""

    def __init__(self, name, argv, log_dir, cwd=None, env=None, stdout=None):
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.argv = [str(a) for a in argv]
        self.stdout_path = log_dir / (name + ".stdout")
        self.stderr_path = log_dir / (name + ".stderr")
        out = open(self.stdout_path, "ab") if stdout is None else stdout
        err = open(self.stderr_path, "ab")
        try:
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=err, cwd=str(cwd) if cwd else None, env=env)
        finally:
            if stdout is None:
                out.close()
            err.close()
        self.pid = self.popen.pid
        _live[self.pid] = self

    def alive(self):
        return self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll()

    def send_signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout):
        """Exit status, or None if still running after timeout seconds."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=10.0, sig=signal.SIGTERM):
        """Signals the process, waits up to timeout, then SIGKILLs it.

        Returns (status, killed). Safe to call twice.
        """
        killed = False
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            if self.wait(timeout) is None:
                killed = True
                self.popen.kill()
                self.popen.wait(timeout=10)
        _live.pop(self.pid, None)
        return self.popen.returncode, killed

    def stderr(self):
        return read_text(self.stderr_path)

    def stdout(self):
        return read_text(self.stdout_path)

    def describe(self):
        return "%s (pid %d, %s)" % (self.name, self.pid,
                                     "running" if self.alive() else "exited %s" % self.returncode)


@atexit.register
def _stop_leftovers():
    for p in list(_live.values()):
        try:
            p.stop(timeout=2)
        except Exception:
            pass


def run(argv, timeout=60, input=None, env=None, cwd=None):
    """subprocess.run with a bound, captured bytes output, never raising on status."""
    return subprocess.run([str(a) for a in argv], input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, env=env,
                          cwd=str(cwd) if cwd else None, check=False)


def addr_in_use(text):
    return "Address already in use" in text or "EADDRINUSE" in text or \
        os.strerror(errno.EADDRINUSE) in text
