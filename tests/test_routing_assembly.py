"""
L{linkrouter.routing.assembly.buildRouter}: the request metrics of the
service and client scopes, which the retry filter and the balancer record
in their own callbacks, count each request once, with the same names and
values as a separate stats layer around each would; and the client's
connection metrics, which its endpoints' pools report.
"""

from __future__ import annotations

import os
from typing import Any

import attrs
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from linkrouter._plugins import PluginRegistry
from linkrouter.client.errors import ConnectionFailed
from linkrouter.config import ClientParams, parseLinkerConfig
from linkrouter.context import BuildContext
from linkrouter.interfaces import IClient, Status
from linkrouter.naming import AddrBound, Address, Bound, Path, Var
from linkrouter.policy.timeouts import NANOS, Deadline, DeadlineExceeded
from linkrouter.routing import Identified, Router
from linkrouter.routing.assembly import ProtocolHooks, buildRouter
from linkrouter.routing.stats import ConnectionStats
from linkrouter.telemetry.stats import Counter, Gauge, Histogram, MetricsRegistry

_REGISTRY = PluginRegistry.discover()

CONFIG = """
routers:
- protocol: http
  label: rt1
  dtab: /svc/* => /$/inet/127.0.0.1/8080;
  servers:
  - port: 4140
  client:
    failureAccrual:
      kind: none
  service:
    responseClassifier:
      kind: {classifier}
    retries:
      backoff:
        kind: constant
        ms: 0
"""

PER_PREFIX = """
routers:
- protocol: http
  label: rt1
  dtab: /svc/foo => /$/inet/127.0.0.1/8080; /svc/bar => /$/inet/127.0.0.1/8081;
  servers:
  - port: 4140
  client:
    failureAccrual:
      kind: none
  service:
    kind: io.l5d.static
    configs:
    - prefix: /
      responseClassifier:
        kind: io.l5d.http.nonRetryable5XX
    - prefix: /svc/foo
      responseClassifier:
        kind: {classifier}
"""

_OTHERS = ("loadbalancer", "retries", "timeouts", "failure_accrual")
SERVICE = ("rt", "rt1", "service", "svc/foo")
CLIENT = ("rt", "rt1", "client", "$/inet/127.0.0.1/8080")


@attrs.define
class _Request:
    method: bytes = b"GET"
    deadline: Deadline | None = None
    marks: list[str] = attrs.field(factory=list)


@attrs.define
class _Response:
    status: int
    headers: dict[bytes, bytes] = attrs.field(factory=dict)


@implementer(IClient)
class _Endpoint:
    """Answers are given by the test: C{waiting} holds one per request."""

    status = Status.OPEN

    def __init__(self) -> None:
        self.waiting: list[Deferred[Any]] = []

    def __call__(self, request: object) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.waiting.append(d)
        return d

    def close(self) -> Deferred[Any]:
        return Deferred()


class _Pool(_Endpoint):
    """An endpoint whose (pretend) connections are counted."""

    def __init__(self, address: Address) -> None:
        _Endpoint.__init__(self)
        self.address = address
        self.stats: ConnectionStats | None = None
        self.open = 0

    def countConnections(self, stats: ConnectionStats) -> None:
        self.stats = stats

    def connect(self) -> None:
        assert self.stats is not None
        self.open += 1
        self.stats.connected()

    def lose(self) -> None:
        assert self.stats is not None
        self.open -= 1
        self.stats.closed()

    def close(self) -> Deferred[Any]:
        while self.open:
            self.lose()
        return succeed(None)


