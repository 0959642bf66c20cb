# -*- test-case-name: tests.test_thrift_interop -*-
"""
Outbound Thrift: a pool of connections to one endpoint.

Plain Thrift has no multiplexing, so a connection carries one call at a
time; the pool opens connections up to its limit and queues callers beyond
it.  Sequence ids are kept end to end.  A oneway call completes as soon as
it is written.  With C{attemptTTwitterUpgrade}, each new connection first
tries the TTwitter upgrade; an upgraded connection prefixes every call with
a request header (the caller's trace as parent, its dest and delegations).

The C{socketOptions} of the client apply to each connection: C{noDelay}
and C{keepAlive} on the socket; C{readTimeoutMs} while a reply (the
upgrade's included) is awaited and C{writeTimeoutMs} while written bytes
wait to leave, after which the connection is closed with one log line and
the call in flight fails with L{BackendConnectionLost}.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    connectProtocol,
)
from twisted.internet.error import ConnectionClosed
from twisted.internet.interfaces import IReactorTCP, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from linkrouter._sessions import UNLIMITED, IdleConnections, PoolLimits
from linkrouter._transport import write
from linkrouter.client.errors import ConnectionFailed
from linkrouter.config import SocketOptions
from linkrouter.interfaces import IClient, Status
from linkrouter.logs import logObserver
from linkrouter.naming import Address, authority
from linkrouter.routing.stats import CountedConnections
from linkrouter.sockets import DEFAULTS, Liveness, applySocketOptions
from linkrouter.tls import clientEndpoint, tlsFailure

from .codec import (
    ApplicationExceptionType,
    Message,
    MessageDecoder,
    MessageType,
    ThriftCodecError,
    ThriftProtocol,
    forward,
    frame,
    readApplicationException,
)
from .config import ThriftClientConfig
from .identifier import ThriftCall
from .ttwitter import UPGRADE_METHOD, RequestHeader, upgradeCall

__all__ = [
    "BackendConnectionLost",
    "BackendProtocolError",
    "PoolLimits",
    "ThriftEndpointClient",
    "TooManyWaiters",
]

_HARMLESS_EXCEPTIONS = (
    ApplicationExceptionType.INTERNAL_ERROR,
    ApplicationExceptionType.UNKNOWN_METHOD,
)
"""Exception replies after which a connection stays usable (as Finagle)."""

log = Logger(observer=logObserver)


class BackendConnectionLost(ConnectionClosed):
    """The connection closed after the call was written, before its reply."""

    writtenAnything = True


class BackendProtocolError(Exception):
    """The backend answered with something that is not the call's reply."""

    writtenAnything = True


