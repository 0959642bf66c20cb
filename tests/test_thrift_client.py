"""
Tests for L{protocols.thrift.client}: the per-endpoint pool, against a
scripted backend on a loopback socket.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from linkrouter.interfaces import IClient, Status
from linkrouter.naming import Address
from protocols.thrift.client import (
    BackendConnectionLost,
    BackendProtocolError,
    PoolLimits,
    ThriftEndpointClient,
)
from protocols.thrift.codec import (
    ApplicationExceptionType,
    Message,
    MessageDecoder,
    MessageType,
    ThriftProtocol,
    encodeApplicationException,
    encodeMessage,
    frame,
)
from protocols.thrift.config import ThriftClientConfig
from protocols.thrift.identifier import ThriftCall
from tests._fakes import ClientConnectionMetrics
from tests.test_http_router import until

reactor: Any = _reactor
BINARY = ThriftProtocol.BINARY


def makeCall(name: str, seqid: int, mtype: MessageType = MessageType.CALL) -> ThriftCall:
    payload = encodeMessage(BINARY, name, mtype, seqid, b"\x00")
    return ThriftCall(Message(name, mtype, seqid, payload))


def replyTo(m: Message, seqid: int | None = None) -> bytes:
    return frame(
        True,
        encodeMessage(
            BINARY, m.name, MessageType.REPLY, m.seqid if seqid is None else seqid, b"\x00"
        ),
    )


class _Scripted(Protocol):
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.decoder = MessageDecoder(BINARY, True)
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.backend.connections.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.decoder.feed(data)
        while (m := self.decoder.next()) is not None:
            self.backend.received.append(m)
            self.backend.script(self, m)

    def connectionLost(self, reason: Any = None) -> None:
        self.lost.callback(None)


class Backend:
    def __init__(self, script: Callable[[_Scripted, Message], None]) -> None:
        self.script = script
        self.connections: list[_Scripted] = []
        self.received: list[Message] = []
        self.port = reactor.listenTCP(
            0, Factory.forProtocol(lambda: _Scripted(self)), interface="127.0.0.1"
        )

    @inlineCallbacks
    def stop(self) -> Any:
        yield self.port.stopListening()
        for c in self.connections:
            if c.transport is not None:
                c.transport.loseConnection()
            yield c.lost


def answer(conn: _Scripted, m: Message) -> None:
    if m.type is MessageType.CALL:
        conn.transport.write(replyTo(m))  # type: ignore[union-attr]


class PoolTests(TestCase):
    timeout = 20

    def setUpBackend(
        self, script: Callable[[_Scripted, Message], None], maxConnections: int | None = None
    ) -> tuple[Backend, ThriftEndpointClient]:
        backend = Backend(script)
        self.addCleanup(backend.stop)
        client = ThriftEndpointClient(
            Address("127.0.0.1", backend.port.getHost().port),
            ThriftClientConfig(),
            reactor,
            PoolLimits(maxSize=maxConnections),
        )
        self.addCleanup(client.close)
        return backend, client

    @inlineCallbacks
    def test_queuesBeyondMaxSize(self) -> Any:
        """With one connection allowed, calls queue and go out one at a time."""
        held: list[tuple[_Scripted, Message]] = []
        backend, client = self.setUpBackend(lambda c, m: held.append((c, m)), maxConnections=1)
        self.assertTrue(IClient.providedBy(client))
        first = client(makeCall("a", 1))
        second = client(makeCall("b", 2))
        yield deferLater(reactor, 0.05, lambda: None)
        self.assertEqual([m.name for _, m in held], ["a"])
        self.assertEqual(client.status, Status.BUSY)
        conn, m = held.pop()
        answer(conn, m)
        self.assertEqual((yield first).seqid, 1)
        yield deferLater(reactor, 0.05, lambda: None)
        conn, m = held.pop()
        answer(conn, m)
        self.assertEqual((yield second).seqid, 2)
        self.assertEqual(len(backend.connections), 1)
        self.assertEqual(client.status, Status.OPEN)

    @inlineCallbacks
    def test_scalesUp(self) -> Any:
        """Concurrent calls open one connection each; idle ones are reused."""
        held: list[tuple[_Scripted, Message]] = []
        backend, client = self.setUpBackend(lambda c, m: held.append((c, m)))
        calls = [client(makeCall("a", n)) for n in range(3)]
        while len(held) < 3:
            yield deferLater(reactor, 0.01, lambda: None)
        for conn, m in held:
            answer(conn, m)
        replies = yield gatherResults(calls)
        self.assertEqual([r.seqid for r in replies], [0, 1, 2])
        backend.script = answer
        self.assertEqual((yield client(makeCall("b", 7))).seqid, 7)
        self.assertEqual(len(backend.connections), 3)

    @inlineCallbacks
    def test_backendDiesMidCall(self) -> Any:
        backend, client = self.setUpBackend(lambda c, m: c.transport.loseConnection())  # type: ignore[union-attr]
        error = yield self.assertFailure(client(makeCall("a", 1)), BackendConnectionLost)
        self.assertIs(error.writtenAnything, True)
        backend.script = answer
        self.assertEqual((yield client(makeCall("b", 2))).name, "b")

    @inlineCallbacks
    def test_cancelClosesConnection(self) -> Any:
        backend, client = self.setUpBackend(lambda c, m: None)
        d = client(makeCall("a", 1))
        while not backend.received:
            yield deferLater(reactor, 0.01, lambda: None)
        d.cancel()
        self.failureResultOf(d)
        yield backend.connections[0].lost

    @inlineCallbacks
    def test_oneway(self) -> Any:
        """A oneway call completes once written; the connection is free again."""
        backend, client = self.setUpBackend(answer, maxConnections=1)
        self.assertIsNone((yield client(makeCall("note", 1, MessageType.ONEWAY))))
        self.assertEqual((yield client(makeCall("ping", 2))).seqid, 2)
        self.assertEqual([m.type for m in backend.received], [MessageType.ONEWAY, MessageType.CALL])

    @inlineCallbacks
    def test_wrongSeqid(self) -> Any:
        _, client = self.setUpBackend(lambda c, m: c.transport.write(replyTo(m, 99)))  # type: ignore[union-attr]
        yield self.assertFailure(client(makeCall("a", 1)), BackendProtocolError)

    @inlineCallbacks
    def test_replyNamedForAnotherCall(self) -> Any:
        """
        A reply must name its call: a backend answering a oneway call (whose
        reply reaches the next call with the same seqid) fails that call
        rather than answering it; a multiplexed C{Service:method} call may be
        answered as C{method}.
        """

        def script(c: _Scripted, m: Message) -> None:
            name = "note" if m.name == "ping" else m.name.partition(":")[2]
            reply = encodeMessage(BINARY, name, MessageType.REPLY, m.seqid, b"\x00")
            c.transport.write(frame(True, reply))  # type: ignore[union-attr]

        _, client = self.setUpBackend(script)
        yield self.assertFailure(client(makeCall("ping", 1)), BackendProtocolError)
        self.assertEqual((yield client(makeCall("Calc:add", 2))).name, "add")

    @inlineCallbacks
    def test_twoRepliesCloseConnection(self) -> Any:
        """
        Bytes after a call's reply close the connection: the call queued
        behind it (with the same seqid) gets its own reply on a new
        connection, not the extra one.
        """

        def script(c: _Scripted, m: Message) -> None:
            c.transport.write(replyTo(m) * (2 if m.name == "a" else 1))  # type: ignore[union-attr]

        backend, client = self.setUpBackend(script, maxConnections=1)
        first = client(makeCall("a", 1))
        second = client(makeCall("b", 1))
        self.assertEqual((yield first).name, "a")
        self.assertEqual((yield second).name, "b")
        self.assertEqual(len(backend.connections), 2)

    @inlineCallbacks
    def test_poisonedConnectionRetired(self) -> Any:
        """
        After a PROTOCOL_ERROR exception reply the connection is replaced;
        after an INTERNAL_ERROR it is kept.
        """

        def script(c: _Scripted, m: Message) -> None:
            kind = (
                ApplicationExceptionType.PROTOCOL_ERROR
                if m.name == "bad"
                else ApplicationExceptionType.INTERNAL_ERROR
            )
            data = frame(True, encodeApplicationException(BINARY, m.name, m.seqid, "x", kind))
            c.transport.write(data)  # type: ignore[union-attr]

        backend, client = self.setUpBackend(script)
        self.assertEqual((yield client(makeCall("ok", 1))).type, MessageType.EXCEPTION)
        self.assertEqual((yield client(makeCall("ok", 2))).type, MessageType.EXCEPTION)
        self.assertEqual(len(backend.connections), 1)
        yield client(makeCall("bad", 3))
        yield backend.connections[0].lost
        yield client(makeCall("ok", 4))
        self.assertEqual(len(backend.connections), 2)


class ConnectionMetricsTests(ClientConnectionMetrics, TestCase):
    """
    The pools of one client share its L{ConnectionStats}: C{connects},
    C{closes} and the C{connections} gauge count their connections.
    """

    timeout = 20

    def pool(self, backend: Backend) -> ThriftEndpointClient:
        client = ThriftEndpointClient(
            Address("127.0.0.1", backend.port.getHost().port), ThriftClientConfig(), reactor
        )
        client.countConnections(self.stats)
        self.addCleanup(client.close)
        return client

    def backend(self) -> Backend:
        backend = Backend(answer)
        self.addCleanup(backend.stop)
        return backend

    @inlineCallbacks
    def test_connectAndClose(self) -> Any:
        """
        A connection counts once established and is reused without counting
        again; its close, by the backend here, counts.
        """
        self.assertEqual(self.metrics(), (0, 0, 0.0))
        backend = self.backend()
        client = self.pool(backend)
        for seqid in range(2):
            yield client(makeCall("a", seqid))
        self.assertEqual(self.metrics(), (1, 0, 1.0))
        backend.connections[0].transport.loseConnection()  # type: ignore[union-attr]
        yield until(lambda: self.metrics() == (1, 1, 0.0))

    @inlineCallbacks
    def test_poolsAddUp(self) -> Any:
        """
        The gauge is the sum over the client's pools; a pool closed (its
        endpoint gone) takes nothing from the counters.
        """
        first, second = self.pool(self.backend()), self.pool(self.backend())
        yield gatherResults([first(makeCall("a", 1)), second(makeCall("b", 2))])
        self.assertEqual(self.metrics(), (2, 0, 2.0))
        yield second.close()
        self.assertEqual(self.metrics(), (2, 1, 1.0))
        yield first(makeCall("c", 3))
        self.assertEqual(self.metrics(), (2, 1, 1.0))
