"""
Integration tests of the HTTP data path on loopback: a raw client talks to
L{protocols.http.proxy.serve}, which forwards over an L{HTTPPool} to a real
backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.protocol import ClientCreator, Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase

from linkrouter._sessions import PoolLimits
from linkrouter.interfaces import Status
from protocols.http.client import HTTPPool, PoolConfig
from protocols.http.errors import ConnectionFailed, PoolExhausted
from protocols.http.message import Request
from protocols.http.proxy import forwardTo, serve

from .test_http_router import until

reactor: Any = _reactor


class Raw(Protocol):
    """Either side: records bytes and connection state, runs a script on data."""

    def __init__(self, script: Callable[[Raw, bytes], None] | None = None) -> None:
        self.received = b""
        self.closed = False
        self.script = script

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if self.script is not None:
            self.script(self, data)

    def connectionLost(self, reason: object = None) -> None:
        self.closed = True

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


class Backend(Factory):
    def __init__(self, script: Callable[[Raw, bytes], None]) -> None:
        self.script = script
        self.conns: list[Raw] = []

    def buildProtocol(self, addr: object) -> Raw:
        p = Raw(self.script)
        self.conns.append(p)
        return p


def answerEach(body: Callable[[bytes], bytes]) -> Callable[[Raw, bytes], None]:
    """A backend script answering each complete request head with C{body(head)}."""

    def script(p: Raw, data: bytes) -> None:
        while b"\r\n\r\n" in p.received:
            head, _, p.received = p.received.partition(b"\r\n\r\n")
            content = body(head)
            p.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(content), content))

    return script


def pathOf(head: bytes) -> bytes:
    return head.split(b" ")[1]


class ProxyTests(TestCase):
    timeout = 20

    def setUpProxy(
        self, script: Callable[[Raw, bytes], None], config: PoolConfig | None = None
    ) -> None:
        self.backend = Backend(script)
        port = reactor.listenTCP(0, self.backend, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.pool = HTTPPool(reactor, reactor, "127.0.0.1", port.getHost().port, config)
        self.addCleanup(self.pool.close)
        self.proxy = serve(reactor, forwardTo(self.pool))
        self.addCleanup(self.proxy.stopListening)

    @inlineCallbacks
    def connect(self) -> Any:
        address: Any = self.proxy.getHost()
        client = yield ClientCreator(reactor, Raw).connectTCP("127.0.0.1", address.port)
        self.addCleanup(client.transport.abortConnection)
        return client

    @inlineCallbacks
    def test_keepAliveReuse(self) -> Any:
        self.setUpProxy(answerEach(pathOf))
        client = yield self.connect()
        for i in range(3):
            client.send(b"GET /%d HTTP/1.1\r\nHost: svc\r\n\r\n" % i)
            suffix = b"/%d" % i
            yield until(lambda: client.received.endswith(suffix))  # noqa: B023
        self.assertEqual(len(self.backend.conns), 1)
        self.assertEqual((self.pool.size, self.pool.idle), (1, 1))
        self.assertIn(b"Via: 1.1 linkrouter", client.received)

    @inlineCallbacks
    def test_pipelinedOrder(self) -> Any:
        self.setUpProxy(answerEach(pathOf))
        client = yield self.connect()
        client.send(b"".join(b"GET /%d HTTP/1.1\r\nHost: svc\r\n\r\n" % i for i in range(5)))
        yield until(lambda: client.received.endswith(b"/4"))
        bodies = [part.split(b"\r\n\r\n")[1] for part in client.received.split(b"HTTP/1.1 ")[1:]]
        self.assertEqual(bodies, [b"/0", b"/1", b"/2", b"/3", b"/4"])

    @inlineCallbacks
    def test_chunkedStreamedBothWays(self) -> Any:
        def echo(p: Raw, data: bytes) -> None:
            if p.received.endswith(b"0\r\n\r\n"):
                head, _, body = p.received.partition(b"\r\n\r\n")
                assert b"Transfer-Encoding: chunked" in head, head
                p.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)

        self.setUpProxy(echo)
        client = yield self.connect()
        client.send(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        client.send(b"3\r\nabc\r\n")
        yield until(lambda: bool(self.backend.conns) and b"abc" in self.backend.conns[0].received)
        client.send(b"4000\r\n" + b"x" * 0x4000 + b"\r\n0\r\n\r\n")
        yield until(lambda: client.received.endswith(b"0\r\n\r\n"))
        body = client.received.partition(b"\r\n\r\n")[2]
        self.assertEqual(body.replace(b"\r\n", b"").count(b"x"), 0x4000)

    @inlineCallbacks
    def test_slowReaderPausesUpstream(self) -> Any:
        size = 16 * 1024 * 1024
        chunk = b"y" * 65536

        def bigResponse(p: Raw, data: bytes) -> None:
            if b"\r\n\r\n" in data:
                p.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
                for _ in range(size // len(chunk)):
                    p.send(chunk)

        self.setUpProxy(bigResponse)
        client = yield self.connect()
        client.transport.pauseProducing()
        client.send(b"GET / HTTP/1.1\r\n\r\n")
        yield deferLater(reactor, 0.5, lambda: None)
        transport: Any = self.backend.conns[0].transport
        backendQueued = len(transport.dataBuffer) + sum(len(b) for b in transport._tempDataBuffer)
        # The proxy stopped reading, so most of the body still waits at the backend.
        self.assertGreater(backendQueued, size // 2)
        client.transport.resumeProducing()
        yield until(lambda: len(client.received) >= size, timeout=15)
        self.assertTrue(client.received.endswith(chunk))

    @inlineCallbacks
    def test_expectContinue(self) -> Any:
        self.setUpProxy(answerEach(lambda head: b"got"))
        client = yield self.connect()
        client.send(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        yield until(lambda: client.received == b"HTTP/1.1 100 Continue\r\n\r\n")
        client.send(b"body")
        yield until(lambda: client.received.endswith(b"got"))
        self.assertNotIn(b"100-continue", self.backend.conns[0].received)

    @inlineCallbacks
    def test_headThenGetOnSameConnection(self) -> Any:
        def script(p: Raw, data: bytes) -> None:
            if p.received.startswith(b"HEAD"):
                p.received = b""
                p.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
            elif p.received.endswith(b"\r\n\r\n"):
                p.received = b""
                p.send(b"HTTP/1.1 204 No Content\r\n\r\n")

        self.setUpProxy(script)
        client = yield self.connect()
        client.send(b"HEAD / HTTP/1.1\r\n\r\n")
        yield until(lambda: b"\r\n\r\n" in client.received)
        self.assertIn(b"Content-Length: 10\r\n", client.received)
        client.received = b""
        client.send(b"GET / HTTP/1.1\r\n\r\n")
        yield until(lambda: client.received.startswith(b"HTTP/1.1 204"))
        self.assertEqual(len(self.backend.conns), 1)

    @inlineCallbacks
    def test_upgradeTunnel(self) -> Any:
        def script(p: Raw, data: bytes) -> None:
            if b"\r\n\r\n" in p.received and not p.received.startswith(b"done"):
                head = p.received
                assert b"Upgrade: echo" in head and b"Connection: upgrade" in head, head
                p.received = b"done"
                p.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n\r\nhello")
            elif p.received.startswith(b"done") and data:
                p.send(data.upper())

        self.setUpProxy(script)
        client = yield self.connect()
        client.send(b"GET /ws HTTP/1.1\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
        yield until(lambda: client.received.endswith(b"hello"))
        self.assertTrue(client.received.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"))
        client.send(b"ping")
        yield until(lambda: client.received.endswith(b"PING"))
        client.transport.loseConnection()
        yield until(lambda: self.backend.conns[0].closed)

    @inlineCallbacks
    def test_clientResetClosesUpstream(self) -> Any:
        """A client gone (reset) with a request in flight: the upstream exchange is abandoned."""
        self.setUpProxy(lambda p, data: None)
        client = yield self.connect()
        client.send(b"GET / HTTP/1.1\r\n\r\n")
        yield until(lambda: bool(self.backend.conns) and bool(self.backend.conns[0].received))
        client.transport.abortConnection()
        yield until(lambda: self.backend.conns[0].closed)
        yield until(lambda: self.pool.size == 0)

    @inlineCallbacks
    def test_clientCloseClosesUpstream(self) -> Any:
        """
        A client that closes its connection (a FIN) with a request in
        flight is gone: the upstream exchange is abandoned, its connection
        closed, not reused.
        """
        self.setUpProxy(lambda p, data: None)
        client = yield self.connect()
        client.send(b"GET / HTTP/1.1\r\n\r\n")
        yield until(lambda: bool(self.backend.conns) and bool(self.backend.conns[0].received))
        client.transport.loseConnection()
        yield until(lambda: self.backend.conns[0].closed)
        yield until(lambda: self.pool.size == 0)

    @inlineCallbacks
    def test_backendDiesMidResponse(self) -> Any:
        def script(p: Raw, data: bytes) -> None:
            p.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"z" * 10)
            assert p.transport is not None
            p.transport.loseConnection()

        self.setUpProxy(script)
        self.pool.config = PoolConfig(streamAfterContentLengthKB=1)
        client = yield self.connect()
        client.send(b"GET / HTTP/1.1\r\n\r\n")
        yield until(lambda: client.closed)
        self.assertTrue(client.received.endswith(b"z" * 10))

    @inlineCallbacks
    def test_unsolicitedResponseNotReused(self) -> Any:
        """
        A backend that answers one request twice in one write: the caller
        gets the first answer, and the connection is closed rather than
        pooled, so the next request cannot be given the extra one.
        """

        def script(p: Raw, data: bytes) -> None:
            if b"\r\n\r\n" in p.received:
                path = pathOf(p.received)
                p.received = b""
                ok = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(path), path)
                p.send(ok + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra")

        self.setUpProxy(script)
        client = yield self.connect()
        client.send(b"GET /first HTTP/1.1\r\nHost: svc\r\n\r\n")
        yield until(lambda: client.received.endswith(b"/first"))
        yield until(lambda: self.backend.conns[0].closed)
        client.send(b"GET /second HTTP/1.1\r\nHost: svc\r\n\r\n")
        yield until(lambda: client.received.endswith(b"/second"))
        self.assertNotIn(b"extra", client.received)
        self.assertEqual(len(self.backend.conns), 2)

    @inlineCallbacks
    def test_unsolicitedUpgradeNotReused(self) -> Any:
        """
        A backend that switches protocols on a plain request: the caller gets
        a 502, the connection is closed, and the next request gets a
        connection of its own.
        """

        def script(p: Raw, data: bytes) -> None:
            if b"\r\n\r\n" not in p.received:
                return
            path = pathOf(p.received)
            p.received = b""
            if path == b"/switch":
                p.send(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n")
                p.send(b"Upgrade: x\r\n\r\nnot http")
            else:
                p.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(path), path))

        self.setUpProxy(script)
        client = yield self.connect()
        client.send(b"GET /switch HTTP/1.1\r\nHost: svc\r\n\r\n")
        yield until(lambda: client.received.startswith(b"HTTP/1.1 502 "))
        self.assertIn(b"switch of protocols nobody asked for", client.received)
        yield until(lambda: self.backend.conns[0].closed)
        other = yield self.connect()
        other.send(b"GET /after HTTP/1.1\r\nHost: svc\r\n\r\n")
        yield until(lambda: other.received.endswith(b"/after"))
        self.assertEqual(len(self.backend.conns), 2)

    @inlineCallbacks
    def test_refusedIsRetryable502(self) -> Any:
        self.setUpProxy(lambda p, data: None)
        port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        number = port.getHost().port  # type: ignore[attr-defined]
        yield port.stopListening()
        pool = HTTPPool(reactor, reactor, "127.0.0.1", number)
        error = yield self.assertFailure(pool(Request(b"GET", b"/")), ConnectionFailed)
        self.assertFalse(error.writtenAnything)
        proxy = serve(reactor, forwardTo(pool))
        self.addCleanup(proxy.stopListening)
        address: Any = proxy.getHost()
        client = yield ClientCreator(reactor, Raw).connectTCP("127.0.0.1", address.port)
        self.addCleanup(client.transport.abortConnection)
        client.send(b"GET / HTTP/1.1\r\n\r\n")
        yield until(lambda: b"\r\n\r\n" in client.received)
        self.assertTrue(client.received.startswith(b"HTTP/1.1 502 Bad Gateway"))
        self.assertIn(b"l5d-retryable: true", client.received)

    @inlineCallbacks
    def test_poolLimitsAndIdleReaping(self) -> Any:
        held: list[Raw] = []
        self.setUpProxy(lambda p, data: held.append(p))
        clock = Clock()
        pool = HTTPPool(
            reactor,
            clock,
            "127.0.0.1",
            self.pool.port,
            limits=PoolLimits(maxSize=1, maxWaiters=1, idleTimeMs=1000),
        )
        first = pool(Request(b"GET", b"/1"))
        second = pool(Request(b"GET", b"/2"))
        self.assertEqual(pool.status, Status.BUSY)
        yield self.assertFailure(pool(Request(b"GET", b"/3")), PoolExhausted)
        yield until(lambda: bool(held))
        held[0].send(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        r1 = yield first
        self.assertEqual(r1.body, b"1")
        yield until(lambda: len(held) == 2)
        held[1].send(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2")
        r2 = yield second
        yield until(lambda: pool.idle == 1)
        self.assertEqual((r2.body, len(self.backend.conns)), (b"2", 1))
        clock.advance(1.5)
        yield until(lambda: pool.size == 0)
        yield pool.close()
        self.assertEqual(pool.status, Status.CLOSED)
