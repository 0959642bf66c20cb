# -*- test-case-name: tests.test_routing_assembly -*-
"""
Request metrics for any L{IClient}, as Finagle names them: C{requests},
C{success}, C{failures} (and C{failures/<kind>}), C{status/<code>} and
C{status/<N>XX} where the protocol has status codes, the
C{request_latency_ms} histogram and a C{pending} gauge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from zope.interface import implementer

from linkrouter.interfaces import IClient, IResponseClassifier, IStatsReceiver, ResponseClass

StatusOf = Callable[[Any], "int | None"]


@implementer(IClient)
class StatsClient:
    """
    Counts what goes through C{client} under C{stats}.  Success and failure
    are as C{classifier} says, so a 500 answered by a backend counts as a
    failure where the router's classifier says so.
    """

    def __init__(
        self,
        client: IClient,
        stats: IStatsReceiver,
        classifier: IResponseClassifier | None,
        clock: IReactorTime,
        statusOf: StatusOf = lambda response: None,
    ) -> None:
        self.client = client
        self._stats = stats
        self._classifier = classifier
        self._clock = clock
        self._statusOf = statusOf
        self._requests = stats.counter("requests")
        self._success = stats.counter("success")
        self._failures = stats.counter("failures")
        self._latency = stats.histogram("request_latency_ms")
        self._pending = 0
        self._gauge = stats.addGauge(("pending",), lambda: float(self._pending))

    @property
    def status(self) -> Any:
        return self.client.status

    def __call__(self, request: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
        self._requests.incr()
        self._pending += 1
        start = self._clock.seconds()
        d: Deferred[Any] = self.client(request, *args, **kwargs)

        def done(result: Any) -> Any:
            self._pending -= 1
            self._latency.add((self._clock.seconds() - start) * 1000.0)
            failure = result if isinstance(result, Failure) else None
            response = None if failure is not None else result
            if response is not None:
                code = self._statusOf(response)
                if code is not None:
                    self._stats.counter("status", str(code)).incr()
                    self._stats.counter("status", f"{code // 100}XX").incr()
            if self._succeeded(request, response, failure):
                self._success.incr()
            else:
                self._failures.incr()
                if failure is not None:
                    kind = failure.value.__class__.__name__
                    self._stats.counter("failures", kind).incr()
            return result

        return d.addBoth(done)

    def _succeeded(self, request: Any, response: Any, failure: Failure | None) -> bool:
        if self._classifier is not None:
            verdict = self._classifier.classify(request, response, failure)
            if isinstance(verdict, ResponseClass):
                return verdict.isSuccess
        return failure is None

    def close(self) -> Deferred[Any]:
        self._gauge.remove()
        return self.client.close()
