# -*- test-case-name: tests.test_client_balancer -*-
"""
Pick strategies: given the current endpoints, which one takes the next
request.  A distributor never sends anything; the balancer tells it when
the endpoint set changes (L{Distributor.rebuild}) and, if it tracks load,
when a request starts and finishes.

"Usable" means: accrual lets it take a request (C{alive}), it is not the
endpoint being avoided (a requeue goes elsewhere), and its client is open.
When no usable endpoint turns up within C{maxEffort} tries, C{pick} returns
C{None} and the balancer falls back to a full scan.
"""

from __future__ import annotations

import math
import random as _random
from typing import Any

from twisted.internet.interfaces import IReactorTime

from linkrouter.interfaces import Status

from ._endpoint import Endpoint

_OPEN = Status.OPEN

# The load of an endpoint with requests in flight and no latency measured
# yet: it is avoided until its first answer.
_PENALTY = 1e9


class Distributor:
    tracksLoad = False

    def __init__(self, rng: _random.Random, clock: IReactorTime, maxEffort: int) -> None:
        self._random = rng.random
        self._clock = clock
        self._maxEffort = maxEffort
        self._eps: list[Endpoint] = []
        self._n = 0
        self._uniform = True
        self._prob: list[float] = []
        self._alias: list[int] = []

    def rebuild(self, eps: list[Endpoint]) -> None:
        self._eps = eps
        self._n = n = len(eps)
        weights = [ep.weight for ep in eps]
        self._uniform = n == 0 or min(weights) == max(weights)
        if not self._uniform:
            self._prob, self._alias = _aliasTables(weights)

    def _sample(self) -> int:
        """A random index, in proportion to endpoint weights."""
        u = self._random() * self._n
        i = int(u)
        if self._uniform or u - i < self._prob[i]:
            return i
        return self._alias[i]

    def pick(self, avoid: Endpoint | None) -> Endpoint | None:
        raise NotImplementedError

    def started(self, ep: Endpoint, start: float) -> None:
        """C{ep.pending} was just incremented, by a request sent at C{start}."""

    def finished(self, ep: Endpoint, start: float, failed: bool) -> None:
        """
        C{ep.pending} was just decremented; the request began at C{start}
        and ended in a failure (or cancellation) if C{failed}.
        """

    def describe(self, ep: Endpoint) -> dict[str, Any]:
        """Extra fields for C{/client_state.json}."""
        return {}


def _aliasTables(weights: list[float]) -> tuple[list[float], list[int]]:
    """Vose's alias method: O(1) weighted sampling after O(n) set-up."""
    n = len(weights)
    total = sum(weights)
    scaled = [w * n / total for w in weights]
    prob = [1.0] * n
    alias = list(range(n))
    small = [i for i, s in enumerate(scaled) if s < 1.0]
    large = [i for i, s in enumerate(scaled) if s >= 1.0]
    while small and large:
        s = small.pop()
        g = large.pop()
        prob[s] = scaled[s]
        alias[s] = g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    return prob, alias


class P2C(Distributor):
    """
    Power of two choices, least loaded: sample two endpoints (by weight) and
    take the one with fewer requests in flight per unit of weight.  O(1).
    """

    def _pair(self) -> tuple[Endpoint, Endpoint]:
        eps = self._eps
        n = self._n
        i = self._sample()
        if self._uniform:
            j = int(self._random() * (n - 1))
            if j >= i:
                j += 1
        else:
            j = self._sample()
            if j == i:
                j = (i + 1) % n
        return eps[i], eps[j]

    def _prefer(self, a: Endpoint, b: Endpoint) -> bool:
        return a.pending * b.weight <= b.pending * a.weight

    def pick(self, avoid: Endpoint | None) -> Endpoint | None:
        if self._n < 2:
            if self._n:
                ep = self._eps[0]
                if ep.alive and ep is not avoid and ep.client.status is _OPEN:
                    return ep
            return None
        for _ in range(self._maxEffort):
            a, b = self._pair()
            aOk = a.alive and a is not avoid and a.client.status is _OPEN
            bOk = b.alive and b is not avoid and b.client.status is _OPEN
            if aOk and bOk:
                return a if self._prefer(a, b) else b
            if aOk:
                return a
            if bOk:
                return b
        return None


