"""Origins: the generated document root, nginx (plain and TLS) and the Python echo origin.

Document root (Files): "100MiB" and "10MiB" (random, made once per session), "small.txt",
"index.html"; Files.sha256[name] and Files.size[name].

nginx (Nginx): one master, worker_processes 1, listening on 127.0.0.1 only:
  http_port               plain HTTP origin (server name plain.test), the document root
  tls_ports[name]         one TLS server per certificate of the PKI (origin.test, expired.test,
                          untrusted.test, wronghost.test, revoked.test), same document root;
                          each sends leaf + intermediate
  crl_port                the CRL distribution point (http://crl.test:PORT/intermediate.crl)
  every server also answers GET /hello with "hello from <server_name> <port>".

Echo (Echo): see echo_server.py for its routes; .port. start_echo(args=["--cert", ...]) runs
the same origin over TLS.
"""
import hashlib
import os
import select
import sys
import time
from pathlib import Path

from . import util

MiB = 1024 * 1024


class Files:
    def __init__(self, root):
        self.root = Path(root)
        self.sha256 = {}
        self.size = {}

    def path(self, name):
        return self.root / name


def make_files(root, big=100 * MiB, medium=10 * MiB):
    """Writes the document root; random files are made with os.urandom in 1 MiB chunks."""
    f = Files(root)
    f.root.mkdir(parents=True, exist_ok=True)
    for name, size in (("100MiB", big), ("10MiB", medium)):
        h = hashlib.sha256()
        with open(f.root / name, "wb") as out:
            left = size
            while left:
                b = os.urandom(min(left, MiB))
                h.update(b)
                out.write(b)
                left -= len(b)
        f.sha256[name], f.size[name] = h.hexdigest(), size
    for name, data in (("small.txt", b"hello from the catena e2e origin\n"),
                       ("index.html", b"<!doctype html><title>origin</title><p>origin index</p>\n")):
        (f.root / name).write_bytes(data)
        f.sha256[name], f.size[name] = hashlib.sha256(data).hexdigest(), len(data)
    return f


_NGINX_CONF = """\
{user}
worker_processes 1;
worker_rlimit_nofile {nofile};
error_log {d}/error.log notice;
pid {d}/nginx.pid;

events {{
    worker_connections 4096;
}}

http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    server_tokens off;
    keepalive_requests 1000;
    keepalive_timeout 65s;
    ssl_protocols TLSv1.2 TLSv1.3;

{servers}
}}
"""

_SERVER = """\
    server {{
        listen 127.0.0.1:{port}{ssl};
        server_name {name};
        root {root};
{tls}        location = /hello {{ return 200 "hello from {name} {port}\\n"; }}
    }}
"""


class Nginx:
    def __init__(self, d, files, pki, http_port, tls_ports, crl_port, proc):
        self.dir = Path(d)
        self.files = files
        self.pki = pki
        self.http_port = http_port
        self.tls_ports = tls_ports
        self.crl_port = crl_port
        self.proc = proc

    @property
    def origin_port(self):
        return self.tls_ports["origin.test"]

    def ports(self):
        return [self.http_port, self.crl_port] + list(self.tls_ports.values())

    def error_log(self):
        return util.read_text(self.dir / "error.log")

    def stop(self):
        return self.proc.stop(timeout=10)


def start_nginx(d, files, pki, crl_reservation=None, tries=3):
    """Starts nginx; picks fresh ports and retries if a port was taken meanwhile."""
    d = Path(d)
    for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    crl_port = pki.crl_port
    last = ""
    for attempt in range(tries):
        res = {"http": util.PortReservation()}
        for name in pki.leaves():
            res[name] = util.PortReservation()
        servers = _SERVER.format(port=res["http"].port, ssl="", name="plain.test",
                                 root=files.root, tls="")
        tls_ports = {}
        for name, leaf in pki.leaves().items():
            tls = "        ssl_certificate %s;\n        ssl_certificate_key %s;\n" % (
                leaf.chain, leaf.key)
            servers += _SERVER.format(port=res[name].port, ssl=" ssl", name=name,
                                      root=files.root, tls=tls)
            tls_ports[name] = res[name].port
        servers += _SERVER.format(port=crl_port, ssl="", name="crl.test", root=pki.crl_dir, tls="")
        nofile = 16384
        conf = _NGINX_CONF.format(user="user root;" if os.geteuid() == 0 else "",
                                  nofile=nofile, d=d, servers=servers)
        conf_path = d / "nginx.conf"
        conf_path.write_text(conf)
        http_port = res["http"].port
        for r in res.values():
            r.release()
        if crl_reservation is not None and attempt == 0:
            crl_reservation.release()
        proc = util.Proc("nginx", ["/usr/sbin/nginx", "-p", d, "-c", conf_path, "-e",
                                   d / "error.log", "-g", "daemon off;"], d)
        ports = [http_port, crl_port] + list(tls_ports.values())
        try:
            util.wait_until(lambda: not proc.alive() or all(util.is_listening(p) for p in ports),
                            10, "nginx to listen on %s" % ports)
        except util.WaitTimeout:
            proc.stop()
            raise
        if proc.alive():
            return Nginx(d, files, pki, http_port, tls_ports, crl_port, proc)
        proc.stop()
        last = util.read_text(d / "error.log") + proc.stderr()
        if not util.addr_in_use(last):
            break
    raise AssertionError("nginx did not start:\n%s" % last[-4000:])


class Echo:
    def __init__(self, proc, port):
        self.proc = proc
        self.port = port

    def stop(self):
        return self.proc.stop(timeout=5)


def start_echo(d, name="echo", args=()):
    """Starts echo_server.py; it binds port 0 itself and reports it (no bind race).
    args: extra arguments, e.g. ["--cert", chain, "--key", key] for the TLS echo origin."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    rd, wr = os.pipe()
    out = os.fdopen(wr, "wb")
    try:
        proc = util.Proc(name, [sys.executable, Path(__file__).with_name("echo_server.py")] +
                         [str(a) for a in args], d, stdout=out)
    finally:
        out.close()
    buf = b""
    deadline = time.monotonic() + 10
    try:
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not proc.alive():
                proc.stop()
                raise AssertionError("echo origin did not report its port: %r %s" %
                                     (buf, proc.stderr()[-2000:]))
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
        proc.stop()
        raise AssertionError("echo origin said %r; stderr: %s" % (line, proc.stderr()[-2000:]))
    port = int(line.split()[1])
    util.wait_until(lambda: util.is_listening(port), 5, "echo origin to listen")
    return Echo(proc, port)
