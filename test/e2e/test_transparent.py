"""Transparent mode end to end, in network namespaces made by the test (lib/netns.py).

Topology (the same shape for each of the module's gateways, REDIRECT and TPROXY, each in
namespaces of its own; every namespace, link and rule is deleted at the end):

    cli 10.254.0.2 --lan0-- 10.254.0.1 gw 10.254.2.1 --wan0-- 10.254.2.2 org
        fd00:254::2         fd00:254::1   fd00:254:2::1        fd00:254:2::2

  gw   the gateway: catena (started per test with `ip netns exec gw catena -c CONF`, a
       transparent listener on 0.0.0.0:3129 and [::]:3129) and the REDIRECT of the LAN's
       port 443 to it, set up with contrib/transparent/setup.sh -6 lan0
  org  the origins, on addresses of their own (a dummy interface, else lo), routed by gw:
         10.254.1.10:443  TLS echo origin (lib/echo_server.py), leaf origin.test (valid)
         10.254.1.11:443  TLS echo origin, leaf expired.test
         10.254.1.12:443  plain TCP echo: a trusted server in the bundle's policy
         10.254.1.13:443  plain TCP echo: not trusted
         10.254.1.14:443  plain TCP service that speaks first (a banner, as SSH does)
         [fd00:254:1::10]:443  openssl s_server, leaf origin.test
  cli  the client (curl, openssl s_client, python sockets) with its default route via gw;
       it asks catena nothing: it connects to the origins' addresses and is redirected.

The TPROXY gateways (fixtures tp_topo, tp_ct_topo; tests test_tproxy_*): the rules are
contrib/transparent/setup.sh -t -6 -p 3130 -a 10.254.0.1 -a fd00:254::1 lan0 (mangle
TPROXY with mark 0x1, policy routing table 100, no NAT), catena's listeners 0.0.0.0:3130
and [::]:3130 with tproxy = true. tp_topo's gateway tracks no connections; tp_ct_topo's
also has a stateful firewall's conntrack rule (INPUT, ctstate INVALID), as any gateway
with NAT or connection tracking. Skipped, with the reason, where the kernel has no TPROXY
(xt_TPROXY, xt_socket) or transparent sockets; the IPv6 tests where IPv6 TPROXY is missing.

catena's resolver in gw points at 127.0.0.1:9 with no hosts file: these flows need no DNS
(the destinations are addresses), and nothing leaves the namespaces. Revocation checks are
off (the test PKI's OCSP and CRL servers are not in these namespaces).

Skipped, with the reason, unless root with `ip` and `iptables` and namespaces can be made.
The scripts' own test (setup.sh, teardown.sh) uses a namespace of its own.
"""
import json
import os
import re
import socket
import sys
from pathlib import Path

import pytest

from lib import catena as catena_mod
from lib import http, intercept, logs, netns, util

SCRIPTS = util.REPO_ROOT / "contrib" / "transparent"
TP_PORT = 3129
TPROXY_PORT = 3130
CLI, GW_LAN, GW_WAN, ORG = "10.254.0.2", "10.254.0.1", "10.254.2.1", "10.254.2.2"
CLI6, GW6_LAN, GW6_WAN, ORG6 = "fd00:254::2", "fd00:254::1", "fd00:254:2::1", "fd00:254:2::2"
VALID, EXPIRED, TRUSTED, UNTRUSTED, BANNER = ("10.254.1.10", "10.254.1.11", "10.254.1.12",
                                              "10.254.1.13", "10.254.1.14")
VALID6 = "fd00:254:1::10"
CLIENT_NETS = ["10.254.0.0/24", "fd00:254::/64"]
SRV_BANNER = b"SSH-2.0-catena_e2e_banner\r\n"

DENIED_NOT_TLS = "denied: not TLS, and the policy forces SSL"
DENIED_SILENT = r"denied: (the server spoke first|the client sent nothing), and the policy forces SSL"
DIRECT = "denied: transparent listener reached directly"

# The recipe of the classic SSL proxy guide, as etc/bundle/policy.cpl writes it, with the
# trusted server of this topology.
FORCE_SSL_POLICY = """
define condition trusted_servers
    url.address=%s
end condition

<proxy>
    allow

<ssl-intercept "force SSL on 443">
    url.port=443 condition=!trusted_servers force_protocol(ssl)
""" % TRUSTED

# A plain TCP echo (one thread per connection); with --banner it speaks first.
TCP_ECHO = r"""
import socket, sys, threading
host, port = sys.argv[1], int(sys.argv[2])
banner = sys.argv[3].encode() if len(sys.argv) > 3 else b""
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
srv = socket.socket(fam, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((host, port))
srv.listen(64)
def serve(c):
    try:
        c.settimeout(60)
        if banner:
            c.sendall(banner)
        while True:
            b = c.recv(65536)
            if not b:
                break
            c.sendall(b)
    except OSError:
        pass
    finally:
        c.close()
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# A client for raw TCP exchanges run inside cli: connects, sends, reads until it has seen
# `expect` (hex; empty: until EOF or the deadline), prints what happened as JSON.
TCP_CLIENT = r"""
import json, socket, sys, time
host, port, send, expect, timeout = (sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3]),
                                     bytes.fromhex(sys.argv[4]), float(sys.argv[5]))
out = {"connected": False, "data": "", "eof": False, "reset": False, "error": None}
data = b""
try:
    s = socket.create_connection((host, port), timeout=timeout)
    out["connected"] = True
    if send:
        s.sendall(send)
    deadline = time.monotonic() + timeout
    while not (expect and expect in data):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            b = s.recv(65536)
        except socket.timeout:
            break
        if not b:
            out["eof"] = True
            break
        data += b
except ConnectionResetError:
    out["reset"] = True
except OSError as e:
    out["error"] = str(e)
