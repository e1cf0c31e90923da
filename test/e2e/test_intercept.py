"""TLS interception end to end: emulated certificates and their chain, HTTP over TLS on both
sides (large bodies, keep-alive, chunked, TLS 1.2 and 1.3), what is tunneled instead
(not TLS, ALPN without http/1.x, policy), failures on either side and where they are logged,
key hygiene.

Clients trust catena's root only (keyring.root_cert, made with catenactl once per session);
catena trusts the origins through the test PKI root (tls.ca_file) and nothing else.
The admin endpoint, pinning, CA download and key log are in test_intercept_admin.py.
"""
import datetime
import json
import re
import socket
import ssl
import threading
import time

import pytest

from lib import http, intercept, util

MiB = 1024 * 1024
CLI_TLS = re.escape("TLS accept error (client side):")
SRV_TLS = re.escape("TLS connect error (server side):")


def _small(origins):
    return origins.files.path("small.txt").read_bytes()


def _still_serves(node, origins, keyring):
    """An intercepted request right after a failure: catena keeps serving."""
    r = http.curl(origins.tls_url("/small.txt"), proxy_port=node.port,
                  cacert=keyring.root_cert).check()
    assert r.status == 200 and r.body == _small(origins), r


def _intercepted(node, host, port, keyring, **kw):
    """openssl s_client trusting catena's root only; must verify."""
    return intercept.s_client(node.port, host, port, cafile=keyring.root_cert, **kw).check()


# --- 1. the emulated certificate and its chain ---------------------------------------

def test_curl_with_catena_root_only(make_intercepting, origins, keyring):
    node = make_intercepting()
    r = http.curl(origins.tls_url("/small.txt"), proxy_port=node.port, cacert=keyring.root_cert,
                  verbose=True).check()
    assert r.status == 200 and r.body == _small(origins)
    assert re.search(r"issuer: CN=%s" % re.escape(intercept.INTER_CN), r.stderr), r.stderr[-3000:]
    assert r.header("Via") and node.name in r.header("Via"), r.final.headers

    connect = node.wait_access(s_action="TCP_INTERCEPTED", cs_host="origin.test")
    assert connect["sc-status"] == "200" and connect["cs-uri-scheme"] == "tcp", connect["_line"]
    assert connect["cs-uri-port"] == str(origins.tls_port()), connect["_line"]
    rec = node.wait_access(cs_uri_scheme="https", cs_uri_path="/small.txt")
    assert rec["s-action"] == "TCP_MISS" and rec["sc-status"] == "200", rec["_line"]
    assert rec["cs-host"] == "origin.test" and rec["cs-method"] == "GET", rec["_line"]
    assert rec["cs-uri-port"] == str(origins.tls_port()), rec["_line"]
    assert int(rec["sc-bytes"]) >= len(_small(origins)), rec["_line"]
    assert not node.access_log().find(s_action="TCP_TUNNELED"), node.access_log_lines()


def test_chain_leaf_intermediate_root(make_intercepting, origins, keyring):
    node = make_intercepting()
    s = _intercepted(node, "origin.test", origins.tls_port(), keyring)
    assert s.verify_code == 0 and "Verify return code: 0 (ok)" in s.out, s.describe()
    assert s.depths[:3] == [2, 1, 0], "verification depths %r\n%s" % (s.depths, s.describe())
    assert len(s.certs) == 3, "catena sent %d certificates, expected leaf, intermediate, " \
        "root\n%s" % (len(s.certs), s.describe())
    assert intercept.der(s.certs[1]) == keyring.inter_der(), "2nd certificate: not the keyring's"
    assert intercept.der(s.certs[2]) == keyring.root_der(), "3rd certificate: not the root"
    assert intercept.issuer_cn(s.leaf) == intercept.INTER_CN

    origin = origins.pki.leaf("origin.test")
    assert intercept.der(s.leaf) != origin.der(), "the client got the origin's own certificate"
    assert intercept.subject_cn(s.leaf) == intercept.subject_cn(origin.pem_text()) == \
        "origin.test"
    assert intercept.san(s.leaf) == intercept.san(origin.pem_text()), \
        "SANs differ: emulated %r, origin %r" % (intercept.san(s.leaf),
                                                 intercept.san(origin.pem_text()))
    # Splash text and URL ride along; the text is a Netscape Comment.
    text = intercept.x509(s.leaf, "-text")
    assert re.search(r"Netscape Comment:\s*\n\s*%s" % re.escape(intercept.SPLASH_TEXT), text), text
    assert intercept.SPLASH_URL in text, text
    # The key is not the origin's.
    assert intercept.x509(s.leaf, "-pubkey") != intercept.x509(origin.pem_text(), "-pubkey")


