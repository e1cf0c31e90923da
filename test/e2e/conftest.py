"""Fixtures of catena's end-to-end suite: real programs on loopback only.

Session-scoped (started once, on first use, stopped at the end):
  session_dir  the run's temp dir (deleted at the end unless CATENA_E2E_KEEP=1, which keeps it
               and prints where it is)
  pki          test PKI (lib/pki.py: root, intermediate, leaves, CRL, OCSP index)
  files        the origins' document root (100MiB, 10MiB, small.txt, index.html + sha256)
  nginx        plain and TLS origins (lib/origins.py)
  echo         the Python echo origin (lib/echo_server.py)
  dns          dnsmasq answering the test names (lib/dnsmasq.py)
  origins      all of the above in one object, with URL helpers
  keyring      catena's issuer keyrings made with catenactl (lib/intercept.py: root +
               intermediate; clients trust keyring.root_cert)
  echo_tls     the echo origin over TLS (leaf "echo.test" from the test PKI), .port
  val_origins  certificate-validation origins: a second nginx with one certificate case per
               port and the OCSP responders they name (lib/valorigins.py)
Per test:
  make_catena  factory of catena nodes (lib/catena.py); every node is stopped and checked
               (sanitizers, unexpected err+ event-log lines) when the test ends
  catena       one node with the default test config
  make_intercepting  make_catena with a tls section that intercepts everything with
               `keyring` (tls={...} changes keys of it; admin=True adds an admin listener)
  test_dir     a directory of the test's own, inside the session dir

Environment: CATENA_BUILD (the build directory; default <repo>/build), CATENA_E2E_KEEP=1,
CATENA_E2E_DEBUG=1 (nodes log at debug level). A per-test watchdog (SIGALRM, default 300 s,
`@pytest.mark.timeout(N)` to change) turns a hang into a failure.
"""
import os
import re
import resource
import shutil
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lib import catena as catena_mod  # noqa: E402
from lib import dnsmasq, intercept, origins as origins_mod, pki as pki_mod, util  # noqa: E402
from lib import valorigins  # noqa: E402

DEFAULT_TEST_TIMEOUT = 300
_kept_dir = []


# --- process-wide setup --------------------------------------------------------------

def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): per-test watchdog (default %d s)"
                            % DEFAULT_TEST_TIMEOUT)
    # 1,000 concurrent tunnels need 1,000+ descriptors here and 2,000+ in catena (inherited).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    # A proxy from the environment (or NO_PROXY=127.0.0.1) would bypass or wrap catena.
    for k in list(os.environ):
        if k.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy"):
            del os.environ[k]


def pytest_terminal_summary(terminalreporter):
    for d in _kept_dir:
        terminalreporter.write_line("catena e2e: temp dir kept at %s" % d)


class TestTimeout(Exception):
    pass


def _watchdog(item, phase):
    m = item.get_closest_marker("timeout")
    secs = int(m.args[0]) if m and m.args else DEFAULT_TEST_TIMEOUT

    def fire(signum, frame):
        raise TestTimeout("%s of %s took more than %d s (watchdog)" % (phase, item.nodeid, secs))
    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, secs)
    return old