out["data"] = data.hex()
print(json.dumps(out))
"""


# --- the topology ----------------------------------------------------------------------

class Topology:
    """The module's namespaces (gw, cli, org), origins and files. tproxy: the gateway's
    rules are setup.sh -t's (TPROXY) and catena's listeners have tproxy = true; stateful:
    the gateway also runs a conntrack rule (as any stateful firewall or NAT does)."""

    def __init__(self, d, lab, pki, tproxy=False, stateful=False):
        self.dir, self.lab, self.pki = Path(d), lab, pki
        self.tproxy, self.stateful = tproxy, stateful
        self.port = TPROXY_PORT if tproxy else TP_PORT
        self.v6_why = None  # why IPv6 cannot be used in this topology, or None
        self.gw = lab.netns("gw")
        self.cli = lab.netns("cli")
        self.org = lab.netns("org")
        self.origin_dev = None
        self.echo_script = self.dir / "tcp_echo.py"
        self.echo_script.write_text(TCP_ECHO)
        self.client_script = self.dir / "tcp_client.py"
        self.client_script.write_text(TCP_CLIENT)

    def build(self):
        lab, gw, cli, org = self.lab, self.gw, self.cli, self.org
        if self.tproxy:
            why = gw.tproxy_unavailable()
            if why:
                pytest.skip("TPROXY is not available on this kernel: %s" % why)
            self.v6_why = gw.tproxy_unavailable(v6=True)
        v6 = self.v6_why is None
        lab.veth(gw, "lan0", GW_LAN + "/24", cli, "eth0", CLI + "/24")
        lab.veth(gw, "wan0", GW_WAN + "/24", org, "eth0", ORG + "/24")
        cli.ip("route", "add", "default", "via", GW_LAN)
        org.ip("route", "add", "default", "via", GW_WAN)
        gw.ip("route", "add", "10.254.1.0/24", "via", ORG)
        if v6:
            gw.ip("-6", "addr", "add", GW6_LAN + "/64", "dev", "lan0", "nodad")
            cli.ip("-6", "addr", "add", CLI6 + "/64", "dev", "eth0", "nodad")
            gw.ip("-6", "addr", "add", GW6_WAN + "/64", "dev", "wan0", "nodad")
            org.ip("-6", "addr", "add", ORG6 + "/64", "dev", "eth0", "nodad")
            cli.ip("-6", "route", "add", "default", "via", GW6_LAN)
            org.ip("-6", "route", "add", "default", "via", GW6_WAN)
            gw.ip("-6", "route", "add", "fd00:254:1::/64", "via", ORG6)
        self.origin_dev = org.add_addresses(["%s/32" % a for a in
                                             (VALID, EXPIRED, TRUSTED, UNTRUSTED, BANNER)] +
                                            ([VALID6 + "/128"] if v6 else []))
        self._start_origins(v6)
        argv = [SCRIPTS / "setup.sh", "-p", str(self.port)]
        if v6:
            argv.append("-6")
        if self.tproxy:
            # --on-ip: the gateway's LAN addresses (catena's wildcard listeners have them
            # too, and so do the listeners bound to them in the direct-connection test).
            argv += ["-t", "-a", GW_LAN] + (["-a", GW6_LAN] if v6 else [])
        r = gw.run(argv + ["lan0"], check=False)
        assert r.returncode == 0, "setup.sh failed in %s:\n%s%s" % (gw.name, r.stdout,
                                                                    r.stderr)
        if self.stateful:
            # A stateful firewall's rule: from here on the gateway tracks connections.
            for fam in ([False, True] if v6 else [False]):
                gw.iptables("-A", "INPUT", "-m", "conntrack", "--ctstate", "INVALID",
                            "-j", "DROP", v6=fam)
        return self

    def _start_origins(self, v6=True):
        org, pki, d = self.org, self.pki, self.dir / "origins"
        echo_py = Path(__file__).resolve().parent / "lib" / "echo_server.py"
        for name, addr in (("origin.test", VALID), ("expired.test", EXPIRED)):
            leaf = pki.leaf(name)
            p = org.start("tls-" + name, [sys.executable, echo_py, "--host", addr, "--port",
                                          "443", "--cert", leaf.chain, "--key", leaf.key], d)
            self._wait_origin(addr, p)
        for name, addr, extra in (("trusted", TRUSTED, []), ("untrusted", UNTRUSTED, []),
                                  ("banner", BANNER, [SRV_BANNER.decode()])):
            p = org.start("echo-" + name, [sys.executable, self.echo_script, addr, "443"] +
                          extra, d)
            self._wait_origin(addr, p)
        if not v6:
            return
        leaf = pki.leaf("origin.test")
        p = org.start("s_server6", ["openssl", "s_server", "-accept", "[%s]:443" % VALID6,
                                    "-cert", leaf.cert, "-key", leaf.key, "-cert_chain",
                                    pki.inter_cert, "-www", "-quiet"], d)
        self._wait_origin(VALID6, p)

    def _wait_origin(self, addr, proc):
        def up():
            if not proc.alive():
                raise AssertionError("origin %s exited: %s\n%s" % (
                    addr, proc.describe(), proc.stderr()[-2000:]))
            return self.org_socket(addr)
        util.wait_until(up, 10, "origin %s to listen on port 443" % addr, interval=0.05)

    def org_socket(self, addr, state="0A"):
        """Whether org has a TCP socket on addr:443 in that state (/proc/net/tcp's st:
        0A listening, 01 established); read from /proc, no connection made."""
        six = ":" in addr
        raw = socket.inet_pton(socket.AF_INET6 if six else socket.AF_INET, addr)
        # /proc/net/tcp{,6} print each 32-bit word of the address in host (little) order.
        want = "".join(raw[i:i + 4][::-1].hex().upper() for i in range(0, len(raw), 4))
        want += ":01BB"
        text = self.org.run(["cat", "/proc/net/tcp6" if six else "/proc/net/tcp"],
                            check=False).stdout
        return any(len(f) > 3 and f[1] == want and f[3] == state
                   for f in (line.split() for line in text.splitlines()))

    # --- clients inside cli ----------------------------------------------------------

    def tcp(self, host, port, send=b"", expect=b"", timeout=5.0):
        """A raw TCP exchange from cli; dict: connected, data (bytes), eof, reset, error."""
        r = self.cli.run([sys.executable, self.client_script, host, str(port), send.hex(),
                          expect.hex(), str(timeout)], timeout=timeout + 20)
        out = json.loads(r.stdout)
        out["data"] = bytes.fromhex(out["data"])
        return out

    def curl(self, url, *args, resolve=None, cacert=None, max_time=20, verbose=False):
        """curl from cli; an http.CurlResult (every response head parsed)."""
        hdr = self.dir / ("curl-%s.hdr" % os.urandom(4).hex())
        argv = ["curl", "-sS", "--max-time", str(max_time), "-D", hdr]
        if verbose:
            argv.append("-v")
        if resolve:
            argv += ["--resolve", resolve]
        if cacert is not None:
            argv += ["--cacert", cacert]
        argv += list(args) + [url]
        argv = [str(a) for a in argv]
        try:
            p = self.cli.run_bytes(argv, timeout=max_time + 15)
            raw = hdr.read_bytes() if hdr.exists() else b""
        finally:
            if hdr.exists():
                hdr.unlink()
        heads = [http.parse_head(b.strip(b"\r\n")) for b in raw.split(b"\r\n\r\n")
                 if b.strip(b"\r\n").startswith(b"HTTP/")]
        return http.CurlResult(argv, p.returncode, p.stdout,
                               p.stderr.decode("utf-8", "replace"), heads)

    def s_client(self, host, port, servername, cafile, timeout=30, extra=()):
        """openssl s_client from cli (no proxy: the connection is redirected)."""
        connect = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
        argv = ["openssl", "s_client", "-connect", connect, "-servername", servername,
                "-CAfile", str(cafile), "-verify_return_error", "-showcerts"] + list(extra)
        r = self.cli.run_bytes(argv, timeout=timeout, input=b"")
        return intercept.SClient(argv, r.returncode, r.stdout.decode("utf-8", "replace"),
                                 r.stderr.decode("utf-8", "replace"))


def _topology(session_dir, pki, sub, **kw):
    """Builds a Topology in its own Lab (a generator for the fixtures: yields it, then
    deletes everything)."""
    why = netns.unavailable()
    if why:
        pytest.skip("transparent-mode tests need network namespaces: %s" % why)
    for prog in ("curl", "openssl"):
        if netns.tool(prog) is None:
            pytest.skip("%s not found" % prog)
    d = session_dir / sub
    d.mkdir(parents=True, exist_ok=True)
    lab = netns.Lab()
    try:
        t = Topology(d, lab, pki, **kw).build()
        yield t
    finally:
        left = lab.destroy()
        assert not left, "network namespaces left behind: %s" % left


@pytest.fixture(scope="module")
def topo(session_dir, pki):
    """REDIRECT (nat) in gw; catena's listeners on 3129."""
    yield from _topology(session_dir, pki, "transparent")


