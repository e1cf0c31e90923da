"""Error answers beyond the Foundation list: upstream failures, limits, status pass-through.

Each error answer is an HTML page with X-Catena-Exception: <id> and the id in the body.
"""
import json

import pytest

from lib import http, util


@pytest.fixture
def closed_port():
    """A loopback port that is bound but not listening: connecting to it is refused."""
    r = util.PortReservation()
    yield r.port
    r.release()


def test_connection_refused_http(make_catena, origins, closed_port):
    node = make_catena(http_ports=origins.default_http_ports() + [closed_port])
    with http.HttpConn.connect(node.port) as c:
        r = c.request("GET", "http://echo.test:%d/x" % closed_port)
    http.assert_exception_page(r, 502, "tcp_error")
    rec = node.wait_access(s_action="TCP_ERR_MISS", cs_host="echo.test")
    assert rec["x-exception-id"] == "tcp_error" and rec["sc-status"] == "502", rec["_line"]


def test_connection_refused_connect(make_catena, origins, closed_port):
    node = make_catena(connect_ports=origins.default_connect_ports() + [closed_port])
    c, r = http.proxy_connect(node.port, "echo.test", closed_port)
    c.close()
    http.assert_exception_page(r, 502, "tcp_error")
    node.wait_access(s_action="TCP_ERR_MISS", cs_host="echo.test", cs_uri_port=str(closed_port))


def test_malformed_origin_response(catena, origins):
    with http.HttpConn.connect(catena.port) as c:
        r = c.request("GET", origins.echo_url("/bad"))
    http.assert_exception_page(r, 502, "server_response_invalid")
    catena.wait_access(s_action="TCP_ERR_MISS", x_exception_id="server_response_invalid")


def test_request_head_too_large(make_catena, origins):
    node = make_catena(limits={"max_head_size": "4k"})
    with http.HttpConn.connect(node.port) as c:
        c.send(http.request_bytes("GET", origins.plain_url("/small.txt"),
                                  headers=[("X-Big", "a" * 8192)]))
        r = c.read_response(timeout=10)
    http.assert_exception_page(r, 431, "request_header_too_large")
    # A head under the limit still goes through.
    r = http.curl(origins.plain_url("/small.txt"), "-H", "X-Small: " + "b" * 1000,
                  proxy_port=node.port).check()
    assert r.status == 200


def test_too_many_connections(make_catena, origins):
    port = origins.http_port
    node = make_catena(limits={"max_connections": 2},
                       connect_ports=origins.default_connect_ports() + [port])
    held = []
    try:
        for _ in range(2):
            c, r = http.proxy_connect(node.port, "plain.test", port)
            held.append(c)
            assert r.status == 200, r
        with http.HttpConn.connect(node.port) as c:
            c.send(http.request_bytes("GET", origins.plain_url("/small.txt")))
            r = c.read_response(timeout=10)
        http.assert_exception_page(r, 503, "too_many_connections")
    finally:
        for c in held:
            c.close()
    # Once those are gone, clients are served again.
    small = origins.files.path("small.txt").read_bytes()

    def served():
        r = http.curl(origins.plain_url("/small.txt"), proxy_port=node.port, max_time=5)
        return r.rc == 0 and r.status == 200 and r.body == small
    util.wait_until(served, 10, "catena to serve again after the held connections closed",
                    interval=0.2)


@pytest.mark.parametrize("code", [201, 204, 404, 500, 503])
def test_origin_status_passes_through(catena, origins, code):
    with http.HttpConn.connect(catena.port) as c:
        r = c.request("GET", origins.echo_url("/status?code=%d" % code))
        assert r.status == code, r
        assert r.header("X-Catena-Exception") is None, r.headers
        if code != 204:
            assert r.body == b"status %d\n" % code
        # The connection stays usable after any of them.
        r = c.request("GET", origins.echo_url("/conn"))
        assert r.status == 200 and json.loads(r.body)["method"] == "GET"


def test_head_request(catena, origins):
    with http.HttpConn.connect(catena.port) as c:
        r = c.request("HEAD", origins.plain_url("/10MiB"))
        assert r.status == 200 and r.body == b""
        assert r.header("Content-Length") == str(origins.files.size["10MiB"])
        r = c.request("GET", origins.plain_url("/small.txt"))
        assert r.status == 200 and r.body == origins.files.path("small.txt").read_bytes()
