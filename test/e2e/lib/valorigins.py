"""Origins for certificate validation: one nginx serving a certificate case per port, the
loopback OCSP responders the cases point at, and a counting TCP relay.

Leaves (issued from the session PKI after the main nginx started, so it does not serve them;
names resolve through dnsmasq, see dnsmasq.NAMES):
  origin.test       the standard valid leaf (OCSP refused, CRL good)
  expired.test      standard; valid 2020-2021
  expired2.test     another expired leaf (the same dates): one error, another host
  notyet.test       valid from 2040 to 2041
  selfsigned.test   a self-signed leaf
  untrusted.test    standard; issued by the untrusted root
  nointer.test      issued by the intermediate, served without it; AIA caIssuers names where
                    the intermediate is (http://crl.test:PORT/intermediate.crt, DER)
  wronghost.test    standard; a certificate for other.test
  revoked.test      standard; revoked, OCSP URL refused (a reserved port), CRL served: the CRL says
  ocsprevoked.test  revoked; AIA OCSP to the session responder (up), no CRL: OCSP says
  norev.test        good; OCSP URL refused, no CRL: no revocation source answers
  slowocsp.test     good; OCSP responder answering after 5 s, no CRL
  clientcert.test   valid; nginx asks for a client certificate (ssl_verify_client optional_no_ca)
  tls10.test        valid; nginx speaks TLS 1.0 only (OpenSSL at security level 0)
  weakcipher.test   valid RSA leaf; nginx offers TLS 1.2 with AES128-SHA only (not AEAD)
  weakkey.test      RSA-1024 leaf
  sha1.test         leaf signed with SHA-1 by the intermediate
  badeku.test       leaf with extendedKeyUsage clientAuth only
  escape.test       issued by an untrusted root whose CN is HTML: <b>Evil & "Co"</b>
  multi.test        several errors at once: untrusted root, expired, RSA-1024, for other.test
  staplegood.test   good; OCSP URL refused, no CRL; nginx staples a good response (made once
                    from the PKI's index by ocsp.make_response, ssl_stapling_file)
  staplerevoked.test  revoked; OCSP URL refused, no CRL; nginx staples the revoked response
  staplebad.test    good; OCSP URL refused, no CRL; the staple is signed by a stranger
  staple13.test     as staplegood.test, but nginx speaks TLS 1.3 only (a staple there is
                    encrypted: catena cannot read it)
The staple* names are not in dnsmasq.NAMES: a node resolves them through hosts_file() (its
resolver.hosts_file), 127.0.0.1 each.

nginx runs with OPENSSL_CONF naming a config at security level 0 and MinProtocol TLSv1, so it
loads the weak certificates and speaks TLS 1.0 where asked; every other server keeps TLS 1.2
and 1.3 with nginx's default ciphers.

Use (fixture `val_origins` in conftest.py):
    vo.port("expired.test"), vo.url("expired.test", "/small.txt"), vo.leaf("expired.test"),
    vo.connect_ports(), vo.ocsp (the responder: .requests()), vo.ocsp_slow, vo.escape_ca_cn
port() and leaf() skip the calling test (pytest.skip, with the reason) for an origin this
machine cannot make: sha1.test when openssl cannot sign with SHA-1, tls10.test when OpenSSL
does not speak TLS 1.0 even at security level 0.
ConnCounter(port): a relay on a free loopback port to 127.0.0.1:port that counts the accepted
connections and those whose first byte is a TLS handshake record (0x16): one per handshake
attempt (the client's or a probe's).
"""
import os
import socket
import threading
from pathlib import Path

from . import ocsp as ocsp_mod, pki as pki_mod, util

ESCAPE_CA_CN = '<b>Evil & "Co"</b>'

_SEC0_CNF = """\
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
CipherString = DEFAULT@SECLEVEL=0
MinProtocol = TLSv1
"""

_NGINX_CONF = """\
{user}
worker_processes 1;
error_log {d}/error.log notice;
pid {d}/nginx.pid;

events {{
    worker_connections 1024;
}}

http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    default_type application/octet-stream;
    server_tokens off;
    keepalive_timeout 65s;

{servers}
}}
"""

_SERVER = """\
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {name};
        root {root};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols {protocols};
{extra}        location = /hello {{ return 200 "hello from {name} {port}\\n"; }}
    }}
"""


