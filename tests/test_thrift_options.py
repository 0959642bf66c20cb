"""
The Thrift router's C{clearContext} and C{socketOptions}: what a server
with C{clearContext} keeps of a caller's TTwitter request header, and the
per-connection C{noDelay}, C{keepAlive}, C{readTimeoutMs} and
C{writeTimeoutMs} of servers and endpoint clients.  Unit tests on in-memory
transports with a fake clock, and routers built from YAML on loopback.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Sequence
from typing import Any

import attrs
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.protocol import ClientCreator, Protocol, connectionDone
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogEvent, LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from linkrouter.config import SocketOptions, parseLinkerConfig
from linkrouter.naming import Address, Dtab, Path
from linkrouter.routing.identification import Identified
from linkrouter.sockets import DEFAULTS
from linkrouter.tls import unwrap
from protocols.thrift.client import BackendConnectionLost, ThriftEndpointClient
from protocols.thrift.codec import (
    Message,
    MessageDecoder,
    MessageType,
    ThriftProtocol,
    encodeMessage,
    frame,
    readApplicationException,
)
from protocols.thrift.config import ThriftClientConfig, ThriftServerConfig
from protocols.thrift.identifier import ThriftCall, ThriftIdentifier
from protocols.thrift.router import DEADLINE_CONTEXT, ThriftRouter
from protocols.thrift.server import ThriftServerFactory
from protocols.thrift.ttwitter import EMPTY_STRUCT, RequestHeader, upgradeCall
from tests._linker import registry, startLinker
from tests.test_http_options import TCPTransport

reactor: Any = _reactor
BINARY = ThriftProtocol.BINARY
OTHER_CONTEXT = (b"com.example.Tenant", b"acme")


def encodedCall(name: str, seqid: int) -> bytes:
    return encodeMessage(BINARY, name, MessageType.CALL, seqid, EMPTY_STRUCT)


def replyTo(call: ThriftCall) -> Message:
    m = call.message
    payload = encodeMessage(BINARY, m.name, MessageType.REPLY, m.seqid, EMPTY_STRUCT)
    return Message(m.name, MessageType.REPLY, m.seqid, payload)


def deadlineContext(expiresInSeconds: float) -> tuple[bytes, bytes]:
    now = time.time_ns()
    return (DEADLINE_CONTEXT, struct.pack(">qq", now, now + int(expiresInSeconds * 1e9)))


def callerHeader(svc: str, contexts: tuple[tuple[bytes, bytes], ...] = ()) -> RequestHeader:
    """
    A caller's header: its own trace, sampling, client id and contexts, and
    a dtab that sends C{/svc} to C{svc}.
    """
    return RequestHeader(
        traceId=1111,
        spanId=2222,
        parentSpanId=3333,
        sampled=True,
        clientId="caller",
        flags=1,
        contexts=contexts,
        delegations=(("/svc", svc),),
        traceIdHigh=4444,
    )


def assertNoCallerContext(case: Any, header: RequestHeader | None) -> None:
    """C{header} carries nothing of L{callerHeader}'s trace, dtab or contexts."""
    assert header is not None
    case.assertEqual((header.contexts, header.delegations), ((), ()))
    case.assertNotIn(header.traceId, (1111, 2222, 3333))
    case.assertNotEqual(header.parentSpanId, 2222)
    case.assertEqual((header.sampled, header.clientId, header.flags), (None, None, 0))
    case.assertIsNone(header.traceIdHigh)


class ServerHarness:
    """One in-memory connection to a Thrift server whose handler never answers by itself."""

    def __init__(
        self,
        options: SocketOptions = DEFAULTS,
        clock: Clock | None = None,
        clearContext: bool = False,
    ) -> None:
        self.calls: list[tuple[Identified, ThriftCall, Deferred[Message | None]]] = []
        self.factory = ThriftServerFactory(
            self.handle,
            ThriftIdentifier(Path.of("svc")),
            ThriftServerConfig(),
            clock=clock,
            socketOptions=options,
            clearContext=clearContext,
        )
        self.protocol = self.factory.buildProtocol(None)
        self.transport = TCPTransport()
        self.protocol.makeConnection(self.transport)

    def handle(self, identified: Identified, call: ThriftCall) -> Deferred[Message | None]:
        d: Deferred[Message | None] = Deferred()
        self.calls.append((identified, call, d))
        return d

    def upgrade(self) -> None:
        self.protocol.dataReceived(frame(True, upgradeCall(BINARY)))
        self.transport.clear()

    def send(self, data: bytes, header: RequestHeader | None = None) -> None:
        prefix = header.encode(BINARY) if header is not None else b""
        self.protocol.dataReceived(frame(True, prefix, data))