class AssemblyCase(SynchronousTestCase):
    """Builds a router over test endpoints and reads its metrics."""

    def build(
        self,
        classifier: str = "io.l5d.http.retryableAll5XX",
        text: str = CONFIG,
        connect: Any = None,
    ) -> Router:
        (config,) = parseLinkerConfig(
            text.format(classifier=classifier), "test.yaml", _REGISTRY
        ).routers
        self.clock = Clock()
        self.clock.advance(1000)
        self.metrics = MetricsRegistry(self.clock)
        self.endpoint = _Endpoint()
        context = BuildContext(
            self.clock,
            self.metrics.statsReceiver().scope("rt", config.label),
            _REGISTRY,
            os.getcwd(),
            label=config.label,
        )
        assert config.interpreter.plugin is not None
        interpreter = config.interpreter.plugin.plugin.build(
            config.interpreter.plugin.config, context
        )
        context = attrs.evolve(context, interpreter=interpreter)

        def endpoint(address: Address, params: ClientParams) -> IClient:
            return self.endpoint

        hooks = ProtocolHooks(
            connect=connect or endpoint,
            statusOf=lambda response: response.status,
            deadlineOf=lambda request: request.deadline,
            serviceAnnotator=lambda dst: lambda request: request.marks.append("service"),
            clientAnnotator=lambda bound: lambda request: request.marks.append("client"),
        )
        router = buildRouter(config, context, hooks)
        self.addCleanup(router.close)
        return router

    def route(self, router: Router, request: _Request) -> Deferred[Any]:
        return router.route(Identified(Path.read("/svc/foo")), request)

    def answer(self, result: object) -> None:
        d = self.endpoint.waiting.pop(0)
        if isinstance(result, Exception):
            d.errback(result)
        else:
            d.callback(result)

    def metrics_(self, scope: tuple[str, ...]) -> dict[str, object]:
        """
        The request metrics under C{scope}: counters, gauges, and the
        counts of histograms in the window that L{snapshot} closed.
        """
        found: dict[str, object] = {}
        for names, metric in self.metrics.items():
            if names[: len(scope)] != scope or names[len(scope)] in _OTHERS:
                continue
            name = "/".join(names[len(scope) :])
            if isinstance(metric, Counter):
                found[name] = metric.value
            elif isinstance(metric, Gauge):
                found[name] = metric.read()
            elif isinstance(metric, Histogram):
                summary = metric.summary()
                found[name] = summary.count if summary is not None else None
        return found