class _Connection(Protocol):
    def __init__(self, pool: ThriftEndpointClient) -> None:
        self._pool = pool
        self._protocol = pool.protocol
        self._framed = pool.config.framed
        self._decoder = MessageDecoder(
            pool.protocol, pool.config.framed, pool.config.maxMessageBytes
        )
        self._pending: Deferred[Message] | None = None
        self._seqid = 0
        self._name = ""
        self._releasing = False
        self._liveness = Liveness.forOptions(
            pool._clock, pool.socketOptions, self._expecting, self._timedOut
        )
        self.born = self.lastUsed = 0.0
        self.upgraded = False
        self.broken = False
        self.lost = False

    def connectionMade(self) -> None:
        applySocketOptions(self.transport, self._pool.socketOptions)
        if self._liveness is not None:
            self._liveness.start(self.transport)
        self._pool._made(self)

    def _expecting(self) -> bool:
        """A reply is awaited."""
        return self._pending is not None

    def _timedOut(self, reason: str) -> None:
        name = self._pool.name
        log.info("Closing Thrift connection to {name}: {reason}", name=name, reason=reason)
        self._fail(BackendConnectionLost(f"connection to {name} closed: {reason}"))

    def write(self, data: bytes) -> None:
        write(self.transport, data)

    def send(self, data: bytes, seqid: int, name: str, release: bool = True) -> Deferred[Message]:
        """
        Write the two-way call C{name}; fire with its reply, after giving the
        connection back to the pool if C{release}.
        """
        d: Deferred[Message] = Deferred(self._cancel)
        self._pending = d
        self._seqid = seqid
        self._name = name
        self._releasing = release
        if self._liveness is not None:
            self._liveness.read()  # the reply's read clock starts with the call
        write(self.transport, data)
        return d

    def upgrade(self) -> Deferred[None]:
        def upgraded(reply: Message) -> None:
            self.upgraded = self._decoder.prefixed = reply.type is not MessageType.EXCEPTION

        call = frame(self._framed, upgradeCall(self._protocol))
        return self.send(call, 0, UPGRADE_METHOD, release=False).addCallback(upgraded)

    def _cancel(self, d: Deferred[Message]) -> None:
        self._pending = None
        self.close(abort=True)

    def close(self, abort: bool = False) -> None:
        self.broken = True
        if self.transport is not None:
            if abort:
                self.transport.abortConnection()  # type: ignore[attr-defined]
            else:
                self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._liveness is not None:
            self._liveness.read()
        self._decoder.feed(data)
        try:
            while not self.broken and (reply := self._decoder.next()) is not None:
                self._replied(reply)
        except ThriftCodecError as e:
            self._fail(BackendProtocolError(f"unreadable reply from {self._pool.name}: {e}"))

    def _replied(self, reply: Message) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            log.info("{name} sent a reply nobody asked for, closing", name=self._pool.name)
            self._fail(BackendProtocolError(f"{self._pool.name} sent a reply nobody asked for"))
            return
        name = self._name
        mismatch = None
        if reply.seqid != self._seqid:
            mismatch = f"seqid {reply.seqid} to seqid {self._seqid}"
        elif reply.name != name and not name.endswith(":" + reply.name):
            # A multiplexed call (Service:method) may be answered as method.
            mismatch = f"{reply.name!r} to {name!r}"
        if mismatch is not None:
            self._pending = pending
            self._fail(BackendProtocolError(f"{self._pool.name} answered {mismatch}"))
            return
        if self._decoder.pending:
            # One call, one reply: what follows it is no later call's reply.
            log.info("{name} sent bytes after its reply, closing", name=self._pool.name)
            self.close(abort=True)
        elif reply.type is MessageType.EXCEPTION:
            try:
                kind, _ = readApplicationException(self._protocol, reply.payload)
            except ThriftCodecError:
                kind = ApplicationExceptionType.PROTOCOL_ERROR
            self.broken = kind not in _HARMLESS_EXCEPTIONS
        if self._releasing:
            self._pool._release(self)
        pending.callback(reply)

    def _fail(self, error: Exception) -> None:
        pending, self._pending = self._pending, None
        self.close(abort=True)
        if pending is not None:
            pending.errback(error)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = True
        if self._liveness is not None:
            self._liveness.stop()
        self._pool._lost(self)
        pending, self._pending = self._pending, None
        if pending is not None:
            name = self._pool.name
            tls = tlsFailure(reason.value)
            if tls is not None:
                message = f"TLS with {name} failed: {tls}"
            else:
                message = f"connection to {name} lost before the reply"
            pending.errback(BackendConnectionLost(message))


def _endpoint(reactor: IReactorTCP, address: Address, timeout: float) -> IStreamClientEndpoint:
    if isIPAddress(address.host):
        return TCP4ClientEndpoint(reactor, address.host, address.port, timeout)
    if isIPv6Address(address.host):
        return TCP6ClientEndpoint(reactor, address.host, address.port, timeout)
    return HostnameEndpoint(reactor, address.host, address.port, timeout)  # type: ignore[arg-type]


class TooManyWaiters(Exception):
    """
    The pool is at C{maxSize} and C{maxWaiters} callers already wait: the
    call fails at once, before anything is written (so it may be requeued).
    """

    writtenAnything = False


