"""
Tests for L{linkrouter.client.balancer} and the distributors: deterministic,
with a fake clock and fake endpoint clients.
"""

from __future__ import annotations

import math
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from linkrouter.client import balancer as balancerModule
from linkrouter.client._endpoint import Endpoint
from linkrouter.client.accrual import AccrualConfig, AccrualFactory
from linkrouter.client.balancer import ClientPolicy
from linkrouter.client.distributors import PeakEwma
from linkrouter.client.errors import ConnectionFailed, NoEndpointsAvailable
from linkrouter.client.plugins import BalancerConfig, balancerFactory
from linkrouter.client.timeout import AttemptTimeout
from linkrouter.config import Backoff, RetryBudget
from linkrouter.interfaces import IBalancer, IClient, ResponseClass, Status
from linkrouter.naming import ADDR_NEG, ADDR_PENDING, AddrBound, Address, AddrFailed, Var
from linkrouter.policy.timeouts import RequestAttemptTimeout
from linkrouter.telemetry.stats import MetricsRegistry

KINDS = ("p2c", "ewma", "aperture", "heap", "roundRobin")


@implementer(IClient)
class FakeClient:
    """
    An endpoint client whose requests wait until the test answers them,
    unless C{answer} is set: then every request is answered at once with
    C{answer(request)} (a value, or an exception to fail with).
    """

    def __init__(self, port: int, answer: Any = None) -> None:
        self.port = port
        self.status = Status.OPEN
        self.answer = answer
        self.waiting: list[tuple[object, Deferred[Any]]] = []
        self.received = 0
        self.closed = False

    def __call__(self, request: object) -> Deferred[Any]:
        self.received += 1
        if self.answer is not None:
            result = self.answer(request)
            if isinstance(result, BaseException):
                return fail(result)
            return succeed(result)
        d: Deferred[Any] = Deferred()
        self.waiting.append((request, d))
        return d

    def respond(self, value: object = "ok") -> None:
        self.waiting.pop(0)[1].callback(value)

    def close(self) -> Deferred[None]:
        self.closed = True
        self.status = Status.CLOSED
        return succeed(None)


def ok(request: object) -> str:
    return "ok"


def refused(request: object) -> Exception:
    return ConnectionFailed("refused")


def broken(request: object) -> Exception:
    return ValueError("boom")


def addrOf(*ports: int, weights: dict[int, float] | None = None) -> AddrBound:
    weights = weights or {}
    return AddrBound(
        frozenset(
            Address(
                "127.0.0.1", p, frozenset({("weight", weights[p])}) if p in weights else frozenset()
            )
            for p in ports
        )
    )


class Harness:
    """A balancer over fake clients, with its clock, metrics and endpoint Var."""

    def __init__(
        self,
        kind: str = "p2c",
        ports: tuple[int, ...] = (1, 2, 3),
        answer: Any = None,
        accrual: AccrualConfig | None = None,
        seed: int = 7,
        weights: dict[int, float] | None = None,
        timeout: float | None = None,
        **policy: Any,
    ) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.registry = MetricsRegistry()
        self.clients: dict[int, FakeClient] = {}
        self.allClients: list[FakeClient] = []
        self.answer = answer
        self.timeout = timeout
        self.var: Var[Any] = Var(addrOf(*ports, weights=weights))
        config = BalancerConfig(kind, enableProbation=policy.pop("enableProbation", False))
        rng = random.Random(seed)
        factory = balancerFactory(config, self.clock, rng)
        accrualFactory = AccrualFactory(
            accrual or AccrualConfig(backoff=Backoff("constant", 1000, 1000)), self.clock, rng
        )
        self.balancer = factory.build(
            self.var,
            self.connect,
            self.registry.statsReceiver(),
            ClientPolicy(accrual=accrualFactory, **policy),
        )

    def connect(self, address: Address) -> IClient:
        client = self.clients[address.port] = FakeClient(address.port, self.answer)
        self.allClients.append(client)
        if self.timeout is not None:
            return AttemptTimeout(client, self.timeout, self.clock)
        return client

    def counter(self, *names: str) -> int:
        return int(self.registry.counter(names).value)

    def gauge(self, *names: str) -> object:
        for key, metric in self.registry.items():
            if key == names:
                return metric.read()  # type: ignore[union-attr]
        raise KeyError(names)

    def send(self, n: int = 1, request: object = "req") -> list[Deferred[Any]]:
        """Send C{n} requests; failures become their exception as a result."""
        return [self.balancer(request).addErrback(lambda f: f.value) for _ in range(n)]

    def received(self) -> dict[int, int]:
        return {p: c.received for p, c in self.clients.items()}


