"""
Thrift proxy benchmark: our Thrift server and endpoint client against HAProxy
(C{mode tcp}) in front of the same backend, in one run.

    python benchmarks/thrift.py [--seconds 5] [--connections 64] [--rounds 3]

Processes: a backend (Twisted, answers every framed call with a canned
reply), our router (built by the thrift plugin from a YAML config, as
C{linkrouter} runs it), HAProxy, and this process as the load generator (asyncio,
pre-encoded call bytes over many connections, one call in flight per
connection as Thrift requires).

Prints the median over rounds of calls/s for direct, ours and HAProxy, the
ratio ours/HAProxy, and the p99 latency added over direct at 1,000 calls/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

# Run as a script, sys.path[0] is benchmarks/, whose modules (http.py)
# would shadow the standard library: put the repository there instead.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from protocols.thrift.codec import (  # noqa: E402
    MessageType,
    StructWriter,
    ThriftProtocol,
    encodeMessage,
    frame,
)


def _messages() -> tuple[bytes, bytes]:
    args = StructWriter(ThriftProtocol.BINARY)
    args.binary(1, b"hello")
    call = encodeMessage(ThriftProtocol.BINARY, "echo", MessageType.CALL, 1, args.finish())
    result = StructWriter(ThriftProtocol.BINARY)
    result.binary(0, b"hello")
    reply = encodeMessage(ThriftProtocol.BINARY, "echo", MessageType.REPLY, 1, result.finish())
    return frame(True, call), frame(True, reply)


CALL, REPLY = _messages()


def runBackend() -> None:
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor as _reactor
    from twisted.internet.protocol import Factory, Protocol

    reactor: Any = _reactor

    class Answer(Protocol):
        buf = b""

        def connectionMade(self) -> None:
            self.transport.setTcpNoDelay(True)  # type: ignore[union-attr]

        def dataReceived(self, data: bytes) -> None:
            buf = self.buf + data
            pos = count = 0
            while len(buf) - pos >= 4:
                size = int.from_bytes(buf[pos : pos + 4], "big")
                if len(buf) - pos - 4 < size:
                    break
                pos += 4 + size
                count += 1
            self.buf = buf[pos:]
            if count:
                self.transport.write(REPLY * count)  # type: ignore[union-attr]

    port = reactor.listenTCP(0, Factory.forProtocol(Answer), backlog=1024, interface="127.0.0.1")
    print(port.getHost().port, flush=True)
    reactor.run()


PROXY_CONFIG = """
routers:
- protocol: thrift
  label: bench
  dtab: /svc => /$/inet/127.0.0.1/{port};
  servers:
  - port: 0
"""


def runProxy(backendPort: int) -> None:
    """
    The router as C{linkrouter} runs it: the plugin builds it from YAML, on
    the router's reactor.
    """
    from linkrouter import _reactor as ours

    ours.install()
    from twisted.internet import reactor as _reactor

    from linkrouter._plugins import PluginRegistry
    from linkrouter.config import parseLinkerConfig
    from linkrouter.service import LinkerService

    reactor: Any = _reactor
    registry = PluginRegistry.discover()
    config = parseLinkerConfig(PROXY_CONFIG.format(port=backendPort), "bench.yaml", registry)
    linker = LinkerService.build(config, reactor, registry)
    linker.startService()
    (runtime,) = linker.routers
    service: Any = runtime.service
    print(service.ports[0].getHost().port, flush=True)
    reactor.run()


def freePort() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def startHaproxy(backendPort: int, workdir: str) -> tuple[subprocess.Popen[bytes], int]:
    port = freePort()
    config = os.path.join(workdir, "haproxy.cfg")
    with open(config, "w") as f:
        f.write(
            f"""global
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend thrift
    bind 127.0.0.1:{port}
    default_backend backend
backend backend
    server b1 127.0.0.1:{backendPort}
"""
        )
    proc = subprocess.Popen(["haproxy", "-f", config, "-db"], stdout=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("haproxy did not start")


def startPython(*args: str) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), *args], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


async def _worker(
    port: int,
    until: float,
    latencies: list[float] | None,
    interval: float | None,
    offset: float = 0.0,
) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    count = 0
    size = len(REPLY)
    clock = time.perf_counter
    nextSend = clock() + offset
    try:
        while (now := clock()) < until:
            if interval is not None:
                if nextSend > now:
                    await asyncio.sleep(nextSend - now)
                nextSend += interval
            start = clock()
            writer.write(CALL)
            if await reader.readexactly(size) != REPLY:
                raise RuntimeError("wrong reply")
            if latencies is not None:
                latencies.append(clock() - start)
            count += 1
    finally:
        writer.close()
    return count


async def _load(
    port: int, connections: int, seconds: float, rate: float | None
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    interval = connections / rate if rate else None
    # Paced connections are spread evenly over the interval, so that calls
    # arrive at a steady rate rather than in bursts of one per connection.
    offsets = [n * interval / connections if interval else 0.0 for n in range(connections)]
    # warm up: open connections on the proxy side and its backend pool
    await asyncio.gather(
        *[_worker(port, time.perf_counter() + 0.3, None, interval) for _ in range(connections)]
    )
    start = time.perf_counter()
    counts = await asyncio.gather(
        *[_worker(port, start + seconds, latencies, interval, offset) for offset in offsets]
    )
    return sum(counts) / (time.perf_counter() - start), latencies


def measure(
    port: int, connections: int, seconds: float, rate: float | None = None
) -> tuple[float, list[float]]:
    return asyncio.run(_load(port, connections, seconds, rate))


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    procs: list[subprocess.Popen[Any]] = []
    with tempfile.TemporaryDirectory() as workdir:
        try:
            backend, backendPort = startPython("backend")
            procs.append(backend)
            proxy, proxyPort = startPython("proxy", str(backendPort))
            procs.append(proxy)
            haproxy, haproxyPort = startHaproxy(backendPort, workdir)
            procs.append(haproxy)
            targets = {"direct": backendPort, "ours": proxyPort, "haproxy": haproxyPort}
            throughput: dict[str, list[float]] = {k: [] for k in targets}
            added: dict[str, list[float]] = {"ours": [], "haproxy": []}
            for round in range(options.rounds):
                for name, port in targets.items():
                    rate, _ = measure(port, options.connections, options.seconds)
                    throughput[name].append(rate)
                    print(f"round {round + 1}: {name:8s} {rate:10.0f} calls/s", flush=True)
                paced = {
                    name: p99(measure(port, 20, options.seconds, rate=1000.0)[1])
                    for name, port in targets.items()
                }
                for name in added:
                    added[name].append(paced[name] - paced["direct"])
                print(
                    f"round {round + 1}: p99 at 1000 calls/s (ms): "
                    + ", ".join(f"{k} {v * 1000:.3f}" for k, v in paced.items()),
                    flush=True,
                )
            med = {k: statistics.median(v) for k, v in throughput.items()}
            print()
            print(
                f"connections {options.connections}, {options.seconds:g}s"
                f" x {options.rounds} rounds (medians)"
            )
            for name in targets:
                print(f"  {name:8s} {med[name]:10.0f} calls/s")
            print(f"  ratio ours/haproxy {med['ours'] / med['haproxy']:.2f} (target >= 0.5)")
            for name, values in added.items():
                extra = statistics.median(values) * 1000
                print(f"  p99 added over direct at 1000 calls/s, {name}: {extra:.3f} ms")
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(10)


if __name__ == "__main__":
    if sys.argv[1:2] == ["backend"]:
        runBackend()
    elif sys.argv[1:2] == ["proxy"]:
        runProxy(int(sys.argv[2]))
    else:
        main()
