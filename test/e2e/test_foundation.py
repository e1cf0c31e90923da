"""Foundation: the explicit proxy end to end (CONNECT tunnels, plain HTTP forwarding,
keep-alive, error answers, access rules, timeouts, signals, config checking).

Names resolve through dnsmasq (catena's resolver.servers); clients never resolve them.
"""
import asyncio
import collections
import json
import re
import signal
import socket
import time

import pytest

from lib import catena as catena_mod
from lib import http, logs, pki as pki_mod, util

MiB = 1024 * 1024


def _via_ok(value, node):
    return value is not None and re.search(r"(^|,)\s*1\.1 %s(\s|,|$)" % re.escape(node.name), value)


# --- 1. CONNECT to the TLS origin ---------------------------------------------------

def test_connect_tls_origin_100mib(catena, origins, test_dir):
    port = origins.tls_port("origin.test")
    out = test_dir / "100MiB"
    r = http.curl(origins.tls_url("/100MiB"), proxy_port=catena.port,
                  cacert=origins.pki.root_cert, output=out, verbose=True, max_time=120)
    r.check()
    assert r.responses[0].raw_head.startswith(b"HTTP/1.1 200 Connection established"), \
        r.responses[0].raw_head
    assert r.status == 200
    # The client saw the origin's own certificate (tunnel, not interception).
    assert re.search(r"subject: .*CN=origin\.test", r.stderr), r.stderr[-3000:]
    assert re.search(r"issuer: .*CN=catena e2e Intermediate CA", r.stderr), r.stderr[-3000:]
    assert out.stat().st_size == origins.files.size["100MiB"]
    assert util.sha256_file(out) == origins.files.sha256["100MiB"]
    rec = catena.wait_access(s_action="TCP_TUNNELED", cs_host="origin.test")
    assert rec["cs-uri-port"] == str(port), rec["_line"]
    assert rec["c-ip"] == "127.0.0.1", rec["_line"]


def test_connect_tunnel_presents_origin_certificate_bytes(catena, origins):
    port = origins.tls_port("origin.test")
    rc, out, err = http.openssl_s_client(catena.port, "origin.test", port, origins.pki.root_cert)
    assert rc == 0, "openssl s_client through catena failed (%d):\n%s\n%s" % (rc, out[-2000:],
                                                                              err[-2000:])
    assert "Verify return code: 0 (ok)" in out, out[-2000:]
    certs = pki_mod.pem_certs(out)
    assert certs, out[-2000:]
    leaf = origins.pki.leaf("origin.test")
    assert pki_mod.pem_to_der(certs[0]) == leaf.der(), "the client did not get the origin's leaf"
    assert pki_mod.pem_to_der(certs[1]) == pki_mod.pem_to_der(origins.pki.inter_cert.read_text())


# --- 2. plain HTTP bodies both ways -------------------------------------------------

def test_http_get_10mib_content_length(catena, origins, test_dir):
    out = test_dir / "10MiB"
    r = http.curl(origins.plain_url("/10MiB"), proxy_port=catena.port, output=out).check()
    assert r.status == 200
    assert util.sha256_file(out) == origins.files.sha256["10MiB"]
    assert _via_ok(r.header("Via"), catena), "response Via: %r" % r.header("Via")
    rec = catena.wait_access(s_action="TCP_MISS", cs_host="plain.test", cs_uri_path="/10MiB")
    assert rec["sc-status"] == "200" and rec["cs-method"] == "GET", rec["_line"]
    assert int(rec["sc-bytes"]) >= 10 * MiB, rec["_line"]


def test_http_get_10mib_chunked(catena, origins):
    r = http.curl(origins.echo_url("/chunked?size=%d" % (10 * MiB)), proxy_port=catena.port).check()
    assert r.status == 200
    assert len(r.body) == 10 * MiB
    assert util.sha256(r.body) == r.header("X-Content-Sha256")
    assert _via_ok(r.header("Via"), catena), "response Via: %r" % r.header("Via")