def _unwatch(old):
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    old = _watchdog(item, "setup")
    try:
        yield
    finally:
        _unwatch(old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    old = _watchdog(item, "test")
    try:
        yield
    finally:
        _unwatch(old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    old = _watchdog(item, "teardown")
    try:
        yield
    finally:
        _unwatch(old)


# --- session fixtures ----------------------------------------------------------------

@pytest.fixture(scope="session")
def session_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("catena-e2e")
    yield d
    if os.environ.get("CATENA_E2E_KEEP") == "1":
        _kept_dir.append(d)
        sys.stderr.write("\ncatena e2e: temp dir kept at %s\n" % d)
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def pki(session_dir):
    ocsp = util.PortReservation()
    crl = util.PortReservation()
    p = pki_mod.build(session_dir / "pki", ocsp.port, crl.port)
    # Held until the servers that answer at these URLs start (the ports are in the certs).
    p.ocsp_reservation = ocsp
    p.crl_reservation = crl
    yield p
    ocsp.release()
    crl.release()


@pytest.fixture(scope="session")
def files(session_dir):
    return origins_mod.make_files(session_dir / "www")


@pytest.fixture(scope="session")
def nginx(session_dir, files, pki):
    n = origins_mod.start_nginx(session_dir / "nginx", files, pki, crl_reservation=pki.crl_reservation)
    yield n
    n.stop()


@pytest.fixture(scope="session")
def echo(session_dir):
    e = origins_mod.start_echo(session_dir / "echo")
    yield e
    e.stop()


@pytest.fixture(scope="session")
def dns(session_dir):
    d = dnsmasq.start_dnsmasq(session_dir / "dnsmasq")
    yield d
    d.stop()


class Origins:
    """Every origin of the session, with URL helpers (names resolve through dnsmasq)."""

    def __init__(self, pki, files, nginx, echo, dns):
        self.pki, self.files, self.nginx, self.echo, self.dns = pki, files, nginx, echo, dns

    @property
    def http_port(self):
        return self.nginx.http_port

    def tls_port(self, name="origin.test"):
        return self.nginx.tls_ports[name]

    @property
    def echo_port(self):
        return self.echo.port

    def plain_url(self, path="/"):
        return "http://plain.test:%d%s" % (self.nginx.http_port, path)

    def tls_url(self, path="/", name="origin.test"):
        return "https://%s:%d%s" % (name, self.nginx.tls_ports[name], path)

    def echo_url(self, path="/"):
        return "http://echo.test:%d%s" % (self.echo.port, path)

    def default_connect_ports(self):
        return [443] + sorted(self.nginx.tls_ports.values())

    def default_http_ports(self):
        return [80, self.nginx.http_port, self.echo.port]


@pytest.fixture(scope="session")
def origins(pki, files, nginx, echo, dns):
    return Origins(pki, files, nginx, echo, dns)


@pytest.fixture(scope="session")
def keyring(session_dir):
    return intercept.make_keyring(session_dir / "keyring")


@pytest.fixture(scope="session")
def echo_tls(session_dir, origins):
    # Issued after nginx started (through `origins`), so nginx does not serve this leaf too.
    leaf = origins.pki.issue("echo.test")
    e = origins_mod.start_echo(session_dir / "echo-tls", name="echo-tls",
                               args=["--cert", leaf.chain, "--key", leaf.key])
    e.leaf = leaf
    yield e
    e.stop()


@pytest.fixture(scope="session")
def val_origins(session_dir, origins):
    # After `origins`: the main nginx must not serve the leaves issued here.
    v = valorigins.ValOrigins(session_dir / "validation", origins.pki, origins.files)
    try:
        v.start()
    except BaseException:
        v.stop()
        raise
    yield v
    v.stop()


# --- per-test fixtures ---------------------------------------------------------------

def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:120]


@pytest.fixture
def test_dir(request, session_dir):
    d = session_dir / "tests" / _safe(request.node.name)
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture
def make_catena(request, test_dir, origins):
    """make_catena(start=True, name=None, config=None, **overrides) -> lib.catena.Catena.

    overrides: connect_ports=, http_ports=, client_networks=, event_level=, or any top-level
    section as a dict merged into the default (timeouts={"head": "1s"}, limits={...},
    log={...}, tls={...}); a value None removes a key. config= replaces the whole dict.
    """
    nodes = []

    def make(start=True, name=None, config=None, **overrides):
        util.require_binary(util.catena_bin(), "catena")
        name = name or "e2e-node%d" % (len(nodes) + 1)
        node_dir = test_dir / name
        node_dir.mkdir(parents=True, exist_ok=True)
        cfg = config
        if cfg is None:
            cfg = catena_mod.base_config(name, 0, origins.dns.server, node_dir,
                                         origins.default_connect_ports(),
                                         origins.default_http_ports())
            if os.environ.get("CATENA_E2E_DEBUG") == "1":
                cfg["log"]["event_level"] = "debug"
            cfg = catena_mod.apply_overrides(cfg, overrides)
        node = catena_mod.Catena(util.catena_bin(), node_dir, name, cfg)
        nodes.append(node)
        if start:
            node.start()
        else:
            # A config that `catena -t` accepts as is: a real (free a moment ago) port.
            if config is None:
                node.set_listen_port(util.free_port())
            node.write_config()
        return node

    yield make
    found = []
    for n in nodes:
        found += n.teardown()
    if found:
        pytest.fail("\n\n".join(found), pytrace=False)


@pytest.fixture
def catena(make_catena):
    return make_catena()


@pytest.fixture
def make_intercepting(make_catena, keyring, origins):
    """make_intercepting(tls=None, admin=False, **overrides) -> lib.catena.Catena that
    intercepts every CONNECT (tls.intercept "all") with the session keyring, trusting origins
    through the test PKI root only. tls: keys of the tls section to change (None removes).
    admin: also an admin listener (node.admin_port)."""
    def make(tls=None, admin=False, **overrides):
        section = intercept.tls_section(keyring, origins.pki, **(tls or {}))
        if admin:
            overrides.setdefault("listeners", intercept.listeners_with_admin())
        return make_catena(tls=section, **overrides)
    return make
