"""
L{linkrouter._transport.write} on real TCP connections over loopback:
writes are held to the end of the reactor turn and sent together, and
everything Twisted promises about a transport's buffer still holds.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientCreator, Protocol, ServerFactory
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from linkrouter import _reactor, _transport
from linkrouter._transport import write

from ._fakes import RecordingProducer


class _Collector(Protocol):
    """The server side: collects what arrives, fires C{lost} with it on close."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.arrived: Deferred[None] = Deferred()
        self.lost: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)
        if not self.arrived.called:
            self.arrived.callback(None)

    def connectionLost(self, reason: object = None) -> None:
        self.lost.callback(b"".join(self.received))


async def closingClient(test: TestCase, server: type[Protocol]) -> tuple[Protocol, Deferred[None]]:
    """
    A loopback connection to a server of C{server} protocols: the client
    protocol and a Deferred that fires when the client's connection is lost.
    """
    lost: Deferred[None] = Deferred()

    class Client(Protocol):
        def connectionLost(self, reason: object = None) -> None:
            lost.callback(None)

    factory = ServerFactory.forProtocol(server)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined,arg-type]
    test.addCleanup(port.stopListening)
    number = port.getHost().port  # type: ignore[attr-defined]
    client = await ClientCreator(reactor, Client).connectTCP("127.0.0.1", number)
    return client, lost


class WriteTests(TestCase):
    async def connect(self) -> tuple[Protocol, _Collector]:
        """A loopback connection: our client transport and the collecting server."""
        servers: list[_Collector] = []

        def build() -> _Collector:
            servers.append(_Collector())
            return servers[-1]

        factory = ServerFactory()
        factory.buildProtocol = lambda addr: build()  # type: ignore[method-assign,assignment,return-value]
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        client: Protocol = await ClientCreator(reactor, Protocol).connectTCP(
            "127.0.0.1",
            port.getHost().port,  # type: ignore[attr-defined]
        )
        while not servers:
            await deferLater(reactor, 0.001, lambda: None)  # type: ignore[arg-type]
        server = servers[0]

        def close() -> Deferred[bytes]:
            assert client.transport is not None
            client.transport.loseConnection()
            return server.lost

        self.addCleanup(lambda: None if server.lost.called else close())
        return client, server

    async def test_heldToTheEndOfTheTurn(self) -> None:
        """
        Writes in one turn stay in the transport's buffer until the turn
        ends, then leave together, in order.
        """
        client, server = await self.connect()
        t = client.transport
        write(t, b"one ")
        write(t, b"two ")
        write(t, b"three")
        self.assertEqual(t._tempDataBuffer, [b"one ", b"two ", b"three"])  # type: ignore[union-attr]
        self.assertEqual(_transport._held, [t])
        # The suite's reactor (the router's) flushes by itself: no timed call.
        self.assertNotIn(_transport.flush, [c.func for c in reactor.getDelayedCalls()])  # type: ignore[attr-defined]
        await server.arrived
        self.assertEqual(t._tempDataBuffer, [])  # type: ignore[union-attr]
        self.assertEqual(_transport._held, [])
        while len(b"".join(server.received)) < 13:
            await deferLater(reactor, 0.001, lambda: None)  # type: ignore[arg-type]
        self.assertEqual(b"".join(server.received), b"one two three")

    async def test_writtenByATimedCall(self) -> None:
        """
        Bytes written by a timed call on an idle connection leave before
        the reactor waits for events again, not when some event next comes.
        """
        client, server = await self.connect()
        reactor.callLater(0.01, write, client.transport, b"from a timer")  # type: ignore[attr-defined]
        await server.arrived.addTimeout(5, reactor)
        self.assertEqual(b"".join(server.received), b"from a timer")

    async def test_otherReactorsGetATimedCall(self) -> None:
        """
        On a reactor that does not flush held writes itself, a timed call
        at the end of the turn does.
        """
        client, server = await self.connect()
        self.patch(_reactor.EPollReactor, "flushesHeldWrites", False)
        write(client.transport, b"later")
        self.assertIn(_transport.flush, [c.func for c in reactor.getDelayedCalls()])  # type: ignore[attr-defined]
        await server.arrived
        self.assertEqual(b"".join(server.received), b"later")

    async def test_loseConnectionSendsHeldBytes(self) -> None:
        """C{loseConnection} right after a write sends the bytes, then closes."""
        client, server = await self.connect()
        assert client.transport is not None
        write(client.transport, b"last words")
        client.transport.loseConnection()
        self.assertEqual(await server.lost, b"last words")

    async def test_transportWriteQueuesBehind(self) -> None:
        """
        The transport's own C{write} after a held write queues behind it,
        as it does behind any buffered bytes; so does a write of more than
        the buffer size, which goes through C{transport.write}.
        """
        client, server = await self.connect()
        assert client.transport is not None
        big = b"x" * (client.transport.bufferSize + 1)  # type: ignore[attr-defined]
        write(client.transport, b"a")
        client.transport.write(b"b")
        write(client.transport, big)
        write(client.transport, b"c")
        client.transport.loseConnection()
        self.assertEqual(await server.lost, b"ab" + big + b"c")

    async def test_manyWritesInOneTurn(self) -> None:
        """
        More than a socket takes at once, written in one turn, all arrives
        in order: the rest is sent as the socket drains.
        """
        client, server = await self.connect()
        assert client.transport is not None
        chunks = [bytes([65 + i % 26]) * 30000 for i in range(300)]
        for chunk in chunks:
            write(client.transport, chunk)
        client.transport.loseConnection()
        self.assertEqual(await server.lost, b"".join(chunks))

    async def test_producerPausedOverBufferSize(self) -> None:
        """
        A streaming producer is paused once a write would take the buffer
        past C{bufferSize}, as Twisted pauses it, and resumed once the
        buffer has drained.
        """
        client, server = await self.connect()
        t = client.transport
        assert t is not None
        producer = RecordingProducer()
        t.registerProducer(producer, True)  # type: ignore[attr-defined]
        write(t, b"x" * 1000)
        self.assertEqual(producer.calls, [])
        write(t, b"y" * t.bufferSize)  # type: ignore[attr-defined]
        self.assertEqual(producer.calls, ["pause"])
        while producer.calls[-1] != "resume":
            await deferLater(reactor, 0.001, lambda: None)  # type: ignore[arg-type]
        t.unregisterProducer()  # type: ignore[attr-defined]
        t.loseConnection()
        self.assertEqual(await server.lost, b"x" * 1000 + b"y" * t.bufferSize)  # type: ignore[attr-defined]

    async def test_abortDropsHeldBytes(self) -> None:
        """C{abortConnection} drops what was held, as it drops any buffer."""
        client, server = await self.connect()
        assert client.transport is not None
        write(client.transport, b"never sent")
        client.transport.abortConnection()  # type: ignore[attr-defined]
        self.assertEqual(await server.lost, b"")

    async def test_writeAfterPeerClosed(self) -> None:
        """Bytes written after the peer closed are dropped, not an error."""

        class Closing(Protocol):
            def connectionMade(self) -> None:
                assert self.transport is not None
                self.transport.loseConnection()

        client, lost = await closingClient(self, Closing)
        await lost
        assert client.transport is not None
        write(client.transport, b"after")  # the socket is gone: dropped, not an AttributeError
        self.assertEqual(_transport._held, [])
