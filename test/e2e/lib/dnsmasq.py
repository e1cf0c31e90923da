"""dnsmasq as the DNS server catena is pointed at (resolver.servers = ["127.0.0.1:PORT"]).

Every name in NAMES answers 127.0.0.1 for A and NOERROR without records (NODATA) for AAAA:
they are --host-record entries, not --address ones, because with --local=/test/ an --address
name would be NXDOMAIN for AAAA, which a resolver asking both families may rightly treat as
"no such name". An entry may also be "name=addr[,addr...]" (IPv4 and/or IPv6). Other names
under .test, and every name under .invalid, are NXDOMAIN; nothing is forwarded anywhere
(--no-resolv, no --server). Queries are logged to a file that Dnsmasq.queries() reads.
"""
import re
from pathlib import Path

from . import dns, util

NAMES = [
    "origin.test", "www.origin.test",  # the TLS origin
    "expired.test", "untrusted.test", "wronghost.test", "revoked.test", "other.test",
    "plain.test",       # nginx plain HTTP
    "echo.test",        # the echo origin
    "ocsp.test", "crl.test",
    "squid.test",
    "node1.test", "node2.test", "node3.test",  # catena nodes, for chains
    # certificate validation origins (lib/valorigins.py)
    "notyet.test", "selfsigned.test", "nointer.test", "ocsprevoked.test", "clientcert.test",
    "tls10.test", "weakcipher.test", "weakkey.test", "sha1.test", "badeku.test",
    "norev.test", "slowocsp.test", "escape.test", "multi.test",
    "expired2.test",
]

_QUERY = re.compile(r"query\[(\w+)\] (\S+) from (\S+)")


class Dnsmasq:
    def __init__(self, d, port, proc, names):
        self.dir = Path(d)
        self.port = port
        self.proc = proc
        self.names = [n.partition("=")[0] for n in names]
        self.log_path = self.dir / "dnsmasq.log"

    @property
    def server(self):
        """The value for catena's resolver.servers."""
        return "127.0.0.1:%d" % self.port

    def queries(self):
        """[(qtype, name, client)] in log order, e.g. ("A", "origin.test", "127.0.0.1")."""
        return [m.groups() for m in _QUERY.finditer(util.read_text(self.log_path))]

    def asked(self, name, qtype=None):
        name = name.rstrip(".").lower()
        return any(n.lower() == name and (qtype is None or t == qtype)
                   for t, n, _ in self.queries())

    def mark(self):
        """A position in the query log; pass it to queries_since()."""
        return len(self.queries())

    def queries_since(self, mark):
        return self.queries()[mark:]

    def query(self, name, qtype="A"):
        return dns.query(self.port, name, qtype)

    def stop(self):
        return self.proc.stop(timeout=5)


def start_dnsmasq(d, names=NAMES, tries=3):
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    last = ""
    for _ in range(tries):
        res = util.PortReservation(udp=True)
        port = res.port
        argv = ["/usr/sbin/dnsmasq", "--no-daemon", "--port=%d" % port,
                "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
                "--no-poll", "--pid-file=", "--conf-file=/dev/null", "--cache-size=0",
                "--log-queries", "--log-facility=%s" % (d / "dnsmasq.log"),
                "--local=/test/", "--address=/invalid/"]
        for n in names:
            name, _, addrs = n.partition("=")
            argv.append("--host-record=%s,%s" % (name, addrs or "127.0.0.1"))
        res.release()
        proc = util.Proc("dnsmasq", argv, d)

        def ready():
            if not proc.alive():
                return True
            try:
                return dns.query(port, "origin.test", timeout=0.2).addresses == ["127.0.0.1"]
            except OSError:
                return False

        try:
            util.wait_until(ready, 10, "dnsmasq to answer on port %d" % port, interval=0.05)
        except util.WaitTimeout:
            proc.stop()
            raise
        if proc.alive():
            return Dnsmasq(d, port, proc, list(names))
        proc.stop()
        last = proc.stderr() + util.read_text(d / "dnsmasq.log")
        if not util.addr_in_use(last):
            break
    raise AssertionError("dnsmasq did not start:\n%s" % last[-4000:])
