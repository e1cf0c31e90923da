"""Server-certificate validation end to end: "intercept on exception, tunnel otherwise".

Origins (lib/valorigins.py, fixture val_origins): one nginx port per certificate case (valid,
expired, not yet valid, self-signed, untrusted root, missing intermediate, wrong host, revoked
in the CRL, revoked in OCSP, client certificate asked, TLS 1.0 only, a non-AEAD cipher only,
RSA-1024, SHA-1 signature, clientAuth-only EKU, an issuer with HTML in its name), the loopback
OCSP responders they name, and the session CRL served by the main nginx.

Two modes per case:
  default    tls.intercept "none" with a keyring: catena probes the origin, tunnels a good
             site (the client sees the origin's own certificate) and intercepts a bad one only
             to answer an exception page (over a certificate for the name, from catena's issuer)
  intercept  tls.intercept "all": content through catena, or the exception page
Clients trust the root they should end up with (the test PKI's for a tunnel, catena's
otherwise) and look at which certificate they got. Every node writes the SSL access log
(log.ssl_file), checked field by field.

Beyond the matrix: the page (escaping, precedence), ignore rules and validation.enabled, the
override flow with curl and a cookie jar and the forgeries it must refuse, revocation (soft,
hard, slow responder, off, OCSP versus CRL, a stapled OCSP response when the sources are
silent), and the probe's verdict cache (handshakes counted at the origin through a relay).
"""
import re
import time
import urllib.parse

import pytest

from lib import http, intercept, logs, util, valorigins

SMALL = b"hello from the catena e2e origin\n"

VALIDATION = {"revocation_timeout": "1s", "probe_timeout": "2s"}

INTER_ISSUER = "catena e2e Intermediate CA"


# --- helpers ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def both_roots(session_dir, origins, keyring):
    """A CA file with the test PKI's root and catena's root: a client that accepts either
    the origin's own certificate or catena's (and then looks at which it got)."""
    p = session_dir / "validation-both-roots.pem"
    p.write_text(origins.pki.root_cert.read_text() + keyring.root_cert.read_text())
    return p


@pytest.fixture
def make_node(make_catena, keyring, origins, val_origins):
    """make_node(mode, validation=None, tls=None, extra_ports=(), admin=False, **overrides):
    a node in "default" (intercept none, keyring configured) or "intercept" (all) mode, with
    short validation timeouts, the SSL log in its directory, the validation origins reachable
    (and extra_ports), an admin listener with admin=True."""
    def make(mode, validation=None, tls=None, extra_ports=(), admin=False, **overrides):
        if admin:
            overrides.setdefault("listeners", intercept.listeners_with_admin())
        section = intercept.tls_section(keyring, origins.pki,
                                        intercept="none" if mode == "default" else "all")
        section.update(tls or {})
        val = dict(VALIDATION)
        val.update(validation or {})
        ports = origins.default_connect_ports() + val_origins.connect_ports() + list(extra_ports)
        node = make_catena(start=False, tls=section, validation=val, connect_ports=ports,
                           **overrides)
        node.cfg["log"]["ssl_file"] = str(node.dir / "ssl.log")
        node.ssl_path = node.dir / "ssl.log"
        node.start()
        return node
    return make


def ssl_log(node):
    return logs.AccessLog(util.read_text(node.ssl_path))


def wait_ssl(node, timeout=10.0, **want):
    """The SSL-log record with these field values (keyword spelling: x_cs_sni="a.test")."""
    def find():
        recs = ssl_log(node).find(**want)
        return recs[-1] if recs else None
    try:
        return util.wait_until(find, timeout, "SSL-log record %r" % (want,))
    except util.WaitTimeout as e:
        raise AssertionError("%s\nSSL log now:\n%s" % (e, util.read_text(node.ssl_path)[-3000:]))


def errors_of(rec):
    v = rec["x-rs-certificate-observed-errors"]
    return set() if v in ("", "-") else set(v.split())


def fetch(node, url, cafile, *args, **kw):
    return http.curl(url, *args, proxy_port=node.port, cacert=cafile, max_time=20, **kw)


def curl_error(r):
    """curl's own error line ("curl: (60) SSL certificate problem: ...")."""
    lines = [l for l in r.stderr.splitlines() if l.startswith("curl: (")]
    return lines[0] if lines else r.stderr.strip()[-300:]