def test_ip_origin_without_sni(make_intercepting, origins, keyring):
    node = make_intercepting()
    port = origins.tls_port()
    s = intercept.s_client(node.port, "127.0.0.1", port, cafile=keyring.root_cert,
                           servername=False, extra=["-verify_ip", "127.0.0.1"]).check()
    assert "IP Address:127.0.0.1" in intercept.san(s.leaf), intercept.san(s.leaf)
    assert intercept.issuer_cn(s.leaf) == intercept.INTER_CN
    r = http.curl("https://127.0.0.1:%d/small.txt" % port, proxy_port=node.port,
                  cacert=keyring.root_cert).check()
    assert r.body == _small(origins)
    rec = node.wait_access(cs_uri_scheme="https", cs_uri_path="/small.txt")
    assert rec["cs-host"] == "127.0.0.1" and rec["sc-status"] == "200", rec["_line"]


def test_validity_clipped_to_issuer(make_intercepting, origins, test_dir):
    # An intermediate that expires long before the origin's certificate does.
    kr_dir = test_dir / "short-keyring"
    kr_dir.mkdir()
    intercept.catenactl("ca", "init", "--dir", kr_dir / "root", "--cn", "e2e short root")
    intercept.catenactl("ca", "intermediate", "--parent", kr_dir / "root", "--dir",
                        kr_dir / "inter", "--cn", "e2e short intermediate", "--days", "30")
    kr = intercept.Keyring(kr_dir / "root", kr_dir / "inter")
    node = make_intercepting(tls={"keyrings": ({"name": "short", "dir": str(kr.dir)},)})
    s = intercept.s_client(node.port, "origin.test", origins.tls_port(), cafile=kr.root_cert)
    s.check()
    dates = _dates(s.leaf)
    issuer = _dates(kr.cert.read_text())
    origin = _dates(origins.pki.leaf("origin.test").pem_text())
    assert origin[1] > issuer[1], "test setup: the origin must outlive the issuer"
    assert issuer[0] <= dates[0] and dates[1] <= issuer[1], \
        "leaf valid %s..%s outside its issuer's %s..%s" % (dates + issuer)


def test_imported_rsa_root_keyring(make_intercepting, origins, test_dir):
    """`catenactl ca import` of an existing CA (the test PKI's other root: RSA, made by
    openssl) as the issuer; clients that trust that CA accept the emulated certificates."""
    d = test_dir / "imported"
    intercept.catenactl("ca", "import", "--dir", d, "--cert", origins.pki.untrusted_root_cert,
                        "--key", origins.pki.untrusted.key)
    shown = intercept.catenactl("ca", "show", "--dir", d)
    assert "catena e2e Untrusted Root" in shown and "PRIVATE" not in shown, shown
    assert (d / "key.pem").stat().st_mode & 0o777 == 0o600
    node = make_intercepting(tls={"keyrings": ({"name": "imported", "dir": str(d)},)})
    s = intercept.s_client(node.port, "origin.test", origins.tls_port(),
                           cafile=origins.pki.untrusted_root_cert).check()
    assert intercept.issuer_cn(s.leaf) == "catena e2e Untrusted Root"
    assert intercept.der(s.certs[-1]) == intercept.der(
        origins.pki.untrusted_root_cert.read_text()), "the chain does not end at the root"
    r = http.curl(origins.tls_url("/small.txt"), proxy_port=node.port,
                  cacert=origins.pki.untrusted_root_cert).check()
    assert r.body == _small(origins)


def _dates(pem):
    out = intercept.x509(pem, "-startdate", "-enddate")
    got = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
    fmt = "%b %d %H:%M:%S %Y %Z"
    return tuple(datetime.datetime.strptime(" ".join(got[k].split()), fmt)
                 for k in ("notBefore", "notAfter"))


# --- 2. bodies, keep-alive, versions ---------------------------------------------------

