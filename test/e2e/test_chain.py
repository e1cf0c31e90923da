"""Chains of tiers: client -> branch catena -> data-center catena -> nginx origins, on loopback.

Each tier signs with its own keyring (a root and an intermediate made with catenactl, once per
session): clients trust the branch's root only (the DC's for tier.inspect = "core"); both
tiers trust the origins through the test PKI root only. The branch names the DC's
intermediate as the upstream's issuer, which it trusts on that route and nowhere else.

What is checked: both tiers tunneling (an expired origin still gives a readable exception
page) and both intercepting (content and a 100 MiB body intact, the SSL log saying that the
upstream intercepted); the DC's issuer refused on a direct route (and a verdict reached
through the DC not reused there); tier awareness (bundle digests compared and shown in
/status and /metrics, X-Forwarded-For and the user believed only from
tier.downstream_networks, a forwarding loop refused); failover, hashing, health, fail open
and fail closed; credentials for an upstream that asks for them; the branch-to-DC hop over
TLS (type "https", the DC's proxy certificate validated); Squid as the upstream of a branch
and as a downstream of catena; tier.inspect "edge" and "core".

For the hop over TLS the DC has an https listener with its own proxy certificate
(node1.test, from the test PKI).

Nodes check their upstreams every 200 ms (forwarding.health_interval) and take one out after
one failed check, so failover tests wait well under a second.
"""
import json
import re
import socket
import subprocess

import pytest

from lib import http, intercept, logs, origins as origins_mod, squid as squid_mod, util

MiB = 1024 * 1024
SMALL = b"hello from the catena e2e origin\n"

BRANCH_INTER = "catena e2e branch intermediate"
DC_INTER = "catena e2e dc intermediate"
PKI_INTER = "catena e2e Intermediate CA"

VALIDATION = {"revocation_timeout": "1s", "probe_timeout": "3s"}
HEALTH = {"health_interval": "200ms", "health_failures": 1, "connect_timeout": "3s"}
USER_HEADER = "X-Authenticated-User"


# --- keyrings, bundles, nodes -------------------------------------------------------------

def _tier_keyring(d, tier):
    d.mkdir(parents=True, exist_ok=True)
    intercept.catenactl("ca", "init", "--dir", d / "root", "--cn", "catena e2e %s root" % tier)
    intercept.catenactl("ca", "intermediate", "--parent", d / "root", "--dir", d / "inter",
                        "--cn", "catena e2e %s intermediate" % tier)
    return intercept.Keyring(d / "root", d / "inter")


@pytest.fixture(scope="session")
def branch_kr(session_dir):
    return _tier_keyring(session_dir / "chain-keyrings" / "branch", "branch")


@pytest.fixture(scope="session")
def dc_kr(session_dir):
    return _tier_keyring(session_dir / "chain-keyrings" / "dc", "dc")


class Bundles:
    """A bundle signing key and bundles built from policy text with catenactl."""

    def __init__(self, d):
        self.dir = d
        d.mkdir(parents=True, exist_ok=True)
        self.priv, self.pub = d / "bundle.priv", d / "bundle.pub"
        intercept.catenactl("bundle", "keygen", "--private", self.priv, "--public", self.pub)
        self.n = 0

    def build(self, policy, version=1):
        self.n += 1
        src = self.dir / ("src%d" % self.n)
        src.mkdir()
        (src / "policy.cpl").write_text(policy)
        out = self.dir / ("b%d.cbdl" % self.n)
        intercept.catenactl("bundle", "build", "--dir", src, "--version", version,
                            "--key", self.priv, "--out", out)
        return out

    def section(self, path):
        """The node's bundle section running that bundle file."""
        return {"file": str(path), "keys": [str(self.pub)]}


@pytest.fixture
def bundles(test_dir):
    return Bundles(test_dir / "bundles")


ALLOW = "<proxy>\n    allow\n"


def users_file(path, *users, password="s3cret"):
    """A local realm's users file (sha512-crypt hashes made by openssl passwd)."""
    h = subprocess.run(["openssl", "passwd", "-6", password], capture_output=True, text=True,
                       check=True, timeout=30).stdout.strip()
    path.write_text("".join("%s:%s\n" % (u, h) for u in users))
    return path


def credentials_file(path, user, password):
    path.write_text("%s:%s\n" % (user, password))
    path.chmod(0o600)
    return path


def upstream(name, port, issuer=None, **kw):
    """A forwarding.hosts entry for an upstream on 127.0.0.1:port."""
    h = {"name": name, "address": "127.0.0.1:%d" % port, "type": "http"}
    if issuer is not None:
        h["issuer"] = str(issuer)
    h.update(kw)
    return h


@pytest.fixture
def make_tier(make_catena, origins, test_dir):
    """make_tier(name, keyring, intercept_mode="none", hosts=(), groups=(), default=None,
    forwarding=None, tier=None, tls=None, validation=None, extra_ports=(), admin=True,
    start=True, **overrides) -> a catena node of a chain (tls.intercept = intercept_mode).

    Signs with keyring, trusts origins through the test PKI root only, writes its SSL log
    (node.ssl_path), has an admin listener (node.admin_port). hosts: forwarding.hosts entries
    (upstream()); default: forwarding.default (the first host when not given); health checks
    every 200 ms, out after one failure."""
    def make(name, keyring, intercept_mode="none", hosts=(), groups=(), default=None,
             forwarding=None, tier=None, tls=None, validation=None, extra_ports=(),
             admin=True, start=True, **over):
        section = intercept.tls_section(keyring, origins.pki, intercept=intercept_mode)
        section.update(tls or {})
        val = dict(VALIDATION)
        val.update(validation or {})
        fwd = None
        if hosts:
            fwd = dict(HEALTH, hosts=tuple(hosts),
                       default=hosts[0]["name"] if default is None else default)
            if groups:
                fwd["groups"] = tuple(groups)
        if forwarding:
            fwd = dict(fwd or {}, **forwarding)
        if admin:
            over.setdefault("listeners", intercept.listeners_with_admin())
        ssl_path = test_dir / name / "ssl.log"
        node = make_catena(start=False, name=name, tls=section, validation=val,
                           connect_ports=origins.default_connect_ports() + list(extra_ports),
                           log={"ssl_file": str(ssl_path)}, forwarding=fwd, tier=tier, **over)
        node.ssl_path = ssl_path
        if start:
            node.start()
        return node
    return make


def dc_tier(downstream=("127.0.0.1",), **kw):
    """The DC's tier section: believes downstream claims from `downstream` only."""
    t = {"downstream_networks": list(downstream)}
    t.update(kw)
    return t


# --- logs and admin -----------------------------------------------------------------------

def ssl_records(node):
    return logs.AccessLog(util.read_text(node.ssl_path)).records