class InterfaceTests(SynchronousTestCase):
    def test_provides(self) -> None:
        for kind in KINDS:
            h = Harness(kind)
            self.assertTrue(verifyObject(IBalancer, h.balancer))
            self.assertIs(h.balancer.status, Status.OPEN)

    def test_sendsAndAnswers(self) -> None:
        for kind in KINDS:
            h = Harness(kind, answer=ok)
            self.assertEqual(self.successResultOf(h.balancer("x")), "ok")
            self.assertEqual(h.gauge("loadbalancer", "size"), 3)
            self.assertEqual(h.gauge("loadbalancer", "available"), 3)
            self.assertEqual(h.gauge("loadbalancer", "load"), 0)


class DistributionTests(SynchronousTestCase):
    def test_leastLoadedKeepsLoadEven(self) -> None:
        """
        The least-loaded balancers keep requests in flight within a small
        band of each other.
        """
        for kind in ("p2c", "ewma", "heap", "aperture"):
            h = Harness(kind, ports=(1, 2, 3, 4))
            for _ in range(10):
                # The aperture's load average needs time to see the load.
                h.send(20)
                h.clock.advance(1)
            pending = [len(c.waiting) for c in h.clients.values()]
            self.assertEqual(sum(pending), 200)
            spread = {"heap": 1, "aperture": 30}.get(kind, 3)
            self.assertLessEqual(max(pending) - min(pending), spread, kind)
            self.assertEqual(h.gauge("loadbalancer", "load"), 200)

    def test_leastLoadedAvoidsBusyEndpoint(self) -> None:
        """An endpoint holding many requests gets no new ones."""
        for kind in ("p2c", "ewma", "heap"):
            h = Harness(kind)
            h.send(30)
            for c in (h.clients[1], h.clients[2]):
                while c.waiting:
                    c.respond()
            before = h.clients[3].received
            h.send(10)
            self.assertEqual(h.clients[3].received, before, kind)

    def test_roundRobinCycles(self) -> None:
        h = Harness("roundRobin", answer=ok)
        h.send(30)
        self.assertEqual(sorted(h.received().values()), [10, 10, 10])

    def test_weights(self) -> None:
        """Weighted balancers send in proportion to C{Address.weight}."""
        for kind in ("p2c", "ewma", "roundRobin"):
            h = Harness(kind, ports=(1, 2), answer=ok, weights={2: 3.0})
            h.send(4000)
            share = h.clients[2].received / 4000
            self.assertTrue(0.7 < share < 0.8, (kind, share))

    def test_weightsUnderLoad(self) -> None:
        """Under load, p2c keeps in-flight requests proportional to weight."""
        h = Harness("p2c", ports=(1, 2), weights={2: 2.0})
        h.send(300)
        self.assertTrue(190 <= len(h.clients[2].waiting) <= 210, len(h.clients[2].waiting))

    def test_ewmaPrefersFast(self) -> None:
        """Peak EWMA learns which endpoint answers faster."""
        h = Harness("ewma", ports=(1, 2))
        fast, slow = h.clients[1], h.clients[2]
        for _ in range(200):
            h.send(1)
            h.clock.advance(0.01)
            while fast.waiting:
                fast.respond()
            if h.clock.seconds() % 0.1 < 0.01:
                while slow.waiting:
                    slow.respond()
        self.assertGreater(fast.received, 4 * slow.received)

    def test_apertureNarrowsAndWidens(self) -> None:
        """
        At low load the aperture shrinks to C{minAperture}; under load it
        widens to cover every endpoint.
        """
        h = Harness("aperture", ports=tuple(range(1, 11)), answer=ok)
        for _ in range(200):
            h.send(1)
            h.clock.advance(0.1)
        before = h.received()
        h.send(50)
        used = [p for p, n in h.received().items() if n != before[p]]
        self.assertEqual(len(used), 1)
        h2 = Harness("aperture", ports=tuple(range(1, 11)))
        for _ in range(100):
            h2.send(5)
            h2.clock.advance(0.1)
        self.assertEqual(len([c for c in h2.clients.values() if c.received]), 10)

    def test_pickSkipsBusyClients(self) -> None:
        """An endpoint whose client is not open is skipped while others are."""
        for kind in KINDS:
            h = Harness(kind, answer=ok)
            h.clients[1].status = Status.BUSY
            h.send(30)
            self.assertEqual(h.clients[1].received, 0, kind)
            for c in h.clients.values():
                c.status = Status.BUSY
            self.assertIs(h.balancer.status, Status.BUSY)
            # Everything busy: requests still go somewhere (the pool queues).
            self.successResultOf(h.balancer("x"))