@pytest.mark.timeout(180)
def test_download_100mib(make_intercepting, origins, keyring, test_dir):
    node = make_intercepting()
    out = test_dir / "100MiB"
    r = http.curl(origins.tls_url("/100MiB"), proxy_port=node.port, cacert=keyring.root_cert,
                  output=out, max_time=150).check()
    assert r.status == 200
    assert out.stat().st_size == origins.files.size["100MiB"]
    assert util.sha256_file(out) == origins.files.sha256["100MiB"]
    rec = node.wait_access(cs_uri_scheme="https", cs_uri_path="/100MiB")
    assert int(rec["sc-bytes"]) >= 100 * MiB and rec["sc-status"] == "200", rec["_line"]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_upload_10mib(make_intercepting, origins, keyring, echo_tls, framing):
    node = make_intercepting(connect_ports=origins.default_connect_ports() + [echo_tls.port])
    args = ["-X", "POST", "--data-binary", "@%s" % origins.files.path("10MiB"),
            "-H", "Content-Type: application/octet-stream"]
    if framing == "chunked":
        args += ["-H", "Transfer-Encoding: chunked"]
    r = http.curl("https://echo.test:%d/upload" % echo_tls.port, *args, proxy_port=node.port,
                  cacert=keyring.root_cert, max_time=90).check()
    assert r.status == 200, r.body[:500]
    got = json.loads(r.body)
    assert got["method"] == "POST" and got["length"] == 10 * MiB, got
    assert got["sha256"] == origins.files.sha256["10MiB"], got
    rec = node.wait_access(cs_uri_scheme="https", cs_method="POST", cs_host="echo.test")
    assert int(rec["cs-bytes"]) >= 10 * MiB and rec["s-action"] == "TCP_MISS", rec["_line"]


def test_chunked_download(make_intercepting, origins, keyring, echo_tls):
    node = make_intercepting(connect_ports=origins.default_connect_ports() + [echo_tls.port])
    r = http.curl("https://echo.test:%d/chunked?size=%d&chunk=7000" % (echo_tls.port, 5 * MiB),
                  proxy_port=node.port, cacert=keyring.root_cert).check()
    assert len(r.body) == 5 * MiB and util.sha256(r.body) == r.header("X-Content-Sha256")


def test_100_requests_one_connection(make_intercepting, origins, keyring):
    node = make_intercepting()
    urls = [origins.tls_url("/small.txt?n=%d" % i) for i in range(100)]
    r = http.curl(urls[0], proxy_port=node.port, cacert=keyring.root_cert, verbose=True,
                  extra_urls=urls[1:], max_time=120).check()
    assert r.body == _small(origins) * 100, "%d bytes" % len(r.body)
    assert len([h for h in r.responses if h.status == 200 and h.header("Server")]) == 100
    assert r.stderr.count("> CONNECT ") == 1, "curl opened more than one tunnel"
    util.wait_until(lambda: len(node.access_log().find(cs_uri_scheme="https",
                                                       cs_uri_path="/small.txt")) >= 100,
                    10, "100 https access-log lines")
    recs = node.access_log().find(cs_uri_scheme="https", cs_uri_path="/small.txt")
    assert len(recs) == 100, len(recs)
    assert {x["cs-uri-query"].lstrip("?") for x in recs} == {"n=%d" % i for i in range(100)}
    assert all(x["sc-status"] == "200" and x["s-action"] == "TCP_MISS" for x in recs)
    assert len(node.access_log().find(s_action="TCP_INTERCEPTED")) == 1