@pytest.fixture(scope="module")
def tp_topo(session_dir, pki):
    """TPROXY (mangle, mark, policy routing) in gw; catena's listeners on 3130 with
    tproxy = true. gw tracks no connections (no nat table, no conntrack rule)."""
    yield from _topology(session_dir, pki, "tproxy", tproxy=True)


@pytest.fixture(scope="module")
def tp_ct_topo(session_dir, pki):
    """tp_topo's setup in a gateway that also tracks connections (a conntrack rule of a
    stateful firewall in INPUT)."""
    yield from _topology(session_dir, pki, "tproxy-ct", tproxy=True, stateful=True)


@pytest.fixture
def lone_ns(topo):
    """A namespace of the test's own with only lo, and no iptables rule (so no conntrack)."""
    lab = netns.Lab()
    try:
        yield lab.netns("lone")
    finally:
        left = lab.destroy()
        assert not left, "network namespaces left behind: %s" % left


# --- catena in gw ------------------------------------------------------------------------

class GwCatena(catena_mod.Catena):
    """A catena node run inside the gw namespace (`ip netns exec`), its transparent
    listener on a fixed port (the namespace is the test's own: nothing else binds there)."""

    def __init__(self, ns, binary, node_dir, name, cfg, port=TP_PORT):
        super().__init__(binary, node_dir, name, cfg)
        self.ns = ns
        self.port = port

    def start(self, timeout=10.0, tries=1):
        self.write_config()
        self.proc = self.ns.start("catena", [self.binary, "-c", self.conf_path], self.dir)
        started = re.compile(r"catena \S+ started: node ")

        def ready():
            if not self.proc.alive():
                return True
            return self.ns.listening(self.port, self.proc) and \
                started.search(util.read_text(self.event_path))
        try:
            util.wait_until(ready, timeout, "catena in %s to listen on %d" % (self.ns.name,
                                                                             self.port))
        except util.WaitTimeout:
            self.proc.stop(timeout=5)
            self.start_failed = True
            raise
        if not self.proc.alive():
            self.start_failed = True
            self.stopped_status = self.proc.returncode
            raise catena_mod.CatenaStartError("catena did not start in %s:\n%s\n--- config:\n%s"
                                              % (self.ns.name, self._startup_output(),
                                                 self.conf_path.read_text()))
        return self


def gw_config(name, node_dir, port=TP_PORT, tproxy=False, **overrides):
    cfg = catena_mod.base_config(name, port, "127.0.0.1:9", node_dir, [443], [80],
                                 client_networks=CLIENT_NETS)
    cfg["listeners"] = tuple(transparent_listener(a, port, tproxy)
                             for a in ("0.0.0.0", "[::]"))
    cfg["validation"] = {"revocation": "off", "probe_timeout": "3s"}
    if os.environ.get("CATENA_E2E_DEBUG") == "1":
        cfg["log"]["event_level"] = "debug"
    return catena_mod.apply_overrides(cfg, overrides)


def transparent_listener(address, port, tproxy=False):
    """A transparent listener's entry: address "0.0.0.0", "[::]", "10.254.0.1"..."""
    lsn = {"type": "transparent", "address": "%s:%d" % (address, port)}
    if tproxy:
        lsn["tproxy"] = True
    return lsn


def _gw_nodes(topo, test_dir):
    """The body of make_gw / make_tp: yields the factory, then stops the nodes and fails
    on their findings."""
    util.require_binary(util.catena_bin(), "catena")
    nodes = []

    def make(name=None, ns=None, **overrides):
        name = name or "gw-node%d" % (len(nodes) + 1)
        node_dir = test_dir / name
        node_dir.mkdir(parents=True, exist_ok=True)
        node = GwCatena(ns or topo.gw, util.catena_bin(), node_dir, name,
                        gw_config(name, node_dir, port=topo.port, tproxy=topo.tproxy,
                                  **overrides), port=topo.port)
        nodes.append(node)
        return node.start()

    yield make
    found = []
    for n in nodes:
        found += n.teardown()
    if found:
        pytest.fail("\n\n".join(found), pytrace=False)


@pytest.fixture
def make_gw(topo, test_dir):
    """make_gw(name=None, ns=None, **overrides) -> GwCatena started in gw (or ns);
    overrides as for make_catena (tls={...}, validation={...}, bundle={...},
    connect_ports=..., listeners=...)."""
    yield from _gw_nodes(topo, test_dir)


@pytest.fixture
def make_tp(tp_topo, test_dir):
    """make_gw for tp_topo: catena in its gw, TPROXY listeners 0.0.0.0:3130 and
    [::]:3130 (tproxy = true)."""
    yield from _gw_nodes(tp_topo, test_dir)


@pytest.fixture
def make_tp_ct(tp_ct_topo, test_dir):
    """make_tp for tp_ct_topo (the gateway that tracks connections)."""
    yield from _gw_nodes(tp_ct_topo, test_dir)


def tls_default(keyring, pki):
    """The tls section of the default mode: nothing intercepted by choice, a keyring for
    exception pages, origins trusted through the test PKI root only."""
    return intercept.tls_section(keyring, pki, intercept="none")


def tls_intercept(keyring, pki):
    return intercept.tls_section(keyring, pki, intercept="all")


class Bundles:
    """A signing key and bundles built from policy text with catenactl."""

    def __init__(self, d):
        self.dir = Path(d)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.priv, self.pub = self.dir / "bundle.priv", self.dir / "bundle.pub"
        intercept.catenactl("bundle", "keygen", "--private", self.priv, "--public", self.pub)

    def build(self, policy, version=1):
        src = self.dir / ("src%d" % version)
        src.mkdir()
        (src / "policy.cpl").write_text(policy)
        out = self.dir / ("b%d.cbdl" % version)
        intercept.catenactl("bundle", "build", "--dir", src, "--version", str(version),
                            "--key", self.priv, "--out", out)
        return {"file": str(out), "keys": [str(self.pub)]}


def _small_json(r):
    try:
        return json.loads(r.body)
    except ValueError:
        raise AssertionError("not the echo origin's JSON: %r\n%s" % (r.body[:500],
                                                                     r.stderr[-2000:]))


def _tunnel_record(node, dst, **want):
    rec = node.wait_access(s_action=want.pop("s_action", "TCP_TUNNELED"), cs_host=dst, **want)
    assert rec["cs-method"] == "CONNECT" and rec["cs-uri-scheme"] == "tcp", rec["_line"]
    assert rec["cs-uri-port"] == "443", rec["_line"]
    assert rec["c-ip"] == CLI, rec["_line"]
    assert rec["s-supplier-ip"] == dst, rec["_line"]
    return rec


