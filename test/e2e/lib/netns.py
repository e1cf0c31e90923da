"""Network namespaces for the tests that need more than loopback (transparent mode).

Everything happens inside namespaces made here: links, addresses, routes and iptables rules
are only ever changed with `ip -n NS ...` / `ip netns exec NS iptables ...`; the root
namespace is never touched (veth pairs are created with both ends already inside their
namespaces).

Names are PREFIX + "<pid>-<hex>-<n>-<role>" (at most 40 characters): unique per run, and a
crashed run's leftovers are recognised by the prefix and a pid that no longer runs;
clean_stale() (called by Lab()) stops the processes still inside them, by PID, and deletes
them.

    reason = netns.unavailable()          # None, or why namespaces cannot be used here
    lab = netns.Lab()                     # lab.destroy() at the end (a finalizer)
    gw, cli = lab.netns("gw"), lab.netns("cli")
    lab.veth(gw, "gw0", "10.254.0.1/24", cli, "cli0", "10.254.0.2/24")
    cli.ip("route", "add", "default", "via", "10.254.0.1")
    gw.add_addresses(["10.254.1.10/32"])  # a dummy interface (lo if dummies are missing)
    gw.iptables("-t", "nat", "-S")        # runs inside gw; CompletedProcess (text)
    p = gw.start("catena", [binary, "-c", conf], log_dir)   # util.Proc, stopped by PID
    gw.wait_listening(3129, proc=p)

`ip netns exec` execs the command after entering the namespace, so a Proc's PID is the
program's own: it is stopped by that PID (lab.destroy() stops whatever is left).
"""
import atexit
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

from . import util

PREFIX = "cte2e-"
IP = "/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else "ip"

_labs = []


class NetnsError(AssertionError):
    pass


def _run(argv, timeout=30, check=True, input=None, env=None):
    """Runs argv (text output); NetnsError with the output when check and it fails."""
    argv = [str(a) for a in argv]
    try:
        r = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=env, check=False, text=True, errors="replace")
    except subprocess.TimeoutExpired:
        raise NetnsError("%s did not end within %ds" % (" ".join(argv), timeout))
    if check and r.returncode != 0:
        raise NetnsError("%s: exit %d\n%s%s" % (" ".join(argv), r.returncode, r.stdout[-2000:],
                                                r.stderr[-2000:]))
    return r


