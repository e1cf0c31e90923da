"""catena nodes for tests: the node config, the process, its logs.

A test gets nodes from the `make_catena` fixture (conftest.py):

    node = make_catena(connect_ports=[...], timeouts={"head": "1s"})
    node.port, node.pid, node.conf_path, node.event_log(), node.access_log_lines(),
    node.access_records(), node.wait_access(s_action="TCP_TUNNELED"), node.reload(),
    node.stop(), node.expect_error(r"regex"), node.admin_port (an admin listener, if any)

The config (Config) is a dict rendered to libconfig text with exactly the keys of
etc/catena.conf. Defaults for tests: one http listener on a free 127.0.0.1 port, access
rules from the origins (connect_ports: 443 and the TLS origins; http_ports: 80, nginx plain
and the echo origin), the resolver pointed at dnsmasq with no hosts file, event and access
logs in the node's directory, timeouts.drain "5s" (teardown stays quick).
At teardown every node is stopped and the test fails if stderr or the event log shows a
sanitizer report, or the event log an err/crit/alert/emerg line the test did not declare.
"""
import copy
import os
import re
import signal
from pathlib import Path

from . import logs, util

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                     "ThreadSanitizer", "MemorySanitizer")
RELOADED = "config reloaded:"
RELOAD_REFUSED = "config reload refused:"


# --- libconfig text -----------------------------------------------------------------

class Raw(str):
    """Text inserted verbatim as a value (e.g. to write a deliberately bad config)."""


def _scalar(v):
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (str, Path)):
        s = str(v).replace("\\", "\\\\").replace('"', '\\"')
        return '"%s"' % s
    raise TypeError("cannot write %r as a libconfig scalar" % (v,))


def _value(v, indent):
    pad = "  " * (indent + 1)
    if isinstance(v, dict):
        inner = "".join("%s%s = %s;\n" % (pad, k, _value(x, indent + 1)) for k, x in v.items())
        return "{\n%s%s}" % (inner, "  " * indent)
    if isinstance(v, tuple) or (isinstance(v, list) and v and
                                any(isinstance(x, (dict, list, tuple)) for x in v)):
        # a libconfig list: ( ... ), elements of any kind
        return "( %s )" % ", ".join(_value(x, indent) for x in v)
    if isinstance(v, list):
        kinds = {type(x) for x in v}
        if len(kinds) > 1:
            # libconfig arrays must be homogeneous ("mismatched element type in array")
            return "( %s )" % ", ".join(_scalar(x) for x in v)
        return "[ %s ]" % ", ".join(_scalar(x) for x in v)
    return _scalar(v)


def render(cfg):
    """libconfig text for a dict of top-level settings."""
    return "".join("%s = %s;\n" % (k, _value(v, 0)) for k, v in cfg.items())


