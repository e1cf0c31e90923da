"""TLS interception helpers: catena keyrings, the node's tls section, TLS clients and
origins beyond nginx, certificate inspection with the openssl CLI, the admin endpoint.

Keyring (make_keyring, one per session in conftest.py): a root made with
`catenactl ca init` and an intermediate with `catenactl ca intermediate`; catena signs
with the intermediate and sends leaf, intermediate, root.
    keyring.root_cert   what clients trust (curl --cacert, s_client -CAfile)
    keyring.dir         the intermediate keyring (tls.keyrings[0].dir)
    keyring.cert, .key, .chain, .root_key, .root_dir

tls_section(keyring, pki, **over): the node's tls = { ... } for interception of
everything, trusting origins through the test PKI root only (no system CAs).

Clients: s_client(...) (openssl s_client through catena, -showcerts, result parsed),
s_client_exchange(...) (a line in, wait for an answer),
client_hello_bytes(name) (a real ClientHello from Python's ssl, for raw sockets).
Origins: SServer (openssl s_server: -rev, -www, TLS version pinned), ResettingOrigin
(accepts, reads the ClientHello, resets).
Certificates: x509(pem, *args) runs `openssl x509 -noout ARGS`; san(), subject_cn().
Admin: admin_get(port, path) for the admin listener, status(port) for GET /status.
"""
import json
import os
import re
import select
import socket
import ssl
import struct
import subprocess
import threading
import time
from pathlib import Path

from . import http, pki as pki_mod, util


class CtlError(AssertionError):
    pass


def catenactl(*args, timeout=60):
    """Runs catenactl; returns stdout text; CtlError unless it exits 0."""
    util.require_binary(util.catenactl_bin(), "catenactl")
    r = util.run([util.catenactl_bin()] + [str(a) for a in args], timeout=timeout)
    if r.returncode != 0:
        raise CtlError("catenactl %s: exit %d\n%s%s" % (
            " ".join(map(str, args)), r.returncode, r.stdout.decode("utf-8", "replace"),
            r.stderr.decode("utf-8", "replace")))
    return r.stdout.decode("utf-8", "replace")


class Keyring:
    def __init__(self, root_dir, inter_dir):
        self.root_dir = Path(root_dir)
        self.dir = Path(inter_dir)
        self.root_cert = self.root_dir / "cert.pem"
        self.root_key = self.root_dir / "key.pem"
        self.cert = self.dir / "cert.pem"
        self.key = self.dir / "key.pem"
        self.chain = self.dir / "chain.pem"

    def root_der(self):
        return pki_mod.pem_to_der(self.root_cert.read_text())

    def inter_der(self):
        return pki_mod.pem_to_der(self.cert.read_text())

    def key_files(self):
        return [self.root_key, self.key]


ROOT_CN = "catena e2e interception root"
INTER_CN = "catena e2e interception intermediate"


def make_keyring(d):
    """A root and an intermediate keyring under d (root/, inter/), made with catenactl."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    catenactl("ca", "init", "--dir", d / "root", "--cn", ROOT_CN)
    catenactl("ca", "intermediate", "--parent", d / "root", "--dir", d / "inter",
              "--cn", INTER_CN)
    return Keyring(d / "root", d / "inter")


SPLASH_TEXT = "Inspected by catena e2e"
SPLASH_URL = "https://intranet.test/tls-inspection"


def tls_section(keyring, pki, **over):
    """The tls section for a node that intercepts everything (over: keys to change; None
    removes one)."""
    base = {
        "intercept": "all",
        "keyrings": ({"name": "default", "dir": str(keyring.dir)},),
        "use_system_cas": False,
        "ca_file": str(pki.root_cert),
        "splash_text": SPLASH_TEXT,
        "splash_url": SPLASH_URL,
    }
    for k, v in over.items():
        if v is None:
            base.pop(k, None)
        else:
            base[k] = v
    return base


# --- certificates ----------------------------------------------------------------------

def x509(pem, *args):
    """`openssl x509 -noout ARGS` on one PEM certificate (text or path); stdout text."""
    if isinstance(pem, Path):
        pem = pem.read_text()
    r = util.run(["openssl", "x509", "-noout"] + list(args), input=pem.encode(), timeout=30)
    if r.returncode != 0:
        raise AssertionError("openssl x509 %s: %s" % (" ".join(args),
                                                      r.stderr.decode("utf-8", "replace")))
    return r.stdout.decode("utf-8", "replace")


def san(pem):
    """The subjectAltName entries, sorted: ["DNS:origin.test", "IP Address:127.0.0.1"]."""
    out = x509(pem, "-ext", "subjectAltName")
    lines = out.splitlines()[1:]  # after "X509v3 Subject Alternative Name:"
    return sorted(x.strip() for x in ",".join(lines).split(",") if x.strip())


def _cn(pem, which):
    out = x509(pem, "-" + which, "-nameopt", "RFC2253")  # "subject=CN=x,O=y"
    m = re.search(r"(?:=|,)CN=([^,\n]+)", out)
    return m.group(1).strip() if m else None


def subject_cn(pem):
    return _cn(pem, "subject")


def issuer_cn(pem):
    return _cn(pem, "issuer")


def der(pem):
    return pki_mod.pem_to_der(pem)


def issue_with_keyring(keyring, d, cn, sans):
    """A server certificate for cn/sans signed by the keyring's own issuer (openssl CLI), as
    an origin that holds catena's key would have. Returns (cert path, key path)."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    key, csr, cert, ext = d / "key.pem", d / "csr.pem", d / "cert.pem", d / "ext.cnf"
    ext.write_text("[ leaf ]\nbasicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\n"
                   "extendedKeyUsage = serverAuth\nsubjectAltName = %s\n" % ", ".join(sans))
    for argv in (["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-out", key],
                 ["req", "-new", "-key", key, "-subj", "/CN=%s" % cn, "-out", csr],
                 ["x509", "-req", "-in", csr, "-CA", keyring.cert, "-CAkey", keyring.key,
                  "-set_serial", "4242", "-days", "30", "-extfile", ext, "-extensions", "leaf",
                  "-out", cert]):
        r = util.run(["openssl"] + [str(a) for a in argv], timeout=30)
        if r.returncode != 0:
            raise AssertionError("openssl %s: %s" % (argv[0], r.stderr.decode("utf-8", "replace")))
    return cert, key


