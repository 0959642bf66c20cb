"""
What the fault runs (tests/test_*_faults.py) share: a watch for error-level
log events, many seeded clients connected a bounded number at a time, and
the check that a router is left with nothing open and nothing in flight.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults, inlineCallbacks
from twisted.internet.protocol import Factory
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.internet.task import deferLater
from twisted.logger import ILogObserver, LogEvent, LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from zope.interface import provider

from linkrouter.service import LinkerService
from linkrouter.telemetry.stats import Gauge
from tests._linker import startLinker

reactor: Any = _reactor


class FaultClient(Protocol):
    """A client protocol whose C{lost} fires when its connection ends."""

    lost: Deferred[None]


def watchErrors(case: TestCase) -> list[LogEvent]:
    """The log events at error level or above while C{case} runs."""
    errors: list[LogEvent] = []

    @provider(ILogObserver)
    def watch(event: LogEvent) -> None:
        if event.get("log_level", LogLevel.info) >= LogLevel.error:
            errors.append(event)

    globalLogPublisher.addObserver(watch)
    case.addCleanup(globalLogPublisher.removeObserver, watch)
    return errors


def connectAll(
    port: int, make: Callable[[], FaultClient], count: int, atOnce: int = 32
) -> Deferred[list[None]]:
    """Connect C{count} clients from C{make} to C{port}, C{atOnce} at a time."""
    limit = DeferredSemaphore(atOnce)

    def one() -> Deferred[None]:
        client = make()
        reactor.connectTCP("127.0.0.1", port, _Once(client))
        return client.lost

    return gatherResults([limit.run(one) for _ in range(count)])


def startBehind(
    case: TestCase, backend: type[TwistedProtocol], config: str
) -> tuple[LinkerService, Callable[[], object]]:
    """
    Listen with C{backend} on a free port, start the router of C{config}
    (whose C{{port}} is that port), and return it with a function giving its
    first server's open connections.
    """
    port = reactor.listenTCP(0, Factory.forProtocol(backend), interface="127.0.0.1")
    case.addCleanup(port.stopListening)
    linker = startLinker(case, config.format(port=port.getHost().port))
    ((_, server),) = linker.routers[0].service.servers  # type: ignore[attr-defined]
    return linker, lambda: server.connections


@inlineCallbacks
def assertSettled(case: TestCase, connections: Callable[[], object], linker: LinkerService) -> Any:
    """
    Within 2 s the server has no connection left; no C{pending} gauge of
    C{linker} is above zero.
    """
    for _ in range(200):
        if not connections():
            break
        yield deferLater(reactor, 0.01, lambda: None)
    case.assertFalse(connections())
    pending = {
        "/".join(names): gauge.read()
        for names, gauge in linker.metrics.items()
        if names[-1] == "pending" and isinstance(gauge, Gauge) and gauge.read()
    }
    case.assertEqual(pending, {})


class _Once(Factory):
    """A client factory for one already-built protocol."""

    def __init__(self, protocol: FaultClient) -> None:
        self.client = protocol

    def buildProtocol(self, addr: object) -> TwistedProtocol:
        assert isinstance(self.client, TwistedProtocol)
        return self.client

    def clientConnectionFailed(self, connector: object, reason: Failure) -> None:
        self.client.lost.errback(reason)

    def startedConnecting(self, connector: object) -> None:
        pass

    def clientConnectionLost(self, connector: object, reason: Failure) -> None:
        pass
