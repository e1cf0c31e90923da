#!/usr/bin/python3
"""catena benchmarks: figures, not pass/fail.

Starts nginx (origin) and catena on loopback in a scratch directory, then
measures, each beside the same measurement made directly:
  - tunnel throughput: a large download through a CONNECT tunnel (curl -p)
  - plain-HTTP proxying: requests/s with keep-alive (wrk, absolute-form)
  - idle tunnel memory: catena's RSS growth per open idle tunnel
  - interception: emulated certificates per second (emubench), full TLS
    handshakes per second with a warm certificate cache and keep-alive HTTPS
    requests per second (hsbench), and CPU per handshake of catena beside
    the origin's
Every figure is the median of several runs. The machine is shared: compare
ratios from the same run, not absolute numbers across runs.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

NGINX = "/usr/sbin/nginx"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, deadline=10.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not ready")


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw).stdout


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Bench:
    def __init__(self, build, workdir, runs):
        self.build = build
        self.dir = workdir
        self.runs = runs
        self.procs = []

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(
            os.path.join(self.dir, os.path.basename(argv[0]) + ".err"), "ab"), **kw)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    def origin(self):
        www = os.path.join(self.dir, "www")
        os.makedirs(www, exist_ok=True)
        # Sparse: nginx sendfile() of zeros costs the origin little.
        with open(os.path.join(www, "big"), "wb") as f:
            f.truncate(1 << 30)
        with open(os.path.join(www, "1k"), "wb") as f:
            f.write(b"x" * 1024)
        self.http_port = free_port()
        self.tls_port = free_port()
        self.pki()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/nginx.error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 100000;
    client_body_temp_path {self.dir}/tmp;
    proxy_temp_path {self.dir}/tmp;
    fastcgi_temp_path {self.dir}/tmp;
    uwsgi_temp_path {self.dir}/tmp;
    scgi_temp_path {self.dir}/tmp;
    server {{
        listen 127.0.0.1:{self.http_port};
        root {www};
    }}
    server {{
        listen 127.0.0.1:{self.tls_port} ssl;
        ssl_certificate {self.dir}/origin.pem;
        ssl_certificate_key {self.dir}/origin.key;
        ssl_session_cache off;
        ssl_session_tickets off;
        root {www};
    }}
}}
""")
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        self.start([NGINX, "-p", self.dir, "-c", conf, "-g", "daemon off;"])
        wait_port(self.http_port)

    def pki(self):
        """An origin certificate (ECDSA P-256, IP SAN) and catena's keyring."""
        d = self.dir
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", f"{d}/origin-ca.key", "-out", f"{d}/origin-ca.pem", "-days", "2",
             "-subj", "/CN=bench origin CA"])
        run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{d}/origin.key", "-out", f"{d}/origin.csr", "-subj", "/CN=127.0.0.1"])
        with open(f"{d}/ext.cnf", "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:bench.test\n")
        run(["openssl", "x509", "-req", "-in", f"{d}/origin.csr", "-CA", f"{d}/origin-ca.pem",
             "-CAkey", f"{d}/origin-ca.key", "-CAcreateserial", "-out", f"{d}/origin.pem",
             "-days", "2", "-extfile", f"{d}/ext.cnf"])
        run(["openssl", "x509", "-in", f"{d}/origin.pem", "-outform", "DER",
             "-out", f"{d}/origin.der"])
        ctl = os.path.join(self.build, "catenactl")
        run([ctl, "ca", "init", "--dir", f"{d}/root", "--cn", "bench root"])
        run([ctl, "ca", "intermediate", "--parent", f"{d}/root", "--dir", f"{d}/keyring",
             "--cn", "bench intermediate"])

    def catena(self):
        self.proxy_port = free_port()
        conf = os.path.join(self.dir, "catena.conf")
        with open(conf, "w") as f:
            f.write(f"""
workers = 1;
listeners = ( {{ type = "http"; address = "127.0.0.1:{self.proxy_port}"; }} );
access = {{ connect_ports = [ {self.http_port}, {self.tls_port} ];
           http_ports = [ {self.http_port} ]; }};
tls = {{ intercept = "list"; intercept_hosts = [ "127.0.0.1" ];
        keyrings = ( {{ name = "bench"; dir = "{self.dir}/keyring"; }} );
        use_system_cas = false; ca_file = "{self.dir}/origin-ca.pem"; }};
resolver = {{ hosts_file = ""; servers = [ "127.0.0.1:9" ]; }};
log = {{ event_file = "{self.dir}/event.log"; event_level = "notice"; }};
""")
        self.catena_proc = self.start([os.path.join(self.build, "catena"), "-c", conf])
        wait_port(self.proxy_port)

    def curl_speed(self, extra):
        out = subprocess.run(
            ["curl", "-sS", "-f", "-o", "/dev/null", "-w", "%{speed_download} %{size_download}",
             "--max-time", "120"] + extra + [f"http://127.0.0.1:{self.http_port}/big"],
            check=True, capture_output=True, text=True).stdout
        speed, size = out.split()
        if int(size) != 1 << 30:
            raise RuntimeError(f"download incomplete: {size} bytes")
        return float(speed) / 1e6

    def tunnel_throughput(self):
        direct, tunneled = [], []
        for _ in range(self.runs):
            direct.append(self.curl_speed([]))
            tunneled.append(self.curl_speed(["-p", "-x", f"http://127.0.0.1:{self.proxy_port}"]))
        d, t = statistics.median(direct), statistics.median(tunneled)
        print(f"tunnel throughput (1 GiB download, curl, median of {self.runs}):")
        print(f"  direct          {d:9.1f} MB/s")
        print(f"  CONNECT tunnel  {t:9.1f} MB/s   ({100 * t / d:.1f}% of direct)")

    def wrk_rps(self, port, path, conns=32, secs=5):
        script = os.path.join(self.dir, "req.lua")
        with open(script, "w") as f:
            f.write(f'wrk.path = "{path}"\nwrk.headers["Host"] = "127.0.0.1:{self.http_port}"\n')
        out = subprocess.run(
            ["wrk", "-t", "1", "-c", str(conns), "-d", f"{secs}s", "-s", script,
             f"http://127.0.0.1:{port}/"], check=True, capture_output=True, text=True).stdout
        m = re.search(r"Requests/sec:\s+([\d.]+)", out)
        return float(m.group(1)) if m else 0.0

    def http_rps(self):
        if shutil.which("wrk") is None:
            print("plain-HTTP requests/s: skipped (wrk is not installed)")
            return
        direct, proxied = [], []
        for _ in range(self.runs):
            direct.append(self.wrk_rps(self.http_port, "/1k"))
            proxied.append(self.wrk_rps(self.proxy_port, f"http://127.0.0.1:{self.http_port}/1k"))
        d, p = statistics.median(direct), statistics.median(proxied)
        print(f"plain-HTTP keep-alive requests/s (1 KiB, wrk 32 connections, median of {self.runs}):")
        print(f"  direct          {d:9.0f} req/s")
        print(f"  through catena  {p:9.0f} req/s   ({100 * p / d:.1f}% of direct)")

    def hsbench(self, mode, proxy, seconds=4, threads=4):
        argv = [os.path.join(self.build, "bench", "hsbench"), "--connect",
                f"127.0.0.1:{self.tls_port}", "--mode", mode, "--threads", str(threads),
                "--seconds", str(seconds), "--path", "/1k"]
        if proxy:
            argv += ["--proxy", f"127.0.0.1:{self.proxy_port}",
                     "--cafile", f"{self.dir}/root/cert.pem"]
        else:
            argv += ["--cafile", f"{self.dir}/origin-ca.pem"]
        out = run(argv, timeout=seconds + 60)
        return float(out.split()[1])

    def interception(self):
        out = run([os.path.join(self.build, "bench", "emubench"), f"{self.dir}/keyring",
                   f"{self.dir}/origin.der", "3000"])
        print("certificate emulation (ECDSA P-256 issuer, emubench, one thread):")
        print("  " + out.strip())
        nginx_pid = int(open(os.path.join(self.dir, "nginx.pid")).read().split()[0])
        # nginx's master forks one worker: the worker does the TLS work.
        worker = int(run(["pgrep", "-P", str(nginx_pid)]).split()[0])
        hs_direct, hs_proxy, rq_direct, rq_proxy = [], [], [], []
        cpu_nginx, cpu_catena = [], []
        self.hsbench("handshakes", True, seconds=1)  # warm the certificate cache
        for _ in range(self.runs):
            secs = 4
            n0 = cpu_seconds(worker)
            rate = self.hsbench("handshakes", False, seconds=secs)
            cpu_nginx.append((cpu_seconds(worker) - n0) / (rate * secs) * 1e6)
            hs_direct.append(rate)
            c0 = cpu_seconds(self.catena_proc.pid)
            rate = self.hsbench("handshakes", True, seconds=secs)
            cpu_catena.append((cpu_seconds(self.catena_proc.pid) - c0) / (rate * secs) * 1e6)
            hs_proxy.append(rate)
            rq_direct.append(self.hsbench("requests", False))
            rq_proxy.append(self.hsbench("requests", True))
        med = statistics.median
        print(f"TLS handshakes/s (TLS 1.3, ECDSA, no resumption, 4 client threads, "
              f"median of {self.runs}):")
        print(f"  direct to nginx        {med(hs_direct):8.0f} /s   "
              f"origin CPU {med(cpu_nginx):6.0f} us per handshake")
        print(f"  intercepted (warm)     {med(hs_proxy):8.0f} /s   "
              f"catena CPU {med(cpu_catena):6.0f} us per intercepted handshake "
              f"({med(cpu_catena) / med(cpu_nginx):.1f}x the origin's)")
        print(f"HTTPS keep-alive requests/s (1 KiB, 4 connections, median of {self.runs}):")
        print(f"  direct to nginx        {med(rq_direct):8.0f} /s")
        print(f"  intercepted            {med(rq_proxy):8.0f} /s   "
              f"({100 * med(rq_proxy) / med(rq_direct):.1f}% of direct)")

    def idle_tunnel_memory(self, n=1000):
        pid = self.catena_proc.pid
        before = rss_kib(pid)
        socks = []
        try:
            for _ in range(n):
                s = socket.create_connection(("127.0.0.1", self.proxy_port), timeout=5)
                s.sendall(f"CONNECT 127.0.0.1:{self.http_port} HTTP/1.1\r\n"
                          f"Host: 127.0.0.1:{self.http_port}\r\n\r\n".encode())
                socks.append(s)
            for s in socks:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = s.recv(4096)
                    if not chunk:
                        raise RuntimeError("tunnel refused")
                    head += chunk
            time.sleep(0.5)  # let the allocator settle before reading RSS
            after = rss_kib(pid)
        finally:
            for s in socks:
                s.close()
        per = (after - before) * 1024 / n
        print(f"idle tunnel memory ({n} open CONNECT tunnels, catena RSS growth):")
        print(f"  {before} KiB -> {after} KiB: {per:.0f} bytes per tunnel "
              "(user space; kernel socket and pipe buffers are not in RSS)")


