"""
The HTTP router's C{maxChunkKB}, C{maxResponseKB} (with streaming
disabled) and per-connection C{socketOptions} (C{noDelay}, C{keepAlive},
C{readTimeoutMs}, C{writeTimeoutMs}): unit tests on in-memory transports
with a fake clock, and routers built from YAML.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import ITCPTransport
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from linkrouter.config import SocketOptions
from linkrouter.tls import unwrap
from protocols.http.client import HTTPClientProtocol, HTTPPool, PoolConfig
from protocols.http.errors import ConnectionClosed, ResponseTooLarge
from protocols.http.message import BodyStream, Headers, Request, Response
from protocols.http.server import HTTPServerProtocol, ServerConfig
from tests.test_http_compression import parse
from tests.test_http_router import Backend, RouterCase, raw, simpleRouter


@implementer(ITCPTransport)
class TCPTransport(StringTransport):
    """An in-memory TCP transport recording socket options and a write buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.noDelay: bool | None = None
        self.keepAlive: bool | None = None
        self.aborted = False
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataLen = 0

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.noDelay = enabled

    def setTcpKeepAlive(self, enabled: bool) -> None:
        self.keepAlive = enabled

    def getTcpNoDelay(self) -> bool:
        return bool(self.noDelay)

    def getTcpKeepAlive(self) -> bool:
        return bool(self.keepAlive)

    def loseWriteConnection(self) -> None:
        self.loseConnection()

    def abortConnection(self) -> None:
        self.aborted = True
        super().loseConnection()


def server(
    options: SocketOptions, clock: Clock | None = None, config: ServerConfig | None = None
) -> tuple[HTTPServerProtocol, TCPTransport, list[Deferred[Response]]]:
    pending: list[Deferred[Response]] = []

    def handle(request: Request) -> Deferred[Response]:
        d: Deferred[Response] = Deferred()
        pending.append(d)
        return d

    proto = HTTPServerProtocol(handle, config or ServerConfig(), clock=clock, socketOptions=options)
    transport = TCPTransport()
    proto.makeConnection(transport)
    return proto, transport, pending


class ChunkTests(SynchronousTestCase):
    def test_splitWhenWriting(self) -> None:
        """A streamed piece larger than C{maxChunkKB} goes out as several chunks."""
        proto, transport, pending = server(SocketOptions(), config=ServerConfig(maxChunkKB=1))
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        body = BodyStream(None)
        pending[0].callback(Response(200, Headers(), body))
        transport.clear()
        body.write(b"a" * 2500)
        body.write(b"b" * 10)
        body.finish()
        self.assertEqual(
            transport.value(),
            b"400\r\n"
            + b"a" * 1024
            + b"\r\n400\r\n"
            + b"a" * 1024
            + b"\r\n1c4\r\n"
            + b"a" * 452
            + b"\r\na\r\n"
            + b"b" * 10
            + b"\r\n0\r\n\r\n",
        )


class PoolHarness:
    """A pool on a memory reactor whose single connection is an in-memory transport."""

    def __init__(self, config: PoolConfig) -> None:
        self.reactor = MemoryReactorClock()
        self.pool = HTTPPool(self.reactor, self.reactor, "127.0.0.1", 9999, config)

    def get(self) -> tuple[Deferred[Response], HTTPClientProtocol, TCPTransport]:
        d = self.pool(Request(b"GET", b"/", Headers([(b"Host", b"x")])))
        factory = self.reactor.tcpClients[-1][2]
        proto = factory.buildProtocol(None)
        assert isinstance(proto, HTTPClientProtocol)
        transport = TCPTransport()
        proto.makeConnection(transport)
        return d, proto, transport