def wait_ssl(node, timeout=10.0, pred=None, **want):
    """The last SSL-log record with these field values (keyword spelling: x_cs_sni=...)."""
    def find():
        recs = [r for r in logs.AccessLog(util.read_text(node.ssl_path)).find(**want)
                if pred is None or pred(r)]
        return recs[-1] if recs else None
    try:
        return util.wait_until(find, timeout, "%s SSL-log record %r" % (node.name, want))
    except util.WaitTimeout as e:
        raise AssertionError("%s\nSSL log of %s now:\n%s" % (
            e, node.name, util.read_text(node.ssl_path)[-3000:]))


def status(node):
    return intercept.status(node.admin_port)


def upstream_state(node, name):
    st = status(node)
    assert "upstreams" in st, "no \"upstreams\" in /status of %s: %r" % (node.name, st)
    for u in st["upstreams"]:
        if u.get("name") == name:
            return u
    raise AssertionError("upstream %s not in /status of %s: %r" % (name, node.name,
                                                                   st["upstreams"]))


def wait_upstream(node, name, up, timeout=10.0):
    """Waits until /status shows the upstream up (or down)."""
    return util.wait_until(lambda: upstream_state(node, name)["up"] is up and
                           upstream_state(node, name), timeout,
                           "%s to see upstream %s %s" % (node.name, name,
                                                         "up" if up else "down"))


def tiers_of(node):
    st = status(node)
    assert "tiers" in st, "no \"tiers\" in /status of %s: %r" % (node.name, st)
    return {t["node"]: t for t in st["tiers"]}


def bundle_digest(node):
    return status(node)["bundle"]["digest"]


def query(q):
    """An access-log predicate: the request's query string is q (without "?")."""
    return lambda r: (r.get("cs-uri-query") or "").lstrip("?") == q


def served(node, pred=None, **want):
    """Access-log records of node matching want (and pred)."""
    return [r for r in node.access_log().find(**want) if pred is None or pred(r)]


# --- clients ------------------------------------------------------------------------------

def get_small(node, origins, cafile, *args, name="origin.test", **kw):
    return http.curl(origins.tls_url("/small.txt", name=name), *args, proxy_port=node.port,
                     cacert=cafile, max_time=30, **kw)


def get_plain(node, origins, path="/small.txt", *args, **kw):
    return http.curl(origins.plain_url(path), *args, proxy_port=node.port, max_time=30, **kw)


def plain_from(node, origins, source, headers=(), path="/small.txt"):
    """A plain-HTTP proxy request from a given source address (raw socket)."""
    with http.HttpConn.connect(node.port, source=source) as c:
        return c.request("GET", origins.plain_url(path), headers=headers)


def tls_from(node, origins, source, cafile, headers=(), name="origin.test"):
    """CONNECT from a given source address, TLS inside, one GET /small.txt."""
    port = origins.tls_port(name)
    c, r = http.proxy_connect(node.port, name, port, source=source, headers=headers)
    try:
        assert r.status == 200, "CONNECT from %s: %r %r" % (source, r, r.body[:300])
        t = c.start_tls(name, cafile)
        try:
            return intercept.origin_get(t, name, port, "/small.txt",
                                        headers=(("Connection", "close"),))
        finally:
            t.close()
    finally:
        c.close()


def origin_headers(r):
    """The request headers the echo origin saw (its JSON answer), names lower-cased; repeated
    headers joined with ", "."""
    got = json.loads(r.body)
    out = {}
    for k, v in got["headers"]:
        out[k.lower()] = out[k.lower()] + ", " + v if k.lower() in out else v
    return out


def leaf_seen(node, origins, cafile, name="origin.test", **kw):
    """The certificate a client sees for name through node (verified against cafile)."""
    return intercept.s_client(node.port, name, origins.tls_port(name), cafile=cafile,
                              **kw).check()


# --- both tiers tunnel --------------------------------------------------------------------

def test_both_tunnel(make_tier, origins, branch_kr, dc_kr):
    """tls.intercept "none" on both tiers (with keyrings, validation of tunnels on): a valid
    origin is tunneled end to end, an expired one still gives a readable exception page
    under the branch's issuer."""
    pki = origins.pki
    dc = make_tier("dc", dc_kr, tier=dc_tier())
    branch = make_tier("branch", branch_kr, hosts=[upstream("dc", dc.port, dc_kr.cert)])

    s = leaf_seen(branch, origins, pki.root_cert)
    assert intercept.der(s.leaf) == pki.leaf("origin.test").der(), \
        "not the origin's own certificate through two tunnels: %s" % s.describe()
    r = get_small(branch, origins, pki.root_cert).check()
    assert r.status == 200 and r.body == SMALL, r
    branch.wait_access(s_action="TCP_TUNNELED", cs_host="origin.test")
    dc.wait_access(s_action="TCP_TUNNELED", cs_host="origin.test")
    rec = wait_ssl(branch, x_cs_sni="origin.test", s_action="TUNNELED")
    assert rec["x-upstream"] == "dc", rec["_line"]

    # The DC meets the expired certificate and would answer its page under its own issuer,
    # which the user does not trust: the branch intercepts so the page reaches the user.
    # Twice: the second time the branch's probe verdict for the site is cached.
    mark = branch.event_mark()
    for attempt in (1, 2):
        r = get_small(branch, origins, branch_kr.root_cert, name="expired.test")
        assert r.rc == 0, "attempt %d: curl trusting the branch's root failed: %s" % (
            attempt, r.stderr[-1500:])
        http.assert_exception_page(r, 503, "ssl_server_cert_expired",
                                   body_contains=["expired.test"])
        assert SMALL not in r.body
    branch.wait_event(r"expired\.test: the upstream dc intercepts; intercepting here too",
                      since=mark)
    # The page the DC made counts as an exception in the branch's access log too.
    branch.wait_access(cs_host="expired.test", sc_status="503",
                       x_exception_id="ssl_server_cert_expired")
    s = leaf_seen(branch, origins, branch_kr.root_cert, name="expired.test")
    assert intercept.issuer_cn(s.leaf) == BRANCH_INTER, s.describe()
    # The DC's certificate never goes through a tunnel to a client trusting the branch only.
    assert not branch.access_log().find(s_action="TCP_TUNNELED", cs_host="expired.test"), \
        "\n".join(branch.access_log_lines())


# --- both tiers intercept -----------------------------------------------------------------

