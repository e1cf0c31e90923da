"""The harness checks itself: PKI, origins, DNS and the helpers work without catena.

Clients here talk to the origins directly (curl --resolve pins names to 127.0.0.1, so no
resolver is asked), so a failure here is the harness's, not catena's.
"""
import json
import subprocess

from lib import catena as catena_mod
from lib import http, logs, util


def _direct(url, name, port, *args, **kw):
    extra = ["--resolve", "%s:%d:127.0.0.1" % (name, port)]
    return http.curl(url, *(extra + list(args)), **kw)


def test_pki_chains_verify(pki):
    def verify(name, *extra):
        r = util.run(["openssl", "verify", "-CAfile", pki.root_cert, "-untrusted", pki.inter_cert]
                     + list(extra) + [pki.leaf(name).cert])
        return r.returncode, (r.stdout + r.stderr).decode()

    assert verify("origin.test", "-verify_hostname", "origin.test")[0] == 0
    assert verify("origin.test", "-verify_ip", "127.0.0.1")[0] == 0
    rc, out = verify("expired.test")
    assert rc != 0 and "expired" in out
    rc, out = verify("untrusted.test")
    assert rc != 0 and "unable to get local issuer" in out
    rc, out = verify("wronghost.test", "-verify_hostname", "wronghost.test")
    assert rc != 0 and "hostname mismatch" in out
    assert verify("revoked.test")[0] == 0
    rc, out = verify("revoked.test", "-crl_check", "-CRLfile", pki.crl_pem)
    assert rc != 0 and "revoked" in out
    index = pki.ocsp_index.read_text()
    assert any(l.startswith("R\t") and "revoked.test" in l for l in index.splitlines())


def test_nginx_plain_serves_files(origins, test_dir):
    n, f = origins.nginx, origins.files
    out = test_dir / "10MiB"
    r = _direct(origins.plain_url("/10MiB"), "plain.test", n.http_port, output=out).check()
    assert r.status == 200
    assert util.sha256_file(out) == f.sha256["10MiB"]
    r = _direct(origins.plain_url("/small.txt"), "plain.test", n.http_port).check()
    assert r.body == f.path("small.txt").read_bytes()


def test_nginx_tls_origin_with_test_root(origins, test_dir):
    n, f, pki = origins.nginx, origins.files, origins.pki
    port = n.tls_ports["origin.test"]
    out = test_dir / "100MiB"
    r = _direct(origins.tls_url("/100MiB"), "origin.test", port, output=out,
                cacert=pki.root_cert, max_time=120).check()
    assert r.status == 200
    assert util.sha256_file(out) == f.sha256["100MiB"]
    # The intermediate is sent by the server: the client trusts only the root.
    r = _direct(origins.tls_url("/hello", "untrusted.test"), "untrusted.test",
                n.tls_ports["untrusted.test"], cacert=pki.root_cert)
    assert r.rc == 60, r.stderr
    r = _direct(origins.tls_url("/hello", "expired.test"), "expired.test",
                n.tls_ports["expired.test"], cacert=pki.root_cert)
    assert r.rc == 60 and "expired" in r.stderr, r.stderr
    r = _direct(origins.tls_url("/hello", "wronghost.test"), "wronghost.test",
                n.tls_ports["wronghost.test"], cacert=pki.root_cert)
    assert r.rc == 60 and "wronghost.test" in r.stderr, r.stderr
    r = _direct("http://crl.test:%d/intermediate.crl" % n.crl_port, "crl.test", n.crl_port).check()
    assert r.body == pki.crl_der.read_bytes()


def test_dnsmasq_answers_and_logs(dns):
    assert dns.query("origin.test").addresses == ["127.0.0.1"]
    assert dns.query("www.origin.test").addresses == ["127.0.0.1"]
    a = dns.query("origin.test", "AAAA")
    assert a.rcode == "NOERROR" and a.addresses == []
    assert dns.query("nosuch.test").rcode == "NXDOMAIN"
    assert dns.query("anything.invalid").rcode == "NXDOMAIN"
    assert dns.asked("nosuch.test", "A")


