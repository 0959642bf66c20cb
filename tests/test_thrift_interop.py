"""
Thrift end to end over loopback sockets: thriftpy2 clients, thriftpy2
backends, and between them the router the thrift plugin builds from YAML,
or (to look at what each hop receives) our server and endpoint client with
a routing table in place of the router core.
"""

from __future__ import annotations

import itertools
from typing import Any

from thriftpy2.thrift import TApplicationException
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, DeferredList, fail, gatherResults, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread, deferToThreadPool
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import TestCase

from linkrouter._plugins import PluginRegistry
from linkrouter.client.errors import ConnectionFailed
from linkrouter.config import parseLinkerConfig
from linkrouter.naming import Address, Path
from linkrouter.routing.errors import NoHostsAvailable
from linkrouter.service import LinkerService
from protocols.thrift.client import ThriftEndpointClient
from protocols.thrift.codec import Message, ThriftProtocol
from protocols.thrift.config import ThriftClientConfig, ThriftServerConfig
from protocols.thrift.identifier import ThriftCall, ThriftIdentifier
from protocols.thrift.server import ThriftServerFactory, ThriftServerProtocol
from tests.test_thrift_peers import Backend, EchoHandler, client, echo_thrift, freePort

reactor: Any = _reactor


class Proxy:
    """
    Our server in front of a routing table (dst -> endpoint client), in
    place of the router core.
    """

    def __init__(
        self,
        routes: dict[str, ThriftEndpointClient],
        server: ThriftServerConfig,
        methodInDst: bool = False,
    ) -> None:
        self.routes = {Path.read(k): v for k, v in routes.items()}
        self.seen: list[tuple[Any, ThriftCall]] = []
        self.protocols: list[ThriftServerProtocol] = []
        factory = ThriftServerFactory(
            self.handle, ThriftIdentifier(Path.of("svc"), methodInDst), server
        )
        build = factory.buildProtocol

        def track(addr: Any) -> ThriftServerProtocol:
            p = build(addr)
            self.protocols.append(p)
            return p

        factory.buildProtocol = track  # type: ignore[method-assign]
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.portNumber: int = self.port.getHost().port

    def handle(self, identified: Any, call: ThriftCall) -> Deferred[Message | None]:
        self.seen.append((identified, call))
        route = self.routes.get(identified.dst)
        if route is None:
            return fail(NoHostsAvailable(f"no hosts for {identified.dst.show}"))
        return route(call)

    @inlineCallbacks
    def stop(self) -> Any:
        yield self.port.stopListening()
        for p in self.protocols:
            if p.transport is not None:
                p.transport.abortConnection()  # type: ignore[attr-defined]
        yield DeferredList([c.close() for c in self.routes.values()])
        yield deferLater(reactor, 0.01, lambda: None)


class InteropMixin:
    def router(self, yaml: str) -> int:
        """The router the thrift plugin builds from C{yaml}; its port."""
        registry = PluginRegistry.discover()
        linker = LinkerService.build(
            parseLinkerConfig(yaml, "thrift.yaml", registry), reactor, registry
        )
        linker.startService()
        self.addCleanup(linker.stopService)  # type: ignore[attr-defined]
        (runtime,) = linker.routers
        service: Any = runtime.service
        port: int = service.ports[0].getHost().port
        return port

    def backend(self, **kw: Any) -> Backend:
        b = Backend(**kw)
        self.addCleanup(b.stop)  # type: ignore[attr-defined]
        return b

    def endpoint(self, port: int, **kw: Any) -> ThriftEndpointClient:
        return ThriftEndpointClient(Address("127.0.0.1", port), ThriftClientConfig(**kw), reactor)

    def proxy(self, routes: dict[str, ThriftEndpointClient], **kw: Any) -> Proxy:
        methodInDst = kw.pop("methodInDst", False)
        p = Proxy(routes, ThriftServerConfig(**kw), methodInDst)
        self.addCleanup(p.stop)  # type: ignore[attr-defined]
        return p


