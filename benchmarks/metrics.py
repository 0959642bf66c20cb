"""
Cost of recording metrics on the data path, and of rendering them.

    python -m benchmarks.metrics      (from the repository root)

Prints the median over several runs of: nanoseconds per C{counter.incr()}
and per C{histogram.add()}, and milliseconds to render 10,000 metrics as
metrics.json and as Prometheus text.
"""

from __future__ import annotations

import random
import statistics
import timeit
from collections.abc import Callable, Iterator
from typing import Any

from linkrouter.telemetry import MetricsRegistry
from linkrouter.telemetry.export import flatJson, prometheus

RUNS = 7
CALLS = 200_000


def perCallNs(stmt: Callable[[], object], calls: int) -> float:
    times = timeit.repeat(stmt, number=1, repeat=RUNS)
    return statistics.median(times) / calls * 1e9


def recording() -> None:
    registry = MetricsRegistry()
    stats = registry.statsReceiver().scope("rt", "http", "service", "svc/foo")
    counter = stats.counter("requests")
    histogram = stats.histogram("request_latency_ms")
    latencies = [int(random.lognormvariate(3, 1)) for _ in range(CALLS)]
    incr, add = counter.incr, histogram.add
    loop = perCallNs(lambda: [None for _ in latencies], CALLS)
    incrNs = perCallNs(lambda: [incr() for _ in latencies], CALLS) - loop
    addNs = perCallNs(lambda: [add(v) for v in latencies], CALLS) - loop
    print(f"counter.incr():   {incrNs:6.0f} ns")
    print(f"histogram.add():  {addNs:6.0f} ns")


def rendering() -> None:
    registry = MetricsRegistry()
    root = registry.statsReceiver()
    for n in range(2500):
        service = root.scope("rt", "http", "service", f"svc/{n}")
        service.counter("requests").incr(n)
        service.counter("success").incr(n)
        service.counter("failures").incr()
        service.histogram("request_latency_ms").add(n % 97)
    registry.snapshot()
    items = registry.items()
    renderers: list[tuple[str, Callable[[Any], Iterator[str]]]] = [
        ("metrics.json", flatJson),
        ("prometheus", prometheus),
    ]
    for name, render in renderers:

        def once(render: Callable[[Any], Iterator[str]] = render) -> str:
            return "".join(render(items))

        seconds = statistics.median(timeit.repeat(once, number=1, repeat=RUNS))
        print(f"{name} of {len(items)} metrics: {seconds * 1000:6.1f} ms")


if __name__ == "__main__":
    recording()
    rendering()
