"""
L{linkrouter.routing.service.RouterService}: listening, the in-flight count
and graceful draining, on Twisted's memory reactor.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from linkrouter.config import ServerConfig
from linkrouter.context import IDrainable
from linkrouter.routing.service import RouterService


class _Router:
    label = "test"

    def __init__(self) -> None:
        self.started = False
        self.closed = False

    def start(self) -> None:
        self.started = True

    def close(self) -> Deferred[None]:
        self.closed = True
        return succeed(None)


class _Factory(Factory):
    protocol = Protocol

    def __init__(self) -> None:
        self.drained: Deferred[None] = Deferred()
        self.calls: list[str] = []

    def drain(self) -> Deferred[None]:
        self.calls.append("drain")
        return self.drained

    def closeAll(self) -> None:
        self.calls.append("closeAll")


class _Service(RouterService):
    def listening(self, server: ServerConfig, factory: Any, port: Any) -> None:
        self.heard = (server, factory, port)


class RouterServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.router = _Router()
        self.factory = _Factory()
        server = ServerConfig(ip="127.0.0.1", port=4140)
        self.service = _Service(self.router, self.reactor, [(server, self.factory)])  # type: ignore[arg-type]

    def test_start(self) -> None:
        """Starting listens on each server, tells the hook and starts the router."""
        service = self.service
        router = self.router
        factory = self.factory
        reactor = self.reactor
        self.assertTrue(IDrainable.providedBy(service))
        service.startService()
        (listened,) = reactor.tcpServers
        self.assertEqual((listened[0], listened[1], listened[3]), (4140, factory, "127.0.0.1"))
        self.assertIs(service.heard[1], factory)
        self.assertTrue(router.started)

    def test_drainWaits(self) -> None:
        """
        Draining stops listening and fires once no request is in flight and
        the factory's connections are closed.
        """
        service = self.service
        factory = self.factory
        service.startService()
        service.started()
        d = service.drain()
        self.assertTrue(service.draining)
        self.assertEqual(factory.calls, ["drain"])
        self.assertNoResult(d)
        service.finished()
        self.assertNoResult(d)
        factory.drained.callback(None)
        self.successResultOf(d)

    def test_drainIdle(self) -> None:
        """With nothing in flight and no connection, draining is immediate."""
        service = self.service
        factory = self.factory
        service.startService()
        factory.drained.callback(None)
        self.successResultOf(service.drain())

    def test_drainCancelled(self) -> None:
        """Cancelling a drain (the grace period is over) does not raise."""
        service = self.service
        service.startService()
        service.started()
        d = service.drain()
        d.cancel()
        self.failureResultOf(d)
        service.finished()

    def test_stop(self) -> None:
        """Stopping closes every connection and the router."""
        service = self.service
        router = self.router
        factory = self.factory
        service.startService()
        self.successResultOf(service.stopService())
        self.assertEqual(factory.calls, ["closeAll"])
        self.assertTrue(router.closed)
        self.assertEqual(service.ports, [])