def test_echo_origin(echo):
    with http.HttpConn.connect(echo.port) as c:
        c.send("GET /conn HTTP/1.1\r\nHost: x\r\n\r\n")
        a = json.loads(c.read_response().body)
        c.send("POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        b = json.loads(c.read_response().body)
        assert a["conn"] == b["conn"] and b["seq"] == 2
        assert b["length"] == 5 and b["sha256"] == util.sha256(b"abcde")
        c.send("GET /chunked?size=100000&chunk=777 HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert len(r.body) == 100000 and util.sha256(r.body) == r.header("X-Content-Sha256")
        c.send("GET /close?size=5000 HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert len(r.body) == 5000 and util.sha256(r.body) == r.header("X-Content-Sha256")
    with http.HttpConn.connect(echo.port) as c:
        c.send("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        r = c.read_head()
        assert r.status == 100
        c.send("xyz")
        r = c.read_response()
        assert json.loads(r.body)["length"] == 3


def test_config_render_is_libconfig():
    cfg = {"node": {"name": "n"}, "listeners": ({"type": "http", "address": "127.0.0.1:1"},),
           "access": {"connect_ports": [443, 8443], "http_ports": [80, "1025-65535"],
                      "client_networks": ["127.0.0.1/32"]},
           "resolver": {"servers": ["127.0.0.1:53"], "hosts_file": ""},
           "log": {"event_file": 'a"b'}, "tls": {"use_system_cas": False}}
    text = catena_mod.render(cfg)
    assert 'listeners = ( {' in text
    assert "connect_ports = [ 443, 8443 ];" in text
    assert 'http_ports = ( 80, "1025-65535" );' in text
    assert 'event_file = "a\\"b";' in text
    assert "use_system_cas = false;" in text
    merged = catena_mod.apply_overrides(cfg, {"connect_ports": [1], "timeouts": {"head": "1s"},
                                              "tls": None})
    assert merged["access"]["connect_ports"] == [1] and "tls" not in merged
    assert merged["access"]["http_ports"] == [80, "1025-65535"]


def test_log_parsers():
    e = logs.parse_event_line("2026-11-30T06:40:00.123Z err [ssl] TLS accept error (client side): x")
    assert e.level == "err" and e.fac == "ssl" and e.msg.startswith("TLS accept")
    assert logs.parse_event_line("garbage") is None
    al = logs.AccessLog("#Software: catena\n#Version: 1.0\n#Fields: date cs-host cs(User-Agent) "
                        "x-exception-id\n2026-11-30 origin.test \"curl/7.88 (x \"\"y\"\")\" -\n")
    assert al.records[0]["cs(User-Agent)"] == 'curl/7.88 (x "y")'
    assert al.find(cs_host="origin.test", cs_User_Agent='curl/7.88 (x "y")')


def test_proc_stop_by_pid(test_dir):
    p = util.Proc("sleeper", ["sleep", "60"], test_dir)
    assert p.alive()
    status, killed = p.stop(timeout=5)
    assert status == -15 and not killed
    p = util.Proc("stubborn", ["sh", "-c", "trap '' TERM; echo ready; exec sleep 60"], test_dir)
    util.wait_until(lambda: "ready" in p.stdout(), 5, "the shell to ignore SIGTERM")
    status, killed = p.stop(timeout=0.5)
    assert killed and status == -9


def test_curl_wrapper_times_out_cleanly(echo):
    r = http.curl("http://127.0.0.1:%d/sleep?secs=5" % echo.port, max_time=1)
    assert r.rc == 28  # operation timed out
    try:
        util.run(["sleep", "5"], timeout=0.2)
    except subprocess.TimeoutExpired:
        pass
    else:
        raise AssertionError("util.run did not bound the wait")