def direct(val_origins, name, *args):
    """openssl s_client straight to the origin (no catena): the harness's own check."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % val_origins.sites[name].port,
            "-servername", name] + list(args)
    r = util.run(argv, timeout=20, input=b"")
    return r.returncode, r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")


# --- the harness --------------------------------------------------------------------------

def test_validation_origins_direct(val_origins, origins):
    """Each origin presents what its name says, checked with openssl straight to it."""
    pki = origins.pki

    def verify(name, *extra):
        rc, out = direct(val_origins, name, "-CAfile", str(pki.root_cert),
                         "-verify_return_error", *extra)
        return rc, out

    assert verify("origin.test")[0] == 0
    rc, out = verify("expired.test")
    assert rc != 0 and "expired" in out, out[-500:]
    rc, out = verify("notyet.test")
    assert rc != 0 and "not yet valid" in out, out[-500:]
    rc, out = verify("selfsigned.test")
    assert rc != 0 and "self-signed" in out, out[-500:]
    rc, out = verify("nointer.test")
    assert rc != 0 and "unable to get local issuer" in out, out[-500:]
    asked = re.compile(r"^Requested Signature Algorithms:", re.M)  # a CertificateRequest
    rc, out = direct(val_origins, "clientcert.test")
    assert asked.search(out), out[-1500:]
    rc, out = direct(val_origins, "origin.test")
    assert not asked.search(out), out[-1500:]
    rc, out = direct(val_origins, "tls10.test", "-tls1_2")
    assert rc != 0, out[-500:]
    if val_origins.speaks_tls10():
        rc, out = direct(val_origins, "tls10.test", "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0")
        assert rc == 0 and re.search(r"Protocol\s*:\s*TLSv1\n", out), out[-800:]
    rc, out = direct(val_origins, "weakcipher.test", "-tls1_2", "-cipher",
                     "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305")
    assert rc != 0, out[-500:]
    rc, out = direct(val_origins, "weakcipher.test", "-tls1_2", "-cipher", "AES128-SHA")
    assert rc == 0 and "AES128-SHA" in out, out[-800:]
    leaf = val_origins.leaf("weakkey.test")
    assert "Public-Key: (1024 bit)" in intercept.x509(leaf.cert, "-text")
    if "sha1.test" not in val_origins.unavailable:
        leaf = val_origins.leaf("sha1.test")
        assert "sha1WithRSAEncryption" in intercept.x509(leaf.cert, "-text")
    text = intercept.x509(val_origins.leaf("badeku.test").cert, "-text")
    assert "TLS Web Client Authentication" in text and "Server Authentication" not in text
    text = intercept.x509(val_origins.leaf("ocsprevoked.test").cert, "-text")
    assert "OCSP - URI:http://ocsp.test:%d/" % val_origins.ocsp.port in text, text
    assert "CRL Distribution" not in text, text
    text = intercept.x509(val_origins.leaf("norev.test").cert, "-text")
    assert "OCSP - URI:http://ocsp.test:%d/" % val_origins.dead.port in text, text
    assert not util.can_connect(val_origins.dead.port), "the dead OCSP port answers"
    text = intercept.x509(val_origins.leaf("revoked.test").cert, "-text")
    assert pki.crl_url in text, text


# --- every certificate case, in both modes ------------------------------------------------

EXPIRED = (503, "ssl_server_cert_expired")
UNTRUSTED = (503, "ssl_server_cert_untrusted_issuer")
REVOKED = (503, "ssl_server_cert_revoked")
PROTOCOL = (503, "ssl_server_protocol_insecure")
INVALID = (503, "ssl_server_cert_invalid")
DOMAIN = (409, "ssl_domain_invalid")
UNKNOWN = (503, "ssl_server_cert_revocation_unknown")

UNTRUSTED_ROOT = "catena e2e Untrusted Root"

# name: exc (status, id) or None, errors (observed, space separated), issuer (a part of the
# SSL log's issuer field; None: no certificate seen), cn (x-rs-certificate-hostname);
# "intercept": what differs with interception on; tunnel_always: never intercepted.
CASES = {
    "origin.test": dict(exc=None, errors="", issuer=INTER_ISSUER),
    "expired.test": dict(exc=EXPIRED, errors="expired", issuer=INTER_ISSUER),
    "notyet.test": dict(exc=EXPIRED, errors="not_yet_valid", issuer=INTER_ISSUER),
    "selfsigned.test": dict(exc=UNTRUSTED, errors="untrusted_issuer", issuer="selfsigned.test"),
    "untrusted.test": dict(exc=UNTRUSTED, errors="untrusted_issuer", issuer=UNTRUSTED_ROOT),
    "nointer.test": dict(exc=UNTRUSTED, errors="untrusted_issuer missing_intermediate",
                         issuer=INTER_ISSUER),
    "wronghost.test": dict(exc=None, errors="", issuer=INTER_ISSUER, cn="other.test",
                           intercept=dict(exc=DOMAIN, errors="hostname_mismatch")),
    "revoked.test": dict(exc=REVOKED, errors="revoked", issuer=INTER_ISSUER, via="CRL"),
    "ocsprevoked.test": dict(exc=REVOKED, errors="revoked", issuer=INTER_ISSUER, via="OCSP"),
    "clientcert.test": dict(exc=None, errors="", issuer=None, tunnel_always=True),
    "tls10.test": dict(exc=PROTOCOL, errors="protocol_insecure", issuer=None),
    "weakcipher.test": dict(exc=PROTOCOL, errors="protocol_insecure", issuer=None),
    "weakkey.test": dict(exc=INVALID, errors="weak_key", issuer=INTER_ISSUER),
    "sha1.test": dict(exc=INVALID, errors="weak_signature", issuer=INTER_ISSUER),
    "badeku.test": dict(exc=INVALID, errors="bad_eku", issuer=INTER_ISSUER),
    "escape.test": dict(exc=UNTRUSTED, errors="untrusted_issuer",
                        issuer=valorigins.ESCAPE_CA_CN),
    # Precedence: untrusted wins over invalid and expired (and the name, intercepted).
    "multi.test": dict(exc=UNTRUSTED, errors="untrusted_issuer expired weak_key",
                       issuer=UNTRUSTED_ROOT,
                       intercept=dict(errors="untrusted_issuer expired weak_key "
                                             "hostname_mismatch")),
}


def expectation(name, mode):
    case = dict(CASES[name])
    if mode == "intercept":
        case.update(case.pop("intercept", {}))
    case.pop("intercept", None)
    case.setdefault("cn", name)
    case["errors"] = set(case["errors"].split())
    return case


def check_ssl_record(rec, name, port, action, errors, status, case):
    line = rec["_line"]
    assert rec["x-cs-sni"] == name, line
    assert rec["c-ip"] == "127.0.0.1", line
    assert rec["s-supplier-ip"] == "127.0.0.1" and rec["s-supplier-port"] == str(port), line
    assert errors_of(rec) == errors, "observed errors %r, expected %r: %s" % (
        errors_of(rec), errors, line)
    assert rec["x-rs-certificate-validate-status"] == status, line
    if case["issuer"] is not None:
        # The log may write a double quote inside a quoted field as a single one.
        assert case["issuer"] in rec["x-rs-certificate-issuer"].replace("'", '"'), line
        assert rec["x-rs-certificate-hostname"] == case["cn"], line
    for f in ("time-taken", "sc-bytes", "cs-bytes"):
        assert re.fullmatch(r"\d+", rec[f]), "%s: %s" % (f, line)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", rec["date"]), line
    assert rec["s-action"] == action, "s-action %s, expected %s: %s" % (rec["s-action"], action,
                                                                      line)


@pytest.mark.parametrize("mode", ["default", "intercept"])
@pytest.mark.parametrize("name", list(CASES))
def test_certificate_case(make_node, val_origins, origins, keyring, both_roots, name, mode):
    """What the client sees (the origin's certificate through a tunnel, intercepted content,
    or the exception page with its status and id), the event log, and every SSL-log line."""
    case = expectation(name, mode)
    node = make_node(mode, admin=bool(case.get("tunnel_always")))
    port = val_origins.port(name)
    leaf = val_origins.leaf(name)
    url = val_origins.url(name)
    mark = node.event_mark()
    exc = case["exc"]
    if exc is not None:
        # An exception page over a certificate for the name, from catena's issuer.
        r = fetch(node, url, keyring.root_cert)
        http.assert_exception_page(r, exc[0], exc[1],
                                   body_contains=[name] + sorted(case["errors"]))
        assert SMALL not in r.body
        assert "close" in (r.header("Connection") or "").lower(), r.headers
        s = intercept.s_client(node.port, name, port, cafile=keyring.root_cert).check()
        assert intercept.issuer_cn(s.leaf) == intercept.INTER_CN, s.describe()
        assert "DNS:%s" % name in intercept.san(s.leaf), intercept.san(s.leaf)
        assert intercept.der(s.leaf) != leaf.der()
        e = node.wait_event(r"certificate of %s refused: (.*) \(%s\)" % (re.escape(name), exc[1]),
                            since=mark)
        assert e.level == "warning", e.raw
        got = set(re.search(r"refused: (.*) \(", e.msg).group(1).split())
        assert got == case["errors"], e.raw
        action, status = "EXCEPTION", exc[1]
        if case.get("via"):
            node.wait_event(r"certificate of %s is revoked: %s " % (re.escape(name), case["via"]),
                            since=mark)
    elif mode == "default" or case.get("tunnel_always"):
        # Tunneled: the client sees the origin's own certificate and gets the content.
        s = intercept.s_client(node.port, name, port, cafile=both_roots, verify_error=False)
        assert s.leaf and intercept.der(s.leaf) == leaf.der(), \
            "not the origin's certificate: %s" % s.describe()
        args = ["-k"] if name == "wronghost.test" else []
        r = fetch(node, url, origins.pki.root_cert, *args).check()
        assert r.status == 200 and r.body == SMALL, r
        node.wait_access(s_action="TCP_TUNNELED", cs_host=name)
        action, status = "TUNNELED", "CERT_VALID"
    else:
        s = intercept.s_client(node.port, name, port, cafile=keyring.root_cert).check()
        assert intercept.issuer_cn(s.leaf) == intercept.INTER_CN, s.describe()
        r = fetch(node, url, keyring.root_cert).check()
        assert r.status == 200 and r.body == SMALL, r
        action, status = "INTERCEPTED", "CERT_VALID"
    if case.get("tunnel_always"):
        e = node.wait_event(r"%s asks for a client certificate: tunneled from now on"
                            % re.escape(name), since=mark)
        assert e.level == "notice", e.raw
        sites = intercept.status(node.admin_port)["pinned_sites"]
        assert [(p["host"], p["reason"]) for p in sites] == [(name, "client_certificate")], sites
        util.wait_until(lambda: len(ssl_log(node).find(x_cs_sni=name)) >= 2, 10,
                        "two SSL-log lines for %s" % name)
        for rec in ssl_log(node).find(x_cs_sni=name):
            assert rec["s-action"] == "TUNNELED", rec["_line"]
        return
    util.wait_until(lambda: len(ssl_log(node).find(x_cs_sni=name)) >= 2, 10,
                    "two SSL-log lines for %s:\n%s" % (name, util.read_text(node.ssl_path)))
    for rec in ssl_log(node).find(x_cs_sni=name):
        check_ssl_record(rec, name, port, action, case["errors"], status, case)
    if action == "INTERCEPTED":
        rec = ssl_log(node).find(x_cs_sni=name)[-1]
        assert rec["x-cs-tls-version"].startswith("TLSv1."), rec["_line"]
        assert rec["x-rs-tls-version"].startswith("TLSv1."), rec["_line"]
        assert rec["x-cs-cipher"] not in ("", "-") and rec["x-rs-cipher"] not in ("", "-"), \
            rec["_line"]
    text = util.read_text(node.ssl_path)
    assert "/small.txt" not in text, "a URL path in the SSL log:\n%s" % text


# --- missing intermediates (AIA caIssuers) -------------------------------------------------

AIA_FETCHED = r"fetched the intermediate nointer\.test did not send, from http://\S+/intermediate\.crt"


@pytest.mark.parametrize("mode", ["default", "intercept"])
def test_missing_intermediate_fetched(make_node, val_origins, origins, keyring, test_dir, mode):
    """With validation.aia_fetch, the intermediate nointer.test does not send is fetched from
    its caIssuers URL (served by nginx), logged and cached: the site validates. Tunneled, the
    client must complete the chain itself (its CA file holds the intermediate); intercepted,
    it gets the content under catena's certificate."""
    node = make_node(mode, validation={"aia_fetch": True})
    name = "nointer.test"
    mark = node.event_mark()
    if mode == "intercept":
        cafile = keyring.root_cert
        action = "INTERCEPTED"
    else:
        cafile = test_dir / "root-and-intermediate.pem"
        cafile.write_text(origins.pki.root_cert.read_text() +
                          origins.pki.inter_cert.read_text())
        action = "TUNNELED"
    for _ in range(2):
        r = fetch(node, val_origins.url(name), cafile).check()
        assert r.status == 200 and r.body == SMALL, r
    node.wait_event(AIA_FETCHED, since=mark)
    util.wait_until(lambda: len(ssl_log(node).find(x_cs_sni=name)) >= 2, 10,
                    "two SSL-log lines for %s" % name)
    for rec in ssl_log(node).find(x_cs_sni=name):
        assert errors_of(rec) == set(), rec["_line"]
        assert rec["x-rs-certificate-validate-status"] == "CERT_VALID", rec["_line"]
        assert rec["s-action"] == action, rec["_line"]
    # The second connection took it from the cache (or the probe verdict): one fetch.
    fetched = [e for e in node.events_since(mark) if re.search(AIA_FETCHED, e.msg)]
    assert len(fetched) == 1, [e.raw for e in fetched]