@pytest.mark.timeout(420)
def test_both_intercept(make_tier, origins, branch_kr, dc_kr, test_dir):
    """tls.intercept "all" on both tiers: the client (trusting the branch's root only) gets
    the content intact, 100 MiB with the right sha256; the branch accepts the DC's emulated
    certificate through that route's trust and logs it; an expired origin gives the page."""
    dc = make_tier("dc", dc_kr, "all", tier=dc_tier())
    branch = make_tier("branch", branch_kr, "all", hosts=[upstream("dc", dc.port, dc_kr.cert)])

    s = leaf_seen(branch, origins, branch_kr.root_cert)
    assert intercept.issuer_cn(s.leaf) == BRANCH_INTER, s.describe()
    assert intercept.der(s.certs[-1]) == branch_kr.root_der(), s.describe()
    r = get_small(branch, origins, branch_kr.root_cert).check()
    assert r.status == 200 and r.body == SMALL, r

    rec = wait_ssl(branch, x_cs_sni="origin.test", s_action="INTERCEPTED")
    assert rec["x-upstream"] == "dc", rec["_line"]
    assert rec["x-upstream-intercepted"] == "yes", rec["_line"]
    assert DC_INTER in rec["x-rs-certificate-issuer"], rec["_line"]
    assert rec["x-rs-certificate-validate-status"] == "CERT_VALID", rec["_line"]
    rec = wait_ssl(dc, x_cs_sni="origin.test", s_action="INTERCEPTED")
    assert PKI_INTER in rec["x-rs-certificate-issuer"], rec["_line"]
    assert rec["x-upstream"] in ("", "-"), rec["_line"]
    dc.wait_access(cs_uri_scheme="https", cs_uri_path="/small.txt", sc_status="200")

    out = test_dir / "100MiB"
    r = http.curl(origins.tls_url("/100MiB"), proxy_port=branch.port,
                  cacert=branch_kr.root_cert, output=out, max_time=300).check()
    assert r.status == 200
    assert out.stat().st_size == origins.files.size["100MiB"]
    assert util.sha256_file(out) == origins.files.sha256["100MiB"]
    out.unlink()
    for node in (branch, dc):
        rec = node.wait_access(cs_uri_scheme="https", cs_uri_path="/100MiB")
        assert int(rec["sc-bytes"]) >= 100 * MiB and rec["sc-status"] == "200", rec["_line"]

    # A certificate error at the origin: the exception page, under the branch's issuer.
    r = get_small(branch, origins, branch_kr.root_cert, name="expired.test")
    http.assert_exception_page(r, 503, "ssl_server_cert_expired", body_contains=["expired.test"])
    assert SMALL not in r.body
    r = get_small(branch, origins, branch_kr.root_cert, name="untrusted.test")
    http.assert_exception_page(r, 503, "ssl_server_cert_untrusted_issuer")


# --- the DC's issuer is trusted on its route only -----------------------------------------

@pytest.fixture
def dc_signed_origin(test_dir, dc_kr):
    """A TLS origin (the echo origin: one thread per connection) for origin.test whose
    certificate the DC's issuer signed, as an origin holding the DC's key would have."""
    cert, key = intercept.issue_with_keyring(dc_kr, test_dir / "dc-signed", "origin.test",
                                             ["DNS:origin.test"])
    chain = test_dir / "dc-signed" / "chain.pem"
    chain.write_text(cert.read_text() + dc_kr.cert.read_text())
    # The harness: the certificate does chain to the DC's root.
    v = util.run(["openssl", "verify", "-CAfile", dc_kr.root_cert, "-untrusted", dc_kr.cert,
                  cert])
    assert v.returncode == 0, v.stdout + v.stderr
    e = origins_mod.start_echo(test_dir / "dc-signed-origin", name="dc-signed",
                               args=["--cert", chain, "--key", key])
    e.cert = cert
    yield e
    e.stop()


@pytest.mark.parametrize("mode", ["all", "none"])
def test_dc_issuer_refused_on_direct_route(make_tier, origins, branch_kr, dc_kr,
                                           dc_signed_origin, mode):
    """An origin presenting a certificate signed by the DC's issuer, reached by the branch
    directly (the forwarding host that names that issuer exists but is not the route), is
    refused as an untrusted issuer: intercepted, or tunneled after a probe."""
    port = dc_signed_origin.port
    dc = make_tier("dc", dc_kr, tier=dc_tier())
    branch = make_tier("branch", branch_kr, mode, default="",
                       hosts=[upstream("dc", dc.port, dc_kr.cert)], extra_ports=[port])
    r = http.curl("https://origin.test:%d/small.txt" % port, proxy_port=branch.port,
                  cacert=branch_kr.root_cert, max_time=20)
    http.assert_exception_page(r, 503, "ssl_server_cert_untrusted_issuer")
    rec = wait_ssl(branch, x_cs_sni="origin.test",
                   pred=lambda r: r["s-supplier-port"] == str(port))
    assert rec["x-upstream"] in ("", "-"), rec["_line"]
    assert "untrusted_issuer" in rec["x-rs-certificate-observed-errors"], rec["_line"]
    assert DC_INTER in rec["x-rs-certificate-issuer"], rec["_line"]
    assert not served(dc), "the DC was used:\n%s" % "\n".join(dc.access_log_lines())


def test_route_verdict_not_reused_direct(make_tier, origins, branch_kr, dc_kr,
                                         dc_signed_origin):
    """A probe verdict reached through the DC (where the DC's issuer is an anchor) is not
    reused when the same site is reached directly: the branch (tunneling, validating by
    probe) first sees the site through the DC, then the route changes to direct and the
    origin's DC-signed certificate must be refused there."""
    port = dc_signed_origin.port
    url = "https://origin.test:%d/small.txt" % port
    dc = make_tier("dc", dc_kr, tier=dc_tier(), extra_ports=[port])
    branch = make_tier("branch", branch_kr, hosts=[upstream("dc", dc.port, dc_kr.cert)],
                       extra_ports=[port])
    # Through the DC: the DC refuses the certificate (not from its trusted roots) and answers
    # its page; the branch sees the DC's issuer, intercepts, and the page reaches the user.
    r = http.curl(url, proxy_port=branch.port, cacert=branch_kr.root_cert, max_time=20)
    http.assert_exception_page(r, 503, "ssl_server_cert_untrusted_issuer")
    dc.wait_event(r"certificate of origin\.test refused")
    through_dc = len(served(dc, cs_host="origin.test"))
    # Now direct, within the probe verdicts' lifetime.
    branch.update_config(forwarding={"default": ""})
    branch.reload()
    mark = branch.event_mark()
    r = http.curl(url, proxy_port=branch.port, cacert=branch_kr.root_cert, max_time=20)
    assert r.rc == 0, "direct: curl trusting the branch's root failed (was the DC-signed " \
        "certificate tunneled to it?): %s" % r.stderr[-800:]
    http.assert_exception_page(r, 503, "ssl_server_cert_untrusted_issuer")
    e = branch.wait_event(r"certificate of origin\.test refused: untrusted_issuer", since=mark)
    assert e.level == "warning", e.raw
    assert len(served(dc, cs_host="origin.test")) == through_dc, \
        "the direct request went through the DC:\n" + "\n".join(dc.access_log_lines())


# --- tier awareness -----------------------------------------------------------------------