class PeakEwmaTests(SynchronousTestCase):
    """
    The peak-EWMA distributor against Finagle's algorithm: the load is the
    latency estimate times (requests in flight + 1); an observation above
    the estimate replaces it, one below moves it by M{1 - exp(-dt/tau)}, and
    reading decays it towards zero; an endpoint with requests in flight and
    no latency yet is avoided.  Two endpoints, so every pick compares both.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.ewma = PeakEwma(random.Random(0), self.clock, 5, decayTime=10.0)
        accrual = AccrualFactory(AccrualConfig(), self.clock)
        self.a, self.b = (
            Endpoint(Address("127.0.0.1", port), FakeClient(port), accrual(), 0.0)
            for port in (1, 2)
        )
        self.ewma.rebuild([self.a, self.b])

    def start(self, ep: Endpoint) -> float:
        ep.pending += 1
        now = self.clock.seconds()
        self.ewma.started(ep, now)
        return now

    def finish(self, ep: Endpoint, start: float, failed: bool = False) -> None:
        ep.pending -= 1
        self.ewma.finished(ep, start, failed)

    def observe(self, ep: Endpoint, rtt: float, failed: bool = False) -> None:
        start = self.start(ep)
        self.clock.advance(rtt)
        self.finish(ep, start, failed)

    def ewmaMs(self, ep: Endpoint) -> float:
        return float(self.ewma.describe(ep)["ewmaMs"])

    def test_defaultDecayTime(self) -> None:
        """C{decayTimeMs} defaults to 10 s, as in Linkerd."""
        self.assertEqual(BalancerConfig("ewma").decayTimeMs, 10000)

    def test_peakReplacesAtOnce(self) -> None:
        self.observe(self.a, 0.1)
        self.observe(self.a, 0.5)
        self.assertEqual(self.ewmaMs(self.a), 500.0)

    def test_lowerObservationMovesByElapsedTime(self) -> None:
        self.observe(self.a, 0.5)
        self.clock.advance(9.9)
        self.observe(self.a, 0.1)
        w = math.exp(-1.0)
        self.assertAlmostEqual(self.ewmaMs(self.a), 1000 * (0.5 * w + 0.1 * (1 - w)), 2)

    def test_readingDecays(self) -> None:
        """An idle endpoint's estimate decays, so a slow one is tried again."""
        self.observe(self.a, 0.5)
        self.clock.advance(10.0)
        self.ewma.pick(None)
        self.assertAlmostEqual(self.ewmaMs(self.a), 500 * math.exp(-1.0), 2)

    def test_loadIsCostTimesPendingPlusOne(self) -> None:
        self.observe(self.a, 0.1)
        self.observe(self.b, 0.3)
        for _ in range(3):
            self.start(self.a)
        # 0.1 * 4 against 0.3 * 1, then 0.3 * 2.
        self.assertIs(self.ewma.pick(None), self.b)
        self.start(self.b)
        self.assertIs(self.ewma.pick(None), self.a)

    def test_unmeasuredEndpointPenalised(self) -> None:
        """
        No latency yet: free while idle, avoided once it holds a request
        until its first answer.
        """
        self.observe(self.b, 5.0)
        for _ in range(3):
            self.start(self.b)
        self.assertIs(self.ewma.pick(None), self.a)
        self.start(self.a)
        self.assertIs(self.ewma.pick(None), self.b)

    def test_requestsInFlightBoundTheLatency(self) -> None:
        """
        Beyond Finagle: a request in flight longer than the estimate raises
        it, before the slow answer comes.
        """
        self.observe(self.a, 0.1)
        self.observe(self.b, 0.5)
        self.start(self.a)
        # a: 0.1 * 2 against b: 0.5; a second later, a: 1.0 * 2.
        self.assertIs(self.ewma.pick(None), self.a)
        self.clock.advance(1.0)
        self.assertIs(self.ewma.pick(None), self.b)

    def test_failureNeverLowers(self) -> None:
        """
        Beyond Finagle: a failed or cancelled request counts twice its
        duration, and never lowers the estimate.
        """
        self.observe(self.a, 0.5)
        self.observe(self.a, 0.1, failed=True)
        self.assertEqual(self.ewmaMs(self.a), 500.0)
        self.observe(self.a, 1.0, failed=True)
        self.assertEqual(self.ewmaMs(self.a), 2000.0)