def test_missing_intermediate_not_fetched_by_default(make_node, val_origins, keyring):
    node = make_node("intercept")
    r = fetch(node, val_origins.url("nointer.test"), keyring.root_cert)
    http.assert_exception_page(r, 503, "ssl_server_cert_untrusted_issuer",
                               body_contains=["missing_intermediate"])
    assert not [e for e in node.event_log() if "fetched the intermediate" in e.msg]


# --- the exception page ---------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["default", "intercept"])
def test_exception_page_escapes_issuer(make_node, val_origins, keyring, mode):
    """The issuer's name reaches the page HTML-escaped, never as markup."""
    node = make_node(mode)
    r = fetch(node, val_origins.url("escape.test"), keyring.root_cert)
    http.assert_exception_page(r, 503, "ssl_server_cert_untrusted_issuer",
                               body_contains=["escape.test", "untrusted_issuer"])
    text = r.text()
    assert "<b>Evil" not in text, "the issuer's markup is in the page raw:\n%s" % text
    assert re.search(r"&lt;b&gt;Evil &amp; (&quot;|&#34;|&#x22;)Co(&quot;|&#34;|&#x22;)"
                     r"&lt;/b&gt;", text), "the issuer is not on the page (escaped):\n%s" % text
    assert (r.header("Content-Type") or "").startswith("text/html"), r.headers


