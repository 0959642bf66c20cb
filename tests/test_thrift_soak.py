"""
The Thrift router built from YAML by the linker service, over loopback
sockets: many short-lived callers and reconnects, connections closed by the
session limits, and a graceful drain; afterwards the process holds no more
file descriptors than before.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from protocols.thrift.codec import (
    Message,
    MessageDecoder,
    MessageType,
    ThriftProtocol,
    encodeMessage,
    frame,
)
from protocols.thrift.router import ThriftRouter
from tests._linker import startLinker

from .test_http_soak import openFds

reactor: Any = _reactor
BINARY = ThriftProtocol.BINARY


class Echo(Protocol):
    """A framed binary backend: answers each call; holds them if told to."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.decoder = MessageDecoder(BINARY, True)

    def connectionMade(self) -> None:
        self.backend.connections.add(self)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.backend.connections.discard(self)

    def dataReceived(self, data: bytes) -> None:
        self.decoder.feed(data)
        while (m := self.decoder.next()) is not None:
            reply = frame(True, encodeMessage(BINARY, m.name, MessageType.REPLY, m.seqid, b"\x00"))
            if self.backend.hold:
                self.backend.held.append((self, reply))
            else:
                self.transport.write(reply)  # type: ignore[union-attr]


class Backend:
    def __init__(self) -> None:
        self.connections: set[Echo] = set()
        self.hold = False
        self.held: list[tuple[Echo, bytes]] = []
        self.port = reactor.listenTCP(
            0, Factory.forProtocol(lambda: Echo(self)), interface="127.0.0.1"
        )

    def release(self) -> None:
        held, self.held = self.held, []
        for conn, reply in held:
            conn.transport.write(reply)  # type: ignore[union-attr]


class Caller(Protocol):
    """Makes C{calls} calls one after another, then hangs up."""

    def __init__(self, calls: int) -> None:
        self.calls = calls
        self.decoder = MessageDecoder(BINARY, True)
        self.replies: list[Message] = []
        self.done: Deferred[list[Message]] = Deferred()

    def connectionMade(self) -> None:
        self.next()

    def next(self) -> None:
        if len(self.replies) == self.calls:
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        seqid = len(self.replies) + 1
        self.transport.write(  # type: ignore[union-attr]
            frame(True, encodeMessage(BINARY, "ping", MessageType.CALL, seqid, b"\x00"))
        )

    def dataReceived(self, data: bytes) -> None:
        self.decoder.feed(data)
        while (m := self.decoder.next()) is not None:
            self.replies.append(m)
            self.next()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.done.callback(self.replies)


CONFIG = """
routers:
- protocol: thrift
  label: soak
  dtab: /svc => /$/inet/127.0.0.1/{port};
  servers:
  - port: 0
    serverSession:
      idleTimeMs: 200
  client:
    hostConnectionPool:
      maxSize: 8
      maxWaiters: 1000
      idleTimeMs: 300
    clientSession:
      lifeTimeMs: 400
"""


class SoakTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.backend = Backend()
        self.addCleanup(self.backend.port.stopListening)
        self.linker = startLinker(self, CONFIG.format(port=self.backend.port.getHost().port))
        (runtime,) = self.linker.routers
        service = runtime.service
        assert isinstance(service, ThriftRouter)
        self.service = service
        self.port: int = service.ports[0].getHost().port  # type: ignore[attr-defined]

    def caller(self, calls: int) -> Deferred[list[Message]]:
        caller = Caller(calls)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        connectProtocol(endpoint, caller)
        return caller.done

    @inlineCallbacks
    def waitFor(self, condition: Any, seconds: float = 10.0) -> Any:
        for _ in range(int(seconds / 0.02)):
            if condition():
                return
            yield deferLater(reactor, 0.02, lambda: None)
        self.fail("condition not reached in time")

    @inlineCallbacks
    def test_fdsComeBack(self) -> Any:
        """
        Rounds of 40 callers (more than the pool's 8 connections, so calls
        queue) making 1 to 5 calls each, and idle callers that never call
        (closed by the server's idle time): every reply matches its call,
        and once the session limits have run, the process is back to its
        file descriptors at start.
        """
        yield deferLater(reactor, 0, lambda: None)  # the reactor is running
        baseline = openFds()
        for _ in range(5):
            idle = [Caller(0) for _ in range(5)]
            for c in idle:
                c.connectionMade = lambda: None  # type: ignore[method-assign]
                connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), c)
            results = yield gatherResults([self.caller(1 + n % 5) for n in range(40)])
            for n, replies in enumerate(results):
                self.assertEqual([m.seqid for m in replies], list(range(1, 2 + n % 5)))
                self.assertEqual({m.type for m in replies}, {MessageType.REPLY})
            yield gatherResults([c.done for c in idle])
            self.assertLessEqual(len(self.backend.connections), 8)
        self.assertEqual(self.service.inFlight, 0)
        yield self.waitFor(lambda: not self.backend.connections)
        yield self.waitFor(lambda: len(openFds()) <= len(baseline))

    @inlineCallbacks
    def test_drain(self) -> Any:
        """
        Draining waits for the call in flight, answers it, closes its
        connection, then fires; the pool's connections close with the
        router.
        """
        self.backend.hold = True
        call = self.caller(1)
        yield self.waitFor(lambda: self.backend.held)
        self.assertEqual(self.service.inFlight, 1)
        drained = self.service.drain()
        yield deferLater(reactor, 0.05, lambda: None)
        self.assertFalse(drained.called)
        self.backend.release()
        replies = yield call
        self.assertEqual([m.type for m in replies], [MessageType.REPLY])
        yield drained
        self.assertEqual(self.service.inFlight, 0)
        yield self.linker.stopService()
        yield self.waitFor(lambda: not self.backend.connections)