class ClearContextUnitTests(SynchronousTestCase):
    def test_cleared(self) -> None:
        """
        With C{clearContext}, the caller's dtab, contexts and trace are gone
        before the call is named; its C{dest} still names it.
        """
        h = ServerHarness(clearContext=True)
        h.upgrade()
        header = callerHeader("/$/nil", (deadlineContext(-1), OTHER_CONTEXT))
        h.send(encodedCall("echo", 1), attrs.evolve(header, dest="/foo"))
        ((identified, call, _),) = h.calls
        self.assertEqual(identified, Identified(Path.read("/svc/foo"), Dtab.empty()))
        assertNoCallerContext(self, call.header)
        assert call.header is not None
        self.assertEqual(call.header.dest, "/foo")

    def test_kept(self) -> None:
        """Without C{clearContext}, the caller's header is used as it came."""
        h = ServerHarness()
        h.upgrade()
        header = callerHeader("/$/nil", (OTHER_CONTEXT,))
        h.send(encodedCall("echo", 1), header)
        ((identified, call, _),) = h.calls
        self.assertEqual(identified.localDtab, Dtab.read("/svc=>/$/nil"))
        self.assertEqual(call.header, header)

    def test_notUpgraded(self) -> None:
        """A plain Thrift call has no header to clear."""
        h = ServerHarness(clearContext=True)
        h.send(encodedCall("echo", 1))
        ((identified, call, _),) = h.calls
        self.assertEqual(identified, Identified(Path.read("/svc"), Dtab.empty()))
        self.assertIsNone(call.header)


class ServerSocketOptionTests(SynchronousTestCase):
    def test_options(self) -> None:
        """C{noDelay} and C{keepAlive} are set on each accepted connection."""
        h = ServerHarness(SocketOptions(noDelay=False, keepAlive=True))
        self.assertEqual((h.transport.noDelay, h.transport.keepAlive), (False, True))
        h = ServerHarness()
        self.assertEqual((h.transport.noDelay, h.transport.keepAlive), (True, None))

    def test_readTimeout(self) -> None:
        """
        An idle connection is not timed out; one that sent part of a call
        and then nothing for C{readTimeoutMs} is aborted, with one info
        line and no traceback.
        """
        clock = Clock()
        h = ServerHarness(SocketOptions(readTimeoutMs=1000), clock)
        clock.advance(5)
        self.assertFalse(h.transport.disconnecting)
        whole = frame(True, encodedCall("echo", 1))
        h.protocol.dataReceived(whole[:6])
        clock.advance(0.6)
        h.protocol.dataReceived(whole[6:9])
        clock.advance(0.6)
        self.assertFalse(h.transport.disconnecting)
        with capturedLogs() as events:
            clock.advance(0.5)
            h.protocol.connectionLost()
        self.assertTrue(h.transport.aborted)
        self.assertEqual(h.calls, [])
        (event,) = events
        self.assertEqual(event["log_level"], LogLevel.info)
        self.assertNotIn("log_failure", event)
        self.assertIn("readTimeoutMs (1000)", formatEvent(event))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_waitingIsNotReading(self) -> None:
        """A call read whole, waiting for its reply, is not a read timeout."""
        clock = Clock()
        h = ServerHarness(SocketOptions(readTimeoutMs=1000), clock)
        h.send(encodedCall("echo", 1))
        clock.advance(10)
        self.assertFalse(h.transport.disconnecting)
        _, call, d = h.calls[0]
        d.callback(replyTo(call))
        self.assertIn(b"echo", h.transport.value())

    def test_writeTimeout(self) -> None:
        """Reply bytes that wait unsent for C{writeTimeoutMs} close the connection."""
        clock = Clock()
        h = ServerHarness(SocketOptions(writeTimeoutMs=1000), clock)
        h.transport.dataBuffer = b"x" * 100
        clock.advance(1)
        clock.advance(0.5)
        h.transport.offset = 50  # some bytes left: not stalled
        clock.advance(0.5)
        clock.advance(0.9)
        self.assertFalse(h.transport.disconnecting)
        with capturedLogs() as events:
            clock.advance(0.2)
        self.assertTrue(h.transport.aborted)
        (event,) = events
        self.assertIn("writeTimeoutMs (1000)", formatEvent(event))