def test_bundle_digests_compared(make_tier, origins, branch_kr, dc_kr, bundles):
    """The DC compares each downstream's bundle digest with its own: a mismatch is counted,
    logged at warning and shown in /status (match false); the same bundle shows match true.
    Claims of a client outside tier.downstream_networks are not recorded."""
    b1 = bundles.build(ALLOW, 1)
    b2 = bundles.build(ALLOW + "\n; another revision\n", 2)
    dc = make_tier("dc", dc_kr, tier=dc_tier(), bundle=bundles.section(b1))
    same = make_tier("branch-same", branch_kr, hosts=[upstream("dc", dc.port, dc_kr.cert)],
                     bundle=bundles.section(b1))
    other = make_tier("branch-other", branch_kr, hosts=[upstream("dc", dc.port, dc_kr.cert)],
                      bundle=bundles.section(b2))
    d1, d2 = bundle_digest(dc), bundle_digest(other)
    assert d1.startswith("sha256:") and d2.startswith("sha256:") and d1 != d2
    assert bundle_digest(same) == d1

    for node in (same, other):
        assert get_plain(node, origins).check().body == SMALL
        assert get_small(node, origins, origins.pki.root_cert).check().body == SMALL
    tiers = util.wait_until(lambda: (lambda t: len(t) >= 2 and t)(tiers_of(dc)), 10,
                            "two tiers in the DC's /status")
    assert tiers["branch-same"]["bundle"] == d1 and tiers["branch-same"]["match"] is True, tiers
    assert tiers["branch-other"]["bundle"] == d2 and tiers["branch-other"]["match"] is False, \
        tiers
    e = dc.wait_event(r"tier mismatch: downstream node branch-other runs bundle %s, this node %s"
                      % (re.escape(d2), re.escape(d1)))
    assert e.level == "warning", e.raw
    assert not any("branch-same" in e.msg and "mismatch" in e.msg for e in dc.event_log())
    assert status(dc)["tier_mismatches"] >= 2, status(dc)
    m = intercept.admin_get(dc.admin_port, "/metrics")
    got = re.search(r"^catena_tier_mismatches_total (\d+)$", m.text(), re.M)
    assert got and int(got.group(1)) >= 2, m.text()[:2000]

    # A stranger's claim (127.0.0.2 is not a downstream network of the DC): not recorded.
    r = plain_from(dc, origins, "127.0.0.2",
                   headers=[("Catena-Tier", "node=forged; bundle=sha256:00; inspect=edge")])
    assert r.status == 200, r
    assert "forged" not in tiers_of(dc), tiers_of(dc)


def test_forwarded_for_reaches_dc(make_tier, origins, branch_kr, dc_kr):
    """The client (127.0.0.2) is in the DC's access log as c-ip, for plain HTTP and
    CONNECT: the branch (127.0.0.1, a downstream network of the DC) sends X-Forwarded-For.
    A client's own X-Forwarded-For is not passed on as the truth, and the DC ignores one
    from a source that is not a downstream network."""
    dc = make_tier("dc", dc_kr, tier=dc_tier())
    branch = make_tier("branch", branch_kr, hosts=[upstream("dc", dc.port, dc_kr.cert)])

    r = plain_from(branch, origins, "127.0.0.2", path="/small.txt?xff=plain")
    assert r.status == 200 and r.body == SMALL, r
    rec = dc.wait_access(pred=query("xff=plain"))
    assert rec["c-ip"] == "127.0.0.2", rec["_line"]
    rec = branch.wait_access(pred=query("xff=plain"))
    assert rec["c-ip"] == "127.0.0.2", rec["_line"]

    r = tls_from(branch, origins, "127.0.0.2", origins.pki.root_cert)
    assert r.status == 200 and r.body == SMALL, r
    rec = dc.wait_access(s_action="TCP_TUNNELED", cs_host="origin.test")
    assert rec["c-ip"] == "127.0.0.2", rec["_line"]

    # A client's forged X-Forwarded-For: the branch (no downstream networks) sends the
    # address it saw.
    r = plain_from(branch, origins, "127.0.0.2", headers=[("X-Forwarded-For", "192.0.2.66")],
                   path="/small.txt?xff=forged")
    assert r.status == 200, r
    rec = dc.wait_access(pred=query("xff=forged"))
    assert rec["c-ip"] == "127.0.0.2", rec["_line"]
    # Straight to the DC from 127.0.0.3 (not a downstream network): its claim is ignored.
    r = plain_from(dc, origins, "127.0.0.3", headers=[("X-Forwarded-For", "192.0.2.66")],
                   path="/small.txt?xff=stranger")
    assert r.status == 200, r
    rec = dc.wait_access(pred=query("xff=stranger"))
    assert rec["c-ip"] == "127.0.0.3", rec["_line"]
    assert "192.0.2.66" not in "\n".join(dc.access_log_lines())


def test_forwarding_loop_refused(make_tier, origins, branch_kr):
    """A node whose default route is itself: the request comes back with its own name in
    Via and is refused (508 loop_detected); a CONNECT gets the upstream's answer named."""
    node = make_tier("loop", branch_kr)
    node.update_config(forwarding=dict(HEALTH, hosts=(upstream("self", node.port),),
                                       default="self"))
    node.reload()
    wait_upstream(node, "self", True)
    mark = node.event_mark()
    r = get_plain(node, origins)
    http.assert_exception_page(r, 508, "loop_detected", body_contains=["loop"])
    assert r.body != SMALL
    status_line = r.final.raw_head.split(b"\r\n")[0]
    e = node.wait_event(r"forwarding loop: Via already names loop", since=mark)
    assert e.level == "warning", e.raw
    node.wait_access(sc_status="508", x_exception_id="loop_detected")

    # A CONNECT: the inner pass refuses it; the outer answers a page naming that answer.
    c, r = http.proxy_connect(node.port, "origin.test", origins.tls_port())
    c.close()
    http.assert_exception_page(r, 502, "upstream_error", body_contains=["self", "508"])
    node.wait_access(cs_method="CONNECT", sc_status="508", x_exception_id="loop_detected")
    # And the plain answer: a client sending Via with the node's name is refused too.
    with http.HttpConn.connect(node.port) as c:
        r = c.request("GET", origins.plain_url("/small.txt"), headers=[("Via", "1.1 loop")])
    http.assert_exception_page(r, 508, "loop_detected")
    assert status_line == b"HTTP/1.1 508 Loop Detected", \
        "status line %r (RFC 5842 names 508 Loop Detected)" % status_line


# --- failover, hashing, health, fail open / closed ----------------------------------------

