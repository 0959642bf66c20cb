"""
Connection lifetimes of the HTTP router, with a fake clock: the endpoint
pool's C{maxSize}, C{maxWaiters}, C{idleTimeMs} and C{minSize}, the client
session's idle time and lifetime, the server session's idle time and
lifetime, and the router's wiring of those
keys; and the client connection metrics the pools report.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from linkrouter._plugins import PluginRegistry
from linkrouter._sessions import PoolLimits
from linkrouter.config import ClientParams, HostConnectionPool, Session, parseLinkerConfig
from linkrouter.naming import Address
from linkrouter.service import LinkerService
from protocols.http.client import HTTPPool
from protocols.http.errors import PoolExhausted
from protocols.http.message import BodyStream, Request, Response
from protocols.http.plugin import HttpRouter
from protocols.http.server import HTTPServerFactory

from ._fakes import ClientConnectionMetrics, FakeBackend, TCPStringTransport

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Backend(FakeBackend):
    """L{FakeBackend} answering requests."""

    def answer(self, index: int, response: bytes = OK) -> None:
        protocol, transport = self.connections[index]
        assert transport.value(), "no request written"
        transport.clear()
        protocol.dataReceived(response)


class PoolTests(SynchronousTestCase):
    def pool(self, **limits: Any) -> tuple[MemoryReactorClock, Backend, HTTPPool]:
        reactor = MemoryReactorClock()
        pool = HTTPPool(reactor, reactor, "127.0.0.1", 9999, limits=PoolLimits(**limits))
        return reactor, Backend(reactor), pool

    def get(self, pool: HTTPPool, path: bytes = b"/") -> Deferred[Response]:
        return pool(Request(b"GET", path))

    def test_maxSizeAndWaiters(self) -> None:
        """
        Beyond C{maxSize} connections, requests wait; beyond C{maxWaiters}
        waiting, a request fails at once.
        """
        _, backend, pool = self.pool(maxSize=1, maxWaiters=1)
        first, second = self.get(pool), self.get(pool)
        self.failureResultOf(self.get(pool), PoolExhausted)
        backend.accept()
        backend.answer(0)
        self.assertEqual(self.successResultOf(first).body, b"ok")
        backend.answer(0)
        self.assertEqual(self.successResultOf(second).body, b"ok")
        self.assertEqual((len(backend.connections), pool.size, pool.idle), (1, 1, 1))

    def test_idleTimeDownToMinSize(self) -> None:
        """The pool closes connections idle for C{idleTimeMs}, down to C{minSize}."""
        reactor, backend, pool = self.pool(idleTimeMs=1000, minSize=1)
        calls = [self.get(pool) for _ in range(3)]
        backend.accept()
        reactor.advance(0.5)
        for n in range(3):
            backend.answer(n)
        for d in calls:
            self.successResultOf(d)
        reactor.advance(0.9)
        self.assertEqual(backend.closed(), [])
        reactor.advance(0.2)
        self.assertEqual(len(backend.closed()), 2)
        reactor.advance(100)
        self.assertEqual((len(backend.closed()), pool.size, pool.idle), (2, 1, 1))
        self.assertEqual(reactor.getDelayedCalls(), [])
        d = self.get(pool)
        (kept,) = set(range(3)) - set(backend.closed())
        backend.answer(kept)
        self.successResultOf(d)
        self.assertEqual(len(reactor.tcpClients), 3)

    def test_sessionIdleIgnoresMinSize(self) -> None:
        """C{clientSession.idleTimeMs} closes idle connections whatever C{minSize}."""
        reactor, backend, pool = self.pool(sessionIdleTimeMs=1000, minSize=1)
        d = self.get(pool)
        backend.accept()
        backend.answer(0)
        self.successResultOf(d)
        reactor.advance(0.9)
        self.assertEqual(backend.closed(), [])
        reactor.advance(0.2)
        self.assertEqual(backend.closed(), [0])
        self.assertEqual(pool.size, 0)

    def test_reuseRestartsIdleTime(self) -> None:
        reactor, backend, pool = self.pool(sessionIdleTimeMs=1000)
        for _ in range(5):
            d = self.get(pool)
            backend.accept()
            backend.answer(0)
            self.successResultOf(d)
            reactor.advance(0.8)
        self.assertEqual((len(backend.connections), backend.closed()), (1, []))
        reactor.advance(0.3)
        self.assertEqual(backend.closed(), [0])

    def test_lifeTimeNeverMidResponse(self) -> None:
        """
        A connection past C{lifeTimeMs} mid-exchange is closed once its
        response (streamed, here) is complete, and not reused.
        """
        reactor, backend, pool = self.pool(lifeTimeMs=5000)
        d = self.get(pool)
        backend.accept()
        reactor.advance(4)
        protocol, transport = backend.connections[0]
        transport.clear()
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n")
        response = self.successResultOf(d)
        body = response.body
        assert isinstance(body, BodyStream)
        reactor.advance(2)
        self.assertEqual(backend.closed(), [])
        protocol.dataReceived(b"0\r\n\r\n")
        self.assertTrue(body.ended)
        self.assertEqual(backend.closed(), [0])
        self.assertEqual((pool.size, pool.idle), (0, 0))

    def test_lifeTimeOfIdle(self) -> None:
        """An idle connection is closed when it reaches C{lifeTimeMs}."""
        reactor, backend, pool = self.pool(lifeTimeMs=5000, idleTimeMs=60000)
        d = self.get(pool)
        backend.accept()
        reactor.advance(1)
        backend.answer(0)
        self.successResultOf(d)
        reactor.advance(3.9)
        self.assertEqual(backend.closed(), [])
        reactor.advance(0.2)
        self.assertEqual(backend.closed(), [0])

    def test_expiredNotGivenToWaiter(self) -> None:
        """
        A waiter is not handed a connection past its lifetime: that one
        closes and the waiter gets a new one.
        """
        reactor, backend, pool = self.pool(maxSize=1, lifeTimeMs=1000)
        first, second = self.get(pool, b"/1"), self.get(pool, b"/2")
        backend.accept()
        reactor.advance(2)
        backend.answer(0)
        self.successResultOf(first)
        self.assertEqual(backend.closed(), [0])
        backend.accept()
        self.assertIn(b"/2", backend.connections[1][1].value())
        backend.answer(1)
        self.successResultOf(second)

    def test_closeStopsReaper(self) -> None:
        reactor, backend, pool = self.pool(idleTimeMs=1000)
        d = self.get(pool)
        backend.accept()
        backend.answer(0)
        self.successResultOf(d)
        closing = pool.close()
        self.assertEqual(backend.closed(), [0])
        self.successResultOf(closing)
        self.assertEqual(reactor.getDelayedCalls(), [])


class ConnectionMetricsTests(ClientConnectionMetrics, SynchronousTestCase):
    """
    The pools of one client share its L{ConnectionStats}: C{connects},
    C{closes} and the C{connections} gauge count their connections.
    """

    def pool(self, port: int = 9999) -> tuple[Backend, HTTPPool]:
        reactor = MemoryReactorClock()
        pool = HTTPPool(reactor, reactor, "127.0.0.1", port)
        pool.countConnections(self.stats)
        return Backend(reactor), pool

    def test_connectAndClose(self) -> None:
        """
        A connection counts once it is established, not while it is being
        made, and is reused without counting again; its close counts.
        """
        self.assertEqual(self.metrics(), (0, 0, 0.0))
        backend, pool = self.pool()
        d = pool(Request(b"GET", b"/"))
        self.assertEqual((pool.size, self.metrics()), (1, (0, 0, 0.0)))
        backend.accept()
        backend.answer(0)
        self.successResultOf(d)
        self.assertEqual(self.metrics(), (1, 0, 1.0))
        d = pool(Request(b"GET", b"/"))
        backend.answer(0)
        self.successResultOf(d)
        self.assertEqual(self.metrics(), (1, 0, 1.0))
        protocol, transport = backend.connections[0]
        transport.connected = False
        protocol.connectionLost(Failure(ConnectionDone()))  # the backend closed it
        self.assertEqual(self.metrics(), (1, 1, 0.0))

    def test_poolsAddUp(self) -> None:
        """
        The gauge is the sum over the client's pools; a pool closed (its
        endpoint gone) takes nothing from the counters.
        """
        (one, first), (other, second) = self.pool(9998), self.pool(9999)
        calls = [first(Request(b"GET", b"/")), second(Request(b"GET", b"/"))]
        calls.append(second(Request(b"GET", b"/")))
        one.accept()
        other.accept()
        self.assertEqual(self.metrics(), (3, 0, 3.0))
        for n in range(2):
            other.answer(n)
            self.successResultOf(calls[1 + n])
        closing = second.close()
        self.assertEqual(other.closed(), [0, 1])
        self.successResultOf(closing)
        self.assertEqual(self.metrics(), (3, 2, 1.0))
        one.answer(0)
        self.successResultOf(calls[0])
        self.assertEqual(self.metrics(), (3, 2, 1.0))

    def test_uncounted(self) -> None:
        """A pool never given a L{ConnectionStats} counts nothing."""
        reactor = MemoryReactorClock()
        pool = HTTPPool(reactor, reactor, "127.0.0.1", 9999)
        backend = Backend(reactor)
        d = pool(Request(b"GET", b"/"))
        backend.accept()
        backend.answer(0)
        self.successResultOf(d)
        self.assertEqual(self.metrics(), (0, 0, 0.0))


class ServerHarness:
    """One server connection with session limits; the handler's Deferreds wait."""

    def __init__(self, session: Session) -> None:
        self.clock = MemoryReactorClock()
        self.pending: list[Deferred[Response]] = []
        self.requests: list[Request] = []
        self.factory = HTTPServerFactory(self.handle, session=session, clock=self.clock)
        self.proto = self.factory.buildProtocol(None)
        self.transport = TCPStringTransport()
        self.proto.makeConnection(self.transport)

    def handle(self, request: Request) -> Deferred[Response]:
        self.requests.append(request)
        d: Deferred[Response] = Deferred()
        self.pending.append(d)
        return d

    def out(self) -> bytes:
        value: bytes = self.transport.value()
        self.transport.clear()
        return value

    def lose(self) -> None:
        self.transport.connected = False
        self.proto.connectionLost(Failure(ConnectionDone()))


GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


class ServerSessionTests(SynchronousTestCase):
    def test_idleKeepAlive(self) -> None:
        """
        A keep-alive connection is closed after C{idleTimeMs} without a
        request, counted from its last response, never with one in progress.
        """
        h = ServerHarness(Session(idleTimeMs=1000))
        h.clock.advance(0.6)
        h.proto.dataReceived(GET)
        h.clock.advance(3)
        self.assertFalse(h.transport.disconnecting)
        h.pending[0].callback(Response(200, body=b"ok"))
        self.assertIn(b"200 OK", h.out())
        h.clock.advance(0.9)
        self.assertFalse(h.transport.disconnecting)
        h.clock.advance(0.2)
        self.assertTrue(h.transport.disconnecting)

    def test_idleWithoutRequests(self) -> None:
        h = ServerHarness(Session(idleTimeMs=1000))
        h.clock.advance(1)
        self.assertTrue(h.transport.disconnecting)
        self.assertEqual(h.out(), b"")

    def test_halfRequestThenNothing(self) -> None:
        """
        A client that sends part of a request (head or buffered body) and
        then nothing for C{idleTimeMs} is disconnected; one that keeps
        sending is not.
        """
        for partial in (b"GET / HTTP/1.1\r\nHo", b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nab"):
            h = ServerHarness(Session(idleTimeMs=1000))
            h.proto.dataReceived(partial)
            h.clock.advance(0.9)
            h.proto.dataReceived(b"c")
            h.clock.advance(0.9)
            self.assertFalse(h.transport.disconnecting)
            h.clock.advance(0.2)
            self.assertTrue(h.transport.disconnecting)
            self.assertEqual(h.requests, [])

    def test_lifeTime(self) -> None:
        """
        At C{lifeTimeMs} the connection closes after the response in
        progress, which says C{Connection: close}.
        """
        h = ServerHarness(Session(lifeTimeMs=5000))
        h.clock.advance(4)
        h.proto.dataReceived(GET)
        h.clock.advance(2)
        self.assertFalse(h.transport.disconnecting)
        h.pending[0].callback(Response(200, body=b"ok"))
        self.assertIn(b"Connection: close\r\n", h.out())
        self.assertTrue(h.transport.disconnecting)

    def test_lifeTimeMidHead(self) -> None:
        """A request being read when the lifetime ends is answered, then the connection closes."""
        h = ServerHarness(Session(lifeTimeMs=5000))
        h.proto.dataReceived(b"GET / HTTP/1.1\r\n")
        h.clock.advance(5)
        self.assertFalse(h.transport.disconnecting)
        h.proto.dataReceived(b"Host: a\r\n\r\n")
        h.pending[0].callback(Response(200, body=b"ok"))
        self.assertIn(b"Connection: close\r\n", h.out())
        self.assertTrue(h.transport.disconnecting)

    def test_lifeTimeOfIdle(self) -> None:
        h = ServerHarness(Session(lifeTimeMs=5000))
        h.clock.advance(4.9)
        self.assertFalse(h.transport.disconnecting)
        h.clock.advance(0.1)
        self.assertTrue(h.transport.disconnecting)

    def test_timersCancelledOnClose(self) -> None:
        h = ServerHarness(Session(1000, 5000))
        self.assertEqual(len(h.clock.getDelayedCalls()), 2)
        h.lose()
        self.assertEqual(h.clock.getDelayedCalls(), [])
        self.assertEqual(h.factory.connections, set())

    def test_noLimitsNoTimers(self) -> None:
        h = ServerHarness(Session())
        self.assertEqual(h.clock.getDelayedCalls(), [])


ROUTER = """
routers:
- protocol: http
  dtab: /svc => /$/inet/127.0.0.1/1;
  servers:
  - port: 0
    serverSession:
      idleTimeMs: 1500
      lifeTimeMs: 60000
"""


class WiringTests(SynchronousTestCase):
    """The router passes its configured limits to its servers and pools."""

    def router(self) -> HttpRouter:
        registry = PluginRegistry.discover()
        config = parseLinkerConfig(ROUTER, "sessions.yaml", registry)
        linker = LinkerService.build(config, MemoryReactorClock(), registry)
        (runtime,) = linker.routers
        service = runtime.service
        assert isinstance(service, HttpRouter)
        return service

    def test_serverSession(self) -> None:
        ((_, factory),) = self.router().servers
        assert isinstance(factory, HTTPServerFactory)
        self.assertEqual(factory.session, Session(1500, 60000))

    def test_clientLimits(self) -> None:
        params = ClientParams(
            hostConnectionPool=HostConnectionPool(1, 4, 60000, 10),
            clientSession=Session(30000, 600000),
        )
        pool = self.router()._connect(Address("127.0.0.1", 8080), params)
        assert isinstance(pool, HTTPPool)
        self.assertEqual(pool.limits, PoolLimits(4, 1, 10, 60000, 30000, 600000))
        self.assertEqual((pool.host, pool.port), ("127.0.0.1", 8080))
