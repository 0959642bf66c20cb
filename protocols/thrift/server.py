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
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import IAddress, ITCPTransport
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from linkrouter.interfaces import IIdentifier
from linkrouter.routing.identification import Identified, Unidentified

from .codec import (
    Message,
    MessageDecoder,
    MessageType,
    ThriftCodecError,
    encodeApplicationException,
    frame,
)
from .config import ThriftServerConfig
from .identifier import ThriftCall
from .ttwitter import EMPTY_STRUCT, UPGRADE_METHOD, RequestHeader, upgradeReply

ThriftHandler = Callable[[Identified, ThriftCall], "Deferred[Message | None]"]
"""Routes one identified call; fires with the reply (C{None} for oneway)."""

log = Logger()


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
    """A reply position on a connection, filled when the reply is ready."""

    __slots__ = ("data", "deferred")

    def __init__(self, deferred: Deferred[Message | None] | Deferred[None]) -> None:
        self.deferred = deferred
        self.data: bytes | None = None


class ThriftServerProtocol(Protocol):
    def __init__(self, server: ThriftServerFactory) -> None:
        config = server.config
        self._server = server
        self._protocol = config.wireProtocol()
        self._framed = config.framed
        self._decoder = MessageDecoder(self._protocol, config.framed, config.maxMessageBytes)
        self._identifier = server.identifier
        self._handler = server.handler
        self._upgraded = False
        self._slots: deque[_Slot] = deque()
        self._closed = False

    def connectionMade(self) -> None:
        self._server.connections.add(self)
        if ITCPTransport.providedBy(self.transport):
            self.transport.setTcpNoDelay(True)

    def _peer(self) -> IAddress | str:
        return self.transport.getPeer() if self.transport is not None else "?"

    def dataReceived(self, data: bytes) -> None:
        if self._closed:
            return
        self._decoder.feed(data)
        try:
            while not self._closed and (message := self._decoder.next()) is not None:
                self._received(message)
        except ThriftCodecError as e:
            self._abandon(str(e))

    def _abandon(self, reason: str) -> None:
        log.warn(
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
        header = RequestHeader.decode(self._protocol, message.prefix) if self._upgraded else None
        call = ThriftCall(message, header)
        refusal = self._server.refusal()
        if refusal is not None:
            result: Deferred[Message | None] = fail(refusal)
        else:
            result = self._server.track(self._dispatch(call))
        if call.oneway:
            result.addErrback(self._onewayFailed, message)
            return
        slot = _Slot(result)
        self._slots.append(slot)
        result.addCallbacks(
            self._replied, self._failed, callbackArgs=(slot,), errbackArgs=(slot, message)
        )

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

    def _onewayFailed(self, failure: Failure, message: Message) -> None:
        log.info(
            "Oneway Thrift call {name} from {peer} not delivered: {why}",
            name=message.name,
            peer=self._peer(),
            why=describe(failure),
        )

    def _replied(self, reply: Message | None, slot: _Slot) -> None:
        payload = reply.payload if reply is not None else b""
        self._fill(slot, payload)

    def _failed(self, failure: Failure, slot: _Slot, message: Message) -> None:
        if failure.check(CancelledError) and self._closed:
            return
        text = f"Internal error processing {message.name}: '{describe(failure)}'"
        self._fill(
            slot, encodeApplicationException(self._protocol, message.name, message.seqid, text)
        )

    def _fill(self, slot: _Slot, payload: bytes) -> None:
        prefix = EMPTY_STRUCT if self._upgraded else b""
        slot.data = frame(self._framed, prefix, payload)
        self._flush()

    def _flush(self) -> None:
        slots = self._slots
        while slots and slots[0].data is not None:
            data = slots.popleft().data
            if not self._closed and self.transport is not None and data:
                self.transport.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self._closed and self._decoder.pending:
            log.warn(
                "Thrift connection from {peer} closed inside a message ({pending} bytes)",
                peer=self._peer(),
                pending=self._decoder.pending,
            )
        self._closed = True
        self._server.connections.discard(self)
        slots, self._slots = self._slots, deque()
        for slot in slots:
            slot.deferred.cancel()

    def close(self) -> None:
        """Close the connection now, abandoning calls in flight."""
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]


class ThriftServerFactory(ServerFactory):
    """
    Builds the connections of one listening port, and keeps count of the
    calls they are serving (for a graceful shutdown).
    """

    noisy = False

    def __init__(
        self,
        handler: ThriftHandler,
        identifier: IIdentifier,
        config: ThriftServerConfig,
        maxConcurrentRequests: int | None = None,
    ) -> None:
        self.handler = handler
        self.identifier = identifier
        self.config = config
        self.maxConcurrentRequests = maxConcurrentRequests
        self.inFlight = 0
        self.draining = False
        self.connections: set[ThriftServerProtocol] = set()
        self._whenIdle: list[Deferred[None]] = []

    def buildProtocol(self, addr: IAddress | None) -> ThriftServerProtocol:
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

    def track(self, result: Deferred[Message | None]) -> Deferred[Message | None]:
        self.inFlight += 1
        return result.addBoth(self._finished)

    def _finished(self, result: object) -> object:
        self.inFlight -= 1
        if not self.inFlight:
            whenIdle, self._whenIdle = self._whenIdle, []
            for d in whenIdle:
                d.callback(None)
        return result

    def drain(self) -> Deferred[None]:
        """
        Refuse new calls (they get an exception reply); fire once no call
        is in flight.
        """
        self.draining = True
        if not self.inFlight:
            return succeed(None)
        d: Deferred[None] = Deferred(lambda d: self._whenIdle.remove(d))
        self._whenIdle.append(d)
        return d


def makeServerFactory(
    handler: ThriftHandler,
    identifier: IIdentifier,
    serverConfig: ThriftServerConfig,
    maxConcurrentRequests: int | None = None,
) -> ThriftServerFactory:
    """
    A factory for a listening port.  C{serverConfig.protocol} must be
    resolved (see L{ThriftServerConfig.wireProtocol}) or C{None} for binary.
    """
    return ThriftServerFactory(handler, identifier, serverConfig, maxConcurrentRequests)