class AccrualTests(SynchronousTestCase):
    def test_consecutiveFailuresMarkDead(self) -> None:
        """
        Five consecutive failures mark an endpoint dead; it gets no traffic
        until its backoff expires, then exactly one probe, which revives it.
        """
        h = Harness("p2c", answer=ok)
        bad = h.clients[1]
        bad.answer = broken
        while h.counter("failure_accrual", "removals") == 0:
            h.send(1)
        self.assertEqual(h.counter("failure_accrual", "removals"), 1)
        received = bad.received
        h.send(50)
        self.assertEqual(bad.received, received)
        [state] = [s for s in h.balancer.endpointStates() if s["address"] == "127.0.0.1:1"]
        self.assertEqual(state["state"], "dead")
        self.assertEqual(state["deadUntilMs"], int((h.clock.seconds() + 1) * 1000))

        h.clock.advance(1)
        bad.answer = None  # hold the probe
        h.send(50)
        self.assertEqual(len(bad.waiting), 1)
        self.assertEqual(h.counter("failure_accrual", "probes"), 1)
        h.clock.advance(0.5)
        bad.respond()
        self.assertEqual(h.counter("failure_accrual", "revivals"), 1)
        self.assertEqual(h.counter("failure_accrual", "removed_for_ms"), 1500)
        bad.answer = ok
        h.send(60)
        self.assertGreater(bad.received, received + 10)

    def test_failedProbeBacksOff(self) -> None:
        h = Harness(
            "roundRobin",
            answer=ok,
            accrual=AccrualConfig(failures=1, backoff=Backoff("jittered", 1000, 100000)),
        )
        h.clients[1].answer = broken
        h.send(3)
        self.assertEqual(h.counter("failure_accrual", "removals"), 1)
        delays = []
        for _ in range(4):
            state = next(s for s in h.balancer.endpointStates() if s["address"].endswith(":1"))
            delays.append(round(state["deadUntilMs"] / 1000 - h.clock.seconds(), 2))
            h.clock.advance(delays[-1] + 0.01)
            h.send(3)
        self.assertEqual(delays[0], 1.0)
        self.assertEqual(h.counter("failure_accrual", "probes"), 4)
        self.assertEqual(h.counter("failure_accrual", "revivals"), 0)
        self.assertTrue(all(1.0 <= d <= 100.0 for d in delays), delays)
        self.assertGreater(max(delays), 1.0)

    def test_maxEjectionPercent(self) -> None:
        """At most half the endpoints are dead at once (by default)."""
        h = Harness("p2c", ports=(1, 2, 3, 4, 5), answer=broken)
        h.send(200)
        dead = [s for s in h.balancer.endpointStates() if s["state"] == "dead"]
        self.assertEqual(len(dead), 2)
        self.assertGreater(h.counter("failure_accrual", "removals_limited"), 0)

    def test_maxEjectionPercentZero(self) -> None:
        h = Harness("p2c", answer=broken, accrual=AccrualConfig(maxEjectionPercent=0))
        h.send(100)
        self.assertEqual(h.counter("failure_accrual", "removals"), 0)

    def test_allDeadTriesLeastRecentlyFailed(self) -> None:
        """
        When every endpoint is dead, requests go to the one that failed
        least recently rather than failing outright; a success revives it.
        """
        h = Harness(
            "p2c",
            ports=(1, 2),
            answer=broken,
            accrual=AccrualConfig(
                failures=1, maxEjectionPercent=100, backoff=Backoff("constant", 60000, 60000)
            ),
        )
        while h.counter("failure_accrual", "removals") < 2:
            h.send(1)
            h.clock.advance(1)
        states = {s["address"]: s for s in h.balancer.endpointStates()}
        self.assertEqual({s["state"] for s in states.values()}, {"dead"})
        self.assertIs(h.balancer.status, Status.BUSY)
        for c in h.clients.values():
            c.answer = ok
        counts = h.received()
        self.assertEqual(self.successResultOf(h.balancer("x")), "ok")
        self.assertEqual(h.counter("failure_accrual", "revivals"), 1)
        changed = [p for p in counts if h.received()[p] != counts[p]]
        self.assertEqual(len(changed), 1)

    def test_allDeadFallbackFailureKeepsBackoff(self) -> None:
        """
        Requests sent to a dead endpoint because nothing else could take
        them are not probes: their failures neither restart its backoff nor
        log it dead again.
        """
        h = Harness(
            "p2c",
            ports=(1,),
            answer=broken,
            accrual=AccrualConfig(failures=1, maxEjectionPercent=100),
        )
        h.send(1)
        timers = h.clock.getDelayedCalls()
        self.assertEqual(len(timers), 1)
        until = timers[0].getTime()
        logged: list[object] = []
        self.patch(balancerModule.log, "info", lambda *a, **kw: logged.append(a))
        h.send(20)
        self.assertEqual(h.clients[1].received, 21)
        self.assertEqual([t.getTime() for t in h.clock.getDelayedCalls()], [until])
        self.assertEqual((logged, h.counter("failure_accrual", "probes")), ([], 0))

    def test_singleEndpointNeverFailsFast(self) -> None:
        """A lone failing endpoint keeps getting requests (and can recover)."""
        h = Harness("p2c", ports=(1,), answer=broken)
        h.send(20)
        self.assertEqual(h.clients[1].received, 20)
        h.clients[1].answer = ok
        self.assertEqual(self.successResultOf(h.balancer("x")), "ok")
        self.assertEqual(h.counter("failure_accrual", "revivals"), 1)

    def test_classifierDecides(self) -> None:
        """A response the classifier calls a failure counts as one."""

        def classify(req: object, rsp: object, f: Failure | None) -> ResponseClass:
            if rsp == "500":
                return ResponseClass.NON_RETRYABLE_FAILURE
            return ResponseClass.SUCCESS

        h = Harness("roundRobin", answer=ok, classify=classify)
        h.clients[2].answer = lambda r: "500"
        results = [self.successResultOf(d) for d in h.send(30)]
        self.assertIn("500", results)
        self.assertEqual(h.counter("failure_accrual", "removals"), 1)

    def test_classifierErrorCountsAsFailureOnlyForFailures(self) -> None:
        def classify(req: object, rsp: object, f: Failure | None) -> ResponseClass:
            raise RuntimeError("bug")

        h = Harness("p2c", answer=ok, classify=classify)
        self.assertEqual(self.successResultOf(h.balancer("x")), "ok")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_cancellationIsNotAFailure(self) -> None:
        h = Harness("p2c", ports=(1,), accrual=AccrualConfig(failures=1))
        d = h.balancer("x")
        d.cancel()
        self.failureResultOf(d)
        self.assertEqual(h.counter("failure_accrual", "removals"), 0)
        self.assertEqual(h.clients[1].waiting[0][1].called, True)
        self.assertEqual(h.gauge("loadbalancer", "load"), 0)

    def test_failFast(self) -> None:
        h = Harness("p2c", answer=ok, failFast=True, requeueBudget=RetryBudget(0, 0.0, 10))
        h.clients[1].answer = refused
        while h.clients[1].received == 0:
            h.send(1)
        self.assertEqual(h.counter("failure_accrual", "removals"), 1)

    def test_noAccrual(self) -> None:
        h = Harness("p2c", answer=broken, accrual=AccrualConfig("none"))
        h.send(100)
        self.assertEqual(h.counter("failure_accrual", "removals"), 0)


