"""Interception, the operator's side: the admin endpoint (/status and its emulation counters,
CA download), the CA download on the proxy port (reserved name catena.ca), clients that pin
certificates (tunneled after repeated refusals), the TLS key log.

Nodes come from make_intercepting (conftest.py); admin=True adds an admin listener on a
reserved port (node.admin_port).
"""
import subprocess
import re
import stat
import threading

import pytest

from lib import http, intercept, pki as pki_mod

CLI_TLS = re.escape("TLS accept error (client side):")
REFUSED = re.escape("(the client refused our certificate)")


def _get_via_proxy(node, url):
    with http.HttpConn.connect(node.port) as c:
        return c.request("GET", url)


def _intercepted_get(node, origins, keyring, name="origin.test"):
    r = http.curl(origins.tls_url("/small.txt", name=name), proxy_port=node.port,
                  cacert=keyring.root_cert).check()
    assert r.body == origins.files.path("small.txt").read_bytes()
    return r


# --- /status ----------------------------------------------------------------------------

def test_status_fields(make_intercepting, origins):
    node = make_intercepting(admin=True)
    c, r = http.proxy_connect(node.port, "origin.test", origins.tls_port())
    with c:
        assert r.status == 200, r
        st = intercept.status(node.admin_port)
    assert st.get("node") == node.name, st
    assert isinstance(st.get("version"), str) and st["version"], st
    assert isinstance(st.get("connections"), int) and st["connections"] >= 1, \
        "a tunnel was open while /status was asked: %r" % st
    emu = st.get("emulation", {}).get("default")
    assert isinstance(emu, dict), st
    for k in ("created", "hits", "waited", "evicted", "entries"):
        assert isinstance(emu.get(k), int), "emulation.default.%s: %r" % (k, emu)
    assert isinstance(st.get("pinned_sites"), list) and st["pinned_sites"] == [], st


def test_status_second_connection_hits_cache(make_intercepting, origins, keyring):
    node = make_intercepting(admin=True)
    before = intercept.emulation_stats(node.admin_port)
    _intercepted_get(node, origins, keyring)
    one = intercept.emulation_stats(node.admin_port)
    assert one["created"] == before["created"] + 1, (before, one)
    assert one["entries"] >= 1, one
    _intercepted_get(node, origins, keyring)
    two = intercept.emulation_stats(node.admin_port)
    assert two["created"] == one["created"], "a second certificate was made: %r %r" % (one, two)
    assert two["hits"] == one["hits"] + 1, (one, two)


