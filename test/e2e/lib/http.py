"""Clients: raw-socket HTTP/1.1 and CONNECT (for malformed input, slow clients, tunnels,
TLS through a tunnel with Python's ssl) and a curl wrapper.

Every socket operation has a timeout; a wait that runs out raises socket.timeout/TimeoutError
(or AssertionError with what was expected), never hangs.
"""
import os
import re
import socket
import ssl
import subprocess
import tempfile
import time
from urllib.parse import urlsplit

from . import util


class Response:
    def __init__(self, version, status, reason, headers, raw_head, body=b""):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # [(name, value)] in order
        self.raw_head = raw_head
        self.body = body

    def header(self, name):
        """The first value of a header (case-insensitive), or None."""
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def tokens(self, name):
        return [t.strip().lower() for v in self.header_all(name) for t in v.split(",") if t.strip()]

    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Response %s %s %s, %d body bytes>" % (self.version, self.status, self.reason,
                                                       len(self.body))


def parse_head(raw):
    """Parses a response head (status line + header lines, without the empty line)."""
    lines = raw.decode("latin-1").split("\r\n")
    m = re.match(r"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
    if not m:
        raise AssertionError("not an HTTP status line: %r" % lines[0][:200])
    headers = []
    for h in lines[1:]:
        if not h:
            continue
        k, sep, v = h.partition(":")
        if not sep:
            raise AssertionError("malformed header line %r in %r" % (h, raw[:500]))
        headers.append((k.strip(), v.strip()))
    return Response(m.group(1), int(m.group(2)), m.group(3) or "", headers, raw)


class HttpConn:
    """A client socket with a read buffer, so bytes after a head are never lost."""

    def __init__(self, sock, timeout=30.0):
        self.sock = sock
        self.buf = b""
        self.timeout = timeout
        sock.settimeout(timeout)

    @classmethod
    def connect(cls, port, host="127.0.0.1", source=None, timeout=10.0):
        """Connects to host:port, optionally from a given source address (e.g. 127.0.0.2)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            if source:
                s.bind((source, 0))
            s.connect((host, port))
        except OSError:
            s.close()
            raise
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(s, timeout=max(timeout, 30.0))

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("read timed out")
        self.sock.settimeout(left)
        b = self.sock.recv(1 << 16)
        if b:
            self.buf += b
        return b

    def read_exact(self, n, timeout=None):
        t = timeout or self.timeout
        deadline = time.monotonic() + t
        while len(self.buf) < n:
            try:
                more = self._fill(deadline)
            except (socket.timeout, TimeoutError):
                raise AssertionError("only %d of %d bytes within %.1fs" % (len(self.buf), n, t))
            if not more:
                raise AssertionError("EOF after %d of %d bytes" % (len(self.buf), n))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_line(self, timeout=None, limit=1 << 16):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n" not in self.buf:
            if len(self.buf) > limit:
                raise AssertionError("line longer than %d bytes" % limit)
            if not self._fill(deadline):
                raise AssertionError("EOF in a line: %r" % self.buf[:200])
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def read_head(self, timeout=None, limit=1 << 20):
        """The next response head (1xx included); AssertionError on EOF before it ends."""
        t = timeout or self.timeout
        deadline = time.monotonic() + t
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > limit:
                raise AssertionError("response head longer than %d bytes" % limit)
            try:
                more = self._fill(deadline)
            except (socket.timeout, TimeoutError):
                raise AssertionError("no complete response head within %.1fs; got %r"
                                     % (t, self.buf[:500]))
            except ConnectionResetError:
                raise AssertionError("connection reset before a complete response head; got %r"
                                     % self.buf[:500])
            if not more:
                raise AssertionError("connection closed before a complete response head; got %r"
                                     % self.buf[:500])
        raw, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return parse_head(raw)

    def read_response(self, method="GET", timeout=None, max_body=1 << 30):
        """Reads one final response with its body (Content-Length, chunked or until EOF).

        1xx heads are skipped (kept in .interim). For CONNECT, a 2xx has no body.
        """
        deadline = time.monotonic() + (timeout or self.timeout)
        interim = []
        while True:
            r = self.read_head(timeout=max(0.001, deadline - time.monotonic()))
            if 100 <= r.status < 200 and r.status != 101:
                interim.append(r)
                continue
            break
        r.interim = interim
        return self.read_body(r, method, timeout=max(0.001, deadline - time.monotonic()),
                              max_body=max_body)

    def read_body(self, r, method="GET", timeout=None, max_body=1 << 30):
        """Reads the body of response r (whose head was read with read_head) into r.body."""
        deadline = time.monotonic() + (timeout or self.timeout)
        if method == "HEAD" or r.status in (204, 304) or r.status < 200 or \
                (method == "CONNECT" and 200 <= r.status < 300):
            return r
        left = lambda: max(0.001, deadline - time.monotonic())  # noqa: E731
        if "chunked" in r.tokens("transfer-encoding"):
            body = []
            while True:
                size_line = self.read_line(timeout=left())
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.read_line(timeout=left()):
                        pass  # trailers
                    break
                body.append(self.read_exact(size, timeout=left()))
                if self.read_exact(2, timeout=left()) != b"\r\n":
                    raise AssertionError("missing CRLF after a chunk")
            r.body = b"".join(body)
        elif r.header("content-length") is not None:
            r.body = self.read_exact(int(r.header("content-length")), timeout=left())
        else:
            r.body = self.read_until_eof(timeout=left(), limit=max_body)
        return r

    def read_until_eof(self, timeout=None, limit=1 << 30):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            if len(self.buf) > limit:
                raise AssertionError("more than %d bytes before EOF" % limit)
            try:
                if not self._fill(deadline):
                    break
            except ConnectionResetError:
                break
        out, self.buf = self.buf, b""
        return out

    def wait_closed(self, timeout=10.0):
        """Reads until the peer closes (EOF or reset); returns the bytes read meanwhile.

        Raises AssertionError if the connection is still open after timeout seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                if not self._fill(deadline):
                    break
            except ConnectionResetError:
                break
            except (socket.timeout, TimeoutError):
                raise AssertionError("connection still open after %.1fs (read so far: %r)"
                                     % (timeout, self.buf[:300]))
        out, self.buf = self.buf, b""
        return out

    def request(self, method, url, headers=(), body=None, host=None, version="HTTP/1.1",
                timeout=None):
        """Sends one proxy request (absolute-form url) and reads the response."""
        self.send(request_bytes(method, url, headers, body, host, version))
        return self.read_response(method, timeout=timeout)

    def start_tls(self, server_hostname, cafile, timeout=30.0):
        """Wraps the socket (e.g. an established CONNECT tunnel) in TLS; verifies against cafile."""
        if self.buf:
            raise AssertionError("unexpected bytes before the TLS handshake: %r" % self.buf[:200])
        ctx = ssl.create_default_context(cafile=str(cafile))
        self.sock.settimeout(timeout)
        tls = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        return HttpConn(tls, timeout=self.timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def request_bytes(method, url, headers=(), body=None, host=None, version="HTTP/1.1"):
    """A request head (+ body) for a proxy: absolute-form target, Host from the URL unless
    given in headers; Content-Length added for a body unless a framing header is given."""
    u = urlsplit(url)
    if host is None and method != "CONNECT":
        host = u.netloc
    names = {k.lower() for k, _ in headers}
    lines = ["%s %s %s" % (method, url, version)]
    if host and "host" not in names:
        lines.append("Host: " + host)
    lines += ["%s: %s" % (k, v) for k, v in headers]
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        lines.append("Content-Length: %d" % len(body))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return data + (body or b"")


def proxy_connect(proxy_port, host, port, source=None, timeout=10.0, headers=()):
    """Opens a connection to catena and sends CONNECT host:port.

    Returns (conn, response). On a 2xx conn is the tunnel; otherwise the response has its
    body read (error page) and conn is left open for the caller to inspect or close.
    """
    c = HttpConn.connect(proxy_port, source=source, timeout=timeout)
    try:
        authority = "%s:%d" % (host, port) if ":" not in host else "[%s]:%d" % (host, port)
        lines = ["CONNECT %s HTTP/1.1" % authority, "Host: " + authority]
        lines += ["%s: %s" % kv for kv in headers]
        c.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        r = c.read_response("CONNECT", timeout=timeout)
    except BaseException:
        c.close()
        raise
    return c, r


def assert_exception_page(r, status, exc_id, body_contains=()):
    """Checks catena's error answer: status, X-Catena-Exception, the id (and more) in the body."""
    assert r.status == status, "expected status %d (%s), got %d %s; headers %r; body %r" % (
        status, exc_id, r.status, r.reason, r.headers, r.body[:500])
    got = r.header("X-Catena-Exception")
    assert got == exc_id, "expected X-Catena-Exception: %s, got %r (headers %r)" % (
        exc_id, got, r.headers)
    text = r.text()
    assert exc_id in text, "exception id %r not in the page body: %r" % (exc_id, text[:800])
    for s in body_contains:
        assert s in text, "%r not in the page body: %r" % (s, text[:800])


# --- curl -------------------------------------------------------------------------

class CurlResult:
    def __init__(self, argv, rc, body, stderr, heads):
        self.argv = argv
        self.rc = rc
        self.body = body          # bytes on stdout (b"" when -o was used)
        self.stderr = stderr      # text (with -v: the verbose trace)
        self.responses = heads    # every response head curl saw, in order (CONNECT's too)
        self.final = heads[-1] if heads else None

    @property
    def status(self):
        return self.final.status if self.final else None

    def header(self, name):
        return self.final.header(name) if self.final else None

    # The same views as a Response, so assert_exception_page takes either.
    @property
    def reason(self):
        return self.final.reason if self.final else ""

    @property
    def headers(self):
        return self.final.headers if self.final else []

    def text(self):
        return self.body.decode("utf-8", "replace")

    def check(self):
        assert self.rc == 0, "curl failed (exit %d): %s\n%s" % (self.rc, " ".join(self.argv),
                                                                self.stderr[-3000:])
        return self

    def __repr__(self):
        return "<curl rc=%d status=%s>" % (self.rc, self.status)


def curl(url, *args, proxy_port=None, cacert=None, max_time=60, output=None, verbose=False,
         extra_urls=(), env=None):
    """Runs curl -sS against url through catena (-x http://127.0.0.1:PORT) and returns a
    CurlResult. output: a path for -o (the body is then not kept in memory). env: extra
    environment variables (e.g. SSLKEYLOGFILE)."""
    fd, hdr = tempfile.mkstemp(prefix="catena-e2e-curl-", suffix=".hdr")
    os.close(fd)
    argv = ["curl", "-sS", "--max-time", str(max_time), "-D", hdr]
    if verbose:
        argv.append("-v")
    if proxy_port is not None:
        argv += ["-x", "http://127.0.0.1:%d" % proxy_port]
    if cacert is not None:
        argv += ["--cacert", str(cacert)]
    if output is not None:
        argv += ["-o", str(output)]
    argv += [str(a) for a in args]
    argv.append(url)
    argv += list(extra_urls)
    try:
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=max_time + 15,
                               env=dict(os.environ, **env) if env else None)
        except subprocess.TimeoutExpired:
            raise AssertionError("curl did not end within %ds: %s" % (max_time + 15,
                                                                      " ".join(argv)))
        with open(hdr, "rb") as f:
            raw = f.read()
    finally:
        os.unlink(hdr)
    heads = []
    for block in raw.split(b"\r\n\r\n"):
        block = block.strip(b"\r\n")
        if block.startswith(b"HTTP/"):
            heads.append(parse_head(block))
    return CurlResult(argv, p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"), heads)


def openssl_s_client(proxy_port, host, port, cafile, timeout=30):
    """openssl s_client through catena (-proxy); returns (rc, stdout text, stderr text)."""
    argv = ["openssl", "s_client", "-proxy", "127.0.0.1:%d" % proxy_port,
            "-connect", "%s:%d" % (host, port), "-servername", host, "-CAfile", str(cafile),
            "-verify_return_error", "-showcerts", "-verify_hostname", host]
    try:
        p = util.run(argv, timeout=timeout, input=b"")
    except subprocess.TimeoutExpired:
        raise AssertionError("openssl s_client did not end within %ds" % timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
