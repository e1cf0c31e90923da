#!/usr/bin/python3
"""catena benchmarks: figures, not pass/fail.

Starts nginx (origin) and catena on loopback in a scratch directory, then
measures, each beside the same measurement made directly:
  - tunnel throughput: a large download through a CONNECT tunnel (curl -p)
  - plain-HTTP proxying: requests/s with keep-alive (wrk, absolute-form)
  - idle tunnel memory: catena's RSS growth per open idle tunnel
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
}}
""")
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        self.start([NGINX, "-p", self.dir, "-c", conf, "-g", "daemon off;"])
        wait_port(self.http_port)

    def catena(self):
        self.proxy_port = free_port()
        conf = os.path.join(self.dir, "catena.conf")
        with open(conf, "w") as f:
            f.write(f"""
workers = 1;
listeners = ( {{ type = "http"; address = "127.0.0.1:{self.proxy_port}"; }} );
access = {{ connect_ports = [ {self.http_port} ]; http_ports = [ {self.http_port} ]; }};
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="catena-bench-")
    os.chmod(work, 0o755)  # nginx workers run as another user and read files here
    b = Bench(os.path.abspath(args.build), work, args.runs)
    try:
        b.origin()
        b.catena()
        print(f"catena bench ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
              "loopback, catena workers = 1)")
        b.tunnel_throughput()
        b.http_rps()
        b.idle_tunnel_memory()
    finally:
        b.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