class Site:
    """One origin: its name (SNI, DNS), the leaf it serves and how nginx speaks."""

    def __init__(self, name, leaf, send_chain=True, protocols="TLSv1.2 TLSv1.3", ciphers=None,
                 verify_client=False, staple=None):
        self.name, self.leaf = name, leaf
        self.send_chain = send_chain
        self.protocols, self.ciphers, self.verify_client = protocols, ciphers, verify_client
        self.staple = staple  # a DER OCSP response nginx staples, or None
        self.port = None

    def server_block(self, root):
        extra = ""
        if self.ciphers:
            extra += "        ssl_ciphers %s;\n" % self.ciphers
        if self.verify_client:
            extra += "        ssl_verify_client optional_no_ca;\n"
        if self.staple:
            extra += "        ssl_stapling on;\n        ssl_stapling_file %s;\n" % self.staple
        return _SERVER.format(port=self.port, name=self.name, root=root,
                              cert=self.leaf.chain if self.send_chain else self.leaf.cert,
                              key=self.leaf.key, protocols=self.protocols, extra=extra)


def _escape_ca(d):
    """An extra self-signed root whose CN is HTML, made like the PKI's own roots."""
    ca = pki_mod._Ca(Path(d) / "escape-ca",
                    "/O=catena e2e/CN=%s" % ESCAPE_CA_CN.replace("/", "\\/"), "rsa:2048")
    ca.prepare()
    csr = ca.dir / "csr.pem"
    pki_mod._openssl(["req", "-new", "-config", ca.cnf, "-key", ca.key, "-subj", ca.subject,
                      "-out", csr])
    pki_mod._openssl(["ca", "-config", ca.cnf, "-batch", "-notext", "-selfsign", "-in", csr,
                      "-out", ca.cert, "-keyfile", ca.key, "-extensions", "v3_root",
                      "-startdate", pki_mod.CA_START, "-enddate", pki_mod.CA_END])
    return ca


def _issue_from(pki, ca, name):
    """A leaf for name issued by ca (a pki._Ca outside the PKI), leaf + ca as chain."""
    d = pki.dir / "leaves" / name
    d.mkdir(parents=True, exist_ok=True)
    leaf = pki_mod.Leaf(name, d)
    pki_mod._genkey(leaf.key, "ec")
    csr = d / "csr.pem"
    pki_mod._openssl(["req", "-new", "-config", ca.cnf, "-key", leaf.key,
                      "-subj", "/O=catena e2e origin/CN=%s" % name, "-out", csr])
    ext = d / "ext.cnf"
    ext.write_text("[ leaf ]\nbasicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\n"
                   "extendedKeyUsage = serverAuth\nsubjectAltName = DNS:%s\n" % name)
    ca.sign(csr, leaf.cert, ext, "leaf", *pki._default_window())
    leaf.chain.write_text(leaf.cert.read_text() + ca.cert.read_text())
    return leaf