def test_failover_and_when_down(make_tier, origins, branch_kr, dc_kr):
    """A failover group of two DCs: the first serves; with it stopped the branch takes it
    out (warning), traffic moves to the second; both down: 502 upstream_unavailable
    (when_down "closed"), then direct with when_down "open" (after a reload)."""
    dc1 = make_tier("dc1", dc_kr, tier=dc_tier())
    dc2 = make_tier("dc2", dc_kr, tier=dc_tier())
    branch = make_tier("branch", branch_kr, default="dcs",
                       hosts=[upstream("dc1", dc1.port, dc_kr.cert),
                              upstream("dc2", dc2.port, dc_kr.cert)],
                       groups=[{"name": "dcs", "members": ["dc1", "dc2"],
                                "method": "failover"}])
    wait_upstream(branch, "dc1", True)
    wait_upstream(branch, "dc2", True)
    assert get_plain(branch, origins, "/small.txt?n=1").check().body == SMALL
    assert get_small(branch, origins, origins.pki.root_cert).check().body == SMALL
    dc1.wait_access(pred=query("n=1"))
    dc1.wait_access(s_action="TCP_TUNNELED", cs_host="origin.test")
    assert not served(dc2), "\n".join(dc2.access_log_lines())

    mark = branch.event_mark()
    dc1.stop()
    e = branch.wait_event(r"upstream dc1 \(127\.0\.0\.1:%d\) is down after 1 failed checks"
                          % dc1.port, since=mark)
    assert e.level == "warning", e.raw
    assert upstream_state(branch, "dc1")["up"] is False
    assert upstream_state(branch, "dc2")["up"] is True
    assert get_plain(branch, origins, "/small.txt?n=2").check().body == SMALL
    assert get_small(branch, origins, origins.pki.root_cert).check().body == SMALL
    dc2.wait_access(pred=query("n=2"))
    dc2.wait_access(s_action="TCP_TUNNELED", cs_host="origin.test")

    # Both down, when_down "closed": refused with a page saying so.
    dc2.stop()
    branch.wait_event(r"upstream dc2 \(127\.0\.0\.1:%d\) is down" % dc2.port, since=mark)
    r = get_plain(branch, origins, "/small.txt?n=3")
    http.assert_exception_page(r, 502, "upstream_unavailable", body_contains=["dcs"])
    r = get_small(branch, origins, origins.pki.root_cert)
    assert r.rc != 0 and r.responses and r.responses[0].status == 502, r
    assert r.responses[0].header("X-Catena-Exception") == "upstream_unavailable", \
        r.responses[0].headers
    branch.wait_access(sc_status="502", x_exception_id="upstream_unavailable")

    # when_down "open": straight to the origin.
    branch.update_config(forwarding={"when_down": "open"})
    branch.reload()
    r = get_plain(branch, origins, "/small.txt?n=4").check()
    assert r.status == 200 and r.body == SMALL, r
    assert get_small(branch, origins, origins.pki.root_cert).check().body == SMALL
    rec = branch.wait_access(pred=query("n=4"))
    assert rec["s-supplier-ip"] == "127.0.0.1", rec["_line"]
    branch.wait_event(r"going direct \(forwarding\.when_down = open\)", since=mark)


def test_upstream_back_after_successes(make_tier, origins, branch_kr):
    """An upstream that never listened is out after one failed check; once something
    listens on its address it is back (notice) and /status says so."""
    hold = util.PortReservation()
    try:
        branch = make_tier("branch", branch_kr, hosts=[upstream("dc", hold.port)])
        e = branch.wait_event(r"upstream dc \(127\.0\.0\.1:%d\) is down after 1 failed checks"
                              % hold.port)
        assert e.level == "warning", e.raw
        wait_upstream(branch, "dc", False)
        r = get_plain(branch, origins)
        http.assert_exception_page(r, 502, "upstream_unavailable", body_contains=["dc"])
        mark = branch.event_mark()
        port = hold.release()
        lsn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            lsn.bind(("127.0.0.1", port))
            lsn.listen(64)
            e = branch.wait_event(r"upstream dc \(127\.0\.0\.1:%d\) is up again" % port,
                                  since=mark)
            assert e.level == "notice", e.raw
            st = wait_upstream(branch, "dc", True)
            assert st["checks"] >= 3, st
        finally:
            lsn.close()
    finally:
        hold.release()


def test_hash_group_sticks_site_to_one_upstream(make_tier, origins, branch_kr, dc_kr):
    """method "hash": every request for one site goes to the same upstream, sites spread
    over both; when a site's upstream goes down the site moves to the other."""
    dc1 = make_tier("dc1", dc_kr, tier=dc_tier())
    dc2 = make_tier("dc2", dc_kr, tier=dc_tier())
    branch = make_tier("branch", branch_kr, default="dcs",
                       hosts=[upstream("dc1", dc1.port), upstream("dc2", dc2.port)],
                       groups=[{"name": "dcs", "members": ["dc1", "dc2"], "method": "hash"}])
    wait_upstream(branch, "dc1", True)
    wait_upstream(branch, "dc2", True)
    for i in range(6):
        assert get_plain(branch, origins, "/small.txt?h=%d" % i).check().body == SMALL
    hashed = lambda r: "h=" in (r.get("cs-uri-query") or "")  # noqa: E731
    util.wait_until(lambda: sum(len(served(n, pred=hashed)) for n in (dc1, dc2)) == 6, 10,
                    "six requests at the DCs")
    per = {n: len(served(n, pred=hashed)) for n in (dc1, dc2)}
    assert sorted(per.values()) == [0, 6], "plain.test split over the DCs: %r" % (
        {n.name: c for n, c in per.items()})
    # Sites spread: CONNECTs to several names, twice each; every name sticks to one DC and
    # both DCs get some (deterministic for these names with the hash catena uses).
    names = ["origin.test", "www.origin.test", "expired.test", "untrusted.test",
             "wronghost.test", "revoked.test", "other.test", "echo.test"]
    for _ in range(2):
        for n in names:
            c, r = http.proxy_connect(branch.port, n, origins.tls_port())
            c.close()
            assert r.status == 200, (n, r)
    util.wait_until(lambda: sum(len(served(d, s_action="TCP_TUNNELED")) for d in (dc1, dc2))
                    >= 2 * len(names), 10, "the CONNECTs at the DCs")
    where = {}
    for d in (dc1, dc2):
        for rec in served(d, s_action="TCP_TUNNELED"):
            where.setdefault(rec["cs-host"], set()).add(d.name)
    assert all(len(v) == 1 for v in where.values()), "a site went to both DCs: %r" % where
    assert {d for v in where.values() for d in v} == {"dc1", "dc2"}, \
        "every site went to one DC: %r" % where

    chosen = dc1 if per[dc1] else dc2
    spare = dc2 if chosen is dc1 else dc1
    mark = branch.event_mark()
    chosen.stop()
    branch.wait_event(r"upstream %s .* is down" % chosen.name, since=mark)
    assert get_plain(branch, origins, "/small.txt?moved=1").check().body == SMALL
    spare.wait_access(pred=query("moved=1"))


# --- credentials for the upstream ---------------------------------------------------------

DC_AUTH = """
<proxy>
    authenticate(dcrealm)
<proxy>
    allow
"""