def keepalive_latency_us(proxy_port, origin_port, n=2000):
    """Median and p99 time of a 1 KiB GET on one kept-alive connection (through a
    proxy when proxy_port is set), in microseconds."""
    port = proxy_port or origin_port
    target = f"http://127.0.0.1:{origin_port}/1k" if proxy_port else "/1k"
    req = (f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{origin_port}\r\n\r\n").encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            s.sendall(req)
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("connection closed")
                buf += chunk
            head, body = buf.split(b"\r\n\r\n", 1)
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            while len(body) < length:
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("connection closed")
                body += chunk
            times.append((time.perf_counter() - t0) * 1e6)
    finally:
        s.close()
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99)]


def chain_nodes(b):
    """A data-center node and a branch forwarding through it (nothing intercepted:
    the cost of the hop itself)."""
    dc_port, br_port = free_port(), free_port()
    common = f"""
workers = 1;
access = {{ connect_ports = [ {b.http_port}, {b.tls_port} ]; http_ports = [ {b.http_port} ]; }};
resolver = {{ hosts_file = ""; servers = [ "127.0.0.1:9" ]; }};
"""
    for name, port, extra in (
            ("dc", dc_port, 'tier = { downstream_networks = [ "127.0.0.0/8" ]; };'),
            ("branch", br_port,
             f'forwarding = {{ hosts = ( {{ name = "dc"; address = "127.0.0.1:{dc_port}"; }} );'
             f' default = "dc"; }};')):
        conf = os.path.join(b.dir, f"{name}.conf")
        with open(conf, "w") as f:
            f.write(common + f"""
node = {{ name = "{name}"; }};
listeners = ( {{ type = "http"; address = "127.0.0.1:{port}"; }} );
log = {{ event_file = "{b.dir}/{name}.event.log"; event_level = "notice"; }};
{extra}
""")
        b.start([os.path.join(b.build, "catena"), "-c", conf])
        wait_port(port)
    return dc_port, br_port