# --- openssl s_client ------------------------------------------------------------------

class SClient:
    def __init__(self, argv, rc, out, err):
        self.argv, self.rc, self.out, self.err = argv, rc, out, err
        self.certs = pki_mod.pem_certs(out)
        # "Verification error: ..." wins: after a failed verification the SSL-Session block
        # may still say "Verify return code: 0 (ok)".
        m = re.search(r"^Verification error: (.*)$", out, re.M)
        if m:
            self.verify_code, self.verify_text = -1, m.group(1)
        else:
            m = re.search(r"^\s*Verify return code: (\d+) \(([^)]*)\)", out, re.M)
            self.verify_code = int(m.group(1)) if m else None
            self.verify_text = m.group(2) if m else None
        self.depths = [int(x) for x in re.findall(r"^depth=(\d+) ", err + out, re.M)]
        m = re.search(r"^\s*Protocol\s*:\s*(\S+)", out, re.M)
        self.protocol = m.group(1) if m else None
        m = re.search(r"New, (TLSv[\d.]+), Cipher is", out)
        if m and not self.protocol:
            self.protocol = m.group(1)

    @property
    def leaf(self):
        return self.certs[0] if self.certs else None

    def describe(self):
        return "%s\nexit %d\n--- stdout:\n%s\n--- stderr:\n%s" % (
            " ".join(self.argv), self.rc, self.out[-3000:], self.err[-3000:])

    def check(self):
        assert self.rc == 0 and self.verify_code == 0, self.describe()
        return self


def s_client(proxy_port, host, port, cafile=None, servername=True, alpn=None, tls=None,
             verify_error=True, showcerts=True, input=b"", timeout=30, extra=()):
    """openssl s_client through catena (-proxy 127.0.0.1:PORT -connect host:port).

    servername: True sends host as SNI (not for an IP), a string sends that name, False
    sends none. tls: "1.2" or "1.3" pins the version. input: what stdin gives (EOF after it,
    so the client closes right after the handshake and that input)."""
    argv = ["openssl", "s_client", "-proxy", "127.0.0.1:%d" % proxy_port,
            "-connect", "%s:%d" % (host, port)]
    if servername is True:
        argv += ["-servername", host] if not _is_ip(host) else ["-noservername"]
    elif servername:
        argv += ["-servername", servername]
    else:
        argv.append("-noservername")
    if cafile is not None:
        argv += ["-CAfile", str(cafile)]
    if verify_error:
        argv.append("-verify_return_error")
    if showcerts:
        argv.append("-showcerts")
    if alpn:
        argv += ["-alpn", alpn]
    if tls:
        argv.append({"1.2": "-tls1_2", "1.3": "-tls1_3"}[tls])
    argv += list(extra)
    try:
        r = util.run(argv, timeout=timeout, input=input)
    except subprocess.TimeoutExpired:
        raise AssertionError("openssl s_client did not end within %ds: %s" % (timeout,
                                                                             " ".join(argv)))
    return SClient(argv, r.returncode, r.stdout.decode("utf-8", "replace"),
                   r.stderr.decode("utf-8", "replace"))


