# -*- test-case-name: tests.test_http_server -*-
"""
The HTTP/1.x server connection: parses requests with httptools, hands each
to a handler (C{handler(request) -> Deferred[Response]}) and writes the
responses in request order, streaming bodies with flow control.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import attrs
import httptools
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IAddress,
    IReactorTime,
    ITransport,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from linkrouter._sessions import SessionTimer
from linkrouter._transport import write
from linkrouter.config import Session, SocketOptions
from linkrouter.interfaces import IStatsReceiver
from linkrouter.logs import logObserver
from linkrouter.routing.stats import ConnectionStats
from linkrouter.sockets import DEFAULTS, Liveness, applySocketOptions
from protocols.http import errors
from protocols.http.message import (
    REASONS,
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

Handler = Callable[[Request], "Deferred[Response]"]
AccessLogger = Callable[[Request, Response, "HTTPServerProtocol"], None]


@attrs.frozen
class ServerConfig:
    """
    Limits of one server, in Linkerd's terms.  With C{streamingEnabled}, a
    request body is buffered whole only when its C{Content-Length} is at
    most C{streamAfterContentLengthKB}; without it, bodies are buffered up to
    C{maxRequestKB} and larger ones get 413.
    """

    maxHeadersKB: int = 8
    maxInitialLineKB: int = 4
    streamingEnabled: bool = True
    streamAfterContentLengthKB: int = 5
    maxRequestKB: int = 5120
    maxErrResponseKB: int = errors.DEFAULT_MAX_ERR_RESPONSE_KB
    maxPipelined: int = 16
    maxChunkKB: int = 8


class _Reject(Exception):
    """Raised from a parser callback to answer with C{status} and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Exchange:
    __slots__ = ("deferred", "keepAlive", "request", "response", "writing")

    def __init__(self, request: Request, keepAlive: bool) -> None:
        self.request = request
        self.keepAlive = keepAlive
        self.response: Response | None = None
        self.deferred: Deferred[Response] | None = None
        self.writing: BodyStream | None = None


class _BodyWriter(BodyWriter):
    """Writes one streamed response body to the server's transport."""

    __slots__ = ("exchange", "proto", "stream")

    def __init__(
        self,
        proto: HTTPServerProtocol,
        exchange: _Exchange,
        stream: BodyStream,
        chunked: bool,
    ) -> None:
        BodyWriter.__init__(self, chunked, proto.config.maxChunkKB * 1024)
        self.proto = proto
        self.exchange = exchange
        self.stream = stream

    def transport(self) -> ITransport | None:
        return self.proto.transport

    def ended(self) -> None:
        self.proto._exchangeDone(self.exchange)

    def bodyError(self, reason: Failure) -> None:
        # Headers are already sent: the only honest signal left is to close.
        log.info("response body failed mid-stream, closing: {reason}", reason=reason.value)
        transport = self.proto.transport
        if transport is not None:
            transport.unregisterProducer()  # type: ignore[attr-defined]
            self.exchange.keepAlive = False
            self.proto._exchangeDone(self.exchange)


_FOREVER = Session()


