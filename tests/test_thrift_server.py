"""
Tests for L{protocols.thrift.server} and L{protocols.thrift.identifier},
with in-memory transports.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from linkrouter.naming import Dtab, Path
from linkrouter.routing.identification import Identified, Unidentified
from protocols.thrift.codec import (
    Message,
    MessageDecoder,
    MessageType,
    ThriftProtocol,
    encodeMessage,
    frame,
    readApplicationException,
)
from protocols.thrift.config import ThriftServerConfig
from protocols.thrift.identifier import ThriftCall, ThriftIdentifier
from protocols.thrift.server import ThriftServerFactory
from protocols.thrift.ttwitter import RequestHeader, upgradeCall

BINARY = ThriftProtocol.BINARY


def call(name: str, seqid: int, mtype: MessageType = MessageType.CALL) -> bytes:
    return encodeMessage(BINARY, name, mtype, seqid, b"\x00")


def reply(name: str, seqid: int) -> Message:
    payload = encodeMessage(BINARY, name, MessageType.REPLY, seqid, b"\x00")
    return Message(name, MessageType.REPLY, seqid, payload)


class Harness:
    def __init__(
        self, framed: bool = True, identifier: Any = None, maxConcurrentRequests: int | None = None
    ) -> None:
        self.framed = framed
        self.calls: list[tuple[Any, ThriftCall, Deferred[Message | None]]] = []
        self.cancelled: list[str] = []
        factory = ThriftServerFactory(
            self.handle,
            identifier or ThriftIdentifier(Path.of("svc")),
            ThriftServerConfig(framed=framed, maxMessageBytes=1000),
            maxConcurrentRequests,
        )
        self.factory = factory
        self.protocol = factory.buildProtocol(None)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.decoder = MessageDecoder(BINARY, framed)

    def handle(self, identified: Any, c: ThriftCall) -> Deferred[Message | None]:
        d: Deferred[Message | None] = Deferred(lambda _: self.cancelled.append(c.message.name))
        self.calls.append((identified, c, d))
        return d

    def send(self, *messages: bytes, prefix: bytes = b"") -> None:
        self.protocol.dataReceived(b"".join(frame(self.framed, prefix, m) for m in messages))

    def replies(self) -> list[Message]:
        self.decoder.feed(self.transport.value())
        self.transport.clear()
        out = []
        while (m := self.decoder.next()) is not None:
            out.append(m)
        return out


class ServerTests(SynchronousTestCase):
    def test_orderedReplies(self) -> None:
        """
        Pipelined calls are answered in call order, whatever order the
        handler finishes in.
        """
        h = Harness(framed=False)
        h.send(call("a", 1), call("b", 2), call("c", 3))
        self.assertEqual([c.message.name for _, c, _ in h.calls], ["a", "b", "c"])
        h.calls[2][2].callback(reply("c", 3))
        h.calls[1][2].callback(reply("b", 2))
        self.assertEqual(h.replies(), [])
        h.calls[0][2].callback(reply("a", 1))
        self.assertEqual([(m.name, m.seqid) for m in h.replies()], [("a", 1), ("b", 2), ("c", 3)])

    def test_oneway(self) -> None:
        """A oneway call is handed over; nothing is written back, even on error."""
        h = Harness()
        h.send(call("note", 5, MessageType.ONEWAY), call("ping", 6))
        h.calls[0][2].errback(RuntimeError("nope"))
        h.calls[1][2].callback(reply("ping", 6))
        self.assertEqual([m.name for m in h.replies()], ["ping"])

    def test_handlerFailure(self) -> None:
        """A handler failure becomes an INTERNAL_ERROR with the call's name and seqid."""
        h = Harness()
        h.send(call("ping", 9))
        h.calls[0][2].errback(RuntimeError("endpoint refused"))
        (m,) = h.replies()
        self.assertEqual((m.name, m.type, m.seqid), ("ping", MessageType.EXCEPTION, 9))
        self.assertEqual(
            readApplicationException(BINARY, m.payload)[1],
            "Internal error processing ping: 'endpoint refused'",
        )

    def test_unidentified(self) -> None:
        h = Harness(identifier=ThriftIdentifier(Path.of("svc"), methodInDst=True))
        h.send(call("bad name", 1))
        self.assertEqual(h.calls, [])
        (m,) = h.replies()
        self.assertIn("not a valid path label", readApplicationException(BINARY, m.payload)[1])

    def test_garbageClosesConnection(self) -> None:
        """Garbage closes that connection with one log line; others carry on."""
        other = Harness()
        h = Harness()
        with capturedLogs() as events:
            h.protocol.dataReceived(b"GET / HTTP/1.1\r\n\r\n")
            h.protocol.dataReceived(b"more")
        self.assertTrue(h.transport.disconnecting)
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["log_level"], LogLevel.info)  # a peer's mistake
        other.send(call("ping", 1))
        self.assertEqual(len(other.calls), 1)

    def test_oversizedFrame(self) -> None:
        h = Harness()
        with capturedLogs() as events:
            h.protocol.dataReceived(b"\x00\x01\x00\x00")
        self.assertTrue(h.transport.disconnecting)
        self.assertIn("exceeds the limit", events[0]["reason"])

    def test_truncatedAtClose(self) -> None:
        """A connection closed inside a message logs one line."""
        h = Harness()
        h.protocol.dataReceived(frame(True, call("ping", 1))[:-3])
        with capturedLogs() as events:
            h.protocol.connectionLost(None)  # type: ignore[arg-type]
        self.assertEqual(len(events), 1)
        self.assertIn("closed inside a message", events[0]["log_format"])

    def test_closeCancelsCalls(self) -> None:
        """A closed connection cancels the calls still being routed."""
        h = Harness()
        h.send(call("ping", 1))
        h.protocol.connectionLost(None)  # type: ignore[arg-type]
        self.assertEqual(h.cancelled, ["ping"])
        self.assertEqual(h.transport.value(), b"")

    def test_replyNotCall(self) -> None:
        h = Harness()
        with capturedLogs():
            h.send(reply("ping", 1).payload)
        self.assertTrue(h.transport.disconnecting)

    def test_ttwitterUpgrade(self) -> None:
        """
        The upgrade is answered; later calls carry a request header whose
        dest and delegations name the call; replies get an empty response
        header.
        """
        for framed in (True, False):
            h = Harness(framed=framed)
            h.send(call("ping", 1))
            h.calls[0][2].callback(reply("ping", 1))
            h.send(upgradeCall(BINARY))
            _, upgrade = h.replies()
            self.assertEqual((upgrade.name, upgrade.type), ("__can__finagle__trace__v3__", 2))
            header = RequestHeader(
                traceId=1, spanId=2, dest="/users", delegations=(("/svc", "/#/io.l5d.fs"),)
            )
            h.send(call("ping", 2), prefix=header.encode(BINARY))
            identified, c, d = h.calls[1]
            self.assertEqual(c.header, header)
            self.assertEqual(
                identified, Identified(Path.read("/svc/users"), Dtab.read("/svc=>/#/io.l5d.fs"))
            )
            d.callback(reply("ping", 2))
            raw = h.transport.value()
            self.assertEqual(raw, frame(framed, b"\x00", reply("ping", 2).payload))