def test_http_get_close_delimited(catena, origins):
    r = http.curl(origins.echo_url("/close?size=%d" % (3 * MiB)), proxy_port=catena.port).check()
    assert r.status == 200
    assert len(r.body) == 3 * MiB
    assert util.sha256(r.body) == r.header("X-Content-Sha256")


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_http_upload_10mib(catena, origins, framing, method):
    src = origins.files.path("10MiB")
    args = ["-X", method, "--data-binary", "@%s" % src, "-H",
            "Content-Type: application/octet-stream"]
    if framing == "chunked":
        args += ["-H", "Transfer-Encoding: chunked"]
    r = http.curl(origins.echo_url("/upload"), *args, proxy_port=catena.port).check()
    assert r.status == 200, r.body[:500]
    got = json.loads(r.body)
    assert got["method"] == method
    assert got["length"] == 10 * MiB and got["sha256"] == origins.files.sha256["10MiB"], got
    req_via = [v for k, v in got["headers"] if k.lower() == "via"]
    assert req_via and _via_ok(", ".join(req_via), catena), "request Via: %r" % req_via
    assert _via_ok(r.header("Via"), catena), "response Via: %r" % r.header("Via")
    rec = catena.wait_access(s_action="TCP_MISS", cs_method=method, cs_host="echo.test")
    assert int(rec["cs-bytes"]) >= 10 * MiB, rec["_line"]