class RequeueTests(SynchronousTestCase):
    def test_requeuedElsewhere(self) -> None:
        """A request refused before being written goes to another endpoint."""
        h = Harness("roundRobin", answer=ok)
        h.clients[1].answer = refused
        results = [self.successResultOf(d) for d in h.send(9)]
        self.assertEqual(results, ["ok"] * 9)
        self.assertEqual(h.counter("retries", "requeues"), h.clients[1].received)
        self.assertGreater(h.clients[1].received, 1)

    def test_writtenFailuresAreNotRequeued(self) -> None:
        h = Harness("roundRobin", answer=broken)
        self.failureResultOf(h.balancer("x"), ValueError)
        self.assertEqual(h.counter("retries", "requeues"), 0)

    def test_writtenAnythingAttribute(self) -> None:
        class Reset(Exception):
            writtenAnything = False

        h = Harness("roundRobin", answer=ok)
        h.clients[1].answer = lambda r: Reset()
        self.assertEqual([self.successResultOf(d) for d in h.send(3)], ["ok"] * 3)
        self.assertEqual(h.counter("retries", "requeues"), h.clients[1].received)

    def test_budgetExhausted(self) -> None:
        """Requeues stop when the budget is spent; the failure surfaces."""
        h = Harness(
            "p2c",
            answer=refused,
            accrual=AccrualConfig("none"),
            requeueBudget=RetryBudget(minRetriesPerSec=1, percentCanRetry=0.0, ttlSecs=2),
        )
        self.failureResultOf(h.balancer("x"), ConnectionFailed)
        self.assertEqual(h.counter("retries", "requeues"), 2)
        self.assertEqual(h.counter("retries", "budget_exhausted"), 1)
        self.failureResultOf(h.balancer("x"), ConnectionFailed)
        self.assertEqual(h.counter("retries", "requeues"), 2)

    def test_requeueFromRemovedEndpoint(self) -> None:
        """A request refused by an endpoint removed meanwhile is requeued."""
        h = Harness("p2c", ports=(1,))
        d = h.balancer("x")
        h.var.set(addrOf(2))
        h.clients[1].waiting.pop()[1].errback(ConnectionFailed("refused"))
        self.assertTrue(h.clients[1].closed)
        h.clients[2].respond("there")
        self.assertEqual(self.successResultOf(d), "there")

    def test_requeueBoundedPerRequest(self) -> None:
        h = Harness(
            "p2c",
            answer=refused,
            accrual=AccrualConfig("none"),
            requeueBudget=RetryBudget(minRetriesPerSec=1000, ttlSecs=10),
        )
        self.failureResultOf(h.balancer("x"), ConnectionFailed)
        self.assertEqual(h.counter("retries", "requeues"), 25)