# --- the tests -----------------------------------------------------------------------------

def test_redirect_rules_in_place(topo):
    """The module's REDIRECT comes from setup.sh: the rules the other tests run through."""
    rules = topo.gw.iptables_rules("nat")
    assert "-A PREROUTING -i lan0 -p tcp -j CATENA" in rules, rules
    assert "-A CATENA -p tcp -m tcp --dport 443 -j REDIRECT --to-ports %d" % TP_PORT in rules, \
        rules
    rules6 = topo.gw.iptables_rules("nat", v6=True)
    assert "-A CATENA -p tcp -m tcp --dport 443 -j REDIRECT --to-ports %d" % TP_PORT in rules6, \
        rules6


@pytest.mark.parametrize("mode", ["plain", "default"])
def test_valid_origin_tunneled(make_gw, topo, keyring, mode):
    """A client's connection to 10.254.1.10:443 reaches catena by the REDIRECT and is
    tunneled: the client sees the origin's own certificate and content. plain: no keyring
    (no look at the bytes); default: a keyring, the origin checked by a probe first."""
    over = {} if mode == "plain" else {"tls": tls_default(keyring, topo.pki)}
    node = make_gw(**over)
    origin = topo.pki.leaf("origin.test")
    s = topo.s_client(VALID, 443, "origin.test", topo.pki.root_cert).check()
    assert intercept.der(s.leaf) == origin.der(), "not the origin's certificate:\n" + \
        s.describe()
    r = topo.curl("https://origin.test/hello", resolve="origin.test:443:" + VALID,
                  cacert=topo.pki.root_cert).check()
    assert r.status == 200 and _small_json(r)["target"] == "/hello", r
    _tunnel_record(node, VALID)
    assert not node.access_log().find(s_action="TCP_INTERCEPTED"), node.access_log_lines()


def test_valid_origin_intercepted(make_gw, topo, keyring):
    """tls.intercept "all": the client trusting catena's root sees catena's chain for the
    ClientHello's name; the access log has TCP_INTERCEPTED with the original destination."""
    node = make_gw(tls=tls_intercept(keyring, topo.pki))
    s = topo.s_client(VALID, 443, "origin.test", keyring.root_cert).check()
    assert intercept.issuer_cn(s.leaf) == intercept.INTER_CN, s.describe()
    assert intercept.subject_cn(s.leaf) == "origin.test", s.describe()
    assert "DNS:origin.test" in intercept.san(s.leaf), intercept.san(s.leaf)
    assert intercept.der(s.certs[1]) == keyring.inter_der(), s.describe()
    # The origin's own root does not validate what the client now gets.
    s = topo.s_client(VALID, 443, "origin.test", topo.pki.root_cert)
    assert s.rc != 0 or s.verify_code != 0, s.describe()
    _tunnel_record(node, VALID, s_action="TCP_INTERCEPTED")


def test_intercepted_content_from_original_destination(make_gw, topo, keyring):
    """The content of an intercepted transparent connection comes from the original
    destination: catena needs no DNS for it (its resolver here answers nothing)."""
    node = make_gw(tls=tls_intercept(keyring, topo.pki))
    r = topo.curl("https://origin.test/hello", resolve="origin.test:443:" + VALID,
                  cacert=keyring.root_cert, verbose=True)
    assert re.search(r"issuer: CN=%s" % re.escape(intercept.INTER_CN), r.stderr), \
        r.stderr[-3000:]
    assert r.rc == 0 and r.status == 200, "%r %r" % (r, r.body[:600])
    assert _small_json(r)["target"] == "/hello", r.body
    rec = node.wait_access(cs_uri_scheme="https", cs_uri_path="/hello")
    assert rec["cs-host"] == "origin.test" and rec["sc-status"] == "200", rec["_line"]
    assert rec["s-supplier-ip"] == VALID, rec["_line"]


@pytest.mark.parametrize("mode", ["default", "intercept"])
def test_expired_origin_exception_page(make_gw, topo, keyring, mode):
    """An expired origin certificate: the exception page, over a certificate for the
    ClientHello's name from catena's issuer (default mode: found by the probe)."""
    tls = tls_default(keyring, topo.pki) if mode == "default" else \
        tls_intercept(keyring, topo.pki)
    node = make_gw(tls=tls)
    r = topo.curl("https://expired.test/small.txt", resolve="expired.test:443:" + EXPIRED,
                  cacert=keyring.root_cert)
    http.assert_exception_page(r, 503, "ssl_server_cert_expired")
    e = node.wait_event(r"certificate of expired\.test refused: expired "
                        r"\(ssl_server_cert_expired\)")
    assert "target=%s:443" % EXPIRED in e.msg, e.raw
    rec = node.wait_access(cs_uri_scheme="https", cs_host="expired.test")
    assert rec["x-exception-id"] == "ssl_server_cert_expired", rec["_line"]
    assert rec["s-supplier-ip"] == EXPIRED, rec["_line"]
    # The expired origin's own certificate never reaches the client.
    s = topo.s_client(EXPIRED, 443, "expired.test", keyring.root_cert)
    assert s.leaf and intercept.der(s.leaf) != topo.pki.leaf("expired.test").der(), \
        s.describe()
    assert intercept.issuer_cn(s.leaf) == intercept.INTER_CN, s.describe()


def test_non_tls_to_trusted_server_tunneled(make_gw, topo, keyring, test_dir):
    """The bundle's recipe: a non-TLS service on 443 of a trusted server (url.address=,
    here the original destination) keeps working; TLS to the others is still fine."""
    b = Bundles(test_dir / "bundles").build(FORCE_SSL_POLICY)
    node = make_gw(tls=tls_default(keyring, topo.pki), bundle=b)
    msg = b"hello, trusted server\n"
    out = topo.tcp(TRUSTED, 443, send=msg, expect=msg)
    assert out["connected"] and out["data"] == msg, out
    rec = _tunnel_record(node, TRUSTED)
    assert rec["sc-status"] == "200", rec["_line"]
    assert DENIED_NOT_TLS not in node.event_text(), node.event_text()[-3000:]
    r = topo.curl("https://origin.test/hello", resolve="origin.test:443:" + VALID,
                  cacert=topo.pki.root_cert).check()
    assert r.status == 200 and _small_json(r)["target"] == "/hello", r


def test_non_tls_to_other_server_refused(make_gw, topo, keyring, test_dir):
    """The bundle's recipe: a non-TLS service on 443 of a server that is not trusted is
    refused (closed, nothing relayed) with the event-log notice."""
    b = Bundles(test_dir / "bundles").build(FORCE_SSL_POLICY)
    node = make_gw(tls=tls_default(keyring, topo.pki), bundle=b)
    out = topo.tcp(UNTRUSTED, 443, send=b"hello, other server\n", timeout=5)
    assert out["connected"] and out["data"] == b"", out
    assert out["eof"] or out["reset"], "the connection stayed open: %r" % out
    e = node.wait_event(re.escape(DENIED_NOT_TLS))
    assert "target=%s:443" % UNTRUSTED in e.msg, e.raw


