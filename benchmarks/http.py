"""
HTTP/1.1 proxy benchmark: direct vs HAProxy (one thread) vs linkrouter, all
in front of the same nginx (one worker, 12-byte body) on loopback.

    python -m benchmarks.http [--runs 3] [--duration 5] [--simple] [--engine] [--floor]
                              [--processes N] [--python PATH]
    python -m benchmarks.http --router CONFIG --router-port 4140 --backend-port 8080

Needs the Debian packages nginx, haproxy and wrk.  linkrouter runs as
``twistd -n linkrouter -c CONFIG`` (as under systemd) with the full
router stack: by default with a configuration this script writes (Host
identifier, binding cache, p2c with consecutive-failures accrual, metrics;
the admin server on a free port), or with --router CONFIG, whose router
must listen on --router-port and route to nginx on --backend-port.
--simple adds a second router with roundRobin and no failure accrual (the
client-stack cost, issue 5); --engine adds the bare HTTP data path
(benchmarks/http_proxy.py, fixed destination, no router core); --floor adds
what Twisted and httptools cost alone (benchmarks/http_floor.py: a byte
relay and a minimal HTTP proxy that no router could be); --processes N adds
one row for N routers sharing one port through the servers' reusePort, the
way to use more cores (their CPU and RSS are summed).

Prints requests/s (median of the runs) and the ratios to HAProxy, CPU
time per request of each process it starts (and the kernel's part), p99
latency added over direct at a fixed 1,000 req/s, RSS with 1,000 idle client
connections, time from start to the first proxied 200, and RSS around
streaming 1 MB bodies.

Helpers run as modules (C{-m benchmarks.http_proxy}) from the repository
root, since this file's name would shadow the standard library's C{http}.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx.err;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  client_body_temp_path {dir};
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 "hello world\\n"; }}
    location /big {{ root {dir}; }}
  }}
}}
"""

HAPROXY_CONF = """
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend f
  bind 127.0.0.1:{port}
  default_backend b
backend b
  server s1 127.0.0.1:{backend}
"""


ROUTER_CONF = """
admin:
  ip: 127.0.0.1
  port: {admin}
routers:
- protocol: http
  label: bench
  dtab: /svc/* => /$/inet/127.0.0.1/{backend};
  servers:
  - ip: 127.0.0.1
    port: {port}
    socketOptions:
      reusePort: {reusePort}
  client:
    loadBalancer:
      kind: {balancer}
    failureAccrual:
      kind: {accrual}
"""

VARIANTS = {
    "linkrouter": ("p2c", "io.l5d.consecutiveFailures"),
    "lr-simple": ("roundRobin", "none"),
}
"""The written router configurations: balancer and failure accrual kinds."""


def writeRouterConfig(
    path: str, variant: str, backend: int, port: int, reusePort: bool = False
) -> None:
    """Write the router configuration C{variant} (see L{VARIANTS}) to C{path}."""
    balancer, accrual = VARIANTS[variant]
    with open(path, "w") as conf:
        conf.write(
            ROUTER_CONF.format(
                admin=freePort(),
                backend=backend,
                port=port,
                balancer=balancer,
                accrual=accrual,
                reusePort="true" if reusePort else "false",
            )
        )


def _pythonVersion(python: str) -> str:
    code = "import sys; print(sys.version.split()[0])"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def waitPort(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port}")


def get(port: int, path: str = "/") -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), 2) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), data


