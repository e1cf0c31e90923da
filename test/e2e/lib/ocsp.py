"""A loopback OCSP responder: `openssl ocsp` behind a small HTTP server bound to 127.0.0.1.

`openssl ocsp -port N` binds every interface (and OpenSSL 3.0 refuses "127.0.0.1:N"), so this
server listens on loopback only and runs, for each request,
    openssl ocsp -index INDEX -rsigner CERT -rkey KEY -CA CA -reqin REQ -respout RESP -ndays N
answering the DER response as application/ocsp-response. It takes POST (RFC 6960 A.1, the body is
the DER request) and GET /<base64 of the request, URL-encoded> on any path.

Fixture use (started as a child process, stopped by its PID):
    r = OcspResponder(d, index=pki.ocsp_index, rsigner=pki.ocsp_cert, rkey=pki.ocsp_key,
                      ca=pki.inter_cert, port=pki.ocsp_port, reservation=pki.ocsp_reservation)
    r.start(); r.url; r.requests(); r.stop()
or start_ocsp(d, pki). port=None lets the server pick a free port (reported back: no race).
Options for failure tests: delay (seconds before each answer), status (answer every request
with this HTTP status and no body). The index is read per request, so pki.revoke() takes effect
at once.

A response made once, for an origin to staple (nginx ssl_stapling_file):
    make_response(d / "staple.der", pki, leaf.cert) (the PKI's index and responder),
    or with rsigner/rkey of a signer the issuer never delegated to (an unverifiable staple).

Run as a script: python3 ocsp.py --index I --rsigner C --rkey K --ca CA [--port N] [--ndays N]
[--delay S] [--status CODE]; it prints "PORT <n>" on stdout once listening and one line per
request on stderr.
"""
import os
import sys

if __name__ == "__main__":
    # Run as a script, this directory comes first on sys.path, and its http.py would shadow
    # the standard library's http package.
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import argparse  # noqa: E402
import base64  # noqa: E402
import select  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from pathlib import Path  # noqa: E402

MAX_REQUEST = 64 * 1024


# --- the server (child process) -----------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    server_version = "catena-e2e-ocsp"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # one line per request, from _answer()
        pass

    def _reply(self, status, body=b"", ctype="application/ocsp-response"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _answer(self, req):
        cfg = self.server.cfg
        n = self.server.count_up()
        sys.stderr.write("ocsp: request %d (%d bytes, %s)\n" % (n, len(req), self.command))
        sys.stderr.flush()
        if cfg.delay:
            time.sleep(cfg.delay)
        if cfg.status:
            sys.stderr.write("ocsp: answer %d: forced status %d\n" % (n, cfg.status))
            sys.stderr.flush()
            self._reply(cfg.status, b"", "text/plain")
            return
        with tempfile.TemporaryDirectory(prefix="ocsp-") as tmp:
            reqf, respf = os.path.join(tmp, "req.der"), os.path.join(tmp, "resp.der")
            with open(reqf, "wb") as f:
                f.write(req)
            argv = ["openssl", "ocsp", "-index", cfg.index, "-rsigner", cfg.rsigner,
                    "-rkey", cfg.rkey, "-CA", cfg.ca, "-reqin", reqf, "-respout", respf,
                    "-ndays", str(cfg.ndays)]
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=30, check=False)
            if r.returncode != 0 or not os.path.exists(respf):
                sys.stderr.write("ocsp: answer %d: openssl failed (%d): %s\n" %
                                 (n, r.returncode, r.stderr.decode("utf-8", "replace").strip()))
                sys.stderr.flush()
                self._reply(500, b"", "text/plain")
                return
            with open(respf, "rb") as f:
                resp = f.read()
        sys.stderr.write("ocsp: answer %d: %d bytes\n" % (n, len(resp)))
        sys.stderr.flush()
        self._reply(200, resp)

    def do_POST(self):
        try:
            n = int(self.headers.get("Content-Length", "-1"))
        except ValueError:
            n = -1
        if n < 0 or n > MAX_REQUEST:
            self._reply(400, b"", "text/plain")
            return
        self._answer(self.rfile.read(n))

    def do_GET(self):
        tail = urllib.parse.unquote(self.path.rsplit("/", 1)[-1])
        try:
            req = base64.b64decode(tail, validate=True)
        except (ValueError, base64.binascii.Error):
            req = b""
        if not req:
            self._reply(400, b"", "text/plain")
            return
        self._answer(req)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, cfg):
        super().__init__(addr, _Handler)
        self.cfg = cfg
        self._count = 0
        self._lock = threading.Lock()

    def count_up(self):
        with self._lock:
            self._count += 1
            return self._count


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--rsigner", required=True)
    ap.add_argument("--rkey", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ndays", type=int, default=1)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--status", type=int, default=0)
    cfg = ap.parse_args(argv)
    srv = _Server(("127.0.0.1", cfg.port), cfg)
    sys.stdout.write("PORT %d\n" % srv.server_address[1])
    sys.stdout.flush()
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


