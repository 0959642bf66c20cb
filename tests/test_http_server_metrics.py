"""
The connection metrics of a whole C{protocol: http} router's server, as
Finagle names them under C{rt/<label>/server/<ip>/<port>}: C{connects},
C{closes} and the C{connections} gauge.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import ClientCreator, Protocol
from twisted.trial.unittest import TestCase

from protocols.http.server import HTTPServerFactory
from tests.test_http_router import simpleRouter, until

reactor: Any = _reactor


class _Client(Protocol):
    """A raw client connection that keeps what it receives."""

    def __init__(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data


class HttpServerMetricsTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def test_connections(self) -> Any:
        """
        C{connects} and C{closes} count connections as they are accepted
        and closed, whether or not they carried a request; the
        C{connections} gauge is how many are open.
        """
        router = simpleRouter(self, "/svc/* => /$/inet/127.0.0.1/1;")
        server = f"rt/http/server/127.0.0.1/{router.port}"

        def value(name: str) -> Any:
            found = router.metric(f"{server}/{name}")
            return None if found is None else found.value

        def open_() -> float:
            gauge = router.metric(f"{server}/connections")
            assert gauge is not None
            return float(gauge.read())

        self.assertEqual(open_(), 0.0)
        creator = ClientCreator(reactor, _Client)
        first = yield creator.connectTCP("127.0.0.1", router.port)
        second = yield creator.connectTCP("127.0.0.1", router.port)
        yield until(lambda: value("connects") == 2 and open_() == 2.0)
        self.assertIn(value("closes"), (None, 0))
        # A request answered (the router's own 502) keeps its connection.
        first.transport.write(b"GET / HTTP/1.1\r\nHost: foo\r\n\r\n")
        yield until(lambda: b"\r\n\r\n" in first.received)
        self.assertEqual(router.metric(f"{server}/requests").value, 1)
        self.assertEqual((value("connects"), open_()), (2, 2.0))
        first.transport.loseConnection()
        yield until(lambda: value("closes") == 1 and open_() == 1.0)
        second.transport.loseConnection()
        yield until(lambda: value("closes") == 2 and open_() == 0.0)
        third = yield creator.connectTCP("127.0.0.1", router.port)
        yield until(lambda: value("connects") == 3 and open_() == 1.0)
        third.transport.loseConnection()
        yield until(lambda: value("closes") == 3 and open_() == 0.0)

    @inlineCallbacks
    def test_closedByServer(self) -> Any:
        """A connection the router closes (C{Connection: close}) counts too."""
        router = simpleRouter(self, "/svc/* => /$/inet/127.0.0.1/1;")
        server = f"rt/http/server/127.0.0.1/{router.port}"
        lost: Deferred[None] = Deferred()

        class Closing(_Client):
            def connectionLost(self, reason: object = None) -> None:
                lost.callback(None)

        connection = yield ClientCreator(reactor, Closing).connectTCP("127.0.0.1", router.port)
        connection.transport.write(b"GET / HTTP/1.1\r\nHost: foo\r\nConnection: close\r\n\r\n")
        yield lost
        yield until(lambda: router.metric(f"{server}/closes").value == 1)
        self.assertEqual(router.metric(f"{server}/connects").value, 1)
        self.assertEqual(router.metric(f"{server}/connections").read(), 0.0)

    def test_unobserved(self) -> None:
        """Before it is given a metrics scope, a server factory counts nothing."""
        factory = HTTPServerFactory(lambda request: Deferred())
        connection = factory.buildProtocol(None)
        factory._lost(connection)
        self.assertEqual(factory.connections, set())