def test_non_tls_tunneled_without_policy(make_gw, topo, keyring):
    """No policy: non-TLS on 443 is tunneled as plain TCP, to any server."""
    node = make_gw(tls=tls_default(keyring, topo.pki))
    for dst in (TRUSTED, UNTRUSTED):
        msg = ("plain tcp to %s\n" % dst).encode()
        out = topo.tcp(dst, 443, send=msg, expect=msg)
        assert out["data"] == msg, out
        _tunnel_record(node, dst)
    node.wait_event(r"not TLS: tunneled as plain TCP")


def test_forced_ssl_without_keyring(make_gw, topo, test_dir):
    """force_protocol(ssl) is a decision on the bytes, not an interception: it holds on a
    node without a keyring too."""
    b = Bundles(test_dir / "bundles").build(FORCE_SSL_POLICY)
    node = make_gw(bundle=b)
    msg = b"hello, trusted server\n"
    out = topo.tcp(TRUSTED, 443, send=msg, expect=msg)
    assert out["data"] == msg, out
    out = topo.tcp(UNTRUSTED, 443, send=b"hello, other server\n", timeout=5)
    assert out["data"] == b"" and (out["eof"] or out["reset"]), out
    node.wait_event(re.escape(DENIED_NOT_TLS))


def test_forced_ssl_server_speaks_first(make_gw, topo, keyring, test_dir):
    """A protocol where the server speaks first (SSH on 443) to a server that is not
    trusted: the client sends nothing, so there is no ClientHello; forced SSL must not let
    the server's bytes through once the wait for one ends."""
    b = Bundles(test_dir / "bundles").build(FORCE_SSL_POLICY)
    node = make_gw(tls=tls_default(keyring, topo.pki), bundle=b,
                   timeouts={"tls_handshake": "1s", "drain": "5s"})
    out = topo.tcp(BANNER, 443, expect=SRV_BANNER, timeout=4)
    assert out["data"] == b"", "the server's banner came through a forced-SSL port: %r" % out
    assert out["eof"] or out["reset"], out
    node.wait_event(DENIED_SILENT)


@pytest.mark.parametrize("rule", ["connect_ports", "client_networks"])
def test_access_refusal_closes(make_gw, topo, rule):
    """Access rules hold for redirected connections, and a refusal before interception
    closes the connection (the client expects the origin's bytes, not a page)."""
    over = {"connect_ports": [8443]} if rule == "connect_ports" else \
        {"client_networks": ["192.0.2.0/24"]}
    node = make_gw(**over)
    out = topo.tcp(TRUSTED, 443, send=b"hello\n", timeout=5)
    assert out["connected"] and out["data"] == b"", out
    assert out["eof"] or out["reset"], out
    s = topo.s_client(VALID, 443, "origin.test", topo.pki.root_cert, timeout=20)
    assert s.rc != 0 and not s.certs and "HTTP/1." not in s.out, s.describe()
    e = node.wait_event(r"transparent connection refused")
    assert "target=%s:443" % TRUSTED in e.msg, e.raw


DENY_POLICY = """
<proxy>
    %s deny("no plain services there")
    allow
"""


@pytest.mark.parametrize("cond", [
    "url.address=" + UNTRUSTED,
    "url.host=" + UNTRUSTED])
def test_policy_deny_closes(make_gw, topo, test_dir, cond):
    """A <proxy> deny for the original destination closes the redirected connection;
    other destinations are allowed. (url.host of a transparent connection is the original
    destination's address as text.)"""
    b = Bundles(test_dir / "bundles").build(DENY_POLICY % cond)
    node = make_gw(bundle=b)
    msg = b"to the trusted server\n"
    assert topo.tcp(TRUSTED, 443, send=msg, expect=msg)["data"] == msg
    out = topo.tcp(UNTRUSTED, 443, send=b"hello\n", timeout=5)
    assert out["connected"] and out["data"] == b"", out
    assert out["eof"] or out["reset"], out
    e = node.wait_event(r"transparent connection refused \(policy_denied\)")
    assert "target=%s:443" % UNTRUSTED in e.msg, e.raw


