"""
Instructions per proxied request, counted by valgrind's callgrind: the same
count for the same code and load however busy the machine is, so that a
change of a few percent shows where requests/s (benchmarks/http.py) cannot.

    python -m benchmarks.http_instructions [--requests 3000] [--python PATH]

In front of the same nginx as benchmarks.http (one worker, 12-byte body,
not counted), each subject runs under callgrind in turn: HAProxy (one
thread), linkrouter with the full router stack (the configuration
benchmarks.http writes), the HTTP engine alone (benchmarks/http_proxy.py)
and the minimal httptools proxy (benchmarks/http_floor.py).  A client in
this process warms each up with 500 requests, then sends --requests more
over 8 keep-alive connections; only those are counted (callgrind_control
zeroes the counts before and dumps them after).

Counts are user-space instructions: the kernel's sends and receives, about
as costly for every subject, are not in them (benchmarks.http prints CPU
time with the kernel's part).  Needs the Debian packages valgrind, nginx
and haproxy; a run takes about a minute per subject.
"""

from __future__ import annotations

import argparse
import glob
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import time

from benchmarks.http import (
    HAPROXY_CONF,
    NGINX_CONF,
    ROOT,
    freePort,
    waitFor200,
    waitPort,
    writeRouterConfig,
)

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"


def load(port: int, count: int, connections: int = 8) -> None:
    """Send C{count} requests over C{connections} keep-alive connections."""
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
    selector = selectors.DefaultSelector()
    buffers: dict[socket.socket, bytes] = {}
    toSend = count
    for s in socks[:count]:
        s.sendall(REQUEST)
        toSend -= 1
        buffers[s] = b""
        selector.register(s, selectors.EVENT_READ)
    done = 0
    try:
        while done < count:
            for key, _ in selector.select(30):
                s = key.fileobj  # type: ignore[assignment]
                data = s.recv(65536)
                if not data:
                    raise RuntimeError(f"port {port} closed a connection")
                buf = buffers[s] + data
                while (end := buf.find(b"\r\n\r\n")) >= 0:
                    head = buf[:end].lower()
                    if not head.startswith(b"http/1.1 200"):
                        raise RuntimeError(f"port {port} answered {head[:40]!r}")
                    at = head.find(b"content-length:")
                    length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
                    if len(buf) < end + 4 + length:
                        break
                    buf = buf[end + 4 + length :]
                    done += 1
                    if toSend:
                        s.sendall(REQUEST)
                        toSend -= 1
                buffers[s] = buf
    finally:
        for s in socks:
            s.close()


def counted(command: list[str], port: int, requests: int, work: str, name: str) -> float:
    """Instructions per request of C{command} (listening on C{port})."""
    out = os.path.join(work, f"{name}.callgrind")
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    try:
        waitFor200(port, time.monotonic())
        load(port, 500)
        control = ["callgrind_control"]
        subprocess.run([*control, "-z", str(proc.pid)], check=True, capture_output=True)
        load(port, requests)
        subprocess.run([*control, "-d", str(proc.pid)], check=True, capture_output=True)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    dumps = sorted(glob.glob(out + ".*"))
    if not dumps:
        raise RuntimeError(f"callgrind wrote no dump for {name}")
    with open(dumps[0]) as f:
        for line in f:
            if line.startswith("summary:"):
                return int(line.split()[1]) / requests
    raise RuntimeError(f"no summary in {dumps[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--python", default=sys.executable, help="the interpreter for ours")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="lr-instr-")
    backend, hap, ours, engine, minimal = (freePort() for _ in range(5))
    with open(os.path.join(work, "nginx.conf"), "w") as conf:
        conf.write(NGINX_CONF.format(dir=work, port=backend))
    with open(os.path.join(work, "haproxy.cfg"), "w") as conf:
        conf.write(HAPROXY_CONF.format(port=hap, backend=backend))
    config = os.path.join(work, "linkrouter.yaml")
    writeRouterConfig(config, "linkrouter", backend, ours)
    twistd = [args.python, "-c", "from twisted.scripts.twistd import run; run()"]
    subjects = [
        ("haproxy", ["haproxy", "-f", os.path.join(work, "haproxy.cfg"), "-db"], hap),
        ("linkrouter", [*twistd, "-n", "--pidfile=", "linkrouter", "-c", config], ours),
        (
            "engine",
            [args.python, "-m", "benchmarks.http_proxy", str(engine), "127.0.0.1", str(backend)],
            engine,
        ),
        (
            "minimal",
            [args.python, "-m", "benchmarks.http_floor", "minimal", str(minimal), str(backend)],
            minimal,
        ),
    ]
    nginx = subprocess.Popen(
        ["nginx", "-c", os.path.join(work, "nginx.conf"), "-p", work],
        stdout=subprocess.DEVNULL,
    )
    try:
        waitPort(backend)
        print(f"{args.requests} requests over 8 keep-alive connections, counted by callgrind")
        results = {
            name: counted(command, port, args.requests, work, name)
            for name, command, port in subjects
        }
    finally:
        nginx.terminate()
        nginx.wait()
    base = results["haproxy"]
    print(f"{'':12}{'instructions/request':>22}{'times haproxy':>15}")
    for name, value in results.items():
        print(f"{name:12}{value:>22,.0f}{value / base:>15.2f}")


if __name__ == "__main__":
    main()