class AssemblyStatsTests(AssemblyCase):
    def test_success(self) -> None:
        """A 200 counts once in each scope, each annotator marks it once."""
        router = self.build()
        request = _Request()
        d = self.route(router, request)
        self.assertEqual(self.metrics_(SERVICE)["pending"], 1.0)
        self.assertEqual(self.metrics_(CLIENT)["pending"], 1.0)
        self.answer(_Response(200))
        self.assertEqual(self.successResultOf(d).status, 200)
        self.assertEqual(request.marks, ["service", "client"])
        self.metrics.snapshot()
        expected = {
            "requests": 1,
            "success": 1,
            "failures": 0,
            "status/200": 1,
            "status/1XX": 0,
            "status/2XX": 1,
            "status/3XX": 0,
            "status/4XX": 0,
            "status/5XX": 0,
            "request_latency_ms": 1,
            "pending": 0.0,
        }
        self.assertEqual(self.metrics_(SERVICE), expected)
        pools = {"pool_size": 0.0, "pool_waiters": 0.0}  # the test's endpoint has no pool
        # Nor connections, but the metrics exist from the start.
        connections = {"connects": 0, "closes": 0, "connections": 0.0}
        self.assertEqual(self.metrics_(CLIENT), {**expected, **pools, **connections})

    def test_destinationClassifierReachesTheClient(self) -> None:
        """
        A classifier set for one prefix under C{io.l5d.static} decides the
        client's metrics and failure accrual for that destination's
        requests too, as in Linkerd; the router-wide one still applies to
        the others.
        """
        router = self.build("io.l5d.http.allSuccessful", PER_PREFIX)
        d = self.route(router, _Request())
        self.answer(_Response(500))
        self.assertEqual(self.successResultOf(d).status, 500)
        other = router.route(Identified(Path.read("/svc/bar")), _Request())
        self.answer(_Response(500))
        self.assertEqual(self.successResultOf(other).status, 500)
        for scope in (SERVICE, CLIENT):
            found = self.metrics_(scope)
            self.assertEqual((found["success"], found["failures"]), (1, 0), scope)
        client = self.metrics_(("rt", "rt1", "client", "$/inet/127.0.0.1/8081"))
        self.assertEqual((client["success"], client["failures"]), (0, 1))

    def test_nonRetryableFailure(self) -> None:
        """A 500 the classifier does not retry is a failure in both scopes."""
        router = self.build("io.l5d.http.nonRetryable5XX")
        d = self.route(router, _Request())
        self.answer(_Response(500))
        self.assertEqual(self.successResultOf(d).status, 500)
        for scope in (SERVICE, CLIENT):
            found = self.metrics_(scope)
            self.assertEqual(
                (found["requests"], found["success"], found["failures"], found["status/5XX"]),
                (1, 0, 1, 1),
            )

    def test_retried(self) -> None:
        """
        A retried 500: the service counts one successful request; the
        client counts both attempts, one failed.
        """
        router = self.build()
        request = _Request()
        d = self.route(router, request)
        self.answer(_Response(500))
        self.clock.advance(0)
        self.answer(_Response(200))
        self.assertEqual(self.successResultOf(d).status, 200)
        service = self.metrics_(SERVICE)
        self.assertEqual(
            (service["requests"], service["success"], service["failures"], service["pending"]),
            (1, 1, 0, 0.0),
        )
        self.assertEqual((service["status/200"], service.get("status/500")), (1, None))
        client = self.metrics_(CLIENT)
        self.assertEqual(
            (client["requests"], client["success"], client["failures"], client["pending"]),
            (2, 1, 1, 0.0),
        )
        self.assertEqual((client["status/200"], client["status/500"]), (1, 1))
        self.assertEqual(request.marks, ["service", "client", "client"])

    def test_requeueCountsOnce(self) -> None:
        """
        A connection failure requeued to another attempt is one client
        request, with the latency of both.
        """
        router = self.build()
        request = _Request()
        d = self.route(router, request)
        self.clock.advance(0.5)
        self.answer(ConnectionFailed("refused"))
        self.clock.advance(0.5)
        self.answer(_Response(200))
        self.successResultOf(d)
        self.metrics.snapshot()
        client = self.metrics_(CLIENT)
        self.assertEqual(
            (client["requests"], client["success"], client["failures"], client["pending"]),
            (1, 1, 0, 0.0),
        )
        latency = self.metrics.histogram((*CLIENT, "request_latency_ms")).summary()
        assert latency is not None
        self.assertEqual(latency.max, 1000)
        self.assertEqual(request.marks, ["service", "client"])

    def test_exception(self) -> None:
        """An exception is a failure of its kind in both scopes."""
        router = self.build("io.l5d.http.nonRetryable5XX")
        d = self.route(router, _Request())
        self.answer(ValueError("boom"))
        self.failureResultOf(d, ValueError)
        for scope in (SERVICE, CLIENT):
            found = self.metrics_(scope)
            self.assertEqual(
                (found["requests"], found["failures"], found["failures/ValueError"]), (1, 1, 1)
            )
            self.assertEqual(found["pending"], 0.0)

    def test_cancelled(self) -> None:
        """A request its caller cancels is a failure, recorded once."""
        router = self.build()
        d = self.route(router, _Request())
        d.cancel()
        self.failureResultOf(d, CancelledError)
        for scope in (SERVICE, CLIENT):
            found = self.metrics_(scope)
            self.assertEqual(
                (found["requests"], found["failures"], found["failures/CancelledError"]),
                (1, 1, 1),
            )
            self.assertEqual(found["pending"], 0.0)

    def test_expiredDeadline(self) -> None:
        """
        A request whose deadline (read with the protocol's C{deadlineOf})
        has passed fails at the service without reaching the client.
        """
        router = self.build()
        now = int(self.clock.seconds() * NANOS)
        d = self.route(router, _Request(deadline=Deadline(now - 2 * NANOS, now - NANOS)))
        self.failureResultOf(d, DeadlineExceeded)
        self.assertEqual(self.endpoint.waiting, [])
        service = self.metrics_(SERVICE)
        self.assertEqual(
            (service["requests"], service["failures"], service["pending"]), (1, 1, 0.0)
        )
        self.assertEqual(self.metrics_(CLIENT)["requests"], 0)

    def test_closeRemovesPending(self) -> None:
        """Closing the router stops exporting both scopes' C{pending}."""
        router = self.build()
        self.route(router, _Request())
        self.answer(_Response(200))
        router.close()
        self.assertNotIn("pending", self.metrics_(SERVICE))
        self.assertNotIn("pending", self.metrics_(CLIENT))