def test_direct_connection_refused(make_gw, topo):
    """A connection to the transparent port itself (not redirected) is refused and
    logged; catena keeps serving redirected ones."""
    node = make_gw()
    mark = node.event_mark()
    out = topo.tcp(GW_LAN, TP_PORT, send=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
    assert out["connected"] and out["data"] == b"", out
    assert out["eof"] or out["reset"], out
    e = node.wait_event(re.escape(DIRECT), since=mark)
    assert "cli=%s:" % CLI in e.msg, e.raw
    assert not node.access_log().find(cs_host=GW_LAN), node.access_log_lines()
    r = topo.curl("https://origin.test/hello", resolve="origin.test:443:" + VALID,
                  cacert=topo.pki.root_cert).check()
    assert r.status == 200, r


def test_direct_connection_refused_without_conntrack(lone_ns, make_gw):
    """The same in a namespace with no iptables rules at all (nothing tracked), with a
    connect_ports range that covers the listener's own port: still refused as a direct
    connection, not a loop of catena connecting to itself."""
    node = make_gw(ns=lone_ns, listeners=({"type": "transparent",
                                           "address": "127.0.0.1:%d" % TP_PORT},),
                   client_networks=["127.0.0.0/8"], connect_ports=[443, "1025-65535"],
                   limits={"max_connections": 50})
    r = lone_ns.run([sys.executable, "-c", TCP_CLIENT, "127.0.0.1", str(TP_PORT),
                     b"hello\n".hex(), "", "4"], timeout=30)
    out = json.loads(r.stdout)
    out["data"] = bytes.fromhex(out["data"])
    assert out["connected"] and out["data"] == b"", out
    assert out["eof"] or out["reset"], out
    node.wait_event(re.escape(DIRECT))
    assert "over max_connections" not in node.event_text(), node.event_text()[-3000:]


def test_over_max_connections_closes(make_gw, topo):
    node = make_gw(limits={"max_connections": 1})
    held = topo.cli.start("held", [sys.executable, topo.client_script, TRUSTED, "443",
                                   b"held\n".hex(), "", "20"], node.dir)
    # The first connection is in catena once catena has connected to the echo server.
    util.wait_until(lambda: topo.org_socket(TRUSTED, "01"), 10, "the held connection")
    try:
        out = topo.tcp(UNTRUSTED, 443, send=b"hello\n", timeout=5)
        assert out["data"] == b"", out
        assert out["eof"] or out["reset"], out
        node.wait_event(r"over max_connections")
    finally:
        held.stop(timeout=5)


def test_ipv6_redirect_tunneled(make_gw, topo):
    """IPv6: ip6tables REDIRECT, the original destination read on an IPv6 socket."""
    node = make_gw()
    s = topo.s_client(VALID6, 443, "origin.test", topo.pki.root_cert).check()
    assert intercept.der(s.leaf) == topo.pki.leaf("origin.test").der(), s.describe()
    rec = node.wait_access(s_action="TCP_TUNNELED", cs_host=VALID6)
    assert rec["cs-uri-port"] == "443" and rec["c-ip"] == CLI6, rec["_line"]


# --- TPROXY (setup.sh -t; listeners with tproxy = true) ------------------------------------
#
# The same flows as above through a gateway whose rules are setup.sh -t's: packets of the
# LAN's port 443 are marked and handed to catena's IP_TRANSPARENT socket unchanged (no NAT),
# so the accepted socket's local address is the original destination.

# catena's fault when the gateway tracks connections (any NAT or stateful firewall rule):
def _need_v6(topo):
    if topo.v6_why:
        pytest.skip("IPv6 TPROXY unavailable here: %s" % topo.v6_why)


def test_tproxy_rules_in_place(tp_topo):
    """The TPROXY module's rules come from setup.sh -t: mangle (TPROXY to 3130 on the LAN
    addresses given with -a, the socket match), the mark's policy routing, no nat rule."""
    gw = tp_topo.gw
    rules = gw.iptables_rules("mangle")
    for want in ("-A PREROUTING -i lan0 -p tcp -j CATENA",
                 "-A CATENA -p tcp -m socket --transparent -j CATENA_DIVERT",
                 "-A CATENA -p tcp -m tcp --dport 443 -j TPROXY --on-port %d --on-ip %s "
                 "--tproxy-mark 0x1/0x1" % (TPROXY_PORT, GW_LAN)):
        assert want in rules, "%r not in:\n%s" % (want, "\n".join(rules))
    assert not [l for l in gw.iptables_rules("nat") if "CATENA" in l], \
        gw.iptables_rules("nat")
    assert re.search(r"fwmark 0x1/0x1 lookup 100\b", gw.ip("-4", "rule", "show").stdout)
    assert re.search(r"^local default dev lo", gw.ip("-4", "route", "show", "table", "100")
                     .stdout, re.M)
    if tp_topo.v6_why is None:
        rules6 = gw.iptables_rules("mangle", v6=True)
        want = "-A CATENA -p tcp -m tcp --dport 443 -j TPROXY --on-port %d --on-ip %s " \
            "--tproxy-mark 0x1/0x1" % (TPROXY_PORT, GW6_LAN)
        assert want in rules6, "%r not in:\n%s" % (want, "\n".join(rules6))
        assert re.search(r"fwmark 0x1/0x1 lookup 100\b", gw.ip("-6", "rule", "show").stdout)


@pytest.mark.parametrize("mode", ["plain", "default"])
def test_tproxy_valid_origin_tunneled(make_tp, tp_topo, keyring, mode):
    """A client's connection to 10.254.1.10:443 reaches catena's TPROXY listener unchanged
    and is tunneled to the original destination: the client sees the origin's own
    certificate and content; the access log has TCP_TUNNELED to 10.254.1.10:443."""
    topo = tp_topo
    over = {} if mode == "plain" else {"tls": tls_default(keyring, topo.pki)}
    node = make_tp(**over)
    origin = topo.pki.leaf("origin.test")
    s = topo.s_client(VALID, 443, "origin.test", topo.pki.root_cert)
    assert s.rc == 0 and s.verify_code == 0, "%s\n--- event log:\n%s" % (
        s.describe(), node.event_text()[-3000:])
    assert intercept.der(s.leaf) == origin.der(), "not the origin's certificate:\n" + \
        s.describe()
    r = topo.curl("https://origin.test/hello", resolve="origin.test:443:" + VALID,
                  cacert=topo.pki.root_cert).check()
    assert r.status == 200 and _small_json(r)["target"] == "/hello", r
    _tunnel_record(node, VALID)
    assert not node.access_log().find(s_action="TCP_INTERCEPTED"), node.access_log_lines()
    assert DIRECT not in node.event_text(), node.event_text()[-3000:]


def test_tproxy_valid_origin_intercepted(make_tp, tp_topo, keyring):
    """tls.intercept "all" on the TPROXY listener: catena's chain for the ClientHello's
    name; the content comes from the original destination (catena's resolver answers
    nothing here); TCP_INTERCEPTED with the original destination."""
    topo = tp_topo
    node = make_tp(tls=tls_intercept(keyring, topo.pki))
    s = topo.s_client(VALID, 443, "origin.test", keyring.root_cert)
    assert s.rc == 0 and s.verify_code == 0, "%s\n--- event log:\n%s" % (
        s.describe(), node.event_text()[-3000:])
    assert intercept.issuer_cn(s.leaf) == intercept.INTER_CN, s.describe()
    assert intercept.subject_cn(s.leaf) == "origin.test", s.describe()
    assert intercept.der(s.certs[1]) == keyring.inter_der(), s.describe()
    r = topo.curl("https://origin.test/hello", resolve="origin.test:443:" + VALID,
                  cacert=keyring.root_cert, verbose=True)
    assert re.search(r"issuer: CN=%s" % re.escape(intercept.INTER_CN), r.stderr), \
        r.stderr[-3000:]
    assert r.rc == 0 and r.status == 200, "%r %r" % (r, r.body[:600])
    assert _small_json(r)["target"] == "/hello", r.body
    rec = node.wait_access(cs_uri_scheme="https", cs_uri_path="/hello")
    assert rec["cs-host"] == "origin.test" and rec["sc-status"] == "200", rec["_line"]
    assert rec["s-supplier-ip"] == VALID and rec["c-ip"] == CLI, rec["_line"]
    _tunnel_record(node, VALID, s_action="TCP_INTERCEPTED")


@pytest.mark.parametrize("mode", ["default", "intercept"])
def test_tproxy_expired_origin_exception_page(make_tp, tp_topo, keyring, mode):
    """An expired origin certificate behind TPROXY: the exception page, over catena's
    certificate for the ClientHello's name; the origin's certificate never reaches the
    client."""
    topo = tp_topo
    tls = tls_default(keyring, topo.pki) if mode == "default" else \
        tls_intercept(keyring, topo.pki)
    node = make_tp(tls=tls)
    r = topo.curl("https://expired.test/small.txt", resolve="expired.test:443:" + EXPIRED,
                  cacert=keyring.root_cert)
    http.assert_exception_page(r, 503, "ssl_server_cert_expired")
    e = node.wait_event(r"certificate of expired\.test refused: expired "
                        r"\(ssl_server_cert_expired\)")
    assert "target=%s:443" % EXPIRED in e.msg, e.raw
    rec = node.wait_access(cs_uri_scheme="https", cs_host="expired.test")
    assert rec["x-exception-id"] == "ssl_server_cert_expired", rec["_line"]
    assert rec["s-supplier-ip"] == EXPIRED, rec["_line"]
    s = topo.s_client(EXPIRED, 443, "expired.test", keyring.root_cert)
    assert s.leaf and intercept.der(s.leaf) != topo.pki.leaf("expired.test").der(), \
        s.describe()
    assert intercept.issuer_cn(s.leaf) == intercept.INTER_CN, s.describe()


@pytest.mark.parametrize("family,bind", [
    ("v4", "address"),
    ("v4", "wildcard"),
    ("v6", "address"),
    ("v6", "wildcard"),
])
def test_tproxy_direct_connection_refused(make_tp, tp_topo, family, bind):
    """A client connecting to the TPROXY listener's own address (the gateway's LAN address
    and port 3130, not diverted) is refused with the event-log line, and catena does not
    connect to itself (connect_ports lets 3130 through, so only the direct check stops a
    loop; max_connections bounds one). address: the listener bound to the LAN address;
    wildcard: to 0.0.0.0 / [::] (the documented example)."""
    topo = tp_topo
    if family == "v6":
        _need_v6(topo)
    gw_ip, cli_ip = (GW_LAN, CLI) if family == "v4" else (GW6_LAN, CLI6)
    addrs = {"v4": {"address": GW_LAN, "wildcard": "0.0.0.0"},
             "v6": {"address": "[%s]" % GW6_LAN, "wildcard": "[::]"}}
    other = "v6" if family == "v4" else "v4"
    listeners = (transparent_listener(addrs[family][bind], TPROXY_PORT, True),
                 transparent_listener(addrs[other]["wildcard"], TPROXY_PORT, True))
    node = make_tp(listeners=listeners, connect_ports=[443, TPROXY_PORT],
                   limits={"max_connections": 50})
    mark = node.event_mark()
    out = topo.tcp(gw_ip, TPROXY_PORT, send=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
    assert out["connected"] and out["data"] == b"", out
    assert out["eof"] or out["reset"], out
    assert "over max_connections" not in node.event_text(), \
        "catena connected to itself:\n" + node.event_text()[-3000:]
    assert not node.access_log().find(cs_host=gw_ip), node.access_log_lines()[-20:]
    e = node.wait_event(re.escape(DIRECT), since=mark, timeout=5)
    assert "cli=%s" % cli_ip in e.msg, e.raw
    # Diverted connections still work on the same listeners.
    if family == "v4":
        r = topo.curl("https://origin.test/hello", resolve="origin.test:443:" + VALID,
                      cacert=topo.pki.root_cert).check()
        assert r.status == 200, r
    else:
        topo.s_client(VALID6, 443, "origin.test", topo.pki.root_cert).check()


def test_tproxy_ipv6_tunneled(make_tp, tp_topo):
    """IPv6: ip6tables TPROXY to the [::]:3130 listener (IPV6_TRANSPARENT); the local
    address of the accepted socket is the original destination."""
    topo = tp_topo
    _need_v6(topo)
    node = make_tp()
    s = topo.s_client(VALID6, 443, "origin.test", topo.pki.root_cert)
    assert s.rc == 0 and s.verify_code == 0, "%s\n--- event log:\n%s" % (
        s.describe(), node.event_text()[-3000:])
    assert intercept.der(s.leaf) == topo.pki.leaf("origin.test").der(), s.describe()
    rec = node.wait_access(s_action="TCP_TUNNELED", cs_host=VALID6)
    assert rec["cs-uri-port"] == "443" and rec["c-ip"] == CLI6, rec["_line"]
    assert rec["s-supplier-ip"] == VALID6, rec["_line"]


def test_tproxy_ipv6_intercepted(make_tp, tp_topo, keyring):
    """IPv6 TPROXY with interception: catena's chain, the page fetched from the original
    destination (openssl s_server -www answers a GET with its status page)."""
    topo = tp_topo
    _need_v6(topo)
    node = make_tp(tls=tls_intercept(keyring, topo.pki))
    r = topo.curl("https://origin.test/", resolve="origin.test:443:[%s]" % VALID6,
                  cacert=keyring.root_cert, verbose=True)
    assert re.search(r"issuer: CN=%s" % re.escape(intercept.INTER_CN), r.stderr), \
        r.stderr[-3000:] + node.event_text()[-3000:]
    assert r.rc == 0 and r.status == 200, "%r %r" % (r, r.body[:600])
    assert b"s_server" in r.body or b"Ciphers" in r.body, r.body[:600]
    rec = node.wait_access(cs_uri_scheme="https", cs_host="origin.test")
    assert rec["s-supplier-ip"] == VALID6 and rec["c-ip"] == CLI6, rec["_line"]
    node.wait_access(s_action="TCP_INTERCEPTED", cs_host=VALID6)


def test_tproxy_direct_connection_refused_on_stateful_gateway(make_tp_ct, tp_ct_topo):
    """The wildcard listener reached directly on a gateway that tracks connections: refused
    (conntrack knows the connection was not redirected), no loop."""
    topo = tp_ct_topo
    node = make_tp_ct(connect_ports=[443, TPROXY_PORT], limits={"max_connections": 50})
    out = topo.tcp(GW_LAN, TPROXY_PORT, send=b"hello\n", timeout=5)
    assert out["connected"] and out["data"] == b"", out
    assert out["eof"] or out["reset"], out
    e = node.wait_event(re.escape(DIRECT))
    assert "cli=%s" % CLI in e.msg, e.raw
    assert "over max_connections" not in node.event_text(), node.event_text()[-3000:]


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_tproxy_tunneled_on_stateful_gateway(make_tp_ct, tp_ct_topo, family):
    """TPROXY on a gateway that tracks connections (a stateful firewall's conntrack rule in
    INPUT; NAT anywhere on the gateway does the same): a connection to the origin is still
    tunneled to it."""
    topo = tp_ct_topo
    if family == "v6":
        _need_v6(topo)
    node = make_tp_ct()
    dst = VALID if family == "v4" else VALID6
    s = topo.s_client(dst, 443, "origin.test", topo.pki.root_cert, timeout=20)
    assert s.rc == 0 and s.verify_code == 0, "%s\n--- event log:\n%s" % (
        s.describe(), node.event_text()[-3000:])
    assert intercept.der(s.leaf) == topo.pki.leaf("origin.test").der(), s.describe()
    node.wait_access(s_action="TCP_TUNNELED", cs_host=dst)
    assert DIRECT not in node.event_text(), node.event_text()[-3000:]


# --- contrib/transparent/setup.sh and teardown.sh ---------------------------------------

@pytest.fixture
def script_ns(test_dir):
    """A namespace of its own with a LAN interface (lan0, a veth to a second namespace)."""
    why = netns.unavailable()
    if why:
        pytest.skip("the scripts' test needs network namespaces: %s" % why)
    lab = netns.Lab()
    try:
        gw, peer = lab.netns("sgw"), lab.netns("speer")
        lab.veth(gw, "lan0", "10.254.9.1/24", peer, "eth0", "10.254.9.2/24")
        yield gw
    finally:
        left = lab.destroy()
        assert not left, "network namespaces left behind: %s" % left


def _state(ns):
    """Everything the scripts may change, as text lines."""
    out = {}
    for v6 in (False, True):
        for table in ("nat", "mangle"):
            out["%s%s" % (table, "6" if v6 else "")] = ns.iptables_rules(table, v6=v6)
    out["rule4"] = ns.ip("-4", "rule", "show").stdout.splitlines()
    out["rule6"] = ns.ip("-6", "rule", "show").stdout.splitlines()
    # A routing table nobody filled does not exist: "ip route show table" fails, empty.
    out["route100"] = ns.ip("-4", "route", "show", "table", "100", check=False).stdout.split("\n")
    out["route100_6"] = ns.ip("-6", "route", "show", "table", "100",
                              check=False).stdout.split("\n")
    return out


def _script(ns, name, *args):
    return ns.run([SCRIPTS / name] + [str(a) for a in args], check=False)


def test_setup_teardown_redirect(script_ns):
    ns = script_ns
    # Something of the operator's own in PREROUTING stays untouched.
    ns.iptables("-t", "nat", "-A", "PREROUTING", "-p", "udp", "--dport", "53", "-j", "ACCEPT")
    before = _state(ns)
    r = _script(ns, "setup.sh", "-p", "3129", "-l", "-u", "root", "lan0", "8443")
    assert r.returncode == 0, r.stdout + r.stderr
    nat = ns.iptables_rules("nat")
    for want in ("-N CATENA", "-N CATENA_OUT",
                 "-A PREROUTING -i lan0 -p tcp -j CATENA",
                 "-A OUTPUT -p tcp -j CATENA_OUT",
                 "-A CATENA -m addrtype --dst-type LOCAL -j RETURN",
                 "-A CATENA -p tcp -m tcp --dport 443 -j REDIRECT --to-ports 3129",
                 "-A CATENA -p tcp -m tcp --dport 8443 -j REDIRECT --to-ports 3129",
                 "-A CATENA_OUT -m owner --uid-owner 0 -j RETURN",
                 "-A CATENA_OUT -p tcp -m tcp --dport 443 -j REDIRECT --to-ports 3129"):
        assert want in nat, "%r not in:\n%s" % (want, "\n".join(nat))
    # The loop-avoidance rule comes before any REDIRECT of locally made connections.
    out_rules = [l for l in nat if l.startswith("-A CATENA_OUT ")]
    assert "--uid-owner" in out_rules[0], out_rules
    assert "-A PREROUTING -p udp -m udp --dport 53 -j ACCEPT" in nat, nat
    # Idempotent: a second run gives the same rules, not twice as many.
    after1 = _state(ns)
    r = _script(ns, "setup.sh", "-p", "3129", "-l", "-u", "root", "lan0", "8443")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _state(ns) == after1
    r = _script(ns, "teardown.sh")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _state(ns) == before
    # Nothing set up: teardown changes nothing and succeeds.
    r = _script(ns, "teardown.sh")
    assert r.returncode == 0 and _state(ns) == before, r.stdout + r.stderr


def test_setup_teardown_tproxy(script_ns):
    ns = script_ns
    before = _state(ns)
    r = _script(ns, "setup.sh", "-t", "-6", "-m", "0x4", "-r", "100", "lan0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tproxy = true" in r.stderr, r.stderr
    for v6 in (False, True):
        mangle = ns.iptables_rules("mangle", v6=v6)
        for want in ("-A PREROUTING -i lan0 -p tcp -j CATENA",
                     "-A CATENA -p tcp -m socket --transparent -j CATENA_DIVERT",
                     "-A CATENA_DIVERT -j MARK --set-xmark 0x4/0x4",
                     "-A CATENA_DIVERT -j ACCEPT"):
            assert want in mangle, "%r not in:\n%s" % (want, "\n".join(mangle))
        assert any(re.match(r"-A CATENA -p tcp -m tcp --dport 443 -j TPROXY --on-port 3129 "
                            r".*--tproxy-mark 0x4/0x4$", l) for l in mangle), mangle
        assert ns.iptables_rules("nat", v6=v6) == before["nat6" if v6 else "nat"]
    for fam in ("-4", "-6"):
        rules = ns.ip(fam, "rule", "show").stdout
        assert re.search(r"fwmark 0x4/0x4 lookup 100\b", rules), rules
        routes = ns.ip(fam, "route", "show", "table", "100").stdout
        assert re.search(r"^local default dev lo", routes, re.M), routes
    after1 = _state(ns)
    assert _script(ns, "setup.sh", "-t", "-6", "-m", "0x4", "lan0").returncode == 0
    assert _state(ns) == after1
    # -a: --on-ip, once per family; each family's table gets its own.
    r = _script(ns, "setup.sh", "-t", "-6", "-m", "0x4", "-a", "10.254.9.1", "-a",
                "fd00:254:9::1", "lan0")
    assert r.returncode == 0, r.stdout + r.stderr
    for v6, ip in ((False, "10.254.9.1"), (True, "fd00:254:9::1")):
        want = "-A CATENA -p tcp -m tcp --dport 443 -j TPROXY --on-port 3129 --on-ip %s " \
            "--tproxy-mark 0x4/0x4" % ip
        rules = ns.iptables_rules("mangle", v6=v6)
        assert want in rules, "%r not in:\n%s" % (want, "\n".join(rules))
    r = _script(ns, "teardown.sh", "-m", "0x4")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _state(ns) == before


def test_setup_refusals(script_ns, test_dir):
    ns = script_ns
    before = _state(ns)
    r = _script(ns, "setup.sh")
    assert r.returncode == 2 and "Usage: setup.sh" in r.stderr, r.stderr
    r = _script(ns, "setup.sh", "-h")
    assert r.returncode == 0 and "teardown.sh" in r.stdout and "TPROXY" in r.stdout, r.stdout
    r = _script(ns, "setup.sh", "nosuch0")
    assert r.returncode == 1 and "nosuch0: no such interface" in r.stderr, r.stderr
    r = _script(ns, "setup.sh", "lan0", "70000")
    assert r.returncode == 1 and "not a port" in r.stderr, r.stderr
    r = _script(ns, "setup.sh", "-l", "-u", "no-such-user-e2e", "lan0")
    assert r.returncode == 1 and "no such user" in r.stderr, r.stderr
    r = _script(ns, "setup.sh", "-t", "-l", "lan0")
    assert r.returncode == 1, r.stderr
    for args, err in ((["-a", "10.254.9.1"], "-a is for TPROXY (-t) only"),
                      (["-t", "-a", "fd00::1"], "an IPv6 address needs -6"),
                      (["-t", "-a", "10.0.0.1", "-a", "10.0.0.2"], "given already"),
                      (["-t", "-a", "10.0.0"], "not an IP address")):
        r = _script(ns, "setup.sh", *(args + ["lan0"]))
        assert r.returncode == 1 and err in r.stderr, (args, r.stderr)
    if netns.tool("setpriv"):
        for name in ("setup.sh", "teardown.sh"):
            r = ns.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                        SCRIPTS / name] + (["lan0"] if name == "setup.sh" else []), check=False)
            assert r.returncode == 1 and "must be run as root" in r.stderr, r.stderr
    # -n prints what it would do and changes nothing.
    r = _script(ns, "setup.sh", "-n", "lan0")
    assert r.returncode == 0, r.stderr
    assert "iptables -w -t nat -A CATENA -p tcp --dport 443 -j REDIRECT --to-ports 3129" in \
        r.stdout, r.stdout
    assert _state(ns) == before
