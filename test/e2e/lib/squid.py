"""Squid (Debian's /usr/sbin/squid) as a foreign peer of catena, on loopback only.

start_squid(d, connect_ports, parent_port=None, names=...) runs `squid -N -f CONF` in the
foreground, stopped by PID. Started as root, Squid switches to "proxy" (cache_effective_user)
and then must reach its hosts file and write its logs; pytest's temp dirs are 0700 and root's,
so everything Squid reads or writes (config, hosts file, pid file, cache.log, access.log, core
dumps) lives in a run dir of its own under the system temp dir, owned by that user, linked
from d as d/run (Squid.dir), and removed at stop() unless CATENA_E2E_KEEP=1.
No disk cache, no ICP/HTCP, no pinger.

DNS: Squid never asks the system's resolvers: names come from a hosts file of its own
(every test name -> 127.0.0.1) and dns_nameservers is 127.0.0.1, where the hosts file
answers first. With parent_port it forwards everything to catena at 127.0.0.1:parent_port
(cache_peer ... parent, never_direct allow all).

Squid.access_records(): its access log in Squid's native format, split into dicts
(time elapsed client code bytes method url user hierarchy type).
require_squid(): skips the calling test when Squid is not installed.
"""
import glob
import itertools
import os
import pwd
import shutil
import tempfile
from pathlib import Path

from . import util

SQUID_BIN = Path("/usr/sbin/squid")
SQUID_USER = "proxy"  # Debian's cache_effective_user
_serial = itertools.count(1)

_CONF = """\
http_port 127.0.0.1:{port}
visible_hostname {name}
{user}pid_filename {d}/squid.pid
cache_log {d}/cache.log
access_log stdio:{d}/access.log squid
cache_store_log none
coredump_dir {d}
netdb_filename none
logfile_rotate 0
cache deny all
strip_query_terms off
cache_mem 8 MB
icp_port 0
htcp_port 0
pinger_enable off
shutdown_lifetime 0 seconds
client_persistent_connections on
server_persistent_connections on
forwarded_for on
via on
hosts_file {d}/hosts
dns_nameservers 127.0.0.1
dns_retransmit_interval 1 seconds
dns_timeout 2 seconds
acl localnet src 127.0.0.0/8
acl SSL_ports port {ssl_ports}
acl Safe_ports port {safe_ports}
acl CONNECT method CONNECT
http_access deny !Safe_ports
http_access deny CONNECT !SSL_ports
http_access allow localnet
http_access deny all
{peer}"""

_PEER = """\
cache_peer 127.0.0.1 parent {port} 0 no-query no-digest default name=catena
never_direct allow all
"""

ACCESS_FIELDS = ("time", "elapsed", "client", "code", "bytes", "method", "url", "user",
                 "hierarchy", "type")


def require_squid():
    import pytest
    if not os.access(str(SQUID_BIN), os.X_OK):
        pytest.skip("Squid is not installed (%s missing: apt-get install squid)" % SQUID_BIN)


class Squid:
    def __init__(self, d, port, proc, service):
        self.dir = Path(d)
        self.port = port
        self.proc = proc
        self.service = service

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def access_records(self):
        out = []
        for line in util.read_text(self.dir / "access.log").splitlines():
            parts = line.split()
            if len(parts) >= len(ACCESS_FIELDS):
                rec = dict(zip(ACCESS_FIELDS, parts))
                rec["_line"] = line
                out.append(rec)
        return out

    def wait_access(self, pred, what, timeout=10.0):
        """The first access-log record for which pred(record) is true."""
        def find():
            for r in self.access_records():
                if pred(r):
                    return r
            return None
        try:
            return util.wait_until(find, timeout, "Squid access-log record: " + what)
        except util.WaitTimeout as e:
            raise AssertionError("%s\nSquid access log now:\n%s" % (
                e, util.read_text(self.dir / "access.log")[-3000:]))

    def cache_log(self):
        return util.read_text(self.dir / "cache.log")

    def describe(self):
        return "%s\n--- cache.log:\n%s\n--- stderr:\n%s" % (
            self.proc.describe(), self.cache_log()[-3000:], self.proc.stderr()[-2000:])

    def stop(self):
        out = self.proc.stop(timeout=15)
        _remove_shm(self.service)
        if os.environ.get("CATENA_E2E_KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
        return out


def _remove_shm(service):
    """Squid leaves its segments behind when it dies abnormally."""
    for p in glob.glob("/dev/shm/%s-*" % service):
        try:
            os.unlink(p)
        except OSError:
            pass


def start_squid(d, connect_ports, http_ports=(), parent_port=None, names=(), name="squid-e2e",
                tries=3):
    """Starts Squid listening on a reserved 127.0.0.1 port; returns a Squid.

    connect_ports: ports CONNECT may reach; http_ports: further ports for plain requests
    (the CONNECT ports are allowed too). names: host names its hosts file maps to 127.0.0.1.
    parent_port: forward everything to catena on that port."""
    require_squid()
    link = Path(d) / "run"
    link.parent.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix="catena-e2e-squid-"))
    link.symlink_to(d)
    user = ""
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam(SQUID_USER)
        except KeyError:
            pw = pwd.getpwnam("nobody")
        user = "cache_effective_user %s\n" % pw.pw_name
        os.chown(d, pw.pw_uid, pw.pw_gid)
    os.chmod(d, 0o755)
    (d / "hosts").write_text("".join("127.0.0.1 %s\n" % n for n in names))
    ports = sorted(set(int(p) for p in connect_ports))
    safe = sorted(set(ports) | set(int(p) for p in http_ports))
    peer = _PEER.format(port=parent_port) if parent_port else ""
    # Squid names its shared-memory segments (/dev/shm/<service>-cf__*.shm) after the
    # service name: one of our own per instance, so instances never share or collide.
    service = "catenae2e%d%d" % (os.getpid(), next(_serial))
    last = ""
    for _ in range(tries):
        res = util.PortReservation()
        conf = d / "squid.conf"
        conf.write_text(_CONF.format(port=res.port, name=name, d=d, user=user,
                                     ssl_ports=" ".join(map(str, ports)),
                                     safe_ports=" ".join(map(str, safe)), peer=peer))
        check = util.run([SQUID_BIN, "-n", service, "-k", "parse", "-f", conf], timeout=30)
        if check.returncode != 0:
            res.release()
            raise AssertionError("squid -k parse refused %s:\n%s%s" % (
                conf, check.stdout.decode("utf-8", "replace"),
                check.stderr.decode("utf-8", "replace")[-3000:]))
        port = res.release()
        proc = util.Proc("squid", [SQUID_BIN, "-n", service, "-N", "-f", conf], d)
        try:
            util.wait_until(lambda: not proc.alive() or util.is_listening(port), 20,
                            "squid to listen on 127.0.0.1:%d" % port)
        except util.WaitTimeout:
            proc.stop(timeout=5)
            _remove_shm(service)
            raise AssertionError("squid did not listen within 20 s:\n%s" % (
                util.read_text(d / "cache.log")[-3000:]))
        if proc.alive():
            s = Squid(d, port, proc, service)
            s.link = link
            return s
        last = util.read_text(d / "cache.log") + proc.stderr()
        proc.stop()
        _remove_shm(service)
        if not util.addr_in_use(last) and "Address already in use" not in last:
            break
    if os.environ.get("CATENA_E2E_KEEP") != "1":
        shutil.rmtree(d, ignore_errors=True)
    raise AssertionError("squid did not start:\n%s" % last[-4000:])