def _calls(port: int, framed: bool, compact: bool, strict: bool = True) -> dict[str, Any]:
    c = client(port, framed, compact, strict)
    try:
        out: dict[str, Any] = {"echo": c.echo("hi"), "add": c.add(2, 3)}
        try:
            c.boom("bad")
        except echo_thrift.Oops as e:
            out["boom"] = e.why
        c.note("n1")
        out["after"] = c.echo("again")
        return out
    finally:
        c.close()


class MatrixTests(InteropMixin, TestCase):
    """Every transport and protocol through the proxy."""

    timeout = 60

    @inlineCallbacks
    def check(self, framed: bool, compact: bool, strict: bool = True) -> Any:
        b = self.backend(framed=framed, compact=compact)
        port = self.router(
            f"""
routers:
- protocol: thrift
  thriftProtocol: {"compact" if compact else "binary"}
  dtab: /svc => /$/inet/127.0.0.1/{b.port};
  servers:
  - port: 0
    thriftFramed: {str(framed).lower()}
  client:
    thriftFramed: {str(framed).lower()}
"""
        )
        out = yield deferToThread(_calls, port, framed, compact, strict)
        self.assertEqual(out, {"echo": "hi", "add": 5, "boom": "bad", "after": "again"})
        for _ in range(200):
            if b.handler.notes:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(b.handler.notes, ["n1"])

    def test_framedBinary(self) -> Any:
        return self.check(True, False)

    def test_framedCompact(self) -> Any:
        return self.check(True, True)

    def test_bufferedBinary(self) -> Any:
        return self.check(False, False)

    def test_bufferedCompact(self) -> Any:
        return self.check(False, True)

    def test_bufferedNonStrictBinary(self) -> Any:
        return self.check(False, False, strict=False)

    def test_framedNonStrictBinary(self) -> Any:
        return self.check(True, False, strict=False)