class ClientHarness:
    """An endpoint client on a memory reactor; each connection an in-memory transport."""

    def __init__(self, options: SocketOptions) -> None:
        self.reactor = MemoryReactorClock()
        self.client = ThriftEndpointClient(
            Address("127.0.0.1", 9999), ThriftClientConfig(), self.reactor, socketOptions=options
        )

    def call(self, seqid: int) -> Deferred[Message | None]:
        payload = encodedCall("echo", seqid)
        return self.client(ThriftCall(Message("echo", MessageType.CALL, seqid, payload)))

    def connect(self) -> tuple[Protocol, TCPTransport]:
        """Complete the connection the client asked the reactor for last."""
        factory = self.reactor.tcpClients[-1][2]
        proto = factory.buildProtocol(None)
        assert isinstance(proto, Protocol)
        transport = TCPTransport()
        proto.makeConnection(transport)
        return proto, transport

    def answer(self, proto: Protocol, seqid: int) -> None:
        reply = encodeMessage(BINARY, "echo", MessageType.REPLY, seqid, EMPTY_STRUCT)
        proto.dataReceived(frame(True, reply))


class ClientSocketOptionTests(SynchronousTestCase):
    def test_options(self) -> None:
        h = ClientHarness(SocketOptions(noDelay=False, keepAlive=True))
        h.call(1)
        _, transport = h.connect()
        self.assertEqual((transport.noDelay, transport.keepAlive), (False, True))

    def test_readTimeout(self) -> None:
        """
        A reply that does not come within C{readTimeoutMs} fails the call;
        the connection is aborted with one info line and no traceback.
        """
        h = ClientHarness(SocketOptions(readTimeoutMs=500))
        d = h.call(1)
        proto, transport = h.connect()
        h.reactor.advance(0.4)
        h.answer(proto, 1)
        self.successResultOf(d)
        h.reactor.advance(0.1)  # the watchdog looks at an idle connection
        h.reactor.advance(0.4)
        d2 = h.call(2)
        h.reactor.advance(0.45)  # the clock started when the call was sent
        self.assertNoResult(d2)
        self.assertFalse(transport.disconnecting)
        with capturedLogs() as events:
            h.reactor.advance(0.1)
        failure = self.failureResultOf(d2, BackendConnectionLost)
        self.assertIn("readTimeoutMs (500)", str(failure.value))
        self.assertTrue(transport.aborted)
        (event,) = events
        self.assertEqual(event["log_level"], LogLevel.info)
        self.assertNotIn("log_failure", event)
        self.assertIn("127.0.0.1:9999", formatEvent(event))
        proto.connectionLost(connectionDone)
        self.assertEqual(h.client.size, 0)

    def test_idleNotTimedOut(self) -> None:
        h = ClientHarness(SocketOptions(readTimeoutMs=500))
        d = h.call(1)
        proto, transport = h.connect()
        h.answer(proto, 1)
        self.successResultOf(d)
        h.reactor.advance(10)
        self.assertFalse(transport.disconnecting)

    def test_writeTimeout(self) -> None:
        h = ClientHarness(SocketOptions(writeTimeoutMs=500))
        d = h.call(1)
        _, transport = h.connect()
        transport.dataBuffer = b"x" * 10
        with capturedLogs() as events:
            h.reactor.advance(0.5)
            h.reactor.advance(0.5)
        self.failureResultOf(d, BackendConnectionLost)
        self.assertTrue(transport.aborted)
        (event,) = events
        self.assertIn("writeTimeoutMs (500)", formatEvent(event))


class _Caller(Protocol):
    """A raw Thrift caller: framed binary, replies matched in order."""

    def __init__(self) -> None:
        self.decoder = MessageDecoder(BINARY, framed=True)
        self.waiting: list[Deferred[Message]] = []
        self.lost: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.decoder.feed(data)
        while (message := self.decoder.next()) is not None:
            self.waiting.pop(0).callback(message)

    def connectionLost(self, reason: object = None) -> None:
        self.lost.callback(None)

    def send(self, data: bytes) -> Deferred[Message]:
        d: Deferred[Message] = Deferred()
        self.waiting.append(d)
        assert self.transport is not None
        self.transport.write(data)
        return d

    @inlineCallbacks
    def upgrade(self) -> Any:
        reply = yield self.send(frame(True, upgradeCall(BINARY)))
        assert reply.type is MessageType.REPLY
        self.decoder.prefixed = True  # replies now carry a response header