def test_precedence_expired_over_hostname(make_node, val_origins, keyring):
    """Intercepted, an expired certificate reached by an address it does not name: both
    errors are observed, the expired one names the exception."""
    node = make_node("intercept")
    mark = node.event_mark()
    port = val_origins.port("expired.test")
    r = fetch(node, "https://127.0.0.1:%d/small.txt" % port, keyring.root_cert)
    http.assert_exception_page(r, 503, "ssl_server_cert_expired",
                               body_contains=["expired", "hostname_mismatch"])
    e = node.wait_event(r"certificate of 127\.0\.0\.1 refused: ", since=mark)
    assert set(re.search(r"refused: (.*) \(", e.msg).group(1).split()) == \
        {"expired", "hostname_mismatch"}, e.raw
    assert "(ssl_server_cert_expired)" in e.msg, e.raw


# --- ignore rules ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["default", "intercept"])
def test_ignore_rule_flips_site(make_node, val_origins, origins, keyring, mode):
    """An ignore rule turns expired.test's exception into content (a tunnel by default); the
    SSL log still lists the error it ignored, with CERT_VALID."""
    node = make_node(mode, validation={
        "ignore": ({"hosts": ["expired.test"], "errors": ["expiration"]},
                   # a rule for another error does not help untrusted.test
                   {"hosts": ["untrusted.test"], "errors": ["expiration"]})})
    mark = node.event_mark()
    if mode == "default":
        s = intercept.s_client(node.port, "expired.test", val_origins.port("expired.test"),
                               cafile=origins.pki.root_cert, verify_error=False)
        assert s.leaf and intercept.der(s.leaf) == val_origins.leaf("expired.test").der(), \
            s.describe()
        r = fetch(node, val_origins.url("expired.test"), origins.pki.root_cert, "-k").check()
        action = "TUNNELED"
    else:
        # The client trusts catena's root only, and must get the content without a warning
        # of its own: the policy said this error does not matter.
        r = fetch(node, val_origins.url("expired.test"), keyring.root_cert)
        assert r.rc == 0, "the client refused catena's certificate for an ignored error: " \
            "%s" % curl_error(r)
        action = "INTERCEPTED"
    assert r.status == 200 and r.body == SMALL, r
    e = node.wait_event(r"certificate errors of expired\.test ignored by policy", since=mark)
    assert e.level == "info", e.raw
    rec = wait_ssl(node, x_cs_sni="expired.test")
    assert rec["s-action"] == action, rec["_line"]
    assert rec["x-rs-certificate-validate-status"] == "CERT_VALID", rec["_line"]
    assert errors_of(rec) == {"expired"}, rec["_line"]
    assert not [x for x in node.events_since(mark) if "refused" in x.msg], node.event_text()
    # The other rule names another error: still refused.
    r = fetch(node, val_origins.url("untrusted.test"), keyring.root_cert)
    http.assert_exception_page(r, 503, "ssl_server_cert_untrusted_issuer")


IGNORE_NAMES = [
    ("untrusted.test", "untrusted_issuer"),
    ("nointer.test", "untrusted_issuer"),      # covers missing_intermediate
    ("notyet.test", "expiration"),
    ("wronghost.test", "hostname_mismatch"),
    ("revoked.test", "revocation"),
    ("weakkey.test", "weak_key"),
    ("badeku.test", "bad_eku"),
    ("sha1.test", "all"),
    ("multi.test", "all"),
]


def test_ignore_rule_names(make_node, val_origins, keyring):
    """Each name of the ignore rules lets its site through (intercepted: content)."""
    rules = tuple({"hosts": [h], "errors": [e]} for h, e in IGNORE_NAMES)
    node = make_node("intercept", validation={"ignore": rules})
    bad = []
    for host, name in IGNORE_NAMES:
        r = fetch(node, val_origins.url(host), keyring.root_cert)
        if r.rc != 0 or r.status != 200 or r.body != SMALL:
            bad.append("%s (ignore %s): curl exit %d, status %s %s %s" % (
                host, name, r.rc, r.status, r.header("X-Catena-Exception"),
                curl_error(r) if r.rc else ""))
    assert not bad, "not let through:\n  " + "\n  ".join(bad)
    # A site with no rule is still refused.
    r = fetch(node, val_origins.url("expired.test"), keyring.root_cert)
    http.assert_exception_page(r, 503, "ssl_server_cert_expired")


@pytest.mark.parametrize("mode", ["default", "intercept"])
def test_validation_disabled(make_node, val_origins, origins, keyring, mode):
    """validation.enabled = false: nothing is refused."""
    node = make_node(mode, validation={"enabled": False})
    if mode == "default":
        s = intercept.s_client(node.port, "untrusted.test", val_origins.port("untrusted.test"),
                               cafile=origins.pki.untrusted_root_cert)
        assert s.leaf and intercept.der(s.leaf) == val_origins.leaf("untrusted.test").der(), \
            s.describe()
    else:
        r = fetch(node, val_origins.url("untrusted.test"), keyring.root_cert).check()
        assert r.status == 200 and r.body == SMALL, r
    assert not [e for e in node.event_log() if "refused" in e.msg], node.event_text()


# --- override ("continue anyway") -------------------------------------------------------------

OVERRIDE_LINK = re.compile(r"""(/\.catena/override\?t=[^"'<>\s]+)""")


def override_link(r):
    """The override link of an exception page (HTML-unescaped), or None."""
    m = OVERRIDE_LINK.search(r.text())
    if not m:
        return None
    return m.group(1).replace("&amp;", "&")


def link_parts(link):
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query, keep_blank_values=True)
    return q["t"][0], q["u"][0]