def test_upstream_credentials(make_tier, origins, branch_kr, dc_kr, bundles, test_dir):
    """A DC that asks for proxy authentication: a branch with credentials_file gets through
    (the DC logs the branch's account); one without gets 502 upstream_authentication."""
    users = users_file(test_dir / "dc-users.txt", "branch-svc")
    dc = make_tier("dc", dc_kr, tier=dc_tier(), bundle=bundles.section(bundles.build(DC_AUTH)),
                   realms=({"name": "dcrealm", "type": "local", "users_file": str(users)},))
    # The DC does ask.
    r = get_plain(dc, origins)
    assert r.status == 407, r
    creds = credentials_file(test_dir / "dc.credentials", "branch-svc", "s3cret")
    good = make_tier("branch-good", branch_kr,
                     hosts=[upstream("dc", dc.port, dc_kr.cert, credentials_file=str(creds))])
    bare = make_tier("branch-bare", branch_kr, hosts=[upstream("dc", dc.port, dc_kr.cert)])

    r = get_plain(good, origins, "/small.txt?cred=1").check()
    assert r.status == 200 and r.body == SMALL, r
    assert get_small(good, origins, origins.pki.root_cert).check().body == SMALL
    rec = dc.wait_access(pred=query("cred=1"))
    assert rec["cs-username"] == "branch-svc" and rec["sc-status"] == "200", rec["_line"]
    dc.wait_access(s_action="TCP_TUNNELED", cs_host="origin.test", cs_username="branch-svc")

    # The DC consumes the credentials: the origin never sees them.
    r = http.curl(origins.echo_url("/creds"), proxy_port=good.port, max_time=30).check()
    seen = origin_headers(r)
    assert "proxy-authorization" not in seen and "catena-tier" not in seen, seen

    mark = bare.event_mark()
    r = get_small(bare, origins, origins.pki.root_cert)
    assert r.rc != 0 and r.responses, r
    connect = r.responses[0]
    assert connect.status == 502, connect.headers
    assert connect.header("X-Catena-Exception") == "upstream_authentication", connect.headers
    bare.wait_event(r"upstream dc refused CONNECT: 407", since=mark)
    # The page itself (raw CONNECT: curl does not show a failed CONNECT's body).
    c, resp = http.proxy_connect(bare.port, "origin.test", origins.tls_port())
    c.close()
    http.assert_exception_page(resp, 502, "upstream_authentication", body_contains=["dc", "407"])


def test_upstream_407_to_plain_request(make_tier, origins, branch_kr, dc_kr, bundles, test_dir):
    """Plain HTTP (absolute form) through an upstream that asks for credentials the branch
    does not have: the user gets 502 upstream_authentication naming the upstream, never the
    upstream's 407 (which would make the browser ask the user for the DC's password)."""
    users = users_file(test_dir / "dc-users.txt", "branch-svc")
    dc = make_tier("dc", dc_kr, tier=dc_tier(), bundle=bundles.section(bundles.build(DC_AUTH)),
                   realms=({"name": "dcrealm", "type": "local", "users_file": str(users)},))
    bare = make_tier("branch-bare", branch_kr, hosts=[upstream("dc", dc.port, dc_kr.cert)])
    r = get_plain(bare, origins, "/small.txt?cred=0")
    dc.wait_access(pred=query("cred=0"), sc_status="407")
    http.assert_exception_page(r, 502, "upstream_authentication", body_contains=["dc", "407"])
    assert r.header("Proxy-Authenticate") is None, r.headers


# --- the user's name to the DC ------------------------------------------------------------

BRANCH_AUTH = """
<proxy>
    authenticate(corp)
<proxy>
    allow
"""


@pytest.mark.parametrize("send_user", [True, False])
def test_user_name_to_dc(make_tier, origins, branch_kr, dc_kr, bundles, test_dir, send_user):
    """The branch authenticates alice; the DC logs cs-username alice when the forwarding
    host has send_user = true, and not when false. A user header from a client outside the
    DC's downstream networks is ignored."""
    users = users_file(test_dir / "users.txt", "alice")
    dc = make_tier("dc", dc_kr, tier=dc_tier())
    branch = make_tier("branch", branch_kr,
                       hosts=[upstream("dc", dc.port, dc_kr.cert, send_user=send_user)],
                       bundle=bundles.section(bundles.build(BRANCH_AUTH)),
                       realms=({"name": "corp", "type": "local", "users_file": str(users)},))
    assert get_plain(branch, origins).status == 407
    r = get_plain(branch, origins, "/small.txt?who=1", "--proxy-user", "alice:s3cret").check()
    assert r.status == 200 and r.body == SMALL, r
    r = get_small(branch, origins, origins.pki.root_cert, "--proxy-user", "alice:s3cret").check()
    assert r.body == SMALL
    branch.wait_access(pred=query("who=1"), cs_username="alice")
    rec = dc.wait_access(pred=query("who=1"))
    connect = dc.wait_access(s_action="TCP_TUNNELED", cs_host="origin.test")
    want = "alice" if send_user else "-"
    assert rec["cs-username"] == want, rec["_line"]
    assert connect["cs-username"] == want, connect["_line"]

    # The origin gets neither the user header nor the tier's own headers; Via names both.
    r = http.curl(origins.echo_url("/who"), "--proxy-user", "alice:s3cret",
                  proxy_port=branch.port, max_time=30).check()
    seen = origin_headers(r)
    for h in (USER_HEADER, "Proxy-Authorization", "Catena-Tier"):
        assert h.lower() not in seen, "the origin got %s: %r" % (h, seen)
    assert re.search(r"\bbranch\b.*\bdc\b", seen.get("via", "")), seen

    r = plain_from(dc, origins, "127.0.0.2", headers=[(USER_HEADER, "mallory")],
                   path="/small.txt?who=stranger")
    assert r.status == 200, r
    rec = dc.wait_access(pred=query("who=stranger"))
    assert rec["cs-username"] == "-", rec["_line"]


# --- upstream over TLS (type "https") -----------------------------------------------------

@pytest.fixture(scope="session")
def dc_proxy_leaf(origins):
    """The DC's own certificate for its TLS proxy port: node1.test, from the test PKI."""
    return origins.pki.issue("node1.test")


def https_listeners(leaf):
    """The DC's listeners: its proxy port in plain HTTP (node.port), an admin listener,
    and the same proxy over TLS with leaf as the proxy's own certificate."""
    return intercept.listeners_with_admin() + (
        {"type": "https", "address": "127.0.0.1:0", "cert": str(leaf.chain),
         "key": str(leaf.key)},)


def test_upstream_over_tls(make_tier, origins, branch_kr, dc_kr, dc_proxy_leaf, test_dir):
    """The branch reaches the DC's https listener (type "https", tls_name node1.test):
    TLS to the proxy, CONNECT inside it, the origin's TLS inside that, decrypted at both
    tiers: intercepted HTTPS (100 MiB intact) and plain HTTP arrive, the DC's proxy
    certificate is validated against the branch's anchors."""
    dc = make_tier("dc", dc_kr, "all", tier=dc_tier(), listeners=https_listeners(dc_proxy_leaf))
    branch = make_tier("branch", branch_kr, "all",
                       hosts=[upstream("dc", dc.listener_port("https"), dc_kr.cert,
                                       type="https", tls_name="node1.test")])
    r = get_small(branch, origins, branch_kr.root_cert).check()
    assert r.status == 200 and r.body == SMALL, r
    out = test_dir / "100MiB.tls"
    r = http.curl(origins.tls_url("/100MiB"), proxy_port=branch.port,
                  cacert=branch_kr.root_cert, output=out, max_time=120).check()
    assert r.status == 200 and util.sha256_file(out) == origins.files.sha256["100MiB"], r
    out.unlink()
    r = get_plain(branch, origins, "/small.txt?tls=1").check()
    assert r.status == 200 and r.body == SMALL, r
    dc.wait_access(pred=query("tls=1"), sc_status="200")
    dc.wait_access(cs_uri_scheme="https", cs_uri_path="/small.txt", sc_status="200")
    rec = wait_ssl(branch, x_cs_sni="origin.test", s_action="INTERCEPTED")
    assert rec["x-upstream"] == "dc" and rec["x-upstream-intercepted"] == "yes", rec["_line"]
    assert upstream_state(branch, "dc")["type"] == "https"