def rssKB(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpuOf(pids: list[int]) -> tuple[float, float]:
    """User and system (kernel) CPU time of the processes C{pids}, summed."""
    user = system = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        user += int(fields[11]) / tick
        system += int(fields[12]) / tick
    return user, system


def wrk(port: int, duration: float) -> float:
    out = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{duration:g}s", f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None or "Non-2xx" in out:
        raise RuntimeError("wrk failed:\n" + out)
    return float(match.group(1))


def fixedRate(port: int, seconds: float) -> float:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.http_loadgen", str(port), "1000", str(seconds)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if out[3] != "0":
        raise RuntimeError(f"errors at fixed rate: {out}")
    return float(out[1])


def idleConnections(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        socks.append(s)
    for s in socks:
        s.recv(4096)
    return socks


def streamBig(port: int, times: int) -> None:
    for _ in range(times):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET /big/1m HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            got = 0
            while chunk := s.recv(16384):
                got += len(chunk)
                time.sleep(0.0005)  # a slowish reader
            if got < 1024 * 1024:
                raise RuntimeError(f"short body: {got}")


def waitFor200(port: int, started: float) -> float:
    """Poll until C{port} proxies a 200; the seconds since C{started}."""
    while True:
        try:
            if get(port)[0] == 200:
                return time.monotonic() - started
        except OSError:
            pass
        if time.monotonic() - started > 30:
            raise RuntimeError(f"the proxy on {port} did not answer 200 within 30 s")
        time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--router", help="a linkrouter config file instead of the written one")
    parser.add_argument("--router-port", type=int, default=4140)
    parser.add_argument("--backend-port", type=int, default=0)
    parser.add_argument(
        "--simple", action="store_true", help="also a router with roundRobin, no accrual"
    )
    parser.add_argument("--engine", action="store_true", help="also the bare HTTP data path")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="also N routers sharing one port (servers' reusePort), as one row",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the interpreter that runs the routers (with Twisted and httptools installed)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also a bare Twisted relay and a minimal httptools proxy (benchmarks/http_floor.py)",
    )
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="lr-bench-")
    os.makedirs(os.path.join(work, "big"))
    with open(os.path.join(work, "big", "1m"), "wb") as f:
        f.write(os.urandom(1024 * 1024))
    backend = args.backend_port or freePort()
    hap = freePort()
    with open(os.path.join(work, "nginx.conf"), "w") as conf:
        conf.write(NGINX_CONF.format(dir=work, port=backend))
    with open(os.path.join(work, "haproxy.cfg"), "w") as conf:
        conf.write(HAPROXY_CONF.format(port=hap, backend=backend))

    procs: list[subprocess.Popen[bytes]] = []

    def spawn(cmd: list[str], **kw: object) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
        procs.append(p)
        return p  # type: ignore[no-any-return]

    env = dict(os.environ, PYTHONPATH=ROOT)
    twistd = [args.python, "-c", "from twisted.scripts.twistd import run; run()"]

    def router(config: str) -> subprocess.Popen[bytes]:
        command = [*twistd, "-n", "--pidfile=", "linkrouter", "-c", config]
        return spawn(command, env=env, cwd=ROOT)

    def written(name: str, port: int = 0, copy: str = "") -> tuple[str, int]:
        port = port or freePort()
        path = os.path.join(work, f"{name}{copy}.yaml")
        writeRouterConfig(path, name, backend, port, reusePort=bool(copy))
        return path, port

    try:
        spawn(["nginx", "-c", os.path.join(work, "nginx.conf"), "-p", work])
        haproxy = spawn(["haproxy", "-f", os.path.join(work, "haproxy.cfg"), "-db"])
        waitPort(backend)
        waitPort(hap)

        # The main linkrouter (the one whose start-up, RSS and streaming
        # are measured) first, alone, so that its start-up time is its own.
        started = time.monotonic()
        if args.router:
            ours = args.router_port
            proxy = router(args.router)
        else:
            config, ours = written("linkrouter")
            proxy = router(config)
        startup = waitFor200(ours, started)
        rssStart = rssKB(proxy.pid)

        targets: dict[str, int] = {"direct": backend, "haproxy": hap, "linkrouter": ours}
        pids: dict[str, list[int]] = {"haproxy": [haproxy.pid], "linkrouter": [proxy.pid]}
        if args.simple:
            config, port = written("lr-simple")
            pids["lr-simple"] = [router(config).pid]
            waitFor200(port, time.monotonic())
            targets["lr-simple"] = port
        if args.engine:
            port = freePort()
            pids["engine"] = [
                spawn(
                    [
                        args.python,
                        "-m",
                        "benchmarks.http_proxy",
                        str(port),
                        "127.0.0.1",
                        str(backend),
                    ],
                    env=env,
                    cwd=ROOT,
                ).pid
            ]
            waitFor200(port, time.monotonic())
            targets["engine"] = port
        if args.processes > 1:
            port = freePort()
            shared = f"linkrouter x{args.processes}"
            pids[shared] = []
            for n in range(args.processes):
                config, _ = written("linkrouter", port, f"-{n}")
                pids[shared].append(router(config).pid)
            waitFor200(port, time.monotonic())
            targets[shared] = port
        for kind in ("relay", "minimal") if args.floor else ():
            port = freePort()
            command = [args.python, "-m", "benchmarks.http_floor", kind, str(port), str(backend)]
            pids[kind] = [spawn(command, env=env, cwd=ROOT).pid]
            waitFor200(port, time.monotonic())
            targets[kind] = port

        # CPU time per request is steadier than requests/s on a shared machine.
        rates: dict[str, list[float]] = {name: [] for name in targets}
        cpu: dict[str, list[float]] = {name: [] for name in pids}
        kernel: dict[str, list[float]] = {name: [] for name in pids}
        for _ in range(args.runs):
            for name, port in targets.items():
                before = cpuOf(pids.get(name, []))
                rate = wrk(port, args.duration)
                rates[name].append(rate)
                if name in pids:
                    user, system = cpuOf(pids[name])
                    perRequest = 1e6 / (rate * args.duration)
                    cpu[name].append((user - before[0] + system - before[1]) * perRequest)
                    kernel[name].append((system - before[1]) * perRequest)
        med = {name: statistics.median(v) for name, v in rates.items()}

        p99: dict[str, float] = {}
        for name in ("direct", "haproxy", "linkrouter"):
            p99[name] = fixedRate(targets[name], args.latency_seconds)

        rssBeforeIdle = rssKB(proxy.pid)
        socks = idleConnections(ours, 1000)
        rssIdle = rssKB(proxy.pid)
        for s in socks:
            s.close()

        streamBig(ours, 2)  # warm up
        rssBeforeBig = rssKB(proxy.pid)
        streamBig(ours, 5)
        rssAfterBig = rssKB(proxy.pid)

        def row(label: str, fmt: Callable[[str], str]) -> None:
            print(f"{label:<24}" + "".join(f"{fmt(n):>18}" for n in targets))

        print(f"runs={args.runs} duration={args.duration}s wrk -t1 -c32 keep-alive")
        print(f"routers run on {args.python} (Python {_pythonVersion(args.python)})")
        print(f"{'':<24}" + "".join(f"{n:>18}" for n in targets))
        row("requests/s (median)", lambda n: f"{med[n]:,.0f}")
        row("requests/s (all runs)", lambda n: "/".join(f"{r / 1000:.1f}k" for r in rates[n]))
        row("ratio to haproxy", lambda n: f"{med[n] / med['haproxy']:.2f}")
        row(
            "CPU us/request (median)",
            lambda n: f"{statistics.median(cpu[n]):.1f}" if n in cpu else "-",
        )
        row(
            "  of which kernel",
            lambda n: f"{statistics.median(kernel[n]):.1f}" if n in kernel else "-",
        )
        row("p99 ms at 1,000 req/s", lambda n: f"{p99[n]:.3f}" if n in p99 else "-")
        print(f"ratio linkrouter/haproxy: {med['linkrouter'] / med['haproxy']:.2f}")
        if args.simple:
            change = med["linkrouter"] / med["lr-simple"] - 1
            extra = statistics.median(cpu["linkrouter"]) / statistics.median(cpu["lr-simple"]) - 1
            print(
                f"p2c + consecutive failures vs roundRobin + no accrual: {change:+.1%} req/s,"
                f" {extra:+.1%} CPU per request"
            )
        print(f"p99 added over direct at 1k req/s: {p99['linkrouter'] - p99['direct']:.3f} ms")
        print(
            f"linkrouter RSS: {rssStart / 1024:.1f} MB at start, "
            f"{rssBeforeIdle / 1024:.1f} MB after load, "
            f"{rssIdle / 1024:.1f} MB with 1,000 idle client connections"
        )
        print(f"start to first proxied 200: {startup * 1000:.0f} ms")
        if args.processes > 1:
            total = sum(rssKB(pid) for pid in pids[shared])
            print(f"{shared} (reusePort): RSS {total / 1024:.1f} MB summed over the processes")
        print(
            f"RSS around 5 x 1 MB streamed responses (slow reader): "
            f"{rssBeforeBig / 1024:.1f} MB -> {rssAfterBig / 1024:.1f} MB"
        )
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
