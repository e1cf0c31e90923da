#!/usr/bin/python3
"""The echo origin: a small, real HTTP/1.1 server for what nginx cannot do.

Run as a subprocess: `python3 echo_server.py [--host 127.0.0.1] [--port 0] [--cert CHAIN.pem
--key KEY.pem]`; it binds, then prints "PORT <n>" on stdout and serves until killed. With
--cert/--key every connection is TLS (Python's ssl, TLS 1.2 and 1.3) with the same routes. One thread per connection; keep-alive
(HTTP/1.1 default, HTTP/1.0 with Connection: keep-alive); request bodies with Content-Length
or chunked; "Expect: 100-continue" is answered with 100 Continue.

Routes (query parameters are decimal integers):
  GET /chunked?size=N[&chunk=K]  N random bytes in chunks of K (default 16384), chunked coding
  GET /close?size=N              N random bytes, no Content-Length, Connection: close, then close
  GET /slow?secs=S[&size=N]      N bytes (default 65536) with Content-Length, trickled over S s
  GET /status?code=C             an empty-ish answer with status C
  GET /bad                       a malformed status line, then close
  GET /sleep?secs=S              waits S seconds before answering (JSON as below)
  anything else, any method      JSON (one line, ending in "\n"):
        {"conn": <id of the TCP connection, counted from 1>, "seq": <request number on it>,
         "method", "target", "version", "headers": [[name, value], ...],
         "length": <request body bytes>, "sha256": <hex of the request body>}
Generated bodies come with "X-Content-Sha256" and "X-Content-Bytes" headers so a client can
check what arrived.
"""
import argparse
import hashlib
import itertools
import json
import os
import socket
import socketserver
import ssl
import sys
import threading
import time
from urllib.parse import urlsplit, parse_qs

MAX_HEAD = 64 * 1024
IDLE_TIMEOUT = 120

_conn_ids = itertools.count(1)
_conn_lock = threading.Lock()
_tls_ctx = None  # an ssl.SSLContext when serving TLS


class BadRequest(Exception):
    pass


def _readline(rfile, budget):
    line = rfile.readline(budget + 1)
    if len(line) > budget:
        raise BadRequest("head too large")
    return line


def read_head(rfile):
    """(method, target, version, headers) or None at a clean EOF before any byte."""
    budget = MAX_HEAD
    line = _readline(rfile, budget)
    while line in (b"\r\n", b"\n"):  # tolerated empty lines between requests
        line = _readline(rfile, budget)
    if not line:
        return None
    budget -= len(line)
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3:
        raise BadRequest("request line %r" % line)
    method, target, version = parts
    headers = []
    while True:
        h = _readline(rfile, budget)
        if not h:
            raise BadRequest("EOF in head")
        budget -= len(h)
        if h in (b"\r\n", b"\n"):
            break
        name, sep, value = h.decode("latin-1").partition(":")
        if not sep:
            raise BadRequest("header line %r" % h)
        headers.append([name.strip(), value.strip()])
    return method, target, version, headers


def header(headers, name):
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def tokens(headers, name):
    out = []
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            out += [t.strip().lower() for t in v.split(",") if t.strip()]
    return out