def base_url(val_origins, name):
    return "https://%s:%d" % (name, val_origins.port(name))


def first_page(node, val_origins, keyring, name, jar=None, path="/small.txt?x=1"):
    args = ["-c", str(jar), "-b", str(jar)] if jar else []
    r = fetch(node, base_url(val_origins, name) + path, keyring.root_cert, *args)
    http.assert_exception_page(r, 503, "ssl_server_cert_expired")
    link = override_link(r)
    assert link, "no override link on the page:\n%s" % r.text()
    return link


def get_cookie(jar, host):
    """The catena_override cookie curl stored for host: (value, secure flag) or None."""
    for line in util.read_text(jar).splitlines():
        if line.startswith("#HttpOnly_"):
            line = line[len("#HttpOnly_"):]
        elif line.startswith("#") or not line.strip():
            continue
        f = line.split("\t")
        if len(f) >= 7 and f[0] == host and f[5] == "catena_override":
            return f[6], f[3] == "TRUE"
    return None


@pytest.mark.parametrize("mode", ["default", "intercept"])
def test_override_flow(make_node, val_origins, keyring, test_dir, mode):
    """The page's link sets a signed cookie and sends the user on; with the cookie the
    content comes (intercepted), without it the page again. curl with a cookie jar."""
    node = make_node(mode)
    jar = test_dir / "jar.txt"
    name = "expired.test"
    link = first_page(node, val_origins, keyring, name, jar)
    t, u = link_parts(link)
    assert u == "/small.txt?x=1", link
    assert re.search(r"[?&]u=%2Fsmall\.txt%3Fx%3D1\b|[?&]u=/small\.txt%3Fx%3D1\b", link), \
        "the path is not percent-encoded in the link: %s" % link

    mark = node.event_mark()
    r = fetch(node, base_url(val_origins, name) + link, keyring.root_cert,
              "-c", str(jar), "-b", str(jar))
    assert r.status == 302, "override link: %s %r\n%s" % (r.status, r.headers, r.text()[:500])
    assert r.header("Location") == "/small.txt?x=1", r.headers
    ck = r.header("Set-Cookie") or ""
    assert ck.startswith("catena_override=%s;" % t), ck
    attrs = [a.strip().lower() for a in ck.split(";")[1:]]
    for a in ("path=/", "secure", "httponly", "samesite=lax"):
        assert a in attrs, "cookie attribute %s missing: %s" % (a, ck)
    assert any(re.fullmatch(r"max-age=\d+", a) and int(a.split("=")[1]) > 0 for a in attrs), ck
    e = node.wait_event(r"override: client 127\.0\.0\.1 continues to expired\.test past expired",
                        since=mark)
    assert e.level == "notice", e.raw
    stored = get_cookie(jar, name)
    assert stored and stored[0] == t and stored[1], "cookie jar:\n%s" % util.read_text(jar)

    # With the cookie: the content, intercepted (over catena's certificate).
    r = fetch(node, base_url(val_origins, name) + "/small.txt", keyring.root_cert,
              "-b", str(jar)).check()
    assert r.status == 200 and r.body == SMALL, (r, r.text()[:300])
    node.wait_event(r"override in effect for expired\.test \(client 127\.0\.0\.1\)", since=mark)
    # Without it: the page again.
    r = fetch(node, base_url(val_origins, name) + "/small.txt", keyring.root_cert)
    http.assert_exception_page(r, 503, "ssl_server_cert_expired")