class PeakEwma(P2C):
    """
    Power of two choices over peak-EWMA latency times load: latency is
    tracked as an exponentially weighted average that jumps to any higher
    observation and decays over C{decayTime} seconds.

    Beyond Finagle: while requests are in flight, their mean age is a lower
    bound on the latency, so an endpoint that turns slow is avoided before
    its first slow answer arrives; and a failed or abandoned request counts
    twice its duration and never lowers the estimate.
    """

    tracksLoad = True

    def __init__(
        self, rng: _random.Random, clock: IReactorTime, maxEffort: int, decayTime: float
    ) -> None:
        super().__init__(rng, clock, maxEffort)
        self._tau = decayTime

    def _observe(self, ep: Endpoint, rtt: float, now: float) -> None:
        if rtt > ep.cost:
            ep.cost = rtt
        else:
            w = math.exp(-max(now - ep.stamp, 0.0) / self._tau)
            ep.cost = ep.cost * w + rtt * (1.0 - w)
        ep.stamp = now

    def _load(self, ep: Endpoint, now: float) -> float:
        # Reading decays the cost, so an endpoint that was slow is retried
        # once enough time has passed.
        self._observe(ep, 0.0, now)
        cost = ep.cost
        pending = ep.pending
        if pending:
            if cost == 0.0:
                return _PENALTY + pending
            age = now - ep.startSum / pending
            if age > cost:
                cost = age
        return cost * (pending + 1)

    def _prefer(self, a: Endpoint, b: Endpoint) -> bool:
        now = self._clock.seconds()
        return self._load(a, now) * b.weight <= self._load(b, now) * a.weight

    def started(self, ep: Endpoint, start: float) -> None:
        ep.startSum += start

    def finished(self, ep: Endpoint, start: float, failed: bool) -> None:
        now = self._clock.seconds()
        ep.startSum = ep.startSum - start if ep.pending else 0.0
        rtt = now - start
        if failed:
            # Its real latency is unknown and at least this (Karn's rule for
            # retransmission timers): count it double, and never let a fast
            # failure make the endpoint look faster.
            rtt = max(ep.cost, 2.0 * rtt)
        self._observe(ep, rtt, now)

    def describe(self, ep: Endpoint) -> dict[str, Any]:
        return {"ewmaMs": round(ep.cost * 1000.0, 3)}


class Aperture(P2C):
    """
    Least loaded over a window (the aperture) of endpoints in a random but
    stable order.  The aperture widens when the smoothed load per endpoint
    in it rises above C{highLoad} and narrows below C{lowLoad}, never under
    C{minAperture}.
    """

    tracksLoad = True

    def __init__(
        self,
        rng: _random.Random,
        clock: IReactorTime,
        maxEffort: int,
        smoothWindow: float,
        lowLoad: float,
        highLoad: float,
        minAperture: int,
    ) -> None:
        super().__init__(rng, clock, maxEffort)
        self._window = smoothWindow
        self._low = lowLoad
        self._high = highLoad
        self._min = minAperture
        self._all: list[Endpoint] = []
        self._aperture = minAperture
        self._total = 0
        self._load = 0.0
        self._stamp = clock.seconds()

    @property
    def aperture(self) -> int:
        return min(self._aperture, len(self._all))

    def rebuild(self, eps: list[Endpoint]) -> None:
        self._all = sorted(eps, key=lambda ep: ep.rank)
        self._total = sum(ep.pending for ep in eps)
        self._aperture = max(self._min, min(self._aperture, len(eps)))
        self._setAperture(self._aperture)

    def _setAperture(self, size: int) -> None:
        self._aperture = size
        super().rebuild(self._all[:size])

    def _adjust(self) -> None:
        now = self._clock.seconds()
        w = math.exp(-max(now - self._stamp, 0.0) / self._window)
        self._stamp = now
        self._load = self._load * w + (self._total / max(self._n, 1)) * (1.0 - w)
        if self._load >= self._high and self._n < len(self._all):
            self._setAperture(self._n + 1)
        elif self._load <= self._low and self._n > self._min:
            self._setAperture(self._n - 1)

    def started(self, ep: Endpoint, start: float) -> None:
        self._total += 1
        self._adjust()

    def finished(self, ep: Endpoint, start: float, failed: bool) -> None:
        self._total -= 1

    def pick(self, avoid: Endpoint | None) -> Endpoint | None:
        ep = super().pick(avoid)
        if ep is None and self._n < len(self._all):
            # Everything in the aperture is unusable: look beyond it.
            self._setAperture(self._n + 1)
            ep = super().pick(avoid)
        return ep


