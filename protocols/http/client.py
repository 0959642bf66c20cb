# -*- test-case-name: tests.test_http_client -*-
"""
The HTTP/1.1 client: one connection per request in flight
(L{HTTPClientProtocol}) and a keep-alive pool per endpoint (L{HTTPPool},
an L{IClient}).
"""

from __future__ import annotations

from collections import deque

import attrs
import httptools
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IAddress,
    IConnector,
    IReactorTCP,
    IReactorTime,
    ITransport,
)
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from linkrouter._sessions import UNLIMITED, IdleConnections, PoolLimits
from linkrouter._transport import write
from linkrouter.config import SocketOptions
from linkrouter.interfaces import IClient, Status
from linkrouter.logs import logObserver
from linkrouter.naming import authority
from linkrouter.routing.stats import CountedConnections
from linkrouter.sockets import DEFAULTS, Liveness, applySocketOptions
from linkrouter.tls import clientFactory, tlsFailure
from protocols.http.errors import (
    ConnectionClosed,
    ConnectionFailed,
    MalformedResponse,
    PoolExhausted,
    ResponseTooLarge,
)
from protocols.http.message import (
    BodyStream,
    BodyWriter,
    Header,
    Headers,
    Request,
    Response,
    bodiless,
    parseHeaders,
    serializeHead,
)

log = Logger(observer=logObserver)


@attrs.frozen
class PoolConfig:
    """
    The connect timeout; the size up to which a response body with
    C{Content-Length} is buffered whole; without C{streamingEnabled}, every
    response body is buffered, up to C{maxResponseKB} (larger ones fail with
    L{ResponseTooLarge}); the largest chunk of a request body written
    (C{maxChunkKB}); the connections' C{socketOptions}; and the limits of a
    response's head, as of a request's (C{maxInitialLineKB} for the status
    line, C{maxHeadersKB} for the headers; over them, L{ResponseTooLarge}).
    """

    connectTimeoutMs: int = 1000
    streamAfterContentLengthKB: int = 5
    streamingEnabled: bool = True
    maxResponseKB: int = 5120
    maxChunkKB: int = 8
    socketOptions: SocketOptions = DEFAULTS
    maxHeadersKB: int = 8
    maxInitialLineKB: int = 4


class _Call:
    """One request on its way through the pool; its Deferred's canceller."""

    __slots__ = ("conn", "deferred", "request")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.conn: HTTPClientProtocol | None = None
        self.deferred: Deferred[Response] = Deferred(self._cancel)

    def _cancel(self, d: Deferred[Response]) -> None:
        conn = self.conn
        if conn is not None:
            conn.abort()


class _RequestWriter(BodyWriter):
    """Writes a streamed request body upstream."""

    __slots__ = ("conn",)

    def __init__(self, conn: HTTPClientProtocol, chunked: bool) -> None:
        BodyWriter.__init__(self, chunked, conn.pool.config.maxChunkKB * 1024)
        self.conn = conn

    def transport(self) -> ITransport | None:
        return self.conn.transport

    def ended(self) -> None:
        conn = self.conn
        if conn._tunnel:
            if conn.transport is not None:
                conn.transport.loseConnection()
            return
        conn._requestDone = True
        conn._maybeIdle()

    def bodyError(self, reason: Failure) -> None:
        self.conn.abort()