def merge(base, over):
    """Deep merge of dicts; a value None deletes the key."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def base_config(name, port, dns_server, node_dir, connect_ports, http_ports,
                client_networks=("127.0.0.0/8", "::1/128")):
    node_dir = Path(node_dir)
    return {
        "node": {"name": name},
        "listeners": ({"type": "http", "address": "127.0.0.1:%d" % port},),
        "access": {
            "client_networks": list(client_networks),
            "connect_ports": list(connect_ports),
            "http_ports": list(http_ports),
        },
        "resolver": {"servers": [dns_server], "hosts_file": ""},
        "timeouts": {"drain": "5s"},
        "log": {
            "event_file": str(node_dir / "event.log"),
            "event_level": "info",
            "access_file": str(node_dir / "access.log"),
        },
    }


CONVENIENCE = ("client_networks", "connect_ports", "http_ports")


def apply_overrides(cfg, overrides):
    """Overrides: top-level sections as dicts (merged), or the access shortcuts
    client_networks=, connect_ports=, http_ports=, or event_level=."""
    over = dict(overrides)
    access = {k: over.pop(k) for k in CONVENIENCE if k in over}
    if access:
        over["access"] = merge(over.get("access", {}), access)
    if "event_level" in over:
        over["log"] = merge(over.get("log", {}), {"event_level": over.pop("event_level")})
    return merge(cfg, over)


# --- the node ------------------------------------------------------------------------

class CatenaStartError(AssertionError):
    pass


class Catena:
    def __init__(self, binary, node_dir, name, cfg):
        self.binary = Path(binary)
        self.dir = Path(node_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.cfg = cfg
        self.conf_path = self.dir / "catena.conf"
        self.event_path = Path(cfg["log"]["event_file"])
        self.access_path = Path(cfg["log"]["access_file"])
        self.proc = None
        self.port = None
        self.expected_errors = []
        self.stopped_status = None  # exit status when the test stopped it itself
        self.start_failed = False
        self.problems = []          # found at teardown
        self._auto_listeners = None  # indexes of further listeners given port 0 by the test

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    @property
    def proxy_url(self):
        return "http://127.0.0.1:%d" % self.port

    # --- config -----------------------------------------------------------------

    def write_config(self, cfg=None, text=None):
        """Writes the node config: a dict (kept as .cfg) or raw text."""
        if text is None:
            if cfg is not None:
                self.cfg = cfg
            text = render(self.cfg)
        self.conf_path.write_text(text)
        return self.conf_path

    def update_config(self, **overrides):
        """Applies overrides (as for make_catena) to .cfg and writes the file."""
        self.cfg = apply_overrides(self.cfg, overrides)
        return self.write_config()

    def check_config(self, path=None, timeout=30):
        """Runs `catena -t -c FILE`; returns the CompletedProcess (bytes output)."""
        r = util.run([self.binary, "-t", "-c", path or self.conf_path], timeout=timeout)
        for stream in (r.stdout, r.stderr):
            text = stream.decode("utf-8", "replace")
            for m in SANITIZER_MARKERS:
                if m in text:
                    self.problems.append("`catena -t` output has %r:\n%s" % (m, text[-4000:]))
        return r

    # --- process --------------------------------------------------------------

    def set_listen_port(self, port):
        """Points the (first) listener at 127.0.0.1:port in .cfg (not yet written)."""
        self.port = port
        lsn = dict(self.cfg["listeners"][0])
        lsn["address"] = "127.0.0.1:%d" % port
        self.cfg["listeners"] = (lsn,) + tuple(self.cfg["listeners"][1:])

    def _pick_extra_ports(self):
        """Gives every further listener written with port 0 ("127.0.0.1:0") a reserved port
        (fresh on each try); returns the reservations, released just before the start."""
        out = []
        lsns = list(self.cfg["listeners"])
        for i in self._auto_listeners:
            r = util.PortReservation()
            lsn = dict(lsns[i])
            lsn["address"] = "127.0.0.1:%d" % r.port
            lsns[i] = lsn
            out.append(r)
        self.cfg["listeners"] = tuple(lsns)
        return out

    def listener_port(self, type_):
        """The port of the first listener of that type (e.g. "admin"), or None."""
        for lsn in self.cfg["listeners"]:
            if lsn.get("type") == type_:
                return int(str(lsn["address"]).rsplit(":", 1)[1])
        return None

    @property
    def admin_port(self):
        return self.listener_port("admin")

    def start(self, timeout=10.0, tries=3):
        """Starts catena in the foreground and waits until its listener accepts connections.

        The listening port is reserved until just before the start; if catena could not bind
        it because someone took it meanwhile, a new port is picked (up to `tries`). Further
        listeners written as "127.0.0.1:0" (e.g. an admin listener) get reserved ports the
        same way; node.listener_port("admin") / node.admin_port tell which.
        """
        last = ""
        if self._auto_listeners is None:
            self._auto_listeners = [i for i, l in enumerate(self.cfg["listeners"])
                                    if i > 0 and str(l.get("address", "")).endswith(":0")]
        for _ in range(tries):
            res = util.PortReservation()
            self.set_listen_port(res.port)
            extra = self._pick_extra_ports()
            self.write_config()
            res.release()
            for r in extra:
                r.release()
            if self._launch(timeout):
                return self
            last = self._startup_output()
            if not util.addr_in_use(last):
                break
        self.start_failed = True
        self.stopped_status = self.proc.returncode
        raise CatenaStartError("catena did not start listening on 127.0.0.1:%d within %.0fs: %s\n"
                               "--- command: %s -c %s\n--- output:\n%s\n--- config:\n%s" % (
                                   self.port, timeout,
                                   self.start_problem or self.proc.describe(), self.binary,
                                   self.conf_path, last[-4000:], self.conf_path.read_text()))

    def _launch(self, timeout):
        self.start_problem = None
        env = dict(os.environ)
        self.proc = util.Proc("catena", [self.binary, "-c", self.conf_path], self.dir, env=env)
        # Ready: the port is in LISTEN state and catena said so. The log line comes after
        # its signal handlers are in place, so a test's SIGHUP/SIGTERM cannot beat them.
        said = re.compile(r"listening on 127\.0\.0\.1:%d\b" % self.port)

        def ready():
            if not self.proc.alive():
                return True
            if not util.is_listening(self.port):
                return False
            return said.search(util.read_text(self.event_path)) or \
                said.search(self.proc.stderr())
        try:
            util.wait_until(ready, timeout, "catena to listen on 127.0.0.1:%d and log "
                            "\"listening on 127.0.0.1:%d\"" % (self.port, self.port))
        except util.WaitTimeout:
            self.start_problem = "still running after %.0fs but not ready (port in LISTEN: %s; " \
                "\"listening on 127.0.0.1:%d\" logged: %s); killed" % (
                    timeout, "yes" if util.is_listening(self.port) else "no", self.port,
                    "yes" if said.search(util.read_text(self.event_path)) else "no")
            self.proc.stop(timeout=5, sig=signal.SIGKILL)
            return False
        if self.proc.alive():
            return True
        return False

    def _startup_output(self):
        return "stderr:\n%s\nevent log:\n%s" % (self.proc.stderr()[-3000:],
                                                util.read_text(self.event_path)[-3000:])

    def _event_size(self):
        try:
            return self.event_path.stat().st_size
        except FileNotFoundError:
            return 0

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def send_signal(self, sig):
        assert self.alive(), "catena is not running: %s\n%s" % (self.proc.describe(),
                                                                self._startup_output())
        os.kill(self.pid, sig)

    def stop(self, timeout=30.0, check=True):
        """SIGTERM, wait up to timeout, then SIGKILL. Returns the exit status.

        With check, fails unless catena exited by itself with status 0.
        """
        if self.proc is None:
            return None
        status, killed = self.proc.stop(timeout=timeout)
        self.stopped_status = status
        if check:
            assert not killed, "catena did not exit within %.0fs of SIGTERM (killed)" % timeout
            assert status == 0, "catena exited with status %s after SIGTERM\n%s" % (
                status, self._startup_output())
        return status

    def wait_exit(self, timeout):
        """Waits for the process to end by itself; returns its status (or None if running)."""
        st = self.proc.wait(timeout)
        if st is not None:
            self.stopped_status = st
        return st

    # --- logs -----------------------------------------------------------------

    def event_text(self):
        return util.read_text(self.event_path)

    def event_log(self):
        """Parsed event-log lines (logs.Event: time level fac msg raw)."""
        return logs.parse_events(self.event_text())[0]

    def event_mark(self):
        """A position in the event log (byte offset) to look for lines after it."""
        return self._event_size()

    def events_since(self, mark):
        with open(self.event_path, "rb") as f:
            f.seek(mark)
            text = f.read().decode("utf-8", "replace")
        return logs.parse_events(text)[0]

    def wait_event(self, pattern, since=0, timeout=10.0, levels=None):
        """Waits for an event-log line (after byte offset `since`) whose message matches
        the regex; returns the Event."""
        rx = re.compile(pattern)

        def find():
            if not self.event_path.exists():
                return None
            for e in self.events_since(since):
                if rx.search(e.msg) and (levels is None or e.level in levels):
                    return e
            if not self.alive():
                raise AssertionError("catena exited (%s) while waiting for event %r\n%s" % (
                    self.proc.describe(), pattern, self._startup_output()))
            return None
        return util.wait_until(find, timeout, "event-log line matching %r in %s" % (
            pattern, self.event_path))

    def access_log(self):
        return logs.AccessLog(util.read_text(self.access_path))

    def access_log_lines(self):
        """Raw lines of the access log (headers included)."""
        return util.read_text(self.access_path).splitlines()

    def access_records(self):
        """Parsed transactions: dicts keyed by the #Fields names."""
        return self.access_log().records

    def wait_access(self, timeout=10.0, pred=None, **want):
        """Waits for an access-log record with the given field values (keyword spelling:
        s_action="TCP_TUNNELED", cs_host="origin.test") and/or pred(record); returns it."""
        def find():
            for r in self.access_log().find(**want):
                if pred is None or pred(r):
                    return r
            return None
        try:
            return util.wait_until(find, timeout, "access-log record %r" % (want,))
        except util.WaitTimeout as e:
            raise AssertionError("%s\naccess log now:\n%s" % (
                e, "\n".join(self.access_log_lines()[-30:])))

    # --- reload ---------------------------------------------------------------

    def reload(self, expect="reloaded", timeout=10.0):
        """SIGHUP, then waits for "config reloaded:" or "config reload refused:" (new lines
        only). expect: "reloaded", "refused" or None (either). Returns the Event.
        A refusal the test expects is declared as an expected error."""
        if expect in ("refused", None):
            self.expect_error(re.escape(RELOAD_REFUSED))
        mark = self.event_mark()
        self.send_signal(signal.SIGHUP)
        e = self.wait_event(re.escape(RELOADED) + "|" + re.escape(RELOAD_REFUSED), since=mark,
                            timeout=timeout)
        got = "reloaded" if RELOADED in e.msg else "refused"
        if expect is not None:
            assert got == expect, "expected the reload to be %s, event log says: %s" % (
                expect, e.raw)
        return e

    # --- teardown checks ------------------------------------------------------

    def expect_error(self, pattern):
        """Declares that err-or-worse event-log lines matching the regex are expected."""
        self.expected_errors.append(re.compile(pattern))

    def findings(self):
        """Everything that must fail the test: sanitizer output, unexpected err+ lines,
        an unexpected exit."""
        out = list(self.problems)
        if self.proc is None:
            return out
        texts = {"stderr": self.proc.stderr(), "event log": self.event_text()}
        for where, text in texts.items():
            for m in SANITIZER_MARKERS:
                if m in text:
                    i = text.index(m)
                    out.append("%s %s of catena %s has %r:\n%s" % (
                        self.name, where, self.pid, m, text[max(0, i - 500):i + 4000]))
        if self.start_failed:
            return out  # the start error already told the rest
        events, _ = logs.parse_events(texts["event log"])
        # With event_file "-" the event log is stderr: check those lines too.
        events += logs.parse_events(texts["stderr"])[0]
        for e in events:
            if e.level in logs.SEVERE and not any(p.search(e.msg) for p in self.expected_errors):
                out.append("%s: unexpected %s line in the event log: %s" % (self.name, e.level,
                                                                          e.raw))
        return out

    def teardown(self):
        """Stops the node (if the test did not) and returns the findings."""
        found = []
        if self.proc is not None:
            if self.stopped_status is None:
                if not self.proc.alive():
                    found.append("%s: catena exited during the test with status %s\n%s" % (
                        self.name, self.proc.returncode, self._startup_output()))
                    self.stopped_status = self.proc.returncode
                else:
                    status, killed = self.proc.stop(timeout=30)
                    self.stopped_status = status
                    if killed:
                        found.append("%s: catena did not exit within 30s of SIGTERM (killed)"
                                     % self.name)
                    elif status != 0:
                        found.append("%s: catena exited with status %s after SIGTERM\n%s" % (
                            self.name, status, self._startup_output()))
        found += self.findings()
        return found
