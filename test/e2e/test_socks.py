"""SOCKS5 listeners: curl --socks5-hostname and --socks5 through catena, tunneled and
intercepted; the same access rules as CONNECT (port 25 refused); clear SOCKS replies for
refusals; a bad greeting is logged and catena keeps serving.

curl is given names only with --socks5-hostname (catena resolves them through dnsmasq);
with --socks5 the client resolves, so those tests use IP literals.
"""
import socket
import subprocess

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


# --- RFC 1929 logins ------------------------------------------------------------------

from test_policy import USERS_POLICY, bundles  # noqa: E402,F401 (fixture)


def _users(test_dir):
    users = test_dir / "users.txt"
    h = subprocess.run(["openssl", "passwd", "-6", "s3cret"], capture_output=True, text=True,
                       check=True).stdout.strip()
    users.write_text("alice:%s\nbob:%s\n" % (h, h))
    users.chmod(0o600)
    return users


def _login_node(make_catena, origins, test_dir, **kw):
    realms = ({"name": "corp", "type": "local", "users_file": str(_users(test_dir))},)
    socks = dict(SOCKS, realm="corp")
    return _node(make_catena, origins, realms=realms,
                 listeners=({"type": "http", "address": "127.0.0.1:0"}, socks), **kw)


def _via(node, login=None):
    auth = login + "@" if login else ""
    return ["--socks5-hostname", "%s127.0.0.1:%d" % (auth, _socks(node))]


def test_socks5_login(make_catena, origins, test_dir):
    node = _login_node(make_catena, origins, test_dir)
    r = http.curl(origins.echo_url("/conn"), *_via(node, "alice:s3cret")).check()
    assert r.status == 200, r
    node.wait_access(s_action="TCP_TUNNELED", cs_username="alice", cs_uri_scheme="socks")
    # A wrong password: RFC 1929 failure (01 01), logged with the user tried, then closed.
    r = http.curl(origins.echo_url("/conn"), *_via(node, "alice:wrong"))
    assert r.rc != 0 and "rejected" in r.stderr, r
    node.wait_event(r'SOCKS login: fail for user "alice" in realm corp')
    node.wait_access(s_action="TCP_DENIED", sc_status="407",
                     x_exception_id="authentication_failed")
    # No login offered: the listener takes logins only (05 FF).
    r = http.curl(origins.echo_url("/conn"), *_via(node))
    assert r.rc != 0, r
    node.wait_event(r"no acceptable method \(this listener requires username/password\)")


def test_socks5_login_pipelined(make_catena, origins, test_dir):
    """Greeting, login and request pipelined in one write: each message is consumed in
    turn and the tunnel carries the bytes behind them."""
    node = _login_node(make_catena, origins, test_dir)
    user, pw = b"alice", b"s3cret"
    host = b"echo.test"
    msg = (b"\x05\x01\x02" + b"\x01" + bytes([len(user)]) + user + bytes([len(pw)]) + pw +
           b"\x05\x01\x00\x03" + bytes([len(host)]) + host +
           origins.echo_port.to_bytes(2, "big") +
           b"GET /conn HTTP/1.1\r\nHost: echo.test\r\nConnection: close\r\n\r\n")
    s = socket.create_connection(("127.0.0.1", _socks(node)), timeout=10)
    try:
        s.sendall(msg)
        got = b""
        for _ in range(100):  # bounded: 14 bytes of replies, then the echo's answer
            if len(got) >= 14:
                break
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        assert got[:2] == b"\x05\x02" and got[2:4] == b"\x01\x00", got[:16]
        assert got[4:6] == b"\x05\x00", got[:16]
    finally:
        s.close()
    node.wait_access(s_action="TCP_TUNNELED", cs_username="alice")


def test_socks5_login_user_reaches_policy_and_intercepted_requests(
        make_intercepting, origins, keyring, bundles, test_dir):
    b = bundles.build(USERS_POLICY, 1)
    realms = ({"name": "corp", "type": "local", "users_file": str(_users(test_dir))},)
    node = make_intercepting(
        realms=realms, bundle={"file": str(b), "keys": [str(bundles.pub)]},
        listeners=({"type": "http", "address": "127.0.0.1:0"}, dict(SOCKS, realm="corp")))
    r = http.curl(origins.tls_url("/small.txt"), *_via(node, "alice:s3cret"),
                  cacert=keyring.root_cert).check()
    assert r.body == origins.files.path("small.txt").read_bytes()
    node.wait_access(cs_uri_scheme="https", cs_host="origin.test", cs_username="alice",
                     sc_status="200")
    # bob logs in, but the <proxy> layer allows only alice: SOCKS reply 02.
    r = http.curl(origins.tls_url("/small.txt"), *_via(node, "bob:s3cret"),
                  cacert=keyring.root_cert)
    assert r.rc != 0, r
    node.wait_access(s_action="TCP_DENIED", cs_username="bob", x_exception_id="policy_denied")


def test_socks5_policy_login_without_realm_denied(make_catena, origins, bundles):
    """authenticate() in policy on a SOCKS listener without a realm: denied (never an HTTP
    407 on a SOCKS connection), with the reason in the event log."""
    b = bundles.build(USERS_POLICY, 1)
    node = _node(make_catena, origins, bundle={"file": str(b), "keys": [str(bundles.pub)]})
    r = http.curl(origins.echo_url("/conn"), *_via(node))
    assert r.rc != 0, r
    node.wait_event(r"give this SOCKS listener a realm")
    node.wait_access(s_action="TCP_DENIED", x_exception_id="policy_denied")
