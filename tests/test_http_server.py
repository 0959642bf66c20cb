"""
Tests for L{protocols.http.server} against an in-memory transport.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from protocols.http.message import BodyStream, Headers, Request, Response
from protocols.http.server import HTTPServerProtocol, ServerConfig

from ._fakes import RecordingProducer


class Harness:
    """A server connection whose handler records requests and their Deferreds."""

    def __init__(self, config: ServerConfig | None = None, auto: bool = False) -> None:
        self.requests: list[Request] = []
        self.pending: list[Deferred[Response]] = []
        self.cancelled: list[Deferred[Response]] = []
        self.auto = auto
        self.proto = HTTPServerProtocol(self.handle, config or ServerConfig())
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)

    def handle(self, request: Request) -> Deferred[Response]:
        self.requests.append(request)
        if self.auto:
            return succeed(Response(200, Headers([(b"X", b"1")]), b"ok"))
        d: Deferred[Response] = Deferred(self.cancelled.append)
        self.pending.append(d)
        return d

    def feed(self, data: bytes) -> None:
        self.proto.dataReceived(data)

    def out(self) -> bytes:
        value: bytes = self.transport.value()
        self.transport.clear()
        return value


class ServerTests(SynchronousTestCase):
    def test_simpleKeepAlive(self) -> None:
        h = Harness(auto=True)
        h.feed(b"GET /a?b HTTP/1.1\r\nHost: foo\r\nConnection: keep-alive\r\n\r\n")
        [req] = h.requests
        self.assertEqual(
            (req.method, req.uri, req.version, req.path), (b"GET", b"/a?b", b"1.1", b"/a")
        )
        self.assertEqual(req.headers.raw, [(b"Host", b"foo")])
        self.assertEqual(h.out(), b"HTTP/1.1 200 OK\r\nX: 1\r\nContent-Length: 2\r\n\r\nok")
        self.assertFalse(h.transport.disconnecting)

    def test_http10(self) -> None:
        h = Harness(auto=True)
        h.feed(b"GET / HTTP/1.0\r\n\r\n")
        self.assertIn(b"Connection: close\r\n", h.out())
        self.assertTrue(h.transport.disconnecting)
        h = Harness(auto=True)
        h.feed(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        self.assertTrue(
            h.out().startswith(
                b"HTTP/1.0 200 OK\r\nX: 1\r\nContent-Length: 2\r\nConnection: keep-alive"
            )
        )
        self.assertFalse(h.transport.disconnecting)

    def test_pipelinedInOrder(self) -> None:
        h = Harness()
        h.feed(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual([r.uri for r in h.requests], [b"/1", b"/2"])
        h.pending[1].callback(Response(200, body=b"second"))
        self.assertEqual(h.out(), b"")
        h.pending[0].callback(Response(200, body=b"first"))
        out = h.out()
        self.assertLess(out.index(b"first"), out.index(b"second"))

    def test_smallBodyBuffered(self) -> None:
        h = Harness(auto=True)
        h.feed(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel")
        self.assertEqual(h.requests, [])
        h.feed(b"lo")
        self.assertEqual(h.requests[0].body, b"hello")

    def test_chunkedBodyStreamedWithTrailers(self) -> None:
        h = Harness()
        h.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        body = h.requests[0].body
        assert isinstance(body, BodyStream)
        self.assertIsNone(body.length)
        got: list[object] = []

        class C:
            def bodyData(self, data: bytes) -> None:
                got.append(data)

            def bodyEnd(self, trailers: Headers | None) -> None:
                got.append(trailers)

            def bodyError(self, reason: object) -> None:
                got.append(reason)

        body.attach(C())
        h.feed(b"2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n")
        self.assertEqual(got, [b"abc", b"de", Headers([(b"X-Sum", b"5")])])
        self.assertEqual(h.requests[0].headers.raw, [])

    def test_largeBodyStreamed(self) -> None:
        h = Harness(ServerConfig(streamAfterContentLengthKB=1))
        h.feed(b"PUT / HTTP/1.1\r\nContent-Length: 2000\r\n\r\n" + b"x" * 100)
        body = h.requests[0].body
        assert isinstance(body, BodyStream)
        self.assertEqual(body.length, 2000)

    def test_streamedResponseChunked(self) -> None:
        h = Harness()
        h.feed(b"GET / HTTP/1.1\r\n\r\n")
        stream = BodyStream(None)
        h.pending[0].callback(Response(200, body=stream))
        stream.write(b"hello")
        stream.finish(Headers([(b"T", b"1")]))
        self.assertEqual(
            h.out(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nT: 1\r\n\r\n",
        )
        self.assertFalse(h.transport.disconnecting)

    def test_streamedResponseTo10Client(self) -> None:
        h = Harness()
        h.feed(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        stream = BodyStream(None)
        h.pending[0].callback(Response(200, body=stream))
        stream.write(b"hello")
        stream.finish()
        self.assertEqual(h.out(), b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nhello")
        self.assertTrue(h.transport.disconnecting)

    def test_headAnd204And304HaveNoBody(self) -> None:
        for method, status in [(b"HEAD", 200), (b"GET", 204), (b"GET", 304)]:
            h = Harness()
            h.feed(method + b" / HTTP/1.1\r\n\r\n")
            h.pending[0].callback(
                Response(status, Headers([(b"Content-Length", b"10")]), b"0123456789")
            )
            self.assertEqual(
                h.out(),
                b"HTTP/1.1 %d %s\r\nContent-Length: 10\r\n\r\n"
                % (status, {200: b"OK", 204: b"No Content", 304: b"Not Modified"}[status]),
            )

    def test_expectContinue(self) -> None:
        h = Harness(auto=True)
        h.feed(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        self.assertEqual(h.out(), b"HTTP/1.1 100 Continue\r\n\r\n")
        h.feed(b"hi")
        self.assertEqual(h.requests[0].body, b"hi")
        self.assertNotIn(b"expect", [n.lower() for n, _ in h.requests[0].headers])
        self.assertTrue(h.out().startswith(b"HTTP/1.1 200 OK"))

    def assertRejected(self, h: Harness, status: int) -> bytes:
        out = h.out()
        self.assertTrue(out.startswith(b"HTTP/1.1 %d " % status), out[:80])
        self.assertIn(b"l5d-err: ", out)
        self.assertIn(b"Connection: close", out)
        self.assertTrue(h.transport.disconnecting)
        self.assertEqual(h.requests, [])
        return out

    def test_uriTooLong(self) -> None:
        h = Harness(ServerConfig(maxInitialLineKB=1))
        h.feed(b"GET /" + b"a" * 600)
        h.feed(b"a" * 600 + b" HTTP/1.1\r\n\r\n")
        self.assertIn(b"maxInitialLineKB", self.assertRejected(h, 414))

    def test_headersTooLarge(self) -> None:
        h = Harness(ServerConfig(maxHeadersKB=1))
        h.feed(b"GET / HTTP/1.1\r\nA: " + b"a" * 2000 + b"\r\n\r\n")
        self.assertRejected(h, 431)

    def test_headersTooLargeSlowly(self) -> None:
        h = Harness(ServerConfig(maxHeadersKB=1, maxInitialLineKB=1))
        h.feed(b"GET / HTTP/1.1\r\nA: ")
        for _ in range(30):
            h.feed(b"a" * 100)
        self.assertRejected(h, 431)

    def test_bodyTooLargeWithoutStreaming(self) -> None:
        h = Harness(ServerConfig(streamingEnabled=False, maxRequestKB=1))
        h.feed(b"POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n")
        self.assertRejected(h, 413)

    def test_malformed(self) -> None:
        h = Harness()
        h.feed(b"GARBAGE\x00 / HTTP/1.1\r\n\r\n")
        self.assertIn(b"Malformed", self.assertRejected(h, 400))

    def test_ambiguousFramingOrRouting(self) -> None:
        """
        Requests that a backend could read differently from the router (the
        smuggling and routing-confusion cases) are refused, never forwarded.
        """
        for head in [
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ]:
            h = Harness()
            h.feed(head + b"4\r\nabcd\r\n0\r\n\r\n")
            self.assertIn(b"Malformed", self.assertRejected(h, 400))

    def test_rejectAfterPendingResponse(self) -> None:
        h = Harness()
        h.feed(b"GET /1 HTTP/1.1\r\n\r\nBAD\x00\r\n\r\n")
        self.assertEqual(h.out(), b"")
        h.pending[0].callback(Response(200, body=b"one"))
        out = h.out()
        self.assertTrue(out.startswith(b"HTTP/1.1 200 OK"))
        self.assertIn(b"HTTP/1.1 400 Bad Request", out)

    def test_disconnectCancelsHandler(self) -> None:
        h = Harness()
        h.feed(b"GET / HTTP/1.1\r\n\r\n")
        d = h.pending[0]
        h.proto.connectionLost()
        self.assertEqual(h.cancelled, [d])

    def test_disconnectStopsResponseBody(self) -> None:
        h = Harness()
        h.feed(b"GET / HTTP/1.1\r\n\r\n")
        stopped: list[bool] = []

        class Source:
            def pauseProducing(self) -> None:
                pass

            def resumeProducing(self) -> None:
                pass

            def stopProducing(self) -> None:
                stopped.append(True)

        stream = BodyStream(Source())
        h.pending[0].callback(Response(200, body=stream))
        h.proto.connectionLost()
        self.assertEqual(stopped, [True])

    def test_handlerFailureIsA502(self) -> None:
        h = Harness()
        h.feed(b"GET / HTTP/1.1\r\n\r\n")
        h.pending[0].errback(RuntimeError("boom"))
        out = h.out()
        self.assertTrue(out.startswith(b"HTTP/1.1 502 Bad Gateway"))
        self.assertIn(b"l5d-err: ", out)

    def test_hopByHopStripped(self) -> None:
        h = Harness(auto=True)
        h.feed(
            b"GET / HTTP/1.1\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\n"
            b"TE: trailers\r\nProxy-Authorization: x\r\nX-Keep: 2\r\n\r\n"
        )
        self.assertEqual(h.requests[0].headers.raw, [(b"X-Keep", b"2")])
        self.assertTrue(h.transport.disconnecting)

    def test_slowConsumerPausesSource(self) -> None:
        h = Harness()
        h.feed(b"GET / HTTP/1.1\r\n\r\n")
        source = RecordingProducer()
        paused = source.calls
        stream = BodyStream(source)
        h.pending[0].callback(Response(200, body=stream))
        self.assertIs(h.transport.producer, stream)
        stream.pauseProducing()  # what the transport does when its buffer is full
        stream.resumeProducing()
        self.assertEqual(paused, ["pause", "resume"])