def test_http_hop_by_hop_headers_removed(catena, origins):
    with http.HttpConn.connect(catena.port) as c:
        r = c.request("GET", origins.echo_url("/echo?x=1"), headers=[
            ("Connection", "keep-alive, X-Hop"), ("X-Hop", "secret"), ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"), ("X-End", "kept")])
    assert r.status == 200, r
    got = json.loads(r.body)
    names = {k.lower(): v for k, v in got["headers"]}
    for hop in ("x-hop", "keep-alive", "proxy-connection"):
        assert hop not in names, "hop-by-hop header %s reached the origin: %r" % (hop, got["headers"])
    assert names.get("x-end") == "kept", got["headers"]
    assert names.get("host") == "echo.test:%d" % origins.echo_port, got["headers"]
    # The origin gets origin-form (or the same absolute URI); never a different path.
    assert got["target"] in ("/echo?x=1", origins.echo_url("/echo?x=1")), got["target"]


# --- 3. keep-alive --------------------------------------------------------------------

def test_keepalive_client_and_origin_reuse(catena, origins):
    url = origins.echo_url("/conn")
    r = http.curl(url, proxy_port=catena.port, verbose=True, extra_urls=[url, url]).check()
    assert "Re-using existing connection" in r.stderr, r.stderr[-3000:]
    answers = [json.loads(l) for l in r.body.decode().splitlines() if l.strip()]
    assert len(answers) == 3, r.body
    conns = [a["conn"] for a in answers]
    assert len(set(conns)) == 1, "catena opened a new origin connection per request: %r" % conns


def test_keepalive_raw_two_requests_one_connection(catena, origins):
    with http.HttpConn.connect(catena.port) as c:
        a = c.request("GET", origins.echo_url("/conn"))
        b = c.request("GET", origins.echo_url("/conn"))
        small = c.request("GET", origins.plain_url("/small.txt"))
    assert a.status == b.status == 200
    ja, jb = json.loads(a.body), json.loads(b.body)
    assert ja["conn"] == jb["conn"] and jb["seq"] == ja["seq"] + 1, (ja, jb)
    assert small.status == 200 and small.body == origins.files.path("small.txt").read_bytes()


# --- 4. unknown host ------------------------------------------------------------------

@pytest.mark.parametrize("host", ["nosuch.test", "www.nosuch.invalid"])
def test_unknown_host_http(catena, origins, host):
    mark = origins.dns.mark()
    with http.HttpConn.connect(catena.port) as c:
        r = c.request("GET", "http://%s/some/path" % host)
    http.assert_exception_page(r, 502, "dns_unresolved_hostname", body_contains=[host])
    assert any(n == host for _, n, _ in origins.dns.queries_since(mark)), \
        "catena did not ask dnsmasq for %s: %r" % (host, origins.dns.queries_since(mark))
    rec = catena.wait_access(s_action="TCP_ERR_MISS", cs_host=host)
    assert rec["sc-status"] == "502" and rec["x-exception-id"] == "dns_unresolved_hostname", \
        rec["_line"]


def test_unknown_host_connect(catena):
    c, r = http.proxy_connect(catena.port, "nosuch.test", 443)
    c.close()
    http.assert_exception_page(r, 502, "dns_unresolved_hostname", body_contains=["nosuch.test"])
    rec = catena.wait_access(s_action="TCP_ERR_MISS", cs_host="nosuch.test")
    assert rec["sc-status"] == "502", rec["_line"]


# --- 5. ports not allowed -------------------------------------------------------------

def test_connect_port_25_denied(catena):
    c, r = http.proxy_connect(catena.port, "origin.test", 25)
    c.close()
    http.assert_exception_page(r, 403, "policy_denied")
    rec = catena.wait_access(s_action="TCP_DENIED", cs_host="origin.test")
    assert rec["sc-status"] == "403" and rec["cs-uri-port"] == "25", rec["_line"]


def test_http_port_25_denied(catena):
    with http.HttpConn.connect(catena.port) as c:
        r = c.request("GET", "http://origin.test:25/")
    http.assert_exception_page(r, 403, "policy_denied")
    catena.wait_access(s_action="TCP_DENIED", cs_host="origin.test", cs_uri_port="25")


# --- 6. garbage -----------------------------------------------------------------------

GARBAGE = {
    "tls-bytes": b"\x16\x03\x01garbage\r\n\r\n",
    "http-9.9": b"GET / HTTP/9.9\r\n\r\n",
    "obs-fold": b"GET http://plain.test/ HTTP/1.1\r\nHost: plain.test\r\nX-Folded: a\r\n b\r\n\r\n",
    "binary": b"\x00\x01\x02\xff\xfe GET\r\n\r\n",
    "no-target": b"GET HTTP/1.1\r\nHost: plain.test\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_garbage_request_400_then_close(catena, origins, name):
    # An unknown HTTP version may rightly be answered 505 (RFC 9110 15.6.6) instead of 400.
    status = 505 if name == "http-9.9" else 400
    with http.HttpConn.connect(catena.port) as c:
        c.send(GARBAGE[name])
        r = c.read_response(timeout=10)
        if r.status == 400:
            status = 400
        http.assert_exception_page(r, status, "invalid_request")
        assert "close" in r.tokens("connection"), r.headers
        c.wait_closed(timeout=10)
    rec = catena.wait_access(s_action="TCP_ERR")
    assert rec["sc-status"] == str(status), rec["_line"]
    # The proxy still serves the next client.
    r = http.curl(origins.plain_url("/small.txt"), proxy_port=catena.port).check()
    assert r.status == 200 and r.body == origins.files.path("small.txt").read_bytes()


# --- 7. client networks ---------------------------------------------------------------

def test_client_network_not_allowed(make_catena, origins):
    node = make_catena(client_networks=["127.0.0.1/32"])
    with http.HttpConn.connect(node.port, source="127.0.0.2") as c:
        c.send(http.request_bytes("GET", origins.plain_url("/small.txt")))
        r = c.read_response(timeout=10)
    http.assert_exception_page(r, 403, "policy_denied")
    rec = node.wait_access(s_action="TCP_DENIED", c_ip="127.0.0.2")
    assert rec["sc-status"] == "403", rec["_line"]
    r = http.curl(origins.plain_url("/small.txt"), proxy_port=node.port).check()
    assert r.status == 200 and r.body == origins.files.path("small.txt").read_bytes()


# --- 8. slow request head ---------------------------------------------------------------

def test_slow_request_head_times_out(make_catena, origins):
    node = make_catena(timeouts={"head": "1s"})
    with http.HttpConn.connect(node.port) as c:
        t0 = time.monotonic()
        c.send(b"GET " + origins.plain_url("/small.txt").encode() + b" HTTP/1.1\r\nHost: pla")
        data = c.wait_closed(timeout=10)
        elapsed = time.monotonic() - t0
    assert elapsed >= 0.5, "closed after %.2fs, before timeouts.head" % elapsed
    if data:
        r = http.parse_head(data.split(b"\r\n\r\n", 1)[0])
        assert r.status == 408, data[:500]
        assert r.header("X-Catena-Exception") == "request_timeout", r.headers


# --- 9. 1,000 concurrent tunnels --------------------------------------------------------

@pytest.mark.timeout(240)
def test_1000_concurrent_tunnels(make_catena, origins):
    n = 1000
    port = origins.http_port
    node = make_catena(connect_ports=origins.default_connect_ports() + [port])
    small = origins.files.path("small.txt").read_bytes()
    state = {"open": 0, "failed_early": 0}

    async def one(i, ready):
        w = None
        established = False
        try:
            r, w = await asyncio.open_connection("127.0.0.1", node.port)
            w.write(b"CONNECT plain.test:%d HTTP/1.1\r\nHost: plain.test:%d\r\n\r\n" % (port, port))
            head = await r.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise AssertionError("tunnel %d: %r" % (i, head[:200]))
            established = True
            state["open"] += 1
            if state["open"] + state["failed_early"] >= n:
                ready.set()
            # Every tunnel is open at the same time before any is used.
            await asyncio.wait_for(ready.wait(), 120)
            w.write(b"GET /small.txt HTTP/1.1\r\nHost: plain.test:%d\r\nConnection: close\r\n\r\n"
                    % port)
            data = await r.read()
            head, _, body = data.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200") or body != small:
                raise AssertionError("tunnel %d: bad answer %r" % (i, data[:300]))
            return None
        except Exception as e:  # reported below, with the others
            if not established:
                state["failed_early"] += 1
                if state["open"] + state["failed_early"] >= n:
                    ready.set()
            return "%d: %r" % (i, e)
        finally:
            if w is not None:
                w.close()

    async def main():
        ready = asyncio.Event()
        return await asyncio.gather(*(asyncio.wait_for(one(i, ready), 180) for i in range(n)))

    results = asyncio.run(main())
    failures = [x for x in results if x]
    kinds = collections.Counter(f.split(": ", 1)[1].split("(", 1)[0] for f in failures)
    assert not failures, "%d of %d tunnels failed (%d were open at once); kinds %s; first: %s" % (
        len(failures), n, state["open"], dict(kinds), failures[:5])
    util.wait_until(lambda: len(node.access_log().find(s_action="TCP_TUNNELED",
                                                       cs_host="plain.test")) >= n,
                    20, "%d TCP_TUNNELED access-log lines" % n)


# --- 10. SIGHUP -------------------------------------------------------------------------

def _tunnel_get(conn, host, port, path="/small.txt"):
    conn.send(b"GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (path.encode(), host.encode(), port))
    return conn.read_response(timeout=10)


def test_sighup_changes_ports_keeps_tunnel(make_catena, origins):
    a, b = origins.http_port, origins.echo_port  # a: nginx plain; b: the echo origin
    small = origins.files.path("small.txt").read_bytes()
    node = make_catena(connect_ports=[a])
    old, r = http.proxy_connect(node.port, "plain.test", a)
    with old:
        assert r.status == 200, r
        first = _tunnel_get(old, "plain.test", a)
        assert first.status == 200 and first.body == small

        node.update_config(connect_ports=[b])
        node.reload()
        c, r = http.proxy_connect(node.port, "plain.test", a)
        c.close()
        http.assert_exception_page(r, 403, "policy_denied")
        c, r = http.proxy_connect(node.port, "echo.test", b)
        with c:
            assert r.status == 200, r
            got = _tunnel_get(c, "echo.test", b, "/conn")
            assert got.status == 200 and json.loads(got.body)["method"] == "GET"
        second = _tunnel_get(old, "plain.test", a)
        assert second.status == 200 and second.body == small, "the old tunnel broke on reload"

        # A config that does not parse is refused; the running one keeps serving.
        good = catena_mod.render(node.cfg)
        node.write_config(text=good + "this is not libconfig\n")
        node.reload(expect="refused")
        c, r = http.proxy_connect(node.port, "echo.test", b)
        c.close()
        assert r.status == 200, "after a refused reload: %r" % r
        c, r = http.proxy_connect(node.port, "plain.test", a)
        c.close()
        http.assert_exception_page(r, 403, "policy_denied")
        third = _tunnel_get(old, "plain.test", a)
        assert third.status == 200 and third.body == small


# --- 11. SIGTERM drains ---------------------------------------------------------------

def _refused(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


@pytest.mark.timeout(120)
def test_sigterm_drains(make_catena, origins):
    node = make_catena(timeouts={"drain": "20s"})
    size = 400000
    with http.HttpConn.connect(node.port) as c:
        c.send(http.request_bytes("GET", origins.echo_url("/slow?secs=3&size=%d" % size)))
        head = c.read_head(timeout=10)
        assert head.status == 200, head
        t0 = time.monotonic()
        node.send_signal(signal.SIGTERM)
        util.wait_until(lambda: _refused(node.port), 5,
                        "catena to refuse new connections after SIGTERM", interval=0.05)
        r = c.read_body(head, timeout=30)
        assert len(r.body) == size and util.sha256(r.body) == r.header("X-Content-Sha256"), \
            "the download in flight was cut short by SIGTERM (%d of %d bytes)" % (len(r.body), size)
    status = node.wait_exit(timeout=15)
    assert status is not None, "catena still running %.0fs after SIGTERM, its last connection " \
        "closed (drain is 20s)" % (time.monotonic() - t0)
    assert status == 0, "catena exited with %s after SIGTERM" % status


# --- 12. catena -t --------------------------------------------------------------------

def _combined(r):
    return (r.stdout + r.stderr).decode("utf-8", "replace")


def test_config_check_good(make_catena):
    node = make_catena(start=False)
    r = node.check_config()
    assert r.returncode == 0, _combined(r)
    assert "configuration OK" in _combined(r)


def _bad_config(node, tail_lines, drop=()):
    cfg = catena_mod.apply_overrides(node.cfg, {k: None for k in drop})
    text = catena_mod.render(cfg)
    first = text.count("\n") + 1
    node.write_config(text=text + "".join(l + "\n" for l in tail_lines))
    return first


BAD = {
    # name: (lines appended, sections dropped first, index of the offending line, key word)
    "unknown-top-key": (["bogus_key = 1;"], (), 0, "bogus_key"),
    "unknown-nested-key": (["timeouts = {", '  bogus_timeout = "1s";', "};"], ("timeouts",), 1,
                           "bogus_timeout"),
    "bad-duration": (["timeouts = {", '  head = "banana";', "};"], ("timeouts",), 1, "head"),
    "bad-number": (["limits = {", "  max_connections = -5;", "};"], ("limits",), 1,
                   "max_connections"),
    "bad-port": (["access = {", "  connect_ports = [ 443, 70000 ];", "};"], ("access",), 1,
                 "connect_ports"),
    "bad-level": (["log = {", '  event_level = "loud";', "};"], ("log",), 1, "event_level"),
    "bad-network": (["access = {", '  client_networks = [ "127.0.0.1/33" ];', "};"], ("access",),
                    1, "client_networks"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_config_check_bad(make_catena, case):
    lines, drop, idx, key = BAD[case]
    node = make_catena(start=False)
    first = _bad_config(node, lines, drop)
    r = node.check_config()
    out = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 1, "exit %d for a bad config (%s):\n%s" % (r.returncode, case,
                                                                      _combined(r))
    m = re.search(r"^%s:(\d+):(\d+): (\S+): (.+)$" % re.escape(str(node.conf_path)), out, re.M)
    assert m, "no FILE:LINE:COLUMN: key: reason line in stderr:\n%s" % out
    assert int(m.group(1)) == first + idx, "line %s, expected %d:\n%s" % (m.group(1), first + idx,
                                                                        out)
    assert int(m.group(2)) >= 1
    assert key in m.group(3), "key %r not named: %s" % (key, m.group(0))


def test_config_check_syntax_error(make_catena):
    node = make_catena(start=False)
    first = _bad_config(node, ["workers = 1", "node2 = {"])
    r = node.check_config()
    out = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 1, _combined(r)
    # "FILE:LINE: syntax error: ..." (a column after the line is tolerated)
    m = re.search(r"^%s:(\d+)(?::\d+)?: syntax error" % re.escape(str(node.conf_path)), out, re.M)
    assert m, "no FILE:LINE: syntax error line in stderr:\n%s" % out
    assert first <= int(m.group(1)) <= first + 2, m.group(0)


def test_sample_config_checks():
    util.require_binary(util.catena_bin(), "catena")
    conf = util.REPO_ROOT / "etc" / "catena.conf"
    r = util.run([util.catena_bin(), "-t", "-c", conf], timeout=30)
    assert r.returncode == 0, "catena -t -c %s: exit %d\n%s" % (conf, r.returncode, _combined(r))
    assert "configuration OK" in _combined(r)
    for m in catena_mod.SANITIZER_MARKERS:
        assert m not in _combined(r), _combined(r)


# --- start-up and log format ------------------------------------------------------------

def test_two_nodes_side_by_side(make_catena, origins):
    a = make_catena(name="node-a")
    b = make_catena(name="node-b")
    assert a.port != b.port and a.pid != b.pid
    for node in (a, b):
        r = http.curl(origins.echo_url("/echo"), proxy_port=node.port).check()
        got = json.loads(r.body)
        via = [v for k, v in got["headers"] if k.lower() == "via"]
        assert via and _via_ok(", ".join(via), node), via

def test_startup_logs_listening(catena):
    e = catena.wait_event(r"listening on 127\.0\.0\.1:%d\b" % catena.port, timeout=5)
    assert e.level == "notice", e.raw


def test_access_log_format(catena, origins):
    http.curl(origins.plain_url("/small.txt?q=1"), "-A", "e2e agent/1.0",
              proxy_port=catena.port).check()
    rec = catena.wait_access(s_action="TCP_MISS", cs_uri_path="/small.txt")
    lines = catena.access_log_lines()
    assert lines[0] == "#Software: catena", lines[:3]
    assert lines[1] == "#Version: 1.0", lines[:3]
    assert lines[2] == "#Fields: " + " ".join(logs.DEFAULT_FIELDS), lines[:3]
    assert rec["cs(User-Agent)"] == "e2e agent/1.0", rec["_line"]
    assert '"e2e agent/1.0"' in rec["_line"], "a field with a space must be quoted: " + rec["_line"]
    assert rec["cs-uri-query"] in ("?q=1", "q=1"), rec["_line"]
    assert rec["cs-uri-scheme"] == "http" and rec["cs-host"] == "plain.test", rec["_line"]
    assert rec["cs-uri-port"] == str(origins.http_port), rec["_line"]
    assert rec["cs-username"] == "-" and rec["x-exception-id"] == "-", rec["_line"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", rec["date"]) and re.fullmatch(r"\d\d:\d\d:\d\d",
                                                                          rec["time"]), rec["_line"]
    assert rec["s-supplier-ip"] == "127.0.0.1" and rec["c-ip"] == "127.0.0.1", rec["_line"]