def test_override_forgery(make_node, val_origins, keyring, test_dir):
    """Editing the token, the destination or the cookie, or carrying them to another host or
    from another client address, never gets past the page."""
    node = make_node("intercept")
    jar = test_dir / "jar.txt"
    exp, exp2, notyet = "expired.test", "expired2.test", "notyet.test"
    link = first_page(node, val_origins, keyring, exp, jar)
    t, u = link_parts(link)
    r = fetch(node, base_url(val_origins, exp) + link, keyring.root_cert,
              "-c", str(jar), "-b", str(jar))
    assert r.status == 302, r
    good = get_cookie(jar, exp)[0]
    # The genuine cookie works (the control for everything below).
    r = fetch(node, base_url(val_origins, exp) + "/small.txt", keyring.root_cert,
              "-H", "Cookie: catena_override=%s" % good)
    assert r.status == 200 and r.body == SMALL, r

    def flip(s, i):
        c = s[i]
        return s[:i] + ("A" if c != "A" else "B") + s[i + 1:]

    def link_with(tok, dest="/small.txt"):
        return "/.catena/override?t=%s&u=%s" % (tok, urllib.parse.quote(dest, safe=""))

    failures = []

    def expect_403(what, name, path):
        r = fetch(node, base_url(val_origins, name) + path, keyring.root_cert)
        if r.status != 403 or r.header("X-Catena-Exception") != "override_invalid" or \
                r.header("Set-Cookie"):
            failures.append("%s: %s %s Location=%r Set-Cookie=%r" % (
                what, r.status, r.header("X-Catena-Exception"), r.header("Location"),
                r.header("Set-Cookie")))

    def expect_page(what, name, cookie):
        r = fetch(node, base_url(val_origins, name) + "/small.txt", keyring.root_cert,
                  "-H", "Cookie: catena_override=%s" % cookie)
        if r.status != 503 or SMALL in r.body:
            failures.append("%s: %s %s" % (what, r.status, r.header("X-Catena-Exception")))

    # Edited token in the link: at its start, middle and end.
    for i in (0, len(t) // 2, len(t) - 1):
        expect_403("token edited at %d" % i, exp, link_with(flip(t, i)))
    expect_403("token cut short", exp, link_with(t[:-4]))
    expect_403("token with junk appended", exp, link_with(t + "00"))
    expect_403("no token", exp, "/.catena/override?u=%2F")
    # Edited destination: not a path on this site, or a header injection.
    expect_403("absolute URL", exp, link_with(t, "https://evil.test/"))
    expect_403("scheme-relative URL", exp, link_with(t, "//evil.test/x"))
    expect_403("CRLF in the destination", exp,
               "/.catena/override?t=%s&u=%%2F%%0D%%0ASet-Cookie:%%20x=1" % t)
    # The token of one host on another host with the very same error, and on one with
    # another error of the same group.
    first_page(node, val_origins, keyring, exp2)
    first_page(node, val_origins, keyring, notyet)
    expect_403("expired.test's token on expired2.test", exp2, link_with(t))
    expect_403("expired.test's token on notyet.test", notyet, link_with(t))
    # Edited cookies.
    for i in (0, len(good) // 2, len(good) - 1):
        expect_page("cookie edited at %d" % i, exp, flip(good, i))
    expect_page("empty cookie", exp, "")
    # One host's cookie sent to another.
    expect_page("expired.test's cookie on expired2.test", exp2, good)
    expect_page("expired.test's cookie on notyet.test", notyet, good)
    # Another client address (the token is bound to the client).
    r = fetch(node, base_url(val_origins, exp) + "/small.txt", keyring.root_cert,
              "--interface", "127.0.0.2", "-H", "Cookie: catena_override=%s" % good)
    if r.status != 503:
        failures.append("the cookie from another client address: %s" % r.status)
    r = fetch(node, base_url(val_origins, exp) + link, keyring.root_cert,
              "--interface", "127.0.0.2")
    if r.status != 403:
        failures.append("the link from another client address: %s" % r.status)
    assert not failures, "forgeries that were not refused:\n  " + "\n  ".join(failures)
    assert not [e for e in node.event_log() if "continues to expired2.test" in e.msg or
                "continues to notyet.test" in e.msg], node.event_text()


def test_override_not_offered(make_node, val_origins, keyring, test_dir):
    """Untrusted and revoked sites offer no way past by default; a token made for an
    overridable site does not open them."""
    node = make_node("intercept")
    link = first_page(node, val_origins, keyring, "expired.test")
    t, _ = link_parts(link)
    for name, exc in (("untrusted.test", "ssl_server_cert_untrusted_issuer"),
                      ("revoked.test", "ssl_server_cert_revoked"),
                      ("multi.test", "ssl_server_cert_untrusted_issuer")):
        r = fetch(node, val_origins.url(name), keyring.root_cert)
        http.assert_exception_page(r, 503, exc)
        assert "/.catena/override" not in r.text(), "%s offers an override:\n%s" % (
            name, r.text())
        r = fetch(node, base_url(val_origins, name) + "/.catena/override?t=%s&u=%%2F" % t,
                  keyring.root_cert)
        assert r.status == 403 and r.header("X-Catena-Exception") == "override_invalid", \
            (name, r.status, r.headers)


def test_override_configurable(make_node, val_origins, keyring, test_dir):
    """validation.override names what may be continued past: untrusted_issuer here, and
    expiration no longer."""
    node = make_node("intercept", validation={"override": ["untrusted_issuer"]})
    r = fetch(node, val_origins.url("expired.test"), keyring.root_cert)
    http.assert_exception_page(r, 503, "ssl_server_cert_expired")
    assert override_link(r) is None, r.text()
    jar = test_dir / "jar.txt"
    r = fetch(node, val_origins.url("untrusted.test"), keyring.root_cert,
              "-c", str(jar), "-b", str(jar))
    http.assert_exception_page(r, 503, "ssl_server_cert_untrusted_issuer")
    link = override_link(r)
    assert link, r.text()
    r = fetch(node, base_url(val_origins, "untrusted.test") + link, keyring.root_cert,
              "-c", str(jar), "-b", str(jar))
    assert r.status == 302, r
    r = fetch(node, val_origins.url("untrusted.test"), keyring.root_cert, "-b", str(jar)).check()
    assert r.status == 200 and r.body == SMALL, r


def test_override_expires(make_node, val_origins, keyring, test_dir):
    """After override_for, neither the cookie nor the link works any more."""
    node = make_node("intercept", validation={"override_for": "1s"})
    jar = test_dir / "jar.txt"
    link = first_page(node, val_origins, keyring, "expired.test", jar)
    r = fetch(node, base_url(val_origins, "expired.test") + link, keyring.root_cert,
              "-c", str(jar), "-b", str(jar))
    assert r.status == 302, r
    tok = get_cookie(jar, "expired.test")[0]
    time.sleep(2.2)
    r = fetch(node, val_origins.url("expired.test"), keyring.root_cert,
              "-H", "Cookie: catena_override=%s" % tok)
    http.assert_exception_page(r, 503, "ssl_server_cert_expired")
    r = fetch(node, base_url(val_origins, "expired.test") + link, keyring.root_cert)
    assert r.status == 403, r


# --- revocation -------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["default", "intercept"])
def test_revocation_soft_fail(make_node, val_origins, origins, keyring, mode):
    """No revocation source answers (OCSP refused, no CRL): soft (the default) lets the site
    through and says so in the log."""
    node = make_node(mode)
    mark = node.event_mark()
    name = "norev.test"
    if mode == "default":
        r = fetch(node, val_origins.url(name), origins.pki.root_cert).check()
    else:
        r = fetch(node, val_origins.url(name), keyring.root_cert).check()
    assert r.status == 200 and r.body == SMALL, r
    e = node.wait_event(r"revocation of norev\.test unknown \(soft fail\)", since=mark)
    assert e.level == "info", e.raw
    rec = wait_ssl(node, x_cs_sni=name)
    assert rec["x-rs-certificate-validate-status"] == "CERT_VALID", rec["_line"]
    assert rec["s-action"] == ("TUNNELED" if mode == "default" else "INTERCEPTED"), rec["_line"]


@pytest.mark.parametrize("mode", ["default", "intercept"])
def test_revocation_hard_fail(make_node, val_origins, origins, keyring, mode):
    """revocation = "hard": no answer is an error of its own."""
    node = make_node(mode, validation={"revocation": "hard"})
    mark = node.event_mark()
    r = fetch(node, val_origins.url("norev.test"), keyring.root_cert)
    http.assert_exception_page(r, UNKNOWN[0], UNKNOWN[1], body_contains=["revocation_unknown"])
    node.wait_event(r"certificate of norev\.test refused: revocation_unknown "
                    r"\(ssl_server_cert_revocation_unknown\)", since=mark)
    rec = wait_ssl(node, x_cs_sni="norev.test")
    assert errors_of(rec) == {"revocation_unknown"}, rec["_line"]
    assert rec["x-rs-certificate-validate-status"] == "ssl_server_cert_revocation_unknown", \
        rec["_line"]
    # A certificate whose revocation is known is not affected.
    r = fetch(node, val_origins.url("origin.test"),
              keyring.root_cert if mode == "intercept" else origins.pki.root_cert).check()
    assert r.status == 200 and r.body == SMALL, r


@pytest.mark.parametrize("policy", ["soft", "hard"])
def test_revocation_slow_responder(make_node, val_origins, keyring, policy):
    """An OCSP responder slower than revocation_timeout (1s) counts as no answer, and the
    client is answered in bounded time."""
    node = make_node("intercept", validation={"revocation": policy})
    mark = node.event_mark()
    t0 = time.monotonic()
    r = fetch(node, val_origins.url("slowocsp.test"), keyring.root_cert)
    took = time.monotonic() - t0
    if policy == "soft":
        assert r.status == 200 and r.body == SMALL, r
        node.wait_event(r"revocation of slowocsp\.test unknown \(soft fail\)", since=mark)
    else:
        http.assert_exception_page(r, UNKNOWN[0], UNKNOWN[1])
    assert took < 4.5, "answered after %.1fs with revocation_timeout 1s" % took


def test_revocation_off(make_node, val_origins, keyring):
    """revocation = "off": revoked certificates pass, and no responder is asked."""
    node = make_node("intercept", validation={"revocation": "off"})
    before = val_origins.ocsp.requests()
    for name in ("revoked.test", "ocsprevoked.test"):
        r = fetch(node, val_origins.url(name), keyring.root_cert).check()
        assert r.status == 200 and r.body == SMALL, (name, r)
    assert val_origins.ocsp.requests() == before, "OCSP asked with revocation off"


def test_revocation_sources(make_node, val_origins, keyring):
    """revoked.test: OCSP refused, the CRL says revoked; ocsprevoked.test: the OCSP responder
    says so (and is asked)."""
    node = make_node("intercept")
    before = val_origins.ocsp.requests()
    mark = node.event_mark()
    r = fetch(node, val_origins.url("ocsprevoked.test"), keyring.root_cert)
    http.assert_exception_page(r, 503, "ssl_server_cert_revoked", body_contains=["revoked"])
    e = node.wait_event(r"certificate of ocsprevoked\.test is revoked: OCSP ", since=mark)
    assert e.level == "warning", e.raw
    assert val_origins.ocsp.requests() > before, "the OCSP responder was not asked"
    r = fetch(node, val_origins.url("revoked.test"), keyring.root_cert)
    http.assert_exception_page(r, 503, "ssl_server_cert_revoked")
    node.wait_event(r"certificate of revoked\.test is revoked: CRL http://crl\.test:\d+/",
                    since=mark)


# --- probes and their cache -------------------------------------------------------------------

@pytest.fixture
def counter(val_origins):
    made = []

    def make(name):
        c = valorigins.ConnCounter(val_origins.port(name))
        made.append(c)
        return c
    yield make
    for c in made:
        c.stop()


def _hellos_settle(ctr, want, what):
    """Waits (bounded) until the relay has seen `want` ClientHellos, then a moment more to
    be sure no further one comes."""
    util.wait_until(lambda: ctr.counts()[1] >= want, 5,
                    "%d handshakes at the origin (%s); now %r" % (want, what, ctr.counts()))
    time.sleep(0.3)
    return ctr.counts()[1]


def test_probe_verdict_cached_bad_site(make_node, val_origins, keyring, counter):
    """A second connection to a bad site is answered from the probe's cached verdict: the
    origin sees no second handshake."""
    ctr = counter("expired.test")
    node = make_node("default", extra_ports=[ctr.port])
    url = "https://expired.test:%d/small.txt" % ctr.port
    r = fetch(node, url, keyring.root_cert)
    http.assert_exception_page(r, 503, "ssl_server_cert_expired")
    assert _hellos_settle(ctr, 1, "the probe") == 1, ctr.counts()
    for _ in range(2):
        r = fetch(node, url, keyring.root_cert)
        http.assert_exception_page(r, 503, "ssl_server_cert_expired")
    time.sleep(0.3)
    assert ctr.counts()[1] == 1, "the origin saw another handshake (a new probe): %r" % (
        ctr.counts(),)
    recs = ssl_log(node).find(x_cs_sni="expired.test")
    assert len(recs) == 3, util.read_text(node.ssl_path)
    for rec in recs:
        assert errors_of(rec) == {"expired"}, rec["_line"]
        assert rec["x-rs-certificate-hostname"] == "expired.test", rec["_line"]
        assert INTER_ISSUER in rec["x-rs-certificate-issuer"], rec["_line"]
        assert rec["s-supplier-port"] == str(ctr.port), rec["_line"]


def test_probe_verdict_cached_good_site(make_node, val_origins, origins, counter):
    """A good site: the first connection costs a probe and the client's own handshake, the
    second only the client's."""
    ctr = counter("origin.test")
    node = make_node("default", extra_ports=[ctr.port])
    url = "https://origin.test:%d/small.txt" % ctr.port
    r = fetch(node, url, origins.pki.root_cert).check()
    assert r.status == 200 and r.body == SMALL
    assert _hellos_settle(ctr, 2, "probe + client") == 2, ctr.counts()
    r = fetch(node, url, origins.pki.root_cert).check()
    assert r.status == 200 and r.body == SMALL
    assert _hellos_settle(ctr, 3, "the client") == 3, \
        "expected only the client's handshake the second time: %r" % (ctr.counts(),)


def test_probe_verdict_expires(make_node, val_origins, origins, counter):
    """After probe_ttl the site is probed again."""
    ctr = counter("origin.test")
    node = make_node("default", validation={"probe_ttl": "1s"}, extra_ports=[ctr.port])
    url = "https://origin.test:%d/small.txt" % ctr.port
    fetch(node, url, origins.pki.root_cert).check()
    assert _hellos_settle(ctr, 2, "probe + client") == 2, ctr.counts()
    time.sleep(1.5)
    fetch(node, url, origins.pki.root_cert).check()
    assert _hellos_settle(ctr, 4, "a new probe + client") == 4, ctr.counts()


@pytest.mark.parametrize("name,exc", [("revoked.test", "ssl_server_cert_revoked"),
                                      ("ocsprevoked.test", "ssl_server_cert_revoked")])
def test_probe_cache_keeps_revocation(make_node, val_origins, keyring, both_roots, name, exc):
    """The cached verdict of a tunneled site includes its revocation: a revoked site is not
    tunneled on the next connection."""
    node = make_node("default")
    for i in range(3):
        s = intercept.s_client(node.port, name, val_origins.port(name), cafile=both_roots,
                               verify_error=False)
        assert s.leaf and intercept.der(s.leaf) != val_origins.leaf(name).der(), \
            "connection %d: tunneled to the revoked origin" % (i + 1)
        r = fetch(node, val_origins.url(name), keyring.root_cert)
        http.assert_exception_page(r, 503, exc)


# --- stapled OCSP -----------------------------------------------------------------------------
#
# The staple* origins name an OCSP responder that refuses connections and no CRL, so only the
# response their nginx staples can answer. catena's own handshakes cannot ask for a staple
# (wolfSSL then fails every one it cannot verify itself: core/staple.c), so when the sources are
# silent catena asks the origin in a handshake of its own, TLS 1.2 only: a TLS 1.3 staple is
# inside the encrypted Certificate message. The origins themselves speak TLS 1.2 and 1.3
# (staple13.test: 1.3 only); what the client negotiates does not matter.

def stapling_node(make_node, val_origins, mode, extra_ports=()):
    """A node that resolves the staple* names (hosts file) and fails hard on "unknown", so that
    a site passes only if its staple answered."""
    return make_node(mode, validation={"revocation": "hard"}, extra_ports=extra_ports,
                     resolver={"hosts_file": str(val_origins.hosts_file())})


def test_staple_origins_direct(val_origins):
    """The harness: each staple* origin staples what its name says (openssl s_client -status),
    in TLS 1.2 and 1.3 alike, and its responder is unreachable."""
    cases = [("staplegood.test", "-tls1_2", "Cert Status: good"),
             ("staplegood.test", "-tls1_3", "Cert Status: good"),
             ("staplerevoked.test", "-tls1_2", "Cert Status: revoked"),
             ("staplebad.test", "-tls1_2", "catena e2e rogue OCSP signer"),
             ("staple13.test", "-tls1_3", "Cert Status: good")]
    for name, version, want in cases:
        rc, out = direct(val_origins, name, version, "-status")
        assert "OCSP Response Status: successful" in out and want in out, (name, out[-2500:])
    rc, out = direct(val_origins, "staple13.test", "-tls1_2")
    assert rc != 0, out[-500:]
    text = intercept.x509(val_origins.leaf("staplegood.test").cert, "-text")
    assert "OCSP - URI:http://ocsp.test:%d/" % val_origins.dead.port in text, text
    assert "CRL Distribution" not in text, text


@pytest.mark.parametrize("mode", ["default", "intercept"])
def test_staple_answers_when_sources_are_silent(make_node, val_origins, origins, keyring, mode):
    """Responder unreachable, revocation "hard": the good staple lets the site through (tunneled
    or intercepted), the revoked one gives the revoked page."""
    node = stapling_node(make_node, val_origins, mode)
    mark = node.event_mark()
    name = "staplegood.test"
    cafile = origins.pki.root_cert if mode == "default" else keyring.root_cert
    r = fetch(node, val_origins.url(name), cafile).check()
    assert r.status == 200 and r.body == SMALL, r
    e = node.wait_event(r"revocation of staplegood\.test: good \(stapled OCSP\)", since=mark)
    assert e.level == "info", e.raw
    rec = wait_ssl(node, x_cs_sni=name)
    assert rec["x-rs-certificate-validate-status"] == "CERT_VALID", rec["_line"]
    assert rec["s-action"] == ("TUNNELED" if mode == "default" else "INTERCEPTED"), rec["_line"]

    name = "staplerevoked.test"
    r = fetch(node, val_origins.url(name), keyring.root_cert)
    http.assert_exception_page(r, REVOKED[0], REVOKED[1], body_contains=["revoked"])
    assert SMALL not in r.body
    e = node.wait_event(r"certificate of staplerevoked\.test is revoked: stapled OCSP: revoked "
                        r"\(reason 1: keyCompromise\)", since=mark)
    assert e.level == "warning", e.raw
    rec = wait_ssl(node, x_cs_sni=name)
    assert errors_of(rec) == {"revoked"}, rec["_line"]
    assert rec["x-rs-certificate-validate-status"] == "ssl_server_cert_revoked", rec["_line"]


@pytest.mark.parametrize("mode", ["default", "intercept"])
def test_staple_unusable(make_node, val_origins, origins, keyring, mode):
    """A staple signed by a stranger is ignored (logged at info), and so is the staple of a TLS
    1.3-only origin, which catena cannot read: the revocation stays unknown."""
    node = stapling_node(make_node, val_origins, mode)
    mark = node.event_mark()
    r = fetch(node, val_origins.url("staplebad.test"), keyring.root_cert)
    http.assert_exception_page(r, UNKNOWN[0], UNKNOWN[1])
    e = node.wait_event(r"stapled OCSP response of staplebad\.test ignored: responder ",
                        since=mark)
    assert e.level == "info", e.raw
    r = fetch(node, val_origins.url("staple13.test"), keyring.root_cert)
    http.assert_exception_page(r, UNKNOWN[0], UNKNOWN[1])
    rec = wait_ssl(node, x_cs_sni="staple13.test")
    assert errors_of(rec) == {"revocation_unknown"}, rec["_line"]
    assert not [e for e in node.event_log()
                if re.search(r"revocation of (staplebad|staple13)\.test: good", e.msg)], \
        node.event_text()


def test_staple_answer_cached(make_node, val_origins, keyring, counter):
    """A stapled answer is cached like a fetched one: the first intercepted connection costs
    the origin its own handshake and the staple fetch, the next ones only their own."""
    ctr = counter("staplegood.test")
    node = stapling_node(make_node, val_origins, "intercept", extra_ports=[ctr.port])
    url = "https://staplegood.test:%d/small.txt" % ctr.port
    r = fetch(node, url, keyring.root_cert).check()
    assert r.status == 200 and r.body == SMALL, r
    assert _hellos_settle(ctr, 2, "catena's handshake + the staple fetch") == 2, ctr.counts()
    for _ in range(2):
        r = fetch(node, url, keyring.root_cert).check()
        assert r.status == 200 and r.body == SMALL, r
    assert _hellos_settle(ctr, 4, "two more handshakes") == 4, \
        "the staple was fetched again: %r" % (ctr.counts(),)