class _Backend:
    """
    A TTwitter-capable backend (our own server) that records each call and
    answers it, unless C{silent}.
    """

    def __init__(self, case: TestCase, name: str, silent: bool = False) -> None:
        self.name = name
        self.silent = silent
        self.calls: list[ThriftCall] = []
        factory = ThriftServerFactory(self.handle, ThriftIdentifier(Path()), ThriftServerConfig())
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.inet = f"/$/inet/127.0.0.1/{self.port.getHost().port}"
        case.addCleanup(self.stop, factory)

    def handle(self, identified: Identified, call: ThriftCall) -> Deferred[Message | None]:
        self.calls.append(call)
        if self.silent:
            return Deferred()
        return succeed(replyTo(call))

    @inlineCallbacks
    def stop(self, factory: ThriftServerFactory) -> Any:
        yield self.port.stopListening()
        factory.closeAll()
        yield deferLater(reactor, 0.01, lambda: None)


class ClearContextRouterTests(TestCase):
    """
    One router with two servers, the second with C{clearContext: true},
    in front of backends A (the router's dtab) and B (the caller's).
    """

    timeout = 20

    def setUp(self) -> None:
        self.a = _Backend(self, "A")
        self.b = _Backend(self, "B")
        linker = startLinker(
            self,
            f"""
routers:
- protocol: thrift
  dtab: /svc => {self.a.inet};
  servers:
  - port: 0
  - port: 0
    clearContext: true
  client:
    attemptTTwitterUpgrade: true
""",
        )
        ports = linker.routers[0].service.ports  # type: ignore[attr-defined]
        self.trusted, self.untrusted = (p.getHost().port for p in ports)

    @inlineCallbacks
    def caller(self, port: int) -> Any:
        caller = yield ClientCreator(reactor, _Caller).connectTCP("127.0.0.1", port)
        self.addCleanup(lambda: caller.lost)
        self.addCleanup(caller.transport.loseConnection)
        yield caller.upgrade()
        return caller

    def call(self, caller: _Caller, header: RequestHeader, seqid: int) -> Deferred[Message]:
        return caller.send(frame(True, header.encode(BINARY), encodedCall("echo", seqid)))

    @inlineCallbacks
    def test_cleared(self) -> Any:
        """
        Through the C{clearContext} server, the caller's dtab does not
        change routing, its expired deadline is not enforced, and nothing
        of its header's contexts or trace reaches the backend.
        """
        caller = yield self.caller(self.untrusted)
        header = callerHeader(self.b.inet, (deadlineContext(-1), OTHER_CONTEXT))
        reply = yield self.call(caller, header, 7)
        self.assertEqual((reply.type, reply.seqid), (MessageType.REPLY, 7))
        self.assertEqual(self.b.calls, [])
        (seen,) = self.a.calls
        assertNoCallerContext(self, seen.header)

    @inlineCallbacks
    def test_kept(self) -> Any:
        """
        Through the other server, the caller's dtab routes the call and
        travels on with its contexts; its expired deadline is enforced.
        """
        caller = yield self.caller(self.trusted)
        future = deadlineContext(60)
        header = callerHeader(self.b.inet, (future, OTHER_CONTEXT))
        reply = yield self.call(caller, header, 7)
        self.assertEqual((reply.type, reply.seqid), (MessageType.REPLY, 7))
        self.assertEqual(self.a.calls, [])
        (seen,) = self.b.calls
        assert seen.header is not None
        self.assertEqual(seen.header.delegations, header.delegations)
        self.assertIn(future, seen.header.contexts)
        self.assertIn(OTHER_CONTEXT, seen.header.contexts)
        self.assertEqual(seen.header.traceId, 1111)

        expired = callerHeader(self.b.inet, (deadlineContext(-1),))
        reply = yield self.call(caller, expired, 8)
        self.assertEqual((reply.type, reply.seqid), (MessageType.EXCEPTION, 8))
        self.assertIn("deadline", readApplicationException(BINARY, reply.payload)[1].lower())
        self.assertEqual(len(self.b.calls), 1)