def read_body(rfile, headers, sink):
    """Feeds the request body to sink(bytes); returns its length."""
    if "chunked" in tokens(headers, "transfer-encoding"):
        total = 0
        while True:
            line = _readline(rfile, 4096)
            if not line:
                raise BadRequest("EOF in chunk size")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:  # trailers
                    t = _readline(rfile, MAX_HEAD)
                    if not t:
                        raise BadRequest("EOF in trailers")
                    if t in (b"\r\n", b"\n"):
                        return total
            left = size
            while left:
                b = rfile.read(min(left, 1 << 16))
                if not b:
                    raise BadRequest("EOF in chunk")
                sink(b)
                left -= len(b)
            total += size
            if rfile.readline(3) not in (b"\r\n", b"\n"):
                raise BadRequest("missing CRLF after chunk")
    cl = header(headers, "content-length")
    if cl is None:
        return 0
    left = int(cl)
    total = left
    while left:
        b = rfile.read(min(left, 1 << 16))
        if not b:
            raise BadRequest("EOF in body")
        sink(b)
        left -= len(b)
    return total


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        with _conn_lock:
            conn_id = next(_conn_ids)
        sock = self.request
        sock.settimeout(IDLE_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if _tls_ctx is not None:
            try:
                sock = _tls_ctx.wrap_socket(sock, server_side=True)
            except (OSError, ValueError):
                return
            self.request = sock  # send() writes through TLS too
        rfile = sock.makefile("rb", buffering=1 << 16)
        try:
            for seq in itertools.count(1):
                try:
                    head = read_head(rfile)
                except BadRequest as e:
                    self.send(400, [("Connection", "close")], ("bad request: %s\n" % e).encode())
                    return
                if head is None:
                    return
                if not self.serve(rfile, conn_id, seq, *head):
                    return
        except (OSError, ValueError):
            return
        finally:
            try:
                rfile.close()
                if _tls_ctx is not None:
                    sock.close()  # the wrapped socket owns the descriptor now
            except OSError:
                pass

    def send(self, status, headers, body=b"", reason=None):
        reason = reason or {100: "Continue", 200: "OK", 400: "Bad Request",
                            404: "Not Found"}.get(status, "Status")
        head = "HTTP/1.1 %d %s\r\n" % (status, reason)
        for k, v in headers:
            head += "%s: %s\r\n" % (k, v)
        self.request.sendall(head.encode("latin-1") + b"\r\n" + body)

    def serve(self, rfile, conn_id, seq, method, target, version, headers):
        """Answers one request; returns False when the connection must close."""
        conn_tokens = tokens(headers, "connection")
        if version == "HTTP/1.1":
            keep = "close" not in conn_tokens
        else:
            keep = "keep-alive" in conn_tokens
        has_body = header(headers, "content-length") not in (None, "0") or \
            "chunked" in tokens(headers, "transfer-encoding")
        if has_body and (header(headers, "expect") or "").lower() == "100-continue":
            self.send(100, [])
        h = hashlib.sha256()
        length = read_body(rfile, headers, h.update)
        u = urlsplit(target)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        path = u.path
        conn_hdr = [("Connection", "keep-alive" if keep else "close")]
        head_only = method == "HEAD"

        def num(name, default):
            return int(q.get(name, default))

        if path == "/chunked":
            data = os.urandom(num("size", 0))
            step = max(1, num("chunk", 16384))
            self.send(200, [("Content-Type", "application/octet-stream"),
                            ("Transfer-Encoding", "chunked"),
                            ("X-Content-Sha256", hashlib.sha256(data).hexdigest()),
                            ("X-Content-Bytes", str(len(data)))] + conn_hdr)
            if not head_only:
                for i in range(0, len(data), step):
                    piece = data[i:i + step]
                    self.request.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
                self.request.sendall(b"0\r\n\r\n")
            return keep
        if path == "/close":
            data = os.urandom(num("size", 0))
            self.send(200, [("Content-Type", "application/octet-stream"),
                            ("X-Content-Sha256", hashlib.sha256(data).hexdigest()),
                            ("X-Content-Bytes", str(len(data))), ("Connection", "close")],
                      b"" if head_only else data)
            return False
        if path == "/slow":
            data = os.urandom(num("size", 65536))
            secs = float(q.get("secs", "1"))
            self.send(200, [("Content-Type", "application/octet-stream"),
                            ("Content-Length", str(len(data))),
                            ("X-Content-Sha256", hashlib.sha256(data).hexdigest()),
                            ("X-Content-Bytes", str(len(data)))] + conn_hdr)
            if not head_only:
                pieces = max(1, int(secs * 10))
                step = max(1, -(-len(data) // pieces))
                for i in range(0, len(data), step):
                    self.request.sendall(data[i:i + step])
                    time.sleep(secs / pieces)
            return keep
        if path == "/status":
            code = num("code", 200)
            body = b"" if code in (204, 304) or code < 200 else b"status %d\n" % code
            hdrs = [("Content-Type", "text/plain")] + conn_hdr
            if code not in (204, 304) and code >= 200:
                hdrs.append(("Content-Length", str(len(body))))
            self.send(code, hdrs, b"" if head_only else body)
            return keep
        if path == "/bad":
            self.request.sendall(b"HTTP/1.1 banana\r\nthis is not a header\r\n\r\n")
            return False
        if path == "/sleep":
            time.sleep(float(q.get("secs", "1")))
        body = (json.dumps({"conn": conn_id, "seq": seq, "method": method, "target": target,
                            "version": version, "headers": headers, "length": length,
                            "sha256": h.hexdigest()}) + "\n").encode()
        self.send(200, [("Content-Type", "application/json"),
                        ("Content-Length", str(len(body)))] + conn_hdr,
                  b"" if head_only else body)
        return keep


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert", help="PEM chain (leaf first): serve TLS")
    ap.add_argument("--key", help="PEM key of --cert")
    a = ap.parse_args()
    if a.cert:
        global _tls_ctx
        _tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        _tls_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        _tls_ctx.load_cert_chain(a.cert, a.key)
    srv = Server((a.host, a.port), Handler)
    sys.stdout.write("PORT %d\n" % srv.server_address[1])
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
