"""
C{CONNECT} through the HTTP router: once the backend answers 2XX, bytes
flow both ways untouched until either side closes (Linkerd 1 could not do
this).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.protocol import ClientCreator, Factory, Protocol

from .test_http_router import RouterCase, simpleRouter, until


class _ConnectTarget(Protocol):
    """Answers a CONNECT with 200, then echoes in upper case."""

    def __init__(self) -> None:
        self.head = b""
        self.tunnelled = False

    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        if self.tunnelled:
            self.transport.write(data.upper())
            return
        self.head += data
        if b"\r\n\r\n" in self.head:
            head, rest = self.head.split(b"\r\n\r\n", 1)
            assert head.startswith(b"CONNECT "), head
            self.tunnelled = True
            self.transport.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            if rest:
                self.transport.write(rest.upper())


class ConnectTests(RouterCase):
    @inlineCallbacks
    def test_connectTunnel(self) -> Any:
        """
        A C{CONNECT} named by its C{Host} is routed; after the backend's 200
        the connection is a byte tunnel in both directions.
        """
        factory: Any = Factory.forProtocol(_ConnectTarget)
        listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        port = listening.getHost().port  # type: ignore[attr-defined]
        router = simpleRouter(self, f"/svc/* => /$/inet/127.0.0.1/{port};")
        received: list[bytes] = []

        class Client(Protocol):
            def dataReceived(self, data: bytes) -> None:
                received.append(data)

        client = yield ClientCreator(reactor, Client).connectTCP("127.0.0.1", router.port)
        client.transport.write(
            b"CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n"
        )
        yield until(lambda: b"\r\n\r\n" in b"".join(received))
        self.assertTrue(b"".join(received).startswith(b"HTTP/1.1 200 "), received)
        del received[:]
        client.transport.write(b"binary \x00\xff payload")
        yield until(lambda: b"".join(received) == b"BINARY \x00\xff PAYLOAD")
        client.transport.loseConnection()
        yield until(lambda: router.service.inFlight == 0)