@pytest.mark.timeout(120)
def test_status_50_concurrent_first_connections(make_intercepting, origins, keyring):
    node = make_intercepting(admin=True)
    port = origins.tls_port()
    before = intercept.emulation_stats(node.admin_port)
    n = 50
    errors = []
    gate = threading.Barrier(n, timeout=30)

    def one(i):
        try:
            gate.wait()
            with intercept.tls_tunnel(node.port, "origin.test", port, keyring.root_cert) as c:
                r = intercept.origin_get(c, "origin.test", port, "/small.txt")
                assert r.status == 200, r
        except Exception as e:  # reported below
            errors.append("%d: %r" % (i, e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors, "%d of %d failed: %s" % (len(errors), n, errors[:5])
    after = intercept.emulation_stats(node.admin_port)
    assert after["created"] - before["created"] == 1, \
        "%d certificates for one site: %r" % (after["created"] - before["created"], after)
    served = (after["hits"] - before["hits"]) + (after["waited"] - before["waited"])
    assert served >= n - 1, "hits + waited = %d for %d connections: %r" % (served, n, after)


def test_admin_networks(make_intercepting):
    node = make_intercepting(admin=True, access={"admin_networks": ["127.0.0.2/32"]})
    with http.HttpConn.connect(node.admin_port, source="127.0.0.2") as c:
        c.send(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert c.read_response().status == 200
    with http.HttpConn.connect(node.admin_port) as c:  # from 127.0.0.1: not allowed
        c.send(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        try:
            r = c.read_response(timeout=10)
        except (AssertionError, OSError):
            r = None  # closed without an answer is a refusal too
    assert r is None or r.status == 403, "admin answered a client outside admin_networks: %r" % r


# --- CA download ------------------------------------------------------------------------

def _check_ca_answers(pem, der, page, keyring):
    assert pem.status == 200, pem
    certs = pki_mod.pem_certs(pem.text())
    assert len(certs) == 1, "expected one certificate (the root): %r" % pem.body[:500]
    assert pki_mod.pem_to_der(certs[0]) == keyring.root_der(), \
        "/ca.pem is not the top of the keyring's chain"
    assert der.status == 200, der
    ctype = (der.header("Content-Type") or "").split(";")[0].strip()
    assert ctype == "application/x-x509-ca-cert", der.headers
    assert der.body == keyring.root_der(), "/ca.der is not the root in DER"
    assert page.status == 200 and "text/html" in (page.header("Content-Type") or ""), page
    text = page.text()
    for word in ("Windows", "macOS", "Firefox", "Linux"):
        assert word in text, "the install page does not mention %s" % word
    for link in ("ca.pem", "ca.der"):
        assert re.search(r'href="[^"]*%s"' % re.escape(link), text), \
            "no link to %s in %r" % (link, text[:1500])


def test_ca_download_admin(make_intercepting, keyring):
    node = make_intercepting(admin=True)
    p = node.admin_port
    _check_ca_answers(intercept.admin_get(p, "/ca.pem"), intercept.admin_get(p, "/ca.der"),
                      intercept.admin_get(p, "/ca"), keyring)


def test_ca_download_proxy_reserved_name(make_intercepting, origins, keyring):
    node = make_intercepting()
    mark = origins.dns.mark()
    pem = _get_via_proxy(node, "http://catena.ca/ca.pem")
    der = _get_via_proxy(node, "http://catena.ca/ca.der")
    page = _get_via_proxy(node, "http://catena.ca/")
    _check_ca_answers(pem, der, page, keyring)
    assert not [q for q in origins.dns.queries_since(mark) if q[1] == "catena.ca"], \
        "catena asked DNS for its own reserved name"
    # What a user types: curl through the proxy.
    r = http.curl("http://catena.ca/ca.pem", proxy_port=node.port).check()
    assert pki_mod.pem_to_der(r.body.decode()) == keyring.root_der()


# --- pinned clients ------------------------------------------------------------------------

PINNING = {"enabled": True, "threshold": 3, "window": "10m", "tunnel_for": "1h"}


def _refuse(node, origins, version, host="origin.test"):
    """A client that trusts a CA other than catena's (the untrusted root): it refuses our
    certificate with a fatal alert."""
    s = intercept.s_client(node.port, host, origins.tls_port(),
                           cafile=origins.pki.untrusted_root_cert, tls=version)
    assert s.rc != 0, s.describe()
    return s


@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_pinning_client_tunneled_after_threshold(make_intercepting, origins, keyring, version):
    node = make_intercepting(admin=True, pinning=PINNING)
    port = origins.tls_port()
    for i in range(3):
        mark = node.event_mark()
        s = _refuse(node, origins, version)
        assert intercept.issuer_cn(s.leaf) == intercept.INTER_CN, \
            "attempt %d was not intercepted: %s" % (i + 1, s.describe())
        e = node.wait_event(CLI_TLS + r" origin\.test.*" + REFUSED, since=mark)
        assert e.level == "info", e.raw
    e = node.wait_event(r"pinned:.*origin\.test", timeout=5)
    assert e.level == "notice", e.raw
    # Now tunneled: a client that trusts the origin's real issuer gets the real certificate.
    s = intercept.s_client(node.port, "origin.test", port, cafile=origins.pki.root_cert,
                           tls=version).check()
    assert intercept.der(s.leaf) == origins.pki.leaf("origin.test").der(), \
        "still intercepted after %d refusals" % 3
    node.wait_access(s_action="TCP_TUNNELED", cs_host="origin.test")
    pinned = intercept.status(node.admin_port)["pinned_sites"]
    assert [p.get("host") for p in pinned] == ["origin.test"], pinned
    assert pinned[0].get("until"), pinned
    # Another site is still intercepted.
    s = intercept.s_client(node.port, "www.origin.test", port, cafile=keyring.root_cert).check()
    assert intercept.issuer_cn(s.leaf) == intercept.INTER_CN


def test_pinning_network_errors_do_not_count(make_intercepting, origins, keyring):
    node = make_intercepting(admin=True, pinning=PINNING)
    hello = intercept.client_hello_bytes("origin.test")
    for _ in range(5):
        mark = node.event_mark()
        c, r = http.proxy_connect(node.port, "origin.test", origins.tls_port())
        assert r.status == 200, r
        c.send(hello)
        c.close()  # no alert: a plain network error
        node.wait_event(CLI_TLS + r" origin\.test", since=mark)
    assert not [e for e in node.event_log() if "pinned:" in e.msg], node.event_text()[-2000:]
    s = intercept.s_client(node.port, "origin.test", origins.tls_port(),
                           cafile=keyring.root_cert).check()
    assert intercept.issuer_cn(s.leaf) == intercept.INTER_CN, "tunneled without refusals"
    assert intercept.status(node.admin_port)["pinned_sites"] == []


def test_pinning_disabled(make_intercepting, origins, keyring):
    node = make_intercepting(pinning={"enabled": False})
    for _ in range(4):
        _refuse(node, origins, "1.2")
    s = intercept.s_client(node.port, "origin.test", origins.tls_port(),
                           cafile=keyring.root_cert).check()
    assert intercept.issuer_cn(s.leaf) == intercept.INTER_CN
    assert not [e for e in node.event_log() if "pinned:" in e.msg]


# --- key log ---------------------------------------------------------------------------------

KEYLOG_LINE = re.compile(r"^(CLIENT_RANDOM|CLIENT_EARLY_TRAFFIC_SECRET|"
                         r"CLIENT_HANDSHAKE_TRAFFIC_SECRET|SERVER_HANDSHAKE_TRAFFIC_SECRET|"
                         r"CLIENT_TRAFFIC_SECRET_0|SERVER_TRAFFIC_SECRET_0|EXPORTER_SECRET) "
                         r"[0-9a-fA-F]{64} [0-9a-fA-F]{64,192}$")


@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_keylog_file(make_intercepting, origins, test_dir, keyring, version):
    path = test_dir / "keylog.txt"
    node = make_intercepting(tls={"keylog_file": str(path)})
    curl_keys = test_dir / "curl-keys.txt"
    args = ["--tlsv1.3"] if version == "1.3" else ["--tlsv1.2", "--tls-max", "1.2"]
    r = http.curl(origins.tls_url("/small.txt"), *args, proxy_port=node.port,
                  cacert=keyring.root_cert, env={"SSLKEYLOGFILE": str(curl_keys)}).check()
    assert r.body == origins.files.path("small.txt").read_bytes()
    assert path.exists(), "no key log at %s" % path
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o600, "key log mode %o" % mode
    # Hex in either case (Wireshark reads both); compared case-insensitively below.
    lines = [l for l in path.read_text().splitlines() if l and not l.startswith("#")]
    bad = [l for l in lines if not KEYLOG_LINE.match(l)]
    assert lines and not bad, "lines not in SSLKEYLOGFILE format: %r" % bad[:3]
    label = "CLIENT_HANDSHAKE_TRAFFIC_SECRET" if version == "1.3" else "CLIENT_RANDOM"
    assert any(l.startswith(label + " ") for l in lines), \
        "no %s line for the TLS %s session with the client; catena wrote: %r" % (
            label, version, sorted({l.split()[0] for l in lines}))
    # The client's own key log (curl) lists the secrets of its session with catena: catena,
    # the server of that session, must have written the same lines.
    # (What Wireshark needs to decrypt: not EXPORTER_SECRET.)
    theirs = [l for l in curl_keys.read_text().splitlines()
              if KEYLOG_LINE.match(l) and not l.startswith("EXPORTER_SECRET")]
    assert theirs, "curl wrote no key log"
    ours = {l.lower() for l in lines}
    missing = [l for l in theirs if l.lower() not in ours]
    assert not missing, "client-side secrets missing from catena's key log: %r" % missing[:3]
    # Secrets never reach the event log.
    ev = node.event_text()
    assert not any(l.split()[2].lower() in ev.lower() for l in lines), \
        "a secret is in the event log"


# --- servers that ask for a client certificate ---------------------------------------------

def test_client_certificate_site_tunneled(make_intercepting, origins, keyring, test_dir):
    """An origin that asks for a client certificate cannot be intercepted: catena notices the
    CertificateRequest, tunnels that very connection on a fresh origin connection, remembers
    the site (listed in /status) and logs why."""
    leaf = origins.pki.leaf("origin.test")
    srv = intercept.SServer(test_dir, leaf.cert, leaf.key, chain=origins.pki.inter_cert,
                            args=["-www", "-verify", "1"])
    try:
        node = make_intercepting(admin=True,
                                 connect_ports=origins.default_connect_ports() + [srv.port])
        for _ in range(2):
            # Trusting only the origin's real issuer: succeeds only if tunneled.
            r = http.curl("https://origin.test:%d/" % srv.port, proxy_port=node.port,
                          cacert=origins.pki.root_cert).check()
            assert r.status == 200, r
        e = node.wait_event(r"origin\.test asks for a client certificate")
        assert e.level == "notice", e.raw
        sites = intercept.status(node.admin_port)["pinned_sites"]
        assert [(p["host"], p["reason"]) for p in sites] == [("origin.test",
                                                               "client_certificate")], sites
    finally:
        srv.stop()


def test_crl_url_served(make_intercepting, origins, keyring, test_dir):
    """tls.crl_url: emulated certificates name http://catena.ca/crl/<keyring>.crl, and catena
    serves there an empty CRL signed by the keyring, which openssl accepts for the leaf."""
    node = make_intercepting(tls={"crl_url": True})
    s = intercept.s_client(node.port, "origin.test", origins.tls_port(),
                           cafile=keyring.root_cert).check()
    text = intercept.x509(s.leaf, "-text")
    assert "URI:http://catena.ca/crl/default.crl" in text, text
    r = http.curl("http://catena.ca/crl/default.crl", proxy_port=node.port).check()
    assert r.status == 200 and r.header("content-type") == "application/pkix-crl", r
    crl = test_dir / "crl.der"
    crl.write_bytes(r.body)
    leaf = test_dir / "leaf.pem"
    leaf.write_text(s.leaf)
    out = subprocess.run(["openssl", "verify", "-crl_check", "-CRLfile", str(crl),
                          "-CAfile", str(keyring.root_cert), "-untrusted",
                          str(keyring.cert), str(leaf)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "OK" in out.stdout, out.stdout + out.stderr