class HTTPClientProtocol(Protocol):
    """
    One upstream connection carrying one request at a time.  It is handed
    back to its pool only once both the request and the response are
    complete, and never after a cancellation or an error.
    """

    def __init__(self, pool: HTTPPool, firstCall: _Call) -> None:
        self.pool = pool
        self._firstCall: _Call | None = firstCall
        config = pool.config
        self._streamAfter = config.streamAfterContentLengthKB * 1024
        self._maxBuffered = -1 if config.streamingEnabled else config.maxResponseKB * 1024
        self._headLimit = config.maxHeadersKB * 1024
        self._lineLimit = config.maxInitialLineKB * 1024
        self._liveness = Liveness.forOptions(
            pool.clock, config.socketOptions, self._expecting, self._timedOut
        )
        self._paused = False
        self._parser = httptools.HttpResponseParser(self)
        self._call: _Call | None = None
        self._reusable = True
        self._requestDone = True
        self._responseDone = True
        self._written = False
        self._tunnel = False
        self._resetParser = False
        self._feeding = False  # inside feed_data
        self._idleLater = False  # the response ended while feeding
        self.born = self.lastUsed = 0.0
        self._resetMessage()

    def _resetMessage(self) -> None:
        self._headers: list[Header] = []
        self._headerSize = 0
        self._headBytes = 0
        self._reason = b""
        self._body: list[bytes] | BodyStream | None = None
        self._bodySize = 0
        self._trailers: Headers | None = None
        self._inBody = False
        self._untilClose = False
        self._response: Response | None = None

    @property
    def usable(self) -> bool:
        return self._reusable and self.transport is not None and self._call is None

    def connectionMade(self) -> None:
        transport = self.transport
        assert transport is not None
        applySocketOptions(transport, self.pool.config.socketOptions)
        if self._liveness is not None:
            self._liveness.start(transport)
        call, self._firstCall = self._firstCall, None
        assert call is not None
        self.pool._connected(self, call)

    # -- sending

    def send(self, call: _Call) -> None:
        transport = self.transport
        assert transport is not None and self._call is None
        call.conn = self
        self._call = call
        if self._liveness is not None:
            self._liveness.read()  # the reply's read clock starts now
        request = call.request
        self._requestDone = self._responseDone = False
        self._written = True
        self._tunnel = False
        body = request.body
        headers = request.headers
        extra = b""
        if headers.get(b"host") is None:
            extra = b"Host: %s\r\n" % self.pool.authority
        chunked = False
        if isinstance(body, bytes):
            if body or request.method in (b"POST", b"PUT", b"PATCH"):
                extra += b"Content-Length: %d\r\n" % len(body)
        elif body.tunnel:
            self._tunnel = True
            if request.method != b"CONNECT":
                extra += b"Connection: upgrade\r\n"
        elif body.length is not None:
            extra += b"Content-Length: %d\r\n" % body.length
        else:
            extra += b"Transfer-Encoding: chunked\r\n"
            chunked = True
        head = serializeHead(b"%s %s HTTP/1.1" % (request.method, request.uri), headers.raw, extra)
        if isinstance(body, bytes):
            write(transport, head + body)
            self._requestDone = True
            return
        write(transport, head)
        transport.registerProducer(body, True)  # type: ignore[attr-defined]
        body.attach(_RequestWriter(self, chunked))

    def close(self) -> None:
        """Close this idle connection."""
        self._reusable = False
        if self.transport is not None:
            self.transport.loseConnection()

    def abort(self) -> None:
        """Abandon the request in flight: the connection is closed, not reused."""
        self._reusable = False
        body = self._call.request.body if self._call is not None else None
        if isinstance(body, BodyStream) and not body.ended:
            body.stopProducing()
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def _expecting(self) -> bool:
        """A response is awaited or being read, and reading is not paused."""
        return (
            self._call is not None
            and not self._responseDone
            and not self._paused
            and not (self._tunnel and self._inBody)
        )

    def _timedOut(self, message: str) -> None:
        log.info(
            "closing connection to {peer}: {reason}",
            peer=self.pool.name,
            reason=message,
        )
        self._error(ConnectionClosed(f"{self.pool.name}: {message}"))

    # -- IPushProducer for the response body

    def pauseProducing(self) -> None:
        self._paused = True
        if self.transport is not None:
            self.transport.pauseProducing()  # type: ignore[attr-defined]

    def resumeProducing(self) -> None:
        self._paused = False
        if self.transport is not None:
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def stopProducing(self) -> None:
        self.abort()

    # -- receiving

    def dataReceived(self, data: bytes) -> None:
        if self._liveness is not None:
            self._liveness.read()
        if self._tunnel and self._inBody:
            body = self._body
            assert isinstance(body, BodyStream)
            body.write(data)
            return
        if self._call is None:
            log.info("unexpected data from {peer}, closing", peer=self.pool.name)
            self.abort()
            return
        # Hand the connection back only once the whole read is parsed: bytes
        # after the response must not be taken for the next call's answer.
        self._feeding = True
        try:
            self._feed(data)
        finally:
            self._feeding = False
        if self._idleLater:
            self._idleLater = False
            self._maybeIdle()
        elif not self._inBody and not self._responseDone and self._call is not None:
            # A head spread over reads: the parser holds a header's pieces
            # until it ends, so a head that never ends is bounded here.
            self._headBytes += len(data)
            if self._headBytes > self._headLimit + self._lineLimit:
                self._error(
                    ResponseTooLarge(
                        f"the response head from {self.pool.name} exceeds maxHeadersKB"
                        f" ({self.pool.config.maxHeadersKB})"
                    )
                )

    def _feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            rest = data[e.args[0] :]
            if rest:
                self.dataReceived(rest)
        except httptools.HttpParserCallbackError as e:
            if isinstance(e.__context__, ResponseTooLarge):
                self._error(e.__context__)
                return
            if isinstance(e.__context__, _Unsolicited):
                what = f"{e.__context__} from {self.pool.name}"
                log.info("{what}, closing", what=what)
                self._idleLater = False
                self._error(MalformedResponse(what))
                return
            log.failure("bug while parsing a response", Failure(e.__context__ or e))
            self._error(MalformedResponse("internal error while reading the response"))
        except httptools.HttpParserError as e:
            if self._tunnel and self._inBody:
                # A 101 without "Connection: upgrade": llhttp stops without
                # saying where; the tunnel starts after the blank line.
                end = data.find(b"\r\n\r\n")
                if end >= 0 and data[end + 4 :]:
                    self.dataReceived(data[end + 4 :])
                return
            self._error(MalformedResponse(f"malformed response from {self.pool.name}: {e}"))
        if self._resetParser:
            self._resetParser = False
            self._parser = httptools.HttpResponseParser(self)

    def on_message_begin(self) -> None:
        if self._call is None or self._responseDone:
            raise _Unsolicited("a response nobody asked for")
        self._resetMessage()

    def on_status(self, reason: bytes) -> None:
        self._reason += reason
        if len(self._reason) > self._lineLimit:
            raise ResponseTooLarge(
                f"the status line from {self.pool.name} exceeds maxInitialLineKB"
                f" ({self.pool.config.maxInitialLineKB})"
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._inBody:
            if self._trailers is None:
                self._trailers = Headers()
            self._trailers.add(name, value)
            return
        size = self._headerSize = self._headerSize + len(name) + len(value) + 4
        if size > self._headLimit:
            raise ResponseTooLarge(
                f"the response headers from {self.pool.name} exceed maxHeadersKB"
                f" ({self.pool.config.maxHeadersKB})"
            )
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        call = self._call
        assert call is not None
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return  # interim responses are not forwarded
        if status == 101 and not self._tunnel:
            raise _Unsolicited("a switch of protocols nobody asked for")
        self._inBody = True
        request = call.request
        method = request.method
        tunnel = (status == 101 and self._tunnel) or (method == b"CONNECT" and status < 300)
        reqBody = request.body
        if isinstance(reqBody, BodyStream) and reqBody.tunnel and not tunnel:
            self._reusable = False  # upgrade refused
        self._tunnel = tunnel
        raw = self._headers
        if bodiless(method, status) and not tunnel:
            headers = Headers(
                [h for h in raw if h[0].lower() not in _BODILESS_DROP] if raw else raw
            )
            self._finishResponse(Response(status, headers, b"", self._reason))
            if method == b"HEAD":
                self._resetParser = True  # llhttp would wait for the announced body
            return
        headers, length, chunked, _, coded, _ = parseHeaders(raw, tunnel)
        if coded and not chunked:
            length = None  # a transfer coding other than chunked: the body ends at close
        response = Response(status, headers, b"", self._reason)
        if tunnel:
            self._reusable = False
            response.body = self._body = BodyStream(self, tunnel=True)
        else:
            if not chunked and length is None:
                self._reusable = False  # the body ends when the connection does
                self._untilClose = True
            if self._maxBuffered >= 0 or not (
                chunked or length is None or length > self._streamAfter
            ):
                if length is not None:
                    self._checkSize(length)
                self._body = []
                self._response = response
                return
            response.body = self._body = BodyStream(self, None if chunked else length)
        self._fire(response)

    def _checkSize(self, size: int) -> None:
        if 0 <= self._maxBuffered < size:
            raise ResponseTooLarge(
                f"the response from {self.pool.name} exceeds maxResponseKB"
                f" ({self.pool.config.maxResponseKB})"
            )

    def on_body(self, data: bytes) -> None:
        body = self._body
        if isinstance(body, BodyStream):
            body.write(data)
        elif body is not None:
            self._bodySize += len(data)
            self._checkSize(self._bodySize)
            body.append(data)

    def on_message_complete(self) -> None:
        if not self._inBody:
            return  # an interim response
        body = self._body
        if not self._parser.should_keep_alive():
            self._reusable = False
        if isinstance(body, BodyStream):
            if not body.tunnel:
                body.finish(self._trailers)
                self._endResponse()
        elif body is not None and self._response is not None:
            self._response.body = b"".join(body)
            self._finishResponse(self._response)

    def _fire(self, response: Response) -> None:
        call = self._call
        assert call is not None
        if not call.deferred.called:
            call.deferred.callback(response)

    def _finishResponse(self, response: Response) -> None:
        self._inBody = False
        self._fire(response)
        self._endResponse()

    def _endResponse(self) -> None:
        self._inBody = False
        self._responseDone = True
        if not self._parser.should_keep_alive():
            self._reusable = False
        self._maybeIdle()

    def _maybeIdle(self) -> None:
        if self._feeding:
            self._idleLater = True
            return
        if not (self._requestDone and self._responseDone) or self._call is None:
            return
        self._call = None
        if self._reusable and self.transport is not None:
            self.pool._release(self)
        elif self.transport is not None:
            self.transport.loseConnection()

    def _error(self, exc: Exception) -> None:
        self._reusable = False
        call = self._call
        body = self._body
        if isinstance(body, BodyStream):
            body.fail(Failure(exc))
        if call is not None and not call.deferred.called:
            call.deferred.errback(Failure(exc))
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:  # noqa: B008
        self._reusable = False
        if self._liveness is not None:
            self._liveness.stop()
        body = self._body
        if self._untilClose and self._inBody and self._response is not None:
            assert isinstance(body, list)
            self._response.body = b"".join(body)  # a buffered body that ends here
            self._finishResponse(self._response)
        call, self._call = self._call, None
        self.pool._lost(self)
        if self._inBody and isinstance(body, BodyStream):
            if body.tunnel or self._untilClose:
                body.finish()  # tunnels and close-delimited bodies end here
            else:
                body.fail(Failure(ConnectionClosed(f"{self.pool.name} closed mid-response")))
        if call is not None:
            reqBody = call.request.body
            if isinstance(reqBody, BodyStream) and not reqBody.ended:
                reqBody.stopProducing()
            if not call.deferred.called:
                name = self.pool.name
                tls = tlsFailure(reason.value)
                if tls is not None:
                    message = f"TLS with {name} failed: {tls}"
                else:
                    message = (
                        f"connection to {name} closed before the response:"
                        f" {reason.getErrorMessage()}"
                    )
                call.deferred.errback(Failure(ConnectionClosed(message)))


class _Unsolicited(Exception):
    """Raised from a parser callback: a response began that no call asked for."""


_BODILESS_DROP = frozenset([b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer"])


class _ConnectFactory(ClientFactory):
    noisy = False  # one per upstream connection: no "Starting factory" lines

    def __init__(self, pool: HTTPPool, call: _Call) -> None:
        self.pool = pool
        self.call = call

    def buildProtocol(self, addr: IAddress | None) -> HTTPClientProtocol:
        return HTTPClientProtocol(self.pool, self.call)

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        self.pool._connectFailed(self.call, reason)


@implementer(IClient)
class HTTPPool(CountedConnections):
    """
    Keep-alive connections to one endpoint, within C{limits}.  Idle
    connections are reused most-recent first and closed past their idle time
    or lifetime (a connection is never closed mid-exchange); new ones are
    made up to C{maxSize}; beyond that, requests wait (up to C{maxWaiters},
    then fail with L{PoolExhausted}).  With C{tls} (a TLS connection
    creator, see L{linkrouter.tls.ClientTLSContexts}) connections are TLS.
    Its connections are counted by the L{ConnectionStats} that
    L{countConnections} gives, if any.
    """

    def __init__(
        self,
        reactor: IReactorTCP,
        clock: IReactorTime,
        host: str,
        port: int,
        config: PoolConfig | None = None,
        limits: PoolLimits = UNLIMITED,
        tls: object = None,
    ) -> None:
        self.reactor = reactor
        self.tls = tls
        self.clock = clock
        self.host = host
        self.port = port
        self.config = config or PoolConfig()
        self.limits = limits
        self.name = authority(host, port)
        self.authority = self.name.encode()
        self._idle: IdleConnections[HTTPClientProtocol] = IdleConnections(
            limits, clock, HTTPClientProtocol.close, self._sizeNow
        )
        self._size = 0
        self._waiters: deque[_Call] = deque()
        self._closed = False
        self._closing: Deferred[None] | None = None

    def _sizeNow(self) -> int:
        return self._size

    def _hasRoom(self) -> bool:
        return self.limits.maxSize is None or self._size < self.limits.maxSize

    def _mayWait(self) -> bool:
        return self.limits.maxWaiters is None or len(self._waiters) < self.limits.maxWaiters

    @property
    def status(self) -> Status:
        if self._closed:
            return Status.CLOSED
        if not self._idle and not self._hasRoom() and not self._mayWait():
            return Status.BUSY
        return Status.OPEN

    @property
    def size(self) -> int:
        """Connections open or being opened."""
        return self._size

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def waiters(self) -> int:
        """Requests queued for a connection."""
        return len(self._waiters)

    def __call__(self, request: Request) -> Deferred[Response]:
        if self._closed:
            return fail(ConnectionFailed(f"the pool for {self.name} is closed"))
        call = _Call(request)
        while (conn := self._idle.pop()) is not None:
            if conn.usable:
                conn.send(call)
                return call.deferred
        if self._hasRoom():
            self._connect(call)
        elif self._mayWait():
            self._waiters.append(call)
        else:
            return fail(
                PoolExhausted(
                    f"{self.name}: {self._size} connections and {len(self._waiters)} waiters"
                )
            )
        return call.deferred

    def _connect(self, call: _Call) -> None:
        self._size += 1
        self.reactor.connectTCP(
            self.host,
            self.port,
            clientFactory(self.tls, _ConnectFactory(self, call)),
            timeout=self.config.connectTimeoutMs / 1000,
        )

    def _connected(self, conn: HTTPClientProtocol, call: _Call) -> None:
        if self.connectionStats is not None:
            self.connectionStats.connected()
        self._idle.made(conn)
        if call.deferred.called:  # cancelled while connecting
            self._release(conn)
        else:
            conn.send(call)

    def _connectFailed(self, call: _Call, reason: Failure) -> None:
        self._size -= 1
        if not call.deferred.called:
            call.deferred.errback(
                Failure(
                    ConnectionFailed(f"cannot connect to {self.name}: {reason.getErrorMessage()}")
                )
            )
        self._serveWaiters()

    def _release(self, conn: HTTPClientProtocol) -> None:
        """C{conn} finished an exchange: close it, give it to a waiter or keep it idle."""
        if self._closed or self._idle.expired(conn):
            conn.close()
            return
        waiters = self._waiters
        while waiters:
            call = waiters.popleft()
            if not call.deferred.called:
                conn.send(call)
                return
        self._idle.rest(conn)

    def _lost(self, conn: HTTPClientProtocol) -> None:
        if self.connectionStats is not None:
            self.connectionStats.closed()
        self._size -= 1
        self._idle.discard(conn)
        if self._closing is not None and self._size == 0:
            self._closing.callback(None)
        else:
            self._serveWaiters()

    def _serveWaiters(self) -> None:
        waiters = self._waiters
        while waiters and waiters[0].deferred.called:
            waiters.popleft()
        if waiters and self._hasRoom() and not self._closed:
            self._connect(waiters.popleft())

    def close(self) -> Deferred[None]:
        """Fail waiters, close idle connections; fires once every connection is gone."""
        self._closed = True
        waiters, self._waiters = self._waiters, deque()
        for call in waiters:
            if not call.deferred.called:
                call.deferred.errback(ConnectionFailed("the pool was closed"))
        for conn in self._idle.stop():
            conn.abort()
        d: Deferred[None] = Deferred()
        if self._size == 0:
            d.callback(None)
        else:
            self._closing = d
        return d