def chain(b):
    dc_port, br_port = chain_nodes(b)
    lat = {}
    for label, port in (("direct", None), ("one tier", dc_port), ("two tiers", br_port)):
        runs = [keepalive_latency_us(port, b.http_port) for _ in range(b.runs)]
        lat[label] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
    print(f"request latency through tiers (1 KiB GET, one kept-alive connection, 2000 requests, "
          f"median of {b.runs} runs):")
    for label, (med, p99) in lat.items():
        print(f"  {label:10s} median {med:7.0f} us   p99 {p99:7.0f} us")
    speeds = {}
    for label, port in (("direct", None), ("one tier", dc_port), ("two tiers", br_port)):
        extra = ["-p", "-x", f"http://127.0.0.1:{port}"] if port else []
        speeds[label] = statistics.median(b.curl_speed(extra) for _ in range(b.runs))
    print(f"CONNECT tunnel throughput through tiers (1 GiB, curl, median of {b.runs}):")
    for label, s in speeds.items():
        print(f"  {label:10s} {s:9.1f} MB/s   ({100 * s / speeds['direct']:.1f}% of direct)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", choices=["tunnel", "http", "memory", "interception", "chain"],
                    action="append", help="run only these sections (default: all)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="catena-bench-")
    os.chmod(work, 0o755)  # nginx workers run as another user and read files here
    b = Bench(os.path.abspath(args.build), work, args.runs)
    try:
        b.origin()
        b.catena()
        print(f"catena bench ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
              "loopback, catena workers = 1)")
        sections = [("tunnel", b.tunnel_throughput), ("http", b.http_rps),
                    ("memory", b.idle_tunnel_memory), ("interception", b.interception),
                    ("chain", lambda: chain(b))]
        for name, fn in sections:
            if not args.only or name in args.only:
                fn()
    finally:
        b.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