class ResponseLimitTests(SynchronousTestCase):
    def config(self, **kw: Any) -> PoolConfig:
        return PoolConfig(streamingEnabled=False, maxResponseKB=1, **kw)

    def test_bufferedWhole(self) -> None:
        """Without streaming, even chunked bodies arrive whole, up to the limit."""
        d, proto, _ = PoolHarness(self.config()).get()
        proto.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        proto.dataReceived(b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n")
        self.assertEqual(self.successResultOf(d).body, b"abcdef")

    def test_declaredTooLarge(self) -> None:
        d, proto, transport = PoolHarness(self.config()).get()
        proto.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 1025\r\n\r\n")
        failure = self.failureResultOf(d, ResponseTooLarge)
        self.assertIn("maxResponseKB (1)", str(failure.value))
        self.assertTrue(transport.aborted)

    def test_chunkedTooLarge(self) -> None:
        d, proto, transport = PoolHarness(self.config()).get()
        proto.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        proto.dataReceived(b"400\r\n" + b"a" * 1024 + b"\r\n")
        self.assertNoResult(d)
        proto.dataReceived(b"1\r\na\r\n")
        self.failureResultOf(d, ResponseTooLarge)
        self.assertTrue(transport.aborted)

    def test_untilClose(self) -> None:
        """A body delimited by the connection's end is buffered and delivered at the end."""
        d, proto, _ = PoolHarness(self.config()).get()
        proto.dataReceived(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nsome")
        proto.dataReceived(b" body")
        self.assertNoResult(d)
        proto.connectionLost()
        self.assertEqual(self.successResultOf(d).body, b"some body")

    def test_streamingUnlimited(self) -> None:
        """With streaming, C{maxResponseKB} does not apply: large bodies stream."""
        d, proto, _ = PoolHarness(PoolConfig(maxResponseKB=1)).get()
        proto.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        self.assertIsInstance(self.successResultOf(d).body, BodyStream)


class ResponseHeadLimitTests(SynchronousTestCase):
    """C{maxInitialLineKB} and C{maxHeadersKB} bound a response's head as a request's."""

    def get(self) -> tuple[Deferred[Response], HTTPClientProtocol, TCPTransport]:
        return PoolHarness(PoolConfig(maxHeadersKB=1, maxInitialLineKB=1)).get()

    def test_withinLimits(self) -> None:
        d, proto, _ = self.get()
        proto.dataReceived(
            b"HTTP/1.1 200 " + b"O" * 1000 + b"\r\nX-A: " + b"a" * 900 + b"\r\n"
            b"Content-Length: 2\r\n\r\nok" + b"x" * 5000
        )
        self.assertEqual(self.successResultOf(d).body, b"ok")

    def test_longStatusLine(self) -> None:
        d, proto, transport = self.get()
        proto.dataReceived(b"HTTP/1.1 200 " + b"O" * 1100 + b"\r\n\r\n")
        failure = self.failureResultOf(d, ResponseTooLarge)
        self.assertIn("maxInitialLineKB (1)", str(failure.value))
        self.assertTrue(transport.aborted)

    def test_manyHeaders(self) -> None:
        d, proto, transport = self.get()
        headers = b"".join(b"X-%d: %s\r\n" % (n, b"v" * 100) for n in range(20))
        proto.dataReceived(b"HTTP/1.1 200 OK\r\n" + headers + b"Content-Length: 0\r\n\r\n")
        failure = self.failureResultOf(d, ResponseTooLarge)
        self.assertIn("maxHeadersKB (1)", str(failure.value))
        self.assertTrue(transport.aborted)

    def test_headThatNeverEnds(self) -> None:
        """One header value arriving forever fails once the head is over the limits."""
        d, proto, transport = self.get()
        proto.dataReceived(b"HTTP/1.1 200 OK\r\nX-Endless: ")
        for _ in range(5):
            proto.dataReceived(b"v" * 400)
        self.assertNoResult(d)  # 2,027 bytes: within 1 KB of line and 1 KB of headers
        proto.dataReceived(b"v" * 400)
        self.failureResultOf(d, ResponseTooLarge)
        self.assertTrue(transport.aborted)


class SocketOptionTests(SynchronousTestCase):
    def test_serverOptions(self) -> None:
        _, transport, _ = server(SocketOptions(noDelay=False, keepAlive=True))
        self.assertEqual((transport.noDelay, transport.keepAlive), (False, True))
        _, transport, _ = server(SocketOptions())
        self.assertEqual((transport.noDelay, transport.keepAlive), (True, None))

    def test_clientOptions(self) -> None:
        config = PoolConfig(socketOptions=SocketOptions(noDelay=False, keepAlive=False))
        _, _, transport = PoolHarness(config).get()
        self.assertEqual((transport.noDelay, transport.keepAlive), (False, False))

    def test_serverReadTimeout(self) -> None:
        """
        An idle connection is not timed out; one that sent part of a
        request and then nothing for C{readTimeoutMs} is closed.
        """
        clock = Clock()
        proto, transport, _ = server(SocketOptions(readTimeoutMs=1000), clock)
        clock.advance(5)
        self.assertFalse(transport.disconnecting)
        proto.dataReceived(b"GET / HTTP/1.1\r\n")
        clock.advance(0.6)
        proto.dataReceived(b"Host: x\r\n")
        clock.advance(0.6)
        self.assertFalse(transport.disconnecting)
        clock.advance(0.5)
        self.assertTrue(transport.aborted)
        proto.connectionLost()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_serverWaitingIsNotReading(self) -> None:
        """A request read whole, waiting for its response, is not a read timeout."""
        clock = Clock()
        proto, transport, pending = server(SocketOptions(readTimeoutMs=1000), clock)
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        clock.advance(10)
        self.assertFalse(transport.disconnecting)
        pending[0].callback(Response(200, Headers(), b"ok"))
        self.assertIn(b"ok", transport.value())

    def test_serverWriteTimeout(self) -> None:
        """Bytes that wait unsent for C{writeTimeoutMs} close the connection; moving ones do not."""
        clock = Clock()
        _proto, transport, _ = server(SocketOptions(writeTimeoutMs=1000), clock)
        transport.dataBuffer = b"x" * 100
        clock.advance(1)
        clock.advance(0.5)
        transport.offset = 50  # some bytes left
        clock.advance(0.5)
        clock.advance(0.9)
        self.assertFalse(transport.disconnecting)
        clock.advance(0.2)
        self.assertTrue(transport.aborted)

    def test_clientReadTimeout(self) -> None:
        """An endpoint silent for C{readTimeoutMs} fails the request; the connection is dropped."""
        harness = PoolHarness(PoolConfig(socketOptions=SocketOptions(readTimeoutMs=500)))
        d, proto, transport = harness.get()
        harness.reactor.advance(0.3)
        proto.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
        harness.reactor.advance(0.3)
        self.assertNoResult(d)  # the body is still coming, within the timeout
        self.assertFalse(transport.disconnecting)
        proto.dataReceived(b"cd")
        self.assertEqual(self.successResultOf(d).body, b"abcd")
        d2 = harness.pool(Request(b"GET", b"/", Headers([(b"Host", b"x")])))
        harness.reactor.advance(0.6)
        failure = self.failureResultOf(d2, ConnectionClosed)
        self.assertIn("readTimeoutMs (500)", str(failure.value))
        self.assertTrue(transport.aborted)

    def test_clientReadClockStartsAtSend(self) -> None:
        """
        The read clock of a request starts when it is sent, not at the
        watchdog's last look at the idle connection: a request sent just
        before a look still gets the whole C{readTimeoutMs}.
        """
        harness = PoolHarness(PoolConfig(socketOptions=SocketOptions(readTimeoutMs=500)))
        d, proto, transport = harness.get()
        proto.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        self.successResultOf(d)
        harness.reactor.advance(0.49)  # the idle connection's next look is at 0.5
        d2 = harness.pool(Request(b"GET", b"/", Headers([(b"Host", b"x")])))
        harness.reactor.advance(0.02)
        self.assertNoResult(d2)
        self.assertFalse(transport.aborted)
        harness.reactor.advance(0.5)
        self.failureResultOf(d2, ConnectionClosed)

    def test_clientIdleNotTimedOut(self) -> None:
        harness = PoolHarness(PoolConfig(socketOptions=SocketOptions(readTimeoutMs=500)))
        d, proto, transport = harness.get()
        proto.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        self.successResultOf(d)
        harness.reactor.advance(10)
        self.assertFalse(transport.disconnecting)


class RouterOptionTests(RouterCase):
    @inlineCallbacks
    def test_maxResponseKB(self) -> Any:
        """With C{streamingEnabled: false}, a response over C{maxResponseKB} is a 502."""
        backend = Backend(self, "A")
        backend.body = b"x" * 2048
        router = simpleRouter(
            self,
            f"/svc/* => {backend.inet};",
            "  streamingEnabled: false\n  maxResponseKB: 1",
        )
        reply = yield raw(router.port, b"GET / HTTP/1.1\r\nHost: foo\r\nConnection: close\r\n\r\n")
        line, headers, _body = parse(reply)
        self.assertEqual(line, b"HTTP/1.1 502 Bad Gateway")
        self.assertIn(b"maxResponseKB", headers[b"l5d-err"])
        backend.body = b"x" * 1000
        answer = yield self.request(router)
        self.assertEqual((answer.code, answer.body), (200, b"x" * 1000))

    @inlineCallbacks
    def test_socketOptions(self) -> Any:
        """Server C{socketOptions} reach the accepted socket."""
        backend = Backend(self, "A")
        router = simpleRouter(
            self,
            f"/svc/* => {backend.inet};",
            server="    socketOptions:\n      keepAlive: true\n      readTimeoutMs: 5000",
        )
        answer = yield self.request(router)
        self.assertEqual(answer.code, 200)
        [(_, factory)] = router.service.servers
        [connection] = unwrap(factory).connections
        handle = connection.transport.getHandle()
        self.assertTrue(handle.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
        self.assertTrue(handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