class SocketOptionRouterTests(TestCase):
    """C{socketOptions} of a Thrift router's servers and clients, on loopback sockets."""

    timeout = 20

    def router(self, backend: _Backend, server: str, client: str) -> tuple[ThriftRouter, int]:
        config = parseLinkerConfig(
            f"""
routers:
- protocol: thrift
  dtab: /svc => {backend.inet};
  servers:
  - port: 0
    socketOptions: {server}
  client:
    socketOptions: {client}
""",
            "thrift.yaml",
            registry(),
        )
        self.config = config.routers[0]
        service = startLinker(self, config).routers[0].service
        assert isinstance(service, ThriftRouter)
        return service, service.ports[0].getHost().port  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_setOnSockets(self) -> Any:
        """The options reach the accepted socket and the endpoint client's socket."""
        backend = _Backend(self, "A")
        service, port = self.router(
            backend, "{keepAlive: true, noDelay: false}", "{keepAlive: true, noDelay: false}"
        )
        caller = yield ClientCreator(reactor, _Caller).connectTCP("127.0.0.1", port)
        self.addCleanup(lambda: caller.lost)
        self.addCleanup(caller.transport.loseConnection)
        reply = yield caller.send(frame(True, encodedCall("echo", 1)))
        self.assertEqual(reply.type, MessageType.REPLY)
        [(_, factory)] = service.servers
        [accepted] = unwrap(factory).connections
        self.assertSocket(accepted, keepAlive=True, noDelay=False)

        # The router's client for the backend, as the router core makes it.
        params = self.config.client.forPath(Path.read(backend.inet))
        client = service._connect(Address("127.0.0.1", backend.port.getHost().port), params)
        assert isinstance(client, ThriftEndpointClient)
        self.addCleanup(client.close)
        payload = encodedCall("echo", 2)
        yield client(ThriftCall(Message("echo", MessageType.CALL, 2, payload)))
        [connection] = client._live
        self.assertSocket(connection, keepAlive=True, noDelay=False)

    def assertSocket(self, connection: Any, keepAlive: bool, noDelay: bool) -> None:
        handle = connection.transport.getHandle()
        self.assertEqual(bool(handle.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)), keepAlive)
        self.assertEqual(bool(handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)), noDelay)

    @inlineCallbacks
    def test_serverReadTimeout(self) -> Any:
        """A caller that stops in the middle of a call is disconnected after C{readTimeoutMs}."""
        backend = _Backend(self, "A")
        _, port = self.router(backend, "{readTimeoutMs: 100}", "{}")
        caller = yield ClientCreator(reactor, _Caller).connectTCP("127.0.0.1", port)
        self.addCleanup(caller.transport.loseConnection)
        with capturedLogs() as events:
            caller.transport.write(frame(True, encodedCall("echo", 1))[:10])
            yield caller.lost
        self.assertOneInfoLine(events, "readTimeoutMs (100)")
        self.assertEqual(backend.calls, [])

    @inlineCallbacks
    def test_clientReadTimeout(self) -> Any:
        """
        A backend that does not answer within the client's C{readTimeoutMs}:
        the caller gets an exception reply, the connection is closed.
        """
        silent = _Backend(self, "silent", silent=True)
        _, port = self.router(silent, "{}", "{readTimeoutMs: 100}")
        caller = yield ClientCreator(reactor, _Caller).connectTCP("127.0.0.1", port)
        self.addCleanup(lambda: caller.lost)
        self.addCleanup(caller.transport.loseConnection)
        with capturedLogs() as events:
            reply = yield caller.send(frame(True, encodedCall("echo", 1)))
        self.assertEqual((reply.type, reply.seqid), (MessageType.EXCEPTION, 1))
        self.assertIn("readTimeoutMs (100)", readApplicationException(BINARY, reply.payload)[1])
        self.assertOneInfoLine(events, "readTimeoutMs (100)")

    def assertOneInfoLine(self, events: Sequence[LogEvent], text: str) -> None:
        """One info event mentions C{text}; nothing is logged above info or with a traceback."""
        lines = [e for e in events if text in formatEvent(e)]
        self.assertEqual([e["log_level"] for e in lines], [LogLevel.info], events)
        self.assertEqual([e for e in events if "log_failure" in e], [])
        self.assertEqual([e for e in events if e["log_level"] > LogLevel.info], [])
