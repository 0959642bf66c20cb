# -*- test-case-name: tests.test_thrift_server -*-
"""
Inbound Thrift connections.

Each call read from a connection is named by an identifier and handed to a
handler, C{handler(identified, call) -> Deferred[Message | None]} (the
router).  Calls may be pipelined; replies go out in the order of the calls,
as Thrift clients expect.  A oneway call is handed over and never answered.

Anything that keeps a two-way call from being answered (no identification,
a handler failure: binding to nothing, endpoint refused, timeout...) is
answered with a C{TApplicationException} of type INTERNAL_ERROR carrying
the call's name and seqid, so the caller raises instead of hanging.  Bytes
that are not Thrift close only their own connection, with one log line.

A server with C{clearContext} (it faces untrusted clients) keeps nothing
of a caller's TTwitter request header but its C{dest}: the delegations,
the broadcast contexts (the deadline among them), the trace ids, sampling,
flags and client id are dropped before the call is named, so they neither
change its routing nor travel on, as if the caller had sent none.

Once its port is bound, the router gives the factory its metrics scope
(L{ThriftServerFactory.observe}): the connection metrics, and a
L{RequestStats} that every call (refused ones included, oneway ones once
handed on) is counted in, begun as it is read and ended in the callback
that already answers it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import attrs
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from linkrouter._sessions import SessionTimer
from linkrouter._transport import write
from linkrouter.config import Session, SocketOptions
from linkrouter.interfaces import IIdentifier, IStatsReceiver
from linkrouter.logs import logObserver
from linkrouter.routing.identification import Identified, Unidentified
from linkrouter.routing.stats import ConnectionStats, RequestStats
from linkrouter.sockets import DEFAULTS, Liveness, applySocketOptions

from .codec import (
    Message,
    MessageDecoder,
    MessageType,
    ThriftCodecError,
    encodeApplicationException,
    forward,
    frame,
)
from .config import ThriftServerConfig
from .identifier import ThriftCall
from .ttwitter import EMPTY_STRUCT, UPGRADE_METHOD, RequestHeader, upgradeReply

ThriftHandler = Callable[[Identified, ThriftCall], "Deferred[Message | None]"]
"""Routes one identified call; fires with the reply (C{None} for oneway)."""

log = Logger(observer=logObserver)


class UnidentifiedCall(Exception):
    """The identifier could not name the call."""


class ServerDraining(Exception):
    """The server is shutting down and takes no new calls."""


class TooManyRequests(Exception):
    """The server is serving C{maxConcurrentRequests} calls already."""


def describe(failure: Failure) -> str:
    """What an error reply says about C{failure}."""
    text = str(failure.value)
    return text if text else type(failure.value).__name__


class _Slot:
    """
    A reply position on a connection, filled when the reply is ready;
    C{counted} if the call was handed to the router (not refused).  C{call}
    is the call answered there (C{None} for the TTwitter upgrade) and
    C{start} what the server's L{RequestStats} began it with.
    """

    __slots__ = ("call", "counted", "data", "deferred", "start")

    def __init__(
        self,
        deferred: Deferred[Message | None] | Deferred[None],
        counted: bool = False,
        call: ThriftCall | None = None,
        start: float = 0.0,
    ) -> None:
        self.deferred = deferred
        self.counted = counted
        self.call = call
        self.start = start
        self.data: bytes | None = None


def clearedHeader(header: RequestHeader) -> RequestHeader:
    """
    What a C{clearContext} server keeps of a caller's request header: its
    C{dest}, under a new trace, without contexts or delegations.
    """
    return attrs.evolve(RequestHeader.fresh(), dest=header.dest)


class ThriftServerProtocol(Protocol):
    def __init__(self, server: ThriftServerFactory) -> None:
        config = server.config
        self._server = server
        self._protocol = config.wireProtocol()
        self._framed = config.framed
        self._decoder = MessageDecoder(self._protocol, config.framed, config.maxMessageBytes)
        self._identifier = server.identifier
        self._handler = server.handler
        self._clearContext = server.clearContext
        self._stats = server.requestStats
        self._liveness = Liveness.forOptions(
            server.clock, server.socketOptions, self._expecting, self._timedOut
        )
        self._upgraded = False
        self._slots: deque[_Slot] = deque()
        self._closed = False
        self._session = SessionTimer(
            server.session,
            server.clock,
            self._busy,
            self._closeBetweenCalls,
            self._closeBetweenCalls,
        )

    def connectionMade(self) -> None:
        server = self._server
        server.connections.add(self)
        applySocketOptions(self.transport, server.socketOptions)
        if server.draining:
            self._closeBetweenCalls()
            return
        self._session.start()
        if self._liveness is not None:
            self._liveness.start(self.transport)

    def _expecting(self) -> bool:
        """Part of a message has been read, and the rest is awaited."""
        return not self._closed and self._decoder.pending > 0

    def _timedOut(self, reason: str) -> None:
        log.info(
            "Closing Thrift connection from {peer}: {reason}", peer=self._peer(), reason=reason
        )
        self._closed = True
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def _peer(self) -> IAddress | str:
        return self.transport.getPeer() if self.transport is not None else "?"

    def dataReceived(self, data: bytes) -> None:
        if self._closed:
            return
        self._session.touch()
        if self._liveness is not None:
            self._liveness.read()
        self._decoder.feed(data)
        try:
            while not self._closed and (message := self._decoder.next()) is not None:
                self._received(message)
        except ThriftCodecError as e:
            self._abandon(str(e))

    def _abandon(self, reason: str) -> None:
        log.info(
            "Closing Thrift connection from {peer}: {reason}", peer=self._peer(), reason=reason
        )
        self._closed = True
        assert self.transport is not None
        self.transport.loseConnection()

    def _received(self, message: Message) -> None:
        if message.type not in (MessageType.CALL, MessageType.ONEWAY):
            self._abandon(f"received a message of type {message.type.name}, not a call")
            return
        if not self._upgraded and message.name == UPGRADE_METHOD:
            self._upgraded = self._decoder.prefixed = True
            slot = _Slot(succeed(None))
            slot.data = frame(self._framed, upgradeReply(self._protocol, message.seqid))
            self._slots.append(slot)
            self._flush()
            return
        header = None
        if self._upgraded:
            header = RequestHeader.decode(self._protocol, message.prefix)
            if self._clearContext:
                header = clearedHeader(header)
        call = ThriftCall(message, header)
        server = self._server
        start = self._stats.begin() if self._stats is not None else 0.0
        refusal = server.refusal()
        if refusal is not None:
            result: Deferred[Message | None] = fail(refusal)
        else:
            server.started()
            result = self._dispatch(call)
        if call.oneway:
            result.addBoth(self._onewayDone, call, refusal is None, start)
            return
        slot = _Slot(result, refusal is None, call, start)
        self._slots.append(slot)
        result.addCallbacks(self._replied, self._failed, callbackArgs=(slot,), errbackArgs=(slot,))

    def _dispatch(self, call: ThriftCall) -> Deferred[Message | None]:
        try:
            identification = self._identifier.identify(call)
            if isinstance(identification, Deferred):
                return identification.addCallback(self._route, call)
            return self._route(identification, call)
        except Exception:
            return fail()

    def _route(self, identification: object, call: ThriftCall) -> Deferred[Message | None]:
        if isinstance(identification, Unidentified):
            raise UnidentifiedCall(identification.reason)
        assert isinstance(identification, Identified)
        return self._handler(identification, call)

    def _onewayDone(self, result: object, call: ThriftCall, counted: bool, start: float) -> None:
        if counted:
            self._server.finished()
        failure = result if isinstance(result, Failure) else None
        if self._stats is not None:
            self._stats.end(start, call, None, failure)
        if failure is not None:
            log.info(
                "Oneway Thrift call {name} from {peer} not delivered: {why}",
                name=call.message.name,
                peer=self._peer(),
                why=describe(failure),
            )

    def _replied(self, reply: Message | None, slot: _Slot) -> None:
        if slot.counted:
            self._server.finished()
        if self._stats is not None:
            self._stats.end(slot.start, slot.call, reply, None)
        prefix = EMPTY_STRUCT if self._upgraded else b""
        slot.data = forward(reply, self._framed, prefix) if reply is not None else b""
        self._flush()

    def _failed(self, failure: Failure, slot: _Slot) -> None:
        if slot.counted:
            self._server.finished()
        if self._stats is not None:
            self._stats.end(slot.start, slot.call, None, failure)
        if failure.check(CancelledError) and self._closed:
            return
        assert slot.call is not None
        message = slot.call.message
        text = f"Internal error processing {message.name}: '{describe(failure)}'"
        prefix = EMPTY_STRUCT if self._upgraded else b""
        slot.data = frame(
            self._framed,
            prefix,
            encodeApplicationException(self._protocol, message.name, message.seqid, text),
        )
        self._flush()

    def _flush(self) -> None:
        slots = self._slots
        while slots and slots[0].data is not None:
            data = slots.popleft().data
            if not self._closed and self.transport is not None and data:
                write(self.transport, data)
        if not slots and (self._session.expired or self._server.draining):
            self._closeBetweenCalls()

    def _busy(self) -> bool:
        return bool(self._slots)

    def _closeBetweenCalls(self) -> None:
        if self._closed or self._slots or self.transport is None:
            return
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self._closed and self._decoder.pending:
            log.info(
                "Thrift connection from {peer} closed inside a message ({pending} bytes)",
                peer=self._peer(),
                pending=self._decoder.pending,
            )
        self._closed = True
        self._session.stop()
        if self._liveness is not None:
            self._liveness.stop()
        slots, self._slots = self._slots, deque()
        for slot in slots:
            slot.deferred.cancel()
        self._server.lost(self)

    def close(self) -> None:
        """Close the connection now, abandoning calls in flight."""
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]


def _nothing() -> None:
    return None


_FOREVER = Session()


class ThriftServerFactory(ServerFactory):
    """
    Builds the connections of one listening port.  C{started} and
    C{finished} are called around each call handed to the router (the
    router service counts them for a graceful shutdown); C{session} is the
    server's C{serverSession} (connection idle time and lifetime, enforced
    between calls with C{clock}).

    C{socketOptions} apply to each connection: C{noDelay}, C{keepAlive},
    and with C{clock}, C{readTimeoutMs} (part of a call read, then
    silence) and C{writeTimeoutMs} (replies not leaving).  With
    C{clearContext}, callers' request headers are cleared (see the module
    docstring).

    Until L{observe} gives it a metrics scope, the factory counts nothing.
    """

    noisy = False

    def __init__(
        self,
        handler: ThriftHandler,
        identifier: IIdentifier,
        config: ThriftServerConfig,
        maxConcurrentRequests: int | None = None,
        session: Session = _FOREVER,
        clock: IReactorTime | None = None,
        started: Callable[[], object] = _nothing,
        finished: Callable[[], object] = _nothing,
        socketOptions: SocketOptions = DEFAULTS,
        clearContext: bool = False,
    ) -> None:
        assert clock is not None or session == _FOREVER, "session limits need a clock"
        self.handler = handler
        self.identifier = identifier
        self.config = config
        self.maxConcurrentRequests = maxConcurrentRequests
        self.session = session
        self.socketOptions = socketOptions
        self.clearContext = clearContext
        self.clock: IReactorTime = clock  # type: ignore[assignment]
        self._started = started
        self._finished = finished
        self.inFlight = 0
        self.draining = False
        self.connections: set[ThriftServerProtocol] = set()
        self._whenClosed: list[Deferred[None]] = []
        self.requestStats: RequestStats | None = None
        self.connectionStats = ConnectionStats(self.connections)

    def observe(self, stats: IStatsReceiver, requestStats: RequestStats | None = None) -> None:
        """
        Record from now on under C{stats} (the server's scope): the
        C{connects} and C{closes} counters and the C{connections} gauge
        (open connections), and, given C{requestStats}, every call of the
        connections accepted from now on.
        """
        self.requestStats = requestStats
        self.connectionStats.observe(stats)

    def buildProtocol(self, addr: IAddress | None) -> ThriftServerProtocol:
        self.connectionStats.connected()
        return ThriftServerProtocol(self)

    def refusal(self) -> Exception | None:
        """Why a new call must be refused now, if it must."""
        if self.draining:
            return ServerDraining("the server is shutting down")
        limit = self.maxConcurrentRequests
        if limit is not None and self.inFlight >= limit:
            return TooManyRequests(
                f"too many concurrent requests (maxConcurrentRequests is {limit})"
            )
        return None

    def started(self) -> None:
        self.inFlight += 1
        self._started()

    def finished(self) -> None:
        self.inFlight -= 1
        self._finished()

    def lost(self, connection: ThriftServerProtocol) -> None:
        self.connectionStats.closed()
        self.connections.discard(connection)
        if not self.connections and self._whenClosed:
            whenClosed, self._whenClosed = self._whenClosed, []
            for d in whenClosed:
                d.callback(None)

    def drain(self) -> Deferred[None]:
        """
        Refuse new calls (they get an exception reply), close each
        connection once its calls are answered; fire once all are closed.
        """
        self.draining = True
        for connection in list(self.connections):
            connection._closeBetweenCalls()
        if not self.connections:
            return succeed(None)

        def cancel(d: Deferred[None]) -> None:
            if d in self._whenClosed:
                self._whenClosed.remove(d)

        d: Deferred[None] = Deferred(cancel)
        self._whenClosed.append(d)
        return d

    def closeAll(self) -> None:
        """Close every connection now, abandoning calls in flight."""
        for connection in list(self.connections):
            connection.close()