class LimitTests(SynchronousTestCase):
    def errorOf(self, m: Message) -> str:
        self.assertEqual(m.type, MessageType.EXCEPTION)
        return readApplicationException(BINARY, m.payload)[1]

    def test_drain(self) -> None:
        """
        Draining refuses new calls with an exception reply, closes each
        connection once its calls are answered, and fires once all are
        closed; an idle connection is closed at once.
        """
        h = Harness()
        idle = h.factory.buildProtocol(None)
        idleTransport = StringTransport()
        idle.makeConnection(idleTransport)
        h.send(call("a", 1))
        self.assertEqual(h.factory.inFlight, 1)
        drained = h.factory.drain()
        self.assertTrue(idleTransport.disconnecting)
        idle.connectionLost(Failure(ConnectionDone()))
        self.assertNoResult(drained)
        h.send(call("b", 2))
        self.assertFalse(h.transport.disconnecting)
        h.calls[0][2].callback(reply("a", 1))
        self.assertTrue(h.transport.disconnecting)
        self.assertEqual(h.factory.inFlight, 0)
        self.assertNoResult(drained)
        h.protocol.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(drained)
        first, second = h.replies()
        self.assertEqual(first.type, MessageType.REPLY)
        self.assertIn("shutting down", self.errorOf(second))
        self.assertEqual(len(h.calls), 1)

    def test_maxConcurrentRequests(self) -> None:
        h = Harness(maxConcurrentRequests=1)
        h.send(call("a", 1), call("b", 2))
        h.calls[0][2].callback(reply("a", 1))
        h.send(call("c", 3))
        h.calls[1][2].callback(reply("c", 3))
        a, b, c = h.replies()
        self.assertIn("maxConcurrentRequests is 1", self.errorOf(b))
        self.assertEqual((a.seqid, c.seqid), (1, 3))


class IdentifierTests(SynchronousTestCase):
    def identify(self, name: str, methodInDst: bool = False, **header: Any) -> Any:
        message = Message(name, MessageType.CALL, 1, b"")
        h = RequestHeader(**header) if header else None
        return ThriftIdentifier(Path.of("svc"), methodInDst).identify(ThriftCall(message, h))

    def test_names(self) -> None:
        cases = [
            ("ping", False, {}, "/svc"),
            ("ping", True, {}, "/svc/ping"),
            ("Calc:add", False, {}, "/svc/Calc"),
            ("Calc:add", True, {}, "/svc/Calc/add"),
            ("ping", True, {"dest": "/a/b"}, "/svc/a/b/ping"),
            ("ping", False, {"dest": "/"}, "/svc"),
        ]
        for name, methodInDst, header, dst in cases:
            result = self.identify(name, methodInDst, **header)
            self.assertEqual(result.dst, Path.read(dst), (name, methodInDst, header))

    def test_failures(self) -> None:
        self.assertIsInstance(self.identify("a b", True), Unidentified)
        self.assertIsInstance(self.identify("a b:c", False), Unidentified)
        self.assertIsInstance(self.identify("ping", dest="not a path"), Unidentified)
        bad = self.identify("ping", delegations=(("/a", "=>"),))
        self.assertIsInstance(bad, Unidentified)
        self.assertIn("invalid TTwitter header", bad.reason)