class Heap(Distributor):
    """
    Least loaded, exactly: a binary min-heap on requests in flight, updated
    in O(log n) as requests start and finish.  Weights are ignored, as in
    Finagle.
    """

    tracksLoad = True

    def rebuild(self, eps: list[Endpoint]) -> None:
        heap = sorted(eps, key=lambda ep: ep.pending)
        for i, ep in enumerate(heap):
            ep.index = i
        self._eps = heap
        self._n = len(heap)

    def pick(self, avoid: Endpoint | None) -> Endpoint | None:
        heap = self._eps
        # The root is the least loaded; if it cannot take the request, its
        # nearest successors in heap order are nearly as good.
        for i in range(min(self._n, self._maxEffort)):
            ep = heap[i]
            if ep.alive and ep is not avoid and ep.client.status is _OPEN:
                return ep
        return None

    def _swap(self, i: int, j: int) -> None:
        heap = self._eps
        heap[i], heap[j] = heap[j], heap[i]
        heap[i].index = i
        heap[j].index = j

    def started(self, ep: Endpoint, start: float) -> None:
        heap = self._eps
        n = self._n
        i = ep.index
        while True:
            child = 2 * i + 1
            if child >= n:
                return
            if child + 1 < n and heap[child + 1].pending < heap[child].pending:
                child += 1
            if heap[child].pending >= ep.pending:
                return
            self._swap(i, child)
            i = child

    def finished(self, ep: Endpoint, start: float, failed: bool) -> None:
        heap = self._eps
        i = ep.index
        if i >= self._n or heap[i] is not ep:
            return
        while i:
            parent = (i - 1) >> 1
            if heap[parent].pending <= ep.pending:
                return
            self._swap(i, parent)
            i = parent


class RoundRobin(Distributor):
    """
    Each endpoint in turn, skipping unusable ones.  Weights are honoured by
    visiting an endpoint of weight 2 twice as often, in a smooth order.
    """

    def rebuild(self, eps: list[Endpoint]) -> None:
        super().rebuild(eps)
        self._cycle = eps if self._uniform else _smoothCycle(eps)
        self._next = 0

    def pick(self, avoid: Endpoint | None) -> Endpoint | None:
        cycle = self._cycle
        size = len(cycle)
        for _ in range(min(size, self._maxEffort)):
            ep = cycle[self._next]
            self._next = (self._next + 1) % size
            if ep.alive and ep is not avoid and ep.client.status is _OPEN:
                return ep
        return None


def _smoothCycle(eps: list[Endpoint], resolution: int = 10) -> list[Endpoint]:
    """
    One period of a smooth weighted rotation (stride scheduling): weights
    are quantised to C{resolution} steps of the smallest one, and an
    endpoint of weight M{w} appears M{w} times, evenly spaced.
    """
    smallest = min(ep.weight for ep in eps)
    weights = [max(1, round(ep.weight / smallest * resolution)) for ep in eps]
    divisor = math.gcd(*weights)
    slots = sorted(
        ((k + 0.5) / w, i) for i, w in enumerate(w // divisor for w in weights) for k in range(w)
    )
    return [eps[i] for _, i in slots]