class RoutingTests(InteropMixin, TestCase):
    timeout = 60

    @inlineCallbacks
    def test_methodInDst(self) -> Any:
        """
        With C{thriftMethodInDst}, two methods of one service go to two
        backends.
        """
        a = self.backend(handler=EchoHandler("A:"))
        b = self.backend(handler=EchoHandler("B:"))
        port = self.router(
            f"""
routers:
- protocol: thrift
  thriftMethodInDst: true
  dtab: |
    /svc/echo => /$/inet/127.0.0.1/{a.port};
    /svc/add => /$/inet/127.0.0.1/{b.port};
  servers:
  - port: 0
"""
        )

        def calls() -> tuple[str, int]:
            c = client(port)
            try:
                return c.echo("x"), c.add(1, 1)
            finally:
                c.close()

        self.assertEqual((yield deferToThread(calls)), ("A:x", 2))

    @inlineCallbacks
    def test_multiplexed(self) -> Any:
        """A multiplexed C{Service:method} call is routed by C{/Service}."""
        b = self.backend(multiplexed=True)
        p = self.proxy({"/svc/Calc": self.endpoint(b.port), "/svc/Echo": self.endpoint(b.port)})

        def calls() -> tuple[int, str]:
            calc = client(p.portNumber, service="Calc")
            echo = client(p.portNumber, service="Echo")
            try:
                return calc.add(1, 2), echo.echo("m")
            finally:
                calc.close()
                echo.close()

        self.assertEqual((yield deferToThread(calls)), (1003, "m"))
        self.assertEqual([i.dst.show for i, _ in p.seen], ["/svc/Calc", "/svc/Echo"])

    @inlineCallbacks
    def test_noRoute(self) -> Any:
        """A call that binds to nothing gets an INTERNAL_ERROR saying why."""
        port = self.router(
            """
routers:
- protocol: thrift
  dtab: /svc => /$/nil;
  servers:
  - port: 0
"""
        )

        def call() -> Any:
            c = client(port)
            try:
                c.echo("x")
            except TApplicationException as e:
                return e.type, e.message
            finally:
                c.close()

        kind, message = yield deferToThread(call)
        self.assertEqual(kind, TApplicationException.INTERNAL_ERROR)
        self.assertEqual(
            message, "Internal error processing echo: 'No hosts are available for /svc'"
        )

    @inlineCallbacks
    def test_backendDown(self) -> Any:
        """
        A backend that refuses connections: the caller gets an exception
        reply, not a hang, and the client reports a failure before writing.
        """
        ep = self.endpoint(freePort())
        p = self.proxy({"/svc": ep})

        def call() -> Any:
            c = client(p.portNumber)
            try:
                c.echo("x")
            except TApplicationException as e:
                return e.type, e.message
            finally:
                c.close()

        kind, message = yield deferToThread(call)
        self.assertEqual(kind, TApplicationException.INTERNAL_ERROR)
        self.assertIn("cannot connect to 127.0.0.1", message)
        error = yield self.assertFailure(ep(p.seen[0][1]), ConnectionFailed)
        self.assertIs(error.writtenAnything, False)

    @inlineCallbacks
    def ttwitterChain(self, framed: bool, compact: bool) -> Any:
        """
        Clients that upgrade to TTwitter, talking to our server: each hop
        sees the trace as parent and the dest, and the replies come back; the
        Apache backend refuses the upgrade and still gets plain calls.
        """
        b = self.backend(framed=framed, compact=compact)
        kw: dict[str, Any] = {
            "framed": framed,
            "protocol": ThriftProtocol.COMPACT if compact else ThriftProtocol.BINARY,
        }
        inner = self.proxy({"/svc": self.endpoint(b.port, attemptTTwitterUpgrade=True, **kw)}, **kw)
        middle = self.proxy(
            {"/svc": self.endpoint(inner.portNumber, attemptTTwitterUpgrade=True, **kw)}, **kw
        )
        outer = self.proxy(
            {"/svc": self.endpoint(middle.portNumber, attemptTTwitterUpgrade=True, **kw)}, **kw
        )
        result = yield deferToThread(lambda: _calls(outer.portNumber, framed, compact))
        self.assertEqual(result, {"echo": "hi", "add": 5, "boom": "bad", "after": "again"})
        self.assertIsNone(outer.seen[0][1].header)
        first = middle.seen[0][1].header
        second = inner.seen[0][1].header
        assert first is not None and second is not None
        self.assertEqual((first.dest, second.dest), ("/", "/"))
        self.assertEqual(second.traceId, first.traceId)
        self.assertEqual(second.parentSpanId, first.spanId)
        self.assertEqual([c.message.name for _, c in inner.seen][:3], ["echo", "add", "boom"])

    def test_ttwitterFramedBinary(self) -> Any:
        return self.ttwitterChain(True, False)

    def test_ttwitterBufferedCompact(self) -> Any:
        return self.ttwitterChain(False, True)

    @inlineCallbacks
    def test_concurrentCallers(self) -> Any:
        """
        200 callers at once through one router whose pool has 16
        connections: every reply answers its own call.
        """
        b = self.backend()
        port = self.router(
            f"""
routers:
- protocol: thrift
  dtab: /svc => /$/inet/127.0.0.1/{b.port};
  servers:
  - port: 0
  client:
    hostConnectionPool:
      maxSize: 16
"""
        )
        pool = ThreadPool(200, 200, "thrift-callers")
        pool.start()
        self.addCleanup(pool.stop)
        counter = itertools.count()

        def caller() -> list[bool]:
            c = client(port)
            try:
                ok = []
                for _ in range(3):
                    n = next(counter)
                    ok.append(c.echo(f"m{n}") == f"m{n}" and c.add(n, n) == 2 * n)
                return ok
            finally:
                c.close()

        results = yield gatherResults(
            [deferToThreadPool(reactor, pool, caller) for _ in range(200)]
        )
        self.assertEqual([all(r) for r in results], [True] * 200)
