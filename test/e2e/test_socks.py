"""SOCKS5 listeners: curl --socks5-hostname and --socks5 through catena, tunneled and
intercepted; the same access rules as CONNECT (port 25 refused); clear SOCKS replies for
refusals; a bad greeting is logged and catena keeps serving.

curl is given names only with --socks5-hostname (catena resolves them through dnsmasq);
with --socks5 the client resolves, so those tests use IP literals.
"""
import socket

import pytest

from lib import http, intercept

SOCKS = {"type": "socks5", "address": "127.0.0.1:0"}


def _node(make_catena, origins, **kw):
    kw.setdefault("listeners", ({"type": "http", "address": "127.0.0.1:0"}, dict(SOCKS)))
    kw.setdefault("connect_ports", origins.default_connect_ports() + [origins.echo_port])
    return make_catena(**kw)


def _socks(node):
    return node.listener_port("socks5")


def test_socks5_hostname_tunnel(make_catena, origins):
    node = _node(make_catena, origins)
    r = http.curl(origins.echo_url("/conn"), "--socks5-hostname",
                  "127.0.0.1:%d" % _socks(node)).check()
    assert r.status == 200, r
    node.wait_access(s_action="TCP_TUNNELED", cs_uri_scheme="socks", cs_host="echo.test")


def test_socks5_client_resolved_tunnel(make_catena, origins):
    node = _node(make_catena, origins)
    r = http.curl("http://127.0.0.1:%d/conn" % origins.echo_port, "--socks5",
                  "127.0.0.1:%d" % _socks(node)).check()
    assert r.status == 200, r
    node.wait_access(s_action="TCP_TUNNELED", cs_host="127.0.0.1")


def test_socks5_tls_tunneled_sees_origin_certificate(make_catena, origins):
    node = _node(make_catena, origins)
    r = http.curl(origins.tls_url("/small.txt"), "--socks5-hostname",
                  "127.0.0.1:%d" % _socks(node), cacert=origins.pki.root_cert).check()
    assert r.body == origins.files.path("small.txt").read_bytes()


def test_socks5_intercepted(make_intercepting, origins, keyring):
    node = make_intercepting(listeners=({"type": "http", "address": "127.0.0.1:0"},
                                        dict(SOCKS)))
    r = http.curl(origins.tls_url("/small.txt"), "--socks5-hostname",
                  "127.0.0.1:%d" % _socks(node), cacert=keyring.root_cert,
                  verbose=True).check()
    assert r.body == origins.files.path("small.txt").read_bytes()
    assert intercept.INTER_CN in r.stderr, r.stderr[-2000:]
    node.wait_access(cs_uri_scheme="https", cs_host="origin.test", sc_status="200")


def test_socks5_port_25_refused(make_catena, origins):
    """A SOCKS request to a port CONNECT would refuse is refused too (reply 0x02)."""
    node = _node(make_catena, origins)
    s = socket.create_connection(("127.0.0.1", _socks(node)), timeout=10)
    try:
        s.sendall(b"\x05\x01\x00")
        assert s.recv(2) == b"\x05\x00"
        s.sendall(b"\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x19")
        reply = s.recv(10)
        assert reply[:2] == b"\x05\x02", reply
    finally:
        s.close()
    node.wait_access(s_action="TCP_DENIED", cs_uri_port="25")
    node.wait_event(r"denied: CONNECT to port 25 is not allowed")


def test_socks5_unknown_host_reply(make_catena, origins):
    node = _node(make_catena, origins)
    s = socket.create_connection(("127.0.0.1", _socks(node)), timeout=10)
    try:
        s.sendall(b"\x05\x01\x00")
        assert s.recv(2) == b"\x05\x00"
        name = b"nosuch.test"
        s.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name +
                  origins.echo_port.to_bytes(2, "big"))
        reply = s.recv(10)
        assert reply[:2] == b"\x05\x04", reply  # host unreachable
    finally:
        s.close()
    node.wait_access(s_action="TCP_ERR_MISS", cs_host="nosuch.test")


@pytest.mark.parametrize("greeting", [b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00",  # SOCKS4
                                      b"\x05\x00",                                # no methods
                                      b"GET / HTTP/1.1\r\n\r\n"])
def test_socks5_bad_greeting_logged_and_serving(make_catena, origins, greeting):
    node = _node(make_catena, origins)
    s = socket.create_connection(("127.0.0.1", _socks(node)), timeout=10)
    try:
        s.sendall(greeting)
        s.settimeout(10)
        assert s.recv(100) == b"", "catena answered a malformed greeting instead of closing"
    finally:
        s.close()
    node.wait_event(r"bad request: SOCKS")
    r = http.curl(origins.echo_url("/conn"), "--socks5-hostname",
                  "127.0.0.1:%d" % _socks(node)).check()
    assert r.status == 200


def test_socks5_only_userpass_offered_refused(make_catena, origins):
    """Without a login configured only "no authentication" is acceptable: a client that
    offers only username/password gets 0xFF and the connection closes."""
    node = _node(make_catena, origins)
    s = socket.create_connection(("127.0.0.1", _socks(node)), timeout=10)
    try:
        s.sendall(b"\x05\x01\x02")
        assert s.recv(2) == b"\x05\xff"
    finally:
        s.close()