@implementer(IClient)
class ThriftEndpointClient(CountedConnections):
    """
    Calls one endpoint over a pool of serial connections, within C{limits}.
    Idle connections are reaped by one timer per pool.  C{socketOptions}
    apply to each connection (see the module docstring).  Its connections
    are counted by the L{ConnectionStats} that L{countConnections} gives, if
    any.
    """

    def __init__(
        self,
        address: Address,
        config: ThriftClientConfig,
        reactor: Any,
        limits: PoolLimits = UNLIMITED,
        connectTimeout: float = 1.0,
        tls: object = None,
        socketOptions: SocketOptions = DEFAULTS,
    ) -> None:
        self.config = config
        self.socketOptions = socketOptions
        self.protocol: ThriftProtocol = config.wireProtocol()
        self.name = authority(address.host, address.port)
        self.limits = limits
        self._clock: IReactorTime = reactor
        self._endpoint = clientEndpoint(tls, _endpoint(reactor, address, connectTimeout))
        self._max = limits.maxSize
        self._open = 0  # connections open or being opened
        self._live: set[_Connection] = set()
        self._idle: IdleConnections[_Connection] = IdleConnections(
            limits, self._clock, _Connection.close, self._openCount
        )
        self._waiters: deque[Deferred[_Connection]] = deque()
        self._closed = False
        self._whenClosed: list[Deferred[None]] = []

    def _openCount(self) -> int:
        return self._open

    @property
    def size(self) -> int:
        """Connections open or being opened."""
        return self._openCount()

    @property
    def waiters(self) -> int:
        """Calls queued for a connection."""
        return len(self._waiters)

    @property
    def status(self) -> Status:
        if self._closed:
            return Status.CLOSED
        if not self._idle and not self._hasRoom():
            return Status.BUSY
        return Status.OPEN

    def _hasRoom(self) -> bool:
        return self._max is None or self._open < self._max

    def __call__(self, request: object) -> Deferred[Message | None]:
        assert isinstance(request, ThriftCall)
        if self._closed:
            return fail(ConnectionFailed(f"client for {self.name} is closed"))
        while (conn := self._idle.pop()) is not None:
            if not conn.lost:
                return self._send(conn, request)
        return self._acquire().addCallback(self._send, request)

    def _send(self, conn: _Connection, call: ThriftCall) -> Deferred[Message | None]:
        if conn.upgraded:
            header = call.header.child() if call.header is not None else RequestHeader.fresh()
            data = forward(call.message, self.config.framed, header.encode(self.protocol))
        else:
            data = forward(call.message, self.config.framed)
        if call.oneway:
            conn.write(data)
            self._release(conn)
            return succeed(None)
        return conn.send(data, call.message.seqid, call.message.name)  # type: ignore[return-value]

    def _acquire(self) -> Deferred[_Connection]:
        """A new connection, or a place in the queue (no connection is idle)."""
        if self._hasRoom():
            return self._connect()
        maxWaiters = self.limits.maxWaiters
        if maxWaiters is not None and len(self._waiters) >= maxWaiters:
            return fail(
                TooManyWaiters(
                    f"{self.name}: all {self._max} connections busy and"
                    f" {maxWaiters} calls waiting (hostConnectionPool.maxWaiters)"
                )
            )
        waiter: Deferred[_Connection] = Deferred(self._forget)
        self._waiters.append(waiter)
        return waiter

    def _forget(self, waiter: Deferred[_Connection]) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)

    def _connect(self) -> Deferred[_Connection]:
        self._open += 1
        conn = _Connection(self)
        d = connectProtocol(self._endpoint, conn)
        if self.config.attemptTTwitterUpgrade:
            d.addCallback(lambda _: conn.upgrade())
        connected: Deferred[_Connection] = d.addCallbacks(
            lambda _: conn, self._connectFailed, errbackArgs=(conn,)
        )
        return connected

    def _connectFailed(self, failure: Failure, conn: _Connection) -> Failure:
        if conn.transport is not None:
            if not conn.lost:
                conn.close(abort=True)
        else:
            self._open -= 1
            self._serveWaiters()
        if failure.check(CancelledError):
            return failure
        raise ConnectionFailed(
            f"cannot connect to {self.name}: {failure.getErrorMessage()}"
        ) from failure.value

    def _made(self, conn: _Connection) -> None:
        if self.connectionStats is not None:
            self.connectionStats.connected()
        self._live.add(conn)
        self._idle.made(conn)

    def _lost(self, conn: _Connection) -> None:
        if conn in self._live:
            if self.connectionStats is not None:
                self.connectionStats.closed()
            self._live.discard(conn)
            self._open -= 1
            self._idle.discard(conn)
            self._serveWaiters()
            if self._closed and not self._live:
                whenClosed, self._whenClosed = self._whenClosed, []
                for d in whenClosed:
                    d.callback(None)

    def _release(self, conn: _Connection) -> None:
        """C{conn} finished a call: give it to a waiter, or keep it idle."""
        if conn.lost:
            return
        if conn.broken or self._closed or self._idle.expired(conn):
            conn.close()
        elif self._waiters:
            self._waiters.popleft().callback(conn)
        else:
            self._idle.rest(conn)

    def _serveWaiters(self) -> None:
        while self._waiters and self._hasRoom() and not self._closed:
            waiter = self._waiters.popleft()
            self._connect().addCallbacks(self._give, waiter.errback, callbackArgs=(waiter,))

    def _give(self, conn: _Connection, waiter: Deferred[_Connection]) -> None:
        if waiter.called:
            self._release(conn)
        else:
            waiter.callback(conn)

    def close(self) -> Deferred[None]:
        """
        Refuse new calls, fail queued ones, close idle connections now and
        busy ones when their call completes; fire once all are closed.
        """
        self._closed = True
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            waiter.errback(ConnectionFailed(f"client for {self.name} is closed"))
        for conn in self._idle.stop():
            conn.close()
        if not self._live:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._whenClosed.append(d)
        return d