class HTTPServerProtocol(Protocol):
    """
    One downstream connection.  Requests are dispatched as soon as their
    headers are parsed (bodies stream behind them) or, for small bodies, once
    complete; responses are written in request order.

    Within C{session} (C{serverSession}, timed with C{clock}): once idle for
    C{idleTimeMs} with no request in progress (none read, or only part of
    one), the connection is closed; once C{lifeTimeMs} old, it closes after
    the response in progress.  A client that shuts down its sending side
    gets the responses to the requests it sent, then the connection closes.

    C{socketOptions} apply to the connection: C{noDelay}, C{keepAlive}, and
    with C{clock}, C{readTimeoutMs} (a request begun, then silence) and
    C{writeTimeoutMs} (responses not leaving).
    """

    def __init__(
        self,
        handler: Handler,
        config: ServerConfig,
        accessLog: AccessLogger | None = None,
        session: Session = _FOREVER,
        clock: IReactorTime | None = None,
        socketOptions: SocketOptions = DEFAULTS,
    ) -> None:
        self.handler = handler
        self.config = config
        self.accessLog = accessLog
        self.socketOptions = socketOptions
        self._liveness = Liveness.forOptions(clock, socketOptions, self._expecting, self._timedOut)
        self._headLimit = config.maxHeadersKB * 1024
        self._lineLimit = config.maxInitialLineKB * 1024
        self._streamAfter = (
            config.streamAfterContentLengthKB * 1024 if config.streamingEnabled else -1
        )
        self._queue: deque[_Exchange] = deque()
        self._parser = httptools.HttpRequestParser(self)
        self._pauses = 0
        self._dead = False  # no more requests will be read
        self._gone = False  # the connection is closed
        self._tunnel: BodyStream | None = None
        self._upgraded: BodyStream | None = None
        self.ctx: dict[str, object] = {}  # per-connection values (labels, ...)
        self.peer: IAddress | None = None
        self.host: IAddress | None = None
        self.owner: HTTPServerFactory | None = None
        self._draining = False
        self._session: SessionTimer | None = None
        if session != _FOREVER:
            assert clock is not None, "session limits need a clock"
            self._session = SessionTimer(session, clock, self._busy, self._idleClose, self.drain)
        self._resetMessage()

    def _resetMessage(self) -> None:
        self._inHead = False
        self._headBytes = 0
        self._url: list[bytes] = []
        self._urlLen = 0
        self._headers: list[Header] = []
        self._headerSize = 0
        self._exchange: _Exchange | None = None
        self._body: list[bytes] | BodyStream | None = None
        self._bodySize = 0
        self._trailers: Headers | None = None

    # -- connection

    def connectionMade(self) -> None:
        transport = self.transport
        assert transport is not None
        applySocketOptions(transport, self.socketOptions)
        self.peer = transport.getPeer()
        self.host = transport.getHost()
        if self.owner is not None:
            self.owner.connections.add(self)
        if self._session is not None:
            self._session.start()
        if self._liveness is not None:
            self._liveness.start(transport)

    def _expecting(self) -> bool:
        """A request is being read, and reading is not paused."""
        return (
            (self._inHead or self._exchange is not None)
            and not self._pauses
            and self._tunnel is None
        )

    def _timedOut(self, message: str) -> None:
        # Not "message": Twisted's legacy log observers treat that key as theirs.
        log.info("closing connection from {peer}: {reason}", peer=self.peer, reason=message)
        self._dead = True
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def _busy(self) -> bool:
        return bool(self._queue)

    def _idleClose(self) -> None:
        """C{serverSession.idleTimeMs} passed without a request in progress."""
        if self._inHead or self._exchange is not None:
            log.info(
                "closing connection from {peer}: part of a request, then nothing"
                " for serverSession.idleTimeMs",
                peer=self.peer,
            )
        self._dead = True
        if self.transport is not None:
            self.transport.loseConnection()

    def drain(self) -> None:
        """
        Read no new request: close now if idle, else once the exchanges
        already read have been answered.
        """
        self._draining = True
        if self._exchange is not None:
            self._exchange.keepAlive = False
        elif self._queue:
            self._queue[-1].keepAlive = False
        elif not self._inHead and self.transport is not None:
            self._dead = True
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._session is not None:
            self._session.touch()
        if self._liveness is not None:
            self._liveness.read()
        if self._tunnel is not None:
            self._tunnel.write(data)
            return
        if self._dead:
            return
        wasInHead = self._inHead
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            rest = data[e.args[0] :]
            self._dead = True
            tunnel = self._tunnel = self._upgraded
            assert tunnel is not None
            if rest:
                tunnel.write(rest)
            return
        except httptools.HttpParserCallbackError as e:
            cause = e.__context__
            if isinstance(cause, _Reject):
                self._reject(cause.status, cause.message)
            else:
                log.failure("bug while parsing a request", Failure(cause or e))
                self._reject(500, "Internal error while reading the request")
            return
        except httptools.HttpParserError as e:
            if not self._dead:  # else: bytes after a last request, ignored
                self._reject(400, f"Malformed request: {e}")
            return
        if wasInHead and self._inHead:
            # A head spread over reads; the read that started it is not
            # counted (it may hold the end of the previous message).
            self._headBytes += len(data)
            if self._headBytes > self._headLimit + self._lineLimit:
                self._reject(
                    431, f"Request headers exceed maxHeadersKB ({self.config.maxHeadersKB})"
                )

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:  # noqa: B008
        self._gone = True
        self._dead = True
        if self._session is not None:
            self._session.stop()
        if self._liveness is not None:
            self._liveness.stop()
        if self.owner is not None:
            self.owner._lost(self)
        lost = Failure(errors.ConnectionClosed("the downstream client disconnected"))
        if isinstance(self._body, BodyStream):
            self._body.fail(lost)
        if self._tunnel is not None:
            self._tunnel.finish()
        queue, self._queue = self._queue, deque()
        for ex in queue:
            body = ex.request.body
            if isinstance(body, BodyStream) and not body.tunnel:
                body.fail(lost)
            if ex.writing is not None:
                ex.writing.stopProducing()
            if ex.deferred is not None and not ex.deferred.called:
                ex.deferred.cancel()

    # -- flow control (the source of request bodies)

    def pauseProducing(self) -> None:
        self._pauses += 1
        if self._pauses == 1 and self.transport is not None:
            self.transport.pauseProducing()  # type: ignore[attr-defined]

    def resumeProducing(self) -> None:
        self._pauses -= 1
        if self._pauses == 0 and self.transport is not None and not self._gone:
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def stopProducing(self) -> None:
        # The request body is no longer wanted: the response will close us.
        if self._exchange is not None:
            self._exchange.keepAlive = False

    # -- parser callbacks

    def on_message_begin(self) -> None:
        self._resetMessage()
        self._inHead = True

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._urlLen += len(url)
        if self._urlLen > self._lineLimit:
            raise _Reject(
                414, f"Request line exceeds maxInitialLineKB ({self.config.maxInitialLineKB})"
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._exchange is not None:  # a trailer
            if self._trailers is None:
                self._trailers = Headers()
            self._trailers.add(name, value)
            return
        self._headerSize += len(name) + len(value) + 4
        if self._headerSize > self._headLimit:
            raise _Reject(431, f"Request headers exceed maxHeadersKB ({self.config.maxHeadersKB})")
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._inHead = False
        p = self._parser
        upgrade = p.should_upgrade()
        headers, length, chunked, expect, coded, hosts = parseHeaders(self._headers, upgrade)
        if hosts > 1:
            raise _Reject(400, "Malformed request: more than one Host header")
        if coded and not chunked:
            raise _Reject(400, "Malformed request: Transfer-Encoding must end with chunked")
        version = b"1.1" if p.get_http_version() == "1.1" else b"1.0"
        request = Request(p.get_method(), b"".join(self._url), headers, b"", version)
        request.ctx["server"] = self
        keepAlive = p.should_keep_alive() and not upgrade and not self._draining
        ex = self._exchange = _Exchange(request, keepAlive)
        if upgrade:
            request.body = self._upgraded = BodyStream(self, tunnel=True)
        elif chunked:
            if self._streamAfter >= 0:
                request.body = self._body = BodyStream(self)
            else:
                self._body = []
        elif length is not None and length > 0:
            if self._streamAfter < 0 and length > self.config.maxRequestKB * 1024:
                raise _Reject(
                    413, f"Request body exceeds maxRequestKB ({self.config.maxRequestKB})"
                )
            if 0 <= self._streamAfter < length:
                request.body = self._body = BodyStream(self, length)
            else:
                self._body = []
        if expect and (chunked or length) and version == b"1.1" and not self._queue:
            assert self.transport is not None
            write(self.transport, b"HTTP/1.1 100 Continue\r\n\r\n")
        if self._body is None or isinstance(self._body, BodyStream):
            self._dispatch(ex)

    def on_body(self, data: bytes) -> None:
        body = self._body
        if isinstance(body, BodyStream):
            body.write(data)
        elif body is not None:
            self._bodySize += len(data)
            if self._bodySize > self.config.maxRequestKB * 1024:
                raise _Reject(
                    413, f"Request body exceeds maxRequestKB ({self.config.maxRequestKB})"
                )
            body.append(data)

    def on_message_complete(self) -> None:
        body = self._body
        ex = self._exchange
        assert ex is not None
        if not ex.keepAlive:
            self._dead = True  # the last request: what follows is not read
        if isinstance(body, BodyStream):
            body.finish(self._trailers)
        elif body is not None:
            ex.request.body = b"".join(body)
            self._dispatch(ex)
        self._body = None
        self._exchange = None
        self._inHead = False

    # -- dispatch and responses

    def _dispatch(self, ex: _Exchange) -> None:
        self._queue.append(ex)
        if len(self._queue) == self.config.maxPipelined:
            self.pauseProducing()
        try:
            d = self.handler(ex.request)
        except Exception:
            log.failure("request handler raised")
            self._responded(errors.errorResponse(500, "Internal router error"), ex)
            return
        ex.deferred = d
        d.addCallbacks(self._responded, self._failed, callbackArgs=(ex,), errbackArgs=(ex,))

    def _failed(self, reason: Failure, ex: _Exchange) -> None:
        if self._gone:
            return
        log.info(
            "{method} {uri} failed: {error}",
            method=ex.request.method.decode("latin-1"),
            uri=ex.request.uri.decode("latin-1"),
            error=reason.getErrorMessage(),
        )
        self._responded(errors.fromFailure(reason), ex)

    def _responded(self, response: Response, ex: _Exchange) -> None:
        if self._gone:
            body = response.body
            if isinstance(body, BodyStream):
                body.stopProducing()
            return
        ex.response = response
        if self._queue and self._queue[0] is ex:
            self._write(ex, response)

    def _reject(self, status: int, message: str) -> None:
        """Answer a request we cannot read (after those before it) and close."""
        self._dead = True
        if self.transport is not None and self._pauses:
            self._pauses = 1
            self.resumeProducing()
        ex = self._exchange
        if ex is None or ex in self._queue:
            ex = _Exchange(Request(b"GET", b"/"), False)
        self._queue.append(ex)
        ex.keepAlive = False
        if isinstance(self._body, BodyStream):
            self._body.fail(Failure(errors.ConnectionClosed(message)))
        self._responded(
            errors.errorResponse(status, message, False, self.config.maxErrResponseKB), ex
        )

    def _write(self, ex: _Exchange, response: Response) -> None:
        transport = self.transport
        assert transport is not None
        request = ex.request
        body = response.body
        status = response.status
        reqBody = request.body
        if isinstance(reqBody, BodyStream) and not reqBody.ended and not reqBody.tunnel:
            ex.keepAlive = False  # answered before the request was read: close after
        tunnel = isinstance(body, BodyStream) and body.tunnel
        if isinstance(reqBody, BodyStream) and reqBody.tunnel and not tunnel:
            ex.keepAlive = False  # upgrade refused: the rest of the stream is unknown
        reason = response.reason or REASONS.get(status, b"Unknown")
        line = b"HTTP/%s %d %s" % (request.version, status, reason)
        chunked = False
        if tunnel:
            extra = b"Connection: upgrade\r\n" if status == 101 else b""
        elif bodiless(request.method, status):
            extra = b""
            body = b""
        elif isinstance(body, bytes):
            extra = b"Content-Length: %d\r\n" % len(body)
        elif body.length is not None:
            extra = b"Content-Length: %d\r\n" % body.length
        elif request.version == b"1.1":
            extra = b"Transfer-Encoding: chunked\r\n"
            chunked = True
        else:
            extra = b""
            ex.keepAlive = False
        if not tunnel:
            if not ex.keepAlive:
                extra += b"Connection: close\r\n"
            elif request.version == b"1.0":
                extra += b"Connection: keep-alive\r\n"
        if self.accessLog is not None:
            self.accessLog(request, response, self)
        head = serializeHead(line, response.headers.raw, extra)
        if isinstance(body, bytes):
            write(transport, head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                write(transport, body)
            self._exchangeDone(ex)
            return
        write(transport, head)
        if isinstance(response.body, BodyStream) and body is not response.body:
            response.body.stopProducing()  # a body where none may be sent
        if isinstance(body, BodyStream):
            ex.writing = body
            transport.registerProducer(body, True)  # type: ignore[attr-defined]
            body.attach(_BodyWriter(self, ex, body, chunked))

    def _exchangeDone(self, ex: _Exchange) -> None:
        if self._session is not None:
            self._session.touch()
        ex.writing = None
        queue = self._queue
        if not queue or queue[0] is not ex:
            return
        queue.popleft()
        if len(queue) == self.config.maxPipelined - 1:
            self.resumeProducing()
        transport = self.transport
        if not ex.keepAlive:
            self._dead = True
            self._tunnel = None
            self._queue = deque()
            for abandoned in queue:
                if abandoned.deferred is not None and not abandoned.deferred.called:
                    abandoned.deferred.cancel()
            if transport is not None:
                transport.loseConnection()
            return
        if queue:
            nxt = queue[0]
            if nxt.response is not None:
                self._write(nxt, nxt.response)


class HTTPServerFactory(Factory):
    """
    Builds an L{HTTPServerProtocol} per accepted connection, within
    C{session} (timed with C{clock}) and C{socketOptions}, and keeps track
    of them so that a router can drain or close them.  Once given a
    metrics scope (L{observe}) it counts them there too.
    """

    noisy = False  # the router logs where it listens

    def __init__(
        self,
        handler: Handler,
        config: ServerConfig | None = None,
        accessLog: AccessLogger | None = None,
        session: Session = _FOREVER,
        clock: IReactorTime | None = None,
        socketOptions: SocketOptions = DEFAULTS,
    ) -> None:
        self.handler = handler
        self.config = config or ServerConfig()
        self.accessLog = accessLog
        self.session = session
        self.clock = clock
        self.socketOptions = socketOptions
        self.connections: set[HTTPServerProtocol] = set()
        self._idle: list[Deferred[None]] = []
        self.connectionStats = ConnectionStats(self.connections)

    def observe(self, stats: IStatsReceiver) -> None:
        """Count connections under C{stats} (the server's scope) from now on."""
        self.connectionStats.observe(stats)

    def buildProtocol(self, addr: IAddress | None) -> HTTPServerProtocol:
        self.connectionStats.connected()
        protocol = HTTPServerProtocol(
            self.handler, self.config, self.accessLog, self.session, self.clock, self.socketOptions
        )
        protocol.owner = self
        return protocol

    def drain(self) -> Deferred[None]:
        """
        Close idle connections now and the others after the requests they
        have already read; fire once every connection is closed.
        """
        for connection in list(self.connections):
            connection.drain()
        d: Deferred[None] = Deferred(self._idle.remove)
        if self.connections:
            self._idle.append(d)
        else:
            d.callback(None)
        return d

    def closeAll(self) -> None:
        """Close every connection now, whatever it is doing."""
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abortConnection()  # type: ignore[attr-defined]

    def _lost(self, connection: HTTPServerProtocol) -> None:
        self.connectionStats.closed()
        self.connections.discard(connection)
        if not self.connections and self._idle:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)