def tool(name):
    """The path of a program (also looked for in the sbin directories), or None."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/local/sbin"
    return shutil.which(name, path=path)


def list_netns():
    """Names of the namespaces `ip netns` knows (mounted under /run/netns)."""
    r = _run([IP, "netns", "list"], check=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_pid(name):
    """The pid of the run that made namespace `name` (from its name), or None."""
    if not name.startswith(PREFIX):
        return None
    head = name[len(PREFIX):].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _delete_ns(name):
    """Stops the processes still inside namespace `name` (by PID) and deletes it."""
    r = _run([IP, "netns", "pids", name], check=False)
    pids = [int(x) for x in r.stdout.split() if x.isdigit()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    for pid in pids:
        while _pid_alive(pid) and time.monotonic() < deadline:
            try:
                # Our own child: reap it; anyone else's: wait for it to go.
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
            except ChildProcessError:
                pass
            time.sleep(0.02)
    return _run([IP, "netns", "delete", name], check=False).returncode == 0


def clean_stale():
    """Deletes namespaces left by earlier runs of this suite whose process is gone.
    Returns their names."""
    out = []
    for name in list_netns():
        pid = _owner_pid(name)
        if pid is not None and pid != os.getpid() and not _pid_alive(pid):
            _delete_ns(name)
            out.append(name)
    return out


def unavailable():
    """None when namespaces, veth pairs and iptables can be used here; else the reason."""
    if os.geteuid() != 0:
        return "network namespaces need root (running as uid %d)" % os.geteuid()
    for prog in ("ip", "iptables"):
        if tool(prog) is None:
            return "%s not found (Debian: apt-get install iproute2 iptables)" % prog
    name = "%s%d-%s-probe" % (PREFIX, os.getpid(), secrets.token_hex(3))
    r = _run([IP, "netns", "add", name], check=False)
    if r.returncode != 0:
        return "cannot create a network namespace (ip netns add): %s" % r.stderr.strip()
    try:
        r = _run([IP, "-n", name, "link", "add", "p0", "type", "veth", "peer", "name", "p1"],
                 check=False)
        if r.returncode != 0:
            return "cannot create a veth pair in a namespace: %s" % r.stderr.strip()
        r = _run([IP, "netns", "exec", name, tool("iptables"), "-t", "nat", "-S"], check=False)
        if r.returncode != 0:
            return "iptables does not work inside a namespace: %s" % r.stderr.strip()
    finally:
        _delete_ns(name)
    return None


class Netns:
    """One namespace of a Lab. Commands run inside it; processes started in it are kept
    (procs) and stopped by PID."""

    def __init__(self, name, role):
        self.name, self.role = name, role
        self.procs = []
        self.has_dummy = None

    def __repr__(self):
        return "Netns(%s)" % self.name

    def exec_argv(self, argv):
        return [IP, "netns", "exec", self.name] + [str(a) for a in argv]

    def run(self, argv, timeout=30, check=True, input=None, env=None):
        """argv run inside the namespace; a CompletedProcess with text output."""
        return _run(self.exec_argv(argv), timeout=timeout, check=check, input=input, env=env)

    def run_bytes(self, argv, timeout=30, input=None, env=None):
        """argv run inside the namespace; a CompletedProcess with bytes output, any status."""
        return util.run(self.exec_argv(argv), timeout=timeout, input=input, env=env)

    def ip(self, *args, check=True):
        return _run([IP, "-n", self.name] + list(args), check=check)

    def iptables(self, *args, v6=False, check=True):
        return self.run([tool("ip6tables" if v6 else "iptables"), "-w"] + list(args),
                        check=check)

    def iptables_rules(self, table, v6=False):
        """`iptables -t TABLE -S` inside the namespace, as a list of lines."""
        return self.iptables("-t", table, "-S", v6=v6).stdout.splitlines()

    def tproxy_unavailable(self, v6=False):
        """None when TPROXY can be used in this namespace for the family (the mangle table,
        the TPROXY target and the socket match accept a rule, a socket takes
        IP_TRANSPARENT / IPV6_TRANSPARENT); else the reason. Leaves nothing behind."""
        fam = "IPv6" if v6 else "IPv4"
        if v6 and not os.path.isdir("/proc/sys/net/ipv6"):
            return "the kernel has no IPv6 (/proc/sys/net/ipv6 missing)"
        if v6 and tool("ip6tables") is None:
            return "ip6tables not found (Debian: apt-get install iptables)"
        chain = "CTE2E_TPROXY_PROBE"
        why = None
        r = self.iptables("-t", "mangle", "-N", chain, v6=v6, check=False)
        if r.returncode != 0:
            return "%s mangle table unavailable: %s" % (fam, r.stderr.strip())
        try:
            for rule in (["-p", "tcp", "-m", "socket", "--transparent", "-j", "ACCEPT"],
                         ["-p", "tcp", "-j", "TPROXY", "--on-port", "1",
                          "--tproxy-mark", "0x1/0x1"]):
                r = self.iptables("-t", "mangle", "-A", chain, *rule, v6=v6, check=False)
                if r.returncode != 0:
                    why = "%s rule %r refused (kernel without xt_TPROXY / xt_socket?): %s" % (
                        fam, " ".join(rule), r.stderr.strip())
                    break
        finally:
            self.iptables("-t", "mangle", "-F", chain, v6=v6, check=False)
            self.iptables("-t", "mangle", "-X", chain, v6=v6, check=False)
        if why:
            return why
        # IP_TRANSPARENT (19) / IPV6_TRANSPARENT (75) need CAP_NET_ADMIN in the namespace.
        code = ("import socket\ns = socket.socket(socket.AF_INET%s)\n"
                "s.setsockopt(socket.%s, %d, 1)\n" % (("6", "IPPROTO_IPV6", 75) if v6 else
                                                     ("", "SOL_IP", 19)))
        r = self.run([sys.executable, "-c", code], check=False)
        if r.returncode != 0:
            return "%s transparent sockets refused: %s" % (fam, r.stderr.strip()[-500:])
        return None

    def up(self, ifname):
        self.ip("link", "set", ifname, "up")

    def add_addresses(self, cidrs, ifname="org0"):
        """Adds addresses on a dummy interface (made on first use), or on lo where this
        kernel has no dummy interfaces. IPv6 ones skip duplicate address detection."""
        if self.has_dummy is None:
            self.has_dummy = self.ip("link", "add", ifname, "type", "dummy",
                                     check=False).returncode == 0
            self.up(ifname if self.has_dummy else "lo")
        dev = ifname if self.has_dummy else "lo"
        for c in cidrs:
            extra = ["nodad"] if ":" in c else []
            self.ip("addr", "add", c, "dev", dev, *extra)
        return dev

    def start(self, name, argv, log_dir, env=None, stdout=None):
        """A util.Proc running argv inside the namespace (its PID is the program's)."""
        p = util.Proc(name, self.exec_argv(argv), log_dir, env=env, stdout=stdout)
        self.procs.append(p)
        return p

    def listening(self, port, proc=None):
        """Whether a TCP socket in this namespace listens on port; read from the /proc of a
        process inside it when given (no process spawned), else with `cat` inside it."""
        texts = []
        if proc is not None and proc.alive():
            for f in ("tcp", "tcp6"):
                texts.append(util.read_text("/proc/%d/net/%s" % (proc.pid, f)))
        else:
            texts.append(self.run(["cat", "/proc/net/tcp", "/proc/net/tcp6"], check=False).stdout)
        for text in texts:
            for line in text.splitlines()[1:]:
                parts = line.split()
                if len(parts) > 3 and parts[3] == "0A" and \
                        int(parts[1].rsplit(":", 1)[1], 16) == port:
                    return True
        return False

    def wait_listening(self, port, proc=None, timeout=10.0):
        """Waits until port listens in the namespace; AssertionError with the process's
        stderr when proc exits first."""
        def ready():
            if proc is not None and not proc.alive():
                raise AssertionError("%s exited before listening on %d in %s:\n%s%s" % (
                    proc.describe(), port, self.name, proc.stderr()[-3000:],
                    proc.stdout()[-1000:]))
            return self.listening(port, proc)
        util.wait_until(ready, timeout, "port %d to listen in namespace %s" % (port, self.name),
                        interval=0.05)

    def stop_all(self):
        for p in reversed(self.procs):
            try:
                p.stop(timeout=5)
            except Exception:
                pass
        self.procs = []


class Lab:
    """The namespaces of one test or module; destroy() stops their processes and deletes
    them (and is also run at exit if the test process ends without it)."""

    def __init__(self):
        clean_stale()
        self.run_id = "%d-%s" % (os.getpid(), secrets.token_hex(3))
        self.spaces = []
        _labs.append(self)

    def netns(self, role):
        name = "%s%s-%d-%s" % (PREFIX, self.run_id, len(self.spaces), role)
        name = name[:40]
        _run([IP, "netns", "add", name])
        ns = Netns(name, role)
        self.spaces.append(ns)
        ns.up("lo")
        return ns

    def veth(self, a, a_if, a_addr, b, b_if, b_addr):
        """A veth pair between namespaces a and b (made inside a, its peer inside b), with
        addresses ("10.254.0.1/24" or None) and both ends up."""
        _run([IP, "-n", a.name, "link", "add", a_if, "type", "veth", "peer", "name", b_if,
              "netns", b.name])
        for ns, ifname, addr in ((a, a_if, a_addr), (b, b_if, b_addr)):
            if addr:
                extra = ["nodad"] if ":" in addr else []
                ns.ip("addr", "add", addr, "dev", ifname, *extra)
            ns.up(ifname)

    def destroy(self):
        """Stops every process started in the lab's namespaces, then deletes them. Returns
        the names that could not be deleted (normally none)."""
        left = []
        for ns in reversed(self.spaces):
            ns.stop_all()
        for ns in reversed(self.spaces):
            if not _delete_ns(ns.name) and ns.name in list_netns():
                left.append(ns.name)
        self.spaces = []
        if self in _labs:
            _labs.remove(self)
        return left


@atexit.register
def _destroy_leftovers():
    for lab in list(_labs):
        try:
            lab.destroy()
        except Exception:
            pass