@pytest.mark.parametrize("case", ["untrusted", "wrong_name"])
def test_upstream_over_tls_wrong_certificate(make_tier, origins, branch_kr, dc_kr,
                                             dc_proxy_leaf, case):
    """A TLS upstream whose certificate does not verify (another root; or a valid one for
    another name than tls_name) is refused: 502 upstream_error naming it, nothing sent."""
    leaf = origins.pki.leaf("untrusted.test") if case == "untrusted" else dc_proxy_leaf
    dc = make_tier("dc", dc_kr, tier=dc_tier(), listeners=https_listeners(leaf))
    port = dc.listener_port("https")
    name = "untrusted.test" if case == "untrusted" else "node2.test"
    branch = make_tier("branch", branch_kr,
                       hosts=[upstream("dc", port, dc_kr.cert, type="https", tls_name=name)])
    mark = branch.event_mark()
    r = get_plain(branch, origins, "/small.txt?tls=bad")
    http.assert_exception_page(r, 502, "upstream_error", body_contains=["dc"])
    c, resp = http.proxy_connect(branch.port, "origin.test", origins.tls_port())
    c.close()
    http.assert_exception_page(resp, 502, "upstream_error", body_contains=["dc"])
    why = "untrusted_issuer" if case == "untrusted" else "hostname_mismatch"
    e = branch.wait_event(r"upstream dc \(127\.0\.0\.1:%d\): its certificate is refused: "
                          r".*%s" % (port, why), since=mark)
    assert e.level == "warning", e.raw
    assert not served(dc), "\n".join(dc.access_log_lines())


def test_upstream_over_tls_expired_origin_page(make_tier, origins, branch_kr, dc_kr,
                                               dc_proxy_leaf):
    """Both tiers tunnel, the branch-to-DC hop over TLS: an expired origin must still give
    the user (trusting the branch's root) a readable page, as over plain HTTP (the
    branch's probe goes through the DC over TLS too)."""
    dc = make_tier("dc", dc_kr, tier=dc_tier(), listeners=https_listeners(dc_proxy_leaf))
    branch = make_tier("branch", branch_kr,
                       hosts=[upstream("dc", dc.listener_port("https"), dc_kr.cert,
                                       type="https", tls_name="node1.test")])
    r = get_small(branch, origins, origins.pki.root_cert).check()
    assert r.body == SMALL
    for attempt in (1, 2):  # the second with the branch's verdict for the site cached
        r = get_small(branch, origins, branch_kr.root_cert, name="expired.test")
        assert r.rc == 0, "attempt %d: curl trusting the branch's root failed (the DC's " \
            "certificate was tunneled to it?): %s" % (attempt, r.stderr[-800:])
        http.assert_exception_page(r, 503, "ssl_server_cert_expired")


# --- foreign peers: Squid -----------------------------------------------------------------

@pytest.fixture
def squid(test_dir, origins):
    """start(parent_port=None) -> a Squid on loopback allowing the origins' ports, names
    from its own hosts file; stopped at teardown."""
    started = []

    def start(parent_port=None, name="squid"):
        s = squid_mod.start_squid(test_dir / name, origins.default_connect_ports(),
                                  http_ports=origins.default_http_ports(),
                                  parent_port=parent_port,
                                  names=["origin.test", "expired.test", "plain.test",
                                         "echo.test"])
        started.append(s)
        return s
    yield start
    for s in started:
        s.stop()


@pytest.mark.parametrize("mode", ["none", "all"])
def test_squid_upstream_of_branch(make_tier, origins, branch_kr, squid, mode):
    """Squid as the upstream of a catena branch: HTTPS through CONNECT (tunneled, or
    intercepted at the branch), plain HTTP in absolute form."""
    sq = squid()
    branch = make_tier("branch", branch_kr, mode, hosts=[upstream("squid", sq.port)])
    cafile = origins.pki.root_cert if mode == "none" else branch_kr.root_cert
    r = get_small(branch, origins, cafile).check()
    assert r.status == 200 and r.body == SMALL, r
    s = leaf_seen(branch, origins, cafile)
    if mode == "none":
        assert intercept.der(s.leaf) == origins.pki.leaf("origin.test").der(), s.describe()
    else:
        assert intercept.issuer_cn(s.leaf) == BRANCH_INTER, s.describe()
        rec = wait_ssl(branch, x_cs_sni="origin.test", s_action="INTERCEPTED")
        assert rec["x-upstream"] == "squid" and rec["x-upstream-intercepted"] == "no", \
            rec["_line"]
        assert PKI_INTER in rec["x-rs-certificate-issuer"], rec["_line"]
    target = "origin.test:%d" % origins.tls_port()
    rec = sq.wait_access(lambda r: r["method"] == "CONNECT" and r["url"] == target,
                         "CONNECT %s" % target)
    assert rec["code"].endswith("/200"), rec["_line"]
    r = get_plain(branch, origins, "/small.txt?via=squid").check()
    assert r.status == 200 and r.body == SMALL, r
    rec = sq.wait_access(lambda r: r["url"].endswith("/small.txt?via=squid"), "GET via squid")
    assert rec["method"] == "GET" and rec["code"].endswith("/200"), rec["_line"]
    rec = branch.wait_access(pred=query("via=squid"))
    assert rec["sc-status"] == "200", rec["_line"]


