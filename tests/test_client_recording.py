"""
The balancer recording its client's request metrics
(C{ClientPolicy.requestStats}): every way a request can end is recorded
exactly once, including those that never reach an endpoint.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from linkrouter.client.balancer import ClientPolicy
from linkrouter.client.errors import NoEndpointsAvailable
from linkrouter.client.plugins import BalancerConfig, balancerFactory
from linkrouter.naming import ADDR_NEG, ADDR_PENDING, Var
from linkrouter.routing.stats import RequestStats
from linkrouter.telemetry.stats import MetricsRegistry
from tests.test_client_balancer import Harness, addrOf, ok

SCOPE = ("client",)


class RecordingTests(SynchronousTestCase):
    def build(self, initial: Any, answer: Any = ok) -> Harness:
        h = Harness(answer=answer)
        h.clients = {}
        h.var = Var(initial)
        stats = h.registry.statsReceiver().scope(*SCOPE)
        self.marks: list[object] = []
        policy = ClientPolicy(
            resolutionTimeout=5.0,
            requestStats=RequestStats(stats, None, h.clock),
            annotate=self.marks.append,
        )
        h.balancer = balancerFactory(BalancerConfig("p2c"), h.clock, random.Random(1)).build(
            h.var, h.connect, stats, policy
        )
        return h

    def counts(self, h: Harness) -> tuple[int, int, int, object]:
        """Requests, successes, failures and the pending gauge."""
        return (
            h.counter(*SCOPE, "requests"),
            h.counter(*SCOPE, "success"),
            h.counter(*SCOPE, "failures"),
            h.gauge(*SCOPE, "pending"),
        )

    def test_answered(self) -> None:
        h = self.build(addrOf(1, 2))
        h.send(3)
        self.assertEqual(self.counts(h), (3, 3, 0, 0.0))
        self.assertEqual(self.marks, ["req"] * 3)

    def test_waitThenAnswered(self) -> None:
        h = self.build(ADDR_PENDING)
        [d] = h.send()
        self.assertEqual(self.counts(h), (1, 0, 0, 1.0))
        h.var.set(addrOf(1))
        self.assertEqual(self.successResultOf(d), ok("req"))
        self.assertEqual(self.counts(h), (1, 1, 0, 0.0))

    def test_gaveUpWaiting(self) -> None:
        h = self.build(ADDR_PENDING)
        [d] = h.send()
        h.clock.advance(5.0)
        self.assertIsInstance(self.successResultOf(d), NoEndpointsAvailable)
        self.assertEqual(self.counts(h), (1, 0, 1, 0.0))
        self.assertEqual(h.counter(*SCOPE, "failures", "NoEndpointsAvailable"), 1)

    def test_cancelledWhileWaiting(self) -> None:
        h = self.build(ADDR_PENDING)
        d = h.balancer("req")
        d.cancel()
        self.failureResultOf(d, CancelledError)
        h.var.set(addrOf(1))
        self.assertEqual(self.counts(h), (1, 0, 1, 0.0))
        self.assertEqual(h.counter(*SCOPE, "failures", "CancelledError"), 1)

    def test_noEndpoints(self) -> None:
        h = self.build(ADDR_NEG)
        [d] = h.send()
        self.assertIsInstance(self.successResultOf(d), NoEndpointsAvailable)
        self.assertEqual(self.counts(h), (1, 0, 1, 0.0))

    def test_closeRemovesGauge(self) -> None:
        h = self.build(addrOf(1))
        h.balancer.close()
        self.assertRaises(KeyError, h.gauge, *SCOPE, "pending")


class StatusClassTests(SynchronousTestCase):
    """C{status/<N>XX} exist from the start where the protocol has status codes."""

    def test_classesUpFront(self) -> None:
        registry = MetricsRegistry()
        stats = RequestStats(registry.statsReceiver().scope("web"), None, Clock(), lambda r: r)
        names = {"/".join(n) for n, _ in registry.items()}
        self.assertEqual({f"web/status/{n}XX" for n in range(1, 6)} - names, set())
        stats.end(stats.begin(), "req", 503, None)
        count = {c: registry.counter(("web", "status", c)).value for c in ("5XX", "503", "2XX")}
        self.assertEqual(count, {"5XX": 1, "503": 1, "2XX": 0})

    def test_noClassesWithoutCodes(self) -> None:
        registry = MetricsRegistry()
        stats = RequestStats(registry.statsReceiver().scope("rpc"), None, Clock())
        stats.end(stats.begin(), "req", "reply", None)
        self.assertFalse(any("status" in names for names, _ in registry.items()))