def test_keepalive_python_tunnel(make_intercepting, origins, keyring, echo_tls):
    """One client connection, several requests of different framings, over Python's ssl."""
    node = make_intercepting(connect_ports=origins.default_connect_ports() + [echo_tls.port])
    port = echo_tls.port
    with intercept.tls_tunnel(node.port, "echo.test", port, keyring.root_cert) as c:
        a = intercept.origin_get(c, "echo.test", port, "/conn")
        b = intercept.origin_get(c, "echo.test", port, "/chunked?size=100000")
        body = b"x" * 300000
        p = intercept.origin_get(c, "echo.test", port, "/post", body=body, method="POST")
        z = intercept.origin_get(c, "echo.test", port, "/conn")
    assert a.status == b.status == p.status == z.status == 200
    assert util.sha256(b.body) == b.header("X-Content-Sha256") and len(b.body) == 100000
    assert json.loads(p.body)["sha256"] == util.sha256(body)
    ja, jz = json.loads(a.body), json.loads(z.body)
    assert ja["method"] == "GET" and jz["seq"] > ja["seq"] and jz["conn"] == ja["conn"], (ja, jz)
    util.wait_until(lambda: len(node.access_log().find(cs_uri_scheme="https",
                                                       cs_host="echo.test")) == 4,
                    10, "4 https lines")


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_client_tls_versions(make_intercepting, origins, keyring, version):
    node = make_intercepting()
    args = ["--tlsv1.2", "--tls-max", "1.2"] if version == "1.2" else ["--tlsv1.3"]
    r = http.curl(origins.tls_url("/small.txt"), *args, proxy_port=node.port,
                  cacert=keyring.root_cert, verbose=True).check()
    assert r.body == _small(origins)
    assert "SSL connection using TLSv%s" % version in r.stderr, r.stderr[-3000:]
    s = intercept.s_client(node.port, "origin.test", origins.tls_port(), cafile=keyring.root_cert,
                           tls=version).check()
    assert s.protocol == "TLSv%s" % version, s.describe()
    assert len(s.certs) == 3, s.describe()


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_origin_tls_versions(make_intercepting, origins, keyring, test_dir, version):
    """The origin side on one version only: openssl s_server -www pinned to it."""
    leaf = origins.pki.leaf("origin.test")
    srv = intercept.SServer(test_dir, leaf.cert, leaf.key, chain=origins.pki.inter_cert,
                            args=["-www", "-tls1_2" if version == "1.2" else "-tls1_3"])
    try:
        node = make_intercepting(connect_ports=origins.default_connect_ports() + [srv.port])
        r = http.curl("https://origin.test:%d/" % srv.port, proxy_port=node.port,
                      cacert=keyring.root_cert).check()
        assert r.status == 200, r
        # s_server -www describes the session it had with its client: catena.
        page = r.body.decode("latin-1")
        assert re.search(r"Protocol\s*:\s*TLSv%s\b" % re.escape(version), page), page[-1500:]
        node.wait_access(cs_uri_scheme="https", cs_host="origin.test", sc_status="200")
    finally:
        srv.stop()


@pytest.mark.parametrize("mirror", [True, False])
def test_mirror_version(make_intercepting, origins, keyring, test_dir, mirror):
    """With tls.mirror_version, a client never sees a newer TLS version than the origin's."""
    leaf = origins.pki.leaf("origin.test")
    srv = intercept.SServer(test_dir, leaf.cert, leaf.key, chain=origins.pki.inter_cert,
                            args=["-www", "-tls1_2"])
    try:
        node = make_intercepting(tls={"mirror_version": mirror},
                                 connect_ports=origins.default_connect_ports() + [srv.port])
        s = intercept.s_client(node.port, "origin.test", srv.port,
                               cafile=keyring.root_cert).check()
        assert s.protocol == ("TLSv1.2" if mirror else "TLSv1.3"), s.describe()
    finally:
        srv.stop()


def test_client_min_version(make_intercepting, origins, keyring):
    """tls.client_min_version = "1.3": a TLS 1.2-only client is refused, 1.3 works."""
    node = make_intercepting(tls={"client_min_version": "1.3"})
    s = intercept.s_client(node.port, "origin.test", origins.tls_port(),
                           cafile=keyring.root_cert, tls="1.2")
    assert s.rc != 0, s.describe()
    node.wait_event(r"TLS accept error \(client side\): origin\.test")
    intercept.s_client(node.port, "origin.test", origins.tls_port(), cafile=keyring.root_cert,
                       tls="1.3").check()


def test_bad_cipher_list_refused(make_catena, keyring, origins):
    """A cipher list with no usable suite is refused at load with the key named."""
    section = intercept.tls_section(keyring, origins.pki, client_ciphers="NOT-A-CIPHER")
    with pytest.raises(Exception) as e:
        make_catena(tls=section)
    assert "tls.client_ciphers" in str(e.value)


# --- 3. the emulated certificate is made once per site ----------------------------------

def test_second_connection_same_certificate(make_intercepting, origins, keyring):
    node = make_intercepting()
    first = _intercepted(node, "origin.test", origins.tls_port(), keyring)
    second = _intercepted(node, "origin.test", origins.tls_port(), keyring)
    assert intercept.der(first.leaf) == intercept.der(second.leaf), \
        "a second certificate was made for the same origin certificate"


def _peer_der(node, host, port, cafile, path="/small.txt"):
    with intercept.tls_tunnel(node.port, host, port, cafile) as c:
        d = c.sock.getpeercert(binary_form=True)
        r = intercept.origin_get(c, host, port, path)
        assert r.status == 200, r
    return d