def test_squid_downstream_of_catena(make_tier, origins, branch_kr, squid):
    """Squid using catena as its parent (cache_peer, never_direct): HTTPS through CONNECT
    reaches the origin (the client sees the origin's certificate), plain HTTP too; catena
    believes Squid's X-Forwarded-For (a downstream network)."""
    node = make_tier("dc", branch_kr, tier=dc_tier())
    sq = squid(parent_port=node.port)
    url = origins.tls_url("/small.txt")
    r = http.curl(url, proxy_port=sq.port, cacert=origins.pki.root_cert, max_time=30).check()
    assert r.status == 200 and r.body == SMALL, r
    rec = node.wait_access(s_action="TCP_TUNNELED", cs_host="origin.test")
    assert rec["c-ip"] == "127.0.0.1", rec["_line"]
    rec = sq.wait_access(lambda r: r["method"] == "CONNECT", "CONNECT through the parent")
    assert "catena" in rec["hierarchy"] or "127.0.0.1" in rec["hierarchy"], rec["_line"]
    assert "DIRECT" not in rec["hierarchy"], rec["_line"]
    s = intercept.s_client(sq.port, "origin.test", origins.tls_port(),
                           cafile=origins.pki.root_cert).check()
    assert intercept.der(s.leaf) == origins.pki.leaf("origin.test").der(), s.describe()
    r = http.curl(origins.plain_url("/small.txt?from=squid"), proxy_port=sq.port,
                  max_time=30).check()
    assert r.status == 200 and r.body == SMALL, r
    rec = node.wait_access(pred=query("from=squid"))
    assert rec["sc-status"] == "200", rec["_line"]
    # An expired origin behind catena: the client of Squid gets catena's page (intercepted
    # for the page under catena's issuer; Squid only relays the bytes).
    r = http.curl(origins.tls_url("/small.txt", name="expired.test"), proxy_port=sq.port,
                  cacert=branch_kr.root_cert, max_time=30)
    http.assert_exception_page(r, 503, "ssl_server_cert_expired")


# --- where inspection happens -------------------------------------------------------------

def test_inspect_edge(make_tier, origins, branch_kr, dc_kr):
    """tier.inspect "edge": the branch intercepts and validates the origin itself; the DC,
    told so by a downstream network, tunnels without decrypting (x-detail "inspected
    downstream")."""
    dc = make_tier("dc", dc_kr, "all", tier=dc_tier())
    branch = make_tier("branch", branch_kr, "all", tier={"inspect": "edge"},
                       hosts=[upstream("dc", dc.port, dc_kr.cert)])
    s = leaf_seen(branch, origins, branch_kr.root_cert)
    assert intercept.issuer_cn(s.leaf) == BRANCH_INTER, s.describe()
    assert get_small(branch, origins, branch_kr.root_cert).check().body == SMALL
    rec = wait_ssl(branch, x_cs_sni="origin.test", s_action="INTERCEPTED")
    assert rec["x-upstream"] == "dc" and rec["x-upstream-intercepted"] == "no", rec["_line"]
    assert PKI_INTER in rec["x-rs-certificate-issuer"], rec["_line"]
    rec = wait_ssl(dc, x_cs_sni="origin.test")
    assert rec["s-action"] == "TUNNELED", rec["_line"]
    assert rec["x-detail"] == "inspected downstream", rec["_line"]
    assert not [r for r in ssl_records(dc) if r["s-action"] == "INTERCEPTED"], \
        util.read_text(dc.ssl_path)
    dc.wait_access(s_action="TCP_TUNNELED", cs_host="origin.test")
    # An origin error is the branch's to find (the DC does not look).
    r = get_small(branch, origins, branch_kr.root_cert, name="expired.test")
    http.assert_exception_page(r, 503, "ssl_server_cert_expired")
    rec = wait_ssl(branch, x_cs_sni="expired.test")
    assert "expired" in rec["x-rs-certificate-observed-errors"], rec["_line"]


def test_inspect_edge_from_the_bundle(make_tier, origins, branch_kr, dc_kr, bundles):
    """The bundle both tiers run says where to decrypt (tier.inspect(edge) in <forward>),
    over node configs that both say "both": the branch intercepts, the DC tunnels."""
    b = bundles.build(ALLOW + "<forward>\n    tier.inspect(edge)\n", 1)
    dc = make_tier("dc", dc_kr, "all", tier=dc_tier(), bundle=bundles.section(b))
    branch = make_tier("branch", branch_kr, "all", hosts=[upstream("dc", dc.port, dc_kr.cert)],
                       bundle=bundles.section(b))
    assert get_small(branch, origins, branch_kr.root_cert).check().body == SMALL
    rec = wait_ssl(branch, x_cs_sni="origin.test", s_action="INTERCEPTED")
    assert PKI_INTER in rec["x-rs-certificate-issuer"], rec["_line"]
    rec = wait_ssl(dc, x_cs_sni="origin.test")
    assert rec["s-action"] == "TUNNELED" and rec["x-detail"] == "inspected downstream", \
        rec["_line"]


def test_inspect_edge_claim_from_stranger_ignored(make_tier, origins, branch_kr, dc_kr):
    """The same branch behind a DC that does not count it as a downstream network: the DC
    intercepts as its policy says; the branch then meets the DC's emulated certificate and
    accepts it through the route's trust."""
    dc = make_tier("dc", dc_kr, "all", tier=dc_tier(downstream=("127.0.0.9",)))
    branch = make_tier("branch", branch_kr, "all", tier={"inspect": "edge"},
                       hosts=[upstream("dc", dc.port, dc_kr.cert)])
    assert get_small(branch, origins, branch_kr.root_cert).check().body == SMALL
    rec = wait_ssl(dc, x_cs_sni="origin.test")
    assert rec["s-action"] == "INTERCEPTED", rec["_line"]
    rec = wait_ssl(branch, x_cs_sni="origin.test", s_action="INTERCEPTED")
    assert rec["x-upstream-intercepted"] == "yes", rec["_line"]
    assert DC_INTER in rec["x-rs-certificate-issuer"], rec["_line"]


def test_inspect_core(make_tier, origins, branch_kr, dc_kr, test_dir):
    """tier.inspect "core": the branch, though its tls.intercept says "all", never
    intercepts through the upstream: it tunnels (validating by probe) and the DC intercepts,
    so the client sees the DC's certificates."""
    dc = make_tier("dc", dc_kr, "all", tier=dc_tier())
    branch = make_tier("branch", branch_kr, "all", tier={"inspect": "core"},
                       hosts=[upstream("dc", dc.port, dc_kr.cert)])
    s = leaf_seen(branch, origins, dc_kr.root_cert)
    assert intercept.issuer_cn(s.leaf) == DC_INTER, s.describe()
    assert intercept.der(s.certs[-1]) == dc_kr.root_der(), s.describe()
    assert get_small(branch, origins, dc_kr.root_cert).check().body == SMALL
    branch.wait_access(s_action="TCP_TUNNELED", cs_host="origin.test")
    assert not branch.access_log().find(s_action="TCP_INTERCEPTED"), \
        "\n".join(branch.access_log_lines())
    dc.wait_access(s_action="TCP_INTERCEPTED", cs_host="origin.test")
    dc.wait_access(cs_uri_scheme="https", cs_uri_path="/small.txt", sc_status="200")
    rec = wait_ssl(branch, x_cs_sni="origin.test")
    assert rec["s-action"] == "TUNNELED" and rec["x-upstream"] == "dc", rec["_line"]
    # The expired origin: the DC's page, under the DC's issuer (the branch stays out).
    r = get_small(branch, origins, dc_kr.root_cert, name="expired.test")
    http.assert_exception_page(r, 503, "ssl_server_cert_expired")
    assert not branch.access_log().find(s_action="TCP_INTERCEPTED"), \
        "\n".join(branch.access_log_lines())
