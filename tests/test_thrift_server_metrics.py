"""
The server metrics of a whole C{protocol: thrift} router, as Finagle names
them under C{rt/<label>/server/<ip>/<port>}: the request metrics of every
call it answers, and the connection metrics.
"""

from __future__ import annotations

from typing import Any

from thriftpy2.thrift import TApplicationException
from twisted.internet import reactor as _reactor
from twisted.internet.defer import fail, inlineCallbacks
from twisted.internet.protocol import ClientCreator, Protocol
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from linkrouter.naming import Path
from linkrouter.service import LinkerService
from protocols.thrift.config import ThriftServerConfig
from protocols.thrift.identifier import ThriftIdentifier
from protocols.thrift.server import ThriftServerFactory
from tests._linker import routerPort, startLinker
from tests.test_http_router import until
from tests.test_thrift_peers import Backend, EchoHandler, client

reactor: Any = _reactor


def metric(linker: LinkerService, name: str) -> Any:
    """Metric C{name} (C{/}-separated) of C{linker}, or C{None} if absent."""
    for names, found in linker.metrics.items():
        if "/".join(names) == name:
            return found
    return None


class _Refuses:
    """A backend handler whose C{echo} answers with an exception reply."""

    def echo(self, msg: str) -> str:
        raise TApplicationException(TApplicationException.INTERNAL_ERROR, "no")


class ThriftServerMetricsTests(TestCase):
    timeout = 30

    def router(self, dtab: str) -> tuple[LinkerService, str]:
        """
        Start a framed Thrift router labelled C{legacy} with C{dtab}
        (destinations named C{/svc/<method>}); return it and the prefix of
        its server's metrics.
        """
        linker = startLinker(
            self,
            f"""
routers:
- protocol: thrift
  label: legacy
  thriftMethodInDst: true
  dtab: |
    {dtab}
  servers:
  - port: 0
""",
        )
        return linker, f"rt/legacy/server/127.0.0.1/{routerPort(linker)}"

    @inlineCallbacks
    def test_requests(self) -> Any:
        """
        Every call answered counts: a reply, a declared exception (a reply
        too) and a oneway call delivered are successes; a call to a name
        that binds to nothing is a failure, counted by kind.
        """
        backend = Backend(handler=EchoHandler("A:"))
        self.addCleanup(backend.stop)
        inet = f"/$/inet/127.0.0.1/{backend.port}"
        linker, server = self.router(f"/svc/echo => {inet}; /svc/note => {inet};")
        port = routerPort(linker)

        def calls() -> Any:
            c = client(port)
            try:
                out = [c.echo("x")]
                c.note("n")
                try:
                    c.boom("?")
                except TApplicationException as e:
                    out.append(e.type)
                return out
            finally:
                c.close()

        echo, error = yield deferToThread(calls)
        self.assertEqual((echo, error), ("A:x", TApplicationException.INTERNAL_ERROR))
        yield until(lambda: metric(linker, f"{server}/pending").read() == 0.0)
        self.assertEqual(metric(linker, f"{server}/requests").value, 3)
        self.assertEqual(metric(linker, f"{server}/success").value, 2)
        self.assertEqual(metric(linker, f"{server}/failures").value, 1)
        kinds = [
            "/".join(names)
            for names, _ in linker.metrics.items()
            if "/".join(names).startswith(f"{server}/failures/")
        ]
        self.assertEqual(len(kinds), 1, kinds)
        self.assertEqual(metric(linker, kinds[0]).value, 1)
        latency = metric(linker, f"{server}/request_latency_ms")
        self.assertIsNotNone(latency)
        self.assertIsNone(metric(linker, f"{server}/status/200"))

    @inlineCallbacks
    def test_classifiedFailure(self) -> Any:
        """
        An exception reply from the backend (a C{TApplicationException}) is
        a failure as the router's classifier says, without a failure kind.
        """
        backend = Backend(handler=_Refuses())
        self.addCleanup(backend.stop)
        linker, server = self.router(f"/svc/echo => /$/inet/127.0.0.1/{backend.port};")
        port = routerPort(linker)

        def call() -> Any:
            c = client(port)
            try:
                c.echo("x")
            except TApplicationException as e:
                return e.type
            finally:
                c.close()
            return None

        error = yield deferToThread(call)
        self.assertEqual(error, TApplicationException.INTERNAL_ERROR)
        self.assertEqual(metric(linker, f"{server}/requests").value, 1)
        self.assertEqual(metric(linker, f"{server}/failures").value, 1)
        self.assertEqual(metric(linker, f"{server}/success").value, 0)
        failures = f"{server}/failures/"
        kinds = [n for n, _ in linker.metrics.items() if "/".join(n).startswith(failures)]
        self.assertEqual(kinds, [])
        self.assertEqual(metric(linker, f"{server}/pending").read(), 0.0)

    @inlineCallbacks
    def test_connections(self) -> Any:
        """
        C{connects} and C{closes} count connections as they are accepted
        and closed; the C{connections} gauge is how many are open.
        """
        linker, server = self.router("/svc/echo => /$/inet/127.0.0.1/1;")
        port = routerPort(linker)

        def value(name: str) -> Any:
            found = metric(linker, f"{server}/{name}")
            return None if found is None else found.value

        def open_() -> float:
            gauge = metric(linker, f"{server}/connections")
            assert gauge is not None
            return float(gauge.read())

        self.assertEqual(open_(), 0.0)
        creator = ClientCreator(reactor, Protocol)
        first = yield creator.connectTCP("127.0.0.1", port)
        second = yield creator.connectTCP("127.0.0.1", port)
        yield until(lambda: value("connects") == 2 and open_() == 2.0)
        self.assertIn(value("closes"), (None, 0))
        first.transport.loseConnection()
        yield until(lambda: value("closes") == 1 and open_() == 1.0)
        second.transport.loseConnection()
        yield until(lambda: value("closes") == 2 and open_() == 0.0)
        self.assertEqual(value("connects"), 2)

    def test_unobserved(self) -> None:
        """Before it is given a metrics scope, a server factory counts nothing."""
        factory = ThriftServerFactory(
            lambda identified, call: fail(Exception("unused")),
            ThriftIdentifier(Path()),
            ThriftServerConfig(),
        )
        connection = factory.buildProtocol(None)
        factory.lost(connection)
        self.assertIsNone(factory.requestStats)
        self.assertIsNone(connection._stats)
