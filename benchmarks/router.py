"""
Cost of one request through the router core, without any protocol: the
service stats, retries, the picker, the client stats and the balancer, in
front of an in-memory endpoint client that answers at once.

    python -m benchmarks.router [--requests N] [--runs N] [--profile]

The router is built by L{buildRouter} from a parsed YAML configuration (an
HTTP router: p2c with consecutive-failures accrual, the default HTTP
response classifier, the default retry and requeue budgets), so that every
layer a real request goes through is there.  Prints microseconds per
request: the median of the runs.  C{--profile} prints the top of a cProfile
of one run instead.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import time
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from zope.interface import implementer

from linkrouter._plugins import PluginRegistry
from linkrouter.config import ClientParams, parseLinkerConfig
from linkrouter.context import BuildContext
from linkrouter.interfaces import IClient, Status
from linkrouter.naming import Address, Path
from linkrouter.routing import Identified, Router
from linkrouter.routing.assembly import ProtocolHooks, buildRouter
from linkrouter.telemetry.stats import MetricsRegistry

CONFIG = """
routers:
- protocol: http
  label: bench
  dtab: /svc/* => /$/inet/127.0.0.1/8080;
  servers:
  - port: 4140
  client:
    loadBalancer:
      kind: p2c
    failureAccrual:
      kind: io.l5d.consecutiveFailures
"""


@attrs.define
class _Request:
    method: bytes = b"GET"


@attrs.define
class _Response:
    status: int = 200
    headers: dict[bytes, bytes] = attrs.field(factory=dict)


_RESPONSE = _Response()


@implementer(IClient)
class _Endpoint:
    """An endpoint client whose last request's answer is in C{waiting}."""

    status = Status.OPEN

    def __init__(self) -> None:
        self.waiting: Deferred[Any] = Deferred()

    def __call__(self, request: object) -> Deferred[Any]:
        d = self.waiting = Deferred()
        return d

    def close(self) -> Deferred[Any]:
        return succeed(None)


_ENDPOINT = _Endpoint()


def _connect(address: Address, params: ClientParams) -> IClient:
    return _ENDPOINT


def _statusOf(response: Any) -> int | None:
    status: int | None = getattr(response, "status", None)
    return status


class _WallClock(Clock):
    """A fake reactor for timers whose time is the real one."""

    def seconds(self) -> float:
        return time.time()


def build() -> tuple[Router, MetricsRegistry]:
    """The router of L{CONFIG}, with its metrics registry."""
    registry = PluginRegistry.discover()
    (router,) = parseLinkerConfig(CONFIG, "bench.yaml", registry).routers
    clock = _WallClock()
    metrics = MetricsRegistry(clock)
    stats = metrics.statsReceiver().scope("rt", router.label)
    context = BuildContext(clock, stats, registry, os.getcwd(), label=router.label)
    assert router.interpreter.plugin is not None
    interpreter = router.interpreter.plugin.plugin.build(router.interpreter.plugin.config, context)
    context = attrs.evolve(context, interpreter=interpreter)
    hooks = ProtocolHooks(connect=_connect, statusOf=_statusOf)
    return buildRouter(router, context, hooks), metrics


def run(router: Router, requests: int) -> float:
    """Microseconds per request over C{requests} sequential requests."""
    identified = Identified(Path.read("/svc/foo"))
    request = _Request()
    route = router.route
    endpoint = _ENDPOINT
    start = time.perf_counter()
    for _ in range(requests):
        route(identified, request)
        endpoint.waiting.callback(_RESPONSE)
    return (time.perf_counter() - start) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="profile one run")
    args = parser.parse_args()
    router, metrics = build()
    run(router, 1000)  # bind the destination, create the client and its metrics
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(run, router, args.requests)
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        return
    results = sorted(run(router, args.requests) for _ in range(args.runs))
    print(
        f"router core: {statistics.median(results):.2f} µs/request "
        f"(median of {args.runs}; all: {' '.join(f'{r:.2f}' for r in results)})"
    )
    requests = metrics.counter(("rt", "bench", "service", "svc/foo", "requests")).value
    assert requests == 1000 + args.requests * args.runs, requests


if __name__ == "__main__":
    main()