@pytest.mark.timeout(120)
def test_50_concurrent_first_connections_one_certificate(make_intercepting, origins, keyring):
    node = make_intercepting()
    port = origins.tls_port()
    n = 50
    results, errors = [None] * n, []
    gate = threading.Barrier(n, timeout=30)

    def one(i):
        try:
            gate.wait()
            results[i] = _peer_der(node, "origin.test", port, keyring.root_cert)
        except Exception as e:  # reported below
            errors.append("%d: %r" % (i, e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors, "%d of %d failed: %s" % (len(errors), n, errors[:5])
    ders = {d for d in results if d}
    assert len(ders) == 1, "%d different certificates for one site in %d connections" % (
        len(ders), n)


# --- 4. what is not intercepted -----------------------------------------------------------

def test_plain_protocol_in_connect_tunneled(make_intercepting, origins):
    node = make_intercepting(connect_ports=origins.default_connect_ports() + [origins.echo_port])
    port = origins.echo_port
    c, r = http.proxy_connect(node.port, "echo.test", port)
    with c:
        assert r.status == 200, r
        sent = [["Host", "echo.test:%d" % port], ["X-Odd-Case", "KeepMe"]]
        c.send("GET /tunnel?x=1 HTTP/1.1\r\nHost: echo.test:%d\r\nX-Odd-Case: KeepMe\r\n\r\n"
               % port)
        got = c.read_response()
        assert got.status == 200, got
        j = json.loads(got.body)
        # Byte for byte: nothing added (no Via), nothing rewritten.
        assert j["headers"] == sent and j["target"] == "/tunnel?x=1", j
        assert got.header("Via") is None, got.headers
    rec = node.wait_access(s_action="TCP_TUNNELED", cs_host="echo.test")
    assert rec["cs-uri-port"] == str(port), rec["_line"]


def test_server_first_protocol_tunneled(make_intercepting, origins):
    """A client that waits for the server to speak (SMTP-like) is tunneled once the peek
    gives up (timeouts.tls_handshake)."""
    banner = b"220 banner.test ESMTP ready\r\n"
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(4)
    port = lsn.getsockname()[1]
    got = []

    def serve():
        try:
            lsn.settimeout(20)
            s, _ = lsn.accept()
            with s:
                s.sendall(banner)
                s.settimeout(20)
                got.append(s.recv(100))
                s.sendall(b"221 bye\r\n")
        except OSError as e:
            got.append(e)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        node = make_intercepting(connect_ports=origins.default_connect_ports() + [port],
                                 timeouts={"tls_handshake": "1s", "drain": "5s"})
        c, r = http.proxy_connect(node.port, "echo.test", port)
        with c:
            assert r.status == 200, r
            assert c.read_line(timeout=15) + b"\r\n" == banner
            c.send(b"QUIT\r\n")
            assert c.read_line(timeout=10) == b"221 bye"
        t.join(10)
        assert got == [b"QUIT\r\n"], got
    finally:
        lsn.close()


def test_alpn_h2_only_tunneled(make_intercepting, origins, keyring, echo_tls):
    # The TLS echo origin ignores ALPN (nginx without http2 would refuse an h2-only hello).
    port = echo_tls.port
    node = make_intercepting(connect_ports=origins.default_connect_ports() + [port])
    s = intercept.s_client(node.port, "echo.test", port, cafile=origins.pki.root_cert,
                           alpn="h2").check()
    assert intercept.der(s.leaf) == echo_tls.leaf.der(), \
        "an h2-only client got an emulated certificate: %s" % intercept.issuer_cn(s.leaf)
    node.wait_access(s_action="TCP_TUNNELED", cs_host="echo.test")
    # http/1.1 among the offers: intercepted.
    s = intercept.s_client(node.port, "echo.test", port, cafile=keyring.root_cert,
                           alpn="h2,http/1.1").check()
    assert intercept.issuer_cn(s.leaf) == intercept.INTER_CN
    node.wait_access(s_action="TCP_INTERCEPTED", cs_host="echo.test")


@pytest.mark.parametrize("mode", ["list", "never"])
def test_policy_lists(make_intercepting, origins, keyring, mode):
    if mode == "list":
        tls = {"intercept": "list", "intercept_hosts": ["origin.test"]}
    else:
        tls = {"intercept": "all", "never_intercept": [".www.origin.test"]}
    node = make_intercepting(tls=tls)
    port = origins.tls_port()
    s = intercept.s_client(node.port, "origin.test", port, cafile=keyring.root_cert).check()
    assert intercept.issuer_cn(s.leaf) == intercept.INTER_CN, "origin.test not intercepted"
    s = intercept.s_client(node.port, "www.origin.test", port,
                           cafile=origins.pki.root_cert).check()
    assert intercept.der(s.leaf) == origins.pki.leaf("origin.test").der(), \
        "www.origin.test was intercepted"
    node.wait_access(s_action="TCP_TUNNELED", cs_host="www.origin.test")
    node.wait_access(s_action="TCP_INTERCEPTED", cs_host="origin.test")


def test_non_http_inside_tls_relayed(make_intercepting, origins, keyring, test_dir):
    """openssl s_server -rev answers each line reversed: not HTTP, relayed decrypted."""
    leaf = origins.pki.leaf("origin.test")
    srv = intercept.SServer(test_dir, leaf.cert, leaf.key, chain=origins.pki.inter_cert,
                            args=["-rev"])
    try:
        node = make_intercepting(connect_ports=origins.default_connect_ports() + [srv.port])
        with intercept.tls_tunnel(node.port, "origin.test", srv.port, keyring.root_cert) as c:
            # Intercepted: the tunnel verified against catena's root only.
            assert intercept.issuer_cn(ssl.DER_cert_to_PEM_cert(
                c.sock.getpeercert(binary_form=True))) == intercept.INTER_CN
            c.send(b"hello catena, line one\n")
            assert _read_until(c, b"eno enil ,anetac olleh") is not None
            c.send(b"second line\n")
            assert _read_until(c, b"enil dnoces") is not None
        # And with openssl s_client as the client.
        intercept.s_client_exchange(node.port, "origin.test", srv.port, keyring.root_cert,
                                    b"abc def\n", b"fed cba")
    finally:
        srv.stop()


def test_non_http_inside_tls_denied(make_intercepting, origins, keyring, test_dir):
    """tls.non_http = "deny": another protocol inside intercepted TLS is closed, and logged."""
    leaf = origins.pki.leaf("origin.test")
    srv = intercept.SServer(test_dir, leaf.cert, leaf.key, chain=origins.pki.inter_cert,
                            args=["-rev"])
    try:
        node = make_intercepting(tls={"non_http": "deny"},
                                 connect_ports=origins.default_connect_ports() + [srv.port])
        with intercept.tls_tunnel(node.port, "origin.test", srv.port, keyring.root_cert) as c:
            c.send(b"hello catena, line one\n")
            with pytest.raises(AssertionError):
                _read_until(c, b"eno enil", timeout=3)
        node.wait_event(r"denied: not HTTP inside TLS to origin\.test")
    finally:
        srv.stop()


def _read_until(conn, want, timeout=10.0):
    deadline = time.monotonic() + timeout
    while want not in conn.buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no %r within %.0fs; got %r" % (want, timeout, conn.buf[-500:]))
        conn.sock.settimeout(left)
        try:
            b = conn.sock.recv(4096)
        except (socket.timeout, ssl.SSLWantReadError):
            continue
        if not b:
            raise AssertionError("EOF before %r; got %r" % (want, conn.buf[-500:]))
        conn.buf += b
    return conn.buf


# --- 5. failures on either side ----------------------------------------------------------

def test_client_aborts_mid_handshake(make_intercepting, origins, keyring):
    node = make_intercepting()
    mark = node.event_mark()
    c, r = http.proxy_connect(node.port, "origin.test", origins.tls_port())
    assert r.status == 200, r
    c.send(intercept.client_hello_bytes("origin.test"))
    c.close()
    e = node.wait_event(CLI_TLS + r" origin\.test", since=mark)
    assert e.level in ("info", "notice"), e.raw
    assert not [x for x in node.events_since(mark) if re.search(SRV_TLS, x.msg)]
    _still_serves(node, origins, keyring)


def test_garbage_client_hello(make_intercepting, origins, keyring):
    node = make_intercepting()
    mark = node.event_mark()
    # A record header that says "TLS handshake, ClientHello", then nonsense (a session id
    # longer than 32 bytes, lengths that do not add up).
    body = b"\x01\x00\x00\x30" + b"\xff" * 48
    garbage = b"\x16\x03\x01" + len(body).to_bytes(2, "big") + body
    c, r = http.proxy_connect(node.port, "origin.test", origins.tls_port())
    with c:
        assert r.status == 200, r
        c.send(garbage)
        c.wait_closed(timeout=10)
    e = node.wait_event(CLI_TLS + r".*malformed ClientHello", since=mark)
    assert e.level in ("info", "notice", "warning"), e.raw
    _still_serves(node, origins, keyring)


def test_origin_resets(make_intercepting, origins, keyring):
    rst = intercept.ResettingOrigin()
    try:
        node = make_intercepting(connect_ports=origins.default_connect_ports() + [rst.port])
        mark = node.event_mark()
        r = http.curl("https://origin.test:%d/" % rst.port, proxy_port=node.port,
                      cacert=keyring.root_cert, max_time=20)
        assert r.rc != 0, "curl succeeded against an origin that resets: %r" % r
        e = node.wait_event(SRV_TLS + r" origin\.test", since=mark)
        assert e.level == "warning", e.raw
        assert rst.accepted >= 1 and rst.first_bytes and rst.first_bytes[0][:1] == b"\x16", \
            "catena did not send a ClientHello to the origin: %r" % rst.first_bytes[:1]
        assert not [x for x in node.events_since(mark) if re.search(CLI_TLS, x.msg)]
        _still_serves(node, origins, keyring)
    finally:
        rst.stop()


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_client_refuses_our_certificate(make_intercepting, origins, keyring, version):
    node = make_intercepting()
    mark = node.event_mark()
    # Trusts the origin's real issuer, not catena: refuses the emulated certificate with an
    # alert (unknown_ca); in TLS 1.3 the alert comes encrypted under the handshake keys.
    s = intercept.s_client(node.port, "origin.test", origins.tls_port(),
                           cafile=origins.pki.root_cert, tls=version)
    assert s.rc != 0 and s.verify_code != 0, s.describe()
    e = node.wait_event(CLI_TLS + r" origin\.test.*\(the client refused our certificate\)",
                        since=mark)
    assert e.level == "info", e.raw
    _still_serves(node, origins, keyring)


@pytest.mark.parametrize("name,status,exc", [
    ("expired.test", 503, "ssl_server_cert_expired"),
    ("untrusted.test", 503, "ssl_server_cert_untrusted_issuer"),
    ("wronghost.test", 409, "ssl_domain_invalid")])
def test_origin_certificate_refused(make_intercepting, origins, keyring, name, status, exc):
    """A bad origin certificate never reaches the client: catena answers an exception page
    (over a certificate for the requested name) instead of the content."""
    node = make_intercepting()
    mark = node.event_mark()
    r = http.curl(origins.tls_url("/small.txt", name=name), proxy_port=node.port,
                  cacert=keyring.root_cert, max_time=20)
    http.assert_exception_page(r, status, exc)
    assert origins.files.path("small.txt").read_bytes() not in r.body
    e = node.wait_event(r"certificate of %s refused" % re.escape(name), since=mark)
    assert e.level == "warning", e.raw
    node.wait_access(cs_host=name, x_exception_id=exc)
    _still_serves(node, origins, keyring)


def test_origin_certificate_from_own_keyring_refused(make_intercepting, origins, keyring,
                                                     test_dir):
    """An origin presenting a certificate made by catena's own issuer is refused even when
    that issuer's root is among the trusted CAs (a loop, or someone holding our key)."""
    cert, key = intercept.issue_with_keyring(keyring, test_dir / "own", "origin.test",
                                             ["DNS:origin.test"])
    bundle = test_dir / "ca-bundle.pem"
    bundle.write_text(origins.pki.root_cert.read_text() + keyring.root_cert.read_text())
    srv = intercept.SServer(test_dir, cert, key, chain=keyring.cert, args=["-www"])
    try:
        node = make_intercepting(tls={"ca_file": str(bundle)},
                                 connect_ports=origins.default_connect_ports() + [srv.port])
        mark = node.event_mark()
        # The same certificate verifies with openssl against that bundle...
        direct = util.run(["openssl", "verify", "-CAfile", bundle, "-untrusted", keyring.cert,
                           cert])
        assert direct.returncode == 0, direct.stderr
        # ...but catena refuses it.
        r = http.curl("https://origin.test:%d/" % srv.port, proxy_port=node.port,
                      cacert=keyring.root_cert, max_time=20)
        http.assert_exception_page(r, 503, "ssl_server_cert_untrusted_issuer")
        e = node.wait_event(r"origin\.test presented a certificate issued by catena's own CA",
                            since=mark)
        assert e.level == "warning", e.raw
        _still_serves(node, origins, keyring)
    finally:
        srv.stop()


# --- consistency between CONNECT, SNI and Host -------------------------------------------

def test_sni_differs_from_connect_host(make_intercepting, origins, keyring):
    node = make_intercepting()
    mark = node.event_mark()
    s = intercept.s_client(node.port, "origin.test", origins.tls_port(), cafile=keyring.root_cert,
                           servername="www.origin.test")
    assert s.rc != 0 and not s.certs, "the handshake went on: %s" % s.describe()
    node.wait_event(re.escape("denied: SNI"), since=mark)
    _still_serves(node, origins, keyring)


def test_host_header_differs_from_sni(make_intercepting, origins, keyring):
    node = make_intercepting()
    port = origins.tls_port()
    with intercept.tls_tunnel(node.port, "origin.test", port, keyring.root_cert) as c:
        c.send(b"GET /small.txt HTTP/1.1\r\nHost: plain.test:%d\r\n\r\n" % origins.http_port)
        r = c.read_response()
    http.assert_exception_page(r, 409, "host_mismatch")
    # The same name in the Host header (with its port) is fine.
    with intercept.tls_tunnel(node.port, "origin.test", port, keyring.root_cert) as c:
        r = intercept.origin_get(c, "origin.test", port, "/small.txt")
        assert r.status == 200 and r.body == _small(origins)
        r = intercept.origin_get(c, "ORIGIN.test", port, "/small.txt")
        assert r.status == 200, "Host differing from the SNI only in case: %r" % r


# --- 6. key hygiene ----------------------------------------------------------------------

def test_key_files_private(keyring):
    for d in (keyring.root_dir, keyring.dir):
        assert (d.stat().st_mode & 0o777) == 0o700, "%s is %o" % (d, d.stat().st_mode & 0o777)
    for k in keyring.key_files():
        assert (k.stat().st_mode & 0o777) == 0o600, "%s is %o" % (k, k.stat().st_mode & 0o777)
    shown = intercept.catenactl("ca", "show", "--dir", keyring.dir)
    assert "PRIVATE" not in shown and intercept.INTER_CN in shown, shown


def test_no_key_material_in_logs(make_intercepting, origins, keyring):
    node = make_intercepting(log={"event_level": "debug", "ssl_level": "debug"})
    # Successes, a refusal, a malformed hello, a reset origin: every path that logs.
    _still_serves(node, origins, keyring)
    intercept.s_client(node.port, "origin.test", origins.tls_port(), cafile=origins.pki.root_cert)
    c, r = http.proxy_connect(node.port, "origin.test", origins.tls_port())
    with c:
        c.send(b"\x16\x03\x01\x00\x34\x01\x00\x00\x30" + b"\xff" * 48)
        c.wait_closed(timeout=10)
    http.curl(origins.tls_url("/", name="expired.test"), proxy_port=node.port,
              cacert=keyring.root_cert, max_time=20)
    _still_serves(node, origins, keyring)
    node.stop()

    texts = {"event log": node.event_text(), "access log": "\n".join(node.access_log_lines()),
             "stderr": node.proc.stderr(), "stdout": node.proc.stdout()}
    assert "debug" in texts["event log"], "the node did not log at debug level"
    needles = {"PRIVATE KEY": "PRIVATE KEY"}
    for k in keyring.key_files():
        for line in k.read_text().splitlines():
            if not line.startswith("-----") and len(line) >= 16:
                needles["a base64 line of %s" % k] = line
        for form, h in _key_hex_forms(k).items():
            needles["the private key of %s (%s)" % (k, form)] = h
    for where, text in texts.items():
        for what, needle in needles.items():
            assert needle not in text, "%s contains %s" % (where, what)


def _key_hex_forms(path):
    """The private scalar of a key file as hex: colon-separated (openssl's -text), plain lower
    and upper case."""
    r = util.run(["openssl", "pkey", "-in", path, "-noout", "-text"])
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    m = re.search(r"(?:priv|privateExponent):\s*\n((?:\s+[0-9a-f:]+\n)+)", text)
    assert m, text[:200]
    colon = "".join(m.group(1).split())
    plain = colon.replace(":", "").lstrip("0")
    return {"colon": colon[3:60], "hex": plain[:48], "HEX": plain[:48].upper()}
