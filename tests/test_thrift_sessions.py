"""
Connection limits of the Thrift router, with a fake clock: the endpoint
pool's C{maxWaiters}, C{idleTimeMs}, C{minSize}, the client session's idle
time and lifetime, and the server session's idle time and lifetime.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from linkrouter.client.errors import isRequeueable
from linkrouter.config import ClientParams, HostConnectionPool, Session
from linkrouter.naming import Address, Path
from protocols.thrift.client import PoolLimits, ThriftEndpointClient, TooManyWaiters
from protocols.thrift.codec import (
    Message,
    MessageDecoder,
    MessageType,
    ThriftProtocol,
    encodeMessage,
    frame,
)
from protocols.thrift.config import ThriftClientConfig, ThriftServerConfig
from protocols.thrift.identifier import ThriftCall, ThriftIdentifier
from protocols.thrift.server import ThriftServerFactory, ThriftServerProtocol

from ._fakes import FakeBackend

BINARY = ThriftProtocol.BINARY


def message(name: str, seqid: int, mtype: MessageType = MessageType.CALL) -> Message:
    return Message(name, mtype, seqid, encodeMessage(BINARY, name, mtype, seqid, b"\x00"))


class Backend(FakeBackend):
    """L{FakeBackend} answering requests."""

    def answer(self, index: int) -> None:
        """Answer every call written on connection C{index}."""
        protocol, transport = self.connections[index]
        decoder = MessageDecoder(BINARY, True)
        decoder.feed(transport.value())
        transport.clear()
        while (m := decoder.next()) is not None:
            reply = encodeMessage(BINARY, m.name, MessageType.REPLY, m.seqid, b"\x00")
            protocol.dataReceived(frame(True, reply))


class PoolTests(SynchronousTestCase):
    def pool(self, **limits: Any) -> tuple[MemoryReactorClock, Backend, ThriftEndpointClient]:
        reactor = MemoryReactorClock()
        client = ThriftEndpointClient(
            Address("127.0.0.1", 9999), ThriftClientConfig(), reactor, PoolLimits(**limits)
        )
        return reactor, Backend(reactor), client

    def call(self, client: ThriftEndpointClient, seqid: int) -> Deferred[Message | None]:
        return client(ThriftCall(message("ping", seqid)))

    def test_fromParams(self) -> None:
        params = ClientParams(
            hostConnectionPool=HostConnectionPool(1, 4, 60000, 10),
            clientSession=Session(30000, 600000),
        )
        self.assertEqual(PoolLimits.fromParams(params), PoolLimits(4, 1, 10, 60000, 30000, 600000))
        self.assertEqual(PoolLimits.fromParams(ClientParams()), PoolLimits())

    def test_maxWaiters(self) -> None:
        """
        Beyond C{maxSize} connections and C{maxWaiters} queued calls, a call
        fails at once, as not written (requeueable).
        """
        _, backend, client = self.pool(maxSize=1, maxWaiters=1)
        first, second = self.call(client, 1), self.call(client, 2)
        failure = self.failureResultOf(self.call(client, 3), TooManyWaiters)
        self.assertIn("maxWaiters", str(failure.value))
        self.assertTrue(isRequeueable(failure))
        backend.accept()
        backend.answer(0)
        self.assertEqual(self.successResultOf(first).seqid, 1)  # type: ignore[union-attr]
        backend.answer(0)
        self.assertEqual(self.successResultOf(second).seqid, 2)  # type: ignore[union-attr]
        self.assertEqual(len(backend.connections), 1)

    def test_idleTime(self) -> None:
        """The pool closes connections idle for C{idleTimeMs}, down to C{minSize}."""
        reactor, backend, client = self.pool(idleTimeMs=1000, minSize=1)
        calls = [self.call(client, n) for n in range(3)]
        backend.accept()
        reactor.advance(0.5)
        for n in range(3):
            backend.answer(n)
        self.assertEqual([self.successResultOf(d).seqid for d in calls], [0, 1, 2])  # type: ignore[union-attr]
        reactor.advance(0.9)
        self.assertEqual(backend.closed(), [])
        reactor.advance(0.2)
        self.assertEqual(len(backend.closed()), 2)
        reactor.advance(100)
        self.assertEqual(len(backend.closed()), 2)
        # the one kept serves the next call
        d = self.call(client, 7)
        backend.accept()
        self.assertEqual(len(backend.connections), 3)
        (kept,) = set(range(3)) - set(backend.closed())
        backend.answer(kept)
        self.assertEqual(self.successResultOf(d).seqid, 7)  # type: ignore[union-attr]

    def test_reusedConnectionStaysOpen(self) -> None:
        """A connection used within its idle time is not closed."""
        reactor, backend, client = self.pool(sessionIdleTimeMs=1000)
        for n in range(5):
            d = self.call(client, n)
            backend.accept()
            backend.answer(0)
            self.successResultOf(d)
            reactor.advance(0.8)
        self.assertEqual((len(backend.connections), backend.closed()), (1, []))
        reactor.advance(0.3)
        self.assertEqual(backend.closed(), [0])

    def test_sessionIdleIgnoresMinSize(self) -> None:
        reactor, backend, client = self.pool(sessionIdleTimeMs=1000, minSize=1)
        d = self.call(client, 1)
        backend.accept()
        backend.answer(0)
        self.successResultOf(d)
        reactor.advance(1.1)
        self.assertEqual(backend.closed(), [0])

    def test_lifeTime(self) -> None:
        """
        A connection older than C{lifeTimeMs} is closed once its call is
        answered, or as soon as it is idle.
        """
        reactor, backend, client = self.pool(lifeTimeMs=5000)
        d = self.call(client, 1)
        backend.accept()
        reactor.advance(4)
        backend.answer(0)
        self.successResultOf(d)
        d = self.call(client, 2)
        reactor.advance(2)
        self.assertEqual(backend.closed(), [])
        backend.answer(0)
        self.successResultOf(d)
        self.assertEqual(backend.closed(), [0])
        d = self.call(client, 3)
        backend.accept()
        backend.answer(1)
        self.successResultOf(d)
        reactor.advance(4.9)
        self.assertEqual(backend.closed(), [0])
        reactor.advance(0.2)
        self.assertEqual(backend.closed(), [0, 1])

    def test_closeStopsReaper(self) -> None:
        reactor, backend, client = self.pool(idleTimeMs=1000)
        d = self.call(client, 1)
        backend.accept()
        backend.answer(0)
        self.successResultOf(d)
        closing = client.close()
        self.assertEqual(backend.closed(), [0])
        self.successResultOf(closing)
        self.assertEqual(reactor.getDelayedCalls(), [])


class ServerSessionTests(SynchronousTestCase):
    def serve(
        self, session: Session
    ) -> tuple[MemoryReactorClock, ThriftServerProtocol, StringTransport, list[Deferred[Any]]]:
        reactor = MemoryReactorClock()
        handled: list[Deferred[Any]] = []

        def handle(identified: object, call: ThriftCall) -> Deferred[Message | None]:
            d: Deferred[Message | None] = Deferred()
            handled.append(d)
            return d

        factory = ThriftServerFactory(
            handle,
            ThriftIdentifier(Path.of("svc")),
            ThriftServerConfig(),
            session=session,
            clock=reactor,
        )
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return reactor, protocol, transport, handled

    def send(self, protocol: ThriftServerProtocol, seqid: int) -> None:
        protocol.dataReceived(frame(True, message("ping", seqid).payload))

    def test_idleTime(self) -> None:
        """
        A connection without calls for C{idleTimeMs} is closed, never with a
        call in progress.
        """
        reactor, protocol, transport, handled = self.serve(Session(idleTimeMs=1000))
        reactor.advance(0.6)
        self.send(protocol, 1)
        reactor.advance(3)
        self.assertFalse(transport.disconnecting)
        handled[0].callback(message("ping", 1))
        self.assertTrue(transport.value())
        reactor.advance(0.9)
        self.assertFalse(transport.disconnecting)
        reactor.advance(0.2)
        self.assertTrue(transport.disconnecting)

    def test_idleWithoutCalls(self) -> None:
        reactor, _, transport, _ = self.serve(Session(idleTimeMs=1000))
        reactor.advance(1)
        self.assertTrue(transport.disconnecting)

    def test_lifeTime(self) -> None:
        """A connection older than C{lifeTimeMs} is closed after its last reply."""
        reactor, protocol, transport, handled = self.serve(Session(lifeTimeMs=5000))
        reactor.advance(4)
        self.send(protocol, 1)
        reactor.advance(2)
        self.assertFalse(transport.disconnecting)
        handled[0].callback(message("ping", 1))
        self.assertTrue(transport.value())
        self.assertTrue(transport.disconnecting)

    def test_timersCancelledOnClose(self) -> None:
        reactor, protocol, _, _ = self.serve(Session(1000, 5000))
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(reactor.getDelayedCalls(), [])