class ValOrigins:
    def __init__(self, d, pki, files):
        self.dir = Path(d)
        self.pki, self.files = pki, files
        self.sites = {}
        self.proc = None
        self.ocsp = self.ocsp_slow = None
        self.dead = None
        self.escape_ca_cn = ESCAPE_CA_CN
        self.unavailable = {}  # name: why this machine cannot make that origin
        self._tls10 = None

    # --- setup ------------------------------------------------------------------

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        pki = self.pki
        # A port held bound but not listening: connections to it are refused at once.
        self.dead = util.PortReservation()
        dead_url = "http://ocsp.test:%d/" % self.dead.port
        common = dict(index=pki.ocsp_index, rsigner=pki.ocsp_cert, rkey=pki.ocsp_key,
                      ca=pki.inter_cert)
        self.ocsp = ocsp_mod.OcspResponder(self.dir / "ocsp", **common).start()
        self.ocsp_slow = ocsp_mod.OcspResponder(self.dir / "ocsp-slow", delay=5.0,
                                                **common).start()
        up_url = "http://ocsp.test:%d/" % self.ocsp.port
        slow_url = "http://ocsp.test:%d/" % self.ocsp_slow.port

        # Where a missing intermediate could be fetched (the main nginx serves crl_dir).
        der = pki_mod.pem_to_der(pki.inter_cert.read_text())
        (pki.crl_dir / "intermediate.crt").write_bytes(der)
        ca_issuers = pki.crl_url.rsplit("/", 1)[0] + "/intermediate.crt"
        issue = pki.issue
        sites = [
            Site("origin.test", pki.leaf("origin.test")),
            Site("expired.test", pki.leaf("expired.test")),
            Site("expired2.test", issue("expired2.test", not_before="20200101000000Z",
                                        not_after="20210101000000Z")),
            Site("notyet.test", issue("notyet.test", not_before="20400101000000Z",
                                      not_after="20410101000000Z")),
            Site("selfsigned.test", issue("selfsigned.test", issuer="self")),
            Site("untrusted.test", pki.leaf("untrusted.test")),
            Site("nointer.test", issue("nointer.test", ca_issuers_url=ca_issuers),
                 send_chain=False),
            Site("wronghost.test", pki.leaf("wronghost.test")),
            Site("revoked.test", pki.leaf("revoked.test")),
            Site("ocsprevoked.test", issue("ocsprevoked.test", ocsp_url=up_url, crl_url="")),
            Site("norev.test", issue("norev.test", ocsp_url=dead_url, crl_url="")),
            Site("slowocsp.test", issue("slowocsp.test", ocsp_url=slow_url, crl_url="")),
            Site("clientcert.test", issue("clientcert.test"), verify_client=True),
            Site("tls10.test", issue("tls10.test"), protocols="TLSv1",
                 ciphers="DEFAULT:@SECLEVEL=0"),
            Site("weakcipher.test", issue("weakcipher.test", key="rsa:2048"),
                 protocols="TLSv1.2", ciphers="AES128-SHA"),
            Site("weakkey.test", issue("weakkey.test", key="rsa:1024")),
            self._optional("sha1.test", lambda: issue("sha1.test", md="sha1"),
                           "the local OpenSSL cannot sign a certificate with SHA-1"),
            Site("badeku.test", issue("badeku.test", eku="clientAuth")),
            Site("escape.test", _issue_from(pki, _escape_ca(self.dir), "escape.test")),
            Site("multi.test", issue("multi.test", issuer="untrusted", key="rsa:1024",
                                     sans=["DNS:other.test"], not_before="20200101000000Z",
                                     not_after="20210101000000Z")),
        ]
        pki.revoke("ocsprevoked.test")
        sites += self._stapling_sites(dead_url)
        self.sites = {s.name: s for s in sites if s is not None}
        self._start_nginx()
        return self

    def _stapling_sites(self, dead_url):
        """Origins that staple an OCSP response while their responder is unreachable."""
        pki, d = self.pki, self.dir / "staples"
        d.mkdir(parents=True, exist_ok=True)

        def leaf(name):
            return pki.issue(name, ocsp_url=dead_url, crl_url="")
        good, revoked, bad, tls13 = (leaf("staplegood.test"), leaf("staplerevoked.test"),
                                     leaf("staplebad.test"), leaf("staple13.test"))
        pki.revoke("staplerevoked.test")
        # A signer the intermediate never delegated to: a self-signed certificate.
        rogue_key, rogue = d / "rogue-key.pem", d / "rogue.pem"
        pki_mod._genkey(rogue_key, "ec")
        pki_mod._openssl(["req", "-x509", "-new", "-key", rogue_key, "-subj",
                          "/O=catena e2e/CN=catena e2e rogue OCSP signer", "-days", "30",
                          "-out", rogue])
        make = ocsp_mod.make_response
        return [
            Site("staplegood.test", good, staple=make(d / "good.der", pki, good.cert)),
            Site("staplerevoked.test", revoked,
                 staple=make(d / "revoked.der", pki, revoked.cert)),
            Site("staplebad.test", bad, staple=make(d / "bad.der", pki, bad.cert,
                                                    rsigner=rogue, rkey=rogue_key)),
            Site("staple13.test", tls13, protocols="TLSv1.3",
                 staple=make(d / "tls13.der", pki, tls13.cert)),
        ]

    def hosts_file(self):
        """A hosts(5) file naming the origins dnsmasq does not know (127.0.0.1 each)."""
        from . import dnsmasq
        path = self.dir / "hosts"
        names = sorted(n for n in self.sites if n not in dnsmasq.NAMES)
        path.write_text("".join("127.0.0.1 %s\n" % n for n in names))
        return path

    def _optional(self, name, make_leaf, why):
        """A Site for a leaf the local OpenSSL may refuse to make (then None, and the
        reason kept in .unavailable for the tests to skip with)."""
        try:
            return Site(name, make_leaf())
        except pki_mod.PkiError as e:
            self.unavailable[name] = "%s: %s" % (why, str(e).splitlines()[0][:300])
            return None

    def require(self, name):
        """Skips the calling test when this origin cannot be made on this machine."""
        import pytest
        if name == "tls10.test" and not self.speaks_tls10():
            self.unavailable[name] = "the local OpenSSL does not speak TLS 1.0 even at " \
                                     "security level 0 (openssl s_client -tls1 to nginx failed)"
        if name in self.unavailable:
            pytest.skip(self.unavailable[name])

    def speaks_tls10(self):
        """Whether the TLS 1.0 origin answers a TLS 1.0 client (asked once)."""
        if self._tls10 is None:
            r = util.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.sites[
                "tls10.test"].port, "-servername", "tls10.test", "-tls1", "-cipher",
                "DEFAULT:@SECLEVEL=0"], timeout=20, input=b"",
                env=dict(os.environ, OPENSSL_CONF=str(self.dir / "nginx" /
                                                      "openssl-seclevel0.cnf")))
            self._tls10 = r.returncode == 0 and b"TLSv1\n" in r.stdout
        return self._tls10

    def _start_nginx(self, tries=3):
        d = self.dir / "nginx"
        for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        sec0 = d / "openssl-seclevel0.cnf"
        sec0.write_text(_SEC0_CNF)
        env = dict(os.environ, OPENSSL_CONF=str(sec0))
        last = ""
        for _ in range(tries):
            res = {name: util.PortReservation() for name in self.sites}
            for name, s in self.sites.items():
                s.port = res[name].port
            servers = "".join(s.server_block(self.files.root) for s in self.sites.values())
            conf = d / "nginx.conf"
            conf.write_text(_NGINX_CONF.format(user="user root;" if os.geteuid() == 0 else "",
                                               d=d, servers=servers))
            for r in res.values():
                r.release()
            proc = util.Proc("nginx", ["/usr/sbin/nginx", "-p", d, "-c", conf, "-e",
                                       d / "error.log", "-g", "daemon off;"], d, env=env)
            ports = self.ports()
            try:
                util.wait_until(lambda: not proc.alive() or
                                all(util.is_listening(p) for p in ports),
                                10, "validation nginx to listen on %s" % ports)
            except util.WaitTimeout:
                proc.stop()
                raise
            if proc.alive():
                self.proc = proc
                return
            proc.stop()
            last = util.read_text(d / "error.log") + proc.stderr()
            if not util.addr_in_use(last):
                break
        raise AssertionError("validation nginx did not start:\n%s" % last[-4000:])

    def stop(self):
        for p in (self.proc, self.ocsp, self.ocsp_slow):
            if p is not None:
                p.stop()
        if self.dead is not None:
            self.dead.release()

    # --- lookups ------------------------------------------------------------------

    def port(self, name):
        self.require(name)
        return self.sites[name].port

    def leaf(self, name):
        self.require(name)
        return self.sites[name].leaf

    def url(self, name, path="/small.txt"):
        return "https://%s:%d%s" % (name, self.port(name), path)

    def ports(self):
        return [s.port for s in self.sites.values() if s.port is not None]

    def connect_ports(self):
        return sorted(self.ports())