# --- the fixture (parent side) ----------------------------------------------------------------

class OcspResponder:
    """The responder as a child process; start() waits until it listens, stop() ends it by PID."""

    def __init__(self, d, index, rsigner, rkey, ca, port=None, reservation=None, ndays=1,
                 delay=0.0, status=0):
        self.dir = Path(d)
        self.index, self.rsigner, self.rkey, self.ca = index, rsigner, rkey, ca
        self.port = port
        self.reservation = reservation
        self.ndays, self.delay, self.status = ndays, delay, status
        self.proc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d/" % self.port

    def start(self, timeout=10):
        from . import util  # here, so that the script runs without the package
        self.dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, Path(__file__).resolve(), "--index", self.index,
                "--rsigner", self.rsigner, "--rkey", self.rkey, "--ca", self.ca,
                "--port", str(self.port or 0), "--ndays", str(self.ndays),
                "--delay", str(self.delay), "--status", str(self.status)]
        if self.reservation is not None:
            self.reservation.release()  # the port is in the certificates: take it over
            self.reservation = None
        rd, wr = os.pipe()
        out = os.fdopen(wr, "wb")
        try:
            self.proc = util.Proc("ocsp", argv, self.dir, stdout=out)
        finally:
            out.close()
        buf = b""
        deadline = time.monotonic() + timeout
        try:
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0 or not self.proc.alive():
                    self.proc.stop()
                    raise AssertionError("OCSP responder did not report its port: %r %s" %
                                         (buf, self.proc.stderr()[-2000:]))
                r, _, _ = select.select([rd], [], [], min(left, 0.2))
                if r:
                    b = os.read(rd, 256)
                    if not b:
                        break
                    buf += b
        finally:
            os.close(rd)
        line = buf.split(b"\n", 1)[0].decode()
        if not line.startswith("PORT "):
            self.proc.stop()
            raise AssertionError("OCSP responder said %r; stderr: %s" %
                                 (line, self.proc.stderr()[-2000:]))
        self.port = int(line.split()[1])
        util.wait_until(lambda: util.is_listening(self.port), 5, "OCSP responder to listen")
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.stop(timeout=5)

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def log(self):
        return self.proc.stderr() if self.proc is not None else ""

    def requests(self):
        """How many requests have arrived so far (answered or not)."""
        return sum(1 for line in self.log().splitlines() if line.startswith("ocsp: request "))


def make_response(out, pki, cert, rsigner=None, rkey=None, ndays=1):
    """Writes to out the DER OCSP response the PKI's responder gives about cert (a leaf of the
    intermediate) now: good, or revoked once pki.revoke() put it in the index. rsigner/rkey
    sign it instead of the PKI's responder. Returns out."""
    from . import util  # here, so that the script runs without the package
    out = Path(out)
    req = out.with_suffix(".req")
    steps = [["openssl", "ocsp", "-issuer", pki.inter_cert, "-cert", cert, "-no_nonce",
              "-reqout", req],
             ["openssl", "ocsp", "-index", pki.ocsp_index, "-rsigner", rsigner or pki.ocsp_cert,
              "-rkey", rkey or pki.ocsp_key, "-CA", pki.inter_cert, "-reqin", req,
              "-respout", out, "-ndays", str(ndays)]]
    for argv in steps:
        r = util.run([str(a) for a in argv], timeout=30)
        if r.returncode != 0:
            raise AssertionError("%s failed (%d): %s" % (" ".join(map(str, argv)), r.returncode,
                                                         r.stderr.decode("utf-8", "replace")))
    return out


def start_ocsp(d, pki, **kw):
    """The responder for the test PKI's intermediate, on the port its certificates name."""
    kw.setdefault("port", pki.ocsp_port)
    kw.setdefault("reservation", getattr(pki, "ocsp_reservation", None))
    return OcspResponder(d, index=pki.ocsp_index, rsigner=pki.ocsp_cert, rkey=pki.ocsp_key,
                         ca=pki.inter_cert, **kw).start()


if __name__ == "__main__":
    sys.exit(main())