class ChurnTests(SynchronousTestCase):
    def test_removedEndpointDrains(self) -> None:
        """
        An endpoint removed from the name keeps its in-flight requests,
        takes no new ones, and is closed once they finish.
        """
        for kind in KINDS:
            h = Harness(kind)
            ds = h.send(30)
            gone = max(h.clients.values(), key=lambda c: len(c.waiting))
            inflight = len(gone.waiting)
            h.var.set(addrOf(*({1, 2, 3, 4} - {gone.port})))
            self.assertEqual(h.gauge("loadbalancer", "size"), 3)
            self.assertFalse(gone.closed)
            before = gone.received
            h.send(30)
            self.assertEqual(gone.received, before)
            self.assertGreater(h.clients[4].received, 0)
            states = {s["address"]: s["state"] for s in h.balancer.endpointStates()}
            self.assertEqual(states[f"127.0.0.1:{gone.port}"], "draining")
            while gone.waiting:
                gone.respond()
            self.assertTrue(gone.closed, kind)
            self.assertEqual(
                len([d for d in ds if d.called]), inflight, "in-flight requests completed"
            )
            self.assertEqual(h.counter("loadbalancer", "removes"), 1)
            self.assertEqual(h.counter("loadbalancer", "adds"), 4)

    def test_churnUnderLoad(self) -> None:
        """Random endpoint churn while requests flow loses no request."""
        for kind in KINDS:
            rng = random.Random(3)
            h = Harness(kind, ports=(1, 2, 3, 4, 5, 6))
            results: list[object] = []
            for step in range(300):
                for d in h.send(3):
                    d.addBoth(results.append)
                if step % 10 == 0:
                    h.var.set(addrOf(*sorted(rng.sample(range(1, 12), rng.randint(1, 6)))))
                for c in list(h.allClients):
                    if c.waiting and rng.random() < 0.5:
                        c.respond()
            for c in h.allClients:
                while c.waiting:
                    c.respond()
            self.assertEqual(results, ["ok"] * 900, kind)
            open_ = {p for p, c in h.clients.items() if not c.closed}
            current = {int(s["address"].split(":")[1]) for s in h.balancer.endpointStates()}
            self.assertEqual(open_, current)

    def test_weightChangeKeepsEndpoint(self) -> None:
        h = Harness("p2c", ports=(1, 2))
        client = h.clients[1]
        h.var.set(addrOf(1, 2, weights={1: 5.0}))
        self.assertIs(h.clients[1], client)
        self.assertFalse(client.closed)
        weights = {s["address"]: s["weight"] for s in h.balancer.endpointStates()}
        self.assertEqual(weights["127.0.0.1:1"], 5.0)

    def test_negAndPending(self) -> None:
        h = Harness("p2c", ports=(1,), answer=ok)
        h.var.set(ADDR_PENDING)
        self.successResultOf(h.balancer("x"))
        h.var.set(ADDR_NEG)
        self.failureResultOf(h.balancer("x"), NoEndpointsAvailable)
        self.assertTrue(h.clients[1].closed)
        h.var.set(addrOf(2))
        self.successResultOf(h.balancer("x"))

    def test_probation(self) -> None:
        """
        With C{enableProbation}, a removed endpoint stays until it fails.
        """
        h = Harness("roundRobin", ports=(1, 2), answer=ok, enableProbation=True)
        h.var.set(addrOf(1))
        h.send(4)
        self.assertEqual(h.clients[2].received, 2)
        states = {s["address"]: s for s in h.balancer.endpointStates()}
        self.assertTrue(states["127.0.0.1:2"]["probation"])
        h.clients[2].answer = broken
        h.send(4)
        self.assertTrue(h.clients[2].closed)
        self.assertEqual(h.gauge("loadbalancer", "size"), 1)

    def test_connectFailureSkipsEndpoint(self) -> None:
        h = Harness("p2c", ports=(1,), answer=ok)

        def connect(address: Address) -> FakeClient:
            raise OSError("no")

        h.balancer._connect = connect  # type: ignore[attr-defined]
        h.var.set(addrOf(1, 2))
        self.assertEqual(h.gauge("loadbalancer", "size"), 1)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_close(self) -> None:
        h = Harness("p2c")
        d = h.balancer("x")
        closed = h.balancer.close()
        self.assertNoResult(closed)
        self.assertIs(h.balancer.status, Status.CLOSED)
        self.failureResultOf(h.balancer("y"), NoEndpointsAvailable)
        for c in h.clients.values():
            while c.waiting:
                c.respond()
        self.successResultOf(d)
        self.successResultOf(closed)
        self.assertTrue(all(c.closed for c in h.clients.values()))
        h.var.set(addrOf(7))
        self.assertNotIn(7, h.clients)