def s_client_exchange(proxy_port, host, port, cafile, send, expect, timeout=15.0):
    """openssl s_client through catena kept open: writes `send` on its stdin and reads its
    stdout until `expect` (bytes) shows up. Returns the output; AssertionError if it does not
    come. The client is stopped by PID afterwards."""
    argv = ["openssl", "s_client", "-proxy", "127.0.0.1:%d" % proxy_port, "-connect",
            "%s:%d" % (host, port), "-servername", host, "-CAfile", str(cafile),
            "-verify_return_error", "-quiet"]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    out = b""
    try:
        p.stdin.write(send)
        p.stdin.flush()
        deadline = time.monotonic() + timeout
        while expect not in out:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([p.stdout], [], [], min(left, 0.2))
            if r:
                b = os.read(p.stdout.fileno(), 4096)
                if not b:
                    break
                out += b
    finally:
        if p.poll() is None:
            p.terminate()
        try:
            _, err = p.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate(timeout=5)
    if expect not in out:
        raise AssertionError("%s: no %r within %.0fs; stdout %r; stderr %s" % (
            " ".join(argv), expect, timeout, out[-1000:], err.decode("utf-8", "replace")[-2000:]))
    return out


def _is_ip(host):
    for fam in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(fam, host)
            return True
        except OSError:
            pass
    return False


def client_hello_bytes(server_hostname, alpn=("http/1.1",)):
    """The bytes of a real ClientHello (Python's ssl, through memory BIOs)."""
    ctx = ssl.create_default_context()
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=server_hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    data = out.read()
    assert data[:1] == b"\x16", data[:20]
    return data


def tls_tunnel(proxy_port, host, port, cafile, server_hostname=None, timeout=30.0):
    """CONNECT through catena, then TLS over the tunnel verified against cafile: an
    http.HttpConn (use .send / .read_response with origin-form requests)."""
    c, r = http.proxy_connect(proxy_port, host, port, timeout=timeout)
    if r.status != 200:
        c.close()
        raise AssertionError("CONNECT %s:%d: %r %r" % (host, port, r, r.body[:300]))
    try:
        return c.start_tls(server_hostname or host, cafile, timeout=timeout)
    except BaseException:
        c.close()
        raise


def origin_get(conn, host, port, path, headers=(), body=None, method="GET"):
    """One origin-form request on an HttpConn (inside a tunnel); returns the Response."""
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s:%d" % (host, port)]
    lines += ["%s: %s" % kv for kv in headers]
    if body is not None:
        lines.append("Content-Length: %d" % len(body))
    conn.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
    return conn.read_response(method)


# --- origins ---------------------------------------------------------------------------

class SServer:
    """openssl s_server on 127.0.0.1 (one connection at a time), stopped by PID."""

    def __init__(self, d, cert, key, chain=None, args=(), name="s_server"):
        d = Path(d)
        d.mkdir(parents=True, exist_ok=True)
        last = ""
        for _ in range(3):
            res = util.PortReservation()
            self.port = res.port
            argv = ["openssl", "s_server", "-accept", "127.0.0.1:%d" % self.port,
                    "-cert", cert, "-key", key]
            if chain is not None:
                argv += ["-cert_chain", chain]
            argv += list(args)
            res.release()
            self.proc = util.Proc(name, argv, d)
            try:
                util.wait_until(lambda: not self.proc.alive() or util.is_listening(self.port),
                                10, "openssl s_server to listen on %d" % self.port)
            except util.WaitTimeout:
                self.proc.stop()
                raise
            if self.proc.alive():
                return
            last = self.proc.stderr() + self.proc.stdout()
            self.proc.stop()
            if "in use" not in last:
                break
        raise AssertionError("openssl s_server did not start: %s" % last[-2000:])

    def stop(self):
        return self.proc.stop(timeout=5)


class ResettingOrigin:
    """A TCP server that reads what the client sends first (the ClientHello), then closes
    with SO_LINGER 0 so the client gets a reset. Runs in a thread of the test process."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.first_bytes = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            try:
                c.settimeout(5)
                self.first_bytes.append(c.recv(16384))
            except OSError:
                pass
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()

    def stop(self):
        self._stop.set()
        self.thread.join(5)
        self.sock.close()


# --- admin endpoint --------------------------------------------------------------------

def admin_get(port, path, timeout=10.0):
    """GET path on the admin listener (origin-form); the Response."""
    util.wait_until(lambda: util.is_listening(port), 5,
                    "the admin listener to listen on 127.0.0.1:%d" % port)
    with http.HttpConn.connect(port, timeout=timeout) as c:
        c.send(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n"
                % (path, port)).encode())
        return c.read_response(timeout=timeout)


def status(port):
    """GET /status on the admin listener, parsed."""
    r = admin_get(port, "/status")
    assert r.status == 200, "GET /status: %r %r" % (r, r.body[:500])
    try:
        return json.loads(r.body)
    except ValueError:
        raise AssertionError("GET /status is not JSON: %r" % r.body[:1000])


def emulation_stats(port, keyring="default"):
    st = status(port)
    assert keyring in st.get("emulation", {}), "no emulation.%s in /status: %r" % (keyring, st)
    return st["emulation"][keyring]


ADMIN_LISTENER = {"type": "admin", "address": "127.0.0.1:0"}


def listeners_with_admin():
    """The listeners value for make_catena: the proxy (its port is set at start) and an
    admin listener (a reserved port, node.admin_port)."""
    return ({"type": "http", "address": "127.0.0.1:0"}, dict(ADMIN_LISTENER))
