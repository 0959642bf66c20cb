"""
A whole C{protocol: thrift} router, built from a configuration by the
linker service, between thriftpy2 clients and thriftpy2 backends.
"""

from __future__ import annotations

from typing import Any

from thriftpy2.thrift import TApplicationException
from twisted.internet import reactor as _reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from linkrouter._plugins import PluginRegistry
from linkrouter.config import parseLinkerConfig
from linkrouter.context import IDrainable
from protocols.thrift.router import ThriftRouter
from tests._linker import startLinker
from tests.test_thrift_peers import Backend, EchoHandler, client

reactor: Any = _reactor


class RouterTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def test_routes(self) -> Any:
        """
        Methods are routed by the dtab to two backends; a name bound to
        nothing answers with an exception reply; compact buffered on both
        sides.
        """
        a = Backend(framed=False, compact=True, handler=EchoHandler("A:"))
        b = Backend(framed=False, compact=True, handler=EchoHandler("B:"))
        self.addCleanup(a.stop)
        self.addCleanup(b.stop)
        config = parseLinkerConfig(
            f"""
routers:
- protocol: thrift
  label: legacy
  thriftMethodInDst: true
  thriftProtocol: compact
  dtab: |
    /svc/echo => /$/inet/127.0.0.1/{a.port};
    /svc/add => /$/inet/127.0.0.1/{b.port};
  servers:
  - port: 0
    thriftFramed: false
  client:
    thriftFramed: false
    hostConnectionPool:
      maxSize: 2
""",
            "thrift.yaml",
            PluginRegistry.discover(),
        )
        linker = startLinker(self, config)
        (runtime,) = linker.routers
        service = runtime.service
        assert isinstance(service, ThriftRouter)
        self.assertTrue(IDrainable.providedBy(service))
        port = service.ports[0].getHost().port  # type: ignore[attr-defined]

        def calls() -> Any:
            c = client(port, framed=False, compact=True)
            try:
                out = [c.echo("x"), c.add(2, 2)]
                try:
                    c.boom("?")
                except TApplicationException as e:
                    out.append((e.type, e.message))
                return out
            finally:
                c.close()

        echo, add, error = yield deferToThread(calls)
        self.assertEqual((echo, add), ("A:x", 4))
        self.assertEqual(error[0], TApplicationException.INTERNAL_ERROR)
        self.assertIn("Internal error processing boom:", error[1])
        self.assertEqual(service.inFlight, 0)
        # Each client's connection metrics: one connection, kept open.
        found: dict[str, Any] = {"/".join(n): m for n, m in linker.metrics.items()}
        for backend in (a, b):
            scope = f"rt/legacy/client/$/inet/127.0.0.1/{backend.port}"
            self.assertEqual(found[f"{scope}/connects"].value, 1)
            self.assertEqual(found[f"{scope}/closes"].value, 0)
            self.assertEqual(found[f"{scope}/connections"].read(), 1.0)
