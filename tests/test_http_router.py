"""
The whole C{protocol: http} router, built from a YAML configuration by the
linker service with the real plugin registry, between treq (or raw sockets)
and small twisted.web backends on loopback.
"""

from __future__ import annotations

import gzip
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

import attrs
import treq
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ConnectionRefusedError, ProcessExitedAlready
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import ClientCreator, Factory, ProcessProtocol, Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web import http, resource, server
from twisted.web.client import HTTPConnectionPool
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from linkrouter._plugins import PluginRegistry
from linkrouter.config import LinkerConfig, loadLinkerConfig
from linkrouter.context import IDrainable
from linkrouter.service import LinkerService
from protocols.http.plugin import HttpRouter
from tests import plugin_fixtures

from ._linker import routerPort, startLinker

reactor: Any = _reactor


def until(cond: Callable[[], bool], timeout: float = 5.0) -> Deferred[None]:
    """Poll C{cond} every 5 ms; fail after C{timeout} seconds."""

    @inlineCallbacks
    def poll() -> Any:
        for _ in range(int(timeout / 0.005)):
            if cond():
                return
            yield deferLater(reactor, 0.005, lambda: None)
        raise AssertionError("condition not met in time")

    return poll()  # type: ignore[no-any-return]


@attrs.frozen
class Seen:
    """A request as a backend received it."""

    method: bytes
    uri: bytes
    headers: dict[bytes, list[bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


class _Answer(resource.Resource):
    isLeaf = True

    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self.backend = backend

    def render(self, request: Any) -> Any:
        backend = self.backend
        headers = {
            name.lower(): list(values) for name, values in request.requestHeaders.getAllRawHeaders()
        }
        backend.seen.append(Seen(request.method, request.uri, headers, request.content.read()))
        status = backend.statuses.pop(0) if backend.statuses else backend.status
        body = backend.body or backend.name.encode() + b"\n"

        def finish() -> None:
            request.setResponseCode(status)
            request.setHeader(b"x-backend", backend.name.encode())
            request.setHeader(b"content-length", b"%d" % len(body))
            request.write(body)
            request.finish()

        if not backend.delay:
            finish()
            return server.NOT_DONE_YET
        timer = reactor.callLater(backend.delay, finish)
        backend.timers.append(timer)

        def gone(_: object) -> None:
            if timer.active():
                timer.cancel()
                backend.cancelled += 1

        request.notifyFinish().addErrback(gone)
        return server.NOT_DONE_YET


class _Site(server.Site):
    protocol = http.HTTPChannel  # type: ignore[assignment]

    def __init__(self, backend: Backend) -> None:
        super().__init__(_Answer(backend), timeout=None)
        self.backend = backend

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        self.backend.connections.append(protocol)
        return protocol


class Backend:
    """
    A twisted.web backend on loopback recording what it receives; it
    answers C{statuses} in turn, then C{status}, after C{delay} seconds,
    with its C{name} as the body.
    """

    def __init__(self, case: TestCase, name: str, status: int = 200, delay: float = 0.0) -> None:
        self.name = name
        self.status = status
        self.statuses: list[int] = []
        self.delay = delay
        self.body = b""
        self.seen: list[Seen] = []
        self.connections: list[Any] = []
        self.timers: list[IDelayedCall] = []
        self.cancelled = 0
        self.listening = reactor.listenTCP(0, _Site(self), interface="127.0.0.1")
        self.port: int = self.listening.getHost().port
        case.addCleanup(self.stop)

    @property
    def inet(self) -> str:
        return f"/$/inet/127.0.0.1/{self.port}"

    def stop(self) -> Deferred[Any]:
        for timer in self.timers:
            if timer.active():
                timer.cancel()
        for protocol in self.connections:
            if protocol.transport is not None:
                protocol.transport.abortConnection()
        return self.listening.stopListening()  # type: ignore[no-any-return]


@attrs.frozen
class Running:
    linker: LinkerService
    service: HttpRouter
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metric(self, name: str) -> Any:
        """The value of metric C{name} (C{/}-separated), or C{None} if absent."""
        for names, metric in self.linker.metrics.items():
            if "/".join(names) == name:
                return metric
        return None


def startRouter(
    case: TestCase, yaml: str | LinkerConfig, plugins: PluginRegistry | None = None
) -> Running:
    """Build and start the router of C{yaml} (text, or a parsed configuration)."""
    linker = startLinker(case, yaml, plugins)
    service = linker.routers[0].service
    assert isinstance(service, HttpRouter)
    return Running(linker, service, routerPort(linker))


def simpleRouter(case: TestCase, dtab: str, extra: str = "", server: str = "") -> Running:
    """A router with C{dtab}, router keys C{extra} and server keys C{server}."""
    return startRouter(
        case,
        f"""
routers:
- protocol: http
  dtab: |
    {dtab}
{extra}
  servers:
  - port: 0
{server}
""",
    )


@attrs.frozen
class Answer:
    code: int
    headers: Any
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None


@implementer(IBodyProducer)
class _Chunked:
    """A request body of unknown length: sent chunked."""

    length = UNKNOWN_LENGTH

    def __init__(self, data: bytes) -> None:
        self.data = data

    def startProducing(self, consumer: Any) -> Deferred[None]:
        consumer.write(self.data)
        d: Deferred[None] = Deferred()
        d.callback(None)
        return d

    def stopProducing(self) -> None:
        pass

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass


class RouterCase(TestCase):
    timeout = 30

    def setUp(self) -> None:
        self.pool = HTTPConnectionPool(reactor)
        self.addCleanup(self.pool.closeCachedConnections)

    @inlineCallbacks
    def request(
        self,
        router: Running,
        host: str = "foo",
        method: str = "GET",
        path: str = "/",
        headers: dict[str, str] | None = None,
        data: Any = None,
    ) -> Any:
        allHeaders: dict[bytes | str, bytes | str] = {"Host": host}
        allHeaders.update(headers or {})
        response = yield treq.request(
            method,
            router.url + path,
            headers=allHeaders,
            data=data,
            pool=self.pool,
            timeout=10,
        )
        body = yield response.content()
        return Answer(response.code, response.headers, body)


def raw(port: int, data: bytes) -> Deferred[bytes]:
    """Send C{data} on a new connection; fire with everything received until it closes."""

    class Collect(Protocol):
        def __init__(self) -> None:
            self.received = b""
            self.done: Deferred[bytes] = Deferred()

        def dataReceived(self, chunk: bytes) -> None:
            self.received += chunk

        def connectionLost(self, reason: object = None) -> None:
            self.done.callback(self.received)

    def send(p: Collect) -> Deferred[bytes]:
        assert p.transport is not None
        p.transport.write(data)
        return p.done

    d: Deferred[Any] = ClientCreator(reactor, Collect).connectTCP("127.0.0.1", port)
    return d.addCallback(send)


class RoutingTests(RouterCase):
    @inlineCallbacks
    def test_firstRequestWaitsForResolution(self) -> Any:
        """
        A destination whose host name is still being resolved when the first
        request arrives answers that request once it resolves, instead of
        failing it.
        """
        backend = Backend(self, "A")
        port = backend.inet.rsplit("/", 1)[1]
        router = simpleRouter(self, f"/svc/* => /$/inet/localhost/{port};")
        answer = yield self.request(router, "foo")
        self.assertEqual((answer.code, answer.body), (200, b"A\n"))

    @inlineCallbacks
    def test_hostToInet(self) -> Any:
        """
        C{io.l5d.header.token} names the request by C{Host}; the dtab sends
        it to an address; the backend sees the informational headers, and
        upstream connections are reused.
        """
        backend = Backend(self, "A")
        router = simpleRouter(self, f"/svc/* => {backend.inet};")
        for _ in range(3):
            answer = yield self.request(router, "foo")
            self.assertEqual((answer.code, answer.body), (200, b"A\n"))
            self.assertEqual(answer.header("via"), "1.1 linkrouter")
        self.assertEqual(len(backend.seen), 3)
        seen = backend.seen[0]
        self.assertEqual(seen.header(b"l5d-dst-service"), b"/svc/foo")
        self.assertEqual(seen.header(b"l5d-dst-client"), backend.inet.encode())
        self.assertEqual(seen.header(b"via"), b"1.1 linkrouter")
        self.assertEqual(seen.header(b"host"), b"foo")
        reqids = {s.header(b"l5d-reqid") for s in backend.seen}
        self.assertEqual(len(reqids), 3)
        self.assertNotIn(None, reqids)
        self.assertEqual(len(backend.connections), 1)
        self.assertEqual(router.service.inFlight, 0)

    @inlineCallbacks
    def test_hopByHop(self) -> Any:
        """Hop-by-hop headers, and those C{Connection} lists, are not forwarded."""
        backend = Backend(self, "A")
        router = simpleRouter(self, f"/svc/* => {backend.inet};")
        out = yield raw(
            router.port,
            b"GET /x?y=1 HTTP/1.1\r\nHost: foo\r\nConnection: close, X-Hop\r\n"
            b"X-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"
            b"Proxy-Authorization: secret\r\nUpgrade-Insecure-Requests: 1\r\n"
            b"X-Kept: yes\r\n\r\n",
        )
        self.assertTrue(out.startswith(b"HTTP/1.1 200 OK\r\n"), out)
        self.assertTrue(out.endswith(b"\r\n\r\nA\n"), out)
        (seen,) = backend.seen
        self.assertEqual(seen.uri, b"/x?y=1")
        for name in (b"x-hop", b"keep-alive", b"te", b"proxy-authorization"):
            self.assertNotIn(name, seen.headers)
        self.assertNotIn(b"close", b"".join(seen.headers.get(b"connection", [])))
        self.assertEqual(seen.header(b"x-kept"), b"yes")
        self.assertEqual(seen.header(b"upgrade-insecure-requests"), b"1")

    @inlineCallbacks
    def test_pipelined(self) -> Any:
        """
        Pipelined requests are answered in order even when a later one is
        answered upstream first; HTTP/1.0 gets HTTP/1.0 answers.
        """
        a = Backend(self, "A", delay=0.2)
        b = Backend(self, "B")
        router = simpleRouter(self, f"/svc/slow => {a.inet}; /svc/fast => {b.inet};")
        out = yield raw(
            router.port,
            b"GET /1 HTTP/1.1\r\nHost: slow\r\n\r\n"
            b"GET /2 HTTP/1.1\r\nHost: fast\r\n\r\n"
            b"GET /3 HTTP/1.0\r\nHost: fast\r\n\r\n",
        )
        self.assertEqual(len(b.seen), 2)
        first, second, third = out.split(b"HTTP/1.")[1:]
        self.assertTrue(first.startswith(b"1 200 OK") and first.endswith(b"A\n"), out)
        self.assertTrue(second.startswith(b"1 200 OK") and second.endswith(b"B\n"), out)
        self.assertTrue(third.startswith(b"0 200 OK") and third.endswith(b"B\n"), out)

    @inlineCallbacks
    def test_fsNamer(self) -> Any:
        """
        Through C{io.l5d.fs}: editing a service's file moves new requests to
        the new backend; a missing file is "No hosts are available" with
        the dtab and the delegation steps.
        """
        a = Backend(self, "A")
        b = Backend(self, "B")
        root = self.mktemp()
        os.makedirs(root)
        with open(os.path.join(root, "foo"), "w") as f:
            f.write(f"127.0.0.1 {a.port}\n")
        router = startRouter(
            self,
            f"""
namers:
- kind: io.l5d.fs
  rootDir: {root}
routers:
- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - port: 0
""",
        )
        answer = yield self.request(router, "foo")
        self.assertEqual((answer.code, answer.body), (200, b"A\n"))
        self.assertEqual(a.seen[0].header(b"l5d-dst-client"), b"/#/io.l5d.fs/foo")
        with open(os.path.join(root, "foo.tmp"), "w") as f:
            f.write(f"127.0.0.1 {b.port}\n")
        os.rename(os.path.join(root, "foo.tmp"), os.path.join(root, "foo"))
        bodies: list[bytes] = []

        @inlineCallbacks
        def moved() -> Any:
            for _ in range(100):
                answer = yield self.request(router, "foo")
                bodies.append(answer.body)
                if answer.body == b"B\n":
                    return
                yield deferLater(reactor, 0.05, lambda: None)
            raise AssertionError("requests never moved to B")

        yield moved()
        answer = yield self.request(router, "foo")
        self.assertEqual(answer.body, b"B\n")

        # A file without addresses has no hosts either.
        with open(os.path.join(root, "empty"), "w") as f:
            f.write("# nothing yet\n")
        answer = yield self.request(router, "empty")
        self.assertEqual(answer.code, 502)
        self.assertEqual(answer.header("l5d-retryable"), "true")
        text = answer.body.decode()
        self.assertTrue(text.startswith("No hosts are available for /svc/empty\n"), text)
        self.assertIn("/#/io.l5d.fs/empty", text)

        answer = yield self.request(router, "nothere")
        self.assertEqual(answer.code, 502)
        self.assertEqual(answer.header("l5d-err"), "No+hosts+are+available+for+%2Fsvc%2Fnothere")
        text = answer.body.decode()
        self.assertTrue(text.startswith("No hosts are available for /svc/nothere\n"), text)
        self.assertIn("dtab: /svc=>/#/io.l5d.fs", text)
        self.assertIn("/#/io.l5d.fs/nothere", text)

    @inlineCallbacks
    def test_perRequestDtab(self) -> Any:
        """
        C{l5d-dtab} routes this request elsewhere and is forwarded as
        C{l5d-ctx-dtab}; a bad one is a 400 with C{l5d-err}.
        """
        a = Backend(self, "A")
        b = Backend(self, "B")
        router = simpleRouter(self, f"/svc/* => {a.inet};")
        answer = yield self.request(router, "foo", headers={"l5d-dtab": f"/svc/foo => {b.inet}"})
        self.assertEqual((answer.code, answer.body), (200, b"B\n"))
        (seen,) = b.seen
        self.assertEqual(seen.header(b"l5d-ctx-dtab"), f"/svc/foo => {b.inet}".encode())
        self.assertNotIn(b"l5d-dtab", seen.headers)
        self.assertEqual(seen.header(b"l5d-dst-client"), b.inet.encode())
        answer = yield self.request(router, "foo")
        self.assertEqual(answer.body, b"A\n")
        answer = yield self.request(router, "foo", headers={"l5d-dtab": "/svc/foo => =>"})
        self.assertEqual(answer.code, 400)
        self.assertIn("l5d-dtab", answer.header("l5d-err") or "")
        self.assertIn(b"l5d-dtab", answer.body)
        self.assertEqual(len(a.seen), 1)

    @inlineCallbacks
    def test_errors(self) -> Any:
        """
        A name bound to nothing is a 502 that explains the dtab; an
        unidentifiable request is a 400; a refused endpoint is a retryable
        502.
        """
        a = Backend(self, "A")
        closed = reactor.listenTCP(0, server.Site(resource.Resource()), interface="127.0.0.1")
        refused = closed.getHost().port
        yield closed.stopListening()
        router = simpleRouter(
            self, f"/svc/foo => /$/inet/127.0.0.1/{refused}; /svc/bar => {a.inet};"
        )
        answer = yield self.request(router, "baz")
        self.assertEqual(answer.code, 502)
        self.assertEqual(answer.header("l5d-err"), "No+hosts+are+available+for+%2Fsvc%2Fbaz")
        text = answer.body.decode()
        self.assertTrue(text.startswith("No hosts are available for /svc/baz\n\n"), text)
        self.assertIn("dtab: /svc/foo=>", text)
        self.assertIn("/svc/baz", text.split("\n", 2)[2])

        out = yield raw(router.port, b"GET / HTTP/1.0\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.0 400 Bad Request\r\n"), out)
        self.assertIn(b"l5d-err: ", out)

        answer = yield self.request(router, "foo")
        self.assertEqual(answer.code, 502)
        self.assertEqual(answer.header("l5d-retryable"), "true")
        self.assertIn("refused", answer.header("l5d-err") or "")
        self.assertEqual(a.seen, [])
        self.assertEqual(router.service.inFlight, 0)

    @inlineCallbacks
    def test_serverKeys(self) -> Any:
        """
        C{clearContext} drops context and dtab headers from untrusted
        clients; C{addForwardedHeader} and C{timestampHeader} are added;
        C{maxCallDepth} stops loops; C{httpAccessLog} gets a line per
        response.
        """
        a = Backend(self, "A")
        b = Backend(self, "B")
        log = self.mktemp()
        router = simpleRouter(
            self,
            f"/svc/* => {a.inet};",
            extra=f"  httpAccessLog: {log}\n  maxCallDepth: 3",
            server="""    clearContext: true
    timestampHeader: x-arrived
    addForwardedHeader:
      by: {kind: static, label: edge}
      for: {kind: ip}""",
        )
        answer = yield self.request(
            router,
            "foo",
            path="/logged",
            headers={"l5d-dtab": f"/svc/foo => {b.inet}", "l5d-ctx-trace": "x"},
        )
        self.assertEqual((answer.code, answer.body), (200, b"A\n"))
        (seen,) = a.seen
        self.assertNotIn(b"l5d-ctx-trace", seen.headers)
        self.assertNotIn(b"l5d-ctx-dtab", seen.headers)
        self.assertEqual(seen.header(b"forwarded"), b'by=_edge;for=127.0.0.1;host="foo";proto=http')
        arrived = seen.header(b"x-arrived")
        assert arrived is not None
        self.assertLess(abs(int(arrived) / 1000 - time.time()), 60)
        answer = yield self.request(router, "foo", headers={"Via": "1.1 a, 1.1 b, 1.1 c"})
        self.assertEqual(answer.code, 400)
        self.assertIn("call+depth", answer.header("l5d-err") or "")
        self.assertEqual(len(a.seen), 1)
        yield router.linker.stopService()
        with open(log) as f:
            lines = f.read().splitlines()
        self.assertEqual(len(lines), 2)
        self.assertIn('"GET /logged HTTP/1.1" 200 2', lines[0])

    @inlineCallbacks
    def test_compression(self) -> Any:
        """
        With C{compressionLevel: 9}, a response is gzipped for a client whose
        C{Accept-Encoding} allows it, and only for such a client.
        """
        a = Backend(self, "A")
        a.body = b"hello " * 500
        router = simpleRouter(self, f"/svc/* => {a.inet};", extra="  compressionLevel: 9")
        head = b"GET / HTTP/1.1\r\nHost: foo\r\nConnection: close\r\n"
        gzipped = yield raw(router.port, head + b"Accept-Encoding: gzip\r\n\r\n")
        headers, body = gzipped.split(b"\r\n\r\n", 1)
        self.assertIn(b"\r\nContent-Encoding: gzip\r\n", headers)
        self.assertEqual(gzip.decompress(body), a.body)
        plain = yield raw(router.port, head + b"\r\n")
        headers, body = plain.split(b"\r\n\r\n", 1)
        self.assertNotIn(b"Content-Encoding", headers)
        self.assertEqual(body, a.body)

    @inlineCallbacks
    def test_streamedBodies(self) -> Any:
        """
        Bodies larger than C{streamAfterContentLengthKB} stream both ways
        through the whole stack.
        """
        a = Backend(self, "A")
        a.body = b"x" * 300_000
        router = simpleRouter(self, f"/svc/* => {a.inet};")
        payload = os.urandom(200_000)
        answer = yield self.request(router, "foo", "POST", data=payload)
        self.assertEqual(answer.code, 200)
        self.assertEqual(answer.body, a.body)
        self.assertEqual(a.seen[0].body, payload)
        answer = yield self.request(router, "foo", "PUT", data=_Chunked(payload))
        self.assertEqual(a.seen[1].body, payload)
        self.assertEqual(router.service.inFlight, 0)

    @inlineCallbacks
    def test_upgrade(self) -> Any:
        """An C{Upgrade} is tunnelled after the backend's 101."""

        class Echo(Protocol):
            def dataReceived(self, data: bytes) -> None:
                assert self.transport is not None
                if data.startswith(b"GET "):
                    self.transport.write(
                        b"HTTP/1.1 101 Switching Protocols\r\n"
                        b"Connection: upgrade\r\nUpgrade: echo\r\n\r\n"
                    )
                else:
                    self.transport.write(data.upper())

        factory = Factory.forProtocol(Echo)
        listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        router = simpleRouter(self, f"/svc/* => /$/inet/127.0.0.1/{listening.getHost().port};")
        received = []

        class Client(Protocol):
            def dataReceived(self, data: bytes) -> None:
                received.append(data)

        client = yield ClientCreator(reactor, Client).connectTCP("127.0.0.1", router.port)
        client.transport.write(
            b"GET /ws HTTP/1.1\r\nHost: foo\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n"
        )
        yield until(lambda: b"\r\n\r\n" in b"".join(received))
        self.assertTrue(b"".join(received).startswith(b"HTTP/1.1 101 "), received)
        del received[:]
        client.transport.write(b"hello tunnel")
        yield until(lambda: b"".join(received) == b"HELLO TUNNEL")
        client.transport.loseConnection()
        yield until(lambda: router.service.inFlight == 0)

    @inlineCallbacks
    def test_clientGoesAway(self) -> Any:
        """
        A client that disconnects (here with a reset; a FIN is the same)
        cancels its request upstream: the backend's connection is closed,
        not reused.
        """
        a = Backend(self, "A", delay=5.0)
        router = simpleRouter(self, f"/svc/* => {a.inet};")
        client = yield ClientCreator(reactor, Protocol).connectTCP("127.0.0.1", router.port)
        client.transport.write(b"GET / HTTP/1.1\r\nHost: foo\r\n\r\n")
        yield until(lambda: len(a.seen) == 1)
        client.transport.abortConnection()
        yield until(lambda: a.cancelled == 1)
        yield until(lambda: router.service.inFlight == 0)
        a.delay = 0
        answer = yield self.request(router, "foo")
        self.assertEqual(answer.code, 200)
        self.assertEqual(len(a.connections), 2)

    @inlineCallbacks
    def test_maxConcurrentRequests(self) -> Any:
        """Over C{maxConcurrentRequests}, a request is answered 503 at once."""
        a = Backend(self, "A", delay=0.3)
        router = simpleRouter(self, f"/svc/* => {a.inet};", server="    maxConcurrentRequests: 1")
        first = self.request(router, "foo")
        yield until(lambda: len(a.seen) == 1)
        second = yield self.request(router, "foo")
        self.assertEqual(second.code, 503)
        self.assertIn("maxConcurrentRequests", second.header("l5d-err") or "")
        self.assertEqual(second.header("l5d-retryable"), "true")
        answer = yield first
        self.assertEqual(answer.code, 200)
        answer = yield self.request(router, "foo")
        self.assertEqual(answer.code, 200)

    @inlineCallbacks
    def test_metrics(self) -> Any:
        """
        Server, service and client metrics exist after traffic, the
        client's connection metrics among them.
        """
        a = Backend(self, "A")
        router = simpleRouter(self, f"/svc/* => {a.inet};")
        for _ in range(2):
            answer = yield self.request(router, "foo")
            self.assertEqual(answer.code, 200)
        client = f"client/$/inet/127.0.0.1/{a.port}"
        for scope in (f"server/127.0.0.1/{router.port}", "service/svc/foo", client):
            self.assertEqual(router.metric(f"rt/http/{scope}/requests").value, 2, scope)
            self.assertEqual(router.metric(f"rt/http/{scope}/success").value, 2, scope)
            self.assertEqual(router.metric(f"rt/http/{scope}/status/200").value, 2, scope)
            self.assertEqual(router.metric(f"rt/http/{scope}/status/2XX").value, 2, scope)
            self.assertIsNotNone(router.metric(f"rt/http/{scope}/request_latency_ms"), scope)
        self.assertEqual(router.metric(f"rt/http/{client}/pool_size").read(), 1.0)
        self.assertEqual(router.metric(f"rt/http/{client}/pool_waiters").read(), 0.0)
        # One keep-alive connection to the backend, reused.
        self.assertEqual(router.metric(f"rt/http/{client}/connects").value, 1)
        self.assertEqual(router.metric(f"rt/http/{client}/closes").value, 0)
        self.assertEqual(router.metric(f"rt/http/{client}/connections").read(), 1.0)
        for protocol in a.connections:
            protocol.transport.loseConnection()
        yield until(lambda: router.metric(f"rt/http/{client}/closes").value == 1)
        self.assertEqual(router.metric(f"rt/http/{client}/connections").read(), 0.0)

    @inlineCallbacks
    def test_madeUpHostsAreBounded(self) -> Any:
        """
        A flood of made-up C{Host} names keeps at most about
        C{bindingCache.paths} destinations and their metrics; every
        request is still answered.
        """
        a = Backend(self, "A")
        router = simpleRouter(self, f"/svc/* => {a.inet};", "  bindingCache: {paths: 10}")
        for n in range(40):
            answer = yield self.request(router, f"made-up-{n}")
            self.assertEqual(answer.code, 200)
        scopes = {
            "/".join(names[3:-1])
            for names, _ in router.linker.metrics.items()
            if names[:3] == ("rt", "http", "service") and names[-1] == "requests"
        }
        self.assertLessEqual(len(scopes), 10)
        self.assertIn("svc/made-up-39", scopes)
        self.assertLessEqual(len(router.service.router._services), 10)
        # Linkerd's binding cache counters say what happened.
        self.assertEqual(router.metric("rt/http/bindcache/path/misses").value, 40)
        self.assertGreaterEqual(router.metric("rt/http/bindcache/path/evicts").value, 30)
        self.assertEqual(router.metric("rt/http/bindcache/path/expires").value, 0)
        self.assertEqual(router.metric("rt/http/bindcache/client/misses").value, 1)

    @inlineCallbacks
    def test_gracefulStop(self) -> Any:
        """
        Stopping waits for a request in flight: its client gets the whole
        response; new connections are refused.
        """
        a = Backend(self, "A", delay=0.3)
        router = simpleRouter(self, f"/svc/* => {a.inet};")
        pending = self.request(router, "foo")
        yield until(lambda: len(a.seen) == 1)
        self.assertTrue(IDrainable.providedBy(router.service))
        stopped = router.linker.stopService()
        refused = ClientCreator(reactor, Protocol).connectTCP("127.0.0.1", router.port)
        yield self.assertFailure(refused, ConnectionRefusedError)
        answer = yield pending
        self.assertEqual((answer.code, answer.body), (200, b"A\n"))
        yield stopped
        self.assertEqual(router.service.inFlight, 0)

    @inlineCallbacks
    def test_graceOver(self) -> Any:
        """
        A request still in flight when C{shutdownGraceMs} is over is cut
        off: stopping does not wait for it.
        """
        a = Backend(self, "A", delay=5.0)
        router = startRouter(
            self,
            f"""
admin:
  shutdownGraceMs: 100
routers:
- protocol: http
  dtab: /svc/* => {a.inet};
  servers:
  - port: 0
""",
        )
        pending = self.request(router, "foo")
        yield until(lambda: len(a.seen) == 1)
        start = time.monotonic()
        yield router.linker.stopService()
        self.assertLess(time.monotonic() - start, 4.0)
        yield self.assertFailure(pending, Exception)
        yield until(lambda: a.cancelled == 1)

    @inlineCallbacks
    def test_outOfTreeNamer(self) -> Any:
        """
        A third party's namer (C{test.static}, installed as a dropin from a
        temporary directory) routes an HTTP request: in process from a
        configuration file, and in a C{twist linkrouter -c FILE} process.
        """
        a = Backend(self, "A")
        where = os.path.abspath(plugin_fixtures.install(self))
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write(
                f"""
admin:
  ip: 127.0.0.1
  port: 0
namers:
- kind: test.static
  names:
    foo: ["127.0.0.1:{a.port}"]
routers:
- protocol: http
  dtab: /svc => /#/test.static;
  servers:
  - port: 0
"""
            )
        plugins = PluginRegistry.discover()
        router = startRouter(self, loadLinkerConfig(path, plugins), plugins)
        answer = yield self.request(router, "foo")
        self.assertEqual((answer.code, answer.body), (200, b"A\n"))
        self.assertEqual(a.seen[0].header(b"l5d-dst-client"), b"/#/test.static/foo")

        process = _RouterProcess()
        reactor.spawnProcess(
            process,
            sys.executable,
            [sys.executable, "-m", "twisted", "linkrouter", "-c", path],
            env=plugin_fixtures.environ(where),
            path=plugin_fixtures.REPO,
        )
        self.addCleanup(process.stop)
        port = yield process.listening
        answer = yield self.request(Running(router.linker, router.service, port), "foo")
        self.assertEqual((answer.code, answer.body), (200, b"A\n"))
        self.assertEqual(len(a.seen), 2)


class _RouterProcess(ProcessProtocol):
    """A router process; C{listening} fires with its HTTP router's port."""

    def __init__(self) -> None:
        self.output = b""
        self.listening: Deferred[int] = Deferred()
        self.ended: Deferred[None] = Deferred()
        self.timer = reactor.callLater(20, self._late)

    def outReceived(self, data: bytes) -> None:
        self.output += data
        found = re.search(rb"router (?:\{label\}|http) listening on [^\n]*port=(\d+)", self.output)
        if found and not self.listening.called:
            self.timer.cancel()
            self.listening.callback(int(found.group(1)))

    errReceived = outReceived

    def _late(self) -> None:
        self.listening.errback(AssertionError(f"no router port in {self.output[-2000:]!r}"))

    def processEnded(self, reason: object) -> None:
        if self.timer.active():
            self.timer.cancel()
        if not self.listening.called:
            self.listening.errback(AssertionError(f"exited: {self.output[-2000:]!r}"))
        self.ended.callback(None)

    def stop(self) -> Deferred[None]:
        assert self.transport is not None
        try:
            self.transport.signalProcess("TERM")
        except ProcessExitedAlready:
            pass
        return self.ended


def twoBackends(case: TestCase, statusA: int = 503, statusB: int = 200) -> tuple[Backend, Backend]:
    return Backend(case, "A", statusA), Backend(case, "B", statusB)


def retryRouter(
    case: TestCase,
    backends: tuple[Backend, ...],
    classifier: str = "io.l5d.http.retryableRead5XX",
    service: str = "",
) -> Running:
    """One name, C{/svc/foo}, over every backend, balanced round-robin."""
    root = case.mktemp()
    os.makedirs(root)
    with open(os.path.join(root, "foo"), "w") as f:
        f.writelines(f"127.0.0.1 {b.port}\n" for b in backends)
    return startRouter(
        case,
        f"""
namers:
- kind: io.l5d.fs
  rootDir: {root}
routers:
- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  client:
    loadBalancer:
      kind: roundRobin
    failureAccrual:
      kind: none
  service:
    responseClassifier:
      kind: {classifier}
    retries:
      backoff:
        kind: constant
        ms: 0
{service}
  servers:
  - port: 0
""",
    )


class RetryTests(RouterCase):
    @inlineCallbacks
    def test_getRetried(self) -> Any:
        """
        Under C{retryableRead5XX}, a GET answered 503 by one endpoint is
        retried on the other and succeeds.
        """
        a, b = twoBackends(self)
        router = retryRouter(self, (a, b))
        # Round-robin: one of the two requests (or both) goes to A first.
        for _ in range(2):
            answer = yield self.request(router, "foo")
            self.assertEqual((answer.code, answer.body), (200, b"B\n"))
        self.assertEqual(len(b.seen), 2)
        self.assertIn(len(a.seen), (1, 2))
        # A retried request is the same request: one Via entry, one request id.
        self.assertEqual({s.header(b"via") for s in a.seen + b.seen}, {b"1.1 linkrouter"})
        self.assertEqual(a.seen[-1].header(b"l5d-reqid"), b.seen[-1].header(b"l5d-reqid"))
        retries = router.metric("rt/http/service/svc/foo/retries/total").value
        self.assertEqual(retries, len(a.seen))
        self.assertEqual(router.metric("rt/http/service/svc/foo/success").value, 2)

    @inlineCallbacks
    def test_postNotRetriedOnRead(self) -> Any:
        """Under C{retryableRead5XX}, a POST is not retried."""
        a, b = twoBackends(self)
        router = retryRouter(self, (a, b))
        codes = []
        for _ in range(2):
            answer = yield self.request(router, "foo", "POST", data=b"payload")
            codes.append(answer.code)
        self.assertEqual(sorted(codes), [200, 503])
        self.assertEqual((len(a.seen), len(b.seen)), (1, 1))
        self.assertEqual(a.seen[0].body, b"payload")
        # The server counts successes as the router's classifier says.
        server = f"rt/http/server/127.0.0.1/{router.port}"
        self.assertEqual(router.metric(f"{server}/success").value, 1)
        self.assertEqual(router.metric(f"{server}/failures").value, 1)
        self.assertEqual(router.metric(f"{server}/status/5XX").value, 1)

    @inlineCallbacks
    def test_postRetriedOnAll(self) -> Any:
        """Under C{retryableAll5XX}, a POST with a small body is retried."""
        a, b = twoBackends(self)
        router = retryRouter(self, (a, b), "io.l5d.http.retryableAll5XX")
        for _ in range(2):
            answer = yield self.request(router, "foo", "POST", data=b"payload")
            self.assertEqual((answer.code, answer.body), (200, b"B\n"))
        self.assertEqual(len(b.seen), 2)
        self.assertIn(len(a.seen), (1, 2))
        self.assertEqual([s.body for s in b.seen], [b"payload", b"payload"])

    @inlineCallbacks
    def test_chunkedNeverRetried(self) -> Any:
        """A chunked POST is never retried, even under C{retryableAll5XX}."""
        a, b = twoBackends(self)
        router = retryRouter(self, (a, b), "io.l5d.http.retryableAll5XX")
        codes = []
        for _ in range(2):
            answer = yield self.request(router, "foo", "POST", data=_Chunked(b"streamed"))
            codes.append(answer.code)
        self.assertEqual(sorted(codes), [200, 503])
        self.assertEqual((len(a.seen), len(b.seen)), (1, 1))
        self.assertEqual(a.seen[0].body, b"streamed")
        self.assertEqual(a.seen[0].header(b"transfer-encoding"), b"chunked")

    @inlineCallbacks
    def test_budget(self) -> Any:
        """Retries stop when the budget is spent."""
        a, b = twoBackends(self, 503, 503)
        router = retryRouter(
            self,
            (a, b),
            service="""      budget:
        minRetriesPerSec: 2
        percentCanRetry: 0.0
        ttlSecs: 1""",
        )
        answer = yield self.request(router, "foo")
        self.assertEqual(answer.code, 503)
        self.assertEqual(len(a.seen) + len(b.seen), 3)
        scope = "rt/http/service/svc/foo/retries"
        self.assertEqual(router.metric(f"{scope}/total").value, 2)
        self.assertEqual(router.metric(f"{scope}/budget_exhausted").value, 1)

    @inlineCallbacks
    def test_totalTimeout(self) -> Any:
        """Retries stop at C{totalTimeoutMs}: the request answers 504."""
        a, b = Backend(self, "A", 503, 0.1), Backend(self, "B", 503, 0.1)
        router = retryRouter(self, (a, b), service="    totalTimeoutMs: 350")
        start = time.monotonic()
        answer = yield self.request(router, "foo")
        elapsed = time.monotonic() - start
        self.assertEqual(answer.code, 504)
        self.assertIn("timed out", unquote_plus(answer.header("l5d-err") or ""))
        attempts = len(a.seen) + len(b.seen)
        self.assertTrue(2 <= attempts <= 5, attempts)
        self.assertLess(elapsed, 2.0)
        scope = "rt/http/service/svc/foo"
        self.assertEqual(router.metric(f"{scope}/timeouts/totalTimeout").value, 1)
        # The request's deadline goes to the backend.
        self.assertIsNotNone(a.seen[0].header(b"l5d-ctx-deadline"))

    @inlineCallbacks
    def test_deadline(self) -> Any:
        """
        A 50 ms deadline from upstream makes a 200 ms backend answer 504
        early; the backend sees the deadline it was given.
        """
        a = Backend(self, "A", delay=0.2)
        router = simpleRouter(self, f"/svc/* => {a.inet};")
        now = time.time_ns()
        deadline = f"{now} {now + 50_000_000}"
        start = time.monotonic()
        answer = yield self.request(router, "foo", headers={"l5d-ctx-deadline": deadline})
        elapsed = time.monotonic() - start
        self.assertEqual(answer.code, 504)
        self.assertLess(elapsed, 0.2)
        (seen,) = a.seen
        stamp = seen.header(b"l5d-ctx-deadline")
        assert stamp is not None
        self.assertEqual(int(stamp.split()[1]), now + 50_000_000)
        yield until(lambda: a.cancelled == 1)
        # An expired deadline is answered without contacting a backend.
        answer = yield self.request(router, "foo", headers={"l5d-ctx-deadline": f"{now} {now + 1}"})
        self.assertEqual(answer.code, 504)
        self.assertEqual(len(a.seen), 1)