class TimeoutTests(SynchronousTestCase):
    def test_attemptTimeout(self) -> None:
        clock = Clock()
        inner = FakeClient(1)
        client = AttemptTimeout(inner, 1.5, clock)
        self.assertTrue(verifyObject(IClient, client))
        d = client("x")
        clock.advance(1.4)
        self.assertNoResult(d)
        clock.advance(0.1)
        self.failureResultOf(d, RequestAttemptTimeout)
        inner.waiting.clear()
        d2 = client("y")
        inner.respond("fine")
        self.assertEqual(self.successResultOf(d2), "fine")
        self.assertEqual(clock.getDelayedCalls(), [])
        d3 = client("z")
        d3.cancel()
        self.failureResultOf(d3).trap(Exception)

    def test_timeoutsFeedAccrual(self) -> None:
        """An attempt that times out counts as a failure of its endpoint."""
        h = Harness("roundRobin", ports=(1, 2), timeout=1.0)
        ds = h.send(10)
        while h.clients[2].waiting:
            h.clients[2].respond()
        h.clock.advance(1)
        self.assertEqual(len([d for d in ds if d.called]), 10)
        self.assertEqual(h.counter("failure_accrual", "removals"), 1)
        self.assertEqual(h.clock.getDelayedCalls()[0].getTime(), h.clock.seconds() + 1)


class SuccessRatePolicyTests(SynchronousTestCase):
    def test_successRateEjectsFlakyEndpoint(self) -> None:
        """Both success-rate policies eject a flaky endpoint, not healthy ones."""
        configs = [
            AccrualConfig("io.l5d.successRate", successRate=0.9, requests=20),
            AccrualConfig("io.l5d.successRateWindowed", successRate=0.9, window=2),
        ]
        for config in configs:
            h = Harness("p2c", answer=ok, accrual=config)
            flaky = iter(range(10**6))

            def flip(r: object, flaky: Any = flaky) -> object:
                return broken(r) if next(flaky) % 2 else "ok"

            h.clients[1].answer = flip
            for _ in range(300):
                h.send(2)
                h.clock.advance(0.05)
                if h.counter("failure_accrual", "removals"):
                    break
            states = {s["address"]: s["state"] for s in h.balancer.endpointStates()}
            self.assertEqual(states["127.0.0.1:1"], "dead", config.kind)
            self.assertEqual(h.counter("failure_accrual", "removals"), 1)


class InvariantTests(SynchronousTestCase):
    @settings(max_examples=60, deadline=None)
    @given(
        kind=st.sampled_from(KINDS),
        ops=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 10**6)), max_size=120),
    )
    def test_randomOperations(self, kind: str, ops: list[tuple[int, int]]) -> None:
        """
        Whatever happens (requests, answers, failures, refusals, time,
        endpoint churn), every request completes once, the dead count is
        right and within the ejection limit, and exactly the removed idle
        endpoints are closed.
        """
        h = Harness(kind, ports=(1, 2, 3, 4), accrual=AccrualConfig(failures=2))
        outcomes: list[object] = []
        sent = 0
        for op, arg in ops:
            if op == 0:
                sent += 1
                h.balancer("x").addBoth(outcomes.append)
            elif op in (1, 2, 3):
                waiting = [c for c in h.allClients if c.waiting]
                if waiting:
                    c = waiting[arg % len(waiting)]
                    d = c.waiting.pop(0)[1]
                    if op == 1:
                        d.callback("ok")
                    else:
                        d.errback(ValueError() if op == 2 else ConnectionFailed())
            elif op == 4:
                h.clock.advance(arg % 3000 / 1000)
            else:
                ports = [p for p in range(1, 9) if arg >> p & 1]
                h.var.set(addrOf(*ports))
            b = h.balancer
            dead = [ep for ep in b._eps if ep.state != 0]  # type: ignore[attr-defined]
            self.assertEqual(len(dead), b._dead)  # type: ignore[attr-defined]
            if b._eps:  # type: ignore[attr-defined]
                self.assertLessEqual(b._dead, b._ejectionLimit())  # type: ignore[attr-defined]
        for c in h.allClients:
            while c.waiting:
                c.respond()
        self.assertEqual(len(outcomes), sent)
        live = {id(ep.client) for ep in h.balancer._eps}  # type: ignore[attr-defined]
        for c in h.allClients:
            self.assertEqual(c.closed, id(c) not in live)
        self.flushLoggedErrors()