class ConnCounter:
    """A TCP relay on 127.0.0.1 (its own port) to 127.0.0.1:target, in threads of the test
    process. accepted: connections taken; hellos: those whose first byte was 0x16 (a TLS
    handshake record: one per handshake attempt, a probe's or a client's)."""

    def __init__(self, target):
        self.target = target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.hellos = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._socks = []
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
            with self._lock:
                self.accepted += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            u = socket.create_connection(("127.0.0.1", self.target), timeout=5)
        except OSError:
            c.close()
            return
        with self._lock:
            self._socks += [c, u]
        first = [True]

        def pipe(a, b, count):
            try:
                a.settimeout(60)
                while True:
                    data = a.recv(65536)
                    if not data:
                        break
                    if count and first[0]:
                        first[0] = False
                        if data[:1] == b"\x16":
                            with self._lock:
                                self.hellos += 1
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        t = threading.Thread(target=pipe, args=(u, c, False), daemon=True)
        t.start()
        pipe(c, u, True)
        t.join(60)
        c.close()
        u.close()

    def counts(self):
        with self._lock:
            return self.accepted, self.hellos

    def stop(self):
        self._stop.set()
        self.thread.join(5)
        self.sock.close()
        with self._lock:
            for s in self._socks:
                try:
                    s.close()
                except OSError:
                    pass
