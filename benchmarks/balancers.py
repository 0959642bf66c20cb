"""
Cost of one pick, and of one whole request through the balancer, for each
load balancer kind over 10, 100 and 1,000 endpoints.

Run: C{python -m benchmarks.balancers [--picks N]}.  Endpoints are fake
clients that answer at once; the endpoint set is kept busy (random requests
in flight) so that least-loaded picks have something to compare.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from zope.interface import implementer

from linkrouter.client.accrual import AccrualConfig, AccrualFactory
from linkrouter.client.balancer import Balancer, ClientPolicy
from linkrouter.client.plugins import BalancerConfig, balancerFactory
from linkrouter.interfaces import IClient, Status
from linkrouter.naming import AddrBound, Address, Var
from linkrouter.telemetry.stats import NullStatsReceiver

KINDS = ("p2c", "ewma", "aperture", "heap", "roundRobin")
SIZES = (10, 100, 1000)


@implementer(IClient)
class Immediate:
    status = Status.OPEN

    def __call__(self, request: object) -> Deferred[Any]:
        return succeed(request)

    def close(self) -> Deferred[Any]:
        return succeed(None)


def build(kind: str, size: int, clock: Clock) -> Balancer:
    addr = AddrBound(frozenset(Address("10.0.0.1", 1000 + i) for i in range(size)))
    return balancerFactory(BalancerConfig(kind), clock, random.Random(1)).build(
        Var(addr),
        lambda a: Immediate(),
        NullStatsReceiver(),
        ClientPolicy(accrual=AccrualFactory(AccrualConfig(), clock)),
    )


def measure(kind: str, size: int, picks: int) -> tuple[float, float]:
    clock = Clock()
    balancer = build(kind, size, clock)
    rng = random.Random(2)
    eps = balancer._eps
    for ep in eps:
        ep.pending = rng.randint(0, 20)
    dist = balancer._dist
    dist.rebuild(eps)
    pick = dist.pick
    start = time.perf_counter()
    for _ in range(picks):
        pick(None)
    pickTime = (time.perf_counter() - start) / picks
    start = time.perf_counter()
    for _ in range(picks):
        balancer("x")
    callTime = (time.perf_counter() - start) / picks
    return pickTime * 1e6, callTime * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--picks", type=int, default=100_000)
    args = parser.parse_args()
    print(f"{'kind':>10} {'endpoints':>9} {'µs/pick':>8} {'µs/request':>10}")
    for kind in KINDS:
        for size in SIZES:
            pick, call = measure(kind, size, args.picks)
            print(f"{kind:>10} {size:>9} {pick:>8.2f} {call:>10.2f}")


if __name__ == "__main__":
    main()