class LeftoverTimerTests(SynchronousTestCase):
    """Draining or closing never leaves a C{_probeReady} timer behind."""

    def failAll(self, client: FakeClient) -> None:
        while client.waiting:
            client.waiting.pop(0)[1].errback(ValueError("boom"))

    def test_failureOnDrainingEndpoint(self) -> None:
        h = Harness("roundRobin", ports=(1, 2), accrual=AccrualConfig(failures=1))
        ds = h.send(4)
        h.var.set(addrOf(2))
        self.failAll(h.clients[1])
        for d in ds:
            d.addErrback(lambda f: None)
        self.assertEqual(h.clock.getDelayedCalls(), [])
        self.assertTrue(h.clients[1].closed)

    def test_deadEndpointRemoved(self) -> None:
        h = Harness("roundRobin", ports=(1, 2), accrual=AccrualConfig(failures=1))
        ds = h.send(4)
        h.clients[1].waiting.pop(0)[1].errback(ValueError("boom"))
        self.assertEqual(len(h.clock.getDelayedCalls()), 1)
        h.var.set(addrOf(2))
        self.assertEqual(h.clock.getDelayedCalls(), [])
        self.failAll(h.clients[1])
        self.assertEqual(h.clock.getDelayedCalls(), [])
        del ds

    def test_probeOnRemovedEndpoint(self) -> None:
        h = Harness("roundRobin", ports=(1,), accrual=AccrualConfig(failures=1))
        h.send(1)
        self.failAll(h.clients[1])
        h.clock.advance(3600)  # past the backoff: ready for its probe
        probe = h.send(1)
        self.assertEqual(h.counter("failure_accrual", "probes"), 1)
        h.var.set(addrOf(2))
        self.failAll(h.clients[1])
        self.assertEqual(h.clock.getDelayedCalls(), [])
        del probe

    def test_probeFailsAfterClose(self) -> None:
        h = Harness("roundRobin", ports=(1,), accrual=AccrualConfig(failures=1))
        h.send(1)
        self.failAll(h.clients[1])
        h.clock.advance(3600)  # past the backoff: ready for its probe
        h.send(1)
        closed = h.balancer.close()
        self.failAll(h.clients[1])
        self.successResultOf(closed)
        self.assertEqual(h.clock.getDelayedCalls(), [])


class PendingAddressTests(SynchronousTestCase):
    """
    Requests that arrive before a bound name's addresses are known (a host
    name being resolved) wait for them instead of failing.
    """

    def build(self, initial: Any) -> Harness:
        h = Harness(answer=ok, resolutionTimeout=5.0)
        h.clients = {}
        h.var = Var(initial)
        h.balancer = balancerFactory(BalancerConfig("p2c"), h.clock, random.Random(1)).build(
            h.var, h.connect, h.registry.statsReceiver(), ClientPolicy(resolutionTimeout=5.0)
        )
        return h

    def test_waitsForAddresses(self) -> None:
        h = self.build(ADDR_PENDING)
        [d] = h.send()
        self.assertNoResult(d)
        h.var.set(addrOf(1))
        self.assertEqual(self.successResultOf(d), ok("req"))
        self.assertEqual(h.received(), {1: 1})

    def test_givesUpAfterTimeout(self) -> None:
        h = self.build(ADDR_PENDING)
        [d] = h.send()
        h.clock.advance(5.0)
        self.assertIsInstance(self.successResultOf(d), NoEndpointsAvailable)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_failedResolution(self) -> None:
        h = self.build(ADDR_PENDING)
        [d] = h.send()
        h.var.set(AddrFailed("no such host"))
        error = self.successResultOf(d)
        self.assertIsInstance(error, NoEndpointsAvailable)
        self.assertIn("no such host", str(error))

    def test_cancelWhileWaiting(self) -> None:
        h = self.build(ADDR_PENDING)
        d = h.balancer("req")
        d.cancel()
        self.failureResultOf(d)
        h.var.set(addrOf(1))
        self.assertEqual(h.received(), {1: 0})

    def test_closeReleasesWaiters(self) -> None:
        h = self.build(ADDR_PENDING)
        [d] = h.send()
        self.successResultOf(h.balancer.close())
        self.assertIsInstance(self.successResultOf(d), NoEndpointsAvailable)


class ShrinkingSetTests(SynchronousTestCase):
    def test_ejectionLimitHoldsWhenTheSetShrinks(self) -> None:
        """
        Two of four endpoints dead is within the 50% limit; when the set
        shrinks to those two, the one that failed first is revived so that
        at most one of two stays dead.
        """
        h = Harness("roundRobin", ports=(1, 2, 3, 4))
        b: Any = h.balancer
        for port in (3, 4):
            b._markDead(b._byKey[("127.0.0.1", port)])
            h.clock.advance(0.001)
        self.assertEqual(b._dead, 2)
        h.var.set(addrOf(3, 4))
        states = {ep.key[1]: ep.state for ep in b._eps}
        self.assertEqual(states[3], 0)
        self.assertNotEqual(states[4], 0)
        self.assertEqual(b._dead, 1)
