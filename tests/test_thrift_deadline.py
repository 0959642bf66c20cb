"""
Deadlines on Thrift routers: a TTwitter caller's deadline context is read
and enforced like C{l5d-ctx-deadline}; an expired one is answered with an
exception without contacting a backend.
"""

from __future__ import annotations

import struct
import time
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import ClientCreator, Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase

from linkrouter._plugins import PluginRegistry
from linkrouter.config import parseLinkerConfig
from linkrouter.policy.timeouts import Deadline
from protocols.thrift.codec import (
    MessageDecoder,
    MessageType,
    ThriftProtocol,
    encodeMessage,
    frame,
    readApplicationException,
)
from protocols.thrift.identifier import ThriftCall
from protocols.thrift.router import DEADLINE_CONTEXT, deadlineOf
from protocols.thrift.ttwitter import EMPTY_STRUCT, RequestHeader, upgradeCall
from tests._linker import routerPort, startLinker

reactor: Any = _reactor
BINARY = ThriftProtocol.BINARY


def deadlineContext(timestamp: int, deadline: int) -> tuple[bytes, bytes]:
    return (DEADLINE_CONTEXT, struct.pack(">qq", timestamp, deadline))


class DeadlineOfTests(SynchronousTestCase):
    def call(self, header: RequestHeader | None) -> ThriftCall:
        message = MessageDecoder(BINARY, framed=False)
        message.feed(encodeMessage(BINARY, "echo", MessageType.CALL, 1, EMPTY_STRUCT))
        found = message.next()
        assert found is not None
        return ThriftCall(found, header)

    def test_read(self) -> None:
        header = RequestHeader(contexts=(deadlineContext(10, 20), (b"other", b"x")))
        self.assertEqual(deadlineOf(self.call(header)), Deadline(10, 20))

    def test_absentOrMalformed(self) -> None:
        self.assertIsNone(deadlineOf(self.call(None)))
        self.assertIsNone(deadlineOf(self.call(RequestHeader())))
        bad = RequestHeader(contexts=((DEADLINE_CONTEXT, b"short"),))
        self.assertIsNone(deadlineOf(self.call(bad)))


class _Collect(Protocol):
    def __init__(self) -> None:
        self.decoder = MessageDecoder(BINARY, framed=True)
        self.waiting: list[Deferred[Any]] = []

    def dataReceived(self, data: bytes) -> None:
        self.decoder.feed(data)
        while (message := self.decoder.next()) is not None:
            self.waiting.pop(0).callback(message)

    def send(self, data: bytes) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.waiting.append(d)
        assert self.transport is not None
        self.transport.write(data)
        return d


class ExpiredDeadlineTests(TestCase):
    timeout = 20

    @inlineCallbacks
    def test_expiredDeadlineNeverReachesBackend(self) -> Any:
        connections: list[object] = []

        class Backend(Protocol):
            def connectionMade(self) -> None:
                connections.append(self)

        factory: Any = Factory.forProtocol(Backend)
        backend = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(backend.stopListening)
        plugins = PluginRegistry.discover()
        config = parseLinkerConfig(
            f"""
routers:
- protocol: thrift
  dtab: /svc => /$/inet/127.0.0.1/{backend.getHost().port};
  servers:
  - port: 0
""",
            "thrift.yaml",
            plugins,
        )
        port = routerPort(startLinker(self, config, plugins))
        client = yield ClientCreator(reactor, _Collect).connectTCP("127.0.0.1", port)
        self.addCleanup(client.transport.loseConnection)
        upgraded = yield client.send(frame(True, upgradeCall(BINARY)))
        self.assertEqual(upgraded.type, MessageType.REPLY)
        client.decoder.prefixed = True  # replies now carry a TTwitter response header
        now = time.time_ns()
        header = RequestHeader(
            traceId=1, spanId=1, contexts=(deadlineContext(now - 10**9, now - 1),)
        )
        call = encodeMessage(BINARY, "echo", MessageType.CALL, 7, EMPTY_STRUCT)
        reply = yield client.send(frame(True, header.encode(BINARY), call))
        self.assertEqual((reply.type, reply.seqid), (MessageType.EXCEPTION, 7))
        _, text = readApplicationException(BINARY, reply.payload)
        self.assertIn("deadline", text.lower())
        self.assertEqual(connections, [])