def _addresses(*ports: int) -> AddrBound:
    return AddrBound(frozenset(Address("127.0.0.1", port) for port in ports))


class ClientConnectionTests(AssemblyCase):
    """
    A client's C{connects}, C{closes} and C{connections} count the
    connections of all its endpoints' pools, and of all the clients of its
    name.
    """

    NAME = Path.read("/#/io.l5d.test/pools")
    SCOPE = ("rt", "rt1", "client", "#/io.l5d.test/pools")

    def setUp(self) -> None:
        self.pools: list[_Pool] = []

        def connect(address: Address, params: ClientParams) -> IClient:
            pool = _Pool(address)
            self.pools.append(pool)
            return pool

        self.router = self.build(connect=connect)

    def client(self, addresses: Var[Any], residual: str = "") -> IClient:
        rest = Path.read(residual) if residual else Path()
        client = self.router.newClient(Bound(self.NAME, addresses, rest))
        self.addCleanup(client.close)
        return client

    def connections(self) -> tuple[object, object, object]:
        found = self.metrics_(self.SCOPE)
        return found["connects"], found["closes"], found["connections"]

    def test_sumOverPools(self) -> None:
        """
        The gauge adds up the pools' open connections; the counters keep
        what a pool removed with its endpoint counted.
        """
        addresses: Var[Any] = Var(_addresses(1, 2))
        self.client(addresses)
        self.assertEqual(self.connections(), (0, 0, 0.0))
        first, second = self.pools
        first.connect()
        second.connect()
        second.connect()
        self.assertEqual(self.connections(), (3, 0, 3.0))
        first.lose()
        self.assertEqual(self.connections(), (3, 1, 2.0))
        addresses.set(_addresses(1))  # the balancer closes the second pool
        self.assertEqual(second.open, 0)
        self.assertEqual(self.connections(), (3, 3, 0.0))
        first.connect()
        self.assertEqual(self.connections(), (4, 3, 1.0))

    def test_sameNameSharesTheMetrics(self) -> None:
        """
        Clients of one name (bound names that differ in their residual)
        count into the same metrics, and the gauge adds up both.
        """
        self.client(Var(_addresses(1)), "/a")
        self.client(Var(_addresses(1)), "/b")
        first, second = self.pools
        self.assertIs(first.stats, second.stats)
        first.connect()
        second.connect()
        self.assertEqual(self.connections(), (2, 0, 2.0))

    def test_evictedNameStartsAfresh(self) -> None:
        """
        Once a client's name is evicted, its metrics with it, the next
        client of that name counts into new ones that the registry exports.
        """
        scope = CLIENT
        d = self.route(self.router, _Request())
        (old,) = self.pools
        old.waiting.pop().callback(_Response(200))
        self.successResultOf(d)
        old.connect()
        old.connect()
        self.assertEqual(self.metrics_(scope)["connects"], 2)
        for _ in range(2):  # the destination, then the client it released
            self.clock.advance(self.router.idleTtl + 1)
            self.router.sweep()
        self.assertEqual(self.metrics_(scope), {})
        self.assertEqual(old.open, 0)
        self.route(self.router, _Request())
        new = self.pools[-1]
        self.assertIsNot(new.stats, old.stats)
        new.connect()
        found = self.metrics_(scope)
        self.assertEqual((found["connects"], found["closes"], found["connections"]), (1, 0, 1.0))
