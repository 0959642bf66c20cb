# -*- test-case-name: tests.test_routing_router -*-
"""
Request metrics for any L{IClient}, as Finagle names them: C{requests},
C{success}, C{failures} (and C{failures/<kind>}), C{status/<code>} and
C{status/<N>XX} where the protocol has status codes, the
C{request_latency_ms} histogram and a C{pending} gauge.

A L{RequestStats} is recorded by whichever layer already has a callback on
the request's outcome: the protocol's server handler (server scope), the
retry filter (service scope) and the balancer (client scope), so that the
three scopes cost no Deferred callback of their own; L{StatsClient} wraps
any other client.

L{ConnectionStats} counts the connections of a server or of a client:
C{connects}, C{closes} and the C{connections} gauge.
"""

from __future__ import annotations

from collections.abc import Callable, Sized
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from zope.interface import implementer

from linkrouter.interfaces import (
    IClient,
    ICounter,
    IGauge,
    IResponseClassifier,
    IStatsReceiver,
    ResponseClass,
)

StatusOf = Callable[[Any], "int | None"]

_SUCCESS = ResponseClass.SUCCESS


class RequestStats:
    """
    The request metrics of one scope: call L{begin} as a request starts and
    L{end} with its outcome.  Success and failure are as C{classifier} says,
    so a 500 answered by a backend counts as a failure where the router's
    classifier says so.
    """

    def __init__(
        self,
        stats: IStatsReceiver,
        classifier: IResponseClassifier | None,
        clock: IReactorTime,
        statusOf: StatusOf | None = None,
    ) -> None:
        self._stats = stats
        self._classifier = classifier
        self._seconds = clock.seconds
        self._statusOf = statusOf
        # Looked up once, and counted with "value += 1" rather than a call
        # to incr: this is on every request's path, three times.
        self._requests = stats.counter("requests")
        self._success = stats.counter("success")
        self._failures = stats.counter("failures")
        self._latency = stats.histogram("request_latency_ms").add
        self._byStatus: dict[int, tuple[ICounter, ICounter]] = {}
        if statusOf is not None:
            # The status classes exist from the start, as in Linkerd, so that
            # a dashboard's 5XX rate reads 0 before the first error.
            for n in range(1, 6):
                stats.counter("status", f"{n}XX")
        self.pending = 0
        self._gauge = stats.addGauge(("pending",), lambda: float(self.pending))

    def begin(self) -> float:
        """Count a request; return its start time for L{end}."""
        self._requests.value += 1
        self.pending += 1
        return self._seconds()

    def end(
        self,
        start: float,
        request: Any,
        response: Any,
        failure: Failure | None,
        success: bool | None = None,
    ) -> None:
        """
        Record the outcome of the request that L{begin} returned C{start}
        for.  C{success}, when given, is the verdict of this scope's
        classifier, which the caller has just asked.
        """
        self.pending -= 1
        self._latency((self._seconds() - start) * 1000.0)
        statusOf = self._statusOf
        if response is not None and statusOf is not None:
            code = statusOf(response)
            if code is not None:
                counters = self._byStatus.get(code)
                if counters is None:
                    counters = self._byStatus[code] = (
                        self._stats.counter("status", str(code)),
                        self._stats.counter("status", f"{code // 100}XX"),
                    )
                counters[0].value += 1
                counters[1].value += 1
        if success is None:
            classifier = self._classifier
            verdict = (
                classifier.classify(request, response, failure) if classifier is not None else None
            )
            success = verdict is _SUCCESS if type(verdict) is ResponseClass else failure is None
        if success:
            self._success.value += 1
        else:
            self._failures.value += 1
            if failure is not None:
                self._stats.counter("failures", failure.value.__class__.__name__).incr()

    def close(self) -> None:
        """Stop exporting the C{pending} gauge."""
        self._gauge.remove()


def _nothing() -> None:
    return None


class ConnectionStats:
    """
    Finagle's connection metrics: C{connects} (connections established or
    accepted), C{closes} (closed, for any reason, by either side) and the
    C{connections} gauge (open now).  Whoever makes the connections calls
    L{connected} and L{closed} once each per connection: the cost is per
    connection, never per request.

    A server factory gives C{connections}, its open ones (the gauge is their
    number), and calls L{observe} once its port is bound and its scope known:
    nothing is recorded before.  A client gives its C{stats} scope at once
    (the metrics exist, at 0, from then on) and shares the object between
    its endpoints' connection pools (see
    L{linkrouter.routing.assembly.ProtocolHooks.connect}): the gauge counts
    the connections open over all of them, and the counters keep what a
    pool that goes away has counted.
    """

    __slots__ = ("_closes", "_connections", "_connects", "_gauge", "open")

    def __init__(
        self, connections: Sized | None = None, stats: IStatsReceiver | None = None
    ) -> None:
        self._connections = connections
        self.open = 0
        """Connections L{connected} and not yet L{closed}."""
        self._connects: Callable[[], object] = _nothing
        self._closes: Callable[[], object] = _nothing
        self._gauge: IGauge | None = None
        if stats is not None:
            self.observe(stats)

    def observe(self, stats: IStatsReceiver) -> None:
        """Record under C{stats} from now on."""
        self._connects = stats.counter("connects").incr
        self._closes = stats.counter("closes").incr
        self._gauge = stats.addGauge(("connections",), self._open)

    def connected(self) -> None:
        """A connection is established."""
        self.open += 1
        self._connects()

    def closed(self) -> None:
        """A connection that L{connected} counted is closed."""
        self.open -= 1
        self._closes()

    def _open(self) -> float:
        connections = self._connections
        return float(self.open if connections is None else len(connections))


class CountedConnections:
    """
    Mixin for endpoint clients (connection pools) whose connections a
    client's L{ConnectionStats} may count: the pool calls
    C{self.connectionStats.connected()} and C{.closed()} (when it is not
    C{None}) as each connection is established and closed.
    """

    connectionStats: ConnectionStats | None = None

    def countConnections(self, stats: ConnectionStats) -> None:
        """
        Tell C{stats} (the client's, see
        L{linkrouter.routing.assembly.ProtocolHooks.connect}) of each
        connection established and closed from now on: call this before the
        first request.
        """
        self.connectionStats = stats


@implementer(IClient)
class StatsClient:
    """
    Records what goes through C{client} in C{stats} (a L{RequestStats});
    C{annotate}, if given, is called with each request first.  For clients
    that cannot record their own outcomes (as the balancer and the retry
    filter do, see L{linkrouter.routing.assembly}).
    """

    def __init__(
        self,
        client: IClient,
        stats: RequestStats,
        annotate: Callable[[Any], object] | None = None,
    ) -> None:
        self.client = client
        self.stats = stats
        self._annotate = annotate

    @property
    def status(self) -> Any:
        return self.client.status

    def __call__(self, request: Any) -> Deferred[Any]:
        if self._annotate is not None:
            self._annotate(request)
        start = self.stats.begin()
        return self.client(request).addBoth(self._done, request, start)

    def _done(self, result: Any, request: Any, start: float) -> Any:
        if type(result) is Failure:
            self.stats.end(start, request, None, result)
        else:
            self.stats.end(start, request, result, None)
        return result

    def close(self) -> Deferred[Any]:
        self.stats.close()
        return self.client.close()
