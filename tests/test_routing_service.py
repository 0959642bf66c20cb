"""
L{linkrouter.routing.service.RouterService}: listening, the in-flight count
and graceful draining, on Twisted's memory reactor; L{listen} and the
servers' socket options on the real one.
"""

from __future__ import annotations

import socket
from typing import Any
from unittest import SkipTest

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from linkrouter.config import ServerConfig, SocketOptions
from linkrouter.context import IDrainable
from linkrouter.routing.service import RouterService, listen


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


class ListenTests(TestCase):
    """
    L{listen} on the real reactor: the listening socket gets the server's
    C{reuseAddr} and C{reusePort}, and the port serves either way.
    """

    def listenWith(self, port: int = 0, ip: str = "127.0.0.1", **options: Any) -> Any:
        accepted: Deferred[None] = Deferred()

        class Accepting(Protocol):
            def connectionMade(self) -> None:
                if not accepted.called:
                    accepted.callback(None)

        server = ServerConfig(ip=ip, port=port, socketOptions=SocketOptions(**options))
        listening = listen(reactor, server, Factory.forProtocol(Accepting))
        self.addCleanup(listening.stopListening)
        listening.accepted = accepted  # type: ignore[attr-defined]
        return listening

    @staticmethod
    def option(listening: Any, name: int) -> int:
        return int(listening.socket.getsockopt(socket.SOL_SOCKET, name))

    def test_defaults(self) -> None:
        """By default, as Twisted and Linkerd: SO_REUSEADDR, no SO_REUSEPORT."""
        listening = self.listenWith()
        self.assertTrue(self.option(listening, socket.SO_REUSEADDR))
        self.assertFalse(self.option(listening, socket.SO_REUSEPORT))

    async def test_reusePortShares(self) -> None:
        """
        With C{reusePort}, a second listener (another process, in practice)
        binds the same port, and connections are accepted.
        """
        first = self.listenWith(reusePort=True)
        number = first.getHost().port
        second = self.listenWith(number, reusePort=True)
        self.assertEqual(second.getHost().port, number)
        self.assertTrue(self.option(second, socket.SO_REUSEPORT))
        self.assertTrue(self.option(second, socket.SO_REUSEADDR))
        clients = [socket.create_connection(("127.0.0.1", number)) for _ in range(8)]
        for client in clients:
            self.addCleanup(client.close)
        await DeferredList([first.accepted, second.accepted], fireOnOneCallback=True)

    def test_withoutReusePortTheSecondFails(self) -> None:
        """A port in use fails as C{listenTCP} fails: C{CannotListenError}."""
        first = self.listenWith(reusePort=True)
        self.assertRaises(CannotListenError, self.listenWith, first.getHost().port, reuseAddr=False)

    async def test_noReuseAddr(self) -> None:
        """C{reuseAddr: false} leaves SO_REUSEADDR off; the port serves."""
        listening = self.listenWith(reuseAddr=False)
        self.assertFalse(self.option(listening, socket.SO_REUSEADDR))
        client = socket.create_connection(("127.0.0.1", listening.getHost().port))
        self.addCleanup(client.close)
        await listening.accepted

    async def test_ipv6(self) -> None:
        """An IPv6 address gets an IPv6 socket."""
        if not socket.has_ipv6:
            raise SkipTest("no IPv6")
        try:
            listening = self.listenWith(ip="::1", reusePort=True)
        except CannotListenError as e:
            raise SkipTest(f"no IPv6 loopback: {e}") from e
        self.assertEqual(listening.getHost().host, "::1")
        client = socket.create_connection(("::1", listening.getHost().port))
        self.addCleanup(client.close)
        await listening.accepted
