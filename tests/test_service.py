"""
Tests for L{linkrouter.service.LinkerService}, wired with the out-of-tree
C{test.line} protocol on real loopback sockets.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.protocols.basic import LineReceiver
from twisted.trial.unittest import TestCase

from linkrouter.config import parseLinkerConfig
from linkrouter.service import LinkerService, StartupError
from tests import plugin_fixtures

CONFIG = """
admin: {{ip: 127.0.0.1, port: 0, shutdownGraceMs: {grace}}}
namers:
- kind: test.static
  names: {{web: ["10.0.0.1:80", "10.0.0.2:80"]}}
routers:
- protocol: test.line
  interpreter: {{kind: test.configured}}
  dtab: /svc => /#/test.static;
  servers: [{{port: {port}}}]
"""


class _Client(LineReceiver):
    delimiter = b"\n"

    def __init__(self) -> None:
        self.replies: list[Deferred[str]] = []

    def ask(self, line: str) -> Deferred[str]:
        d: Deferred[str] = Deferred()
        self.replies.append(d)
        self.sendLine(line.encode())
        return d

    def lineReceived(self, line: bytes) -> None:
        self.replies.pop(0).callback(line.decode())


class LinkerServiceTests(TestCase):
    timeout = 20

    def setUp(self) -> None:
        self.registry = plugin_fixtures.registry(self)

    def build(self, grace: int = 10000, port: int = 0) -> LinkerService:
        config = parseLinkerConfig(CONFIG.format(grace=grace, port=port), "s.yaml", self.registry)
        return LinkerService.build(config, reactor, self.registry, baseDir="/")

    async def connect(self, linker: LinkerService) -> _Client:
        router = linker.routers[0].service
        port = router.ports[0].getHost().port  # type: ignore[attr-defined]
        client = _Client()
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
        self.addCleanup(client.transport.loseConnection)  # type: ignore[union-attr]
        return client

    async def test_routesThroughNamer(self) -> None:
        linker = self.build()
        self.assertEqual([p.show for p, _ in linker.namers], ["/#/test.static"])
        linker.startService()
        self.addCleanup(linker.stopService)
        client = await self.connect(linker)
        self.assertEqual(await client.ask("bind web"), "bound 10.0.0.1:80,10.0.0.2:80")
        self.assertEqual(await client.ask("bind nope"), "neg")
        self.assertEqual(await client.ask("ping"), "pong test.line hello")

    async def test_stopWaitsForInFlight(self) -> None:
        """
        Stopping stops accepting at once but waits for in-flight requests.
        """
        linker = self.build()
        linker.startService()
        client = await self.connect(linker)
        held = client.ask("hold")
        router: Any = linker.routers[0].service
        await _until(lambda: router.inFlight == 1)
        stopped = linker.stopService()
        self.assertTrue(router.draining)
        self.assertFalse(stopped.called)
        await Deferred.fromCoroutine(_sleep(0.05))
        self.assertFalse(stopped.called)
        router.release()
        self.assertEqual(await held, "released")
        await stopped
        self.assertFalse(router.running)
        self.assertTrue(linker.namers[0][1].closed)  # type: ignore[attr-defined]

    async def test_graceBounded(self) -> None:
        linker = self.build(grace=50)
        linker.startService()
        client = await self.connect(linker)
        client.ask("hold")
        await _until(lambda: linker.routers[0].service.inFlight == 1)  # type: ignore[attr-defined]
        await linker.stopService()
        self.assertFalse(linker.routers[0].service.running)

    async def test_shutdownGraceReplacesTheConfigured(self) -> None:
        """
        C{shutdown(grace)} (C{POST /admin/shutdown?grace=...}) bounds this
        stop's drain instead of C{admin.shutdownGraceMs}.
        """
        linker = self.build(grace=60000)
        linker.startService()
        client = await self.connect(linker)
        client.ask("hold")
        await _until(lambda: linker.routers[0].service.inFlight == 1)  # type: ignore[attr-defined]
        # What shutdown(0.05) records before it stops the reactor (the
        # suite's own, which this test must not stop).
        linker._grace = 0.05
        started = reactor.seconds()  # type: ignore[attr-defined]
        await linker.stopService()
        self.assertLess(reactor.seconds() - started, 30)  # type: ignore[attr-defined]

    def test_portConflict(self) -> None:
        first = self.build()
        first.startService()
        self.addCleanup(first.stopService)
        port = first.routers[0].service.ports[0].getHost().port  # type: ignore[attr-defined]
        second = self.build(port=port)
        with self.assertRaises(StartupError) as raised:
            second.startService()
        message = str(raised.exception)
        self.assertIn(f"router test.line: cannot listen on 127.0.0.1:{port}", message)
        self.assertNotIn("\n", message)

    def test_missingInterpreter(self) -> None:
        config = parseLinkerConfig("routers: [{protocol: test.line}]", "s.yaml", self.registry)
        with self.assertRaises(StartupError) as raised:
            LinkerService.build(config, reactor, self.registry)
        self.assertIn("'default' interpreter is not installed", str(raised.exception))


async def _sleep(seconds: float) -> None:
    d: Deferred[None] = Deferred()
    reactor.callLater(seconds, d.callback, None)  # type: ignore[attr-defined]
    await d


async def _until(condition: Any) -> None:
    for _ in range(200):
        if condition():
            return
        await _sleep(0.01)
    raise AssertionError("condition never held")
